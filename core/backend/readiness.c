/*
 * Readiness engine for epoll and kqueue (see readiness.h).
 *
 * Each handle keeps a read queue (accept, recv, recv_pool, recvfrom) and a write queue
 * (connect, send, sendv, sendto, shutdown), run by the stream-order module (order.c) that
 * the completion backends use too. Only the head of a queue is ever tried, which is what
 * keeps a stream's sends in order and never interleaved, and its receives filled in order. With edge-triggered notification a handle's READABLE/WRITABLE bit is cleared when
 * the kernel says EAGAIN, so an operation submitted while the bit is set is tried at once and
 * one that finds nothing waits for the next edge: no wasted system call either way.
 * A stream receive that fills less than its buffer also clears READABLE: a stream socket
 * returns less than asked only when its queue is empty, and every segment that arrives
 * afterwards raises a new edge (epoll's EPOLLET and kqueue's EV_CLEAR both fire per
 * arrival). That saves the receive that would only say EAGAIN, one system call per message
 * of a request/response protocol (nginx relies on the same). Not once the kernel has
 * reported the peer's FIN or an error (IOQ__R_EOF): the data before it comes out short, and
 * the end of stream behind it raises no further edge.
 */
#include "readiness.h"
#include "fault.h"
#include "posix.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* An attempt: DONE (completed, try the next op), AGAIN (nothing there: wait for an edge),
 * STOP (the handle is gone), DRAINED (completed, and the socket is now empty). An attempt
 * completes the head of its queue through ioq__order_complete; try_read and try_write turn
 * its outcome into what the stream-order module expects of an issue function. */
enum { DONE, AGAIN, STOP, DRAINED };

/* A short receive on h leaves its socket empty with a new edge to come (see the top). */
static bool short_read_drains(const ioq__handle *h)
{
    return (h->kind == IOQ__K_TCP || h->kind == IOQ__K_LOCAL) && !(h->rstate & IOQ__R_EOF);
}

/* Pipes and terminals are read and written with read/write (recv and send are for sockets):
 * without the fault layer, which speaks sockets, and never with SIGPIPE (ioq__px_write). */
static bool is_pipe(const ioq__handle *h)
{
    return (IOQ__KIND_BIT(h->kind) & IOQ__PIPE_KINDS) != 0;
}

static ssize_t stream_read(ioq_loop *loop, ioq__handle *h, void *buf, size_t len)
{
    (void)loop; /* used by the fault layer only */
    if (is_pipe(h))
        return read((int)h->fd, buf, len);
    return ioq__f_recv(loop, h, (int)h->fd, buf, len, 0);
}

/* --- reads ------------------------------------------------------------------------------- */

static int do_accept(ioq_loop *loop, ioq__handle *h, ioq__op *op)
{
    bool multi = op->flags & IOQ_MULTISHOT;
    ioq__handle *c;
    int fd, rc;

    if (multi && !ioq__cq_room(loop, 2)) {
        ioq__order_complete(loop, op, IOQ_ENOMEM, 0, 0);
        return DONE;
    }
    fd = ioq__f_accept(loop, h, (int)h->fd);
    if (fd < 0) {
        int e = -fd;
        if (e == EAGAIN || e == EWOULDBLOCK)
            return AGAIN;
        if (e == EINTR || e == ECONNABORTED || e == EPROTO)
            return DONE; /* that connection is gone; try the next */
        /* EMFILE and friends: the connection stays in the backlog and the READABLE bit
         * stays set, so the next accept tries again at once. */
        ioq__order_complete(loop, op, ioq__os_errno_map(e), 0, 0);
        return DONE;
    }
    if ((rc = ioq__accepted(loop, h, fd, &c)) != 0) {
        ioq__order_complete(loop, op, rc, 0, 0);
        return DONE;
    }
    ioq__order_complete(loop, op, 0, ioq__handle_value(loop, c), multi ? IOQ_CQE_MORE : 0);
    return DONE;
}

static int do_recv(ioq_loop *loop, ioq__handle *h, ioq__op *op)
{
    ssize_t n;
    do
        n = stream_read(loop, h, op->buf, op->len);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return AGAIN;
        ioq__order_complete(loop, op, ioq__os_errno_map(errno), 0, 0);
        return DONE;
    }
    {
        bool drained = n > 0 && (size_t)n < op->len && short_read_drains(h);
        ioq__order_complete(loop, op, n, 0, 0);
        return drained ? DRAINED : DONE;
    }
}

/* The receives waiting at the head of a datagram socket's queue, filled by one system call
 * (recvmmsg). Taking fewer datagrams than there were receives means the socket is empty, and
 * each datagram that arrives later raises a new edge: as for a short stream read, no
 * receive is spent on EAGAIN (unless an error was reported, which comes after the data). */
static int do_recvfrom(ioq_loop *loop, ioq__handle *h)
{
    struct sockaddr_storage ss[IOQ__PX_BATCH];
    struct iovec iov[IOQ__PX_BATCH];
    struct msghdr msg[IOQ__PX_BATCH];
    size_t got[IOQ__PX_BATCH];
    ioq__op *op = h->readq.head;
    unsigned n = 0;
    int k;
    bool drained;

    for (ioq__op *o = op; o && o->code == IOQ_OP_RECVFROM && n < IOQ__PX_BATCH; o = o->qnext) {
        iov[n].iov_base = o->buf;
        iov[n].iov_len = o->len;
        memset(&msg[n], 0, sizeof msg[n]);
        msg[n].msg_name = &ss[n];
        msg[n].msg_namelen = sizeof ss[n];
        msg[n].msg_iov = &iov[n];
        msg[n].msg_iovlen = 1;
        n++;
    }
    k = ioq__f_recv_batch(loop, h, (int)h->fd, msg, got, n);
    if (k < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK)
            return AGAIN;
        if (e == EINTR)
            return DONE; /* try again */
        ioq__order_complete(loop, op, ioq__os_errno_map(e), 0, 0);
        return DONE;
    }
    drained = (unsigned)k < n && !(h->rstate & IOQ__R_EOF);
    for (int i = 0; i < k; i++) {
        op = h->readq.head;
        if (op->addr_out)
            ioq__from_sockaddr((struct sockaddr *)&ss[i], op->addr_out);
        ioq__order_complete(loop, op, (int64_t)got[i], 0, 0);
    }
    return drained ? DRAINED : DONE;
}

static int do_recv_pool(ioq_loop *loop, ioq__handle *h, ioq__op *op)
{
    bool multi = op->flags & IOQ_MULTISHOT;
    uint32_t id;
    ssize_t n;

    if (multi && !ioq__cq_room(loop, 2)) {
        ioq__order_complete(loop, op, IOQ_ENOMEM, 0, 0);
        return DONE;
    }
    id = ioq__pool_take(op->pool);
    if (id == UINT32_MAX) {
        /* No buffer: look without taking, so that the data stays in the socket and a bare
         * edge without data is not reported as an error. */
        char c;
        if (is_pipe(h)) {
            int r = ioq__px_pipe_peek((int)h->fd);
            if (r < 0)
                return AGAIN;
            ioq__order_complete(loop, op, r ? IOQ_ENOBUFS : 0, 0, 0);
            return DONE;
        }
        do
            n = ioq__f_recv(loop, h, (int)h->fd, &c, 1, MSG_PEEK);
        while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return AGAIN;
        if (n < 0)
            ioq__order_complete(loop, op, ioq__os_errno_map(errno), 0, 0);
        else if (n == 0)
            ioq__order_complete(loop, op, 0, 0, 0);
        else
            ioq__order_complete(loop, op, IOQ_ENOBUFS, 0, 0);
        return DONE;
    }
    do
        n = stream_read(loop, h, ioq__pool_buf(op->pool, id), op->pool->size);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        int e = errno;
        ioq__pool_put(op->pool, id);
        if (n < 0 && (e == EAGAIN || e == EWOULDBLOCK))
            return AGAIN;
        ioq__order_complete(loop, op, n < 0 ? ioq__os_errno_map(e) : 0, 0, 0);
        return DONE;
    }
    {
        bool drained = (size_t)n < op->pool->size && short_read_drains(h);
        ioq__order_complete(loop, op, n, id,
                            (uint16_t)(IOQ_CQE_BUFFER | (multi ? IOQ_CQE_MORE : 0)));
        return drained ? DRAINED : DONE;
    }
}

/* A child's wait descriptor was readable (or is tried at submission): reap it. */
static int do_process_wait(ioq_loop *loop, ioq__handle *h, ioq__op *op)
{
    int64_t res;
    int rc = ioq__os_process_reap(h->obj, &res);
    if (rc == 0)
        return AGAIN;
    ioq__order_complete(loop, op, rc < 0 ? rc : res, 0, 0);
    return DONE;
}

/* The head of h's read queue (an ioq__issue_fn): tried while the socket may have data. */
static int try_read(ioq_loop *loop, ioq__op *op)
{
    ioq__handle *h = op->h;
    int r;
    if (!(h->rstate & IOQ__R_READABLE))
        return IOQ__ORDER_WAIT;
    switch (op->code) {
    case IOQ_OP_ACCEPT: r = do_accept(loop, h, op); break;
    case IOQ_OP_RECV: r = do_recv(loop, h, op); break;
    case IOQ_OP_RECV_POOL: r = do_recv_pool(loop, h, op); break;
    case IOQ_OP_PROCESS_WAIT: r = do_process_wait(loop, h, op); break;
    default: r = do_recvfrom(loop, h); break;
    }
    if (r == AGAIN || r == DRAINED) {
        h->rstate &= (uint16_t)~IOQ__R_READABLE;
        return IOQ__ORDER_WAIT;
    }
    return IOQ__ORDER_NEXT;
}

/* ioq__order_run(loop, &h->readq, try_read), with try_read called directly (an edge per
 * message reaches it): the same loop, as try_read never refuses an op. */
static void run_reads(ioq_loop *loop, ioq__handle *h)
{
    ioq__op *op;
    while ((op = h->readq.head) != NULL && try_read(loop, op) != IOQ__ORDER_WAIT)
        ;
}

/* --- writes ------------------------------------------------------------------------------- */

/* A connect waits in its socket's write queue, where no other op can be. */
static void connect_end(ioq_loop *loop, ioq__handle *h, ioq__op *op, int err)
{
    ioq__opq_remove(&h->writeq, op);
    if (!err)
        h->rstate |= IOQ__R_READABLE | IOQ__R_WRITABLE;
    ioq__connect_done(loop, op, err ? ioq__os_errno_map(err) : 0);
}

static int do_connect_done(ioq_loop *loop, ioq__handle *h, ioq__op *op)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt((int)h->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == EINPROGRESS || err == EALREADY)
        return AGAIN;
    connect_end(loop, h, op, err);
    return err ? STOP : DONE; /* a failed connect destroyed h */
}

static int send_error(ioq_loop *loop, ioq__op *op, int e)
{
    if (e == EAGAIN || e == EWOULDBLOCK)
        return AGAIN;
    ioq__order_complete(loop, op, ioq__os_errno_map(e), op->done, 0);
    return DONE;
}

/* A send or sendv on a pipe or terminal. */
static int do_pipe_write(ioq_loop *loop, ioq__handle *h, ioq__op *op)
{
    enum { BATCH = 64 };
    struct iovec v[BATCH];
    if (h->rstate & IOQ__R_SHUTWR) {
        ioq__order_complete(loop, op, IOQ_EPIPE, op->done, 0);
        return DONE;
    }
    while (op->done < op->len) {
        uint32_t cnt = 0, pos = op->iovpos;
        ssize_t n;
        if (op->code == IOQ_OP_SENDV) {
            while (cnt < BATCH && ioq__sendv_piece(op, &pos, &v[cnt].iov_base, &v[cnt].iov_len))
                cnt++;
        } else {
            v[0].iov_base = (char *)op->buf + op->done;
            v[0].iov_len = op->len - op->done;
            cnt = 1;
        }
        n = ioq__px_write((int)h->fd, v, (int)cnt);
        if (n < 0)
            return send_error(loop, op, errno);
        ioq__op_moved(op, (size_t)n);
    }
    ioq__order_complete(loop, op, (int64_t)op->done, 0, 0);
    return DONE;
}

static int do_send(ioq_loop *loop, ioq__handle *h, ioq__op *op)
{
    if (is_pipe(h))
        return do_pipe_write(loop, h, op);
    while (op->done < op->len) {
        ssize_t n = ioq__f_send(loop, h, (int)h->fd, (char *)op->buf + op->done,
                                op->len - op->done, IOQ__SEND_FLAGS);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return send_error(loop, op, errno);
        }
        op->done += (size_t)n;
        if (h->kind == IOQ__K_UDP)
            break; /* one datagram, whole or not at all */
    }
    ioq__order_complete(loop, op, (int64_t)op->done, 0, 0);
    return DONE;
}

static int do_sendv(ioq_loop *loop, ioq__handle *h, ioq__op *op)
{
    enum { BATCH = 64 };
    struct iovec v[BATCH];
    if (is_pipe(h))
        return do_pipe_write(loop, h, op);
    while (op->done < op->len) {
        struct msghdr msg;
        uint32_t cnt = 0, pos = op->iovpos;
        ssize_t n;

        while (cnt < BATCH && ioq__sendv_piece(op, &pos, &v[cnt].iov_base, &v[cnt].iov_len))
            cnt++;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = v;
        msg.msg_iovlen = cnt;
        n = ioq__f_sendmsg(loop, h, (int)h->fd, &msg, IOQ__SEND_FLAGS);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return send_error(loop, op, errno);
        }
        ioq__op_moved(op, (size_t)n);
        if (h->kind == IOQ__K_UDP)
            break;
    }
    ioq__order_complete(loop, op, (int64_t)op->done, 0, 0);
    return DONE;
}

static int do_sendto(ioq_loop *loop, ioq__handle *h, ioq__op *op)
{
    struct sockaddr_storage ss;
    socklen_t slen;
    ssize_t n;
    ioq__to_sockaddr(&op->addr, &ss, &slen);
    do
        n = ioq__f_sendto(loop, h, (int)h->fd, op->buf, op->len, IOQ__SEND_FLAGS,
                           (struct sockaddr *)&ss, slen);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return send_error(loop, op, errno);
    ioq__order_complete(loop, op, n, 0, 0);
    return DONE;
}

static int do_shutdown(ioq_loop *loop, ioq__handle *h, ioq__op *op)
{
    int rc = is_pipe(h)                               ? ioq__px_pipe_shutdown(h)
             : shutdown((int)h->fd, SHUT_WR) < 0 ? ioq__os_errno_map(errno)
                                                 : 0;
    ioq__order_complete(loop, op, rc, 0, 0);
    return DONE;
}

/* The head of h's write queue (an ioq__issue_fn): tried while the socket may take data. A
 * shutdown needs no room: it goes as soon as it is the head. */
static int try_write(ioq_loop *loop, ioq__op *op)
{
    ioq__handle *h = op->h;
    int r;
    if (!(h->rstate & IOQ__R_WRITABLE) && op->code != IOQ_OP_SHUTDOWN)
        return IOQ__ORDER_WAIT;
    switch (op->code) {
    case IOQ_OP_CONNECT:
    case IOQ_OP_LOCAL_CONNECT: r = do_connect_done(loop, h, op); break;
    case IOQ_OP_SEND: r = do_send(loop, h, op); break;
    case IOQ_OP_SENDV: r = do_sendv(loop, h, op); break;
    case IOQ_OP_SENDTO: r = do_sendto(loop, h, op); break;
    default: r = do_shutdown(loop, h, op); break;
    }
    if (r == STOP)
        return IOQ__ORDER_WAIT; /* the handle is gone */
    if (r == AGAIN) {
        h->rstate &= (uint16_t)~IOQ__R_WRITABLE;
        return IOQ__ORDER_WAIT;
    }
    return IOQ__ORDER_NEXT;
}

/* --- entry points ---------------------------------------------------------------------------- */

static int start_connect(ioq_loop *loop, ioq__op *op)
{
    ioq__handle *h = op->h;
    struct sockaddr_storage ss;
    socklen_t slen;
    int fd, rc, domain;

    if (op->code == IOQ_OP_CONNECT) {
        ioq__to_sockaddr(&op->addr, &ss, &slen);
        domain = ioq__px_family(op->addr.family);
    } else {
        if ((rc = ioq__px_unix_addr(op->path, &ss, &slen)) != 0)
            return rc;
        domain = AF_UNIX;
    }
    fd = ioq__px_socket(domain, SOCK_STREAM);
    if (fd < 0)
        return fd;
    if ((rc = ioq__handle_attach(loop, h, fd)) != 0) {
        close(fd);
        return rc;
    }
    h->rstate &= (uint16_t)~(IOQ__R_READABLE | IOQ__R_WRITABLE);
    ioq__opq_push(&h->writeq, op);
    do
        rc = connect(fd, (struct sockaddr *)&ss, slen);
    while (rc < 0 && errno == EINTR);
    /* AF_UNIX says EAGAIN when the listener's backlog is full: that is an error too. */
    if (rc == 0 || errno != EINPROGRESS)
        connect_end(loop, h, op, rc == 0 ? 0 : errno);
    return 0;
}

/* A receive or send on a stream socket, tried in its submit call before any op exists (the
 * backend table's `now` slot): when nothing waits ahead of it in its queue and the socket is
 * believed ready, most of them finish right here, and an op's bookkeeping (slab, token
 * index, handle list, queue) would be spent for nothing. The same system calls as
 * do_recv and do_send, with the same effect on the READABLE and WRITABLE bits. */
int ioq__rd_now(ioq_loop *loop, ioq__handle *h, uint16_t code, void *buf, size_t len,
                int64_t *res, size_t *done)
{
    ssize_t n;

    (void)loop; /* used by the fault layer only */
    *done = 0;
    if (h->kind != IOQ__K_TCP && h->kind != IOQ__K_LOCAL)
        return 0;
    if (code == IOQ_OP_RECV) {
        if (h->readq.head || !(h->rstate & IOQ__R_READABLE))
            return 0;
        do
            n = ioq__f_recv(loop, h, (int)h->fd, buf, len, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                h->rstate &= (uint16_t)~IOQ__R_READABLE;
                return 0;
            }
            *res = ioq__os_errno_map(errno);
            return 1;
        }
        if (n > 0 && (size_t)n < len && !(h->rstate & IOQ__R_EOF))
            h->rstate &= (uint16_t)~IOQ__R_READABLE; /* a short read drains: see the top */
        *res = n;
        return 1;
    }
    if (code != IOQ_OP_SEND || h->writeq.head || !(h->rstate & IOQ__R_WRITABLE))
        return 0;
    while (*done < len) {
        n = ioq__f_send(loop, h, (int)h->fd, (char *)buf + *done, len - *done,
                        IOQ__SEND_FLAGS);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* The rest goes as an op that waits for the next edge. */
                h->rstate &= (uint16_t)~IOQ__R_WRITABLE;
                return 0;
            }
            *res = ioq__os_errno_map(errno);
            return 1;
        }
        *done += (size_t)n;
    }
    *res = (int64_t)*done;
    return 1;
}

int ioq__rd_start(ioq_loop *loop, ioq__op *op)
{
    ioq__handle *h = op->h;
    switch (op->code) {
    case IOQ_OP_OPEN:
        return ioq__tp_submit(loop, op, ioq__os_file_work);
    case IOQ_OP_READ:
    case IOQ_OP_WRITE:
    case IOQ_OP_FSYNC:
        op->res_fd = h->fd;
        return ioq__tp_submit(loop, op, ioq__os_file_work);
    case IOQ_OP_CONNECT:
    case IOQ_OP_LOCAL_CONNECT:
        return start_connect(loop, op);
    case IOQ_OP_WATCH:
        return IOQ_ENOTSUP; /* a backend that watches takes these before the engine */
    default:
        break;
    }
    return ioq__order_start(loop, op, ioq__order_queue(op) == &h->readq ? try_read : try_write);
}

void ioq__rd_cancel(ioq_loop *loop, ioq__op *op)
{
    if (op->code == IOQ_OP_CONNECT || op->code == IOQ_OP_LOCAL_CONNECT) {
        /* A connect waits for writability in its socket's write queue, here only. */
        ioq__opq_remove(&op->h->writeq, op);
        ioq__complete(loop, op, IOQ_ECANCELED, 0, 0);
        return;
    }
    ioq__order_cancel_queued(loop, op);
}

void ioq__rd_event(ioq_loop *loop, ioq__handle *h, unsigned bits)
{
    /* Writes first: a connect that completes must not be destroyed under a read. */
    if (bits & IOQ__R_WRITABLE) {
        h->rstate |= IOQ__R_WRITABLE;
        if (h->writeq.head) {
            bool connecting = h->kind == IOQ__K_CONNECTING;
            ioq__order_run(loop, &h->writeq, try_write);
            if (connecting && h->kind != IOQ__K_TCP && h->kind != IOQ__K_LOCAL)
                return; /* the connect failed and the handle is gone */
        }
    }
    if (bits & IOQ__R_READABLE) {
        h->rstate |= (uint16_t)(bits & (IOQ__R_READABLE | IOQ__R_EOF));
        if (h->readq.head)
            run_reads(loop, h);
    }
}

/* --- watches ------------------------------------------------------------------------------ */

int ioq__rd_watch_set(ioq_loop *loop, ioq__handle *h, uint32_t want,
                      ioq__rd_watch_apply_fn apply)
{
    uint32_t have = (uint32_t)(uintptr_t)h->be;
    int rc;
    if (want == have)
        return 0;
    rc = apply(loop, h, want, have);
    if (rc == 0 || (want & ~have) == 0)
        h->be = (void *)(uintptr_t)want;
    return rc;
}

void ioq__rd_watch_sync(ioq_loop *loop, ioq__handle *h, ioq__rd_watch_apply_fn apply)
{
    ioq__rd_watch_set(loop, h, (h->rstate & IOQ__R_CLOSING) ? 0 : ioq__watch_events(h), apply);
}

int ioq__rd_watch_start(ioq_loop *loop, ioq__op *op, ioq__rd_watch_apply_fn apply)
{
    return ioq__rd_watch_set(loop, op->h, (uint32_t)(uintptr_t)op->h->be | op->events, apply);
}

void ioq__rd_watch_cancel(ioq_loop *loop, ioq__op *op, ioq__rd_watch_apply_fn apply)
{
    ioq__handle *h = op->h;
    ioq__complete(loop, op, IOQ_ECANCELED, 0, 0);
    ioq__rd_watch_sync(loop, h, apply);
}
