/**
 * Memory safety: buffers of operations must outlive them. @safe code cannot hand over
 * stack memory (the test suite is compiled with -preview=dip1000, as users of the package
 * should be), every caller is refused a stack buffer at run time, and @safe code can do
 * all the rest: create a loop, submit, poll.
 */
module test_safety;

import ioq;
import testutil;

// The shape of the bug: a receive into a slice of the caller's frame, which is gone when
// the completion writes into it.
static assert(!__traits(compiles, {
    @safe ulong f(Loop l, Handle h) { ubyte[64] b; return l.recv(h, b[]); }
}), "a stack slice must not be accepted by Loop.recv in @safe code");

// Every operation that keeps a buffer, on the raw loop and on fibers.
static assert(!__traits(compiles, () @safe { Loop l; ubyte[8] b; l.send(1, b[]); }));
static assert(!__traits(compiles, () @safe { Loop l; ubyte[8] b; l.recvfrom(1, b[]); }));
static assert(!__traits(compiles, () @safe { Loop l; ubyte[8] b; l.sendto(1, b[], Address.init); }));
static assert(!__traits(compiles, () @safe { Loop l; ubyte[8] b; l.read(1, b[], 0); }));
static assert(!__traits(compiles, () @safe { Loop l; ubyte[8] b; l.write(1, b[], 0); }));
static assert(!__traits(compiles, () @safe {
    Loop l; ubyte[8] b; const(ubyte)[][] v = [b[]]; l.sendv(1, v);
}));
static assert(!__traits(compiles, () @safe { Conn c; ubyte[8] b; c.recv(b[]); }));
static assert(!__traits(compiles, () @safe { Conn c; ubyte[8] b; c.send(b[]); }));
static assert(!__traits(compiles, () @safe { Udp u; ubyte[8] b; u.recvfrom(b[]); }));
static assert(!__traits(compiles, () @safe { File f; ubyte[8] b; f.read(b[], 0); }));

// GC memory and static data compile.
static assert(__traits(compiles, () @safe { Loop l; l.recv(1, new ubyte[64]); }));
static assert(__traits(compiles, () @safe { Loop l; l.send(1, cast(immutable(ubyte)[]) "x"); }));
static assert(__traits(compiles, () @safe { Conn c; c.send("text"); c.recv(new ubyte[8]); }));
// poll() does not keep its array: a stack array is fine there.
static assert(__traits(compiles, () @safe { Loop l; Completion[8] cs; auto got = l.poll(cs[], 0); }));

@("safety/safe-code-creates-submits-polls") @safe unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto listener = loop.tcpListen(Address.loopback4(0));
    auto ta = loop.accept(listener);
    auto tc = loop.connect(loop.sockname(listener));
    Handle server, client;
    Completion[8] cs;
    while (server == 0 || client == 0)
        foreach (c; loop.poll(cs[], -1)) {
            assert(c.ok, c.name);
            if (c.token == ta) server = c.handle;
            if (c.token == tc) client = c.handle;
        }
    auto buf = new ubyte[16];
    auto tr = loop.recv(server, buf);
    loop.send(client, cast(immutable(ubyte)[]) "safe");
    size_t got;
    while (got == 0)
        foreach (c; loop.poll(cs[], -1))
            if (c.token == tr)
                got = cast(size_t) c.result;
    assert(buf[0 .. got] == cast(const(ubyte)[]) "safe");
}

/* The call of the bug, in @system code: refused at run time, nothing is kept. */
private ulong recvIntoFrame(Loop l, Handle h) @system {
    ubyte[64] b;
    return l.recv(h, b[]);
}

@("safety/stack-buffer-refused-at-run-time") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto p = tcpPair(c);
    auto e = raises({ recvIntoFrame(loop, p.server); });
    assert(e.code == IoqError.inval && e.name == "EINVAL");
    assert(loop.pending == 0);
    ubyte[16] here;
    e = raises({ loop.send(p.client, here[]); });
    assert(e.code == IoqError.inval);
    // Static data and GC memory are fine; so is a stack array given to poll().
    c.wait(loop.send(p.client, cast(immutable(ubyte)[]) "ok"));
    auto r = c.wait(loop.recv(p.server, new ubyte[8]));
    assert(r.data == cast(const(ubyte)[]) "ok");
    assert(!onStack(new ubyte[4].ptr));
    assert(onStack(here.ptr));
}

@("safety/stack-buffer-refused-in-a-fiber") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto s = new Scheduler(loop);
    auto l = s.listen(Address.loopback4(0));
    int code;
    s.spawn({
        auto c = s.connect(l.address()).value;
        ubyte[32] frame;
        try
            c.recv(frame[]);
        catch (IoqException e)
            code = e.code;
    });
    s.run();
    assert(code == IoqError.inval);
}

@("safety/scope-loop-closes") unittest {
    Loop seen;
    {
        scope loop = new Loop();
        seen = loop;
        loop.timeout(3_600_000_000_000UL);
    }
    assert(seen.closed);
}

@("safety/safe-code-runs-fibers") @safe unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto s = new Scheduler(loop);
    auto l = s.listen(Address.loopback4(0));
    string got;
    auto server = s.spawn(() @safe {
        auto c = l.accept().value;
        auto buf = new ubyte[16];
        auto n = c.recv(buf).value;
        c.send(buf[0 .. n]);
    });
    s.spawn(() @safe {
        auto c = s.connect(l.address()).value;
        c.send("fibers");
        auto buf = new ubyte[16];
        auto n = c.recv(buf).value;
        got = cast(string) buf[0 .. n].idup;
    });
    s.run();
    assert(server.done && got == "fibers");
}
