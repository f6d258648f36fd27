#!/usr/bin/env python3
"""TCP echo servers in Python for the benchmark suite, one per style, each written the way
its library's documentation writes it.

    echo_py.py STYLE [addr:port]

STYLE: asyncio-streams  (asyncio.start_server, reader.read / writer.write / drain)
       asyncio-protocol (asyncio.Protocol, transport.write in data_received)
       uvloop-streams, uvloop-protocol (the same two under uvloop's event loop)
       ioq-aio          (ioq.aio.create_server with the same Protocol, under asyncio;
                         IOQ_BACKEND applies)
       ioq-aio-streams  (ioq.aio.start_server, reader.read / writer.write / drain)
       ioq-loop-streams, ioq-loop-protocol (asyncio's two styles under ioq.aio.EventLoop,
                         ioq's asyncio event loop; IOQ_BACKEND applies)
"""
import asyncio
import sys


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def handle_streams(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def handle_ioq(reader, writer):
    import ioq
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ioq.Error:
        pass  # the peer reset the connection
    finally:
        writer.close()


async def serve(style, host, port):
    if style.endswith("-protocol"):
        server = await asyncio.get_running_loop().create_server(EchoProtocol, host, port,
                                                                backlog=1024)
    elif style == "ioq-aio":
        import ioq.aio
        server = await ioq.aio.create_server(EchoProtocol, host, port, backlog=1024)
    elif style == "ioq-aio-streams":
        import ioq.aio
        server = await ioq.aio.start_server(handle_ioq, host, port)
    else:
        server = await asyncio.start_server(handle_streams, host, port, backlog=1024)
    print("echo_py %s listening on %s:%d" % (style, host, port), flush=True)
    async with server:
        await server.serve_forever()


def main():
    styles = ("asyncio-streams", "asyncio-protocol", "uvloop-streams", "uvloop-protocol",
              "ioq-aio", "ioq-aio-streams", "ioq-loop-streams", "ioq-loop-protocol")
    if len(sys.argv) < 2 or sys.argv[1] not in styles:
        sys.exit("usage: echo_py.py %s [addr:port]" % "|".join(styles))
    style = sys.argv[1]
    host, _, port = (sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:7000").rpartition(":")
    if style.startswith("uvloop-"):
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    elif style.startswith("ioq-loop-"):
        import ioq.aio
        ioq.aio.install()
    try:
        asyncio.run(serve(style, host, int(port)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
