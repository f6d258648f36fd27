/*
 * A FIFO of ops linked through their qnext/qprev fields: the readiness and stream-order
 * queues of a handle, the thread pool's work queue, a backend's retry list. Inline: a send
 * or receive goes in and out of one. backend.h includes this once struct ioq__op is
 * complete; include backend.h, not this file.
 */
#ifndef IOQ_OPQ_H
#define IOQ_OPQ_H

static inline void ioq__opq_push(ioq__opq *q, ioq__op *op)
{
    op->qnext = NULL;
    op->qprev = q->tail;
    if (q->tail)
        q->tail->qnext = op;
    else
        q->head = op;
    q->tail = op;
}

static inline void ioq__opq_remove(ioq__opq *q, ioq__op *op)
{
    if (op->qprev)
        op->qprev->qnext = op->qnext;
    else if (q->head == op)
        q->head = op->qnext;
    else
        return; /* not queued here */
    if (op->qnext)
        op->qnext->qprev = op->qprev;
    else
        q->tail = op->qprev;
    op->qnext = op->qprev = NULL;
}

#endif /* IOQ_OPQ_H */
