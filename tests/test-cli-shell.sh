#!/bin/bash
# ucaas-auth reject and ucaas-auth curl, the shell's compare-and-invalidate,
# against the mock:
#   1. 32 shell loops that each got a 401 for the same dropped token each
#      reject the header they sent, then ask for a header again: one login
#      for all of them (ucaas-auth flush, the old advice, made 10-16);
#   2. ucaas-auth curl: a dropped token (401) and an expired one (403) give
#      one reject, one retry and a 200; a refused Basic header is tried
#      twice, not more; curl's exit status comes through; the user's
#      stdin and stdout are curl's; and the header is never in curl's
#      argv or environment (/proc/PID/cmdline and environ of every curl
#      run, recorded by a $UCAASAUTH_CURL wrapper);
#   3. 32 ucaas-auth curl at once after the token was dropped: one login.
#
# usage: test-cli-shell.sh PATH-TO-ucaas-auth
set -u

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
	echo "usage: $0 PATH-TO-ucaas-auth" >&2
	exit 1
fi
cli=$(realpath "$1")
real_curl=$(command -v curl) || { echo "curl is not installed" >&2; exit 1; }
. "$(dirname "$0")/world.sh"
world_start "$cli"
LOOPS=32

token_of() { # the current token at the mock
	stat_of current_token
}

# 1. 32 loops, one dropped token, one login.
header=$("$cli" header tok)
check "first header: $(stat_of logins) logins" [ "$(stat_of logins)" = 1 ]
old_token=${header#Authorization: Token }
mock_post /_mock/config "{\"revoke\": \"$old_token\"}"
mkdir "$tmp/loops"
# loop N: the request with the header every loop sent (refused), a
# barrier so that every loop holds its 401 before any rejects, then
# reject, a new header and the request again.
loop() {
	local n=$1 first second new
	first=$(printf '%s\n' "$header" |
		curl -s -o /dev/null -w '%{http_code}' -H @- "$base/customers")
	touch "$tmp/loops/ready.$n"
	for _ in $(seq 600); do
		[ -e "$tmp/loops/go" ] && break
		sleep 0.05
	done
	printf '%s\n' "$header" | "$cli" reject tok ||
		echo "reject failed" >>"$tmp/loops/result.$n"
	new=$("$cli" header tok) || echo "header failed" >>"$tmp/loops/result.$n"
	second=$(printf '%s\n' "$new" |
		curl -s -o /dev/null -w '%{http_code}' -H @- "$base/customers")
	echo "$first $second" >>"$tmp/loops/result.$n"
}
pids=()
for n in $(seq $LOOPS); do
	loop "$n" 2>>"$tmp/loops/err" &
	pids+=($!)
done
for _ in $(seq 600); do
	[ "$(find "$tmp/loops" -name 'ready.*' | wc -l)" -ge $LOOPS ] && break
	sleep 0.05
done
touch "$tmp/loops/go"
wait "${pids[@]}"
results=$(cat "$tmp/loops"/result.* | sort | uniq -c | sed 's/^ *//')
check "loops: $results; $(cat "$tmp/loops/err")" \
	[ "$results" = "$LOOPS 401 200" ]
logins=$(stat_of logins)
check "loops: $((logins - 1)) new logins for $LOOPS rejects, expected 1" \
	[ "$logins" = 2 ]
echo "reject: $LOOPS loops: $results (first try, retry);" \
	"$((logins - 1)) new login"

# 2. ucaas-auth curl, through a wrapper that records each run of curl.
mkdir "$tmp/argv"
cat >"$tmp/curl-wrapper" <<WRAP
#!/bin/bash
stdin=\$(readlink /proc/\$\$/fd/0)
stdout=\$(readlink /proc/\$\$/fd/1)
{
	echo "== cmdline"; tr '\0' '\n' </proc/\$\$/cmdline; echo
	echo "== environ"; tr '\0' '\n' </proc/\$\$/environ; echo
	echo "== stdin \$stdin"
	echo "== stdout \$stdout"
} >"$tmp/argv/curl.\$\$"
exec "$real_curl" "\$@"
WRAP
chmod +x "$tmp/curl-wrapper"
export UCAASAUTH_CURL=$tmp/curl-wrapper
runs() { find "$tmp/argv" -name 'curl.*' | wc -l; }

# ucurl WANT-EXIT ARGS...: ucaas-auth curl, output in $tmp/c.out, c.err.
ucurl() {
	local want=$1 got
	shift
	"$cli" curl "$@" <"$tmp/stdin" >"$tmp/c.out" 2>"$tmp/c.err"
	got=$?
	check "ucaas-auth curl $* exited $got, expected $want: $(cat "$tmp/c.err")" \
		[ "$got" = "$want" ]
}
echo "nothing to read" >"$tmp/stdin"
tokens=("$old_token" "$(token_of)")

# A dropped token: 401, one reject, one retry with a new token, 200.
mock_post /_mock/config "{\"revoke\": \"$(token_of)\"}"
logins=$(stat_of logins)
r0=$(runs)
ucurl 0 tok -- -s -w '%{http_code}\n' "$base/customers"
tokens+=("$(token_of)")
check "401: curl ran $(($(runs) - r0)) times, expected 2" [ "$(($(runs) - r0))" = 2 ]
check "401: $(($(stat_of logins) - logins)) logins, expected 1" \
	[ "$(stat_of logins)" = $((logins + 1)) ]
check "401: output $(cat "$tmp/c.out")" [ "$(tail -n1 "$tmp/c.out")" = '{"result": 0, "customers": []}200' ]
# The refused answer's body comes first (as documented), then the retry's.
check "401: the refused answer: $(cat "$tmp/c.out")" \
	[ "$(sed -n '1s/.*}//p' "$tmp/c.out")" = 401 ]
check "401: stderr $(cat "$tmp/c.err")" [ ! -s "$tmp/c.err" ]

# An expired token: 403, the same. With -f the refused body is not shown.
mock_post /_mock/config '{"expire_all": true}'
logins=$(stat_of logins)
r0=$(runs)
ucurl 0 -- -sf "$base/customers"
tokens+=("$(token_of)")
check "403: curl ran $(($(runs) - r0)) times, expected 2" [ "$(($(runs) - r0))" = 2 ]
check "403: $(stat_of customers_403) refused, expected 1" [ "$(stat_of customers_403)" = 1 ]
check "403: $(($(stat_of logins) - logins)) logins, expected 1" \
	[ "$(stat_of logins)" = $((logins + 1)) ]
check "403: output $(cat "$tmp/c.out")" [ "$(cat "$tmp/c.out")" = '{"result": 0, "customers": []}' ]

# A warm token: one run, no login; stdin and stdout are the user's.
logins=$(stat_of logins)
r0=$(runs)
ucurl 0 tok -- -s "$base/customers"
last=$(ls -t "$tmp/argv"/curl.* | head -n1)
check "warm: curl ran $(($(runs) - r0)) times" [ "$(($(runs) - r0))" = 1 ]
check "warm: a login" [ "$(stat_of logins)" = "$logins" ]
check "warm: curl's stdin: $(grep stdin "$last")" grep -qx "== stdin $tmp/stdin" "$last"
check "warm: curl's stdout: $(grep stdout "$last")" grep -qx "== stdout $tmp/c.out" "$last"
check "warm: the header reaches curl out of argv: $(cat "$last")" \
	grep -qx -- "@/dev/fd/[0-9]*" "$last"

# A Basic header the server refuses: two runs, then curl's status.
cat >>"$conf" <<CONF

[profile bad]
api_base = $base
app_id = myapp
provider = basic
CONF
printf 'app_key=not-the-key\n' | "$cli" store bad 2>/dev/null
bad_b64=$(printf 'myapp:not-the-key' | base64 -w0)
r0=$(runs)
ucurl 0 bad -- -s -o /dev/null "$base/customers"
check "basic 401: curl ran $(($(runs) - r0)) times, expected 2" [ "$(($(runs) - r0))" = 2 ]
r0=$(runs)
ucurl 22 bad -- -sf "$base/customers"
check "basic 401 -f: curl ran $(($(runs) - r0)) times, expected 2" [ "$(($(runs) - r0))" = 2 ]

# curl's own statuses, and ucaas-auth's.
r0=$(runs)
ucurl 22 srv -- -sf "$base/nowhere"
check "404: curl ran $(($(runs) - r0)) times, expected 1" [ "$(($(runs) - r0))" = 1 ]
ucurl 7 srv -- -s "http://127.0.0.1:1/"
UCAASAUTH_CURL=$tmp/no-such-curl ucurl 127 srv -- -s "$base/customers"
check "no curl: $(cat "$tmp/c.err")" grep -q "no-such-curl" "$tmp/c.err"
ucurl 125 nosuch -- -s "$base/customers"
check "no profile: $(cat "$tmp/c.err")" grep -q "nosuch" "$tmp/c.err"
ucurl 2 tok
ucurl 2 tok --
ucurl 2 tok -s "$base/customers"
ucurl 2 ../etc -- -s "$base/customers"

# 3. 32 ucaas-auth curl at once on a dropped token: one login.
mock_post /_mock/config "{\"revoke\": \"$(token_of)\"}"
logins=$(stat_of logins)
refused=$(stat_of customers_refused)
mkdir "$tmp/par"
pids=()
for n in $(seq $LOOPS); do
	"$cli" curl tok -- -sf -o /dev/null -w '%{http_code}\n' \
		"$base/customers" >"$tmp/par/out.$n" 2>&1 &
	pids+=($!)
done
wait "${pids[@]}"
tokens+=("$(token_of)")
# Each prints the status of each run: "401" then "200", or "200" alone
# when the token was replaced before it started.
results=$(for f in "$tmp/par"/out.*; do tail -n1 "$f"; done | sort | uniq -c |
	sed 's/^ *//')
check "parallel curl: $results" [ "$results" = "$LOOPS 200" ]
check "parallel curl: $(($(stat_of logins) - logins)) logins, expected 1" \
	[ "$(stat_of logins)" = $((logins + 1)) ]
echo "curl: $LOOPS at once on a dropped token: $results," \
	"$(($(stat_of customers_refused) - refused)) refused and retried," \
	"$(($(stat_of logins) - logins)) new login"

# No header, token or App Key in any curl's argv or environment.
check "no curl run recorded" [ "$(runs)" -gt $LOOPS ]
check "a curl's argv or environ holds a header" \
	bash -c '! grep -rqi "authorization" "$1"' _ "$tmp/argv"
for t in "${tokens[@]}" "$bad_b64" \
	"$(printf 'myapp:%s' "$WORLD_APP_KEY" | base64 -w0)"; do
	check "a curl's argv or environ holds '$t'" \
		bash -c '! grep -rqF -- "$1" "$2"' _ "$t" "$tmp/argv"
done
echo "$(runs) curl runs recorded, none with a header, token or App Key" \
	"in argv or environ"

world_done
