/** Helpers of the D tests. */
module testutil;

import ioq;

/** Polls a loop and keeps completions by token until a test asks for them. */
final class Collector {
    Loop loop;
    Completion[][ulong] seen;

    this(Loop loop) { this.loop = loop; }

    /** Every completion of token up to and including its final one. */
    Completion[] all(ulong token) {
        for (;;) {
            if (auto p = token in seen) {
                if ((*p).length && !(*p)[$ - 1].more) {
                    auto r = *p;
                    seen.remove(token);
                    return r;
                }
            }
            foreach (c; loop.poll(-1))
                seen[c.token] ~= c;
        }
    }

    /** The final completion of token. */
    Completion wait(ulong token) {
        auto r = all(token);
        return r[$ - 1];
    }
}

struct Pair {
    Handle listener, client, server;
}

/** A connected TCP pair on 127.0.0.1. */
Pair tcpPair(Collector c) {
    Pair p;
    p.listener = c.loop.tcpListen(Address.loopback4(0));
    auto at = c.loop.sockname(p.listener);
    auto ta = c.loop.accept(p.listener);
    auto tc = c.loop.connect(at);
    auto cc = c.wait(tc);
    assert(cc.ok, cc.name);
    auto ca = c.wait(ta);
    assert(ca.ok, ca.name);
    p.client = cc.handle;
    p.server = ca.handle;
    return p;
}

/** A fresh private directory; remove it with rmTemp. */
string makeTemp() {
    import std.file : tempDir, mkdirRecurse;
    import std.process : thisProcessID;
    import std.conv : to;
    import std.random : uniform;
    auto d = tempDir ~ "/ioq-d-" ~ thisProcessID.to!string ~ "-" ~ uniform(0, 1 << 30).to!string;
    mkdirRecurse(d);
    return d;
}

void rmTemp(string d) {
    import std.file : rmdirRecurse, exists;
    if (exists(d))
        rmdirRecurse(d);
}

ubyte[] pattern(size_t n, uint seed = 1) {
    auto b = new ubyte[n];
    uint x = seed;
    foreach (ref v; b) {
        x = x * 1103515245 + 12345;
        v = cast(ubyte)(x >> 16);
    }
    return b;
}

/** Runs dg and returns the IoqException it throws; fails when it throws none. */
IoqException raises(scope void delegate() dg) {
    try
        dg();
    catch (IoqException e)
        return e;
    assert(false, "no IoqException");
}
