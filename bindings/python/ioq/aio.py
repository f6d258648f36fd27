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

Protocols: :func:`create_server` and :func:`create_connection` drive ``asyncio.Protocol``
objects through a :class:`Transport`, as ``loop.create_server`` does; this is the fast path.
A C dispatcher polls ioq and hands each completion straight to its owner: received data
goes from a shared buffer pool to ``data_received()`` as bytes without a future, a task or a
submission per chunk (one multishot receive per connection), and sends are accounted for
without a Python call. Streams: :func:`open_connection` and :func:`start_server` give
``(reader, writer)`` pairs shaped like asyncio's, built on the same transports. Works under
the default event loop and under uvloop.
"""
import asyncio
import collections
import weakref

import ioq as _ioq
from ioq import _ioq as _swig

# The compiled module itself: its functions, without the proxy layer's extra Python call.
_raw = getattr(_swig, "__ioq", _swig)

__all__ = ["AsyncLoop", "get_loop", "accept", "connect", "local_connect", "recv",
           "recv_into", "send", "sendv", "sendto", "recvfrom", "shutdown", "close", "open",
           "read", "write", "fsync", "sleep", "resolve", "start_server", "open_connection",
           "start_unix_server", "open_unix_connection", "StreamReader", "StreamWriter",
           "Server", "Transport", "ProtocolServer", "create_server", "create_connection",
           "create_unix_server", "create_unix_connection"]

_NEW_HANDLE_OPS = (_ioq.OP_ACCEPT, _ioq.OP_CONNECT, _ioq.OP_LOCAL_CONNECT, _ioq.OP_OPEN)
_BATCH = 256
_ROUNDS = 8
_POOL_COUNT = 256
_POOL_SIZE = 262144
_heap_primed = False


class AsyncLoop:
    """An ioq loop driven by an asyncio event loop."""

    def __init__(self, loop=None, *, backend=None, asyncio_loop=None, _selector=None):
        aloop = asyncio_loop or asyncio.get_running_loop()
        # A weak reference: the registry of get_loop() maps asyncio loops weakly to their
        # AsyncLoop, which must not keep its asyncio loop alive.
        self._aloop_ref = weakref.ref(aloop)
        self.ioq = loop if loop is not None else _ioq.Loop(backend)
        self._own = loop is None
        self._waiters = {}  # internal token -> future (None once its awaiter gave up)
        # token -> callback(result, value, flags) of the transports' operations, run by the
        # C dispatcher without a Completion object or a future in between. Inside an
        # ioq.aio.EventLoop the selector's table: its poll dispatches them.
        self._selector = _selector
        self._cbs = {} if _selector is None else _selector.cbs
        self._transports = set()
        self._next_token = 1
        self._flush_pending = False
        self._draining = False
        self._pool = 0
        self._fd = self.ioq.fileno() if _selector is None else -1
        # The raw loop for the hot paths; None once closed, also when the ioq.Loop given to
        # us is closed directly.
        self._p = self.ioq._ptr
        # Closing the ioq.Loop directly ends what waits on it, as close() does.
        self.ioq._close_hooks.append(self.close)
        if _selector is None:
            aloop.add_reader(self._fd, self._drain)
        else:
            _selector.on_other = self._dispatch_record

    @property
    def _aloop(self):
        aloop = self._aloop_ref()
        if aloop is None:
            raise RuntimeError("the asyncio loop of this AsyncLoop is gone")
        return aloop

    # -- plumbing ----------------------------------------------------------------------
    @property
    def closed(self):
        """True once the loop is closed."""
        return self.ioq is None or self.ioq.closed

    def close(self):
        """Stop polling and close the ioq loop (if this AsyncLoop created it). Awaiters of
        pending operations get ioq.Error(ECANCELED)."""
        if self.ioq is None:
            return
        io, self.ioq = self.ioq, None
        aloop = self._aloop_ref()
        if self._selector is not None:
            if self._selector.on_other == self._dispatch_record:
                self._selector.on_other = None
        elif aloop is not None and not aloop.is_closed():
            try:
                aloop.remove_reader(self._fd)
            except Exception:
                pass
        p, self._p = self._p, None
        if self._own:
            io.close()
        elif p is not None and io._ptr is not None:
            # The ioq loop lives on (it is an EventLoop's): end what this AsyncLoop started.
            # Buffers stay held until the final completions come (the loop's next poll).
            for token in self._waiters:
                _raw.ioq_cancel(p, token, 0)
            for tr in self._transports:
                if not tr._closed:
                    tr._closed = True
                    _raw.ioq_close(p, tr._h, 0)
            if self._pool:
                _raw.ioq_close(p, self._pool, 0)
                if self._selector is not None and self._selector.pool == self._pool:
                    self._selector.pool = 0
        self._pool = 0
        self._cbs.clear()
        waiters, self._waiters = self._waiters, {}
        for fut in waiters.values():
            if fut is not None and not fut.done():
                try:
                    fut.set_exception(_ioq.error(_ioq.ECANCELED))
                except RuntimeError:
                    pass  # its asyncio loop is closed: nothing can await it any more
        for tr in list(self._transports):
            tr._loop_closed()
        self._transports.clear()

    def _dispatch_record(self, t):
        self._dispatch(_ioq.Completion(*t))

    async def aclose(self):
        """Close the loop (as close(), for async with and await)."""
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

    def _token(self):
        token = self._next_token
        self._next_token = token + 1
        return token

    def _recv_pool(self):
        # One pool for the receives of every transport: a buffer is taken from the read
        # until the dispatcher has copied the data out (it gives it back at once), so the
        # pool needs one buffer per connection that has data in one poll. An empty pool only
        # delays a receive (ENOBUFS: a peek and a new receive, a Python call each), which
        # with 32 buffers hit most reads of 100 HTTP keep-alive connections. The memory is
        # reserved, not touched: a buffer costs pages only as far as data reached into it.
        global _heap_primed
        if not self._pool:
            self._pool = self._io.pool_new(_POOL_COUNT, _POOL_SIZE)
            if self._selector is not None:
                self._selector.pool = self._pool
            if not _heap_primed:
                # Every chunk becomes a new bytes object of up to _POOL_SIZE. glibc trims its
                # heap once 128 KiB lie free at the top, so chunks of ~100 KiB would grow
                # and shrink it each time (brk and fresh page faults: half the system time
                # of a 100 KiB echo). Freeing one block above its mmap threshold makes glibc
                # raise both thresholds, as asyncio's first 256 KiB recv() does.
                _heap_primed = True
                bytes(4 * _POOL_SIZE)
        return self._pool

    def _schedule_flush(self):
        # Submissions are queued until ioq_poll() runs; one flush per event-loop turn. Inside
        # _drain the next poll flushes them anyway.
        if self._selector is not None:
            return  # the event loop's next poll submits them
        if not self._flush_pending and not self._draining:
            self._flush_pending = True
            self._aloop.call_soon(self._drain)

    def _drain(self):
        self._flush_pending = False
        io = self.ioq
        if io is None or io._ptr is None or self._draining:
            return
        self._draining = True
        try:
            # Callbacks submit more work (a reply, the next receive); polling again at once
            # flushes it and collects what completed inline, without a trip through the
            # host loop. The bound keeps other asyncio callbacks from starving; records left
            # over make the loop descriptor readable again.
            for _ in range(_ROUNDS):
                p = io._ptr
                if p is None:
                    break
                got = _raw.ioq_py_dispatch(p, self._cbs, _BATCH, self._pool)
                if isinstance(got, int):
                    raise _ioq.error(got)
                n, rest = got
                if rest is not None:
                    for t in rest:
                        self._dispatch(_ioq.Completion(*t))
                if n == 0:
                    break
        finally:
            self._draining = False

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
        """Connect to the local (AF_UNIX) socket at path; returns the handle."""
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
        """Send all of data; returns its length (sending nothing does nothing, as in
        asyncio)."""
        if not memoryview(data).nbytes:
            return 0
        return await self._result(_ioq.Loop.send, h, data)

    async def sendv(self, h, buffers):
        """Send the buffers in order as one gather write; returns the byte count."""
        if (not isinstance(buffers, (bytes, bytearray, memoryview, str))
                and all(not memoryview(b).nbytes for b in buffers)):
            return 0
        return await self._result(_ioq.Loop.sendv, h, buffers)

    async def sendto(self, h, data, addr):
        """Send one datagram to addr; returns the byte count."""
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
        """Shut down the sending side of the stream h (the peer reads end of stream)."""
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
        """Read into buf in place at offset of a file; returns the byte count."""
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
        """Flush the file h to its storage."""
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
        if isinstance(addr, tuple):
            _check_addr(addr)
        if isinstance(addr, tuple) and isinstance(addr[0], str):
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
        return _stream_pair(self, h)

    async def open_unix_connection(self, path):
        """Connect to the local socket at path; returns (StreamReader, StreamWriter)."""
        h = await self.local_connect(path)
        return _stream_pair(self, h)

    async def start_server(self, client_connected_cb, host=None, port=0, *, backlog=100,
                           reuseport=False):
        """Listen on (host, port) and call client_connected_cb(reader, writer) (a coroutine
        function or a plain function) for each connection."""
        addr = await self._address((host or "127.0.0.1", port))
        h = self._io.tcp_listen(addr, backlog, reuseport=reuseport)
        return Server(self, h, client_connected_cb)

    async def start_unix_server(self, client_connected_cb, path, *, backlog=100,
                                unlink=True):
        """Serve the local socket at path, calling client_connected_cb(reader, writer) per connection."""
        h = self._io.local_listen(path, backlog, unlink=unlink)
        return Server(self, h, client_connected_cb, unix=True)

    # -- protocols ---------------------------------------------------------------------
    async def create_server(self, protocol_factory, host=None, port=0, *, backlog=100,
                            reuseport=False):
        """Listen on (host, port); each connection gets a Transport and a
        protocol_factory() protocol (asyncio.Protocol methods). Returns a ProtocolServer."""
        addr = await self._address((host or "127.0.0.1", port))
        h = self._io.tcp_listen(addr, backlog, reuseport=reuseport)
        return ProtocolServer(self, h, protocol_factory)

    async def create_connection(self, protocol_factory, host=None, port=None):
        """Connect to (host, port); returns (Transport, protocol)."""
        h = await self.connect((host or "127.0.0.1", port))
        return _connected(self, h, protocol_factory)

    async def create_unix_server(self, protocol_factory, path, *, backlog=100, unlink=True):
        """Serve the local socket at path with a Protocol from protocol_factory per connection."""
        h = self._io.local_listen(path, backlog, unlink=unlink)
        return ProtocolServer(self, h, protocol_factory, unix=True)

    async def create_unix_connection(self, protocol_factory, path):
        """Connect to the local socket at path; returns (Transport, protocol)."""
        h = await self.local_connect(path)
        return _connected(self, h, protocol_factory)


def _check_addr(addr):
    # As asyncio's sockets: (host, port) or IPv6's (host, port, flowinfo, scope_id); a port
    # outside 0-65535 raises OverflowError.
    if len(addr) not in (2, 4):
        raise TypeError("an address must be a (host, port) or (host, port, flowinfo, "
                        "scope_id) tuple, not a %d-tuple" % len(addr))
    host, port = addr[0], addr[1]
    if host is not None and not isinstance(host, (str, bytes, bytearray)):
        raise TypeError("host must be a str, not %s" % type(host).__name__)
    if isinstance(port, bool) or not isinstance(port, (int, str)) :
        raise TypeError("port must be an int, not %s" % type(port).__name__)
    if isinstance(port, int) and not 0 <= port <= 65535:
        raise OverflowError("port must be 0-65535")
    if len(addr) == 4:
        for v, what in ((addr[2], "flowinfo"), (addr[3], "scope_id")):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError("%s must be an int" % what)
        if not 0 <= addr[2] <= 0xfffff:
            raise OverflowError("flowinfo must be 0-1048575")


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
    """The AsyncLoop of the running asyncio loop (made on first use). Inside an
    :class:`EventLoop` it shares the event loop's ioq loop; under another asyncio loop it
    owns an ioq loop, closed when that asyncio loop is closed (at the next get_loop()) or
    collected."""
    aloop = asyncio.get_running_loop()
    if isinstance(aloop, EventLoop):
        return aloop._ioq_asyncloop()
    al = _by_loop.get(aloop)
    if al is None or al.closed:
        _sweep()
        al = AsyncLoop(asyncio_loop=aloop)
        _by_loop[aloop] = al
        weakref.finalize(aloop, al.close)
    return al


def _sweep():
    # The AsyncLoops of asyncio loops closed since (asyncio.run() closes its loop but may
    # leave it to the cycle collector) give their descriptors back now.
    for aloop, al in list(_by_loop.items()):
        if aloop.is_closed():
            al.close()
            _by_loop.pop(aloop, None)


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
create_server = _forward("create_server")
create_connection = _forward("create_connection")
create_unix_server = _forward("create_unix_server")
create_unix_connection = _forward("create_unix_connection")


# ---------------------------------------------------------------------------------------
# Protocols and transports
# ---------------------------------------------------------------------------------------

_MORE = _ioq.CQE_MORE
_QUIET_ERRORS = (_ioq.ECONNRESET, _ioq.EPIPE, _ioq.ECONNABORTED, _ioq.ETIMEDOUT)


class Transport(asyncio.Transport):
    """An ioq stream handle driven like asyncio's socket transports: the protocol's
    data_received() gets each chunk as bytes, write() sends without copying bytes objects.

    Receiving is one multishot receive into the AsyncLoop's buffer pool that lives as long
    as the connection reads, so a chunk costs no submission at all. Sends go out in the order
    of write() calls (ioq keeps a stream's sends in order); each bytes object stays referenced
    until its send has completed. close() lets written data go out first; abort() does not.
    """

    def __init__(self, al, h, protocol, extra=None):
        super().__init__(extra)
        self._al = al
        self._h = h
        self._protocol = protocol
        self._data_received = protocol.data_received
        self._recv_token = 0
        self._reading = True      # not paused by pause_reading()
        self._stash = []          # data that arrived after pause_reading()
        self._closing = False
        self._eof = False         # write_eof() called
        self._closed = False      # ioq_close submitted
        self._lost = False        # connection_lost() called
        self._exc = None
        # [sends (and a shutdown) not completed, their bytes, notify, callback]: kept by the C
        # dispatcher, which calls _on_sent only on an error or while notify is set.
        self._acct = [0, 0, False, self._on_sent]
        self._high = 65536
        self._low = 16384
        self._write_paused = False
        self._cbs = al._cbs
        al._transports.add(self)

    def _start(self):
        # As asyncio and uvloop do for TCP: a reply must not wait for the peer's ACK of the
        # previous segment (Nagle). Local sockets refuse the option; that is fine.
        _raw.ioq_setopt(self._al._p, self._h, _ioq.OPT_NODELAY, 1)
        try:
            self._protocol.connection_made(self)
        except BaseException as e:
            self._callback_failed(e, "connection_made() failed")
            return
        # As asyncio: reading starts in a callback after connection_made(), so that a task
        # it created takes its first step before data_received() (data may have come with
        # the connection and would otherwise be handed out in the same dispatch).
        self._al._aloop.call_soon(self._first_read)

    def _first_read(self):
        if self._reading and not self._closing and not self._recv_token and self._al._p:
            self._start_reading()

    # -- reading -----------------------------------------------------------------------
    def _start_reading(self):
        al = self._al
        token = al._token()
        p = al._p
        rc = _raw.ioq_recv_pool(p, self._h, al._recv_pool(), _ioq.MULTISHOT, token)
        if rc < 0:
            self._fatal(_ioq.error(rc), "receive failed")
            return
        self._recv_token = token
        self._set_reader()
        al._schedule_flush()

    def _set_reader(self):
        # While reading, chunks go from the dispatcher to data_received() directly; stashed
        # chunks must go first.
        if self._recv_token:
            if self._reading and not self._closing and not self._stash:
                self._cbs[self._recv_token] = (self._data_received, self._on_data)
            else:
                self._cbs[self._recv_token] = self._on_data

    def _on_data(self, result, data, flags):
        if flags == -1:
            self._fatal(data, "data_received() failed")
            return
        if result > 0:
            if not flags & _MORE:
                self._recv_ended()
            if self._closing:
                return
            if not self._reading or self._stash:
                self._stash.append(data)
                return
            try:
                self._data_received(data)
            except BaseException as e:
                self._callback_failed(e, "data_received() failed")
            return
        self._recv_token = 0
        if self._closing:
            return
        if result == 0:
            if not self._reading or self._stash:
                self._stash.append(b"")
            else:
                self._eof_received()
        elif result == _ioq.ENOBUFS or result == _ioq.ECANCELED:
            # An emptied pool or pause_reading() ended the receive; no data was lost.
            if self._reading:
                self._start_reading()
        else:
            self._fatal(_ioq.error(result), "receive failed")

    def _recv_ended(self):
        # The multishot receive ended with data (the kernel may end one at any time).
        self._recv_token = 0
        if self._reading and not self._closing:
            self._start_reading()

    def _eof_received(self):
        try:
            keep_open = self._protocol.eof_received()
        except BaseException as e:
            self._callback_failed(e, "eof_received() failed")
            return
        if not keep_open:
            self.close()

    def pause_reading(self):
        if self._closing or not self._reading:
            return
        self._reading = False
        if self._recv_token:
            self._set_reader()
            _raw.ioq_cancel(self._al._p, self._recv_token, 0)
            self._al._schedule_flush()

    def resume_reading(self):
        if self._closing or self._reading:
            return
        self._reading = True
        self._set_reader()
        if self._stash:
            self._al._aloop.call_soon(self._deliver_stash)
        elif not self._recv_token:
            self._start_reading()

    def _deliver_stash(self):
        while self._stash and self._reading and not self._closing:
            data = self._stash.pop(0)
            if not data:
                self._eof_received()
                return
            try:
                self._protocol.data_received(data)
            except BaseException as e:
                self._callback_failed(e, "data_received() failed")
                return
        if self._reading and not self._closing and not self._stash:
            if self._recv_token:
                self._set_reader()
            else:
                self._start_reading()

    def is_reading(self):
        return self._reading and not self._closing

    # -- writing -----------------------------------------------------------------------
    def write(self, data):
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError("data must be a bytes-like object, not %r"
                                % type(data).__name__)
            # The caller may change a bytearray once write() returns: send a snapshot.
            data = bytes(data)
        if self._eof:
            raise RuntimeError("cannot call write() after write_eof()")
        if not data or self._closing:
            return
        al = self._al
        token = al._next_token
        al._next_token = token + 1
        # Pins data, files the accounting list under the token and counts the send.
        rc = _raw.ioq_py_send_bytes(al._p, self._h, data, token, self._cbs, self._acct)
        if rc < 0:
            self._fatal(_ioq.error(rc), "send failed")
            return
        # No flush is scheduled: a loop embedded through its descriptor starts submitted
        # work at once and makes the descriptor readable when it completes.
        acct = self._acct
        if acct[1] > self._high and not self._write_paused:
            self._write_paused = True
            acct[2] = True
            try:
                self._protocol.pause_writing()
            except Exception as e:
                self._report(e, "pause_writing() failed")

    def writelines(self, list_of_data):
        self.write(b"".join(list_of_data))

    def _on_sent(self, result, value, flags):
        # The dispatcher has done the accounting already.
        acct = self._acct
        if result < 0:
            if result != _ioq.ECANCELED:
                self._fatal(_ioq.error(result), "send failed")
            elif acct[0] == 0 and self._closing:
                self._close_handle()
            return
        if self._write_paused and acct[1] <= self._low:
            self._write_paused = False
            acct[2] = self._closing
            try:
                self._protocol.resume_writing()
            except Exception as e:
                self._report(e, "resume_writing() failed")
        if acct[0] == 0 and self._closing:
            self._close_handle()

    def can_write_eof(self):
        return True

    def write_eof(self):
        if self._eof or self._closing:
            return
        self._eof = True
        al = self._al
        token = al._token()
        rc = _raw.ioq_shutdown(al._p, self._h, token)
        if rc < 0:
            self._fatal(_ioq.error(rc), "shutdown failed")
            return
        self._cbs[token] = self._acct
        self._acct[0] += 1
        al._schedule_flush()

    def get_write_buffer_size(self):
        return self._acct[1]

    def get_write_buffer_limits(self):
        return (self._low, self._high)

    def set_write_buffer_limits(self, high=None, low=None):
        if high is None:
            high = 65536 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError("high (%r) must be >= low (%r) must be >= 0" % (high, low))
        self._high, self._low = high, low

    # -- closing -----------------------------------------------------------------------
    def is_closing(self):
        return self._closing

    def close(self):
        """Stop reading, let written data go out, then close the handle; connection_lost(None)
        follows."""
        if self._closing:
            return
        self._closing = True
        if self._recv_token:
            self._set_reader()
            _raw.ioq_cancel(self._al._p, self._recv_token, 0)
        if self._acct[0] == 0:
            self._close_handle()
        else:
            self._acct[2] = True
            self._al._schedule_flush()

    def abort(self):
        """Close at once; sends not yet done are dropped."""
        self._closing = True
        self._set_reader()
        self._close_handle()

    def _fatal(self, exc, message):
        if isinstance(exc, _ioq.Error) and exc.code in _QUIET_ERRORS:
            pass
        elif isinstance(exc, Exception):
            self._report(exc, message)
        if self._exc is None:
            self._exc = exc
        self.abort()

    def _callback_failed(self, exc, message):
        # A protocol callback raised: the transport ends; KeyboardInterrupt and SystemExit
        # go on up, as asyncio lets them.
        self._fatal(exc, message)
        if not isinstance(exc, Exception):
            raise exc

    def _report(self, exc, message):
        self._al._aloop.call_exception_handler({
            "message": "ioq transport: " + message, "exception": exc, "transport": self,
            "protocol": self._protocol})

    def _close_handle(self):
        if self._closed:
            return
        self._closed = True
        al = self._al
        if al.closed:
            self._loop_closed()
            return
        token = al._token()
        if _raw.ioq_close(al._p, self._h, token) < 0:
            self._connection_lost()
            return
        al._cbs[token] = self._on_closed
        al._schedule_flush()

    def _on_closed(self, result, value, flags):
        self._connection_lost()

    def _loop_closed(self):
        self._closing = self._closed = True
        if not self._lost and self._exc is None:
            self._exc = _ioq.error(_ioq.ECANCELED)
        aloop = self._al._aloop_ref()
        try:
            aloop.call_soon(self._connection_lost)
        except (AttributeError, RuntimeError):
            self._connection_lost()  # the asyncio loop is closed or gone

    def _connection_lost(self):
        if self._lost:
            return
        self._lost = True
        self._al._transports.discard(self)
        try:
            self._protocol.connection_lost(self._exc)
        except Exception as e:
            self._report(e, "connection_lost() failed")

    # -- the rest of asyncio.Transport -------------------------------------------------
    @property
    def handle(self):
        """The ioq handle of the connection."""
        return self._h

    def get_extra_info(self, name, default=None):
        if name in self._extra:
            return self._extra[name]
        io = self._al.ioq
        try:
            if name == "peername":
                return io.peername(self._h)
            if name == "sockname":
                return io.sockname(self._h)
            if name == "handle":
                return self._h
        except (_ioq.Error, ValueError, AttributeError):
            return default
        return default

    def set_protocol(self, protocol):
        self._protocol = protocol
        self._data_received = protocol.data_received
        self._set_reader()

    def get_protocol(self):
        return self._protocol

    def __repr__(self):
        state = "closing" if self._closing else "open"
        return "<ioq.aio.Transport handle=%#x %s>" % (self._h, state)


class ProtocolServer:
    """A listening ioq socket that makes a Transport and a protocol_factory() protocol for
    each connection (asyncio's create_server shape)."""

    def __init__(self, al, listener, protocol_factory, unix=False):
        self._al = al
        self.listener = listener
        self._factory = protocol_factory
        self._unix = unix
        self._token = 0
        self._serving = True
        self._closed = al._aloop.create_future()
        self._accept()

    def _accept(self):
        al = self._al
        if not self._serving or al.closed:
            return
        token = al._token()
        rc = _raw.ioq_accept(al._p, self.listener, _ioq.MULTISHOT, token)
        if rc < 0:
            self._stop()
            return
        self._token = token
        al._cbs[token] = self._on_accept
        al._schedule_flush()

    def _on_accept(self, result, value, flags):
        if result >= 0:
            if not self._serving:
                self._al.ioq.close_handle(value, 0)
            else:
                try:
                    protocol = self._factory()
                except Exception as e:
                    self._al.ioq.close_handle(value, 0)
                    self._al._aloop.call_exception_handler({
                        "message": "ioq server: protocol_factory() failed", "exception": e})
                else:
                    Transport(self._al, value, protocol)._start()
        if flags & _MORE:
            return
        self._token = 0
        if result in (_ioq.EMFILE, _ioq.ENFILE, _ioq.ENOMEM) and self._serving:
            self._al._aloop.call_later(0.05, self._accept)
        elif result >= 0 and self._serving:
            self._accept()
        else:
            self._stop()

    def _stop(self):
        self._serving = False
        if not self._closed.done():
            self._closed.set_result(None)

    @property
    def sockname(self):
        """The bound (host, port) of a TCP server."""
        return None if self._unix or not self.listener else self._al.ioq.sockname(self.listener)

    def is_serving(self):
        """True until close() is called."""
        return self._serving

    def close(self):
        """Stop accepting and close the listener (connections stay open)."""
        self._serving = False
        if self.listener and not self._al.closed:
            try:
                self._al.ioq.close_handle(self.listener, 0)
                self._al._schedule_flush()
            except (_ioq.Error, ValueError):
                pass
        self.listener = 0
        if not self._token:
            self._stop()

    async def wait_closed(self):
        """Wait until the server is closed."""
        if self._al.closed:
            return
        await asyncio.shield(self._closed)

    async def serve_forever(self):
        """Serve until the server is closed (or this task is cancelled, which closes it)."""
        try:
            await asyncio.shield(self._closed)
        finally:
            self.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
        await self.wait_closed()


class Server(ProtocolServer):
    """A listening ioq socket that starts client_connected_cb(reader, writer) for each
    connection."""

    def __init__(self, al, listener, cb, unix=False):
        tasks = set()
        self._tasks = tasks
        super().__init__(al, listener,
                         lambda: _StreamProtocol(al, StreamReader(loop=al._aloop), cb, tasks),
                         unix=unix)


# ---------------------------------------------------------------------------------------
# Streams (over the transports above, as asyncio builds its streams over its own)
# ---------------------------------------------------------------------------------------

class _StreamProtocol(asyncio.Protocol):
    def __init__(self, al, reader, client_connected_cb=None, tasks=None):
        self._al = al
        self._reader = reader
        self._cb = client_connected_cb
        self._tasks = tasks
        self._writer = None
        self._paused = False
        self._lost = False
        self._exc = None
        self._drain_waiters = collections.deque()
        self._closed = al._aloop.create_future()

    def connection_made(self, transport):
        self._reader._transport = transport
        self._writer = StreamWriter(transport, self, self._reader)
        if self._cb is not None:
            res = self._cb(self._reader, self._writer)
            if asyncio.iscoroutine(res):
                task = self._al._aloop.create_task(res)
                if self._tasks is not None:
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    def data_received(self, data):
        self._reader._feed(data)

    def eof_received(self):
        self._reader._feed_eof()
        return True  # the writer may still send; close() ends the connection

    def connection_lost(self, exc):
        self._lost = True
        self._exc = exc
        if exc is None:
            self._reader._feed_eof()
        else:
            self._reader._set_exception(exc)
        while self._drain_waiters:
            fut = self._drain_waiters.popleft()
            if not fut.done():
                if exc is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(exc)
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self):
        self._paused = True

    def resume_writing(self):
        self._paused = False
        while self._drain_waiters:
            fut = self._drain_waiters.popleft()
            if not fut.done():
                fut.set_result(None)

    async def _drain(self):
        if self._lost:
            if self._exc is not None:
                raise self._exc
            raise ConnectionResetError("Connection lost")
        if not self._paused:
            return
        fut = self._al._aloop.create_future()
        self._drain_waiters.append(fut)
        await fut


class StreamReader:
    """Reads from an ioq stream, shaped like asyncio.StreamReader. Data waits in a buffer;
    past twice the limit the transport stops reading until it is consumed."""

    def __init__(self, limit=65536, loop=None):
        self._buf = bytearray()
        self._eof = False
        self._exc = None
        self._waiter = None
        self._transport = None
        self._paused = False
        self._limit = limit
        self._aloop = loop or asyncio.get_running_loop()

    def _wakeup(self, exc=None):
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                if exc is None:
                    w.set_result(None)
                else:
                    w.set_exception(exc)

    def _feed(self, data):
        self._buf += data
        self._wakeup()
        if not self._paused and len(self._buf) > 2 * self._limit and self._transport:
            self._paused = True
            self._transport.pause_reading()

    def _feed_eof(self):
        self._eof = True
        self._wakeup()

    def _set_exception(self, exc):
        self._exc = exc
        self._wakeup(exc)

    def _maybe_resume(self):
        if self._paused and len(self._buf) <= self._limit:
            self._paused = False
            self._transport.resume_reading()

    async def _wait(self):
        if self._waiter is not None:
            raise RuntimeError("another coroutine is already waiting for this stream")
        if self._paused:
            self._paused = False
            self._transport.resume_reading()
        self._waiter = self._aloop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _take(self, n):
        buf = self._buf
        if n >= len(buf):
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:n])
            del buf[:n]
        self._maybe_resume()
        return data

    def at_eof(self):
        """True when the peer has ended the stream and every byte was read."""
        return self._eof and not self._buf

    def exception(self):
        """The error that ended the stream, or None."""
        return self._exc

    async def read(self, n=-1):
        """Up to n bytes (n < 0: everything until end of stream); b"" at end."""
        if self._exc is not None:
            raise self._exc
        if n == 0:
            return b""
        if n < 0:
            blocks = []
            while True:
                block = await self.read(self._limit)
                if not block:
                    return b"".join(blocks)
                blocks.append(block)
        if not self._buf and not self._eof:
            await self._wait()
        return self._take(n)

    async def readexactly(self, n):
        """Read exactly n bytes; raises asyncio.IncompleteReadError at an early end."""
        if self._exc is not None:
            raise self._exc
        while len(self._buf) < n:
            if self._eof:
                partial = self._take(len(self._buf))
                raise asyncio.IncompleteReadError(partial, n)
            await self._wait()
        return self._take(n)

    async def readuntil(self, separator=b"\n"):
        """Read up to and including separator; raises asyncio.IncompleteReadError at an early end."""
        if self._exc is not None:
            raise self._exc
        start = 0
        while True:
            i = self._buf.find(separator, start)
            if i >= 0:
                return self._take(i + len(separator))
            start = max(0, len(self._buf) - len(separator) + 1)
            if self._eof:
                partial = self._take(len(self._buf))
                raise asyncio.IncompleteReadError(partial, None)
            await self._wait()

    async def readline(self):
        """Read one line, with its newline (less at the end of the stream)."""
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
    """Writes to an ioq stream, shaped like asyncio.StreamWriter. write() submits the send
    at once (bytes are not copied); drain() waits while the transport's write buffer is
    above its high-water mark and raises the connection's error."""

    def __init__(self, transport, protocol, reader):
        self._transport = transport
        self._protocol = protocol
        self._reader = reader

    @property
    def transport(self):
        """The Transport that carries this stream."""
        return self._transport

    @property
    def handle(self):
        """The ioq handle of the connection."""
        return self._transport.handle

    def write(self, data):
        """Queue data to be sent (await drain() to wait for room)."""
        if self._transport.is_closing():
            exc = self._protocol._exc or self._transport._exc
            if exc is not None:
                raise exc
            raise ConnectionResetError("the writer is closing")
        self._transport.write(data)

    def writelines(self, lines):
        """Queue each piece of lines to be sent, in order."""
        for line in lines:
            self.write(line)

    async def drain(self):
        """Wait until the queued data is below the write buffer limit."""
        await self._protocol._drain()

    def can_write_eof(self):
        """True: a stream can always be half-closed."""
        return True

    def write_eof(self):
        """Shut down the sending side once the queued data is sent."""
        self._transport.write_eof()

    def is_closing(self):
        """True once close() was called or the connection ended."""
        return self._transport.is_closing()

    def close(self):
        """Close the connection once the queued data is sent."""
        self._transport.close()

    async def wait_closed(self):
        """Wait until the connection is closed."""
        await asyncio.shield(self._protocol._closed)

    def get_extra_info(self, name, default=None):
        """Transport information by name: 'peername', 'sockname', 'handle'; else default."""
        return self._transport.get_extra_info(name, default)


def _stream_pair(al, h):
    reader = StreamReader(loop=al._aloop)
    protocol = _StreamProtocol(al, reader)
    Transport(al, h, protocol)._start()
    return reader, protocol._writer



def _connected(al, h, protocol_factory):
    try:
        protocol = protocol_factory()
    except BaseException:
        al.ioq.close_handle(h, 0)
        al._schedule_flush()
        raise
    transport = Transport(al, h, protocol)
    transport._start()
    return transport, protocol


from ._eventloop import (EventLoop, EventLoopPolicy, IoqSelector,  # noqa: E402
                         install, new_event_loop, run)
__all__ += ["EventLoop", "EventLoopPolicy", "IoqSelector", "new_event_loop", "install", "run"]
