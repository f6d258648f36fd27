"""ioq: completion-based asynchronous I/O.

A :class:`Loop` takes operations, each tagged with an integer token of the caller's choice,
and :meth:`Loop.poll` hands back :class:`Completion` records carrying that token and the
result. No callback ever runs: the program asks, ioq answers.

Buffers given to an operation (``recv``, ``send``, ``read``, ``write``, ``sendto``,
``recvfrom``, ``sendv``) are used in place, never copied: ioq holds them (the buffer stays
exported, so a bytearray cannot be resized) until :meth:`Loop.poll` has returned the
operation's final completion, or the loop is closed. Operations may share a token, as in
C; the buffers of a token are then held until the final completion of its last operation
that holds one.

``ioq.aio`` integrates a loop with asyncio (and uvloop).
"""
import errno as _errno
import math as _math

from . import _ioq as _raw

__all__ = ["Loop", "Completion", "Error", "Process", "addr_parse", "addr_format", "strerror",
           "errname", "version", "version_string", "exit_code", "term_signal"]

# Constants without their prefix: ioq.OP_RECV, ioq.CQE_MORE, ioq.ECONNREFUSED, ...
for _name in dir(_raw):
    if _name.startswith("IOQ_") and isinstance(getattr(_raw, _name), (int, str)):
        globals()[_name[4:]] = getattr(_raw, _name)
        __all__.append(_name[4:])
del _name

__version__ = _raw.ioq_version_string()

OP_NAMES = {getattr(_raw, n): n[7:].lower() for n in dir(_raw) if n.startswith("IOQ_OP_")}

# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------

_ERRNO = {
    _raw.IOQ_EINVAL: _errno.EINVAL, _raw.IOQ_EBADHANDLE: _errno.EBADF,
    _raw.IOQ_ENOMEM: _errno.ENOMEM, _raw.IOQ_ECANCELED: _errno.ECANCELED,
    _raw.IOQ_ETIMEDOUT: _errno.ETIMEDOUT, _raw.IOQ_ECONNREFUSED: _errno.ECONNREFUSED,
    _raw.IOQ_ECONNRESET: _errno.ECONNRESET, _raw.IOQ_ECONNABORTED: _errno.ECONNABORTED,
    _raw.IOQ_EPIPE: _errno.EPIPE, _raw.IOQ_EADDRINUSE: _errno.EADDRINUSE,
    _raw.IOQ_EADDRNOTAVAIL: _errno.EADDRNOTAVAIL, _raw.IOQ_ENETUNREACH: _errno.ENETUNREACH,
    _raw.IOQ_EHOSTUNREACH: _errno.EHOSTUNREACH, _raw.IOQ_EMFILE: _errno.EMFILE,
    _raw.IOQ_ENFILE: _errno.ENFILE, _raw.IOQ_ENOENT: _errno.ENOENT,
    _raw.IOQ_EACCES: _errno.EACCES, _raw.IOQ_EPERM: _errno.EPERM,
    _raw.IOQ_EEXIST: _errno.EEXIST, _raw.IOQ_EISDIR: _errno.EISDIR,
    _raw.IOQ_ENOTDIR: _errno.ENOTDIR, _raw.IOQ_ENOSPC: _errno.ENOSPC,
    _raw.IOQ_EIO: _errno.EIO, _raw.IOQ_ENOBUFS: _errno.ENOBUFS,
    _raw.IOQ_EMSGSIZE: _errno.EMSGSIZE, _raw.IOQ_ENOTSUP: _errno.EOPNOTSUPP,
    _raw.IOQ_EBUSY: _errno.EBUSY, _raw.IOQ_ENOTCONN: _errno.ENOTCONN,
    _raw.IOQ_ENAMETOOLONG: _errno.ENAMETOOLONG, _raw.IOQ_EAGAIN: _errno.EAGAIN,
    _raw.IOQ_ENOSYS: _errno.ENOSYS, _raw.IOQ_EFBIG: _errno.EFBIG,
    _raw.IOQ_EROFS: _errno.EROFS, _raw.IOQ_ELOOP: _errno.ELOOP,
    _raw.IOQ_EAFNOSUPPORT: _errno.EAFNOSUPPORT, _raw.IOQ_EDESTADDRREQ: _errno.EDESTADDRREQ,
    _raw.IOQ_ESHUTDOWN: _errno.ESHUTDOWN, _raw.IOQ_ESRCH: _errno.ESRCH,
    _raw.IOQ_ENOEXEC: _errno.ENOEXEC, _raw.IOQ_ENOTTY: _errno.ENOTTY,
}


class Error(OSError):
    """An ioq error. ``code`` is the negative IOQ_E* value, ``name`` its name ("EPIPE").

    ``errno`` is the matching errno where one exists (else None). Codes with a matching
    built-in exception also raise a subclass of it, so ``except ConnectionRefusedError``
    and ``except FileNotFoundError`` work.
    """

    def __init__(self, code, message=None):
        code = int(code)
        text = message or _raw.ioq_strerror(code)
        number = _ERRNO.get(code)
        if number is None:
            super().__init__(text)
        else:
            super().__init__(number, text)
        self.code = code
        self.name = _raw.ioq_errname(code)

    def __str__(self):
        return "[%s] %s" % (self.name, self.strerror or self.args[0])

    def __reduce__(self):
        return (error, (self.code,))


_BUILTIN = {
    _raw.IOQ_ECONNREFUSED: ConnectionRefusedError, _raw.IOQ_ECONNRESET: ConnectionResetError,
    _raw.IOQ_ECONNABORTED: ConnectionAbortedError, _raw.IOQ_EPIPE: BrokenPipeError,
    _raw.IOQ_ENOENT: FileNotFoundError, _raw.IOQ_EEXIST: FileExistsError,
    _raw.IOQ_EISDIR: IsADirectoryError, _raw.IOQ_ENOTDIR: NotADirectoryError,
    _raw.IOQ_EACCES: PermissionError, _raw.IOQ_EPERM: PermissionError,
    _raw.IOQ_ETIMEDOUT: TimeoutError, _raw.IOQ_ESRCH: ProcessLookupError,
}
_CLASSES = {}
for _code, _base in _BUILTIN.items():
    _CLASSES[_code] = type(_raw.ioq_errname(_code) + "Error", (Error, _base),
                           {"__module__": __name__})
del _code, _base


def error(code):
    """The exception for a negative IOQ_E* code (a subclass of Error where one fits)."""
    return _CLASSES.get(code, Error)(code)


def strerror(code):
    """A sentence describing an IOQ_E* code."""
    return _raw.ioq_strerror(_int(code, "code", signed=True))


def errname(code):
    """The name of an IOQ_E* code without prefix ("ECONNREFUSED")."""
    return _raw.ioq_errname(_int(code, "code", signed=True))


def version():
    """The C library's version as MAJOR*10000 + MINOR*100 + PATCH."""
    return _raw.ioq_version()


def version_string():
    """The library's version as text, e.g. "1.1.0"."""
    return _raw.ioq_version_string()


def _int(v, what, signed=False, bits=64):
    if isinstance(v, bool) or not hasattr(v, "__index__"):
        raise TypeError("%s must be an int, not %s" % (what, type(v).__name__))
    v = v.__index__()
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= v <= hi:
        raise ValueError("%s out of range: %d" % (what, v))
    return v


def _check(rc):
    if rc < 0:
        raise error(rc)
    return rc


def _out(pair):
    rc, value = pair
    if rc < 0:
        raise error(rc)
    return value


# ---------------------------------------------------------------------------------------
# Child processes (since 1.1)
# ---------------------------------------------------------------------------------------

class Process(tuple):
    """A child of :meth:`Loop.spawn`: ``(handle, stdin, stdout, stderr)``, the PROCESS
    handle and the parent's ends of the streams spawned as STDIO_PIPE (0 for the others):
    the write end of its stdin, the read ends of its stdout and stderr. Closing the process
    handle does not kill the child."""
    __slots__ = ()

    def __new__(cls, handle, stdin=0, stdout=0, stderr=0):
        return tuple.__new__(cls, (handle, stdin, stdout, stderr))

    handle = property(lambda self: self[0], doc="The PROCESS handle (for process_wait, kill).")
    stdin = property(lambda self: self[1],
                     doc="The write end of the child's stdin pipe, or 0 if it was not a pipe.")
    stdout = property(lambda self: self[2],
                      doc="The read end of the child's stdout pipe, or 0 if it was not a pipe.")
    stderr = property(lambda self: self[3],
                      doc="The read end of the child's stderr pipe, or 0 if it was not a pipe.")

    def __repr__(self):
        return "Process(handle=%#x, stdin=%#x, stdout=%#x, stderr=%#x)" % self


def exit_code(result):
    """The exit code in a process_wait result, None if a signal ended the child."""
    return result if 0 <= result < 256 else None


def term_signal(result):
    """The signal that ended the child in a process_wait result, None if it exited."""
    return result - 256 if result >= 256 else None


def _text(v, what):
    if isinstance(v, bytes):
        return v.decode()
    if not isinstance(v, str):
        import os
        if isinstance(v, os.PathLike):
            return os.fspath(v)
        raise TypeError("%s must be str, not %s" % (what, type(v).__name__))
    return v


def _stdio(x, what):
    if x is None:
        return (_raw.IOQ_STDIO_INHERIT, 0)
    if isinstance(x, bool):
        raise TypeError("%s: use None, STDIO_PIPE, STDIO_NULL, a file or (mode, value)" % what)
    if isinstance(x, int):
        if x in (_raw.IOQ_STDIO_INHERIT, _raw.IOQ_STDIO_NULL, _raw.IOQ_STDIO_PIPE):
            return (x, 0)
        raise ValueError("%s: %d is not STDIO_INHERIT, STDIO_NULL or STDIO_PIPE (a "
                         "descriptor is (STDIO_OS, fd), a handle (STDIO_HANDLE, h))" % (what, x))
    if isinstance(x, tuple) and len(x) == 2:
        return (_int(x[0], what, bits=32), _int(x[1], what))
    if hasattr(x, "fileno"):
        return (_raw.IOQ_STDIO_OS, _int(x.fileno(), what))
    raise TypeError("%s: use None, STDIO_PIPE, STDIO_NULL, a file or (mode, value)" % what)


# ---------------------------------------------------------------------------------------
# Addresses
# ---------------------------------------------------------------------------------------

def addr_parse(text):
    """Parse "1.2.3.4:80", "[::1]:80" or an address without port into a tuple."""
    if not isinstance(text, str):
        raise TypeError("addr_parse needs a str")
    return _out(_raw.ioq_addr_parse(text))


def addr_format(addr):
    """Format a (host, port) tuple as "1.2.3.4:80" or "[::1]:80"."""
    return _out(_raw.ioq_addr_format(addr))


# ---------------------------------------------------------------------------------------
# Completions
# ---------------------------------------------------------------------------------------

class Completion:
    """One completion: token, result (>= 0 success value, < 0 IOQ_E* code), value, op,
    flags; addr (recvfrom: the sender) and addrs (resolve: the addresses)."""

    __slots__ = ("token", "result", "value", "op", "flags", "_extra")

    def __init__(self, token, result, value, op, flags, extra=None):
        self.token = token
        self.result = result
        self.value = value
        self.op = op
        self.flags = flags
        self._extra = extra

    @property
    def ok(self):
        """True when the operation succeeded (result >= 0)."""
        return self.result >= 0

    @property
    def error(self):
        """The result as an Error, or None on success."""
        return error(self.result) if self.result < 0 else None

    @property
    def more(self):
        """True when more completions follow for this multishot operation."""
        return bool(self.flags & _raw.IOQ_CQE_MORE)

    @property
    def buffer(self):
        """True when value is a pool buffer id that the caller must release."""
        return bool(self.flags & _raw.IOQ_CQE_BUFFER)

    @property
    def handle(self):
        """The new handle of an accept, connect, local_connect or open."""
        return self.value

    @property
    def addr(self):
        """The sender's address of a recvfrom, as a tuple; else None."""
        return self._extra if self.op == _raw.IOQ_OP_RECVFROM else None

    @property
    def addrs(self):
        """The addresses found by a resolve, as tuples; else None."""
        if self.op != _raw.IOQ_OP_RESOLVE:
            return None
        return self._extra if self._extra is not None else []

    @property
    def op_name(self):
        """The operation's name: "recv", "accept", ..."""
        return OP_NAMES.get(self.op, str(self.op))

    def check(self):
        """Return result, or raise it as an Error."""
        if self.result < 0:
            raise error(self.result)
        return self.result

    def __iter__(self):
        return iter((self.token, self.result, self.value, self.op, self.flags))

    def __repr__(self):
        res = self.result if self.result >= 0 else _raw.ioq_errname(self.result)
        return "Completion(token=%d, op=%s, result=%s, value=%d, flags=%#x)" % (
            self.token, self.op_name, res, self.value, self.flags)


# ---------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------

_BACKENDS = {None: 0, "auto": 0, "epoll": 1, "io_uring": 2, "uring": 2, "kqueue": 3,
             "iocp": 4}

_OPEN_MODES = {"r": _raw.IOQ_OPEN_READ,
               "w": _raw.IOQ_OPEN_WRITE | _raw.IOQ_OPEN_CREATE | _raw.IOQ_OPEN_TRUNC,
               "a": _raw.IOQ_OPEN_WRITE | _raw.IOQ_OPEN_CREATE | _raw.IOQ_OPEN_APPEND,
               "x": _raw.IOQ_OPEN_WRITE | _raw.IOQ_OPEN_CREATE | _raw.IOQ_OPEN_EXCL}


def _open_flags(flags):
    if isinstance(flags, str):
        mode = flags.replace("b", "")
        if not mode or mode[0] not in _OPEN_MODES or mode[1:] not in ("", "+"):
            raise ValueError("invalid open mode: %r" % flags)
        value = _OPEN_MODES[mode[0]]
        if mode.endswith("+"):
            value |= _raw.IOQ_OPEN_READ | _raw.IOQ_OPEN_WRITE
        return value
    return _int(flags, "flags", bits=32)


def _seconds_ns(seconds, what="timeout"):
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError("%s must be a number of seconds" % what)
    if seconds != seconds or seconds < 0:
        raise ValueError("%s must be >= 0" % what)
    if seconds == _math.inf:
        return -1
    ns = _math.ceil(seconds * 1e9)
    if ns >= 1 << 63:
        raise ValueError("%s too large" % what)
    return ns


class Loop:
    """An ioq loop. ``Loop(backend=None)`` picks the best backend (the IOQ_BACKEND
    environment variable may choose); ``backend="epoll"`` or ``"io_uring"`` forces one.

    Use it from one thread (the one that polls); :meth:`post` and :meth:`wake` may be called
    from any thread. As a context manager it is closed on exit. Closing frees every handle
    and ends every operation without completions; buffers are released after that.
    """

    def __init__(self, backend=None, *, threadpool_size=0):
        if isinstance(backend, str) or backend is None:
            try:
                code = _BACKENDS[backend.lower() if backend else backend]
            except KeyError:
                raise ValueError("unknown backend: %r" % backend) from None
        else:
            code = _int(backend, "backend", bits=32)
        self._ptr = None
        self._pools = {}
        self._close_hooks = []  # run by close() while the loop still exists (ioq.aio)
        self._ptr = _out(_raw.ioq_py_loop_new(code, 0, _int(threadpool_size,
                                                            "threadpool_size", bits=32)))

    # -- life --------------------------------------------------------------------------
    @property
    def _p(self):
        p = self._ptr
        if p is None:
            raise ValueError("the loop is closed")
        return p

    @property
    def closed(self):
        """True once close() has freed the loop."""
        return self._ptr is None

    def close(self):
        """Free the loop (idempotent). Buffers of pending operations are released after
        the C library has let go of them."""
        p, self._ptr = self._ptr, None
        if p is not None:
            hooks, self._close_hooks = self._close_hooks, []
            for hook in hooks:
                hook()
            _raw.ioq_py_loop_free(p)
            self._pools.clear()

    def __enter__(self):
        self._p
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        if self._ptr is None:
            return "<ioq.Loop closed>"
        return "<ioq.Loop backend=%s fd=%s>" % (self.backend, _raw.ioq_loop_fd(self._ptr))

    # -- queries -----------------------------------------------------------------------
    @property
    def backend(self):
        """The backend's name: "epoll", "io_uring", "kqueue" or "iocp"."""
        return _raw.ioq_loop_backend(self._p)

    @property
    def caps(self):
        """IOQ_CAP_* bits of what the backend does natively."""
        return _raw.ioq_loop_caps(self._p)

    def fileno(self):
        """A descriptor that becomes readable when poll() may have work (do not read or
        close it)."""
        return _check(_raw.ioq_loop_fd(self._p))

    def now(self):
        """The monotonic clock of timeouts, in nanoseconds."""
        return _raw.ioq_now(self._p)

    def pinned(self):
        """How many operations hold a buffer now (for tests and diagnostics); one that is over
        counts while another operation of its token holds one."""
        return _raw.ioq_py_pinned(self._p)

    # -- polling -----------------------------------------------------------------------
    def poll(self, timeout=None, max=64):
        """Submit queued work and return a list of Completions.

        timeout: None waits for at least one completion (or a wake()), 0 does not wait,
        seconds (float) waits at most that long. The GIL is released while waiting.
        max: the most completions returned (1-65536).
        """
        ns = -1 if timeout is None else _seconds_ns(timeout)
        m = _int(max, "max", bits=32)
        if not 1 <= m <= 65536:
            raise ValueError("max must be 1-65536")
        got = _raw.ioq_py_poll(self._p, m, ns)
        if isinstance(got, int):
            raise error(got)
        return [Completion(*t) for t in got]

    def submit(self):
        """Flush queued submissions without waiting."""
        _check(_raw.ioq_submit(self._p))

    def wake(self):
        """Make a blocked poll() return (any thread)."""
        _check(_raw.ioq_wake(self._p))

    def post(self, token, result=0):
        """Enqueue a completion {token, result, op OP_POST} (any thread)."""
        _check(_raw.ioq_post(self._p, _int(token, "token"), _int(result, "result", True)))

    # -- sockets -----------------------------------------------------------------------
    def tcp_listen(self, addr, backlog=0, *, reuseport=False, v6only=False, flags=0):
        """A listening TCP socket on addr, a (host, port) tuple (port 0 picks one)."""
        flags = _int(flags, "flags", bits=32)
        flags |= (_raw.IOQ_REUSEPORT if reuseport else 0) | (_raw.IOQ_V6ONLY if v6only else 0)
        return _out(_raw.ioq_tcp_listen(self._p, addr, _int(backlog, "backlog", bits=32),
                                        flags))

    def udp_bind(self, addr, *, reuseport=False, v6only=False, flags=0):
        """A bound UDP socket on addr, a (host, port) tuple."""
        flags = _int(flags, "flags", bits=32)
        flags |= (_raw.IOQ_REUSEPORT if reuseport else 0) | (_raw.IOQ_V6ONLY if v6only else 0)
        return _out(_raw.ioq_udp_bind(self._p, addr, flags))

    def local_listen(self, path, backlog=0, *, unlink=False, flags=0):
        """An AF_UNIX stream listener at path (str, bytes or os.PathLike)."""
        flags = _int(flags, "flags", bits=32) | (_raw.IOQ_UNLINK if unlink else 0)
        return _out(_raw.ioq_local_listen(self._p, path, _int(backlog, "backlog", bits=32),
                                          flags))

    def accept(self, listener, token=0, *, multishot=False, flags=0):
        """Accept a connection; the completion's value is the new handle."""
        flags = _int(flags, "flags", bits=32) | (_raw.IOQ_MULTISHOT if multishot else 0)
        _check(_raw.ioq_accept(self._p, _int(listener, "handle"), flags, _int(token, "token")))

    def connect(self, addr, token=0, *, flags=0):
        """Connect a new TCP socket to addr; the completion's value is its handle."""
        _check(_raw.ioq_connect(self._p, addr, _int(flags, "flags", bits=32),
                                _int(token, "token")))

    def local_connect(self, path, token=0, *, flags=0):
        """Connect to an AF_UNIX listener at path; the completion's value is the handle."""
        _check(_raw.ioq_local_connect(self._p, path, _int(flags, "flags", bits=32),
                                      _int(token, "token")))

    def recv(self, h, buf, token=0):
        """Receive into buf (a writable buffer, used in place); result is the byte count,
        0 at end of stream."""
        _check(_raw.ioq_recv(self._p, _int(h, "handle"), buf, _int(token, "token")))

    def recv_pool(self, h, pool, token=0, *, multishot=False, flags=0):
        """Receive into a buffer of pool chosen when data arrives; the completion's value is
        the buffer id (read it with pool_read, give it back with buf_release)."""
        flags = _int(flags, "flags", bits=32) | (_raw.IOQ_MULTISHOT if multishot else 0)
        _check(_raw.ioq_recv_pool(self._p, _int(h, "handle"), _int(pool, "pool"), flags,
                                  _int(token, "token")))

    def send(self, h, data, token=0):
        """Send all of data (bytes-like, used in place)."""
        _check(_raw.ioq_send(self._p, _int(h, "handle"), data, _int(token, "token")))

    def sendv(self, h, buffers, token=0):
        """Gather send of all bytes of a sequence of bytes-like objects."""
        if isinstance(buffers, (bytes, bytearray, memoryview, str)):
            raise TypeError("sendv needs a sequence of buffers")
        _check(_raw.ioq_sendv(self._p, _int(h, "handle"), buffers, _int(token, "token")))

    def sendto(self, h, data, addr, token=0):
        """Send one datagram to addr."""
        _check(_raw.ioq_sendto(self._p, _int(h, "handle"), data, addr, _int(token, "token")))

    def recvfrom(self, h, buf, token=0):
        """Receive one datagram into buf; the completion's addr is the sender."""
        _check(_raw.ioq_recvfrom(self._p, _int(h, "handle"), buf, _int(token, "token")))

    def shutdown(self, h, token=0):
        """Half-close the write side once earlier sends have gone out."""
        _check(_raw.ioq_shutdown(self._p, _int(h, "handle"), _int(token, "token")))

    def close_handle(self, h, token=0):
        """ioq_close: close a handle (socket, listener, file, pool). Pending operations on it
        complete with ECANCELED first."""
        h = _int(h, "handle")
        _check(_raw.ioq_close(self._p, h, _int(token, "token")))
        self._pools.pop(h, None)

    def open(self, path, flags="r", mode=0o644, token=0):
        """Open a file; flags is "r", "w", "a", "x" (+ "+") or IOQ_OPEN_* bits. The
        completion's value is the handle."""
        _check(_raw.ioq_open(self._p, path, _open_flags(flags), _int(mode, "mode", bits=32),
                             _int(token, "token")))

    def read(self, h, buf, offset=0, token=0):
        """Read into buf at offset of a file."""
        _check(_raw.ioq_read(self._p, _int(h, "handle"), buf, _int(offset, "offset"),
                             _int(token, "token")))

    def write(self, h, data, offset=0, token=0):
        """Write data at offset of a file."""
        _check(_raw.ioq_write(self._p, _int(h, "handle"), data, _int(offset, "offset"),
                              _int(token, "token")))

    def fsync(self, h, token=0):
        """Flush the file h to its storage."""
        _check(_raw.ioq_fsync(self._p, _int(h, "handle"), _int(token, "token")))

    def timeout(self, seconds, token=0):
        """Complete after seconds (never earlier)."""
        ns = _seconds_ns(seconds)
        if ns < 0:
            raise ValueError("timeout must be finite")
        _check(_raw.ioq_timeout(self._p, ns, _int(token, "token")))

    def timeout_ns(self, ns, token=0):
        """Complete after ns nanoseconds (never earlier)."""
        _check(_raw.ioq_timeout(self._p, _int(ns, "ns"), _int(token, "token")))

    def timeout_at(self, deadline_ns, token=0):
        """Complete when now() >= deadline_ns (never earlier); a deadline already past
        completes at the next poll. One base for many timers: base = loop.now(), then
        loop.timeout_at(base + delay). Since ABI 1.1."""
        _check(_raw.ioq_timeout_at(self._p, _int(deadline_ns, "deadline_ns"),
                                   _int(token, "token")))

    def cancel(self, target, token=0):
        """Cancel the in-flight operations whose token is target; the completion's result is
        how many were found. Each target still completes once."""
        _check(_raw.ioq_cancel(self._p, _int(target, "target"), _int(token, "token")))

    def resolve(self, host, service=None, token=0, *, flags=0, max=16, family=None):
        """Resolve host and service (str or int port) off the loop thread; the completion's
        addrs lists (host, port) tuples."""
        if isinstance(service, int) and not isinstance(service, bool):
            service = str(service)
        flags = _int(flags, "flags", bits=32)
        if family == "inet" or family == 4:
            flags |= _raw.IOQ_RESOLVE_INET
        elif family == "inet6" or family == 6:
            flags |= _raw.IOQ_RESOLVE_INET6
        elif family is not None:
            raise ValueError("family must be None, 4 or 6")
        _check(_raw.ioq_resolve(self._p, host, service, flags, max, _int(token, "token")))

    # -- pools -------------------------------------------------------------------------
    def pool_new(self, count, size):
        """A pool of count buffers of size bytes for recv_pool."""
        h = _out(_raw.ioq_pool_new(self._p, _int(count, "count", bits=32),
                                   _int(size, "size", bits=32)))
        self._pools[h] = size
        return h

    def pool_read(self, pool, buf_id, length=None):
        """A copy of the first length bytes (default: all) of buffer buf_id of pool."""
        size = self._pools.get(pool)
        if size is None:
            raise error(_raw.IOQ_EBADHANDLE)
        length = size if length is None else _int(length, "length", bits=32)
        if length > size:
            raise ValueError("length exceeds the pool's buffer size")
        data = _raw.ioq_py_buf_read(self._p, pool, _int(buf_id, "id", bits=32), length)
        if data is None:
            raise error(_raw.IOQ_EINVAL)
        return data

    def buf_release(self, pool, buf_id):
        """Give a buffer from an IOQ_CQE_BUFFER completion back to its pool."""
        _check(_raw.ioq_buf_release(self._p, _int(pool, "pool"), _int(buf_id, "id", bits=32)))

    # -- socket queries ----------------------------------------------------------------
    def sockname(self, h):
        """The local address of the socket h, as a tuple."""
        return _out(_raw.ioq_sockname(self._p, _int(h, "handle")))

    def peername(self, h):
        """The address of the peer of the connected socket h, as a tuple."""
        return _out(_raw.ioq_peername(self._p, _int(h, "handle")))

    def setopt(self, h, opt, value):
        """Set a socket option (OPT_NODELAY, OPT_KEEPALIVE, ...)."""
        if isinstance(value, bool):
            value = int(value)
        _check(_raw.ioq_setopt(self._p, _int(h, "handle"), _int(opt, "opt", bits=32),
                               _int(value, "value", signed=True)))

    def adopt(self, fd, kind):
        """Bring an OS descriptor (int or object with fileno()) into the loop as kind
        (KIND_*); ioq owns and closes it from now on."""
        if hasattr(fd, "fileno") and not isinstance(fd, int):
            fd = fd.fileno()
        return _out(_raw.ioq_adopt(self._p, _int(fd, "fd"), _int(kind, "kind", bits=32)))

    def os_handle(self, h):
        """The descriptor behind h (still owned by ioq)."""
        return _out(_raw.ioq_os_handle(self._p, _int(h, "handle")))

    # -- since 1.1: pipes and child processes ------------------------------------------
    def pipe(self):
        """ioq_pipe: a new anonymous pipe as ``(read_end, write_end)``, PIPE handles that
        recv, recv_pool, send, sendv, shutdown (the write end) and close_handle work on."""
        rc, r, w = _raw.ioq_pipe(self._p, 0)
        _check(rc)
        return r, w

    def spawn(self, args, *, file=None, stdin=None, stdout=None, stderr=None, env=None,
              cwd=None, search_path=None, new_session=False):
        """ioq_spawn: start a child process and return a :class:`Process`.

        args: the argument list, ``args[0]`` included; the program is ``file`` or else
        ``args[0]``, looked up in PATH when it has no "/" (``search_path`` decides
        otherwise). stdin, stdout, stderr: None (inherit), ``STDIO_PIPE`` (a new pipe, its
        parent end in the Process), ``STDIO_NULL``, an object with fileno() or
        ``(STDIO_OS, fd)`` (a descriptor the caller keeps), or ``(STDIO_HANDLE, h)`` (an
        ioq handle). env: a mapping or a list of "KEY=VALUE" (None: inherit). cwd: the
        working directory (None: this one). Synchronous: returns once the program runs;
        a program that cannot start raises (FileNotFoundError, PermissionError, ...).
        Its end comes with :meth:`process_wait`; close the handles with close_handle."""
        if isinstance(args, (str, bytes)):
            raise TypeError("spawn needs a list of arguments (args[0] included)")
        args = [_text(a, "argument") for a in args]
        if not args:
            raise ValueError("spawn needs at least args[0]")
        prog = _text(file, "file") if file is not None else args[0]
        if search_path is None:
            search_path = "/" not in prog
        flags = ((_raw.IOQ_SPAWN_SEARCH_PATH if search_path else 0) |
                 (_raw.IOQ_SPAWN_NEW_SESSION if new_session else 0))
        if env is not None:
            if hasattr(env, "items"):
                env = ["%s=%s" % (k, v) for k, v in env.items()]
            else:
                env = [_text(e, "env") for e in env]
        opts = {"file": prog, "argv": args, "env": env, "flags": flags,
                "stdio": [_stdio(x, n) for x, n in ((stdin, "stdin"), (stdout, "stdout"),
                                                     (stderr, "stderr"))]}
        if cwd is not None:
            opts["cwd"] = _text(cwd, "cwd")
        rc, proc, pipes = _raw.ioq_spawn(self._p, opts)
        _check(rc)
        return Process(proc, pipes[0], pipes[1], pipes[2])

    def process_wait(self, process, token=0):
        """ioq_process_wait: wait for a child of spawn() to end. The completion's result is
        its exit code (0..255), or 256 + the signal that ended it (see exit_code and
        term_signal); ECANCELED if the handle is closed first."""
        _check(_raw.ioq_process_wait(self._p, _int(process, "handle"), _int(token, "token")))

    def kill(self, process, signum):
        """ioq_kill: send signal signum to a child of spawn(). ESRCH once it has ended and
        been reaped (a ProcessLookupError-like Error)."""
        _check(_raw.ioq_kill(self._p, _int(process, "handle"), _int(signum, "signum", bits=32,
                                                                     signed=True)))

    def process_pid(self, process):
        """The OS process id of a child of spawn()."""
        return _out(_raw.ioq_process_pid(self._p, _int(process, "handle")))
