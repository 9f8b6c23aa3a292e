#!/bin/bash
# Builds ngx_http_ucaasauth_module.so against Debian's packaged nginx, the
# way Debian builds its own libnginx-mod-* (debhelper's nginx_mod build
# system, /usr/share/perl5/Debian/Debhelper/Buildsystem/nginx_mod.pm):
# nginx-dev's source tree /usr/share/nginx/src, its conf_flags (the
# packaged nginx's configure arguments that decide the module ABI,
# --with-compat among them), the packaged binary's compiler and linker
# flags, --add-dynamic-module, then `make modules`. Nothing is written under
# the nginx source tree: everything goes to WORK-DIR.
#
# usage: build.sh OUTPUT.so INCLUDE-DIR LIB-DIR WORK-DIR
#   INCLUDE-DIR holds ucaasauth.h, LIB-DIR libucaasauth.so.
# Environment: NGINX_SRC (default /usr/share/nginx/src), NGINX (the
# packaged binary, default /usr/sbin/nginx).
set -eu

if [ $# -ne 4 ]; then
	echo "usage: $0 OUTPUT.so INCLUDE-DIR LIB-DIR WORK-DIR" >&2
	exit 2
fi
module_dir=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$4"
output=$(realpath -m "$1")
inc=$(realpath "$2")
libdir=$(realpath "$3")
work=$(realpath "$4")
src=${NGINX_SRC:-/usr/share/nginx/src}
nginx=${NGINX:-/usr/sbin/nginx}

die() {
	echo "nginx/build.sh: $*" >&2
	exit 1
}

[ -x "$src/configure" ] && [ -r "$src/conf_flags" ] ||
	die "$src/configure or $src/conf_flags is missing: install nginx-dev"
[ -x "$nginx" ] || die "$nginx is missing: install nginx"
[ -r "$inc/ucaasauth.h" ] || die "$inc/ucaasauth.h is missing"

# conf_flags defines NGX_CONF_FLAGS, the arguments Debian builds every
# libnginx-mod-* with.
# shellcheck disable=SC1091
. "$src/conf_flags"

# What the packaged binary was really configured with. `nginx -V` prints
# them shell-quoted (--with-cc-opt='-g -O2 ...'), hence the eval.
packaged=$("$nginx" -V 2>&1 | sed -n 's/^configure arguments: //p')
[ -n "$packaged" ] || die "$nginx -V shows no configure arguments"
eval "packaged_args=($packaged)"

cc_opt= ld_opt=
for a in "${packaged_args[@]}"; do
	case $a in
	--with-cc-opt=*) cc_opt=${a#--with-cc-opt=} ;;
	--with-ld-opt=*) ld_opt=${a#--with-ld-opt=} ;;
	esac
done

# The module must be built for the binary that loads it: same version,
# and every ABI-deciding argument of conf_flags (--with-compat included)
# in the binary's own arguments. A mismatch would only show at
# load_module time, as "is not binary compatible".
binary_version=$("$nginx" -v 2>&1 | sed -n 's|^nginx version: nginx/||p')
src_version=$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"$/\1/p' \
	"$src/src/core/nginx.h")
[ "$binary_version" = "$src_version" ] ||
	die "$nginx is version $binary_version, $src holds $src_version"
for f in "${NGX_CONF_FLAGS[@]}" --with-compat; do
	found=no
	for a in "${packaged_args[@]}"; do
		[ "$a" = "$f" ] && found=yes && break
	done
	[ $found = yes ] ||
		die "$src/conf_flags has $f, $nginx was not configured with it"
done

export UCAASAUTH_INCLUDE=$inc UCAASAUTH_LIBDIR=$libdir
configure=(./configure
	--with-cc-opt="$cc_opt"
	--with-ld-opt="$ld_opt"
	"${NGX_CONF_FLAGS[@]}"
	--add-dynamic-module="$module_dir"
	--builddir="$work")

# configure takes most of the time: run it again only when its inputs
# change (the arguments, the module's config file, the nginx sources).
key=$(printf '%s\n' "${configure[@]}" "$inc" "$libdir" "$src_version" |
	cat - "$module_dir/config" | sha256sum)
if [ ! -f "$work/Makefile" ] || [ "$(cat "$work/configure.key" 2>/dev/null)" != "$key" ]; then
	rm -f "$work/configure.key"
	(cd "$src" && "${configure[@]}") >"$work/configure.log" 2>&1 || {
		tail -n 30 "$work/configure.log" >&2
		die "configure failed, see $work/configure.log"
	}
	echo "$key" >"$work/configure.key"
fi

# Relink every time: make does not know that libucaasauth changed.
rm -f "$work/ngx_http_ucaasauth_module.so"
make -f "$work/Makefile" -C "$src" modules >"$work/make.log" 2>&1 || {
	tail -n 30 "$work/make.log" >&2
	die "make modules failed, see $work/make.log"
}
cp "$work/ngx_http_ucaasauth_module.so" "$output.tmp"
mv -f "$output.tmp" "$output"
