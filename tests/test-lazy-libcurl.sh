#!/bin/bash
# A process that never logs in loads no libcurl, libssl or libcrypto
# (issue 16, item 3): maps-probe, a program linked with libucaasauth only,
# gets a header and reports what its /proc/self/maps holds.
#   - a Basic profile: nothing;
#   - a login profile on a cold shared cache: it logs in, so libcurl (and
#     libssl, libcrypto behind it) is mapped;
#   - the same profile, warm, in a new process: nothing;
#   - a daemon client (cache = daemon, ucaas-authd logged in): nothing.
# And the mock's login count: 1 for the cold cache, 1 for the daemon.
#
# usage: test-lazy-libcurl.sh MAPS-PROBE UCAAS-AUTH UCAAS-AUTHD
set -u

if [ $# -ne 3 ]; then
	echo "usage: $0 MAPS-PROBE UCAAS-AUTH UCAAS-AUTHD" >&2
	exit 2
fi
probe=$(realpath "$1") cli=$(realpath "$2") authd=$(realpath "$3")
mock_script=${MOCK_UCAAS:-$(dirname "$0")/mock-ucaas.py}

tmp=$(mktemp -d /tmp/test-lazy-libcurl.XXXXXX) || exit 1
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
failures=0
fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

# wait_for FILE: polls, bounded (60 s; it takes well under one), for a
# file to appear.
wait_for() {
	for _ in $(seq 1200); do
		[ -e "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

export no_proxy='*'
mkdir -m 0700 "$tmp/run" "$tmp/home"
mkdir -m 0755 "$tmp/sock"
export UCAASAUTH_RUNTIME_DIR=$tmp/run UCAASAUTH_CONFIG=$tmp/ucaasauth.conf
export HOME=$tmp/home
unset CREDENTIALS_DIRECTORY XDG_RUNTIME_DIR NOTIFY_SOCKET

python3 "$mock_script" --port-file "$tmp/port" --app-id lazy-app \
	--app-key lazy-KEY --email lazy@example.com --password lazy-PASSWORD \
	--quiet &
pids+=($!)
wait_for "$tmp/port" || {
	echo "FAIL: the mock did not start" >&2
	exit 1
}
root=http://127.0.0.1:$(cat "$tmp/port")
logins() {
	python3 -c 'import json,sys,urllib.request as u
print(json.load(u.urlopen(sys.argv[1] + "/_mock/stats"))["logins"])' "$root"
}

cat >"$tmp/ucaasauth.conf" <<EOF
default_profile = srv

[profile srv]
api_base = $root/ucaas/v1
app_id = lazy-app
provider = basic

[profile tok]
api_base = $root/ucaas/v1
app_id = lazy-app
provider = login

[profile dmn]
api_base = $root/ucaas/v1
app_id = lazy-app
provider = login
cache = daemon
socket = $tmp/sock/authd.sock
allow_users = $(id -u)
EOF
chmod 0600 "$tmp/ucaasauth.conf"
"$cli" keygen >/dev/null || exit 1
printf 'app_key=lazy-KEY\n' | "$cli" store srv >/dev/null 2>&1 ||
	fail "store srv"
for p in tok dmn; do
	printf 'email=lazy@example.com\npassword=lazy-PASSWORD\n' |
		"$cli" store "$p" >/dev/null 2>&1 || fail "store $p"
done

# probe PROFILE EXPECTED-PATTERN WHAT
probe() {
	local out
	out=$("$probe" "$1" 2>"$tmp/err")
	echo "$3: $out"
	# shellcheck disable=SC2053
	[[ $out == $2 ]] ||
		fail "$3: printed '$out', expected '$2' ($(cat "$tmp/err"))"
}
none="libcurl=no libssl=no libcrypto=no"

probe srv "scheme=Basic $none" "basic profile"
# libssl and libcrypto come with Debian's libcurl.so.4, not with every
# libcurl build: only libcurl itself is required here.
probe tok "scheme=Token libcurl=yes *" \
	"login profile, cold cache (logs in)"
[ "$(logins)" = 1 ] || fail "cold cache: $(logins) logins, expected 1"
probe tok "scheme=Token $none" "login profile, warm cache"
[ "$(logins)" = 1 ] || fail "warm cache: $(logins) logins, expected 1"

"$authd" dmn 2>"$tmp/authd.log" &
pids+=($!)
wait_for "$tmp/sock/authd.sock" || fail "ucaas-authd did not listen: $(cat "$tmp/authd.log")"
probe dmn "scheme=Token $none" "daemon client"
[ "$(logins)" = 2 ] || fail "daemon: $(logins) logins in all, expected 2"

if [ "$failures" -ne 0 ]; then
	exit 1
fi
echo "ok: only the process that logged in mapped libcurl"
