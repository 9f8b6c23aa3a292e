#!/bin/sh
# Make a throwaway CA and a server certificate for the mock UCaaS server.
#
#   make-test-ca.sh OUTDIR
#
# Writes OUTDIR/ca.pem, ca.key (the CA) and OUTDIR/server.pem, server.key
# (for IP 127.0.0.1 and DNS localhost, signed by the CA). Test use only: the
# keys are not encrypted. Prints nothing unless a step fails, then prints
# that step's output and exits non-zero.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
out=$1

run() {
	if ! log=$("$@" 2>&1); then
		printf '%s\n' "$log" >&2
		echo "$0: failed: $*" >&2
		exit 1
	fi
}

umask 077
mkdir -p "$out"
ext=$(mktemp)
trap 'rm -f "$ext" "$out/server.csr" "$out/ca.srl"' EXIT
cat >"$ext" <<'EXT'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
EXT

# EC P-256 keys: generated instantly, unlike RSA, so every test run can
# afford a fresh CA.
run openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$out/ca.key" -out "$out/ca.pem" -days 30 \
	-subj "/CN=libucaasauth test CA" \
	-addext "basicConstraints = critical, CA:TRUE" \
	-addext "keyUsage = critical, keyCertSign, cRLSign"

run openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$out/server.key" -out "$out/server.csr" -subj "/CN=localhost"

run openssl x509 -req -in "$out/server.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" \
	-CAcreateserial -out "$out/server.pem" -days 30 -extfile "$ext"

run openssl verify -CAfile "$out/ca.pem" "$out/server.pem"
