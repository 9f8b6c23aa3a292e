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
# Each value is 1 to 1024 printable bytes: one byte more, or a control
# character, is refused by the field's name (never its value), nothing
# stored; exactly 1024 bytes of each are stored whole.
long=$(head -c 1025 /dev/zero | tr '\0' L)
for key in app_key email password; do
	printf '%s=%s\n' "$key" "$long" >"$tmp/long-secret"
	run 1 "$tmp/long-secret" -- store srv
	has err "$key must be 1 to 1024 bytes"
	lacks err "LLLLLLLL"
	same "$tmp/srv.cred" "$tmp/srv.cred.orig" "an overlong $key changed it"
done
printf 'app_key=Zq9\001HIDDEN\n' >"$tmp/control-secret"
run 1 "$tmp/control-secret" -- store srv
has err "control character in app_key"
lacks err "HIDDEN"
same "$tmp/srv.cred" "$tmp/srv.cred.orig" "a control character changed it"
max=$(head -c 1024 /dev/zero | tr '\0' M)
printf '\n[profile max]\napi_base = https://api.enablex.io/ucaas/v1\n' >>"$conf"
printf 'app_id = myapp\nprovider = basic\n' >>"$conf"
printf 'app_key=%s\nemail=%s\npassword=%s\n' "$max" "$max" "$max" \
	>"$tmp/max-secrets"
run 0 "$tmp/max-secrets" -- store max
run 0 -- header max
checks=$((checks + 1))
[ "$(cat "$tmp/out")" = \
	"Authorization: Basic $(printf 'myapp:%s' "$max" | base64 -w0)" ] ||
	fail "an App Key of 1024 bytes was not stored whole"

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

# reject: the header line on standard input, exactly as header printed
# it. A Basic header has nothing to drop: success, and nothing printed.
run 0 -- header srv
cp "$tmp/out" "$tmp/header-line"
run 0 "$tmp/header-line" -- reject srv
checks=$((checks + 1))
[ ! -s "$tmp/out" ] && [ ! -s "$tmp/err" ] ||
	fail "reject printed: $(cat "$tmp/out" "$tmp/err")"
printf '%s' "$WANT" >"$tmp/no-newline"
run 0 "$tmp/no-newline" -- reject srv
run 0 "$tmp/header-line" -- reject
# Anything but one header line is refused, and never echoed.
run 1 /dev/null -- reject srv
has err "no header line"
printf '\n' >"$tmp/empty-line"
run 1 "$tmp/empty-line" -- reject srv
has err "no header line"
printf '%s\n%s\n' "$WANT" "$WANT" >"$tmp/two-lines"
run 1 "$tmp/two-lines" -- reject srv
has err "more than one line"
lacks err "$B64"
printf '%s\nx' "$WANT" >"$tmp/two-lines"
run 1 "$tmp/two-lines" -- reject srv
has err "more than one line"
head -c 2070 /dev/zero | tr '\0' A >"$tmp/long-line"
run 1 "$tmp/long-line" -- reject srv
has err "longer than a header"
head -c 100000 /dev/zero | tr '\0' A >"$tmp/long-line"
run 1 "$tmp/long-line" -- reject srv
has err "longer than a header"
printf '%s\r\n' "$WANT" >"$tmp/crlf"
run 1 "$tmp/crlf" -- reject srv
has err "control character"
lacks err "$B64"
run 2 "$tmp/header-line" -- reject srv extra
run 2 "$tmp/header-line" -- reject --header=x srv
run 2 "$tmp/header-line" -- reject ../etc
run 1 "$tmp/header-line" -- reject nosuch
has err "nosuch"

# curl: usage errors, before anything runs.
run 2 -- curl
run 2 -- curl srv
run 2 -- curl srv --
run 2 -- curl --
run 2 -- curl srv -s https://api.enablex.io/
run 2 -- curl a b -- https://api.enablex.io/
run 2 -- curl ../etc -- https://api.enablex.io/
has err "../etc"

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
has out "reject [PROFILE]"
has out "curl [PROFILE] -- CURL-ARGS"

# A login profile against the mock server: token, status, flush.
mock=${MOCK_UCAAS:-$(dirname "$0")/mock-ucaas.py}
PASSWORD=Zq9-SECRET-PASSWORD
python3 "$mock" --port-file "$tmp/port" --quiet --app-id myapp \
	--app-key "$APP_KEY" --email ops@example.com --password "$PASSWORD" &
mock_pid=$!
trap 'kill $mock_pid 2>/dev/null; wait $mock_pid 2>/dev/null; rm -rf "$tmp"' EXIT
# Polled, bounded (60 s): the mock listens in well under a second.
for _ in $(seq 600); do [ -s "$tmp/port" ] && break; sleep 0.1; done
if [ ! -s "$tmp/port" ]; then
	echo "FAIL: the mock did not start within 60 s" >&2
	exit 1
fi
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

# The wall clock around the login and the --json output: expires_at is
# 900 s after a moment in between (the token's life starts when the
# login is sent), however long the commands take (valgrind, a loaded
# machine).
before=$(date +%s)
run 0 -- token tok
token=$(cat "$tmp/out")
checks=$((checks + 1))
[ ${#token} = 120 ] || fail "token printed '$token'"
run 0 -- header tok
checks=$((checks + 1))
[ "$(cat "$tmp/out")" = "Authorization: Token $token" ] ||
	fail "header tok printed '$(cat "$tmp/out")'"
run 0 -- token --json tok
after=$(date +%s)
checks=$((checks + 1))
python3 - "$tmp/out" "$token" "$before" "$after" <<'PY' ||
import calendar, json, sys, time
j = json.load(open(sys.argv[1]))
assert j["token"] == sys.argv[2], "token"
assert j["header"] == "Authorization: Token " + sys.argv[2], "header"
assert j["generation"] == 1, "generation"
at = calendar.timegm(time.strptime(j["expires_at"], "%Y-%m-%dT%H:%M:%SZ"))
before, after = int(sys.argv[3]), int(sys.argv[4])
assert before + 900 <= at <= after + 900, \
    "expires_at %d s after the login began, %d s after --json" % (
        at - before, at - after)
PY
	fail "token --json: $(cat "$tmp/out")"
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

# reject: a stale header drops nothing; the current one is dropped once,
# however often it is rejected. (A reject of a token younger than
# reject_min_age counts as a failed login: 0 here, where the key exists.)
printf 'reject_min_age = 0\n' >>"$conf"
if ! "$cli" check tok >"$tmp/check" 2>&1 &&
	grep -q reject_min_age "$tmp/check"; then
	sed -i '/^reject_min_age = 0$/d' "$conf"
fi
run 0 -- header tok
cp "$tmp/out" "$tmp/current"
printf 'Authorization: Token not-the-current-one\n' >"$tmp/stale"
run 0 "$tmp/stale" -- reject tok
run 0 -- header tok
same "$tmp/out" "$tmp/current" "a stale reject dropped the token"
run 0 "$tmp/current" -- reject tok
checks=$((checks + 1))
[ ! -s "$tmp/out" ] && [ ! -s "$tmp/err" ] ||
	fail "reject tok printed: $(cat "$tmp/out" "$tmp/err")"
run 0 "$tmp/current" -- reject tok
run 0 -- header tok
checks=$((checks + 1))
! cmp -s "$tmp/out" "$tmp/current" || fail "reject tok kept the token"
checks=$((checks + 1))
[ "$(stat_of logins)" = 3 ] ||
	fail "two rejects of one header: $(stat_of logins) logins, expected 3"
lacks out "$(cat "$tmp/current")"

# curl: the mock drops the token; one reject, one retry, one login, 200.
python3 -c 'import sys,urllib.request as u
u.urlopen(u.Request(sys.argv[1] + "/_mock/config",
	data=("{\"revoke\": \"%s\"}" % sys.argv[2]).encode())).read()' \
	"${base%/ucaas/v1}" "$(sed 's/^Authorization: Token //' "$tmp/out")"
run 0 -- curl tok -- -s -w ' %{http_code}\n' "$base/customers"
has out '{"result": 0, "customers": []} 200'
has out ' 401'
checks=$((checks + 1))
[ "$(stat_of logins)" = 4 ] ||
	fail "curl after a drop: $(stat_of logins) logins, expected 4"
run 22 -- curl tok -- -sf "$base/nowhere"

# A refused password: status 1 with the server's words, then the
# recorded failure and the backoff. Judged on what is recorded, not on
# when status runs: the first backoff step (1 s) may be over by then
# (valgrind, a loaded machine), and status says so ("over, the next call
# logs in") instead of the time left.
printf 'email=ops@example.com\npassword=wrong\n' >"$tmp/secrets"
run 0 "$tmp/secrets" -- store tok
run 0 -- flush tok
logins=$(stat_of logins)
run 1 -- header tok
has err "401"
run 0 -- status tok
has out "failures:     1 in a row"
has out "last error:   "
has out "401"
checks=$((checks + 1))
grep -qE '^backoff: +(next login attempt in [0-9]+ s|over, the next call logs in)$' \
	"$tmp/out" || fail "status shows no backoff line: $(cat "$tmp/out")"
lacks out "wrong"
# One attempt, refused; status itself never logs in.
checks=$((checks + 1))
[ "$(stat_of logins)" = $((logins + 1)) ] ||
	fail "a refused header and a status: $(($(stat_of logins) - logins)) logins, expected 1"
checks=$((checks + 1))
[ "$(stat_of logins_failed)" = 1 ] ||
	fail "$(stat_of logins_failed) refused logins, expected 1"

# store on a terminal, through a pseudo-terminal (tty-store.py): limits,
# control characters, no echo, no spill into the next prompt or the shell,
# the echo restored after Ctrl-C. cache = process: tok's backoff above is
# not this profile's.
printf '\n[profile ttykey]\napi_base = https://api.enablex.io/ucaas/v1\n' \
	>>"$conf"
printf 'app_id = myapp\nprovider = basic\n' >>"$conf"
printf '\n[profile ttylogin]\napi_base = %s\napp_id = myapp\n' "$base" >>"$conf"
printf 'provider = login\ncache = process\n' >>"$conf"
checks=$((checks + 1))
python3 "$(dirname "$0")/tty-store.py" "$cli" ttykey myapp ttylogin \
	ops@example.com "$PASSWORD" >"$tmp/tty" 2>&1 ||
	fail "store on a terminal: $(cat "$tmp/tty")"

if [ "$failures" -ne 0 ]; then
	echo "$failures of $checks checks failed" >&2
	exit 1
fi
echo "ok"
exit 0
