/*
 * io_uring backend. Operations become SQEs whose user_data is the op; ioq_poll() flushes
 * them and waits in one io_uring_enter (submit_and_wait with an extended-argument timeout).
 *
 * Order on a stream: only the head of a handle's read queue and of its write queue is in
 * the kernel at a time, so sends never interleave (a short send is resubmitted before the
 * next one starts) and receives fill in submission order. Files and connects need no queue.
 *
 * Wake-ups: an eventfd watched by a multishot poll SQE; ioq_wake()/ioq_post() write it only
 * when the loop is (about to be) blocked. ioq_loop_fd() is another eventfd, registered with
 * the ring (io_uring_register_eventfd) so that the kernel signals it for every completion it
 * posts; the ring is rebuilt without DEFER_TASKRUN first, because with it completions are
 * posted only when the loop's thread enters the ring, which a host asleep in its own poll
 * never does (see uring_loop_fd). ioq_poll() reads the eventfd to re-arm it.
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
#include <stdatomic.h>
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
#define MOVE 4u      /* in the ring being left behind: issue again in the new one */
#define STARTED 8u   /* a connect the socket has begun: wait for it, do not connect again */
#define POLLED 16u   /* the SQE in the kernel is a poll for that connect's end */
#define HOLDS 32u    /* a multishot receive counted in its pool's ms_ops (pool_hold) */
#define NOMEM 64u    /* a multishot accept ending with IOQ_ENOMEM: the ring cannot grow */
#define POLL_WAIT 128u  /* recv_pool: a poll for data is in the kernel, not the receive */
#define AFTER_POLL 256u /* recv_pool: the poll said data is there */

typedef struct {
    struct io_uring ring;
    int evfd;
    int tfd;
    int lfd;          /* embedded mode: eventfd registered with the ring, see loop_fd */
    bool enabled;     /* set up with R_DISABLED: enabled by the first submitter thread */
    bool moving;      /* in move_ring() */
    uint64_t owner;   /* with SINGLE_ISSUER: the thread that enabled the ring (thread_id) */
    ioq_loop *loop;
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
    uint32_t avail;  /* buffers in the kernel's ring */
    uint32_t ms_ops; /* multishot receives on the pool, holding pool->count records */
} uring_pool;

static uring_state *st(ioq_loop *loop) { return ioq__backend_data(loop); }
static int ring_setup(uring_state *s, size_t first);
static int move_ring(ioq_loop *loop);

/* This thread's number, never reused (a pthread_t is: a thread created after another was
 * joined often gets the same one). */
static uint64_t thread_id(void)
{
    static atomic_uint_fast64_t next = 1;
    static _Thread_local uint64_t id;
    if (!id)
        id = atomic_fetch_add(&next, 1);
    return id;
}

/* Contract rule 6: a loop may change the thread that polls it between polls. The ring of
 * the common case is set up with DEFER_TASKRUN, which needs SINGLE_ISSUER: the kernel then
 * refuses every thread but the one that enabled it (EEXIST, from io_uring_enter and
 * io_uring_register alike), and has no call to hand a ring over. So the first time another
 * thread enters, the loop moves to a ring that any thread may enter (see move_ring). A
 * loop that stays on one thread pays a thread-local read per entry for this. */
static int own(uring_state *s)
{
    if (!s->deferred || !s->enabled || s->moving || s->owner == thread_id())
        return 0;
    return move_ring(s->loop);
}

static int enable(uring_state *s)
{
    int rc;
    if ((rc = own(s)) != 0)
        return rc;
    if (!s->enabled) {
        rc = io_uring_enable_rings(&s->ring);
        if (rc < 0)
            return ioq__os_errno_map(-rc);
        s->enabled = true;
        s->owner = thread_id();
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

/* A multishot receive into a pool: the kernel posts a record per buffer it fills, with no
 * chance for us to check for room first, and the completion ring must then take each one
 * (else records are lost or overwritten). At most pool->count of them can be outstanding
 * (each holds a buffer until the program releases it, after polling its record), so while
 * a pool has multishot receives that many records are promised to it. Without the memory
 * the receive ends with IOQ_ENOMEM before the kernel takes any data. */
static int pool_hold(ioq_loop *loop, ioq__op *op)
{
    uring_pool *up = op->pool->be;
    if ((op->be_u64 & HOLDS) || !up)
        return 0;
    if (up->ms_ops == 0 && !ioq__cq_hold(loop, op->pool->count))
        return IOQ_ENOMEM;
    up->ms_ops++;
    op->be_u64 |= HOLDS;
    return 0;
}

static void pool_unhold(ioq_loop *loop, ioq__op *op)
{
    uring_pool *up = op->pool->be;
    if (!(op->be_u64 & HOLDS))
        return;
    op->be_u64 &= ~(uint64_t)HOLDS;
    if (up && --up->ms_ops == 0)
        ioq__cq_unhold(loop, op->pool->count);
}

/* A host sleeping on the ring fd only learns of work that was submitted: an embedded loop
 * submits at once, unless its host flushes (IOQ_LOOP_HOST_FLUSH: uring_flush). */
static void submit_now(ioq_loop *loop, uring_state *s)
{
    if (ioq__loop_submit_now(loop) && enable(s) == 0)
        io_uring_submit(&s->ring);
}

/* sqe carries op now; bits: what else the op's state must say (POLL_WAIT, HOLDS ...). */
static void issued(ioq_loop *loop, ioq__op *op, struct io_uring_sqe *sqe, uint64_t bits)
{
    uring_state *s = st(loop);
    io_uring_sqe_set_data(sqe, op);
    op->be_u64 = IN_KERNEL | bits;
    s->inflight++;
    submit_now(loop, s);
}

/* Pipes, terminals and a child's wait descriptor: read and write, not the socket calls
 * (recv/send fail with ENOTSOCK on them). Writes go to an io-wq worker (IOSQE_ASYNC): a
 * write to a pipe without a reader raises SIGPIPE in the thread that runs it, and only a
 * worker (which blocks every signal) keeps it from the host. Multishot receives are
 * re-armed one read at a time. A shutdown, and a wait whose child has already ended,
 * finish here: IOQ__ORDER_NEXT. */
static int issue_pipe(ioq_loop *loop, ioq__op *op, struct io_uring_sqe *sqe, int fd,
                      uring_args *a)
{
    ioq__handle *h = op->h;
    int rc = 0;
    bool here = false; /* finished without the kernel, even when rc is 0 */
    int64_t res;
    uint64_t bits = op->be_u64 & HOLDS;
    switch (op->code) {
    case IOQ_OP_RECV:
        io_uring_prep_read(sqe, fd, op->buf, (unsigned)ioq__f_sqe_len(op, op->len), (uint64_t)-1);
        break;
    case IOQ_OP_RECV_POOL: {
        /* As for sockets (issue): with no buffer in the kernel's ring, or a pool the core
         * serves, wait for data first (pool_poll_done). */
        uring_pool *up = op->pool->be;
        if (!up || (up->avail == 0 && !(op->be_u64 & AFTER_POLL))) {
            io_uring_prep_poll_add(sqe, fd, POLLIN);
            bits |= POLL_WAIT;
            break;
        }
        bits |= op->be_u64 & AFTER_POLL;
        io_uring_prep_read(sqe, fd, NULL, op->pool->size, (uint64_t)-1);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = (uint16_t)op->pool->bgid;
        break;
    }
    case IOQ_OP_SEND:
    case IOQ_OP_SENDV:
        if (h->rstate & IOQ__R_SHUTWR) {
            rc = IOQ_EPIPE; /* behind a shutdown: completes with EPIPE, as on a socket */
            break;
        }
        if (op->code == IOQ_OP_SEND)
            io_uring_prep_write(sqe, fd, (char *)op->buf + op->done,
                                (unsigned)ioq__f_sqe_len(op, op->len - op->done), (uint64_t)-1);
        else {
            sendv_msg(op, a);
            io_uring_prep_writev(sqe, fd, a->iov, (unsigned)a->msg.msg_iovlen, (uint64_t)-1);
        }
        sqe->flags |= IOSQE_ASYNC;
        break;
    case IOQ_OP_SHUTDOWN:
        /* Done here: the SQE taken above was never prepared and must not be submitted as
         * it is (it would replay whatever that ring slot held last). */
        rc = ioq__px_pipe_shutdown(h);
        here = true;
        break;
    case IOQ_OP_PROCESS_WAIT:
        if ((rc = ioq__os_process_reap(h->obj, &res)) != 0)
            break;
        io_uring_prep_poll_add(sqe, fd, POLLIN);
        break;
    default:
        rc = IOQ_ENOTSUP;
        break;
    }
    if (rc == 0 && !here) {
        issued(loop, op, sqe, bits);
        return 0;
    }
    /* Finished without the kernel: the SQE taken above becomes a no-op nobody waits for. */
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, UD_CANCEL);
    if (op->code == IOQ_OP_PROCESS_WAIT && rc == 1) {
        ioq__order_complete(loop, op, res, 0, 0);
        return IOQ__ORDER_NEXT;
    }
    if ((op->code == IOQ_OP_SHUTDOWN && rc == 0) || rc == IOQ_EPIPE) {
        ioq__order_complete(loop, op, rc, op->done, 0);
        return IOQ__ORDER_NEXT;
    }
    return rc;
}

/* Put op into the kernel. Returns 0 or a negative IOQ_E* (nothing was queued). */
static int issue(ioq_loop *loop, ioq__op *op)
{
    uring_state *s = st(loop);
    struct io_uring_sqe *sqe;
    ioq__handle *h = op->h;
    int fd = h ? (int)h->fd : -1;
    uring_args *a = NULL;
    uint64_t extra = 0;

    if (op->code == IOQ_OP_CONNECT || op->code == IOQ_OP_SENDTO ||
        op->code == IOQ_OP_RECVFROM || op->code == IOQ_OP_SENDV ||
        op->code == IOQ_OP_LOCAL_CONNECT) {
        a = args_of(op, op->code == IOQ_OP_SENDV ? op->iovcnt : 1);
        if (!a)
            return IOQ_ENOMEM;
    }
    if (op->code == IOQ_OP_RECV_POOL && (op->flags & IOQ_MULTISHOT) && pool_hold(loop, op) != 0)
        return IOQ_ENOMEM;
    sqe = get_sqe(s);
    if (!sqe) {
        if (op->code == IOQ_OP_RECV_POOL)
            pool_unhold(loop, op);
        return IOQ_EBUSY;
    }
    fd = ioq__f_sqe_fd(op, fd);

    if (h && (IOQ__KIND_BIT(h->kind) & (IOQ__PIPE_KINDS | IOQ__KIND_BIT(IOQ__K_PROCESS))))
        return issue_pipe(loop, op, sqe, fd, a);
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
        if (op->be_u64 & STARTED) {
            /* Issued again after a move (its first request was cancelled with the old
             * ring, or with the thread that made it): the socket is still connecting, and
             * a second connect would only say EALREADY. Wait for the end instead. */
            io_uring_prep_poll_add(sqe, fd, POLLOUT);
            io_uring_sqe_set_data(sqe, op);
            op->be_u64 = IN_KERNEL | STARTED | POLLED | (op->be_u64 & HOLDS);
            s->inflight++;
            break;
        }
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
    case IOQ_OP_RECV_POOL: {
        /* The kernel fails a buffer-select receive at once when its ring is empty, before
         * any data. The contract wants the receive to wait for data and then take a
         * buffer (one released meanwhile serves it): with no buffer in the kernel, or a
         * pool without a kernel ring, wait for data with a poll first (pool_poll_done). */
        uring_pool *up = op->pool->be;
        if (!up || (up->avail == 0 && !(op->be_u64 & AFTER_POLL))) {
            io_uring_prep_poll_add(sqe, fd, POLLIN);
            extra = POLL_WAIT;
            break;
        }
        extra = op->be_u64 & AFTER_POLL;
        if ((op->flags & IOQ_MULTISHOT) && !s->emulate_multishot_recv)
            io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
        else
            io_uring_prep_recv(sqe, fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = (uint16_t)op->pool->bgid;
        break;
    }
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
    if (!(op->be_u64 & POLLED))
        issued(loop, op, sqe,
               extra | (op->be_u64 & HOLDS) |
                   (op->code == IOQ_OP_CONNECT || op->code == IOQ_OP_LOCAL_CONNECT ? STARTED : 0));
    else
        submit_now(loop, s);
    return 0;
}

static void pool_unhold(ioq_loop *loop, ioq__op *op);

static void finish(ioq_loop *loop, ioq__op *op, int64_t res, uint64_t value, uint16_t flags)
{
    /* A pool receive's final completion gives back the records it held, on every path
     * (the receive's own, the poll for data before it, an empty pool). */
    if (op->code == IOQ_OP_RECV_POOL && !(flags & IOQ_CQE_MORE))
        pool_unhold(loop, op);
    ioq__order_finish(loop, op, res, value, flags, issue);
}

/* --- backend entry points ------------------------------------------------------------------ */

/* An AF_UNIX connect never waits in the kernel: it succeeds or fails at once, EAGAIN when
 * the listener's backlog is full, which ends the connect as on every backend (ioq.h). A
 * connect SQE would instead park on a poll that nothing ends. So it is made here on a
 * non-blocking socket, and completes before ioq_local_connect returns. */
static int local_connect(ioq_loop *loop, ioq__op *op)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, rc, err = 0;
    if ((rc = ioq__px_unix_addr(op->path, &ss, &len)) != 0)
        return rc;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return ioq__os_errno_map(errno);
    do
        rc = connect(fd, (struct sockaddr *)&ss, len);
    while (rc < 0 && errno == EINTR);
    if (rc < 0)
        err = errno;
    /* Attached even when it failed: the op completes through its handle either way (and
     * handle_open makes the socket blocking, as every socket in the ring is). */
    if ((rc = ioq__handle_attach(loop, op->h, fd)) != 0) {
        close(fd);
        return rc;
    }
    ioq__connect_done(loop, op, err ? ioq__os_errno_map(err) : 0);
    return 0;
}

static int uring_start(ioq_loop *loop, ioq__op *op)
{
    ioq__handle *h = op->h;
    if (op->code == IOQ_OP_LOCAL_CONNECT)
        return local_connect(loop, op);
    if (op->code == IOQ_OP_CONNECT) {
        int fd, rc;
        /* Blocking socket: io_uring waits for the connect itself. */
        fd = socket(ioq__px_family(op->addr.family), SOCK_STREAM | SOCK_CLOEXEC, 0);
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
        submit_now(loop, s);
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
    up->avail++;
}

/* The socket of a recv_pool was reported readable and the pool has no buffer: look
 * without taking (as the readiness engine does), so that the data stays in the socket and
 * an end of stream or an error is told from data: IOQ_ENOBUFS only for data. */
static void pool_empty(ioq_loop *loop, ioq__op *op)
{
    char c;
    ssize_t n;
    int rc;
    if (IOQ__KIND_BIT(op->h->kind) & IOQ__PIPE_KINDS) {
        /* A pipe cannot be peeked: data is POLLIN, the end without data only POLLHUP. */
        struct pollfd p = {(int)op->h->fd, POLLIN, 0};
        if (poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
            finish(loop, op, (p.revents & POLLIN) ? IOQ_ENOBUFS : 0, 0, 0);
            return;
        }
        if ((rc = issue(loop, op)) != 0)
            finish(loop, op, rc, 0, 0);
        return;
    }
    do
        n = recv((int)op->h->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if ((rc = issue(loop, op)) != 0) /* nothing there after all: wait again */
            finish(loop, op, rc, 0, 0);
        return;
    }
    finish(loop, op, n < 0 ? ioq__os_errno_map(errno) : n == 0 ? 0 : IOQ_ENOBUFS, 0, 0);
}

/* A recv_pool's poll for data ended (POLL_WAIT): take a buffer now, as the readiness
 * backends do. A pool with a kernel ring: issue the receive if the ring has a buffer,
 * else see what is there (pool_empty). A pool without one (kernels without buffer rings):
 * take a buffer from the pool and receive into it here. */
static void pool_poll_done(ioq_loop *loop, ioq__op *op, int res)
{
    ioq__pool *pool = op->pool;
    ioq__handle *h = op->h;
    bool multi = op->flags & IOQ_MULTISHOT;
    uint32_t id;
    int rc;
    ssize_t n;

    if (res < 0) {
        finish(loop, op, map_res(op, res), 0, 0);
        return;
    }
    if (op->cancelled) {
        finish(loop, op, IOQ_ECANCELED, 0, 0);
        return;
    }
    if (pool->be) {
        if (((uring_pool *)pool->be)->avail == 0) {
            pool_empty(loop, op);
            return;
        }
        op->be_u64 |= AFTER_POLL;
        if ((rc = issue(loop, op)) != 0)
            finish(loop, op, rc, 0, 0);
        return;
    }
    if (multi && !ioq__cq_room(loop, 2)) {
        finish(loop, op, IOQ_ENOMEM, 0, 0);
        return;
    }
    if ((id = ioq__pool_take(pool)) == UINT32_MAX) {
        pool_empty(loop, op);
        return;
    }
    do
        n = (IOQ__KIND_BIT(h->kind) & IOQ__PIPE_KINDS)
                ? read((int)h->fd, ioq__pool_buf(pool, id), pool->size) /* readable: no wait */
                : recv((int)h->fd, ioq__pool_buf(pool, id), pool->size, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        int e = n < 0 ? errno : 0;
        ioq__pool_put(pool, id);
        if (n < 0 && (e == EAGAIN || e == EWOULDBLOCK)) {
            if ((rc = issue(loop, op)) != 0) /* nothing after all: wait again */
                finish(loop, op, rc, 0, 0);
            return;
        }
        finish(loop, op, n == 0 ? 0 : ioq__os_errno_map(e), 0, 0);
        return;
    }
    rc = multi ? issue(loop, op) : 1;
    finish(loop, op, n, id, (uint16_t)(IOQ_CQE_BUFFER | (rc == 0 ? IOQ_CQE_MORE : 0)));
}

static void on_cqe(ioq_loop *loop, ioq__op *op, int res, uint32_t cflags)
{
    uring_state *s = st(loop);
    bool more = cflags & IORING_CQE_F_MORE;
    bool multi = op->flags & IOQ_MULTISHOT;
    bool polled = (op->be_u64 & POLLED) != 0;
    ioq__handle *h = op->h;

    if (!more) {
        op->be_u64 &= ~(uint64_t)(IN_KERNEL | POLLED);
        s->inflight--;
        /* Cancelled though nobody asked: the kernel cancels the requests of a thread that
         * exits, and the loop has moved to another thread since it submitted this one
         * (contract rule 6). Issue it again from here. */
        if (res == -ECANCELED && !op->cancelled && !(op->be_u64 & CANCEL_SENT) &&
            issue(loop, op) == 0)
            return;
    }
    switch (op->code) {
    case IOQ_OP_ACCEPT: {
        ioq__handle *c;
        int rc;
        if (res < 0) {
            if (more)
                return; /* a failed connection inside a live multishot: skip it */
            finish(loop, op, (op->be_u64 & NOMEM) ? IOQ_ENOMEM : map_res(op, res), 0, 0);
            return;
        }
        if ((rc = ioq__accepted(loop, h, res, &c)) != 0) {
            if (!more)
                finish(loop, op, (op->be_u64 & NOMEM) ? IOQ_ENOMEM : rc, 0, 0);
            return;
        }
        if (multi && !(op->be_u64 & NOMEM) && !ioq__cq_room(loop, 2)) {
            /* The completion ring cannot grow for the records of this multishot: end it
             * with IOQ_ENOMEM, as the readiness engine does. The kernel may still post a
             * few connections before the cancel lands. */
            op->be_u64 |= NOMEM;
            if (more)
                uring_cancel(loop, op);
        }
        if (op->be_u64 & NOMEM) {
            if (ioq__cq_room(loop, 1))
                finish(loop, op, 0, ioq__handle_value(loop, c), IOQ_CQE_MORE);
            else
                ioq__handle_destroy(loop, c); /* no record for it: the peer sees a close */
            if (!more)
                finish(loop, op, IOQ_ENOMEM, 0, 0);
            return;
        }
        if (multi && !more && !op->cancelled && issue(loop, op) == 0)
            more = true; /* the kernel ended the multishot (or emulating it): go on */
        finish(loop, op, 0, ioq__handle_value(loop, c), more ? IOQ_CQE_MORE : 0);
        return;
    }
    case IOQ_OP_CONNECT:
    case IOQ_OP_LOCAL_CONNECT:
        if (polled && res >= 0) {
            /* The poll of a connect issued again: the socket says how it ended. */
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt((int)h->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                err = errno;
            res = -err;
        }
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
        if (op->be_u64 & POLL_WAIT) {
            op->be_u64 &= ~(uint64_t)POLL_WAIT;
            pool_poll_done(loop, op, res);
            return;
        }
        if (res == -ENOBUFS && !more && !(op->be_u64 & AFTER_POLL) && !op->cancelled) {
            /* The kernel's ring ran dry, maybe before any data: wait for data, then see
             * whether a buffer has come back meanwhile (pool_poll_done). */
            int rc = issue(loop, op);
            if (rc != 0)
                finish(loop, op, rc, 0, 0);
            return;
        }
        op->be_u64 &= ~(uint64_t)AFTER_POLL;
        if (cflags & IORING_CQE_F_BUFFER) {
            uint32_t bid = cflags >> IORING_CQE_BUFFER_SHIFT;
            ((uring_pool *)pool->be)->avail--;
            if (res > 0) {
                pool->held[bid] = 1;
                if (multi && !more && !op->cancelled && issue(loop, op) == 0)
                    more = true;
                if (!more)
                    pool_unhold(loop, op);
                finish(loop, op, res, bid,
                       (uint16_t)(IOQ_CQE_BUFFER | (more ? IOQ_CQE_MORE : 0)));
                return;
            }
            recycle_buf(pool, bid);
        }
        if (more)
            return;
        pool_unhold(loop, op);
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
    case IOQ_OP_PROCESS_WAIT: {
        /* The wait descriptor polled readable: the child has ended. */
        int64_t status = 0;
        int rc;
        if (res < 0) {
            finish(loop, op, map_res(op, res), 0, 0);
            return;
        }
        rc = ioq__os_process_reap(h->obj, &status);
        if (rc == 0 && !op->cancelled) {
            if ((rc = issue(loop, op)) == 0 || rc == IOQ__ORDER_NEXT)
                return; /* polled again, or finished by the reap in issue */
        }
        finish(loop, op, rc == 1 ? status : rc == 0 ? IOQ_ECANCELED : rc, 0, 0);
        return;
    }
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

/* A pool's buffer ring in a new ring: the same memory, every buffer the program does not
 * hold offered again (the new ring's head starts at 0). */
static int pool_register_again(uring_state *s, ioq__pool *pool)
{
    uring_pool *up = pool->be;
    struct io_uring_buf_reg reg;
    int n = 0, rc;
    io_uring_buf_ring_init(up->br);
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)up->br;
    reg.ring_entries = up->entries;
    reg.bgid = (uint16_t)pool->bgid;
    if ((rc = io_uring_register_buf_ring(&s->ring, &reg, 0)) < 0)
        return rc;
    for (uint32_t i = 0; i < pool->count; i++)
        if (!pool->held[i])
            io_uring_buf_ring_add(up->br, ioq__pool_buf(pool, i), pool->size,
                                  (unsigned short)i, io_uring_buf_ring_mask(up->entries), n++);
    io_uring_buf_ring_advance(up->br, n);
    up->avail = (uint32_t)n;
    return 0;
}

/* The loop has moved to another thread (own) and its ring refuses that thread: move
 * everything to a ring without SINGLE_ISSUER (the kernel's second choice of ring_setup),
 * which any thread may enter, and keep it from then on. Completions already posted are
 * taken from the old ring's memory first (no system call needed); closing the old ring
 * makes the kernel cancel what it still held there, which the thread that left (or its
 * exit) had already done for requests it owned: cancelled requests moved no data. Each
 * op that was in the old ring, submitted or not, is issued again in the new one (a
 * connect waits for its socket instead of connecting again); an op whose cancellation was
 * asked for completes with IOQ_ECANCELED. */
static int move_ring(ioq_loop *loop)
{
    uring_state *s = st(loop);
    struct io_uring old;
    ioq__op_iter it = {0, 0};
    ioq__handle *h;
    int rc;

    s->moving = true;
    reap(loop, false);
    old = s->ring;
    if ((rc = ring_setup(s, 1)) < 0) {
        s->ring = old;
        s->deferred = true;
        s->enabled = true;
        s->moving = false;
        return ioq__os_errno_map(-rc);
    }
    io_uring_queue_exit(&old);
    for (uint32_t i = 0; (h = ioq__handle_slot(loop, i)) != NULL; i++) {
        if (h->kind == IOQ__K_POOL && h->pool->be && pool_register_again(s, h->pool) < 0) {
            /* Without its buffers the pool cannot serve a receive: its receives end with
             * IOQ_ENOBUFS rather than hang. */
            if (((uring_pool *)h->pool->be)->ms_ops)
                ioq__cq_unhold(loop, h->pool->count);
            munmap(((uring_pool *)h->pool->be)->br, ((uring_pool *)h->pool->be)->bytes);
            free(h->pool->be);
            h->pool->be = NULL;
            s->npools--;
        }
    }
    arm_poll(s, s->evfd, UD_WAKE);
    if (s->timer_armed)
        arm_poll(s, s->tfd, UD_TIMER);
    /* Mark first, then issue: completing an op may issue the next one of its queue. */
    s->inflight = 0;
    for (ioq__op *op; (op = ioq__op_iter_next(loop, &it)) != NULL;)
        if (op->be_u64 & IN_KERNEL)
            op->be_u64 = MOVE | (op->be_u64 & (STARTED | HOLDS | NOMEM));
    it = (ioq__op_iter){0, 0};
    for (ioq__op *op; (op = ioq__op_iter_next(loop, &it)) != NULL;) {
        bool cancel, dropped;
        if (!(op->be_u64 & MOVE))
            continue;
        /* A pool that lost its kernel ring in the move (not one that never had one: the
         * core serves those) cannot serve the receive. */
        dropped = op->code == IOQ_OP_RECV_POOL && !op->pool->be &&
                  (s->caps & IOQ_CAP_PROVIDED_BUFFERS);
        cancel = op->cancelled || (op->be_u64 & NOMEM) || dropped;
        op->be_u64 &= STARTED | HOLDS | NOMEM;
        if (!cancel && issue(loop, op) == 0)
            continue;
        /* As if the kernel had answered: on_cqe finishes it the usual way. */
        /* AFTER_POLL: an IOQ_ENOBUFS here ends the receive, it does not wait again. */
        op->be_u64 |= IN_KERNEL | (dropped ? AFTER_POLL : 0);
        s->inflight++;
        on_cqe(loop, op, op->cancelled ? -ECANCELED : dropped ? -ENOBUFS : -ENOMEM, 0);
    }
    s->moving = false;
    return 0;
}

static int uring_wait(ioq_loop *loop, int64_t timeout_ns)
{
    uring_state *s = st(loop);
    int rc, err = 0;

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
            err = io_uring_submit_and_get_events(&s->ring);
    } else if (!io_uring_cq_ready(&s->ring)) {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts, *tsp = NULL;
        if (timeout_ns > 0) {
            ts.tv_sec = timeout_ns / 1000000000;
            ts.tv_nsec = timeout_ns % 1000000000;
            tsp = &ts;
        }
        err = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, tsp, NULL);
    } else if (io_uring_sq_ready(&s->ring)) {
        err = io_uring_submit(&s->ring);
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
    /* -ETIME and -EINTR are ordinary (the caller loops), and so is -EBUSY (the kernel's
     * CQ overflowed: reaping made room) and -EAGAIN. Anything else would fail again at
     * once: report it instead of letting ioq_poll spin on it. */
    if (err < 0 && err != -ETIME && err != -EINTR && err != -EBUSY && err != -EAGAIN && rc == 0)
        return ioq__os_errno_map(-err);
    return rc;
}

/* ioq_submit of an embedded HOST_FLUSH loop: one io_uring_enter for the host's turn, and
 * none when nothing is queued. Completions stay in the kernel's queue for the next
 * ioq_poll; the registered eventfd tells the host of them. */
static void uring_flush(ioq_loop *loop)
{
    uring_state *s = st(loop);
    if (io_uring_sq_ready(&s->ring) && enable(s) == 0)
        io_uring_submit(&s->ring);
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
        return 0; /* no buffer rings (before 5.19): the pool is the core's, see issue() */
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
    if ((rc = own(s)) != 0) {
        munmap(up->br, up->bytes);
        free(up);
        return rc;
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
    up->avail = pool->count;
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
    own(st(loop));
    io_uring_unregister_buf_ring(&st(loop)->ring, (int)pool->bgid);
    st(loop)->npools--;
    munmap(up->br, up->bytes);
    free(up);
    pool->be = NULL;
}

static void uring_buf_release(ioq_loop *loop, ioq__pool *pool, uint32_t id)
{
    (void)loop;
    if (pool->be)
        recycle_buf(pool, id);
    else
        ioq__pool_put(pool, id);
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
    /* Not io_uring_get_probe_ring(): its NULL does not tell an allocation that failed
     * (IOQ_ENOMEM, the caller must not fall back to another backend) from a kernel
     * without the probe (5.6+; older ones lack operations we need anyway). */
    size_t size = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
    struct io_uring_probe *p = calloc(1, size);
    int rc;
    if (!p)
        return IOQ_ENOMEM;
    if ((rc = io_uring_register_probe(&s->ring, p, 256)) < 0) {
        free(p);
        return rc == -ENOMEM ? IOQ_ENOMEM : IOQ_ENOSYS;
    }
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++) {
        if (!io_uring_opcode_supported(p, needed[i])) {
            free(p);
            return IOQ_ENOSYS;
        }
    }
    s->caps = IOQ_CAP_NATIVE_FILES | IOQ_CAP_LOOP_FD | IOQ_CAP_BATCHED_SUBMIT;
    /* IORING_OP_SOCKET came with multishot accept (5.19), SEND_ZC with multishot recv (6.0). */
    if (io_uring_opcode_supported(p, IORING_OP_SOCKET))
        s->caps |= IOQ_CAP_MULTISHOT_ACCEPT;
    if (io_uring_opcode_supported(p, IORING_OP_SEND_ZC))
        s->caps |= IOQ_CAP_MULTISHOT_RECV | IOQ_CAP_ZEROCOPY_SEND;
    free(p);
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
    s->loop = loop;
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
    if (!ioq__test_pools_emulated()) {
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
        /* Reap first: CQEs the fault layer held back count as in flight but will never
         * come from the kernel again, so waiting for them would never end. */
        while (reap(loop, true), s->inflight) {
            int rc = io_uring_submit_and_wait(&s->ring, 1);
            if (rc < 0 && rc != -EINTR && rc != -ETIME)
                break;
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
    .flush = uring_flush,
    .loop_fd = uring_loop_fd,
    .arm_timer = uring_arm_timer,
    .pool_new = uring_pool_new,
    .pool_free = uring_pool_free,
    .buf_release = uring_buf_release,
    .caps = uring_caps,
};
