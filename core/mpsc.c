/*
 * Dmitry Vyukov's intrusive MPSC queue: producers do one atomic exchange and one store,
 * never a lock; the single consumer (the loop thread) walks from the tail. A producer that
 * has swapped the head but not yet linked its node makes the queue look briefly shorter;
 * ioq__mpsc_empty() still reports it, so the loop does not go to sleep on it.
 */
#include "internal.h"

void ioq__mpsc_init(ioq__mpsc *q)
{
    atomic_store_explicit(&q->stub.next, NULL, memory_order_relaxed);
    q->stub.kind = IOQ__MPSC_STUB;
    atomic_store_explicit(&q->head, &q->stub, memory_order_relaxed);
    q->tail = &q->stub;
}

void ioq__mpsc_push(ioq__mpsc *q, ioq__mpsc_node *n)
{
    ioq__mpsc_node *prev;
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    prev = atomic_exchange_explicit(&q->head, n, memory_order_acq_rel);
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

bool ioq__mpsc_empty(ioq__mpsc *q)
{
    return q->tail == &q->stub &&
           atomic_load_explicit(&q->head, memory_order_acquire) == &q->stub;
}

ioq__mpsc_node *ioq__mpsc_pop(ioq__mpsc *q)
{
    ioq__mpsc_node *tail = q->tail;
    ioq__mpsc_node *next = atomic_load_explicit(&tail->next, memory_order_acquire);

    if (tail == &q->stub) {
        if (!next)
            return NULL;
        q->tail = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        q->tail = next;
        return tail;
    }
    if (tail != atomic_load_explicit(&q->head, memory_order_acquire))
        return NULL; /* a producer is mid-push */
    /* tail is the last node: put the stub behind it so tail can be handed out */
    ioq__mpsc_push(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next) {
        q->tail = next;
        return tail;
    }
    return NULL;
}
