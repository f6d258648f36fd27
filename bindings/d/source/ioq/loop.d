/**
 * The loop: every call of the ioq ABI as a D method.
 *
 * Submitting methods return the operation's token; ioq_poll hands back a Completion with
 * that token. The loop picks the tokens itself (a counter), so each token names exactly
 * one operation: that is what lets the loop keep the operation's buffers reachable for
 * the GC in a table keyed by token until its final completion, and cancel(token) target
 * one operation. Tokens of post() are the caller's own and never touch the table.
 */
module ioq.loop;

import core.memory : GC;
import core.time : Duration;

static import ioq_raw;
import ioq_raw : ioq_loop, ioq_cqe, ioq_addr, ioq_iov, ioq_loop_options;
import ioq.errors;
import ioq.address;

/** An I/O object or pool of one loop: generation-checked, 0 = none. */
alias Handle = ulong;

/** The loop's backend. */
enum Backend : uint {
    auto_ = ioq_raw.IOQ_BACKEND_AUTO,
    epoll = ioq_raw.IOQ_BACKEND_EPOLL,
    uring = ioq_raw.IOQ_BACKEND_URING,
    kqueue = ioq_raw.IOQ_BACKEND_KQUEUE,
    iocp = ioq_raw.IOQ_BACKEND_IOCP,
}

/** Completion.op: what completed. */
enum Op : ushort {
    none = ioq_raw.IOQ_OP_NONE,
    post = ioq_raw.IOQ_OP_POST,
    accept = ioq_raw.IOQ_OP_ACCEPT,
    connect = ioq_raw.IOQ_OP_CONNECT,
    localConnect = ioq_raw.IOQ_OP_LOCAL_CONNECT,
    recv = ioq_raw.IOQ_OP_RECV,
    recvPool = ioq_raw.IOQ_OP_RECV_POOL,
    send = ioq_raw.IOQ_OP_SEND,
    sendv = ioq_raw.IOQ_OP_SENDV,
    sendto = ioq_raw.IOQ_OP_SENDTO,
    recvfrom = ioq_raw.IOQ_OP_RECVFROM,
    shutdown = ioq_raw.IOQ_OP_SHUTDOWN,
    close = ioq_raw.IOQ_OP_CLOSE,
    open = ioq_raw.IOQ_OP_OPEN,
    read = ioq_raw.IOQ_OP_READ,
    write = ioq_raw.IOQ_OP_WRITE,
    fsync = ioq_raw.IOQ_OP_FSYNC,
    timeout = ioq_raw.IOQ_OP_TIMEOUT,
    cancel = ioq_raw.IOQ_OP_CANCEL,
    resolve = ioq_raw.IOQ_OP_RESOLVE,
    watch = ioq_raw.IOQ_OP_WATCH,
    signal = ioq_raw.IOQ_OP_SIGNAL,
    processWait = ioq_raw.IOQ_OP_PROCESS_WAIT,
    notifyWait = ioq_raw.IOQ_OP_NOTIFY_WAIT,
}

/** Flags of accept() and recvPool(). */
enum uint multishot = ioq_raw.IOQ_MULTISHOT;

/** Flags of tcpListen(), udpBind(), localListen(). */
enum ListenFlags : uint {
    none = 0,
    reusePort = ioq_raw.IOQ_REUSEPORT,
    v6Only = ioq_raw.IOQ_V6ONLY,
    unlink = ioq_raw.IOQ_UNLINK,
}

/** Flags of open(). */
enum OpenFlags : uint {
    read = ioq_raw.IOQ_OPEN_READ,
    write = ioq_raw.IOQ_OPEN_WRITE,
    create = ioq_raw.IOQ_OPEN_CREATE,
    trunc = ioq_raw.IOQ_OPEN_TRUNC,
    append = ioq_raw.IOQ_OPEN_APPEND,
    excl = ioq_raw.IOQ_OPEN_EXCL,
}

/** Flags of resolve(). */
enum ResolveFlags : uint {
    any = 0,
    inet = ioq_raw.IOQ_RESOLVE_INET,
    inet6 = ioq_raw.IOQ_RESOLVE_INET6,
    numeric = ioq_raw.IOQ_RESOLVE_NUMERIC,
}

/** caps() bits. */
enum Cap : uint {
    multishotAccept = ioq_raw.IOQ_CAP_MULTISHOT_ACCEPT,
    multishotRecv = ioq_raw.IOQ_CAP_MULTISHOT_RECV,
    providedBuffers = ioq_raw.IOQ_CAP_PROVIDED_BUFFERS,
    zerocopySend = ioq_raw.IOQ_CAP_ZEROCOPY_SEND,
    nativeFiles = ioq_raw.IOQ_CAP_NATIVE_FILES,
    loopFd = ioq_raw.IOQ_CAP_LOOP_FD,
    batchedSubmit = ioq_raw.IOQ_CAP_BATCHED_SUBMIT,
}

/** setopt() options. */
enum Opt : uint {
    noDelay = ioq_raw.IOQ_OPT_NODELAY,
    keepAlive = ioq_raw.IOQ_OPT_KEEPALIVE,
    rcvBuf = ioq_raw.IOQ_OPT_RCVBUF,
    sndBuf = ioq_raw.IOQ_OPT_SNDBUF,
    reuseAddr = ioq_raw.IOQ_OPT_REUSEADDR,
    broadcast = ioq_raw.IOQ_OPT_BROADCAST,
    linger = ioq_raw.IOQ_OPT_LINGER,
}

/** adopt() kinds. */
enum Kind : uint {
    tcp = ioq_raw.IOQ_KIND_TCP,
    tcpListener = ioq_raw.IOQ_KIND_TCP_LISTENER,
    udp = ioq_raw.IOQ_KIND_UDP,
    local = ioq_raw.IOQ_KIND_LOCAL,
    localListener = ioq_raw.IOQ_KIND_LOCAL_LISTENER,
    file = ioq_raw.IOQ_KIND_FILE,
    watch = ioq_raw.IOQ_KIND_WATCH,
    pipe = ioq_raw.IOQ_KIND_PIPE,
    tty = ioq_raw.IOQ_KIND_TTY,
    process = ioq_raw.IOQ_KIND_PROCESS,
    notifier = ioq_raw.IOQ_KIND_NOTIFIER,
}

/** Since 1.1: watch() events and the bits of its results. */
enum WatchEvents : uint {
    readable = ioq_raw.IOQ_WATCH_READABLE,
    writable = ioq_raw.IOQ_WATCH_WRITABLE,
    error = ioq_raw.IOQ_WATCH_ERROR,
    hangup = ioq_raw.IOQ_WATCH_HANGUP,
}

/** Since 1.1: terminal modes. */
enum TtyMode : uint {
    normal = ioq_raw.IOQ_TTY_MODE_NORMAL,
    raw = ioq_raw.IOQ_TTY_MODE_RAW,
}

/** Since 1.1: what a child process gets as stdin, stdout, stderr. */
enum StdioMode : uint {
    inherit = ioq_raw.IOQ_STDIO_INHERIT,
    devNull = ioq_raw.IOQ_STDIO_NULL,
    pipe = ioq_raw.IOQ_STDIO_PIPE,
    handle = ioq_raw.IOQ_STDIO_HANDLE,
    os = ioq_raw.IOQ_STDIO_OS,
}

/** Since 1.1: loop option flags (ioq_loop_options.flags). */
enum LoopFlags : uint {
    none = 0,
    /** An embedded loop whose host flushes submissions (ioq_submit) before it sleeps. */
    hostFlush = ioq_raw.IOQ_LOOP_HOST_FLUSH,
}

/** Since 1.1: spawn flags. */
enum SpawnFlags : uint {
    none = 0,
    searchPath = ioq_raw.IOQ_SPAWN_SEARCH_PATH,
    newSession = ioq_raw.IOQ_SPAWN_NEW_SESSION,
}

/** Since 1.1: one stdio stream of a child process (spawn). */
struct Stdio {
    StdioMode mode;
    /** handle: an ioq handle (PIPE, TTY, TCP, LOCAL, FILE); os: a descriptor the caller owns. */
    ulong value;

    static Stdio inherit() @safe { return Stdio(StdioMode.inherit, 0); }
    static Stdio devNull() @safe { return Stdio(StdioMode.devNull, 0); }
    /** A new pipe: the parent's end comes back in Process (stdinPipe, stdoutPipe...). */
    static Stdio pipe() @safe { return Stdio(StdioMode.pipe, 0); }
    static Stdio handle(Handle h) @safe { return Stdio(StdioMode.handle, h); }
    static Stdio os(ulong fd) @safe { return Stdio(StdioMode.os, fd); }
}

/** Since 1.1: a child of spawn(): its PROCESS handle and the parent's ends of the streams
 * spawned as Stdio.pipe() (0 for the others). Each is closed with Loop.close; closing the
 * process handle does not kill the child. */
struct Process {
    Handle handle;
    /** The write end of the child's stdin. */
    Handle stdinPipe;
    /** The read ends of the child's stdout and stderr. */
    Handle stdoutPipe, stderrPipe;
}

/** Since 1.1: a processWait() result: the exit code if the child exited, else the signal
 * that ended it (result 256 + signal). */
bool exitedNormally(long result) @safe { return result >= 0 && result < 256; }
/// ditto
int exitCode(long result) @safe { return result >= 0 && result < 256 ? cast(int) result : -1; }
/// ditto
int termSignal(long result) @safe { return result >= 256 ? cast(int)(result - 256) : 0; }

/** The library's version number (MAJOR*10000 + MINOR*100 + PATCH). */
uint libraryVersion() @trusted { return ioq_raw.ioq_version(); }
/** The library's version as "MAJOR.MINOR.PATCH". */
string libraryVersionString() @trusted { return ioq_raw.ioq_version_string(); }
/** The version of the header the binding was generated from. */
enum uint headerVersion = ioq_raw.IOQ_VERSION_NUMBER;

/** One completion, with what the binding kept for the operation. */
struct Completion {
    ulong token;
    /** >= 0 op-specific success value, < 0 an IOQ_E* code. */
    long result;
    /** op-specific second value: a new handle, a pool buffer id, bytes sent before an error. */
    ulong value;
    Op op;
    ushort flags;
    /** recv, recvfrom, read: the buffer given at submission. */
    ubyte[] buffer;
    /** recvfrom: the sender. */
    Address from;
    /** resolve: the addresses found. */
    Address[] addresses;

    bool ok() const @property @safe { return result >= 0; }
    int code() const @property @safe { return result < 0 ? cast(int) result : 0; }
    string name() const @property @safe { return errorName(result); }
    /** More completions follow for this multishot operation. */
    bool more() const @property @safe { return (flags & ioq_raw.IOQ_CQE_MORE) != 0; }
    /** value is a pool buffer id that the caller now holds. */
    bool hasPoolBuffer() const @property @safe { return (flags & ioq_raw.IOQ_CQE_BUFFER) != 0; }
    /** accept, connect, localConnect, open: the new handle. */
    Handle handle() const @property @safe { return ok ? value : 0; }
    /** recv, recvfrom, read: the bytes that arrived. */
    inout(ubyte)[] data() inout @property @safe {
        if (result <= 0 || buffer is null)
            return null;
        auto n = cast(size_t) result;
        return buffer[0 .. (n < buffer.length ? n : buffer.length)];
    }
}

/* What an in-flight operation refers to: referenced from the loop until its final
 * completion, so the GC can neither free nor reuse it while ioq may touch it. */
private final class Pending {
    Op op;
    bool quiet; // the binding's own operation: poll() does not return its completion
    const(void)[] buf;
    const(ubyte)[][] bufs;
    ioq_addr* addr;
    ioq_addr[] addrs;
}

/**
 * True when p points into the live part of the stack of the running thread or fiber:
 * memory that is reused as soon as the function that owns it returns. ioq keeps the
 * buffers of operations after the submitting call returns, so they must not live there.
 */
bool onStack(const(void)* p) @trusted nothrow @nogc {
    import core.thread : thread_stackBottom;
    if (p is null)
        return false;
    void* bottom = thread_stackBottom(); // the high end: stacks grow down here
    auto here = cast(size_t) &bottom;
    auto a = cast(size_t) p;
    return a >= here && a < cast(size_t) bottom;
}

/* Refuses a buffer on the stack (see onStack): @safe code cannot pass one when compiled
 * with -preview=dip1000 (the parameters are not scope); this catches @system callers. */
private void checkBuffer(const(void)[] buf, string what) @trusted {
    if (buf.length && onStack(buf.ptr))
        throw new IoqException(ioq_raw.IOQ_EINVAL, what ~ ": the buffer is on the stack, and "
            ~ "ioq uses it after this call returns; give GC memory (new ubyte[n])");
}

/*
 * What a loop shares with code that may run in a GC finalizer, on any thread: a handle
 * whose owner was collected cannot be closed there (the loop belongs to its thread, and a
 * finalizer must not allocate), so it is queued here and closed by the loop's next poll.
 * C memory, counted: the loop holds one reference and every object that may queue does.
 */
package struct LoopCtl {
    shared int lock;
    shared size_t refs;
    bool alive;
    Handle* closes;
    size_t n, cap;
}

package void ctlLock(LoopCtl* c) @trusted nothrow @nogc {
    import core.atomic : cas, atomicStore;
    while (!cas(&c.lock, 0, 1)) {
    }
}

package void ctlUnlock(LoopCtl* c) @trusted nothrow @nogc {
    import core.atomic : atomicStore;
    atomicStore(c.lock, 0);
}

package void ctlAcquire(LoopCtl* c) @trusted nothrow @nogc {
    import core.atomic : atomicOp;
    atomicOp!"+="(c.refs, 1);
}

package void ctlRelease(LoopCtl* c) @trusted nothrow @nogc {
    import core.atomic : atomicOp;
    import core.stdc.stdlib : free;
    if (atomicOp!"-="(c.refs, 1) == 0) {
        free(c.closes);
        free(c);
    }
}

/** Any thread, any time (also a GC finalizer): h is closed by the loop's next poll. */
package void ctlCloseLater(LoopCtl* c, Handle h) @trusted nothrow @nogc {
    import core.stdc.stdlib : realloc;
    ctlLock(c);
    scope (exit)
        ctlUnlock(c);
    if (!c.alive)
        return; // the loop was freed, and every handle with it
    if (c.n == c.cap) {
        size_t cap = c.cap ? 2 * c.cap : 16;
        auto p = cast(Handle*) realloc(c.closes, cap * Handle.sizeof);
        if (p is null)
            return; // out of memory: the handle stays open until the loop is freed
        c.closes = p;
        c.cap = cap;
    }
    c.closes[c.n++] = h;
}

/**
 * A loop. Create it, use it on one thread, and close() it: close() ends every operation,
 * waits until the OS holds no buffer, and releases what the binding kept.
 *
 * A loop that is never closed stays alive (with its buffers) until the process ends: its
 * memory cannot be freed by a GC finalizer, which may run on another thread. As a `scope`
 * variable (`scope loop = new Loop();`) it is closed when the scope ends.
 *
 * Memory safety: the buffers of operations are kept referenced until their final
 * completion, so GC memory is safe. Stack memory is not (it is reused when its function
 * returns): in @safe code compiled with -preview=dip1000 passing a stack slice does not
 * compile (the buffer parameters are not `scope`), and at run time a buffer on the stack
 * of the running thread or fiber is refused with IoqException EINVAL.
 */
final class Loop {
    private ioq_loop* lp;
    private Pending[ulong] inflight;
    private ulong nextToken = 1;
    private ioq_cqe[] cqes;
    private uint[Handle] poolSizes;
    private LoopCtl* ctl_;

    /** A loop on backend (auto: IOQ_BACKEND in the environment, else the best). */
    this(Backend backend = Backend.auto_, uint threadpoolSize = 0) @trusted {
        import core.stdc.stdlib : calloc;
        ioq_loop_options o;
        o.size = ioq_loop_options.sizeof;
        o.backend = backend;
        o.threadpool_size = threadpoolSize;
        check(ioq_raw.ioq_loop_new(&o, &lp), "create loop");
        cqes = new ioq_cqe[64];
        ctl_ = cast(LoopCtl*) calloc(1, LoopCtl.sizeof);
        if (ctl_ is null) {
            ioq_raw.ioq_loop_free(lp);
            lp = null;
            throw new IoqException(ioq_raw.IOQ_ENOMEM, "create loop");
        }
        ctl_.refs = 1;
        ctl_.alive = true;
        // The loop owns the table of pins; a root keeps both alive until close().
        GC.addRoot(cast(void*) this);
    }

    /** A `scope` loop is closed when its scope ends (a GC finalizer never gets here: the
     * loop is a GC root until it is closed). */
    ~this() @safe {
        if (lp !is null)
            close();
    }

    /** Ends every operation without completions and frees the loop. Idempotent. */
    void close() @trusted {
        if (lp is null)
            return;
        ctlLock(ctl_);
        ctl_.alive = false;
        ctl_.n = 0;
        ctlUnlock(ctl_);
        ctlRelease(ctl_);
        ctl_ = null;
        ioq_raw.ioq_loop_free(lp);
        lp = null;
        // ioq_loop_free returned: nothing references caller memory any more.
        inflight = null;
        poolSizes = null;
        GC.removeRoot(cast(void*) this);
    }

    bool closed() const @property @safe { return lp is null; }

    /** The raw loop, for the ioq_raw functions. Tokens used there must stay above 2^63. */
    ioq_loop* raw() @property @system { return live(); }

    /** Operations submitted and not yet finally completed (buffers held). */
    size_t pending() const @property @safe { return inflight.length; }

    /** A fresh token that no operation of this loop uses, e.g. for post(). */
    ulong newToken() @safe { return nextToken++; }

    /** What finalizers use to close handles of this loop (see LoopCtl); counted. */
    package LoopCtl* ctl() @safe {
        live();
        ctlAcquire(ctl_);
        return ctl_;
    }

    private ioq_loop* live() const @trusted {
        if (lp is null)
            throw new IoqException(ioq_raw.IOQ_EMISUSE, "loop is closed");
        return cast(ioq_loop*) lp;
    }

    private ulong start(Op op, Pending p, scope int delegate(ulong) @trusted call, string what,
                        bool quiet = false) @safe {
        live();
        ulong tok = nextToken++;
        int rc = call(tok);
        if (rc < 0)
            throw new IoqException(rc, what);
        if (p is null)
            p = new Pending;
        p.op = op;
        p.quiet = quiet;
        inflight[tok] = p;
        return tok;
    }

    /* ---- loop ---- */

    string backend() @trusted { return ioq_raw.ioq_loop_backend(live()); }
    uint caps() @trusted { return ioq_raw.ioq_loop_caps(live()); }
    /** A descriptor readable when poll() may have work; throws ENOTSUP where none exists. */
    long fd() @trusted { return check(ioq_raw.ioq_loop_fd(live()), "loop fd"); }
    /** Monotonic nanoseconds, the clock of timeouts. */
    ulong now() @trusted { return ioq_raw.ioq_now(live()); }
    void submit() @trusted { check(ioq_raw.ioq_submit(live()), "submit"); }
    /** Any thread. */
    void wake() @trusted { check(ioq_raw.ioq_wake(live()), "wake"); }
    /** Any thread: a completion {token, result, op post}. */
    void post(ulong token, long result = 0) @trusted {
        check(ioq_raw.ioq_post(live(), token, result), "post");
    }

    /* The handles queued by closeLater (finalizers): closed now, quietly. */
    private void closeQueued() @trusted {
        if (ctl_.n == 0)
            return;
        Handle[64] batch;
        size_t k;
        do {
            ctlLock(ctl_);
            k = ctl_.n < batch.length ? ctl_.n : batch.length;
            batch[0 .. k] = ctl_.closes[ctl_.n - k .. ctl_.n];
            ctl_.n -= k;
            ctlUnlock(ctl_);
            foreach (h; batch[0 .. k])
                closeQuietly(h);
        } while (k == batch.length);
    }

    /**
     * Submits queued work, waits up to timeoutNs (-1 forever, 0 not at all) and fills
     * into[] with completions. Returns the filled part. (Completions of the binding's own
     * operations, such as the closes of collected connections, are not returned.)
     */
    Completion[] poll(return scope Completion[] into, long timeoutNs = -1) @trusted {
        auto l = live();
        if (into.length == 0)
            throw new IoqException(ioq_raw.IOQ_EINVAL, "poll into an empty array");
        closeQueued();
        if (cqes.length < into.length)
            cqes = new ioq_cqe[into.length];
        uint max = into.length > uint.max ? uint.max : cast(uint) into.length;
        int n = cast(int) check(ioq_raw.ioq_poll(l, cqes.ptr, max, timeoutNs), "poll");
        size_t k;
        foreach (i; 0 .. n) {
            const q = cqes[i];
            Completion c;
            c.token = q.token;
            c.result = q.result;
            c.value = q.value;
            c.op = cast(Op) q.op;
            c.flags = q.flags;
            if (c.op != Op.post) {
                if (auto pp = q.token in inflight) {
                    auto p = *pp;
                    if (!c.more)
                        inflight.remove(q.token);
                    if (p.quiet)
                        continue;
                    if (p.op == Op.recv || p.op == Op.recvfrom || p.op == Op.read)
                        c.buffer = cast(ubyte[]) p.buf;
                    if (p.addr !is null && c.ok)
                        c.from = Address(*p.addr);
                    if (p.addrs !is null && c.ok) {
                        auto m = cast(size_t) c.result;
                        c.addresses = new Address[m < p.addrs.length ? m : p.addrs.length];
                        foreach (j, ref a; c.addresses)
                            a.raw = p.addrs[j];
                    }
                }
            }
            into[k++] = c;
        }
        return into[0 .. k];
    }

    /** poll() into a new array of up to max completions. */
    Completion[] poll(long timeoutNs = -1, uint max = 64) @safe {
        return poll(new Completion[max], timeoutNs);
    }

    /* ---- sockets (synchronous) ---- */

    Handle tcpListen(Address addr, uint backlog = 0, uint flags = 0) @trusted {
        Handle h;
        check(ioq_raw.ioq_tcp_listen(live(), &addr.raw, backlog, flags, &h),
              "listen on " ~ addr.toString());
        return h;
    }

    Handle udpBind(Address addr, uint flags = 0) @trusted {
        Handle h;
        check(ioq_raw.ioq_udp_bind(live(), &addr.raw, flags, &h), "bind " ~ addr.toString());
        return h;
    }

    Handle localListen(string path, uint backlog = 0, uint flags = 0) @trusted {
        Handle h;
        check(ioq_raw.ioq_local_listen(live(), path, backlog, flags, &h), "listen on " ~ path);
        return h;
    }

    /* ---- operations: each returns its token ---- */

    ulong accept(Handle listener, uint flags = 0) @safe {
        return start(Op.accept, null,
                     (t) @trusted => ioq_raw.ioq_accept(lp, listener, flags, t),
                     "accept");
    }

    ulong connect(Address addr, uint flags = 0) @safe {
        return start(Op.connect, null, (t) @trusted => ioq_raw.ioq_connect(lp, &addr.raw, flags, t),
                     "connect");
    }

    ulong localConnect(string path, uint flags = 0) @safe {
        return start(Op.localConnect, null,
                     (t) @trusted => ioq_raw.ioq_local_connect(lp, path, flags, t),
                     "local connect");
    }

    /** One receive into buf (GC memory); the completion's data is the part filled. */
    ulong recv(Handle h, ubyte[] buf) @safe {
        checkBuffer(buf, "recv");
        auto p = new Pending;
        p.buf = buf;
        return start(Op.recv, p,
                     (t) @trusted => ioq_raw.ioq_recv(lp, h, buf.ptr, buf.length, t),
                     "recv");
    }

    ulong recvPool(Handle h, Handle pool, uint flags = 0) @safe {
        return start(Op.recvPool, null,
                     (t) @trusted => ioq_raw.ioq_recv_pool(lp, h, pool, flags, t),
                     "recv_pool");
    }

    /** Sends all of buf (GC or static memory). */
    ulong send(Handle h, const(ubyte)[] buf) @safe {
        checkBuffer(buf, "send");
        auto p = new Pending;
        p.buf = buf;
        return start(Op.send, p,
                     (t) @trusted => ioq_raw.ioq_send(lp, h, buf.ptr, buf.length, t),
                     "send");
    }

    /** Gather send of all bytes of bufs. */
    ulong sendv(Handle h, const(ubyte)[][] bufs) @safe {
        foreach (b; bufs)
            checkBuffer(b, "sendv");
        auto p = new Pending;
        p.bufs = bufs.dup;
        // The iovec array is copied by ioq at submission; the buffers are pinned above.
        auto iov = new ioq_iov[bufs.length];
        () @trusted {
            foreach (i, b; bufs) {
                iov[i].base = b.ptr;
                iov[i].len = b.length;
            }
        }();
        uint n = bufs.length > uint.max ? uint.max : cast(uint) bufs.length;
        return start(Op.sendv, p, (t) @trusted => ioq_raw.ioq_sendv(lp, h, iov.ptr, n, t), "sendv");
    }

    /** One datagram to addr. */
    ulong sendto(Handle h, const(ubyte)[] buf, Address addr) @safe {
        checkBuffer(buf, "sendto");
        auto p = new Pending;
        p.buf = buf;
        static immutable ubyte[1] none;
        return start(Op.sendto, p, (t) @trusted => ioq_raw.ioq_sendto(lp, h,
                     buf.length ? buf.ptr : none.ptr, buf.length, &addr.raw, t), "sendto");
    }

    /** One datagram into buf; the completion carries the sender in .from. */
    ulong recvfrom(Handle h, ubyte[] buf) @safe {
        checkBuffer(buf, "recvfrom");
        auto p = new Pending;
        p.buf = buf;
        p.addr = new ioq_addr;
        auto a = p.addr;
        return start(Op.recvfrom, p,
                     (t) @trusted => ioq_raw.ioq_recvfrom(lp, h, buf.ptr, buf.length, a, t),
                     "recvfrom");
    }

    ulong shutdown(Handle h) @safe {
        return start(Op.shutdown, null, (t) @trusted => ioq_raw.ioq_shutdown(lp, h, t), "shutdown");
    }

    /** Closes a handle (socket, listener, file, pool); h is invalid at once. */
    ulong close(Handle h) @safe {
        ulong tok = start(Op.close, null, (t) @trusted => ioq_raw.ioq_close(lp, h, t), "close");
        poolSizes.remove(h);
        return tok;
    }

    /** Closes h without a completion for the caller (poll() does not return it); a
     * handle that is already gone (or a closed loop) is not an error. */
    void closeQuietly(Handle h) @safe nothrow {
        try {
            if (lp is null)
                return;
            start(Op.close, null, (t) @trusted => ioq_raw.ioq_close(lp, h, t), "close", true);
            poolSizes.remove(h);
        } catch (Exception) {
        }
    }

    /** Cancels the operation with token target without a completion for the caller. */
    void cancelQuietly(ulong target) @safe nothrow {
        try {
            if (lp !is null)
                start(Op.cancel, null,
                      (t) @trusted => ioq_raw.ioq_cancel(lp, target, t),
                      "cancel", true);
        } catch (Exception) {
        }
    }

    ulong open(string path, uint flags, uint mode = 420 /* 0644 */) @safe {
        return start(Op.open, null, (t) @trusted => ioq_raw.ioq_open(lp, path, flags, mode, t),
                     "open " ~ path);
    }

    ulong read(Handle h, ubyte[] buf, ulong offset) @safe {
        checkBuffer(buf, "read");
        auto p = new Pending;
        p.buf = buf;
        return start(Op.read, p,
                     (t) @trusted => ioq_raw.ioq_read(lp, h, buf.ptr, buf.length, offset, t),
                     "read");
    }

    ulong write(Handle h, const(ubyte)[] buf, ulong offset) @safe {
        checkBuffer(buf, "write");
        auto p = new Pending;
        p.buf = buf;
        return start(Op.write, p,
                     (t) @trusted => ioq_raw.ioq_write(lp, h, buf.ptr, buf.length, offset, t),
                     "write");
    }

    ulong fsync(Handle h) @safe {
        return start(Op.fsync, null, (t) @trusted => ioq_raw.ioq_fsync(lp, h, t), "fsync");
    }

    ulong timeout(ulong ns) @safe {
        return start(Op.timeout, null, (t) @trusted => ioq_raw.ioq_timeout(lp, ns, t), "timeout");
    }

    ulong timeout(Duration d) @safe {
        auto ns = d.total!"nsecs";
        return timeout(ns < 0 ? 0 : cast(ulong) ns);
    }

    /**
     * Completes when now() >= deadlineNs (never earlier), a deadline on now()'s clock; one
     * already past completes at the next poll. One base for many timers:
     * `auto t = loop.now(); loop.timeoutAt(t + d);`. Since ABI 1.1.
     */
    ulong timeoutAt(ulong deadlineNs) @safe {
        return start(Op.timeout, null,
                     (t) @trusted => ioq_raw.ioq_timeout_at(lp, deadlineNs, t), "timeoutAt");
    }

    /** Cancels the operation with token target; the result counts the ones found. */
    ulong cancel(ulong target) @safe {
        return start(Op.cancel, null, (t) @trusted => ioq_raw.ioq_cancel(lp, target, t), "cancel");
    }

    /** Resolves host and/or service (null for none); the completion's .addresses. */
    ulong resolve(string host, string service, uint flags = 0, uint max = 16) @safe {
        auto p = new Pending;
        p.addrs = new ioq_addr[max ? max : 1];
        auto a = p.addrs;
        return start(Op.resolve, p,
                     (t) @trusted => ioq_raw.ioq_resolve(lp, host, service, flags, a.ptr, max, t),
                     "resolve");
    }

    /* ---- provided-buffer pools ---- */

    Handle poolNew(uint count, uint size) @trusted {
        Handle h;
        check(ioq_raw.ioq_pool_new(live(), count, size, &h), "pool_new");
        poolSizes[h] = size;
        return h;
    }

    /** Buffer id of pool as a slice. @system: the memory goes with the pool (its close),
     * and the slice does not know. */
    ubyte[] buf(Handle pool, uint id) @system {
        ubyte* p = ioq_raw.ioq_buf(live(), pool, id);
        if (p is null)
            throw new IoqException(ioq_raw.IOQ_EINVAL, "no such pool buffer");
        auto sz = pool in poolSizes;
        return p[0 .. (sz ? *sz : 0)];
    }

    /** A copy of the first n bytes of pool buffer id. */
    ubyte[] bufCopy(Handle pool, uint id, size_t n) @trusted {
        auto b = buf(pool, id);
        return b[0 .. (n < b.length ? n : b.length)].dup;
    }

    void bufRelease(Handle pool, uint id) @trusted {
        check(ioq_raw.ioq_buf_release(live(), pool, id), "buf_release");
    }

    /* ---- queries, options, OS handles ---- */

    Address sockname(Handle h) @trusted {
        Address a;
        check(ioq_raw.ioq_sockname(live(), h, &a.raw), "sockname");
        return a;
    }

    Address peername(Handle h) @trusted {
        Address a;
        check(ioq_raw.ioq_peername(live(), h, &a.raw), "peername");
        return a;
    }

    void setopt(Handle h, uint opt, long value) @trusted {
        check(ioq_raw.ioq_setopt(live(), h, opt, value), "setopt");
    }

    /* ---- since 1.1: pipes and child processes ---- */

    /** A new anonymous pipe: [read end, write end], PIPE handles, streams for recv, send,
     * sendv, shutdown (the write end) and close. */
    Handle[2] pipe() @trusted {
        Handle[2] ends;
        ulong[2] raw;
        check(ioq_raw.ioq_pipe(live(), 0, raw.ptr), "pipe");
        ends[0] = raw[0];
        ends[1] = raw[1];
        return ends;
    }

    /**
     * Starts a child process: file (a path, or a name looked up in PATH with
     * SpawnFlags.searchPath), argv (argv[0] included; empty: [file]), its stdin, stdout
     * and stderr, env ("KEY=VALUE"; null: inherit) and cwd (null: the parent's).
     * Synchronous: returns once the program runs, or throws (e.g. IoqError.noEnt).
     * Its end comes with processWait().
     */
    Process spawn(string file, const(string)[] argv = null,
                  Stdio[3] stdio = [Stdio.inherit(), Stdio.inherit(), Stdio.inherit()],
                  const(string)[] env = null, string cwd = null, uint flags = 0) @trusted {
        import std.string : toStringz;
        static const(char*)* cList(const(string)[] list) {
            auto a = new const(char)*[list.length + 1];
            foreach (i, x; list)
                a[i] = toStringz(x);
            a[list.length] = null;
            return a.ptr;
        }
        ioq_raw.ioq_process_options o;
        o.size = ioq_raw.ioq_process_options.sizeof;
        o.flags = flags;
        o.file = toStringz(file);
        o.argv = cList(argv.length ? argv : [file]);
        o.env = env is null ? null : cList(env);
        o.cwd = cwd is null ? null : toStringz(cwd);
        foreach (i; 0 .. 3) {
            o.stdio[i].mode = stdio[i].mode;
            o.stdio[i].value = stdio[i].value;
        }
        Process p;
        ulong[3] pipes;
        check(ioq_raw.ioq_spawn(live(), &o, &p.handle, pipes.ptr), "spawn " ~ file);
        p.stdinPipe = pipes[0];
        p.stdoutPipe = pipes[1];
        p.stderrPipe = pipes[2];
        return p;
    }

    /** Waits for a child of spawn() to end: the result is its exit code (0..255), or 256 +
     * the signal that ended it (see exitCode, termSignal). */
    ulong processWait(Handle process) @safe {
        return start(Op.processWait, null,
                     (t) @trusted => ioq_raw.ioq_process_wait(lp, process, t), "process wait");
    }

    /** Sends signal signum to a child of spawn() (on Windows any signum ends it). */
    void kill(Handle process, int signum) @trusted {
        check(ioq_raw.ioq_kill(live(), process, signum), "kill");
    }

    /** The OS process id of a child of spawn(). */
    long processPid(Handle process) @trusted {
        long pid;
        check(ioq_raw.ioq_process_pid(live(), process, &pid), "process pid");
        return pid;
    }

    /** Brings an OS descriptor into the loop; ioq owns it from now on. */
    Handle adopt(ulong osHandle, Kind kind) @trusted {
        Handle h;
        check(ioq_raw.ioq_adopt(live(), osHandle, kind, &h), "adopt");
        return h;
    }

    /** The OS descriptor behind h, still owned by ioq. */
    ulong osHandle(Handle h) @trusted {
        ulong v;
        check(ioq_raw.ioq_os_handle(live(), h, &v), "os_handle");
        return v;
    }
}
