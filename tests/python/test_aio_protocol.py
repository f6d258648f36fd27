"""ioq.aio protocols and transports (create_server / create_connection), on every backend
under the default event loop and uvloop."""
import asyncio

import pytest

import ioq
import ioq.aio
from test_aio import run  # noqa: F401  (the fixture: backend x event-loop flavour)


class Collect(asyncio.Protocol):
    """Records what a transport hands to its protocol."""

    def __init__(self, echo=False, keep_open=False):
        self.echo = echo
        self.keep_open = keep_open
        self.data = bytearray()
        self.chunks = 0
        self.eof = False
        self.transport = None
        self.lost = asyncio.get_running_loop().create_future()
        self.more = asyncio.Event()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        assert isinstance(data, bytes)
        self.data += data
        self.chunks += 1
        self.more.set()
        if self.echo:
            self.transport.write(data)

    def eof_received(self):
        self.eof = True
        self.more.set()
        return self.keep_open

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)

    async def wait_for(self, n):
        while len(self.data) < n:
            self.more.clear()
            await self.more.wait()


async def _pair(al, echo=True, server_kwargs=None):
    made = []

    def factory():
        p = Collect(echo=echo, **(server_kwargs or {}))
        made.append(p)
        return p

    server = await ioq.aio.create_server(factory, "127.0.0.1", 0)
    host, port = server.sockname
    transport, client = await ioq.aio.create_connection(Collect, host, port)
    while not made:
        await asyncio.sleep(0)
    return server, transport, client, made[0]


def test_protocol_echo(run):
    async def main(al):
        server, tr, cli, srv = await _pair(al)
        assert isinstance(tr, asyncio.Transport)
        assert tr.get_extra_info("peername") == server.sockname
        assert isinstance(tr.get_extra_info("handle"), int)
        sent = bytearray()
        for i, size in enumerate((1, 1000, 100000, 3 * 65536 + 7)):
            chunk = bytes((i + j) % 251 for j in range(size))
            tr.write(chunk)
            tr.write(bytearray(b"!"))  # a bytearray is sent as a snapshot
            tr.write(b"")
            sent += chunk + b"!"
        await cli.wait_for(len(sent))
        assert cli.data == sent
        assert tr.get_write_buffer_size() == 0
        tr.close()
        assert tr.is_closing()
        tr.write(b"ignored after close")
        assert await cli.lost is None
        assert await srv.lost is None  # the server side saw the end and closed
        assert srv.eof
        server.close()
        await server.wait_closed()
        assert not server.is_serving()
        assert al.ioq.pinned() == 0
        return True

    assert run(main)


def test_protocol_write_eof_half_close(run):
    async def main(al):
        server, tr, cli, srv = await _pair(al, echo=False, server_kwargs={"keep_open": True})
        tr.write(b"question")
        assert tr.can_write_eof()
        tr.write_eof()
        with pytest.raises(RuntimeError):
            tr.write(b"more")
        while not srv.eof:
            srv.more.clear()
            await srv.more.wait()
        assert srv.data == b"question"
        srv.transport.write(b"answer")  # the other direction still works
        srv.transport.close()
        await cli.wait_for(6)
        assert cli.data == b"answer"
        assert await srv.lost is None
        assert await cli.lost is None
        server.close()
        await server.wait_closed()
        return True

    assert run(main)


def test_protocol_pause_reading(run):
    async def main(al):
        server, tr, cli, srv = await _pair(al, echo=False)
        srv.transport.pause_reading()
        assert not srv.transport.is_reading()
        tr.write(b"a" * 1000)
        tr.write(b"b" * 1000)
        # Nothing may reach the paused protocol, however long we wait.
        for _ in range(20):
            await asyncio.sleep(0)
        assert srv.data == b""
        srv.transport.resume_reading()
        assert srv.transport.is_reading()
        await srv.wait_for(2000)
        assert srv.data == b"a" * 1000 + b"b" * 1000
        tr.write(b"c")
        await srv.wait_for(2001)
        tr.close()
        assert await srv.lost is None
        server.close()
        await server.wait_closed()
        assert al.ioq.pinned() == 0
        return True

    assert run(main)


def test_protocol_flow_control(run):
    async def main(al):
        server, tr, cli, srv = await _pair(al, echo=False)
        events = []
        cli.pause_writing = lambda: events.append("pause")
        cli.resume_writing = lambda: events.append("resume")
        tr.set_write_buffer_limits(high=1000, low=100)
        assert tr.get_write_buffer_limits() == (100, 1000)
        srv.transport.pause_reading()
        big = b"x" * (8 << 20)
        tr.write(big)
        assert events == ["pause"]
        assert tr.get_write_buffer_size() == len(big)
        assert al.ioq.pinned() >= 1  # the bytes object stays referenced until it is sent
        srv.transport.resume_reading()
        await srv.wait_for(len(big))
        while tr.get_write_buffer_size():
            await asyncio.sleep(0)
        assert events == ["pause", "resume"]
        assert al.ioq.pinned() == 0
        tr.abort()
        assert await cli.lost is None
        assert isinstance(await srv.lost, (type(None), ioq.Error))
        server.close()
        await server.wait_closed()
        return True

    assert run(main)


def test_protocol_error_in_callback_closes(run):
    async def main(al):
        errors = []
        asyncio.get_running_loop().set_exception_handler(lambda lp, ctx: errors.append(ctx))

        class Boom(Collect):
            def data_received(self, data):
                raise ValueError("boom")

        made = []

        def factory():
            made.append(Boom())
            return made[-1]

        server = await ioq.aio.create_server(factory, "127.0.0.1", 0)
        tr, cli = await ioq.aio.create_connection(Collect, *server.sockname)
        tr.write(b"hello")
        while not made:
            await asyncio.sleep(0)
        exc = await made[0].lost
        assert isinstance(exc, ValueError)
        assert errors and isinstance(errors[0]["exception"], ValueError)
        await cli.lost  # the server closed the connection
        server.close()
        await server.wait_closed()
        return True

    assert run(main)


def test_protocol_unix(run, tmp_path):
    async def main(al):
        path = str(tmp_path / "proto.sock")
        server = await ioq.aio.create_unix_server(lambda: Collect(echo=True), path)
        tr, cli = await ioq.aio.create_unix_connection(Collect, path)
        tr.write(b"over a local socket")
        await cli.wait_for(19)
        assert cli.data == b"over a local socket"
        tr.close()
        assert await cli.lost is None
        server.close()
        await server.wait_closed()
        return True

    assert run(main)


def test_protocol_transports_end_with_asyncloop(run):
    async def main(al):
        server, tr, cli, srv = await _pair(al)
        tr.write(b"x")
        await cli.wait_for(1)
        al.close()
        assert isinstance(await cli.lost, ioq.Error)
        assert isinstance(await srv.lost, ioq.Error)
        tr.write(b"after the loop closed")  # ignored, no crash
        return True

    assert run(main)


def test_protocol_connect_refused(run):
    async def main(al):
        lst = al.ioq.tcp_listen(("127.0.0.1", 0))
        port = al.ioq.sockname(lst)[1]
        await al.close_handle(lst)
        with pytest.raises(ConnectionRefusedError):
            await ioq.aio.create_connection(Collect, "127.0.0.1", port)
        return True

    assert run(main)


def test_protocol_callback_closes_asyncloop_mid_batch(run):
    """Closing the AsyncLoop from data_received() frees the ioq loop while completions of
    the same poll are still being handed out: they are dropped, nothing touches the loop."""
    async def main(al):
        seen = []

        class Closer(Collect):
            def data_received(self, data):
                seen.append(data)
                al.close()

        made = []

        def factory():
            made.append(Closer())
            return made[-1]

        server = await ioq.aio.create_server(factory, "127.0.0.1", 0)
        clients = [await ioq.aio.create_connection(Collect, *server.sockname)
                   for _ in range(4)]
        while len(made) < 4:
            await asyncio.sleep(0)
        for tr, _ in clients:
            tr.write(b"data")  # all four arrive in one poll, most likely
        while not al.closed:
            await asyncio.sleep(0)
        assert len(seen) == 1
        for p in made:
            assert isinstance(await p.lost, ioq.Error)
        return True

    assert run(main)


def test_protocol_eof_while_paused_keeps_order(run):
    async def main(al):
        server, tr, cli, srv = await _pair(al, echo=False)
        srv.transport.pause_reading()
        tr.write(b"first")
        tr.write(b"second")
        tr.close()
        assert await cli.lost is None
        for _ in range(20):
            await asyncio.sleep(0)
        assert srv.data == b"" and not srv.eof
        srv.transport.resume_reading()
        assert await srv.lost is None  # eof_received() returned False: the transport closed
        assert srv.data == b"firstsecond" and srv.eof
        server.close()
        await server.wait_closed()
        return True

    assert run(main)


def test_protocol_tiny_pool_keeps_every_byte_in_order(run, monkeypatch):
    """With one small pool buffer for every connection, receives keep running out of
    buffers (ENOBUFS ends them, the transport submits them again): no byte may be lost,
    duplicated or reordered."""
    monkeypatch.setattr(ioq.aio, "_POOL_COUNT", 1)
    monkeypatch.setattr(ioq.aio, "_POOL_SIZE", 7)

    async def main(al):
        server = await ioq.aio.create_server(lambda: Collect(echo=True), "127.0.0.1", 0)
        pairs = [await ioq.aio.create_connection(Collect, *server.sockname)
                 for _ in range(3)]
        payloads = []
        for i, (tr, _) in enumerate(pairs):
            payload = bytes((i * 7 + j) % 256 for j in range(5000))
            payloads.append(payload)
            for k in range(0, len(payload), 1000):
                tr.write(payload[k:k + 1000])
        for (tr, cli), payload in zip(pairs, payloads):
            await cli.wait_for(len(payload))
            assert cli.data == payload
            tr.close()
            assert await cli.lost is None
        server.close()
        await server.wait_closed()
        return True

    assert run(main)


def test_task_from_connection_made_runs_before_data_received(run):
    # asyncio's order: reading starts after connection_made(), so a task created there
    # takes its first step before data that came with the connection is handed out.
    async def main(al):
        order = []
        done = asyncio.get_running_loop().create_future()

        class P(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport

                async def first():
                    order.append("task")
                asyncio.get_running_loop().create_task(first())

            def data_received(self, data):
                order.append("data")
                if not done.done():
                    done.set_result(None)

        srv = await al.create_server(P, "127.0.0.1", 0)
        r, w = await asyncio.open_connection("127.0.0.1", srv.sockname[1])
        w.write(b"x" * 100)
        await asyncio.wait_for(done, 10)
        assert order[:2] == ["task", "data"]
        w.close()
        srv.close()
        return True

    assert run(main)
