#!/bin/sh
# Runtime test for OpenWrt's CI (see ../meshpay/test.sh): the vendor plugin
# loads in the installed meshpay and is the plugin it claims to be.
# TEST_ROOT, unset on the target, prefixes every path (tests/openwrt/).

root="${TEST_ROOT:-}"
lib="$root/usr/lib/meshpay/plugins/libmeshpay_example_c_unixdgram.so"

case "$1" in
meshpay-plugin-example)
	out="$("$root/usr/bin/meshpay" plugins inspect "$lib")" || {
		echo "test.sh: meshpay refuses $lib" >&2
		exit 1
	}
	printf '%s\n' "$out" | grep -qx org.meshpay.example.c-unixdgram || {
		echo "test.sh: $lib is not org.meshpay.example.c-unixdgram: $out" >&2
		exit 1
	}
	echo "$1: org.meshpay.example.c-unixdgram"
	;;
*)
	echo "test.sh: no test for package '$1'" >&2
	exit 1
	;;
esac
