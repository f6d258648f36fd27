"""poll() releases the GIL while it blocks; post() and wake() work from other threads."""
import threading

import ioq
from conftest import PATIENCE


def test_gil_released_while_poll_blocks(loop):
    progress = []
    start = threading.Event()

    def worker():
        start.wait()
        # Pure Python work: it can only run while the polling thread lets go of the GIL.
        n = 0
        for i in range(200_000):
            n += i
        progress.append(n)
        loop.post(99, 1)

    t = threading.Thread(target=worker)
    t.start()
    start.set()
    got = loop.poll(timeout=PATIENCE)
    t.join()
    assert progress, "the worker never ran while poll() was blocked"
    assert [c.token for c in got] == [99]


def test_wake_from_thread(loop):
    t = threading.Thread(target=loop.wake)
    t.start()
    assert loop.poll(timeout=PATIENCE) == []
    t.join()


def test_posts_from_many_threads(loop):
    def poster(base):
        for i in range(500):
            loop.post(base + i, i)

    threads = [threading.Thread(target=poster, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    seen = []
    while len(seen) < 2000:
        seen += loop.poll(timeout=PATIENCE, max=1000)
    for t in threads:
        t.join()
    assert sorted(c.token for c in seen) == sorted(k * 1000 + i for k in range(4)
                                                   for i in range(500))
    for k in range(4):
        mine = [c.result for c in seen if c.token // 1000 == k]
        assert mine == list(range(500))  # posts of one thread keep their order
    assert all(c.op == ioq.OP_POST for c in seen)
