/*
 * Internal structures of ioq shared by the core and the backends. Not part of the ABI.
 *
 * Data flow: a submit call validates its arguments, resolves the handle, takes an op from
 * the slab and hands it to the backend (or to the core's timers or thread pool). Whoever
 * finishes the op calls ioq__complete(), which appends a 32-byte record to the loop's
 * completion ring and, for a final completion, gives the op back to the slab. ioq_poll()
 * copies records out of the ring. Nothing ever calls back into the caller.
 */
#ifndef IOQ_INTERNAL_H
#define IOQ_INTERNAL_H

#include "ioq.h"
#include "platform.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ioq__op ioq__op;
typedef struct ioq__handle ioq__handle;
typedef struct ioq__pool ioq__pool;
typedef struct ioq__backend ioq__backend;

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

typedef struct ioq__post {
    ioq__mpsc_node node; /* kind IOQ__MPSC_POST (malloc'ed) or IOQ__MPSC_POST_POOLED */
    uint64_t token;
    int64_t result;
} ioq__post;

/* Bounded multi-producer multi-consumer queue of indices (Vyukov): the free list of a loop's
 * preallocated post records. Posting threads take, the loop thread gives back; no locks
 * and, unlike a lock-free stack, no ABA: every cell carries a sequence number. */
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

/* --- operations ------------------------------------------------------------------------ */

/* Where an op currently waits: tells cancel which mechanism owns it. */
enum {
    IOQ__AT_NONE,    /* being set up, or completing */
    IOQ__AT_BACKEND, /* owned by the backend (a readiness queue, the ring, an OVERLAPPED) */
    IOQ__AT_TIMER,   /* in the core's timer heap */
    IOQ__AT_POOL,    /* queued for, or running on, a thread-pool worker (see tp_running) */
    IOQ__AT_CLOSE    /* a close waiting for its handle's ops to drain */
};

typedef struct ioq__opq {
    ioq__op *head, *tail;
} ioq__opq;

typedef void (*ioq__work_fn)(ioq__op *op);

/* An op is a common head and one of two bodies. Timers, the most numerous ops, use only the
 * short body and come from their own slab of IOQ__TIMER_OP_SIZE-byte records (about a third
 * of a full op): code that may see a timer touches nothing past the timer body. */
struct ioq__op {
    uint64_t token;
    uint16_t code;      /* IOQ_OP_* */
    uint8_t at;         /* IOQ__AT_* */
    uint8_t cancelled;  /* a cancel was requested; complete with IOQ_ECANCELED if possible */
    uint8_t tp_running; /* a worker runs it (written under the pool's lock) */
    uint8_t indexed;    /* in the token index */
    uint8_t pad_[2];
    uint32_t flags;     /* submission flags (IOQ_MULTISHOT, open flags, ...) */
    ioq__handle *h;     /* the handle it works on (a new one for connect), or NULL */
    ioq__op *hnext, *hprev;  /* list of the handle's pending ops */
    ioq__op *qnext, *qprev;  /* readiness queue / thread-pool queue / slab free list links */
    ioq__op *tnext;          /* token hash chain */

    union {
        struct {                /* IOQ_OP_TIMEOUT */
            uint64_t deadline;  /* ns on the loop's clock */
            uint64_t seq;       /* submission order among equal deadlines */
            uint32_t heap_idx;  /* index in the heap */
        };
        struct {                /* every other op */
            void *buf;          /* recv/send/read/write buffer */
            size_t len;
            size_t done;        /* bytes moved so far (partial sends, gather sends) */
            union {
                uint64_t offset; /* read/write: file offset */
                size_t iovoff;   /* sendv: bytes of iov[iovpos] already sent */
            };
            ioq_iov *iov;       /* sendv: private copy of the array (iov_small or heap) */
            uint32_t iovcnt;
            uint32_t iovpos;    /* first entry not yet fully sent */
            ioq_addr *addr_out; /* recvfrom sender, resolve output array (caller memory) */
            char *path;         /* open / local connect / resolve host: private copy */
            char *path2;        /* resolve service */
            union {
                uint32_t mode;   /* open: permission bits for a created file */
                uint32_t max;    /* resolve: entries of addr_out */
            };
            ioq__pool *pool;    /* recv_pool */
            union {
                struct {        /* socket ops */
                    ioq_iov iov_small[2];
                    ioq_addr addr;  /* connect / sendto destination, copied */
                };
                struct {        /* thread-pool work (files, resolve) and its result */
                    ioq__work_fn work;
                    ioq__mpsc_node node;
                    int64_t res;
                    uint64_t res_value;
                    int64_t res_fd; /* open: the new descriptor */
                };
            };

            void *be;           /* backend private, malloc'ed; freed with the op */
            uint64_t be_u64;
        };
    };
};

/* Bytes of a timer op: the head and the timer body, rounded up to the op's alignment. */
#define IOQ__TIMER_OP_SIZE \
    ((offsetof(ioq__op, heap_idx) + sizeof(uint32_t) + _Alignof(ioq__op) - 1) & \
     ~(_Alignof(ioq__op) - 1))

/* A timer heap entry: the op and a copy of its deadline (see timer.c). */
typedef struct ioq__timer_ent {
    uint64_t deadline;
    ioq__op *op;
} ioq__timer_ent;

/* --- handles --------------------------------------------------------------------------- */
enum {
    IOQ__K_FREE = 0,
    IOQ__K_TCP = IOQ_KIND_TCP,
    IOQ__K_TCP_LISTENER = IOQ_KIND_TCP_LISTENER,
    IOQ__K_UDP = IOQ_KIND_UDP,
    IOQ__K_LOCAL = IOQ_KIND_LOCAL,
    IOQ__K_LOCAL_LISTENER = IOQ_KIND_LOCAL_LISTENER,
    IOQ__K_FILE = IOQ_KIND_FILE,
    IOQ__K_POOL = 7,
    IOQ__K_CONNECTING = 8 /* a socket being connected: not visible until its completion */
};

/* Readiness state bits for the epoll/kqueue backends. */
#define IOQ__R_READABLE 0x01u
#define IOQ__R_WRITABLE 0x02u
#define IOQ__R_CLOSING  0x04u
#define IOQ__R_REG      0x08u /* registered with the kernel multiplexer */
#define IOQ__R_EOF      0x20u /* end of stream or an error is pending behind the data */

#define IOQ__POST_POOL 1024 /* posts in flight before ioq_post falls back to malloc */
#define IOQ__HANDLE_CHUNK 256
#define IOQ__OP_CHUNK 256
#define IOQ__INDEX_BITS 24
#define IOQ__GEN_BITS 24
#define IOQ__INDEX_MASK ((1u << IOQ__INDEX_BITS) - 1)
#define IOQ__GEN_MASK ((1u << IOQ__GEN_BITS) - 1)

struct ioq__handle {
    uint32_t index;
    uint32_t gen;       /* bumped when the handle is closed: old values become stale */
    uint8_t kind;       /* IOQ__K_* */
    uint8_t family;     /* IOQ_AF_* for sockets, 0 otherwise */
    uint16_t rstate;    /* IOQ__R_* */
    uint32_t nops;      /* pending ops on it */
    int64_t fd;         /* OS descriptor, -1 when none */
    ioq__op *ops;       /* pending ops (hnext/hprev) */
    ioq__op *close_op;  /* the close waiting for ops to drain */
    ioq__opq readq, writeq;
    ioq__pool *pool;    /* kind POOL */
    ioq__handle *next_free;
    void *be;           /* backend private */
};

/* --- provided-buffer pools ------------------------------------------------------------ */
struct ioq__pool {
    ioq__handle *h;
    uint32_t count, size;
    uint8_t *mem;
    uint32_t *free_ids; /* stack of ids in the pool */
    uint32_t nfree;
    uint8_t *held;      /* per id: 1 while the caller holds it (or the kernel has it) */
    uint32_t users;     /* pending recv_pool ops */
    uint32_t bgid;      /* backend's group id */
    void *be;           /* backend private (an io_uring buffer ring) */
};

/* --- the thread pool -------------------------------------------------------------------- */
typedef struct ioq__tpool {
    ioq__mutex lock;
    ioq__cond cond;
    ioq__opq queue;
    ioq__thread *threads;
    uint32_t nthreads, wanted;
    bool stop;
    bool started;
} ioq__tpool;

/* --- the loop ---------------------------------------------------------------------------- */
struct ioq_loop {
    const ioq__backend *backend;
    void *be;                       /* backend state */
    uint16_t tag;                   /* handle tag: tells this loop's handles from others' */

    /* completion ring */
    ioq_cqe *cq;
    uint32_t cq_head, cq_tail, cq_mask; /* head/tail count up; mask = capacity - 1 */

    /* handles */
    ioq__handle **hchunks;
    uint32_t nchunks, nhandles;     /* chunks allocated; slots handed out so far */
    ioq__handle *hfree;

    /* op slab */
    ioq__op **ochunks;
    uint32_t nochunks;
    ioq__op *ofree;
    uint32_t nops_live;             /* ops of both slabs */
    unsigned char **tmchunks;       /* timer ops: IOQ__OP_CHUNK records of IOQ__TIMER_OP_SIZE */
    uint32_t ntmchunks;
    ioq__op *tmfree;

    /* token hash */
    ioq__op **tbuckets;
    uint32_t tmask;                 /* buckets - 1, buckets = 2^(64 - tshift) */
    uint32_t tcount;
    uint32_t tshift;

    /* timers: 4-ary min-heap on (deadline, seq), see timer.c */
    ioq__timer_ent *heap;
    uint32_t heap_len, heap_cap;
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
    _Atomic int wake_sent;          /* a backend wake is in flight: coalesce */
    _Atomic int wake_requested;     /* ioq_wake(): the next poll returns */
    ioq__tpool tp;

    uint32_t threadpool_size;
    bool in_poll;
    bool in_free;
    bool embedded;                  /* ioq_loop_fd() was called */
    bool skipped_wait;              /* last poll returned without asking the kernel */
};

/* --- backends ------------------------------------------------------------------------------ */
struct ioq__backend {
    const char *name;
    uint32_t id;                                     /* IOQ_BACKEND_* */
    int (*init)(ioq_loop *loop);                     /* 0 or IOQ_E* */
    void (*fini)(ioq_loop *loop);                    /* end everything; no completions */
    int (*start)(ioq_loop *loop, ioq__op *op);       /* 0: accepted; < 0: rejected */
    void (*cancel)(ioq_loop *loop, ioq__op *op);     /* op still completes exactly once */
    int (*wait)(ioq_loop *loop, int64_t timeout_ns); /* flush, wait, complete what is done */
    void (*wake)(ioq_loop *loop);                    /* any thread */
    int (*handle_open)(ioq_loop *loop, ioq__handle *h);  /* a new descriptor joins */
    void (*handle_close)(ioq_loop *loop, ioq__handle *h);/* ops drained: release it */
    int64_t (*loop_fd)(ioq_loop *loop);
    void (*arm_timer)(ioq_loop *loop, uint64_t deadline); /* embedded mode only */
    int (*pool_new)(ioq_loop *loop, ioq__pool *pool);     /* optional */
    void (*pool_free)(ioq_loop *loop, ioq__pool *pool);   /* optional */
    void (*buf_release)(ioq_loop *loop, ioq__pool *pool, uint32_t id); /* optional */
    uint32_t (*caps)(ioq_loop *loop);
};

extern const ioq__backend ioq__backend_epoll;
extern const ioq__backend ioq__backend_uring;
extern const ioq__backend ioq__backend_kqueue;
extern const ioq__backend ioq__backend_iocp;

/* --- core services used by the backends ----------------------------------------------------- */

/* Append a completion. Without IOQ_CQE_MORE it is the op's final one: the op is released. */
void ioq__complete(ioq_loop *loop, ioq__op *op, int64_t result, uint64_t value,
                   uint16_t flags);

ioq__handle *ioq__handle_new(ioq_loop *loop, uint8_t kind, int64_t fd);
/* A slot for descriptor fd, registered with the backend: 0 (*out set) or IOQ_E*. On failure
 * the slot is gone and fd is left to the caller, open. */
int ioq__handle_open(ioq_loop *loop, uint8_t kind, uint8_t family, int64_t fd,
                     ioq__handle **out);
/* Release a slot whose descriptor is already closed (or never opened). */
void ioq__handle_free(ioq_loop *loop, ioq__handle *h);
ioq_handle ioq__handle_value(const ioq_loop *loop, const ioq__handle *h);
/* Close the descriptor (backend, then OS) and free the slot. */
void ioq__handle_destroy(ioq_loop *loop, ioq__handle *h);
ioq__handle *ioq__handle_at(const ioq_loop *loop, uint32_t index);

/* Readiness queue helpers. */
void ioq__opq_push(ioq__opq *q, ioq__op *op);
void ioq__opq_remove(ioq__opq *q, ioq__op *op);
/* Stream order (contract rule 7). Every backend keeps a handle's receives in its read queue
 * and its sends and shutdown in its write queue, and only the head of each is ever in
 * progress. ioq__order_queue: the queue op belongs in, NULL for ops that need no order.
 * For completion backends, which issue operations to the kernel: */
typedef int (*ioq__issue_fn)(ioq_loop *loop, ioq__op *op);
ioq__opq *ioq__order_queue(ioq__op *op);
/* Queue op and issue it if it is the head; on a negative return nothing remains queued. */
int ioq__order_start(ioq_loop *loop, ioq__op *op, ioq__issue_fn issue);
/* op finished (a final completion unless flags has IOQ_CQE_MORE): complete it and issue
 * the ops behind it until one is in flight (one that cannot be issued completes with the
 * error). */
void ioq__order_finish(ioq_loop *loop, ioq__op *op, int64_t res, uint64_t value,
                       uint16_t flags, ioq__issue_fn issue);
/* Cancel an op still waiting behind the head of its queue: it never reached the kernel. */
void ioq__order_cancel_queued(ioq_loop *loop, ioq__op *op);

/* A gather send moved n more bytes: advance op->done and its (iovpos, offset) position,
 * offset being the bytes of iov[iovpos] already sent. */
void ioq__sendv_advance(ioq__op *op, size_t n);

/* Thread pool: run op->work on a worker; the op completes on the loop thread. */
int ioq__tp_submit(ioq_loop *loop, ioq__op *op, ioq__work_fn work);

/* Timers. */
int ioq__timer_add(ioq_loop *loop, ioq__op *op);
void ioq__timer_remove(ioq_loop *loop, ioq__op *op);

/* Pools: take a free buffer for a receive (UINT32_MAX when empty) / put one back. */
uint32_t ioq__pool_take(ioq__pool *pool);
void ioq__pool_put(ioq__pool *pool, uint32_t id);
void *ioq__pool_buf(ioq__pool *pool, uint32_t id);

/* --- OS layer (core/backend/posix.c or the Windows backend) -------------------------------- */
uint64_t ioq__os_now(void);
int ioq__os_errno_map(int oserr);        /* OS error -> IOQ_E* */
int ioq__os_tcp_listen(const ioq_addr *addr, uint32_t backlog, uint32_t flags, int64_t *fd);
int ioq__os_udp_bind(const ioq_addr *addr, uint32_t flags, int64_t *fd);
int ioq__os_local_listen(const char *path, uint32_t backlog, uint32_t flags, int64_t *fd);
int ioq__os_sockname(int64_t fd, bool peer, ioq_addr *out);
/* Apply a socket option that ioq_setopt() has checked (value range, kind). */
int ioq__os_setopt(int64_t fd, uint8_t kind, uint32_t opt, int64_t value);
int ioq__os_adopt(int64_t fd, uint32_t kind, uint8_t *family);
void ioq__os_close(int64_t fd);
void ioq__os_file_work(ioq__op *op);     /* open/read/write/fsync on a worker */
void ioq__os_resolve_work(ioq__op *op);  /* getaddrinfo on a worker */
bool ioq__os_valid_fd(uint64_t os_handle);

/* --- op and handle plumbing (loop.c) ------------------------------------------------------ */
ioq__op *ioq__op_new(ioq_loop *loop, uint16_t code, uint64_t token);
void ioq__op_attach(ioq__op *op, ioq__handle *h);
void ioq__op_register(ioq_loop *loop, ioq__op *op);
void ioq__op_reject(ioq_loop *loop, ioq__op *op);
void ioq__op_free(ioq_loop *loop, ioq__op *op);
void ioq__op_cancel(ioq_loop *loop, ioq__op *op);
ioq__handle *ioq__handle_get(const ioq_loop *loop, ioq_handle v, uint32_t kinds);
/* Any allocated slot behind v, also a socket still connecting or a handle being closed
 * (for backends mapping kernel events back to handles); NULL when stale. */
ioq__handle *ioq__handle_find(const ioq_loop *loop, uint64_t v);
bool ioq__cq_room(ioq_loop *loop, uint32_t n);
void ioq__wake_if_blocked(ioq_loop *loop);
void ioq__pool_destroy(ioq_loop *loop, ioq__pool *pool);
int ioq__tp_init(ioq_loop *loop);
void ioq__tp_stop(ioq_loop *loop);
bool ioq__tp_cancel(ioq_loop *loop, ioq__op *op);
void ioq__tp_finish(ioq_loop *loop, ioq__op *op);

#define IOQ__KIND_BIT(k) (1u << (k))
#define IOQ__STREAM_KINDS (IOQ__KIND_BIT(IOQ__K_TCP) | IOQ__KIND_BIT(IOQ__K_LOCAL))
#define IOQ__SOCKET_KINDS (IOQ__STREAM_KINDS | IOQ__KIND_BIT(IOQ__K_UDP))
#define IOQ__LISTENER_KINDS \
    (IOQ__KIND_BIT(IOQ__K_TCP_LISTENER) | IOQ__KIND_BIT(IOQ__K_LOCAL_LISTENER))
#define IOQ__TCP_KINDS (IOQ__KIND_BIT(IOQ__K_TCP) | IOQ__KIND_BIT(IOQ__K_TCP_LISTENER))
#define IOQ__ANY_SOCKET_KINDS (IOQ__SOCKET_KINDS | IOQ__LISTENER_KINDS)

/* --- small helpers ------------------------------------------------------------------------- */
char *ioq__strdup(const char *s);

#endif /* IOQ_INTERNAL_H */
