#!/bin/bash
# ngx_http_ucaasauth_module in Debian's own nginx binary: 4 workers,
# proxying to the mock UCaaS server on 127.0.0.1, driven by wrk.
#   1. load_module of the built .so against the packaged binary;
#   2. a cold start under load: every request 200, one login;
#   3. the mock revokes the token mid-load: one more login, at most one
#      401 per client connection (the requests already sent with the
#      revoked token), every other request 200;
#      with the default reject_min_age, a young token is replaced once
#      the backoff step ends: 401s meanwhile, then one login;
#   4. the token expired mid-load (403), behind the error_page retry of
#      docs/nginx.md: one more login, no 403 at all;
#   5. `nginx -s reload` under load: no failed request, no login (one
#      request per connection; with keep-alive, every answer a 200 and at
#      most one connection lost per client connection);
#   6. the login route down (503) and no token cached: a 502 from nginx,
#      nothing sent upstream, and the error log naming the status and
#      ucaasauth_last_error();
#   7. a profile that cannot be opened at the start: the alert, 502s, and
#      served once its credentials are stored, without a reload.
# nginx, wrk and the mock die with the test, whatever happens.
#
# usage: test-nginx.sh MODULE.so UCAAS-AUTH SOURCE-DIR
set -u

if [ $# -ne 3 ] || [ ! -r "$1" ] || [ ! -x "$2" ] || [ ! -d "$3" ]; then
	echo "usage: $0 MODULE.so UCAAS-AUTH SOURCE-DIR" >&2
	exit 2
fi
module=$(realpath "$1")
cli=$(realpath "$2")
src=$(realpath "$3")
mock=${MOCK_UCAAS:-$src/tests/mock-ucaas.py}
counter=$src/nginx/wrk-count.lua
nginx=${NGINX:-/usr/sbin/nginx}
for tool in "$nginx" wrk curl python3 pgrep nm; do
	command -v "$tool" >/dev/null || {
		echo "FAIL: $tool is not installed (tools/install-deps installs it)" >&2
		exit 1
	}
done

tmp=$(mktemp -d /tmp/test-nginx.XXXXXX) || exit 1
failures=0
checks=0
mock_pid= nginx_pid= wrk_pid=

# Everything started here dies here: wrk, nginx (the master stops its
# workers, old and new; if it does not, they are killed with it), the mock.
# They stay in the test's process group, so that meson's kill on a timeout
# reaches them too.
cleanup() {
	local i
	[ -n "$wrk_pid" ] && kill "$wrk_pid" 2>/dev/null
	if [ -n "$nginx_pid" ]; then
		kill -TERM "$nginx_pid" 2>/dev/null
		for i in $(seq 100); do
			kill -0 "$nginx_pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$nginx_pid" 2>/dev/null; then
			# shellcheck disable=SC2046
			kill -KILL $(pgrep -P "$nginx_pid") "$nginx_pid" 2>/dev/null
		fi
	fi
	[ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null
	wait 2>/dev/null
	if [ "$failures" -ne 0 ] && [ -f "$tmp/nginx/error.log" ]; then
		echo "--- the last lines of nginx's error log:" >&2
		tail -n 30 "$tmp/nginx/error.log" >&2
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}
check() { # check DESCRIPTION COMMAND...: counts one check
	local what=$1
	shift
	checks=$((checks + 1))
	"$@" || fail "$what"
}
not_grep() { ! grep -q "$@"; }
fatal() {
	fail "$*"
	echo "$failures of $checks checks failed" >&2
	exit 1
}

# --- the world: a login profile against the mock -------------------------

APP_KEY=Zq9-SECRET-VALUE
PASSWORD=Zq9-SECRET-PASSWORD
mkdir -m 0700 "$tmp/run" "$tmp/home"
export UCAASAUTH_RUNTIME_DIR=$tmp/run HOME=$tmp/home
unset CREDENTIALS_DIRECTORY XDG_RUNTIME_DIR
export no_proxy='*'

python3 "$mock" --port-file "$tmp/mock.port" --quiet --app-id myapp \
	--app-key "$APP_KEY" --email ops@example.com --password "$PASSWORD" &
mock_pid=$!
for _ in $(seq 300); do [ -s "$tmp/mock.port" ] && break; sleep 0.1; done
[ -s "$tmp/mock.port" ] || fatal "the mock did not start"
mock_port=$(cat "$tmp/mock.port")
mock_url=http://127.0.0.1:$mock_port

stat_of() { # stat_of KEY: one of the mock's counters
	curl -sf "$mock_url/_mock/stats" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}
mock_config() {
	curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' \
		--data "$1" "$mock_url/_mock/config" || fatal "mock config $1"
}

conf=$tmp/ucaasauth.conf
cat >"$conf" <<EOF
# The test's tokens are seconds old when the mock drops them: with the
# default reject_min_age (30 s) a reject would keep them for a backoff
# step (profile "young" below). 0: dropped at the first reject.
[profile workers]
api_base = $mock_url/ucaas/v1
app_id = myapp
provider = login
reject_min_age = 0

# The same account (so the same cache), with the defaults.
[profile young]
api_base = $mock_url/ucaas/v1
app_id = myapp
provider = login

# Its credentials are stored only once nginx runs.
[profile late]
api_base = $mock_url/ucaas/v1
app_id = myapp
provider = login

# Another account: a cache of its own, never warmed.
[profile cold]
api_base = $mock_url/ucaas/v1
app_id = myapp
provider = login
EOF
chmod 0600 "$conf"
export UCAASAUTH_CONFIG=$conf
"$cli" keygen workers >/dev/null || fatal "ucaas-auth keygen"
printf 'email=ops@example.com\npassword=%s\n' "$PASSWORD" |
	"$cli" store workers >/dev/null || fatal "ucaas-auth store workers"
printf 'email=ops@example.com\npassword=%s\n' "$PASSWORD" |
	"$cli" store young >/dev/null || fatal "ucaas-auth store young"
printf 'email=cold@example.com\npassword=%s\n' "$PASSWORD" |
	"$cli" store cold >/dev/null || fatal "ucaas-auth store cold"

# --- nginx: its own prefix, configuration, pid file and logs --------------

free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
port=$(free_port)
retry_port=$(free_port)
url=http://127.0.0.1:$port
retry_url=http://127.0.0.1:$retry_port
mkdir -p "$tmp/nginx"
user=
# As root, nginx would hand the workers to "nobody": keep the test's user.
[ "$(id -u)" = 0 ] && user="user $(id -un) $(id -gn);"
cat >"$tmp/nginx/nginx.conf" <<EOF
$user
daemon off;
master_process on;
worker_processes 4;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log info;
load_module $module;
# The workers' environment is emptied but for what "env" keeps.
env UCAASAUTH_CONFIG;
env UCAASAUTH_RUNTIME_DIR;

events {
	worker_connections 512;
}

http {
	access_log off;
	client_body_temp_path $tmp/nginx/body;
	proxy_temp_path $tmp/nginx/proxy;
	fastcgi_temp_path $tmp/nginx/fastcgi;
	uwsgi_temp_path $tmp/nginx/uwsgi;
	scgi_temp_path $tmp/nginx/scgi;

	upstream ucaas {
		server 127.0.0.1:$mock_port;
		keepalive 16;
	}

	server {
		listen 127.0.0.1:$port;
		# Keep-alive to the API. (proxy_set_header is inherited only
		# by a location that sets none of its own.)
		proxy_http_version 1.1;

		# The configuration of README.md, the mock standing for
		# https://api.enablex.io.
		location /ucaas/ {
			ucaasauth_profile workers;
			proxy_set_header Authorization \$ucaasauth_authorization;
			proxy_set_header Connection "";
			proxy_pass http://ucaas;
		}

		location /young/ {
			ucaasauth_profile young;
			proxy_set_header Authorization \$ucaasauth_authorization;
			proxy_set_header Connection "";
			proxy_pass http://ucaas/;
		}

		location /late/ {
			ucaasauth_profile late;
			proxy_set_header Authorization \$ucaasauth_authorization;
			proxy_set_header Connection "";
			proxy_pass http://ucaas/;
		}

		location /cold/ {
			ucaasauth_profile cold;
			proxy_set_header Authorization \$ucaasauth_authorization;
			proxy_set_header Connection "";
			proxy_pass http://ucaas/;
		}

		# A mistake: the variable where no profile applies.
		location /noprofile/ {
			proxy_set_header Authorization \$ucaasauth_authorization;
			proxy_set_header Connection "";
			proxy_pass http://ucaas/;
		}
	}

	# The same, and a request refused with the token it was sent with
	# is sent again, once, with a fresh one (docs/nginx.md).
	server {
		listen 127.0.0.1:$retry_port;
		proxy_http_version 1.1;

		location /ucaas/ {
			ucaasauth_profile workers;
			proxy_set_header Authorization \$ucaasauth_authorization;
			proxy_set_header Connection "";
			proxy_pass http://ucaas;
			proxy_intercept_errors on;
			error_page 401 403 = @ucaas_again;
		}
		location @ucaas_again {
			ucaasauth_profile workers;
			proxy_set_header Authorization \$ucaasauth_authorization;
			proxy_set_header Connection "";
			proxy_pass http://ucaas;
		}
	}
}
EOF

ngx() { "$nginx" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" "$@"; }

# 1. The packaged binary loads the built module: same version, same
#    --with-compat ABI, or "nginx -t" refuses it.
checks=$((checks + 1))
if ! "$nginx" -V 2>&1 | grep -q -- '--with-compat'; then
	fail "$nginx was not configured --with-compat"
fi
ngx -t >"$tmp/nginx-t.out" 2>&1
check "nginx -t with load_module: $(cat "$tmp/nginx-t.out")" \
	grep -q "test is successful" "$tmp/nginx-t.out"
undefined=$(nm -D --undefined-only "$module" | awk '/ucaasauth/ {print $2}' |
	sed 's/@.*//' | sort | tr '\n' ' ')
check "the module's imports from the library: $undefined, expected the six public functions" \
	test "$undefined" = "ucaasauth_close ucaasauth_header ucaasauth_last_error ucaasauth_open ucaasauth_reject ucaasauth_strerror "

"$nginx" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" >"$tmp/nginx/stderr" 2>&1 &
nginx_pid=$!
workers() { # the master's children, sorted
	pgrep -P "$nginx_pid" | sort | tr '\n' ' '
}
for _ in $(seq 300); do
	[ "$(grep -c 'profile "workers" opened' "$tmp/nginx/error.log" 2>/dev/null)" = 4 ] &&
		break
	kill -0 "$nginx_pid" 2>/dev/null || break
	sleep 0.1
done
[ "$(grep -c 'profile "workers" opened' "$tmp/nginx/error.log" 2>/dev/null)" = 4 ] ||
	fatal "nginx did not start 4 workers with the profile open: $(cat "$tmp/nginx/stderr")"
if [ -n "${LD_LIBRARY_PATH:-}" ]; then
	# The library of this build, not an installed one.
	w=$(pgrep -P "$nginx_pid" | head -n 1)
	lib=$(realpath "${LD_LIBRARY_PATH%%:*}/libucaasauth.so.1")
	check "worker $w did not map $lib" grep -qF "$lib" "/proc/$w/maps"
fi

# load URL SECONDS OUT [WRK-ARGS...]: wrk, 2 threads and 16 connections,
# bounded; the counts go to OUT. In the background: wait_load reaps it.
CONNECTIONS=16
load() {
	local target=$1 seconds=$2 out=$3
	shift 3
	timeout 200 wrk -t2 -c"$CONNECTIONS" -d"$seconds"s --timeout 10s \
		-s "$counter" "$@" "$target" >"$out" 2>&1 &
	wrk_pid=$!
}
# stop_load OUT: ends a long load now (wrk reports on SIGINT).
stop_load() {
	kill -INT "$wrk_pid" 2>/dev/null
	wait_load "$1"
}
wait_load() {
	wait "$wrk_pid"
	local rc=$?
	wrk_pid=
	[ "$rc" -eq 0 ] || fail "wrk exited $rc: $(cat "$1")"
}
# count OUT STATUS: how many answers of that status
count() { awk -v s="$2" '$1 == "status" && $2 == s {n = $3} END {print n + 0}' "$1"; }
field() { awk -v k="$2" '$1 == k {print $2}' "$1"; }
# only OUT STATUS...: every answer had one of those statuses
only() {
	local out=$1 total=0 s
	shift
	for s in "$@"; do total=$((total + $(count "$out" "$s"))); done
	[ "$total" = "$(field "$out" requests)" ]
}
# wait_for KEY MINIMUM: polls the mock until the counter reaches MINIMUM
wait_for() {
	local _
	for _ in $(seq 300); do
		[ "$(stat_of "$1")" -ge "$2" ] && return 0
		kill -0 "$wrk_pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
report() { # report NAME OUT
	echo "$1: $(field "$2" requests) requests, 200: $(count "$2" 200)," \
		"401: $(count "$2" 401), 403: $(count "$2" 403)," \
		"socket errors: $(field "$2" socket_errors), logins: $(stat_of logins)"
}

# 2. A cold start under load: 16 connections over 4 workers, 1 login.
load "$url/ucaas/v1/customers" 3 "$tmp/cold.out"
wait_load "$tmp/cold.out"
report "cold start" "$tmp/cold.out"
check "cold start: no request" test "$(field "$tmp/cold.out" requests)" -gt 0
check "cold start: answers other than 200" only "$tmp/cold.out" 200
check "cold start: wrk counted non-2xx answers" \
	not_grep "Non-2xx or 3xx responses" "$tmp/cold.out"
check "cold start: socket errors" test "$(field "$tmp/cold.out" socket_errors)" = 0
check "cold start: $(stat_of logins) logins, expected 1" test "$(stat_of logins)" = 1
ok0=$(stat_of customers_ok)
check "cold start: the mock answered $ok0 requests, wrk counted more" \
	test "$ok0" -ge "$(field "$tmp/cold.out" requests)"

# A client's own Authorization header never reaches the API: the module's
# replaces it (the mock answers 401 to anything else, or to two headers).
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Token forged' \
	"$url/ucaas/v1/customers")
check "a forged client header: $code, expected 200" test "$code" = 200

# revoke_under_load NAME URL HOW: a long wrk load; once the mock has
# answered 50 requests of it, the mock forgets the token (HOW=revoke: 401
# for it from then on) or expires it (HOW=expire: 403). The load is
# stopped once the new token's login happened and 100 more requests were
# answered: a state, not a time, so a slow machine waits longer instead of
# failing. Output in $tmp/NAME.out.
revoke_under_load() {
	local out=$tmp/$1.out base l0
	base=$(stat_of customers_ok)
	load "$2" 110 "$out"
	wait_for customers_ok $((base + 50)) ||
		fail "$1: the load did not start (wrk: $(cat "$out"))"
	l0=$(stat_of logins)
	if [ "$3" = revoke ]; then
		mock_config "{\"revoke\": \"$(stat_of current_token)\"}"
	else
		mock_config '{"expire_all": true}'
	fi
	revoked_at=$(stat_of customers_ok)
	wait_for logins $((l0 + 1)) ||
		fail "$1: no new login under load (wrk: $(cat "$out"))"
	wait_for customers_ok $(($(stat_of customers_ok) + 100)) ||
		fail "$1: nothing served after the new login"
	stop_load "$out"
	report "$1" "$out"
	check "$1: no request after the revocation" \
		test "$(stat_of customers_ok)" -gt "$revoked_at"
	check "$1: socket errors" test "$(field "$out" socket_errors)" = 0
}

# 3. Revoked mid-load. The requests already sent with the revoked token
#    get the API's 401, passed on as is; the first of them rejects the
#    token, and the request each connection sends next waits for the new
#    one. wrk keeps one request in flight per connection: at most 16 401s.
#    Each 401 is rejected (the library drops the token once).
logins=$(stat_of logins)
refused=$(stat_of customers_401)
rejected=$(grep -c 'upstream answered 401, header rejected' "$tmp/nginx/error.log")
revoke_under_load revoke "$url/ucaas/v1/customers" revoke
n401=$(count "$tmp/revoke.out" 401)
check "revoke: answers other than 200 and 401" only "$tmp/revoke.out" 200 401
check "revoke: $n401 401s, expected 1 to $CONNECTIONS (one per connection at most)" \
	test "$n401" -ge 1 -a "$n401" -le "$CONNECTIONS"
check "revoke: the mock refused $(($(stat_of customers_401) - refused)), wrk saw $n401" \
	test "$(($(stat_of customers_401) - refused))" = "$n401"
now=$(grep -c 'upstream answered 401, header rejected' "$tmp/nginx/error.log")
check "revoke: $((now - rejected)) rejects logged for $n401 401s" \
	test "$((now - rejected))" = "$n401"
check "revoke: $(($(stat_of logins) - logins)) more logins, expected 1" \
	test "$(stat_of logins)" = $((logins + 1))
storm=$n401

# 3b. The same with the default reject_min_age: the token is seconds old,
#    so the 401s do not drop it at once (the API might refuse something
#    else than the token: one endpoint's permission). It is kept until the
#    end of the host's backoff step (about 1 s): every request gets the
#    API's 401 meanwhile, and then exactly one login replaces it, for all
#    4 workers and the thousands of rejects.
logins=$(stat_of logins)
revoke_under_load young "$url/young/ucaas/v1/customers" revoke
check "young: answers other than 200 and 401" only "$tmp/young.out" 200 401
young401=$(count "$tmp/young.out" 401)
check "young: no 401" test "$young401" -ge 1
check "young: $(($(stat_of logins) - logins)) more logins, expected 1" \
	test "$(stat_of logins)" = $((logins + 1))
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/young/ucaas/v1/customers")
check "young: after the load, $code, expected 200" test "$code" = 200

# 4. Expired mid-load (the API's 403), behind the error_page retry: the
#    refused requests are sent again with the new token; the client sees
#    no 403.
logins=$(stat_of logins)
refused=$(stat_of customers_403)
rejected=$(grep -c 'upstream answered 403, header rejected' "$tmp/nginx/error.log")
revoke_under_load retry "$retry_url/ucaas/v1/customers" expire
check "retry: answers other than 200" only "$tmp/retry.out" 200
check "retry: wrk counted non-2xx answers" \
	not_grep "Non-2xx or 3xx responses" "$tmp/retry.out"
retried=$(($(stat_of customers_403) - refused))
check "retry: the mock refused $retried requests, expected 1 to $CONNECTIONS" \
	test "$retried" -ge 1 -a "$retried" -le "$CONNECTIONS"
now=$(grep -c 'upstream answered 403, header rejected' "$tmp/nginx/error.log")
check "retry: $((now - rejected)) rejects logged for $retried 403s" \
	test "$((now - rejected))" = "$retried"
check "retry: $(($(stat_of logins) - logins)) more logins, expected 1" \
	test "$(stat_of logins)" = $((logins + 1))

# reload_under_load NAME OPENED [WRK-ARGS...]: `nginx -s reload` during
# a long load, once the mock has answered 50 requests of it; waits until
# 4 new workers serve and the old ones have gone, then 100 more answers. Then the workers have
# opened the profile OPENED times in all. Output in $tmp/NAME.out.
reload_under_load() {
	local name=$1 opened=$2 out=$tmp/$1.out base before after replaced w _
	shift 2
	logins=$(stat_of logins)
	base=$(stat_of customers_ok)
	before=$(workers)
	load "$url/ucaas/v1/customers" 110 "$out" "$@"
	wait_for customers_ok $((base + 50)) ||
		fail "$name: the load did not start (wrk: $(cat "$out"))"
	ngx -s reload 2>"$tmp/reload.err" ||
		fail "$name: nginx -s reload: $(cat "$tmp/reload.err")"
	replaced=no
	for _ in $(seq 300); do
		after=$(workers)
		if [ "$(echo "$after" | wc -w)" = 4 ]; then
			replaced=yes
			for w in $before; do
				case " $after" in *" $w "*) replaced=no ;; esac
			done
			[ $replaced = yes ] && break
		fi
		sleep 0.1
	done
	check "$name: the workers were not replaced (before: $before, after: $after)" \
		test $replaced = yes
	served=$(stat_of customers_ok)
	wait_for customers_ok $((served + 100)) ||
		fail "$name: nothing served by the new workers"
	stop_load "$out"
	report "$name" "$out"
	check "$name: no request after the new workers started" \
		test "$(stat_of customers_ok)" -gt "$served"
	check "$name: answers other than 200" only "$out" 200
	check "$name: wrk counted non-2xx answers" \
		not_grep "Non-2xx or 3xx responses" "$out"
	check "$name: $(($(stat_of logins) - logins)) logins, expected 0" \
		test "$(stat_of logins)" = "$logins"
	w=$(grep -c 'profile "workers" opened' "$tmp/nginx/error.log")
	check "$name: the workers opened the profile $w times in all, expected $opened" \
		test "$w" = "$opened"
}

# 5. `nginx -s reload` under load: new workers open the profile, the old
#    ones finish their requests with their own handle; no login, no
#    failed request. One request per connection, first: an old worker
#    closes its idle keep-alive connections when told to quit, and a
#    request sent on one at that moment is lost to HTTP/1.1's keep-alive
#    race (RFC 9112 9.3.1: a client retries it; wrk counts a socket
#    error instead), module or not.
reload_under_load reload 8 -H "Connection: close"
check "reload: socket errors" test "$(field "$tmp/reload.out" socket_errors)" = 0
# With keep-alive: still every answer a 200, and at most one connection
# lost per client connection the old workers held.
reload_under_load reload-keepalive 12
lost=$(field "$tmp/reload-keepalive.out" socket_errors)
check "reload-keepalive: $lost connections lost, expected at most $CONNECTIONS" \
	test "$lost" -le "$CONNECTIONS"

# 6. The login route down and no token cached (profile "cold"): a 502 from
#    nginx itself, nothing sent upstream, the error log naming the status
#    and the library's last error. The warm profile keeps working.
mock_config '{"login_status": 503}'
sent=$(( $(stat_of customers_ok) + $(stat_of customers_refused) ))
failed=$(stat_of logins_failed)
curl -s -o "$tmp/cold.body" -w '%{http_code}' "$url/cold/ucaas/v1/customers" \
	>"$tmp/cold.code"
check "login down: $(cat "$tmp/cold.code"), expected 502" \
	test "$(cat "$tmp/cold.code")" = 502
check "login down: the 502 is not nginx's page: $(cat "$tmp/cold.body")" \
	grep -q "502 Bad Gateway" "$tmp/cold.body"
check "login down: no login attempt" test "$(stat_of logins_failed)" -gt "$failed"
grep 'profile "cold": no Authorization header' "$tmp/nginx/error.log" \
	>"$tmp/cold.log"
check "login down: no log line" test -s "$tmp/cold.log"
check "login down: the log does not name the status: $(cat "$tmp/cold.log")" \
	grep -q "(UCAASAUTH_E_UNAVAILABLE)" "$tmp/cold.log"
check "login down: the log does not give the HTTP status: $(cat "$tmp/cold.log")" \
	grep -q "503" "$tmp/cold.log"
check "login down: the log shows a secret" \
	not_grep -e "$PASSWORD" -e "$APP_KEY" "$tmp/nginx/error.log"
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/cold/ucaas/v1/customers")
check "login down, backing off: $code, expected 502" test "$code" = 502
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/ucaas/v1/customers")
check "login down: the cached token gives $code, expected 200" test "$code" = 200
check "login down: requests went upstream without a header" \
	test $(( $(stat_of customers_ok) + $(stat_of customers_refused) )) = $((sent + 1))
mock_config '{"login_status": null}'

# A profile that could not be opened (no credential file): each worker
# logged it, its requests get 502 with the cause; once the file is there,
# the workers open it (at most once a second each) and it serves.
check "late: no alert at the workers' start" \
	test "$(grep -c '\[alert\].*profile "late" cannot be opened' "$tmp/nginx/error.log")" -ge 4
grep -m 1 '\[alert\].*profile "late" cannot be opened' "$tmp/nginx/error.log" >"$tmp/late.log"
check "late: the alert does not name the status: $(cat "$tmp/late.log")" \
	grep -q "(UCAASAUTH_E_CREDENTIALS): .*late.cred" "$tmp/late.log"
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/late/ucaas/v1/customers")
check "late: $code, expected 502" test "$code" = 502
check "late: the 502 is not logged" \
	grep -q 'profile "late" is not open, no Authorization header: .*(UCAASAUTH_E_CREDENTIALS)' \
	"$tmp/nginx/error.log"
printf 'email=ops@example.com\npassword=%s\n' "$PASSWORD" |
	"$cli" store late >/dev/null || fatal "ucaas-auth store late"
# Served: 20 requests in a row answered 200 (a worker that has not tried
# again yet would answer 502 and start the count over).
served=0
for _ in $(seq 600); do
	code=$(curl -s -o /dev/null -w '%{http_code}' "$url/late/ucaas/v1/customers")
	if [ "$code" = 200 ]; then
		served=$((served + 1))
		[ $served = 20 ] && break
	else
		served=0
		sleep 0.1
	fi
done
check "late: still not served once stored ($code)" test "$served" = 20

# A mistake: the variable without ucaasauth_profile. The header is left
# out (the API refuses), and the error log says why.
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/noprofile/ucaas/v1/customers")
check "no profile: $code, expected 401 from the API" test "$code" = 401
check "no profile: nothing in the error log" \
	grep -q 'ucaasauth_authorization is empty here' "$tmp/nginx/error.log"
# No alert, no error but those provoked above: no failed reject, no
# upstream trouble.
grep -E '\[(error|alert|crit|emerg)\]' "$tmp/nginx/error.log" |
	grep -v -e 'profile "cold": no Authorization header' \
		-e 'profile "late" cannot be opened' \
		-e 'profile "late" is not open' \
		-e 'ucaasauth_authorization is empty here' >"$tmp/errors"
check "errors in nginx's log: $(head -n 3 "$tmp/errors")" test ! -s "$tmp/errors"
# Each worker opened each profile once, at its start: never again for a
# request (the profile "cold" included: it opens, it only cannot log in),
# but for "late".
check "a profile was opened again for a request" \
	not_grep -E 'profile "(workers|young|cold)" opened, client' "$tmp/nginx/error.log"

echo "figures: cold start $(field "$tmp/cold.out" requests) requests, 1 login;" \
	"revoked: $storm 401s for $CONNECTIONS connections, 1 login;" \
	"young token revoked: $young401 401s, 1 login;" \
	"expired behind the retry: $retried sent again, 0 403s, 1 login;" \
	"reload: $(field "$tmp/reload.out" requests) requests, 0 failed, 0 logins;" \
	"reload with keep-alive: $lost connections lost, 0 failed answers"
if [ "$failures" -ne 0 ]; then
	echo "$failures of $checks checks failed" >&2
	exit 1
fi
echo "ok: $checks checks"
exit 0
