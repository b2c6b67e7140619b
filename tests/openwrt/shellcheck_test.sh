#!/bin/sh
# Runs shellcheck (POSIX sh: `-s sh`) and `busybox ash -n` (OpenWrt's shell parses
# it) over every shell script of the OpenWrt package and of these tests. The
# init script carries its own directives: `local` (SC3043) is allowed, as
# ash has it, and rc.common's variables (USE_PROCD, START, ...) are marked as
# read elsewhere (SC2034).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

command -v shellcheck >/dev/null 2>&1 || {
	echo "shellcheck is missing: run tests/setup-system.sh (Debian package shellcheck)" >&2
	exit 1
}
command -v busybox >/dev/null 2>&1 || {
	echo "busybox is missing: run tests/setup-system.sh (Debian package busybox)" >&2
	exit 1
}

SCRIPTS="
openwrt/meshpay/files/meshpay.init
openwrt/meshpay/test.sh
openwrt/meshpay-plugin-example/test.sh
tests/openwrt/lib.sh
tests/openwrt/init_script_test.sh
tests/openwrt/makefile_test.sh
tests/openwrt/cargo_build_test.sh
tests/openwrt/shellcheck_test.sh
tests/openwrt/bin/cargo
tests/openwrt/fake-root/etc/rc.common
tests/openwrt/fake-root/lib/functions.sh
tests/openwrt/fake-root/lib/functions/procd.sh
tests/openwrt/fake-root/usr/bin/logger
"

check_script() { # <path in the repository>
	(cd "$REPO" && shellcheck -s sh -x -P SCRIPTDIR "$1") >"$WORK/shellcheck.out" 2>&1 ||
		fail "shellcheck -s sh $1:" "$(cat "$WORK/shellcheck.out")"
	busybox ash -n "$REPO/$1" >"$WORK/ash.out" 2>&1 || fail "busybox ash -n $1:" "$(cat "$WORK/ash.out")"
}

# The checks can fail: a word-splitting bug is reported.
check_catches() {
	# shellcheck disable=SC2016 # the $1 is the point
	printf '#!/bin/sh\nrm $1\n' >"$WORK/bad.sh"
	shellcheck -s sh "$WORK/bad.sh" >/dev/null 2>&1 && fail "shellcheck accepts an unquoted \$1"
	printf 'if then fi\n' >"$WORK/bad.sh"
	busybox ash -n "$WORK/bad.sh" >/dev/null 2>&1 && fail "busybox ash -n accepts a syntax error"
	return 0
}

run_test "shellcheck and ash catch a bad script" check_catches
for script in $SCRIPTS; do
	run_test "shellcheck: $script" check_script "$script"
done
finish
