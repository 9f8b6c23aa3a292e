#!/bin/sh
# An exec provider command that fails: two lines on stderr, what would be
# an answer on stdout, exit status 3. Appends a line to the counter file $1
# when given.
if [ -n "$1" ]; then
	echo "$$" >>"$1"
fi
echo "token service says no: account locked" >&2
echo "second line, never shown" >&2
echo '{"token": "ignored"}'
exit 3
