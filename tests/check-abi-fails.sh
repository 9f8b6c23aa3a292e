#!/bin/bash
# check-abi.sh must be able to fail: each case below copies one of its
# inputs, changes one thing a careless edit would change, and expects the
# check to fail (exit 1) with a line naming what disagrees. The unchanged
# inputs must pass, or nothing here means anything.
#
# usage: check-abi-fails.sh check-abi.sh ARGS-OF-check-abi.sh...
set -u
check=$1
shift
if [ $# -ne 8 ]; then
	echo "usage: $0 check-abi.sh ucaasauth.h libucaasauth.sym lib" \
		"ucaasauth.3.scd ffi.h provider.h ucaasauth-provider.3.scd" \
		"docs/meson.build" >&2
	exit 2
fi
args=("$@")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

# expect NAME ARG-INDEX SED-SCRIPT WANTED: check-abi.sh with argument
# ARG-INDEX (0-based) replaced by a copy edited by SED-SCRIPT must exit 1
# and say WANTED on stderr. ARG-INDEX -1: no change, must exit 0.
expect() {
	local name=$1 i=$2 script=$3 wanted=$4 a=("${args[@]}") rc
	if [ "$i" -ge 0 ]; then
		sed "$script" "${a[$i]}" >"$tmp/edited"
		if cmp -s "$tmp/edited" "${a[$i]}"; then
			echo "FAIL $name: the edit changed nothing in ${a[$i]}"
			failed=$((failed + 1))
			return
		fi
		a[$i]=$tmp/edited
	fi
	"$check" "${a[@]}" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ "$i" -lt 0 ] && [ "$rc" -eq 0 ]; then
		echo "ok $name"
		passed=$((passed + 1))
	elif [ "$i" -ge 0 ] && [ "$rc" -eq 1 ] &&
		grep -qF -- "$wanted" "$tmp/err"; then
		echo "ok $name: $(grep -F -- "$wanted" "$tmp/err" | head -n 1)"
		passed=$((passed + 1))
	else
		echo "FAIL $name: exit $rc, wanted ${wanted:-success}; stderr:"
		sed 's/^/  /' "$tmp/err"
		failed=$((failed + 1))
	fi
}

expect "unchanged inputs pass" -1 "" ""
expect "a parameter's type in ucaasauth(3)" 3 \
	's/^int ucaasauth_open(struct ucaasauth \*\*ret, const char \*profile,$/int ucaasauth_open(struct ucaasauth **ret, char *profile,/' \
	"does not declare the prototypes"
expect "a return type in ucaasauth(3)" 3 \
	's/^const char \*ucaasauth_last_error(void);/char *ucaasauth_last_error(void);/' \
	"does not declare the prototypes"
expect "a parameter added in ucaasauth(3)" 3 \
	's/^void ucaasauth_close(struct ucaasauth \*ua);/void ucaasauth_close(struct ucaasauth *ua, int how);/' \
	"does not declare the prototypes"
expect "an alias missing" 7 "/^[[:space:]]*'ucaasauth_reject',\$/d" \
	"ucaasauth_reject: missing from man3_aliases"
expect "an alias too many" 7 \
	"s/^\([[:space:]]*\)'ucaasauth_close',\$/&\n\1'ucaasauth_frobnicate',/" \
	"ucaasauth_frobnicate: missing from ucaasauth.h"
expect "a name missing from NAME" 3 \
	's/^ucaasauth_open, ucaasauth_header, /ucaasauth_open, /' \
	"ucaasauth_header: missing from"
expect "an export missing" 1 's/^\([[:space:]]*\)ucaasauth_reject;$//' \
	"ucaasauth_reject: missing from"
expect "a status renumbered in ffi.h" 4 \
	's/UCAASAUTH_E_CACHE = -7/UCAASAUTH_E_CACHE = -70/' \
	"declare different things"
expect "a field of the provider interface" 6 \
	's/^\([[:space:]]*\)int timeout;/\1long timeout;/' \
	"does not declare what"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
