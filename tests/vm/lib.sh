# Shared helpers of the VM test bed (sourced by build-guest.sh and run-guest.sh).
# shellcheck shell=bash

VM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VM_DIR="${MESHPAY_VM_DIR:-$VM_ROOT/target/vm}"

vm_log() { echo "vm: $*" >&2; }
vm_die() { echo "vm: error: $*" >&2; exit 1; }

# vm_copy_elf STAGING SRC DEST [strip]: copies a binary to STAGING/DEST and
# every shared library `ldd` lists (plus the loader) under the same absolute
# paths, so it runs inside the initramfs as it does on the host. With
# `strip`, the copy loses its symbols and debug info: a debug build of
# meshpay is 80 MB, stripped 14 MB, and the initramfs lives in guest RAM.
vm_copy_elf() {
  local root=$1 src=$2 dest=$3 how=${4:-} lib
  mkdir -p "$root/$(dirname "$dest")"
  if [ "$how" = strip ]; then
    strip -o "$root/$dest" "$src"
  else
    cp -L "$src" "$root/$dest"
  fi
  chmod 0755 "$root/$dest"
  # Static binaries make ldd say "not a dynamic executable" (exit 1).
  ldd "$src" 2>/dev/null | grep -oE '/[^ ]+' | while read -r lib; do
    [ -e "$lib" ] || continue
    if [ ! -e "$root/$lib" ]; then
      mkdir -p "$root/$(dirname "$lib")"
      cp -L "$lib" "$root/$lib"
    fi
  done
}

# vm_cpio DIR OUT: a newc cpio archive of DIR, gzip-compressed.
vm_cpio() {
  (cd "$1" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) | gzip -1 >"$2"
}
