#!/usr/bin/env python3
"""The Python binding in a prefork host, against the real mock server.

    test_hosts.py --cli PATH --mock PATH --ffi-h PATH SCENARIO

with $UCAASAUTH_LIBRARY naming the built libucaasauth.so.1. Scenarios:

  cold       16 workers of a multiprocessing pool (fork) open the profile
             on a cold cache, released together: 1 login at the mock, one
             header for all, accepted by GET /customers (200).
  inherited  the same with a handle the parent opened before the fork and
             the children use: 1 login.
  reject     the parent's header is revoked at the server (401); the 16
             workers all reject it, then get a new one: 1 more login, not
             16; the new header gets 200, a late reject changes nothing.
  errors     wrong password in the store -> DeniedError with .status,
             .name, .detail and no secret in it; unknown and invalid
             profiles; the UCAASAUTH_E_TOOSMALL retry; buffers wiped;
             per-thread details; the status table against ffi.h (and
             ffi.h through cffi, when cffi is installed); the library
             lookup's error.
  examples   examples/urllib_example.py against the mock (and
             examples/requests_example.py when requests is installed).
  pip        pip install --no-index --target DIR bindings/python works
             offline, and the installed package loads the library.
             Skipped (77) when this Python has no pip.
"""

import argparse
import faulthandler
import multiprocessing
import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_DIR = os.path.dirname(HERE)                        # bindings/python
sys.path.insert(0, os.path.join(os.path.dirname(PKG_DIR), "tests"))
sys.path.insert(0, PKG_DIR)

import world  # noqa: E402
import ucaasauth  # noqa: E402

WORKERS = 16
POOL_TIMEOUT = 120.0    # the whole pool's work; the library bounds each call
BARRIER_TIMEOUT = 60.0
WATCHDOG = 240.0        # the whole scenario, below meson's timeout

t = world.Checks()
args = None

# Set before the pool forks, inherited by its workers.
_barrier = None
_handle = None
_rejected = None


def _init(barrier):
    global _barrier
    _barrier = barrier
    # The driver's SIGTERM handler only runs between bytecodes: a worker
    # stuck in a C call must still die when the pool is terminated.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _result(fn):
    # Workers report a status name, never raise: a pickled exception would
    # hide which worker failed how.
    try:
        _barrier.wait(BARRIER_TIMEOUT)
        return ("ok", os.getpid(), fn())
    except ucaasauth.Error as e:
        return ("error", os.getpid(), "%s (%s)" % (e.name, e.detail))
    except Exception as e:
        return ("exception", os.getpid(), repr(e))


def _cold(i):
    def run():
        with ucaasauth.open("tok") as ua:
            return ua.header()
    return _result(run)


def _inherited(i):
    return _result(lambda: _handle.header())


def _reject(i):
    def run():
        _handle.reject(_rejected)
        return _handle.header()
    return _result(run)


def run_pool(fn):
    """Runs fn(i) for i < WORKERS, one per worker process, all released
    together; returns the results."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(WORKERS)
    with ctx.Pool(WORKERS, initializer=_init, initargs=(barrier,)) as pool:
        results = pool.map_async(fn, range(WORKERS), chunksize=1).get(
            POOL_TIMEOUT)
    return results


def check_headers(w, results, what):
    """All OK, all the same header, in distinct processes, accepted by the
    mock. Returns the header."""
    bad = [r for r in results if r[0] != "ok"]
    t.equal(len(results), WORKERS, what + ": results")
    t.check(not bad, "%s: workers failed: %s" % (what, bad))
    t.equal(len({r[1] for r in results}), WORKERS,
            what + ": distinct worker processes")
    headers = {r[2] for r in results if r[0] == "ok"}
    t.equal(len(headers), 1, what + ": distinct headers among workers")
    if len(headers) != 1:
        return None
    header = headers.pop()
    t.check(header.startswith("Authorization: Token "),
            what + ": header form")
    t.equal(w.customers(header), 200, what + ": GET /customers with it")
    return header


def new_world(**kw):
    w = world.World(args.cli, args.mock, **kw)
    w.apply()
    return w


def scenario_cold():
    with new_world() as w:
        results = run_pool(_cold)
        check_headers(w, results, "cold")
        logins = w.logins()
        print("cold: %d workers, %d login(s)" % (WORKERS, logins))
        t.equal(logins, 1, "cold: logins at the mock")


def scenario_inherited():
    global _handle
    with new_world() as w:
        _handle = ucaasauth.open("tok")
        try:
            results = run_pool(_inherited)
            header = check_headers(w, results, "inherited")
            # The parent's handle, still its own, shares the same token.
            t.equal(_handle.header(), header, "inherited: parent's header")
        finally:
            _handle.close()
            _handle = None
        logins = w.logins()
        print("inherited: %d workers, %d login(s)" % (WORKERS, logins))
        t.equal(logins, 1, "inherited: logins at the mock")


def scenario_reject():
    global _handle, _rejected
    # The token is a second old when it is rejected; with the default
    # reject_min_age (30 s) the library would keep serving it until its
    # backoff step ends, by design (a persistent 403 must not turn every
    # call into a login). A revoked token is what this scenario is about.
    with new_world(extra="reject_min_age = 0\n") as w:
        _handle = ucaasauth.open("tok")
        try:
            _rejected = _handle.header()
            t.equal(w.logins(), 1, "reject: logins before the storm")
            # The server forgets the token, as after a revocation.
            w.config({"revoke": w.stats()["current_token"]})
            t.equal(w.customers(_rejected), 401,
                    "reject: GET /customers with the revoked header")
            results = run_pool(_reject)
            header = check_headers(w, results, "reject")
            t.check(header != _rejected, "reject: workers got a new header")
            logins = w.logins()
            print("reject: %d workers rejected one header, %d login(s) "
                  "in all" % (WORKERS, logins))
            t.equal(logins, 2, "reject: logins after the storm")
            # A late reject of the old header changes nothing.
            _handle.reject(_rejected)
            t.equal(_handle.header(), header, "reject: header after a "
                    "late reject")
            t.equal(w.logins(), 2, "reject: logins after a late reject")
        finally:
            _handle.close()
            _handle = None


def lacks_secrets(texts, secrets, what):
    for s in secrets:
        for text in texts:
            t.check(s not in text, "%s: a secret in %r" % (what, text))


def scenario_errors():
    wrong = "WRONG-SECRET-pw-7731"
    with new_world(password=wrong) as w:
        t.equal(ucaasauth.library_path(), os.environ["UCAASAUTH_LIBRARY"],
                "errors: the library loaded")

        # A refused login: the status, its name, the detail, no secret.
        ua = ucaasauth.open("tok")
        try:
            ua.header()
            t.check(False, "errors: header() with a wrong password worked")
        except ucaasauth.DeniedError as e:
            t.equal(e.status, ucaasauth.E_DENIED, "errors: .status")
            t.equal(e.name, "UCAASAUTH_E_DENIED", "errors: .name")
            t.check(isinstance(e, ucaasauth.Error), "errors: base class")
            t.check(bool(e.detail) and "401" in e.detail,
                    "errors: .detail names the HTTP status: %r" % e.detail)
            t.check("UCAASAUTH_E_DENIED" in str(e), "errors: str(e): %s" % e)
            copy = pickle.loads(pickle.dumps(e))
            t.check(type(copy) is type(e) and copy.status == e.status and
                    copy.detail == e.detail and str(copy) == str(e),
                    "errors: pickled exception")
            lacks_secrets([str(e), repr(e), e.detail, repr(e.args)],
                          [wrong, world.PASSWORD, world.APP_KEY],
                          "errors: DeniedError")
            print("errors: %s" % e)
        except ucaasauth.Error as e:
            t.check(False, "errors: wrong password gave %s" % e.name)
        finally:
            ua.close()
        t.check(w.logins() >= 1, "errors: a login was tried")

        # The Basic profile: its header is the App Key in base64, a secret
        # that no exception or repr may show.
        with ucaasauth.open("srv") as ua:
            basic = ua.header()
            t.check(basic.startswith("Authorization: Basic "),
                    "errors: Basic header form")
            t.equal(ua.value(), basic[len("Authorization: "):],
                    "errors: value()")
            t.equal(w.customers(basic), 200, "errors: Basic header at the "
                    "mock")
            t.check(basic not in repr(ua), "errors: repr(handle)")
            # The E_TOOSMALL path: a buffer far too small, then the size
            # the library asked for. Every buffer wiped after use.
            buffers = []
            make = ucaasauth._buffer

            def spy(size):
                buf = make(size)
                buffers.append(buf)
                return buf
            ucaasauth._buffer, ucaasauth._INITIAL_SIZE = spy, 8
            try:
                t.equal(ua.header(), basic, "errors: header after "
                        "E_TOOSMALL")
            finally:
                ucaasauth._buffer, ucaasauth._INITIAL_SIZE = make, 512
            t.equal([len(b) for b in buffers], [8, len(basic) + 1],
                    "errors: buffer sizes tried")
            t.check(all(b.raw == bytes(len(b)) for b in buffers),
                    "errors: buffers wiped after header()")
            t.check(ua.value() == basic[len("Authorization: "):],
                    "errors: header after the retry test")
        try:
            ua.reject(basic)
            t.check(False, "errors: reject on a closed handle worked")
        except ucaasauth.InvalidError as e:
            lacks_secrets([str(e), repr(e)], [basic, world.APP_KEY],
                          "errors: closed handle")
        t.check(basic not in repr(ua), "errors: repr(closed handle)")

        # Unknown and invalid profiles.
        try:
            ucaasauth.open("nosuch")
            t.check(False, "errors: open('nosuch') worked")
        except ucaasauth.ConfigError as e:
            t.equal(e.name, "UCAASAUTH_E_CONFIG", "errors: unknown profile")
            t.check("nosuch" in (e.detail or ""),
                    "errors: detail names the profile: %r" % e.detail)
        try:
            ucaasauth.open("bad name!")
            t.check(False, "errors: open('bad name!') worked")
        except ucaasauth.InvalidError as e:
            t.equal(e.status, ucaasauth.E_INVALID, "errors: invalid name")

        # The detail is per thread, read right after the failing call:
        # two threads failing differently each see their own.
        mixups = []

        def fail_with(profile, cls, n=200):
            for _ in range(n):
                try:
                    ucaasauth.open(profile)
                except cls as e:
                    if cls is ucaasauth.ConfigError and \
                            "nosuch" not in (e.detail or ""):
                        mixups.append(e.detail)
                    if cls is ucaasauth.InvalidError and \
                            "nosuch" in (e.detail or ""):
                        mixups.append(e.detail)
                except Exception as e:
                    mixups.append(repr(e))
        threads = [threading.Thread(target=fail_with,
                                    args=("nosuch", ucaasauth.ConfigError)),
                   threading.Thread(target=fail_with,
                                    args=("bad name!", ucaasauth.InvalidError))]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        t.check(not any(th.is_alive() for th in threads),
                "errors: threads finished")
        t.check(not mixups, "errors: details from another thread: %r"
                % mixups[:3])

    # The statuses of the binding, against ffi.h's enum.
    with open(args.ffi_h) as f:
        text = re.sub(r"/\*.*?\*/", " ", f.read(), flags=re.S)
    enum = {int(v): n for n, v in
            re.findall(r"\b(UCAASAUTH_\w+)\s*=\s*(-?\d+)", text)}
    t.check(len(enum) >= 11, "errors: enumerators found in ffi.h")
    t.equal(ucaasauth.STATUS_NAMES, enum, "errors: status names vs ffi.h")
    for status, name in enum.items():
        t.equal(getattr(ucaasauth, name[len("UCAASAUTH_"):], None), status,
                "errors: ucaasauth.%s" % name[len("UCAASAUTH_"):])

    # ffi.h as cffi reads it (the point of ffi.h), when cffi is there.
    try:
        import cffi
    except ImportError:
        print("errors: cffi not installed, ffi.h not parsed with it")
    else:
        ffi = cffi.FFI()
        with open(args.ffi_h) as f:
            ffi.cdef(f.read())
        lib = ffi.dlopen(os.environ["UCAASAUTH_LIBRARY"])
        t.equal(lib.UCAASAUTH_E_DENIED, ucaasauth.E_DENIED,
                "errors: cffi enum")
        t.equal(ffi.string(lib.ucaasauth_strerror(-4)).decode(),
                ucaasauth.strerror(-4), "errors: cffi strerror")
        print("errors: ffi.h parsed by cffi %s" % cffi.__version__)

    # The lookup: a bad $UCAASAUTH_LIBRARY, then the soname through the
    # loader; an error that names both when neither loads.
    env = dict(os.environ, UCAASAUTH_LIBRARY="/nonexistent/libucaasauth.so.1",
               PYTHONPATH=PKG_DIR)
    env.pop("LD_LIBRARY_PATH", None)
    probe = ("import ctypes, ucaasauth\n"
             "try:\n"
             "    ctypes.CDLL('libucaasauth.so.1'); print('installed')\n"
             "except OSError:\n"
             "    print('absent')\n"
             "try:\n"
             "    print(ucaasauth.library_path())\n"
             "except ucaasauth.LibraryError as e:\n"
             "    print('LibraryError:', e)\n")
    r = subprocess.run([sys.executable, "-c", probe], env=env,
                       stdout=subprocess.PIPE, universal_newlines=True,
                       timeout=60)
    lines = r.stdout.splitlines()
    t.equal(len(lines), 2, "errors: lookup probe output %r" % r.stdout)
    if len(lines) == 2 and lines[0] == "absent":
        t.check(lines[1].startswith("LibraryError:") and
                "/nonexistent/libucaasauth.so.1" in lines[1] and
                "then libucaasauth.so.1" in lines[1],
                "errors: the lookup error names both: %s" % lines[1])
        print("errors: %s" % lines[1])
    elif len(lines) == 2:
        t.equal(lines[1], "libucaasauth.so.1",
                "errors: fallback to the installed soname")


def scenario_examples():
    # reject_min_age = 0: the tokens revoked here are seconds old (see
    # scenario_reject).
    with new_world(extra="reject_min_age = 0\n") as w:
        env = dict(w.env, PYTHONPATH=PKG_DIR)
        ex = os.path.join(PKG_DIR, "examples")
        r = subprocess.run([sys.executable, os.path.join(ex,
                            "urllib_example.py"), "--profile", "tok",
                            "--base", w.base], env=env,
                           stdout=subprocess.PIPE, universal_newlines=True,
                           timeout=120)
        t.equal(r.returncode, 0, "examples: urllib_example.py exit status")
        t.equal(r.stdout.splitlines()[:1], ["200"], "examples: urllib "
                "answer")
        # The token revoked at the server: the example rejects and retries.
        w.config({"revoke": w.stats()["current_token"]})
        r = subprocess.run([sys.executable, os.path.join(ex,
                            "urllib_example.py"), "--profile", "tok",
                            "--base", w.base], env=env,
                           stdout=subprocess.PIPE, universal_newlines=True,
                           timeout=120)
        t.equal(r.returncode, 0, "examples: urllib after a revocation")
        t.equal(w.logins(), 2, "examples: logins after the revocation")
        try:
            import requests  # noqa: F401
        except ImportError:
            print("examples: requests not installed, requests_example.py "
                  "not run")
            return
        w.config({"revoke": w.stats()["current_token"]})
        r = subprocess.run([sys.executable, os.path.join(ex,
                            "requests_example.py"), "--profile", "tok",
                            "--base", w.base], env=env,
                           stdout=subprocess.PIPE, universal_newlines=True,
                           timeout=120)
        t.equal(r.returncode, 0, "examples: requests_example.py exit status")
        t.equal(w.logins(), 3, "examples: logins after requests' retry")
        print("examples: urllib and requests examples answered 200, "
              "%d logins" % w.logins())


def scenario_pip():
    r = subprocess.run([sys.executable, "-m", "pip", "--version"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=60)
    if r.returncode != 0:
        print("pip: %s has no pip: skipped" % sys.executable)
        sys.exit(77)
    with tempfile.TemporaryDirectory(prefix="ucaasauth-pip-") as tmp:
        target = os.path.join(tmp, "site")
        env = dict(os.environ, PIP_NO_INDEX="1", PIP_NO_CACHE_DIR="1",
                   PIP_DISABLE_PIP_VERSION_CHECK="1")
        env.pop("PIP_FIND_LINKS", None)
        r = subprocess.run([sys.executable, "-m", "pip", "install",
                            "--no-index", "--target", target, PKG_DIR],
                           env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True,
                           timeout=300)
        t.equal(r.returncode, 0, "pip: install exit status\n" + r.stdout)
        probe = ("import ucaasauth, sys\n"
                 "print(ucaasauth.__file__)\n"
                 "print(ucaasauth.strerror(ucaasauth.E_DENIED))\n")
        env = dict(os.environ, PYTHONPATH=target)
        r = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp,
                           stdout=subprocess.PIPE, universal_newlines=True,
                           timeout=60)
        lines = r.stdout.splitlines()
        t.check(len(lines) == 2 and lines[0].startswith(target),
                "pip: the installed package is imported: %r" % lines)
        t.check(len(lines) == 2 and lines[1] == ucaasauth.strerror(-4),
                "pip: the installed package loads the library: %r" % lines)
        print("pip: installed offline into %s" % target)


SCENARIOS = {
    "cold": scenario_cold,
    "inherited": scenario_inherited,
    "reject": scenario_reject,
    "errors": scenario_errors,
    "examples": scenario_examples,
    "pip": scenario_pip,
}


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--cli", required=True)
    p.add_argument("--mock", required=True)
    p.add_argument("--ffi-h", required=True)
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    args = p.parse_args()
    if not os.environ.get("UCAASAUTH_LIBRARY"):
        print("set UCAASAUTH_LIBRARY to the built libucaasauth.so.1",
              file=sys.stderr)
        return 2
    world.install_signal_handlers()
    sys.stdout.reconfigure(line_buffering=True)
    # A hang inside a C call defers signal handlers: show where it is, and
    # end (the worlds' mocks die with us, PR_SET_PDEATHSIG).
    faulthandler.dump_traceback_later(WATCHDOG, exit=True)
    SCENARIOS[args.scenario]()
    faulthandler.cancel_dump_traceback_later()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
