/**
 * Fibers as tasks (join, interrupt), handles that close themselves, connecting by name
 * and with a timeout, and the fiber stack: its size and its guard.
 */
module test_tasks;

import core.memory : GC;
import core.time : msecs, seconds, Duration;
import ioq;
import testutil;

/* Descriptors of this process. */
private size_t openFds() {
    import std.file : dirEntries, SpanMode;
    size_t n;
    foreach (_; dirEntries("/proc/self/fd", SpanMode.shallow))
        n++;
    return n;
}

@("raii/dropped-connections-close") unittest {
    enum n = 300;
    auto loop = new Loop();
    scope (exit) loop.close();
    auto s = new Scheduler(loop);
    auto before = openFds();
    size_t during;
    s.spawn({
        auto l = s.listen(Address.loopback4(0), 512);
        {
            // 300 connections, both ends, never closed: they go out of scope.
            Conn[n] clients, servers;
            foreach (i; 0 .. n) {
                clients[i] = s.connect(l.address()).value;
                servers[i] = l.accept().value;
            }
            during = openFds();
        }
        s.sleep(1.msecs); // a turn of the loop: the closes complete
    });
    s.run();
    assert(during >= before + 2 * n, "the connections were open");
    assert(openFds() <= before, "dropped connections closed their descriptors");
}

@("raii/copies-share-close-closes-all") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto s = new Scheduler(loop);
    auto l = s.listen(Address.loopback4(0));
    Handle h;
    s.spawn({
        auto c = s.connect(l.address()).value;
        auto a = l.accept().value;
        h = c.handle;
        {
            auto copy = c; // a second owner
        }
        assert(loop.sockname(h).port != 0, "a copy that goes does not close");
        auto other = c;
        c.close();
        assert(c.handle == 0 && other.handle == 0, "close() closes for every copy");
        auto e = raises({ loop.sockname(h); });
        assert(e.code == IoqError.badHandle);
        other.close(); // closing twice is harmless
    });
    s.run();
    // The listener goes with the last copy too.
    auto lh = l.handle;
    destroy(l);
    loop.poll(0);
    assert(raises({ loop.sockname(lh); }).code == IoqError.badHandle);
}

private final class Holder {
    Conn c;
}

/* Connections held only by GC objects, dropped when this returns: their destructors run
 * in finalizers, which queue the closes for the loop's next poll. (A frame of its own, so
 * that no live stack slot of the caller still points at them: the collector scans
 * stacks conservatively.) */
private size_t makeAndDrop(Scheduler s, Listener l, size_t n) {
    Holder[] hs;
    foreach (i; 0 .. n) {
        auto h = new Holder;
        h.c = s.connect(l.address()).value;
        l.accept().value.close();
        hs ~= h;
    }
    return openFds();
}

@("raii/collected-connections-close") unittest {
    enum n = 64;
    auto loop = new Loop();
    scope (exit) loop.close();
    auto s = new Scheduler(loop);
    auto l = s.listen(Address.loopback4(0), 256);
    size_t before, during, after;
    s.spawn({
        before = openFds();
        during = makeAndDrop(s, l, n);
        foreach (_; 0 .. 3)
            GC.collect();
        s.sleep(1.msecs);
        s.sleep(1.msecs);
        after = openFds();
    });
    s.run();
    assert(during >= before + n);
    // The collector is conservative: a stale pointer may keep an object; most go.
    assert(after <= before + n / 4, "collected connections closed their descriptors");
}

@("task/join-returns-when-done") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto s = new Scheduler(loop);
    string log;
    auto a = s.spawn({ s.sleep(5.msecs); log ~= "a"; });
    auto b = s.spawn({ a.join(); log ~= "b"; });
    assert(!a.done && !b.done);
    b.join(); // outside a fiber: runs the loop until b is done
    assert(a.done && b.done && !a.interrupted && a.error is null);
    assert(log == "ab");
    a.join(); // done: returns at once
    s.run();
}

@("task/interrupt-unwinds-and-keeps-data") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto s = new Scheduler(loop);
    auto l = s.listen(Address.loopback4(0));
    bool unwound, after, freshRan;
    Handle held;
    auto acceptor = s.spawn({
        auto own = s.listen(Address.loopback4(0));
        held = own.handle;
        scope (exit) unwound = true;
        own.accept(); // waits until interrupted
        after = true;
    });
    auto sleeper = s.spawn({ s.sleep(3600.seconds); after = true; });
    auto fresh = s.spawn({ freshRan = true; });
    assert(fresh.interrupt());
    Conn server, client;
    ubyte[] got;
    s.spawn({
        client = s.connect(l.address()).value;
        server = l.accept().value;
        auto reader = s.spawn({
            auto buf = new ubyte[64];
            server.recv(buf);
            after = true;
        });
        s.yield();
        assert(acceptor.interrupt() && sleeper.interrupt());
        client.send("kept");
        assert(reader.interrupt());
        reader.join();
        // Whatever the interrupted receive got (or not) is there for the next one.
        auto buf = new ubyte[64];
        auto n = server.recv(buf).value;
        got = buf[0 .. n].dup;
    });
    s.run();
    assert(unwound && !after && !freshRan);
    assert(acceptor.done && acceptor.interrupted && sleeper.interrupted && fresh.interrupted);
    assert(got == cast(const(ubyte)[]) "kept");
    assert(raises({ loop.sockname(held); }).code == IoqError.badHandle,
           "the interrupted task's listener closed as it unwound");
    assert(!acceptor.interrupt(), "an ended task cannot be interrupted");
    server.close();
    client.close();
    l.close();
    assert(loop.pending == 0);
}

@("connect/by-host-name-and-timeout") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto s = new Scheduler(loop);
    auto l = s.listen(Address.loopback4(0));
    ushort port = l.address().port;
    s.spawn({
        foreach (i; 0 .. 3)
            l.accept().value.close();
    });
    s.spawn({
        // "localhost" may be ::1 first: refused there, 127.0.0.1 answers.
        auto a = s.connect("localhost", port);
        assert(a.ok, a.name);
        assert(a.value.peer() == Address.parse("127.0.0.1").withPort(port));
        auto b = s.connect("localhost:" ~ portText(port), 5.seconds);
        assert(b.ok, b.name);
        auto c = s.connect("127.0.0.1", port);
        assert(c.ok, c.name);
        assert(s.connect("localhost").code == IoqError.inval);
        assert(s.connect("localhost:notaport").code == IoqError.inval);
    });
    s.run();
    // A listener whose backlog is full drops further SYNs: the connect times out.
    auto full = s.listen(Address.loopback4(0), 1);
    Conn[] held;
    int timedOut;
    s.spawn({
        foreach (i; 0 .. 4) {
            auto r = s.connect(full.address(), 100.msecs);
            if (r.ok)
                held ~= r.value;
            else if (r.code == IoqError.timedOut)
                timedOut++;
        }
    });
    s.run();
    assert(timedOut >= 1);
    held = null;
    full.close();
}

private string portText(ushort p) {
    import std.conv : to;
    return p.to!string;
}

private Address withPort(Address a, ushort p) {
    a.port = p;
    return a;
}

@("stack/size-is-configurable") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto small = new Scheduler(loop, 64 * 1024);
    assert(small.stackSize == 64 * 1024);
    auto s = new Scheduler(loop);
    assert(s.stackSize == defaultStackSize && defaultStackSize == 256 * 1024);
    size_t sum;
    s.spawn({
        // About 100 KiB of stack: fits the default.
        ubyte[100 * 1024] big;
        foreach (i, ref v; big)
            v = cast(ubyte) i;
        foreach (v; big)
            sum += v;
    });
    s.run();
    assert(sum > 0);
    assert(raises({ new Scheduler(loop, 1024); }).code == IoqError.inval);
}

/* Run in a child process (see runner.d): a fiber whose frame does not fit its stack. */
void overflowChild() {
    // No core file for an abort that the test asks for.
    import core.sys.posix.sys.resource : rlimit, setrlimit, RLIMIT_CORE;
    rlimit none;
    setrlimit(RLIMIT_CORE, &none);
    auto loop = new Loop();
    auto s = new Scheduler(loop, 64 * 1024);
    s.spawn({
        ubyte[256 * 1024] big;
        big[] = 1;
        import std.stdio : writeln;
        writeln(big[$ - 1]);
    });
    s.run();
}

@("stack/overflow-is-a-clear-error") unittest {
    import std.process : execute;
    import std.file : thisExePath;
    import std.algorithm : canFind;
    auto r = execute([thisExePath], ["IOQ_D_CHILD": "overflow"]);
    // SIGABRT (-6), not SIGSEGV, with the message on stderr.
    assert(r.status == -6, "status " ~ portText(cast(ushort)(-r.status)) ~ ": " ~ r.output);
    assert(r.output.canFind("ioq: fiber stack overflow"), r.output);
    assert(r.output.canFind("65536 bytes of stack"), r.output);
}
