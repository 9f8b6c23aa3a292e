#!/bin/sh
# shell.sh PROFILE URL [COUNT]: GETs URL COUNT times (default 1) with the
# Authorization header of PROFILE, the way a script should:
#
#  - the header line stays in a shell variable and reaches curl on its
#    standard input (curl -H @-), never in a command's arguments, which
#    every user on the host can read in /proc/PID/cmdline (printf is a
#    builtin of sh, dash and bash: it runs no process);
#  - on a 401 or 403, the script hands the header it sent back to
#    `ucaas-auth reject`, again on standard input, and tries once more.
#    The reject drops the token only if it is still the host's current
#    one, so N scripts that see the same refused token cause one login,
#    not N (`ucaas-auth flush` would drop whatever is current, even a
#    token another script fetched a moment ago).
#
# Prints a line per request, "request N: HTTP STATUS", with " (retried)"
# when it took a second try, then "requests: N, ok: N, failed: N,
# retried: N". Exits 0 when every request got a 2xx answer.
set -u

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
	echo "usage: shell.sh PROFILE URL [COUNT]" >&2
	exit 2
fi
profile=$1
url=$2
count=${3:-1}
ok=0
failed=0
retried=0
i=0
while [ "$i" -lt "$count" ]; do
	i=$((i + 1))
	note=
	for attempt in 1 2; do
		if ! header=$(ucaas-auth header "$profile"); then
			status=000 # ucaas-auth said why on stderr
			break
		fi
		# A real script would keep the body: -o FILE instead.
		status=$(printf '%s\n' "$header" |
			curl -s -o /dev/null -w '%{http_code}' -H @- "$url")
		case $status in
		401 | 403) ;;
		*) break ;;
		esac
		[ "$attempt" = 2 ] && break
		printf '%s\n' "$header" | ucaas-auth reject "$profile" || break
		retried=$((retried + 1))
		note=" (retried)"
	done
	header=
	case $status in
	2??) ok=$((ok + 1)) ;;
	*) failed=$((failed + 1)) ;;
	esac
	echo "request $i: HTTP $status$note"
done
echo "requests: $count, ok: $ok, failed: $failed, retried: $retried"
[ "$failed" -eq 0 ]
