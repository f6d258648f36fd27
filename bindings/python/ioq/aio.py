"""asyncio integration of ioq.

An :class:`AsyncLoop` owns an :class:`ioq.Loop` and registers its descriptor with the
running asyncio loop (``add_reader``), so completions are polled as soon as they exist and
each operation is a plain awaitable::

    async def main():
        aio = ioq.aio.get_loop()          # one per asyncio loop, created on first use
        h = await aio.connect(("127.0.0.1", 8080))
        await aio.send(h, b"ping")
        print(await aio.recv(h, 100))
        await aio.close_handle(h)

The module-level coroutines (``ioq.aio.recv(...)``, ...) use :func:`get_loop`. Handles
belong to the AsyncLoop that made them.

Cancelling a task that awaits an operation cancels the ioq operation too. Its buffer stays
held by ioq until the operation's final completion arrives (the C layer releases it then),
so cancelling never lets the kernel write into freed or reused memory. A handle produced
by an operation that finished before the cancellation took effect is closed.

Streams: :func:`open_connection` and :func:`start_server` give ``(reader, writer)`` pairs
shaped like asyncio's. Works under the default event loop and under uvloop.
"""
import asyncio
import collections
import weakref

import ioq as _ioq

__all__ = ["AsyncLoop", "get_loop", "accept", "connect", "local_connect", "recv",
           "recv_into", "send", "sendv", "sendto", "recvfrom", "shutdown", "close", "open",
           "read", "write", "fsync", "sleep", "resolve", "start_server", "open_connection",
           "start_unix_server", "open_unix_connection", "StreamReader", "StreamWriter",
           "Server"]

_NEW_HANDLE_OPS = (_ioq.OP_ACCEPT, _ioq.OP_CONNECT, _ioq.OP_LOCAL_CONNECT, _ioq.OP_OPEN)
_BATCH = 256


class AsyncLoop:
    """An ioq loop driven by an asyncio event loop."""

    def __init__(self, loop=None, *, backend=None, asyncio_loop=None):
        self._aloop = asyncio_loop or asyncio.get_running_loop()
        self.ioq = loop if loop is not None else _ioq.Loop(backend)
        self._own = loop is None
        self._waiters = {}  # internal token -> future (None once its awaiter gave up)
        self._next_token = 1
        self._flush_pending = False
        self._fd = self.ioq.fileno()
        self._aloop.add_reader(self._fd, self._drain)

    # -- plumbing ----------------------------------------------------------------------
    @property
    def closed(self):
        return self.ioq is None or self.ioq.closed

    def close(self):
        """Stop polling and close the ioq loop (if this AsyncLoop created it). Awaiters of
        pending operations get ioq.Error(ECANCELED)."""
        if self.ioq is None:
            return
        try:
            self._aloop.remove_reader(self._fd)
        except Exception:
            pass
        if self._own:
            self.ioq.close()
        self.ioq = None
        for fut in self._waiters.values():
            if fut is not None and not fut.done():
                fut.set_exception(_ioq.error(_ioq.ECANCELED))
        self._waiters.clear()

    async def aclose(self):
        self.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()

    @property
    def _io(self):
        if self.ioq is None:
            raise ValueError("the AsyncLoop is closed")
        return self.ioq

    def _schedule_flush(self):
        # Submissions are queued until ioq_poll() runs; one flush per event-loop turn.
        if not self._flush_pending:
            self._flush_pending = True
            self._aloop.call_soon(self._drain)

    def _drain(self):
        self._flush_pending = False
        if self.ioq is None or self.ioq.closed:
            return
        while True:
            done = self.ioq.poll(0, _BATCH)
            for c in done:
                self._dispatch(c)
            if len(done) < _BATCH:
                break

    def _dispatch(self, c):
        if c.more:
            return
        fut = self._waiters.pop(c.token, False)
        if fut is False:
            return
        if fut is None:
            # Its awaiter was cancelled. A handle that was made anyway must not leak.
            if c.result >= 0 and c.op in _NEW_HANDLE_OPS and c.value:
                try:
                    self.ioq.close_handle(c.value, 0)
                    self._schedule_flush()
                except _ioq.Error:
                    pass
            return
        if not fut.done():
            fut.set_result(c)

    async def _run(self, submit, *args):
        io = self._io
        token = self._next_token
        self._next_token += 1
        submit(io, *args, token=token)  # raises before anything is in flight
        fut = self._aloop.create_future()
        self._waiters[token] = fut
        self._schedule_flush()
        try:
            c = await fut
        except asyncio.CancelledError:
            if self._waiters.get(token, False) is fut:
                self._waiters[token] = None
                if self.ioq is not None and not self.ioq.closed:
                    self.ioq.cancel(token, 0)
                    self._schedule_flush()
            raise
        return c

    async def _result(self, submit, *args):
        return (await self._run(submit, *args)).check()

    # -- operations --------------------------------------------------------------------
    async def accept(self, listener):
        """Accept one connection; returns its handle."""
        return (await self._checked(_ioq.Loop.accept, listener)).value

    async def connect(self, addr):
        """Connect to addr, a (host, port) tuple (names are resolved); returns a handle."""
        addr = await self._address(addr)
        return (await self._checked(_ioq.Loop.connect, addr)).value

    async def local_connect(self, path):
        return (await self._checked(_ioq.Loop.local_connect, path)).value

    async def recv_into(self, h, buf):
        """Receive into buf in place; returns the byte count (0 at end of stream)."""
        return await self._result(_ioq.Loop.recv, h, buf)

    async def recv(self, h, n=65536):
        """Receive up to n bytes; b"" at end of stream."""
        buf = bytearray(_positive(n))
        got = await self.recv_into(h, buf)
        del buf[got:]
        return bytes(buf)

    async def send(self, h, data):
        """Send all of data; returns its length."""
        return await self._result(_ioq.Loop.send, h, data)

    async def sendv(self, h, buffers):
        return await self._result(_ioq.Loop.sendv, h, buffers)

    async def sendto(self, h, data, addr):
        return await self._result(_ioq.Loop.sendto, h, data, addr)

    async def recvfrom_into(self, h, buf):
        """Receive one datagram into buf; returns (nbytes, sender)."""
        c = await self._checked(_ioq.Loop.recvfrom, h, buf)
        return c.result, c.addr

    async def recvfrom(self, h, n=65536):
        """Receive one datagram of up to n bytes; returns (data, sender)."""
        buf = bytearray(_positive(n))
        got, addr = await self.recvfrom_into(h, buf)
        del buf[got:]
        return bytes(buf), addr

    async def shutdown(self, h):
        await self._result(_ioq.Loop.shutdown, h)

    async def close_handle(self, h):
        """Close a handle; pending operations on it fail with ECANCELED first."""
        await self._result(_ioq.Loop.close_handle, h)

    async def open(self, path, flags="r", mode=0o644):
        """Open a file; returns its handle."""
        def submit(io, path, token):
            io.open(path, flags, mode, token)
        return (await self._checked(submit, path)).value

    async def read_into(self, h, buf, offset=0):
        def submit(io, h, buf, token):
            io.read(h, buf, offset, token)
        return await self._result(submit, h, buf)

    async def read(self, h, n, offset=0):
        """Read up to n bytes at offset of a file."""
        buf = bytearray(_positive(n))
        got = await self.read_into(h, buf, offset)
        del buf[got:]
        return bytes(buf)

    async def write(self, h, data, offset=0):
        """Write data at offset of a file; returns the byte count."""
        def submit(io, h, data, token):
            io.write(h, data, offset, token)
        return await self._result(submit, h, data)

    async def fsync(self, h):
        await self._result(_ioq.Loop.fsync, h)

    async def sleep(self, seconds):
        """Sleep on an ioq timer."""
        await self._result(_ioq.Loop.timeout, seconds)

    async def resolve(self, host, port=None, *, family=None, max=16):
        """Resolve host (and port) to a list of (host, port) tuples."""
        def submit(io, host, port, token):
            io.resolve(host, port, token, family=family, max=max)
        return (await self._checked(submit, host, port)).addrs

    async def _checked(self, submit, *args):
        c = await self._run(submit, *args)
        c.check()
        return c

    async def _address(self, addr):
        if isinstance(addr, tuple) and len(addr) in (2, 4) and isinstance(addr[0], str):
            try:
                _ioq.addr_format(addr)
                return addr
            except ValueError:
                pass
            found = await self.resolve(addr[0], addr[1])
            if not found:
                raise _ioq.error(_ioq.ENOTFOUND)
            return found[0]
        return addr

    # -- streams -----------------------------------------------------------------------
    async def open_connection(self, host=None, port=None):
        """Connect and return (StreamReader, StreamWriter)."""
        h = await self.connect((host or "127.0.0.1", port))
        return _streams(self, h)

    async def open_unix_connection(self, path):
        h = await self.local_connect(path)
        return _streams(self, h)

    async def start_server(self, client_connected_cb, host=None, port=0, *, backlog=100,
                           reuseport=False):
        """Listen on (host, port) and call client_connected_cb(reader, writer) (a coroutine
        function or a plain function) for each connection."""
        addr = await self._address((host or "127.0.0.1", port))
        h = self._io.tcp_listen(addr, backlog, reuseport=reuseport)
        return Server(self, h, client_connected_cb)

    async def start_unix_server(self, client_connected_cb, path, *, backlog=100,
                                unlink=True):
        h = self._io.local_listen(path, backlog, unlink=unlink)
        return Server(self, h, client_connected_cb, unix=True)


def _positive(n):
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError("size must be an int")
    if n < 1 or n > _ioq.MAX_LEN:
        raise ValueError("size must be 1-%d" % _ioq.MAX_LEN)
    return n


# ---------------------------------------------------------------------------------------
# One AsyncLoop per asyncio loop.
# ---------------------------------------------------------------------------------------
_by_loop = weakref.WeakKeyDictionary()


def get_loop():
    """The AsyncLoop of the running asyncio loop (made on first use)."""
    aloop = asyncio.get_running_loop()
    al = _by_loop.get(aloop)
    if al is None or al.closed:
        al = AsyncLoop(asyncio_loop=aloop)
        _by_loop[aloop] = al
    return al


def _forward(name):
    async def op(*args, **kwargs):
        return await getattr(get_loop(), name)(*args, **kwargs)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = getattr(AsyncLoop, name).__doc__
    return op


accept = _forward("accept")
connect = _forward("connect")
local_connect = _forward("local_connect")
recv = _forward("recv")
recv_into = _forward("recv_into")
send = _forward("send")
sendv = _forward("sendv")
sendto = _forward("sendto")
recvfrom = _forward("recvfrom")
recvfrom_into = _forward("recvfrom_into")
shutdown = _forward("shutdown")
close = _forward("close_handle")
close.__name__ = close.__qualname__ = "close"
open = _forward("open")
read = _forward("read")
read_into = _forward("read_into")
write = _forward("write")
fsync = _forward("fsync")
sleep = _forward("sleep")
resolve = _forward("resolve")
open_connection = _forward("open_connection")
open_unix_connection = _forward("open_unix_connection")
start_server = _forward("start_server")
start_unix_server = _forward("start_unix_server")


# ---------------------------------------------------------------------------------------
# Streams
# ---------------------------------------------------------------------------------------

class _Conn:
    def __init__(self, al, h):
        self.al = al
        self.h = h
        self.closing = False
        self.closed = al._aloop.create_future()


def _streams(al, h):
    conn = _Conn(al, h)
    return StreamReader(conn), StreamWriter(conn)


class StreamReader:
    """Reads from an ioq stream handle, shaped like asyncio.StreamReader."""

    def __init__(self, conn, limit=65536):
        self._conn = conn
        self._buf = bytearray()
        self._eof = False
        self._limit = limit

    def at_eof(self):
        return self._eof and not self._buf

    async def _fill(self, n):
        if self._eof:
            return 0
        chunk = bytearray(max(n, self._limit))
        try:
            got = await self._conn.al.recv_into(self._conn.h, chunk)
        except _ioq.Error as e:
            # A local close ends pending receives with ECANCELED: that is an end of stream.
            if self._conn.closing and e.code in (_ioq.ECANCELED, _ioq.EBADHANDLE):
                got = 0
            else:
                raise
        if got == 0:
            self._eof = True
        else:
            self._buf += memoryview(chunk)[:got]
        return got

    async def read(self, n=-1):
        """Up to n bytes (n < 0: everything until end of stream); b"" at end."""
        if n == 0:
            return b""
        if n < 0:
            while await self._fill(self._limit):
                pass
            data, self._buf = bytes(self._buf), bytearray()
            return data
        if not self._buf:
            await self._fill(n)
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def readexactly(self, n):
        while len(self._buf) < n:
            if not await self._fill(n - len(self._buf)):
                partial, self._buf = bytes(self._buf), bytearray()
                raise asyncio.IncompleteReadError(partial, n)
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def readuntil(self, separator=b"\n"):
        start = 0
        while True:
            i = self._buf.find(separator, start)
            if i >= 0:
                end = i + len(separator)
                data = bytes(self._buf[:end])
                del self._buf[:end]
                return data
            start = max(0, len(self._buf) - len(separator) + 1)
            if not await self._fill(self._limit):
                partial, self._buf = bytes(self._buf), bytearray()
                raise asyncio.IncompleteReadError(partial, None)

    async def readline(self):
        try:
            return await self.readuntil(b"\n")
        except asyncio.IncompleteReadError as e:
            return e.partial

    def __aiter__(self):
        return self

    async def __anext__(self):
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line


class StreamWriter:
    """Writes to an ioq stream handle, shaped like asyncio.StreamWriter. write() submits
    the send at once (ioq keeps sends on a stream in order); drain() waits for them."""

    def __init__(self, conn):
        self._conn = conn
        self._pending = collections.deque()
        self._error = None

    @property
    def handle(self):
        return self._conn.h

    def write(self, data):
        if self._conn.closing:
            raise ConnectionResetError("the writer is closing")
        if self._error is not None:
            raise self._error
        if not data:
            return
        task = self._conn.al._aloop.create_task(self._conn.al.send(self._conn.h, bytes(data)))
        task.add_done_callback(self._sent)
        self._pending.append(task)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def _sent(self, task):
        try:
            self._pending.remove(task)
        except ValueError:
            pass
        if not task.cancelled() and task.exception() is not None and self._error is None:
            self._error = task.exception()

    async def drain(self):
        while self._pending:
            await asyncio.wait(list(self._pending))
        if self._error is not None:
            raise self._error

    def can_write_eof(self):
        return True

    def write_eof(self):
        before = list(self._pending)

        async def shut():
            if before:
                await asyncio.wait(before)
            await self._conn.al.shutdown(self._conn.h)
        task = self._conn.al._aloop.create_task(shut())
        task.add_done_callback(self._sent)
        self._pending.append(task)

    def is_closing(self):
        return self._conn.closing

    def close(self):
        if self._conn.closing:
            return
        self._conn.closing = True
        self._conn.al._aloop.create_task(self._close())

    async def _close(self):
        conn = self._conn
        try:
            while self._pending:
                await asyncio.wait(list(self._pending))
            if not conn.al.closed:
                await conn.al.close_handle(conn.h)
        except Exception:
            pass
        finally:
            if not conn.closed.done():
                conn.closed.set_result(None)

    async def wait_closed(self):
        await asyncio.shield(self._conn.closed)

    def get_extra_info(self, name, default=None):
        io = self._conn.al.ioq
        try:
            if name == "peername":
                return io.peername(self._conn.h)
            if name == "sockname":
                return io.sockname(self._conn.h)
            if name == "handle":
                return self._conn.h
        except (_ioq.Error, ValueError):
            return default
        return default


class Server:
    """A listening ioq socket that starts client_connected_cb for each connection."""

    def __init__(self, al, listener, cb, unix=False):
        self._al = al
        self.listener = listener
        self._cb = cb
        self._unix = unix
        self._tasks = set()
        self._closed = al._aloop.create_future()
        self._accepting = al._aloop.create_task(self._accept_loop())

    @property
    def sockname(self):
        """The bound (host, port) of a TCP server."""
        return None if self._unix else self._al.ioq.sockname(self.listener)

    def is_serving(self):
        return not self._accepting.done()

    async def _accept_loop(self):
        try:
            while True:
                try:
                    h = await self._al.accept(self.listener)
                except (_ioq.Error, ValueError) as e:
                    if getattr(e, "code", None) in (_ioq.EMFILE, _ioq.ENFILE, _ioq.ENOMEM):
                        await asyncio.sleep(0.05)
                        continue
                    return
                reader, writer = _streams(self._al, h)
                res = self._cb(reader, writer)
                if asyncio.iscoroutine(res):
                    task = self._al._aloop.create_task(res)
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            if not self._closed.done():
                self._closed.set_result(None)

    def close(self):
        """Stop accepting and close the listener (connections stay open)."""
        if not self._accepting.done():
            self._accepting.cancel()
        if self.listener and not self._al.closed:
            try:
                self._al.ioq.close_handle(self.listener, 0)
                self._al._schedule_flush()
            except (_ioq.Error, ValueError):
                pass
        self.listener = 0

    async def wait_closed(self):
        try:
            await self._accepting
        except asyncio.CancelledError:
            if not self._accepting.cancelled():
                raise

    async def serve_forever(self):
        try:
            await self._accepting
        finally:
            self.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
        await self.wait_closed()
