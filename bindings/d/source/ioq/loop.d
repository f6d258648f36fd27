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
}

/** The library's version number (MAJOR*10000 + MINOR*100 + PATCH). */
uint libraryVersion() { return ioq_raw.ioq_version(); }
/** The library's version as "MAJOR.MINOR.PATCH". */
string libraryVersionString() { return ioq_raw.ioq_version_string(); }
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

    bool ok() const @property { return result >= 0; }
    int code() const @property { return result < 0 ? cast(int) result : 0; }
    string name() const @property { return errorName(result); }
    /** More completions follow for this multishot operation. */
    bool more() const @property { return (flags & ioq_raw.IOQ_CQE_MORE) != 0; }
    /** value is a pool buffer id that the caller now holds. */
    bool hasPoolBuffer() const @property { return (flags & ioq_raw.IOQ_CQE_BUFFER) != 0; }
    /** accept, connect, localConnect, open: the new handle. */
    Handle handle() const @property { return ok ? value : 0; }
    /** recv, recvfrom, read: the bytes that arrived. */
    inout(ubyte)[] data() inout @property {
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
    const(void)[] buf;
    const(void)[][] bufs;
    ioq_addr* addr;
    ioq_addr[] addrs;
}

/**
 * A loop. Create it, use it on one thread, and close() it: close() ends every operation,
 * waits until the OS holds no buffer, and releases what the binding kept.
 *
 * A loop that is never closed stays alive (with its buffers) until the process ends: its
 * memory cannot be freed by a GC finalizer, which may run on another thread.
 */
final class Loop {
    private ioq_loop* lp;
    private Pending[ulong] inflight;
    private ulong nextToken = 1;
    private ioq_cqe[] cqes;
    private uint[Handle] poolSizes;

    /** A loop on backend (auto: IOQ_BACKEND in the environment, else the best). */
    this(Backend backend = Backend.auto_, uint threadpoolSize = 0) {
        ioq_loop_options o;
        o.size = ioq_loop_options.sizeof;
        o.backend = backend;
        o.threadpool_size = threadpoolSize;
        check(ioq_raw.ioq_loop_new(&o, &lp), "create loop");
        cqes = new ioq_cqe[64];
        // The loop owns the table of pins; a root keeps both alive until close().
        GC.addRoot(cast(void*) this);
    }

    /** Ends every operation without completions and frees the loop. Idempotent. */
    void close() {
        if (lp is null)
            return;
        ioq_raw.ioq_loop_free(lp);
        lp = null;
        // ioq_loop_free returned: nothing references caller memory any more.
        inflight = null;
        poolSizes = null;
        GC.removeRoot(cast(void*) this);
    }

    bool closed() const @property { return lp is null; }

    /** The raw loop, for the ioq_raw functions. Tokens used there must stay above 2^63. */
    ioq_loop* raw() @property { return live(); }

    /** Operations submitted and not yet finally completed (buffers held). */
    size_t pending() const @property { return inflight.length; }

    /** A fresh token that no operation of this loop uses, e.g. for post(). */
    ulong newToken() { return nextToken++; }

    private ioq_loop* live() {
        if (lp is null)
            throw new IoqException(ioq_raw.IOQ_EMISUSE, "loop is closed");
        return lp;
    }

    private ulong start(Op op, Pending p, scope int delegate(ulong) call, string what) {
        live();
        ulong tok = nextToken++;
        int rc = call(tok);
        if (rc < 0)
            throw new IoqException(rc, what);
        if (p is null)
            p = new Pending;
        p.op = op;
        inflight[tok] = p;
        return tok;
    }

    /* ---- loop ---- */

    string backend() { return ioq_raw.ioq_loop_backend(live()); }
    uint caps() { return ioq_raw.ioq_loop_caps(live()); }
    /** A descriptor readable when poll() may have work; throws ENOTSUP where none exists. */
    long fd() { return check(ioq_raw.ioq_loop_fd(live()), "loop fd"); }
    /** Monotonic nanoseconds, the clock of timeouts. */
    ulong now() { return ioq_raw.ioq_now(live()); }
    void submit() { check(ioq_raw.ioq_submit(live()), "submit"); }
    /** Any thread. */
    void wake() { check(ioq_raw.ioq_wake(live()), "wake"); }
    /** Any thread: a completion {token, result, op post}. */
    void post(ulong token, long result = 0) {
        check(ioq_raw.ioq_post(live(), token, result), "post");
    }

    /**
     * Submits queued work, waits up to timeoutNs (-1 forever, 0 not at all) and fills
     * into[] with completions. Returns the filled part.
     */
    Completion[] poll(Completion[] into, long timeoutNs = -1) {
        auto l = live();
        if (into.length == 0)
            throw new IoqException(ioq_raw.IOQ_EINVAL, "poll into an empty array");
        if (cqes.length < into.length)
            cqes = new ioq_cqe[into.length];
        uint max = into.length > uint.max ? uint.max : cast(uint) into.length;
        int n = cast(int) check(ioq_raw.ioq_poll(l, cqes.ptr, max, timeoutNs), "poll");
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
                    if (p.op == Op.recv || p.op == Op.recvfrom || p.op == Op.read)
                        c.buffer = cast(ubyte[]) p.buf;
                    if (p.addr !is null && c.ok)
                        c.from = Address(*p.addr);
                    if (p.addrs !is null && c.ok) {
                        auto k = cast(size_t) c.result;
                        c.addresses = new Address[k < p.addrs.length ? k : p.addrs.length];
                        foreach (j, ref a; c.addresses)
                            a.raw = p.addrs[j];
                    }
                    if (!c.more)
                        inflight.remove(q.token);
                }
            }
            into[i] = c;
        }
        return into[0 .. n];
    }

    /** poll() into a new array of up to max completions. */
    Completion[] poll(long timeoutNs = -1, uint max = 64) {
        return poll(new Completion[max], timeoutNs);
    }

    /* ---- sockets (synchronous) ---- */

    Handle tcpListen(Address addr, uint backlog = 0, uint flags = 0) {
        Handle h;
        check(ioq_raw.ioq_tcp_listen(live(), &addr.raw, backlog, flags, &h),
              "listen on " ~ addr.toString());
        return h;
    }

    Handle udpBind(Address addr, uint flags = 0) {
        Handle h;
        check(ioq_raw.ioq_udp_bind(live(), &addr.raw, flags, &h), "bind " ~ addr.toString());
        return h;
    }

    Handle localListen(string path, uint backlog = 0, uint flags = 0) {
        Handle h;
        check(ioq_raw.ioq_local_listen(live(), path, backlog, flags, &h), "listen on " ~ path);
        return h;
    }

    /* ---- operations: each returns its token ---- */

    ulong accept(Handle listener, uint flags = 0) {
        return start(Op.accept, null, (t) => ioq_raw.ioq_accept(lp, listener, flags, t), "accept");
    }

    ulong connect(Address addr, uint flags = 0) {
        return start(Op.connect, null, (t) => ioq_raw.ioq_connect(lp, &addr.raw, flags, t),
                     "connect");
    }

    ulong localConnect(string path, uint flags = 0) {
        return start(Op.localConnect, null,
                     (t) => ioq_raw.ioq_local_connect(lp, path, flags, t), "local connect");
    }

    /** One receive into buf; the completion's data is the part filled. */
    ulong recv(Handle h, ubyte[] buf) {
        auto p = new Pending;
        p.buf = buf;
        return start(Op.recv, p, (t) => ioq_raw.ioq_recv(lp, h, buf.ptr, buf.length, t), "recv");
    }

    ulong recvPool(Handle h, Handle pool, uint flags = 0) {
        return start(Op.recvPool, null, (t) => ioq_raw.ioq_recv_pool(lp, h, pool, flags, t),
                     "recv_pool");
    }

    /** Sends all of buf. */
    ulong send(Handle h, const(ubyte)[] buf) {
        auto p = new Pending;
        p.buf = buf;
        return start(Op.send, p, (t) => ioq_raw.ioq_send(lp, h, buf.ptr, buf.length, t), "send");
    }

    /** Gather send of all bytes of bufs. */
    ulong sendv(Handle h, const(ubyte)[][] bufs) {
        auto p = new Pending;
        p.bufs = cast(const(void)[][]) bufs.dup;
        // The iovec array is copied by ioq at submission; the buffers are pinned above.
        auto iov = new ioq_iov[bufs.length];
        foreach (i, b; bufs) {
            iov[i].base = b.ptr;
            iov[i].len = b.length;
        }
        uint n = bufs.length > uint.max ? uint.max : cast(uint) bufs.length;
        return start(Op.sendv, p, (t) => ioq_raw.ioq_sendv(lp, h, iov.ptr, n, t), "sendv");
    }

    /** One datagram to addr. */
    ulong sendto(Handle h, const(ubyte)[] buf, Address addr) {
        auto p = new Pending;
        p.buf = buf;
        static immutable ubyte[1] none;
        const(ubyte)* ptr = buf.length ? buf.ptr : none.ptr;
        return start(Op.sendto, p,
                     (t) => ioq_raw.ioq_sendto(lp, h, ptr, buf.length, &addr.raw, t), "sendto");
    }

    /** One datagram into buf; the completion carries the sender in .from. */
    ulong recvfrom(Handle h, ubyte[] buf) {
        auto p = new Pending;
        p.buf = buf;
        p.addr = new ioq_addr;
        auto a = p.addr;
        return start(Op.recvfrom, p,
                     (t) => ioq_raw.ioq_recvfrom(lp, h, buf.ptr, buf.length, a, t), "recvfrom");
    }

    ulong shutdown(Handle h) {
        return start(Op.shutdown, null, (t) => ioq_raw.ioq_shutdown(lp, h, t), "shutdown");
    }

    /** Closes a handle (socket, listener, file, pool); h is invalid at once. */
    ulong close(Handle h) {
        ulong tok = start(Op.close, null, (t) => ioq_raw.ioq_close(lp, h, t), "close");
        poolSizes.remove(h);
        return tok;
    }

    ulong open(string path, uint flags, uint mode = 420 /* 0644 */) {
        return start(Op.open, null, (t) => ioq_raw.ioq_open(lp, path, flags, mode, t),
                     "open " ~ path);
    }

    ulong read(Handle h, ubyte[] buf, ulong offset) {
        auto p = new Pending;
        p.buf = buf;
        return start(Op.read, p,
                     (t) => ioq_raw.ioq_read(lp, h, buf.ptr, buf.length, offset, t), "read");
    }

    ulong write(Handle h, const(ubyte)[] buf, ulong offset) {
        auto p = new Pending;
        p.buf = buf;
        return start(Op.write, p,
                     (t) => ioq_raw.ioq_write(lp, h, buf.ptr, buf.length, offset, t), "write");
    }

    ulong fsync(Handle h) {
        return start(Op.fsync, null, (t) => ioq_raw.ioq_fsync(lp, h, t), "fsync");
    }

    ulong timeout(ulong ns) {
        return start(Op.timeout, null, (t) => ioq_raw.ioq_timeout(lp, ns, t), "timeout");
    }

    ulong timeout(Duration d) {
        auto ns = d.total!"nsecs";
        return timeout(ns < 0 ? 0 : cast(ulong) ns);
    }

    /** Cancels the operation with token target; the result counts the ones found. */
    ulong cancel(ulong target) {
        return start(Op.cancel, null, (t) => ioq_raw.ioq_cancel(lp, target, t), "cancel");
    }

    /** Resolves host and/or service (null for none); the completion's .addresses. */
    ulong resolve(string host, string service, uint flags = 0, uint max = 16) {
        auto p = new Pending;
        p.addrs = new ioq_addr[max ? max : 1];
        auto a = p.addrs.ptr;
        return start(Op.resolve, p,
                     (t) => ioq_raw.ioq_resolve(lp, host, service, flags, a, max, t), "resolve");
    }

    /* ---- provided-buffer pools ---- */

    Handle poolNew(uint count, uint size) {
        Handle h;
        check(ioq_raw.ioq_pool_new(live(), count, size, &h), "pool_new");
        poolSizes[h] = size;
        return h;
    }

    /** Buffer id of pool as a slice (valid while the pool lives); throws for a bad id. */
    ubyte[] buf(Handle pool, uint id) {
        ubyte* p = ioq_raw.ioq_buf(live(), pool, id);
        if (p is null)
            throw new IoqException(ioq_raw.IOQ_EINVAL, "no such pool buffer");
        auto sz = pool in poolSizes;
        return p[0 .. (sz ? *sz : 0)];
    }

    void bufRelease(Handle pool, uint id) {
        check(ioq_raw.ioq_buf_release(live(), pool, id), "buf_release");
    }

    /* ---- queries, options, OS handles ---- */

    Address sockname(Handle h) {
        Address a;
        check(ioq_raw.ioq_sockname(live(), h, &a.raw), "sockname");
        return a;
    }

    Address peername(Handle h) {
        Address a;
        check(ioq_raw.ioq_peername(live(), h, &a.raw), "peername");
        return a;
    }

    void setopt(Handle h, uint opt, long value) {
        check(ioq_raw.ioq_setopt(live(), h, opt, value), "setopt");
    }

    /** Brings an OS descriptor into the loop; ioq owns it from now on. */
    Handle adopt(ulong osHandle, Kind kind) {
        Handle h;
        check(ioq_raw.ioq_adopt(live(), osHandle, kind, &h), "adopt");
        return h;
    }

    /** The OS descriptor behind h, still owned by ioq. */
    ulong osHandle(Handle h) {
        ulong v;
        check(ioq_raw.ioq_os_handle(live(), h, &v), "os_handle");
        return v;
    }
}
