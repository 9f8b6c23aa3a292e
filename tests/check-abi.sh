#!/bin/bash
# Checks that the public header, the linker version script, the built
# library, the man page and its aliases name the same functions (libfido2's
# man/check.sh): a function added to one and forgotten in another fails
# here. Beyond names, as libfido2 goes: the prototypes in the SYNOPSIS of
# ucaasauth(3) must be the header's, word for word once whitespace and
# attribute macros are aside; the aliases that docs/meson.build installs
# (man ucaasauth_open) must be the exports. Then checks that ffi.h, the
# plain-declarations header for FFIs, has no preprocessor line and declares
# exactly what ucaasauth.h declares: the same prototypes, the opaque struct,
# the same status names and values. Last, that the SYNOPSIS of
# ucaasauth-provider(3) declares exactly what provider.h declares, in the
# same order (struct fields are ABI).
#
# usage: check-abi.sh ucaasauth.h libucaasauth.sym libucaasauth.so.1 \
#            ucaasauth.3.scd ffi.h provider.h ucaasauth-provider.3.scd \
#            docs/meson.build
set -eu

if [ $# -ne 8 ]; then
	echo "usage: $0 ucaasauth.h libucaasauth.sym libucaasauth.so.1" \
		"ucaasauth.3.scd ffi.h provider.h ucaasauth-provider.3.scd" \
		"docs/meson.build" >&2
	exit 2
fi
header=$1 sym=$2 lib=$3 page=$4 ffi=$5 mod=$6 mod_page=$7 docs_build=$8
for f in "$header" "$sym" "$lib" "$page" "$ffi" "$mod" "$mod_page" \
	"$docs_build"; do
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

# The aliases docs/meson.build installs: the quoted words of its
# man3_aliases list.
awk '/^man3_aliases *= *\[/ { list = 1; next }
list && /\]/ { list = 0 }
list {
	line = $0; sub(/#.*/, "", line)
	while (match(line, /'"'"'[^'"'"']*'"'"'/)) {
		print substr(line, RSTART + 1, RLENGTH - 2)
		line = substr(line, RSTART + RLENGTH)
	}
}' "$docs_build" | sort -u >"$tmp/aliases"

# The first code block of a page's SYNOPSIS, as C text.
synopsis() {
	awk '/^# / { syn = $0 == "# SYNOPSIS"; next }
	syn && /^```/ { if (block) exit; block = 1; next }
	syn && block' "$1"
}
synopsis "$page" >"$tmp/synopsis.c"

sources="header sym lib man-name man-synopsis aliases"
label() {
	case $1 in
	header) echo "$header (prototypes)" ;;
	sym) echo "$sym (global names)" ;;
	lib) echo "$lib (nm -D --defined-only)" ;;
	man-name) echo "$page (NAME)" ;;
	man-synopsis) echo "$page (SYNOPSIS)" ;;
	aliases) echo "$docs_build (man3_aliases)" ;;
	esac
}
short() {
	case $1 in
	header) echo "${header##*/}" ;;
	sym) echo "${sym##*/}" ;;
	lib) echo "${lib##*/}" ;;
	man-name) echo "${page##*/} NAME" ;;
	man-synopsis) echo "${page##*/} SYNOPSIS" ;;
	aliases) echo "man3_aliases" ;;
	esac
}

# differ A B LABEL-A LABEL-B MESSAGE...: true when the files are the same;
# else the message and a unified diff on stderr.
differ() {
	local a=$1 b=$2 la=$3 lb=$4
	shift 4
	cmp -s "$a" "$b" && return 0
	echo "check-abi: $*:" >&2
	diff -u --label "$la" --label "$lb" "$a" "$b" >&2 || true
	return 1
}

n=$(wc -l <"$tmp/header")
if [ "$n" -eq 0 ]; then
	echo "check-abi: no function found in $header" >&2
	exit 1
fi

# ffi.h against ucaasauth.h: both in one normal form, one declaration a
# line (decls FILE STRIP). "enum NAME = VALUE" for every enumerator, "decl
# ..." for every other declaration that names ucaasauth, with one space
# between tokens; "cpp ..." for a preprocessor line. STRIP=1 (the real
# header) drops the attribute macros (UCAASAUTH_* words in a declaration)
# and __attribute__((...)); ffi.h gets no such favour, as an FFI parser
# would choke on them.
decls() {
	awk -v strip="$2" '{ text = text $0 "\n" }
	END {
		gsub(/\/\*([^*]|\*+[^*\/])*\*+\//, " ", text)
		gsub(/\/\/[^\n]*/, " ", text)
		n = split(text, lines, "\n")
		text = ""
		cont = 0
		for (i = 1; i <= n; i++) {
			line = lines[i]
			if (cont || line ~ /^[ \t]*#/) {
				if (!cont)
					print "cpp " line
				cont = line ~ /\\$/
				continue
			}
			text = text line "\n"
		}
		gsub(/extern[ \t\n]*"C"[ \t\n]*\{/, " ", text)
		gsub(/[ \t\n]+/, " ", text)
		while (match(text, /enum[ ]*[A-Za-z0-9_]*[ ]*\{[^}]*\}[ ]*;/)) {
			body = substr(text, RSTART, RLENGTH)
			text = substr(text, 1, RSTART - 1) " " \
				substr(text, RSTART + RLENGTH)
			sub(/^[^{]*\{/, "", body)
			sub(/\}[ ]*;$/, "", body)
			m = split(body, items, ",")
			for (j = 1; j <= m; j++) {
				item = items[j]
				gsub(/ /, "", item)
				if (item == "")
					continue
				sub(/=/, " = ", item)
				print "enum " item
			}
		}
		# What follows the last ";" is no declaration (a closing brace).
		m = split(text, stmts, ";")
		for (j = 1; j < m; j++) {
			s = stmts[j]
			gsub(/[{}]/, " ", s)
			if (strip) {
				while (match(s, /__attribute__ *\(\(([^()]|\([^()]*\))*\)\)/))
					s = substr(s, 1, RSTART - 1) " " \
						substr(s, RSTART + RLENGTH)
				s = " " s " "
				while (match(s, / UCAASAUTH_[A-Z0-9_]+ /))
					s = substr(s, 1, RSTART) \
						substr(s, RSTART + RLENGTH - 1)
			}
			gsub(/[(),*]/, " & ", s)
			gsub(/ +/, " ", s)
			sub(/^ /, "", s)
			sub(/ $/, "", s)
			gsub(/ \(/, "(", s)
			gsub(/\( /, "(", s)
			gsub(/ \)/, ")", s)
			gsub(/ ,/, ",", s)
			gsub(/\* /, "*", s)
			if (s ~ /ucaasauth/)
				print "decl " s
		}
	}' "$1"
}
decls "$header" 1 >"$tmp/decls.header"
decls "$ffi" 0 >"$tmp/decls.ffi"

# The prototypes of ucaasauth(3) against the header's.
proto_failed=0
grep '^decl .*(' "$tmp/decls.header" | sort >"$tmp/protos.header" || true
decls "$tmp/synopsis.c" 1 | grep '^decl .*(' | sort >"$tmp/protos.page" || true
proto_n=$(grep -c . "$tmp/protos.header" || true)
differ "$tmp/protos.header" "$tmp/protos.page" "$header" \
	"$page (SYNOPSIS)" "the SYNOPSIS of $page does not declare the" \
	"prototypes of $header (normalised, sorted)" || proto_failed=1
ffi_failed=0
if grep '^cpp ' "$tmp/decls.ffi" >"$tmp/ffi.cpp"; then
	echo "check-abi: $ffi has preprocessor lines, which FFI::cdef and" \
		"cffi refuse:" >&2
	sed 's/^cpp /  /' "$tmp/ffi.cpp" >&2
	ffi_failed=1
fi
grep -v '^cpp ' "$tmp/decls.header" | sort >"$tmp/decls.header.sorted"
grep -v '^cpp ' "$tmp/decls.ffi" | sort >"$tmp/decls.ffi.sorted" || true
if ! grep -q '^enum UCAASAUTH_OK = 0$' "$tmp/decls.header.sorted" ||
	! grep -q '^decl struct ucaasauth$' "$tmp/decls.header.sorted"; then
	echo "check-abi: no status enum or struct ucaasauth found in $header" >&2
	ffi_failed=1
elif ! differ "$tmp/decls.header.sorted" "$tmp/decls.ffi.sorted" \
	"$header" "$ffi" "$ffi and $header declare different things" \
	"(normalised: one declaration a line, sorted)"; then
	ffi_failed=1
fi
ffi_n=$(grep -c . "$tmp/decls.ffi.sorted" || true)

# iface FILE PAGE: the declarations of a header (PAGE=0) or of the first
# code block of a man page's SYNOPSIS (PAGE=1), one statement a line, in
# order: comments, #include lines, the include guard and the extern "C"
# wrapper are dropped; "#define NAME VALUE" lines are kept.
iface() {
	awk -v page="$2" '
	BEGIN { define = "^[ \t]*#[ \t]*define[ \t]+[A-Za-z0-9_]+[ \t]+[^ \t]" }
	page && /^# / { syn = $0 == "# SYNOPSIS"; next }
	page && !syn { next }
	page && /^```/ { if (block) { syn = 0; block = 0 } else block = 1; next }
	page && !block { next }
	{ text = text $0 "\n" }
	END {
		gsub(/\/\*([^*]|\*+[^*\/])*\*+\//, " ", text)
		gsub(/\/\/[^\n]*/, " ", text)
		n = split(text, lines, "\n")
		text = ""
		for (i = 1; i <= n; i++) {
			line = lines[i]
			if (line ~ /^[ \t]*#[ \t]*ifdef[ \t]+__cplusplus/) {
				skip = 1
				continue
			}
			if (line !~ /^[ \t]*#/) {
				if (!skip)
					text = text line "\n"
				continue
			}
			if (skip && line ~ /^[ \t]*#[ \t]*endif/)
				skip = 0
			else if (!skip && line ~ define)
				text = text line ";\n"
		}
		gsub(/[(),*{};]/, " & ", text)
		gsub(/[ \t\n]+/, " ", text)
		gsub(/\( /, "(", text)
		gsub(/ \)/, ")", text)
		gsub(/ ,/, ",", text)
		gsub(/\* /, "*", text)
		gsub(/\) \(/, ")(", text)
		gsub(/ ;/, ";", text)
		gsub(/; /, ";\n", text)
		gsub(/\{ /, "{\n", text)
		gsub(/ \}/, "\n}", text)
		n = split(text, lines, "\n")
		for (i = 1; i <= n; i++) {
			sub(/^ /, "", lines[i])
			sub(/ $/, "", lines[i])
			if (lines[i] ~ /^#/)
				sub(/;$/, "", lines[i])
			if (lines[i] != "")
				print lines[i]
		}
	}' "$1"
}

mod_failed=0
iface "$mod" 0 >"$tmp/iface.header"
iface "$mod_page" 1 >"$tmp/iface.page"
mod_n=$(grep -c . "$tmp/iface.header" || true)
if [ "$mod_n" -eq 0 ]; then
	echo "check-abi: no declaration found in $mod" >&2
	mod_failed=1
elif ! differ "$tmp/iface.header" "$tmp/iface.page" "$mod" \
	"$mod_page (SYNOPSIS)" "the SYNOPSIS of $mod_page does not declare" \
	"what $mod declares (normalised, in order)"; then
	mod_failed=1
else
	echo "ok: ${mod_page##*/} SYNOPSIS matches ${mod##*/}" \
		"($mod_n declarations)"
fi

failed=0
for s in $sources; do
	cmp -s "$tmp/header" "$tmp/$s" || failed=1
done
if [ "$failed" -eq 0 ]; then
	echo "ok: $n functions agree (header, export list, library, man page" \
		"NAME and SYNOPSIS, man3_aliases)"
	if [ "$proto_failed" -eq 0 ]; then
		echo "ok: ${page##*/} SYNOPSIS prototypes match ${header##*/}" \
			"($proto_n prototypes)"
	fi
	if [ "$ffi_failed" -eq 0 ]; then
		echo "ok: ${ffi##*/} matches ${header##*/} ($ffi_n declarations)"
	fi
	exit $((proto_failed | ffi_failed | mod_failed))
fi

echo "check-abi: the function lists disagree" >&2
echo >&2
sort -u "$tmp/header" "$tmp/sym" "$tmp/lib" "$tmp/man-name" \
	"$tmp/man-synopsis" "$tmp/aliases" >"$tmp/all"
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
