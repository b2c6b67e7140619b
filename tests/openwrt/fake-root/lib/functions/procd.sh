# shellcheck shell=sh disable=SC3043
# Stand-in for OpenWrt's /lib/functions/procd.sh (openwrt/openwrt:
# package/system/procd/files/procd.sh, commit 03eca6c). The real one builds a
# JSON message with jshn and sends it to procd over ubus
# (`ubus call service set`); this one appends every call, one per line with
# each argument in brackets, to $PROCD_LOG, so a test sees the exact
# command line and parameters an init script hands to procd.
#
# Kept from the real one: procd_close_service runs the script's
# service_triggers before the message goes out (that is where
# procd_add_reload_trigger is called), and rc.common's start wraps
# start_service in procd_open_service/procd_close_service.

_procd_log() {
	local line="$1" arg
	shift
	for arg in "$@"; do
		line="$line [$arg]"
	done
	printf '%s\n' "$line" >>"${PROCD_LOG:?PROCD_LOG is not set}"
}

procd_lock() {
	return 0
}

procd_open_service() {
	_PROCD_SERVICE="$1"
	_PROCD_INSTANCE_SEQ=0
	_procd_log procd_open_service "$@"
}

procd_close_service() {
	service_triggers
	type service_data >/dev/null 2>&1 && service_data
	_procd_log procd_close_service "${1:-set}"
}

procd_open_instance() {
	_PROCD_INSTANCE_SEQ=$((_PROCD_INSTANCE_SEQ + 1))
	_procd_log procd_open_instance "$@"
}

procd_set_param() {
	_procd_log procd_set_param "$@"
}

procd_append_param() {
	_procd_log procd_append_param "$@"
}

procd_close_instance() {
	_procd_log procd_close_instance "$@"
}

procd_add_reload_trigger() {
	_procd_log procd_add_reload_trigger "$@"
}

procd_add_interface_trigger() {
	_procd_log procd_add_interface_trigger "$@"
}

procd_kill() {
	_procd_log procd_kill "$@"
}

procd_send_signal() {
	_procd_log procd_send_signal "$@"
}
