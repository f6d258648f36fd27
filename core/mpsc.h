/*
 * The lock-free queues that carry work between threads: an intrusive multi-producer
 * single-consumer queue (posts and thread-pool results travel to the loop thread on it)
 * and a bounded index queue (the free list of a loop's preallocated post records).
 * Implemented in mpsc.c. Not part of the ABI.
 */
#ifndef IOQ_MPSC_H
#define IOQ_MPSC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- lock-free multi-producer single-consumer queue (Vyukov, intrusive) --------------- */
typedef struct ioq__mpsc_node {
    _Atomic(struct ioq__mpsc_node *) next;
    uint32_t kind; /* IOQ__MPSC_* */
} ioq__mpsc_node;

enum { IOQ__MPSC_STUB, IOQ__MPSC_POST, IOQ__MPSC_POST_POOLED, IOQ__MPSC_OP };

typedef struct ioq__mpsc {
    _Atomic(ioq__mpsc_node *) head; /* producers swap themselves in here */
    ioq__mpsc_node *tail;           /* consumer side */
    ioq__mpsc_node stub;
} ioq__mpsc;

void ioq__mpsc_init(ioq__mpsc *q);
void ioq__mpsc_push(ioq__mpsc *q, ioq__mpsc_node *n);
/* NULL when empty, or when a producer is between its swap and its link (try again). */
ioq__mpsc_node *ioq__mpsc_pop(ioq__mpsc *q);
bool ioq__mpsc_empty(ioq__mpsc *q);

/* --- bounded multi-producer multi-consumer queue of indices (Vyukov) -------------------- */
/* Posting threads take, the loop thread gives back; no locks and, unlike a lock-free stack,
 * no ABA: every cell carries a sequence number. */
typedef struct ioq__idxq_cell {
    _Atomic size_t seq;
    uint32_t idx;
} ioq__idxq_cell;

typedef struct ioq__idxq {
    ioq__idxq_cell *cells;
    size_t mask;
    _Atomic size_t take_pos;
    size_t give_pos;
} ioq__idxq;

/* cap: a power of two. Starts empty. false: out of memory. */
bool ioq__idxq_init(ioq__idxq *q, size_t cap);
void ioq__idxq_fini(ioq__idxq *q);
/* Any thread. false when empty. */
bool ioq__idxq_take(ioq__idxq *q, uint32_t *idx);
/* One thread only. false when the cell is still held by a taker between its two steps. */
bool ioq__idxq_give(ioq__idxq *q, uint32_t idx);

#endif /* IOQ_MPSC_H */
