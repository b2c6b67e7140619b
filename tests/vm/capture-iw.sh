#!/bin/busybox sh
# Guest init that records what iw 5.19 sends to and receives from nl80211
# (strace hex dumps of fd 3, iw's netlink socket), for the golden-byte tests
# of meshpay-mesh. Not part of the test suite; rerun it to refresh goldens:
#
#   tests/vm/build-guest.sh && tests/vm/run-guest.sh tests/vm/capture-iw.sh /usr/bin/strace
#   tests/vm/extract-goldens.sh target/vm/capture-iw.log router/mesh/tests/golden
#
# Each capture is framed by `CAPTURE <name>` / `END <name>` lines; iw's own
# output is in the `IWOUT` lines.
. /guest-lib.sh
load_modules 2
echo "KERNEL $(uname -r) IW $($IW --version)"
ST=/extra/strace
# cap NAME NS COMMAND...: runs COMMAND under strace in network namespace NS.
cap() {
  name=$1
  ns=$2
  shift 2
  echo "CAPTURE $name"
  $IP netns exec "$ns" $ST -qq -e trace=sendmsg,recvmsg -e write=3 -e read=3 -o /tmp/st "$@" >/tmp/out 2>&1
  echo "EXIT $?"
  cat /tmp/st
  sed 's/^/IWOUT /' /tmp/out
  echo "END $name"
}
for i in 0 1; do
  $IP netns add n$i
  $IW phy phy$i set netns name n$i
  in_ns n$i $IW dev wlan$i del
  in_ns n$i $IP link set lo up
done
cap new_interface n0 $IW phy phy0 interface add mesh0 type mp
cap new_interface_addr n0 $IW phy phy0 interface add mesh9 type mp addr 42:00:00:00:09:00
in_ns n0 $IW dev mesh9 del
in_ns n0 $IP link set mesh0 up
in_ns n1 $IW phy phy1 interface add mesh1 type mp
in_ns n1 $IP link set mesh1 up
cap join_default n0 $IW dev mesh0 mesh join meshnet freq 2412
cap leave n0 $IW dev mesh0 mesh leave
cap join_full n0 $IW dev mesh0 mesh join meshnet freq 2412 HT40+ mcast-rate 6 beacon-interval 200 dtim-period 2 mesh_ttl=7 mesh_hwmp_rootmode=4 mesh_rssi_threshold=-80 mesh_path_refresh_time=1000
in_ns n1 $IW dev mesh1 mesh join meshnet freq 2412 HT40+
in_ns n0 $IP addr add 10.99.0.1/24 dev mesh0
in_ns n1 $IP addr add 10.99.0.2/24 dev mesh1
cap set_mesh_param n0 $IW dev mesh0 set mesh_param mesh_fwding=0 mesh_max_peer_links=16
# iw prints one parameter per call; each call's reply holds them all.
for p in mesh_ttl mesh_max_peer_links mesh_path_refresh_time mesh_rssi_threshold; do
  cap get_mesh_param_$p n0 $IW dev mesh0 get mesh_param $p
done
sleep 4
in_ns n0 ping -c 2 -W 2 10.99.0.2 >/dev/null
cap station_dump n0 $IW dev mesh0 station dump
cap mpath_dump n0 $IW dev mesh0 mpath dump
M1=$(in_ns n1 cat /sys/class/net/mesh1/address)
cap plink_block n0 $IW dev mesh0 station set "$M1" plink_action block
cap plink_open n0 $IW dev mesh0 station set "$M1" plink_action open
cap del_interface n0 $IW dev mesh0 del
ok
