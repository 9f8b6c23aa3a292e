#!/bin/sh
# An exec provider command for the tests: appends a line to the counter
# file $1, sleeps $3 seconds when given, then prints the file $2 as its
# answer, whatever it holds.
echo "$$" >>"$1" || exit 1
if [ -n "$3" ]; then
	sleep "$3"
fi
cat "$2"
