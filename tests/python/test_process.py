"""Pipes and child processes through the raw layer (ioq._ioq): ioq_pipe, ioq_spawn with a
dict of options, ioq_process_wait, ioq_process_pid, ioq_kill."""
import signal

import pytest

import ioq
from conftest import wait, wait1

raw = ioq._raw


def test_pipe_round_trip(loop):
    rc, r, w = raw.ioq_pipe(loop._p, 0)
    assert rc == 0 and r and w and r != w
    loop.send(w, b"through a pipe", 1)
    assert wait1(loop, 1).result == 14
    buf = bytearray(64)
    loop.recv(r, buf, 2)
    assert wait1(loop, 2).result == 14
    assert bytes(buf[:14]) == b"through a pipe"
    loop.close_handle(w, 3)
    wait1(loop, 3)
    loop.recv(r, buf, 4)
    assert wait1(loop, 4).result == 0  # end of stream
    loop.close_handle(r, 5)
    wait1(loop, 5)
    assert raw.ioq_pipe(loop._p, 1)[0] == raw.IOQ_EINVAL


def test_spawn_stdout_and_exit(loop):
    opts = {"file": "/bin/sh", "argv": ["sh", "-c", "echo $IOQ_X; exit 3"],
            "env": ["IOQ_X=hello"],
            "stdio": [(raw.IOQ_STDIO_NULL, 0), (raw.IOQ_STDIO_PIPE, 0),
                      (raw.IOQ_STDIO_INHERIT, 0)]}
    rc, proc, pipes = raw.ioq_spawn(loop._p, opts)
    assert rc == 0 and proc
    assert pipes[0] == 0 and pipes[1] != 0 and pipes[2] == 0
    rc, pid = raw.ioq_process_pid(loop._p, proc)
    assert rc == 0 and pid > 0
    buf = bytearray(64)
    loop.recv(pipes[1], buf, 1)
    assert bytes(buf[:wait1(loop, 1).result]) == b"hello\n"
    assert raw.ioq_process_wait(loop._p, proc, 2) == 0
    c = wait1(loop, 2)
    assert c.op == raw.IOQ_OP_PROCESS_WAIT and c.result == 3
    for i, h in enumerate((pipes[1], proc)):
        loop.close_handle(h, 10 + i)
        wait1(loop, 10 + i)


def test_spawn_kill_and_errors(loop):
    rc, proc, _ = raw.ioq_spawn(loop._p, {"file": "sleep", "argv": ["sleep", "30"],
                                          "flags": raw.IOQ_SPAWN_SEARCH_PATH})
    assert rc == 0
    assert raw.ioq_process_wait(loop._p, proc, 1) == 0
    assert raw.ioq_kill(loop._p, proc, signal.SIGKILL) == 0
    assert wait1(loop, 1).result == 256 + signal.SIGKILL
    loop.close_handle(proc, 2)
    wait1(loop, 2)
    rc, proc, _ = raw.ioq_spawn(loop._p, {"file": "/nonexistent/x", "argv": ["x"]})
    assert rc == raw.IOQ_ENOENT and proc == 0


def test_spawn_bad_loop_argument_raises():
    # A wrong first argument is refused before the options are read; nothing is freed that
    # was never allocated.
    for bad in (1, "loop", object()):
        with pytest.raises((TypeError, ValueError)):
            raw.ioq_spawn(bad, {"file": "true", "argv": ["true"]})


# --- the idiomatic layer: Loop.pipe, Loop.spawn, process_wait, kill -----------------------

def _drain(loop, h, token):
    """Everything readable from h up to end of stream."""
    out = bytearray()
    buf = bytearray(256)
    while True:
        loop.recv(h, buf, token)
        c = wait1(loop, token)
        assert c.ok, c
        if c.result == 0:
            return bytes(out)
        out += buf[:c.result]


def test_loop_pipe(loop):
    r, w = loop.pipe()
    assert r and w and r != w
    loop.send(w, b"idiomatic pipe", 1)
    assert wait1(loop, 1).result == 14
    loop.shutdown(w, 2)
    assert wait1(loop, 2).ok
    assert _drain(loop, r, 3) == b"idiomatic pipe"
    with pytest.raises(ioq.Error) as e:
        loop.send(r, b"x", 4)  # the read end does not send
    assert e.value.name == "EBADHANDLE"
    for i, h in enumerate((r, w)):
        loop.close_handle(h, 10 + i)
        assert wait1(loop, 10 + i).ok


def test_loop_spawn_reads_stdout_and_status(loop):
    p = loop.spawn(["sh", "-c", "echo out $IOQ_Y; echo err >&2; exit 5"],
                   stdout=ioq.STDIO_PIPE, stderr=ioq.STDIO_PIPE, stdin=ioq.STDIO_NULL,
                   env={"IOQ_Y": "there", "PATH": "/usr/bin:/bin"})
    assert isinstance(p, ioq.Process)
    assert p.handle and p.stdout and p.stderr and p.stdin == 0
    assert loop.process_pid(p.handle) > 0
    assert _drain(loop, p.stdout, 1) == b"out there\n"
    assert _drain(loop, p.stderr, 2) == b"err\n"
    loop.process_wait(p.handle, 3)
    c = wait1(loop, 3)
    assert c.op == ioq.OP_PROCESS_WAIT and c.result == 5
    assert ioq.exit_code(c.result) == 5 and ioq.term_signal(c.result) is None
    for i, h in enumerate((p.stdout, p.stderr, p.handle)):
        loop.close_handle(h, 10 + i)
        assert wait1(loop, 10 + i).ok


def test_loop_spawn_stdin_cwd_and_file(loop, tmp_path):
    p = loop.spawn(["cat-like", "-c", "read l; echo \"$l $(pwd)\""], file="/bin/sh",
                   stdin=ioq.STDIO_PIPE, stdout=ioq.STDIO_PIPE, cwd=str(tmp_path))
    loop.send(p.stdin, b"ping\n", 1)
    assert wait1(loop, 1).ok
    loop.close_handle(p.stdin, 2)
    wait1(loop, 2)
    assert _drain(loop, p.stdout, 3) == ("ping %s\n" % tmp_path).encode()
    loop.process_wait(p.handle, 4)
    assert wait1(loop, 4).result == 0
    # A descriptor the caller keeps: a file object for stdout.
    out = tmp_path / "out.txt"
    with open(out, "wb") as f:
        q = loop.spawn(["echo", "to a file"], stdout=f)
        loop.process_wait(q.handle, 5)
        assert wait1(loop, 5).result == 0
    assert out.read_bytes() == b"to a file\n"
    for i, h in enumerate((p.stdout, p.handle, q.handle)):
        loop.close_handle(h, 10 + i)
        wait1(loop, 10 + i)


def test_loop_kill(loop):
    p = loop.spawn(["sleep", "30"], stdin=ioq.STDIO_NULL)
    loop.process_wait(p.handle, 1)
    loop.kill(p.handle, signal.SIGTERM)
    c = wait1(loop, 1)
    assert c.result == 256 + signal.SIGTERM
    assert ioq.term_signal(c.result) == signal.SIGTERM and ioq.exit_code(c.result) is None
    with pytest.raises(ProcessLookupError):
        loop.kill(p.handle, signal.SIGTERM)  # ended and reaped
    loop.close_handle(p.handle, 2)
    wait1(loop, 2)


def test_loop_spawn_errors(loop):
    with pytest.raises(FileNotFoundError):
        loop.spawn(["/nonexistent/program"])
    with pytest.raises(TypeError):
        loop.spawn("sh -c true")  # a list, not a command line
    with pytest.raises(ValueError):
        loop.spawn([])
    with pytest.raises(ValueError):
        loop.spawn(["true"], stdout=7)  # a bare int is ambiguous
    # Closing the handle of a running child does not kill it; the wait ends cancelled.
    p = loop.spawn(["sleep", "0.1"])
    loop.process_wait(p.handle, 1)
    loop.close_handle(p.handle, 2)
    cs = wait(loop, [1, 2])
    assert cs[1].result == ioq.ECANCELED and cs[2].ok
