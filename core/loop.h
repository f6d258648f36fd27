/*
 * Private to core/: the loop itself and the core's own plumbing. Backends include
 * backend.h only and reach the loop through the services declared there.
 *
 * Where each mechanism lives:
 *   loop.c       loop life: new, free, backend choice, the backend's accessors
 *   poll.c       the completion ring's growth, ioq_poll, ioq_submit, due timers
 *   handle.c     the handle table: slots, generations, values, open and destroy
 *   opslab.c     the op slabs, the token index, an op's life from new to complete
 *   cancel.c     ioq_cancel and ioq_close
 *   post.c       ioq_post, ioq_wake and draining the cross-thread queue
 *   ops.c        the public submission calls
 *   order.c      stream order (per-handle read and write queues); opq.h the queue
 *   progress.c   I/O progress shared by the backends: gather sends, short sends and
 *                writes resumed, connects, accepted sockets and opened files as handles
 *   timer.c      the timer heap; threadpool.c the workers; pool.c provided buffers
 *   mpsc.c       the lock-free queues; error.c error texts; addr.c address text
 */
#ifndef IOQ_LOOP_H
#define IOQ_LOOP_H

#include "backend.h"
#include "mpsc.h"
#include "os.h"
#include "platform.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A cross-thread post on its way to the loop thread. */
typedef struct ioq__post {
    ioq__mpsc_node node; /* kind IOQ__MPSC_POST (malloc'ed) or IOQ__MPSC_POST_POOLED */
    uint64_t token;
    int64_t result;
} ioq__post;

/* Bytes of a timer op: the head and the timer body (opslab.c checks that they fit). */
#define IOQ__TIMER_OP_SHIFT 5
#define IOQ__TIMER_OP_SIZE (1u << IOQ__TIMER_OP_SHIFT)

#define IOQ__POST_POOL 1024 /* posts in flight before ioq_post falls back to malloc */
#define IOQ__HANDLE_CHUNK 256
#define IOQ__OP_CHUNK 256
/* Op references (struct ioq__op: tnext, tprev; the token index): a timer is
 * IOQ__TREF_TIMER | its index in the timer array, a full op (chunk + 1) << 8 | its slot
 * in the chunk; 0 is no op. */
#define IOQ__TREF_TIMER 0x80000000u
#define IOQ__TREF_FIRST 0xFFFFFFFFu /* tprev of the first op of a token */
#define IOQ__TIMERS_MAX 0x7FFFF000u
/* Timer ops come in chunks of IOQ__TCHUNK_LEN records aligned to their size, whose first
 * record (index 0 of chunk 0: the dead op of timer.c) names the chunk in its token: an
 * op's index follows from its address, and a chunk never moves. */
#define IOQ__TCHUNK_SHIFT 12
#define IOQ__TCHUNK_LEN (1u << IOQ__TCHUNK_SHIFT)
#define IOQ__TCHUNK_BYTES ((size_t)IOQ__TCHUNK_LEN << IOQ__TIMER_OP_SHIFT)
#define IOQ__OCHUNKS_MAX 0x7FFFF0u

/* --- the thread pool (threadpool.c) ------------------------------------------------------- */
typedef struct ioq__tpool {
    ioq__mutex lock;
    ioq__cond cond;
    ioq__opq queue;
    ioq__thread *threads;
    uint32_t nthreads, wanted;
    bool stop;
    bool started;
} ioq__tpool;

int ioq__tp_init(ioq_loop *loop);
void ioq__tp_stop(ioq_loop *loop);
void ioq__tp_fini(ioq_loop *loop);
/* true when op was still queued and is now removed; false when a worker runs it. */
bool ioq__tp_cancel(ioq_loop *loop, ioq__op *op);
/* A worker's result reached the loop thread: complete the op. */
void ioq__tp_finish(ioq_loop *loop, ioq__op *op);

/* --- timers (timer.c) -------------------------------------------------------------------- */

/* A timer heap entry: a copy of its op's deadline and the op's index in the timer array
 * (0, the dead op, for a cancelled one: see timer.c). */
typedef struct ioq__timer_ent {
    uint64_t deadline;
    uint32_t op;
    uint32_t unused;
} ioq__timer_ent;

int ioq__timer_add(ioq_loop *loop, ioq__op *op);
/* A pending timer is cancelled: its heap entry dies, the op is the caller's to finish. */
void ioq__timer_kill(ioq_loop *loop, ioq__op *op);
/* The next timer due at `now`, out of the heap, or NULL. */
ioq__op *ioq__timer_due(ioq_loop *loop, uint64_t now);
/* The earliest deadline of a live timer, or UINT64_MAX. */
uint64_t ioq__timer_next(ioq_loop *loop);
/* A timer left the heap (fired, or cancelled: op->cancelled) and out of the token index:
 * its record waits in the op, in the list of finished timers, until ioq_poll copies it.
 * With cancel_token != NULL the op also carries the record of the ioq_cancel that ended
 * it (result 1), which follows the timer's own. Never fails: nothing is allocated. */
void ioq__timer_done(ioq_loop *loop, ioq__op *op, const uint64_t *cancel_token);
/* ioq_poll: copy up to max ready records, ring and finished timers in completion order. */
uint32_t ioq__records_out(ioq_loop *loop, ioq_cqe *cqes, uint32_t max);

/* --- pools (pool.c), helpers ------------------------------------------------------------- */

void ioq__pool_destroy(ioq_loop *loop, ioq__pool *pool);
/* Whether ioq_close must refuse the pool (IOQ_EBUSY): see pool.c. */
bool ioq__pool_busy(const ioq_loop *loop, const ioq__pool *pool);
char *ioq__strdup(const char *s);

/* An entry of the descriptor index (handle.c). */
typedef struct ioq__fdent {
    int64_t fd;                     /* IOQ__FD_EMPTY, IOQ__FD_DELETED or a descriptor */
    uint32_t index;                 /* its handle's slot */
} ioq__fdent;
/* Notifier records: what ioq_notify (any thread) reaches without the handle table. Three
 * levels of 256 indexed by the notifier handle's slot index; every level is allocated
 * once and kept until the loop is freed, so a late ioq_notify never touches freed memory.
 * A record is 1 + IOQ__NLANES cache lines (IOQ__NREC_STRIDE words). Its first line: word
 * 0 is bit 63 open, bits 32..55 the handle's generation, bits 0..31 the shared count;
 * words 1..IOQ__NLANES the threads owning the lanes. Then a line per lane: a count only
 * its owner thread writes (bits 40..63 the generation it counts for, bits 0..39 the count).
 * A line each, so that a thread flooding one notifier contends with no other thread, nor
 * with whatever malloc put next to it. A leaf starts on a line boundary (notify.c:
 * leaf_new). */
#define IOQ__NREC_LEVEL 256
#define IOQ__NREC_LINE 64
#define IOQ__NLANES 4
#define IOQ__NREC_STRIDE ((1 + IOQ__NLANES) * IOQ__NREC_LINE / sizeof(uint64_t))
/* loop->notify_pending from this many fenced signals of one batch on: the signals of a
 * thread with a lane need no fence (notify.c). */
#define IOQ__NOTIFY_ARM 64
typedef struct ioq__nmid {
    _Atomic(_Atomic uint64_t *) leaf[IOQ__NREC_LEVEL];
} ioq__nmid;
typedef struct ioq__notifier ioq__notifier;

/* --- the loop ---------------------------------------------------------------------------- */
struct ioq_loop {
    const ioq__backend *backend;
    void *be;                       /* backend state */
    uint16_t tag;                   /* handle tag: unique among live loops (loop.c) */
    uint32_t gen_base;              /* first generation of this loop's slots */

    /* completion ring */
    ioq_cqe *cq;
    uint32_t cq_head, cq_tail, cq_mask; /* head/tail count up; mask = capacity - 1 */
    uint32_t cq_out;                /* records ever taken from the ring (wraps): numbers a
                                       record's place whatever ring growth does to head */
    /* Timers that have fired or were cancelled, in completion order, linked through tnext:
     * their records wait in the ops themselves (see ioq__timer_done) and ioq_poll writes
     * them straight into the caller's array, merged with the ring in completion order. */
    uint32_t tdone_head, tdone_tail; /* timer indexes, 0: none */
    uint32_t ntdone;

    /* handles */
    ioq__handle **hchunks;
    uint32_t nchunks, nhandles;     /* chunks allocated; slots handed out so far */
    ioq__handle *hfree;
    ioq__fdent *fdtab;              /* descriptor -> handle (handle.c), fdmask + 1 entries */
    uint32_t fdmask, fdused;        /* fdused: entries not empty (live and deleted) */

    /* op slab */
    ioq__op **ochunks;
    uint32_t nochunks;
    uint32_t ofree;                 /* free full ops, linked through tnext (references) */
    uint32_t nops_live;             /* full ops: each has a record reserved in the ring */
    uint32_t ntimers;               /* timer ops: each carries its own record */
    uint32_t cq_held;               /* records promised to backends (ioq__cq_hold) */
    /* Timer ops: chunks of IOQ__TCHUNK_LEN records (see IOQ__TCHUNK_SHIFT) */
    unsigned char **tmc;            /* aligned chunks */
    void **tmraw;                   /* what malloc returned for each */
    uint32_t ntmc, tmused;          /* chunks; indexes ever handed out */
    uint32_t tmfree;                /* free timer indexes, linked through tnext, 0: none */

    /* token index (opslab.c): buckets of op references */
    uint32_t *tbuckets;
    uint32_t tmask;                 /* buckets - 1, buckets = 2^(64 - tshift) */
    uint32_t tcount;
    uint32_t tshift;

    /* timers: 4-ary min-heap on (deadline, seq), see timer.c */
    ioq__timer_ent *heap;
    uint32_t heap_len, heap_cap;
    uint32_t heap_dead;             /* entries of cancelled timers still in the heap */
    uint64_t timer_seq;
    uint64_t armed_deadline;        /* embedded mode: deadline armed in the backend */

    /* cross-thread */
    ioq__mpsc mpsc;
    ioq__post *posts;               /* IOQ__POST_POOL records that ioq_post uses first */
    ioq__idxq post_free;            /* their free list */
    uint32_t *post_ret;             /* indices waiting to go back to post_free */
    uint32_t post_nret;
    ioq__mpsc_node *mpsc_held;      /* a post that found no room in the ring: first next */
    _Atomic int blocked;            /* loop thread is not looking at the queue */
    _Atomic int wake_sent;          /* IOQ__WAKE_*: a backend wake is in flight (post.c) */
    _Atomic int wake_requested;     /* ioq_wake(): the next poll returns */
    ioq__tpool tp;

    /* notifiers (notify.c) */
    uint16_t ntag;                  /* tag again, for ioq_notify: the line of tag is also
                                       the completion ring's, which the loop writes at
                                       every completion */
    _Atomic bool notify_lanes;      /* threads may count in lanes (a process barrier exists);
                                       read by every ioq_notify, so kept away from what the
                                       loop writes during a flood (lanes_dirty) */
    _Atomic(ioq__nmid *) nroot[IOQ__NREC_LEVEL];
    /* Notifications are waiting: the number of fenced signals since the loop last took
     * them (notify.c), 0 if none; from IOQ__NOTIFY_ARM on ("armed") the loop leaves it
     * until it is about to sleep. Padded to a cache line of its own: producers read it
     * at every call, and the loop's busier fields must not bounce with it (the loop is
     * only 16-byte aligned, hence padding, not _Alignas). */
    char pad_notify_[64];
    _Atomic int notify_pending;
    char pad_notify2_[64];
    bool lanes_dirty;               /* loop thread: a lane may hold a count not seen yet */
    uint64_t notify_took;           /* loop thread: when it last took an armed batch */
    ioq__notifier *notifiers;       /* live ones, for the drain */

    /* signals (signal.c) */
    _Atomic int signal_pending;     /* a signal this loop watches was delivered */
    ioq__opq sigops;                /* live ioq_signal ops (qnext/qprev) */
    uint32_t sig_slot;              /* 1 + index in the process's list of loops, or 0 */

    uint32_t threadpool_size;
    bool in_poll;
    bool in_free;
    bool embedded;                  /* ioq_loop_fd() was called */
    bool host_flush;                /* IOQ_LOOP_HOST_FLUSH */
    bool skipped_wait;              /* last poll returned without asking the kernel */
};

/* --- completion ring (poll.c) ------------------------------------------------------------ */

static inline uint32_t ioq__cq_count(const ioq_loop *loop)
{
    return loop->cq_tail - loop->cq_head;
}

/* The timer op of index i, and back. */
static inline ioq__op *ioq__timer_at(unsigned char *const *tmc, uint32_t i)
{
    return (ioq__op *)(void *)(tmc[i >> IOQ__TCHUNK_SHIFT] +
                               ((size_t)(i & (IOQ__TCHUNK_LEN - 1)) << IOQ__TIMER_OP_SHIFT));
}

static inline ioq__op *ioq__timer_op(const ioq_loop *loop, uint32_t i)
{
    return ioq__timer_at(loop->tmc, i);
}

static inline uint32_t ioq__timer_index(const ioq_loop *loop, const ioq__op *op)
{
    uintptr_t p = (uintptr_t)op, off = p & (IOQ__TCHUNK_BYTES - 1);
    const ioq__op *first = (const ioq__op *)(p - off);
    (void)loop;
    return (uint32_t)first->token << IOQ__TCHUNK_SHIFT | (uint32_t)(off >> IOQ__TIMER_OP_SHIFT);
}

/* An op's reference (see IOQ__TREF_TIMER), and the op a reference names. */
static inline uint32_t ioq__op_ref(const ioq_loop *loop, const ioq__op *op)
{
    return op->code == IOQ_OP_TIMEOUT ? IOQ__TREF_TIMER | ioq__timer_index(loop, op) : op->ref;
}

static inline ioq__op *ioq__op_at(const ioq_loop *loop, uint32_t ref)
{
    if (ref & IOQ__TREF_TIMER)
        return ioq__timer_op(loop, ref & ~IOQ__TREF_TIMER);
    return &loop->ochunks[(ref >> 8) - 1][ref & 255];
}

/* The op after op in its token-index chain, or NULL at the chain's end. */
static inline ioq__op *ioq__token_next(const ioq_loop *loop, const ioq__op *op)
{
    return op->tnext ? ioq__op_at(loop, op->tnext) : NULL;
}

/* Records ioq_poll can hand out: the ring's and the finished timers'. */
static inline uint32_t ioq__ready_count(const ioq_loop *loop)
{
    return ioq__cq_count(loop) + loop->ntdone;
}

/* loop->wake_sent: no wake since the loop last looked (IDLE); a thread is in the backend's
 * wake call (SENDING); a wake was made and has not been seen yet (SENT). */
#define IOQ__WAKE_IDLE 0
#define IOQ__WAKE_SENDING 1
#define IOQ__WAKE_SENT 2
/* Wake the loop unless a wake is in flight already (any thread; post.c). */
void ioq__wake_send(ioq_loop *loop);

/* A host that sleeps on ioq_loop_fd() must learn of records made outside ioq_poll(): the
 * first ready record wakes it. Such records are made only on the loop's thread, inside the
 * host's own calls (a send done in its submit call, a cancel); an IOQ_LOOP_HOST_FLUSH host
 * calls ioq_submit or ioq_poll before it sleeps, so its wake waits for that ioq_submit
 * (poll.c), and a host that polls instead costs none. */
static inline void ioq__ready_signal(ioq_loop *loop)
{
    if (loop->embedded && !loop->in_poll && !loop->host_flush && ioq__ready_count(loop) == 1)
        ioq__wake_send(loop);
}

/* Test builds with the fault layer (fault.c): whether this check for room fails as if the
 * ring could not grow. */
#ifdef IOQ_FAULT_INJECTION
int ioq__fault_alloc(void);
#else
#  define ioq__fault_alloc() 0
#endif

/* Grow the ring for `extra` more records: out of line, the rare case of ioq__cq_reserve. */
bool ioq__cq_grow(ioq_loop *loop, uint32_t extra);

/* Make room for `extra` more records, beyond those promised to backends (ioq__cq_hold),
 * which nobody else may take. The ring never shrinks; growth keeps records in order. */
static inline bool ioq__cq_reserve(ioq_loop *loop, uint32_t extra)
{
    uint64_t want = (uint64_t)extra + loop->cq_held;
    if (ioq__cq_count(loop) + want <= (uint64_t)loop->cq_mask + 1)
        return true;
    return want <= UINT32_MAX && ioq__cq_grow(loop, (uint32_t)want);
}

/* Write a record at the tail, where there is room. */
static inline void ioq__cq_store(ioq_loop *loop, uint64_t token, int64_t result, uint64_t value,
                                 uint16_t op, uint16_t flags, uint32_t reserved)
{
    ioq_cqe *c = &loop->cq[loop->cq_tail & loop->cq_mask];
    c->token = token;
    c->result = result;
    c->value = value;
    c->op = op;
    c->flags = flags;
    c->reserved = reserved;
    loop->cq_tail++;
    ioq__ready_signal(loop);
}

/* ioq__cq_push_tagged into a full ring: grow it first (out of line, so that the common
 * case saves no registers for a call it never makes). */
void ioq__cq_push_grow(ioq_loop *loop, uint64_t token, int64_t result, uint64_t value,
                       uint16_t op, uint16_t flags, uint32_t reserved);

/* Append a record; `reserved` is 0 but for a pooled receive's (see ioq__pool_busy). */
static inline void ioq__cq_push_tagged(ioq_loop *loop, uint64_t token, int64_t result,
                                       uint64_t value, uint16_t op, uint16_t flags,
                                       uint32_t reserved)
{
    /* Every live op reserved its final record when it was accepted; only multishot records
     * and posts can need growth here, and their producers check ioq__cq_reserve first. */
    if (ioq__cq_count(loop) == loop->cq_mask + 1)
        ioq__cq_push_grow(loop, token, result, value, op, flags, reserved);
    else
        ioq__cq_store(loop, token, result, value, op, flags, reserved);
}

static inline void ioq__cq_push(ioq_loop *loop, uint64_t token, int64_t result, uint64_t value,
                                uint16_t op, uint16_t flags)
{
    ioq__cq_push_tagged(loop, token, result, value, op, flags, 0);
}

/* Leaving ioq_poll/ioq_submit (or becoming embedded): see poll.c. */
void ioq__leave_poll(ioq_loop *loop);

/* --- handles (handle.c) ------------------------------------------------------------------ */

static inline ioq__handle *ioq__handle_at(const ioq_loop *loop, uint32_t index) /* < nhandles */
{
    return &loop->hchunks[index / IOQ__HANDLE_CHUNK][index % IOQ__HANDLE_CHUNK];
}
/* A slot of kind, not registered with the backend (pools; connects before their socket). */
ioq__handle *ioq__handle_new(ioq_loop *loop, uint8_t kind, int64_t fd);
/* ioq__handle_open for a descriptor ioq has just made: on failure fd is closed. */
int ioq__handle_take(ioq_loop *loop, uint8_t kind, uint8_t family, int64_t fd,
                     ioq__handle **out);
/* ioq__handle_find (backend.h), inline for the core's calls: every send and buffer
 * release looks its handle up. */
static inline ioq__handle *ioq__handle_lookup(const ioq_loop *loop, uint64_t v)
{
    uint32_t index = (uint32_t)(v & IOQ__INDEX_MASK);
    uint32_t gen = (uint32_t)(v >> IOQ__INDEX_BITS) & IOQ__GEN_MASK;
    ioq__handle *h;

    if ((uint16_t)(v >> 48) != loop->tag || index >= loop->nhandles)
        return NULL;
    h = ioq__handle_at(loop, index);
    return h->gen == gen && h->kind != IOQ__K_FREE ? h : NULL;
}
/* The handle behind a caller's value v: live, visible, not closing, of a kind in `kinds`
 * (a bit mask of 1 << IOQ__K_*). */
static inline ioq__handle *ioq__handle_get(const ioq_loop *loop, ioq_handle v, uint32_t kinds)
{
    uint32_t index = (uint32_t)(v & IOQ__INDEX_MASK);
    ioq__handle *h;

    /* A free slot and a socket still connecting are never visible: out of `kinds`, one
     * test covers them (folded at compile time where kinds is a constant). */
    kinds &= ~(IOQ__KIND_BIT(IOQ__K_FREE) | IOQ__KIND_BIT(IOQ__K_CONNECTING));
    if ((uint16_t)(v >> 48) != loop->tag || index >= loop->nhandles)
        return NULL;
    h = ioq__handle_at(loop, index);
    if (h->gen != ((uint32_t)(v >> IOQ__INDEX_BITS) & IOQ__GEN_MASK) ||
        (h->rstate & IOQ__R_CLOSING) || !(kinds & IOQ__KIND_BIT(h->kind)))
        return NULL;
    return h;
}
/* Bump the generation: every value of h is stale from now on. */
void ioq__handle_invalidate(ioq__handle *h);
/* Release a slot whose descriptor is already closed (or never opened). */
void ioq__handle_free(ioq_loop *loop, ioq__handle *h);
/* ioq_loop_free: close every descriptor, free every pool and the table. */
void ioq__handles_fini(ioq_loop *loop);
/* The live handle whose descriptor is fd, or NULL. */
ioq__handle *ioq__handle_by_fd(ioq_loop *loop, int64_t fd);

/* Test builds reach these hidden functions through the static library; they are not part
 * of the ABI. As if n more loops had been created and freed (loop.c); as if the slot that
 * value v named had been reused n more times (handle.c): 0, or IOQ_EINVAL when that slot
 * is in use. */
void ioq__test_loop_tags_skip(uint32_t n);
void ioq__test_emulate_pools(int on);
int ioq__test_handle_reuse(ioq_loop *loop, ioq_handle v, uint32_t n);
/* fn runs after every wake call, before it is marked SENT (post.c). */
void ioq__test_wake_hook(void (*fn)(void));
/* The next n blocking pipe reads of the IOCP backend's workers end with 0 bytes and no
 * error (loop.c). */
void ioq__test_empty_reads(int n);

/* --- ops (opslab.c) ------------------------------------------------------------------------ */

/* A fresh op for a submission, with a completion record reserved for its final result. */
ioq__op *ioq__op_new(ioq_loop *loop, uint16_t code, uint64_t token);
/* Attach an op to its handle so that ioq_close can find it. */
void ioq__op_attach(ioq__op *op, ioq__handle *h);
/* Register an accepted op in the token index (before the backend can complete it). */
void ioq__op_register(ioq_loop *loop, ioq__op *op);
/* The entry checks of a submission call on a handle: the loop is usable (IOQ_EINVAL,
 * IOQ_EMISUSE) and v is a live handle of one of `kinds`, a mask of 1 << IOQ__K_*
 * (IOQ_EBADHANDLE). 0 and *h, or that error (ops.c). */
static inline int ioq__handle_arg(ioq_loop *loop, ioq_handle v, uint32_t kinds,
                                  ioq__handle **h)
{
    if (!loop)
        return IOQ_EINVAL;
    if (loop->in_free)
        return IOQ_EMISUSE;
    *h = ioq__handle_get(loop, v, kinds);
    return *h ? 0 : IOQ_EBADHANDLE;
}
/* Attach op to h (if any), register it and hand it to the backend; on rejection nothing
 * remains of it (ops.c). Returns 0 or the backend's negative IOQ_E*. */
int ioq__op_start(ioq_loop *loop, ioq__op *op, ioq__handle *h);
/* Take an op out of the token index (no-op when it is not in it). */
void ioq__op_unregister(ioq_loop *loop, ioq__op *op);
/* Undo ioq__op_register + attach for a submission that was refused. */
void ioq__op_reject(ioq_loop *loop, ioq__op *op);
/* Return an op to the slab (no completion: refused submissions and loop teardown). */
void ioq__op_free(ioq_loop *loop, ioq__op *op);
/* ioq_loop_new: the token index's first table (false without memory). */
bool ioq__token_index_init(ioq_loop *loop);
/* The first op of the token index's chain that ops with this token are in (also ops with
 * other tokens), or NULL; the next is ioq__op_at(loop, op->tnext) while tnext != 0. */
ioq__op *ioq__token_chain(const ioq_loop *loop, uint64_t token);
/* ioq_loop_free: free what live ops own, and the slabs. */
void ioq__ops_fini(ioq_loop *loop);

/* --- cancel and close (cancel.c) ------------------------------------------------------------ */

/* Ask an op to end early. It still completes exactly once, possibly right here. */
void ioq__op_cancel(ioq_loop *loop, ioq__op *op);
/* The last op of a closing handle is done: destroy the handle, complete the close. */
void ioq__close_finish(ioq_loop *loop, ioq__handle *h);

/* --- 1.1 objects (notify.c, signal.c, process.c) ------------------------------------------ */

/* Notifications are waiting (notify.c), or a lane may hold some (lanes_dirty). */
void ioq__notify_drain(ioq_loop *loop);
/* Loop thread, after it published `blocked` and before it sleeps: if a lane may hold a
 * count the loop has not seen, make every lane visible (a process-wide barrier) and take
 * them. True if it found any. */
bool ioq__notify_settle(ioq_loop *loop);
/* Loop thread, about to sleep after an armed batch: watch the lanes for a while
 * (IOQ__NOTIFY_LINGER_NS) and take them if they move. True if it found any: a flood still
 * going on is taken without the barrier that settling costs (and that interrupts every
 * signalling thread). */
bool ioq__notify_linger(ioq_loop *loop);
#define IOQ__NOTIFY_LINGER_NS 5000
/* An armed batch's lanes are looked at no more often than this (notify.c). */
#define IOQ__NOTIFY_GAP_NS 2000
void ioq__notify_fini(ioq_loop *loop);
/* Signals delivered (signal.c); ioq_loop_free: end the loop's signal ops, no completions. */
void ioq__signal_drain(ioq_loop *loop);
void ioq__signal_fini(ioq_loop *loop);
/* A parked op (IOQ__AT_CORE) is cancelled: it completes here. */
void ioq__notify_cancel(ioq_loop *loop, ioq__op *op);
void ioq__signal_cancel(ioq_loop *loop, ioq__op *op);
/* The notifier handle h goes: its record closes, its object is freed. */
void ioq__notifier_free(ioq_loop *loop, ioq__handle *h);

/* ioq_adopt of a pipe or terminal (process.c). */
int ioq__adopt_stream(ioq_loop *loop, uint64_t os_handle, uint32_t kind, ioq_handle *out);

/* --- cross-thread (post.c) ---------------------------------------------------------------- */

/* A producer queued something: wake the loop if it is (about to be) blocked. */
void ioq__wake_if_blocked(ioq_loop *loop);
/* Loop thread: the last wake has been seen; let the next one through (one still being sent
 * stays in flight). */
void ioq__wake_seen(ioq_loop *loop);
/* Loop thread, before it publishes `blocked` to sleep: wait, briefly, for a wake still
 * being sent. True if it waited: the sender may have queued more meanwhile. */
bool ioq__wake_settle(ioq_loop *loop);
static inline bool ioq__posts_pending(ioq_loop *loop)
{
    return loop->mpsc_held || !ioq__mpsc_empty(&loop->mpsc) ||
           atomic_load(&loop->notify_pending) || atomic_load(&loop->signal_pending);
}
/* Turn what the queue holds into completions: posts, and finished thread-pool work. */
void ioq__posts_drain(ioq_loop *loop);
bool ioq__posts_init(ioq_loop *loop);
void ioq__posts_fini(ioq_loop *loop);


#endif /* IOQ_LOOP_H */
