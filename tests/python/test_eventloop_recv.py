"""Receives of ioq.aio.EventLoop's socket transports: a BufferedProtocol's own buffer filled
by ioq (no copy) with asyncio's semantics, and large reads into the transport's buffer."""
import asyncio
import os
import socket

import pytest

import ioq.aio
from conftest import event_loop_of, run_aio


@pytest.fixture
def loop(backend):
    yield from event_loop_of(backend)


run = run_aio


async def pair(lp, factory):
    """A transport of ioq's loop with protocol factory(), connected to a plain socket."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.setblocking(False)
    tr, proto = await lp.create_connection(factory, *lsock.getsockname())
    peer, _ = await lp.sock_accept(lsock)
    lsock.close()
    return tr, proto, peer


class Collect(asyncio.BufferedProtocol):
    """Hands out buf (a bytearray, or what make_buf gives) and collects what arrives in it."""

    def __init__(self, size=4096, want=None):
        self.size = size
        self.buf = None
        self.data = bytearray()
        self.want = want
        self.calls = []
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        self.calls.append("get_buffer")
        self.buf = bytearray(self.size)
        return self.buf

    def buffer_updated(self, nbytes):
        self.calls.append(nbytes)
        self.data += self.buf[:nbytes]
        if self.want is not None and len(self.data) >= self.want and not self.done.done():
            self.done.set_result(bytes(self.data))

    def eof_received(self):
        self.calls.append("eof")

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


def test_buffer_filled_in_place_and_held_while_receiving(loop):
    async def main():
        lp = asyncio.get_running_loop()
        held = []

        class P(Collect):
            def get_buffer(self, sizehint):
                buf = super().get_buffer(sizehint)
                # ioq receives into this very bytearray: it is exported (cannot be resized)
                # until the receive completes
                lp.call_soon(self.check, buf)
                return buf

            def check(self, buf):
                try:
                    buf.append(0)
                    held.append(False)
                except BufferError:
                    held.append(True)

        tr, proto, peer = await pair(lp, lambda: P(4096, want=5))
        await asyncio.sleep(0.01)
        peer.sendall(b"hello")
        assert await proto.done == b"hello"
        # partial fill: 5 bytes into a 4096-byte buffer, then the next buffer is asked for
        assert proto.calls[:3] == ["get_buffer", 5, "get_buffer"]
        assert held and all(held)
        tr.close()
        await proto.lost
        peer.close()

    run(loop, main())


def test_small_buffer_gets_every_byte_in_order(loop):
    async def main():
        lp = asyncio.get_running_loop()
        payload = os.urandom(200000)
        tr, proto, peer = await pair(lp, lambda: Collect(7, want=len(payload)))
        peer.setblocking(False)
        await lp.sock_sendall(peer, payload)
        assert await proto.done == payload
        assert all(n == "get_buffer" or 0 < n <= 7 for n in proto.calls)
        tr.close()
        peer.close()

    run(loop, main())


def test_pause_reading_mid_stream(loop):
    async def main():
        lp = asyncio.get_running_loop()
        payload = os.urandom(300000)
        paused = []

        class P(Collect):
            def buffer_updated(self, nbytes):
                assert not paused, "buffer_updated() while reading is paused"
                super().buffer_updated(nbytes)
                if len(self.data) < self.want:
                    paused.append(True)
                    self.transport.pause_reading()
                    assert not self.transport.is_reading()
                    lp.call_later(0.001, self.resume)

            def resume(self):
                paused.clear()
                self.transport.resume_reading()

        tr, proto, peer = await pair(lp, lambda: P(65536, want=len(payload)))
        peer.setblocking(False)
        await lp.sock_sendall(peer, payload)
        assert await proto.done == payload
        tr.close()
        peer.close()

    run(loop, main())


def test_close_while_receiving_into_the_buffer(loop):
    async def main():
        lp = asyncio.get_running_loop()
        tr, proto, peer = await pair(lp, lambda: Collect(1024))
        for _ in range(100):
            if proto.calls:
                break
            await asyncio.sleep(0.001)
        assert proto.calls == ["get_buffer"]  # a receive into proto.buf is in flight
        buf = proto.buf
        tr.close()
        assert await proto.lost is None
        peer.sendall(b"late")
        await asyncio.sleep(0.05)
        assert proto.calls == ["get_buffer"]  # no buffer_updated() after close()
        buf.append(0)  # the receive is over: ioq let the buffer go
        peer.close()

    run(loop, main())


def test_exception_in_buffer_updated_ends_the_connection(loop):
    async def main():
        lp = asyncio.get_running_loop()
        errors = []
        lp.set_exception_handler(lambda lp, ctx: errors.append(ctx))

        class P(Collect):
            def buffer_updated(self, nbytes):
                super().buffer_updated(nbytes)
                raise ValueError("boom")

        tr, proto, peer = await pair(lp, P)
        peer.sendall(b"x")
        exc = await proto.lost
        assert isinstance(exc, ValueError)
        assert proto.calls == ["get_buffer", 1]
        assert errors and "buffer_updated() call failed" in errors[0]["message"]
        peer.close()

    run(loop, main())


@pytest.mark.parametrize("bad", ["raises", "empty"])
def test_get_buffer_failure_ends_the_connection(loop, bad):
    async def main():
        lp = asyncio.get_running_loop()
        errors = []
        lp.set_exception_handler(lambda lp, ctx: errors.append(ctx))

        class P(Collect):
            def get_buffer(self, sizehint):
                if bad == "raises":
                    raise ValueError("no buffer")
                return bytearray()

        tr, proto, peer = await pair(lp, P)
        exc = await proto.lost
        assert isinstance(exc, ValueError if bad == "raises" else RuntimeError)
        assert errors and "get_buffer() call failed" in errors[0]["message"]
        peer.close()

    run(loop, main())


def test_eof_after_data(loop):
    async def main():
        tr, proto, peer = await pair(asyncio.get_running_loop(), Collect)
        peer.sendall(b"abc")
        peer.shutdown(socket.SHUT_WR)
        assert await proto.lost is None
        assert bytes(proto.data) == b"abc"
        assert proto.calls[-2:] == ["get_buffer", "eof"]
        peer.close()

    run(loop, main())


def test_large_reads_then_small_ones(loop):
    # Chunks of 64 KiB or more turn a transport to receives into its own buffer; small ones
    # turn it back to the pool. Every byte arrives either way.
    async def main():
        lp = asyncio.get_running_loop()
        got = bytearray()
        modes = set()

        class P(asyncio.Protocol):
            def connection_made(self, transport):
                self.t = transport

            def data_received(self, data):
                assert type(data) is bytes
                got.extend(data)
                modes.add(self.t._direct)

        tr, proto, peer = await pair(lp, P)
        peer.setblocking(False)
        sent = bytearray()
        for size in (300000, 200000, 10, 20, 30000, 5):
            chunk = os.urandom(size)
            sent += chunk
            await lp.sock_sendall(peer, chunk)
            while len(got) < len(sent):
                await asyncio.sleep(0.001)
        assert bytes(got) == bytes(sent)
        assert modes == {False, True}
        tr.close()
        peer.close()

    run(loop, main())


def test_pause_while_a_receive_into_the_buffer_has_data(loop):
    # pause_reading() right after get_buffer(), with the data already there: the receive
    # completes (or is cancelled) while paused; what it brought waits for resume_reading().
    async def main():
        lp = asyncio.get_running_loop()
        paused = []

        class P(Collect):
            def get_buffer(self, sizehint):
                buf = super().get_buffer(sizehint)
                if self.data == b"one" and not paused:
                    lp.call_soon(self.pause)
                return buf

            def pause(self):
                paused.append(True)
                self.transport.pause_reading()
                lp.call_later(0.05, self.resume)

            def resume(self):
                paused.clear()
                self.transport.resume_reading()

            def buffer_updated(self, nbytes):
                assert not paused, "buffer_updated() while reading is paused"
                super().buffer_updated(nbytes)
                if self.data == b"one":
                    peer.sendall(b"two")

        tr, proto, peer = await pair(lp, lambda: P(64, want=6))
        peer.sendall(b"one")
        assert await proto.done == b"onetwo"
        tr.close()
        peer.close()

    run(loop, main())
