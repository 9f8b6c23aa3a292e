#!/bin/bash
# examples/shell.sh against the mock: one login for a warm loop; after the
# mock drops the token (401) or expires it (403), one reject and one retry
# per script that saw the refusal, one more login for all of them, no
# failed request; a refused Basic header is tried twice, not more. Every
# curl the example runs goes through a wrapper that records its argv and
# environment as the kernel has them (/proc/PID/cmdline and environ): no
# header or token may be there, and no printf may run as a process.
#
# usage: test-shell-example.sh PATH-TO-shell.sh PATH-TO-ucaas-auth
set -u

if [ $# -ne 2 ] || [ ! -r "$1" ] || [ ! -x "$2" ]; then
	echo "usage: $0 PATH-TO-shell.sh PATH-TO-ucaas-auth" >&2
	exit 1
fi
example=$(realpath "$1")
cli=$(realpath "$2")
real_curl=$(command -v curl) || { echo "curl is not installed" >&2; exit 1; }
. "$(dirname "$0")/world.sh"
world_start "$cli"


# PATH: ucaas-auth, a curl that records then runs the real one, and a
# printf that must never run (the shell's builtin is what keeps the
# header out of argv).
mkdir "$tmp/bin" "$tmp/argv"
ln -s "$cli" "$tmp/bin/ucaas-auth"
cat >"$tmp/bin/curl" <<WRAP
#!/bin/bash
{
	echo "== cmdline"; tr '\0' '\n' </proc/\$\$/cmdline
	echo "== environ"; tr '\0' '\n' </proc/\$\$/environ
} >"$tmp/argv/curl.\$\$"
exec "$real_curl" "\$@"
WRAP
printf '#!/bin/sh\ntouch "%s/printf-ran"\n' "$tmp" >"$tmp/bin/printf"
chmod +x "$tmp/bin/curl" "$tmp/bin/printf"
export PATH=$tmp/bin:$PATH

# run NAME PROFILE COUNT: the example, output in $tmp/NAME.out.
run() {
	sh "$example" "$2" "$base/customers" "$3" >"$tmp/$1.out" 2>"$tmp/$1.err"
	echo $? >"$tmp/$1.rc"
}
# total FIELD NAME...: the sum of "FIELD: N" over the summaries.
total() {
	local field=$1 sum=0 n
	shift
	for name; do
		n=$(sed -n "s/.*$field: \([0-9]*\).*/\1/p" "$tmp/$name.out")
		sum=$((sum + ${n:-0}))
	done
	echo "$sum"
}

# 1. A warm loop: 5 requests, one login.
run warm tok 5
check "warm: exit $(cat "$tmp/warm.rc"): $(cat "$tmp/warm.out" "$tmp/warm.err")" \
	[ "$(cat "$tmp/warm.rc")" = 0 ]
check "warm: $(tail -n1 "$tmp/warm.out")" \
	grep -qx 'requests: 5, ok: 5, failed: 0, retried: 0' "$tmp/warm.out"
check "warm: $(stat_of logins) logins" [ "$(stat_of logins)" = 1 ]
tokens=("$(stat_of current_token)")

# 2. The mock drops the token (401): 8 scripts at once, 5 requests each.
mock_post /_mock/config "{\"revoke\": \"${tokens[0]}\"}"
names=()
pids=()
for i in $(seq 8); do
	run "drop$i" tok 5 &
	pids+=($!)
	names+=("drop$i")
done
wait "${pids[@]}"
for name in "${names[@]}"; do
	check "$name: exit $(cat "$tmp/$name.rc"): $(cat "$tmp/$name.out" "$tmp/$name.err")" \
		[ "$(cat "$tmp/$name.rc")" = 0 ]
done
requests=$(total requests "${names[@]}")
failed=$(total failed "${names[@]}")
retried=$(total retried "${names[@]}")
refused=$(stat_of customers_401)
check "drop: $requests requests" [ "$requests" = 40 ]
check "drop: $failed failed" [ "$failed" = 0 ]
check "drop: $(stat_of logins) logins, expected 2" [ "$(stat_of logins)" = 2 ]
check "drop: the mock refused $refused, no script saw it" [ "$refused" -ge 1 ]
check "drop: $retried retries for $refused refusals" [ "$retried" = "$refused" ]
echo "dropped token: 8 scripts, $requests requests, $failed failed," \
	"$refused refused and retried, logins 1 -> $(stat_of logins)"
tokens+=("$(stat_of current_token)")

# 3. The mock expires every token (403): one reject, one retry, one login.
mock_post /_mock/config '{"expire_all": true}'
run expired tok 3
check "expired: $(cat "$tmp/expired.out" "$tmp/expired.err")" \
	grep -qx 'requests: 3, ok: 3, failed: 0, retried: 1' "$tmp/expired.out"
check "expired: request 1 $(head -n1 "$tmp/expired.out")" \
	grep -qx 'request 1: HTTP 200 (retried)' "$tmp/expired.out"
check "expired: $(stat_of customers_403) 403s" [ "$(stat_of customers_403)" = 1 ]
check "expired: $(stat_of logins) logins, expected 3" [ "$(stat_of logins)" = 3 ]
tokens+=("$(stat_of current_token)")

# 4. A Basic header the server refuses: two tries, then a failure.
cat >>"$conf" <<CONF

[profile bad]
api_base = $base
app_id = myapp
provider = basic
CONF
printf 'app_key=not-the-key\n' | "$cli" store bad 2>/dev/null
before=$(stat_of customers_401)
run bad bad 1
check "bad: exit $(cat "$tmp/bad.rc")" [ "$(cat "$tmp/bad.rc")" = 1 ]
check "bad: $(cat "$tmp/bad.out")" \
	grep -qx 'requests: 1, ok: 0, failed: 1, retried: 1' "$tmp/bad.out"
check "bad: $(($(stat_of customers_401) - before)) tries, expected 2" \
	[ "$(($(stat_of customers_401) - before))" = 2 ]

# Nothing secret in any curl's argv or environment.
runs=$(find "$tmp/argv" -name 'curl.*' | wc -l)
check "only $runs curl runs recorded" [ "$runs" -ge 50 ]
check "a curl's argv or environ holds a header" \
	bash -c '! grep -rqi authorization "$1"' _ "$tmp/argv"
for t in "${tokens[@]}"; do
	check "a curl's argv or environ holds a token" \
		bash -c '! grep -rqF -- "$1" "$2"' _ "$t" "$tmp/argv"
done
check "a curl's argv or environ holds the App Key" \
	bash -c '! grep -rqF -- "$1" "$2"' _ "$(printf 'myapp:not-the-key' | base64 -w0)" "$tmp/argv"
check "printf ran as a process" [ ! -e "$tmp/printf-ran" ]

echo "$runs curl runs, none with a header or token in argv or environ"
world_done
