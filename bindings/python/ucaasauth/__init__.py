"""The Authorization header for the EnableX UCaaS REST API, from Python.

A binding of libucaasauth's C ABI (libucaasauth.so.1) through ctypes: the
standard library only, no compiler, any CPython 3.

    import ucaasauth

    with ucaasauth.open("prod") as ua:
        headers = {"Authorization": ua.value()}
        ...
        # the API answered 401 or 403 to that header:
        ua.reject(ua_header_that_was_sent)

The header comes from the host's shared token cache: every process of the
host that opens the same profile shares one login per token lifetime. A
handle may be used by many threads, and keeps working in a child after
os.fork() (multiprocessing's "fork" start method, gunicorn's preload, ...).

Failures raise ucaasauth.Error (or one of its subclasses, one per status),
carrying .status (the negative C status), .name ("UCAASAUTH_E_DENIED") and
.detail (the library's ucaasauth_last_error() text for that failure). No
exception and no repr ever holds a secret or a header.

The library is found through $UCAASAUTH_LIBRARY (an explicit path) when it
is set, else as libucaasauth.so.1 through the dynamic loader. See
bindings/python/README.md.
"""

import ctypes
import os

__all__ = [
    "open", "Handle", "strerror", "library_path",
    "Error", "InvalidError", "ConfigError", "CredentialsError",
    "DeniedError", "UnavailableError", "ProtocolError", "CacheError",
    "TimeoutError", "TooSmallError", "NoMemoryError", "LibraryError",
    "OK", "E_INVALID", "E_CONFIG", "E_CREDENTIALS", "E_DENIED",
    "E_UNAVAILABLE", "E_PROTOCOL", "E_CACHE", "E_TIMEOUT", "E_TOOSMALL",
    "E_NOMEM", "STATUS_NAMES",
]

__version__ = "0.1.0"

SONAME = "libucaasauth.so.1"

# The statuses of ucaasauth.h (ABI version 1): numbered once, never
# renumbered; a newer library may add statuses after the last one.
OK = 0
E_INVALID = -1
E_CONFIG = -2
E_CREDENTIALS = -3
E_DENIED = -4
E_UNAVAILABLE = -5
E_PROTOCOL = -6
E_CACHE = -7
E_TIMEOUT = -8
E_TOOSMALL = -9
E_NOMEM = -10

STATUS_NAMES = {
    OK: "UCAASAUTH_OK",
    E_INVALID: "UCAASAUTH_E_INVALID",
    E_CONFIG: "UCAASAUTH_E_CONFIG",
    E_CREDENTIALS: "UCAASAUTH_E_CREDENTIALS",
    E_DENIED: "UCAASAUTH_E_DENIED",
    E_UNAVAILABLE: "UCAASAUTH_E_UNAVAILABLE",
    E_PROTOCOL: "UCAASAUTH_E_PROTOCOL",
    E_CACHE: "UCAASAUTH_E_CACHE",
    E_TIMEOUT: "UCAASAUTH_E_TIMEOUT",
    E_TOOSMALL: "UCAASAUTH_E_TOOSMALL",
    E_NOMEM: "UCAASAUTH_E_NOMEM",
}

# The first buffer header() tries; a longer header is fetched again with a
# buffer of the size UCAASAUTH_E_TOOSMALL reports. Tokens seen in practice
# are far shorter (the library's own bound is 2048 bytes).
_INITIAL_SIZE = 512
# A header may change between the two calls (another process refreshed);
# each retry uses the size just reported, so a few are plenty.
_MAX_TRIES = 4

_PREFIX = "Authorization:"


class LibraryError(OSError):
    """libucaasauth.so.1 could not be loaded (the message says where it
    was looked for, and why each attempt failed)."""


class Error(Exception):
    """A libucaasauth call failed.

    status: the C status, a negative int (ucaasauth.E_*);
    name:   its name, e.g. "UCAASAUTH_E_DENIED" ("UCAASAUTH_E_-42" for a
            status this binding does not know);
    detail: the library's detailed message for this failure
            (ucaasauth_last_error(), read in the same thread right after
            the failing call: file, line, profile, HTTP status, server
            message), or None. It never holds a secret.
    """

    def __init__(self, status, detail=None):
        self.status = int(status)
        self.name = STATUS_NAMES.get(self.status,
                                     "UCAASAUTH_E_%d" % -self.status)
        self.detail = detail
        text = "%s: %s" % (self.name, strerror(self.status))
        if detail:
            text += ": " + detail
        super().__init__(text)

    # Exceptions cross process boundaries (multiprocessing pickles them):
    # rebuild from the fields, not from the message.
    def __reduce__(self):
        return (type(self), (self.status, self.detail))


class InvalidError(Error):
    """UCAASAUTH_E_INVALID: a bad argument (or a closed handle)."""


class ConfigError(Error):
    """UCAASAUTH_E_CONFIG: bad or missing configuration or profile."""


class CredentialsError(Error):
    """UCAASAUTH_E_CREDENTIALS: the credential store is unreadable,
    tampered with, of unsafe permissions, or for another key."""


class DeniedError(Error):
    """UCAASAUTH_E_DENIED: the server (or ucaas-authd) refused."""


class UnavailableError(Error):
    """UCAASAUTH_E_UNAVAILABLE: the server is unreachable, answered 5xx or
    timed out, and no valid token is cached."""


class ProtocolError(Error):
    """UCAASAUTH_E_PROTOCOL: a malformed answer."""


class CacheError(Error):
    """UCAASAUTH_E_CACHE: the shared cache is unsafe or unusable."""


class TimeoutError(Error):  # noqa: A001 (ucaasauth.TimeoutError)
    """UCAASAUTH_E_TIMEOUT: another process's refresh took too long."""


class TooSmallError(Error):
    """UCAASAUTH_E_TOOSMALL: never raised by header(), which retries."""


class NoMemoryError(Error):
    """UCAASAUTH_E_NOMEM: out of memory."""


_CLASSES = {
    E_INVALID: InvalidError,
    E_CONFIG: ConfigError,
    E_CREDENTIALS: CredentialsError,
    E_DENIED: DeniedError,
    E_UNAVAILABLE: UnavailableError,
    E_PROTOCOL: ProtocolError,
    E_CACHE: CacheError,
    E_TIMEOUT: TimeoutError,
    E_TOOSMALL: TooSmallError,
    E_NOMEM: NoMemoryError,
}


def _error(status, detail=None):
    return _CLASSES.get(status, Error)(status, detail)


# The loaded library. Loaded on first use, without a lock: two threads that
# race here both dlopen() the same object (the loader counts references)
# and one CDLL wins, which is harmless; and a lock could be held by another
# thread at fork() and never released in the child.
_lib = None
_lib_path = None


def _bind(path):
    lib = ctypes.CDLL(path)
    vp, cp, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t
    lib.ucaasauth_open.argtypes = [ctypes.POINTER(vp), cp, ctypes.c_uint]
    lib.ucaasauth_open.restype = ctypes.c_int
    lib.ucaasauth_header.argtypes = [vp, ctypes.c_void_p, sz,
                                     ctypes.POINTER(sz)]
    lib.ucaasauth_header.restype = ctypes.c_int
    lib.ucaasauth_reject.argtypes = [vp, cp]
    lib.ucaasauth_reject.restype = ctypes.c_int
    lib.ucaasauth_close.argtypes = [vp]
    lib.ucaasauth_close.restype = None
    lib.ucaasauth_strerror.argtypes = [ctypes.c_int]
    lib.ucaasauth_strerror.restype = cp
    lib.ucaasauth_last_error.argtypes = []
    lib.ucaasauth_last_error.restype = cp
    return lib


def _load():
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    tried = []
    explicit = os.environ.get("UCAASAUTH_LIBRARY")
    candidates = ([explicit] if explicit else []) + [SONAME]
    for path in candidates:
        try:
            lib = _bind(path)
        except (OSError, AttributeError) as e:
            tried.append("%s (%s)" % (path, e))
            continue
        _lib_path = path
        _lib = lib
        return lib
    where = ("$UCAASAUTH_LIBRARY=" + explicit + ", then ") if explicit else ""
    raise LibraryError(
        "cannot load libucaasauth: tried %s%s through the dynamic loader: %s"
        % (where, SONAME, "; ".join(tried)))


def library_path():
    """The path or soname the library was loaded from (loading it now if
    it was not yet): $UCAASAUTH_LIBRARY's value, or "libucaasauth.so.1"."""
    _load()
    return _lib_path


def strerror(status):
    """The library's fixed English sentence for a status."""
    try:
        lib = _load()
    except LibraryError:
        return "status %d" % status
    text = lib.ucaasauth_strerror(int(status))
    return text.decode("utf-8", "replace") if text else "status %d" % status


def _last_error(lib):
    text = lib.ucaasauth_last_error()
    return text.decode("utf-8", "replace") if text else None


def _check(lib, status):
    # Called right after the failing call, in the same thread: the C
    # library keeps the detail per thread, and ctypes makes the call in the
    # calling thread.
    if status != OK:
        raise _error(status, _last_error(lib))


# Buffers are made here, so that a test can check they are wiped.
def _buffer(size):
    return ctypes.create_string_buffer(size)


class Handle:
    """An open profile. Use as a context manager, or call close().

    Thread-safe, as the C handle is, except that close() must not run
    while another thread uses the handle. After os.fork() the child may
    keep using the handle it inherited: it shares the host's token.
    """

    def __init__(self, profile=None):
        self._ptr = None
        self._profile = profile
        if profile is not None and not isinstance(profile, str):
            raise TypeError("profile must be a str or None")
        lib = self._lib = _load()
        ptr = ctypes.c_void_p()
        name = profile.encode("utf-8") if profile is not None else None
        _check(lib, lib.ucaasauth_open(ctypes.byref(ptr), name, 0))
        self._ptr = ptr

    @property
    def profile(self):
        """The profile name given to open() (None: the default profile)."""
        return self._profile

    @property
    def closed(self):
        return self._ptr is None

    def _handle(self):
        if self._ptr is None:
            raise InvalidError(E_INVALID, "the handle is closed")
        return self._ptr

    def header(self):
        """The whole header line, e.g. "Authorization: Token ...", as a
        str without CR/LF. May log in (once for the host), bounded by the
        profile's wait_timeout and the provider's timeout.

        The bytes are copied out of a ctypes buffer that is then wiped;
        the str returned is the caller's (Python strings cannot be wiped:
        keep it no longer than needed)."""
        lib, ptr = self._lib, self._handle()
        size = _INITIAL_SIZE
        length = ctypes.c_size_t(0)
        for _ in range(_MAX_TRIES):
            buf = _buffer(size)
            try:
                r = lib.ucaasauth_header(ptr, buf, size, ctypes.byref(length))
                if r == OK:
                    # One copy, of the header's bytes only (buf.raw would
                    # copy the whole buffer first).
                    return ctypes.string_at(buf, length.value).decode(
                        "latin-1")
                if r != E_TOOSMALL:
                    _check(lib, r)
            finally:
                ctypes.memset(buf, 0, size)
            size = length.value + 1
        raise _error(E_TOOSMALL, "the header kept growing over %d tries"
                     % _MAX_TRIES)

    def value(self):
        """The header's value, without "Authorization: ": what goes in
        {"Authorization": ...} for requests, urllib or http.client."""
        line = self.header()
        name, sep, value = line.partition(":")
        return value.strip() if sep else line

    def reject(self, header):
        """Tells the library that the API answered 401 or 403 to `header`
        (the line header() returned, or the value() of it; str or bytes).
        If that token is still the host's current one it is dropped and
        the next header() logs in again; otherwise nothing happens, so N
        processes rejecting the same header cause one login."""
        ptr = self._handle()
        if isinstance(header, str):
            header = header.encode("latin-1")
        elif not isinstance(header, (bytes, bytearray)):
            raise TypeError("header must be a str or bytes")
        header = bytes(header)
        if b"\0" in header:
            raise InvalidError(E_INVALID, "the header holds a NUL byte")
        if not header[:len(_PREFIX)].lower() == _PREFIX.lower().encode():
            header = b"Authorization: " + header
        _check(self._lib, self._lib.ucaasauth_reject(ptr, header))

    def close(self):
        """Wipes and frees the handle. Idempotent."""
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            self._lib.ucaasauth_close(ptr)

    def __enter__(self):
        self._handle()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        return "<ucaasauth.Handle profile=%r %s>" % (
            self._profile, "closed" if self._ptr is None else "open")

    # A handle is a process-local pointer: it travels by fork, not pickle.
    def __reduce__(self):
        raise TypeError("a ucaasauth.Handle cannot be pickled; open the "
                        "profile in the other process, or fork")


def open(profile=None):  # noqa: A001 (ucaasauth.open, like gzip.open)
    """Opens a profile (None: the configuration's default profile):
    reads the configuration and the credentials, attaches to the host's
    shared token cache. No network I/O. Returns a Handle; raises Error."""
    return Handle(profile)
