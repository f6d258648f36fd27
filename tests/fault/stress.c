/*
 * Randomised stress under fault injection (build option IOQ_FAULT_INJECTION).
 *
 * Tens of thousands of random operations (send, recv, recv_pool, timeouts, cancels, closes
 * and shutdowns) on loopback TCP and AF_UNIX stream pairs and on pipes (ioq_pipe or adopted
 * pipe(2) ends, one way), plus the 1.1 calls: watches of a socket ioq does not own (one-shot
 * and multishot, closed and adopted again), a notifier signalled from a second thread, a
 * signal (SIGUSR1) raised to the process, and child processes (exits with 0 and 3, a sleeper
 * killed or closed while it runs), while the fault layer under the
 * backend injects EINTR, EAGAIN storms, short counts, resets, ENOBUFS/ENOMEM and delayed
 * completions, and allocations that fail (multishot operations then end with IOQ_ENOMEM).
 * Checked for every token: exactly one final completion (and IOQ_CQE_MORE only
 * on multishot operations); results consistent with the operation (a full send or an error
 * with the bytes sent before it, a receive within its length, a timeout never early); every
 * byte received is the byte sent at that stream offset; and, with canary bytes around every
 * buffer, nothing written outside a buffer, nothing written to a send buffer, nothing
 * written past a receive's result, and nothing written to any buffer after its final
 * completion. Notifications and signal deliveries are counted exactly: each one is
 * reported once or (a signal raised while no ioq_signal lives, or during a cancelled one)
 * accounted for; a child's status is the one its program and any kill give.
 *
 * Usage: ioq_fault_stress [OPS]   environment: IOQ_BACKEND, IOQ_FAULT_SEED, IOQ_FAULT_RATE;
 * IOQ_STRESS_SKIP leaves out the 1.1 parts named by letters: w watch, n notifier,
 * s signal, p processes (pipes are always in).
 * A failure prints the seed: the same seed and backend reproduce the run.
 */
#define _GNU_SOURCE
#include "ioq.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* From the library built with the fault layer (linked statically for it). */
void ioq__fault_stats(uint64_t out[7]);

enum {
    NPAIRS = 12,
    MAX_TOKENS = 1 << 20,
    CANARY = 16,
    POOL_COUNT = 16,
    POOL_SIZE = 2048,
    MAX_RECV_OUT = 6,  /* outstanding receives per direction */
    MAX_SEND_OUT = 6,
};

static uint64_t seed;
/* Gather sends are in the mix on every backend (IOQ_STRESS_SENDV=0 leaves them out). They
 * once caught io_uring completing a sendv on an adopted O_NONBLOCK socket with EAGAIN. */
static int use_sendv = 1;
static const char *backend = "";
static ioq_loop *loop;

static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL (backend %s, IOQ_FAULT_SEED=%llu): ", backend,
            (unsigned long long)seed);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static uint64_t rng;
static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint32_t below(uint32_t n) { return (uint32_t)(rnd() % n); }

static uint8_t pattern(uint32_t dir, uint64_t off)
{
    return (uint8_t)(off * 131u + (off >> 9) * 7u + dir * 29u + 1u);
}

/* --- buffers with canaries ---------------------------------------------------------------- */

enum { B_SEND, B_RECV };
typedef struct buf {
    uint8_t *mem; /* CANARY | len | CANARY */
    size_t len;
    int kind;
    uint32_t dir;
    uint64_t off;      /* send: stream offset of its first byte */
    int64_t result;    /* recv: bytes received, for the final check */
    struct buf *next;
} buf;

static buf *all_bufs;

static uint8_t *data_of(buf *b) { return b->mem + CANARY; }

static buf *buf_new(size_t len, int kind, uint32_t dir, uint64_t off)
{
    buf *b = calloc(1, sizeof *b);
    if (!b || !(b->mem = malloc(len + 2 * CANARY)))
        die("out of memory");
    b->len = len;
    b->kind = kind;
    b->dir = dir;
    b->off = off;
    b->result = -1;
    memset(b->mem, 0xC5, CANARY);
    memset(b->mem + CANARY + len, 0xC5, CANARY);
    if (kind == B_SEND)
        for (size_t i = 0; i < len; i++)
            data_of(b)[i] = pattern(dir, off + i);
    else
        memset(data_of(b), 0xAB, len);
    b->next = all_bufs;
    all_bufs = b;
    return b;
}

static void check_canaries(buf *b, const char *when)
{
    for (size_t i = 0; i < CANARY; i++)
        if (b->mem[i] != 0xC5 || b->mem[CANARY + b->len + i] != 0xC5)
            die("canary of a %zu-byte buffer overwritten (%s)", b->len, when);
}

/* Final state of a buffer: a send buffer is untouched; a receive buffer holds its result
 * and, past it, the fill it was given; afterwards a receive buffer is poisoned so that a
 * late write shows. */
static void check_final(buf *b, const char *when)
{
    check_canaries(b, when);
    if (b->kind == B_SEND) {
        for (size_t i = 0; i < b->len; i++)
            if (data_of(b)[i] != pattern(b->dir, b->off + i))
                die("send buffer written to (%s)", when);
    } else {
        size_t from = b->result > 0 ? (size_t)b->result : 0;
        for (size_t i = from; i < b->len; i++)
            if (data_of(b)[i] != 0xAB)
                die("receive wrote past its result %lld at byte %zu (%s)",
                    (long long)b->result, i, when);
    }
}

static void poison(buf *b)
{
    if (b->kind == B_RECV) {
        memset(data_of(b), 0xAB, b->len);
        b->result = 0;
    }
}

/* --- streams ------------------------------------------------------------------------------- */

typedef struct {
    uint64_t tx_off;    /* bytes handed to sends so far */
    uint64_t limit;     /* bytes known to be on the wire in order (after a short send) */
    uint64_t rx_off;    /* bytes received and checked */
    int send_out, recv_out;
    int multishot_live;
    int writer_done;    /* writer end shut or closed: EOF / reset are expected */
    int eof;
} direction;

typedef struct {
    ioq_handle end[2];
    int closing[2];     /* close submitted */
    int ops[2];         /* operations pending on each end (own closes excluded) */
    direction d[2];     /* d[0]: end 0 -> end 1, d[1]: end 1 -> end 0 */
    uint32_t gen;       /* stream generation: direction ids differ per pair life */
    int tcp;
    int pipe;           /* end 0 the write end, end 1 the read end: direction 0 only */
    int live;
} pair;

static pair pairs[NPAIRS];
static int plain_listener = -1;
static uint16_t plain_port;

/* --- tokens ---------------------------------------------------------------------------------- */

enum { T_FREE, T_PENDING, T_DONE };
typedef struct {
    uint8_t state, multishot;
    uint16_t op;
    int8_t pair, end;  /* -1 when not on a stream */
    int8_t dir;
    buf *b;
    uint64_t deadline; /* timeouts */
    uint64_t len;
    int cancelled;     /* a cancel named it */
    int16_t obj;       /* a child's slot (process waits) */
    uint32_t events;   /* watches: what was asked */
    uint64_t sig_from, sig_cut;   /* signals: raises at submission, at the first cancel */
    int sig_cut_set;
    uint64_t reported; /* watches: records; signals: deliveries reported */
} tok_rec;

static tok_rec *toks;
static uint64_t ntoks;
static uint64_t n_ops, n_completions, n_final, n_errors, n_cancel_hits, n_bytes;
static ioq_handle pool;
/* Connections through an ioq listener with a multishot accept, closed at once: the accept
 * and connect paths under faults. */
static ioq_handle listener;
static ioq_addr listener_addr;
static int accept_live, listener_closed, conns_out;
static uint64_t n_accepted, n_connected;

static uint64_t tok_new(uint16_t op, int p, int end, int dir, buf *b)
{
    if (ntoks + 1 >= MAX_TOKENS)
        die("token table full");
    uint64_t t = ++ntoks;
    tok_rec *r = &toks[t];
    memset(r, 0, sizeof *r);
    r->op = op;
    r->pair = (int8_t)p;
    r->end = (int8_t)end;
    r->dir = (int8_t)dir;
    r->b = b;
    return t;
}

static void accepted(uint64_t t, int rc, int multishot)
{
    tok_rec *r = &toks[t];
    if (rc != 0) {
        r->state = T_FREE;
        if (rc != IOQ_EBADHANDLE && rc != IOQ_EBUSY && rc != IOQ_ENOMEM)
            die("submit of op %u rejected: %s", r->op, ioq_errname(rc));
        return;
    }
    r->state = T_PENDING;
    r->multishot = (uint8_t)multishot;
    n_ops++;
    if (r->pair >= 0 && r->op != IOQ_OP_CLOSE)
        pairs[r->pair].ops[r->end]++;
}

/* --- submissions --------------------------------------------------------------------------- */

static int64_t err_ok(int64_t r)
{
    return r == IOQ_ECANCELED || r == IOQ_ECONNRESET || r == IOQ_EPIPE ||
           r == IOQ_ENOBUFS || r == IOQ_ENOMEM || r == IOQ_ESHUTDOWN || r == IOQ_ENOTCONN;
}

static void do_send(int p, int end)
{
    pair *pr = &pairs[p];
    direction *d = &pr->d[end];
    size_t len = below(100) == 0 ? 65536 + below(65536) : 1 + below(4096);
    if (pr->pipe && end != 0)
        return;
    if (pr->closing[end] || d->writer_done || d->send_out >= MAX_SEND_OUT)
        return;
    buf *b = buf_new(len, B_SEND, pr->gen * 2 + (uint32_t)end, d->tx_off);
    int gather = below(4) == 0 && use_sendv;
    uint64_t t = tok_new(gather ? IOQ_OP_SENDV : IOQ_OP_SEND, p, end, end, b);
    int rc;
    toks[t].len = len;
    if (gather) {
        /* The same bytes in up to 6 pieces, empty ones included; the array is copied. */
        ioq_iov iov[6];
        uint32_t n = 1 + below(6);
        size_t at = 0;
        for (uint32_t i = 0; i < n; i++) {
            size_t piece = i + 1 == n ? len - at : (size_t)below((uint32_t)(len - at + 1));
            iov[i].base = data_of(b) + at;
            iov[i].len = piece;
            at += piece;
        }
        rc = ioq_sendv(loop, pr->end[end], iov, n, t);
        memset(iov, 0xEE, sizeof iov);
    } else {
        rc = ioq_send(loop, pr->end[end], data_of(b), len, t);
    }
    accepted(t, rc, 0);
    if (rc == 0) {
        d->tx_off += len;
        d->send_out++;
    }
}

static void do_recv(int p, int end)
{
    pair *pr = &pairs[p];
    int dir = 1 - end; /* end receives what the other end sends */
    direction *d = &pr->d[dir];
    size_t len = 1 + below(4096);
    if (pr->pipe && end != 1)
        return;
    if (pr->closing[end] || d->recv_out >= MAX_RECV_OUT || d->eof)
        return;
    buf *b = buf_new(len, B_RECV, pr->gen * 2 + (uint32_t)dir, 0);
    uint64_t t = tok_new(IOQ_OP_RECV, p, end, dir, b);
    toks[t].len = len;
    int rc = ioq_recv(loop, pr->end[end], data_of(b), len, t);
    accepted(t, rc, 0);
    if (rc == 0)
        d->recv_out++;
}

static void do_recv_pool(int p, int end)
{
    pair *pr = &pairs[p];
    int dir = 1 - end;
    direction *d = &pr->d[dir];
    int multi = below(4) == 0;
    if (pr->pipe && end != 1)
        return;
    if (pr->closing[end] || d->recv_out >= MAX_RECV_OUT || d->eof || d->multishot_live)
        return;
    uint64_t t = tok_new(IOQ_OP_RECV_POOL, p, end, dir, NULL);
    int rc = ioq_recv_pool(loop, pr->end[end], pool, multi ? IOQ_MULTISHOT : 0, t);
    accepted(t, rc, multi);
    if (rc == 0) {
        d->recv_out++;
        d->multishot_live += multi;
    }
}

static void close_handle(ioq_handle h)
{
    uint64_t t = tok_new(IOQ_OP_CLOSE, -1, 0, 0, NULL);
    int rc = ioq_close(loop, h, t);
    accepted(t, rc, 0);
    if (rc != 0)
        die("close of a new connection rejected: %s", ioq_errname(rc));
}

static void start_accept(void)
{
    uint64_t t = tok_new(IOQ_OP_ACCEPT, -1, 0, 0, NULL);
    int rc = ioq_accept(loop, listener, IOQ_MULTISHOT, t);
    accepted(t, rc, 1);
    if (rc != 0)
        die("accept rejected: %s", ioq_errname(rc));
    accept_live = 1;
}

static void do_connect(void)
{
    if (listener_closed || conns_out >= 32)
        return;
    uint64_t t = tok_new(IOQ_OP_CONNECT, -1, 0, 0, NULL);
    int rc = ioq_connect(loop, &listener_addr, 0, t);
    accepted(t, rc, 0);
    conns_out += rc == 0;
}

/* Relative and absolute timeouts alike; an absolute one is also given a deadline already
 * past (0 among them). Either must never complete with 0 before its deadline. */
static void do_timeout(void)
{
    uint64_t ns = below(3) == 0 ? 0 : below(2000000);
    uint64_t t = tok_new(IOQ_OP_TIMEOUT, -1, 0, 0, NULL);
    uint64_t now = ioq_now(loop);
    if (below(2) == 0) {
        toks[t].deadline = now + ns;
        accepted(t, ioq_timeout(loop, ns, t), 0);
        return;
    }
    uint64_t d = below(4) == 0 ? (below(2) == 0 ? 0 : now - (now < ns ? now : ns)) : now + ns;
    toks[t].deadline = d;
    accepted(t, ioq_timeout_at(loop, d, t), 0);
}

static uint64_t sig_raised;

/* A cancel names target. A signal op that lives ends at the first cancel naming it: the
 * deliveries since its submission that it did not report are lost to the cancel. */
static void note_cancel(uint64_t target)
{
    tok_rec *r = &toks[target];
    r->cancelled = 1;
    if (r->op == IOQ_OP_SIGNAL && r->state == T_PENDING && !r->sig_cut_set) {
        r->sig_cut_set = 1;
        r->sig_cut = sig_raised;
    }
}

static void do_cancel(void)
{
    /* A recent token: pending, finished or never accepted alike. */
    uint64_t span = ntoks < 64 ? ntoks : 64;
    if (span == 0)
        return;
    uint64_t target = ntoks - below((uint32_t)span);
    uint64_t t = tok_new(IOQ_OP_CANCEL, -1, 0, 0, NULL);
    toks[t].len = target;
    if (target <= ntoks)
        note_cancel(target);
    accepted(t, ioq_cancel(loop, target, t), 0);
}

static void do_shutdown(int p, int end)
{
    pair *pr = &pairs[p];
    if (pr->closing[end] || pr->d[end].writer_done || (pr->pipe && end != 0))
        return;
    uint64_t t = tok_new(IOQ_OP_SHUTDOWN, p, end, end, NULL);
    int rc = ioq_shutdown(loop, pr->end[end], t);
    accepted(t, rc, 0);
    if (rc == 0)
        pr->d[end].writer_done = 1;
}

static void do_close(int p, int end)
{
    pair *pr = &pairs[p];
    if (pr->closing[end])
        return;
    uint64_t t = tok_new(IOQ_OP_CLOSE, p, end, end, NULL);
    int rc = ioq_close(loop, pr->end[end], t);
    accepted(t, rc, 0);
    if (rc != 0)
        die("close rejected: %s", ioq_errname(rc));
    pr->closing[end] = 1;
    pr->d[end].writer_done = 1;
}

/* --- pairs ----------------------------------------------------------------------------------- */

static uint32_t next_gen;

static void pair_open(int p)
{
    pair *pr = &pairs[p];
    int sv[2];
    memset(pr, 0, sizeof *pr);
    pr->gen = ++next_gen;
    pr->tcp = below(3) == 0;
    pr->pipe = !pr->tcp && below(2);
    if (pr->pipe) {
        /* A pipe one way: end 0 writes, end 1 reads. From ioq_pipe, or pipe(2) adopted. */
        ioq_handle ph[2];
        int rc, fd[2];
        if (below(2)) {
            if ((rc = ioq_pipe(loop, 0, ph)) != 0)
                die("ioq_pipe: %s", ioq_errname(rc));
            pr->end[0] = ph[1];
            pr->end[1] = ph[0];
        } else {
            if (pipe2(fd, O_CLOEXEC) != 0)
                die("pipe");
            if (below(2)) /* a small pipe makes writes partial */
                fcntl(fd[1], F_SETPIPE_SZ, 4096);
            if ((rc = ioq_adopt(loop, (uint64_t)fd[1], IOQ_KIND_PIPE, &pr->end[0])) != 0 ||
                (rc = ioq_adopt(loop, (uint64_t)fd[0], IOQ_KIND_PIPE, &pr->end[1])) != 0)
                die("adopt of a pipe: %s", ioq_errname(rc));
        }
    } else if (pr->tcp) {
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_port = htons(plain_port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (sv[0] < 0 || connect(sv[0], (struct sockaddr *)&sa, sizeof sa) != 0)
            die("plain connect");
        sv[1] = accept4(plain_listener, NULL, NULL, SOCK_CLOEXEC);
        if (sv[1] < 0)
            die("plain accept");
    } else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        die("socketpair");
    }
    for (int e = 0; e < 2 && !pr->pipe; e++) {
        if (below(2)) {
            /* small buffers make sends partial and readiness flip often */
            int small = 4096 + (int)below(16384);
            setsockopt(sv[e], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
            setsockopt(sv[e], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        }
        int rc = ioq_adopt(loop, (uint64_t)sv[e], pr->tcp ? IOQ_KIND_TCP : IOQ_KIND_LOCAL,
                           &pr->end[e]);
        if (rc != 0)
            die("adopt: %s", ioq_errname(rc));
    }
    for (int d = 0; d < 2; d++)
        pr->d[d].limit = UINT64_MAX;
    pr->live = 1;
}

/* --- 1.1: a watch, a notifier, a signal, child processes ------------------------------------ */

/* A socket pair ioq does not own: wsv[0] is watched (adopted as WATCH, closed and adopted
 * again), the test makes it readable by writing to wsv[1] and quiets it by reading. */
enum { MAX_WATCHES = 3, MULTI_RECORDS = 16 };
static int wsv[2] = { -1, -1 };
static ioq_handle wh;
static int w_closing, w_out;
static uint64_t n_watch_reports;

static void watch_adopt(void)
{
    int rc = ioq_adopt(loop, (uint64_t)wsv[0], IOQ_KIND_WATCH, &wh);
    if (rc != 0)
        die("adopt as WATCH: %s", ioq_errname(rc));
    w_closing = 0;
}

static void do_watch(void)
{
    static const uint32_t ev[3] = { IOQ_WATCH_READABLE, IOQ_WATCH_WRITABLE,
                                    IOQ_WATCH_READABLE | IOQ_WATCH_WRITABLE };
    if (w_closing || w_out >= MAX_WATCHES)
        return;
    int multi = below(2);
    uint64_t t = tok_new(IOQ_OP_WATCH, -1, 0, 0, NULL);
    toks[t].events = ev[below(3)];
    int rc = ioq_watch(loop, wh, toks[t].events, multi ? IOQ_MULTISHOT : 0, t);
    accepted(t, rc, multi);
    w_out += rc == 0;
}

/* Change the watched socket's readiness behind ioq's back, or close the watch handle. */
static void do_watch_poke(void)
{
    uint8_t junk[512];
    uint32_t what = below(8);
    if (what < 3) {
        memset(junk, 0x5A, sizeof junk);
        (void)!send(wsv[1], junk, 1 + below(sizeof junk), MSG_DONTWAIT);
    } else if (what < 6) {
        while (recv(wsv[0], junk, sizeof junk, MSG_DONTWAIT) > 0)
            ;
    } else if (what == 6 && !w_closing) {
        uint64_t t = tok_new(IOQ_OP_CLOSE, -1, 0, 0, NULL);
        toks[t].obj = 1; /* the watch handle's close */
        int rc = ioq_close(loop, wh, t);
        accepted(t, rc, 0);
        if (rc != 0)
            die("close of the watch handle: %s", ioq_errname(rc));
        w_closing = 1;
    }
}

/* A notifier signalled from a second thread; every counted ioq_notify must be reported. */
static ioq_handle notifier;
static _Atomic uint64_t n_notified;  /* counted before the call, taken back if refused */
static _Atomic int notify_stop;
static uint64_t n_notify_seen, notify_wait_tok;
static pthread_t notify_thread;

static void *notify_main(void *arg)
{
    uint64_t r = (uint64_t)(uintptr_t)arg;
    (void)arg;
    while (!atomic_load(&notify_stop)) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t burst = 1 + (uint32_t)((r >> 33) % 64);
        for (uint32_t i = 0; i < burst; i++) {
            atomic_fetch_add(&n_notified, 1);
            int rc = ioq_notify(loop, notifier);
            if (rc != 0) {
                atomic_fetch_sub(&n_notified, 1);
                if (rc != IOQ_EBADHANDLE)
                    die("notify: %s", ioq_errname(rc));
            }
        }
        struct timespec ts = { 0, (long)((r >> 40) % 200000) };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void do_notify_wait(void)
{
    if (notify_wait_tok)
        return;
    int multi = below(2);
    uint64_t t = tok_new(IOQ_OP_NOTIFY_WAIT, -1, 0, 0, NULL);
    int rc = ioq_notify_wait(loop, notifier, multi ? IOQ_MULTISHOT : 0, t);
    accepted(t, rc, multi);
    if (rc == 0)
        notify_wait_tok = t;
}

/* SIGUSR1 raised to the process. While an ioq_signal op lives ioq catches it; otherwise the
 * test's handler counts it as missed. */
static volatile sig_atomic_t sig_missed;
static uint64_t n_sig_reported, n_sig_lost, sig_tok;

static void on_missed(int s)
{
    (void)s;
    sig_missed++;
}

static void do_signal(void)
{
    if (sig_tok) {
        /* Sometimes end the live one: what it had not reported is lost, and counted. */
        if (below(4) == 0) {
            uint64_t t = tok_new(IOQ_OP_CANCEL, -1, 0, 0, NULL);
            toks[t].len = sig_tok;
            note_cancel(sig_tok);
            accepted(t, ioq_cancel(loop, sig_tok, t), 0);
        }
        return;
    }
    int multi = below(2);
    uint64_t t = tok_new(IOQ_OP_SIGNAL, -1, 0, 0, NULL);
    toks[t].sig_from = sig_raised;
    int rc = ioq_signal(loop, SIGUSR1, multi ? IOQ_MULTISHOT : 0, t);
    accepted(t, rc, multi);
    if (rc == 0)
        sig_tok = t;
}

static void do_raise(void)
{
    uint32_t n = 1 + below(3);
    for (uint32_t i = 0; i < n; i++) {
        sig_raised++;
        if (raise(SIGUSR1) != 0)
            die("raise");
    }
}

/* Children: /bin/true (0), /bin/sh -c 'exit 3' (3), a short sleeper (0), each maybe killed
 * (256 + the signal) or its handle closed while it runs. */
enum { NPROCS = 4 };
typedef struct {
    ioq_handle h;
    int live, closing, expect;
    uint32_t killed;    /* the signals sent to it, a bit each */
    uint64_t wait_tok;
} proc;
static proc procs[NPROCS];
static uint64_t n_spawned, n_exited, n_killed;
static int draining;

static void proc_close(int i)
{
    uint64_t t = tok_new(IOQ_OP_CLOSE, -1, 0, 0, NULL);
    toks[t].obj = (int16_t)(16 + i);
    int rc = ioq_close(loop, procs[i].h, t);
    accepted(t, rc, 0);
    if (rc != 0)
        die("close of a process: %s", ioq_errname(rc));
    procs[i].closing = 1;
}

static void proc_wait(int i)
{
    uint64_t t = tok_new(IOQ_OP_PROCESS_WAIT, -1, 0, 0, NULL);
    toks[t].obj = (int16_t)i;
    int rc = ioq_process_wait(loop, procs[i].h, t);
    accepted(t, rc, 0);
    if (rc != 0)
        die("process wait: %s", ioq_errname(rc));
    procs[i].wait_tok = t;
}

static void do_spawn(void)
{
    static const char *const a_true[] = { "true", NULL };
    static const char *const a_exit[] = { "sh", "-c", "exit 3", NULL };
    static const char *const a_sleep[] = { "sh", "-c", "exec sleep 0.05", NULL };
    int i;
    for (i = 0; i < NPROCS && procs[i].live; i++)
        ;
    if (i == NPROCS)
        return;
    ioq_process_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    uint32_t which = below(3);
    o.file = which == 0 ? "/bin/true" : "/bin/sh";
    o.argv = which == 0 ? a_true : which == 1 ? a_exit : a_sleep;
    for (int s = 0; s < 3; s++)
        o.stdio[s].mode = IOQ_STDIO_NULL;
    int rc = ioq_spawn(loop, &o, &procs[i].h, NULL);
    if (rc == IOQ_ENOMEM || rc == IOQ_EAGAIN)
        return;
    if (rc != 0)
        die("spawn: %s", ioq_errname(rc));
    n_spawned++;
    procs[i].live = 1;
    procs[i].closing = 0;
    procs[i].killed = 0;
    procs[i].expect = which == 1 ? 3 : 0;
    proc_wait(i);
}

static void do_proc(void)
{
    int i = (int)below(NPROCS);
    proc *pc = &procs[i];
    if (!pc->live || pc->closing)
        return;
    if (below(3)) {
        int sig = below(2) ? SIGTERM : SIGKILL;
        int rc = ioq_kill(loop, pc->h, sig);
        if (rc == 0) {
            pc->killed |= 1u << sig;
            n_killed++;
        } else if (rc != IOQ_ESRCH) {
            die("kill: %s", ioq_errname(rc));
        }
    } else {
        /* Close, maybe while it runs: the wait ends cancelled, ioq reaps the child. */
        proc_close(i);
    }
}

/* --- completions ----------------------------------------------------------------------------- */

static const char *kind_of(uint32_t dirid)
{
    for (int i = 0; i < NPAIRS; i++)
        if (pairs[i].gen == dirid / 2)
            return pairs[i].tcp ? "tcp" : pairs[i].pipe ? "pipe" : "unix";
    return "?";
}

static void check_bytes(direction *d, uint32_t dirid, const uint8_t *p, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        uint64_t off = d->rx_off + (uint64_t)i;
        if (off >= d->limit)
            break; /* past a short send: the bytes are shifted, nothing to compare */
        if (p[i] != pattern(dirid, off))
            die("stream %u (%s): byte %llu is %02x, sent %02x (limit %llu)", dirid,
                kind_of(dirid), (unsigned long long)off, p[i], pattern(dirid, off),
                (unsigned long long)d->limit);
    }
    if (d->rx_off + (uint64_t)n > d->tx_off)
        die("stream %u: received %llu bytes, only %llu were sent", dirid,
            (unsigned long long)(d->rx_off + (uint64_t)n), (unsigned long long)d->tx_off);
    d->rx_off += (uint64_t)n;
    n_bytes += (uint64_t)n;
}

static void on_cqe(const ioq_cqe *c)
{
    tok_rec *r;
    int final = !(c->flags & IOQ_CQE_MORE);
    n_completions++;
    if (c->token == 0 || c->token > ntoks)
        die("completion for a token never used: %llu", (unsigned long long)c->token);
    r = &toks[c->token];
    if (r->state != T_PENDING)
        die("token %llu (op %u): %s completion", (unsigned long long)c->token, r->op,
            r->state == T_DONE ? "a second final" : "a rejected operation's");
    if (c->op != r->op || c->reserved != 0)
        die("token %llu: op %u, expected %u", (unsigned long long)c->token, c->op, r->op);
    if (!final && !r->multishot)
        die("token %llu: IOQ_CQE_MORE on a single-shot operation",
            (unsigned long long)c->token);
    if (c->result < 0) {
        n_errors++;
        if (!err_ok(c->result))
            die("token %llu op %u: unexpected error %s (len %llu, value %llu, %s, %s)",
                (unsigned long long)c->token, r->op, ioq_errname(c->result),
                (unsigned long long)r->len, (unsigned long long)c->value,
                r->pair >= 0 ? (pairs[(int)r->pair].tcp ? "tcp" : pairs[(int)r->pair].pipe ? "pipe" : "unix") : "-",
                r->cancelled ? "cancelled" : "not cancelled");
    }
    pair *pr = r->pair >= 0 ? &pairs[(int)r->pair] : NULL;
    direction *d = pr ? &pr->d[(int)r->dir] : NULL;
    uint32_t dirid = pr ? pr->gen * 2 + (uint32_t)r->dir : 0;

    switch (c->op) {
    case IOQ_OP_SEND:
    case IOQ_OP_SENDV:
        d->send_out--;
        if (c->result >= 0 && (uint64_t)c->result != r->len)
            die("send of %llu bytes completed with %lld", (unsigned long long)r->len,
                (long long)c->result);
        if (c->result < 0) {
            if (c->value > r->len)
                die("send: %llu bytes sent of %llu", (unsigned long long)c->value,
                    (unsigned long long)r->len);
            if (r->b->off + c->value < d->limit)
                d->limit = r->b->off + c->value;
        }
        check_final(r->b, "send completion");
        break;
    case IOQ_OP_RECV:
        d->recv_out--;
        if (c->result > (int64_t)r->len)
            die("recv of %llu bytes returned %lld", (unsigned long long)r->len,
                (long long)c->result);
        r->b->result = c->result;
        check_final(r->b, "recv completion");
        if (c->result > 0)
            check_bytes(d, dirid, data_of(r->b), c->result);
        else if (c->result == 0) {
            if (!d->writer_done)
                die("stream %u: end of stream while the writer is open", dirid);
            d->eof = 1;
        }
        poison(r->b);
        break;
    case IOQ_OP_RECV_POOL:
        if (final) {
            d->recv_out--;
            d->multishot_live -= r->multishot;
        }
        if (c->result > 0) {
            if (!(c->flags & IOQ_CQE_BUFFER) || c->result > POOL_SIZE)
                die("recv_pool: %lld bytes, flags %x", (long long)c->result, c->flags);
            uint8_t *p = ioq_buf(loop, pool, (uint32_t)c->value);
            if (!p)
                die("recv_pool: buffer %llu unknown", (unsigned long long)c->value);
            check_bytes(d, dirid, p, c->result);
            if (ioq_buf_release(loop, pool, (uint32_t)c->value) != 0)
                die("recv_pool: release of buffer %llu", (unsigned long long)c->value);
        } else if (c->result == 0) {
            if (!d->writer_done)
                die("stream %u: end of stream while the writer is open", dirid);
            d->eof = 1;
        }
        break;
    case IOQ_OP_TIMEOUT:
        if (c->result == 0 && ioq_now(loop) < r->deadline)
            die("timeout completed early");
        if (c->result != 0 && c->result != IOQ_ECANCELED)
            die("timeout: %s", ioq_errname(c->result));
        break;
    case IOQ_OP_CANCEL:
        if (c->result < 0 || c->result > 1)
            die("cancel found %lld operations", (long long)c->result);
        n_cancel_hits += (uint64_t)c->result;
        break;
    case IOQ_OP_CLOSE:
        if (c->result != 0)
            die("close: %s", ioq_errname(c->result));
        if (pr && pr->ops[(int)r->end] != 0)
            die("close completed before %d operations of its handle",
                pr->ops[(int)r->end]);
        if (r->obj == 1) {
            if (w_out != 0)
                die("watch handle closed before %d watches", w_out);
            if (!draining)
                watch_adopt(); /* the descriptor stays open: adopt it again */
        } else if (r->obj >= 16) {
            proc *pc = &procs[r->obj - 16];
            if (pc->wait_tok)
                die("process handle closed before its wait");
            pc->live = 0;
        }
        break;
    case IOQ_OP_SHUTDOWN:
        break;
    case IOQ_OP_WATCH:
        if (c->result > 0) {
            uint32_t allowed = r->events | IOQ_WATCH_ERROR | IOQ_WATCH_HANGUP;
            if ((uint32_t)c->result & ~allowed)
                die("watch of %x reported %llx", r->events, (unsigned long long)c->result);
            n_watch_reports++;
            /* A multishot watch of a level that holds reports at every poll: enough. */
            if (!final && ++r->reported == MULTI_RECORDS) {
                uint64_t t = tok_new(IOQ_OP_CANCEL, -1, 0, 0, NULL);
                toks[t].len = c->token;
                note_cancel(c->token);
                accepted(t, ioq_cancel(loop, c->token, t), 0);
            }
        } else if (c->result == 0) {
            die("watch completed with no events");
        }
        if (final)
            w_out--;
        break;
    case IOQ_OP_NOTIFY_WAIT:
        if (c->result > 0) {
            n_notify_seen += (uint64_t)c->result;
            if (n_notify_seen > atomic_load(&n_notified))
                die("notifier: %llu notifications reported, %llu made",
                    (unsigned long long)n_notify_seen,
                    (unsigned long long)atomic_load(&n_notified));
        } else if (c->result == 0) {
            die("notify wait completed with a count of 0");
        }
        if (final)
            notify_wait_tok = 0;
        break;
    case IOQ_OP_SIGNAL:
        if (c->result > 0) {
            if (c->value != SIGUSR1)
                die("signal op reported signal %llu", (unsigned long long)c->value);
            r->reported += (uint64_t)c->result;
            n_sig_reported += (uint64_t)c->result;
            if (r->sig_from + r->reported > sig_raised)
                die("signal op reported %llu deliveries, %llu were raised in its life",
                    (unsigned long long)r->reported,
                    (unsigned long long)(sig_raised - r->sig_from));
        } else if (c->result == 0) {
            die("signal op completed with a count of 0");
        } else if (c->result == IOQ_ECANCELED) {
            if (!r->sig_cut_set)
                die("signal op cancelled with no cancel named it");
            if (r->sig_from + r->reported > r->sig_cut)
                die("signal op reported deliveries raised after its cancel");
            n_sig_lost += r->sig_cut - r->sig_from - r->reported;
        }
        if (final)
            sig_tok = 0;
        break;
    case IOQ_OP_PROCESS_WAIT: {
        proc *pc = &procs[r->obj];
        pc->wait_tok = 0;
        if (c->result >= 0) {
            int64_t st = c->result;
            if (st != pc->expect && !(st > 256 && st < 256 + 32 && (pc->killed >> (st - 256)) & 1))
                die("child (expected status %d, signals sent %x) ended with %lld",
                    pc->expect, pc->killed, (long long)st);
            n_exited++;
            if (!pc->closing)
                proc_close(r->obj);
        } else if (!pc->closing) {
            proc_wait(r->obj); /* cancelled (or no memory): wait again */
        }
        break;
    }
    case IOQ_OP_ACCEPT:
        if (c->result == 0) {
            n_accepted++;
            close_handle(c->value);
        }
        if (final) {
            accept_live = 0;
            if (c->result == 0 && !listener_closed)
                die("multishot accept ended without an error");
            if (!listener_closed)
                start_accept(); /* an error (a fake ENOMEM) or a cancel ended it: go on */
        }
        break;
    case IOQ_OP_CONNECT:
        conns_out--;
        if (c->result == 0) {
            n_connected++;
            close_handle(c->value);
        } else if (c->result != IOQ_ECONNREFUSED && c->result != IOQ_ECANCELED &&
                   !(c->result == IOQ_ECONNRESET && listener_closed)) {
            /* Closing the listener resets the connections still in its backlog: a connect
             * whose success had not been seen yet then ends with ECONNRESET. */
            die("connect: %s", ioq_errname(c->result));
        }
        break;
    default:
        die("completion of op %u", c->op);
    }
    if (final) {
        r->state = T_DONE;
        n_final++;
        if (pr && c->op != IOQ_OP_CLOSE)
            pr->ops[(int)r->end]--;
        if (pr && c->op == IOQ_OP_CLOSE)
            pr->closing[(int)r->end] = 2;
    }
}

static int poll_some(int64_t timeout_ns)
{
    ioq_cqe cq[64];
    int n = ioq_poll(loop, cq, 1 + below(64), timeout_ns);
    if (n < 0)
        die("poll: %s", ioq_errname(n));
    for (int i = 0; i < n; i++)
        on_cqe(&cq[i]);
    return n;
}

static uint64_t pending_count(void)
{
    uint64_t n = 0;
    for (uint64_t t = 1; t <= ntoks; t++)
        n += toks[t].state == T_PENDING;
    return n;
}

int main(int argc, char **argv)
{
    uint64_t ops = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000;
    const char *s = getenv("IOQ_FAULT_SEED");
    seed = s ? strtoull(s, NULL, 0) : 1;
    rng = seed * 0x2545f4914f6cdd1dull + 7;
    toks = calloc(MAX_TOKENS, sizeof *toks);
    if (!toks)
        die("out of memory");

    if (ioq_loop_new(NULL, &loop) != 0)
        die("loop");
    backend = ioq_loop_backend(loop);
    {
        const char *e = getenv("IOQ_STRESS_SENDV");
        use_sendv = !(e && strcmp(e, "0") == 0);
    }
    if (ioq_pool_new(loop, POOL_COUNT, POOL_SIZE, &pool) != 0)
        die("pool");
    {
        struct sockaddr_in sa;
        socklen_t sl = sizeof sa;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        plain_listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (plain_listener < 0 || bind(plain_listener, (struct sockaddr *)&sa, sizeof sa) ||
            listen(plain_listener, 64) || getsockname(plain_listener, (struct sockaddr *)&sa,
                                                      &sl))
            die("plain listener");
        plain_port = ntohs(sa.sin_port);
    }
    for (int p = 0; p < NPAIRS; p++)
        pair_open(p);
    {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_missed;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGUSR1, &sa, NULL) != 0)
            die("sigaction");
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, wsv) != 0)
            die("socketpair");
        watch_adopt();
        int rc = ioq_notifier_new(loop, &notifier);
        if (rc != 0)
            die("notifier: %s", ioq_errname(rc));
        if (pthread_create(&notify_thread, NULL, notify_main, (void *)(uintptr_t)seed) != 0)
            die("thread");
    }
    {
        ioq_addr any;
        memset(&any, 0, sizeof any);
        any.family = IOQ_AF_INET;
        any.ip[0] = 127;
        any.ip[3] = 1;
        if (ioq_tcp_listen(loop, &any, 128, 0, &listener) != 0 ||
            ioq_sockname(loop, listener, &listener_addr) != 0)
            die("listener");
        start_accept();
    }

    const char *skip = getenv("IOQ_STRESS_SKIP");
    if (!skip)
        skip = "";
    time_t t0 = time(NULL);
    uint64_t steps = 0;
    while (n_ops < ops) {
        if (++steps > ops * 50)
            die("no progress: %llu operations accepted in %llu steps",
                (unsigned long long)n_ops, (unsigned long long)steps);
        if (time(NULL) - t0 > 240)
            die("stuck for 4 minutes with %llu operations pending",
                (unsigned long long)pending_count());
        int p = (int)below(NPAIRS), end = (int)below(2);
        pair *pr = &pairs[p];
        if (!pr->live)
            continue;
        if (pr->closing[0] && pr->closing[1]) {
            /* Both closes done: every op of the pair must have completed by now. */
            if (pr->closing[0] == 2 && pr->closing[1] == 2) {
                if (pr->ops[0] || pr->ops[1])
                    die("pair closed with operations pending");
                pair_open(p);
            }
        } else if (pr->closing[0] || pr->closing[1]) {
            if (below(8) == 0)
                do_close(p, pr->closing[0] ? 1 : 0);
        } else {
            uint32_t what = below(1080);
            if (what < 330) do_send(p, end);
            else if (what < 660) do_recv(p, end);
            else if (what < 760) do_recv_pool(p, end);
            else if (what < 860) do_timeout();
            else if (what < 960) do_cancel();
            else if (what < 965) do_shutdown(p, end);
            else if (what < 975) do_close(p, end);
            else if (what < 995) do_connect();
            else if (what < 1020) { if (!strchr(skip, 'w')) do_watch(); }
            else if (what < 1040) { if (!strchr(skip, 'w')) do_watch_poke(); }
            else if (what < 1050) { if (!strchr(skip, 'n')) do_notify_wait(); }
            else if (what < 1060) { if (!strchr(skip, 's')) do_signal(); }
            else if (what < 1070) { if (!strchr(skip, 's')) do_raise(); }
            else if (what < 1074) { if (!strchr(skip, 'p')) do_spawn(); }
            else if (what < 1078) { if (!strchr(skip, 'p')) do_proc(); }
        }
        /* Keep the readers going so writers can finish, and let time pass sometimes. */
        poll_some(below(16) == 0 ? 1000000 : 0);
    }

    /* Drain. Every notification counted must be reported; then every signal raised must
     * be reported, missed or lost to a cancel; children end by themselves. */
    atomic_store(&notify_stop, 1);
    pthread_join(notify_thread, NULL);
    draining = 1;
    {
        time_t t2 = time(NULL);
        while (n_notify_seen < atomic_load(&n_notified)) {
            if (time(NULL) - t2 > 60)
                die("notifier: %llu notifications lost",
                    (unsigned long long)(atomic_load(&n_notified) - n_notify_seen));
            do_notify_wait();
            poll_some(10000000);
        }
        do_signal();
        do_raise();
        while (n_sig_reported + (uint64_t)sig_missed + n_sig_lost < sig_raised) {
            if (time(NULL) - t2 > 60)
                die("signals: %llu raised, %llu reported, %llu missed, %llu lost to cancels",
                    (unsigned long long)sig_raised, (unsigned long long)n_sig_reported,
                    (unsigned long long)sig_missed, (unsigned long long)n_sig_lost);
            poll_some(10000000);
        }
        if (sig_tok) {
            uint64_t t = tok_new(IOQ_OP_CANCEL, -1, 0, 0, NULL);
            toks[t].len = sig_tok;
            note_cancel(sig_tok);
            accepted(t, ioq_cancel(loop, sig_tok, t), 0);
        }
        if (!w_closing) {
            uint64_t t = tok_new(IOQ_OP_CLOSE, -1, 0, 0, NULL);
            toks[t].obj = 1;
            accepted(t, ioq_close(loop, wh, t), 0);
            w_closing = 1;
        }
        uint64_t t = tok_new(IOQ_OP_CLOSE, -1, 0, 0, NULL);
        accepted(t, ioq_close(loop, notifier, t), 0);
    }
    /* Close everything; every accepted operation must complete. */
    for (int p = 0; p < NPAIRS; p++)
        for (int e = 0; e < 2; e++)
            if (pairs[p].live && !pairs[p].closing[e])
                do_close(p, e);
    {
        uint64_t t = tok_new(IOQ_OP_CLOSE, -1, 0, 0, NULL);
        accepted(t, ioq_close(loop, pool, t), 0);
        listener_closed = 1;
        close_handle(listener);
    }
    time_t t1 = time(NULL);
    while (pending_count() > 0) {
        if (time(NULL) - t1 > 60) {
            for (uint64_t t = 1; t <= ntoks; t++)
                if (toks[t].state == T_PENDING)
                    fprintf(stderr, "  token %llu op %u never completed\n",
                            (unsigned long long)t, toks[t].op);
            die("%llu operations lost (no final completion)",
                (unsigned long long)pending_count());
        }
        poll_some(10000000);
    }
    if (poll_some(0) != 0)
        die("completions after every operation had its final one");
    if (n_sig_reported + (uint64_t)sig_missed + n_sig_lost != sig_raised)
        die("signals: %llu raised, %llu reported, %llu missed, %llu lost to cancels",
            (unsigned long long)sig_raised, (unsigned long long)n_sig_reported,
            (unsigned long long)sig_missed, (unsigned long long)n_sig_lost);
    ioq_loop_free(loop);
    close(plain_listener);
    close(wsv[0]);
    close(wsv[1]);

    /* After the final completions, nothing may have touched any buffer. */
    uint64_t nbufs = 0;
    for (buf *b = all_bufs, *nx; b; b = nx) {
        nx = b->next;
        check_final(b, "end of run");
        free(b->mem);
        free(b);
        nbufs++;
    }
    free(toks);

    uint64_t f[7];
    ioq__fault_stats(f);
    printf("fault stress %s seed %llu: %llu operations, %llu completions (%llu final, "
           "%llu errors, %llu cancels hit, %llu accepted, %llu connected), "
           "%llu bytes checked, %llu buffers checked; %llu watch reports, %llu notifications, "
           "signals %llu raised (%llu reported, %llu missed, %llu lost to cancels), "
           "children %llu spawned (%llu statuses, %llu kills); faults: "
           "%llu EINTR, %llu EAGAIN, %llu short, %llu reset, %llu nomem, %llu delayed, "
           "%llu failed allocations (%llu in all); lost 0, duplicated 0%s\n",
           backend, (unsigned long long)seed, (unsigned long long)n_ops,
           (unsigned long long)n_completions, (unsigned long long)n_final,
           (unsigned long long)n_errors, (unsigned long long)n_cancel_hits,
           (unsigned long long)n_accepted, (unsigned long long)n_connected,
           (unsigned long long)n_bytes, (unsigned long long)nbufs,
           (unsigned long long)n_watch_reports, (unsigned long long)n_notify_seen,
           (unsigned long long)sig_raised, (unsigned long long)n_sig_reported,
           (unsigned long long)sig_missed, (unsigned long long)n_sig_lost,
           (unsigned long long)n_spawned, (unsigned long long)n_exited,
           (unsigned long long)n_killed, (unsigned long long)f[0],
           (unsigned long long)f[1], (unsigned long long)f[2], (unsigned long long)f[3],
           (unsigned long long)f[4], (unsigned long long)f[5], (unsigned long long)f[6],
           (unsigned long long)(f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6]),
           use_sendv ? "" : "; sendv left out (IOQ_STRESS_SENDV=0)");
    return 0;
}
