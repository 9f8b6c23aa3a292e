#!/bin/bash
# examples/plugin-host against the mock: a host linked with libcurl loads
# examples/plugin.so (which links libucaasauth), gets a header, unloads it
# and uses libcurl itself, cycle after cycle (issue 13, item 1). The host
# checks what it holds (fds, maps, threads) and the mock's login count;
# this script builds its world and judges its exit status.
#
# usage: test-plugin-host.sh HOST PLUGIN UCAAS-AUTH MODE
#   plugin-first  1000 cycles, libucaasauth starts libcurl
#   host-first    1000 cycles, the host starts libcurl before the plugin
#   valgrind      100 cycles under valgrind: any error or definite leak
#                 fails
set -u

if [ $# -ne 4 ]; then
	echo "usage: $0 HOST PLUGIN UCAAS-AUTH MODE" >&2
	exit 2
fi
host=$(realpath "$1") plugin=$(realpath "$2") cli=$(realpath "$3") mode=$4
mock_script=${MOCK_UCAAS:-$(dirname "$0")/mock-ucaas.py}

wrapper=() opts=() cycles=1000
case $mode in
plugin-first) ;;
host-first) opts=(--host-first) ;;
valgrind)
	command -v valgrind >/dev/null || {
		echo "SKIP: no valgrind"
		exit 77
	}
	wrapper=(valgrind --quiet --error-exitcode=99 --leak-check=full
		--errors-for-leak-kinds=definite --show-leak-kinds=definite)
	opts=(--no-maps) cycles=100
	;;
*)
	echo "unknown mode $mode" >&2
	exit 2
	;;
esac

tmp=$(mktemp -d /tmp/test-plugin-host.XXXXXX) || exit 1
mock_pid=
cleanup() {
	if [ -n "$mock_pid" ]; then
		kill "$mock_pid" 2>/dev/null
		wait "$mock_pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

export no_proxy='*'
mkdir -m 0700 "$tmp/run"
export UCAASAUTH_RUNTIME_DIR=$tmp/run UCAASAUTH_CONFIG=$tmp/ucaasauth.conf
unset CREDENTIALS_DIRECTORY XDG_RUNTIME_DIR

python3 "$mock_script" --port-file "$tmp/port" --app-id plugin-app \
	--app-key unused-key --email host@example.com \
	--password plugin-PASSWORD --quiet &
mock_pid=$!
# The mock writes its port file once it listens: poll, bounded (60 s;
# it takes well under one).
for _ in $(seq 1200); do
	[ -s "$tmp/port" ] && break
	kill -0 "$mock_pid" 2>/dev/null || break
	sleep 0.05
done
[ -s "$tmp/port" ] || {
	echo "FAIL: the mock did not start" >&2
	exit 1
}
root=http://127.0.0.1:$(cat "$tmp/port")

cat >"$tmp/ucaasauth.conf" <<EOF
[profile shared]
api_base = $root/ucaas/v1
app_id = plugin-app
provider = login

[profile private]
api_base = $root/ucaas/v1
app_id = plugin-app
provider = login
cache = process
EOF
chmod 0600 "$tmp/ucaasauth.conf"
"$cli" keygen shared >/dev/null || exit 1
for p in shared private; do
	printf 'email=host@example.com\npassword=plugin-PASSWORD\n' |
		"$cli" store "$p" >/dev/null 2>&1 || {
		echo "FAIL: ucaas-auth store $p" >&2
		exit 1
	}
done

"${wrapper[@]}" "$host" "${opts[@]}" "$plugin" "$root" "$cycles" \
	>"$tmp/out" 2>"$tmp/err"
status=$?
cat "$tmp/out"
cat "$tmp/err" >&2
if [ "$status" -ne 0 ]; then
	if [ "$status" -gt 128 ]; then
		echo "FAIL: plugin-host died of signal $((status - 128))" >&2
	else
		echo "FAIL: plugin-host exited $status" >&2
	fi
	exit 1
fi
echo "ok: $mode"
