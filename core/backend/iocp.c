/*
 * Windows I/O completion port backend. Every operation is an overlapped call whose
 * OVERLAPPED lives in the op's backend storage; ioq_poll() dequeues finished ones in
 * batches with GetQueuedCompletionStatusEx.
 *
 * Order on a stream: as with io_uring, only the head of a handle's read queue and of its
 * write queue is in the kernel at a time, so sends never interleave (a short send is
 * resumed before the next one starts) and receives fill in submission order.
 *
 * Every accepted op produces exactly one packet on the port: calls that fail at once post
 * a packet of their own (key KEY_SYNTH) carrying the Win32 error, so that success, failure
 * and cancellation all finish in one place. Cancellation is CancelIoEx; the cancelled call
 * still delivers its packet, which is the op's only completion.
 *
 * ioq_recv_pool waits with a zero-byte WSARecv (a zero-byte ReadFile on a named pipe) and
 * only then takes a pool buffer for a read that cannot block, so an idle connection pins no
 * buffer.
 *
 * ioq_watch polls sockets through AFD, the driver under Winsock, as wepoll and libuv do:
 * an IOCTL_AFD_POLL for the socket's base handle, issued on one \Device\Afd handle per loop
 * that sits on the loop's port, so the watched socket itself never joins the port (it is
 * the caller's and may be on a port of its own). AFD reports what holds when asked, so a
 * multishot watch that reported is polled again at the start of the next wait (after the
 * caller had the chance to read or write): a condition that still holds reports then, at
 * most once per wait.
 */
#include "win.h"

#include <winternl.h>

#include <stdlib.h>
#include <string.h>

#define KEY_OP 0
#define KEY_WAKE 1
#define KEY_SYNTH 2
#define BATCH 256

/* op->be_u64 bits */
#define IN_KERNEL 1u
#define CANCEL_SENT 2u

typedef ULONG(WINAPI *status_to_error_fn)(LONG);

typedef struct {
    HANDLE port;
    LPFN_ACCEPTEX acceptex;
    LPFN_CONNECTEX connectex;
    LPFN_GETACCEPTEXSOCKADDRS acceptex_addrs;
    status_to_error_fn status_to_error;
    HANDLE read_event; /* for the short synchronous pipe reads of ioq_recv_pool */
    uint32_t inflight; /* ops with a packet still to come */
    int64_t on_port;   /* an accepted pipe instance, already on the port as the listener's */
    HANDLE afd;        /* \Device\Afd, opened at the first watch; on the port */
    ioq__opq rearm;    /* multishot watches that reported: polled again at the next wait */
} iocp_state;

/* AFD's poll request (the layout of the driver's AFD_POLL_INFO, one socket). */
#define IOCTL_AFD_POLL 0x00012024
#define AFD_POLL_RECEIVE 0x0001u
#define AFD_POLL_SEND 0x0004u
#define AFD_POLL_DISCONNECT 0x0008u
#define AFD_POLL_ABORT 0x0010u
#define AFD_POLL_LOCAL_CLOSE 0x0020u
#define AFD_POLL_ACCEPT 0x0080u
#define AFD_POLL_CONNECT_FAIL 0x0100u

typedef struct {
    LARGE_INTEGER timeout;
    ULONG count;
    ULONG exclusive;
    struct {
        HANDLE handle;
        ULONG events;
        LONG status;
    } sock;
} afd_poll_info;

typedef struct {
    OVERLAPPED ov; /* first: a packet's OVERLAPPED is the args */
    ioq__op *op;
    DWORD synth_err, synth_bytes;
    DWORD flags;
    INT sslen;
    SOCKET acc;    /* AcceptEx: the socket of the new connection */
    wchar_t *pipe; /* local connect: the pipe name (stored after the WSABUFs) */
    char *gather;  /* sendv on a pipe: its pieces copied into one write (after the WSABUFs) */
    size_t gather_cap;
    struct sockaddr_storage ss;
    char abuf[2 * (sizeof(struct sockaddr_storage) + 16)]; /* AcceptEx; zero-byte reads */
    afd_poll_info poll; /* watch: request in, what holds out */
    HANDLE wait;        /* process wait: the thread pool's wait on the process */
    HANDLE port;        /* process wait: where the waiting callback posts */
    volatile LONG fired; /* process wait: the callback has posted the packet */
    WSABUF wb[1]; /* more follow for sendv */
} iocp_args;

/* Per-handle storage: only pipe listeners and watches have any. */
typedef struct {
    wchar_t *pipe_name;
    SOCKET base; /* watch: the socket under any layered provider, which AFD knows */
} iocp_handle;

static iocp_state *st(ioq_loop *loop) { return ioq__backend_data(loop); }

static bool is_sock(const ioq__handle *h)
{
    return h->kind == IOQ__K_TCP || h->kind == IOQ__K_TCP_LISTENER || h->kind == IOQ__K_UDP ||
           (h->kind == IOQ__K_CONNECTING && h->family != 0);
}

static HANDLE os_handle(const ioq__handle *h) { return (HANDLE)(intptr_t)h->fd; }

static bool is_pipe_kind(const ioq__handle *h)
{
    return (IOQ__KIND_BIT(h->kind) & IOQ__PIPE_KINDS) != 0;
}

/* --- process waits ------------------------------------------------------------------------ */

/* A thread-pool thread: the child has ended. The packet goes to the loop's port. */
static VOID CALLBACK process_ended(PVOID arg, BOOLEAN timed_out)
{
    iocp_args *a = arg;
    (void)timed_out;
    a->synth_err = 0;
    a->synth_bytes = 0;
    InterlockedExchange(&a->fired, 1);
    PostQueuedCompletionStatus(a->port, 0, KEY_SYNTH, &a->ov);
}

/* Stop the wait of a process-wait op (blocking until a callback that runs has returned).
 * True if no packet was posted and none will be: the caller posts the op's end itself. */
static bool process_unwait(iocp_args *a)
{
    if (!a->wait)
        return false;
    UnregisterWaitEx(a->wait, INVALID_HANDLE_VALUE);
    a->wait = NULL;
    return InterlockedCompareExchange(&a->fired, 0, 0) == 0;
}

static int associate(ioq_loop *loop, ioq__handle *h)
{
    iocp_state *s = st(loop);
    if (h->fd < 0 || (h->rstate & IOQ__R_REG))
        return 0;
    /* A handle joins a port once: the pipe instance a listener hands to a connection is
     * on it already. */
    if (h->fd == s->on_port) {
        s->on_port = -1;
        h->rstate |= IOQ__R_REG;
        return 0;
    }
    if (!CreateIoCompletionPort(os_handle(h), s->port, KEY_OP, 0))
        return ioq__win_error_map(GetLastError());
    h->rstate |= IOQ__R_REG;
    return 0;
}

static iocp_args *args_of(ioq__op *op, uint32_t nwb, size_t extra)
{
    if (!op->be) {
        size_t n = sizeof(iocp_args) + (nwb > 1 ? nwb - 1 : 0) * sizeof(WSABUF);
        iocp_args *a = calloc(1, n + extra);
        if (!a)
            return NULL;
        a->op = op;
        a->acc = INVALID_SOCKET;
        if (extra) {
            a->pipe = (wchar_t *)((char *)a + n);
            a->gather = (char *)a->pipe;
            a->gather_cap = extra;
        }
        op->be = a;
    }
    return op->be;
}

/* Deliver a result through the port, as if the kernel had finished the call. */
static int post_synth(ioq_loop *loop, iocp_args *a, DWORD err, DWORD bytes)
{
    a->synth_err = err;
    a->synth_bytes = bytes;
    if (!PostQueuedCompletionStatus(st(loop)->port, bytes, KEY_SYNTH, &a->ov))
        return ioq__win_error_map(GetLastError());
    return 0;
}

/* The outcome of an overlapped call that returned failure: queued, or failed at once. */
static int pending_or_synth(ioq_loop *loop, iocp_args *a, DWORD err)
{
    /* A call that ends at once with an NT warning (STATUS_BUFFER_OVERFLOW for a truncated
     * datagram) still queues its packet; only an error status queues none. */
    if (err == ERROR_IO_PENDING || ((ULONG)a->ov.Internal & 0xC0000000u) == 0x80000000u)
        return 0;
    return post_synth(loop, a, err, 0);
}

static int sock_result(ioq_loop *loop, iocp_args *a, int rc)
{
    return rc == 0 ? 0 : pending_or_synth(loop, a, (DWORD)WSAGetLastError());
}

static int file_result(ioq_loop *loop, iocp_args *a, BOOL ok)
{
    return ok ? 0 : pending_or_synth(loop, a, GetLastError());
}

/* Fill the WSABUFs of a sendv with its unsent pieces; returns their count. */
static DWORD sendv_bufs(ioq__op *op, iocp_args *a)
{
    DWORD cnt = 0;
    uint32_t pos = op->iovpos;
    void *base;
    size_t len;
    while (ioq__sendv_piece(op, &pos, &base, &len)) {
        a->wb[cnt].buf = base;
        a->wb[cnt].len = (ULONG)len;
        cnt++;
    }
    return cnt;
}

/* The buffer a sendv on a pipe gathers its pieces in: what is left to send, at most the
 * pipe's buffer (more goes in later writes). */
#define GATHER_MAX 65536u
static size_t gather_size(ioq__op *op)
{
    uint32_t pos = op->iovpos;
    void *p;
    size_t n, total = 0;
    if (op->be)
        return 0; /* allocated at the first issue */
    while (total < GATHER_MAX && ioq__sendv_piece(op, &pos, &p, &n))
        total += n;
    return total < GATHER_MAX ? (total ? total : 1) : GATHER_MAX;
}

/* Put op into the kernel (or post its immediate result). 0, or IOQ_E* with nothing queued. */
static int issue(ioq_loop *loop, ioq__op *op)
{
    iocp_state *s = st(loop);
    ioq__handle *h = op->h;
    SOCKET sk = (SOCKET)h->fd;
    HANDLE fh = os_handle(h);
    bool sock = is_sock(h);
    iocp_args *a;
    int rc;

    if (op->code == IOQ_OP_SENDV && !sock)
        a = args_of(op, 1, gather_size(op));
    else
        a = args_of(op, op->code == IOQ_OP_SENDV ? op->iovcnt : 1, 0);
    if (!a)
        return IOQ_ENOMEM;
    memset(&a->ov, 0, sizeof a->ov);
    a->flags = 0;

    switch (op->code) {
    case IOQ_OP_ACCEPT:
        if (h->kind == IOQ__K_TCP_LISTENER) {
            DWORD n = 0;
            const DWORD alen = sizeof(struct sockaddr_storage) + 16;
            if ((rc = ioq__win_socket(ioq__win_family(h->family), SOCK_STREAM, &a->acc)) != 0)
                return rc;
            if (!s->acceptex(sk, a->acc, a->abuf, 0, alen, alen, &n, &a->ov)) {
                DWORD e = (DWORD)WSAGetLastError();
                if (e != ERROR_IO_PENDING) {
                    closesocket(a->acc);
                    a->acc = INVALID_SOCKET;
                    rc = post_synth(loop, a, e, 0);
                } else {
                    rc = 0;
                }
            } else {
                rc = 0;
            }
        } else {
            iocp_handle *hb = h->be;
            if (!hb || !hb->pipe_name)
                return IOQ_ENOTSUP;
            if (ConnectNamedPipe(fh, &a->ov)) {
                rc = 0;
            } else {
                DWORD e = GetLastError();
                /* A client that came before the accept: the instance is already taken. */
                if (e == ERROR_PIPE_CONNECTED || e == ERROR_NO_DATA)
                    rc = post_synth(loop, a, 0, 0);
                else
                    rc = pending_or_synth(loop, a, e);
            }
        }
        break;
    case IOQ_OP_CONNECT: {
        struct sockaddr_storage ss;
        int len = 0;
        ioq__to_sockaddr(&op->addr, &ss, &len);
        if (!s->connectex(sk, (struct sockaddr *)&ss, len, NULL, 0, NULL, &a->ov))
            rc = pending_or_synth(loop, a, (DWORD)WSAGetLastError());
        else
            rc = 0;
        break;
    }
    case IOQ_OP_RECV:
        if (sock) {
            a->wb[0].buf = op->buf;
            a->wb[0].len = (ULONG)op->len;
            rc = sock_result(loop, a, WSARecv(sk, a->wb, 1, NULL, &a->flags, &a->ov, NULL));
        } else {
            rc = file_result(loop, a, ReadFile(fh, op->buf, (DWORD)op->len, NULL, &a->ov));
        }
        break;
    case IOQ_OP_RECV_POOL:
        if (sock) {
            /* Zero bytes: completes when data (or the end) arrives, holding no buffer. On
             * UDP a peek, or the datagram would be consumed by the empty read. */
            a->wb[0].buf = NULL;
            a->wb[0].len = 0;
            a->flags = h->kind == IOQ__K_UDP ? MSG_PEEK : 0;
            rc = sock_result(loop, a, WSARecv(sk, a->wb, 1, NULL, &a->flags, &a->ov, NULL));
        } else {
            /* A zero-byte read waits on a pipe too. */
            rc = file_result(loop, a, ReadFile(fh, a->abuf, 0, NULL, &a->ov));
        }
        break;
    case IOQ_OP_RECVFROM:
        a->wb[0].buf = op->buf;
        a->wb[0].len = (ULONG)op->len;
        a->sslen = sizeof a->ss;
        rc = sock_result(loop, a, WSARecvFrom(sk, a->wb, 1, NULL, &a->flags,
                                              (struct sockaddr *)&a->ss, &a->sslen, &a->ov,
                                              NULL));
        break;
    case IOQ_OP_SEND:
    case IOQ_OP_SENDV:
        if (h->rstate & IOQ__R_SHUTWR) {
            /* Behind a pipe's shutdown: the write end is gone. */
            rc = post_synth(loop, a, ERROR_NO_DATA, 0);
            break;
        }
        if (h->kind == IOQ__K_UDP && op->done == 0) {
            /* Winsock calls a send on an unconnected datagram socket invalid. */
            struct sockaddr_storage peer;
            int plen = sizeof peer;
            if (getpeername(sk, (struct sockaddr *)&peer, &plen) != 0) {
                rc = post_synth(loop, a, WSAEDESTADDRREQ, 0);
                break;
            }
        }
        if (op->code == IOQ_OP_SENDV) {
            if (sock) {
                DWORD cnt = sendv_bufs(op, a);
                rc = sock_result(loop, a, WSASend(sk, a->wb, cnt, NULL, 0, &a->ov, NULL));
            } else {
                /* WriteFile takes one buffer: the unsent pieces copied into one, as far as
                 * it holds them, so that they go out in one write as writev's do. */
                uint32_t pos = op->iovpos;
                void *p = NULL;
                size_t n = 0, len = 0;
                while (len < a->gather_cap && ioq__sendv_piece(op, &pos, &p, &n)) {
                    size_t k = n < a->gather_cap - len ? n : a->gather_cap - len;
                    memcpy(a->gather + len, p, k);
                    len += k;
                }
                rc = file_result(loop, a, WriteFile(fh, a->gather, (DWORD)len, NULL, &a->ov));
            }
        } else if (sock) {
            a->wb[0].buf = (char *)op->buf + op->done;
            a->wb[0].len = (ULONG)(op->len - op->done);
            rc = sock_result(loop, a, WSASend(sk, a->wb, 1, NULL, 0, &a->ov, NULL));
        } else {
            rc = file_result(loop, a, WriteFile(fh, (char *)op->buf + op->done,
                                                (DWORD)(op->len - op->done), NULL, &a->ov));
        }
        break;
    case IOQ_OP_SENDTO: {
        ioq_addr to = op->addr;
        int len = 0;
        if (h->family == IOQ_AF_INET && to.family == IOQ_AF_INET6) {
            rc = post_synth(loop, a, WSAEAFNOSUPPORT, 0);
            break;
        }
        if (h->family == IOQ_AF_INET6 && to.family == IOQ_AF_INET) {
            /* A dual-stack socket reaches IPv4 through a mapped address, as Linux does. */
            memmove(to.ip + 12, to.ip, 4);
            memset(to.ip, 0, 10);
            to.ip[10] = to.ip[11] = 0xff;
            to.family = IOQ_AF_INET6;
            to.scope_id = 0;
        }
        ioq__to_sockaddr(&to, &a->ss, &len);
        a->wb[0].buf = op->buf;
        a->wb[0].len = (ULONG)op->len;
        rc = sock_result(loop, a, WSASendTo(sk, a->wb, 1, NULL, 0, (struct sockaddr *)&a->ss,
                                            len, &a->ov, NULL));
        break;
    }
    case IOQ_OP_SHUTDOWN:
        if (is_pipe_kind(h)) {
            /* A write end (ioq_shutdown refuses the others): closing it is the end of the
             * stream for the reader. The null device takes its place until ioq_close, as
             * on POSIX, so that the handle keeps a descriptor. */
            DWORD e = 0;
            if (!(h->rstate & IOQ__R_SHUTWR)) {
                HANDLE nul = CreateFileW(L"NUL", GENERIC_READ | GENERIC_WRITE,
                                         FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                                         OPEN_EXISTING, 0, NULL);
                if (nul == INVALID_HANDLE_VALUE) {
                    e = GetLastError();
                } else {
                    CloseHandle((HANDLE)(intptr_t)ioq__handle_swap_fd(
                        loop, h, (int64_t)(intptr_t)nul));
                    h->rstate |= IOQ__R_SHUTWR;
                }
            }
            rc = post_synth(loop, a, e, 0);
        } else if (!sock)
            /* Local streams (named pipes) have no half-close. */
            rc = post_synth(loop, a, ERROR_NOT_SUPPORTED, 0);
        else if (shutdown(sk, SD_SEND) != 0)
            rc = post_synth(loop, a, (DWORD)WSAGetLastError(), 0);
        else
            rc = post_synth(loop, a, 0, 0);
        break;
    case IOQ_OP_READ:
        a->ov.Offset = (DWORD)op->offset;
        a->ov.OffsetHigh = (DWORD)(op->offset >> 32);
        rc = file_result(loop, a, ReadFile(fh, op->buf, (DWORD)op->len, NULL, &a->ov));
        break;
    case IOQ_OP_PROCESS_WAIT: {
        int64_t res;
        int r = ioq__os_process_reap(h->obj, &res);
        /* Ended already: the status goes through the port like any result. */
        if (r != 0) {
            rc = post_synth(loop, a, 0, 0);
            break;
        }
        a->port = s->port;
        a->fired = 0;
        if (!RegisterWaitForSingleObject(&a->wait, fh, process_ended, a, INFINITE,
                                         WT_EXECUTEONLYONCE | WT_EXECUTEINWAITTHREAD)) {
            a->wait = NULL;
            rc = ioq__win_error_map(GetLastError());
        } else {
            rc = 0;
        }
        break;
    }
    case IOQ_OP_WRITE: {
        uint64_t off = op->offset + op->done;
        a->ov.Offset = (DWORD)off;
        a->ov.OffsetHigh = (DWORD)(off >> 32);
        rc = file_result(loop, a, WriteFile(fh, (char *)op->buf + op->done,
                                            (DWORD)(op->len - op->done), NULL, &a->ov));
        break;
    }
    default:
        rc = post_synth(loop, a, ERROR_NOT_SUPPORTED, 0);
        break;
    }
    if (rc != 0)
        return rc;
    op->be_u64 = IN_KERNEL;
    s->inflight++;
    return 0;
}

static void finish(ioq_loop *loop, ioq__op *op, int64_t res, uint64_t value, uint16_t flags)
{
    ioq__order_finish(loop, op, res, value, flags, issue);
}

/* --- local connect ------------------------------------------------------------------------ */

/* Open the pipe: opening never waits, so the result goes through the port at once. Every
 * instance taken is the Windows form of a full backlog: IOQ_EAGAIN, as on every backend
 * (ioq.h), rather than a wait that no event would end. */
static void local_connect(ioq_loop *loop, ioq__op *op)
{
    iocp_args *a = op->be;
    ioq__handle *h = op->h;
    HANDLE p = CreateFileW(a->pipe, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                           FILE_FLAG_OVERLAPPED, NULL);
    DWORD err = 0;
    if (p == INVALID_HANDLE_VALUE) {
        err = GetLastError();
        if (err == ERROR_PIPE_BUSY) {
            ioq__complete(loop, op, IOQ_EAGAIN, 0, 0);
            return;
        }
    } else if (ioq__handle_attach(loop, h, (int64_t)(intptr_t)p) != 0) {
        CloseHandle(p);
        err = ERROR_NOT_ENOUGH_MEMORY;
    }
    op->be_u64 = IN_KERNEL;
    st(loop)->inflight++;
    if (post_synth(loop, a, err, 0) != 0) {
        /* The port refused a packet: finish here instead. */
        op->be_u64 = 0;
        st(loop)->inflight--;
        ioq__complete(loop, op, err ? ioq__win_error_map(err) : IOQ_ENOMEM, 0, 0);
    }
}

/* --- watch: AFD polling ---------------------------------------------------------------------- */

static int64_t map_err(ioq__op *op, DWORD err);

typedef LONG(NTAPI *nt_create_file_fn)(PHANDLE, ACCESS_MASK, POBJECT_ATTRIBUTES, PIO_STATUS_BLOCK,
                                       PLARGE_INTEGER, ULONG, ULONG, ULONG, ULONG, PVOID, ULONG);

/* Open \Device\Afd (AFD ignores the name after the device; the bare device is tried too)
 * and put it on the port. 0, or IOQ_ENOTSUP when the system has no AFD to poll with. */
static int afd_open(iocp_state *s)
{
    static const wchar_t *const names[] = {L"\\Device\\Afd\\Ioq", L"\\Device\\Afd"};
    HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
    nt_create_file_fn create =
        ntdll ? (nt_create_file_fn)(void (*)(void))GetProcAddress(ntdll, "NtCreateFile") : NULL;
    if (!create)
        return IOQ_ENOTSUP;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        UNICODE_STRING name;
        OBJECT_ATTRIBUTES attr;
        IO_STATUS_BLOCK iosb;
        HANDLE afd = NULL;
        name.Buffer = (PWSTR)names[i];
        name.Length = (USHORT)(wcslen(names[i]) * sizeof(wchar_t));
        name.MaximumLength = (USHORT)(name.Length + sizeof(wchar_t));
        InitializeObjectAttributes(&attr, &name, 0, NULL, NULL);
        if (create(&afd, SYNCHRONIZE, &attr, &iosb, NULL, 0, FILE_SHARE_READ | FILE_SHARE_WRITE,
                   1 /* FILE_OPEN */, 0, NULL, 0) < 0)
            continue;
        /* A poll that finishes at once still queues its packet: one path for all results. */
        if (!CreateIoCompletionPort(afd, s->port, KEY_OP, 0)) {
            int rc = ioq__win_error_map(GetLastError());
            CloseHandle(afd);
            return rc;
        }
        s->afd = afd;
        return 0;
    }
    return IOQ_ENOTSUP;
}

/* Ask AFD what of op's events holds, or to tell when one does. 0, or IOQ_E* with nothing
 * queued. */
static int watch_issue(ioq_loop *loop, ioq__op *op)
{
    iocp_state *s = st(loop);
    iocp_handle *hb = op->h->be;
    iocp_args *a = args_of(op, 1, 0);
    /* Hang-up and errors are reported without asking; a local close ends the watch. */
    ULONG ev = AFD_POLL_DISCONNECT | AFD_POLL_ABORT | AFD_POLL_LOCAL_CLOSE | AFD_POLL_CONNECT_FAIL;
    int rc;

    if (!a || !hb)
        return IOQ_ENOMEM;
    if (!s->afd && (rc = afd_open(s)) != 0)
        return rc;
    if (op->events & IOQ_WATCH_READABLE)
        ev |= AFD_POLL_RECEIVE | AFD_POLL_ACCEPT;
    if (op->events & IOQ_WATCH_WRITABLE)
        ev |= AFD_POLL_SEND;
    memset(&a->ov, 0, sizeof a->ov);
    a->poll.timeout.QuadPart = INT64_MAX;
    a->poll.count = 1;
    a->poll.exclusive = 0;
    a->poll.sock.handle = (HANDLE)hb->base;
    a->poll.sock.events = ev;
    a->poll.sock.status = 0;
    if (!DeviceIoControl(s->afd, IOCTL_AFD_POLL, &a->poll, sizeof a->poll, &a->poll,
                         sizeof a->poll, NULL, &a->ov) &&
        (rc = pending_or_synth(loop, a, GetLastError())) != 0)
        return rc;
    op->be_u64 = IN_KERNEL;
    s->inflight++;
    return 0;
}

static void on_watch(ioq_loop *loop, ioq__op *op, iocp_args *a, DWORD err)
{
    ULONG ev = a->poll.count ? a->poll.sock.events : 0;
    uint32_t r;
    int rc;

    if (op->cancelled) {
        /* A report is no result to keep: it would come again. */
        ioq__complete(loop, op, IOQ_ECANCELED, 0, 0);
        return;
    }
    if (err) {
        ioq__complete(loop, op, map_err(op, err), 0, 0);
        return;
    }
    if (ev & AFD_POLL_LOCAL_CLOSE) {
        /* The owner closed the socket under the watch: nothing is left to watch. */
        ioq__complete(loop, op, IOQ_WATCH_ERROR | IOQ_WATCH_HANGUP, 0, 0);
        return;
    }
    /* End of stream and a reset are readable too, as on POSIX. */
    r = ioq__watch_result(
        op, ((ev & (AFD_POLL_RECEIVE | AFD_POLL_ACCEPT | AFD_POLL_DISCONNECT | AFD_POLL_ABORT))
                 ? IOQ_WATCH_READABLE
                 : 0u) |
                ((ev & AFD_POLL_SEND) ? IOQ_WATCH_WRITABLE : 0u) |
                ((ev & (AFD_POLL_ABORT | AFD_POLL_CONNECT_FAIL)) ? IOQ_WATCH_ERROR : 0u) |
                ((ev & (AFD_POLL_DISCONNECT | AFD_POLL_ABORT)) ? IOQ_WATCH_HANGUP : 0u));
    if (r == 0) {
        /* Nothing this watch asked for (cannot happen with the events it asked AFD for):
         * poll again, now. */
        if ((rc = watch_issue(loop, op)) != 0)
            ioq__complete(loop, op, rc, 0, 0);
        return;
    }
    if ((op->flags & IOQ_MULTISHOT) && ioq__cq_room(loop, 1)) {
        ioq__complete(loop, op, r, 0, IOQ_CQE_MORE);
        ioq__opq_push(&st(loop)->rearm, op);
        return;
    }
    ioq__complete(loop, op, r, 0, 0);
}

/* Poll again the multishot watches that reported at the last wait. True if one of them
 * completed here instead (a record is ready: the wait must not sleep). */
static bool watch_rearm(ioq_loop *loop)
{
    iocp_state *s = st(loop);
    bool done = false;
    while (s->rearm.head) {
        ioq__op *op = s->rearm.head;
        int rc;
        ioq__opq_remove(&s->rearm, op);
        if ((rc = watch_issue(loop, op)) != 0) {
            ioq__complete(loop, op, rc, 0, 0);
            done = true;
        }
    }
    return done;
}

/* --- backend entry points ------------------------------------------------------------------ */

static int iocp_start(ioq_loop *loop, ioq__op *op)
{
    ioq__handle *h = op->h;
    int rc;

    switch (op->code) {
    case IOQ_OP_WATCH:
        return watch_issue(loop, op);
    case IOQ_OP_OPEN:
    case IOQ_OP_FSYNC:
        op->res_fd = h ? h->fd : -1;
        return ioq__tp_submit(loop, op, ioq__os_file_work);
    case IOQ_OP_CONNECT: {
        SOCKET sk;
        struct sockaddr_storage any;
        ioq_addr zero;
        int len = 0;
        if ((rc = ioq__win_socket(ioq__win_family(op->addr.family), SOCK_STREAM, &sk)) != 0)
            return rc;
        /* ConnectEx wants a bound socket. */
        memset(&zero, 0, sizeof zero);
        zero.family = op->addr.family;
        ioq__to_sockaddr(&zero, &any, &len);
        if (bind(sk, (struct sockaddr *)&any, len) != 0)
            rc = ioq__win_error_map((DWORD)WSAGetLastError());
        else if ((rc = ioq__handle_attach(loop, h, (int64_t)sk)) == 0 &&
                 (rc = issue(loop, op)) != 0) {
            h->fd = -1;
            h->rstate &= (uint16_t)~IOQ__R_REG;
        }
        if (rc != 0)
            closesocket(sk);
        return rc;
    }
    case IOQ_OP_LOCAL_CONNECT: {
        wchar_t *name = ioq__win_pipe_name(op->path, &rc);
        iocp_args *a;
        size_t n;
        if (!name)
            return rc;
        n = (wcslen(name) + 1) * sizeof *name;
        if (!(a = args_of(op, 1, n))) {
            free(name);
            return IOQ_ENOMEM;
        }
        memcpy(a->pipe, name, n);
        free(name);
        local_connect(loop, op);
        return 0;
    }
    default:
        break;
    }
    return ioq__order_start(loop, op, issue);
}

/* The handle an op's call was made on: a watch's poll is on the loop's AFD handle. */
static HANDLE op_file(ioq_loop *loop, ioq__op *op)
{
    return op->code == IOQ_OP_WATCH ? st(loop)->afd : os_handle(op->h);
}

static void iocp_cancel(ioq_loop *loop, ioq__op *op)
{
    if (op->be_u64 & IN_KERNEL) {
        iocp_args *a = op->be;
        if (op->be_u64 & CANCEL_SENT)
            return;
        if (op->code == IOQ_OP_PROCESS_WAIT) {
            /* Not kernel I/O: stop the wait; a child that ended meanwhile has its packet
             * on the way, which then completes the op with its status. */
            if (process_unwait(a) && post_synth(loop, a, ERROR_OPERATION_ABORTED, 0) != 0) {
                op->be_u64 = 0;
                st(loop)->inflight--;
                finish(loop, op, IOQ_ECANCELED, 0, 0);
                return;
            }
            op->be_u64 |= CANCEL_SENT;
            return;
        }
        /* A posted result cannot be recalled: it completes with what it carries. */
        CancelIoEx(op_file(loop, op), &a->ov);
        op->be_u64 |= CANCEL_SENT;
        return;
    }
    if (op->code == IOQ_OP_WATCH) {
        /* Between two waits: reported, not yet polled again. */
        ioq__opq_remove(&st(loop)->rearm, op);
        ioq__complete(loop, op, IOQ_ECANCELED, 0, 0);
        return;
    }
    ioq__order_cancel_queued(loop, op);
}

static int64_t map_err(ioq__op *op, DWORD err)
{
    if (err == ERROR_OPERATION_ABORTED || (op->cancelled && err == ERROR_CANCELLED))
        return IOQ_ECANCELED;
    return ioq__win_error_map(err);
}

static void on_accept(ioq_loop *loop, ioq__op *op, iocp_args *a, DWORD err)
{
    ioq__handle *h = op->h, *c;
    bool multi = (op->flags & IOQ_MULTISHOT) && !op->cancelled;
    bool more = false;
    int rc;

    if (h->kind == IOQ__K_TCP_LISTENER) {
        SOCKET acc = a->acc;
        SOCKET lsock = (SOCKET)h->fd;
        a->acc = INVALID_SOCKET;
        if (err) {
            closesocket(acc);
            /* A connection reset before it was taken ends nothing but itself. */
            if (multi && (err == ERROR_NETNAME_DELETED || err == WSAECONNRESET) &&
                issue(loop, op) == 0)
                return;
            finish(loop, op, map_err(op, err), 0, 0);
            return;
        }
        setsockopt(acc, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, (const char *)&lsock,
                   sizeof lsock);
        {
            struct sockaddr *la = NULL, *ra = NULL;
            int llen = 0, rlen = 0;
            const DWORD alen = sizeof(struct sockaddr_storage) + 16;
            st(loop)->acceptex_addrs(a->abuf, 0, alen, alen, &la, &llen, &ra, &rlen);
        }
        if ((rc = ioq__accepted(loop, h, (int64_t)acc, &c)) != 0) {
            finish(loop, op, rc, 0, 0);
            return;
        }
    } else {
        iocp_handle *hb = h->be;
        HANDLE next;
        if (err && err != ERROR_PIPE_CONNECTED && err != ERROR_NO_DATA) {
            finish(loop, op, map_err(op, err), 0, 0);
            return;
        }
        /* The connected instance becomes the connection; a fresh one listens on. */
        if ((rc = ioq__win_pipe_instance(hb->pipe_name, false, &next)) != 0) {
            DisconnectNamedPipe(os_handle(h));
            finish(loop, op, rc, 0, 0);
            return;
        }
        st(loop)->on_port = h->fd;
        rc = ioq__handle_open(loop, IOQ__K_LOCAL, h->family, h->fd, &c);
        st(loop)->on_port = -1;
        if (rc != 0) {
            CloseHandle(next);
            DisconnectNamedPipe(os_handle(h));
            finish(loop, op, rc, 0, 0);
            return;
        }
        h->fd = (int64_t)(intptr_t)next;
        h->rstate &= (uint16_t)~IOQ__R_REG;
        if (associate(loop, h) != 0) {
            CloseHandle(next);
            h->fd = -1;
            multi = false;
        }
    }
    if (multi && h->fd >= 0) {
        /* Going on needs room in the completion ring for this record and the next: without
         * it the accept ends with IOQ_ENOMEM, as the readiness engine's does. */
        rc = ioq__cq_room(loop, 2) ? issue(loop, op) : IOQ_ENOMEM;
        if (rc == 0) {
            more = true;
        } else if (ioq__cq_room(loop, 1)) {
            /* The connection is delivered; the error that stops the next one ends it. */
            ioq__complete(loop, op, 0, ioq__handle_value(loop, c), IOQ_CQE_MORE);
            finish(loop, op, rc, 0, 0);
            return;
        }
    }
    finish(loop, op, 0, ioq__handle_value(loop, c), more ? IOQ_CQE_MORE : 0);
}

/* Read what a finished zero-byte wait announced into a pool buffer, without blocking:
 * bytes (> 0), 0 at the end of the stream, -1 when nothing is there after all, or < -1 an
 * IOQ_E* code. */
static int64_t pool_read_now(ioq_loop *loop, ioq__handle *h, void *buf, uint32_t size)
{
    if (is_sock(h)) {
        int n = recv((SOCKET)h->fd, buf, (int)size, 0), e;
        if (n >= 0)
            return n;
        e = WSAGetLastError();
        if (e == WSAEMSGSIZE)
            return size; /* a datagram truncated to the buffer, as on POSIX */
        return e == WSAEWOULDBLOCK ? -1 : ioq__win_error_map((DWORD)e);
    } else {
        iocp_state *s = st(loop);
        DWORD avail = 0, n = 0;
        OVERLAPPED ov;
        BOOL ok;
        if (!PeekNamedPipe(os_handle(h), NULL, 0, NULL, &avail, NULL)) {
            DWORD e = GetLastError();
            return e == ERROR_BROKEN_PIPE ? 0 : ioq__win_error_map(e);
        }
        if (avail == 0)
            return -1;
        /* The data is there, so the read finishes at once. The event's low bit keeps its
         * completion off the port. */
        memset(&ov, 0, sizeof ov);
        ov.hEvent = (HANDLE)((uintptr_t)s->read_event | 1);
        ok = ReadFile(os_handle(h), buf, avail < size ? avail : size, NULL, &ov);
        if (!ok && GetLastError() != ERROR_IO_PENDING)
            return ioq__win_error_map(GetLastError());
        if (!GetOverlappedResult(os_handle(h), &ov, &n, TRUE))
            return ioq__win_error_map(GetLastError());
        return n;
    }
}

/* With no buffer in the pool, look without taking, so that the data stays where it is and
 * the end of the stream is told from data (as the other backends do): 1 data, 0 end of
 * stream, -1 nothing after all, or < -1 an IOQ_E* code (as pool_read_now). */
static int64_t pool_peek(ioq__handle *h)
{
    if (is_sock(h)) {
        char c;
        int n = recv((SOCKET)h->fd, &c, 1, MSG_PEEK), e;
        if (n >= 0)
            return n;
        e = WSAGetLastError();
        if (e == WSAEMSGSIZE)
            return 1; /* a datagram longer than the byte peeked */
        return e == WSAEWOULDBLOCK ? -1 : ioq__win_error_map((DWORD)e);
    } else {
        DWORD avail = 0;
        if (!PeekNamedPipe(os_handle(h), NULL, 0, NULL, &avail, NULL)) {
            DWORD e = GetLastError();
            return e == ERROR_BROKEN_PIPE ? 0 : ioq__win_error_map(e);
        }
        return avail ? 1 : -1;
    }
}

static void on_recv_pool(ioq_loop *loop, ioq__op *op, DWORD err)
{
    ioq__handle *h = op->h;
    ioq__pool *pool = op->pool;
    bool multi = (op->flags & IOQ_MULTISHOT) && !op->cancelled;
    uint32_t id;
    int64_t n;

    /* A pipe whose writer is gone is the end of the stream. The peek of a too long
     * datagram reports it as truncated: data is there. */
    if (err == ERROR_BROKEN_PIPE || err == ERROR_PIPE_NOT_CONNECTED) {
        finish(loop, op, 0, 0, 0);
        return;
    }
    if (err && err != ERROR_MORE_DATA && err != WSAEMSGSIZE) {
        finish(loop, op, map_err(op, err), 0, 0);
        return;
    }
    if (multi && !ioq__cq_room(loop, 2)) {
        /* No room in the completion ring for another record: end before reading, so that
         * the data stays in the socket (as the readiness engine does). */
        finish(loop, op, IOQ_ENOMEM, 0, 0);
        return;
    }
    id = ioq__pool_take(pool);
    if (id == UINT32_MAX) {
        int rc;
        n = pool_peek(h);
        if (n == -1 && !op->cancelled && (rc = issue(loop, op)) != 0)
            n = rc;
        if (n != -1)
            finish(loop, op, n == 1 ? IOQ_ENOBUFS : n, 0, 0);
        else if (op->cancelled)
            finish(loop, op, IOQ_ECANCELED, 0, 0);
        return;
    }
    n = pool_read_now(loop, h, ioq__pool_buf(pool, id), pool->size);
    if (n <= 0) {
        ioq__pool_put(pool, id);
        if (n == -1) {
            int rc;
            if (op->cancelled) {
                finish(loop, op, IOQ_ECANCELED, 0, 0);
                return;
            }
            if ((rc = issue(loop, op)) != 0) /* woken without data: wait again */
                finish(loop, op, rc, 0, 0);
            return;
        }
        finish(loop, op, n, 0, 0);
        return;
    }
    {
        bool more = multi && issue(loop, op) == 0;
        finish(loop, op, n, id, (uint16_t)(IOQ_CQE_BUFFER | (more ? IOQ_CQE_MORE : 0)));
    }
}

static void on_done(ioq_loop *loop, ioq__op *op, DWORD err, DWORD bytes)
{
    iocp_args *a = op->be;
    ioq__handle *h = op->h;

    op->be_u64 = 0;
    st(loop)->inflight--;
    switch (op->code) {
    case IOQ_OP_ACCEPT:
        on_accept(loop, op, a, err);
        return;
    case IOQ_OP_WATCH:
        on_watch(loop, op, a, err);
        return;
    case IOQ_OP_CONNECT:
    case IOQ_OP_LOCAL_CONNECT:
        if (!err && op->code == IOQ_OP_CONNECT)
            setsockopt((SOCKET)h->fd, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, NULL, 0);
        ioq__connect_done(loop, op, err ? (int)map_err(op, err) : 0);
        return;
    case IOQ_OP_RECV:
        /* A pipe whose other end is gone is the end of the stream. */
        if (err == ERROR_BROKEN_PIPE || err == ERROR_PIPE_NOT_CONNECTED)
            finish(loop, op, 0, 0, 0);
        else if (err == ERROR_MORE_DATA || err == WSAEMSGSIZE)
            finish(loop, op, (int64_t)op->len, 0, 0); /* a datagram truncated to len */
        else
            finish(loop, op, err ? map_err(op, err) : (int64_t)bytes, 0, 0);
        return;
    case IOQ_OP_RECVFROM:
        if (err == ERROR_MORE_DATA || err == WSAEMSGSIZE) {
            err = 0; /* truncated to len, as on POSIX */
            bytes = (DWORD)op->len;
        }
        if (!err && op->addr_out)
            ioq__from_sockaddr((struct sockaddr *)&a->ss, op->addr_out);
        finish(loop, op, err ? map_err(op, err) : (int64_t)bytes, 0, 0);
        return;
    case IOQ_OP_RECV_POOL:
        on_recv_pool(loop, op, err);
        return;
    case IOQ_OP_SEND:
    case IOQ_OP_SENDV:
        ioq__send_result(loop, op, bytes, err ? (int)map_err(op, err) : 0, issue);
        return;
    case IOQ_OP_SENDTO:
        finish(loop, op, err ? map_err(op, err) : (int64_t)bytes, 0, 0);
        return;
    case IOQ_OP_SHUTDOWN:
        finish(loop, op, err ? map_err(op, err) : 0, 0, 0);
        return;
    case IOQ_OP_PROCESS_WAIT: {
        int64_t res = 0;
        int r;
        process_unwait(a); /* the pool's wait object, spent: freed */
        if (err) {
            finish(loop, op, map_err(op, err), 0, 0);
            return;
        }
        r = ioq__os_process_reap(h->obj, &res);
        finish(loop, op, r == 1 ? res : r == 0 ? IOQ_EUNKNOWN : r, 0, 0);
        return;
    }
    case IOQ_OP_READ:
        if (err == ERROR_HANDLE_EOF)
            err = 0, bytes = 0;
        ioq__complete(loop, op, err ? map_err(op, err) : (int64_t)bytes, 0, 0);
        return;
    case IOQ_OP_WRITE:
        ioq__write_result(loop, op, bytes, err ? (int)map_err(op, err) : 0, issue);
        return;
    default:
        ioq__complete(loop, op, err ? map_err(op, err) : 0, 0, 0);
        return;
    }
}

/* The Win32 error and byte count of a dequeued packet. */
static void packet_result(iocp_state *s, const OVERLAPPED_ENTRY *e, DWORD *err, DWORD *bytes)
{
    iocp_args *a = (iocp_args *)e->lpOverlapped;
    if (e->lpCompletionKey == KEY_SYNTH) {
        *err = a->synth_err;
        *bytes = a->synth_bytes;
        return;
    }
    *bytes = e->dwNumberOfBytesTransferred;
    /* Internal holds the NTSTATUS; negative values are errors and warnings. */
    *err = (LONG)a->ov.Internal >= 0 ? 0 : s->status_to_error((LONG)a->ov.Internal);
}

static int iocp_wait(ioq_loop *loop, int64_t timeout_ns)
{
    iocp_state *s = st(loop);
    OVERLAPPED_ENTRY e[BATCH];
    ULONG n = 0;
    DWORD ms;
    int total = 0;

    if (timeout_ns < 0)
        ms = INFINITE;
    else if ((uint64_t)timeout_ns / 1000000u >= INFINITE - 1)
        ms = INFINITE - 1;
    else
        ms = (DWORD)(((uint64_t)timeout_ns + 999999u) / 1000000u); /* never wake early */
    if (s->rearm.head && watch_rearm(loop))
        ms = 0;
    if (!GetQueuedCompletionStatusEx(s->port, e, BATCH, &n, ms, FALSE))
        return 0;
    for (ULONG i = 0; i < n; i++) {
        DWORD err, bytes;
        if (e[i].lpCompletionKey == KEY_WAKE || !e[i].lpOverlapped)
            continue;
        packet_result(s, &e[i], &err, &bytes);
        on_done(loop, ((iocp_args *)e[i].lpOverlapped)->op, err, bytes);
        total++;
    }
    return total;
}

static void iocp_wake(ioq_loop *loop)
{
    PostQueuedCompletionStatus(st(loop)->port, 0, KEY_WAKE, NULL);
}

static int iocp_handle_open(ioq_loop *loop, ioq__handle *h)
{
    int rc;
    if (h->kind == IOQ__K_WATCH) {
        /* Never on the port: the socket is the caller's. AFD is asked about its base
         * socket, the one under any layered service provider. */
        iocp_handle *hb = calloc(1, sizeof *hb);
        DWORD n = 0;
        if (!hb)
            return IOQ_ENOMEM;
        if (WSAIoctl((SOCKET)h->fd, SIO_BASE_HANDLE, NULL, 0, &hb->base, sizeof hb->base, &n,
                     NULL, NULL) != 0 ||
            hb->base == INVALID_SOCKET || hb->base == 0)
            hb->base = (SOCKET)h->fd;
        h->be = hb;
        return 0;
    }
    if (h->kind == IOQ__K_PROCESS)
        return 0; /* a process handle is waited on by the thread pool, not the port */
    rc = associate(loop, h);
    if (rc != 0)
        return rc;
    if (h->kind == IOQ__K_LOCAL_LISTENER) {
        iocp_handle *hb = calloc(1, sizeof *hb);
        if (!hb)
            return IOQ_ENOMEM;
        hb->pipe_name = ioq__win_pipe_name_take(h->fd);
        h->be = hb;
    }
    return 0;
}

static void handle_release(ioq__handle *h)
{
    iocp_handle *hb = h->be;
    if (hb) {
        free(hb->pipe_name);
        free(hb);
        h->be = NULL;
    }
}

static void iocp_handle_close(ioq_loop *loop, ioq__handle *h)
{
    (void)loop;
    handle_release(h);
}

static uint32_t iocp_caps(ioq_loop *loop)
{
    (void)loop;
    return IOQ_CAP_NATIVE_FILES;
}

/* --- life ------------------------------------------------------------------------------------ */

static int load_ext(SOCKET s, GUID guid, void *fn, size_t size)
{
    DWORD n = 0;
    if (WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof guid, fn, (DWORD)size, &n,
                 NULL, NULL) != 0)
        return ioq__win_error_map((DWORD)WSAGetLastError());
    return 0;
}

static int iocp_init(ioq_loop *loop)
{
    GUID acc = WSAID_ACCEPTEX, con = WSAID_CONNECTEX, addrs = WSAID_GETACCEPTEXSOCKADDRS;
    HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
    iocp_state *s;
    SOCKET probe;
    int rc;

    if ((rc = ioq__win_startup()) != 0)
        return rc;
    if (!(s = calloc(1, sizeof *s)))
        return IOQ_ENOMEM;
    s->status_to_error =
        ntdll ? (status_to_error_fn)(void (*)(void))GetProcAddress(ntdll, "RtlNtStatusToDosError")
              : NULL;
    if (!s->status_to_error) {
        free(s);
        return IOQ_ENOSYS;
    }
    if ((rc = ioq__win_socket(AF_INET, SOCK_STREAM, &probe)) != 0) {
        free(s);
        return rc;
    }
    if ((rc = load_ext(probe, acc, &s->acceptex, sizeof s->acceptex)) != 0 ||
        (rc = load_ext(probe, con, &s->connectex, sizeof s->connectex)) != 0 ||
        (rc = load_ext(probe, addrs, &s->acceptex_addrs, sizeof s->acceptex_addrs)) != 0) {
        closesocket(probe);
        free(s);
        return rc == IOQ_EINVAL ? IOQ_ENOSYS : rc;
    }
    closesocket(probe);
    s->on_port = -1;
    s->port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    s->read_event = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (!s->port || !s->read_event) {
        rc = ioq__win_error_map(GetLastError());
        if (s->port)
            CloseHandle(s->port);
        free(s);
        return rc;
    }
    ioq__backend_data_set(loop, s);
    return 0;
}

static void iocp_fini(ioq_loop *loop)
{
    iocp_state *s = st(loop);
    ioq__op_iter it = {0, 0};
    ioq__handle *h;

    /* Cancel everything in the kernel and wait for every packet: only then has the kernel
     * let go of the buffers and OVERLAPPEDs. */
    for (ioq__op *op; (op = ioq__op_iter_next(loop, &it)) != NULL;) {
        if (!(op->be_u64 & IN_KERNEL) || !op->h)
            continue;
        if (op->code == IOQ_OP_PROCESS_WAIT) {
            /* No packet will come for a wait stopped before its child ended. */
            if (process_unwait(op->be)) {
                op->be_u64 = 0;
                s->inflight--;
            }
            continue;
        }
        CancelIoEx(op_file(loop, op), &((iocp_args *)op->be)->ov);
    }
    while (s->inflight) {
        OVERLAPPED_ENTRY e[BATCH];
        ULONG n = 0;
        if (!GetQueuedCompletionStatusEx(s->port, e, BATCH, &n, 10000, FALSE))
            break; /* a call that ignores cancellation: leak rather than hang */
        for (ULONG i = 0; i < n; i++) {
            iocp_args *a = (iocp_args *)e[i].lpOverlapped;
            if (e[i].lpCompletionKey == KEY_WAKE || !a)
                continue;
            a->op->be_u64 = 0;
            s->inflight--;
            /* Sockets born during teardown would leak: close them. */
            if (a->acc != INVALID_SOCKET) {
                closesocket(a->acc);
                a->acc = INVALID_SOCKET;
            }
        }
    }
    for (uint32_t i = 0; (h = ioq__handle_slot(loop, i)) != NULL; i++)
        handle_release(h);
    if (s->afd)
        CloseHandle(s->afd);
    CloseHandle(s->port);
    CloseHandle(s->read_event);
    free(s);
    ioq__backend_data_set(loop, NULL);
}

const ioq__backend ioq__backend_iocp = {
    .name = "iocp",
    .id = IOQ_BACKEND_IOCP,
    .init = iocp_init,
    .fini = iocp_fini,
    .start = iocp_start,
    .cancel = iocp_cancel,
    .wait = iocp_wait,
    .wake = iocp_wake,
    .handle_open = iocp_handle_open,
    .handle_close = iocp_handle_close,
    .loop_fd = NULL,
    .arm_timer = NULL,
    .pool_new = NULL,
    .pool_free = NULL,
    .buf_release = NULL,
    .caps = iocp_caps,
};
