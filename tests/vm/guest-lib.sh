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
# A script may define `on_fail` to print what helps diagnose (logs, state);
# it runs once, before the verdict.
fail() {
  if [ -z "${FAILING:-}" ] && command -v on_fail >/dev/null 2>&1; then
    FAILING=1
    on_fail
  fi
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

# secs_since T: seconds (2 decimals) from uptime T to now.
secs_since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.2f", b - a }'; }

# wait_for SECS WHAT COMMAND...: runs COMMAND every second until it
# succeeds; after SECS seconds fails the test with WHAT. (Under TCG a
# command such as a meshpay CLI call costs the guest most of a second:
# polling faster only slows down what is being waited for.)
wait_for() {
  wf_end=$(($(cut -d. -f1 /proc/uptime) + $1))
  wf_what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$(cut -d. -f1 /proc/uptime)" -lt "$wf_end" ] || fail "$wf_what (not within the deadline)"
    sleep 1
  done
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
