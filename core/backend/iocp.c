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
 *
 * Handles that cannot be overlapped (anonymous pipes from CreatePipe, NUL, consoles) are
 * served as libuv serves them: a worker thread per handle and direction makes the blocking
 * call (ReadFile/WriteFile, or ReadConsoleW/WriteConsoleW with UTF-16 <-> UTF-8) on a
 * duplicate of the handle and posts the op's packet to the port, so the ops finish where
 * all others do. See "synchronous handles" below.
 */
#include "win.h"

#include <winternl.h>

#include <stdio.h>
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

typedef struct sync_dir sync_dir;

/* Per-handle storage: pipe listeners, watches and synchronous streams have some. */
typedef struct {
    wchar_t *pipe_name;
    SOCKET base; /* watch: the socket under any layered provider, which AFD knows */
    int sync;    /* stream: IOQ__WIN_SYNC or IOQ__WIN_CONSOLE (0: overlapped) */
    sync_dir *dir[2]; /* synchronous stream: the reading and the writing worker */
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

/* --- synchronous handles ---------------------------------------------------------------- */

/* A handle without overlapped I/O gets a worker thread per direction, made at its first op
 * and working on its own duplicate of the handle (so that ioq's close of the handle never
 * waits for a blocking call). The loop hands the worker one op at a time (only the head of
 * a direction's queue is issued); the worker makes the blocking call and posts the op's
 * packet (KEY_SYNTH) to the port under the lock, only while the op still wants it.
 *
 * The worker never touches an op's memory outside the lock: it reads into its own buffer
 * (the loop copies into the op's buffer when the packet comes), and copies a send's bytes
 * into it under the lock before writing. So a cancel can end the op at once: under the
 * lock it takes the op back and posts its IOQ_ECANCELED packet itself, then interrupts the
 * blocking call with CancelSynchronousIo. A call that cannot be interrupted (it never
 * reached the kernel within the spin below, or the device ignores cancellation) runs on:
 * what a read brings is kept for the next receive, and a write still writes its bytes; the
 * worker leaves and closes its duplicate when the call returns. */
#define SYNC_BUF 65536u
#define SYNC_CANCEL_SPINS 2000
#define SYNC_CANCEL_MS 50
#define SYNC_RECS 512

struct sync_dir {
    SRWLOCK lock;
    CONDITION_VARIABLE cv;
    HANDLE fh;      /* the worker's duplicate of the handle, closed by the worker */
    HANDLE thread;  /* the worker, for CancelSynchronousIo */
    HANDLE port;
    bool console;   /* ReadConsoleW / WriteConsoleW */
    bool pipe;      /* a pipe: a read of 0 bytes is a zero-length write, not the end */
    bool writer;
    volatile LONG refs; /* the loop's and the worker's */
    /* under lock */
    iocp_args *want; /* the op the worker works for; NULL: none */
    uint64_t seq;    /* counts the ops handed over (an op's args may be reused by the next) */
    DWORD want_len;  /* a read: at most this much */
    bool busy;       /* in a blocking call */
    bool interrupted; /* the loop cancelled that call (wine fails a cancelled console read
                       * with ERROR_INVALID_HANDLE, not ERROR_OPERATION_ABORTED) */
    bool quit;
    DWORD have, off; /* a read: bytes in buf not yet taken, from buf + off */
    bool ended;      /* a read: the end of the stream or an error, kept for every later read */
    DWORD end_err;   /* 0 or ERROR_BROKEN_PIPE: the end; else the error */
    /* worker only */
    wchar_t hi;      /* console read: a high surrogate waiting for its pair */
    char carry[4];   /* console write: an incomplete UTF-8 sequence kept for the next */
    DWORD ncarry;
    HANDLE wake;     /* console: ends the worker's wait for input (cancel, close) */
    INPUT_RECORD *recs; /* console, raw mode: the input records of one read */
    wchar_t *wbuf;   /* console: SYNC_BUF + 8 units */
    char *cbuf;      /* console write: the carried bytes and the new ones, SYNC_BUF + 4 */
    char buf[SYNC_BUF];
};

static void sync_free(sync_dir *d)
{
    if (d->wake)
        CloseHandle(d->wake);
    free(d->recs);
    free(d->wbuf);
    free(d->cbuf);
    free(d);
}

static void sync_unref(sync_dir *d)
{
    if (InterlockedDecrement(&d->refs) == 0)
        sync_free(d);
}

/* Bytes of a complete UTF-8 text at the start of p[0..n): an incomplete sequence at its end
 * is left out (the next write completes it). */
static DWORD utf8_whole(const char *p, DWORD n)
{
    for (DWORD back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = (unsigned char)p[n - back];
        if ((c & 0xC0) == 0x80)
            continue; /* a continuation byte: look further back */
        DWORD need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back ? n - back : n;
    }
    return n;
}

/* Raw console input: a key without a character (an arrow, Home, F5...) comes as the escape
 * sequence a terminal sends for it, so that a program reads the bytes it would read from a
 * POSIX terminal. The sequences are xterm's (Windows Terminal sends the same in VT input
 * mode): arrows CSI A-D, Home CSI H, End CSI F, the keypad's centre CSI E, Insert, Delete,
 * Page Up, Page Down CSI 2~ 3~ 5~ 6~, F1-F4 SS3 P-S, F5-F12 CSI 15~ 17~ 18~ 19~ 20~ 21~
 * 23~ 24~. Shift, Alt and Ctrl go into xterm's modifier parameter, 1 + 1 (Shift) + 2 (Alt)
 * + 4 (Ctrl): CSI 1;5A is Ctrl-Up, CSI 3;2~ Shift-Delete, CSI 1;3P Alt-F1. Writes the
 * sequence to out (ASCII, at most 8 units) and returns its length; 0 for any other key
 * (Shift alone, say). */
static DWORD vt_key(WORD vk, DWORD state, wchar_t out[12])
{
    static const unsigned char fnum[8] = {15, 17, 18, 19, 20, 21, 23, 24}; /* F5-F12 */
    char s[12], fin = 0;
    unsigned num = 0, mod = 1;
    int n;
    if (vk >= VK_F1 && vk <= VK_F4)
        fin = (char)('P' + (vk - VK_F1));
    else if (vk >= VK_F5 && vk <= VK_F12)
        num = fnum[vk - VK_F5];
    else
        switch (vk) {
        case VK_UP: fin = 'A'; break;
        case VK_DOWN: fin = 'B'; break;
        case VK_RIGHT: fin = 'C'; break;
        case VK_LEFT: fin = 'D'; break;
        case VK_CLEAR: fin = 'E'; break;
        case VK_END: fin = 'F'; break;
        case VK_HOME: fin = 'H'; break;
        case VK_INSERT: num = 2; break;
        case VK_DELETE: num = 3; break;
        case VK_PRIOR: num = 5; break;
        case VK_NEXT: num = 6; break;
        default: return 0;
        }
    if (state & SHIFT_PRESSED)
        mod += 1;
    if (state & (LEFT_ALT_PRESSED | RIGHT_ALT_PRESSED))
        mod += 2;
    if (state & (LEFT_CTRL_PRESSED | RIGHT_CTRL_PRESSED))
        mod += 4;
    if (num)
        n = mod > 1 ? snprintf(s, sizeof s, "\033[%u;%u~", num, mod)
                    : snprintf(s, sizeof s, "\033[%u~", num);
    else if (mod > 1)
        n = snprintf(s, sizeof s, "\033[1;%u%c", mod, fin);
    else
        n = snprintf(s, sizeof s, "\033%c%c", vk >= VK_F1 && vk <= VK_F4 ? 'O' : '[', fin);
    for (int i = 0; i < n; i++)
        out[i] = (wchar_t)s[i];
    return (DWORD)n;
}

/* One blocking read into d->buf: bytes (> 0), 0 at the end, or with *err set. */
static DWORD sync_read_call(sync_dir *d, DWORD len, DWORD *err)
{
    DWORD got = 0;
    *err = 0;
    if (!d->console) {
        if (d->pipe && ioq__test_empty_read())
            return 0;
        if (!ReadFile(d->fh, d->buf, len < SYNC_BUF ? len : SYNC_BUF, &got, NULL))
            *err = GetLastError();
        return got;
    }
    for (;;) {
        /* UTF-16 in, UTF-8 out: at most 3 bytes per unit (a pair makes 4 of 2 units). */
        DWORD max = SYNC_BUF / 3 - 1, start = 0, n = 0, mode = 0;
        HANDLE w[2] = {d->fh, d->wake};
        /* Wait for input first: a wait ends cleanly at a cancel, where a blocked console
         * read may not (wine's goes on and swallows the next key). */
        DWORD r = WaitForMultipleObjects(2, w, FALSE, INFINITE);
        if (r != WAIT_OBJECT_0) {
            *err = r == WAIT_OBJECT_0 + 1 ? ERROR_OPERATION_ABORTED : GetLastError();
            return 0;
        }
        if (d->hi) {
            d->wbuf[0] = d->hi;
            start = 1;
            d->hi = 0;
        }
        GetConsoleMode(d->fh, &mode);
        if (mode & ENABLE_LINE_INPUT) {
            /* A line: ReadConsoleW edits it, and returns at Enter. */
            if (!ReadConsoleW(d->fh, d->wbuf + start, max, &n, NULL)) {
                *err = GetLastError();
                d->hi = start ? d->wbuf[0] : 0;
                return 0;
            }
        } else {
            /* Raw: the characters of the key presses there now, and the escape sequences
             * of keys without one (vt_key; other events are left out); this never
             * blocks. */
            DWORD nrec = 0;
            if (!ReadConsoleInputW(d->fh, d->recs, SYNC_RECS, &nrec)) {
                *err = GetLastError();
                d->hi = start ? d->wbuf[0] : 0;
                return 0;
            }
            for (DWORD i = 0; i < nrec; i++) {
                const KEY_EVENT_RECORD *k = &d->recs[i].Event.KeyEvent;
                WORD rep = k->wRepeatCount ? k->wRepeatCount : 1;
                wchar_t seq[12];
                DWORD sn;
                if (d->recs[i].EventType != KEY_EVENT || !k->bKeyDown)
                    continue;
                if (k->uChar.UnicodeChar) {
                    for (; rep && n < max; rep--)
                        d->wbuf[start + n++] = k->uChar.UnicodeChar;
                    continue;
                }
                sn = vt_key(k->wVirtualKeyCode, k->dwControlKeyState, seq);
                for (; sn && rep && n + sn <= max; rep--, n += sn)
                    memcpy(d->wbuf + start + n, seq, sn * sizeof seq[0]);
            }
        }
        n += start;
        if (n > 0 && d->wbuf[n - 1] >= 0xD800 && d->wbuf[n - 1] <= 0xDBFF)
            d->hi = d->wbuf[--n]; /* its pair comes with the next read */
        if (n == 0)
            continue;
        got = (DWORD)WideCharToMultiByte(CP_UTF8, 0, d->wbuf, (int)n, d->buf, SYNC_BUF, NULL,
                                         NULL);
        if (got == 0) {
            *err = GetLastError();
            return 0;
        }
        return got;
    }
}

/* Write d->buf[0..n) whole; returns what went out (all of it, or less with *err set). */
static DWORD sync_write_call(sync_dir *d, DWORD n, DWORD *err)
{
    DWORD done = 0;
    *err = 0;
    if (!d->console) {
        while (done < n) {
            DWORD k = 0;
            if (!WriteFile(d->fh, d->buf + done, n - done, &k, NULL)) {
                *err = GetLastError();
                break;
            }
            done += k;
        }
        return done;
    }
    {
        /* The UTF-8 of this write after what the last one left incomplete. */
        char *tmp = d->cbuf;
        DWORD total = d->ncarry + n, whole, units, w = 0;
        int wn;
        memcpy(tmp, d->carry, d->ncarry);
        memcpy(tmp + d->ncarry, d->buf, n);
        whole = utf8_whole(tmp, total);
        wn = whole ? MultiByteToWideChar(CP_UTF8, 0, tmp, (int)whole, d->wbuf, SYNC_BUF + 8)
                   : 0;
        if (whole && wn == 0) {
            *err = GetLastError();
            return 0;
        }
        units = (DWORD)wn;
        while (w < units) {
            DWORD k = 0;
            if (!WriteConsoleW(d->fh, d->wbuf + w, units - w, &k, NULL)) {
                *err = GetLastError();
                return 0;
            }
            w += k;
        }
        d->ncarry = total - whole;
        memcpy(d->carry, tmp + whole, d->ncarry);
        return n;
    }
}

/* Copy what op still has to send into d->buf (under the lock: the op is alive). */
static DWORD sync_take_send(sync_dir *d, ioq__op *op)
{
    DWORD len = 0;
    if (op->code == IOQ_OP_SEND) {
        size_t n = op->len - op->done;
        len = n < SYNC_BUF ? (DWORD)n : SYNC_BUF;
        memcpy(d->buf, (char *)op->buf + op->done, len);
    } else {
        uint32_t pos = op->iovpos;
        void *p = NULL;
        size_t n = 0;
        while (len < SYNC_BUF && ioq__sendv_piece(op, &pos, &p, &n)) {
            size_t k = n < SYNC_BUF - len ? n : SYNC_BUF - len;
            memcpy(d->buf + len, p, k);
            len += (DWORD)k;
        }
    }
    return len;
}

/* Hand the op's packet to the loop (under the lock). */
static void sync_post(sync_dir *d, iocp_args *a, DWORD err, DWORD bytes)
{
    d->want = NULL;
    a->synth_err = err;
    a->synth_bytes = bytes;
    PostQueuedCompletionStatus(d->port, bytes, KEY_SYNTH, &a->ov);
}

static DWORD WINAPI sync_worker(LPVOID arg)
{
    sync_dir *d = arg;
    AcquireSRWLockExclusive(&d->lock);
    for (;;) {
        iocp_args *a;
        DWORD n, err, len;
        uint64_t seq;
        while (!d->quit && !d->want)
            SleepConditionVariableSRW(&d->cv, &d->lock, INFINITE, 0);
        if (d->quit)
            break;
        a = d->want;
        seq = d->seq;
        len = d->writer ? sync_take_send(d, a->op) : d->want_len;
        d->busy = true;
        d->interrupted = false;
        ReleaseSRWLockExclusive(&d->lock);
        n = d->writer ? sync_write_call(d, len, &err) : sync_read_call(d, len, &err);
        AcquireSRWLockExclusive(&d->lock);
        d->busy = false;
        if (d->writer) {
            /* A write the op no longer wants (cancelled) is not reported. */
            if (d->want == a && d->seq == seq)
                sync_post(d, a, err, n);
            continue;
        }
        if (n == 0 && err && (err == ERROR_OPERATION_ABORTED || d->interrupted))
            continue; /* interrupted by a cancel: nothing read; the next want reads again */
        if (n == 0 && !err && d->pipe)
            continue; /* a zero-length write (WriteFile of 0 bytes): read again */
        if (n > 0) {
            d->have = n;
            d->off = 0;
        } else {
            /* The end of a pipe is ERROR_BROKEN_PIPE (or ERROR_HANDLE_EOF); 0 bytes from
             * NUL or a file is the end as well (as read() says). */
            d->ended = true;
            d->end_err = err;
        }
        if (d->want)
            sync_post(d, d->want, 0, 0);
    }
    ReleaseSRWLockExclusive(&d->lock);
    CloseHandle(d->fh);
    sync_unref(d);
    return 0;
}

/* The worker of h's direction, made at the first op. 0 or IOQ_E*. */
static int sync_dir_get(ioq_loop *loop, ioq__handle *h, bool writer, sync_dir **out)
{
    iocp_handle *hb = h->be;
    sync_dir *d = hb->dir[writer];
    HANDLE self = GetCurrentProcess();
    int rc;

    if (d) {
        *out = d;
        return 0;
    }
    if (!(d = calloc(1, sizeof *d)))
        return IOQ_ENOMEM;
    InitializeSRWLock(&d->lock);
    InitializeConditionVariable(&d->cv);
    d->port = st(loop)->port;
    d->console = hb->sync == IOQ__WIN_CONSOLE;
    d->writer = writer;
    d->refs = 2;
    if (d->console && (!(d->wbuf = malloc((SYNC_BUF + 8) * sizeof(wchar_t))) ||
                       !(d->cbuf = malloc(SYNC_BUF + 4)) ||
                       (!writer && !(d->recs = malloc(SYNC_RECS * sizeof *d->recs))) ||
                       (!writer && !(d->wake = CreateEventW(NULL, FALSE, FALSE, NULL))))) {
        sync_free(d);
        return IOQ_ENOMEM;
    }
    if (!DuplicateHandle(self, os_handle(h), self, &d->fh, 0, FALSE, DUPLICATE_SAME_ACCESS)) {
        rc = ioq__win_error_map(GetLastError());
        sync_free(d);
        return rc;
    }
    d->pipe = !d->console && GetFileType(d->fh) == FILE_TYPE_PIPE;
    /* A small stack: the worker's buffers are in d. */
    d->thread = CreateThread(NULL, 64 * 1024, sync_worker, d, STACK_SIZE_PARAM_IS_A_RESERVATION,
                             NULL);
    if (!d->thread) {
        rc = ioq__win_error_map(GetLastError());
        CloseHandle(d->fh);
        sync_free(d);
        return rc;
    }
    hb->dir[writer] = d;
    *out = d;
    return 0;
}

/* Interrupt the worker's blocking call, if it is in one (called with the lock released).
 * The call may not have reached the kernel yet: try again for a short while. */
static void sync_interrupt(sync_dir *d)
{
    DWORD start = GetTickCount();
    if (d->wake)
        SetEvent(d->wake); /* a console reader waiting for input */
    for (int i = 0;; i++) {
        bool busy;
        AcquireSRWLockExclusive(&d->lock);
        busy = d->busy;
        d->interrupted = busy;
        ReleaseSRWLockExclusive(&d->lock);
        if (busy && CancelSynchronousIo(d->thread))
            return;
        if (!busy || (i >= SYNC_CANCEL_SPINS && GetTickCount() - start >= SYNC_CANCEL_MS))
            return; /* done, or a call that cannot be interrupted: it runs on (see above) */
        if (i < 64)
            SwitchToThread();
        else
            Sleep(1);
    }
}

/* Issue a receive, receive-pool or send on a synchronous handle. 0 or IOQ_E*. */
static int sync_issue(ioq_loop *loop, ioq__op *op, iocp_args *a)
{
    bool writer = op->code == IOQ_OP_SEND || op->code == IOQ_OP_SENDV;
    sync_dir *d = NULL;
    int rc = sync_dir_get(loop, op->h, writer, &d);
    if (rc != 0)
        return rc;
    AcquireSRWLockExclusive(&d->lock);
    if (!writer && (d->have || d->ended)) {
        /* Brought by an earlier call: delivered at once, through the port. */
        ReleaseSRWLockExclusive(&d->lock);
        return post_synth(loop, a, 0, 0);
    }
    d->want = a;
    d->seq++;
    d->want_len = op->code == IOQ_OP_RECV_POOL ? op->pool->size
                  : op->len < SYNC_BUF         ? (DWORD)op->len
                                               : SYNC_BUF;
    WakeConditionVariable(&d->cv);
    ReleaseSRWLockExclusive(&d->lock);
    return 0;
}

/* Cancel op, issued on a synchronous handle: its packet is posted here unless the worker
 * posted it already. */
static void sync_cancel(ioq_loop *loop, ioq__op *op)
{
    iocp_handle *hb = op->h->be;
    iocp_args *a = op->be;
    sync_dir *d = hb->dir[op->code == IOQ_OP_SEND || op->code == IOQ_OP_SENDV];
    bool mine = false, busy = false;

    (void)loop;
    if (!d)
        return; /* no worker: the packet was posted at the issue */
    AcquireSRWLockExclusive(&d->lock);
    if (d->want == a) {
        d->want = NULL;
        mine = true;
        busy = d->busy;
        a->synth_err = ERROR_OPERATION_ABORTED;
        a->synth_bytes = 0;
        PostQueuedCompletionStatus(d->port, 0, KEY_SYNTH, &a->ov);
    }
    ReleaseSRWLockExclusive(&d->lock);
    if (mine && busy)
        sync_interrupt(d);
}

/* The worker leaves (at once, or when the call it is in returns: then it is not waited
 * for) and closes its duplicate. */
static void sync_dir_release(sync_dir *d)
{
    bool busy;
    if (!d)
        return;
    AcquireSRWLockExclusive(&d->lock);
    d->quit = true;
    d->want = NULL;
    busy = d->busy;
    WakeConditionVariable(&d->cv);
    ReleaseSRWLockExclusive(&d->lock);
    /* A read still blocked (an op cancelled earlier) would keep the pipe open. */
    if (busy)
        sync_interrupt(d);
    /* The worker closes its duplicate as it leaves: waited for (briefly), so that the end
     * is closed for the other side once ioq's close has completed. */
    WaitForSingleObject(d->thread, SYNC_CANCEL_MS);
    CloseHandle(d->thread);
    sync_unref(d);
}

/* The result of a receive on a synchronous handle (its packet came): bytes copied into
 * dst, 0 at the end of the stream, or IOQ_E*. */
static int64_t sync_take(ioq__handle *h, void *dst, size_t cap)
{
    sync_dir *d = ((iocp_handle *)h->be)->dir[0];
    int64_t r;
    AcquireSRWLockExclusive(&d->lock);
    if (d->have) {
        DWORD n = d->have < cap ? d->have : (DWORD)cap;
        memcpy(dst, d->buf + d->off, n);
        d->off += n;
        d->have -= n;
        r = n;
    } else if (!d->end_err || d->end_err == ERROR_BROKEN_PIPE ||
               d->end_err == ERROR_PIPE_NOT_CONNECTED || d->end_err == ERROR_HANDLE_EOF) {
        r = 0;
    } else {
        r = ioq__win_error_map(d->end_err);
    }
    ReleaseSRWLockExclusive(&d->lock);
    return r;
}

static bool sync_has_data(ioq__handle *h)
{
    sync_dir *d = ((iocp_handle *)h->be)->dir[0];
    bool r;
    AcquireSRWLockShared(&d->lock);
    r = d->have > 0;
    ReleaseSRWLockShared(&d->lock);
    return r;
}

static bool is_sync(const ioq__handle *h)
{
    const iocp_handle *hb = h ? h->be : NULL;
    return hb && hb->sync && is_pipe_kind(h);
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

    if (is_sync(h) && (op->code == IOQ_OP_RECV || op->code == IOQ_OP_RECV_POOL ||
                       op->code == IOQ_OP_SEND || op->code == IOQ_OP_SENDV)) {
        if (!(a = args_of(op, 1, 0)))
            return IOQ_ENOMEM;
        memset(&a->ov, 0, sizeof a->ov);
        if ((op->code == IOQ_OP_SEND || op->code == IOQ_OP_SENDV) && (h->rstate & IOQ__R_SHUTWR))
            rc = post_synth(loop, a, ERROR_NO_DATA, 0); /* behind a shutdown */
        else
            rc = sync_issue(loop, op, a);
        if (rc != 0)
            return rc;
        op->be_u64 = IN_KERNEL;
        s->inflight++;
        return 0;
    }
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
                    /* A synchronous end's worker holds a duplicate: it goes too. */
                    if (is_sync(h)) {
                        iocp_handle *hb = h->be;
                        sync_dir_release(hb->dir[1]);
                        hb->dir[1] = NULL;
                    }
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
        if (is_sync(op->h) && op->code != IOQ_OP_SHUTDOWN) {
            /* Taken back from the worker (or its packet is on the way). */
            sync_cancel(loop, op);
            op->be_u64 |= CANCEL_SENT;
            return;
        }
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

/* A receive-pool on a synchronous handle: its worker has data (or the end) for it. */
static void on_sync_recv_pool(ioq_loop *loop, ioq__op *op, DWORD err)
{
    ioq__handle *h = op->h;
    ioq__pool *pool = op->pool;
    bool multi = (op->flags & IOQ_MULTISHOT) && !op->cancelled;
    uint32_t id;
    int64_t n;

    if (err) {
        finish(loop, op, map_err(op, err), 0, 0);
        return;
    }
    if (!sync_has_data(h)) {
        finish(loop, op, sync_take(h, NULL, 0), 0, 0); /* the end, or an error */
        return;
    }
    if (multi && !ioq__cq_room(loop, 2)) {
        finish(loop, op, IOQ_ENOMEM, 0, 0); /* the data stays for the next receive */
        return;
    }
    if ((id = ioq__pool_take(pool)) == UINT32_MAX) {
        finish(loop, op, IOQ_ENOBUFS, 0, 0); /* likewise */
        return;
    }
    n = sync_take(h, ioq__pool_buf(pool, id), pool->size);
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
    if (is_sync(h) && (op->code == IOQ_OP_RECV || op->code == IOQ_OP_RECV_POOL)) {
        if (op->code == IOQ_OP_RECV_POOL)
            on_sync_recv_pool(loop, op, err);
        else
            finish(loop, op, err ? map_err(op, err) : sync_take(h, op->buf, op->len), 0, 0);
        return;
    }
    if (is_sync(h) && err == ERROR_BROKEN_PIPE &&
        (op->code == IOQ_OP_SEND || op->code == IOQ_OP_SENDV))
        err = ERROR_NO_DATA; /* a write whose reader is gone */
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
    if (is_pipe_kind(h) && h->fd >= 0) {
        int cls = ioq__win_stream_class(os_handle(h));
        if (cls != IOQ__WIN_OVERLAPPED) {
            /* Never on the port: its workers post for it (made at the first op). */
            iocp_handle *hb = calloc(1, sizeof *hb);
            if (!hb)
                return IOQ_ENOMEM;
            hb->sync = cls;
            h->be = hb;
            return 0;
        }
    }
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
        sync_dir_release(hb->dir[0]);
        sync_dir_release(hb->dir[1]);
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
        if (is_sync(op->h)) {
            sync_cancel(loop, op); /* its packet: posted now, or on the way */
            continue;
        }
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
