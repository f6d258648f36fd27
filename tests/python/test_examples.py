"""The examples in examples/python echo what a client sends."""
import os
import re
import signal
import socket
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples",
                        "python")


@pytest.mark.parametrize("script,extra", [("echo_server.py", []), ("echo_asyncio.py", []),
                                          ("echo_asyncio.py", ["--uvloop"])])
def test_echo_example(script, extra, backend):
    if "--uvloop" in extra:
        pytest.importorskip("uvloop")
    env = dict(os.environ, IOQ_BACKEND=backend)
    proc = subprocess.Popen([sys.executable, os.path.join(EXAMPLES, script), "--port", "0"]
                            + extra, stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        m = re.search(r":(\d+) \((\w+)\)", line)
        assert m, line
        assert m.group(2) == backend
        with socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=30) as s:
            for msg in (b"hello", b"z" * 300000):
                s.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    chunk = s.recv(65536)
                    assert chunk
                    got += chunk
                assert got == msg
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        proc.stdout.close()
