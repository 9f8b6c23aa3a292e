#!/bin/bash
# ucaas-auth, the command-line helper, as a user drives it: exit codes,
# what goes to stdout and stderr, and that no secret is ever printed or
# taken from argv.
#
# usage: test-cli.sh PATH-TO-ucaas-auth
set -u

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
	echo "usage: $0 PATH-TO-ucaas-auth" >&2
	exit 1
fi
case $1 in
/*) cli=$1 ;;
*) cli=$PWD/$1 ;;
esac
header_h=$(dirname "$0")/../libucaasauth/ucaasauth.h
# `meson test --setup valgrind` runs every command under valgrind.
read -r -a wrapper <<<"${CLI_WRAPPER:-}"

tmp=$(mktemp -d /tmp/test-cli.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
failures=0
checks=0

fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

# run EXPECTED-STATUS [STDIN-FILE] -- ARGS...: runs the CLI, keeps its
# output in $tmp/out and $tmp/err, and checks the exit status.
run() {
	local want=$1 input=/dev/null got
	shift
	if [ "$1" != -- ]; then
		input=$1
		shift
	fi
	shift
	"${wrapper[@]}" "$cli" "$@" <"$input" >"$tmp/out" 2>"$tmp/err"
	got=$?
	checks=$((checks + 1))
	if [ "$got" -ne "$want" ]; then
		fail "ucaas-auth $* exited $got, expected $want;" \
			"stdout: $(cat "$tmp/out"); stderr: $(cat "$tmp/err")"
	fi
}

# has FILE TEXT / lacks FILE TEXT: a fixed string is (not) in the output.
has() {
	checks=$((checks + 1))
	grep -qF -- "$2" "$tmp/$1" ||
		fail "$1 lacks '$2': $(cat "$tmp/$1")"
}
lacks() {
	checks=$((checks + 1))
	if grep -qF -- "$2" "$tmp/$1"; then
		fail "$1 shows '$2': $(cat "$tmp/$1")"
	fi
}

same() {
	checks=$((checks + 1))
	cmp -s "$1" "$2" || fail "$1 changed: $3"
}

APP_KEY=Zq9-SECRET-VALUE
B64=$(printf 'myapp:%s' "$APP_KEY" | base64 -w0)
WANT="Authorization: Basic $B64"

mkdir -m 0700 "$tmp/run" "$tmp/home"
export UCAASAUTH_RUNTIME_DIR=$tmp/run
export HOME=$tmp/home
unset CREDENTIALS_DIRECTORY XDG_RUNTIME_DIR
conf=$tmp/ucaasauth.conf
cat >"$conf" <<EOF
default_profile = srv

[profile srv]
api_base = https://api.enablex.io/ucaas/v1
app_id = myapp
provider = basic
EOF
chmod 0600 "$conf"
export UCAASAUTH_CONFIG=$conf

# keygen: the key of the default profile, 0600, never overwritten.
run 0 -- keygen
has out "$tmp/master.key"
checks=$((checks + 1))
[ "$(stat -c %a "$tmp/master.key")" = 600 ] ||
	fail "master.key mode $(stat -c %a "$tmp/master.key")"
checks=$((checks + 1))
[ "$(stat -c %s "$tmp/master.key")" = 32 ] ||
	fail "master.key is $(stat -c %s "$tmp/master.key") bytes"
cp "$tmp/master.key" "$tmp/master.key.orig"
run 1 -- keygen
has err "already exists"
same "$tmp/master.key" "$tmp/master.key.orig" "keygen overwrote the key"
run 1 -- keygen srv
same "$tmp/master.key" "$tmp/master.key.orig" "keygen srv overwrote the key"
run 0 -- keygen --key-file "$tmp/other.key"
checks=$((checks + 1))
[ "$(stat -c %a "$tmp/other.key")" = 600 ] || fail "other.key mode"

# store: the secrets come from stdin.
printf 'app_key=%s\n' "$APP_KEY" >"$tmp/secrets"
run 0 "$tmp/secrets" -- store srv
lacks out "$APP_KEY"
lacks err "$APP_KEY"
checks=$((checks + 1))
[ "$(stat -c %a "$tmp/srv.cred")" = 600 ] || fail "srv.cred mode"
checks=$((checks + 1))
if grep -qF "$APP_KEY" "$tmp/srv.cred"; then
	fail "srv.cred holds the App Key in clear"
fi
cp "$tmp/srv.cred" "$tmp/srv.cred.orig"

# A refused store leaves the stored secrets alone, and never echoes them.
printf 'colour=%s\n' "$APP_KEY" >"$tmp/bad-secrets"
run 1 "$tmp/bad-secrets" -- store srv
lacks err "$APP_KEY"
same "$tmp/srv.cred" "$tmp/srv.cred.orig" "a refused store changed it"
run 1 /dev/null -- store srv
has err "app_key"
same "$tmp/srv.cred" "$tmp/srv.cred.orig" "an empty store changed it"

# header: exactly the line, once.
run 0 -- header srv
checks=$((checks + 1))
[ "$(cat "$tmp/out")" = "$WANT" ] ||
	fail "header printed '$(cat "$tmp/out")', expected '$WANT'"
checks=$((checks + 1))
[ "$(wc -l <"$tmp/out")" = 1 ] || fail "header printed more than a line"
checks=$((checks + 1))
[ ! -s "$tmp/err" ] || fail "header wrote to stderr: $(cat "$tmp/err")"
run 0 -- header
checks=$((checks + 1))
[ "$(cat "$tmp/out")" = "$WANT" ] || fail "header (default profile)"

# An unknown profile: exit 1, named on stderr.
run 1 -- header nosuch
has err "nosuch"
checks=$((checks + 1))
[ ! -s "$tmp/out" ] || fail "header nosuch printed: $(cat "$tmp/out")"
run 2 -- header ../etc
run 2 -- header srv extra

# Usage errors: exit 2.
run 2 -- store
has err "usage"
run 2 -- frobnicate
has err "frobnicate"
run 2 --
run 2 -- --no-such-option header

# Secrets never travel in argv: there is no way to pass one.
run 2 -- store srv "app_key=x"
run 2 -- store srv --app-key=x
same "$tmp/srv.cred" "$tmp/srv.cred.orig" "store from argv changed it"

# --config instead of the environment.
unset UCAASAUTH_CONFIG
if [ ! -e /etc/ucaasauth/ucaasauth.conf ]; then
	run 1 -- header srv
	has err "no configuration file"
fi
run 0 -- --config "$conf" header srv
checks=$((checks + 1))
[ "$(cat "$tmp/out")" = "$WANT" ] || fail "--config header"
run 0 -- --config="$conf" header
checks=$((checks + 1))
[ "$(cat "$tmp/out")" = "$WANT" ] || fail "--config= header"
run 1 -- --config "$tmp/nowhere.conf" header srv
has err "$tmp/nowhere.conf"
export UCAASAUTH_CONFIG=$conf

# token: a basic profile has none.
run 1 -- token srv
has err "basic"
lacks out "$APP_KEY"
lacks out "$B64"
lacks err "$B64"

# status: the provider, never the secret.
run 0 -- status srv
has out "basic"
has out "srv"
lacks out "$APP_KEY"
lacks out "$B64"
lacks err "$APP_KEY"
lacks err "$B64"

# --version and --help.
run 0 -- --version
has out "ucaas-auth "
checks=$((checks + 1))
grep -qE '^ucaas-auth [0-9]+\.[0-9]+\.[0-9]+$' "$tmp/out" ||
	fail "--version printed '$(cat "$tmp/out")'"
if [ -r "$header_h" ]; then
	version=$(sed -n 's/^#define UCAASAUTH_VERSION "\(.*\)"$/\1/p' \
		"$header_h")
	checks=$((checks + 1))
	[ "$(cat "$tmp/out")" = "ucaas-auth $version" ] ||
		fail "--version printed '$(cat "$tmp/out")', expected $version"
fi
run 0 -- --help
has out "usage"

# A login profile against the mock server: token, status, flush.
mock=${MOCK_UCAAS:-$(dirname "$0")/mock-ucaas.py}
PASSWORD=Zq9-SECRET-PASSWORD
python3 "$mock" --port-file "$tmp/port" --quiet --app-id myapp \
	--app-key "$APP_KEY" --email ops@example.com --password "$PASSWORD" &
mock_pid=$!
trap 'kill $mock_pid 2>/dev/null; wait $mock_pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
base=http://127.0.0.1:$(cat "$tmp/port")/ucaas/v1
stat_of() {
	python3 -c 'import json,sys,urllib.request as u
print(json.load(u.urlopen(sys.argv[1] + "/_mock/stats"))[sys.argv[2]])' \
		"${base%/ucaas/v1}" "$1"
}
printf '\n[profile tok]\napi_base = %s\napp_id = myapp\nprovider = login\n' \
	"$base" >>"$conf"
printf 'email=ops@example.com\npassword=%s\n' "$PASSWORD" >"$tmp/secrets"
run 0 "$tmp/secrets" -- store tok
lacks err "$PASSWORD"

run 0 -- token tok
token=$(cat "$tmp/out")
checks=$((checks + 1))
[ ${#token} = 120 ] || fail "token printed '$token'"
run 0 -- header tok
checks=$((checks + 1))
[ "$(cat "$tmp/out")" = "Authorization: Token $token" ] ||
	fail "header tok printed '$(cat "$tmp/out")'"
run 0 -- token --json tok
checks=$((checks + 1))
python3 - "$tmp/out" "$token" <<'PY' || fail "token --json: $(cat "$tmp/out")"
import datetime, json, sys
j = json.load(open(sys.argv[1]))
assert j["token"] == sys.argv[2]
assert j["header"] == "Authorization: Token " + sys.argv[2]
assert j["generation"] == 1
left = datetime.datetime.strptime(j["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
left = (left - datetime.datetime.utcnow()).total_seconds()
assert 880 < left <= 900, left
PY
checks=$((checks + 1))
[ "$(stat_of logins)" = 1 ] || fail "three commands made $(stat_of logins) logins"

run 0 -- status tok
has out "generation:   1"
has out "token:        valid"
has out "logins:       1"
lacks out "$token"
lacks out "$PASSWORD"

run 0 -- flush tok
run 0 -- status tok
has out "token:        none"
run 0 -- header tok
checks=$((checks + 1))
[ "$(stat_of logins)" = 2 ] || fail "header after flush: $(stat_of logins) logins"
lacks out "$token"

# A refused password: status 1 with the server's words, then the backoff.
printf 'email=ops@example.com\npassword=wrong\n' >"$tmp/secrets"
run 0 "$tmp/secrets" -- store tok
run 0 -- flush tok
run 1 -- header tok
has err "401"
run 0 -- status tok
has out "failures:     1"
has out "backoff:"
lacks out "wrong"

if [ "$failures" -ne 0 ]; then
	echo "$failures of $checks checks failed" >&2
	exit 1
fi
echo "ok"
exit 0
