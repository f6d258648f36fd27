"""Shared fixtures of the ioq Python suite: every loop test runs once per backend."""
import os

import pytest

import ioq


def _backends():
    forced = os.environ.get("IOQ_BACKEND")
    if forced:
        return [forced]
    found = []
    for name in ("epoll", "io_uring", "kqueue", "iocp"):
        try:
            with ioq.Loop(name):
                found.append(name)
        except ioq.Error:
            pass
    return found


BACKENDS = _backends()

# Safety net only: a correct run never waits this long.
PATIENCE = 30.0


def event_loop_of(backend):
    """The `loop` fixture of the ioq.aio.EventLoop test modules: an EventLoop on backend,
    the current loop until the test ends, then closed."""
    import asyncio
    import ioq.aio
    lp = ioq.aio.EventLoop(backend=backend)
    asyncio.set_event_loop(lp)
    try:
        yield lp
    finally:
        asyncio.set_event_loop(None)
        lp.close()


def run_aio(lp, coro):
    """Runs coro to its end on the EventLoop lp, giving up after PATIENCE seconds."""
    import asyncio
    return lp.run_until_complete(asyncio.wait_for(coro, PATIENCE))


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def loop(backend):
    with ioq.Loop(backend) as lp:
        yield lp


def wait(loop, tokens, patience=PATIENCE):
    """Poll until the final completion of every token in tokens has arrived; returns
    {token: Completion} (multishot completions before it are in ``.partial``)."""
    want = set(tokens)
    got = {}
    deadline = loop.now() + int(patience * 1e9)
    while want - set(got):
        left = (deadline - loop.now()) / 1e9
        if left <= 0:
            raise AssertionError("no completion for tokens %s" % sorted(want - set(got)))
        for c in loop.poll(timeout=left, max=256):
            if c.token in want and not c.more:
                got[c.token] = c
    return got


def wait1(loop, token):
    return wait(loop, [token])[token]


def pair(loop, t=900):
    """A connected TCP pair (server side, client side) and the listener."""
    lst = loop.tcp_listen(("127.0.0.1", 0))
    loop.accept(lst, t)
    loop.connect(loop.sockname(lst), t + 1)
    got = wait(loop, [t, t + 1])
    assert got[t].ok and got[t + 1].ok, got
    return got[t].value, got[t + 1].value, lst
