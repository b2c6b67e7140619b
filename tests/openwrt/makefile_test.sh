#!/bin/sh
# The package Makefiles (openwrt/meshpay, openwrt/meshpay-plugin-example),
# evaluated by GNU make against the stand-in SDK in fake-sdk/: their fields,
# the cargo commands of Build/Compile (cargo is a recording stand-in,
# bin/cargo), the install recipes into staging roots with stand-ins for the
# build outputs (the meshpay binary and plugin libraries cargo built for the
# host), Build/InstallDev, the example plugin built for real against the
# staged header, and test.sh run against the installed files.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

SDK="$HERE/fake-sdk"
PKG="$REPO/openwrt/meshpay"
EXAMPLE="$REPO/openwrt/meshpay-plugin-example"
W="$WORK/sdk"
TRIPLE=x86_64-unknown-linux-musl
BUILD="$W/build_dir/target-x86_64_musl/meshpay-0.1.0"
STAGING="$W/staging_dir/target-x86_64_musl"
ROOTS="$W/root"
PLUGINS="quorum:org.meshpay.consensus.quorum prophet:org.meshpay.routing.prophet spray:org.meshpay.routing.spray-and-wait"
command -v make >/dev/null 2>&1 || {
	echo "GNU make is missing: run tests/setup-system.sh" >&2
	exit 1
}
rm -rf "$W"
mkdir -p "$W"

sdk_make() { # <package dir> <make arguments>
	dir="$1"
	shift
	make -s --no-print-directory -C "$dir" TOPDIR="$SDK" SDK_WORK="$W" "$@"
}

WORKSPACE_VERSION="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml")"

test_fields() {
	sdk_make "$PKG" sdk-info >"$W/meshpay.info" 2>"$W/make.err" || fail "make sdk-info failed: $(cat "$W/make.err")"
	expect_eq "PKG_VERSION is the workspace version" "PKG_VERSION: $WORKSPACE_VERSION" \
		"$(grep '^PKG_VERSION: ' "$W/meshpay.info")"
	expect_lines "meshpay's fields" "$HERE/makefile/meshpay.lines" "$W/meshpay.info"
	# Every package has a title, a description, and an install recipe.
	for pkg in meshpay meshpay-plugin-quorum meshpay-plugin-prophet meshpay-plugin-spray; do
		sed -n "/^Package: $pkg\$/,/^\$/p" "$W/meshpay.info" >"$W/package-$pkg.info"
		grep -q '^Title: .' "$W/package-$pkg.info" || fail "$pkg has no title"
		grep -q '^Description: ..........' "$W/package-$pkg.info" || fail "$pkg has no description"
		grep -qx 'Install: yes' "$W/package-$pkg.info" || fail "$pkg has no install recipe"
	done
	# The license is the workspace's, and the files it names are in the
	# source (the repository root is PKG_BUILD_DIR), for both packages.
	workspace_license="$(sed -n '/^\[workspace.package\]/,/^\[/s/^license = "\(.*\)"/\1/p' "$REPO/Cargo.toml")"
	sdk_make "$EXAMPLE" sdk-info >"$W/example-fields.info" 2>"$W/make.err" ||
		fail "make sdk-info (example) failed: $(cat "$W/make.err")"
	for info in "$W/meshpay.info" "$W/example-fields.info"; do
		expect_eq "PKG_LICENSE is the workspace's license (${info##*/})" "PKG_LICENSE: $workspace_license" \
			"$(grep '^PKG_LICENSE: ' "$info")"
		files="$(sed -n 's/^PKG_LICENSE_FILES: //p' "$info")"
		[ -n "$files" ] || fail "PKG_LICENSE_FILES is empty (${info##*/})"
		for f in $files; do
			[ -s "$REPO/$f" ] || fail "PKG_LICENSE_FILES names $f, which is not in the repository"
		done
	done
	if ! grep -q 'Apache License' "$REPO/LICENSE-APACHE" || ! grep -q 'Version 2.0, January 2004' "$REPO/LICENSE-APACHE"; then
		fail "LICENSE-APACHE is not the Apache License 2.0"
	fi
	grep -q 'Permission is hereby granted, free of charge' "$REPO/LICENSE-MIT" ||
		fail "LICENSE-MIT is not the MIT license"
	[ -z "$(git -C "$REPO" ls-files Cargo.lock 2>/dev/null)" ] && [ -d "$REPO/.git" ] &&
		fail "Cargo.lock is not committed: --locked (RUST_PKG_LOCKED) needs it"
	[ -f "$REPO/Cargo.lock" ] || fail "Cargo.lock is missing"
}

# Build/Compile with the recording cargo: the daemon through cargo install,
# then the selected plugins' cdylibs through cargo build.
compile() { # <log> <make arguments>
	log="$1"
	shift
	rm -f "$log"
	PATH="$HERE/bin:$PATH" CARGO_LOG="$log" sdk_make "$PKG" sdk-compile "$@" 2>"$W/make.err" ||
		fail "make sdk-compile $* failed: $(cat "$W/make.err")"
}

test_compile() {
	subst "$HERE/makefile/compile.cargo" "$W/compile.cargo" BUILD="$BUILD"
	compile "$W/cargo.log" CONFIG_PACKAGE_meshpay-plugin-quorum=y CONFIG_PACKAGE_meshpay-plugin-spray=m
	expect_file "cargo runs (quorum and spray selected)" "$W/compile.cargo" "$W/cargo.log"
	# The newer rust-values.mk makes non-debug builds abort on panic; the
	# package undoes it, so the commands and environment stay the same.
	compile "$W/cargo-abort.log" SDK_RUST_PANIC=abort CONFIG_PACKAGE_meshpay-plugin-quorum=y \
		CONFIG_PACKAGE_meshpay-plugin-spray=y
	expect_file "cargo runs under panic=abort defaults" "$W/compile.cargo" "$W/cargo-abort.log"
	# No plugin selected: cargo install only.
	compile "$W/cargo-none.log"
	sed -n '1,7p' "$W/compile.cargo" >"$W/compile-none.cargo"
	expect_file "cargo runs (no plugin selected)" "$W/compile-none.cargo" "$W/cargo-none.log"
	compile "$W/cargo-debug.log" CONFIG_DEBUG=y CONFIG_PACKAGE_meshpay-plugin-prophet=y
	grep -q '^cargo \[install\] \[-v\] \[--profile\] \[dev\]' "$W/cargo-debug.log" ||
		fail "CONFIG_DEBUG: cargo install does not use the dev profile"
	grep -q '^cargo \[build\] .*\[-p\] \[meshpay-plugin-routing-prophet\] \[-j1\]' "$W/cargo-debug.log" ||
		fail "CONFIG_DEBUG: the prophet plugin is not built"
}

# What Build/Compile leaves behind, for the install recipes: the daemon in
# ipkg-install/bin (cargo install), the cdylibs in target/<triple>/<profile>/.
stage_build_outputs() {
	mkdir -p "$BUILD/ipkg-install/bin" "$BUILD/target/$TRIPLE/release" "$BUILD/target/$TRIPLE/debug" \
		"$BUILD/abi"
	ln -f "$MESHPAY_BIN" "$BUILD/ipkg-install/bin/meshpay" 2>/dev/null ||
		cp "$MESHPAY_BIN" "$BUILD/ipkg-install/bin/meshpay"
	for p in $PLUGINS; do
		cp "$PLUGIN_DIR/libmeshpay_plugin_${p%%:*}.so" "$BUILD/target/$TRIPLE/release/"
		cp "$PLUGIN_DIR/libmeshpay_plugin_${p%%:*}.so" "$BUILD/target/$TRIPLE/debug/"
	done
	cp -R "$REPO/abi/include" "$BUILD/abi/"
}

install_pkg() { # <package dir> <package> [make arguments]
	dir="$1"
	pkg="$2"
	shift 2
	sdk_make "$dir" "sdk-install-$pkg" "$@" >"$W/install.out" 2>&1 ||
		fail "make sdk-install-$pkg failed:" "$(cat "$W/install.out")"
}

# The files (and directories) under a staging root, sorted.
tree() {
	(cd "$1" && find . -mindepth 1 | sort)
}

test_install_meshpay() {
	install_pkg "$PKG" meshpay
	r="$ROOTS/meshpay"
	tree "$r" >"$W/meshpay.tree"
	expect_file "files of meshpay" "$HERE/makefile/meshpay.tree" "$W/meshpay.tree"
	expect_mode "$r/usr/bin/meshpay" 755
	expect_mode "$r/etc/init.d/meshpay" 755
	expect_mode "$r/etc/config/meshpay" 600
	expect_mode "$r/etc/meshpay/committee.example.toml" 644
	expect_mode "$r/lib/upgrade/keep.d/meshpay" 644
	expect_mode "$r/usr/lib/meshpay/plugins" 755
	cmp -s "$r/etc/init.d/meshpay" "$PKG/files/meshpay.init" || fail "/etc/init.d/meshpay is not files/meshpay.init"
	cmp -s "$r/etc/config/meshpay" "$PKG/files/meshpay.config" || fail "/etc/config/meshpay is not files/meshpay.config"
	cmp -s "$r/usr/bin/meshpay" "$MESHPAY_BIN" || fail "/usr/bin/meshpay is not the binary cargo install built"
	# The UCI file is a conffile (kept on upgrade).
	grep -qx 'Conffiles: /etc/config/meshpay /etc/meshpay/committee.toml' "$W/meshpay.info" ||
		fail "conffiles: $(grep '^Conffiles' "$W/meshpay.info")"
}

test_install_plugins() {
	for p in $PLUGINS; do
		short="${p%%:*}"
		id="${p#*:}"
		lib="libmeshpay_plugin_$short.so"
		install_pkg "$PKG" "meshpay-plugin-$short"
		r="$ROOTS/meshpay-plugin-$short"
		expect_eq "files of meshpay-plugin-$short" "$(printf './usr\n./usr/lib\n./usr/lib/meshpay\n./usr/lib/meshpay/plugins\n./usr/lib/meshpay/plugins/%s' "$lib")" "$(tree "$r")"
		expect_mode "$r/usr/lib/meshpay/plugins/$lib" 644
		cmp -s "$r/usr/lib/meshpay/plugins/$lib" "$BUILD/target/$TRIPLE/release/$lib" ||
			fail "$lib is not cargo's release build"
		"$MESHPAY_BIN" plugins inspect "$r/usr/lib/meshpay/plugins/$lib" >"$W/inspect.out" 2>&1 ||
			fail "meshpay refuses $lib: $(cat "$W/inspect.out")"
		expect_eq "plugin in $lib" "$id" "$(head -n 1 "$W/inspect.out")"
	done
	# CONFIG_DEBUG builds with the dev profile: the libraries come from debug/.
	rm -f "$BUILD/target/$TRIPLE/release/libmeshpay_plugin_quorum.so"
	install_pkg "$PKG" meshpay-plugin-quorum CONFIG_DEBUG=y
	[ -f "$ROOTS/meshpay-plugin-quorum/usr/lib/meshpay/plugins/libmeshpay_plugin_quorum.so" ] ||
		fail "CONFIG_DEBUG: the plugin is not taken from target/$TRIPLE/debug"
	cp "$PLUGIN_DIR/libmeshpay_plugin_quorum.so" "$BUILD/target/$TRIPLE/release/"
}

test_installdev() {
	sdk_make "$PKG" sdk-installdev >"$W/installdev.out" 2>&1 || fail "make sdk-installdev failed: $(cat "$W/installdev.out")"
	for h in "$REPO"/abi/include/*.h; do
		staged="$STAGING/usr/include/meshpay/${h##*/}"
		expect_mode "$staged" 644
		cmp -s "$h" "$staged" || fail "$staged is not $h"
	done
	[ -f "$STAGING/usr/include/meshpay/meshpay_plugin.h" ] || fail "meshpay_plugin.h is not staged"
}

test_example() {
	sdk_make "$EXAMPLE" sdk-info >"$W/example.info" 2>&1 || fail "make sdk-info failed: $(cat "$W/example.info")"
	expect_lines "the example's fields" "$HERE/makefile/example.lines" "$W/example.info"
	# The source as the download would unpack it (only the plugin's directory).
	eb="$W/build_dir/target-x86_64_musl/meshpay-plugin-example-0.1.0"
	mkdir -p "$eb/plugins/examples"
	cp -R "$REPO/plugins/examples/c-unixdgram" "$eb/plugins/examples/"
	rm -f "$eb/plugins/examples/c-unixdgram/"*.so
	# Not silent (-s): the compiler's command line shows the include path.
	make --no-print-directory -C "$EXAMPLE" TOPDIR="$SDK" SDK_WORK="$W" sdk-compile >"$W/example.build" 2>&1 ||
		fail "building the example plugin failed:" "$(cat "$W/example.build")"
	grep -qF -- "-I$STAGING/usr/include/meshpay" "$W/example.build" ||
		fail "the example was not compiled against the staged header:" "$(cat "$W/example.build")"
	grep -q '^exports: meshpay_plugin_entry' "$W/example.build" || fail "check-exports did not run"
	install_pkg "$EXAMPLE" meshpay-plugin-example
	lib="$ROOTS/meshpay-plugin-example/usr/lib/meshpay/plugins/libmeshpay_example_c_unixdgram.so"
	expect_mode "$lib" 644
	"$MESHPAY_BIN" plugins inspect "$lib" >"$W/inspect.out" 2>&1 || fail "meshpay refuses the example: $(cat "$W/inspect.out")"
	expect_eq "plugin in the example package" org.meshpay.example.c-unixdgram "$(head -n 1 "$W/inspect.out")"
}

# test.sh, as OpenWrt's CI runs it after installing the packages: against a
# root holding what the packages installed, with the stand-ins for OpenWrt's
# shell libraries (the init script's `check` runs there).
run_test_sh() { # <test.sh> <package> <version>
	t="$W/target"
	(
		cd "$t" &&
			env TEST_ROOT="$t" RC_ROOT="$t" RC_HOOK="$t/hook.sh" UCI_CONFIG_DIR="$t/etc/config" \
				LOGGER_LOG="$t/logger.log" PROCD_LOG="$t/procd.log" TMPDIR="$t/tmp" \
				busybox ash "$1" "$2" "$3"
	) >"$W/test_sh.out" 2>&1
}

test_test_sh() {
	t="$W/target"
	rm -rf "$t"
	mkdir -p "$t/tmp" "$t/var/etc"
	for pkg in meshpay meshpay-plugin-quorum meshpay-plugin-prophet meshpay-plugin-spray meshpay-plugin-example; do
		[ -d "$ROOTS/$pkg" ] || {
			fail "$pkg was not installed"
			return
		}
		# Hard links where possible: the debug binary is large.
		cp -Rl "$ROOTS/$pkg/." "$t/" 2>/dev/null || cp -R "$ROOTS/$pkg/." "$t/"
	done
	cp -R "$HERE/fake-root/lib" "$HERE/fake-root/etc" "$t/"
	cat >"$t/hook.sh" <<HOOK
PROG='$t/usr/bin/meshpay'
CONFIGFILE='$t/var/etc/meshpay.toml'
logger() { '$HERE/fake-root/usr/bin/logger' "\$@"; }
HOOK
	for pkg in meshpay meshpay-plugin-quorum meshpay-plugin-prophet meshpay-plugin-spray; do
		run_test_sh "$PKG/test.sh" "$pkg" "$WORKSPACE_VERSION" ||
			fail "test.sh $pkg $WORKSPACE_VERSION failed:" "$(cat "$W/test_sh.out")"
	done
	run_test_sh "$EXAMPLE/test.sh" meshpay-plugin-example "$WORKSPACE_VERSION" ||
		fail "the example's test.sh failed:" "$(cat "$W/test_sh.out")"
	# It can fail: another version, or a package it has no test for.
	run_test_sh "$PKG/test.sh" meshpay 9.9.9 && fail "test.sh accepts meshpay 9.9.9"
	run_test_sh "$PKG/test.sh" meshpay-plugin-nope 1 && fail "test.sh accepts an unknown package"
	# The shipped configuration, broken: check must fail.
	sed -i "s/option routing 'epidemic'/option routing 'olsr'/" "$t/etc/config/meshpay"
	run_test_sh "$PKG/test.sh" meshpay "$WORKSPACE_VERSION" &&
		fail "test.sh accepts a broken /etc/config/meshpay"
	return 0
}

run_test "Makefile: fields, packages, version, Cargo.lock" test_fields
run_test "Makefile: Build/Compile's cargo commands" test_compile
stage_build_outputs
run_test "Makefile: Package/meshpay/install" test_install_meshpay
run_test "Makefile: Package/meshpay-plugin-*/install" test_install_plugins
run_test "Makefile: Build/InstallDev stages the plugin headers" test_installdev
run_test "example plugin package: builds against the staged header, installs" test_example
run_test "test.sh against the installed packages" test_test_sh
finish
