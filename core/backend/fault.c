/*
 * The fault layer of fault.h. Built only with IOQ_FAULT_INJECTION; never in a release.
 */
#include "fault.h"
#include "posix.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#define REPLAY_MAX 1024
#define HELD_MAX 64
#define FAKE_MAX 1024

#define BIT(k) (1u << (k))
#define ERRORS (BIT(IOQ__F_RESET) | BIT(IOQ__F_NOMEM))

typedef struct {
    ioq_loop *loop;
    uint64_t hv;
    unsigned bits;
} replay_ent;

typedef struct {
    ioq_loop *loop;
    uint64_t ud;
    int32_t res;
    uint32_t flags;
    uint64_t gen;
} held_ent;

typedef struct {
    ioq__op *op;
    int err;
} fake_ent;

/* Per thread: a loop and its system calls live on one thread. */
static _Thread_local struct {
    bool init;
    uint64_t rng;
    uint32_t rate;
    bool errors;
    replay_ent replay[REPLAY_MAX];
    uint32_t nreplay;
    held_ent held[HELD_MAX];
    uint32_t nheld;
    uint64_t gen;
    fake_ent fake[FAKE_MAX];
    uint32_t nfake;
    uint64_t arng;       /* the allocation failures' own stream */
    uint32_t alloc_rate; /* per mille */
} T;

static _Atomic uint64_t counts[IOQ__F_KINDS];
static _Atomic uint32_t threads;

static uint64_t next(void)
{
    /* splitmix64: small, seedable, good enough to spread faults */
    uint64_t z = (T.rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void init(void)
{
    const char *s;
    if (T.init)
        return;
    T.init = true;
    s = getenv("IOQ_FAULT_SEED");
    T.rng = s ? strtoull(s, NULL, 0) : 1;
    /* Other threads get their own streams, the first one the seed itself. */
    T.rng += 0x632be59bd9b4e019ull * atomic_fetch_add(&threads, 1);
    s = getenv("IOQ_FAULT_RATE");
    T.rate = s ? (uint32_t)strtoul(s, NULL, 10) : 10;
    s = getenv("IOQ_FAULT_ERRORS");
    T.errors = !(s && strcmp(s, "0") == 0);
    s = getenv("IOQ_FAULT_ALLOC_RATE");
    T.alloc_rate = s ? (uint32_t)strtoul(s, NULL, 10) : 5;
    T.arng = T.rng ^ 0xa0761d6478bd642full;
}

/* A fault among the allowed kinds, or -1 for none. */
static int roll(unsigned allowed)
{
    static const int mix[20] = {
        IOQ__F_EINTR, IOQ__F_EINTR, IOQ__F_EINTR, IOQ__F_EINTR, IOQ__F_EINTR, IOQ__F_EINTR,
        IOQ__F_EAGAIN, IOQ__F_EAGAIN, IOQ__F_EAGAIN, IOQ__F_EAGAIN, IOQ__F_EAGAIN,
        IOQ__F_EAGAIN, IOQ__F_SHORT, IOQ__F_SHORT, IOQ__F_SHORT, IOQ__F_SHORT, IOQ__F_SHORT,
        IOQ__F_SHORT, IOQ__F_RESET, IOQ__F_NOMEM};
    int k;
    init();
    if (!T.errors)
        allowed &= ~ERRORS;
    if (!allowed || next() % 100 >= T.rate)
        return -1;
    k = mix[next() % 20];
    if (!(allowed & BIT(k)))
        return -1;
    atomic_fetch_add(&counts[k], 1);
    return k;
}

static size_t shorter(size_t len) { return 1 + (size_t)(next() % (len - 1)); }

static bool is_stream(const ioq__handle *h)
{
    return h && (h->kind == IOQ__K_TCP || h->kind == IOQ__K_LOCAL);
}

/* --- readiness ----------------------------------------------------------------------------- */

static unsigned replay_ok(void) { return T.nreplay < REPLAY_MAX ? BIT(IOQ__F_EAGAIN) : 0; }

static void owe_edge(ioq_loop *loop, ioq__handle *h, unsigned bits)
{
    uint64_t hv = ioq__handle_value(loop, h);
    for (uint32_t i = 0; i < T.nreplay; i++) {
        if (T.replay[i].loop == loop && T.replay[i].hv == hv) {
            T.replay[i].bits |= bits;
            return;
        }
    }
    T.replay[T.nreplay].loop = loop;
    T.replay[T.nreplay].hv = hv;
    T.replay[T.nreplay].bits = bits;
    T.nreplay++;
}

static ssize_t fail(int e)
{
    errno = e;
    return -1;
}

ssize_t ioq__fault_recv(ioq_loop *loop, ioq__handle *h, int fd, void *buf, size_t len,
                        int flags)
{
    unsigned allow = BIT(IOQ__F_EINTR) | replay_ok() | BIT(IOQ__F_NOMEM);
    if (is_stream(h)) {
        allow |= BIT(IOQ__F_RESET);
        if (len > 1 && !(flags & MSG_PEEK))
            allow |= BIT(IOQ__F_SHORT);
    }
    switch (roll(allow)) {
    case IOQ__F_EINTR: return fail(EINTR);
    case IOQ__F_EAGAIN: owe_edge(loop, h, IOQ__R_READABLE); return fail(EAGAIN);
    case IOQ__F_SHORT:
        /* The engine takes a short stream read for an empty socket and waits for the next
         * edge; data this fake leaves behind raises none, so owe one. */
        if (!replay_ok())
            break; /* no room to owe the edge: read in full */
        owe_edge(loop, h, IOQ__R_READABLE);
        len = shorter(len);
        break;
    case IOQ__F_RESET: return fail(ECONNRESET);
    case IOQ__F_NOMEM: return fail(ENOMEM);
    default: break;
    }
    return recv(fd, buf, len, flags);
}

int ioq__fault_recv_batch(ioq_loop *loop, ioq__handle *h, int fd, struct msghdr *msg,
                          size_t *got, unsigned n)
{
    unsigned allow = BIT(IOQ__F_EINTR) | replay_ok() | BIT(IOQ__F_NOMEM);
    if (n > 1 && replay_ok())
        allow |= BIT(IOQ__F_SHORT);
    switch (roll(allow)) {
    case IOQ__F_EINTR: return (int)fail(EINTR);
    case IOQ__F_EAGAIN: owe_edge(loop, h, IOQ__R_READABLE); return (int)fail(EAGAIN);
    case IOQ__F_NOMEM: return (int)fail(ENOMEM);
    case IOQ__F_SHORT:
        /* Fewer than asked reads as "the socket is empty": owe the edge its data needs. */
        owe_edge(loop, h, IOQ__R_READABLE);
        n = (unsigned)shorter(n);
        break;
    default: break;
    }
    return ioq__px_recv_batch(fd, msg, got, n);
}

ssize_t ioq__fault_send(ioq_loop *loop, ioq__handle *h, int fd, const void *buf, size_t len,
                        int flags)
{
    unsigned allow = BIT(IOQ__F_EINTR) | replay_ok() | BIT(IOQ__F_NOMEM);
    if (is_stream(h)) {
        allow |= BIT(IOQ__F_RESET);
        if (len > 1)
            allow |= BIT(IOQ__F_SHORT);
    }
    switch (roll(allow)) {
    case IOQ__F_EINTR: return fail(EINTR);
    case IOQ__F_EAGAIN: owe_edge(loop, h, IOQ__R_WRITABLE); return fail(EAGAIN);
    case IOQ__F_SHORT: len = shorter(len); break;
    case IOQ__F_RESET: return fail(ECONNRESET);
    case IOQ__F_NOMEM: return fail(ENOBUFS);
    default: break;
    }
    return send(fd, buf, len, flags);
}

ssize_t ioq__fault_sendmsg(ioq_loop *loop, ioq__handle *h, int fd, const struct msghdr *msg,
                           int flags)
{
    enum { MAXV = 64 };
    unsigned allow = BIT(IOQ__F_EINTR) | replay_ok() | BIT(IOQ__F_NOMEM);
    size_t total = 0;
    for (size_t i = 0; i < (size_t)msg->msg_iovlen; i++)
        total += msg->msg_iov[i].iov_len;
    if (is_stream(h)) {
        allow |= BIT(IOQ__F_RESET);
        if (total > 1 && msg->msg_iovlen <= MAXV)
            allow |= BIT(IOQ__F_SHORT);
    }
    switch (roll(allow)) {
    case IOQ__F_EINTR: return fail(EINTR);
    case IOQ__F_EAGAIN: owe_edge(loop, h, IOQ__R_WRITABLE); return fail(EAGAIN);
    case IOQ__F_RESET: return fail(ECONNRESET);
    case IOQ__F_NOMEM: return fail(ENOBUFS);
    case IOQ__F_SHORT: {
        /* The kernel takes only the first `want` bytes of the gather list. */
        struct iovec v[MAXV];
        struct msghdr m = *msg;
        size_t want = shorter(total), cnt = 0;
        for (size_t i = 0; i < (size_t)msg->msg_iovlen && want > 0; i++) {
            v[cnt] = msg->msg_iov[i];
            if (v[cnt].iov_len > want)
                v[cnt].iov_len = want;
            want -= v[cnt].iov_len;
            cnt++;
        }
        m.msg_iov = v;
        m.msg_iovlen = cnt;
        return sendmsg(fd, &m, flags);
    }
    default: break;
    }
    return sendmsg(fd, msg, flags);
}

ssize_t ioq__fault_sendto(ioq_loop *loop, ioq__handle *h, int fd, const void *buf, size_t len,
                          int flags, const struct sockaddr *sa, socklen_t slen)
{
    switch (roll(BIT(IOQ__F_EINTR) | replay_ok() | BIT(IOQ__F_NOMEM))) {
    case IOQ__F_EINTR: return fail(EINTR);
    case IOQ__F_EAGAIN: owe_edge(loop, h, IOQ__R_WRITABLE); return fail(EAGAIN);
    case IOQ__F_NOMEM: return fail(ENOBUFS);
    default: break;
    }
    return sendto(fd, buf, len, flags, sa, slen);
}

int ioq__fault_accept(ioq_loop *loop, ioq__handle *h, int fd)
{
    /* RESET stands for a connection that died in the backlog: ECONNABORTED. */
    switch (roll(BIT(IOQ__F_EINTR) | replay_ok() | BIT(IOQ__F_RESET) | BIT(IOQ__F_NOMEM))) {
    case IOQ__F_EINTR: return -EINTR;
    case IOQ__F_EAGAIN: owe_edge(loop, h, IOQ__R_READABLE); return -EAGAIN;
    case IOQ__F_RESET: return -ECONNABORTED;
    case IOQ__F_NOMEM: return -ENOMEM;
    default: break;
    }
    return ioq__px_accept(fd);
}

int ioq__fault_replay_pending(ioq_loop *loop)
{
    for (uint32_t i = 0; i < T.nreplay; i++)
        if (T.replay[i].loop == loop)
            return 1;
    return 0;
}

void ioq__fault_replay(ioq_loop *loop, void (*event)(ioq_loop *, ioq__handle *, unsigned),
                       ioq__handle *(*lookup)(const ioq_loop *, uint64_t))
{
    replay_ent mine[REPLAY_MAX];
    uint32_t n = 0, keep = 0;
    /* Take this loop's entries out first: replaying may owe new edges (a storm). */
    for (uint32_t i = 0; i < T.nreplay; i++) {
        if (T.replay[i].loop == loop)
            mine[n++] = T.replay[i];
        else
            T.replay[keep++] = T.replay[i];
    }
    T.nreplay = keep;
    for (uint32_t i = 0; i < n; i++) {
        ioq__handle *h = lookup(loop, mine[i].hv);
        if (h) /* a handle closed since is simply gone */
            event(loop, h, mine[i].bits);
    }
}

/* --- io_uring ------------------------------------------------------------------------------ */

size_t ioq__fault_sqe_len(ioq__op *op, size_t len)
{
    if ((op->code == IOQ_OP_SEND || op->code == IOQ_OP_RECV) && is_stream(op->h) && len > 1 &&
        roll(BIT(IOQ__F_SHORT)) == IOQ__F_SHORT)
        return shorter(len);
    return len;
}

int ioq__fault_sqe_fd(ioq__op *op, int fd)
{
    int e;
    for (uint32_t i = 0; i < T.nfake; i++) {
        if (T.fake[i].op == op) { /* a leftover of an earlier life of this op */
            T.fake[i] = T.fake[--T.nfake];
            break;
        }
    }
    if (!(op->code == IOQ_OP_SEND || op->code == IOQ_OP_SENDV || op->code == IOQ_OP_RECV ||
          op->code == IOQ_OP_RECV_POOL) || !is_stream(op->h) || T.nfake >= FAKE_MAX)
        return fd;
    switch (roll(BIT(IOQ__F_RESET) | BIT(IOQ__F_NOMEM))) {
    case IOQ__F_RESET: e = ECONNRESET; break;
    case IOQ__F_NOMEM: e = (op->code == IOQ_OP_SEND || op->code == IOQ_OP_SENDV) ? ENOBUFS
                                                                                : ENOMEM; break;
    default: return fd;
    }
    /* fd -1 makes the kernel fail the SQE before it touches the socket or a buffer. */
    T.fake[T.nfake].op = op;
    T.fake[T.nfake].err = e;
    T.nfake++;
    return -1;
}

int ioq__fault_cqe_res(ioq__op *op, int res)
{
    if (res == -EBADF) {
        for (uint32_t i = 0; i < T.nfake; i++) {
            if (T.fake[i].op == op) {
                int e = T.fake[i].err;
                T.fake[i] = T.fake[--T.nfake];
                return -e;
            }
        }
    }
    /* A cancelled request may also end with -EINTR. */
    if (res == -ECANCELED && op->cancelled && roll(BIT(IOQ__F_EINTR)) == IOQ__F_EINTR)
        return -EINTR;
    return res;
}

int ioq__fault_cqe_hold(ioq_loop *loop, uint64_t ud, int32_t res, uint32_t flags)
{
    (void)flags;
    init();
    if (T.nheld >= HELD_MAX || next() % 100 >= T.rate || next() % 4 != 0)
        return 0;
    atomic_fetch_add(&counts[IOQ__F_DELAY], 1);
    T.held[T.nheld].loop = loop;
    T.held[T.nheld].ud = ud;
    T.held[T.nheld].res = res;
    T.held[T.nheld].flags = flags;
    T.held[T.nheld].gen = T.gen;
    T.nheld++;
    return 1;
}

int ioq__fault_cqe_release(ioq_loop *loop, uint64_t *ud, int32_t *res, uint32_t *flags)
{
    for (uint32_t i = 0; i < T.nheld; i++) {
        if (T.held[i].loop == loop && T.held[i].gen < T.gen) {
            *ud = T.held[i].ud;
            *res = T.held[i].res;
            *flags = T.held[i].flags;
            /* keep the order in which they were held */
            memmove(&T.held[i], &T.held[i + 1], (T.nheld - i - 1) * sizeof T.held[0]);
            T.nheld--;
            return 1;
        }
    }
    return 0;
}

void ioq__fault_reap_begin(ioq_loop *loop)
{
    (void)loop;
    T.gen++;
}

int ioq__fault_held(ioq_loop *loop)
{
    for (uint32_t i = 0; i < T.nheld; i++)
        if (T.held[i].loop == loop)
            return 1;
    return 0;
}

void ioq__fault_forget(ioq_loop *loop)
{
    uint32_t keep = 0;
    for (uint32_t i = 0; i < T.nreplay; i++)
        if (T.replay[i].loop != loop)
            T.replay[keep++] = T.replay[i];
    T.nreplay = keep;
    keep = 0;
    for (uint32_t i = 0; i < T.nheld; i++)
        if (T.held[i].loop != loop)
            T.held[keep++] = T.held[i];
    T.nheld = keep;
}

int ioq__fault_alloc(void)
{
    uint64_t z;
    init();
    if (!T.errors || T.alloc_rate == 0)
        return 0;
    z = (T.arng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    if ((z ^ (z >> 31)) % 1000 >= T.alloc_rate)
        return 0;
    atomic_fetch_add(&counts[IOQ__F_ALLOC], 1);
    return 1;
}

void ioq__fault_stats(uint64_t out[IOQ__F_KINDS])
{
    for (int k = 0; k < IOQ__F_KINDS; k++)
        out[k] = atomic_load(&counts[k]);
}
