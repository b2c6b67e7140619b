#!/bin/sh
# The init script, openwrt/meshpay/files/meshpay.init, run under busybox ash
# the way OpenWrt runs it (`/bin/sh /etc/rc.common <script> <action>`), with
# the stand-ins in fake-root/ for /etc/rc.common, /lib/functions.sh,
# /lib/functions/procd.sh and logger, and the real meshpay binary (its
# `config check` judges every generated file). One test per directory in
# cases/:
#
#   config         /etc/config/meshpay (UCI, in `uci export` syntax)
#   committee.toml copied to @DIR@/committee.toml
#   action         the rc.common action (default: start)
#   status         its expected exit status (default: 0)
#   expected.toml  the exact generated /var/etc/meshpay.toml; without it (or
#                  toml.contains), no file may be generated
#   toml.contains  substrings of the generated file, for one that depends on
#                  the binary (which plugins are built in)
#   expected.procd the exact procd calls (fake-root/lib/functions/procd.sh)
#   expected.log   the exact syslog lines (priority and message)
#   log.contains   substrings that must appear in the syslog lines
#   stdout.lines   lines that must appear in the action's output
#   check.contains substrings that must appear in `meshpay config check`'s output
#                  for the generated file
#   kept.new       present: the refused file must be kept as meshpay.toml.new
#
# In these files @DIR@ is the case's scratch root, @PLUGINS@ the plugin
# directory (cargo's), @MESHPAY@ the meshpay binary, @UCI@ the UCI file and
# @CONF@ the generated TOML's path.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

INIT="$REPO/openwrt/meshpay/files/meshpay.init"
FAKE_ROOT="$HERE/fake-root"
command -v busybox >/dev/null 2>&1 || {
	echo "busybox is missing: run tests/setup-system.sh (Debian package busybox)" >&2
	exit 1
}

init_case() { # <case directory>
	case_dir="$1"
	dir="$WORK/init/${case_dir##*/}"
	rm -rf "$dir"
	mkdir -p "$dir/etc/init.d" "$dir/etc/config" "$dir/var/etc" "$dir/tmp"
	cp "$INIT" "$dir/etc/init.d/meshpay"
	set -- DIR="$dir" PLUGINS="$PLUGIN_DIR" MESHPAY="$MESHPAY_BIN" \
		UCI="$dir/etc/config/meshpay" CONF="$dir/var/etc/meshpay.toml"
	subst "$case_dir/config" "$dir/etc/config/meshpay" "$@"
	[ -f "$case_dir/committee.toml" ] && cp "$case_dir/committee.toml" "$dir/committee.toml"
	cat >"$dir/hook.sh" <<HOOK
PROG='$MESHPAY_BIN'
CONFIGFILE='$dir/var/etc/meshpay.toml'
# busybox ash runs its own logger applet before anything in PATH.
logger() { '$FAKE_ROOT/usr/bin/logger' "\$@"; }
HOOK
	action=start
	[ -f "$case_dir/action" ] && action="$(cat "$case_dir/action")"
	want_status=0
	[ -f "$case_dir/status" ] && want_status="$(cat "$case_dir/status")"

	(cd "$dir" && env UCI_CONFIG_DIR="$dir/etc/config" PROCD_LOG="$dir/procd.log" \
		LOGGER_LOG="$dir/logger.log" RC_ROOT="$FAKE_ROOT" RC_HOOK="$dir/hook.sh" \
		TMPDIR="$dir/tmp" busybox ash "$FAKE_ROOT/etc/rc.common" "$dir/etc/init.d/meshpay" \
		"$action" >"$dir/stdout" 2>"$dir/stderr")
	status=$?
	touch "$dir/procd.log" "$dir/logger.log"

	expect_eq "exit status of '$action'" "$want_status" "$status"
	conf="$dir/var/etc/meshpay.toml"
	for file in expected.toml toml.contains expected.procd expected.log log.contains stdout.lines check.contains; do
		[ -f "$case_dir/$file" ] && subst "$case_dir/$file" "$dir/$file" "$@"
	done
	if [ -f "$dir/expected.toml" ]; then
		expect_file "generated TOML" "$dir/expected.toml" "$conf"
	elif [ -f "$dir/toml.contains" ]; then
		if [ -f "$conf" ]; then
			expect_substrings "generated TOML" "$dir/toml.contains" "$conf"
		else
			fail "no TOML was generated"
		fi
	else
		expect_absent "generated TOML" "$conf"
	fi
	[ -f "$dir/expected.procd" ] && expect_file "procd calls" "$dir/expected.procd" "$dir/procd.log"
	[ -f "$dir/expected.log" ] && expect_file "syslog" "$dir/expected.log" "$dir/logger.log"
	[ -f "$dir/log.contains" ] && expect_substrings "syslog" "$dir/log.contains" "$dir/logger.log"
	[ -f "$dir/stdout.lines" ] && expect_lines "output" "$dir/stdout.lines" "$dir/stdout"
	if [ -f "$dir/check.contains" ]; then
		"$MESHPAY_BIN" --state-dir "$dir/state" config check "$conf" >"$dir/check.out" 2>&1 ||
			fail "meshpay config check refuses $conf"
		expect_substrings "meshpay config check" "$dir/check.contains" "$dir/check.out"
	fi
	if [ -f "$case_dir/kept.new" ]; then
		[ -f "$conf.new" ] || fail "the refused configuration was not kept as $conf.new"
	else
		expect_absent "a refused configuration" "$conf.new"
	fi
	[ -z "$(ls -A "$dir/tmp")" ] || fail "files left in TMPDIR: $(ls -A "$dir/tmp")"
	if [ "$TEST_FAILED" != 0 ]; then
		fail "its stderr:"
		while IFS= read -r line; do fail "  $line"; done <"$dir/stderr"
	fi
}

for case_dir in "$HERE"/cases/*/; do
	case_dir="${case_dir%/}"
	run_test "init script: ${case_dir##*/}" init_case "$case_dir"
done
finish
