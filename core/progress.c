/*
 * I/O progress: what every backend does with the result of a system call, written once so
 * that the backends differ only in how they ask the kernel. A gather send's unsent pieces
 * and its position, a short send or file write resumed, a connect, an accepted connection
 * and an opened file turned into handles.
 */
#include "loop.h"

bool ioq__sendv_piece(const ioq__op *op, uint32_t *pos, void **base, size_t *len)
{
    while (*pos < op->iovcnt) {
        uint32_t i = (*pos)++;
        size_t skip = i == op->iovpos ? op->iovoff : 0;
        /* An empty entry is left out: its base may be NULL, and NULL + 0 is undefined. */
        if (op->iov[i].len > skip) {
            *base = (char *)op->iov[i].base + skip;
            *len = op->iov[i].len - skip;
            return true;
        }
    }
    return false;
}

void ioq__op_moved(ioq__op *op, size_t n)
{
    op->done += n;
    if (op->code != IOQ_OP_SENDV || n == 0)
        return;
    while (op->iovpos < op->iovcnt) {
        size_t left = op->iov[op->iovpos].len - op->iovoff;
        if (n < left) {
            op->iovoff += n;
            return;
        }
        /* a whole entry (or a zero-length one) is behind us */
        n -= left;
        op->iovpos++;
        op->iovoff = 0;
    }
}

void ioq__send_result(ioq_loop *loop, ioq__op *op, size_t n, int err, ioq__issue_fn issue)
{
    /* A cancelled or failed send still reports what went out before it stopped. */
    ioq__op_moved(op, n);
    if (err) {
        ioq__order_finish(loop, op, err, op->done, 0, issue);
        return;
    }
    if (op->done < op->len && op->h->kind != IOQ__K_UDP && n > 0) {
        int rc;
        if (op->cancelled) {
            ioq__order_finish(loop, op, IOQ_ECANCELED, op->done, 0, issue);
            return;
        }
        /* Short send: resume before anything queued behind it may go. */
        if ((rc = issue(loop, op)) != 0)
            ioq__order_finish(loop, op, rc, op->done, 0, issue);
        return;
    }
    ioq__order_finish(loop, op, (int64_t)op->done, 0, 0, issue);
}

void ioq__write_result(ioq_loop *loop, ioq__op *op, size_t n, int err, ioq__issue_fn issue)
{
    if (!err && n > 0) {
        op->done += n;
        if (op->done < op->len && !op->cancelled) {
            int rc = issue(loop, op);
            if (rc != 0)
                ioq__complete(loop, op, rc, op->done, 0);
            return;
        }
        ioq__complete(loop, op, (int64_t)op->done, 0, 0);
        return;
    }
    ioq__complete(loop, op, err ? err : (int64_t)op->done, op->done, 0);
}

void ioq__connect_done(ioq_loop *loop, ioq__op *op, int err)
{
    ioq__handle *h = op->h;
    if (err) {
        ioq__complete(loop, op, err, 0, 0); /* destroys h: the socket never became visible */
        return;
    }
    h->kind = op->code == IOQ_OP_CONNECT ? IOQ__K_TCP : IOQ__K_LOCAL;
    ioq__complete(loop, op, 0, ioq__handle_value(loop, h), 0);
}

int ioq__accepted(ioq_loop *loop, const ioq__handle *listener, int64_t fd, ioq__handle **out)
{
    uint8_t kind = listener->kind == IOQ__K_TCP_LISTENER ? IOQ__K_TCP : IOQ__K_LOCAL;
    return ioq__handle_take(loop, kind, listener->family, fd, out);
}

void ioq__open_done(ioq_loop *loop, ioq__op *op, int64_t res, int64_t fd)
{
    ioq__handle *h;
    if (res == 0 && (res = ioq__handle_take(loop, IOQ__K_FILE, 0, fd, &h)) == 0) {
        ioq__complete(loop, op, 0, ioq__handle_value(loop, h), 0);
        return;
    }
    ioq__complete(loop, op, res, 0, 0);
}
