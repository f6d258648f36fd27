module test_basics;

import ioq;
static import ioq_raw;
import testutil;

@("basics/version") unittest {
    assert(libraryVersion() == headerVersion);
    assert(libraryVersionString() == ioq_raw.IOQ_VERSION_STRING);
    assert(libraryVersion() / 10000 == ioq_raw.IOQ_VERSION_MAJOR);
}

@("basics/error-names") unittest {
    assert(errorName(IoqError.connRefused) == "ECONNREFUSED");
    assert(errorName(0) == "OK");
    assert(errorName(-12345) == "UNKNOWN");
    assert(errorText(IoqError.badHandle).length > 0);
    assert(IoqError.misuse == -37 && IoqError.unknown == -99);
    auto e = new IoqException(IoqError.badHandle, "x");
    assert(e.code == -2 && e.name == "EBADHANDLE");
}

@("basics/result") unittest {
    auto ok = Result!size_t.success(5);
    assert(ok.ok && ok.value == 5 && ok.code == 0 && ok.name == "OK" && ok);
    auto bad = Result!size_t.failure(IoqError.connReset);
    assert(!bad.ok && !bad && bad.code == IoqError.connReset && bad.name == "ECONNRESET");
    assert(bad.valueOr(7) == 7);
    auto e = raises({ cast(void) bad.value; });
    assert(e.code == IoqError.connReset);
}

@("basics/address") unittest {
    auto a = Address.parse("127.0.0.1:8080");
    assert(a.family == Family.inet && a.port == 8080 && a.ip == [127, 0, 0, 1]);
    assert(a.toString() == "127.0.0.1:8080");
    auto b = Address.parse("[::1]:80");
    assert(b.family == Family.inet6 && b.port == 80 && b.ip[15] == 1);
    assert(b.toString() == "[::1]:80");
    assert(Address.parse("10.1.2.3").port == 0);
    assert(Address.loopback4(9) == Address.parse("127.0.0.1:9"));
    assert(Address.loopback6(9) == Address.parse("[::1]:9"));
    auto e = raises({ Address.parse("not an address"); });
    assert(e.code == IoqError.inval && e.name == "EINVAL");
    assert(Address.tryParse("1.2.3.4:99999").code == IoqError.inval);
    assert(Address.tryParse("1.2.3.4:5").ok);
}

@("basics/loop-lifecycle") unittest {
    auto loop = new Loop();
    assert(!loop.closed);
    assert(loop.backend == "epoll" || loop.backend == "io_uring");
    auto t0 = loop.now();
    assert(loop.now() >= t0);
    if (loop.caps & Cap.loopFd)
        assert(loop.fd() >= 0);
    loop.submit();
    loop.wake();
    assert(loop.poll(0).length == 0 || true);
    loop.close();
    assert(loop.closed);
    loop.close(); // idempotent
    auto e = raises({ loop.timeout(1); });
    assert(e.code == IoqError.misuse && e.name == "EMISUSE");
}

@("basics/loop-backends") unittest {
    auto e = raises({ new Loop(cast(Backend) 99); });
    assert(e.code == IoqError.inval);
    version (linux) {
        auto l = new Loop(Backend.epoll, 2);
        assert(l.backend == "epoll");
        l.close();
        auto e2 = raises({ new Loop(Backend.iocp); });
        assert(e2.code == IoqError.notSup);
    }
}

@("basics/post-and-wake") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    loop.post(0xFFFF_FFFF_FFFF_FFF0, -7);
    auto got = c.wait(0xFFFF_FFFF_FFFF_FFF0);
    assert(got.op == Op.post && got.result == -7 && got.value == 0);
    // A wake-up makes a blocking poll return with nothing.
    loop.wake();
    assert(loop.poll(-1).length == 0);
    // Posts from another thread arrive in order.
    import core.thread : Thread;
    auto th = new Thread({
        foreach (i; 0 .. 100)
            loop.post(1_000_000 + i, i);
    });
    th.start();
    long next = 0;
    while (next < 100)
        foreach (x; loop.poll(-1)) {
            assert(x.op == Op.post && x.result == next && x.token == 1_000_000 + next);
            next++;
        }
    th.join();
}

@("basics/misuse-throws") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto buf = new ubyte[16];
    auto e = raises({ loop.recv(0xDEAD_BEEF, buf); });
    assert(e.code == IoqError.badHandle && e.name == "EBADHANDLE");
    assert(loop.pending == 0, "a refused operation keeps nothing");
    auto l = loop.tcpListen(Address.loopback4(0));
    e = raises({ loop.send(l, new ubyte[0]); });
    assert(e.code == IoqError.inval || e.code == IoqError.badHandle);
    e = raises({ loop.poll(new Completion[0], 0); });
    assert(e.code == IoqError.inval);
    e = raises({ loop.poll(new Completion[4], -2); });
    assert(e.code == IoqError.inval);
    e = raises({ loop.buf(0x1234, 0); });
    assert(e.code == IoqError.inval);
    e = raises({ loop.sockname(0x1234); });
    assert(e.code == IoqError.badHandle);
    e = raises({ loop.setopt(l, 9999, 1); });
    assert(e.code == IoqError.inval);
    assert(loop.pending == 0);
}

@("basics/listen-errors") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto l = loop.tcpListen(Address.loopback4(0));
    auto at = loop.sockname(l);
    assert(at.port != 0);
    auto e = raises({ loop.tcpListen(at); });
    assert(e.code == IoqError.addrInUse && e.name == "EADDRINUSE");
    import std.array : replicate;
    e = raises({ loop.localListen("/tmp/" ~ "x".replicate(300)); });
    assert(e.code == IoqError.nameTooLong);
}

@("raw/swig-layer-direct") unittest {
    // The generated layer on its own: C names, D types, no idiomatic wrapper.
    import ioq_raw;
    static assert(is(typeof(IOQ_ECANCELED) == int) && IOQ_ECANCELED == -4);
    static assert(is(typeof(&ioq_recv) == int function(ioq_loop*, ulong, ubyte*, size_t, ulong)));
    ioq_loop* lp;
    assert(ioq_loop_new(null, &lp) == IOQ_OK && lp !is null);
    scope (exit) ioq_loop_free(lp);
    assert(ioq_loop_new(null, null) == IOQ_EINVAL);
    assert(ioq_errname(IOQ_ETIMEDOUT) == "ETIMEDOUT");
    ioq_addr a;
    assert(ioq_addr_parse("127.0.0.1:0", &a) == 0 && a.family == IOQ_AF_INET);
    ulong l;
    assert(ioq_tcp_listen(lp, &a, 0, 0, &l) == 0 && l != 0);
    assert(ioq_sockname(lp, l, &a) == 0 && a.port != 0);
    char[64] text;
    int n = ioq_addr_format(&a, text.ptr, text.length);
    assert(n > 0 && text[0 .. 10] == "127.0.0.1:");
    assert(ioq_timeout(lp, 0, 77) == 0);
    assert(ioq_post(lp, 78, 5) == 0);
    ioq_cqe[4] cqes;
    size_t seen;
    while (seen < 2) {
        int k = ioq_poll(lp, cqes.ptr, cqes.length, -1);
        assert(k >= 0);
        foreach (ref q; cqes[0 .. k]) {
            assert((q.token == 77 && q.op == IOQ_OP_TIMEOUT && q.result == 0)
                || (q.token == 78 && q.op == IOQ_OP_POST && q.result == 5));
            seen++;
        }
    }
    ulong fd;
    assert(ioq_os_handle(lp, l, &fd) == 0);
    assert(ioq_close(lp, l, 79) == 0);
    assert(ioq_poll(lp, cqes.ptr, 0, 0) == IOQ_EINVAL);
}
