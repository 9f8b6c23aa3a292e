#!/bin/bash
# examples/prefork-server under load from wrk: 4 workers forked after one
# ucaasauth_open(), each calling the mock's /customers for every request.
#   1. cold start under load: 1 login, no refused call, no socket error;
#   2. the mock drops the token in the middle of a second load: the workers
#      that get a 401 reject that header and retry once, so the load sees
#      no refused call and the host logs in exactly once more.
#
# usage: test-prefork-server.sh PATH-TO-prefork-server PATH-TO-ucaas-auth
set -u

if [ $# -ne 2 ] || [ ! -x "$1" ] || [ ! -x "$2" ]; then
	echo "usage: $0 PATH-TO-prefork-server PATH-TO-ucaas-auth" >&2
	exit 1
fi
server=$(realpath "$1")
cli=$(realpath "$2")
if ! command -v wrk >/dev/null; then
	echo "wrk is not installed (tools/install-deps installs it)" >&2
	exit 77
fi
. "$(dirname "$0")/world.sh"
world_start "$cli"


"$server" tok "$base/customers" "$tmp/server-port" 4 2>"$tmp/server.err" &
server_pid=$!
world_pids+=("$server_pid")
for _ in $(seq 300); do
	[ -s "$tmp/server-port" ] && break
	kill -0 "$server_pid" 2>/dev/null || break
	sleep 0.1
done
if [ ! -s "$tmp/server-port" ]; then
	echo "FAIL: prefork-server did not start: $(cat "$tmp/server.err")" >&2
	exit 1
fi
url=http://127.0.0.1:$(cat "$tmp/server-port")/

# load NAME SECONDS: wrk in the background, 4 connections (one per
# worker), its report in $tmp/NAME.wrk; its pid in $wrk_pid, killed on
# exit (timeout passes the signal on to wrk; on SIGINT wrk stops and
# reports).
load() {
	timeout $(($2 + 30)) wrk -t 2 -c 4 -d "$2s" --timeout 10s "$url" \
		>"$tmp/$1.wrk" 2>&1 &
	wrk_pid=$!
	world_pids+=("$wrk_pid")
}
# verify NAME: requests made, none refused, no socket error.
verify() {
	local n
	n=$(awk '/requests in/ {print $1}' "$tmp/$1.wrk")
	check "$1: no requests: $(cat "$tmp/$1.wrk")" [ "${n:-0}" -gt 0 ]
	check "$1: refused calls: $(grep Non-2xx "$tmp/$1.wrk")" \
		bash -c '! grep -q "Non-2xx" "$1"' _ "$tmp/$1.wrk"
	check "$1: $(grep 'Socket errors' "$tmp/$1.wrk")" \
		bash -c '! grep -q "Socket errors" "$1"' _ "$tmp/$1.wrk"
	echo "$1: ${n:-0} requests," \
		"$(awk '/Non-2xx/ {print $NF}' "$tmp/$1.wrk" | grep . || echo 0)" \
		"non-2xx, socket errors: $(grep 'Socket errors' "$tmp/$1.wrk" || echo none)"
}

# 1. Cold start under load.
load cold 2
wait "$wrk_pid"
verify cold
check "cold: $(stat_of logins) logins, expected 1" [ "$(stat_of logins)" = 1 ]
check "cold: the mock refused $(stat_of customers_refused)" \
	[ "$(stat_of customers_refused)" = 0 ]

# 2. The token dropped mid-load: a load that lasts until 100 calls after
# the drop were answered (SIGINT then), not a fixed 5 s that a slow
# machine could spend before the drop.
load drop 120
before=$(stat_of customers_ok)
for _ in $(seq 300); do
	[ "$(stat_of customers_ok)" -ge $((before + 100)) ] && break
	sleep 0.1
done
checks=$((checks + 1))
kill -0 "$wrk_pid" 2>/dev/null || fail "drop: the load ended before the drop"
token=$(stat_of current_token)
mock_post /_mock/config "{\"revoke\": \"$token\"}"
at_drop=$(stat_of customers_ok)
for _ in $(seq 300); do
	[ "$(stat_of customers_ok)" -ge $((at_drop + 100)) ] && break
	sleep 0.1
done
check "drop: no load after the drop" [ "$(stat_of customers_ok)" -ge $((at_drop + 100)) ]
kill -INT "$wrk_pid" 2>/dev/null
wait "$wrk_pid"
verify drop
refused=$(stat_of customers_401)
check "drop: $(stat_of logins) logins, expected 2" [ "$(stat_of logins)" = 2 ]
check "drop: no worker saw the drop" [ "$refused" -ge 1 ]
check "drop: the new token is the old one" [ "$(stat_of current_token)" != "$token" ]
check "server: $(cat "$tmp/server.err")" [ ! -s "$tmp/server.err" ]
check "server: exited" kill -0 "$server_pid"
echo "mock: $(stat_of customers_ok) calls answered 200, $refused refused (401)" \
	"and retried, $(stat_of logins) logins"

world_done
