"""asyncio integration: awaitables, streams, cancellation; default loop and uvloop."""
import asyncio
import socket

import pytest

import ioq
import ioq.aio
from conftest import PATIENCE


def _uvloop_factory():
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


FLAVOURS = ["asyncio", "uvloop", "ioq"]


@pytest.fixture(params=FLAVOURS)
def run(request, backend, monkeypatch):
    """run(coro_fn) runs coro_fn(aio) on a fresh event loop of the flavour with an
    AsyncLoop of the backend, and closes both."""
    if request.param == "uvloop":
        factory = _uvloop_factory()
        if factory is None:
            pytest.skip("uvloop is not installed")
    elif request.param == "ioq":
        factory = ioq.aio.new_event_loop  # IOQ_BACKEND picks its backend
    else:
        factory = asyncio.new_event_loop
    monkeypatch.setenv("IOQ_BACKEND", backend)

    def runner(fn):
        aloop = factory()
        try:
            async def main():
                al = ioq.aio.get_loop()
                assert al.ioq.backend == backend
                try:
                    return await asyncio.wait_for(fn(al), PATIENCE)
                finally:
                    al.close()
            return aloop.run_until_complete(main())
        finally:
            aloop.close()
    return runner


def resizable(buf):
    try:
        buf.append(0)
        buf.pop()
        return True
    except BufferError:
        return False


def test_echo_streams(run):
    async def main(al):
        async def handle(reader, writer):
            while True:
                line = await reader.readline()
                if not line:
                    break
                writer.write(line.upper())
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await ioq.aio.start_server(handle, "127.0.0.1", 0)
        host, port = server.sockname
        reader, writer = await ioq.aio.open_connection(host, port)
        assert writer.get_extra_info("peername") == (host, port)
        for word in (b"hello\n", b"ioq\n", b"x" * 100000 + b"\n"):
            writer.write(word)
            await writer.drain()
            assert await reader.readexactly(len(word)) == word.upper()
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return True

    assert run(main)


def test_raw_awaitables(run, tmp_path):
    async def main(al):
        lst = al.ioq.tcp_listen(("127.0.0.1", 0))
        acc = asyncio.ensure_future(al.accept(lst))
        cli = await al.connect(("localhost", al.ioq.sockname(lst)[1]))
        srv = await acc
        assert await al.send(cli, b"ping") == 4
        assert await al.recv(srv, 100) == b"ping"
        buf = bytearray(10)
        await ioq.aio.send(srv, memoryview(b"pong"))
        n = await ioq.aio.recv_into(cli, buf)
        assert buf[:n] == b"pong"
        await al.sendv(cli, [b"a", b"b"])
        assert await al.recv(srv, 2) in (b"ab", b"a")
        await al.shutdown(cli)
        while await al.recv(srv, 10):
            pass
        await al.close_handle(srv)
        await al.close_handle(cli)
        await al.close_handle(lst)
        with socket.socket() as holder, pytest.raises(ConnectionRefusedError):
            holder.bind(("127.0.0.1", 0))  # bound, not listening: refuses connections
            await al.connect(holder.getsockname())

        u1 = al.ioq.udp_bind(("127.0.0.1", 0))
        u2 = al.ioq.udp_bind(("127.0.0.1", 0))
        rf = asyncio.ensure_future(ioq.aio.recvfrom(u2, 100))
        await asyncio.sleep(0)
        await ioq.aio.sendto(u1, b"dgram", al.ioq.sockname(u2))
        assert await rf == (b"dgram", al.ioq.sockname(u1))

        path = tmp_path / "file.txt"
        f = await ioq.aio.open(path, "w")
        assert await ioq.aio.write(f, b"file data") == 9
        await ioq.aio.fsync(f)
        await ioq.aio.close(f)
        f = await ioq.aio.open(path)
        assert await ioq.aio.read(f, 100) == b"file data"
        assert await ioq.aio.read(f, 4, offset=5) == b"data"
        await ioq.aio.close(f)
        with pytest.raises(FileNotFoundError):
            await ioq.aio.open(tmp_path / "missing")

        t0 = al.ioq.now()
        await ioq.aio.sleep(0.01)
        assert al.ioq.now() - t0 >= 10_000_000
        addrs = await ioq.aio.resolve("localhost", 80, family=4)
        assert ("127.0.0.1", 80) in addrs
        with pytest.raises(ioq.Error):
            await ioq.aio.resolve("no-such-host.invalid", 80)
        with pytest.raises(ioq.Error):
            await ioq.aio.recv(123456, 10)
        with pytest.raises(TypeError):
            await ioq.aio.recv_into(cli, b"immutable")
        assert al.ioq.pinned() == 0
        return True

    assert run(main)


def test_unix_streams(run, tmp_path):
    async def main(al):
        async def handle(reader, writer):
            writer.write(await reader.readexactly(5))
            await writer.drain()
            writer.close()

        path = str(tmp_path / "s.sock")
        server = await ioq.aio.start_unix_server(handle, path)
        reader, writer = await ioq.aio.open_unix_connection(path)
        writer.write(b"12345")
        assert await reader.readexactly(5) == b"12345"
        with pytest.raises(asyncio.IncompleteReadError):
            await reader.readexactly(1)
        writer.close()
        await writer.wait_closed()
        async with server:
            pass
        return True

    assert run(main)


def test_cancel_keeps_buffer_pinned_until_final_completion(run):
    async def main(al):
        lst = al.ioq.tcp_listen(("127.0.0.1", 0))
        acc = asyncio.ensure_future(al.accept(lst))
        cli = await al.connect(al.ioq.sockname(lst))
        srv = await acc
        buf = bytearray(16)
        task = asyncio.ensure_future(al.recv_into(srv, buf))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not resizable(buf) and al.ioq.pinned() == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The ioq operation was only asked to stop: the kernel may still own the buffer
        # until the final completion has been polled.
        while al.ioq.pinned():
            await ioq.aio.sleep(0.001)
        assert resizable(buf)
        # The connection still works afterwards.
        await al.send(cli, b"after")
        assert await al.recv(srv, 16) == b"after"

        sleeper = asyncio.ensure_future(ioq.aio.sleep(3600))
        await asyncio.sleep(0)
        sleeper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeper

        # An accept cancelled after its connection arrived must not leak the handle.
        acc = asyncio.ensure_future(al.accept(lst))
        await asyncio.sleep(0)
        acc.cancel()
        with pytest.raises(asyncio.CancelledError):
            await acc
        await ioq.aio.sleep(0.001)
        assert not al._waiters
        return True

    assert run(main)


def test_wait_for_timeout_cancels(run):
    async def main(al):
        u = al.ioq.udp_bind(("127.0.0.1", 0))
        buf = bytearray(8)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(al.recvfrom_into(u, buf), 0.01)
        while al.ioq.pinned():
            await ioq.aio.sleep(0.001)
        assert resizable(buf)
        return True

    assert run(main)


def test_close_asyncloop_fails_pending(run):
    async def main(al):
        u = al.ioq.udp_bind(("127.0.0.1", 0))
        buf = bytearray(8)
        task = asyncio.ensure_future(al.recvfrom_into(u, buf))
        await asyncio.sleep(0)
        al.close()
        with pytest.raises(ioq.Error) as ei:
            await task
        assert ei.value.code == ioq.ECANCELED
        if isinstance(asyncio.get_running_loop(), ioq.aio.EventLoop):
            # The ioq loop is the event loop's and lives on: the buffer is let go when the
            # cancelled receive's final completion comes, at the loop's next poll.
            await asyncio.sleep(0.01)
        assert resizable(buf)
        with pytest.raises(ValueError):
            await al.sleep(0)
        return True

    assert run(main)
