module test_ops;

import ioq;
import testutil;
import core.time : msecs;

@("ops/accept-connect-send-recv") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto p = tcpPair(c);
    assert(loop.peername(p.client) == loop.sockname(p.listener));
    assert(loop.sockname(p.client) == loop.peername(p.server));
    loop.setopt(p.client, Opt.noDelay, 1);
    auto msg = cast(const(ubyte)[]) "hello, ioq";
    auto ts = loop.send(p.client, msg);
    auto sc = c.wait(ts);
    assert(sc.ok && sc.op == Op.send && sc.result == msg.length);
    ubyte[] got;
    while (got.length < msg.length) {
        auto r = c.wait(loop.recv(p.server, new ubyte[64]));
        assert(r.ok && r.op == Op.recv && r.result > 0);
        got ~= r.data;
    }
    assert(got == msg);
    // Orderly end of stream: result 0.
    assert(c.wait(loop.shutdown(p.client)).ok);
    auto eof = c.wait(loop.recv(p.server, new ubyte[8]));
    assert(eof.ok && eof.result == 0 && eof.data.length == 0);
    foreach (h; [p.client, p.server, p.listener]) {
        auto cl = c.wait(loop.close(h));
        assert(cl.ok && cl.op == Op.close);
    }
    // The handles are stale now.
    auto e = raises({ loop.recv(p.server, new ubyte[8]); });
    assert(e.code == IoqError.badHandle);
    assert(loop.pending == 0);
}

@("ops/sendv") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto p = tcpPair(c);
    const(ubyte)[][] parts = [cast(const(ubyte)[]) "abc", [], cast(const(ubyte)[]) "defgh"];
    auto r = c.wait(loop.sendv(p.client, parts));
    assert(r.ok && r.op == Op.sendv && r.result == 8);
    ubyte[] got;
    while (got.length < 8)
        got ~= c.wait(loop.recv(p.server, new ubyte[16])).data;
    assert(got == cast(const(ubyte)[]) "abcdefgh");
}

@("ops/big-send-in-order") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto p = tcpPair(c);
    auto data = pattern(1 << 20);
    ulong[] sends;
    foreach (i; 0 .. 4)
        sends ~= loop.send(p.client, data[i * (1 << 18) .. (i + 1) * (1 << 18)]);
    ubyte[] got;
    ulong pendingRecv = loop.recv(p.server, new ubyte[65536]);
    size_t sendsDone;
    while (got.length < data.length || sendsDone < sends.length) {
        foreach (x; loop.poll(-1)) {
            if (x.op == Op.send) {
                assert(x.ok && x.result == (1 << 18));
                sendsDone++;
            } else if (x.token == pendingRecv) {
                assert(x.ok && x.result > 0);
                got ~= x.data;
                pendingRecv = got.length < data.length ? loop.recv(p.server, new ubyte[65536]) : 0;
            }
        }
    }
    assert(got == data);
}

@("ops/connect-refused-is-a-result") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto l = loop.tcpListen(Address.loopback4(0));
    auto at = loop.sockname(l);
    c.wait(loop.close(l));
    auto r = c.wait(loop.connect(at));
    assert(!r.ok && r.code == IoqError.connRefused && r.name == "ECONNREFUSED");
    assert(r.handle == 0);
}

@("ops/local-stream") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto dir = makeTemp();
    scope (exit) rmTemp(dir);
    auto path = dir ~ "/s";
    auto l = loop.localListen(path, 0, ListenFlags.unlink);
    auto ta = loop.accept(l);
    auto cc = c.wait(loop.localConnect(path));
    assert(cc.ok && cc.op == Op.localConnect);
    auto ca = c.wait(ta);
    assert(ca.ok);
    assert(c.wait(loop.send(cc.handle, cast(const(ubyte)[]) "ping")).ok);
    ubyte[] got;
    while (got.length < 4)
        got ~= c.wait(loop.recv(ca.handle, new ubyte[8])).data;
    assert(got == cast(const(ubyte)[]) "ping");
    auto miss = c.wait(loop.localConnect(dir ~ "/nothing"));
    assert(!miss.ok && (miss.code == IoqError.noEnt || miss.code == IoqError.connRefused));
    foreach (h; [cc.handle, ca.handle, l])
        c.wait(loop.close(h));
}

@("ops/udp") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto a = loop.udpBind(Address.loopback4(0));
    auto b = loop.udpBind(Address.loopback4(0));
    auto tr = loop.recvfrom(b, new ubyte[64]);
    auto ts = c.wait(loop.sendto(a, cast(const(ubyte)[]) "datagram", loop.sockname(b)));
    assert(ts.ok && ts.result == 8 && ts.op == Op.sendto);
    auto r = c.wait(tr);
    assert(r.ok && r.op == Op.recvfrom && r.data == cast(const(ubyte)[]) "datagram");
    assert(r.from == loop.sockname(a));
    // A datagram longer than the buffer is truncated.
    tr = loop.recvfrom(b, new ubyte[4]);
    c.wait(loop.sendto(a, cast(const(ubyte)[]) "0123456789", loop.sockname(b)));
    r = c.wait(tr);
    assert(r.ok && r.data == cast(const(ubyte)[]) "0123");
    loop.setopt(a, Opt.broadcast, 1);
}

@("ops/files") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto dir = makeTemp();
    scope (exit) rmTemp(dir);
    auto path = dir ~ "/f.bin";
    auto o = c.wait(loop.open(path, OpenFlags.read | OpenFlags.write | OpenFlags.create, 384));
    assert(o.ok && o.op == Op.open && o.handle != 0);
    auto f = o.handle;
    auto data = pattern(10000, 7);
    auto w = c.wait(loop.write(f, data, 0));
    assert(w.ok && w.op == Op.write && w.result == data.length);
    assert(c.wait(loop.write(f, cast(const(ubyte)[]) "XY", 20000)).result == 2);
    auto s = c.wait(loop.fsync(f));
    assert(s.ok && s.op == Op.fsync);
    auto r = c.wait(loop.read(f, new ubyte[20000], 0));
    assert(r.ok && r.op == Op.read && r.result == 20000 && r.data[0 .. 10000] == data);
    assert(r.data[10000 .. $] == new ubyte[10000]);
    auto tail = c.wait(loop.read(f, new ubyte[100], 20000));
    assert(tail.data == cast(const(ubyte)[]) "XY");
    auto end = c.wait(loop.read(f, new ubyte[100], 50000));
    assert(end.ok && end.result == 0);
    c.wait(loop.close(f));
    import std.file : read;
    assert(cast(ubyte[]) read(path)[0 .. 10000] == data);
    auto miss = c.wait(loop.open(dir ~ "/none", OpenFlags.read));
    assert(!miss.ok && miss.code == IoqError.noEnt && miss.name == "ENOENT");
    auto ex = c.wait(loop.open(path, OpenFlags.write | OpenFlags.create | OpenFlags.excl));
    assert(ex.code == IoqError.exist);
    auto e = raises({ loop.open(path, 0); });
    assert(e.code == IoqError.inval);
}

@("ops/timeout") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto t0 = loop.now();
    auto r = c.wait(loop.timeout(5.msecs));
    assert(r.ok && r.op == Op.timeout);
    assert(loop.now() - t0 >= 5_000_000, "a timeout never fires early");
    // Same deadline: submission order.
    auto a = loop.timeout(0);
    auto b = loop.timeout(0);
    ulong[] order;
    while (order.length < 2)
        foreach (x; loop.poll(-1))
            order ~= x.token;
    assert(order == [a, b]);
}

@("ops/timeout-at") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto base = loop.now();
    auto late = loop.timeoutAt(base + 10_000_000);
    auto early = loop.timeoutAt(base + 5_000_000);
    ulong[] order;
    while (order.length < 2)
        foreach (x; loop.poll(-1)) {
            assert(x.ok && x.op == Op.timeout);
            order ~= x.token;
        }
    assert(order == [early, late]);
    assert(loop.now() >= base + 10_000_000, "an absolute timeout never fires early");
    // Past deadlines come at the next poll, ties in submission order, with timeout(0) too.
    auto a = loop.timeoutAt(0);
    auto b = loop.timeoutAt(0);
    auto got = loop.poll(0);
    assert(got.length == 2 && got[0].token == a && got[1].token == b);
    auto far = loop.timeoutAt(ulong.max);
    auto k = loop.cancel(far);
    assert(c.wait(far).code == IoqError.canceled);
    assert(c.wait(k).result == 1);
}

@("ops/cancel") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto p = tcpPair(c);
    auto tr = loop.recv(p.server, new ubyte[16]);
    auto tc = loop.cancel(tr);
    auto r = c.wait(tr);
    assert(!r.ok && r.code == IoqError.canceled);
    auto cr = c.wait(tc);
    assert(cr.op == Op.cancel && cr.result == 1);
    assert(c.wait(loop.cancel(123_456_789)).result == 0);
    // Closing a handle cancels what is pending on it, before the close completes.
    auto tt = loop.timeout(3_600_000_000_000UL);
    auto ta = loop.accept(p.listener);
    auto tcl = loop.close(p.listener);
    ulong[] order;
    while (order.length < 2)
        foreach (x; loop.poll(-1)) {
            if (x.token == ta) {
                assert(x.code == IoqError.canceled);
                order ~= ta;
            } else if (x.token == tcl) {
                assert(x.ok);
                order ~= tcl;
            }
        }
    assert(order == [ta, tcl]);
    assert(c.wait(loop.cancel(tt)).result == 1);
    assert(loop.pending == 0);
}

@("ops/resolve") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto r = c.wait(loop.resolve("127.0.0.1", "80", ResolveFlags.numeric | ResolveFlags.inet));
    assert(r.ok && r.op == Op.resolve && r.result >= 1);
    assert(r.addresses.length == r.result);
    assert(r.addresses[0] == Address.parse("127.0.0.1:80"));
    auto bad = c.wait(loop.resolve("not-an-ip", null, ResolveFlags.numeric));
    assert(!bad.ok);
    auto e = raises({ loop.resolve(null, null); });
    assert(e.code == IoqError.inval);
}

@("ops/pool") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto p = tcpPair(c);
    auto pool = loop.poolNew(4, 256);
    auto tr = loop.recvPool(p.server, pool);
    c.wait(loop.send(p.client, cast(const(ubyte)[]) "pooled"));
    auto r = c.wait(tr);
    assert(r.ok && r.op == Op.recvPool && r.hasPoolBuffer && r.result > 0);
    auto b = loop.buf(pool, cast(uint) r.value);
    assert(b.length == 256);
    assert(b[0 .. r.result] == (cast(const(ubyte)[]) "pooled")[0 .. r.result]);
    loop.bufRelease(pool, cast(uint) r.value);
    auto e = raises({ loop.bufRelease(pool, cast(uint) r.value); });
    assert(e.code == IoqError.inval);
    // Multishot: several completions, all but the last with .more.
    auto tm = loop.recvPool(p.server, pool, multishot);
    Completion[] seen;
    size_t bytes = r.result >= 6 ? 0 : 6 - cast(size_t) r.result;
    // Not awaited through the collector, which would keep tm's completions for itself.
    loop.send(p.client, cast(const(ubyte)[]) "more data");
    bytes += 9;
    size_t got;
    while (got < bytes)
        foreach (x; loop.poll(-1))
            if (x.token == tm) {
                assert(x.ok && x.more && x.hasPoolBuffer);
                got += cast(size_t) x.result;
                loop.bufRelease(pool, cast(uint) x.value);
            }
    loop.cancel(tm);
    for (bool fin; !fin;)
        foreach (x; loop.poll(-1))
            if (x.token == tm && !x.more)
                fin = true;
    assert(c.wait(loop.close(pool)).ok);
}

@("ops/multishot-accept") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto l = loop.tcpListen(Address.loopback4(0));
    auto ta = loop.accept(l, multishot);
    auto at = loop.sockname(l);
    Handle[] conns;
    foreach (i; 0 .. 3)
        conns ~= c.wait(loop.connect(at)).handle;
    // Accepts that arrived while the connects were awaited were kept by the collector.
    size_t accepted;
    foreach (x; c.seen.get(ta, null)) {
        assert(x.ok && x.more);
        accepted++;
    }
    c.seen.remove(ta);
    while (accepted < 3)
        foreach (x; loop.poll(-1))
            if (x.token == ta) {
                assert(x.ok && x.more);
                accepted++;
            } else
                c.seen[x.token] ~= x;
    auto tcl = loop.close(l);
    auto fin = c.all(ta);
    assert(!fin[$ - 1].more);
    assert(c.wait(tcl).ok);
}

@("ops/adopt-and-os-handle") unittest {
    import core.sys.posix.sys.socket : socketpair, AF_UNIX, SOCK_STREAM;
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    int[2] fds;
    assert(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    auto a = loop.adopt(fds[0], Kind.local);
    auto b = loop.adopt(fds[1], Kind.local);
    assert(loop.osHandle(a) == fds[0]);
    assert(c.wait(loop.send(a, cast(const(ubyte)[]) "adopted")).ok);
    ubyte[] got;
    while (got.length < 7)
        got ~= c.wait(loop.recv(b, new ubyte[16])).data;
    assert(got == cast(const(ubyte)[]) "adopted");
    c.wait(loop.close(a));
    c.wait(loop.close(b));
    auto e = raises({ loop.adopt(ulong.max, Kind.tcp); });
    assert(e.code == IoqError.inval);
}
