#!/usr/bin/env python3
"""TCP echo server with ioq.aio streams under asyncio (or uvloop with --uvloop).

    python3 echo_asyncio.py [--host 127.0.0.1] [--port 7001] [--uvloop]
"""
import argparse
import asyncio

import ioq.aio


async def handle(reader, writer):
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
        await writer.wait_closed()


async def serve(host, port):
    server = await ioq.aio.start_server(handle, host, port)
    print("echo server on %s:%d (%s)" % (server.sockname + (ioq.aio.get_loop().ioq.backend,)),
          flush=True)
    async with server:
        await server.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7001)
    ap.add_argument("--uvloop", action="store_true")
    args = ap.parse_args()
    if args.uvloop:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
