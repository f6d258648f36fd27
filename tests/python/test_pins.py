"""Buffers are held (not copied) while an operation is in flight, and released after."""
import array
import gc
import mmap
import os
import sys
import weakref

import pytest

import ioq
from conftest import pair, wait, wait1


def resizable(buf):
    try:
        buf.append(0)
        buf.pop()
        return True
    except BufferError:
        return False


def test_pin_until_final_completion(loop):
    srv, cli, _ = pair(loop)
    buf = bytearray(8)
    base = sys.getrefcount(buf)
    loop.recv(srv, buf, 1)
    assert sys.getrefcount(buf) == base + 1
    assert not resizable(buf)
    assert loop.pinned() == 1
    loop.send(cli, b"12345678", 2)
    got = wait(loop, [1, 2])
    assert got[1].result == 8 and buf == b"12345678"
    assert sys.getrefcount(buf) == base
    assert resizable(buf)
    assert loop.pinned() == 0


def poll_token(loop, token):
    """Poll one completion at a time until the next final completion of token."""
    while True:
        for c in loop.poll(timeout=5, max=1):
            if c.token == token and not c.more:
                return c


def test_shared_token_sends_pinned_until_last_final_completion(loop):
    srv, cli, _ = pair(loop)
    a, b = bytearray(b"abcd"), bytearray(b"efgh")
    base = sys.getrefcount(a), sys.getrefcount(b)
    loop.send(cli, a, 7)
    loop.send(cli, b, 7)
    assert loop.pinned() == 2
    assert not resizable(a) and not resizable(b)
    first = poll_token(loop, 7)
    assert first.op == ioq.OP_SEND and first.result == 4
    # ioq cannot say which send that was: both buffers stay held until the last one.
    assert loop.pinned() == 2
    assert not resizable(a) and not resizable(b)
    second = poll_token(loop, 7)
    assert second.op == ioq.OP_SEND and second.result == 4
    assert loop.pinned() == 0
    assert resizable(a) and resizable(b)
    assert (sys.getrefcount(a), sys.getrefcount(b)) == base
    got = bytearray(8)
    loop.recv(srv, got, 8)
    n = wait1(loop, 8).result
    while n < 8:
        more = bytearray(8 - n)
        loop.recv(srv, more, 9)
        k = wait1(loop, 9).result
        got[n:n + k] = more[:k]
        n += k
    assert bytes(got) == b"abcdefgh"


def test_shared_token_pins_survive_gc(loop):
    srv, cli, _ = pair(loop)
    a, b = array.array("b", b"abcd"), array.array("b", b"efgh")
    ra, rb = weakref.ref(a), weakref.ref(b)
    loop.send(cli, a, 7)
    loop.send(cli, b, 7)
    del a, b
    for _ in range(3):
        gc.collect()
        junk = [bytearray(1024) for _ in range(1000)]  # pressure: reuse of freed memory
        del junk
    assert ra() is not None and rb() is not None
    poll_token(loop, 7)
    gc.collect()
    assert ra() is not None and rb() is not None
    assert loop.pinned() == 2
    poll_token(loop, 7)
    gc.collect()
    assert ra() is None and rb() is None
    assert loop.pinned() == 0


def test_shared_token_released_on_loop_close(backend):
    lp = ioq.Loop(backend)
    srv, cli, _ = pair(lp)
    bufs = [bytearray(4) for _ in range(3)]
    for buf in bufs:
        lp.recv(srv, buf, 11)
    assert lp.pinned() == 3 and not any(resizable(b) for b in bufs)
    lp.close()
    assert all(resizable(b) for b in bufs)


def test_buffer_kinds_in_place(loop, tmp_path):
    srv, cli, _ = pair(loop)
    targets = [bytearray(4), memoryview(bytearray(8))[2:6], array.array("b", [0] * 4),
               mmap.mmap(-1, 4)]
    try:
        import numpy
        targets.append(numpy.zeros(4, dtype=numpy.uint8))
    except ImportError:
        pass
    for i, target in enumerate(targets):
        loop.recv(srv, target, 10 + i)
        loop.send(cli, memoryview(b"abcd"), 100 + i)
        got = wait(loop, [10 + i, 100 + i])
        assert got[10 + i].result == 4
        assert bytes(target) == b"abcd", type(target)
    assert loop.pinned() == 0
    targets[3].close()  # an mmap with exports would refuse to close
    with pytest.raises(ValueError):
        loop.recv(srv, memoryview(bytearray(8))[::2], 50)  # not contiguous


def test_pin_released_when_refused(loop):
    buf = bytearray(8)
    data = b"payload-for-a-bad-handle"
    base_buf, base_data = sys.getrefcount(buf), sys.getrefcount(data)
    with pytest.raises(ioq.Error):
        loop.recv(4242, buf, 1)
    with pytest.raises(ioq.Error):
        loop.send(4242, data, 1)
    with pytest.raises(ioq.Error):
        loop.write(4242, data, 0, 1)
    with pytest.raises(ioq.Error):
        loop.sendv(4242, [data, buf], 1)
    with pytest.raises(ValueError):
        loop.recv(4242, buf, -1)
    assert sys.getrefcount(buf) == base_buf and sys.getrefcount(data) == base_data
    assert resizable(buf) and loop.pinned() == 0


def test_pin_released_on_cancel_and_close(loop):
    srv, cli, _ = pair(loop)
    bufs = [bytearray(16) for _ in range(4)]
    base = [sys.getrefcount(b) for b in bufs]
    for i, b in enumerate(bufs[:2]):
        loop.recv(srv, b, 10 + i)
    del b
    loop.cancel(10, 1)
    got = wait(loop, [10, 1])
    assert got[10].result == ioq.ECANCELED
    assert resizable(bufs[0]) and not resizable(bufs[1])
    loop.close_handle(srv, 2)
    got = wait(loop, [11, 2])
    assert got[11].result == ioq.ECANCELED
    assert [sys.getrefcount(b) for b in bufs] == base
    assert all(resizable(b) for b in bufs)


def test_sendv_pins_every_buffer(loop):
    srv, cli, _ = pair(loop)
    parts = [bytearray(b"a" * 10), bytearray(b"b" * 10)]
    base = [sys.getrefcount(p) for p in parts]
    loop.sendv(cli, parts, 1)
    assert not any(resizable(p) for p in parts)
    wait1(loop, 1)
    assert [sys.getrefcount(p) for p in parts] == base and all(resizable(p) for p in parts)


def test_recvfrom_and_file_pins(loop, tmp_path):
    u = loop.udp_bind(("127.0.0.1", 0))
    buf = bytearray(8)
    base = sys.getrefcount(buf)
    loop.recvfrom(u, buf, 1)
    assert not resizable(buf)
    loop.close_handle(u, 2)
    wait(loop, [1, 2])
    assert resizable(buf) and sys.getrefcount(buf) == base
    loop.open(tmp_path / "f", "w+", token=3)
    f = wait1(loop, 3).handle
    data = bytearray(b"x" * 4096)
    loop.write(f, data, 0, 4)
    loop.read(f, buf, 0, 5)
    wait(loop, [4, 5])
    assert resizable(data) and resizable(buf) and loop.pinned() == 0


def test_close_loop_with_1000_pending(backend, tmp_path):
    fds_before = len(os.listdir("/proc/self/fd"))
    loop = ioq.Loop(backend)
    srv, cli, lst = pair(loop)
    u = loop.udp_bind(("127.0.0.1", 0))
    bufs = [bytearray(64) for _ in range(1000)]
    base = [sys.getrefcount(b) for b in bufs]
    for i, b in enumerate(bufs):
        if i % 3 == 0:
            loop.recv(srv, b, i + 1)
        elif i % 3 == 1:
            loop.recvfrom(u, b, i + 1)
        else:
            loop.timeout(3600, i + 1)
    del b
    loop.resolve("127.0.0.1", 80, 5000, flags=ioq.RESOLVE_NUMERIC)
    loop.submit()
    assert loop.pinned() >= 667
    assert not resizable(bufs[0])
    loop.close()
    gc.collect()
    assert [sys.getrefcount(b) for b in bufs] == base
    assert all(resizable(b) for b in bufs)
    assert len(os.listdir("/proc/self/fd")) == fds_before


def test_loop_garbage_collected_releases(backend):
    buf = bytearray(8)
    base = sys.getrefcount(buf)
    loop = ioq.Loop(backend)
    srv, _, _ = pair(loop)
    loop.recv(srv, buf, 1)
    del loop
    gc.collect()
    assert sys.getrefcount(buf) == base and resizable(buf)


def test_repeated_ops_do_not_grow_memory(loop):
    import tracemalloc
    srv, cli, _ = pair(loop)
    buf = bytearray(64)

    def round_trip(i):
        loop.recv(srv, buf, 2 * i + 10)
        loop.send(cli, b"x" * 64, 2 * i + 11)
        wait(loop, [2 * i + 10, 2 * i + 11])

    for i in range(200):
        round_trip(i)
    tracemalloc.start()
    snap1 = tracemalloc.take_snapshot()
    for i in range(2000):
        round_trip(i)
    snap2 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in snap2.compare_to(snap1, "filename"))
    assert grown < 64 * 1024, grown
