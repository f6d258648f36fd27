"""An echo round trip through an installed ioq Python package (raw completions).

    python echo.py LABEL

Prints "<LABEL>: echo ok: <line> (backend <name>, ioq <version>) from <package dir>".
"""
import os
import sys

import ioq

ACCEPT, CONNECT, CSEND, SRECV, SSEND, CRECV = range(1, 7)


def main():
    label = sys.argv[1] if len(sys.argv) > 1 else "python"
    done = {}

    def wait_for(loop, token):
        while token not in done:
            cqes = loop.poll(timeout=5.0)
            if not cqes:
                sys.exit("%s: poll timed out waiting for token %d" % (label, token))
            for c in cqes:
                done[c.token] = c
        c = done[token]
        c.check()
        return c

    line = b"hello through ioq"
    with ioq.Loop() as loop:
        listener = loop.tcp_listen(("127.0.0.1", 0))
        loop.accept(listener, ACCEPT)
        loop.connect(loop.sockname(listener), CONNECT)
        server = wait_for(loop, ACCEPT).value
        client = wait_for(loop, CONNECT).value
        sbuf, cbuf = bytearray(64), bytearray(64)
        loop.send(client, line, CSEND)
        loop.recv(server, sbuf, SRECV)
        wait_for(loop, CSEND)
        n = wait_for(loop, SRECV).result
        loop.send(server, memoryview(sbuf)[:n], SSEND)
        loop.recv(client, cbuf, CRECV)
        wait_for(loop, SSEND)
        n = wait_for(loop, CRECV).result
        if bytes(cbuf[:n]) != line:
            sys.exit("%s: echo differs: %r" % (label, bytes(cbuf[:n])))
        print("%s: echo ok: %s (backend %s, ioq %s) from %s" % (
            label, cbuf[:n].decode(), loop.backend, ioq.__version__,
            os.path.dirname(ioq.__file__)))


if __name__ == "__main__":
    main()
