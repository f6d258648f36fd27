/*
 * A FIFO of ops linked through their qnext/qprev fields: the readiness and stream-order
 * queues of a handle, the thread pool's work queue, a backend's retry list.
 */
#include "backend.h"

void ioq__opq_push(ioq__opq *q, ioq__op *op)
{
    op->qnext = NULL;
    op->qprev = q->tail;
    if (q->tail)
        q->tail->qnext = op;
    else
        q->head = op;
    q->tail = op;
}

void ioq__opq_remove(ioq__opq *q, ioq__op *op)
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
