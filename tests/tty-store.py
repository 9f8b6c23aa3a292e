#!/usr/bin/env python3
"""`ucaas-auth store` on a terminal, driven through a pseudo-terminal.

usage: tty-store.py CLI KEY-PROFILE APP-ID LOGIN-PROFILE EMAIL PASSWORD

KEY-PROFILE has provider = basic and app_id APP-ID; LOGIN-PROFILE has
provider = login (cache = process) against a server that accepts EMAIL and
PASSWORD; UCAASAUTH_CONFIG names their configuration, whose directory holds
the master key and PROFILE.cred. Called by test-cli.sh, which counts a
non-zero exit as one failure; each failed check is printed here.

The test keeps the slave side of the terminal open itself, so that after
the command exits it can still read the terminal's modes (echo back on?)
and what input is left in it (an overlong answer must not be left for the
shell to read).
"""
import base64
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time

WAIT = 60  # seconds for any one step: far above the slowest machine
MAX = 1024  # the longest value store accepts

cli, key_profile, app_id, login_profile, email, password = sys.argv[1:7]
wrapper = os.environ.get("CLI_WRAPPER", "").split()
conf_dir = os.path.dirname(os.environ["UCAASAUTH_CONFIG"])
failures = 0
checks = 0


def check(ok, what):
    global failures, checks
    checks += 1
    if not ok:
        failures += 1
        print("FAIL: store on a terminal: " + what, file=sys.stderr)
    return ok


def cred(profile):
    return os.path.join(conf_dir, profile + ".cred")


class Store:
    """One `ucaas-auth store PROFILE` on a new pseudo-terminal, which is
    its controlling terminal and its stdin, stdout and stderr."""

    def __init__(self, profile):
        self.master, self.slave = os.openpty()
        self.out = b""
        self.pos = 0  # what wait_for() has already matched

        def setup():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            wrapper + [cli, "store", profile], stdin=self.slave,
            stdout=self.slave, stderr=self.slave, preexec_fn=setup)

    def read_some(self, timeout):
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:
            return False
        self.out += data
        return bool(data)

    def wait_for(self, text):
        """Output until TEXT appears (after what was matched before)."""
        deadline = time.monotonic() + WAIT
        want = text.encode()
        while want not in self.out[self.pos:]:
            left = deadline - time.monotonic()
            if left <= 0:
                return check(False, "no '%s' within %d s; output: %r" %
                             (text, WAIT, self.out[-300:]))
            if not self.read_some(min(left, 0.2)) and \
                    self.proc.poll() is not None:
                return check(False, "exited before '%s'; output: %r" %
                             (text, self.out[-300:]))
        self.pos = self.out.index(want, self.pos) + len(want)
        return True

    def type(self, data):
        os.write(self.master, data)

    def finish(self):
        """The exit status (-N for signal N), with all the output read."""
        try:
            status = self.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            status = self.proc.wait()
            check(False, "still running after %d s; output: %r" %
                  (WAIT, self.out[-300:]))
        while self.read_some(0):
            pass
        return status

    def echo(self):
        return bool(termios.tcgetattr(self.slave)[3] & termios.ECHO)

    def pending(self):
        """Bytes of whole lines left unread in the terminal."""
        n = fcntl.ioctl(self.slave, termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", n)[0]

    def close(self):
        os.close(self.master)
        os.close(self.slave)


def in_heap(pid, needle):
    """Whether NEEDLE is in the [heap] of process PID, where stdio keeps
    its buffers (and sodium_malloc never puts anything); None if its memory
    cannot be read."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            heaps = [line.split()[0] for line in f
                     if line.rstrip().endswith("[heap]")]
        with open("/proc/%d/mem" % pid, "rb", 0) as mem:
            for r in heaps:
                start, end = (int(x, 16) for x in r.split("-"))
                mem.seek(start)
                if needle in mem.read(end - start):
                    return True
    except OSError:
        return None
    return False


def header(profile):
    r = subprocess.run(wrapper + [cli, "header", profile],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=WAIT)
    return r.returncode, r.stdout.decode(errors="replace").strip()


def refused(profile, answers, field, words, secret):
    """Answers PROMPT -> bytes, one after the other; the last one must be
    refused with exit status 1, a message naming FIELD and holding WORDS,
    and no prompt after it; SECRET never shown (but for the echo of an
    email); nothing stored; no input
    left in the terminal; echo on at the end."""
    what = "%s refused (%s)" % (field, words)
    before = open(cred(profile), "rb").read() \
        if os.path.exists(cred(profile)) else None
    s = Store(profile)
    for prompt, data in answers:
        if not s.wait_for(prompt + ": "):
            break
        s.type(data)
    status = s.finish()
    tail = s.out[s.pos:].decode(errors="replace")
    check(status == 1, "%s: exit status %s, expected 1; output: %r" %
          (what, status, tail))
    check(field in tail and words in tail,
          "%s: the message does not say '%s' and '%s': %r" %
          (what, field, words, tail))
    # A prompt after the refused answer (not the message, which names it).
    prompts = "".join(line for line in tail.splitlines()
                      if not line.startswith("ucaas-auth: "))
    for later in ("Email: ", "Password: "):
        check(later not in prompts,
              "%s: asked '%s' after the refused answer" % (what, later))
    # An email is echoed as it is typed, by the terminal: once.
    check(s.out.count(secret.encode()) <= (1 if field == "Email" else 0),
          "%s: the refused value was shown" % what)
    after = open(cred(profile), "rb").read() \
        if os.path.exists(cred(profile)) else None
    check(after == before, "%s: the credential file changed" % what)
    check(s.pending() == 0, "%s: %d bytes of input left in the terminal" %
          (what, s.pending()))
    check(s.echo(), "%s: echo left off" % what)
    s.close()


# The App Key: exactly MAX bytes are taken whole, never echoed.
key = "K" * (MAX - 1) + "k"
s = Store(key_profile)
if s.wait_for("App Key: "):
    s.type(key.encode() + b"\n")
status = s.finish()
check(status == 0, "App Key of %d bytes: exit status %s; output: %r" %
      (MAX, status, s.out[-300:]))
check(key.encode() not in s.out and b"KKKKKKKK" not in s.out,
      "the App Key was echoed")
check(s.echo(), "App Key: echo left off")
s.close()
want = "Authorization: Basic " + \
    base64.b64encode(("%s:%s" % (app_id, key)).encode()).decode()
r, out = header(key_profile)
check(r == 0 and out == want,
      "App Key of %d bytes: header printed %r (status %d)" %
      (MAX, out[:60], r))

# One byte more is refused, and nothing of it kept.
long = "L" * (MAX + 1)
refused(key_profile, [("App Key", long.encode() + b"\n")], "App Key",
        "longer than %d bytes" % MAX, long)
refused(key_profile, [("App Key", b"\n")], "App Key", "empty", "\0")
refused(key_profile, [("App Key", b"key\x01value\n")], "App Key",
        "control character", "key\x01value")

# An overlong email does not spill into the password prompt: the whole
# line is consumed, and the store stops there.
refused(login_profile, [("Email", long.encode() + b"\n")], "Email",
        "longer than %d bytes" % MAX, long)
refused(login_profile, [("Email", email.encode() + b"\n"),
                        ("Password", long.encode() + b"\n")],
        "Password", "longer than %d bytes" % MAX, long)
refused(login_profile, [("Email", email.encode() + b"\n"),
                        ("Password", b"pass\x01word\n")],
        "Password", "control character", "pass\x01word")

# Ctrl-C at the password prompt: the terminal gets its echo back, the
# command dies of SIGINT, nothing is stored. Before that, at the password
# prompt, the email just read is in no heap buffer (stdio's would hold it;
# not checked under valgrind, whose heap is elsewhere).
probe = "heap-probe-%d@example.com" % os.getpid()
s = Store(login_profile)
if s.wait_for("Email: "):
    s.type(probe.encode() + b"\n")
if s.wait_for("Password: "):
    check(not s.echo(), "echo on at the password prompt")
    found = None if wrapper else in_heap(s.proc.pid, probe.encode())
    if found is None and not wrapper:
        print("note: /proc/%d/mem unreadable, heap not checked" %
              s.proc.pid)
    check(not found, "the email read at the prompt is in the heap")
    s.type(b"half-typed\x03")
status = s.finish()
check(status == -signal.SIGINT,
      "Ctrl-C at the password prompt: exit status %s; output: %r" %
      (status, s.out[-300:]))
check(s.echo(), "Ctrl-C at the password prompt left echo off")
check(not os.path.exists(cred(login_profile)),
      "Ctrl-C at the password prompt stored something")
s.close()

# The email is echoed, the password is not; both are stored exactly: the
# server takes them.
s = Store(login_profile)
if s.wait_for("Email: "):
    s.type(email.encode() + b"\n")
if s.wait_for("Password: "):
    check(not s.echo(), "echo on at the password prompt")
    s.type(password.encode() + b"\n")
status = s.finish()
check(status == 0, "email and password: exit status %s; output: %r" %
      (status, s.out[-300:]))
check(email.encode() in s.out, "the email was not echoed")
check(password.encode() not in s.out, "the password was echoed")
check(s.echo(), "echo left off after the password")
s.close()
r, out = header(login_profile)
check(r == 0 and out.startswith("Authorization: Token "),
      "login with the stored email and password: status %d, %r" %
      (r, out[:40]))

if failures:
    print("%d of %d terminal checks failed" % (failures, checks),
          file=sys.stderr)
    sys.exit(1)
print("ok: %d terminal checks" % checks)
