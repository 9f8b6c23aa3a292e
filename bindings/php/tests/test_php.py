#!/usr/bin/env python3
"""The PHP binding (FFI) in a prefork host, against the real mock server.

    test_php.py --php PATH --cli PATH --mock PATH --ffi-h PATH SCENARIO

with $UCAASAUTH_LIBRARY naming the built libucaasauth.so.1. Builds the
world (bindings/tests/world.py), runs bindings/php/tests/hosts.php
SCENARIO with php (pcntl_fork for the children) and checks what it prints
against the mock's counters:

  cold       16 children open the profile on a cold cache: 1 login, one
             header, accepted by GET /customers (200);
  inherited  a handle opened before the fork, used by the 16 children: 1
             login;
  reject     the header cached by `ucaas-auth header` is revoked at the
             server (401); the 16 children reject it and get a new one: 1
             more login, not 16;
  errors     wrong password -> UcaasAuth\\DeniedError with status, name and
             detail and no secret; unknown and invalid profiles; the
             E_TOOSMALL retry; no secret in print_r(); the class's statuses
             against ffi.h; the lookup error naming both places;
  preload    php -d ffi.preload=HEADER -d opcache.preload=preload.php
             (the PHP-FPM recipe of bindings/php/README.md): the class is
             preloaded and the preloaded FFI scope is used.

Exit 77 (skipped) when php is missing or lacks FFI or pcntl.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PHP_DIR = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(os.path.dirname(PHP_DIR), "tests"))

import world  # noqa: E402

WORKERS = 16
RUN_TIMEOUT = 180.0

t = world.Checks()
args = None


def php(scenario, w, extra_env=None, php_args=()):
    """Runs hosts.php SCENARIO in its own process group, bounded; returns
    its JSON answer (or None)."""
    env = dict(w.env if w else os.environ)
    env["UCAASAUTH_FFI_HEADER"] = args.ffi_h
    env.update(extra_env or {})
    with tempfile.TemporaryDirectory(prefix="ucaasauth-php-") as tmp:
        cmd = [args.php] + list(php_args) + [
            os.path.join(HERE, "hosts.php"), scenario, tmp]
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                             universal_newlines=True, start_new_session=True)
        try:
            out, _ = p.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            t.check(False, "php %s: no answer within %.0f s"
                    % (scenario, RUN_TIMEOUT))
            return None
        finally:
            # Children left behind by a failed run die with the group.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    t.equal(p.returncode, 0, "php %s: exit status" % scenario)
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        t.check(False, "php %s: no JSON answer: %r" % (scenario, out))
        return None


def check_children(w, answer, what):
    """All children OK and exited 0, in distinct processes, one header,
    accepted by the mock. Returns the header."""
    results = answer["results"] if answer else []
    t.equal(len(results), WORKERS, what + ": results")
    bad = [r for r in results if not r.get("ok") or r.get("exit") != 0]
    t.check(not bad, "%s: children failed: %s" % (what, bad))
    t.equal(len({r.get("pid") for r in results}), WORKERS,
            what + ": distinct child processes")
    headers = {r.get("header") for r in results}
    t.equal(len(headers), 1, what + ": distinct headers among children")
    if len(headers) != 1:
        return None
    header = headers.pop()
    t.check(isinstance(header, str) and
            header.startswith("Authorization: Token "), what + ": form")
    t.equal(w.customers(header), 200, what + ": GET /customers with it")
    return header


def new_world(**kw):
    return world.World(args.cli, args.mock, **kw)


def scenario_cold():
    with new_world() as w:
        answer = php("cold", w)
        check_children(w, answer, "cold")
        t.equal(answer and answer.get("library"),
                os.environ["UCAASAUTH_LIBRARY"], "cold: library loaded")
        logins = w.logins()
        print("cold: %d children, %d login(s)" % (WORKERS, logins))
        t.equal(logins, 1, "cold: logins at the mock")


def scenario_inherited():
    with new_world() as w:
        answer = php("inherited", w)
        header = check_children(w, answer, "inherited")
        t.equal(answer and answer.get("parent"), header,
                "inherited: parent's header")
        logins = w.logins()
        print("inherited: %d children, %d login(s)" % (WORKERS, logins))
        t.equal(logins, 1, "inherited: logins at the mock")


def scenario_reject():
    # reject_min_age = 0: the token is seconds old (see the Python test).
    with new_world(extra="reject_min_age = 0\n") as w:
        old = w.run_cli(["header", "tok"]).stdout.rstrip("\n")
        t.equal(w.logins(), 1, "reject: logins before the storm")
        w.config({"revoke": w.stats()["current_token"]})
        t.equal(w.customers(old), 401, "reject: the revoked header")
        answer = php("reject", w)
        t.equal(answer and answer.get("old"), old,
                "reject: the parent read the cached header")
        header = check_children(w, answer, "reject")
        t.check(header != old, "reject: children got a new header")
        t.equal(answer and answer.get("parent"), header,
                "reject: the parent's header after a late reject")
        logins = w.logins()
        print("reject: %d children rejected one header, %d login(s) in all"
              % (WORKERS, logins))
        t.equal(logins, 2, "reject: logins after the storm")


def lacks(texts, secrets, what):
    for s in secrets:
        for text in texts:
            t.check(s not in str(text), "%s: a secret in %r" % (what, text))


def scenario_errors():
    wrong = "WRONG-SECRET-pw-7731"
    with new_world(password=wrong) as w:
        # Stack traces with arguments (php.ini-development's setting):
        # the header reject() was given must still not show.
        r = php("errors", w, php_args=["-d", "zend.exception_ignore_args=0"]) \
            or {}
        d = r.get("denied", {})
        t.equal(d.get("class"), "UcaasAuth\\DeniedError", "errors: class")
        t.equal(d.get("status"), -4, "errors: status")
        t.equal(d.get("code"), -4, "errors: getCode()")
        t.equal(d.get("name"), "UCAASAUTH_E_DENIED", "errors: name")
        t.check("401" in (d.get("detail") or ""),
                "errors: detail names the HTTP status: %r" % d.get("detail"))
        t.check("UCAASAUTH_E_DENIED" in d.get("message", ""),
                "errors: message %r" % d.get("message"))
        basic = r.get("basic") or "Authorization: Basic ?"
        lacks([d.get("message"), d.get("detail"), d.get("string")],
              [wrong, world.PASSWORD, world.APP_KEY, basic],
              "errors: DeniedError")
        print("errors: %s" % d.get("message"))

        n = r.get("nosuch", {})
        t.equal(n.get("class"), "UcaasAuth\\ConfigError", "errors: nosuch")
        t.check("nosuch" in (n.get("detail") or ""),
                "errors: detail names the profile: %r" % n.get("detail"))
        t.equal(r.get("invalid", {}).get("class"), "UcaasAuth\\InvalidError",
                "errors: invalid profile name")

        t.check(basic.startswith("Authorization: Basic "), "errors: Basic")
        t.equal(w.customers(basic), 200, "errors: Basic header at the mock")
        t.equal(r.get("value"), basic[len("Authorization: "):],
                "errors: value()")
        t.equal(r.get("small"), basic, "errors: header after E_TOOSMALL")
        lacks([r.get("debug")], [basic, basic.split()[-1]],
              "errors: print_r(handle)")
        c = r.get("closed", {})
        t.equal(c.get("class"), "UcaasAuth\\InvalidError",
                "errors: reject on a closed handle")
        t.check("Handle->reject" in c.get("string", "") and
                "reject" in c.get("trace", ""),
                "errors: the trace shows reject(): %r" % c.get("trace"))
        lacks([c.get("message"), c.get("string"), c.get("trace")],
              [basic.split()[-1]], "errors: closed handle")
        t.equal(r.get("mismatch"), [], "errors: statuses vs ffi.h")

    # The lookup: a bad $UCAASAUTH_LIBRARY, then the soname; an error
    # naming both when neither loads (no world needed).
    env = {"UCAASAUTH_LIBRARY": "/nonexistent/libucaasauth.so.1"}
    saved = os.environ.pop("LD_LIBRARY_PATH", None)
    try:
        installed = subprocess.run(
            [args.php, "-r", "try { FFI::cdef('', 'libucaasauth.so.1'); "
             "echo 'installed'; } catch (FFI\\Exception $e) "
             "{ echo 'absent'; }"], stdout=subprocess.PIPE,
            universal_newlines=True, timeout=60).stdout
        r = php("lookup", None, env)
    finally:
        if saved is not None:
            os.environ["LD_LIBRARY_PATH"] = saved
    r = r or {}
    if installed == "absent":
        msg = r.get("message", "")
        t.equal(r.get("class"), "UcaasAuth\\LibraryError", "errors: lookup")
        t.check("UCAASAUTH_LIBRARY=/nonexistent/libucaasauth.so.1" in msg and
                "then libucaasauth.so.1" in msg,
                "errors: the lookup error names both: %r" % msg)
        print("errors: %s" % msg)
    else:
        t.equal(r.get("value"), "libucaasauth.so.1",
                "errors: fallback to the installed soname")


def scenario_preload():
    with new_world() as w, tempfile.TemporaryDirectory(
            prefix="ucaasauth-preload-") as tmp:
        # The README's recipe: ffi.h with FFI_SCOPE and FFI_LIB in front.
        header = os.path.join(tmp, "ucaasauth-ffi.h")
        with open(args.ffi_h) as f, open(header, "w") as out:
            out.write('#define FFI_SCOPE "UCAASAUTH"\n#define FFI_LIB "%s"\n'
                      % os.environ["UCAASAUTH_LIBRARY"])
            out.write(f.read())
        # No ffi.h path and a bad library path: only the scope can work.
        # And the class itself through opcache.preload (preload.php).
        r = php("preload", w, {"UCAASAUTH_FFI_HEADER": "/nonexistent/ffi.h",
                               "UCAASAUTH_LIBRARY": "/nonexistent/lib.so"},
                ["-d", "ffi.enable=preload", "-d", "ffi.preload=" + header,
                 "-d", "opcache.enable_cli=1",
                 "-d", "opcache.preload=" + os.path.join(PHP_DIR,
                                                         "preload.php"),
                 "-d", "opcache.preload_user=nobody"])
        r = r or {}
        t.equal(r.get("library"), "ffi.preload scope UCAASAUTH",
                "preload: the scope was used")
        t.equal(r.get("preloaded"), True,
                "preload: UcaasAuth\\Handle preloaded by preload.php")
        t.equal(w.customers(r.get("header") or ""), 200,
                "preload: its header at the mock")
        print("preload: header through the ffi.preload scope")


SCENARIOS = {
    "cold": scenario_cold,
    "inherited": scenario_inherited,
    "reject": scenario_reject,
    "errors": scenario_errors,
    "preload": scenario_preload,
}


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--php", required=True)
    p.add_argument("--cli", required=True)
    p.add_argument("--mock", required=True)
    p.add_argument("--ffi-h", required=True)
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    args = p.parse_args()
    if not os.environ.get("UCAASAUTH_LIBRARY"):
        print("set UCAASAUTH_LIBRARY to the built libucaasauth.so.1",
              file=sys.stderr)
        return 2
    if not args.php or not os.access(args.php, os.X_OK):
        print("php not found (tools/install-deps installs php8.2-cli): "
              "skipped")
        return 77
    r = subprocess.run([args.php, "-m"], stdout=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    modules = set(r.stdout.split())
    missing = [m for m in ("FFI", "pcntl") if m not in modules]
    if missing:
        print("%s lacks %s: skipped" % (args.php, ", ".join(missing)))
        return 77
    world.install_signal_handlers()
    SCENARIOS[args.scenario]()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
