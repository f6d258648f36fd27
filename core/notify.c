/*
 * Notifiers: a handle any thread may signal (ioq_notify), whose wait completes once for
 * every batch of signals, like libuv's uv_async.
 *
 * ioq_notify cannot use the handle table (the loop thread grows and rewrites it), so each
 * notifier has a record in a table of its own that is only ever added to (loop.h).
 *
 * Counting. An exact count from any thread needs either an atomic read-modify-write per
 * call (a locked instruction: the whole cost of a flood) or a counter per thread. A record
 * has IOQ__NLANES lanes: the first threads to signal it each claim one (once) and count
 * there with a plain load and store. Other threads count in the shared word, checking the
 * generation and bumping the count in one compare-and-swap (with a load then an add, a
 * notifier closed in between whose slot a new notifier took would count a call that was
 * refused); a lane's count carries the generation for the same reason.
 *
 * Waking. loop->notify_pending counts the fenced signals since the loop last took them;
 * the one that finds it at 0 wakes the loop if it sleeps, so any number of calls between
 * two polls cost at most one system call. A lane's count is a plain store, which the CPU
 * may keep from other threads for a while (its store buffer): the loop could take the
 * lanes, miss it, and sleep. So a lane's signal is fenced too (its add to notify_pending
 * orders the store before the loop's exchange of the flag) until the batch has
 * IOQ__NOTIFY_ARM of them; from then on the batch is "armed" and lane signals are a store
 * and a load, no fence. The loop, which took an armed batch, owes the fences: before it
 * sleeps it makes every thread pass a barrier (ioq__os_barrier: membarrier on Linux,
 * FlushProcessWriteBuffers on Windows) and takes the lanes again. A lane signal that
 * missed that barrier read notify_pending after the loop's exchange, so it found it below
 * IOQ__NOTIFY_ARM (and was fenced) or armed by a later batch (whose loop owes the barrier
 * again). Small batches (a round trip) never pay for the barrier; a flood pays for one
 * per sleep of the loop. Without such a barrier (macOS, the BSDs) there are no lanes.
 *
 * A flood keeps its batch armed: the loop's drain leaves an armed flag up (it would
 * otherwise cost the signalling thread IOQ__NOTIFY_ARM fenced adds per batch, on a line
 * the loop keeps reading), and only the loop about to sleep takes it down (settle: the
 * flag back to 0, then the barrier, then every count). While armed, the loop looks at the
 * lanes at most every IOQ__NOTIFY_GAP_NS (each look takes their lines from the signalling
 * threads), and before it settles it watches them for IOQ__NOTIFY_LINGER_NS: a flood that
 * goes on is taken without a barrier, whose interrupt would stall the signalling threads
 * and make the loop find the lanes quiet again (a barrier per few hundred signals).
 */
#include "loop.h"

#include <stdlib.h>
#include <string.h>

#define OPEN_BIT ((uint64_t)1 << 63)
#define GEN_SHIFT 32
#define COUNT_MASK 0xffffffffu
#define LANE_GEN_SHIFT 40
#define LANE_COUNT_MASK (((uint64_t)1 << LANE_GEN_SHIFT) - 1)

struct ioq__notifier {
    ioq__handle *h;
    _Atomic uint64_t *rec;
    ioq__op *wait;             /* the pending ioq_notify_wait, or NULL */
    uint64_t carried;          /* counted while no wait was pending */
    uint64_t taken[IOQ__NLANES]; /* each lane's count when the loop last took it */
    uint32_t gen;              /* the handle's generation, as lanes carry it */
    ioq__notifier *next, *prev; /* loop->notifiers */
};

static uint64_t rec_word(uint32_t gen) { return OPEN_BIT | (uint64_t)gen << GEN_SHIFT; }

/* The record of slot index in its leaf (a line each). */
static _Atomic uint64_t *rec_at(_Atomic uint64_t *leaf, uint32_t index)
{
    return leaf + (index & 0xff) * IOQ__NREC_STRIDE;
}

/* Words 1.. of a record's first line: the lanes' owner threads (0: free). */
static _Atomic uint64_t *owner_at(_Atomic uint64_t *rec, unsigned i) { return rec + 1 + i; }

/* Lane i of a record: the first word of the record's line 1 + i. */
static _Atomic uint64_t *lane_at(_Atomic uint64_t *rec, unsigned i)
{
    return rec + (size_t)(i + 1) * (IOQ__NREC_LINE / sizeof(uint64_t));
}

/* This thread's number, never reused: a lane stays with the thread that claimed it (a
 * thread that ends keeps it; later threads may use the shared count). */
static uint64_t thread_id(void)
{
    static atomic_uint_fast64_t next = 1;
    static _Thread_local uint64_t id;
    if (!id)
        id = atomic_fetch_add(&next, 1);
    return id;
}

/* The calling thread's lane of rec, claimed if it has none and one is free, or NULL. */
static _Atomic uint64_t *lane_of(_Atomic uint64_t *rec)
{
    uint64_t me = thread_id();
    for (unsigned i = 0; i < IOQ__NLANES; i++) {
        uint64_t o = atomic_load_explicit(owner_at(rec, i), memory_order_relaxed);
        if (o == me)
            return lane_at(rec, i);
        if (o == 0 && atomic_compare_exchange_strong(owner_at(rec, i), &o, me))
            return lane_at(rec, i);
    }
    return NULL;
}

/* A leaf of line-aligned records: one line more is allocated, and what malloc returned is
 * kept in the spare bytes past the last record, for free (malloc aligns to at least a
 * pointer's size, so at least that many bytes are spare). */
static _Atomic uint64_t *leaf_new(void)
{
    char *raw = calloc(IOQ__NREC_LEVEL * IOQ__NREC_STRIDE * sizeof(uint64_t) + IOQ__NREC_LINE, 1);
    char *line;
    if (!raw)
        return NULL;
    line = raw + (-(uintptr_t)raw & (IOQ__NREC_LINE - 1));
    memcpy(line + IOQ__NREC_LEVEL * IOQ__NREC_STRIDE * sizeof(uint64_t), &raw, sizeof raw);
    return (_Atomic uint64_t *)line;
}

static void leaf_free(_Atomic uint64_t *leaf)
{
    char *raw;
    if (!leaf)
        return;
    memcpy(&raw, (char *)leaf + IOQ__NREC_LEVEL * IOQ__NREC_STRIDE * sizeof(uint64_t), sizeof raw);
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

/* Take what n's lanes counted since the last time (loop thread). A lane that counts for
 * another generation (a notifier that had the slot before) holds nothing of n's. */
static uint64_t lanes_take(ioq__notifier *n)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < IOQ__NLANES; i++) {
        uint64_t l, c;
        if (!atomic_load_explicit(owner_at(n->rec, i), memory_order_relaxed))
            continue;
        l = atomic_load_explicit(lane_at(n->rec, i), memory_order_relaxed);
        if ((l >> LANE_GEN_SHIFT) != n->gen)
            continue;
        c = l & LANE_COUNT_MASK;
        sum += (c - n->taken[i]) & LANE_COUNT_MASK;
        n->taken[i] = c;
    }
    return sum;
}

/* A lane of n has counted since the loop last took it (loop thread; reads only). */
static bool lanes_peek(const ioq__notifier *n)
{
    for (unsigned i = 0; i < IOQ__NLANES; i++) {
        uint64_t l = atomic_load_explicit(lane_at(n->rec, i), memory_order_relaxed);
        if ((l >> LANE_GEN_SHIFT) == n->gen && (l & LANE_COUNT_MASK) != n->taken[i])
            return true;
    }
    return false;
}

static uint64_t take_all(ioq__notifier *n) { return rec_take(n) + lanes_take(n); }

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
    n->gen = h->gen & IOQ__GEN_MASK;
    h->obj = n;
    if (!atomic_load_explicit(&loop->notify_lanes, memory_order_relaxed) && ioq__os_barrier_init())
        atomic_store_explicit(&loop->notify_lanes, true, memory_order_relaxed);
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
    _Atomic uint64_t *rec, *lane;
    uint64_t w;

    if (!loop)
        return IOQ_EINVAL;
    /* The tag is set once at loop creation: safe to read from any thread. */
    if ((uint16_t)(v >> 48) != loop->ntag || !(rec = rec_find(loop, index)))
        return IOQ_EBADHANDLE;
    w = atomic_load_explicit(rec, memory_order_relaxed);
    if (atomic_load_explicit(&loop->notify_lanes, memory_order_relaxed) &&
        (lane = lane_of(rec)) != NULL) {
        uint64_t l;
        int p;
        if (!(w & OPEN_BIT) || ((w >> GEN_SHIFT) & IOQ__GEN_MASK) != gen)
            return IOQ_EBADHANDLE;
        /* Only this thread writes the lane. */
        l = atomic_load_explicit(lane, memory_order_relaxed);
        if ((l >> LANE_GEN_SHIFT) != gen)
            l = (uint64_t)gen << LANE_GEN_SHIFT;
        atomic_store_explicit(lane, (l & ~LANE_COUNT_MASK) | ((l + 1) & LANE_COUNT_MASK),
                              memory_order_relaxed);
        /* The store, then the load: the compiler keeps that order; the CPU may not, which
         * the loop's barrier covers in an armed batch (see the top of the file). */
        atomic_signal_fence(memory_order_seq_cst);
        p = atomic_load_explicit(&loop->notify_pending, memory_order_relaxed);
        if (p >= IOQ__NOTIFY_ARM)
            return 0;
        if (atomic_fetch_add(&loop->notify_pending, 1) == 0)
            ioq__wake_if_blocked(loop);
        return 0;
    }
    for (;;) { /* w is checked by the exchange */
        if (!(w & OPEN_BIT) || ((w >> GEN_SHIFT) & IOQ__GEN_MASK) != gen)
            return IOQ_EBADHANDLE;
        if ((w & COUNT_MASK) == COUNT_MASK)
            return 0; /* 4 billion pending: the count saturates, the wait still comes */
        if (atomic_compare_exchange_weak(rec, &w, w + 1))
            break;
    }
    /* The first count of a batch: make the loop look. The flag may be up already (another
     * notifier's batch the loop has not taken): then the loop's exchange of the flag comes
     * after this read, so its drain, after the exchange, sees the count raised above. Only
     * raised from 0: a store could lower an armed count. */
    if ((w & COUNT_MASK) == 0 && !atomic_load(&loop->notify_pending)) {
        int z = 0;
        if (atomic_compare_exchange_strong(&loop->notify_pending, &z, 1))
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

/* Take every notifier's count; true if any had one. */
static bool take_every(ioq_loop *loop)
{
    bool found = false;
    for (ioq__notifier *n = loop->notifiers; n; n = n->next) {
        uint64_t c = take_all(n);
        if (c) {
            deliver(loop, n, c);
            found = true;
        }
    }
    return found;
}

void ioq__notify_drain(ioq_loop *loop)
{
    int p = atomic_load_explicit(&loop->notify_pending, memory_order_relaxed);
    if (p >= IOQ__NOTIFY_ARM) {
        /* Armed: left so, for the flood's lane signals to stay a store and a load. The
         * flag stays up, so every notifier is looked at (settle takes it down), but not
         * more often than every IOQ__NOTIFY_GAP_NS: each look takes the lanes' lines
         * from the signalling threads, whose next store then waits for them, and a loop
         * that polls in a tight loop would make that once per handful of signals. */
        uint64_t now = ioq__os_now();
        if (loop->lanes_dirty && now - loop->notify_took < IOQ__NOTIFY_GAP_NS)
            return;
        loop->lanes_dirty = true;
        loop->notify_took = now;
    } else if (p) {
        if (atomic_exchange(&loop->notify_pending, 0) >= IOQ__NOTIFY_ARM)
            loop->lanes_dirty = true; /* lane signals without a fence may still come in view */
    } else if (!loop->lanes_dirty) {
        return;
    }
    take_every(loop);
}

bool ioq__notify_linger(ioq_loop *loop)
{
    uint64_t t0, t;
    if (!loop->lanes_dirty)
        return false;
    t0 = t = ioq__os_now();
    do {
        for (int i = 0; i < 8; i++)
            ioq__spin_pause();
        t = ioq__os_now();
        if (t - loop->notify_took < IOQ__NOTIFY_GAP_NS)
            continue; /* the lanes are left alone as long as ioq__notify_drain leaves them */
        for (ioq__notifier *n = loop->notifiers; n; n = n->next)
            if (lanes_peek(n)) {
                loop->notify_took = t;
                return take_every(loop);
            }
    } while (t - t0 < IOQ__NOTIFY_GAP_NS + IOQ__NOTIFY_LINGER_NS);
    return false;
}

bool ioq__notify_settle(ioq_loop *loop)
{
    if (!loop->lanes_dirty)
        return false;
    /* Disarm: from here on a lane signal is fenced again, and the first one wakes the loop
     * (it has published `blocked`). A signal that read the flag armed came before this
     * exchange: the barrier makes its lane store visible (see the top), and a shared-word
     * signal that saw the flag up counted before it. */
    atomic_exchange(&loop->notify_pending, 0);
    ioq__os_barrier();
    loop->lanes_dirty = false;
    return take_every(loop);
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
    c = take_all(n);
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
