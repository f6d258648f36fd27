/*
 * Stream order (contract rule 7): a handle's receives wait in its read queue and its sends
 * and shutdown in its write queue, and only the head of each is ever in progress, so sends
 * go out whole and in order and receives fill in order. Every backend keeps its streams in
 * order through these functions.
 */
#include "backend.h"

int ioq__order_start(ioq_loop *loop, ioq__op *op, ioq__issue_fn issue)
{
    ioq__opq *q = ioq__order_queue(op);
    int rc;
    if (!q) {
        rc = issue(loop, op);
        return rc < 0 ? rc : 0;
    }
    ioq__opq_push(q, op);
    if (q->head != op)
        return 0; /* waits for the ops ahead of it */
    if ((rc = issue(loop, op)) < 0) {
        ioq__opq_remove(q, op);
        return rc;
    }
    /* Done at once, or a multishot op that produced a record and is still the head: go on
     * as the queue would after any completion. */
    if (rc == IOQ__ORDER_NEXT && q->head)
        ioq__order_run(loop, q, issue);
    return 0;
}

void ioq__order_run(ioq_loop *loop, ioq__opq *q, ioq__issue_fn issue)
{
    ioq__op *op;
    /* Only a queue's head is ever issued, so each op met here has not been yet. */
    while ((op = q->head) != NULL) {
        int rc = issue(loop, op);
        if (rc == IOQ__ORDER_WAIT)
            return;
        if (rc < 0) {
            ioq__opq_remove(q, op);
            ioq__complete(loop, op, rc, 0, 0);
        }
    }
}

void ioq__order_finish(ioq_loop *loop, ioq__op *op, int64_t res, uint64_t value,
                       uint16_t flags, ioq__issue_fn issue)
{
    ioq__handle *h = op->h;
    ioq__opq *q = (flags & IOQ_CQE_MORE) ? NULL : ioq__order_queue(op);

    ioq__order_complete(loop, op, res, value, flags);
    /* The handle may be gone (its close completed just above): then its queues are empty. */
    if (q && h->kind != IOQ__K_FREE && q->head)
        ioq__order_run(loop, q, issue);
}

void ioq__order_cancel_queued(ioq_loop *loop, ioq__op *op)
{
    ioq__opq_remove(ioq__order_queue(op), op);
    ioq__complete(loop, op, IOQ_ECANCELED, op->done, 0);
}
