# shellcheck shell=sh disable=SC3043
# Stand-in for OpenWrt's /lib/functions.sh, as far as init scripts use it to
# read UCI. Written after openwrt/openwrt's
# package/base-files/files/lib/functions.sh (commit 01fa063) and
# package/base-files/files/lib/config/uci.sh (uci_load), with the same
# storage scheme: option O of section S is CONFIG_S_O, the section's type is
# CONFIG_S_TYPE, and a list also keeps CONFIG_S_O_ITEMn and CONFIG_S_O_LENGTH.
#
# One difference: config_load sources ${UCI_CONFIG_DIR:-/etc/config}/<package>
# instead of eval'ing the output of `uci -S -n export <package>`. UCI's file
# syntax is the command syntax `uci export` emits (package/config/option/list
# lines, values in single quotes, a quote inside a value as '\''), which is
# why OpenWrt can eval it; the test configurations are written that way. The
# other difference: nothing is exported (OpenWrt sets NO_EXPORT=1 too).

LIST_SEP=" "

# shellcheck disable=SC2034 # value and sep are read by the eval
append() {
	local var="$1" value="$2" sep="${3:- }"
	eval "$var=\${$var:+\${$var}\${value:+\$sep}}\$value"
}

list_contains() {
	local var="$1" str="$2" val
	eval "val=\" \${$var} \""
	[ "${val%% "$str" *}" != "$val" ]
}

reset_cb() {
	config_cb() { return 0; }
	option_cb() { return 0; }
	list_cb() { return 0; }
}
reset_cb

package() {
	return 0
}

config() {
	local cfgtype="$1" name="$2"
	CONFIG_NUM_SECTIONS=$((CONFIG_NUM_SECTIONS + 1))
	name="${name:-cfg$CONFIG_NUM_SECTIONS}"
	append CONFIG_SECTIONS "$name"
	CONFIG_SECTION="$name"
	config_set "$CONFIG_SECTION" TYPE "$cfgtype"
	[ -n "$NO_CALLBACK" ] || config_cb "$cfgtype" "$name"
}

option() {
	local varname="$1"
	shift
	config_set "$CONFIG_SECTION" "$varname" "$*"
	[ -n "$NO_CALLBACK" ] || option_cb "$varname" "$*"
}

list() {
	local varname="$1" len
	shift
	config_get len "$CONFIG_SECTION" "${varname}_LENGTH" 0
	[ "$len" = 0 ] && append CONFIG_LIST_STATE "${CONFIG_SECTION}_${varname}"
	len=$((len + 1))
	config_set "$CONFIG_SECTION" "${varname}_ITEM$len" "$*"
	config_set "$CONFIG_SECTION" "${varname}_LENGTH" "$len"
	append "CONFIG_${CONFIG_SECTION}_${varname}" "$*" "$LIST_SEP"
	[ -n "$NO_CALLBACK" ] || list_cb "$varname" "$*"
}

# config_get <variable> <section> <option> [<default>]
# config_get <section> <option>
# An empty value counts as unset (the default applies), as in OpenWrt.
config_get() {
	case "$2${3:-$1}" in
	*[!A-Za-z0-9_]*) : ;;
	*)
		case "$3" in
		"") eval echo "\"\${CONFIG_${1}_${2}:-\${4}}\"" ;;
		*) eval "${1}=\${CONFIG_${2}_${3}:-\${4}}" ;;
		esac
		;;
	esac
}

get_bool() {
	local _tmp="$1"
	case "$_tmp" in
	1 | on | true | yes | enabled) _tmp=1 ;;
	0 | off | false | no | disabled) _tmp=0 ;;
	*) _tmp="$2" ;;
	esac
	printf '%s' "$_tmp"
}

config_get_bool() {
	local _tmp
	config_get _tmp "$2" "$3" "$4"
	_tmp="$(get_bool "$_tmp" "$4")"
	eval "$1=\$_tmp"
}

config_set() {
	eval "CONFIG_${1}_${2}=\$3"
}

config_foreach() {
	local ___function="$1"
	[ "$#" -ge 1 ] && shift
	local ___type="$1"
	[ "$#" -ge 1 ] && shift
	local section cfgtype
	[ -z "$CONFIG_SECTIONS" ] && return 0
	for section in ${CONFIG_SECTIONS}; do
		config_get cfgtype "$section" TYPE
		[ -n "$___type" ] && [ "x$cfgtype" != "x$___type" ] && continue
		eval "$___function \"\$section\" \"\$@\""
	done
}

config_list_foreach() {
	[ "$#" -ge 3 ] || return 0
	local section="$1" option="$2" function="$3" val len c=1
	shift 3
	config_get len "${section}" "${option}_LENGTH"
	[ -z "$len" ] && return 0
	while [ "$c" -le "$len" ]; do
		config_get val "${section}" "${option}_ITEM$c"
		eval "$function \"\$val\" \"\$@\""
		c="$((c + 1))"
	done
}

# uci_load: forgets the lists and sections of the previous load, reads the
# package, and ends the last section with a config_cb without arguments.
config_load() {
	local file="${UCI_CONFIG_DIR:-/etc/config}/$1" var
	for var in $CONFIG_LIST_STATE; do
		eval "CONFIG_${var}= CONFIG_${var}_LENGTH="
	done
	CONFIG_LIST_STATE=""
	CONFIG_SECTIONS=""
	CONFIG_NUM_SECTIONS=0
	CONFIG_SECTION=""
	[ -f "$file" ] || return 1
	# shellcheck disable=SC1090
	. "$file"
	${CONFIG_SECTION:+config_cb}
	return 0
}
