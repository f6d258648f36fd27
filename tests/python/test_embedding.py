"""Loop.fileno() becomes readable whenever poll() has work: what ioq.aio relies on."""
import select

import ioq
from conftest import PATIENCE


def readable(loop):
    r, _, _ = select.select([loop.fileno()], [], [], PATIENCE)
    return bool(r)


def test_fd_readable_for_each_kind_of_completion(loop, tmp_path):
    loop.fileno()
    submits = [
        ("post", lambda t: loop.post(t)),
        ("timeout", lambda t: loop.timeout(0.001, t)),
        ("resolve", lambda t: loop.resolve("127.0.0.1", 80, t, flags=ioq.RESOLVE_NUMERIC)),
        ("open", lambda t: loop.open(tmp_path / "missing", "r", token=t)),
        ("post again", lambda t: loop.post(t)),
        ("resolve again", lambda t: loop.resolve("::1", 80, t, flags=ioq.RESOLVE_NUMERIC)),
    ]
    for token, (what, submit) in enumerate(submits, 1):
        submit(token)
        seen = []
        while token not in [c.token for c in seen]:
            assert readable(loop), "fd not readable for %s (after %s)" % (what, seen)
            seen += loop.poll(0)
