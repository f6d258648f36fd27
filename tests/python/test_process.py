"""Pipes and child processes through the raw layer (ioq._ioq): ioq_pipe, ioq_spawn with a
dict of options, ioq_process_wait, ioq_process_pid, ioq_kill."""
import signal

import pytest

import ioq
from conftest import wait1

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
