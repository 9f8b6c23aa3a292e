#!/bin/sh
# An exec provider command that writes the environment it was given (as
# execve() passed it, before the shell adds anything) to the file $1, one
# variable a line, then answers with a header.
tr '\0' '\n' </proc/$$/environ >"$1"
echo '{"header": "Authorization: Bearer env-ok", "expires_in": 600}'
