#!/bin/bash
# Checks that the public header, the linker version script, the built
# library and the man page name the same functions (libfido2's check): a
# function added to one and forgotten in another fails here.
#
# usage: check-abi.sh ucaasauth.h libucaasauth.sym libucaasauth.so.1 ucaasauth.3.scd
set -eu

if [ $# -ne 4 ]; then
	echo "usage: $0 ucaasauth.h libucaasauth.sym libucaasauth.so.1 ucaasauth.3.scd" >&2
	exit 2
fi
header=$1 sym=$2 lib=$3 page=$4
for f in "$header" "$sym" "$lib" "$page"; do
	if [ ! -r "$f" ]; then
		echo "check-abi: $f: not readable" >&2
		exit 2
	fi
done
NM=${NM:-nm}
if ! command -v "$NM" >/dev/null; then
	echo "check-abi: $NM not found (set NM)" >&2
	exit 2
fi

export LC_ALL=C
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The header: every ucaasauth_* name followed by '(' once comments are gone,
# so a function mentioned in a comment does not count.
awk '{ text = text $0 "\n" }
END {
	gsub(/\/\*([^*]|\*+[^*\/])*\*+\//, " ", text)
	gsub(/\/\/[^\n]*/, " ", text)
	while (match(text, /ucaasauth_[A-Za-z0-9_]*[ \t\n]*\(/)) {
		name = substr(text, RSTART, RLENGTH)
		sub(/[ \t\n]*\($/, "", name)
		print name
		text = substr(text, RSTART + RLENGTH)
	}
}' "$header" | sort -u >"$tmp/header"

# The version script: the names between "global:" and "local:" of every
# version node; the node names themselves are kept apart.
awk '{ sub(/#.*/, "") }
/^[ \t]*[A-Za-z_][A-Za-z0-9_.]*[ \t]*\{/ {
	node = $0; sub(/^[ \t]*/, "", node); sub(/[ \t]*\{.*/, "", node)
	print node >"/dev/stderr"
}
/global:/ { global = 1; sub(/.*global:/, "") }
/local:/ || /\}/ { global = 0 }
global {
	n = split($0, words, /[ \t;]+/)
	for (i = 1; i <= n; i++)
		if (words[i] != "")
			print words[i]
}' "$sym" 2>"$tmp/nodes" | sort -u >"$tmp/sym"

# The library: every defined dynamic symbol, minus the version nodes.
"$NM" -D --defined-only "$lib" >"$tmp/nm.out"
awk 'NR == FNR { node[$1] = 1; next }
NF >= 2 {
	name = $NF; sub(/@.*/, "", name)
	if (!(name in node))
		print name
}' "$tmp/nodes" "$tmp/nm.out" | sort -u >"$tmp/lib"

# The man page: the names on the NAME line (before " - "), and the
# functions declared in SYNOPSIS.
awk '/^# / { section = $0; next }
section == "# NAME" {
	line = $0; dash = index(line, " - ")
	if (dash) line = substr(line, 1, dash - 1)
	n = split(line, words, /[ \t,]+/)
	for (i = 1; i <= n; i++)
		if (words[i] != "")
			print words[i]
	if (dash) section = ""
}' "$page" | sort -u >"$tmp/man-name"
awk '/^# / { section = $0; next }
section == "# SYNOPSIS" {
	line = $0
	while (match(line, /ucaasauth_[A-Za-z0-9_]*[ \t]*\(/)) {
		name = substr(line, RSTART, RLENGTH)
		sub(/[ \t]*\($/, "", name)
		print name
		line = substr(line, RSTART + RLENGTH)
	}
}' "$page" | sort -u >"$tmp/man-synopsis"

sources="header sym lib man-name man-synopsis"
label() {
	case $1 in
	header) echo "$header (prototypes)" ;;
	sym) echo "$sym (global names)" ;;
	lib) echo "$lib (nm -D --defined-only)" ;;
	man-name) echo "$page (NAME)" ;;
	man-synopsis) echo "$page (SYNOPSIS)" ;;
	esac
}
short() {
	case $1 in
	header) echo "${header##*/}" ;;
	sym) echo "${sym##*/}" ;;
	lib) echo "${lib##*/}" ;;
	man-name) echo "${page##*/} NAME" ;;
	man-synopsis) echo "${page##*/} SYNOPSIS" ;;
	esac
}

n=$(wc -l <"$tmp/header")
if [ "$n" -eq 0 ]; then
	echo "check-abi: no function found in $header" >&2
	exit 1
fi

failed=0
for s in $sources; do
	cmp -s "$tmp/header" "$tmp/$s" || failed=1
done
if [ "$failed" -eq 0 ]; then
	echo "ok: $n functions agree"
	exit 0
fi

echo "check-abi: the function lists disagree" >&2
echo >&2
sort -u "$tmp/header" "$tmp/sym" "$tmp/lib" "$tmp/man-name" \
	"$tmp/man-synopsis" >"$tmp/all"
while read -r name; do
	missing=
	for s in $sources; do
		grep -qxF "$name" "$tmp/$s" ||
			missing="${missing:+$missing, }$(short "$s")"
	done
	[ -z "$missing" ] || echo "  $name: missing from $missing" >&2
done <"$tmp/all"
echo >&2
for s in $sources; do
	[ "$s" = header ] && continue
	if ! cmp -s "$tmp/header" "$tmp/$s"; then
		diff -u --label "$(label header)" --label "$(label "$s")" \
			"$tmp/header" "$tmp/$s" >&2 || true
	fi
done
exit 1
