#!/usr/bin/env python3
"""TCP echo server on raw ioq completions: no callbacks, one poll loop.

    python3 echo_server.py [--host 127.0.0.1] [--port 7000] [--backend epoll|io_uring]

Each connection owns one bytearray. Its recv and send use the buffer in place (ioq holds
it until the completion is polled), so the buffer is reused only after the send of the
previous chunk has completed. Tokens: 1 is the accept; a connection of handle h uses
2*k for its recv and 2*k + 1 for its send, k being its slot number.
"""
import argparse
import signal

import ioq

ACCEPT = 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7000)
    ap.add_argument("--backend", default=None)
    ap.add_argument("--size", type=int, default=16384, help="buffer size per connection")
    args = ap.parse_args()

    with ioq.Loop(args.backend) as loop:
        listener = loop.tcp_listen((args.host, args.port))
        print("echo server on %s:%d (%s)" % (loop.sockname(listener) + (loop.backend,)),
              flush=True)
        loop.accept(listener, ACCEPT, multishot=True)
        conns = {}  # slot -> (handle, buffer)
        next_slot = 1
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
        try:
            while not stopping:
                for c in loop.poll(timeout=0.5):
                    if c.token == ACCEPT:
                        if c.ok:
                            slot, next_slot = next_slot, next_slot + 1
                            conns[slot] = (c.value, bytearray(args.size))
                            loop.setopt(c.value, ioq.OPT_NODELAY, 1)
                            loop.recv(c.value, conns[slot][1], 2 * slot)
                        if not c.more:  # the multishot accept ended (e.g. EMFILE): re-arm
                            loop.accept(listener, ACCEPT, multishot=True)
                        continue
                    slot, sending = divmod(c.token, 2)
                    if slot not in conns:
                        continue
                    h, buf = conns[slot]
                    if c.result <= 0:  # end of stream or an error: drop the connection
                        del conns[slot]
                        loop.close_handle(h, 0)
                    elif sending:
                        loop.recv(h, buf, 2 * slot)
                    else:
                        loop.send(h, memoryview(buf)[:c.result], 2 * slot + 1)
        except KeyboardInterrupt:
            pass
    print("bye", flush=True)


if __name__ == "__main__":
    main()
