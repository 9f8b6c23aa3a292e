"""A test world for the binding tests, standard library only.

The same world tests/fixture.c and tests/test-cli.sh build: a temporary
directory with a configuration file ($UCAASAUTH_CONFIG), a master key made
by `ucaas-auth keygen`, secrets stored by `ucaas-auth store` from stdin, a
private cache directory ($UCAASAUTH_RUNTIME_DIR), and the mock UCaaS server
(tests/mock-ucaas.py) on 127.0.0.1, started here and killed when the world
is closed, when the test exits, or when the test process dies
(PR_SET_PDEATHSIG).

Every wait is bounded; nothing sleeps for an outcome, it polls state.
"""

import atexit
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

APP_ID = "app-1234"
APP_KEY = "k3y-SECRET-app-key"
EMAIL = "ops@example.com"
PASSWORD = "Zq9-SECRET-password"

START_TIMEOUT = 30.0    # the mock writes its port file within this
STOP_TIMEOUT = 10.0
HTTP_TIMEOUT = 10.0

_worlds = []


def _die_with_parent():
    # In the mock's process, before exec: SIGTERM when the test dies.
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _on_sigterm(signum, frame):
    # meson's timeout sends SIGTERM: unwind, so that worlds are closed.
    raise SystemExit(128 + signum)


def install_signal_handlers():
    signal.signal(signal.SIGTERM, _on_sigterm)


def _close_all():
    for w in list(_worlds):
        w.close()


atexit.register(_close_all)

# Loopback only: a proxy from the environment must not see our requests.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class World:
    """args: cli = path of ucaas-auth, mock = path of tests/mock-ucaas.py."""

    def __init__(self, cli, mock, password=PASSWORD, token_ttl=900,
                 extra=""):
        self.cli = cli
        self.dir = tempfile.mkdtemp(prefix="ucaasauth-bind-")
        self.mock_proc = None
        _worlds.append(self)
        try:
            self._start_mock(mock, token_ttl)
            self.conf = os.path.join(self.dir, "ucaasauth.conf")
            self.runtime = os.path.join(self.dir, "run")
            self.home = os.path.join(self.dir, "home")
            os.mkdir(self.runtime, 0o700)
            os.mkdir(self.home, 0o700)
            with open(self.conf, "w") as f:
                f.write("default_profile = tok\n\n"
                        "[profile tok]\n"
                        "api_base = %s\n"
                        "app_id = %s\n"
                        "provider = login\n"
                        "%s\n"
                        "[profile srv]\n"
                        "api_base = %s\n"
                        "app_id = %s\n"
                        "provider = basic\n"
                        % (self.base, APP_ID, extra, self.base, APP_ID))
            os.chmod(self.conf, 0o600)
            self.env = self._env()
            self.run_cli(["keygen"])
            self.store("tok", "email=%s\npassword=%s\n" % (EMAIL, password))
            self.store("srv", "app_key=%s\n" % APP_KEY)
        except BaseException:
            self.close()
            raise

    def _env(self):
        env = dict(os.environ)
        for k in ("XDG_RUNTIME_DIR", "CREDENTIALS_DIRECTORY"):
            env.pop(k, None)
        env.update({
            "UCAASAUTH_CONFIG": self.conf,
            "UCAASAUTH_RUNTIME_DIR": self.runtime,
            "HOME": self.home,
            "no_proxy": "*",
            "NO_PROXY": "*",
        })
        return env

    def apply(self):
        """Makes this world the current process's environment (for a test
        that uses the library in-process, and for its forked children)."""
        for k in ("XDG_RUNTIME_DIR", "CREDENTIALS_DIRECTORY"):
            os.environ.pop(k, None)
        for k in ("UCAASAUTH_CONFIG", "UCAASAUTH_RUNTIME_DIR", "HOME",
                  "no_proxy", "NO_PROXY"):
            os.environ[k] = self.env[k]

    def _start_mock(self, mock, token_ttl):
        port_file = os.path.join(self.dir, "port")
        self.mock_proc = subprocess.Popen(
            [sys.executable, mock, "--port-file", port_file,
             "--app-id", APP_ID, "--app-key", APP_KEY,
             "--email", EMAIL, "--password", PASSWORD,
             "--token-ttl", str(token_ttl), "--quiet"],
            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with open(port_file) as f:
                    text = f.read()
                if text.endswith("\n") and text.strip().isdigit():
                    self.port = int(text)
                    break
            except FileNotFoundError:
                pass
            if self.mock_proc.poll() is not None:
                raise RuntimeError("the mock exited with status %d before "
                                   "listening" % self.mock_proc.returncode)
            if time.monotonic() > deadline:
                raise RuntimeError("the mock did not listen within %.0f s"
                                   % START_TIMEOUT)
            time.sleep(0.01)
        self.root = "http://127.0.0.1:%d" % self.port
        self.base = self.root + "/ucaas/v1"

    def run_cli(self, args, stdin=None, check=True):
        r = subprocess.run([self.cli] + args, input=stdin, env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError("ucaas-auth %s exited %d: %s"
                               % (" ".join(args), r.returncode, r.stderr))
        return r

    def store(self, profile, secrets):
        # Secrets on stdin, never in argv.
        self.run_cli(["store", profile], stdin=secrets)

    def request(self, method, path, body=None, header=None):
        """(status, parsed JSON or None). path: "/_mock/..." from the
        server root, anything else from the API base."""
        url = (self.root if path.startswith("/_mock/") else self.base) + path
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if header is not None:
            name, _, value = header.partition(":")
            req.add_header(name.strip(), value.strip())
        try:
            with _opener.open(req, timeout=HTTP_TIMEOUT) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        try:
            return status, json.loads(text.decode()) if text else None
        except ValueError:
            return status, None

    def stats(self):
        status, answer = self.request("GET", "/_mock/stats")
        if status != 200:
            raise RuntimeError("GET /_mock/stats: %d" % status)
        return answer

    def logins(self):
        return self.stats()["logins"]

    def config(self, settings):
        status, _ = self.request("POST", "/_mock/config", settings)
        if status != 200:
            raise RuntimeError("POST /_mock/config: %d" % status)

    def customers(self, header):
        """The HTTP status GET /customers answers to that header line."""
        return self.request("GET", "/customers", header=header)[0]

    def close(self):
        p, self.mock_proc = self.mock_proc, None
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(STOP_TIMEOUT)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        if self in _worlds:
            _worlds.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class Checks:
    """Counts checks and failures; prints each failure with its values."""

    def __init__(self):
        self.checks = 0
        self.failures = 0

    def check(self, cond, what):
        self.checks += 1
        if not cond:
            self.failures += 1
            print("FAIL: %s" % what, file=sys.stderr, flush=True)
        return cond

    def equal(self, got, want, what):
        return self.check(got == want, "%s: got %r, want %r" % (what, got,
                                                                  want))

    def done(self):
        print("%d checks, %d failed" % (self.checks, self.failures),
              flush=True)
        return 1 if self.failures else 0
