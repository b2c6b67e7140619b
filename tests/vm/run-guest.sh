#!/usr/bin/env bash
# Boots the guest built by build-guest.sh with INIT_SCRIPT as /init and
# returns its verdict.
#
#   tests/vm/run-guest.sh INIT_SCRIPT [FILE...]
#
# FILEs are copied into the guest's /extra/ (ELF binaries with their shared
# libraries). The guest writes `RESULT ok` or `RESULT fail REASON` to the
# serial console and powers off; the console goes to target/vm/<name>.log.
#
# Exit status: 0 ok, 1 the guest reported a failure, 2 no verdict (the VM did
# not boot, crashed, or hit the timeout).
# KVM is used when a probe boot with it works, else TCG (plain emulation).
#
# Resources: an init script may ask for them in a comment line
# `# vm: mem=MIB smp=CPUS timeout=SECS` (any subset); the environment
# (VM_MEM, VM_SMP, VM_TIMEOUT) overrides both it and the defaults
# (512 MiB, 1 CPU, 110 s).
set -euo pipefail
# shellcheck source=tests/vm/lib.sh
source "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] || vm_die "usage: $0 INIT_SCRIPT [FILE...]"
init=$1
shift
[ -f "$init" ] || vm_die "no init script $init"
kernel="$VM_DIR/current-kernel/vmlinuz"
[ -f "$kernel" ] && [ -f "$VM_DIR/base.cpio.gz" ] || vm_die "run tests/vm/build-guest.sh first"
command -v qemu-system-x86_64 >/dev/null || vm_die "qemu-system-x86_64 is missing (build-guest.sh installs it)"

name=$(basename "$init" .sh)
log="$VM_DIR/$name.log"
overlay="$VM_DIR/$name-root"
rm -rf "$overlay"
mkdir -p "$overlay/extra"
cp "$init" "$overlay/init"
chmod 0755 "$overlay/init"
for f in "$@"; do
  if head -c4 "$f" | grep -q 'ELF'; then
    vm_copy_elf "$overlay" "$f" "/extra/$(basename "$f")"
  else
    cp "$f" "$overlay/extra/"
  fi
done
# The kernel unpacks concatenated cpio archives in order: base, then ours.
initrd="$VM_DIR/$name.initrd"
vm_cpio "$overlay" "$VM_DIR/$name.cpio.gz"
cat "$VM_DIR/base.cpio.gz" "$VM_DIR/$name.cpio.gz" >"$initrd"

# KVM only if it really boots this guest: on some hosts /dev/kvm opens but
# the guest hangs (nested virtualisation). The verdict of a 20 s probe boot is
# cached in target/vm/kvm-probe; VM_NO_KVM=1 skips KVM altogether.
kernel_args="console=ttyS0 panic=-1 oops=panic quiet loglevel=3 rdinit=/init"
accel=(-accel tcg)
accel_name=tcg
if [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ "${VM_NO_KVM:-0}" != 1 ]; then
  probe="$VM_DIR/kvm-probe"
  if [ ! -f "$probe" ]; then
    vm_log "probing KVM (once; result cached in $probe)"
    pdir="$VM_DIR/kvm-probe-root"
    rm -rf "$pdir"
    mkdir -p "$pdir"
    printf '#!/bin/busybox sh\n. /guest-lib.sh\nok\n' >"$pdir/init"
    chmod 0755 "$pdir/init"
    vm_cpio "$pdir" "$VM_DIR/kvm-probe.cpio.gz"
    cat "$VM_DIR/base.cpio.gz" "$VM_DIR/kvm-probe.cpio.gz" >"$VM_DIR/kvm-probe.initrd"
    timeout -k 2 20 qemu-system-x86_64 -accel kvm -m 256 -nographic -monitor none -no-reboot \
      -serial "file:$VM_DIR/kvm-probe.log" -nic none -kernel "$kernel" \
      -initrd "$VM_DIR/kvm-probe.initrd" -append "$kernel_args" </dev/null >/dev/null 2>&1 || true
    if grep -aq '^RESULT ok' "$VM_DIR/kvm-probe.log" 2>/dev/null; then echo ok >"$probe"; else echo broken >"$probe"; fi
  fi
  if [ "$(cat "$probe")" = ok ]; then
    accel=(-accel kvm)
    accel_name=kvm
  else
    accel_name="tcg (KVM probe failed earlier; rm $probe to retry)"
  fi
fi
# What the init script asks for (`# vm: mem=768 smp=2 timeout=300`).
want() { sed -n 's/^# vm:.*[[:space:]]'"$1"'=\([0-9][0-9]*\).*/\1/p' "$init" | head -1; }
mem=${VM_MEM:-$(want mem)}
smp=${VM_SMP:-$(want smp)}
timeout_s=${VM_TIMEOUT:-$(want timeout)}
mem=${mem:-512}
smp=${smp:-1}
timeout_s=${timeout_s:-110}
vm_log "booting $name ($accel_name, ${mem} MiB, ${smp} CPU(s), timeout ${timeout_s}s), console: $log"
t0=$(date +%s.%N)
rc=0
timeout --foreground -k 5 "$timeout_s" qemu-system-x86_64 \
  "${accel[@]}" -m "$mem" -smp "$smp" -nographic -monitor none -no-reboot \
  -serial "file:$log" -nic none \
  -kernel "$kernel" -initrd "$initrd" \
  -append "$kernel_args" \
  </dev/null >"$VM_DIR/$name.qemu.out" 2>&1 || rc=$?
t1=$(date +%s.%N)
secs=$(awk "BEGIN {printf \"%.1f\", $t1 - $t0}")
verdict=$(grep -a '^RESULT ' "$log" | tail -1 | tr -d '\r' || true)
echo "VM $name: ${verdict:-no RESULT line} (qemu exit $rc, ${secs} s)"
case "$verdict" in
  "RESULT ok"*) exit 0 ;;
  "RESULT fail"*)
    tail -n 60 "$log" | tr -d '\r' >&2
    exit 1
    ;;
  *)
    vm_log "the guest gave no verdict; last console lines:"
    tail -n 40 "$log" | tr -d '\r' >&2 || true
    cat "$VM_DIR/$name.qemu.out" >&2 || true
    exit 2
    ;;
esac
