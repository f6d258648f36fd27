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

/* The heap and its length live in locals: every move stores into an op (heap_idx), which
 * the compiler must otherwise assume may change loop->heap and reload it each level. */
static void sift_up(ioq_loop *loop, uint32_t i)
{
    ioq__timer_ent *h = loop->heap, e = h[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / ARITY;
        if (!before(&e, &h[parent]))
            break;
        h[i] = h[parent];
        h[i].op->heap_idx = i;
        i = parent;
    }
    h[i] = e;
    e.op->heap_idx = i;
}

/* A node with all four children (every level but the last) picks the least of them with
 * three comparisons and no loop. */
static void sift_down(ioq_loop *loop, uint32_t i)
{
    ioq__timer_ent *h = loop->heap, e = h[i];
    uint32_t n = loop->heap_len;
    for (;;) {
        uint32_t c = ARITY * i + 1, best;
        if (c + ARITY <= n) {
            uint32_t b1 = before(&h[c + 1], &h[c]) ? c + 1 : c;
            uint32_t b2 = before(&h[c + 3], &h[c + 2]) ? c + 3 : c + 2;
            best = before(&h[b2], &h[b1]) ? b2 : b1;
        } else if (c < n) {
            best = c;
            for (uint32_t k = c + 1; k < n; k++)
                if (before(&h[k], &h[best]))
                    best = k;
        } else {
            break;
        }
        if (!before(&h[best], &e))
            break;
        h[i] = h[best];
        h[i].op->heap_idx = i;
        i = best;
    }
    h[i] = e;
    e.op->heap_idx = i;
}

int ioq__timer_add(ioq_loop *loop, ioq__op *op)
{
    uint64_t deadline;
    if (loop->heap_len == loop->heap_cap) {
        uint32_t ncap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        ioq__timer_ent *nh = realloc(loop->heap, ncap * sizeof *nh);
        if (!nh)
            return IOQ_ENOMEM;
        loop->heap = nh;
        loop->heap_cap = ncap;
    }
    /* The deadline lives in the heap entry from here on; its field in the op becomes seq. */
    deadline = op->deadline;
    op->seq = loop->timer_seq++;
    op->at = IOQ__AT_TIMER;
    loop->heap[loop->heap_len] = (ioq__timer_ent){ deadline, op };
    sift_up(loop, loop->heap_len++);
    /* A host sleeping on ioq_loop_fd() needs the new earliest deadline armed now. */
    if (loop->embedded && op->heap_idx == 0 && deadline < loop->armed_deadline &&
        loop->backend->arm_timer) {
        loop->armed_deadline = deadline;
        loop->backend->arm_timer(loop, deadline);
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

/* A finished timer keeps its record in the op rather than writing one into the completion
 * ring: the op already exists, so the record cannot lack memory, and a million timers
 * fired or cancelled before a poll touch no ring memory at all (the ring's pages, first
 * touched by those records, were about a third of a timer's cost). heap_idx remembers how
 * many ring records will have been taken out when this record is due, which keeps the
 * order of completion across the ring and the list exactly. */
void ioq__timer_done(ioq_loop *loop, ioq__op *op, const uint64_t *cancel_token)
{
    ioq__op_unregister(loop, op);
    op->heap_idx = loop->cq_out + ioq__cq_count(loop);
    if (cancel_token) {
        op->cancel_token = *cancel_token;
        op->at = IOQ__AT_DONE_CANCEL;
    } else {
        op->at = IOQ__AT_DONE;
    }
    op->tnext = NULL;
    if (loop->tdone_tail)
        loop->tdone_tail->tnext = op;
    else
        loop->tdone_head = op;
    loop->tdone_tail = op;
    loop->ntdone++;
    ioq__ready_signal(loop);
}
