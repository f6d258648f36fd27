#!/usr/bin/env python3
"""aiohttp's hello world for the benchmark suite, under one event loop.

    http_aiohttp.py LOOP [addr:port]

LOOP: asyncio (the default loop), uvloop, ioq (ioq.aio.EventLoop; IOQ_BACKEND applies).
Needs aiohttp (Debian: python3-aiohttp).
"""
import asyncio
import sys

from aiohttp import web


async def hello(request):
    return web.Response(text="Hello, world")


async def serve(host, port):
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    print("http_aiohttp listening on %s:%d" % (host, port), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main():
    loops = ("asyncio", "uvloop", "ioq")
    if len(sys.argv) < 2 or sys.argv[1] not in loops:
        sys.exit("usage: http_aiohttp.py %s [addr:port]" % "|".join(loops))
    host, _, port = (sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:8080").rpartition(":")
    if sys.argv[1] == "uvloop":
        import uvloop
        uvloop.install()
    elif sys.argv[1] == "ioq":
        import ioq.aio
        ioq.aio.install()
    try:
        asyncio.run(serve(host, int(port)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
