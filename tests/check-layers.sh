#!/bin/bash
# The library's files call downwards only: each object of the private
# static library may use the functions of the files listed before its own,
# never of one listed after it (that would be a circle, or a call back up
# into the hot path). Read from the symbols of the built objects, so a
# call in a comment does not count and one through a macro does.
#
# usage: check-layers.sh libucaasauth-private.a FILE.c...  (lowest first)
set -eu
lib=$1
shift
NM=${NM:-nm}
export LC_ALL=C
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

rank=0
for f in "$@"; do
	echo "${f%.c} $rank"
	rank=$((rank + 1))
done >"$tmp/ranks"

# "OBJECT D SYMBOL" for what each object defines, "OBJECT U SYMBOL" for
# what it uses; objects are named as meson names them (file.c.o).
"$NM" "$lib" | awk '
/:$/ { obj = $0; sub(/:$/, "", obj); sub(/.*\//, "", obj); sub(/\.c\.o$/, "", obj); next }
NF == 3 && $2 ~ /^[TDBR]$/ { print obj, "D", $3 }
NF == 2 && $1 == "U" { print obj, "U", $2 }' >"$tmp/syms"

awk -v ranks="$tmp/ranks" '
BEGIN { while ((getline line < ranks) > 0) { split(line, w, " "); rank[w[1]] = w[2] } }
!($1 in rank) && !($1 in told) {
	print "check-layers: " $1 ".c is in no layer" > "/dev/stderr"
	told[$1] = bad = 1
}
$2 == "D" { def[$3] = $1 }
$2 == "U" { n++; user[n] = $1; sym[n] = $3 }
END {
	for (i = 1; i <= n; i++) {
		d = def[sym[i]]
		if (d == "" || d == user[i])
			continue
		if (rank[d] > rank[user[i]]) {
			printf "check-layers: %s.c calls %s() of %s.c, a file above it\n", \
				user[i], sym[i], d > "/dev/stderr"
			bad = 1
		}
		calls++
	}
	if (bad)
		exit 1
	printf "ok: %d calls between the library'"'"'s files, all downwards\n", calls
}' "$tmp/syms"
