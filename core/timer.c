/*
 * Timers: a 4-ary min-heap of timeout ops keyed on (deadline, submission order), so that
 * insert is O(log n) and equal deadlines fire in the order they were asked for. Each heap
 * entry carries its op's deadline: sifting compares entries that sit side by side in the
 * array (a node's four children share one cache line) instead of following a pointer per
 * comparison into ops scattered over the array, which is what made a heap of a million
 * timers slow. An entry names its op by index in the timer chunks (loop->tmc); the op keeps
 * its position in op->heap_idx.
 *
 * A cancelled timer is not taken out of the heap: its entry is pointed at the dead op
 * (index 0 of the timer array), which costs one entry, where a removal sifted the last entry down a
 * path of the heap and rewrote heap_idx in an op at every level (at a million timers, a
 * cache miss each). The op itself is finished at once (ioq__timer_done) and freed when its
 * record is handed out; the dead entry never touches it again. Dead entries leave the heap
 * when they reach its top, or all at once when they are more than half of it (at most
 * once per poll: ioq__timer_due), which keeps the heap within twice the live timers.
 * The dead op's seq is 0 and live timers count from 1: a dead entry sorts before the live
 * ones of its deadline (marking it lowered its key, so it is sifted up), and heap moves
 * store heap_idx into it without a test.
 */
#include "loop.h"

#include <stdlib.h>

#define ARITY 4

/* tm: the timer chunks (loop->tmc), in a local for the reason sift_up gives. */
#define TOP(tm, i) ioq__timer_at((tm), (i))

static inline bool before(unsigned char *const *tm, const ioq__timer_ent *a,
                          const ioq__timer_ent *b)
{
    return a->deadline < b->deadline ||
           (a->deadline == b->deadline && TOP(tm, a->op)->seq < TOP(tm, b->op)->seq);
}

static inline void place(unsigned char **tm, ioq__timer_ent *h, uint32_t i, ioq__timer_ent e)
{
    h[i] = e;
    TOP(tm, e.op)->heap_idx = i;
}

/* The heap and its length live in locals: every move stores into an op (heap_idx), which
 * the compiler must otherwise assume may change loop->heap and reload it each level. */
static void sift_up(ioq_loop *loop, uint32_t i)
{
    ioq__timer_ent *h = loop->heap, e = h[i];
    unsigned char **tm = loop->tmc;
    while (i > 0) {
        uint32_t parent = (i - 1) / ARITY;
        if (!before(tm, &e, &h[parent]))
            break;
        place(tm, h, i, h[parent]);
        i = parent;
    }
    place(tm, h, i, e);
}

/* The least of the entries c .. n-1 (fewer than four: the last parent's children). */
static uint32_t least_of(unsigned char *const *tm, const ioq__timer_ent *h, uint32_t c,
                         uint32_t n)
{
    uint32_t best = c;
    for (uint32_t k = c + 1; k < n; k++)
        if (before(tm, &h[k], &h[best]))
            best = k;
    return best;
}

/* best = the least child of node i, or leave the loop at a leaf. A node with all four
 * children (every level but the last) picks it with three comparisons and no loop. */
#define LEAST_CHILD_OR_BREAK(tm, h, i, n, best)                                         \
    {                                                                                  \
        uint32_t c_ = ARITY * (i) + 1;                                                 \
        if (c_ + ARITY <= (n)) {                                                       \
            uint32_t b1_ = before((tm), &(h)[c_ + 1], &(h)[c_]) ? c_ + 1 : c_;         \
            uint32_t b2_ = before((tm), &(h)[c_ + 3], &(h)[c_ + 2]) ? c_ + 3 : c_ + 2; \
            (best) = before((tm), &(h)[b2_], &(h)[b1_]) ? b2_ : b1_;                   \
        } else if (c_ < (n)) {                                                         \
            (best) = least_of((tm), (h), c_, (n));                                     \
        } else {                                                                       \
            break;                                                                     \
        }                                                                              \
    }

static void sift_down(ioq_loop *loop, uint32_t i)
{
    ioq__timer_ent *h = loop->heap, e = h[i];
    unsigned char **tm = loop->tmc;
    uint32_t n = loop->heap_len, best;
    for (;;) {
        LEAST_CHILD_OR_BREAK(tm, h, i, n, best);
        if (!before(tm, &h[best], &e))
            break;
        place(tm, h, i, h[best]);
        i = best;
    }
    place(tm, h, i, e);
}

/* Take the top entry out. The last entry, which takes its place, is nearly always among
 * the latest deadlines: the hole goes down to a leaf along the least children without
 * comparing it (a comparison per level saved), and it is sifted up from there. */
static void pop_top(ioq_loop *loop)
{
    ioq__timer_ent *h = loop->heap;
    unsigned char **tm = loop->tmc;
    uint32_t n = --loop->heap_len, i = 0, best;
    if (n == 0)
        return;
    for (;;) {
        LEAST_CHILD_OR_BREAK(tm, h, i, n, best);
        place(tm, h, i, h[best]);
        i = best;
    }
    h[i] = h[n];
    sift_up(loop, i);
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
    op->seq = ++loop->timer_seq; /* from 1: the dead op's 0 sorts first */
    op->at = IOQ__AT_TIMER;
    loop->heap[loop->heap_len] = (ioq__timer_ent){ deadline, ioq__timer_index(loop, op), 0 };
    sift_up(loop, loop->heap_len++);
    /* A host sleeping on ioq_loop_fd() needs the new earliest deadline armed now. */
    if (loop->embedded && op->heap_idx == 0 && deadline < loop->armed_deadline &&
        loop->backend->arm_timer) {
        loop->armed_deadline = deadline;
        loop->backend->arm_timer(loop, deadline);
    }
    return 0;
}

void ioq__timer_kill(ioq_loop *loop, ioq__op *op)
{
    uint32_t i = op->heap_idx;
    loop->heap[i].op = 0; /* the dead op */
    loop->heap_dead++;
    op->at = IOQ__AT_NONE;
    sift_up(loop, i); /* past parents of the same deadline only: rarely a move */
}

/* Drop every dead entry and rebuild the heap from the live ones (Floyd's bottom-up
 * construction, then each op learns its place). */
static void compact(ioq_loop *loop)
{
    ioq__timer_ent *h = loop->heap;
    uint32_t n = 0;
    if (loop->heap_dead < loop->heap_len) {
        for (uint32_t i = 0; i < loop->heap_len; i++)
            if (h[i].op != 0)
                h[n++] = h[i];
    }
    loop->heap_len = n;
    loop->heap_dead = 0;
    for (uint32_t i = n / ARITY + 1; i-- > 0;)
        if (i < n)
            sift_down(loop, i);
    for (uint32_t i = 0; i < n; i++)
        ioq__timer_op(loop, h[i].op)->heap_idx = i;
}

ioq__op *ioq__timer_due(ioq_loop *loop, uint64_t now)
{
    ioq__op *op;
    if (loop->heap_dead > loop->heap_len / 2)
        compact(loop);
    if (ioq__timer_next(loop) > now) /* also when the heap is empty: UINT64_MAX */
        return NULL;
    op = ioq__timer_op(loop, loop->heap[0].op);
    pop_top(loop);
    op->at = IOQ__AT_NONE;
    return op;
}

uint64_t ioq__timer_next(ioq_loop *loop)
{
    while (loop->heap_len && loop->heap[0].op == 0) {
        pop_top(loop);
        loop->heap_dead--;
    }
    return loop->heap_len ? loop->heap[0].deadline : UINT64_MAX;
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
    uint32_t i;
    ioq__op_unregister(loop, op);
    op->heap_idx = loop->cq_out + ioq__cq_count(loop);
    if (cancel_token) {
        op->cancel_token = *cancel_token;
        op->at = IOQ__AT_DONE_CANCEL;
    } else {
        op->at = IOQ__AT_DONE;
    }
    i = ioq__timer_index(loop, op);
    op->tnext = 0;
    if (loop->tdone_tail)
        ioq__timer_op(loop, loop->tdone_tail)->tnext = i;
    else
        loop->tdone_head = i;
    loop->tdone_tail = i;
    loop->ntdone++;
    ioq__ready_signal(loop);
}
