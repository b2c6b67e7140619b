#!/bin/busybox sh
# vm: mem=512 smp=2 timeout=360
# Guest init: six `meshpay` routers on six mac80211_hwsim radios, and nothing
# but meshpay sets up the mesh.
#
# Each phy is moved into its own network namespace (n0..n5) and one
# `meshpay run` per namespace, with `[mesh] mode = "managed"`, creates the
# mesh interface, joins, and blocks the peer links to its non-neighbours
# (`blocked_peers`), so the radios form a line r0 - r1 - r2 - r3 - r4 - r5.
# The UDP transport runs over the mesh interface (beacons on link-local
# multicast, which 802.11s floods), so every router is a UDP neighbour of
# every other and HWMP carries the frames hop by hop. Payments: a client at
# r0 (its wallet holds the genesis 1000), authorities on r1..r4, wallets at
# r1 and r5. Checks:
#  0. a managed start whose join the radio refuses (5180 MHz, no-IR in the
#     world regulatory domain) fails with a clear error and deletes the
#     interface it created;
#  1. every router creates mesh0 and is ESTAB with exactly its line
#     neighbours (the others BLOCKED), as `meshpay mesh status --json`
#     reports and `iw station dump` confirms;
#  2. HWMP paths from both ends to every router: next hop = the line
#     neighbour, metric growing with the distance, multi-hop paths (hop count
#     >= 2), the same in `meshpay mesh status` and `iw`;
#  3. bundles: `meshpay send` at r0, `meshpay recv` at r1 (one hop) and r5
#     (five hops), with their end-to-end times;
#  4. payments r0 -> r1 (one hop) and r0 -> r5 (the longest path): certified
#     by the committee across the mesh, receipt verified at the recipient's
#     home node, with their end-to-end times (order submitted -> certified,
#     as `meshpay pay` measures it, plus certified at r0 -> confirmation
#     delivered at the recipient's node, from the routers' log timestamps);
#  5. kill -9 of the middle router r2 while bundles stream through it; the
#     crash takes its radio down too, cutting the line; bundles sent and a
#     payment made meanwhile do not get across; the restarted meshpay takes
#     over its leftover interface, joins again, is ESTAB again, every bundle
#     arrives exactly once and the payment is certified and received;
#     balances add up; then a kill -9 alone (r4, radio untouched): the
#     restarted meshpay keeps the still joined interface;
#  6. SIGTERM: each managed router leaves the mesh and deletes mesh0 (iw and
#     ip agree), and its neighbour loses the peer link.
#
# Timing: under TCG every meshpay CLI call costs the guest most of a second
# and six debug-build routers share two emulated CPUs, so the routers beacon
# and poll every 2 s, authorities send heartbeats (needed for withdrawals
# only, and each one a signed bundle every node stores) every 10 minutes,
# and the checks poll once a second.
#
# Run: tests/vm/build-guest.sh && tests/vm/run-guest.sh tests/vm/mesh-meshpay.sh
. /guest-lib.sh

MP=/xbin/meshpay
N=6
LAST=$((N - 1))
MID=2 # the router killed -9 mid-run
STREAM=6 # bundles r0 -> r5 streamed while r2 is killed
OUTAGE=4 # ...and sent while r2 is down

# mac I: router I's interface address (set by its config, so that the
# others can name it in blocked_peers before it exists).
mac() { printf '42:00:00:00:%02x:00' "$1"; }
# mp I ARGS...: the meshpay CLI against router I's state directory.
mp() {
  mp_i=$1
  shift
  $MP --state-dir /tmp/r"$mp_i" "$@"
}
pid_of() { eval "echo \$PID_$1"; }

on_fail() {
  i=0
  while [ $i -lt $N ]; do
    echo "--- r$i: log (tail)"
    tail -n 25 /tmp/r$i.log 2>/dev/null
    echo "--- r$i: meshpay mesh status"
    mp $i mesh status 2>&1 | head -n 30
    i=$((i + 1))
  done
  free
}

# rows I: "station MAC STATE" and "path DST NEXT_HOP HOPS METRIC" lines from
# router I's `meshpay mesh status --json` (pretty JSON: keys sorted, one per
# line).
rows() {
  mp "$1" mesh status --json | awk '
    /^  "[a-z_]+": \[/ { sec = $1; gsub(/[":]/, "", sec); next }
    /^  [^ ]/ { sec = "" }
    sec == "" { next }
    /^    \{/ { mac = ""; st = ""; dst = ""; nh = ""; hops = ""; metric = ""; next }
    /^    \}/ {
      if (sec == "stations") print "station", mac, st
      if (sec == "paths") print "path", dst, nh, hops, metric
      next
    }
    /^      "/ {
      k = $1; gsub(/[":]/, "", k)
      v = $2; gsub(/[",]/, "", v)
      if (k == "mac") mac = v
      if (k == "plink_state") st = v
      if (k == "dst") dst = v
      if (k == "next_hop") nh = v
      if (k == "hop_count") hops = v
      if (k == "metric") metric = v
    }'
}

# The same from iw: "station MAC STATE" and "path DST NEXT_HOP HOPS METRIC".
iw_rows() {
  in_ns n"$1" "$IW" dev mesh0 station dump | awk '/^Station/ { mac = $2 } /mesh plink:/ { print "station", mac, $3 }'
  # iw 5.19: DEST NEXT_HOP IFACE SN METRIC QLEN EXPTIME DTIM DRET FLAGS HOP_COUNT PATH_CHANGE
  in_ns n"$1" "$IW" dev mesh0 mpath dump | awk '$1 ~ /^[0-9a-f][0-9a-f]:/ { print "path", $1, $2, $11, $5 }'
}

# neighbours I: the MACs of I's line neighbours, sorted, one line.
neighbours() {
  {
    [ "$1" -gt 0 ] && mac $(($1 - 1)) && echo
    [ "$1" -lt $LAST ] && mac $(($1 + 1)) && echo
  } | sort | tr '\n' ' '
}

# links_ok I: ESTAB with exactly its line neighbours; every other station
# it knows is BLOCKED.
links_ok() {
  r=$(rows "$1") || return 1
  estab=$(echo "$r" | awk '$1 == "station" && $3 == "ESTAB" { print $2 }' | sort | tr '\n' ' ')
  [ "$estab" = "$(neighbours "$1")" ] || return 1
  ! echo "$r" | awk '$1 == "station" && $3 != "ESTAB" && $3 != "BLOCKED"' | grep -q .
}

# agrees_with_iw I station|path: meshpay's rows equal iw's.
agrees_with_iw() {
  a=$(rows "$1" | grep "^$2 " | sort)
  b=$(iw_rows "$1" | grep "^$2 " | sort)
  [ -n "$a" ] && [ "$a" = "$b" ]
}

# paths_ok I: an HWMP path from router I (an end of the line) to every
# other router, with the line neighbour as next hop, a metric that grows
# with the distance, and a hop count from 1 to the distance. (Not always
# the distance itself: when an intermediate node answers a PREQ for a
# target it has a path to, mac80211 sends the PREP with hop count 0 and
# the originator counts only the hops to that node; the metric is right.)
paths_ok() {
  r=$(rows "$1") || return 1
  if [ "$1" -eq 0 ]; then nh=$(mac 1) dir=1; else nh=$(mac $(($1 - 1))) dir=-1; fi
  last=0
  d=1
  while [ $d -lt $N ]; do
    row=$(echo "$r" | grep "^path $(mac $(($1 + dir * d))) $nh ") || return 1
    set -- "$1" $row
    [ "$5" -ge 1 ] && [ "$5" -le $d ] && [ "$6" -gt $last ] || return 1
    last=$6
    d=$((d + 1))
  done
}
# multi_hop I...: at least one of these routers shows a path with hop count >= 2.
multi_hop() {
  for i in "$@"; do rows "$i"; done | awk '$1 == "path" && $4 >= 2 { found = 1 } END { exit !found }'
}

# no_estab I MAC: router I (meshpay's view) has no established link to MAC.
no_estab() { ! rows "$1" | grep -q "^station $2 ESTAB\$"; }

sees_all() { [ "$(mp "$1" status --json | grep -c '"peer": "\[fe80::')" -eq $LAST ]; }
# counter I NAME: one of router I's status counters.
counter() { mp "$1" status --json | sed -n "s/.*\"$2\": \\([0-9]*\\).*/\\1/p"; }
# received_more I BASE MORE: router I received at least MORE bundles since
# its bundles_received counter read BASE.
received_more() { [ "$(counter "$1" bundles_received)" -ge $(($2 + $3)) ]; }

# The identity files written by `meshpay id --create --json`.
node_key() { sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p' /tmp/r"$1".id; }
endpoint() { sed -n 's/.*"endpoint": "\([^"]*\)".*/\1/p' /tmp/r"$1".id; }

start() {
  $IP netns exec n"$1" $MP --state-dir /tmp/r"$1" run --config /tmp/r"$1".toml >>/tmp/r"$1".log 2>&1 &
  eval "PID_$1=$!"
}
running() { mp "$1" status >/dev/null 2>&1; }
# gone PID: exited (a zombie until `wait` reaps it counts as exited).
gone() { [ ! -e /proc/"$1" ] || grep -q '^[0-9]* ([^)]*) Z' /proc/"$1"/stat 2>/dev/null; }

# config I: router I's configuration.
config() {
  blocked=""
  j=0
  while [ $j -lt $N ]; do
    d=$(($1 - j))
    [ $d -lt 0 ] && d=$((-d))
    [ $d -gt 1 ] && blocked="$blocked${blocked:+, }\"$(mac $j)\""
    j=$((j + 1))
  done
  if [ "$1" -ge 1 ] && [ "$1" -le 4 ]; then role=authority; else role=client; fi
  cat <<EOF
[node]
name = "r$1"
log_level = "info"

[bundles]
retransmit_ms = 1000

[mesh]
mode = "managed"
interface = "mesh0"
phy = "phy$1"
mesh_id = "meshpay-vm"
frequency = 2412
mac = "$(mac "$1")"
blocked_peers = [$blocked]
poll_ms = 2000

[[transport]]
name = "mesh"
plugin = "org.meshpay.transport.udp"
config = { interfaces = ["mesh0"], beacon_interval_ms = 2000, peer_timeout_ms = 10000 }

[consensus]
plugin = "org.meshpay.consensus.quorum"
config = { role = "$role", heartbeat_ms = 600000, heartbeat_window_ms = 1200000 }
config_files = { committee = "/tmp/committee.toml" }
EOF
}

# --- radios, namespaces -------------------------------------------------------------
load_modules $N
step "modules loaded"
i=0
while [ $i -lt $N ]; do
  $IP netns add n$i
  check "move phy$i to n$i" "$IW" phy phy$i set netns name n$i
  in_ns n$i "$IP" link set lo up
  i=$((i + 1))
done

# --- keys, wallets and the committee before the routers start ----------------------------
i=0
while [ $i -lt $N ]; do
  mp $i id --create --json >/tmp/r$i.id || fail "meshpay id --create on r$i"
  i=$((i + 1))
done
for i in 0 1 $LAST; do
  mp $i wallet new >/tmp/r$i.wallet || fail "meshpay wallet new on r$i"
  grep -qE "^[0-9a-f]{64}@$(node_key $i)\$" /tmp/r$i.wallet || fail "r$i: wallet new printed no <account>@<r$i's key>: $(cat /tmp/r$i.wallet)"
done
W0=$(cat /tmp/r0.wallet)
W5=$(cat /tmp/r$LAST.wallet)
ACCT0=${W0%@*}
{
  for i in 1 2 3 4; do printf '[[authority]]\nkey = "%s"\nname = "r%s"\n\n' "$(node_key $i)" $i; done
  printf '[[genesis]]\naccount = "%s"\nbalance = 1000\n' "$ACCT0"
} >/tmp/committee.toml
step "keys and wallets: committee r1..r4, r0's wallet holds 1000"

# --- the routers: nothing but meshpay sets up the mesh -------------------------------
i=0
while [ $i -lt $N ]; do
  config $i >/tmp/r$i.toml
  i=$((i + 1))
done
cat /tmp/r0.toml

# First a start that cannot join: 5180 MHz may not be initiated in the world
# regulatory domain the guest runs in. meshpay must say so, exit, and
# delete the interface it created (the next start would take it over).
sed 's/^frequency = 2412$/frequency = 5180/' /tmp/r0.toml >/tmp/bad.toml
if out=$(in_ns n0 timeout 60 $MP --state-dir /tmp/bad run --config /tmp/bad.toml 2>&1); then
  fail "a managed start on 5180 MHz did not fail: $out"
fi
echo "$out" | tail -n 2
echo "$out" | grep -q 'mesh: cannot join mesh "meshpay-vm".*mesh.frequency 5180 MHz' || fail "unclear error for a join the radio refuses: $out"
in_ns n0 "$IP" link show mesh0 >/dev/null 2>&1 && fail "a failed managed start left mesh0 behind"
step "a start that cannot join fails clearly and leaves no interface behind"
# One after another: the routers already running block a newcomer's peer
# link at its first beacon, so links between non-neighbours never carry
# traffic. (Started all at once, a router's first UDP exchange with a
# non-neighbour can go over the direct link in the moment before it is
# blocked; the engine's HELLO is sent once per link and not retried, so if
# it is lost there the two never become bundle neighbours.)
T_START=$(uptime_s)
i=0
while [ $i -lt $N ]; do
  start $i
  wait_for 90 "r$i: control socket up" running $i
  in_ns n$i "$IP" link show mesh0 >/dev/null 2>&1 || fail "r$i: meshpay runs but created no mesh0"
  i=$((i + 1))
done
step "6 routers up, each created mesh0 ($(secs_since "$T_START") s)"

# --- 1. ESTAB with the line neighbours, iw agrees ------------------------------------
i=0
while [ $i -lt $N ]; do
  wait_for 90 "r$i: ESTAB with exactly $(neighbours $i)(others BLOCKED)" links_ok $i
  i=$((i + 1))
done
step "peer links: a line r0-r1-r2-r3-r4-r5, ESTAB with neighbours, others BLOCKED ($(secs_since "$T_START") s)"
i=0
while [ $i -lt $N ]; do
  wait_for 20 "r$i: meshpay mesh status and iw station dump disagree" agrees_with_iw $i station
  i=$((i + 1))
done
rows $MID | grep '^station'
in_ns n$MID "$IW" dev mesh0 station dump | grep -E '^Station|mesh plink|airtime'
step "stations agree with iw on every router"

# --- 2. UDP over the mesh, HWMP multi-hop paths ----------------------------------------
for i in 0 $LAST; do wait_for 60 "r$i: UDP neighbours over the mesh (all 5)" sees_all "$i"; done
step "UDP: r0 and r5 each see 5 neighbours over mesh0 ($(secs_since "$T_START") s)"
for i in 0 $LAST; do
  wait_for 30 "r$i: HWMP paths to every router along the line" paths_ok "$i"
  wait_for 20 "r$i: meshpay mesh status and iw mpath dump disagree" agrees_with_iw "$i" path
done
wait_for 30 "no HWMP path with hop count >= 2 at r0 or r5" multi_hop 0 $LAST
mp 0 mesh status
in_ns n0 "$IW" dev mesh0 mpath dump
mp $LAST mesh status | sed -n '/^paths/,$p'
step "HWMP: paths from both ends along the line, metrics growing with distance, multi-hop (hop count >= 2) in meshpay mesh status = iw"

# --- 3. bundles across the line ---------------------------------------------------------
E5=$(endpoint $LAST)
case "$E5" in dtn://*/) ;; *) fail "meshpay id --json gave no endpoint: \"$E5\"" ;; esac
for j in 1 $LAST; do
  echo "hello r$j from r0" >/tmp/hello
  t=$(uptime_s)
  check "send r0 -> r$j" mp 0 send --to "$(endpoint $j)vm" /tmp/hello
  got=$(mp $j recv vm --timeout 90) || fail "r$j: the bundle from r0 did not arrive"
  [ "$got" = "hello r$j from r0" ] || fail "r$j received \"$got\""
  eval "T_BUNDLE_$j=$(secs_since "$t")"
done
step "bundles over UDP over 802.11s: r0 -> r1 (1 hop) ${T_BUNDLE_1} s, r0 -> r5 (5 hops) ${T_BUNDLE_5} s"

# --- 4. payments across the radio mesh ----------------------------------------------------
# has_receipt I AMOUNT SEQ: router I holds a verified receipt from r0's wallet.
has_receipt() { mp "$1" receipts | grep -q "^  $2 from $ACCT0 (sequence $3) verified\$"; }
# log_at FILE PATTERN [AFTER]: the time of day (s) in the first line of the
# router log FILE that matches PATTERN (and is not earlier than AFTER).
log_at() {
  grep "$2" "$1" | awk -v after="${3:-0}" '{
    split(substr($1, 12), t, ":"); s = t[1] * 3600 + t[2] * 60 + t[3]
    if (s >= after) { printf "%.3f\n", s; exit }
  }'
}
# pay J AMOUNT SEQ: r0 pays wallet J and waits for the receipt there. The
# time end to end is `pay`'s own (order submitted -> certified) plus, from
# the routers' logs, certified at r0 -> confirmation delivered at J's node.
pay() {
  t=$(uptime_s)
  out=$(mp 0 pay --to "$(cat /tmp/r"$1".wallet)" --amount "$2" --timeout 120 2>&1) || {
    echo "$out"
    fail "payment r0 -> r$1 not certified"
  }
  echo "$out" | grep -v '^certificate'
  echo "$out" | grep -q "^certified: $2 to " || fail "pay printed no certificate summary"
  hash=$(echo "$out" | sed -n 's/^order *\([0-9a-f]*\) (sequence .*/\1/p')
  cert=$(echo "$out" | sed -n 's/^signed by .* in \([0-9.]*\) s$/\1/p')
  wait_for 120 "r$1: no verified receipt for the payment from r0" has_receipt "$1" "$2" "$3"
  listed=$(secs_since "$t")
  at_cert=$(log_at /tmp/r0.log "order $hash certified")
  [ -n "$at_cert" ] || fail "r0 logged no certification of order $hash"
  at_recv=$(log_at /tmp/r"$1".log "delivered to dtn://$(node_key "$1")/quorum" "$at_cert")
  [ -n "$at_recv" ] || fail "r$1 logged no confirmation delivered after $at_cert"
  eval "T_PAY_$1=\"$(awk -v c="$cert" -v a="$at_cert" -v b="$at_recv" -v l="$listed" -v j="$1" 'BEGIN {
    d = b - a; if (d < 0) d += 86400
    printf "%.2f s end to end: certified in %.2f s, confirmation at r%s %.2f s later (listed by meshpay receipts after %.1f s)", c + d, c, j, d, l
  }')\""
}
# The first payment also pays for the first run of the signature code under
# TCG: it warms up, the next two are timed.
pay 1 10 0
step "payment r0 -> r1 (warm-up): ${T_PAY_1}"
pay $LAST 10 1
pay 1 10 2
step "payment r0 -> r1 (one hop): ${T_PAY_1}"
step "payment r0 -> r5 (longest path, 5 hops): ${T_PAY_5}"
step "guest memory: $(free -m | awk '/^Mem:/ { print $3 }') MiB used with 6 routers"

# --- 5. kill -9 the middle router while it carries bundles ---------------------------------
rx=$(counter $MID bundles_received)
(
  k=1
  while [ $k -le $STREAM ]; do
    echo "stream $k" >/tmp/stream$k
    mp 0 send --to "${E5}stream" /tmp/stream$k || echo "send stream $k failed"
    k=$((k + 1))
  done
) >/tmp/stream.out 2>&1 &
SENDER=$!
wait_for 60 "r$MID received no copies of the stream" received_more $MID "$rx" 3
kill -9 "$(pid_of $MID)"
wait_for 10 "r$MID survived kill -9" gone "$(pid_of $MID)"
wait "$(pid_of $MID)"
step "r$MID killed -9 while the stream r0 -> r5 ran through it"
# kill -9 runs no shutdown: the kernel keeps the interface, joined, and
# would go on forwarding. A router that dies takes its radio with it: down
# leaves the mesh, so the line is cut until meshpay comes back.
in_ns n$MID "$IP" link show mesh0 >/dev/null 2>&1 || fail "kill -9 removed mesh0 (nothing should have)"
in_ns n$MID "$IW" dev mesh0 station dump | grep -q 'mesh plink:.*ESTAB' || fail "the leftover mesh0 lost its links at once"
check "take r$MID's radio down" in_ns n$MID "$IP" link set mesh0 down
T_KILL=$(uptime_s)
wait_for 30 "r1 still ESTAB with r$MID" no_estab 1 "$(mac $MID)"
wait_for 30 "r3 still ESTAB with r$MID" no_estab 3 "$(mac $MID)"
wait "$SENDER"
cat /tmp/stream.out
grep -q failed /tmp/stream.out && fail "r0 refused a bundle of the stream"
step "r$MID down: r1 and r3 lost their links to it"
k=1
while [ $k -le $OUTAGE ]; do
  echo "outage $k" >/tmp/outage$k
  check "send outage $k" mp 0 send --to "${E5}outage" /tmp/outage$k
  k=$((k + 1))
done
# No quorum is reachable from r0 now: r2 is gone and r3, r4 are behind it.
T_PAY_OUT=$(uptime_s)
mp 0 pay --to "$W5" --amount 5 --timeout 300 >/tmp/pay-outage 2>&1 &
PAY_OUT=$!
if got=$(mp $LAST recv outage --count 1 --timeout 4 2>/dev/null); then
  fail "r5 received \"$got\" while the line was cut at r$MID"
fi
gone $PAY_OUT && fail "a payment was certified while no quorum was reachable: $(cat /tmp/pay-outage)"
step "line cut: nothing sent meanwhile reached r5, the payment waits; restarting r$MID"
T_RESTART=$(uptime_s)
start $MID
wait_for 60 "r$MID: restarted meshpay not up" running $MID
grep -q "already exists (an earlier run?); reusing it" /tmp/r$MID.log || fail "r$MID did not take over its leftover mesh0"
wait_for 60 "r$MID: ESTAB again with r1 and r3" links_ok $MID
step "r$MID rejoined: ESTAB with r1 and r3 $(secs_since "$T_RESTART") s after the restart"
# expect SERVICE COUNT: r5 receives exactly "SERVICE 1".."SERVICE COUNT".
expect() {
  got=$(mp $LAST recv "$1" --count "$2" --timeout 120) || fail "r5: $1 bundles missing after the restart: $got"
  want=$(
    k=1
    while [ $k -le "$2" ]; do
      echo "$1 $k"
      k=$((k + 1))
    done
  )
  [ "$(echo "$got" | sort)" = "$(echo "$want" | sort)" ] || fail "r5: $1 bundles are not exactly \"$want\": \"$got\""
}
expect stream $STREAM
expect outage $OUTAGE
step "all $STREAM + $OUTAGE bundles at r5, $(secs_since "$T_RESTART") s after the restart ($(secs_since "$T_KILL") s after the cut)"
wait $PAY_OUT || {
  cat /tmp/pay-outage
  fail "the payment made while r$MID was down was never certified"
}
cat /tmp/pay-outage
wait_for 120 "r5: no receipt for the payment made during the outage" has_receipt $LAST 5 3
step "payment made during the outage: certified and received $(secs_since "$T_PAY_OUT") s after it was made ($(secs_since "$T_RESTART") s after the restart)"
for svc in stream outage; do
  if got=$(mp $LAST recv $svc --count 1 --timeout 2 2>/dev/null); then fail "r5: $svc delivered twice: \"$got\""; fi
done
step "each bundle delivered exactly once"
mp 0 balance
mp 0 balance | grep -q "^965 " || fail "r0's balance is not 1000 - 10 - 10 - 10 - 5"
mp $LAST balance | grep -q "^15 " || fail "r5's balance is not 10 + 5"
mp 1 balance | grep -q "^20 " || fail "r1's balance is not 10 + 10"
step "balances: r0 965, r1 20, r5 15"

# --- kill -9 alone, as a respawning supervisor (procd) meets it: the kernel
# kept the interface joined, and the new meshpay takes it over as it is.
p=$(pid_of 4)
kill -9 "$p"
wait_for 10 "r4 survived kill -9" gone "$p"
wait "$p"
start 4
wait_for 60 "r4: restarted meshpay not up" running 4
grep -q "mesh0 is already joined; keeping it" /tmp/r4.log || fail "r4 did not keep its still joined mesh0"
wait_for 60 "r4: ESTAB with r3 and r5 after its restart" links_ok 4
step "r4 killed -9 (radio left alone) and restarted: kept mesh0 joined, ESTAB with r3 and r5"

# --- 6. SIGTERM: a managed router leaves the mesh and deletes its interface -------------------
i=$LAST
while [ $i -ge 0 ]; do
  p=$(pid_of $i)
  kill -TERM "$p"
  wait_for 30 "r$i did not exit on SIGTERM" gone "$p"
  wait "$p"
  rc=$?
  [ $rc -eq 0 ] || fail "r$i exited with status $rc on SIGTERM"
  in_ns n$i "$IP" link show mesh0 >/dev/null 2>&1 && fail "r$i: mesh0 still exists after SIGTERM"
  in_ns n$i "$IW" dev | grep -q mesh0 && fail "r$i: iw still lists mesh0"
  grep -q "left the mesh and deleted mesh0" /tmp/r$i.log || fail "r$i did not log leaving the mesh"
  if [ $i -eq $LAST ]; then
    wait_for 30 "r4 still ESTAB with r5 after r5 left" no_estab 4 "$(mac $LAST)"
  fi
  i=$((i - 1))
done
step "SIGTERM: every router left the mesh and deleted mesh0 (ip and iw agree)"
free
step "total $(secs_since "$T_START") s from the first meshpay start"
ok
