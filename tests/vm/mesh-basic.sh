#!/bin/busybox sh
# Guest init: meshctl (meshpay-mesh) against the real kernel's nl80211.
#
# Three mac80211_hwsim radios, each phy in its own network namespace; in each
# namespace meshctl alone creates the mesh interface and joins (iw is only
# used to cross-check). Checks: peer links reach ESTAB, `iw station dump`
# agrees with `meshctl stations --json`, mesh parameters sent in JOIN and
# SET_MESH_CONFIG read back, kernel errors map to clear messages, blocking
# the 0<->2 links forces 2-hop HWMP paths, events arrive on the mlme group,
# and leave + delete remove the interfaces.
#
# Run: tests/vm/build-guest.sh && tests/vm/run-guest.sh tests/vm/mesh-basic.sh
. /guest-lib.sh

N=3
load_modules $N
step "modules loaded"

# --- namespaces: phyN -> nN, the default wlanN deleted by meshctl ---------------
i=0
while [ $i -lt $N ]; do
  $IP netns add n$i
  check "move phy$i to n$i" $IW phy phy$i set netns name n$i
  in_ns n$i $IP link set lo up
  check "delete wlan$i" in_ns n$i $MESHCTL delete wlan$i
  i=$((i + 1))
done
check "phys lists mesh point" in_ns n0 $MESHCTL phys
in_ns n0 $MESHCTL phys --json | grep -q '"iftypes"' || fail "phys --json"

# --- create, address, events ---------------------------------------------------
i=0
while [ $i -lt $N ]; do
  if [ $i -eq 2 ]; then
    # A MAC at creation (NEW_INTERFACE), then another one (rtnetlink) while down.
    check "create mesh2 with a MAC" in_ns n2 $MESHCTL create phy2 mesh2 --mac 42:00:00:00:02:01 --no-up
    [ "$(in_ns n2 cat /sys/class/net/mesh2/address)" = 42:00:00:00:02:01 ] || fail "MAC at creation not set"
    check "set MAC" in_ns n2 $MESHCTL mac mesh2 42:00:00:00:02:02
    check "up mesh2" in_ns n2 $MESHCTL up mesh2
    [ "$(in_ns n2 cat /sys/class/net/mesh2/address)" = 42:00:00:00:02:02 ] || fail "MAC not changed"
  else
    check "create mesh$i" in_ns n$i $MESHCTL create phy$i mesh$i
  fi
  in_ns n$i $IP addr add 10.99.0.$((i + 1))/24 dev mesh$i
  i=$((i + 1))
done
M0=$(in_ns n0 cat /sys/class/net/mesh0/address)
M1=$(in_ns n1 cat /sys/class/net/mesh1/address)
M2=$(in_ns n2 cat /sys/class/net/mesh2/address)
step "created mesh0=$M0 mesh1=$M1 mesh2=$M2"
in_ns n0 $MESHCTL interfaces --json | grep -q '"iftype": 7' || fail "interfaces does not show a mesh point"

# An error the kernel reports: joining a mesh on a down interface.
in_ns n1 $MESHCTL down mesh1
if out=$(in_ns n1 $MESHCTL join mesh1 meshnet 2412 2>&1); then fail "join on a down interface succeeded"; fi
echo "$out"
echo "$out" | grep -q "interface is down\|ENETDOWN" || fail "unclear error for join on a down interface: $out"
in_ns n1 $MESHCTL up mesh1

in_ns n0 $MESHCTL events mesh0 --json --timeout 60 >/tmp/events0 2>&1 &
EVPID=$!

# --- join (node 0 and 2 block each other as soon as they hear each other) -------
in_ns n0 $MESHCTL join mesh0 meshnet 2412 --param mesh_ttl=7 --block "$M2" >/tmp/join0 2>&1 &
J0=$!
check "join mesh1" in_ns n1 $MESHCTL join mesh1 meshnet 2412 --param mesh_ttl=7 --param mesh_rssi_threshold=-90
check "join mesh2" in_ns n2 $MESHCTL join mesh2 meshnet 2412 --param mesh_ttl=7 --block "$M0"
wait $J0 || {
  cat /tmp/join0
  fail "join mesh0"
}
cat /tmp/join0
step "joined"

if out=$(in_ns n1 $MESHCTL join mesh1 meshnet 2412 2>&1); then fail "second join succeeded"; fi
echo "$out"
echo "$out" | grep -q "already joined" || fail "unclear error for a second join: $out"

# --- peer links ESTAB (deadline-bounded) ----------------------------------------
check "n1 ESTAB with 0 and 2" in_ns n1 $MESHCTL wait-estab mesh1 2 --timeout 30
check "n0 ESTAB with 1" in_ns n0 $MESHCTL wait-estab mesh0 1 --timeout 30
check "n2 ESTAB with 1" in_ns n2 $MESHCTL wait-estab mesh2 1 --timeout 30
step "peer links ESTAB"

# --- meshctl stations vs iw station dump -----------------------------------------
# "mac state" lines from meshctl's JSON and from iw, sorted.
from_meshctl() {
  in_ns "$1" $MESHCTL stations "$2" --json | tr -d ' ",' |
    awk -F: '/^mac:/ {sub(/^mac:/, ""); mac = $0} /^plink_state:/ {print mac, $2}' | sort
}
from_iw() {
  in_ns "$1" $IW dev "$2" station dump |
    awk '/^Station/ {mac = $2} /mesh plink:/ {print mac, $3}' | sort
}
i=0
while [ $i -lt $N ]; do
  a=$(from_meshctl n$i mesh$i)
  b=$(from_iw n$i mesh$i)
  echo "n$i meshctl: $(echo $a)"
  echo "n$i iw:      $(echo $b)"
  [ -n "$a" ] || fail "meshctl shows no stations on n$i"
  [ "$a" = "$b" ] || fail "meshctl and iw disagree on n$i"
  i=$((i + 1))
done
from_meshctl n0 mesh0 | grep -q "^$M2 BLOCKED$" || fail "n0 does not show $M2 as BLOCKED"
from_meshctl n0 mesh0 | grep -q "^$M1 ESTAB$" || fail "n0 is not ESTAB with $M1"
# The u32 airtime metric and the signed signal, as iw prints them.
in_ns n1 $MESHCTL stations mesh1 --json >/tmp/st1
grep -q '"airtime_metric": [1-9]' /tmp/st1 || fail "no airtime metric"
grep -q '"signal_dbm": -' /tmp/st1 || fail "signal not negative dBm"
mc_metric=$(grep -o '"airtime_metric": [0-9]*' /tmp/st1 | head -1 | grep -o '[0-9]*$')
iw_metric=$(in_ns n1 $IW dev mesh1 station dump | grep -o 'airtime link metric: [0-9]*' | head -1 | grep -o '[0-9]*$')
echo "airtime metric: meshctl $mc_metric iw $iw_metric"
[ -n "$mc_metric" ] && [ -n "$iw_metric" ] || fail "airtime metric missing"
step "stations agree with iw"

# --- mesh parameters: from JOIN, then SET_MESH_CONFIG -----------------------------
in_ns n1 $MESHCTL config mesh1 | grep -q "^mesh_ttl = 7 " || fail "mesh_ttl from JOIN not applied"
in_ns n1 $MESHCTL config mesh1 | grep -q "^mesh_rssi_threshold = -90 " || fail "rssi threshold from JOIN"
check "set mesh params" in_ns n1 $MESHCTL set mesh1 mesh_hwmp_rootmode=2 mesh_max_peer_links=20
in_ns n1 $MESHCTL config mesh1 --json | grep -q '"mesh_hwmp_rootmode": 2' || fail "rootmode not set"
in_ns n1 $IW dev mesh1 get mesh_param mesh_max_peer_links | grep -q '^20' || fail "iw disagrees on max peer links"
step "mesh params read back"

# --- HWMP: 0 -> 2 must go through 1 (hop count 2) ------------------------------------
in_ns n0 ping -c 3 -W 2 10.99.0.3 || fail "no ping 10.99.0.1 -> 10.99.0.3"
deadline=$(($(cut -d. -f1 /proc/uptime) + 20))
while :; do
  in_ns n0 $MESHCTL mpaths mesh0 --json >/tmp/mp0
  # The entry for M2: its block of lines up to the next "}".
  entry=$(awk -v d="$M2" '/"dst"/ {on = index($0, d) > 0} on {print} /}/ {on = 0}' /tmp/mp0)
  if echo "$entry" | grep -q '"hop_count": 2' && echo "$entry" | grep -q "\"next_hop\": \"$M1\""; then
    break
  fi
  [ "$(cut -d. -f1 /proc/uptime)" -lt "$deadline" ] || {
    cat /tmp/mp0
    fail "no 2-hop path 0 -> 2 via 1"
  }
  in_ns n0 ping -c 1 -W 1 10.99.0.3 >/dev/null
done
echo "$entry"
in_ns n0 $MESHCTL mpaths mesh0
in_ns n0 $IW dev mesh0 mpath dump
step "2-hop path 0 -> 1 -> 2"

# --- unblock: the direct link comes back ----------------------------------------------
check "unblock" in_ns n0 $MESHCTL unblock mesh0 "$M2"
from_meshctl n0 mesh0 | grep -q "^$M2 BLOCKED$" && fail "still BLOCKED after unblock"

# --- events ------------------------------------------------------------------------
kill $EVPID 2>/dev/null
wait $EVPID 2>/dev/null
cat /tmp/events0
grep -q '"event":"new_station"' /tmp/events0 || fail "no new_station event on mesh0"

# --- leave and delete ------------------------------------------------------------------
i=0
while [ $i -lt $N ]; do
  check "leave mesh$i" in_ns n$i $MESHCTL leave mesh$i
  check "delete mesh$i" in_ns n$i $MESHCTL delete mesh$i
  in_ns n$i $IP link show mesh$i >/dev/null 2>&1 && fail "mesh$i still exists"
  i=$((i + 1))
done
if out=$(in_ns n0 $MESHCTL stations mesh0 2>&1); then fail "stations on a deleted interface"; fi
echo "$out" | grep -q 'no such interface' || fail "unclear error: $out"
step "left and deleted"
ok
