"""ioq as an asyncio event loop (``ioq.aio.EventLoop``).

The loop is asyncio's own Unix selector loop with its selector replaced by
:class:`IoqSelector`, which blocks in ioq_poll: every method and argument of
``asyncio.AbstractEventLoop`` keeps asyncio's semantics (transports, SSL, subprocesses,
signals, executors, debug mode), while readiness comes from ioq watches and the ioq
operations of ``ioq.aio`` (its transports and awaitables) complete in the same poll.
"""
import asyncio
import contextvars
import errno
import functools
import heapq
import io
import math
import os
import selectors
import signal
import socket
import stat
import sys
import threading
import time as _time
import warnings
from asyncio import base_events as _base_events
from asyncio import constants as _constants
from asyncio import events as _events
from asyncio import format_helpers as _format_helpers
from asyncio import exceptions as _exceptions
from asyncio import selector_events as _selector_events
from asyncio.log import logger as _log
from asyncio import unix_events as _unix_events
from selectors import EVENT_READ, EVENT_WRITE

import ioq as _ioq
from ioq import _ioq as _swig

_raw = getattr(_swig, "__ioq", _swig)

__all__ = ["IoqSelector", "EventLoop", "EventLoopPolicy", "new_event_loop", "install", "run"]

# ABI 1.1: readiness of descriptors ioq does not own. Without it (an ioq 1.0 library) the
# selector falls back to an epoll selector that also watches the ioq loop's descriptor.
_HAS_WATCH = hasattr(_raw, "ioq_watch") and hasattr(_raw, "IOQ_KIND_WATCH")
# ABI 1.1: a coalescing cross-thread wake-up for call_soon_threadsafe.
_HAS_NOTIFIER = hasattr(_raw, "ioq_notifier_new") and hasattr(_raw, "ioq_notify")

# Tokens of the selector's own operations (watches, their cancels and closes) lie above
# this; ioq.aio's operations count up from 1 and never get there.
_WATCH_BASE = 1 << 62
_QUIET_TOKEN = _WATCH_BASE - 1   # cancels and closes whose completion nobody waits for
_NOTIFY_TOKEN = _WATCH_BASE - 2  # the event loop's notifier wait
_MORE = _ioq.CQE_MORE
_ECANCELED = _ioq.ECANCELED
_BATCH = 256
# The flush of gathered writes in C (ioq_py_flush); a package built before it flushes in
# Python.
_HAS_FLUSH = hasattr(_raw, "ioq_py_flush")
# Large reads into a buffer of the transport (ioq_py_recv_into): a chunk of the pool of at
# least _BIG bytes turns a transport to one-shot receives into a bytearray of _DIRECT_SIZE
# bytes of its own, reused, so warm in the cache (io_uring takes the pool's buffers in turn,
# each cold by then: the kernel's copy into them cost more than all the rest of a 100 KiB
# echo); a read of less than _DIRECT_MIN turns it back to the pool.
_HAS_RECV_INTO = hasattr(_raw, "ioq_py_recv_into")
_BIG = 65536 if _HAS_RECV_INTO else 1 << 62
_DIRECT_MIN = 16384
_DIRECT_SIZE = 262144
# Gathered writes of one transport up to this many bytes together go out as one send of
# their concatenation (ioq_py_flush joins them in C: IOQ_PY_JOIN_MAX in python.i).
_JOIN_MAX = 65536


def _timeout_ns(timeout):
    if timeout is None:
        return -1
    if timeout <= 0:
        return 0
    # Never wake before the deadline asyncio asked for (it would spin once more).
    return min(math.ceil(timeout * 1e9), (1 << 62))


class IoqSelector(selectors._BaseSelectorImpl):
    """A ``selectors`` selector over an :class:`ioq.Loop`: ``select()`` blocks in ioq_poll.

    Each registered descriptor gets one ioq WATCH handle (ioq_adopt(fd, IOQ_KIND_WATCH),
    which never reads, writes or closes the descriptor) and a multishot, level-triggered
    ioq_watch per direction asked for; unregister closes the handle. The other completions
    of the ioq loop (ioq.aio's operations) are handed to their owners in the same poll:
    ``cbs`` maps tokens to callbacks run by the C dispatcher, and ``on_other(record)`` gets
    every other record.
    """

    def __init__(self, loop=None, *, backend=None):
        super().__init__()
        self._own = loop is None
        self.ioq = loop if loop is not None else _ioq.Loop(backend)
        self._p = self.ioq._ptr
        self.cbs = {}
        self.on_other = None
        self.flushq = []     # transports whose gathered writes go out before the next poll
        self._flush_al = None  # the ioq.aio.AsyncLoop whose tokens those writes take
        # On a readiness backend ioq_send tries the send in its own call: the flush sends a
        # transport's bytes itself when nothing of it is in flight in ioq (no op, token or
        # completion for them), as uvloop's try-write does. io_uring keeps its sends for the
        # poll's system call.
        self._direct = int(self.ioq.backend in ("epoll", "kqueue")
                           and os.environ.get("IOQ_AIO_TRY_WRITE", "1") != "0")
        self.pool = 0
        self.notifier = 0
        self._watches = {}   # token -> (fd, EVENT_READ or EVENT_WRITE)
        self._handles = {}   # fd -> [watch handle, read token, write token]
        self._next = _WATCH_BASE
        self._inner = None
        if not _HAS_WATCH:
            self._inner = selectors.DefaultSelector()
            self._ioq_fd = self.ioq.fileno()
            self._inner.register(self._ioq_fd, EVENT_READ)

    @property
    def backend(self):
        """The ioq backend's name ("epoll", "io_uring", ...)."""
        return self.ioq.backend

    # -- registration --------------------------------------------------------------------
    def register(self, fileobj, events, data=None):
        key = super().register(fileobj, events, data)
        try:
            if self._inner is not None:
                self._inner.register(key.fd, events)
            else:
                self._adopt(key.fd, events)
        except BaseException:
            super().unregister(fileobj)
            raise
        return key

    def _adopt(self, fd, events):
        p = self._p
        if p is None:
            raise ValueError("the selector is closed")
        rc, h = _raw.ioq_adopt(p, fd, _raw.IOQ_KIND_WATCH)
        if rc == _ioq.EEXIST:
            # The close of an earlier watch handle of this descriptor number is still queued
            # (the descriptor was closed and its number reused): flush it and try again.
            _raw.ioq_submit(p)
            rc, h = _raw.ioq_adopt(p, fd, _raw.IOQ_KIND_WATCH)
        if rc < 0:
            if rc == _ioq.EINVAL:
                # Raise what asyncio's epoll selector raises: EBADF for a closed descriptor,
                # EPERM for a regular file or a directory (callers fall back on it).
                mode = os.fstat(fd).st_mode
                if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
                    raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))
            raise _ioq.error(rc)
        ent = [h, 0, 0]
        self._handles[fd] = ent
        try:
            self._arm(fd, ent, 0, events)
        except BaseException:
            self._handles.pop(fd, None)
            _raw.ioq_close(p, h, _QUIET_TOKEN)
            raise

    def _arm(self, fd, ent, old, new):
        p = self._p
        for i, ev, bit in ((1, EVENT_READ, _raw.IOQ_WATCH_READABLE),
                           (2, EVENT_WRITE, _raw.IOQ_WATCH_WRITABLE)):
            if new & ev and not ent[i]:
                self._next += 1
                token = self._next
                rc = _raw.ioq_watch(p, ent[0], bit, _ioq.MULTISHOT, token)
                if rc < 0:
                    raise _ioq.error(rc)
                ent[i] = token
                self._watches[token] = (fd, ev)
            elif not new & ev and ent[i]:
                token = ent[i]
                ent[i] = 0
                self._watches.pop(token, None)
                _raw.ioq_cancel(p, token, _QUIET_TOKEN)

    def unregister(self, fileobj):
        key = super().unregister(fileobj)
        if self._inner is not None:
            try:
                self._inner.unregister(key.fd)
            except (KeyError, ValueError, OSError):
                pass
            return key
        ent = self._handles.pop(key.fd, None)
        if ent is not None:
            self._watches.pop(ent[1], None)
            self._watches.pop(ent[2], None)
            p = self._p
            if p is not None:
                # Ends its watches (ECANCELED, ignored) and forgets the descriptor without
                # closing it: the caller owns it and usually closes it right after.
                _raw.ioq_close(p, ent[0], _QUIET_TOKEN)
                _raw.ioq_submit(p)
        return key

    def modify(self, fileobj, events, data=None):
        try:
            key = self._fd_to_key[self._fileobj_lookup(fileobj)]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        if events != key.events:
            if (not events) or (events & ~(EVENT_READ | EVENT_WRITE)):
                raise ValueError(f"Invalid events: {events!r}")
            if self._inner is not None:
                self._inner.modify(key.fd, events)
            else:
                self._arm(key.fd, self._handles[key.fd], key.events, events)
        if events != key.events or data is not key.data:
            key = key._replace(events=events, data=data)
            self._fd_to_key[key.fd] = key
        return key

    # -- polling -------------------------------------------------------------------------
    def select(self, timeout=None):
        if self._inner is not None:
            return self._select_inner(timeout)
        p = self._p
        if p is None:
            raise ValueError("the selector is closed")
        if self.flushq:
            self._flush()
        got = _raw.ioq_py_dispatch_wait(p, self.cbs, _BATCH, self.pool, _timeout_ns(timeout))
        if type(got) is int:
            raise _ioq.error(got)
        rest = got[1]
        if rest is None:
            return []
        ready = {}
        watches = self._watches
        for t in rest:
            token = t[0]
            w = watches.get(token)
            if w is None:
                if token < _NOTIFY_TOKEN:
                    if self.on_other is not None:
                        self.on_other(t)
                elif token == _NOTIFY_TOKEN and not t[4] & _MORE and self.notifier:
                    self._arm_notifier()
                continue
            fd, ev = w
            if t[1] > 0:
                ready[fd] = ready.get(fd, 0) | ev
            if not t[4] & _MORE:
                self._watch_ended(token, fd, ev, t[1])
        out = []
        fd_to_key = self._fd_to_key
        for fd, ev in ready.items():
            key = fd_to_key.get(fd)
            if key is not None:
                ev &= key.events
                if ev:
                    out.append((key, ev))
        return out

    def _flush(self):
        if _HAS_FLUSH:
            _raw.ioq_py_flush(self._p, self.cbs, self.flushq, self._flush_al, self._direct)
            return
        q = self.flushq[:]
        del self.flushq[:]
        for tr in q:
            tr._ioq_flush()

    def _watch_ended(self, token, fd, ev, result):
        # A multishot watch ended although nobody cancelled it (the backend may end one at
        # any time, e.g. on an error): watch again while the descriptor is registered.
        del self._watches[token]
        ent = self._handles.get(fd)
        if ent is None:
            return
        i = 1 if ev == EVENT_READ else 2
        if ent[i] != token:
            return
        ent[i] = 0
        if result == _ECANCELED:
            return
        key = self._fd_to_key.get(fd)
        if key is not None and key.events & ev:
            try:
                self._arm(fd, ent, key.events & ~ev, key.events)
            except _ioq.Error:
                pass

    def _select_inner(self, timeout):
        p = self._p
        if p is None:
            raise ValueError("the selector is closed")
        # Submit what ioq.aio queued and collect what already completed.
        if self.flushq:
            self._flush()
        n = self._dispatch(0)
        events = self._inner.select(0 if n else timeout)
        out = []
        fd_to_key = self._fd_to_key
        for k, ev in events:
            if k.fd == self._ioq_fd:
                self._dispatch(0)
                continue
            key = fd_to_key.get(k.fd)
            if key is not None:
                out.append((key, ev & key.events))
        return out

    def _dispatch(self, ns):
        got = _raw.ioq_py_dispatch_wait(self._p, self.cbs, _BATCH, self.pool, ns)
        if type(got) is int:
            raise _ioq.error(got)
        n, rest = got
        if rest is not None and self.on_other is not None:
            for t in rest:
                if t[0] < _QUIET_TOKEN:
                    self.on_other(t)
        return n

    def new_notifier(self):
        """Make the notifier that notify() signals; False where ioq has none (ABI 1.0)."""
        if not _HAS_NOTIFIER or self._inner is not None or self._p is None:
            return False
        rc, h = _raw.ioq_notifier_new(self._p)
        if rc < 0:
            return False
        self.notifier = h
        if not self._arm_notifier():
            _raw.ioq_close(self._p, h, _QUIET_TOKEN)
            self.notifier = 0
            return False
        return True

    def _arm_notifier(self):
        return _raw.ioq_notify_wait(self._p, self.notifier, _ioq.MULTISHOT, _NOTIFY_TOKEN) == 0

    def notify(self):
        """Make select() return soon (any thread; the caller serializes it with close())."""
        _raw.ioq_notify(self._p, self.notifier)

    def wake(self):
        """Make a blocked select() return (any thread)."""
        p = self._p
        if p is not None:
            _raw.ioq_wake(p)

    def close(self):
        super().close()
        self._handles.clear()
        self._watches.clear()
        self.cbs.clear()
        if self._inner is not None:
            self._inner.close()
        self._p = None
        self.notifier = 0
        if self._own and self.ioq is not None:
            self.ioq.close()


class _IoqSocketTransport(_selector_events._SelectorSocketTransport):
    """asyncio's socket transport with reads and writes on ioq: one multishot ioq receive
    into the loop's buffer pool per connection, whose chunks the C dispatcher hands to
    data_received() inside the loop's poll (no selector event, handle or recv() call per
    chunk), and one ioq send per write() (see write()). Closing, extra info, start_tls and
    the rest are asyncio's own. ioq works on a duplicate of the socket's descriptor, closed
    with the transport.
    """

    def __init__(self, loop, sock, protocol, waiter=None, extra=None, server=None):
        self._h = 0
        self._recv_token = 0
        self._direct = False  # receiving into _rbytes, not the pool
        self._rbytes = None
        self._rbuf = None     # (buffer, protocol): a BufferedProtocol's buffer being filled
        self._buffered = False
        self._stash = []
        self._reading_wanted = False
        self._end_pending = False  # the end of the stream came, its callback is queued
        self._started = False
        self._ioq_loop = loop
        al = loop._ioq_asyncloop()
        self._al = al
        kind = _raw.IOQ_KIND_LOCAL if sock.family == socket.AF_UNIX else _raw.IOQ_KIND_TCP
        fd = os.dup(sock.fileno())
        rc, h = _raw.ioq_adopt(al._p, fd, kind)
        if rc < 0:
            os.close(fd)
            raise _ioq.error(rc)
        self._h = h
        # The protocol's callbacks run in the context the transport was made in (the
        # protocol's), also those the C dispatcher calls from inside the poll, where a
        # Handle of asyncio's selector loop would carry a copy of it.
        self._ctx = contextvars.copy_context()
        self._on_data_ctx = functools.partial(self._ctx.run, self._on_data)
        self._acct = [0, 0, False, functools.partial(self._ctx.run, self._on_sent)]
        self._wpend = None   # bytes, or a list of them, written but not yet sent
        self._wpend_n = 0
        self._flushq = loop._selector.flushq
        # The backend may make the socket blocking (io_uring waits for sockets itself, and
        # the duplicate shares the flags): then nothing may call send() or sendfile() on it
        # from the loop thread (EventLoop._sendfile_native runs sendfile() in a thread).
        self._blocking = os.get_blocking(fd)
        super().__init__(loop, sock, protocol, waiter, extra, server)

    # asyncio starts and stops reading through these two.
    def _add_reader(self, fd, callback, *args):
        if self._closing:
            return
        if fd != self._sock_fd:
            self._loop._add_reader(fd, callback, *args)
            return
        self._reading_wanted = True
        if not self._started:
            # The first read, scheduled right after connection_made(): start it one
            # callback later, so that a task made in connection_made() takes its first
            # step before data_received() (the poll hands data out before the callbacks
            # that are ready, where asyncio's selector loop queues a read callback after
            # them).
            self._started = True
            self._loop.call_soon(self._add_reader, fd, callback)
            return
        if self._paused:
            # pause_reading() came before the first read started
            self._reading_wanted = False
            return
        if self._stash:
            self._loop.call_soon(self._deliver_stash, context=self._ctx)
        elif not self._recv_token:
            self._start_reading()
        else:
            self._set_reader()

    def _ioq_stop_reading(self):
        self._reading_wanted = False
        if self._recv_token:
            self._set_reader()
            p = self._al._p
            if p is not None:
                _raw.ioq_cancel(p, self._recv_token, _QUIET_TOKEN)

    def _start_reading(self):
        al = self._al
        p = al._p
        if p is None or self._conn_lost or self._end_pending:
            return
        token = al._next_token
        al._next_token = token + 1
        if self._buffered:
            # A BufferedProtocol: ioq receives straight into the buffer it hands out (held
            # until the receive completes; pause_reading() and close() cancel it).
            protocol = self._protocol
            try:
                buf = protocol.get_buffer(-1)
                if not len(buf):
                    raise RuntimeError("get_buffer() returned an empty buffer")
                rc = _raw.ioq_recv(p, self._h, buf, token)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
                return
            if rc >= 0:
                self._rbuf = (buf, protocol)
        elif self._direct:
            if self._rbytes is None:
                self._rbytes = bytearray(_DIRECT_SIZE)
            rc = _raw.ioq_py_recv_into(p, self._h, self._rbytes, token)
        else:
            rc = _raw.ioq_recv_pool(p, self._h, al._recv_pool(), _ioq.MULTISHOT, token)
        if rc < 0:
            self._fatal_error(_ioq.error(rc), "Fatal read error on socket transport")
            return
        self._recv_token = token
        self._set_reader()

    def _set_reader(self):
        if self._recv_token:
            if (self._reading_wanted and not self._stash and not self._closing
                    and self._data_fast is not None):
                # (the dispatcher makes a large read into _rbytes again itself)
                self._al._cbs[self._recv_token] = (self._data_fast, self._on_data_ctx,
                                                   self._ctx, _BIG, _DIRECT_MIN, self._h)
            else:
                self._al._cbs[self._recv_token] = self._on_data_ctx

    def set_protocol(self, protocol):
        super().set_protocol(protocol)
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)
        if self._buffered:
            self._data_fast = None
        else:
            self._data_fast = protocol.data_received
        if getattr(self, "_recv_token", 0):
            self._set_reader()

    def _on_data(self, result, data, flags):
        if flags == -1:
            self._fatal_error(data, "Fatal error: protocol.data_received() call failed.")
            return
        if result > 0:
            if not flags & _MORE:
                self._recv_token = 0
                rbuf = self._rbuf
                if rbuf is not None:
                    self._rbuf = None
                    self._on_buffer(result, rbuf)
                    return
                if type(data) is bytes and result < _DIRECT_MIN:
                    self._direct = False
                    self._rbytes = None
                if self._reading_wanted and not self._closing:
                    self._start_reading()
            elif result >= _BIG and not self._direct and self._recv_token:
                # Large reads: the next ones go straight into bytes objects (the multishot
                # receive ends with ECANCELED, which starts the next receive).
                self._direct = True
                p = self._al._p
                if p is not None:
                    _raw.ioq_cancel(p, self._recv_token, _QUIET_TOKEN)
            if self._closing or self._conn_lost:
                return
            if not self._reading_wanted or self._stash:
                self._stash.append(data)
                return
            self._deliver(data)
            return
        self._recv_token = 0
        self._rbuf = None
        if self._closing or self._conn_lost:
            return
        if result == _ioq.ENOBUFS or result == _ECANCELED:
            # An emptied pool or pause_reading() ended the receive; no data was lost.
            if self._reading_wanted:
                self._start_reading()
            return
        # The end of the stream (or a read error) is handled in a callback queued now, where
        # asyncio's selector loop queues the read callback that finds it: the poll may hand
        # out the last data and the end together, and the callbacks that data_received()
        # scheduled (a task woken by it, and the task that one starts) must see the
        # connection still open, as they do on asyncio's loop; no receive starts meanwhile.
        self._end_pending = True
        self._loop.call_soon(self._on_end, result, context=self._ctx)

    def _on_end(self, result):
        self._end_pending = False
        if self._closing or self._conn_lost:
            return
        if result == 0:
            if not self._reading_wanted or self._stash:
                self._stash.append(b"")
            else:
                self._read_ready__on_eof()
        else:
            self._fatal_error(_ioq.error(result), "Fatal read error on socket transport")

    def _on_buffer(self, nbytes, rbuf):
        """A receive into a BufferedProtocol's buffer brought nbytes."""
        buf, protocol = rbuf
        if self._closing or self._conn_lost:
            return
        if not self._reading_wanted or self._stash or protocol is not self._protocol:
            # pause_reading() (or a new protocol) came while the receive was in flight: the
            # data waits as a copy for resume_reading(), no buffer_updated() before it
            with memoryview(buf) as v:
                self._stash.append(bytes(v.cast("B")[:nbytes]))
            if self._reading_wanted and not self._stash[:-1]:
                self._loop.call_soon(self._deliver_stash, context=self._ctx)
            return
        try:
            protocol.buffer_updated(nbytes)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")
            return
        if self._reading_wanted and not self._closing and not self._conn_lost \
                and not self._recv_token:
            self._start_reading()

    def _deliver(self, data):
        protocol = self._protocol
        if self._data_fast is not None:
            try:
                protocol.data_received(data)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
            return
        # A BufferedProtocol: the chunk is copied into the buffers it hands out.
        view = memoryview(data)
        while view:
            try:
                buf = protocol.get_buffer(len(view))
                if not len(buf):
                    raise RuntimeError("get_buffer() returned an empty buffer")
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
                return
            with memoryview(buf) as dst:
                dst = dst.cast("B")
                n = min(len(dst), len(view))
                dst[:n] = view[:n]
            view = view[n:]
            try:
                protocol.buffer_updated(n)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")
                return
            if self._closing or self._conn_lost:
                return
            if not self._reading_wanted:
                if view:
                    self._stash.insert(0, bytes(view))
                return

    def _deliver_stash(self):
        while self._stash and self._reading_wanted and not self._closing \
                and not self._conn_lost:
            data = self._stash.pop(0)
            if not data:
                self._read_ready__on_eof()
                return
            self._deliver(data)
        if self._reading_wanted and not self._closing and not self._stash:
            if self._recv_token:
                self._set_reader()
            else:
                self._start_reading()

    # -- writing through ioq ------------------------------------------------------------
    # write() submits an ioq send of the bytes (pinned, not copied; a bytearray or memoryview
    # is copied once, as asyncio's buffer would) instead of calling send() at once: the
    # sends of a loop iteration go out with the next poll (on io_uring, in the same system
    # call as the wait). ioq keeps a stream's sends in order. acct = [sends in flight, their
    # bytes, notify, callback]: the C dispatcher keeps the counts and calls _on_sent only on
    # an error or while notify is set (flow control, close, write_eof, sendfile wait on it).

    def get_write_buffer_size(self):
        return self._acct[1] + self._wpend_n + len(self._buffer)

    def write(self, data):
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"data argument must be a bytes-like object, "
                                f"not {type(data).__name__!r}")
            data = bytes(data)
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._empty_waiter is not None:
            raise RuntimeError("unable to write; sendfile is in progress")
        if not data:
            return
        if self._conn_lost:
            if self._conn_lost >= _constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                _log.warning("socket.send() raised exception.")
            self._conn_lost += 1
            return
        # The writes of a loop iteration are gathered and go out as one send before the
        # loop polls again (as uvloop does): a response written as headers and body costs
        # one system call, not two.
        pend = self._wpend
        if pend is None:
            self._wpend = data
            self._flushq.append(self)
        elif type(pend) is list:
            pend.append(data)
        else:
            self._wpend = [pend, data]
        self._wpend_n += len(data)
        if self._acct[1] + self._wpend_n > self._high_water:
            self._acct[2] = True
            self._maybe_pause_protocol()

    def _ioq_flush(self):
        """Send what write() gathered (the loop calls it before it polls)."""
        pend = self._wpend
        if pend is None:
            return
        n = self._wpend_n
        self._wpend = None
        self._wpend_n = 0
        if self._conn_lost:
            return
        if type(pend) is not list:
            self._ioq_send(pend)
        elif n <= _JOIN_MAX:
            self._ioq_send(b"".join(pend))
        else:
            for data in pend:  # large writes: no copy, one send each (ioq keeps them in order)
                if not self._ioq_send(data):
                    return

    def _ioq_send(self, data):
        al = self._al
        token = al._next_token
        al._next_token = token + 1
        rc = _raw.ioq_py_send_bytes(al._p, self._h, data, token, al._cbs, self._acct)
        if rc < 0:
            self._ioq_send_failed(rc)
            return False
        return True

    def _ioq_send_failed(self, rc):
        self._fatal_error(_ioq.error(rc), "Fatal write error on socket transport")

    def _on_sent(self, result, value, flags):
        acct = self._acct
        if result < 0:
            if self._conn_lost or result == _ECANCELED:
                return
            exc = _ioq.error(result)
            self._fatal_error(exc, "Fatal write error on socket transport")
            if self._empty_waiter is not None and not self._empty_waiter.done():
                self._empty_waiter.set_exception(exc)
            return
        if self._protocol_paused:
            self._maybe_resume_protocol()
        if acct[0]:
            return
        # Everything written has gone out.
        acct[2] = self._protocol_paused
        if self._empty_waiter is not None and not self._empty_waiter.done():
            self._empty_waiter.set_result(None)
        if self._conn_lost:
            return
        if self._closing:
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None)
        elif self._eof:
            self._shutdown_write()

    def _shutdown_write(self):
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self._fatal_error(exc, "Fatal error on socket transport")

    def write_eof(self):
        if self._closing or self._eof:
            return
        self._eof = True
        self._ioq_flush()
        if self._acct[0]:
            self._acct[2] = True
        else:
            self._shutdown_write()

    def close(self):
        if self._closing:
            return
        self._closing = True
        self._loop._remove_reader(self._sock_fd)
        self._ioq_flush()
        if self._acct[0]:
            self._acct[2] = True  # _on_sent ends the connection once the sends are out
        else:
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None, context=self._ctx)

    def _make_empty_waiter(self):
        if self._empty_waiter is not None:
            raise RuntimeError("Empty waiter is already set")
        self._ioq_flush()
        self._empty_waiter = self._loop.create_future()
        if self._acct[0]:
            self._acct[2] = True
        else:
            self._empty_waiter.set_result(None)
        return self._empty_waiter

    def _call_connection_lost(self, exc):
        try:
            super()._call_connection_lost(exc)
        finally:
            self._release()

    def _release(self):
        h, self._h = self._h, 0
        token, self._recv_token = self._recv_token, 0
        al = self._al
        if self._ioq_loop._ioq_readers.get(self._sock_fd) is self:
            del self._ioq_loop._ioq_readers[self._sock_fd]
        if token:
            al._cbs.pop(token, None)
        if h and al._p is not None:
            _raw.ioq_close(al._p, h, _QUIET_TOKEN)

    def __del__(self, _warn=warnings.warn):
        # _warn is bound at definition: at interpreter exit (unclosed transports are
        # collected then) importing inside __del__ fails with ImportError.
        if self._h:
            try:
                self._release()
            except Exception:
                pass
        sock = self._sock
        if sock is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            sock.close()


# write() in C where the module has it (the same steps for a bytes object, without a Python
# frame per write); the Python method stays as _write_py for every other case.
if hasattr(_raw, "ioq_py_write_method") and os.environ.get("IOQ_AIO_C_WRITE", "1") != "0":
    _IoqSocketTransport._write_py = _IoqSocketTransport.write
    _IoqSocketTransport.write = _raw.ioq_py_write_method(_IoqSocketTransport)
else:
    _IoqSocketTransport._write_py = _IoqSocketTransport.write


class Handle(_events.Handle):
    """asyncio's Handle, made without asking the loop for its debug mode (call_soon of a
    loop not in debug mode makes these)."""

    __slots__ = ()

    def __init__(self, callback, args, loop, context=None):
        if context is None:
            context = contextvars.copy_context()
        self._context = context
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        self._source_traceback = None


# Handles that _run_once runs inline (their _run is asyncio's own).
_PLAIN_HANDLES = (Handle, _events.Handle, _events.TimerHandle)
_MIN_SCHEDULED = _base_events._MIN_SCHEDULED_TIMER_HANDLES
_MIN_CANCELLED_FRACTION = _base_events._MIN_CANCELLED_TIMER_HANDLES_FRACTION
_MAX_SELECT_TIMEOUT = _base_events.MAXIMUM_SELECT_TIMEOUT


def _report_callback_error(handle, exc):
    # What asyncio's Handle._run does with an exception of its callback.
    cb = _format_helpers._format_callback_source(handle._callback, handle._args)
    context = {"message": f"Exception in callback {cb}", "exception": exc, "handle": handle}
    if handle._source_traceback:
        context["source_traceback"] = handle._source_traceback
    handle._loop.call_exception_handler(context)


class EventLoop(_unix_events.SelectorEventLoop):
    """An asyncio event loop run by ioq (a complete ``asyncio.AbstractEventLoop``).

    ``EventLoop(backend=None)`` picks ioq's best backend (IOQ_BACKEND in the environment
    may choose); ``backend="epoll"`` or ``"io_uring"`` forces one. ``ioq.aio.get_loop()``
    inside it returns an AsyncLoop that shares the loop's ioq loop, so ioq.aio's operations
    and transports complete in the loop's own poll.
    """

    def __init__(self, selector=None, *, backend=None, native_transports=None):
        if selector is None:
            selector = IoqSelector(backend=backend)
        super().__init__(selector)
        self._ioq_async = None
        if native_transports is None:
            native_transports = os.environ.get("IOQ_AIO_NATIVE", "1") != "0"
        self._ioq_native = bool(native_transports) and isinstance(selector, IoqSelector)
        self._ioq_readers = {}   # fd -> _IoqSocketTransport reading through ioq
        self._ioq_wakeup_fd = -1  # the signal wake-up descriptor run_forever() set
        # call_soon_threadsafe wakes the loop with an ioq notifier (no system call while the
        # loop is busy) instead of the self-pipe. The lock keeps close() from freeing the
        # ioq loop while another thread is inside ioq_notify (reentrant: a signal handler
        # may wake the loop from inside close()).
        self._ioq_notify_lock = threading.RLock()
        self._ioq_notify = (isinstance(selector, IoqSelector) and selector.new_notifier()
                            and os.environ.get("IOQ_AIO_NOTIFIER", "1") != "0")

    # The per-iteration and per-callback paths of asyncio's loop, without what only debug
    # mode needs (asyncio's own code runs in debug mode): the same steps in the same order,
    # with fewer Python calls per callback.
    time = staticmethod(_time.monotonic)

    def call_soon(self, callback, *args, context=None):
        if self._debug or self._closed:
            return super().call_soon(callback, *args, context=context)
        handle = Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def _run_once(self):
        if self._debug:
            return super()._run_once()
        scheduled = self._scheduled
        sched_count = len(scheduled)
        if (sched_count > _MIN_SCHEDULED and
                self._timer_cancelled_count / sched_count > _MIN_CANCELLED_FRACTION):
            new_scheduled = []
            for handle in scheduled:
                if handle._cancelled:
                    handle._scheduled = False
                else:
                    new_scheduled.append(handle)
            heapq.heapify(new_scheduled)
            self._scheduled = scheduled = new_scheduled
            self._timer_cancelled_count = 0
        else:
            while scheduled and scheduled[0]._cancelled:
                self._timer_cancelled_count -= 1
                handle = heapq.heappop(scheduled)
                handle._scheduled = False
        ready = self._ready
        if ready or self._stopping:
            timeout = 0
        elif scheduled:
            timeout = min(max(0, scheduled[0]._when - _time.monotonic()), _MAX_SELECT_TIMEOUT)
        else:
            timeout = None
        event_list = self._selector.select(timeout)
        if event_list:
            self._process_events(event_list)
        event_list = None
        if scheduled:
            end_time = _time.monotonic() + self._clock_resolution
            while scheduled:
                handle = scheduled[0]
                if handle._when >= end_time:
                    break
                handle = heapq.heappop(scheduled)
                handle._scheduled = False
                ready.append(handle)
        popleft = ready.popleft
        for _ in range(len(ready)):
            handle = popleft()
            if handle._cancelled:
                continue
            if type(handle) in _PLAIN_HANDLES:
                try:
                    handle._context.run(handle._callback, *handle._args)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    _report_callback_error(handle, exc)
            else:
                handle._run()
        handle = None

    def run_forever(self):
        # ioq_poll waits again after a signal interrupts it (EINTR), so a Python-level
        # signal handler (asyncio.run's SIGINT handler, KeyboardInterrupt) would not run
        # until some I/O came. While the loop runs on the main thread, signals write to the
        # self-pipe, which ioq watches: the poll returns and the handler runs, as it does on
        # asyncio's own loop. (asyncio's unix_events ignores signal numbers nobody asked
        # for with add_signal_handler.)
        old = None
        if (self._csock is not None
                and threading.current_thread() is threading.main_thread()):
            try:
                old = signal.set_wakeup_fd(self._csock.fileno(), warn_on_full_buffer=False)
            except (ValueError, OSError):
                old = None
        if old is not None:
            self._ioq_wakeup_fd = self._csock.fileno()
        try:
            return super().run_forever()
        finally:
            self._ioq_wakeup_fd = -1
            if old is not None:
                own = self._csock.fileno() if self._csock is not None else -1
                if self._signal_handlers and own != -1:
                    want = own   # add_signal_handler's own setting stays
                else:
                    want = -1 if old == own else old
                try:
                    signal.set_wakeup_fd(want)
                except (ValueError, OSError):
                    pass

    def _write_to_self(self):
        if self._ioq_notify:
            with self._ioq_notify_lock:
                if self._ioq_notify:
                    self._selector.notify()
                    return
        super()._write_to_self()

    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None,
                               server=None):
        if (self._ioq_native and sock.type == socket.SOCK_STREAM
                and sock.family in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX)):
            tr = _IoqSocketTransport(self, sock, protocol, waiter, extra, server)
            self._ioq_readers[tr._sock_fd] = tr
            return tr
        return super()._make_socket_transport(sock, protocol, waiter, extra=extra,
                                              server=server)

    async def _sendfile_native(self, transp, file, offset, count):
        if not getattr(transp, "_blocking", False):
            return await super()._sendfile_native(transp, file, offset, count)
        # As asyncio's, with the socket's sendfile() in the default executor: the socket is
        # blocking (see _IoqSocketTransport), and the loop must not wait for the peer.
        del self._transports[transp._sock_fd]
        resume_reading = transp.is_reading()
        transp.pause_reading()
        await transp._make_empty_waiter()
        try:
            return await self._sendfile_in_thread(transp._sock, file, offset, count)
        finally:
            transp._reset_empty_waiter()
            if resume_reading:
                transp.resume_reading()
            self._transports[transp._sock_fd] = transp

    async def _sendfile_in_thread(self, sock, file, offset, count):
        try:
            fileno = file.fileno()
            fsize = os.fstat(fileno).st_size
        except (AttributeError, io.UnsupportedOperation, OSError) as err:
            raise _exceptions.SendfileNotAvailableError("not a regular file") from err
        blocksize = count if count else fsize
        if not blocksize:
            return 0
        total = 0
        fd = sock.fileno()

        def send():
            nonlocal total
            while not count or total < count:
                n = os.sendfile(fd, fileno, offset + total,
                                (count - total) if count else blocksize)
                if not n:
                    break
                total += n

        try:
            await self.run_in_executor(None, send)
        except OSError as exc:
            if total == 0:
                raise _exceptions.SendfileNotAvailableError("os.sendfile call failed") \
                    from exc
            raise
        finally:
            if total > 0:
                file.seek(offset + total)
        return total

    def _remove_reader(self, fd):
        tr = self._ioq_readers.get(fd)
        if tr is not None:
            if tr._h:
                was = tr._reading_wanted
                tr._ioq_stop_reading()
                return was
            del self._ioq_readers[fd]
        return super()._remove_reader(fd)

    @property
    def ioq(self):
        """The :class:`ioq.Loop` this event loop polls."""
        return self._selector.ioq

    def _ioq_asyncloop(self):
        al = self._ioq_async
        if al is None or al.closed:
            from . import aio
            al = aio.AsyncLoop(self._selector.ioq, asyncio_loop=self, _selector=self._selector)
            self._ioq_async = al
            self._selector._flush_al = al   # the token counter of the C flush
        return al

    def remove_signal_handler(self, sig):
        removed = super().remove_signal_handler(sig)
        if removed and not self._signal_handlers and getattr(self, "_ioq_wakeup_fd", -1) != -1:
            # asyncio cleared the wake-up descriptor with its last handler: run_forever()
            # still needs it
            try:
                signal.set_wakeup_fd(self._ioq_wakeup_fd)
            except (ValueError, OSError):
                pass
        return removed

    def close(self):
        if not self.is_running():
            with self._ioq_notify_lock:
                self._ioq_notify = False
        super().close()
        al, self._ioq_async = self._ioq_async, None
        if al is not None:
            al.close()

    def __repr__(self):
        backend = "closed" if self.is_closed() else self._selector.ioq.backend
        return "<%s running=%s closed=%s debug=%s backend=%s>" % (
            type(self).__name__, self.is_running(), self.is_closed(), self.get_debug(),
            backend)


class EventLoopPolicy(_unix_events.DefaultEventLoopPolicy):
    """asyncio's Unix policy (child watchers included) making :class:`EventLoop` loops."""

    _loop_factory = EventLoop


def new_event_loop():
    """A new :class:`EventLoop` (for ``asyncio.Runner(loop_factory=...)``)."""
    return EventLoop()


def install():
    """Make asyncio create ioq loops: ``asyncio.set_event_loop_policy(EventLoopPolicy())``."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main, *, debug=None):
    """``asyncio.run(main)`` on a new :class:`EventLoop`."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
            return runner.run(main)
    loop = new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
