#!/bin/bash
# The C sources are as .clang-format says (nginx/ keeps nginx's style, see
# nginx/.clang-format): clang-format would change nothing. Formatting
# differs between clang-format releases, so the check runs with the one
# the tree was formatted with, 14 (Debian 12's), and is skipped (77) where
# that is missing or this is no git checkout.
#
# usage: check-format.sh SOURCE-ROOT
set -u
root=$1
fmt=$(command -v clang-format-14 || true)
if [ -z "$fmt" ]; then
	echo "skipped: clang-format-14 is not installed (tools/install-deps)"
	exit 77
fi
if ! files=$(git -C "$root" ls-files '*.c' '*.h' 2>/dev/null) ||
	[ -z "$files" ]; then
	echo "skipped: $root is not a git checkout"
	exit 77
fi
cd "$root" || exit 2
# shellcheck disable=SC2086
if ! "$fmt" --dry-run -Werror $files 2>"${TMPDIR:-/tmp}/check-format.$$"; then
	grep -E '^[^ ].*: error:' "${TMPDIR:-/tmp}/check-format.$$" | sed 's/ error: / /' | head -n 40
	echo "check-format: run: git ls-files '*.c' '*.h' | xargs clang-format-14 -i"
	rm -f "${TMPDIR:-/tmp}/check-format.$$"
	exit 1
fi
rm -f "${TMPDIR:-/tmp}/check-format.$$"
echo "ok: $(echo "$files" | wc -l) files as .clang-format says"
