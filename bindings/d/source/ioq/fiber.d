/**
 * Fibers over one loop: code that reads like blocking code.
 *
 * A Scheduler runs many core.thread.Fiber on one Loop. An operation started inside a
 * fiber (conn.recv(buf), listener.accept(), sched.sleep(...)) submits, yields to the
 * scheduler, and resumes when its final completion has been polled. Called outside any
 * fiber, the same call drives the loop itself until its completion arrives (running the
 * fibers meanwhile), so a main function can use the same API.
 */
module ioq.fiber;

import core.thread : Fiber;
import core.time : Duration;

static import ioq_raw;
import ioq.errors;
import ioq.address;
import ioq.loop;

private final class Waiter {
    Fiber fiber;
    Completion c;
    bool done;
}

/** Runs fibers on a loop. One scheduler per loop, on the loop's thread. */
final class Scheduler {
    /** The loop; its low-level API stays usable. */
    Loop loop;
    private Fiber[] ready;
    private Waiter[ulong] waiting;
    private size_t live;
    private Completion[] batch;
    private size_t stackSize;

    this(Loop loop, size_t stackSize = 64 * 1024) {
        this.loop = loop;
        this.stackSize = stackSize;
        batch = new Completion[128];
    }

    /** Starts dg as a fiber at the next turn of the scheduler. */
    void spawn(void delegate() dg) {
        ready ~= new Fiber(dg, stackSize);
        live++;
    }

    /**
     * Starts fn(args) as a fiber. The arguments are copied into the fiber's own frame:
     * a delegate literal written in a loop would share the loop's variables (the
     * connection of the last iteration) between all the fibers it started.
     */
    void spawn(F, Args...)(F fn, Args args) if (Args.length > 0) {
        spawn(delegate() { fn(args); });
    }

    /** Fibers started and not finished. */
    size_t fibers() const @property { return live; }

    /** Runs until every fiber has finished. An exception of a fiber ends run(). */
    void run() {
        while (live > 0) {
            if (auto t = startReady())
                throw t;
            if (live == 0)
                break;
            if (waiting.length == 0 && ready.length == 0)
                throw new IoqException(ioq_raw.IOQ_EMISUSE,
                                       "fibers are suspended but wait on no operation");
            runOnce(-1);
        }
    }

    /** One turn: poll (up to timeoutNs), resume the fibers whose operations completed. */
    void runOnce(long timeoutNs = -1) {
        if (auto t = startReady())
            throw t;
        auto got = loop.poll(batch, timeoutNs);
        Waiter[] wake;
        foreach (ref c; got) {
            if (c.more)
                continue;
            if (auto pw = c.token in waiting) {
                auto w = *pw;
                waiting.remove(c.token);
                w.c = c;
                w.done = true;
                if (w.fiber !is null)
                    wake ~= w;
            }
        }
        Throwable first;
        foreach (w; wake) {
            auto t = resume(w.fiber);
            if (t !is null && first is null)
                first = t;
        }
        if (first is null)
            first = startReady();
        if (first !is null)
            throw first;
    }

    private Throwable startReady() {
        Throwable first;
        while (ready.length) {
            auto f = ready[0];
            ready = ready[1 .. $];
            auto t = resume(f);
            if (t !is null && first is null)
                first = t;
        }
        return first;
    }

    private Throwable resume(Fiber f) {
        auto t = f.call(Fiber.Rethrow.no);
        if (f.state == Fiber.State.TERM)
            live--;
        return t;
    }

    /**
     * Waits for the final completion of the operation with token: yields inside a fiber,
     * drives the loop outside one.
     */
    Completion await(ulong token) {
        auto w = new Waiter;
        auto self = Fiber.getThis();
        bool mine = self !is null && (self.state == Fiber.State.EXEC);
        if (mine)
            w.fiber = self;
        waiting[token] = w;
        if (mine) {
            while (!w.done)
                Fiber.yield();
        } else {
            while (!w.done)
                runOnce(-1);
        }
        return w.c;
    }

    /** Lets the other fibers run, then continues. */
    void yield() {
        auto t = loop.newToken();
        loop.post(t, 0);
        await(t);
    }

    /** Suspends the caller for at least d. */
    void sleep(Duration d) {
        await(loop.timeout(d));
    }

    /** A listening TCP socket (synchronous; throws on failure). */
    Listener listen(Address addr, uint backlog = 0, uint flags = 0) {
        return Listener(this, loop.tcpListen(addr, backlog, flags));
    }

    /** A listening AF_UNIX socket at path. */
    Listener listenLocal(string path, uint backlog = 0, uint flags = ListenFlags.unlink) {
        return Listener(this, loop.localListen(path, backlog, flags));
    }

    Result!Conn connect(Address addr) {
        return connResult(await(loop.connect(addr)));
    }

    Result!Conn connectLocal(string path) {
        return connResult(await(loop.localConnect(path)));
    }

    private Result!Conn connResult(Completion c) {
        if (!c.ok)
            return Result!Conn.failure(c.result);
        return Result!Conn.success(Conn(this, c.value));
    }

    /** A bound UDP socket (synchronous). */
    Udp udp(Address addr, uint flags = 0) {
        return Udp(this, loop.udpBind(addr, flags));
    }

    Result!File open(string path, uint flags, uint mode = 420 /* 0644 */) {
        auto c = await(loop.open(path, flags, mode));
        if (!c.ok)
            return Result!File.failure(c.result);
        return Result!File.success(File(this, c.value));
    }

    Result!(Address[]) resolve(string host, string service, uint flags = 0) {
        auto c = await(loop.resolve(host, service, flags));
        if (!c.ok)
            return Result!(Address[]).failure(c.result);
        return Result!(Address[]).success(c.addresses);
    }

    /** Closes any handle and waits for the close to complete. */
    void close(Handle h) {
        await(loop.close(h));
    }
}

private Result!size_t bytes(Completion c) {
    return c.ok ? Result!size_t.success(cast(size_t) c.result) : Result!size_t.failure(c.result);
}

/** A connected stream (TCP or local). */
struct Conn {
    Scheduler sched;
    Handle handle;

    /** One receive; 0 bytes means the peer closed its side. */
    Result!size_t recv(ubyte[] buf) {
        return bytes(sched.await(sched.loop.recv(handle, buf)));
    }

    /** Sends all of buf. */
    Result!size_t send(const(ubyte)[] buf) {
        return bytes(sched.await(sched.loop.send(handle, buf)));
    }

    Result!size_t send(const(char)[] text) {
        return send(cast(const(ubyte)[]) text);
    }

    Result!size_t sendv(const(ubyte)[][] bufs) {
        return bytes(sched.await(sched.loop.sendv(handle, bufs)));
    }

    /** Half-closes the write side after the sends before it. */
    Result!size_t shutdown() {
        return bytes(sched.await(sched.loop.shutdown(handle)));
    }

    void close() {
        if (handle != 0)
            sched.close(handle);
        handle = 0;
    }

    Address peer() { return sched.loop.peername(handle); }
    Address local() { return sched.loop.sockname(handle); }
    void setopt(uint opt, long value) { sched.loop.setopt(handle, opt, value); }
}

/** A listening socket. */
struct Listener {
    Scheduler sched;
    Handle handle;

    /** The next connection; ECANCELED once the listener is closed. */
    Result!Conn accept() {
        return sched.connResult(sched.await(sched.loop.accept(handle)));
    }

    Address address() { return sched.loop.sockname(handle); }

    void close() {
        if (handle != 0)
            sched.close(handle);
        handle = 0;
    }
}

/** A datagram received by Udp.recvfrom. */
struct Datagram {
    size_t length;
    Address from;
    ubyte[] data;
}

/** A bound UDP socket. */
struct Udp {
    Scheduler sched;
    Handle handle;

    Result!size_t sendto(const(ubyte)[] buf, Address to) {
        return bytes(sched.await(sched.loop.sendto(handle, buf, to)));
    }

    Result!Datagram recvfrom(ubyte[] buf) {
        auto c = sched.await(sched.loop.recvfrom(handle, buf));
        if (!c.ok)
            return Result!Datagram.failure(c.result);
        return Result!Datagram.success(Datagram(cast(size_t) c.result, c.from, c.data));
    }

    Address address() { return sched.loop.sockname(handle); }

    void close() {
        if (handle != 0)
            sched.close(handle);
        handle = 0;
    }
}

/** An open file: positional reads and writes that never block the loop. */
struct File {
    Scheduler sched;
    Handle handle;

    Result!size_t read(ubyte[] buf, ulong offset) {
        return bytes(sched.await(sched.loop.read(handle, buf, offset)));
    }

    Result!size_t write(const(ubyte)[] buf, ulong offset) {
        return bytes(sched.await(sched.loop.write(handle, buf, offset)));
    }

    Result!size_t fsync() {
        return bytes(sched.await(sched.loop.fsync(handle)));
    }

    void close() {
        if (handle != 0)
            sched.close(handle);
        handle = 0;
    }
}
