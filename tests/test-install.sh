#!/bin/bash
# `meson install` into a scratch prefix, then build a program the way a
# user would: only the installed header, library, pkg-config file and man
# pages. usage: test-install.sh SOURCE-DIR
set -eu
src=$1
tmp=$(mktemp -d /tmp/test-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

meson setup "$tmp/build" "$src" --prefix="$prefix" --libdir=lib \
	-Dbuildtype=release >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
ninja -C "$tmp/build" >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
meson install -C "$tmp/build" >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }

fail() { echo "FAIL: $*" >&2; exit 1; }
for f in include/ucaasauth.h lib/libucaasauth.so.1 lib/pkgconfig/ucaasauth.pc \
	bin/ucaas-auth; do
	[ -e "$prefix/$f" ] || fail "not installed: $f"
done
if command -v scdoc >/dev/null; then
	for f in man1/ucaas-auth.1 man3/ucaasauth.3 man3/ucaasauth_open.3 \
		man3/ucaasauth-provider.3 man5/ucaasauth.conf.5; do
		[ -e "$prefix/share/man/$f" ] || fail "not installed: man page $f"
	done
fi
# Internals stay in: the public header, its FFI variant and the module
# interface only.
[ "$(cd "$prefix/include" && find . -type f | sort | tr '\n' ' ')" = \
	"./ucaasauth.h ./ucaasauth/ffi.h ./ucaasauth/provider.h " ] ||
	fail "headers other than ucaasauth.h, ucaasauth/ffi.h and" \
		"ucaasauth/provider.h installed"

# libcurl is dlopen()ed, not linked, and the .note.dlopen says so to
# packaging tools (see README.md, "Packaging").
lib=$prefix/lib/libucaasauth.so.1
if command -v readelf >/dev/null; then
	readelf -dW "$lib" | grep -q 'NEEDED.*libcurl' &&
		fail "libucaasauth.so.1 links libcurl"
	readelf -nW "$lib" | grep -q 'FDO .*0x407c0c0a' ||
		fail "libucaasauth.so.1 has no FDO dlopen note"
	readelf -p .note.dlopen "$lib" |
		grep -qF '"soname":["libcurl.so.4"]' ||
		fail "the dlopen note does not name libcurl.so.4"
fi

# A machine with none of libsodium's, libcurl's or json-c's -dev packages:
# only the installed ucaasauth.pc is visible (PKG_CONFIG_LIBDIR empty hides
# the system's .pc files). ucaasauth.h needs none of them, and dynamic
# linking needs only -lucaasauth: no Requires.private to resolve.
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig PKG_CONFIG_LIBDIR=
pkg-config --exists libsodium 2>/dev/null &&
	fail "PKG_CONFIG_LIBDIR= did not hide the system's .pc files"
flags=$(pkg-config --cflags --libs ucaasauth) ||
	fail "pkg-config --cflags --libs ucaasauth, with no other .pc file"
[ -z "$(pkg-config --print-requires-private ucaasauth)" ] ||
	fail "ucaasauth.pc has Requires.private:" \
		"$(pkg-config --print-requires-private ucaasauth)"
# shellcheck disable=SC2086
cc -std=c99 -Wall -Werror "$src/tests/example-basic.c" $flags \
	-Wl,-rpath,"$prefix/lib" -o "$tmp/example" || fail "example does not build"

# A basic profile, set up with the installed CLI.
cat >"$tmp/ucaasauth.conf" <<CONF
[profile default]
api_base = https://api.enablex.io/ucaas/v1
app_id = install-test
provider = basic
CONF
export UCAASAUTH_CONFIG=$tmp/ucaasauth.conf
"$prefix/bin/ucaas-auth" keygen >/dev/null
printf 'app_key=s3cret\n' | "$prefix/bin/ucaas-auth" store default 2>/dev/null
out=$("$tmp/example")
want="Authorization: Basic $(printf 'install-test:s3cret' | base64)"
[ "$out" = "$want" ] || fail "example printed '$out', expected '$want'"
ldd "$tmp/example" | grep -q "$prefix/lib/libucaasauth.so.1" ||
	fail "example is not linked against the installed library"
echo "ok: installed, built with pkg-config, printed the header"
