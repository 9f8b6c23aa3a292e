#!/bin/sh
# An exec provider command that says what its standard input is, as the
# header "Authorization: Bearer stdin-WHAT": WHAT is "closed" (no file
# descriptor 0), "data" (something to read) or "eof" (/dev/null).
# Checked before anything else, with builtins only: the shell's first pipe
# or file would take a closed descriptor 0.
if [ ! -e /proc/self/fd/0 ]; then
	what=closed
elif IFS= read -r line || [ -n "$line" ]; then
	what=data
else
	what=eof
fi
echo "{\"header\": \"Authorization: Bearer stdin-$what\"}"
