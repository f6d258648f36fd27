"""Every operation of the ABI through ioq.Loop, with its errors."""
import os
import socket

import pytest

import ioq
from conftest import PATIENCE, pair, wait, wait1


def test_post_and_wake(loop):
    loop.post(7, 42)
    loop.post((1 << 64) - 1, -5)
    got = wait(loop, [7, (1 << 64) - 1])
    assert got[7].op == ioq.OP_POST and got[7].result == 42
    assert got[(1 << 64) - 1].result == -5
    loop.wake()
    assert loop.poll(timeout=5) == []
    loop.submit()
    with pytest.raises(ValueError):
        loop.post(-1)
    with pytest.raises(ValueError):
        loop.post(1 << 64)
    with pytest.raises(TypeError):
        loop.post("1")


def test_timeout_and_cancel(loop):
    start = loop.now()
    loop.timeout(0.01, 1)
    c = wait1(loop, 1)
    assert c.op == ioq.OP_TIMEOUT and c.result == 0 and c.ok and c.error is None
    assert loop.now() - start >= 10_000_000
    loop.timeout_ns(1, 2)
    assert wait1(loop, 2).ok
    loop.timeout(3600, 3)
    loop.timeout(3600, 3)
    loop.cancel(3, 4)
    got = wait(loop, [3, 4])
    assert got[4].op == ioq.OP_CANCEL and got[4].result == 2
    loop.cancel(12345, 5)
    assert wait1(loop, 5).result == 0
    with pytest.raises(ValueError):
        loop.timeout(-1, 1)
    with pytest.raises(ValueError):
        loop.timeout(float("inf"), 1)
    with pytest.raises(TypeError):
        loop.timeout("1", 1)


def test_timeout_at(loop):
    base = loop.now()
    loop.timeout_at(base + 20_000_000, 2)
    loop.timeout_at(base + 10_000_000, 1)
    got = []
    while len(got) < 2:
        for c in loop.poll(timeout=PATIENCE):
            assert c.op == ioq.OP_TIMEOUT and c.ok
            assert loop.now() >= base + c.token * 10_000_000
            got.append(c.token)
    assert got == [1, 2]
    # A deadline already past (0 too) completes at the next poll; same-deadline ties keep
    # submission order, across timeout_at and timeout_ns.
    loop.timeout_at(0, 3)
    loop.timeout_at(0, 4)
    assert [c.token for c in loop.poll(timeout=0)] == [3, 4]
    loop.timeout_at(loop.now() + 3600 * 10**9, 5)
    loop.timeout_at((1 << 64) - 1, 5)
    loop.cancel(5, 6)
    got = wait(loop, [5, 6])
    assert got[6].result == 2
    with pytest.raises(ValueError):
        loop.timeout_at(-1, 1)
    with pytest.raises(ValueError):
        loop.timeout_at(1 << 64, 1)
    with pytest.raises(TypeError):
        loop.timeout_at("1", 1)
    assert ioq._ioq.ioq_timeout_at(None, 0, 1) == ioq.EINVAL


def test_cancelled_completion_error(loop):
    loop.timeout(3600, 1)
    loop.cancel(1, 2)
    c = wait(loop, [1, 2])[1]
    assert c.result == ioq.ECANCELED and not c.ok
    assert isinstance(c.error, ioq.Error) and c.error.name == "ECANCELED"
    with pytest.raises(ioq.Error):
        c.check()


def test_tcp_echo_and_names(loop):
    srv, cli, lst = pair(loop)
    assert loop.peername(cli) == loop.sockname(lst)
    assert loop.sockname(cli) == loop.peername(srv)
    loop.setopt(cli, ioq.OPT_NODELAY, True)
    loop.setopt(cli, ioq.OPT_SNDBUF, 65536)
    buf = bytearray(16)
    loop.recv(srv, buf, 10)
    loop.send(cli, b"hello", 11)
    got = wait(loop, [10, 11])
    assert got[11].result == 5 and got[10].result == 5 and buf[:5] == b"hello"
    loop.sendv(cli, [b"ab", bytearray(b"cd"), memoryview(b"xef")[1:], b""], 12)
    out = bytearray(6)
    n = 0
    while n < 6:
        loop.recv(srv, memoryview(out)[n:], 13)
        got = wait(loop, [12, 13]) if n == 0 else wait(loop, [13])
        n += got[13].result
    assert out == b"abcdef"
    loop.shutdown(cli, 14)
    assert wait1(loop, 14).ok
    loop.recv(srv, buf, 15)
    assert wait1(loop, 15).result == 0  # end of stream
    for h in (srv, cli, lst):
        loop.close_handle(h, 16)
    wait(loop, [16])
    with pytest.raises(ioq.Error) as ei:
        loop.sockname(srv)
    assert ei.value.code == ioq.EBADHANDLE


def test_connect_refused(loop):
    # A bound socket that does not listen refuses connections, and nobody else can take
    # its port meanwhile (a closed listener's port could be reused by another process).
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        loop.connect(holder.getsockname(), 2)
        c = wait1(loop, 2)
    assert c.result == ioq.ECONNREFUSED
    assert isinstance(c.error, ConnectionRefusedError)


def test_send_to_closed_peer(loop):
    srv, cli, lst = pair(loop)
    loop.close_handle(srv, 1)
    wait1(loop, 1)
    data = b"x" * (1 << 20)
    for i in range(8):
        loop.send(cli, data, 10 + i)
    got = wait(loop, range(10, 18))
    errors = {c.result for c in got.values() if c.result < 0}
    assert errors and errors <= {ioq.EPIPE, ioq.ECONNRESET}


def test_listen_errors(loop):
    lst = loop.tcp_listen(("127.0.0.1", 0))
    with pytest.raises(ioq.Error) as ei:
        loop.tcp_listen(loop.sockname(lst))
    assert ei.value.code == ioq.EADDRINUSE and ei.value.errno is not None
    with pytest.raises(ValueError):
        loop.tcp_listen(("localhost", 0))
    with pytest.raises(TypeError):
        loop.tcp_listen(8080)
    with pytest.raises(ValueError):
        loop.tcp_listen(("127.0.0.1", 0), backlog=-1)
    a = loop.tcp_listen(("127.0.0.1", 0), reuseport=True)
    b = loop.tcp_listen(loop.sockname(a), reuseport=True)
    assert loop.sockname(a) == loop.sockname(b)
    v6 = loop.tcp_listen(("::1", 0), v6only=True)
    assert loop.sockname(v6)[0] == "::1"


def test_bad_handles(loop):
    buf = bytearray(4)
    for call in (lambda: loop.recv(12345, buf, 1), lambda: loop.send(0, b"x", 1),
                 lambda: loop.accept(99, 1), lambda: loop.close_handle(77, 1),
                 lambda: loop.shutdown(5, 1), lambda: loop.fsync(5, 1),
                 lambda: loop.read(5, buf, 0, 1), lambda: loop.write(5, b"x", 0, 1),
                 lambda: loop.sockname(5), lambda: loop.setopt(5, ioq.OPT_NODELAY, 1)):
        with pytest.raises(ioq.Error) as ei:
            call()
        assert ei.value.code in (ioq.EBADHANDLE, ioq.EINVAL)
    assert loop.pinned() == 0
    assert loop.poll(0) == []  # refused operations complete nothing


def test_bad_arguments(loop):
    srv, cli, _ = pair(loop)
    with pytest.raises(TypeError):
        loop.recv(srv, b"immutable", 1)
    with pytest.raises(TypeError):
        loop.recv(srv, "text", 1)
    with pytest.raises(TypeError):
        loop.send(cli, "text", 1)
    with pytest.raises(TypeError):
        loop.send(cli, None, 1)
    with pytest.raises(ioq.Error) as ei:
        loop.recv(srv, bytearray(), 1)
    assert ei.value.code == ioq.EINVAL
    with pytest.raises(ValueError):
        loop.recv(srv, bytearray(1), -1)
    with pytest.raises(ValueError):
        loop.recv(-srv, bytearray(1), 1)
    with pytest.raises(TypeError):
        loop.recv(srv, bytearray(1), 1.0)
    with pytest.raises(TypeError):
        loop.sendv(cli, b"abc", 1)
    with pytest.raises(TypeError):
        loop.sendv(cli, [b"a", 5], 1)
    with pytest.raises(TypeError):
        loop.sendv(cli, 5, 1)
    with pytest.raises(ValueError):
        loop.sendv(cli, [b"a"] * (ioq.MAX_IOV + 1), 1)
    with pytest.raises(ioq.Error):
        loop.setopt(cli, 9999, 1)
    with pytest.raises(ValueError):
        loop.open("/tmp/x\0y", "r", token=1)
    with pytest.raises(ValueError):
        loop.open("/tmp/x", "rw+", token=1)
    with pytest.raises(TypeError):
        loop.open(42.0, "r", token=1)
    assert loop.pinned() == 0
    assert loop.poll(0) == []


def test_shared_pinned_token(loop):
    srv, cli, _ = pair(loop)
    a, b = bytearray(4), bytearray(4)
    loop.recv(srv, a, 5)
    loop.recv(srv, b, 5)  # several operations may share a token, as in C
    loop.timeout(0, 5)  # one without a buffer leaves the pins alone
    assert loop.pinned() == 2
    loop.send(cli, b"abcdefgh", 6)
    got = []
    while loop.pinned():
        got += [c for c in loop.poll(timeout=5) if c.token == 5]
    assert sorted(c.op for c in got) == sorted([ioq.OP_RECV, ioq.OP_RECV, ioq.OP_TIMEOUT])
    assert sum(c.result for c in got if c.op == ioq.OP_RECV) == 8
    assert bytes(a + b) in (b"abcdefgh", b"efghabcd")


def test_multishot_accept(loop):
    lst = loop.tcp_listen(("127.0.0.1", 0))
    loop.accept(lst, 1, multishot=True)
    for i in range(3):
        loop.connect(loop.sockname(lst), 10 + i)
    accepted = []
    connected = set()
    deadline = loop.now() + int(PATIENCE * 1e9)
    while len(accepted) < 3 or len(connected) < 3:
        assert loop.now() < deadline, (accepted, connected)
        for c in loop.poll(timeout=5):
            if c.token == 1:
                assert c.ok and c.more
                accepted.append(c.value)
            elif c.token >= 10:
                assert c.ok
                connected.add(c.token)
    loop.cancel(1, 2)
    got = wait(loop, [1, 2])
    assert got[1].result == ioq.ECANCELED and not got[1].more


def test_udp(loop):
    a = loop.udp_bind(("127.0.0.1", 0))
    b = loop.udp_bind(("127.0.0.1", 0))
    loop.setopt(a, ioq.OPT_BROADCAST, 1)
    buf = bytearray(64)
    loop.recvfrom(b, buf, 1)
    loop.sendto(a, b"datagram", loop.sockname(b), 2)
    got = wait(loop, [1, 2])
    assert got[2].result == 8
    assert got[1].result == 8 and buf[:8] == b"datagram"
    assert got[1].addr == loop.sockname(a)
    loop.recvfrom(b, bytearray(4), 3)
    loop.sendto(a, b"truncated", "127.0.0.1:%d" % loop.sockname(b)[1], 4)
    got = wait(loop, [3, 4])
    assert got[3].result == 4
    loop.sendto(a, b"", loop.sockname(b), 5)
    assert wait1(loop, 5).result == 0
    with pytest.raises(TypeError):
        loop.sendto(a, b"x", None, 6)
    six = loop.udp_bind(("::1", 0))
    loop.recvfrom(six, buf, 7)
    loop.sendto(six, b"v6", loop.sockname(six), 8)
    got = wait(loop, [7, 8])
    assert got[7].addr[0] == "::1" and len(got[7].addr) == 4


def test_local_sockets(loop, tmp_path):
    path = tmp_path / "ioq.sock"
    lst = loop.local_listen(path)
    with pytest.raises(ioq.Error):
        loop.local_listen(str(path))
    lst2 = loop.local_listen(os.fsencode(path), unlink=True)
    loop.accept(lst2, 1)
    loop.local_connect(path, 2)
    got = wait(loop, [1, 2])
    srv, cli = got[1].value, got[2].value
    with pytest.raises(ioq.Error) as ei:
        loop.sockname(srv)
    assert ei.value.code == ioq.ENOTSUP
    buf = bytearray(8)
    loop.recv(srv, buf, 3)
    loop.send(cli, b"unix", 4)
    assert wait(loop, [3, 4])[3].result == 4 and buf[:4] == b"unix"
    loop.local_connect(tmp_path / "missing.sock", 5)
    assert wait1(loop, 5).result in (ioq.ENOENT, ioq.ECONNREFUSED)
    with pytest.raises(ioq.Error) as ei:
        loop.local_listen("/" + "x" * 300)
    assert ei.value.code == ioq.ENAMETOOLONG
    for h in (srv, cli, lst, lst2):
        loop.close_handle(h, 9)
    wait(loop, [9])


def test_files(loop, tmp_path):
    path = tmp_path / "data.bin"
    loop.open(path, "w", 0o600, token=1)
    c = wait1(loop, 1)
    assert c.ok and c.op == ioq.OP_OPEN
    f = c.handle
    loop.write(f, b"hello world", 0, 2)
    assert wait1(loop, 2).result == 11
    loop.write(f, memoryview(b"HELLO"), 0, 3)
    assert wait1(loop, 3).result == 5
    loop.fsync(f, 4)
    assert wait1(loop, 4).ok
    loop.close_handle(f, 5)
    wait1(loop, 5)
    assert path.read_bytes() == b"HELLO world"
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    loop.open(str(path), "r", token=6)
    f = wait1(loop, 6).handle
    buf = bytearray(32)
    loop.read(f, buf, 6, 7)
    assert wait1(loop, 7).result == 5 and buf[:5] == b"world"
    loop.read(f, buf, 100, 8)
    assert wait1(loop, 8).result == 0
    loop.open(tmp_path / "missing", "r", token=9)
    c = wait1(loop, 9)
    assert c.result == ioq.ENOENT and isinstance(c.error, FileNotFoundError)
    loop.open(path, "x", token=10)
    assert wait1(loop, 10).result == ioq.EEXIST
    loop.open(tmp_path, "w", token=11)
    assert wait1(loop, 11).result == ioq.EISDIR
    loop.open(path, ioq.OPEN_READ | ioq.OPEN_APPEND | ioq.OPEN_WRITE, token=12)
    g = wait1(loop, 12).handle
    loop.close_handle(g, 13)
    loop.close_handle(f, 14)
    wait(loop, [13, 14])
    with pytest.raises(ioq.Error):
        loop.open(path, 0, token=15)


def test_resolve(loop):
    loop.resolve("127.0.0.1", 80, 1, flags=ioq.RESOLVE_NUMERIC)
    c = wait1(loop, 1)
    assert c.ok and c.result == 1 and c.addrs == [("127.0.0.1", 80)]
    loop.resolve("localhost", "8080", 2, family=4)
    c = wait1(loop, 2)
    assert c.ok and ("127.0.0.1", 8080) in c.addrs
    loop.resolve("::1", None, 3, flags=ioq.RESOLVE_NUMERIC, max=1)
    c = wait1(loop, 3)
    assert c.result == 1 and c.addrs[0][0] == "::1"
    loop.resolve("no-such-host.invalid", "80", 4)
    c = wait1(loop, 4)
    assert c.result in (ioq.ENOTFOUND, ioq.EAGAIN) and c.addrs == []
    with pytest.raises(ioq.Error):
        loop.resolve(None, None, 5)
    with pytest.raises(ValueError):
        loop.resolve("localhost", 80, 6, max=100000)
    with pytest.raises(TypeError):
        loop.resolve(5, 80, 7)
    with pytest.raises(ValueError):
        loop.resolve("local\0host", 80, 8)
    with pytest.raises(ValueError):
        loop.resolve("localhost", 80, 9, family=5)


def test_pools(loop):
    srv, cli, _ = pair(loop)
    pool = loop.pool_new(4, 64)
    loop.recv_pool(srv, pool, 1)
    loop.send(cli, b"pooled", 2)
    c = wait(loop, [1, 2])[1]
    assert c.ok and c.result == 6 and c.buffer and c.op == ioq.OP_RECV_POOL
    assert loop.pool_read(pool, c.value, c.result) == b"pooled"
    loop.buf_release(pool, c.value)
    with pytest.raises(ioq.Error):
        loop.buf_release(pool, c.value)
    with pytest.raises(ValueError):
        loop.pool_read(pool, 0, 65)
    with pytest.raises(ioq.Error):
        loop.pool_read(12345, 0, 1)
    loop.recv_pool(srv, pool, 3, multishot=True)
    loop.send(cli, b"one", 4)
    seen, sent = b"", False
    deadline = loop.now() + int(PATIENCE * 1e9)
    while seen != b"one" or not sent:
        assert loop.now() < deadline, (seen, sent)
        for c in loop.poll(timeout=1):
            if c.token == 3:
                assert c.more and c.buffer
                seen += loop.pool_read(pool, c.value, c.result)
                loop.buf_release(pool, c.value)
            elif c.token == 4:
                sent = True
    loop.cancel(3, 5)
    assert wait(loop, [3, 5])[3].result == ioq.ECANCELED
    for bad in ((0, 64), (4, 0), (1 << 20, 1 << 20)):
        with pytest.raises(ioq.Error):
            loop.pool_new(*bad)
    loop.close_handle(pool, 6)
    assert wait1(loop, 6).ok


def test_adopt_and_os_handle(loop):
    a, b = socket.socketpair()
    h = loop.adopt(a.detach(), ioq.KIND_LOCAL)
    fd = loop.os_handle(h)
    assert fd >= 0
    buf = bytearray(8)
    loop.recv(h, buf, 1)
    b.send(b"adopted")
    assert wait1(loop, 1).result == 7 and buf[:7] == b"adopted"
    loop.send(h, b"back", 2)
    wait1(loop, 2)
    assert b.recv(10) == b"back"
    b.close()
    loop.close_handle(h, 3)
    wait1(loop, 3)
    with pytest.raises(ValueError):
        loop.adopt(-1, ioq.KIND_TCP)
    with pytest.raises(TypeError):
        loop.adopt("3", ioq.KIND_TCP)
    r, w = os.pipe()
    os.close(w)
    with pytest.raises(ioq.Error):
        loop.adopt(r, 99)
    os.close(r)
