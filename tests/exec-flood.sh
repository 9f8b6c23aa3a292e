#!/bin/sh
# An exec provider command that prints 10 MB (no newline, no JSON), after
# writing its PID to the file $1.
echo "$$" >"$1.tmp" && mv "$1.tmp" "$1"
head -c 10485760 /dev/zero | tr '\0' 'x'
