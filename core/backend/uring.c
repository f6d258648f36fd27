/*
 * io_uring backend. Operations become SQEs whose user_data is the op; ioq_poll() flushes
 * them and waits in one io_uring_enter (submit_and_wait with an extended-argument timeout).
 *
 * Order on a stream: only the head of a handle's read queue and of its write queue is in
 * the kernel at a time, so sends never interleave (a short send is resubmitted before the
 * next one starts) and receives fill in submission order. Files and connects need no queue.
 *
 * Wake-ups: an eventfd watched by a multishot poll SQE; ioq_wake()/ioq_post() write it only
 * when the loop is (about to be) blocked. ioq_loop_fd() is the ring's own descriptor: the
 * kernel reports it readable while completions or deferred task work are pending, which
 * with DEFER_TASKRUN is exactly "ioq_poll has work", and reading it costs nothing.
 *
 * Watches (ioq_watch) are one-shot POLL_ADDs. A multishot watch that reported is polled
 * again only after the reaping of that wait: a one-shot poll completes at once while the
 * condition holds, so it is level-triggered with at most one report per ioq_poll (the
 * kernel's multishot poll is edge-triggered, and its level flag would report in a loop).
 */
#include "fault.h"
#include "posix.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#define UD_CANCEL 0
#define UD_WAKE 1
#define UD_TIMER 2
#define RING_ENTRIES 256
#define REAP_BATCH 256

/* op->be_u64 bits */
#define IN_KERNEL 1u
#define CANCEL_SENT 2u

typedef struct {
    struct io_uring ring;
    int evfd;
    int tfd;
    int lfd;          /* embedded mode: eventfd registered with the ring, see loop_fd */
    bool enabled;     /* set up with R_DISABLED: enabled by the first submitter thread */
    bool deferred;    /* DEFER_TASKRUN: completions are posted only when we enter */
    bool timer_armed;
    bool emulate_multishot_accept;
    bool emulate_multishot_recv;
    uint32_t inflight; /* ops with an SQE in the kernel */
    uint32_t caps;
    uint32_t next_bgid;
    uint32_t npools;  /* buffer rings registered */
    uint64_t wake_buf, timer_buf;
    ioq__opq rearm;   /* multishot watches that reported: polled again at the next wait */
} uring_state;

/* Per-op kernel argument storage for connect / sendto / recvfrom / sendv. */
typedef struct {
    struct sockaddr_storage ss;
    struct msghdr msg;
    struct iovec iov[1]; /* more follow for sendv */
} uring_args;

typedef struct {
    struct io_uring_buf_ring *br;
    size_t bytes;
    uint32_t entries;
} uring_pool;

static uring_state *st(ioq_loop *loop) { return ioq__backend_data(loop); }
static int ring_setup(uring_state *s, size_t first);

static int enable(uring_state *s)
{
    if (!s->enabled) {
        int rc = io_uring_enable_rings(&s->ring);
        if (rc < 0)
            return ioq__os_errno_map(-rc);
        s->enabled = true;
    }
    return 0;
}

/* An SQE, flushing the ring when it is full. NULL only if the kernel refuses to take more. */
static struct io_uring_sqe *get_sqe(uring_state *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe && enable(s) == 0) {
        io_uring_submit(&s->ring);
        sqe = io_uring_get_sqe(&s->ring);
    }
    return sqe;
}

static void arm_poll(uring_state *s, int fd, uint64_t ud)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return;
    io_uring_prep_poll_multishot(sqe, fd, POLLIN);
    io_uring_sqe_set_data64(sqe, ud);
}

/* --- building SQEs ---------------------------------------------------------------------- */

static uring_args *args_of(ioq__op *op, uint32_t niov)
{
    if (!op->be)
        op->be = calloc(1, sizeof(uring_args) + (niov > 1 ? niov - 1 : 0) * sizeof(struct iovec));
    return op->be;
}

/* A one-buffer msghdr with room for an address (recvfrom, sendto). */
static void msg_one(uring_args *a, void *buf, size_t len, socklen_t namelen)
{
    memset(&a->msg, 0, sizeof a->msg);
    a->iov[0].iov_base = buf;
    a->iov[0].iov_len = len;
    a->msg.msg_iov = a->iov;
    a->msg.msg_iovlen = 1;
    a->msg.msg_name = &a->ss;
    a->msg.msg_namelen = namelen;
}

/* Fill the msghdr of a sendv with its unsent pieces. */
static void sendv_msg(ioq__op *op, uring_args *a)
{
    uint32_t cnt = 0, pos = op->iovpos;
    /* a->iov has room for op->iovcnt entries (args_of) */
    while (cnt < op->iovcnt &&
           ioq__sendv_piece(op, &pos, &a->iov[cnt].iov_base, &a->iov[cnt].iov_len))
        cnt++;
    memset(&a->msg, 0, sizeof a->msg);
    a->msg.msg_iov = a->iov;
    a->msg.msg_iovlen = cnt;
}

/* Put op into the kernel. Returns 0 or a negative IOQ_E* (nothing was queued). */
static int issue(ioq_loop *loop, ioq__op *op)
{
    uring_state *s = st(loop);
    struct io_uring_sqe *sqe;
    ioq__handle *h = op->h;
    int fd = h ? (int)h->fd : -1;
    uring_args *a = NULL;

    if (op->code == IOQ_OP_CONNECT || op->code == IOQ_OP_SENDTO ||
        op->code == IOQ_OP_RECVFROM || op->code == IOQ_OP_SENDV ||
        op->code == IOQ_OP_LOCAL_CONNECT) {
        a = args_of(op, op->code == IOQ_OP_SENDV ? op->iovcnt : 1);
        if (!a)
            return IOQ_ENOMEM;
    }
    sqe = get_sqe(s);
    if (!sqe)
        return IOQ_EBUSY;
    fd = ioq__f_sqe_fd(op, fd);

    switch (op->code) {
    case IOQ_OP_ACCEPT:
        if ((op->flags & IOQ_MULTISHOT) && !s->emulate_multishot_accept)
            io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
        else
            io_uring_prep_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
        break;
    case IOQ_OP_CONNECT:
    case IOQ_OP_LOCAL_CONNECT: {
        socklen_t len;
        if (op->code == IOQ_OP_CONNECT)
            ioq__to_sockaddr(&op->addr, &a->ss, &len);
        else
            ioq__px_unix_addr(op->path, &a->ss, &len);
        io_uring_prep_connect(sqe, fd, (struct sockaddr *)&a->ss, len);
        break;
    }
    case IOQ_OP_RECV:
        io_uring_prep_recv(sqe, fd, op->buf, ioq__f_sqe_len(op, op->len), 0);
        break;
    case IOQ_OP_RECV_POOL:
        if ((op->flags & IOQ_MULTISHOT) && !s->emulate_multishot_recv)
            io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
        else
            io_uring_prep_recv(sqe, fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = (uint16_t)op->pool->bgid;
        break;
    case IOQ_OP_RECVFROM:
        msg_one(a, op->buf, op->len, sizeof a->ss);
        io_uring_prep_recvmsg(sqe, fd, &a->msg, 0);
        break;
    case IOQ_OP_SEND:
        io_uring_prep_send(sqe, fd, (char *)op->buf + op->done,
                           ioq__f_sqe_len(op, op->len - op->done), MSG_NOSIGNAL);
        break;
    case IOQ_OP_SENDV:
        sendv_msg(op, a);
        io_uring_prep_sendmsg(sqe, fd, &a->msg, MSG_NOSIGNAL);
        break;
    case IOQ_OP_SENDTO: {
        socklen_t len;
        ioq__to_sockaddr(&op->addr, &a->ss, &len);
        msg_one(a, op->buf, op->len, len);
        io_uring_prep_sendmsg(sqe, fd, &a->msg, MSG_NOSIGNAL);
        break;
    }
    case IOQ_OP_SHUTDOWN:
        io_uring_prep_shutdown(sqe, fd, SHUT_WR);
        break;
    case IOQ_OP_OPEN:
        io_uring_prep_openat(sqe, AT_FDCWD, op->path, ioq__px_open_flags(op->flags), op->mode);
        break;
    case IOQ_OP_READ:
        io_uring_prep_read(sqe, fd, op->buf, (unsigned)op->len, op->offset);
        break;
    case IOQ_OP_WRITE:
        io_uring_prep_write(sqe, fd, (char *)op->buf + op->done, (unsigned)(op->len - op->done),
                            op->offset + op->done);
        break;
    case IOQ_OP_FSYNC:
        io_uring_prep_fsync(sqe, fd, 0);
        break;
    case IOQ_OP_WATCH:
        io_uring_prep_poll_add(sqe, fd,
                               ((op->events & IOQ_WATCH_READABLE) ? POLLIN | POLLRDHUP : 0u) |
                                   ((op->events & IOQ_WATCH_WRITABLE) ? POLLOUT : 0u));
        break;
    default:
        /* Cannot happen: every code that reaches a backend is listed above. Turn the SQE
         * into a no-op so the ring stays consistent. */
        io_uring_prep_nop(sqe);
        break;
    }
    io_uring_sqe_set_data(sqe, op);
    op->be_u64 = IN_KERNEL;
    s->inflight++;
    /* A host sleeping on the ring fd only learns of work that was submitted. */
    if (ioq__loop_embedded(loop) && enable(s) == 0)
        io_uring_submit(&s->ring);
    return 0;
}

static void finish(ioq_loop *loop, ioq__op *op, int64_t res, uint64_t value, uint16_t flags)
{
    ioq__order_finish(loop, op, res, value, flags, issue);
}

/* --- backend entry points ------------------------------------------------------------------ */

static int uring_start(ioq_loop *loop, ioq__op *op)
{
    ioq__handle *h = op->h;
    if (op->code == IOQ_OP_CONNECT || op->code == IOQ_OP_LOCAL_CONNECT) {
        int domain = op->code == IOQ_OP_CONNECT ? ioq__px_family(op->addr.family) : AF_UNIX;
        struct sockaddr_storage ss;
        socklen_t len;
        int fd, rc;
        if (op->code == IOQ_OP_LOCAL_CONNECT && (rc = ioq__px_unix_addr(op->path, &ss, &len)))
            return rc;
        /* Blocking socket: io_uring waits for the connect itself. */
        fd = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return ioq__os_errno_map(errno);
        if ((rc = ioq__handle_attach(loop, h, fd)) == 0 && (rc = issue(loop, op)) != 0)
            h->fd = -1;
        if (rc != 0)
            close(fd);
        return rc;
    }
    return ioq__order_start(loop, op, issue);
}

static void uring_cancel(ioq_loop *loop, ioq__op *op)
{
    uring_state *s = st(loop);
    if (op->be_u64 & IN_KERNEL) {
        struct io_uring_sqe *sqe;
        if (op->be_u64 & CANCEL_SENT)
            return;
        sqe = get_sqe(s);
        if (!sqe)
            return; /* it will still complete on its own */
        io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
        io_uring_sqe_set_data64(sqe, UD_CANCEL);
        op->be_u64 |= CANCEL_SENT;
        if (ioq__loop_embedded(loop) && enable(s) == 0)
            io_uring_submit(&s->ring);
        return;
    }
    if (op->code == IOQ_OP_WATCH) {
        /* Between two polls: waiting to be armed again. */
        ioq__opq_remove(&s->rearm, op);
        ioq__complete(loop, op, IOQ_ECANCELED, 0, 0);
        return;
    }
    ioq__order_cancel_queued(loop, op);
}

static int map_res(ioq__op *op, int res)
{
    if (op->cancelled && (res == -ECANCELED || res == -EINTR))
        return IOQ_ECANCELED;
    return ioq__os_errno_map(-res);
}

static void recycle_buf(ioq__pool *pool, uint32_t bid)
{
    uring_pool *up = pool->be;
    io_uring_buf_ring_add(up->br, ioq__pool_buf(pool, bid), pool->size, (unsigned short)bid,
                          io_uring_buf_ring_mask(up->entries), 0);
    io_uring_buf_ring_advance(up->br, 1);
}

static void on_cqe(ioq_loop *loop, ioq__op *op, int res, uint32_t cflags)
{
    uring_state *s = st(loop);
    bool more = cflags & IORING_CQE_F_MORE;
    bool multi = op->flags & IOQ_MULTISHOT;
    ioq__handle *h = op->h;

    if (!more) {
        op->be_u64 &= ~(uint64_t)IN_KERNEL;
        s->inflight--;
    }
    switch (op->code) {
    case IOQ_OP_ACCEPT: {
        ioq__handle *c;
        int rc;
        if (res < 0) {
            if (more)
                return; /* a failed connection inside a live multishot: skip it */
            finish(loop, op, map_res(op, res), 0, 0);
            return;
        }
        if ((rc = ioq__accepted(loop, h, res, &c)) != 0) {
            if (!more)
                finish(loop, op, rc, 0, 0);
            return;
        }
        if (multi && !more && !op->cancelled && issue(loop, op) == 0)
            more = true; /* the kernel ended the multishot (or emulating it): go on */
        finish(loop, op, 0, ioq__handle_value(loop, c), more ? IOQ_CQE_MORE : 0);
        return;
    }
    case IOQ_OP_CONNECT:
    case IOQ_OP_LOCAL_CONNECT:
        ioq__connect_done(loop, op, res < 0 ? map_res(op, res) : 0);
        return;
    case IOQ_OP_RECV:
        finish(loop, op, res < 0 ? map_res(op, res) : res, 0, 0);
        return;
    case IOQ_OP_RECVFROM:
        if (res >= 0 && op->addr_out)
            ioq__from_sockaddr((struct sockaddr *)&((uring_args *)op->be)->ss, op->addr_out);
        finish(loop, op, res < 0 ? map_res(op, res) : res, 0, 0);
        return;
    case IOQ_OP_RECV_POOL: {
        ioq__pool *pool = op->pool;
        if (cflags & IORING_CQE_F_BUFFER) {
            uint32_t bid = cflags >> IORING_CQE_BUFFER_SHIFT;
            if (res > 0) {
                pool->held[bid] = 1;
                if (multi && !more && !op->cancelled && issue(loop, op) == 0)
                    more = true;
                finish(loop, op, res, bid,
                       (uint16_t)(IOQ_CQE_BUFFER | (more ? IOQ_CQE_MORE : 0)));
                return;
            }
            recycle_buf(pool, bid);
        }
        if (more)
            return;
        finish(loop, op, res < 0 ? map_res(op, res) : 0, 0, 0);
        return;
    }
    case IOQ_OP_SEND:
    case IOQ_OP_SENDV:
        ioq__send_result(loop, op, res < 0 ? 0 : (size_t)res, res < 0 ? map_res(op, res) : 0,
                         issue);
        return;
    case IOQ_OP_SENDTO:
    case IOQ_OP_SHUTDOWN:
        finish(loop, op, res < 0 ? map_res(op, res) : (op->code == IOQ_OP_SHUTDOWN ? 0 : res), 0,
               0);
        return;
    case IOQ_OP_OPEN:
        ioq__open_done(loop, op, res < 0 ? map_res(op, res) : 0, res);
        return;
    case IOQ_OP_WATCH: {
        uint32_t r;
        if (res < 0) {
            ioq__complete(loop, op, map_res(op, res), 0, 0);
            return;
        }
        r = ioq__watch_result(op, ((res & POLLIN) ? IOQ_WATCH_READABLE : 0u) |
                                      ((res & POLLOUT) ? IOQ_WATCH_WRITABLE : 0u) |
                                      ((res & (POLLERR | POLLNVAL)) ? IOQ_WATCH_ERROR : 0u) |
                                      ((res & (POLLHUP | POLLRDHUP)) ? IOQ_WATCH_HANGUP : 0u));
        if (op->cancelled) {
            /* A readiness report is no result to keep: it would come again at the next
             * poll. A cancelled watch always ends with IOQ_ECANCELED, on every backend. */
            ioq__complete(loop, op, IOQ_ECANCELED, 0, 0);
        } else if (r == 0 || ((op->flags & IOQ_MULTISHOT) && ioq__cq_room(loop, 1))) {
            if (r)
                ioq__complete(loop, op, r, 0, IOQ_CQE_MORE);
            ioq__opq_push(&s->rearm, op);
        } else {
            ioq__complete(loop, op, r, 0, 0);
        }
        return;
    }
    case IOQ_OP_WRITE:
        ioq__write_result(loop, op, res > 0 ? (size_t)res : 0, res < 0 ? map_res(op, res) : 0,
                          issue);
        return;
    default: /* READ, FSYNC */
        ioq__complete(loop, op, res < 0 ? map_res(op, res) : (op->code == IOQ_OP_FSYNC ? 0 : res),
                      0, 0);
        return;
    }
}

typedef struct {
    uint64_t ud;
    int32_t res;
    uint32_t flags;
} cqe_copy;

/* Reap what the CQ holds. Records are copied out and the CQ advanced before any is handled,
 * so handling (which may submit and flush) never races the ring. */
static int reap(ioq_loop *loop, bool teardown)
{
    uring_state *s = st(loop);
    struct io_uring_cqe *cqes[REAP_BATCH];
    cqe_copy c[REAP_BATCH];
    int total = 0;
    unsigned n;

    ioq__f_reap_begin(loop);
    for (;;) {
        /* CQEs the fault layer held back at an earlier reap go first. */
        n = 0;
        while (n < REAP_BATCH && ioq__f_cqe_release(loop, &c[n].ud, &c[n].res, &c[n].flags))
            n++;
        if (n == 0) {
            if ((n = io_uring_peek_batch_cqe(&s->ring, cqes, REAP_BATCH)) == 0)
                break;
            for (unsigned i = 0; i < n; i++) {
                c[i].ud = cqes[i]->user_data;
                c[i].res = cqes[i]->res;
                c[i].flags = cqes[i]->flags;
            }
            io_uring_cq_advance(&s->ring, n);
        }
        for (unsigned i = 0; i < n; i++) {
            if (c[i].ud == UD_CANCEL)
                continue;
            if (c[i].ud == UD_WAKE || c[i].ud == UD_TIMER) {
                bool wake = c[i].ud == UD_WAKE;
                ssize_t r = read(wake ? s->evfd : s->tfd, wake ? &s->wake_buf : &s->timer_buf,
                                 sizeof(uint64_t));
                (void)r;
                if (!(c[i].flags & IORING_CQE_F_MORE) && !teardown) {
                    if (wake)
                        arm_poll(s, s->evfd, UD_WAKE);
                    else
                        arm_poll(s, s->tfd, UD_TIMER);
                }
                continue;
            }
            if (teardown) {
                ioq__op *op = (ioq__op *)(uintptr_t)c[i].ud;
                if (!(c[i].flags & IORING_CQE_F_MORE)) {
                    op->be_u64 &= ~(uint64_t)IN_KERNEL;
                    s->inflight--;
                }
                /* Descriptors born during teardown would leak: close them. */
                if (c[i].res >= 0 && (op->code == IOQ_OP_ACCEPT || op->code == IOQ_OP_OPEN))
                    close(c[i].res);
                continue;
            }
            if (!(c[i].flags & IORING_CQE_F_MORE) &&
                ioq__f_cqe_hold(loop, c[i].ud, c[i].res, c[i].flags))
                continue;
            on_cqe(loop, (ioq__op *)(uintptr_t)c[i].ud,
                   ioq__f_cqe_res((ioq__op *)(uintptr_t)c[i].ud, c[i].res), c[i].flags);
            total++;
        }
    }
    return total;
}

static int uring_wait(ioq_loop *loop, int64_t timeout_ns)
{
    uring_state *s = st(loop);
    int rc;

    if ((rc = enable(s)) != 0)
        return rc;
    if (ioq__f_held(loop))
        timeout_ns = 0; /* held-back CQEs are ready now */
    if (s->lfd >= 0) {
        /* Embedded: the host saw the descriptor readable and called us; re-arm it. */
        ssize_t r = read(s->lfd, &s->timer_buf, sizeof s->timer_buf);
        (void)r;
    }
    if (timeout_ns == 0) {
        /* Enter only when there is something to submit or deferred work to run. */
        if (io_uring_sq_ready(&s->ring) ||
            (IO_URING_READ_ONCE(*s->ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)))
            io_uring_submit_and_get_events(&s->ring);
    } else if (!io_uring_cq_ready(&s->ring)) {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts, *tsp = NULL;
        if (timeout_ns > 0) {
            ts.tv_sec = timeout_ns / 1000000000;
            ts.tv_nsec = timeout_ns % 1000000000;
            tsp = &ts;
        }
        rc = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, tsp, NULL);
        (void)rc; /* -ETIME and -EINTR are ordinary: the caller loops */
    } else if (io_uring_sq_ready(&s->ring)) {
        io_uring_submit(&s->ring);
    }
    rc = reap(loop, false);
    /* Watches that reported are polled again now, after the reaping: a condition that still
     * holds reports at the next wait, never twice in this one. */
    while (s->rearm.head) {
        ioq__op *op = s->rearm.head;
        int irc;
        ioq__opq_remove(&s->rearm, op);
        if ((irc = issue(loop, op)) != 0)
            ioq__complete(loop, op, irc, 0, 0);
    }
    /* Reaping may queue SQEs (a re-armed wake poll, the rest of a short send). A host that
     * sleeps on the loop fd would wait for them forever: submit them now. */
    if (ioq__loop_embedded(loop) && io_uring_sq_ready(&s->ring))
        io_uring_submit(&s->ring);
    return rc;
}

static void uring_wake(ioq_loop *loop)
{
    uint64_t one = 1;
    ssize_t r = write(st(loop)->evfd, &one, sizeof one);
    (void)r;
}

static int64_t uring_loop_fd(ioq_loop *loop)
{
    uring_state *s = st(loop);
    int rc;
    if (s->lfd >= 0)
        return s->lfd;
    if (s->deferred) {
        /* With DEFER_TASKRUN the kernel posts completions (and signals anything) only when
         * the loop's thread enters the ring, which a host sleeping in its own poll never
         * does. Embedding needs a ring that completes on its own: rebuild it without the
         * flag, which is possible only while nothing lives in it. */
        struct io_uring old = s->ring;
        bool was_enabled = s->enabled;
        if (s->inflight || s->npools)
            return IOQ_EBUSY;
        if ((rc = ring_setup(s, 1)) < 0) {
            s->ring = old; /* keep the loop as it was */
            s->enabled = was_enabled;
            s->deferred = true;
            return ioq__os_errno_map(-rc);
        }
        io_uring_queue_exit(&old);
        arm_poll(s, s->evfd, UD_WAKE);
        s->timer_armed = false;
    }
    if ((rc = enable(s)) != 0)
        return rc;
    s->lfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->lfd < 0)
        return ioq__os_errno_map(errno);
    if ((rc = io_uring_register_eventfd(&s->ring, s->lfd)) < 0) {
        close(s->lfd);
        s->lfd = -1;
        return ioq__os_errno_map(-rc);
    }
    io_uring_submit(&s->ring);
    return s->lfd;
}

static void uring_arm_timer(ioq_loop *loop, uint64_t deadline)
{
    uring_state *s = st(loop);
    if (s->tfd < 0) {
        if (deadline == UINT64_MAX)
            return;
        s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (s->tfd < 0)
            return;
    }
    if (!s->timer_armed) {
        arm_poll(s, s->tfd, UD_TIMER);
        s->timer_armed = true;
        if (enable(s) == 0)
            io_uring_submit(&s->ring);
    }
    ioq__px_timerfd_arm(s->tfd, deadline);
}

static int uring_handle_open(ioq_loop *loop, ioq__handle *h)
{
    int fl;
    (void)loop;
    /* A watched descriptor is the caller's: its flags stay as they are. */
    if (h->kind == IOQ__K_FILE || h->kind == IOQ__K_WATCH || h->fd < 0)
        return 0;
    /* io_uring waits for sockets itself. An O_NONBLOCK socket (from listen, bind or adopt)
     * would make an operation that the kernel hands to an io-wq worker fail with EAGAIN
     * instead of waiting, so every socket in the ring is blocking. */
    fl = fcntl((int)h->fd, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK))
        fcntl((int)h->fd, F_SETFL, fl & ~O_NONBLOCK);
    return 0;
}

static int uring_pool_new(ioq_loop *loop, ioq__pool *pool)
{
    uring_state *s = st(loop);
    struct io_uring_buf_reg reg;
    uring_pool *up;
    uint32_t entries = 1;
    int rc;

    if (!(s->caps & IOQ_CAP_PROVIDED_BUFFERS))
        return IOQ_ENOTSUP;
    while (entries < pool->count)
        entries <<= 1;
    up = calloc(1, sizeof *up);
    if (!up)
        return IOQ_ENOMEM;
    up->entries = entries;
    up->bytes = entries * sizeof(struct io_uring_buf);
    up->br = mmap(NULL, up->bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (up->br == MAP_FAILED) {
        free(up);
        return IOQ_ENOMEM;
    }
    io_uring_buf_ring_init(up->br);
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)up->br;
    reg.ring_entries = entries;
    /* Group ids are 16 bits: take the pool handle's index modulo, probing for a free one. */
    for (uint32_t tries = 0; tries < 65536; tries++) {
        reg.bgid = (uint16_t)(s->next_bgid++);
        rc = io_uring_register_buf_ring(&s->ring, &reg, 0);
        if (rc != -EEXIST)
            break;
    }
    if (rc < 0) {
        munmap(up->br, up->bytes);
        free(up);
        return ioq__os_errno_map(-rc);
    }
    pool->bgid = reg.bgid;
    pool->be = up;
    s->npools++;
    for (uint32_t i = 0; i < pool->count; i++)
        io_uring_buf_ring_add(up->br, ioq__pool_buf(pool, i), pool->size, (unsigned short)i,
                              io_uring_buf_ring_mask(entries), (int)i);
    io_uring_buf_ring_advance(up->br, (int)pool->count);
    return 0;
}

static void uring_pool_free(ioq_loop *loop, ioq__pool *pool)
{
    uring_pool *up = pool->be;
    if (!up)
        return;
    io_uring_unregister_buf_ring(&st(loop)->ring, (int)pool->bgid);
    st(loop)->npools--;
    munmap(up->br, up->bytes);
    free(up);
    pool->be = NULL;
}

static void uring_buf_release(ioq_loop *loop, ioq__pool *pool, uint32_t id)
{
    (void)loop;
    recycle_buf(pool, id);
}

static uint32_t uring_caps(ioq_loop *loop) { return st(loop)->caps; }

/* --- life ------------------------------------------------------------------------------------ */

static int probe(uring_state *s)
{
    static const int needed[] = {IORING_OP_ACCEPT,   IORING_OP_CONNECT,  IORING_OP_RECV,
                                 IORING_OP_SEND,     IORING_OP_SENDMSG,  IORING_OP_RECVMSG,
                                 IORING_OP_SHUTDOWN, IORING_OP_OPENAT,   IORING_OP_READ,
                                 IORING_OP_WRITE,    IORING_OP_FSYNC,    IORING_OP_ASYNC_CANCEL,
                                 IORING_OP_POLL_ADD};
    struct io_uring_probe *p = io_uring_get_probe_ring(&s->ring);
    if (!p)
        return IOQ_ENOSYS;
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++) {
        if (!io_uring_opcode_supported(p, needed[i])) {
            io_uring_free_probe(p);
            return IOQ_ENOSYS;
        }
    }
    s->caps = IOQ_CAP_NATIVE_FILES | IOQ_CAP_LOOP_FD | IOQ_CAP_BATCHED_SUBMIT;
    /* IORING_OP_SOCKET came with multishot accept (5.19), SEND_ZC with multishot recv (6.0). */
    if (io_uring_opcode_supported(p, IORING_OP_SOCKET))
        s->caps |= IOQ_CAP_MULTISHOT_ACCEPT;
    if (io_uring_opcode_supported(p, IORING_OP_SEND_ZC))
        s->caps |= IOQ_CAP_MULTISHOT_RECV | IOQ_CAP_ZEROCOPY_SEND;
    io_uring_free_probe(p);
    s->emulate_multishot_accept = !(s->caps & IOQ_CAP_MULTISHOT_ACCEPT);
    s->emulate_multishot_recv = !(s->caps & IOQ_CAP_MULTISHOT_RECV);
    return 0;
}

/* Set up the ring with the first flag set the kernel accepts, starting at `first`. */
static int ring_setup(uring_state *s, size_t first)
{
    static const unsigned setups[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED |
            IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL,
        0};
    int rc = -EINVAL;
    for (size_t i = first; i < sizeof setups / sizeof setups[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = setups[i];
        rc = io_uring_queue_init_params(RING_ENTRIES, &s->ring, &p);
        if (rc == 0) {
            s->enabled = !(setups[i] & IORING_SETUP_R_DISABLED);
            s->deferred = (setups[i] & IORING_SETUP_DEFER_TASKRUN) != 0;
            break;
        }
        if (rc != -EINVAL)
            break; /* ENOSYS, EPERM, ENOMEM, EMFILE: no flag combination will help */
    }
    return rc;
}

static int uring_init(ioq_loop *loop)
{
    uring_state *s = calloc(1, sizeof *s);
    int rc;

    if (!s)
        return IOQ_ENOMEM;
    s->evfd = s->tfd = s->lfd = -1;
    rc = ring_setup(s, 0);
    if (rc < 0) {
        free(s);
        /* ENOSYS: not built into the kernel or refused by seccomp; EPERM: disabled by the
         * kernel.io_uring_disabled sysctl. Kept apart so the caller can tell which. */
        return ioq__os_errno_map(-rc);
    }
    if ((rc = probe(s)) != 0) {
        io_uring_queue_exit(&s->ring);
        free(s);
        return rc;
    }
    {
        /* Buffer rings (5.19): try one to know whether pools can be kernel-provided. */
        struct io_uring_buf_reg reg;
        void *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        if (mem != MAP_FAILED) {
            memset(&reg, 0, sizeof reg);
            reg.ring_addr = (uint64_t)(uintptr_t)mem;
            reg.ring_entries = 1;
            reg.bgid = 0xffff;
            if (io_uring_register_buf_ring(&s->ring, &reg, 0) == 0) {
                s->caps |= IOQ_CAP_PROVIDED_BUFFERS;
                io_uring_unregister_buf_ring(&s->ring, 0xffff);
            }
            munmap(mem, 4096);
        }
    }
    s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->evfd < 0) {
        rc = ioq__os_errno_map(errno);
        io_uring_queue_exit(&s->ring);
        free(s);
        return rc;
    }
    ioq__backend_data_set(loop, s);
    arm_poll(s, s->evfd, UD_WAKE);
    return 0;
}

static void uring_fini(ioq_loop *loop)
{
    uring_state *s = st(loop);
    ioq__handle *h;

    /* Cancel everything in the kernel and wait for every final CQE: only then has the
     * kernel let go of the buffers. */
    if (s->inflight && enable(s) == 0) {
        ioq__op_iter it = {0, 0};
        for (ioq__op *op; (op = ioq__op_iter_next(loop, &it)) != NULL;) {
            struct io_uring_sqe *sqe;
            if (!(op->be_u64 & IN_KERNEL))
                continue;
            if ((sqe = get_sqe(s)) != NULL) {
                io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
                io_uring_sqe_set_data64(sqe, UD_CANCEL);
            }
        }
        while (s->inflight) {
            struct io_uring_cqe *cqe;
            int rc = io_uring_submit_and_wait(&s->ring, 1);
            (void)cqe;
            if (rc < 0 && rc != -EINTR && rc != -ETIME)
                break;
            reap(loop, true);
        }
    }
    for (uint32_t i = 0; (h = ioq__handle_slot(loop, i)) != NULL; i++) {
        if (h->kind == IOQ__K_POOL)
            uring_pool_free(loop, h->pool);
    }
    io_uring_queue_exit(&s->ring);
    ioq__f_forget(loop);
    if (s->tfd >= 0)
        close(s->tfd);
    if (s->lfd >= 0)
        close(s->lfd);
    close(s->evfd);
    free(s);
    ioq__backend_data_set(loop, NULL);
}

const ioq__backend ioq__backend_uring = {
    .name = "io_uring",
    .id = IOQ_BACKEND_URING,
    .init = uring_init,
    .fini = uring_fini,
    .start = uring_start,
    .cancel = uring_cancel,
    .wait = uring_wait,
    .wake = uring_wake,
    .handle_open = uring_handle_open,
    .loop_fd = uring_loop_fd,
    .arm_timer = uring_arm_timer,
    .pool_new = uring_pool_new,
    .pool_free = uring_pool_free,
    .buf_release = uring_buf_release,
    .caps = uring_caps,
};
