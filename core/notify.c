/*
 * Notifiers: a handle any thread may signal (ioq_notify), whose wait completes once for
 * every batch of signals, like libuv's uv_async.
 *
 * ioq_notify cannot use the handle table (the loop thread grows and rewrites it), so each
 * notifier has a record in a table of its own that is only ever added to: a 64-bit word
 * holding open bit, generation and count (loop.h), alone on its cache line. ioq_notify
 * checks the generation and bumps the count in one compare-and-swap: one atomic
 * read-modify-write per call, the least an exact count from any thread can cost (libuv's
 * uv_async_send reads a flag only, but then the sender counts its messages itself). The
 * check and the bump must be one operation: with a load then an add, a notifier closed
 * in between whose slot a new notifier took would count a call that was refused. The
 * call that finds the count at 0 raises the loop's notify_pending flag (unless it is up)
 * and wakes the loop if it sleeps, so any number of calls between two polls cost one flag
 * and at most one system call. The loop thread, draining
 * its cross-thread work, takes each live notifier's count and completes its wait.
 */
#include "loop.h"

#include <stdlib.h>
#include <string.h>

#define OPEN_BIT ((uint64_t)1 << 63)
#define GEN_SHIFT 32
#define COUNT_MASK 0xffffffffu

struct ioq__notifier {
    ioq__handle *h;
    _Atomic uint64_t *rec;
    ioq__op *wait;             /* the pending ioq_notify_wait, or NULL */
    uint64_t carried;          /* counted while no wait was pending */
    ioq__notifier *next, *prev; /* loop->notifiers */
};

static uint64_t rec_word(uint32_t gen) { return OPEN_BIT | (uint64_t)gen << GEN_SHIFT; }

/* The record of slot index in its leaf (a line each). */
static _Atomic uint64_t *rec_at(_Atomic uint64_t *leaf, uint32_t index)
{
    return leaf + (index & 0xff) * IOQ__NREC_STRIDE;
}

/* A leaf of line-aligned records: one line more is allocated, and what malloc returned is
 * kept in the spare bytes past the last record, for free (malloc aligns to at least a
 * pointer's size, so at least that many bytes are spare). */
static _Atomic uint64_t *leaf_new(void)
{
    char *raw = calloc(IOQ__NREC_LEVEL + 1, IOQ__NREC_LINE);
    char *line;
    if (!raw)
        return NULL;
    line = raw + (-(uintptr_t)raw & (IOQ__NREC_LINE - 1));
    memcpy(line + IOQ__NREC_LEVEL * IOQ__NREC_LINE, &raw, sizeof raw);
    return (_Atomic uint64_t *)line;
}

static void leaf_free(_Atomic uint64_t *leaf)
{
    char *raw;
    if (!leaf)
        return;
    memcpy(&raw, (char *)leaf + IOQ__NREC_LEVEL * IOQ__NREC_LINE, sizeof raw);
    free(raw);
}

/* The record of slot index, or NULL if none was ever made (any thread). */
static _Atomic uint64_t *rec_find(ioq_loop *loop, uint32_t index)
{
    ioq__nmid *mid = atomic_load_explicit(&loop->nroot[index >> 16], memory_order_acquire);
    _Atomic uint64_t *leaf;
    if (!mid)
        return NULL;
    leaf = atomic_load_explicit(&mid->leaf[(index >> 8) & 0xff], memory_order_acquire);
    return leaf ? rec_at(leaf, index) : NULL;
}

/* The record of slot index, made if needed (loop thread only: it alone adds levels). */
static _Atomic uint64_t *rec_make(ioq_loop *loop, uint32_t index)
{
    ioq__nmid *mid = atomic_load_explicit(&loop->nroot[index >> 16], memory_order_relaxed);
    _Atomic uint64_t *leaf;
    if (!mid) {
        if (!(mid = calloc(1, sizeof *mid)))
            return NULL;
        atomic_store_explicit(&loop->nroot[index >> 16], mid, memory_order_release);
    }
    leaf = atomic_load_explicit(&mid->leaf[(index >> 8) & 0xff], memory_order_relaxed);
    if (!leaf) {
        if (!(leaf = leaf_new()))
            return NULL;
        atomic_store_explicit(&mid->leaf[(index >> 8) & 0xff], leaf, memory_order_release);
    }
    return rec_at(leaf, index);
}

/* Take the count of n's record, leaving it open at 0. */
static uint64_t rec_take(ioq__notifier *n)
{
    uint64_t w = atomic_load(n->rec);
    while ((w & COUNT_MASK) && !atomic_compare_exchange_weak(n->rec, &w, w & ~(uint64_t)COUNT_MASK))
        ;
    return w & COUNT_MASK;
}

int ioq_notifier_new(ioq_loop *loop, ioq_handle *out)
{
    ioq__notifier *n;
    ioq__handle *h;
    if (!loop || !out)
        return IOQ_EINVAL;
    if (loop->in_free)
        return IOQ_EMISUSE;
    if (!(n = calloc(1, sizeof *n)))
        return IOQ_ENOMEM;
    if (!(h = ioq__handle_new(loop, IOQ__K_NOTIFIER, -1))) {
        free(n);
        return IOQ_ENOMEM;
    }
    if (!(n->rec = rec_make(loop, h->index))) {
        ioq__handle_free(loop, h);
        free(n);
        return IOQ_ENOMEM;
    }
    n->h = h;
    h->obj = n;
    atomic_store(n->rec, rec_word(h->gen));
    n->next = loop->notifiers;
    if (n->next)
        n->next->prev = n;
    loop->notifiers = n;
    *out = ioq__handle_value(loop, h);
    return 0;
}

int ioq_notify(ioq_loop *loop, ioq_handle v)
{
    uint32_t index = (uint32_t)(v & IOQ__INDEX_MASK);
    uint32_t gen = (uint32_t)(v >> IOQ__INDEX_BITS) & IOQ__GEN_MASK;
    _Atomic uint64_t *rec;
    uint64_t w;

    if (!loop)
        return IOQ_EINVAL;
    /* The tag is set once at loop creation: safe to read from any thread. */
    if ((uint16_t)(v >> 48) != loop->ntag || !(rec = rec_find(loop, index)))
        return IOQ_EBADHANDLE;
    w = atomic_load_explicit(rec, memory_order_relaxed); /* checked by the exchange */
    for (;;) {
        if (!(w & OPEN_BIT) || ((w >> GEN_SHIFT) & IOQ__GEN_MASK) != gen)
            return IOQ_EBADHANDLE;
        if ((w & COUNT_MASK) == COUNT_MASK)
            return 0; /* 4 billion pending: the count saturates, the wait still comes */
        if (atomic_compare_exchange_weak(rec, &w, w + 1))
            break;
    }
    /* The first count of a batch: make the loop look. The flag may be up already (another
     * notifier's batch the loop has not taken): then the loop's exchange of the flag comes
     * after this read, so its drain, after the exchange, sees the count raised above. */
    if ((w & COUNT_MASK) == 0 && !atomic_load(&loop->notify_pending)) {
        atomic_store(&loop->notify_pending, 1);
        ioq__wake_if_blocked(loop);
    }
    return 0;
}

/* Give count more signals to n's wait, or keep them for the next one. */
static void deliver(ioq_loop *loop, ioq__notifier *n, uint64_t count)
{
    ioq__op *op = n->wait;
    count += n->carried;
    n->carried = 0;
    if (!op) {
        n->carried = count;
        return;
    }
    if ((op->flags & IOQ_MULTISHOT) && ioq__cq_room(loop, 1)) {
        ioq__complete(loop, op, (int64_t)count, 0, IOQ_CQE_MORE);
        return;
    }
    n->wait = NULL;
    ioq__complete(loop, op, (int64_t)count, 0, 0);
}

void ioq__notify_drain(ioq_loop *loop)
{
    if (!atomic_exchange(&loop->notify_pending, 0))
        return;
    for (ioq__notifier *n = loop->notifiers; n; n = n->next) {
        uint64_t c = rec_take(n);
        if (c)
            deliver(loop, n, c);
    }
}

int ioq_notify_wait(ioq_loop *loop, ioq_handle v, uint32_t flags, uint64_t token)
{
    ioq__handle *h;
    ioq__notifier *n;
    ioq__op *op;
    uint64_t c;
    if (!loop)
        return IOQ_EINVAL;
    if (loop->in_free)
        return IOQ_EMISUSE;
    if (!(h = ioq__handle_get(loop, v, IOQ__KIND_BIT(IOQ__K_NOTIFIER))))
        return IOQ_EBADHANDLE;
    if (flags & ~(uint32_t)IOQ_MULTISHOT)
        return IOQ_EINVAL;
    n = h->obj;
    if (n->wait)
        return IOQ_EBUSY;
    if (!(op = ioq__op_new(loop, IOQ_OP_NOTIFY_WAIT, token)))
        return IOQ_ENOMEM;
    op->flags = flags;
    ioq__op_attach(op, h);
    ioq__op_register(loop, op);
    op->at = IOQ__AT_CORE;
    n->wait = op;
    /* Signals that came before the wait are its first batch. */
    c = rec_take(n);
    if (c || n->carried)
        deliver(loop, n, c);
    return 0;
}

void ioq__notify_cancel(ioq_loop *loop, ioq__op *op)
{
    ioq__notifier *n = op->h->obj;
    if (n && n->wait == op)
        n->wait = NULL;
    ioq__complete(loop, op, IOQ_ECANCELED, 0, 0);
}

static void unlink_notifier(ioq_loop *loop, ioq__notifier *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        loop->notifiers = n->next;
    if (n->next)
        n->next->prev = n->prev;
}

void ioq__notifier_free(ioq_loop *loop, ioq__handle *h)
{
    ioq__notifier *n = h->obj;
    if (!n)
        return;
    /* From now on ioq_notify on this value gives IOQ_EBADHANDLE; the record stays. */
    atomic_store(n->rec, 0);
    unlink_notifier(loop, n);
    h->obj = NULL;
    free(n);
}

void ioq__notify_fini(ioq_loop *loop)
{
    ioq__notifier *n, *next;
    for (n = loop->notifiers; n; n = next) {
        next = n->next;
        free(n);
    }
    loop->notifiers = NULL;
    for (uint32_t i = 0; i < IOQ__NREC_LEVEL; i++) {
        ioq__nmid *mid = atomic_load(&loop->nroot[i]);
        if (!mid)
            continue;
        for (uint32_t j = 0; j < IOQ__NREC_LEVEL; j++)
            leaf_free(atomic_load(&mid->leaf[j]));
        free(mid);
    }
}
