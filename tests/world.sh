# A world for shell tests, sourced (bash): a scratch directory, the mock
# UCaaS server on 127.0.0.1, a configuration with a login profile "tok" and
# a Basic profile "srv" that both point at the mock, a master key and
# their stored secrets.
#
#   world_start CLI      sets tmp, base (the mock's API base URL), conf,
#                        and exports UCAASAUTH_CONFIG, UCAASAUTH_RUNTIME_DIR
#                        and HOME; exits 1 if the mock does not start
#   world_pids+=(PID)    a process to kill (SIGTERM) and reap on exit
#   stat_of KEY          a counter (or the current token) from /_mock/stats
#   mock_post PATH JSON  POST to the mock's control API (/_mock/config, ...)
#   fail TEXT / check DESCRIPTION TEST...   count a failure or a check
#   world_done           the summary line and the exit status
#
# Whatever world_start starts dies with the script (trap on EXIT), and the
# scratch directory is removed.

world_pids=()
failures=0
checks=0

fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}
check() { # check DESCRIPTION TEST...
	local what=$1
	shift
	checks=$((checks + 1))
	"$@" || fail "$what"
}
world_done() {
	if [ "$failures" -ne 0 ]; then
		echo "$failures of $checks checks failed" >&2
		exit 1
	fi
	echo "ok ($checks checks)"
	exit 0
}

world_cleanup() {
	local pid
	for pid in "${world_pids[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${world_pids[@]}"; do
		wait "$pid" 2>/dev/null
	done
	[ -n "${tmp:-}" ] && rm -rf "$tmp"
}

stat_of() {
	python3 -c 'import json,sys,urllib.request as u
print(json.load(u.urlopen(sys.argv[1] + "/_mock/stats"))[sys.argv[2]])' \
		"${base%/ucaas/v1}" "$1"
}

mock_post() {
	python3 -c 'import sys,urllib.request as u
u.urlopen(u.Request(sys.argv[1], data=sys.argv[2].encode(),
	headers={"Content-Type": "application/json"})).read()' \
		"${base%/ucaas/v1}$1" "$2"
}

world_start() {
	local cli=$1 mock=${MOCK_UCAAS:-$(dirname "${BASH_SOURCE[0]}")/mock-ucaas.py}

	tmp=$(mktemp -d /tmp/test-world.XXXXXX) || exit 1
	trap world_cleanup EXIT
	WORLD_APP_KEY=Zq9-SECRET-VALUE
	WORLD_PASSWORD=Zq9-SECRET-PASSWORD
	mkdir -m 0700 "$tmp/run" "$tmp/home"
	export UCAASAUTH_RUNTIME_DIR=$tmp/run HOME=$tmp/home no_proxy='*'
	unset CREDENTIALS_DIRECTORY XDG_RUNTIME_DIR http_proxy https_proxy

	python3 "$mock" --port-file "$tmp/port" --quiet --app-id myapp \
		--app-key "$WORLD_APP_KEY" --email ops@example.com \
		--password "$WORLD_PASSWORD" &
	world_pids+=($!)
	for _ in $(seq 300); do [ -s "$tmp/port" ] && break; sleep 0.1; done
	if [ ! -s "$tmp/port" ]; then
		echo "FAIL: the mock did not start" >&2
		exit 1
	fi
	base=http://127.0.0.1:$(cat "$tmp/port")/ucaas/v1

	conf=$tmp/ucaasauth.conf
	cat >"$conf" <<EOF
default_profile = tok

[profile tok]
api_base = $base
app_id = myapp
provider = login

[profile srv]
api_base = $base
app_id = myapp
provider = basic
EOF
	chmod 0600 "$conf"
	export UCAASAUTH_CONFIG=$conf
	"$cli" keygen >/dev/null || exit 1
	printf 'email=ops@example.com\npassword=%s\n' "$WORLD_PASSWORD" |
		"$cli" store tok 2>/dev/null || exit 1
	printf 'app_key=%s\n' "$WORLD_APP_KEY" |
		"$cli" store srv 2>/dev/null || exit 1
	# A reject of a token younger than the profile's minimum age counts
	# as a failed refresh (a backoff); these tests reject fresh tokens on
	# purpose. The key is set where this library knows it.
	sed -i '/^provider = login$/a reject_min_age = 0' "$conf"
	if ! "$cli" check tok >"$tmp/check" 2>&1 &&
		grep -q reject_min_age "$tmp/check"; then
		sed -i '/^reject_min_age = 0$/d' "$conf"
	fi
	if ! "$cli" check tok >"$tmp/check" 2>&1; then
		echo "FAIL: ucaas-auth check tok: $(cat "$tmp/check")" >&2
		exit 1
	fi
}
