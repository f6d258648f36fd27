/*
 * Timers: a 4-ary min-heap of timeout ops keyed on (deadline, submission order), so that
 * insert is O(log n) and equal deadlines fire in the order they were asked for.
 * Each heap entry carries its op's deadline: sifting compares entries that sit side by side
 * in the array (a node's four children share one cache line) instead of following a pointer
 * per comparison into ops scattered over the slab, which is what made a heap of a million
 * timers slow. The op keeps its position in op->heap_idx for cancellation.
 *
 * A cancelled timer is decided at the call: it completes at once and its op goes back to
 * the slab, but its heap entry stays as a tombstone (op NULL) instead of being sifted out.
 * Taking an entry out of the middle of a large heap is a walk over cache lines nobody else
 * needs; a tombstone costs one store. Tombstones are dropped when they reach the root (the
 * root is always a live timer, so poll's wait and the embedded timer need no change) and
 * all at once, by rebuilding the heap in O(n), when they outnumber the live entries: the
 * heap never holds more than twice the pending timers, and each cancel stays O(1) amortised.
 */
#include "loop.h"

#include <stdlib.h>

#define ARITY 4

/* Tombstones (op NULL) sort first among equal deadlines; nothing depends on their order. */
static bool before(const ioq__timer_ent *a, const ioq__timer_ent *b)
{
    if (a->deadline != b->deadline)
        return a->deadline < b->deadline;
    if (!a->op || !b->op)
        return !a->op && b->op;
    return a->op->seq < b->op->seq;
}

static void place(ioq_loop *loop, uint32_t i, ioq__timer_ent e)
{
    loop->heap[i] = e;
    if (e.op)
        e.op->heap_idx = i;
}

static void sift_up(ioq_loop *loop, uint32_t i)
{
    ioq__timer_ent e = loop->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / ARITY;
        if (!before(&e, &loop->heap[parent]))
            break;
        place(loop, i, loop->heap[parent]);
        i = parent;
    }
    place(loop, i, e);
}

static void sift_down(ioq_loop *loop, uint32_t i)
{
    ioq__timer_ent e = loop->heap[i];
    for (;;) {
        uint32_t c = ARITY * i + 1, end = c + ARITY, best = c;
        if (c >= loop->heap_len)
            break;
        if (end > loop->heap_len)
            end = loop->heap_len;
        for (uint32_t k = c + 1; k < end; k++)
            if (before(&loop->heap[k], &loop->heap[best]))
                best = k;
        if (!before(&loop->heap[best], &e))
            break;
        place(loop, i, loop->heap[best]);
        i = best;
    }
    place(loop, i, e);
}

int ioq__timer_add(ioq_loop *loop, ioq__op *op)
{
    if (loop->heap_len == loop->heap_cap) {
        uint32_t ncap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        ioq__timer_ent *nh = realloc(loop->heap, ncap * sizeof *nh);
        if (!nh)
            return IOQ_ENOMEM;
        loop->heap = nh;
        loop->heap_cap = ncap;
    }
    op->seq = loop->timer_seq++;
    op->at = IOQ__AT_TIMER;
    loop->heap[loop->heap_len] = (ioq__timer_ent){ op->deadline, op };
    sift_up(loop, loop->heap_len++);
    /* A host sleeping on ioq_loop_fd() needs the new earliest deadline armed now. */
    if (loop->embedded && op->heap_idx == 0 && op->deadline < loop->armed_deadline &&
        loop->backend->arm_timer) {
        loop->armed_deadline = op->deadline;
        loop->backend->arm_timer(loop, op->deadline);
    }
    return 0;
}

/* Take entry i out for real: the last entry fills the hole and moves up or down. */
static void heap_delete(ioq_loop *loop, uint32_t i)
{
    ioq__timer_ent last = loop->heap[--loop->heap_len];
    if (i == loop->heap_len)
        return;
    loop->heap[i] = last;
    if (i > 0 && before(&last, &loop->heap[(i - 1) / ARITY]))
        sift_up(loop, i);
    else
        sift_down(loop, i);
}

/* Drop every tombstone and restore the heap bottom-up (Floyd): O(n). */
static void heap_rebuild(ioq_loop *loop)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < loop->heap_len; i++)
        if (loop->heap[i].op)
            place(loop, n++, loop->heap[i]);
    loop->heap_len = n;
    loop->heap_dead = 0;
    for (uint32_t i = n > 1 ? (n - 2) / ARITY + 1 : 0; i-- > 0;)
        sift_down(loop, i);
}

void ioq__timer_remove(ioq_loop *loop, ioq__op *op)
{
    uint32_t i = op->heap_idx;
    op->at = IOQ__AT_NONE;
    if (i != 0) {
        loop->heap[i].op = NULL;
        if (++loop->heap_dead > loop->heap_len / 2)
            heap_rebuild(loop);
        return;
    }
    /* The root: due, or cancelled while it is the next to fire. Keep the root live. */
    heap_delete(loop, 0);
    while (loop->heap_len && !loop->heap[0].op) {
        loop->heap_dead--;
        heap_delete(loop, 0);
    }
}

void ioq__timer_disarmed(ioq_loop *loop) { loop->armed_deadline = UINT64_MAX; }
