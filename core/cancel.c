/*
 * Ending ops early: ioq_cancel (by token) and ioq_close (every op of a handle, then the
 * handle). Either way each op still completes exactly once; the owner of the op (timer
 * heap, thread pool, backend) decides whether that happens at once or later.
 */
#include "loop.h"

#include <stdlib.h>
#include <string.h>

void ioq__close_finish(ioq_loop *loop, ioq__handle *h)
{
    ioq__op *close_op = h->close_op;
    h->close_op = NULL;
    ioq__handle_destroy(loop, h);
    ioq__complete(loop, close_op, 0, 0, 0);
}

void ioq__op_cancel(ioq_loop *loop, ioq__op *op)
{
    if (op->cancelled)
        return;
    op->cancelled = 1;
    switch (op->at) {
    case IOQ__AT_TIMER:
        ioq__timer_kill(loop, op);
        ioq__complete(loop, op, IOQ_ECANCELED, 0, 0);
        break;
    case IOQ__AT_POOL:
        if (ioq__tp_cancel(loop, op))
            ioq__complete(loop, op, IOQ_ECANCELED, 0, 0);
        break;
    case IOQ__AT_BACKEND:
        loop->backend->cancel(loop, op);
        break;
    case IOQ__AT_CORE:
        if (op->code == IOQ_OP_NOTIFY_WAIT)
            ioq__notify_cancel(loop, op);
        else
            ioq__signal_cancel(loop, op);
        break;
    default:
        break;
    }
}

/* The cancel's own completion is known before it returns, so it needs no op: a reserved
 * record is enough (and keeps a cancel as cheap as the targets it ends). */
int ioq_cancel(ioq_loop *loop, uint64_t target, uint64_t token)
{
    ioq__op *o, *small[32], **found = small;
    uint32_t n = 0, cap = 32;

    if (!loop)
        return IOQ_EINVAL;
    if (loop->in_free)
        return IOQ_EMISUSE;
    /* Collect first: cancelling completes ops, which edits the chain being walked. */
    for (o = ioq__token_chain(loop, target); o; o = ioq__token_next(loop, o)) {
        if (o->token != target || o->code == IOQ_OP_CLOSE || o->cancelled)
            continue;
        if (n == cap) {
            ioq__op **nf = malloc(2 * cap * sizeof *nf);
            if (!nf) {
                if (found != small)
                    free(found);
                return IOQ_ENOMEM;
            }
            memcpy(nf, found, n * sizeof *nf);
            if (found != small)
                free(found);
            found = nf;
            cap *= 2;
        }
        found[n++] = o;
    }
    if (n == 1 && found[0]->at == IOQ__AT_TIMER) {
        /* The common case, one timer: the timer op carries the cancel's record too, right
         * behind its own, and no ring record is written or reserved. */
        o = found[0];
        o->cancelled = 1;
        ioq__timer_kill(loop, o);
        ioq__timer_done(loop, o, &token);
        return 0;
    }
    if (!ioq__cq_reserve(loop, loop->nops_live + 1)) {
        if (found != small)
            free(found);
        return IOQ_ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++)
        ioq__op_cancel(loop, found[i]);
    if (found != small)
        free(found);
    /* Ending the targets used their own reserved records; the one reserved above is ours. */
    ioq__cq_push(loop, token, n, 0, IOQ_OP_CANCEL, 0);
    return 0;
}

int ioq_close(ioq_loop *loop, ioq_handle hv, uint64_t token)
{
    ioq__handle *h;
    ioq__op *op, *o, *next;

    if (!loop)
        return IOQ_EINVAL;
    if (loop->in_free)
        return IOQ_EMISUSE;
    h = ioq__handle_get(loop, hv, ~0u);
    if (!h || h->kind == IOQ__K_CONNECTING)
        return IOQ_EBADHANDLE;
    if (h->kind == IOQ__K_POOL && ioq__pool_busy(loop, h->pool))
        return IOQ_EBUSY;
    op = ioq__op_new(loop, IOQ_OP_CLOSE, token);
    if (!op)
        return IOQ_ENOMEM;
    ioq__op_register(loop, op);
    ioq__handle_invalidate(h);
    if (h->kind == IOQ__K_POOL) {
        ioq__pool_destroy(loop, h->pool);
        ioq__handle_free(loop, h);
        ioq__complete(loop, op, 0, 0, 0);
        return 0;
    }
    op->at = IOQ__AT_CLOSE;
    for (o = h->ops; o; o = next) {
        next = o->hnext;
        ioq__op_cancel(loop, o);
    }
    h->close_op = op;
    if (h->nops == 0)
        ioq__close_finish(loop, h);
    return 0;
}
