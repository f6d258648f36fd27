"""ioq.aio.EventLoop: ioq as the asyncio event loop, on every backend."""
import asyncio
import inspect
import os
import signal
import socket
import sys
import threading
import time

import pytest

import ioq
import ioq.aio
from conftest import PATIENCE, event_loop_of, run_aio


@pytest.fixture
def loop(backend):
    yield from event_loop_of(backend)


run = run_aio


def open_fds():
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


def test_is_a_complete_event_loop(loop, backend):
    assert isinstance(loop, asyncio.AbstractEventLoop)
    assert loop.ioq.backend == backend
    missing = [name for name, _ in inspect.getmembers(asyncio.AbstractEventLoop,
                                                      inspect.isfunction)
               if getattr(type(loop), name) is getattr(asyncio.AbstractEventLoop, name)]
    assert missing == []


def test_entry_points(backend, monkeypatch):
    monkeypatch.setenv("IOQ_BACKEND", backend)

    async def main():
        lp = asyncio.get_running_loop()
        assert isinstance(lp, ioq.aio.EventLoop)
        return lp.ioq.backend

    assert ioq.aio.run(main()) == backend
    with asyncio.Runner(loop_factory=ioq.aio.new_event_loop) as r:
        assert r.run(main()) == backend
    old = asyncio.get_event_loop_policy()
    try:
        ioq.aio.install()
        assert isinstance(asyncio.get_event_loop_policy(), ioq.aio.EventLoopPolicy)
        assert asyncio.run(main()) == backend
    finally:
        asyncio.set_event_loop_policy(old)


def test_timers_and_order(loop):
    seen = []

    async def main():
        lp = asyncio.get_running_loop()
        lp.call_later(0.02, seen.append, "later")
        lp.call_soon(seen.append, "soon")
        t0 = lp.time()
        await asyncio.sleep(0.05)
        assert lp.time() - t0 >= 0.05
        return seen

    assert run(loop, main()) == ["soon", "later"]


def test_reader_writer_callbacks(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        async def main():
            lp = asyncio.get_running_loop()
            got = lp.create_future()
            lp.add_reader(a.fileno(), lambda: got.set_result(a.recv(100)) if not got.done()
                          else None)
            writable = lp.create_future()
            lp.add_writer(b.fileno(), lambda: writable.done() or writable.set_result(True))
            assert await writable
            assert lp.remove_writer(b.fileno())
            b.send(b"ping")
            assert await got == b"ping"
            assert lp.remove_reader(a.fileno())
            assert not lp.remove_reader(a.fileno())
            # Level-triggered: unread data keeps reporting, once per loop iteration.
            b.send(b"xx")
            count = 0

            def cb():
                nonlocal count
                count += 1
            lp.add_reader(a.fileno(), cb)
            for _ in range(5):
                await asyncio.sleep(0)
            lp.remove_reader(a.fileno())
            assert count >= 2
            return True

        assert run(loop, main())
    finally:
        a.close()
        b.close()


def test_descriptor_number_reused(loop):
    # asyncio unregisters a socket and closes it; the next socket often gets its number.
    async def main():
        lp = asyncio.get_running_loop()
        for _ in range(50):
            a, b = socket.socketpair()
            fut = lp.create_future()
            lp.add_reader(a.fileno(), lambda f=fut: f.done() or f.set_result(True))
            b.send(b"x")
            assert await fut
            lp.remove_reader(a.fileno())
            a.close()
            b.close()
        return True

    assert run(loop, main())


def test_call_soon_threadsafe_wakes_blocked_loop(loop):
    async def main():
        lp = asyncio.get_running_loop()
        fut = lp.create_future()
        t0 = time.monotonic()
        threading.Timer(0.05, lp.call_soon_threadsafe, (fut.set_result, 42)).start()
        assert await fut == 42
        return time.monotonic() - t0

    assert run(loop, main()) < 5


def test_run_in_executor_and_resolve(loop):
    async def main():
        lp = asyncio.get_running_loop()
        assert await lp.run_in_executor(None, sum, [1, 2, 3]) == 6
        infos = await lp.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
        assert infos[0][4] == ("127.0.0.1", 80)
        return True

    assert run(loop, main())


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class Buffered(asyncio.BufferedProtocol):
    def __init__(self, want):
        self.buf = bytearray(4096)
        self.data = bytearray()
        self.want = want
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        return self.buf

    def buffer_updated(self, nbytes):
        self.data += self.buf[:nbytes]
        if len(self.data) >= self.want and not self.done.done():
            self.done.set_result(bytes(self.data))

    def connection_lost(self, exc):
        pass


def test_protocols_and_streams(loop):
    async def main():
        lp = asyncio.get_running_loop()
        srv = await lp.create_server(Echo, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        payload = os.urandom(100000)
        tr, proto = await lp.create_connection(lambda: Buffered(len(payload)), "127.0.0.1",
                                               port)
        tr.write(payload)
        assert await proto.done == payload
        assert tr.get_extra_info("peername") == ("127.0.0.1", port)
        tr.close()
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"line\n")
        assert await r.readline() == b"line\n"
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()
        return True

    assert run(loop, main())


def test_ioq_aio_shares_the_loop(loop):
    async def main():
        lp = asyncio.get_running_loop()
        al = ioq.aio.get_loop()
        assert al.ioq is lp.ioq
        srv = await ioq.aio.start_server(lambda r, w: w.write(b"hi"), "127.0.0.1", 0)
        r, w = await asyncio.open_connection("127.0.0.1", srv.sockname[1])
        assert await r.readexactly(2) == b"hi"
        w.close()
        srv.close()
        await ioq.aio.sleep(0.001)
        return True

    assert run(loop, main())


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and processes")
def test_subprocess_and_signals(loop):
    async def main():
        lp = asyncio.get_running_loop()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate(b"abc")
        assert out == b"ABC" and proc.returncode == 0
        got = lp.create_future()
        lp.add_signal_handler(signal.SIGUSR1, got.set_result, "usr1")
        os.kill(os.getpid(), signal.SIGUSR1)
        assert await got == "usr1"
        assert lp.remove_signal_handler(signal.SIGUSR1)
        return True

    assert run(loop, main())


def test_close_with_pending_ioq_operation(loop):
    async def main():
        al = ioq.aio.get_loop()
        u = al.ioq.udp_bind(("127.0.0.1", 0))
        task = asyncio.ensure_future(al.recvfrom(u, 8))
        await asyncio.sleep(0.01)
        return task

    task = run(loop, main())
    loop.close()
    assert not task.done() or task.cancelled() or task.exception() is not None


# -- what the review of ioq.aio found ------------------------------------------------------

def test_asyncio_run_does_not_leak(backend, monkeypatch):
    monkeypatch.setenv("IOQ_BACKEND", backend)

    async def main():
        await ioq.aio.sleep(0)

    asyncio.run(main())
    before = open_fds()
    for _ in range(300):
        asyncio.run(main())
    assert open_fds() <= before + 6


def test_port_out_of_range_and_address_shapes(loop):
    async def main():
        with pytest.raises(OverflowError):
            await ioq.aio.open_connection("127.0.0.1", 70000)
        with pytest.raises(OverflowError):
            await asyncio.open_connection("127.0.0.1", 70000)
        with pytest.raises(TypeError, match="3-tuple"):
            await ioq.aio.connect(("127.0.0.1", 1, 2))
        srv = await ioq.aio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = srv.sockname[1]
        h = await ioq.aio.connect(("127.0.0.1", port))
        assert await ioq.aio.send(h, b"") == 0
        assert await ioq.aio.sendv(h, [b"", b""]) == 0
        await ioq.aio.close(h)
        srv.close()
        if socket.has_ipv6:
            try:
                srv6 = await ioq.aio.start_server(lambda r, w: w.close(), "::1", 0)
            except OSError:
                return True  # no IPv6 loopback here
            port6 = srv6.sockname[1]
            h = await ioq.aio.connect(("::1", port6, 0, 0))
            await ioq.aio.close(h)
            srv6.close()
        return True

    assert run(loop, main())


def test_closing_asyncloop_ioq_ends_awaits(backend):
    async def main():
        al = ioq.aio.AsyncLoop(backend=backend)
        u = al.ioq.udp_bind(("127.0.0.1", 0))
        task = asyncio.ensure_future(al.recvfrom(u, 8))
        await asyncio.sleep(0.01)
        al.ioq.close()
        with pytest.raises(ioq.Error) as ei:
            await asyncio.wait_for(task, 5)
        assert ei.value.code == ioq.ECANCELED
        assert al.closed
        return True

    assert asyncio.run(main())


def test_aiohttp_hello_world(loop):
    aiohttp = pytest.importorskip("aiohttp")
    from aiohttp import web

    async def hello(request):
        return web.Response(text="Hello, world")

    async def main():
        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession() as s:
                for _ in range(3):
                    async with s.get("http://127.0.0.1:%d/" % port) as resp:
                        assert resp.status == 200
                        assert await resp.text() == "Hello, world"
        finally:
            await runner.cleanup()
        return True

    assert run(loop, main())


def test_task_from_connection_made_runs_before_data_received(loop):
    async def main():
        lp = asyncio.get_running_loop()
        order = []
        done = lp.create_future()

        class P(asyncio.Protocol):
            def connection_made(self, transport):
                async def first():
                    order.append("task")
                lp.create_task(first())

            def data_received(self, data):
                order.append("data")
                if not done.done():
                    done.set_result(None)

        srv = await lp.create_server(P, "127.0.0.1", 0)
        c = socket.create_connection(srv.sockets[0].getsockname())
        c.sendall(b"x" * 100)
        await done
        c.close()
        srv.close()
        return order[:2]

    assert run(loop, main()) == ["task", "data"]


def test_pause_resume_reading_keeps_every_byte(loop):
    async def main():
        lp = asyncio.get_running_loop()
        got = bytearray()
        done = lp.create_future()

        class P(asyncio.Protocol):
            def connection_made(self, transport):
                self.t = transport

            def data_received(self, data):
                got.extend(data)
                self.t.pause_reading()
                assert not self.t.is_reading()
                lp.call_later(0.001, self.t.resume_reading)

            def eof_received(self):
                done.set_result(None)

        srv = await lp.create_server(P, "127.0.0.1", 0)
        payload = os.urandom(300000)
        r, w = await asyncio.open_connection(*srv.sockets[0].getsockname())
        w.write(payload)
        w.write_eof()
        await done
        w.close()
        srv.close()
        return bytes(got) == payload

    assert run(loop, main())


def test_write_flow_control_and_close_flushes(loop):
    async def main():
        lp = asyncio.get_running_loop()
        events = []
        received = bytearray()
        done = lp.create_future()

        class Sink(asyncio.Protocol):
            def connection_made(self, transport):
                self.t = transport
                transport.pause_reading()  # the writer's buffer must fill up

            def data_received(self, data):
                received.extend(data)

            def eof_received(self):
                done.set_result(None)

        class Source(asyncio.Protocol):
            def connection_made(self, transport):
                self.t = transport

            def pause_writing(self):
                events.append("pause")

            def resume_writing(self):
                events.append("resume")

        sinks = []
        srv = await lp.create_server(lambda: sinks.append(Sink()) or sinks[-1], "127.0.0.1", 0)
        tr, src = await lp.create_connection(Source, *srv.sockets[0].getsockname())
        tr.set_write_buffer_limits(high=65536)
        payload = os.urandom(8 << 20)
        tr.write(payload)
        assert tr.get_write_buffer_size() > 0
        assert events == ["pause"]
        while not sinks:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        sinks[0].t.resume_reading()
        tr.close()  # the queued bytes still go out, then the connection ends
        await done
        assert events == ["pause", "resume"]
        assert tr.get_write_buffer_size() == 0
        srv.close()
        return bytes(received) == payload

    assert run(loop, main())


def test_writes_of_one_iteration_go_out_together(loop):
    async def main():
        lp = asyncio.get_running_loop()
        got = bytearray()
        eof = lp.create_future()

        class Sink(asyncio.Protocol):
            def data_received(self, data):
                got.extend(data)

            def eof_received(self):
                eof.set_result(None)

        srv = await lp.create_server(Sink, "127.0.0.1", 0)
        tr, _ = await lp.create_connection(asyncio.Protocol, *srv.sockets[0].getsockname())
        tr.write(b"head ")
        tr.write(bytearray(b"body "))
        tr.writelines([b"and ", memoryview(b"tail")])
        # gathered until the loop polls, and counted as buffered meanwhile
        assert tr.get_write_buffer_size() == 18
        await asyncio.sleep(0)
        tr.write(b"!" * 100000)   # more than is joined: sent as it is, in order
        tr.write(b"?")
        tr.write_eof()             # sends what was gathered first
        await eof
        assert tr.get_write_buffer_size() == 0
        tr.close()
        srv.close()
        return bytes(got)

    assert run(loop, main()) == b"head body and tail" + b"!" * 100000 + b"?"


def test_gathered_writes_of_many_transports_and_a_refused_send(loop):
    # The writes gathered in one iteration go out from C before the poll: every transport's
    # bytes arrive in order, and a send ioq refuses ends that transport alone with the
    # error, as a failed send() would.
    async def main():
        lp = asyncio.get_running_loop()
        got = {}
        done = []

        class Sink(asyncio.Protocol):
            def connection_made(self, tr):
                self.buf = bytearray()

            def data_received(self, data):
                self.buf.extend(data)

            def eof_received(self):
                if not self.buf:
                    return  # the transport that failed
                got[bytes(self.buf[:2])] = bytes(self.buf)
                if len(got) == 3:
                    done[0].set_result(None)

        class Watch(asyncio.Protocol):
            def __init__(self):
                self.lost = lp.create_future()

            def connection_lost(self, exc):
                self.lost.set_result(exc)

        done.append(lp.create_future())
        srv = await lp.create_server(Sink, "127.0.0.1", 0)
        addr = srv.sockets[0].getsockname()
        pairs = [await lp.create_connection(Watch, *addr) for _ in range(4)]
        for i, (tr, _) in enumerate(pairs[:3]):
            for k in range(5):
                tr.write(b"t%d:%d;" % (i, k))
        bad, bad_proto = pairs[3]
        # ioq refuses the next send on this transport: its ioq handle is gone (and the
        # flush leaves the send to ioq: its try-write would send on the socket itself)
        lp._selector._direct = 0
        from ioq import _eventloop
        _eventloop._raw.ioq_close(lp.ioq._ptr, bad._h, _eventloop._QUIET_TOKEN)
        bad._h = 0
        bad.write(b"lost")
        await asyncio.sleep(0)
        for tr, _ in pairs[:3]:
            tr.write_eof()
        await done[0]
        exc = await bad_proto.lost
        for tr, _ in pairs:
            tr.close()
        srv.close()
        return got, exc

    got, exc = run(loop, main())
    assert got == {b"t%d" % i: b"".join(b"t%d:%d;" % (i, k) for k in range(5))
                   for i in range(3)}
    assert isinstance(exc, ioq.Error)


def test_try_write_keeps_order_and_flow_control(loop):
    # On epoll the flush sends a transport's bytes itself while none of its sends is in
    # flight in ioq; a full socket buffer leaves the rest to ioq, after which writes queue
    # behind it. The peer gets every byte in order, pause_writing/resume_writing come once
    # each around the high-water mark, and the buffer size counts only what is not sent.
    async def main():
        lp = asyncio.get_running_loop()
        got = bytearray()
        peer = {}
        done = lp.create_future()

        class Sink(asyncio.Protocol):
            def connection_made(self, tr):
                peer["tr"] = tr
                tr.pause_reading()

            def data_received(self, data):
                got.extend(data)

            def eof_received(self):
                done.set_result(None)

        class Writer(asyncio.Protocol):
            def __init__(self):
                self.calls = []
                self.resumed = lp.create_future()

            def pause_writing(self):
                self.calls.append("pause")

            def resume_writing(self):
                self.calls.append("resume")
                if not self.resumed.done():
                    self.resumed.set_result(None)

        srv = await lp.create_server(Sink, "127.0.0.1", 0)
        tr, proto = await lp.create_connection(Writer, *srv.sockets[0].getsockname())
        tr.set_write_buffer_limits(high=1 << 18, low=1 << 16)
        # a small write goes out at once: nothing stays buffered or in flight
        tr.write(b"first;")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert tr.get_write_buffer_size() == 0
        if lp._selector._direct:
            assert tr._acct[0] == 0
        sent = [b"first;"]
        i = 0
        while not proto.calls:
            chunk = (b"%08d" % i) * 4096
            tr.write(chunk)
            sent.append(chunk)
            i += 1
            await asyncio.sleep(0)
            assert i < 10000, "the peer's socket never filled"
        assert proto.calls == ["pause"]
        assert tr.get_write_buffer_size() > (1 << 18)
        tr.write(b"behind;")  # written while paused: after everything before it
        sent.append(b"behind;")
        await asyncio.sleep(0)
        peer["tr"].resume_reading()
        await proto.resumed
        assert proto.calls == ["pause", "resume"]
        tr.write(b"last")
        sent.append(b"last")
        tr.write_eof()
        await done
        tr.close()
        srv.close()
        return bytes(got), b"".join(sent), tr.get_write_buffer_size()

    got, sent, left = run(loop, main())
    assert left == 0
    assert len(got) == len(sent)
    assert got == sent


def test_write_keeps_asyncio_semantics(loop):
    # write() runs in C for bytes: the other cases and states behave as asyncio's write.
    async def main():
        lp = asyncio.get_running_loop()
        got = bytearray()
        done = lp.create_future()

        class Sink(asyncio.Protocol):
            def data_received(self, data):
                got.extend(data)

            def eof_received(self):
                done.set_result(None)

        srv = await lp.create_server(Sink, "127.0.0.1", 0)
        addr = srv.sockets[0].getsockname()
        tr, _ = await lp.create_connection(asyncio.Protocol, *addr)
        slow = []
        if type(tr).write is not type(tr)._write_py:
            # bytes take the C path: the Python method is not called for them
            tr._write_py = lambda *a, _w=tr._write_py, **k: slow.append(a) or _w(*a, **k)
        with pytest.raises(TypeError):
            tr.write("text")
        with pytest.raises(TypeError):
            tr.write()
        tr.write(b"")
        assert tr.get_write_buffer_size() == 0
        tr.write(b"a")
        tr.write(bytearray(b"b"))
        tr.write(memoryview(b"xcx")[1:2])
        tr.write(data=b"d")
        tr.writelines([b"e", bytearray(b"f"), b"g"])
        assert tr.get_write_buffer_size() == 7
        n = len(slow)
        tr.write(b"h")
        assert len(slow) == n
        tr.write_eof()
        with pytest.raises(RuntimeError):
            tr.write(b"after eof")
        await done
        tr.close()
        # written after close: dropped, counted as asyncio counts them
        tr2, _ = await lp.create_connection(asyncio.Protocol, *addr)
        tr2.close()
        tr2.write(b"dropped")
        await asyncio.sleep(0)
        lost = tr2._conn_lost
        tr2.write(b"dropped")
        assert tr2._conn_lost == lost + 1
        srv.close()
        return bytes(got)

    assert run(loop, main()) == b"abcdefgh"


def test_sigint_interrupts_an_idle_loop(backend, tmp_path):
    import subprocess
    script = tmp_path / "idle.py"
    script.write_text(
        "import asyncio, sys, ioq.aio\n"
        "async def main():\n"
        "    print('ready', flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "try:\n"
        "    ioq.aio.run(main())\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n")
    env = dict(os.environ, IOQ_BACKEND=backend)
    # A fresh session: SIGINT is not ignored in it as in a background job of a shell.
    proc = subprocess.Popen([sys.executable, "-c",
                             "import signal, runpy, sys; "
                             "signal.signal(signal.SIGINT, signal.default_int_handler); "
                             "runpy.run_path(sys.argv[1], run_name='__main__')", str(script)],
                            stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=PATIENCE)
    finally:
        proc.kill()
        proc.wait()
    assert out.strip() == "interrupted"


def test_call_soon_threadsafe_from_many_threads(loop):
    async def main():
        lp = asyncio.get_running_loop()
        n, per = 4, 2000
        seen = []
        done = lp.create_future()

        def cb(i):
            seen.append(i)
            if len(seen) == n * per and not done.done():
                done.set_result(None)

        def post():
            for i in range(per):
                lp.call_soon_threadsafe(cb, i)

        threads = [threading.Thread(target=post) for _ in range(n)]
        for t in threads:
            t.start()
        await done
        for t in threads:
            t.join()
        return len(seen)

    assert run(loop, main()) == 4 * 2000


def test_close_while_other_threads_post(backend):
    # call_soon_threadsafe racing close(): RuntimeError("Event loop is closed") or nothing,
    # never a crash.
    for _ in range(20):
        lp = ioq.aio.EventLoop(backend=backend)
        stop = threading.Event()

        def post():
            while not stop.is_set():
                try:
                    lp.call_soon_threadsafe(lambda: None)
                except RuntimeError:
                    return

        t = threading.Thread(target=post)
        t.start()
        lp.run_until_complete(asyncio.sleep(0.001))
        lp.close()
        stop.set()
        t.join()


def test_gathered_lists_of_writes_are_joined_before_the_poll(loop, monkeypatch):
    # A response written as headers and body (two write() calls in one iteration, as
    # aiohttp does) goes out as one send of both, joined without a Python call per
    # transport; more than 64 KiB gathered is sent chunk by chunk, in order; a refused
    # send of a joined list ends that transport alone.
    from ioq import _eventloop
    calls = []
    orig = _eventloop._IoqSocketTransport._ioq_flush

    def counting_flush(self):
        if self._wpend is not None:   # (write_eof and close flush too, by then emptied)
            calls.append(self._wpend_n)
        return orig(self)

    monkeypatch.setattr(_eventloop._IoqSocketTransport, "_ioq_flush", counting_flush)

    async def main():
        lp = asyncio.get_running_loop()
        got = {}
        done = lp.create_future()

        class Sink(asyncio.Protocol):
            def connection_made(self, tr):
                self.buf = bytearray()

            def data_received(self, data):
                self.buf.extend(data)

            def eof_received(self):
                if not self.buf:
                    return  # the transport that failed
                got[bytes(self.buf[:2])] = bytes(self.buf)
                if len(got) == 3 and not done.done():
                    done.set_result(None)

        class Watch(asyncio.Protocol):
            def __init__(self):
                self.lost = lp.create_future()

            def connection_lost(self, exc):
                self.lost.set_result(exc)

        srv = await lp.create_server(Sink, "127.0.0.1", 0)
        addr = srv.sockets[0].getsockname()
        pairs = [await lp.create_connection(Watch, *addr) for _ in range(4)]
        for i, (tr, _) in enumerate(pairs[:2]):
            tr.write(b"h%d: headers\r\n\r\n" % i)
            tr.write(b"body %d" % i)
            assert tr.get_write_buffer_size() == 21
        big, _ = pairs[2]
        big.write(b"h2" + b"a" * 40000)
        big.write(b"b" * 40000)          # 80002 bytes gathered: not joined
        bad, bad_proto = pairs[3]
        lp._selector._direct = 0   # the send must reach ioq, which refuses it (no handle)
        _eventloop._raw.ioq_close(lp.ioq._ptr, bad._h, _eventloop._QUIET_TOKEN)
        bad._h = 0
        bad.write(b"lost ")
        bad.write(b"too")
        await asyncio.sleep(0)
        for tr, _ in pairs[:3]:
            tr.write_eof()
        await done
        exc = await bad_proto.lost
        for tr, _ in pairs:
            tr.close()
        srv.close()
        return got, exc

    got, exc = run(loop, main())
    assert got == {b"h0": b"h0: headers\r\n\r\nbody 0", b"h1": b"h1: headers\r\n\r\nbody 1",
                   b"h2": b"h2" + b"a" * 40000 + b"b" * 40000}
    assert isinstance(exc, ioq.Error)
    if _eventloop._HAS_FLUSH:
        # only the list above 64 KiB took the transport's own flush
        assert calls == [80002]


def test_end_of_stream_comes_after_callbacks_the_last_data_scheduled(loop):
    # aiohttp's server protocol: data_received() wakes a task waiting for a request, which
    # starts the request's own task; the connection must still be open in that task when
    # the client's last bytes and its end of stream (FIN) reach the loop in one poll, as on
    # asyncio's loop (connection_lost before it made aiohttp fail an assertion).
    async def main():
        lp = asyncio.get_running_loop()
        seen = []
        ready = lp.create_future()
        finished = lp.create_future()

        class P(asyncio.Protocol):
            def connection_made(self, transport):
                self.lost = False
                self.waiter = lp.create_future()
                lp.create_task(self.start())

            async def start(self):
                ready.set_result(None)
                data = await self.waiter
                await lp.create_task(self.handle(data))

            async def handle(self, data):
                seen.append(("handle", data, self.lost))

            def data_received(self, data):
                seen.append(("data", data))
                if not self.waiter.done():
                    self.waiter.set_result(data)

            def eof_received(self):
                seen.append(("eof",))

            def connection_lost(self, exc):
                self.lost = True
                seen.append(("lost", exc))
                finished.set_result(None)

        srv = await lp.create_server(P, "127.0.0.1", 0)
        c = socket.create_connection(srv.sockets[0].getsockname())
        await ready
        c.sendall(b"request")   # the data and the FIN, before the loop polls again
        c.shutdown(socket.SHUT_WR)
        await finished
        c.close()
        srv.close()
        return seen

    assert run(loop, main()) == [("data", b"request"), ("eof",),
                                 ("handle", b"request", False), ("lost", None)]
