# shellcheck shell=sh
# Shared by the OpenWrt packaging tests: TAP-style results and assertions.
#
# A test is a shell function run by `run_test <name> <function> [args]`; its
# assertions print what differs as `# ` lines and mark it failed; run_test
# prints `ok N - name` or `not ok N - name`. `finish` prints the plan and
# exits non-zero if anything failed.
#
# The environment, set by tests/tests/openwrt.rs:
#   MESHPAY_BIN  the meshpay binary cargo built (target/debug/meshpay)
#   PLUGIN_DIR   where cargo put the plugin libraries (target/debug)
#   WORK         a scratch directory, removed by the caller

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck disable=SC2034 # used by the scripts that source this one
HERE="$REPO/tests/openwrt"
: "${MESHPAY_BIN:?MESHPAY_BIN must name the meshpay binary (target/debug/meshpay)}"
: "${PLUGIN_DIR:?PLUGIN_DIR must name the directory of the plugin libraries (target/debug)}"
: "${WORK:?WORK must name a scratch directory}"

TESTS=0
FAILED=0
TEST_FAILED=0

fail() {
	for line in "$@"; do
		printf '# %s\n' "$line"
	done
	TEST_FAILED=1
}

run_test() {
	TEST_NAME="$1"
	shift
	TEST_FAILED=0
	"$@"
	TESTS=$((TESTS + 1))
	if [ "$TEST_FAILED" = 0 ]; then
		echo "ok $TESTS - $TEST_NAME"
	else
		FAILED=$((FAILED + 1))
		echo "not ok $TESTS - $TEST_NAME"
	fi
}

finish() {
	echo "1..$TESTS"
	[ "$FAILED" = 0 ] || {
		echo "# $FAILED of $TESTS failed"
		exit 1
	}
}

# The file's contents must be exactly the expected file's.
expect_file() { # <what> <expected file> <actual file>
	if [ ! -f "$3" ]; then
		fail "$1: $3 does not exist"
	elif ! diff -u "$2" "$3" >"$WORK/diff" 2>&1; then
		fail "$1 differs from $2 (- expected, + actual):"
		while IFS= read -r line; do fail "  $line"; done <"$WORK/diff"
	fi
}

expect_eq() { # <what> <expected> <actual>
	[ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
}

expect_absent() { # <what> <path>
	[ ! -e "$2" ] || fail "$1: $2 exists"
}

# Every line of the expected file must appear, whole, in the actual file.
expect_lines() { # <what> <expected lines file> <actual file>
	while IFS= read -r want; do
		grep -qxF -- "$want" "$3" || fail "$1: no line '$want' in $3"
	done <"$2"
}

# Every line of the expected file must be part of some line of the actual file.
expect_substrings() { # <what> <expected substrings file> <actual file>
	while IFS= read -r want; do
		grep -qF -- "$want" "$3" || fail "$1: '$want' is not in $3"
	done <"$2"
}

expect_mode() { # <path> <octal mode>
	if [ ! -e "$1" ]; then
		fail "$1 is missing"
	else
		mode="$(stat -c %a "$1")"
		[ "$mode" = "$2" ] || fail "$1: mode $mode, expected $2"
	fi
}

# Substitutes @NAME@ placeholders (paths of this run) in a file.
subst() { # <file> <out> NAME=value...
	src="$1"
	out="$2"
	shift 2
	cp "$src" "$out.tmp"
	for pair in "$@"; do
		value="$(printf '%s' "${pair#*=}" | sed -e 's/[\\&|]/\\&/g')"
		sed -e "s|@${pair%%=*}@|$value|g" "$out.tmp" >"$out.tmp2" && mv "$out.tmp2" "$out.tmp"
	done
	mv "$out.tmp" "$out"
}
