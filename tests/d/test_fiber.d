module test_fiber;

import core.memory : GC;
import core.time : msecs;
import ioq;
import testutil;

@("fiber/echo-100-connections") unittest {
    enum conns = 100;
    auto loop = new Loop();
    scope (exit) loop.close();
    auto s = new Scheduler(loop);
    auto listener = s.listen(Address.loopback4(0), 256);
    auto at = listener.address();
    size_t served, checked;

    s.spawn({
        for (;;) {
            auto r = listener.accept();
            if (!r.ok) {
                assert(r.code == IoqError.canceled, r.name);
                break;
            }
            s.spawn((Conn conn) {
                auto buf = new ubyte[4096];
                for (;;) {
                    auto n = conn.recv(buf);
                    if (!n.ok || n.value == 0)
                        break;
                    assert(conn.send(buf[0 .. n.value]).ok);
                }
                conn.close();
                served++;
            }, r.value);
        }
    });

    foreach (i; 0 .. conns) {
        s.spawn((size_t i) {
            auto r = s.connect(at);
            assert(r.ok, r.name);
            auto conn = r.value;
            auto msg = pattern(1000 + i * 37, cast(uint) i);
            assert(conn.send(msg).ok);
            ubyte[] got;
            auto buf = new ubyte[777];
            while (got.length < msg.length) {
                auto n = conn.recv(buf);
                assert(n.ok && n.value > 0);
                got ~= buf[0 .. n.value];
                if (i % 10 == 0)
                    GC.collect();
            }
            assert(got == msg);
            assert(conn.shutdown().ok);
            auto eof = conn.recv(buf);
            assert(eof.ok && eof.value == 0);
            conn.close();
            if (++checked == conns)
                listener.close();
        }, i);
    }
    s.run();
    assert(checked == conns && served == conns);
    assert(s.fibers == 0 && loop.pending == 0);
}

@("fiber/sleep-and-yield-interleave") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto s = new Scheduler(loop);
    string log;
    s.spawn({ log ~= "a"; s.yield(); log ~= "c"; s.sleep(2.msecs); log ~= "e"; });
    s.spawn({ log ~= "b"; s.yield(); log ~= "d"; s.sleep(50.msecs); log ~= "f"; });
    s.run();
    assert(log[0 .. 4] == "abcd" && log.length == 6);
}

@("fiber/sleep-until-one-base") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto s = new Scheduler(loop);
    auto base = loop.now();
    string log;
    ulong lateWoke;
    s.spawn({ s.sleepUntil(base + 20_000_000); lateWoke = loop.now(); log ~= "b"; });
    s.spawn({ s.sleepUntil(base + 5_000_000); log ~= "a"; s.sleepUntil(0); log ~= "c"; });
    s.run();
    assert(log == "acb", log);
    assert(lateWoke >= base + 20_000_000, "sleepUntil never wakes early");
}

@("fiber/expected-failures-are-results") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto s = new Scheduler(loop);
    auto l = s.listen(Address.loopback4(0));
    auto at = l.address();
    l.close();
    s.spawn({
        auto r = s.connect(at);
        assert(!r.ok && r.code == IoqError.connRefused && r.name == "ECONNREFUSED");
        auto f = s.open("/nonexistent/ioq/file", OpenFlags.read);
        assert(!f.ok && f.error == IoqError.noEnt);
    });
    s.run();
}

@("fiber/misuse-throws-out-of-run") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto s = new Scheduler(loop);
    s.spawn({
        auto c = Conn(s, 0xBAD);
        c.recv(new ubyte[4]);
    });
    auto e = raises({ s.run(); });
    assert(e.code == IoqError.badHandle);
    assert(s.fibers == 0);
}

@("fiber/await-outside-a-fiber-drives-the-loop") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto s = new Scheduler(loop);
    auto l = s.listen(Address.loopback4(0));
    bool served;
    s.spawn({
        auto c = l.accept().value;
        auto buf = new ubyte[16];
        auto n = c.recv(buf).value;
        c.send(buf[0 .. n]);
        c.close();
        served = true;
    });
    // Main code, no fiber: each call runs the loop (and the fiber) until it completes.
    auto conn = s.connect(l.address()).value;
    assert(conn.send("hi").value == 2);
    auto buf = new ubyte[16];
    assert(conn.recv(buf).value == 2 && buf[0 .. 2] == cast(const(ubyte)[]) "hi");
    conn.close();
    s.run();
    assert(served);
    l.close();
}

@("fiber/files-udp-resolve") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto s = new Scheduler(loop);
    auto dir = makeTemp();
    scope (exit) rmTemp(dir);
    s.spawn({
        auto f = s.open(dir ~ "/x", OpenFlags.read | OpenFlags.write | OpenFlags.create).value;
        assert(f.write(cast(const(ubyte)[]) "fibers", 0).value == 6);
        assert(f.fsync().ok);
        auto buf = new ubyte[16];
        assert(f.read(buf, 0).value == 6 && buf[0 .. 6] == cast(const(ubyte)[]) "fibers");
        f.close();
    });
    s.spawn({
        auto a = s.udp(Address.loopback4(0));
        auto b = s.udp(Address.loopback4(0));
        auto from = a.address();
        s.spawn({
            auto d = b.recvfrom(new ubyte[32]).value;
            assert(d.data == cast(const(ubyte)[]) "dgram" && d.from == from);
            b.close();
        });
        assert(a.sendto(cast(const(ubyte)[]) "dgram", b.address()).value == 5);
        a.close();
    });
    s.spawn({
        auto r = s.resolve("::1", "443", ResolveFlags.numeric).value;
        assert(r.length >= 1 && r[0] == Address.parse("[::1]:443"));
    });
    s.run();
}
