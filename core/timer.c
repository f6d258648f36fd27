/*
 * Timers: a binary min-heap of timeout ops keyed on (deadline, submission order), so that
 * insert and cancel are O(log n) and equal deadlines fire in the order they were asked for.
 * The deadline lives in op->offset, the position in op->heap_idx.
 */
#include "internal.h"

#include <stdlib.h>

static bool before(const ioq__op *a, const ioq__op *b)
{
    return a->offset < b->offset || (a->offset == b->offset && a->seq < b->seq);
}

static void place(ioq_loop *loop, uint32_t i, ioq__op *op)
{
    loop->heap[i] = op;
    op->heap_idx = i;
}

static void sift_up(ioq_loop *loop, uint32_t i)
{
    ioq__op *op = loop->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(op, loop->heap[parent]))
            break;
        place(loop, i, loop->heap[parent]);
        i = parent;
    }
    place(loop, i, op);
}

static void sift_down(ioq_loop *loop, uint32_t i)
{
    ioq__op *op = loop->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= loop->heap_len)
            break;
        if (c + 1 < loop->heap_len && before(loop->heap[c + 1], loop->heap[c]))
            c++;
        if (!before(loop->heap[c], op))
            break;
        place(loop, i, loop->heap[c]);
        i = c;
    }
    place(loop, i, op);
}

int ioq__timer_add(ioq_loop *loop, ioq__op *op)
{
    if (loop->heap_len == loop->heap_cap) {
        uint32_t ncap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        ioq__op **nh = realloc(loop->heap, ncap * sizeof *nh);
        if (!nh)
            return IOQ_ENOMEM;
        loop->heap = nh;
        loop->heap_cap = ncap;
    }
    op->seq = loop->timer_seq++;
    op->at = IOQ__AT_TIMER;
    place(loop, loop->heap_len++, op);
    sift_up(loop, op->heap_idx);
    /* A host sleeping on ioq_loop_fd() needs the new earliest deadline armed now. */
    if (loop->embedded && op->heap_idx == 0 && op->offset < loop->armed_deadline &&
        loop->backend->arm_timer) {
        loop->armed_deadline = op->offset;
        loop->backend->arm_timer(loop, op->offset);
    }
    return 0;
}

void ioq__timer_remove(ioq_loop *loop, ioq__op *op)
{
    uint32_t i = op->heap_idx;
    ioq__op *last = loop->heap[--loop->heap_len];
    op->at = IOQ__AT_NONE;
    if (i == loop->heap_len)
        return;
    place(loop, i, last);
    if (i > 0 && before(last, loop->heap[(i - 1) / 2]))
        sift_up(loop, i);
    else
        sift_down(loop, i);
}
