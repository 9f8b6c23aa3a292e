#!/bin/sh
# An exec provider command that overstays its timeout and tries to outlive
# it. "exec-escape.sh MODE PIDFILE", where MODE is
#   pgid    moves itself into its parent's process group (out of the one
#           the provider made for it), creates PIDFILE.escaped, then sleeps
#           30 s;
#   daemon  double-forks a grandchild, in a session of its own, that keeps
#           standard output open and sleeps 30 s; exits 0 at once;
#   traced  lets any process ptrace it, waits (at most 10 s) until the
#           file PIDFILE.attached exists, then sleeps 30 s;
# and appends the PID of the process that sleeps to PIDFILE, one line
# (for pgid first thing, from the shell: this very process after exec).
if [ "$1" = pgid ]; then
	echo "$$" >>"$2" || exit 1
fi
exec python3 -c '
import os, sys, time
mode, pidfile = sys.argv[1], sys.argv[2]

def tell():
    fd = os.open(pidfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, b"%d\n" % os.getpid())
    os.close(fd)

if mode == "pgid":
    os.setpgid(0, os.getpgid(os.getppid()))
    open(pidfile + ".escaped", "w").close()
    time.sleep(30)
elif mode == "daemon":
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            tell()
            time.sleep(30)
        os._exit(0)
    os.wait()
    sys.exit(0)
elif mode == "traced":
    import ctypes
    # PR_SET_PTRACER, PR_SET_PTRACER_ANY: for Yama (ptrace_scope 1).
    ctypes.CDLL(None).prctl(0x59616D61, ctypes.c_ulong(2**64 - 1), 0, 0, 0)
    tell()
    end = time.monotonic() + 10
    while not os.path.exists(pidfile + ".attached") and time.monotonic() < end:
        time.sleep(0.01)
    time.sleep(30)
print("{\"token\": \"too-late\"}")
' "$@"
