import errno
import os

import pytest

import ioq
from conftest import BACKENDS


def test_version():
    assert ioq.version() == ioq.VERSION_NUMBER
    assert ioq.version_string() == ioq.VERSION_STRING == ioq.__version__


def test_constants():
    assert ioq.EINVAL == -1 and ioq.EUNKNOWN == -99
    assert ioq.OP_RECV == 5 and ioq.CQE_MORE == 1 and ioq.MULTISHOT == 1
    assert ioq.OP_NAMES[ioq.OP_RESOLVE] == "resolve"


def test_strerror_errname():
    assert ioq.errname(ioq.ECONNREFUSED) == "ECONNREFUSED"
    assert ioq.errname(0) == "OK"
    assert ioq.errname(-12345) == "UNKNOWN"
    assert isinstance(ioq.strerror(ioq.EPIPE), str) and ioq.strerror(ioq.EPIPE)
    with pytest.raises(TypeError):
        ioq.strerror("x")
    with pytest.raises(ValueError):
        ioq.errname(1 << 70)


def test_error_classes():
    e = ioq.error(ioq.ECONNREFUSED)
    assert isinstance(e, ioq.Error) and isinstance(e, ConnectionRefusedError)
    assert isinstance(e, OSError)
    assert e.code == ioq.ECONNREFUSED and e.name == "ECONNREFUSED"
    assert e.errno == errno.ECONNREFUSED
    assert isinstance(ioq.error(ioq.ENOENT), FileNotFoundError)
    assert isinstance(ioq.error(ioq.EPIPE), BrokenPipeError)
    c = ioq.error(ioq.ECANCELED)
    assert type(c) is ioq.Error and c.errno == errno.ECANCELED
    u = ioq.error(ioq.ENOTFOUND)
    assert u.errno is None and u.name == "ENOTFOUND"
    assert "ENOTFOUND" in str(u)


def test_addr_parse_format():
    assert ioq.addr_parse("127.0.0.1:80") == ("127.0.0.1", 80)
    assert ioq.addr_parse("[::1]:8080") == ("::1", 8080, 0, 0)
    assert ioq.addr_parse("10.0.0.1") == ("10.0.0.1", 0)
    assert ioq.addr_format(("127.0.0.1", 8080)) == "127.0.0.1:8080"
    assert ioq.addr_format(("::1", 80, 0, 0)) == "[::1]:80"
    assert ioq.addr_format("1.2.3.4:5") == "1.2.3.4:5"
    for bad in ("nonsense", "1.2.3.4:99999", "", "1.2.3.4\0:80"):
        with pytest.raises((ValueError, ioq.Error)):
            ioq.addr_parse(bad)
    with pytest.raises(TypeError):
        ioq.addr_parse(b"1.2.3.4")
    for bad in (("localhost", 80), ("1.2.3.4", 70000), ("1.2.3.4", -1), ("1.2.3.4",)):
        with pytest.raises(ValueError if len(bad) == 2 else TypeError):
            ioq.addr_format(bad)
    with pytest.raises(TypeError):
        ioq.addr_format(("1.2.3.4", "80"))
    with pytest.raises(TypeError):
        ioq.addr_format(None)


def test_loop_default_and_forced(backend):
    with ioq.Loop() as lp:
        assert lp.backend in BACKENDS
    with ioq.Loop(backend) as lp:
        assert lp.backend == backend
        assert lp.fileno() >= 0
        assert lp.caps & ioq.CAP_LOOP_FD
        assert lp.now() > 0
        assert "backend=" + backend in repr(lp)


def test_loop_env_backend(monkeypatch, backend):
    monkeypatch.setenv("IOQ_BACKEND", backend)
    with ioq.Loop() as lp:
        assert lp.backend == backend


def test_loop_bad_backend():
    with pytest.raises(ValueError):
        ioq.Loop("nonsense")
    with pytest.raises(ioq.Error) as ei:
        ioq.Loop(77)
    assert ei.value.code == ioq.EINVAL
    with pytest.raises(TypeError):
        ioq.Loop(1.5)


def test_loop_closed():
    lp = ioq.Loop()
    lp.close()
    lp.close()
    assert lp.closed and "closed" in repr(lp)
    for call in (lambda: lp.poll(0), lambda: lp.fileno(), lambda: lp.timeout(1, 1),
                 lambda: lp.recv(1, bytearray(1), 1), lambda: lp.backend):
        with pytest.raises(ValueError):
            call()


def test_context_manager_closes():
    with ioq.Loop() as lp:
        pass
    assert lp.closed


def test_poll_arguments(loop):
    assert loop.poll(0) == []
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError):
            loop.poll(bad)
    with pytest.raises(TypeError):
        loop.poll("1")
    for bad in (0, 65537, -1):
        with pytest.raises(ValueError):
            loop.poll(0, max=bad)
    assert loop.poll(0.001) == []


def test_fds_not_leaked():
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with ioq.Loop() as lp:
            lp.tcp_listen(("127.0.0.1", 0))
    assert len(os.listdir("/proc/self/fd")) == before
