#!/usr/bin/env bash
# Builds what the 802.11s VM tests boot: Debian's kernel and the modules for
# mac80211_hwsim, plus a base initramfs with busybox, iproute2's `ip`, `iw`
# and the binaries under test (with their shared libraries).
#
#   tests/vm/build-guest.sh [BINARY...]
#
# BINARY defaults to target/debug/meshctl and target/debug/meshpay (first
# brought up to date with `cargo build -p meshpay -p meshpay-mesh`); they go to the
# guest's /xbin/ stripped (a debug meshpay is 80 MB, stripped 14 MB, and the
# initramfs lives in guest RAM). Outputs, under target/vm/ (or $MESHPAY_VM_DIR):
#   kernel-<pkg>_<version>/vmlinuz, mods/*.ko, mods/order   (cached per package version)
#   current-kernel -> that directory
#   base.cpio.gz       the base initramfs (rebuilt every run: binaries change)
#
# Nothing is installed but Debian packages through apt-get, and only those
# missing; the kernel package is downloaded (apt-get download) and unpacked
# with dpkg-deb -x, never installed.
set -euo pipefail
# shellcheck source=tests/vm/lib.sh
source "$(dirname "$0")/lib.sh"
t0=$(date +%s.%N)
mkdir -p "$VM_DIR"

# --- 1. host tools -----------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
# busybox-static, not the dynamic busybox: the initramfs has no libc for it.
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed"; then
  need+=(busybox-static)
fi
[ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need+=(iproute2)
command -v iw >/dev/null || need+=(iw)
command -v cpio >/dev/null || need+=(cpio)
command -v xz >/dev/null || need+=(xz-utils)
command -v zstd >/dev/null || need+=(zstd)
command -v ldd >/dev/null || need+=(libc-bin)
command -v strip >/dev/null || need+=(binutils)
command -v depmod >/dev/null || [ -x /sbin/depmod ] || need+=(kmod)
if [ ${#need[@]} -gt 0 ]; then
  vm_log "installing ${need[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || vm_die "need root to run: apt-get install ${need[*]}"
    sudo=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
IP_BIN=$(command -v ip)
IW_BIN=$(command -v iw)

# --- 2. kernel and modules (cached per package version) ----------------------
apt_candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }
if [ -z "$(apt_candidate linux-image-amd64)" ] || [ "$(apt_candidate linux-image-amd64)" = "(none)" ]; then
  vm_log "apt lists are empty: apt-get update"
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq; else sudo apt-get update -qq; fi
fi
KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$KPKG" ] || vm_die "cannot resolve linux-image-amd64 to a kernel package"
KVER=$(apt_candidate "$KPKG")
KDIR="$VM_DIR/kernel-${KPKG}_${KVER}"
# Modules the mesh tests load; their dependencies come from modules.dep.
WANT_MODS=(rfkill libarc4 cfg80211 mac80211 virtio_ring virtio mac80211_hwsim)

if [ -f "$KDIR/.complete" ]; then
  vm_log "kernel cache hit: $KDIR"
else
  vm_log "fetching $KPKG $KVER"
  tmp=$(mktemp -d "$VM_DIR/fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  chmod 0755 "$tmp" # apt's _apt user writes the download there
  (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$KPKG" >/dev/null)
  deb=$(ls "$tmp"/*.deb)
  dpkg-deb -x "$deb" "$tmp/x"
  moddir=$(ls -d "$tmp"/x/lib/modules/*/ | head -1)
  moddir=${moddir%/}
  # The package ships no modules.dep (its postinst runs depmod): make one.
  PATH="$PATH:/sbin:/usr/sbin" depmod -b "$tmp/x" "$(basename "$moddir")"
  [ -f "$moddir/modules.dep" ] || vm_die "depmod made no modules.dep for $deb"
  rm -rf "$KDIR.partial"
  mkdir -p "$KDIR.partial/mods"
  cp "$tmp"/x/boot/vmlinuz-* "$KDIR.partial/vmlinuz"
  # Depth-first over modules.dep: dependencies before dependants.
  declare -A done_mod=()
  order=()
  add_mod() {
    local name=$1 path deps d
    [ -n "${done_mod[$name]:-}" ] && return 0
    done_mod[$name]=1
    path=$(grep -E "(^|/)${name}\.ko(\.xz|\.zst|\.gz)?:" "$moddir/modules.dep" | head -1 | cut -d: -f1)
    if [ -z "$path" ]; then
      if grep -qE "(^|/)${name}\.ko\$" "$moddir/modules.builtin" 2>/dev/null; then
        return 0 # built into the kernel
      fi
      vm_die "module $name not found in modules.dep"
    fi
    deps=$(grep -E "^${path}:" "$moddir/modules.dep" | cut -d: -f2)
    for d in $deps; do
      d=$(basename "$d"); d=${d%%.ko*}
      add_mod "$d"
    done
    case "$path" in
      *.ko.xz) xz -dc "$moddir/$path" >"$KDIR.partial/mods/$name.ko" ;;
      *.ko.zst) zstd -qdc "$moddir/$path" >"$KDIR.partial/mods/$name.ko" ;;
      *.ko.gz) gzip -dc "$moddir/$path" >"$KDIR.partial/mods/$name.ko" ;;
      *) cp "$moddir/$path" "$KDIR.partial/mods/$name.ko" ;;
    esac
    order+=("$name")
  }
  for m in "${WANT_MODS[@]}"; do
    # Module names in modules.dep use '_' or '-' as the file has them.
    add_mod "$m"
  done
  printf '%s\n' "${order[@]}" >"$KDIR.partial/mods/order"
  echo "$KPKG $KVER" >"$KDIR.partial/package"
  rm -rf "$KDIR"
  mv "$KDIR.partial" "$KDIR"
  touch "$KDIR/.complete"
  rm -rf "$tmp"
  trap - EXIT
  vm_log "cached $(wc -l <"$KDIR/mods/order") modules in $KDIR"
fi
ln -sfn "$(basename "$KDIR")" "$VM_DIR/current-kernel"

# --- 3. binaries under test ----------------------------------------------------
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  # Up to date, not merely present: a stale binary tests old code.
  vm_log "cargo build -p meshpay -p meshpay-mesh"
  (cd "$VM_ROOT" && cargo build -q -p meshpay -p meshpay-mesh)
  bins=("$VM_ROOT/target/debug/meshctl" "$VM_ROOT/target/debug/meshpay")
fi

# --- 4. base initramfs -----------------------------------------------------------
root="$VM_DIR/base-root"
rm -rf "$root"
mkdir -p "$root"/{bin,xbin,mods,proc,sys,dev,tmp,run,var/run/netns,etc}
cp /bin/busybox "$root/bin/busybox"
cp "$KDIR"/mods/*.ko "$KDIR/mods/order" "$root/mods/"
# Not called ip/iw on PATH: busybox's own applets would win; tests call
# /xbin/ip and /xbin/iw by full path.
vm_copy_elf "$root" "$IP_BIN" /xbin/ip
vm_copy_elf "$root" "$IW_BIN" /xbin/iw
for b in "${bins[@]}"; do
  [ -x "$b" ] || vm_die "binary under test $b is missing"
  vm_copy_elf "$root" "$b" "/xbin/$(basename "$b")" strip
done
cp "$(dirname "$0")/guest-lib.sh" "$root/guest-lib.sh"
vm_cpio "$root" "$VM_DIR/base.cpio.gz"
t1=$(date +%s.%N)
vm_log "base initramfs $(du -h "$VM_DIR/base.cpio.gz" | cut -f1) ready in $(awk "BEGIN {printf \"%.1f\", $t1 - $t0}") s"
echo "$VM_DIR"
