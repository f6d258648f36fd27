/*
 * Dmitry Vyukov's intrusive MPSC queue: producers do one atomic exchange and one store,
 * never a lock; the single consumer (the loop thread) walks from the tail. A producer that
 * has swapped the head but not yet linked its node makes the queue look briefly shorter;
 * ioq__mpsc_empty() still reports it, so the loop does not go to sleep on it.
 * Below it, a bounded index queue that recycles the loop's post records.
 */
#include "mpsc.h"

#include <stdlib.h>

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

/* --- bounded index queue (the post records' free list) ------------------------------------- */

bool ioq__idxq_init(ioq__idxq *q, size_t cap)
{
    q->cells = malloc(cap * sizeof *q->cells);
    if (!q->cells)
        return false;
    for (size_t i = 0; i < cap; i++)
        atomic_store_explicit(&q->cells[i].seq, i, memory_order_relaxed);
    q->mask = cap - 1;
    atomic_store_explicit(&q->take_pos, 0, memory_order_relaxed);
    q->give_pos = 0;
    return true;
}

void ioq__idxq_fini(ioq__idxq *q) { free(q->cells); }

bool ioq__idxq_take(ioq__idxq *q, uint32_t *idx)
{
    size_t pos = atomic_load_explicit(&q->take_pos, memory_order_relaxed);
    for (;;) {
        ioq__idxq_cell *c = &q->cells[pos & q->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)(pos + 1);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->take_pos, &pos, pos + 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed)) {
                *idx = c->idx;
                /* The cell is free for the giver's next lap. */
                atomic_store_explicit(&c->seq, pos + q->mask + 1, memory_order_release);
                return true;
            }
        } else if (dif < 0) {
            return false; /* empty */
        } else {
            pos = atomic_load_explicit(&q->take_pos, memory_order_relaxed);
        }
    }
}

bool ioq__idxq_give(ioq__idxq *q, uint32_t idx)
{
    ioq__idxq_cell *c = &q->cells[q->give_pos & q->mask];
    size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
    if (seq != q->give_pos)
        return false; /* a taker has claimed this cell and not yet released it */
    c->idx = idx;
    atomic_store_explicit(&c->seq, q->give_pos + 1, memory_order_release);
    q->give_pos++;
    return true;
}
