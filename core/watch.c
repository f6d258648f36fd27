/*
 * ioq_watch: readiness of a descriptor ioq does not own (IOQ_KIND_WATCH). The backends
 * register the descriptor level-triggered (epoll, kqueue) or poll it once per report
 * (io_uring), so a multishot watch reports again at a later poll while the condition
 * holds; the bookkeeping of which watch a report concerns is shared here.
 */
#include "loop.h"

uint32_t ioq__watch_events(const ioq__handle *h)
{
    uint32_t ev = 0;
    for (const ioq__op *o = h->ops; o; o = o->hnext) {
        if (o->code == IOQ_OP_WATCH && !o->cancelled)
            ev |= o->events;
    }
    return ev;
}

uint32_t ioq__watch_result(const ioq__op *op, uint32_t seen)
{
    /* Error and hang-up are news for every watch; otherwise each hears what it asked for. */
    return seen & (op->events | IOQ_WATCH_ERROR | IOQ_WATCH_HANGUP);
}

bool ioq__watch_report(ioq_loop *loop, ioq__handle *h, uint32_t seen)
{
    bool ended = false;
    ioq__op *o, *next;
    for (o = h->ops; o; o = next) {
        uint32_t r;
        next = o->hnext;
        if (o->code != IOQ_OP_WATCH || o->cancelled || (r = ioq__watch_result(o, seen)) == 0)
            continue;
        if ((o->flags & IOQ_MULTISHOT) && ioq__cq_room(loop, 1)) {
            ioq__complete(loop, o, r, 0, IOQ_CQE_MORE);
        } else {
            /* One-shot, or no memory for one more record: the watch ends with this one. */
            ioq__complete(loop, o, r, 0, 0);
            ended = true;
        }
    }
    return ended;
}

int ioq_watch(ioq_loop *loop, ioq_handle hv, uint32_t events, uint32_t flags, uint64_t token)
{
    ioq__handle *h;
    ioq__op *op;
    int rc = ioq__handle_arg(loop, hv, IOQ__KIND_BIT(IOQ__K_WATCH), &h);
    if (rc != 0)
        return rc;
    if (events == 0 || (events & ~(uint32_t)(IOQ_WATCH_READABLE | IOQ_WATCH_WRITABLE)) ||
        (flags & ~(uint32_t)IOQ_MULTISHOT))
        return IOQ_EINVAL;
    if (!(op = ioq__op_new(loop, IOQ_OP_WATCH, token)))
        return IOQ_ENOMEM;
    op->flags = flags;
    op->events = events;
    return ioq__op_start(loop, op, h);
}
