#!/bin/sh
# Runtime test for OpenWrt's CI: after `opkg install` of each package built
# from this Makefile, openwrt/packages' .github/workflows/entrypoint.sh runs
# `sh test.sh <package name> <version without release>` on the target (an
# OpenWrt rootfs under qemu-user: no radios, no procd). So it checks what runs
# there without a radio: the binary, and the shipped /etc/config/meshpay
# turned into the router's TOML by the init script and accepted by
# `meshpay config check` (which loads every plugin the TOML names).
#
# TEST_ROOT, unset on the target, prefixes every path: tests/openwrt/ runs
# this script against a staging root with stand-ins for OpenWrt's shell
# libraries.

root="${TEST_ROOT:-}"
meshpay="$root/usr/bin/meshpay"
plugins="$root/usr/lib/meshpay/plugins"

fail() {
	echo "test.sh: $1" >&2
	exit 1
}

# A plugin package: its library loads, and is the plugin it claims to be.
plugin() { # <library> <plugin id>
	out="$("$meshpay" plugins inspect "$plugins/$1")" || fail "meshpay refuses $plugins/$1"
	printf '%s\n' "$out" | grep -qx "$2" || fail "$plugins/$1 is not $2: $out"
	echo "$1: $2"
}

case "$1" in
meshpay)
	version="$("$meshpay" --version)" || fail "meshpay --version failed"
	[ "$version" = "meshpay $2" ] || fail "meshpay --version says '$version', expected 'meshpay $2'"
	echo "$version"
	"$meshpay" plugins list >/dev/null || fail "meshpay plugins list failed"
	# `check` generates the TOML from /etc/config/meshpay as shipped (the
	# service is disabled there, but the configuration is complete) and runs
	# `meshpay config check` on it.
	sh "$root/etc/rc.common" "$root/etc/init.d/meshpay" check ||
		fail "the shipped /etc/config/meshpay does not make a configuration meshpay accepts"
	;;
meshpay-plugin-quorum)
	plugin libmeshpay_plugin_quorum.so org.meshpay.consensus.quorum
	;;
meshpay-plugin-prophet)
	plugin libmeshpay_plugin_prophet.so org.meshpay.routing.prophet
	;;
meshpay-plugin-spray)
	plugin libmeshpay_plugin_spray.so org.meshpay.routing.spray-and-wait
	;;
*)
	fail "no test for package '$1'"
	;;
esac
