#!/bin/sh
# An exec provider command that never answers in time: starts a grandchild
# that would outlive it, writes "PID GRANDCHILD_PID" to the file $1, then
# sleeps far past any timeout.
sleep 60 &
echo "$$ $!" >"$1.tmp" && mv "$1.tmp" "$1"
sleep 30
echo '{"token": "too-late"}'
