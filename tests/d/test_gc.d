/**
 * Buffers handed to in-flight operations stay reachable for the GC until their final
 * completion. Each test drops every reference of its own to the buffers, collects, then
 * allocates and fills garbage: had a buffer been freed, the garbage would reuse its memory
 * and the I/O would corrupt it (or the data would be wrong).
 */
module test_gc;

import core.memory : GC;
import ioq;
import testutil;

private ubyte[][] churn(size_t n, size_t size) {
    ubyte[][] g;
    foreach (i; 0 .. n) {
        auto b = new ubyte[size];
        b[] = 0xEE;
        g ~= b;
    }
    return g;
}

private void checkChurn(ubyte[][] g) {
    foreach (b; g)
        foreach (v; b)
            assert(v == 0xEE, "garbage overwritten: a pinned buffer was freed");
}

/* Submitted from a separate frame so that no stale pointer stays on the test's stack. */
private ulong[] submitRecvs(Loop loop, Handle h, size_t n, size_t size) {
    ulong[] toks;
    foreach (i; 0 .. n)
        toks ~= loop.recv(h, new ubyte[size]);
    return toks;
}

@("gc/recv-buffers-pinned") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto p = tcpPair(c);
    auto toks = submitRecvs(loop, p.server, 64, 1024);
    assert(loop.pending == 64);
    GC.collect();
    auto g = churn(512, 1024);
    GC.collect();
    auto data = pattern(64 * 1024, 3);
    c.wait(loop.send(p.client, data));
    ubyte[] got;
    foreach (t; toks) {
        auto r = c.wait(t);
        assert(r.ok && r.result > 0 && r.buffer.length == 1024);
        got ~= r.data;
    }
    // Receives fill in submission order; the rest may still be in the socket.
    while (got.length < data.length)
        got ~= c.wait(loop.recv(p.server, new ubyte[65536])).data;
    assert(got == data);
    checkChurn(g);
    assert(loop.pending == 0, "pins are released at the final completion");
}

private ulong submitSendv(Loop loop, Handle h, const(ubyte)[] data) {
    const(ubyte)[][] parts;
    foreach (i; 0 .. 16)
        parts ~= data[i * 4096 .. (i + 1) * 4096].dup;
    return loop.sendv(h, parts);
}

@("gc/send-buffers-pinned") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto p = tcpPair(c);
    loop.setopt(p.client, Opt.sndBuf, 4096);
    auto data = pattern(16 * 4096, 9);
    // Far more than the socket buffers hold, so the sends wait for the reader.
    ulong[] sends;
    foreach (i; 0 .. 8)
        sends ~= submitSendv(loop, p.client, data);
    foreach (i; 0 .. 4)
        GC.collect();
    auto g = churn(1024, 4096);
    GC.collect();
    ubyte[] got;
    size_t done;
    ulong tr = loop.recv(p.server, new ubyte[32768]);
    while (got.length < 8 * data.length) {
        foreach (x; loop.poll(-1)) {
            if (x.token == tr) {
                assert(x.ok && x.result > 0);
                got ~= x.data;
                GC.collect();
                tr = loop.recv(p.server, new ubyte[32768]);
            } else if (x.op == Op.sendv) {
                assert(x.ok && x.result == data.length);
                done++;
            }
        }
    }
    foreach (i; 0 .. 8)
        assert(got[i * data.length .. (i + 1) * data.length] == data);
    checkChurn(g);
    loop.cancel(tr);
    while (loop.pending)
        loop.poll(-1);
}

private ulong submitRecvfrom(Loop loop, Handle h) {
    return loop.recvfrom(h, new ubyte[512]);
}

@("gc/recvfrom-and-resolve-out-params-pinned") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto a = loop.udpBind(Address.loopback4(0));
    auto b = loop.udpBind(Address.loopback4(0));
    ulong[] toks;
    foreach (i; 0 .. 8)
        toks ~= submitRecvfrom(loop, b);
    auto tres = loop.resolve("127.0.0.1", "7", ResolveFlags.numeric);
    GC.collect();
    auto g = churn(256, 512);
    GC.collect();
    foreach (i; 0 .. 8)
        c.wait(loop.sendto(a, pattern(100, i), loop.sockname(b)));
    foreach (i, t; toks) {
        auto r = c.wait(t);
        assert(r.ok && r.data == pattern(100, cast(uint) i));
        assert(r.from == loop.sockname(a));
    }
    auto res = c.wait(tres);
    assert(res.ok && res.addresses[0] == Address.parse("127.0.0.1:7"));
    checkChurn(g);
    assert(loop.pending == 0);
}

@("gc/close-loop-with-operations-in-flight") unittest {
    foreach (round; 0 .. 3) {
        auto loop = new Loop();
        auto c = new Collector(loop);
        auto p = tcpPair(c);
        submitRecvs(loop, p.server, 16, 256);
        loop.timeout(3_600_000_000_000UL);
        GC.collect();
        loop.close(); // ends everything; the pins go with it
        assert(loop.pending == 0);
        GC.collect();
    }
}
