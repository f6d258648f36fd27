"""ioq.aio.EventLoop behaves as asyncio's and uvloop's loops do where programs can tell:
cases found by running a uvloop-style compatibility suite against it, on every backend."""
import asyncio
import contextvars
import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import ioq.aio
from conftest import PATIENCE, event_loop_of, run_aio


@pytest.fixture
def loop(backend):
    yield from event_loop_of(backend)


run = run_aio


CVAR = contextvars.ContextVar("cvar", default="outer")


class CtxProtocol(asyncio.Protocol):
    """Records the context variable seen by each protocol callback."""

    def __init__(self, loop):
        self.seen = {}
        self.data = bytearray()
        self.made = loop.create_future()
        self.done = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.seen["made"] = CVAR.get()
        self.made.set_result(None)

    def data_received(self, data):
        self.seen.setdefault("data", CVAR.get())
        self.data += data

    def eof_received(self):
        self.seen["eof"] = CVAR.get()

    def pause_writing(self):
        self.seen["pause"] = CVAR.get()

    def resume_writing(self):
        self.seen["resume"] = CVAR.get()

    def connection_lost(self, exc):
        self.seen["lost"] = CVAR.get()
        self.done.set_result(exc)


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_protocol_callbacks_run_in_the_protocol_context(loop, family, tmp_path):
    # A server made inside a task whose context differs from the loop's: every protocol
    # callback sees that context, also those the C dispatcher makes inside the poll
    # (data_received, eof_received, resume_writing, connection_lost after a flush).
    async def main():
        CVAR.set("inner")
        proto = CtxProtocol(loop)
        if family == "unix":
            addr = str(tmp_path / "s.sock")
            srv = await loop.create_unix_server(lambda: proto, addr)
            s = socket.socket(socket.AF_UNIX)
        else:
            srv = await loop.create_server(lambda: proto, "127.0.0.1", 0)
            addr = srv.sockets[0].getsockname()
            s = socket.socket()
        s.setblocking(False)
        await loop.sock_connect(s, addr)
        await proto.made
        await loop.sock_sendall(s, b"data")
        while not proto.data:
            await asyncio.sleep(0.005)
        proto.transport.set_write_buffer_limits(high=0)
        proto.transport.write(b"k" * 4_000_000)
        received = 0
        while received < 4_000_000:
            received += len(await loop.sock_recv(s, 1 << 20))
        s.shutdown(socket.SHUT_WR)
        while "eof" not in proto.seen:
            await asyncio.sleep(0.005)
        proto.transport.write(b"bye")
        proto.transport.close()
        await proto.done
        s.close()
        srv.close()
        await srv.wait_closed()
        return proto.seen

    seen = run(loop, main())
    assert {"made", "data", "eof", "lost"} <= set(seen)
    assert set(seen.values()) == {"inner"}, seen


def test_add_reader_errors_as_epoll_selector(loop):
    # asyncio's epoll loop: a closed descriptor raises EBADF, a regular file or a directory
    # PermissionError (EPERM); code relies on the latter to fall back to threads.
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError) as e:
        loop.add_reader(r, lambda: None)
    assert e.value.errno == errno.EBADF
    assert not loop.remove_reader(r)
    with tempfile.TemporaryFile() as f:
        with pytest.raises(PermissionError) as e:
            loop.add_reader(f.fileno(), lambda: None)
        assert e.value.errno == errno.EPERM
        assert not loop.remove_reader(f.fileno())
        with pytest.raises(PermissionError):
            loop.add_writer(f.fileno(), lambda: None)
    d = os.open(os.path.dirname(os.path.abspath(__file__)), os.O_RDONLY)
    try:
        with pytest.raises(PermissionError):
            loop.add_reader(d, lambda: None)
    finally:
        os.close(d)


def _signal_main_later(sig, delay=0.1):
    t = threading.Timer(delay, signal.pthread_kill, (threading.main_thread().ident, sig))
    t.start()
    return t


class _Interrupted(Exception):
    pass


def test_signal_interrupts_an_idle_loop(loop):
    # ioq_poll waits again after EINTR: a Python-level signal handler (Ctrl-C's
    # KeyboardInterrupt, asyncio.Runner's SIGINT handler) must still run at once, not when
    # the next timer fires, as with asyncio's epoll loop and uvloop.
    def handler(signum, frame):
        raise _Interrupted()

    async def idle(with_handler):
        if with_handler:
            # asyncio clears the wake-up descriptor with its last handler
            loop.add_signal_handler(signal.SIGUSR2, lambda: None)
            loop.remove_signal_handler(signal.SIGUSR2)
        await asyncio.sleep(PATIENCE)

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        for with_handler in (False, True):
            t = _signal_main_later(signal.SIGUSR1)
            t0 = time.monotonic()
            with pytest.raises(_Interrupted):
                loop.run_until_complete(idle(with_handler))
            assert time.monotonic() - t0 < PATIENCE / 2
            t.join()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert signal.set_wakeup_fd(-1) == -1   # the loop put back the wake-up descriptor


def test_runner_sigint_cancels_main_task(backend, monkeypatch):
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT has a handler of its own here")
    monkeypatch.setenv("IOQ_BACKEND", backend)
    cancelled = []

    async def main():
        try:
            await asyncio.sleep(PATIENCE)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    t = _signal_main_later(signal.SIGINT)
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with asyncio.Runner(loop_factory=ioq.aio.new_event_loop) as runner:
            runner.run(main())
    assert cancelled == [True]
    assert time.monotonic() - t0 < PATIENCE / 2
    t.join()


def test_unclosed_transport_at_exit_is_quiet(backend, tmp_path):
    # A program that ends with a transport open (collected at interpreter exit) gets at most
    # asyncio's ResourceWarning, not "Exception ignored in __del__" on stderr.
    script = tmp_path / "leave_open.py"
    script.write_text(
        "import asyncio, ioq.aio\n"
        "loop = ioq.aio.EventLoop()\n"
        "async def main():\n"
        "    srv = await loop.create_server(asyncio.Protocol, '127.0.0.1', 0)\n"
        "    addr = srv.sockets[0].getsockname()\n"
        "    tr, _ = await loop.create_connection(asyncio.Protocol, *addr)\n"
        "    srv.close()\n"
        "    return tr\n"
        "tr = loop.run_until_complete(main())\n"
        "loop.close()\n"
        "print('done')\n")
    env = dict(os.environ, IOQ_BACKEND=backend)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         env=env, timeout=PATIENCE)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "done\n"
    assert "Exception ignored" not in out.stderr, out.stderr
