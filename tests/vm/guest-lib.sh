# Sourced by the guest init scripts (as /guest-lib.sh inside the initramfs).
# Sets up the busybox userland, loads the kernel modules, and gives the
# scripts `step`, `check`, `ok` and `fail`. The host (run-guest.sh) reads the
# one `RESULT ok` / `RESULT fail ...` line from the serial console.
# shellcheck shell=sh

/bin/busybox --install -s /bin
export PATH=/bin:/xbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /var/run/netns /run /tmp

IP=/xbin/ip
IW=/xbin/iw
MESHCTL=/xbin/meshctl

uptime_s() { cut -d' ' -f1 /proc/uptime; }

# step MESSAGE: a timestamped progress line.
step() { echo "STEP $(uptime_s) $*"; }

# fail REASON: report and power off (the VM exits, run-guest.sh parses RESULT).
fail() {
  echo "RESULT fail $*"
  sync
  poweroff -f
  sleep 10
}

# ok: report success and power off.
ok() {
  echo "RESULT ok uptime $(uptime_s)"
  sync
  poweroff -f
  sleep 10
}

# check MESSAGE COMMAND...: runs COMMAND, fails the test with MESSAGE and the
# command's output if it exits non-zero.
check() {
  msg=$1
  shift
  if ! out=$("$@" 2>&1); then
    echo "$out"
    fail "$msg"
  fi
  [ -n "$out" ] && echo "$out"
  return 0
}

# in_ns NS COMMAND...: runs COMMAND in network namespace NS.
in_ns() {
  ns=$1
  shift
  $IP netns exec "$ns" "$@"
}

# load_modules [HWSIM_RADIOS]: insmod everything build-guest.sh put in
# /mods/order, mac80211_hwsim with radios=N.
load_modules() {
  radios=${1:-3}
  while read -r m; do
    if [ "$m" = mac80211_hwsim ]; then
      insmod /mods/$m.ko radios="$radios" || fail "insmod $m"
    else
      insmod /mods/$m.ko || fail "insmod $m"
    fi
  done </mods/order
}

echo "BOOTED $(uname -r) uptime $(uptime_s)"
