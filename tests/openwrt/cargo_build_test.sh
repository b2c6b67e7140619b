#!/bin/sh
# Slow: the package's Build/Compile with the real cargo, through the
# stand-in SDK, on this repository (USE_SOURCE_DIR, as for local
# development), for the host's Rust target and with CONFIG_DEBUG (the dev
# profile: a release build with fat LTO takes too long here). Then the
# install recipes take cargo's output: the binary runs and every plugin
# library loads. This proves the cargo invocations (cargo install --locked
# of router/daemon inside the workspace, cargo build -p of the cdylibs) and
# the paths the install recipes read. Builds into
# target/<host triple>/debug/ of this repository.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

SDK="$HERE/fake-sdk"
PKG="$REPO/openwrt/meshpay"
W="$WORK/sdk"
rm -rf "$W"
mkdir -p "$W"
HOST="$(rustc -vV | sed -n 's/^host: //p')"
: "${CARGO_HOME:=$HOME/.cargo}"

sdk() {
	make -s --no-print-directory -C "$PKG" TOPDIR="$SDK" SDK_WORK="$W" USE_SOURCE_DIR="$REPO" \
		PKG_INSTALL_DIR="$W/ipkg-install" RUSTC_TARGET_ARCH="$HOST" CARGO_HOME="$CARGO_HOME" \
		CONFIG_DEBUG=y CONFIG_PACKAGE_meshpay-plugin-quorum=y CONFIG_PACKAGE_meshpay-plugin-prophet=y \
		CONFIG_PACKAGE_meshpay-plugin-spray=y "$@"
}

test_build() {
	had_marker=0
	[ -e "$REPO/.source_dir" ] && had_marker=1
	sdk sdk-prepare >"$W/prepare.out" 2>&1 || fail "sdk-prepare failed:" "$(cat "$W/prepare.out")"
	# package.mk marks a USE_SOURCE_DIR tree with .source_dir; not this one.
	[ "$had_marker" = 1 ] || rm -f "$REPO/.source_dir"
	sdk sdk-compile >"$W/compile.out" 2>&1 || {
		fail "Build/Compile failed:" "$(tail -n 40 "$W/compile.out")"
		return
	}
	expect_eq "meshpay --version" "meshpay 0.1.0" "$("$W/ipkg-install/bin/meshpay" --version)"
	for pkg in meshpay meshpay-plugin-quorum meshpay-plugin-prophet meshpay-plugin-spray; do
		sdk "sdk-install-$pkg" >"$W/install.out" 2>&1 || fail "sdk-install-$pkg failed:" "$(cat "$W/install.out")"
	done
	"$W/root/meshpay/usr/bin/meshpay" plugins list >/dev/null || fail "the installed meshpay does not run"
	for p in quorum:org.meshpay.consensus.quorum prophet:org.meshpay.routing.prophet \
		spray:org.meshpay.routing.spray-and-wait; do
		lib="$W/root/meshpay-plugin-${p%%:*}/usr/lib/meshpay/plugins/libmeshpay_plugin_${p%%:*}.so"
		"$MESHPAY_BIN" plugins inspect "$lib" >"$W/inspect.out" 2>&1 || fail "meshpay refuses $lib: $(cat "$W/inspect.out")"
		expect_eq "plugin in $lib" "${p#*:}" "$(head -n 1 "$W/inspect.out")"
	done
}

run_test "Build/Compile with cargo, then the install recipes" test_build
finish
