/*
 * Timers: a 4-ary min-heap of timeout ops keyed on (deadline, submission order), so that
 * insert and cancel are O(log n) and equal deadlines fire in the order they were asked for.
 * Each heap entry carries its op's deadline: sifting compares entries that sit side by side
 * in the array (a node's four children share one cache line) instead of following a pointer
 * per comparison into ops scattered over the slab, which is what made a heap of a million
 * timers slow. The op keeps its position in op->heap_idx for cancellation.
 */
#include "loop.h"

#include <stdlib.h>

#define ARITY 4

static bool before(const ioq__timer_ent *a, const ioq__timer_ent *b)
{
    return a->deadline < b->deadline ||
           (a->deadline == b->deadline && a->op->seq < b->op->seq);
}

static void place(ioq_loop *loop, uint32_t i, ioq__timer_ent e)
{
    loop->heap[i] = e;
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

void ioq__timer_remove(ioq_loop *loop, ioq__op *op)
{
    uint32_t i = op->heap_idx;
    ioq__timer_ent last = loop->heap[--loop->heap_len];
    op->at = IOQ__AT_NONE;
    if (i == loop->heap_len)
        return;
    loop->heap[i] = last;
    if (i > 0 && before(&last, &loop->heap[(i - 1) / ARITY]))
        sift_up(loop, i);
    else
        sift_down(loop, i);
}

void ioq__timer_disarmed(ioq_loop *loop) { loop->armed_deadline = UINT64_MAX; }
