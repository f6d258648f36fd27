/**
 * Fibers over one loop: code that reads like blocking code.
 *
 * A Scheduler runs many fibers on one Loop. An operation started inside a fiber
 * (conn.recv(buf), listener.accept(), sched.sleep(...)) submits, yields to the scheduler,
 * and resumes when its final completion has been polled. Called outside any fiber, the
 * same call drives the loop itself until its completion arrives (running the fibers
 * meanwhile), so a main function can use the same API.
 *
 * spawn() returns a Task: join() waits for it, interrupt() cancels what it waits for and
 * unwinds it. Conn, Listener, Udp and File close their handle when the last copy of them
 * is destroyed (they are reference-counted values), and close() does it at once.
 */
module ioq.fiber;

import core.memory : GC;
import core.thread : Fiber;
import core.time : Duration;

static import ioq_raw;
import ioq.errors;
import ioq.address;
import ioq.loop;
static import ioq.stackguard;

/** Usable stack of a fiber unless the Scheduler is told otherwise: 256 KiB. Memory is
 * taken from the OS only for the pages a fiber touches. */
enum size_t defaultStackSize = 256 * 1024;
/** Address space without access below each fiber's stack (no memory): 1 MiB. A frame that
 * does not fit on the stack faults there, and the process stops with a message that says
 * so (see ioq.stackguard) instead of a bare segfault. */
enum size_t defaultGuardSize = 1024 * 1024;

/**
 * Unwinds a task that was interrupted (Task.interrupt): thrown by the operation it waits
 * for (and by every later one). Code that catches Exception should let it pass.
 */
class Interrupted : Exception {
    this(string file = __FILE__, size_t line = __LINE__) @safe pure nothrow {
        super("ioq: task interrupted", file, line);
    }
}

private final class Waiter {
    Task task;
    Fiber fiber;
    Completion c;
    bool done;
}

/** A fiber started by Scheduler.spawn. */
final class Task {
    private Scheduler sched;
    private Fiber fiber;
    private void delegate() entry;
    private bool started, finished, interruptRequested, endedByInterrupt;
    private Throwable error_;
    private Waiter waiter;        // what it waits for, while it waits on an operation
    private Waiter[] joiners;
    private size_t stackTop;      // the high end of its stack, once it runs

    private this(Scheduler s, void delegate() dg) @safe {
        sched = s;
        entry = dg;
    }

    /** The task has ended: returned, failed or was interrupted. */
    bool done() const @property @safe { return finished; }
    /** It ended because it was interrupted. */
    bool interrupted() const @property @safe { return endedByInterrupt; }
    /** The exception that ended it (also thrown out of Scheduler.run), or null. */
    inout(Throwable) error() inout @property @safe { return error_; }

    /**
     * Waits until the task has ended: inside a fiber the caller yields, outside one the
     * loop runs (with every fiber) until then.
     */
    void join() @safe {
        if (finished)
            return;
        if (this is sched.currentTask)
            throw new IoqException(ioq_raw.IOQ_EMISUSE, "a task cannot join itself");
        auto w = new Waiter;
        joiners ~= w;
        sched.park(w);
    }

    /**
     * Interrupts the task: the operation it waits for is cancelled and the task unwinds
     * with Interrupted (its scope(exit) blocks run, its Conns close). What an operation
     * got before the cancel took effect is not lost: received bytes stay with the
     * connection for its next recv, an accepted connection with the listener for its next
     * accept. A task that has not started never runs. Returns false when it had ended.
     */
    bool interrupt() @safe {
        if (finished)
            return false;
        interruptRequested = true;
        if (this is sched.currentTask)
            throw new Interrupted;
        if (pendingToken != 0)
            sched.loop.cancelQuietly(pendingToken); // its completion resumes it
        else if (waiter !is null)
            sched.wake(waiter); // parked on a join
        // Otherwise it is ready or has not started: it sees the mark when it runs.
        return true;
    }

    private ulong pendingToken;   // the operation it waits for, while it waits on one

    /* Where the fiber starts. */
    private void run_() @trusted {
        import core.thread : thread_stackBottom;
        started = true;
        stackTop = cast(size_t) thread_stackBottom();
        sched.enterStack(this);
        if (interruptRequested)
            throw new Interrupted;
        entry();
    }
}

/** Runs fibers on a loop. One scheduler per loop, on the loop's thread. */
final class Scheduler {
    /** The loop; its low-level API stays usable. */
    Loop loop;
    private Fiber[] ready;
    private Task[Fiber] tasks;
    private Waiter[ulong] waiting;
    private size_t live;
    private Completion[] batch;
    private size_t stackSize_, guardSize_;
    private Task current;

    /**
     * A scheduler on loop whose fibers get stackSize bytes of stack (rounded up to pages)
     * with guardSize bytes of address space without access below it.
     */
    this(Loop loop, size_t stackSize = defaultStackSize,
         size_t guardSize = defaultGuardSize) @trusted {
        import std.format : format;
        if (stackSize < 16 * 1024)
            throw new IoqException(ioq_raw.IOQ_EINVAL, "fiber stack below 16 KiB");
        this.loop = loop;
        stackSize_ = stackSize;
        guardSize_ = guardSize < 4096 ? 4096 : guardSize;
        batch = new Completion[128];
        version (Posix)
            ioq.stackguard.install(format("ioq: fiber stack overflow: a fiber used more than "
                ~ "its %s bytes of stack (Scheduler stackSize; the default is %s). Give the "
                ~ "Scheduler a larger stack, or keep large arrays off the stack.\n",
                stackSize_, defaultStackSize));
    }

    /** The stack size of this scheduler's fibers. */
    size_t stackSize() const @property @safe { return stackSize_; }

    /** The task that runs now (null outside the fibers). */
    Task currentTask() @property @safe { return current; }

    /** Starts dg as a fiber at the next turn of the scheduler. */
    Task spawn(void delegate() dg) @trusted {
        auto t = new Task(this, dg);
        t.fiber = new Fiber(&t.run_, stackSize_, guardSize_);
        tasks[t.fiber] = t;
        ready ~= t.fiber;
        live++;
        return t;
    }

    /**
     * Starts fn(args) as a fiber. The arguments are copied into the task (a delegate
     * literal written in a loop would share the loop's variables between all the fibers it
     * started), and destroyed when fn returns: a Conn given to a fiber closes when the
     * fiber is done with it, unless it was copied elsewhere.
     */
    Task spawn(F, Args...)(F fn, Args args) if (Args.length > 0) {
        auto box = new ArgsBox!Args(args);
        return spawn(delegate() {
            scope (exit)
                box.clear();
            fn(box.args);
        });
    }

    /** Fibers started and not finished. */
    size_t fibers() const @property @safe { return live; }

    /** Runs until every fiber has finished. An exception of a fiber ends run(). */
    void run() @safe {
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
    void runOnce(long timeoutNs = -1) @safe {
        if (auto t = startReady())
            throw t;
        auto got = loop.poll(batch, ready.length ? 0 : timeoutNs);
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

    private Throwable startReady() @safe {
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

    private Throwable resume(Fiber f) @trusted {
        auto task = tasks.get(f, null);
        auto outer = current;
        current = task;
        if (task !is null && task.stackTop)
            enterStack(task);
        auto t = f.call(Fiber.Rethrow.no);
        current = outer;
        if (outer !is null && outer.stackTop)
            enterStack(outer);
        else
            version (Posix) ioq.stackguard.enter(0, 0, 0);
        if (f.state == Fiber.State.TERM) {
            live--;
            if (task !is null) {
                tasks.remove(f);
                task.finished = true;
                if (t !is null && cast(Interrupted) t !is null) {
                    task.endedByInterrupt = true;
                    t = null;
                }
                task.error_ = t;
                foreach (w; task.joiners)
                    wake(w);
                task.joiners = null;
            }
        }
        return t;
    }

    private void enterStack(Task t) @safe nothrow {
        version (Posix) {
            // core.thread.Fiber rounds the stack up to pages and puts the guard below it.
            enum size_t page = 4096;
            size_t size = (stackSize_ + page - 1) / page * page;
            size_t guard = (guardSize_ + page - 1) / page * page;
            ioq.stackguard.enter(t.stackTop - size, t.stackTop, t.stackTop - size - guard);
        }
    }

    /* A waiter that waits for no operation (join) is runnable again. */
    private void wake(Waiter w) @safe {
        if (w.done)
            return;
        w.done = true;
        if (w.fiber !is null)
            ready ~= w.fiber;
    }

    /* Waits until w is done: yields inside a fiber, drives the loop outside one. */
    private void park(Waiter w) @trusted {
        auto self = Fiber.getThis();
        bool mine = self !is null && self.state == Fiber.State.EXEC && current !is null;
        if (mine) {
            auto task = current;
            w.fiber = self;
            w.task = task;
            task.waiter = w;
            scope (exit)
                task.waiter = null;
            if (task.interruptRequested)
                throw new Interrupted;
            while (!w.done)
                Fiber.yield();
            if (task.interruptRequested)
                throw new Interrupted;
        } else {
            while (!w.done)
                runOnce(-1);
        }
    }

    /**
     * Waits for the final completion of the operation with token: yields inside a fiber,
     * drives the loop outside one. In a task that is interrupted meanwhile the operation
     * is cancelled, salvage gets its completion (to keep what it got), and Interrupted is
     * thrown once it has completed.
     */
    Completion await(ulong token,
                     scope void delegate(ref Completion) @safe salvage = null) @trusted {
        auto w = new Waiter;
        auto self = Fiber.getThis();
        bool mine = self !is null && self.state == Fiber.State.EXEC && current !is null;
        waiting[token] = w;
        if (mine) {
            auto task = current;
            w.fiber = self;
            w.task = task;
            task.waiter = w;
            task.pendingToken = token;
            scope (exit) {
                task.waiter = null;
                task.pendingToken = 0;
            }
            if (task.interruptRequested)
                loop.cancelQuietly(token);
            while (!w.done)
                Fiber.yield();
            if (task.interruptRequested) {
                if (salvage !is null)
                    salvage(w.c);
                throw new Interrupted;
            }
        } else {
            while (!w.done)
                runOnce(-1);
        }
        return w.c;
    }

    /** Lets the other fibers run, then continues. */
    void yield() @safe {
        auto t = loop.newToken();
        loop.post(t, 0);
        await(t);
    }

    /** Suspends the caller for at least d. */
    void sleep(Duration d) @safe {
        await(loop.timeout(d));
    }

    /** Suspends the caller until loop.now() >= deadlineNs. */
    void sleepUntil(ulong deadlineNs) @safe {
        await(loop.timeoutAt(deadlineNs));
    }

    /* As await, but the operation is cancelled after d (ETIMEDOUT then). */
    private Completion awaitFor(ulong token, Duration d,
                                scope void delegate(ref Completion) @safe salvage = null) @safe {
        if (d == Duration.max)
            return await(token, salvage);
        auto timer = loop.timeout(d);
        // Both wait in one waiter: whichever completes first decides.
        auto c = awaitEither(token, timer, salvage);
        if (c.token == token) {
            loop.cancelQuietly(timer);
            awaitQuiet(timer);
            return c;
        }
        loop.cancelQuietly(token);
        c = await(token, salvage);
        if (c.result == IoqError.canceled)
            c.result = IoqError.timedOut;
        return c;
    }

    /* The first of two operations to complete (the other goes on). */
    private Completion awaitEither(ulong a, ulong b,
                                   scope void delegate(ref Completion) @safe salvage) @trusted {
        auto w = new Waiter;
        waiting[a] = w;
        waiting[b] = w;
        auto self = Fiber.getThis();
        bool mine = self !is null && self.state == Fiber.State.EXEC && current !is null;
        if (mine) {
            auto task = current;
            w.fiber = self;
            w.task = task;
            task.waiter = w;
            task.pendingToken = a;
            scope (exit) {
                task.waiter = null;
                task.pendingToken = 0;
            }
            if (task.interruptRequested)
                loop.cancelQuietly(a);
            while (!w.done)
                Fiber.yield();
        } else {
            while (!w.done)
                runOnce(-1);
        }
        auto c = w.c;
        waiting.remove(c.token == a ? b : a);
        if (mine && current.interruptRequested) {
            if (c.token == a) {
                if (salvage !is null)
                    salvage(c);
            } else {
                loop.cancelQuietly(a);
                auto rest = awaitQuiet(a);
                if (salvage !is null)
                    salvage(rest);
            }
            throw new Interrupted;
        }
        return c;
    }

    /* Waits for an operation that nobody else waits for, without interruption. */
    private Completion awaitQuiet(ulong token) @trusted {
        auto w = new Waiter;
        waiting[token] = w;
        auto self = Fiber.getThis();
        if (self !is null && self.state == Fiber.State.EXEC && current !is null) {
            w.fiber = self;
            while (!w.done)
                Fiber.yield();
        } else {
            while (!w.done)
                runOnce(-1);
        }
        return w.c;
    }

    /** A listening TCP socket (synchronous; throws on failure). */
    Listener listen(Address addr, uint backlog = 0, uint flags = 0) @safe {
        return Listener(this, loop.tcpListen(addr, backlog, flags));
    }

    /** A listening AF_UNIX socket at path. */
    Listener listenLocal(string path, uint backlog = 0, uint flags = ListenFlags.unlink) @safe {
        return Listener(this, loop.localListen(path, backlog, flags));
    }

    /** Connects to addr; with a timeout, ETIMEDOUT when it runs out. */
    Result!Conn connect(Address addr, Duration timeout = Duration.max) @safe {
        auto c = awaitFor(loop.connect(addr), timeout, &closeSalvage);
        return connResult(c);
    }

    /**
     * Connects to host (a name or a numeric address) and port: a name is resolved, then
     * its addresses are tried in order until one connects (else the last failure). The
     * timeout is for all of it. ENOTFOUND when the name has no address.
     */
    Result!Conn connect(string host, ushort port, Duration timeout = Duration.max) @safe {
        import std.conv : to;
        import core.time : MonoTime;
        auto deadline = timeout == Duration.max ? MonoTime.max : MonoTime.currTime + timeout;
        Duration left() {
            if (deadline == MonoTime.max)
                return Duration.max;
            auto d = deadline - MonoTime.currTime;
            return d.isNegative ? Duration.zero : d;
        }
        Address[] addrs;
        auto numeric = Address.tryParse(host);
        if (!numeric.ok)
            numeric = Address.tryParse("[" ~ host ~ "]");
        if (numeric.ok) {
            auto a = numeric.value;
            a.port = port;
            addrs = [a];
        } else {
            auto r = awaitFor(loop.resolve(host, port.to!string), left());
            if (!r.ok)
                return Result!Conn.failure(r.result);
            if (r.addresses.length == 0)
                return Result!Conn.failure(IoqError.notFound);
            addrs = r.addresses;
        }
        auto last = Result!Conn.failure(IoqError.notFound);
        foreach (a; addrs) {
            last = connect(a, left());
            if (last.ok || last.code == IoqError.timedOut)
                break;
        }
        return last;
    }

    /** Connects to "host:port" or "[v6]:port"; see connect(host, port). */
    Result!Conn connect(string hostPort, Duration timeout = Duration.max) @safe {
        import std.conv : to, ConvException;
        import std.string : lastIndexOf;
        auto i = hostPort.lastIndexOf(':');
        if (i <= 0)
            return Result!Conn.failure(IoqError.inval);
        auto host = hostPort[0 .. i];
        if (host.length >= 2 && host[0] == '[' && host[$ - 1] == ']')
            host = host[1 .. $ - 1];
        ushort port;
        try
            port = hostPort[i + 1 .. $].to!ushort;
        catch (ConvException)
            return Result!Conn.failure(IoqError.inval);
        return connect(host, port, timeout);
    }

    Result!Conn connectLocal(string path) @safe {
        return connResult(await(loop.localConnect(path), &closeSalvage));
    }

    /* An operation that made a handle completed in an interrupted task: close it. */
    private void closeSalvage(ref Completion c) @safe {
        if (c.ok)
            loop.closeQuietly(c.value);
    }

    private Result!Conn connResult(Completion c) @safe {
        if (!c.ok)
            return Result!Conn.failure(c.result);
        return Result!Conn.success(Conn(this, c.value));
    }

    /** A bound UDP socket (synchronous). */
    Udp udp(Address addr, uint flags = 0) @safe {
        return Udp(this, loop.udpBind(addr, flags));
    }

    Result!File open(string path, uint flags, uint mode = 420 /* 0644 */) @safe {
        auto c = await(loop.open(path, flags, mode), &closeSalvage);
        if (!c.ok)
            return Result!File.failure(c.result);
        return Result!File.success(File(this, c.value));
    }

    Result!(Address[]) resolve(string host, string service, uint flags = 0) @safe {
        auto c = await(loop.resolve(host, service, flags));
        if (!c.ok)
            return Result!(Address[]).failure(c.result);
        return Result!(Address[]).success(c.addresses);
    }

    /** Closes any handle and waits for the close to complete. */
    void close(Handle h) @safe {
        awaitQuiet(loop.close(h));
    }
}

/* The arguments of a spawned function, kept by its task. */
private final class ArgsBox(Args...) {
    Args args;
    this(Args a) {
        args = a;
    }
    void clear() {
        foreach (ref a; args)
            destroy(a); // back to .init: the GC's later finalization finds nothing to do
    }
}

/* The shared part of the copies of a Conn, Listener, Udp or File: the handle is closed
 * when the last copy goes (or by close()). GC memory, so copies never dangle; the count
 * only decides when the handle closes. */
private final class HandleBox {
    Scheduler sched;
    Handle handle;
    size_t refs = 1;
    LoopCtl* ctl;          // for a last copy destroyed by a GC finalizer (any thread)
    ubyte[] unread;        // Conn: bytes that an interrupted receive got
    Handle[] backlog;      // Listener: connections that an interrupted accept got

    this(Scheduler s, Handle h) @safe {
        sched = s;
        handle = h;
        if (h != 0 && !s.loop.closed)
            ctl = s.loop.ctl();
    }

    /* The last copy is gone: close without waiting (nobody is left to wait). */
    void release() @trusted nothrow {
        auto h = handle;
        handle = 0;
        auto c = ctl;
        ctl = null;
        if (GC.inFinalizer) {
            // Maybe another thread, and no allocation: the loop closes it at its next poll.
            if (c !is null) {
                if (h != 0)
                    ctlCloseLater(c, h);
                foreach (b; backlog)
                    ctlCloseLater(c, b);
                ctlRelease(c);
            }
            return;
        }
        if (h != 0)
            sched.loop.closeQuietly(h);
        foreach (b; backlog)
            sched.loop.closeQuietly(b);
        backlog = null;
        if (c !is null)
            ctlRelease(c);
    }

    /* close(): the handle goes now, the caller waits for it. */
    Handle take() @trusted nothrow {
        auto h = handle;
        handle = 0;
        foreach (b; backlog)
            sched.loop.closeQuietly(b);
        backlog = null;
        if (ctl !is null) {
            ctlRelease(ctl);
            ctl = null;
        }
        return h;
    }
}

/* The reference-counted handle inside Conn, Listener, Udp and File. */
private struct Owned {
    HandleBox box;

    this(Scheduler s, Handle h) @safe {
        box = new HandleBox(s, h);
    }

    this(ref return scope inout Owned rhs) inout @trusted nothrow {
        box = rhs.box;
        if (box !is null)
            (cast(HandleBox) box).refs++;
    }

    ~this() @safe nothrow {
        if (box !is null && --box.refs == 0)
            box.release();
        box = null;
    }

    Handle handle() const @safe { return box is null ? 0 : box.handle; }
    inout(Scheduler) sched() inout @safe { return box is null ? null : box.sched; }

    void close() @safe {
        if (box is null || box.handle == 0)
            return;
        auto s = box.sched;
        auto h = box.take();
        s.close(h);
    }
}

private Result!size_t bytes(Completion c) @safe {
    return c.ok ? Result!size_t.success(cast(size_t) c.result) : Result!size_t.failure(c.result);
}

/**
 * A connected stream (TCP or local). Copies share the connection; the last copy to go
 * closes it (without waiting), close() closes it for all of them. Buffers are GC memory.
 */
struct Conn {
    private Owned own;

    this(Scheduler sched, Handle handle) @safe {
        own = Owned(sched, handle);
    }

    /** The handle (0 once closed). */
    Handle handle() const @property @safe { return own.handle; }
    inout(Scheduler) sched() inout @property @safe { return own.sched; }

    /** One receive; 0 bytes means the peer closed its side. */
    Result!size_t recv(ubyte[] buf) @safe {
        auto b = own.box;
        if (b !is null && b.unread.length && buf.length) {
            auto n = b.unread.length < buf.length ? b.unread.length : buf.length;
            buf[0 .. n] = b.unread[0 .. n];
            b.unread = b.unread[n .. $];
            return Result!size_t.success(n);
        }
        auto s = sched;
        return bytes(s.await(s.loop.recv(handle, buf), (ref Completion c) {
            if (c.ok && c.result > 0 && b !is null)
                b.unread ~= c.data;
        }));
    }

    /** Sends all of buf. */
    Result!size_t send(const(ubyte)[] buf) @safe {
        auto s = sched;
        return bytes(s.await(s.loop.send(handle, buf)));
    }

    Result!size_t send(const(char)[] text) @trusted {
        return send(cast(const(ubyte)[]) text);
    }

    Result!size_t sendv(const(ubyte)[][] bufs) @safe {
        auto s = sched;
        return bytes(s.await(s.loop.sendv(handle, bufs)));
    }

    /** Half-closes the write side after the sends before it. */
    Result!size_t shutdown() @safe {
        auto s = sched;
        return bytes(s.await(s.loop.shutdown(handle)));
    }

    /** Closes the connection (for every copy) and waits for it. */
    void close() @safe { own.close(); }

    Address peer() @safe { return sched.loop.peername(handle); }
    Address local() @safe { return sched.loop.sockname(handle); }
    void setopt(uint opt, long value) @safe { sched.loop.setopt(handle, opt, value); }
}

/** A listening socket; copies share it, as Conn's do. */
struct Listener {
    private Owned own;

    this(Scheduler sched, Handle handle) @safe {
        own = Owned(sched, handle);
    }

    Handle handle() const @property @safe { return own.handle; }
    inout(Scheduler) sched() inout @property @safe { return own.sched; }

    /** The next connection; ECANCELED once the listener is closed. */
    Result!Conn accept() @safe {
        auto b = own.box;
        auto s = sched;
        if (b !is null && b.backlog.length && b.handle != 0) {
            auto h = b.backlog[0];
            b.backlog = b.backlog[1 .. $];
            return Result!Conn.success(Conn(s, h));
        }
        return s.connResult(s.await(s.loop.accept(handle), (ref Completion c) {
            if (c.ok && b !is null)
                b.backlog ~= c.value;
        }));
    }

    Address address() @safe { return sched.loop.sockname(handle); }

    void close() @safe { own.close(); }
}

/** A datagram received by Udp.recvfrom. */
struct Datagram {
    size_t length;
    Address from;
    ubyte[] data;
}

/** A bound UDP socket; copies share it. */
struct Udp {
    private Owned own;

    this(Scheduler sched, Handle handle) @safe {
        own = Owned(sched, handle);
    }

    Handle handle() const @property @safe { return own.handle; }
    inout(Scheduler) sched() inout @property @safe { return own.sched; }

    Result!size_t sendto(const(ubyte)[] buf, Address to) @safe {
        auto s = sched;
        return bytes(s.await(s.loop.sendto(handle, buf, to)));
    }

    Result!Datagram recvfrom(ubyte[] buf) @safe {
        auto s = sched;
        auto c = s.await(s.loop.recvfrom(handle, buf));
        if (!c.ok)
            return Result!Datagram.failure(c.result);
        return Result!Datagram.success(Datagram(cast(size_t) c.result, c.from, c.data));
    }

    Address address() @safe { return sched.loop.sockname(handle); }

    void close() @safe { own.close(); }
}

/** An open file: positional reads and writes that never block the loop. Copies share it. */
struct File {
    private Owned own;

    this(Scheduler sched, Handle handle) @safe {
        own = Owned(sched, handle);
    }

    Handle handle() const @property @safe { return own.handle; }
    inout(Scheduler) sched() inout @property @safe { return own.sched; }

    Result!size_t read(ubyte[] buf, ulong offset) @safe {
        auto s = sched;
        return bytes(s.await(s.loop.read(handle, buf, offset)));
    }

    Result!size_t write(const(ubyte)[] buf, ulong offset) @safe {
        auto s = sched;
        return bytes(s.await(s.loop.write(handle, buf, offset)));
    }

    Result!size_t fsync() @safe {
        auto s = sched;
        return bytes(s.await(s.loop.fsync(handle)));
    }

    void close() @safe { own.close(); }
}
