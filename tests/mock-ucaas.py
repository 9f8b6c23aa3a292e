#!/usr/bin/env python3
"""Mock EnableX UCaaS server for libucaasauth's tests and demo.

A real HTTP/1.1 server (keep-alive, Content-Length on every answer) on
127.0.0.1 that imitates the two things libucaasauth talks to:

    POST /ucaas/v1/login      X-Api-Id + JSON {email, password} -> {"token": ...}
    GET  /ucaas/v1/customers  Authorization: Basic ... | Token ...

plus a control interface for tests on the same port (no auth):

    GET  /_mock/stats         counters, login times (a list and a
                              comma-separated string), current token
    POST /_mock/config        change settings and inject faults (JSON object)
    POST /_mock/reset         zero counters, clear faults, restore the
                              command-line credentials and token_ttl

When it listens, it writes the port number to --port-file atomically
(temporary file + rename), so a client can poll for that file. SIGTERM and
SIGINT stop it cleanly (exit status 0, port file removed). Standard library
only.

Counting rules: every POST to /login counts in "logins" as soon as its
headers have arrived (so "hang" and "drop" count too). An attempt counts in
"logins_ok" when it issued a token (normal, "expires_in" and "slow"
answers), otherwise in "logins_failed"; logins == logins_ok + logins_failed
at all times, even while a slow answer is still being sent.

Tokens: each keeps the token_ttl in force when it was issued. Reset does not
forget issued tokens (a client's cached token stays valid); use
{"expire_all": true} or {"revoke": TOKEN} for that. Faults (drop, hang,
redirect, huge, slow) apply whatever the request; "slow" sends whatever the
answer would have been (200 with a token, or an error), byte by byte.

/customers is stricter than HTTP requires: exactly one Authorization header,
and the scheme spelled exactly "Basic" or "Token", so that a client that
duplicates or mangles the header is caught.
"""

import argparse
import base64
import json
import os
import secrets
import select
import signal
import socket
import socketserver
import ssl
import string
import sys
import threading
import time
import traceback
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = "/ucaas/v1"
TOKEN_ALPHABET = string.ascii_letters + string.digits + "._-"
TOKEN_LEN = 120
MAX_BODY = 1 << 20              # request bodies; the real ones are tiny
HUGE_SIZE = 10 * 1024 * 1024    # login_fault "huge"
HANG_MAX = 3600.0               # login_fault "hang" gives up after an hour
IDLE_TIMEOUT = 300              # idle keep-alive connections are closed

# EnableX-style "result" codes used in error bodies.
R_TOKEN_EXPIRED = 1001
R_BAD_CREDENTIALS = 1002
R_BAD_REQUEST = 1003
R_UNAUTHORIZED = 1004
R_NOT_FOUND = 1005
R_SERVER = 1006

FAULTS = (None, "drop", "hang", "slow", "huge", "redirect", "expires_in")


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def error_body(result, msg, desc):
    return {"result": result, "msg": msg, "desc": desc}


def status_error(status):
    """EnableX-style error body for an injected login_status."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    result = {400: R_BAD_REQUEST, 401: R_BAD_CREDENTIALS,
              403: R_UNAUTHORIZED, 404: R_NOT_FOUND}.get(status, R_SERVER)
    return error_body(result, phrase, "Injected by the mock (login_status %d)" % status)


class State:
    """Everything the handler threads share, behind one lock."""

    def __init__(self, args):
        self.lock = threading.Lock()
        self.app_id = args.app_id
        self.app_key = args.app_key
        basic = base64.b64encode(("%s:%s" % (args.app_id, args.app_key)).encode())
        self.basic = "Basic " + basic.decode("ascii")
        self.initial = (args.email, args.password, args.token_ttl)
        self.tokens = {}        # token -> monotonic expiry
        self.current_token = None
        self.restore()
        self.zero()

    def restore(self):
        """Command-line credentials and ttl, no faults (lock held or init)."""
        self.email, self.password, self.token_ttl = self.initial
        self.login_delay = 0.0
        self.login_status = None
        self.login_body = None
        self.login_fault = None

    def zero(self):
        self.logins = 0
        self.logins_ok = 0
        self.logins_failed = 0
        self.login_times = []
        self.customers_ok = 0
        self.customers_401 = 0
        self.customers_403 = 0
        self.tokens_issued = 0

    def issue(self):
        """New token valid for the current token_ttl (lock held)."""
        token = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LEN))
        self.tokens[token] = time.monotonic() + self.token_ttl
        self.tokens_issued += 1
        self.logins_ok += 1
        self.current_token = token
        return token

    def stats(self):
        with self.lock:
            return {
                "logins": self.logins,
                "logins_ok": self.logins_ok,
                "logins_failed": self.logins_failed,
                "login_times": list(self.login_times),
                # The same times as one string, for C tests that strtod() them.
                "login_times_csv": ",".join("%.6f" % t for t in self.login_times),
                "customers_ok": self.customers_ok,
                "customers_refused": self.customers_401 + self.customers_403,
                "customers_401": self.customers_401,
                "customers_403": self.customers_403,
                "tokens_issued": self.tokens_issued,
                "token_ttl": self.token_ttl,
                "current_token": self.current_token,
                "login_fault": self.login_fault,
            }

    def configure(self, cfg):
        """Validate every key first, then apply all of them at once.

        Returns None on success or a message for a 400 answer.
        """
        if not isinstance(cfg, dict):
            return "config must be a JSON object"
        for key, v in cfg.items():
            if key == "token_ttl":
                if not is_number(v) or v < 0:
                    return "token_ttl must be a number >= 0"
            elif key in ("email", "password"):
                if not isinstance(v, str):
                    return "%s must be a string" % key
            elif key == "login_delay":
                if not is_number(v) or v < 0:
                    return "login_delay must be a number >= 0"
            elif key == "login_status":
                is_int = isinstance(v, int) and not isinstance(v, bool)
                if v is not None and not (is_int and (v == 0 or 100 <= v <= 599)):
                    return "login_status must be null, 0 or 100..599"
            elif key == "login_body":
                if v is not None and not isinstance(v, str):
                    return "login_body must be a string or null"
            elif key == "login_fault":
                if v not in FAULTS:
                    return "login_fault must be one of %s" % (FAULTS,)
            elif key == "expire_all":
                if not isinstance(v, bool):
                    return "expire_all must be a boolean"
            elif key == "revoke":
                if not isinstance(v, str):
                    return "revoke must be a string"
            else:
                return "unknown key %r" % key
        with self.lock:
            for key, v in cfg.items():
                if key == "token_ttl":
                    self.token_ttl = v
                elif key == "email":
                    self.email = v
                elif key == "password":
                    self.password = v
                elif key == "login_delay":
                    self.login_delay = float(v)
                elif key == "login_status":
                    self.login_status = v or None
                elif key == "login_body":
                    self.login_body = v
                elif key == "login_fault":
                    self.login_fault = v
                elif key == "expire_all" and v:
                    now = time.monotonic()
                    for t in self.tokens:
                        self.tokens[t] = now
                elif key == "revoke":
                    self.tokens.pop(v, None)
        return None

    def reset(self):
        with self.lock:
            self.restore()
            self.zero()


class BadRequest(Exception):
    def __init__(self, status, msg, close=False):
        super().__init__(msg)
        self.status = status
        self.msg = msg
        self.close = close


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-ucaas/1"
    timeout = IDLE_TIMEOUT
    # Headers and body go out in separate writes; without TCP_NODELAY,
    # Nagle + delayed ACK add 40 ms to every keep-alive answer.
    disable_nagle_algorithm = True

    def setup(self):
        # The TLS handshake runs here, in the connection's own thread,
        # not in accept(): a client that connects and stalls must not
        # block the accept loop for everyone else.
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
        super().setup()

    def version_string(self):
        return self.server_version

    # --- logging: nothing on stdout, errors on stderr unless --quiet ---

    def log_message(self, format, *args):
        pass

    def log_error(self, format, *args):
        if self.server.quiet or format.startswith("Request timed out"):
            return
        sys.stderr.write("mock-ucaas: %s: %s\n" % (self.address_string(), format % args))

    # --- plumbing ---

    def read_body(self):
        te = self.headers.get("Transfer-Encoding")
        if te is not None:
            if te.strip().lower() != "chunked":
                raise BadRequest(400, "unsupported Transfer-Encoding", close=True)
            return self.read_chunked()
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b""
        try:
            n = int(cl)
        except ValueError:
            raise BadRequest(400, "bad Content-Length", close=True)
        if n < 0:
            raise BadRequest(400, "bad Content-Length", close=True)
        if n > MAX_BODY:
            raise BadRequest(413, "body too large", close=True)
        body = self.rfile.read(n)
        if len(body) != n:
            raise ConnectionResetError("short body")
        return body

    def read_chunked(self):
        body = b""
        while True:
            line = self.rfile.readline(1024)
            try:
                n = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise BadRequest(400, "bad chunk", close=True)
            if n == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return body
            if len(body) + n > MAX_BODY:
                raise BadRequest(413, "body too large", close=True)
            body += self.rfile.read(n)
            self.rfile.readline(1024)

    def reply(self, status, obj=None, raw=None, headers=(), close=False):
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def fail(self, status, result, msg, desc, close=False):
        self.reply(status, error_body(result, msg, desc), close=close)

    def dispatch(self):
        path = urllib.parse.urlsplit(self.path).path
        try:
            if self.command == "POST" and path == API + "/login":
                return self.login()
            # Every request body is read before answering, so a
            # leftover body never poisons the kept-alive connection.
            body = self.read_body()
            if self.command == "GET" and path == API + "/customers":
                return self.customers()
            if self.command == "GET" and path == "/_mock/stats":
                return self.reply(200, self.server.state.stats())
            if self.command == "POST" and path == "/_mock/config":
                return self.config(body)
            if self.command == "POST" and path == "/_mock/reset":
                self.server.state.reset()
                return self.reply(200, {"result": 0})
            self.fail(404, R_NOT_FOUND, "Not found",
                      "No route for %s %s" % (self.command, path))
        except BadRequest as e:
            self.fail(e.status, R_BAD_REQUEST, "Bad request", e.msg, close=e.close)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = dispatch

    # --- routes ---

    def login(self):
        st = self.server.state
        with st.lock:
            st.logins += 1
            st.login_times.append(time.time())
            del st.login_times[:-1000]
            delay = st.login_delay
            fault = st.login_fault
            status = st.login_status
            raw = st.login_body
        # The outcome is counted before anything is sent, so that the stats
        # are exact even while a "slow" or "huge" answer is still going out.
        try:
            body = self.read_body()
        except BaseException:
            self.count_failure()
            raise
        if delay > 0 and self.server.stopping.wait(delay):
            self.count_failure()
            self.close_connection = True
            return
        if fault in ("drop", "hang", "redirect", "huge"):
            self.count_failure()
            if fault == "drop":
                self.close_connection = True
            elif fault == "hang":
                self.hang()
            elif fault == "redirect":
                self.reply(302, error_body(R_NOT_FOUND, "Moved", "Login moved"),
                           headers=[("Location", API + "/login2")])
            else:
                self.huge()
            return
        if raw is not None:
            code, answer = status or 200, raw.encode()
        elif status is not None:
            code, answer = status, json.dumps(status_error(status)).encode()
        else:
            code, answer = self.check_login(body)
        if code == 200 and answer is None:
            with st.lock:
                token = st.issue()
                ttl = st.token_ttl
            obj = {"result": 0, "token": token}
            if fault == "expires_in":
                obj["expires_in"] = int(ttl)
            answer = json.dumps(obj).encode()
        else:
            self.count_failure()
        if fault == "slow":
            self.slow(code, answer)
        else:
            self.reply(code, raw=answer)

    def count_failure(self):
        st = self.server.state
        with st.lock:
            st.logins_failed += 1

    def check_login(self, body):
        """Validate a login request: (200, None) or (status, error body)."""
        st = self.server.state
        if self.headers.get("X-Api-Id") != st.app_id:
            err = (401, R_UNAUTHORIZED, "Invalid App ID", "X-Api-Id is missing or unknown")
        elif (self.headers.get("Content-Type", "").split(";")[0].strip().lower()
              != "application/json"):
            err = (400, R_BAD_REQUEST, "Bad request", "Content-Type must be application/json")
        else:
            try:
                req = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                req = None
            if not (isinstance(req, dict) and isinstance(req.get("email"), str)
                    and isinstance(req.get("password"), str)):
                err = (400, R_BAD_REQUEST, "Bad request",
                       "Body must be a JSON object with string email and password")
            else:
                with st.lock:
                    good = (st.email is not None and req["email"] == st.email
                            and req["password"] == st.password)
                if good:
                    return 200, None
                err = (401, R_BAD_CREDENTIALS, "Invalid credentials",
                       "Email or password is incorrect")
        return err[0], json.dumps(error_body(*err[1:])).encode()

    def customers(self):
        st = self.server.state
        auth = self.headers.get_all("Authorization") or []
        with st.lock:
            code = 401
            # Exactly one header, exact scheme spelling: the mock is
            # stricter than HTTP requires so that a library that
            # duplicates or mangles the header is caught.
            if len(auth) == 1 and auth[0] == st.basic:
                code = 200
            elif len(auth) == 1 and auth[0].startswith("Token "):
                expiry = st.tokens.get(auth[0][6:])
                if expiry is not None:
                    code = 200 if time.monotonic() < expiry else 403
            if code == 200:
                st.customers_ok += 1
            elif code == 403:
                st.customers_403 += 1
            else:
                st.customers_401 += 1
        if code == 200:
            self.reply(200, {"result": 0, "customers": []})
        elif code == 403:
            self.fail(403, R_TOKEN_EXPIRED, "Token expired",
                      "The token has expired, log in again")
        else:
            self.fail(401, R_UNAUTHORIZED, "Unauthorized",
                      "Missing or invalid Authorization header")

    def config(self, body):
        try:
            cfg = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest(400, "config is not JSON")
        err = self.server.state.configure(cfg)
        if err:
            raise BadRequest(400, err)
        self.reply(200, {"result": 0})

    # --- faults ---

    def hang(self):
        """Never answer; return when the client goes away (or shutdown)."""
        self.close_connection = True
        sock = self.connection
        sock.settimeout(0.5)
        deadline = time.monotonic() + HANG_MAX
        while not self.server.stopping.is_set() and time.monotonic() < deadline:
            r, _, _ = select.select([sock], [], [], 0.5)
            if not r:
                continue
            try:
                if not sock.recv(4096):
                    return
            except (socket.timeout, ssl.SSLWantReadError, BlockingIOError):
                continue
            except OSError:
                return

    def slow(self, status, body):
        """The answer, status line included, one byte per second."""
        self.close_connection = True
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        head = ("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\nConnection: close\r\n\r\n" % (status, phrase, len(body)))
        for b in head.encode() + body:
            try:
                self.wfile.write(bytes([b]))
            except OSError:
                return
            if self.server.stopping.wait(1.0):
                return

    def huge(self):
        """200 with a 10 MiB body: JSON whose token is 10 MiB long."""
        prefix = b'{"result": 0, "token": "'
        suffix = b'"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(HUGE_SIZE))
        self.end_headers()
        left = HUGE_SIZE - len(prefix) - len(suffix)
        chunk = b"A" * 65536
        try:
            self.wfile.write(prefix)
            while left > 0:
                if self.server.stopping.is_set():
                    self.close_connection = True
                    return
                n = min(left, len(chunk))
                self.wfile.write(chunk[:n])
                left -= n
            self.wfile.write(suffix)
        except OSError:
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # Up to 128 test processes connect at once; the default backlog of 5
    # turns that into SYN retries and one-second stalls.
    request_queue_size = 512

    def server_bind(self):
        # HTTPServer.server_bind() calls getfqdn(), a reverse DNS
        # lookup that can stall start-up for seconds in a sandbox.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        # Clients that go away mid-answer are expected (timeouts,
        # faults); only real bugs are worth a traceback.
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError, socket.timeout)):
            return
        if not self.quiet:
            sys.stderr.write("mock-ucaas: error serving %s:\n" % (client_address,))
            traceback.print_exc()


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, path)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Mock EnableX UCaaS server for tests.")
    p.add_argument("--port-file", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--app-id", required=True)
    p.add_argument("--app-key", required=True)
    p.add_argument("--email")
    p.add_argument("--password")
    p.add_argument("--token-ttl", type=float, default=900)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if (args.email is None) != (args.password is None):
        p.error("--email and --password go together")
    if (args.tls_cert is None) != (args.tls_key is None):
        p.error("--tls-cert and --tls-key go together")
    if args.token_ttl < 0:
        p.error("--token-ttl must be >= 0")
    if args.token_ttl == int(args.token_ttl):
        args.token_ttl = int(args.token_ttl)
    return args


def main(argv):
    args = parse_args(argv)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        server = Server(("127.0.0.1", args.port), Handler)
    except OSError as e:
        sys.stderr.write("mock-ucaas: cannot listen on 127.0.0.1:%d: %s\n" % (args.port, e))
        return 1
    server.state = State(args)
    server.quiet = args.quiet
    server.stopping = threading.Event()
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as e:
            sys.stderr.write("mock-ucaas: cannot load %s / %s: %s\n"
                             % (args.tls_cert, args.tls_key, e))
            return 1
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)

    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    write_port_file(args.port_file, server.server_address[1])

    while not stop.wait(0.2):
        pass

    # Wake the handlers sleeping in faults, then stop accepting.
    server.stopping.set()
    server.shutdown()
    server.server_close()
    try:
        os.unlink(args.port_file)
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
