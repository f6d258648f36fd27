/*
 * The backend API: what a backend (core/backend/<name>.c) sees of ioq, and all it may use.
 * Not part of the ABI.
 *
 * The core owns the loop (struct ioq_loop is private to core/, see loop.h), the handle
 * table, the op slab, the completion ring, timers, posts and the thread pool. A backend
 * fills one ioq__backend table and works on ops and handles through their structs below
 * and the core services at the end of this file; it reaches its own state through
 * ioq__backend_data() and never touches a field of the loop.
 *
 * An op's path: a submit call (ops.c) validates, takes an op from the slab, attaches it to
 * its handle, registers its token and calls backend->start. The backend (or the core's
 * timers or thread pool) finishes it with ioq__complete(), which appends a 32-byte record
 * to the completion ring and, for a final completion, gives the op back. ioq_poll()
 * copies records out. Nothing ever calls back into the caller.
 */
#ifndef IOQ_BACKEND_H
#define IOQ_BACKEND_H

#include "ioq.h"
#include "mpsc.h"
#include "os.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ioq__handle ioq__handle;
typedef struct ioq__pool ioq__pool;

/* --- operations ------------------------------------------------------------------------ */

/* Where an op currently waits: tells cancel which mechanism owns it. */
enum {
    IOQ__AT_NONE,    /* being set up, or completing */
    IOQ__AT_BACKEND, /* owned by the backend (a readiness queue, the ring, an OVERLAPPED) */
    IOQ__AT_TIMER,   /* in the core's timer heap */
    IOQ__AT_POOL,    /* queued for, or running on, a thread-pool worker (see tp_running) */
    IOQ__AT_CLOSE,   /* a close waiting for its handle's ops to drain */
    IOQ__AT_CORE,    /* parked in a core object (a notifier's or a signal's wait) */
    /* A finished timer whose record waits in the op itself (timer.c, ioq__timer_done): */
    IOQ__AT_DONE,        /* its own record */
    IOQ__AT_DONE_CANCEL, /* its own, then that of the ioq_cancel that ended it */
    IOQ__AT_DONE_CANCEL_ONLY /* the cancel's record, the timer's one handed out */
};

/* A FIFO of ops linked through qnext/qprev (opq.h). */
typedef struct ioq__opq {
    ioq__op *head, *tail;
} ioq__opq;

typedef void (*ioq__work_fn)(ioq__op *op);

/* An op is a common head and one of two bodies. Timers, the most numerous ops, use only the
 * short body (32 bytes in all) and live in their own array (opslab.c), which moves when it
 * grows: a timer op is addressed by its index, and a pointer to one is good only until the
 * next timer is made. Code that may see a timer touches nothing past the timer body.
 * Timers never reach a backend.
 *
 * Ops link to each other by reference (ioq__op_ref): 32 bits, 0 for none. */
struct ioq__op {
    uint64_t token;
    uint16_t code;      /* IOQ_OP_* */
    uint8_t at;         /* IOQ__AT_* */
    uint8_t cancelled;  /* a cancel was requested; complete with IOQ_ECANCELED if possible */
    uint32_t heap_idx;  /* timeout: index in the timer heap; once finished, the ring
                           records taken out before its record is due (ioq__timer_done) */
    /* Token index (opslab.c): a doubly linked bucket chain, so that an op leaves it in
     * O(1) however many ops share its token. tprev is the previous op, IOQ__TREF_FIRST for
     * the bucket's first, 0 when the op is not in the index. tnext also links free ops and
     * finished timers. */
    uint32_t tnext;
    uint32_t tprev;

    union {
        union {                 /* IOQ_OP_TIMEOUT: 8 bytes, one field at a time */
            uint64_t deadline;  /* ns on the loop's clock: ioq_timeout's input to
                                 * ioq__timer_add, which copies it into the heap entry */
            uint64_t seq;       /* from then on: submission order among equal deadlines */
            uint64_t cancel_token; /* finished (IOQ__AT_DONE_CANCEL*): the cancel's token */
        };
        struct {                /* every other op */
            uint32_t ref;       /* this op's reference (set once, by its slab chunk) */
            uint8_t tp_running; /* a worker runs it (written under the pool's lock) */
            uint32_t flags;     /* submission flags (IOQ_MULTISHOT, open flags, ...) */
            ioq__handle *h;     /* the handle it works on (a new one for connect), or NULL */
            ioq__op *hnext, *hprev;  /* list of the handle's pending ops */
            ioq__op *qnext, *qprev;  /* readiness / thread-pool queue links */
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
                uint32_t events; /* watch: IOQ_WATCH_READABLE / WRITABLE asked for */
                uint32_t signum; /* signal */
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

/* Push and remove (no-op when op is not in q) need the op's links. */
#include "opq.h"

/* --- handles --------------------------------------------------------------------------- */
enum {
    IOQ__K_FREE = 0,
    IOQ__K_TCP = IOQ_KIND_TCP,
    IOQ__K_TCP_LISTENER = IOQ_KIND_TCP_LISTENER,
    IOQ__K_UDP = IOQ_KIND_UDP,
    IOQ__K_LOCAL = IOQ_KIND_LOCAL,
    IOQ__K_LOCAL_LISTENER = IOQ_KIND_LOCAL_LISTENER,
    IOQ__K_FILE = IOQ_KIND_FILE,
    IOQ__K_WATCH = IOQ_KIND_WATCH,       /* a descriptor ioq only watches: never closed */
    IOQ__K_PIPE = IOQ_KIND_PIPE,
    IOQ__K_TTY = IOQ_KIND_TTY,
    IOQ__K_PROCESS = IOQ_KIND_PROCESS,
    IOQ__K_NOTIFIER = IOQ_KIND_NOTIFIER, /* no descriptor: see notify.c */
    IOQ__K_POOL = 16,
    IOQ__K_CONNECTING = 17 /* a socket being connected: not visible until its completion */
};

#define IOQ__KIND_BIT(k) (1u << (k))
#define IOQ__STREAM_KINDS (IOQ__KIND_BIT(IOQ__K_TCP) | IOQ__KIND_BIT(IOQ__K_LOCAL))
#define IOQ__SOCKET_KINDS (IOQ__STREAM_KINDS | IOQ__KIND_BIT(IOQ__K_UDP))
#define IOQ__LISTENER_KINDS \
    (IOQ__KIND_BIT(IOQ__K_TCP_LISTENER) | IOQ__KIND_BIT(IOQ__K_LOCAL_LISTENER))
#define IOQ__TCP_KINDS (IOQ__KIND_BIT(IOQ__K_TCP) | IOQ__KIND_BIT(IOQ__K_TCP_LISTENER))
#define IOQ__ANY_SOCKET_KINDS (IOQ__SOCKET_KINDS | IOQ__LISTENER_KINDS)

/* Handle state bits (rstate). CLOSING is the core's; the others belong to the backends. */
#define IOQ__R_READABLE 0x01u /* readiness: the socket may have data */
#define IOQ__R_WRITABLE 0x02u /* readiness: the socket may take data */
#define IOQ__R_CLOSING  0x04u /* ioq_close was called: the value is already stale */
#define IOQ__R_REG      0x08u /* registered with the kernel multiplexer / completion port */
#define IOQ__R_EOF      0x20u /* end of stream or an error is pending behind the data */
#define IOQ__R_NOREAD   0x40u /* PIPE/TTY: opened write-only (recv refused) */
#define IOQ__R_NOWRITE  0x80u /* PIPE/TTY: opened read-only (send, shutdown refused) */
#define IOQ__R_SHUTWR   0x100u /* PIPE/TTY: shut down: the write end is closed, sends fail */
#define IOQ__PIPE_KINDS (IOQ__KIND_BIT(IOQ__K_PIPE) | IOQ__KIND_BIT(IOQ__K_TTY))

/* A handle value: the loop's tag (16 bits), the slot's generation and its index (see
 * core/handle.c for why neither a tag nor a generation is ever shared or reused). */
#define IOQ__INDEX_BITS 24
#define IOQ__GEN_BITS 24
#define IOQ__INDEX_MASK ((1u << IOQ__INDEX_BITS) - 1)
#define IOQ__GEN_MASK ((1u << IOQ__GEN_BITS) - 1)

struct ioq__handle {
    uint32_t index;
    uint32_t gen;       /* bumped when the handle is closed: old values become stale;
                         * above IOQ__GEN_MASK the slot is retired */
    uint8_t kind;       /* IOQ__K_* */
    uint8_t family;     /* IOQ_AF_* for sockets, 0 otherwise */
    uint16_t rstate;    /* IOQ__R_* */
    uint32_t nops;      /* pending ops on it */
    int64_t fd;         /* OS descriptor, -1 when none */
    ioq__op *ops;       /* pending ops (hnext/hprev) */
    ioq__op *close_op;  /* the close waiting for ops to drain */
    ioq__opq readq, writeq; /* stream order: see ioq__order_* */
    ioq__pool *pool;    /* kind POOL */
    void *obj;          /* the core's object of kinds without a descriptor (NOTIFIER), the
                         * OS layer's record of a PROCESS, a TTY's saved mode */
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

/* --- the backend table ------------------------------------------------------------------ */
/* One per backend, filled with designated initializers. Slots marked optional may be NULL;
 * the core checks them. Every function runs on the loop thread, except wake. */
struct ioq__backend {
    const char *name;                                /* ioq_loop_backend() */
    uint32_t id;                                     /* IOQ_BACKEND_* */
    /* Set up (ioq__backend_data_set) or say why not: IOQ_E*; AUTO then tries the next. */
    int (*init)(ioq_loop *loop);
    /* ioq_loop_free: end everything, no completions; return only when the kernel has let
     * go of every buffer (ioq__op_iter_next walks the live ops). */
    void (*fini)(ioq_loop *loop);
    /* Take an op: 0 accepted (it completes exactly once, maybe before start returns), or a
     * negative IOQ_E* with nothing left of it. */
    int (*start)(ioq_loop *loop, ioq__op *op);
    /* End an op early if possible; it still completes exactly once (op->cancelled set). */
    void (*cancel)(ioq_loop *loop, ioq__op *op);
    /* Flush submissions, wait up to timeout_ns (-1 forever, 0 not at all), complete what
     * is done. Returns a count (unused) or IOQ_E*. */
    int (*wait)(ioq_loop *loop, int64_t timeout_ns);
    /* Any thread: make a wait return soon. */
    void (*wake)(ioq_loop *loop);
    /* Optional: a descriptor joins the loop (h->fd set; h->kind may be CONNECTING). 0, or
     * IOQ_E* and the handle is not created. */
    int (*handle_open)(ioq_loop *loop, ioq__handle *h);
    /* Optional: the handle's ops have drained and its descriptor is about to be closed. */
    void (*handle_close)(ioq_loop *loop, ioq__handle *h);
    /* Optional: ioq_submit() of an embedded IOQ_LOOP_HOST_FLUSH loop: hand the queued
     * submissions to the kernel, complete nothing, leave loop_fd as it is. Without it
     * ioq_submit() runs wait(loop, 0). */
    void (*flush)(ioq_loop *loop);
    /* Optional: ioq_loop_fd(); without it IOQ_ENOTSUP. */
    int64_t (*loop_fd)(ioq_loop *loop);
    /* Optional, embedded mode only: make loop_fd readable at deadline (UINT64_MAX: never). */
    void (*arm_timer)(ioq_loop *loop, uint64_t deadline);
    /* Optional: kernel-provided buffers for a new pool (else pools are the core's alone). */
    int (*pool_new)(ioq_loop *loop, ioq__pool *pool);
    /* Optional: undo pool_new. */
    void (*pool_free)(ioq_loop *loop, ioq__pool *pool);
    /* Optional: the caller gave buffer id back (held[id] already cleared); without it the
     * core returns it to the pool's free stack. */
    void (*buf_release)(ioq_loop *loop, ioq__pool *pool, uint32_t id);
    /* IOQ_CAP_* of this loop. */
    uint32_t (*caps)(ioq_loop *loop);
    /* Optional: try a receive or send (code IOQ_OP_RECV or IOQ_OP_SEND) on h during its
     * submit call, before an op is made for it; the core has reserved its record. 1: it
     * is finished, *res is its result and, for a send that failed, *done the bytes that
     * went out (its record's value). 0: it still needs an op, which starts with *done
     * bytes already sent (the backend has noted why it could not finish: no data, no
     * room, something queued ahead). */
    int (*now)(ioq_loop *loop, ioq__handle *h, uint16_t code, void *buf, size_t len,
               int64_t *res, size_t *done);
    /* Since 1.1. A handle of kind WATCH is registered through handle_open (its descriptor
     * is the caller's: never change its flags) and unregistered through handle_close (it
     * is not closed by ioq). Its IOQ_OP_WATCH ops reach start and cancel like any other;
     * a backend that cannot watch returns IOQ_ENOTSUP from start. The readiness services
     * ioq__watch_events / ioq__watch_report below do the bookkeeping. */
    /* Since 1.1, optional: the backend waits for children by process id (kqueue's
     * EVFILT_PROC), so ioq_spawn asks the OS layer for no wait descriptor and a PROCESS
     * handle has none (fd -1). The backend registers the child at its first
     * IOQ_OP_PROCESS_WAIT (h->obj is set by then; ioq__os_process_pid gives the id) and
     * gets handle_close for it all the same; the readiness engine reaps it. */
    bool wait_by_pid;
};

extern const ioq__backend ioq__backend_epoll;
extern const ioq__backend ioq__backend_uring;
extern const ioq__backend ioq__backend_kqueue;
extern const ioq__backend ioq__backend_iocp;

/* --- core services: the loop ---------------------------------------------------------- */

/* The backend's own state (set by init; NULL before). */
void *ioq__backend_data(const ioq_loop *loop);
void ioq__backend_data_set(ioq_loop *loop, void *data);
/* ioq_loop_fd() was called: a host sleeps on that descriptor instead of in ioq_poll, so
 * work queued for the next wait must reach the kernel now. */
bool ioq__loop_embedded(const ioq_loop *loop);
/* Embedded, and the host does not flush (IOQ_LOOP_HOST_FLUSH): a backend that queues
 * submissions must hand each one to the kernel at once. With the flag the host calls
 * ioq_submit() (the backend's flush) or ioq_poll() before it sleeps. */
bool ioq__loop_submit_now(const ioq_loop *loop);
/* Test builds only: loops created from now on keep pools in the core as on kernels
 * without provided buffers (ioq__test_emulate_pools, core/loop.h). */
bool ioq__test_pools_emulated(void);
/* Test builds only: true (once per count) while this blocking pipe read should end with 0
 * bytes and no error, as a zero-length write makes it on Windows (ioq__test_empty_reads,
 * core/loop.h). */
bool ioq__test_empty_read(void);
/* The timer armed through arm_timer is gone (a one-shot fired): the next poll arms the
 * earliest deadline again. */
void ioq__timer_disarmed(ioq_loop *loop);

/* --- core services: ops ----------------------------------------------------------------- */

/* Append a completion. Without IOQ_CQE_MORE it is the op's final one: the op is released. */
void ioq__complete(ioq_loop *loop, ioq__op *op, int64_t result, uint64_t value,
                   uint16_t flags);
/* ioq__complete of a record that is not the op's last (flags has IOQ_CQE_MORE): only the
 * record, the short way (a multishot receive makes one per message). */
void ioq__complete_more(ioq_loop *loop, ioq__op *op, int64_t result, uint64_t value,
                        uint16_t flags);
/* Room in the completion ring for n records beyond those the live ops have reserved (a
 * multishot op checks before each IOQ_CQE_MORE record). false: out of memory. */
bool ioq__cq_room(ioq_loop *loop, uint32_t n);
/* Promise n records to a backend whose kernel may post that many multishot records with no
 * chance to check first (io_uring's multishot receive into a pool: one per buffer). Room
 * for them is made now and kept from everyone else until ioq__cq_unhold(n). false: out of
 * memory, nothing promised. */
bool ioq__cq_hold(ioq_loop *loop, uint32_t n);
void ioq__cq_unhold(ioq_loop *loop, uint32_t n);

/* Iterate over the live ops (accepted, no final completion yet) for fini:
 *     ioq__op_iter it = {0, 0};
 *     for (ioq__op *op; (op = ioq__op_iter_next(loop, &it)) != NULL;) ...
 * Timeouts are left out: they never reach a backend. */
typedef struct ioq__op_iter {
    uint32_t chunk, slot;
} ioq__op_iter;
ioq__op *ioq__op_iter_next(ioq_loop *loop, ioq__op_iter *it);

/* Run op->work on a thread-pool worker; the op completes on the loop thread. */
int ioq__tp_submit(ioq_loop *loop, ioq__op *op, ioq__work_fn work);

/* --- core services: handles --------------------------------------------------------------- */

/* A slot for descriptor fd, registered with the backend: 0 (*out set) or IOQ_E*. On failure
 * the slot is gone and fd is left to the caller, open. */
int ioq__handle_open(ioq_loop *loop, uint8_t kind, uint8_t family, int64_t fd,
                     ioq__handle **out);
/* A connect's new socket for its handle (kind CONNECTING), registered with the backend: 0,
 * or IOQ_E* with h->fd back at -1 and fd left to the caller, open. */
int ioq__handle_attach(ioq_loop *loop, ioq__handle *h, int64_t fd);
/* Put descriptor fd in the place of h's (the descriptor index follows; the backend is not
 * asked): a pipe's shutdown swaps its write end for the null device. Returns the old
 * descriptor, which the caller closes. */
int64_t ioq__handle_swap_fd(ioq_loop *loop, ioq__handle *h, int64_t fd);
/* Close the descriptor (backend, then OS) and free the slot. */
void ioq__handle_destroy(ioq_loop *loop, ioq__handle *h);
/* The caller's value for h. */
ioq_handle ioq__handle_value(const ioq_loop *loop, const ioq__handle *h);
/* Any allocated slot behind v, also a socket still connecting or a handle being closed
 * (for backends mapping kernel events back to handles); NULL when stale. */
ioq__handle *ioq__handle_find(const ioq_loop *loop, uint64_t v);
/* The slot at index, whatever it holds (kind IOQ__K_FREE for an unused one), or NULL past
 * the slots handed out so far: for (i = 0; (h = ioq__handle_slot(loop, i)); i++). */
ioq__handle *ioq__handle_slot(const ioq_loop *loop, uint32_t index);

/* --- core services: queues and stream order --------------------------------------------- */

/* Stream order (contract rule 7). Every backend keeps a handle's receives in its read queue
 * and its sends and shutdown in its write queue, and only the head of each is ever in
 * progress. The backend gives an issue function that starts the head op of a queue: a
 * completion backend hands it to the kernel, the readiness engine tries it. It returns: */
enum {
    IOQ__ORDER_WAIT = 0, /* the queue waits: its head is in flight, or waits for readiness */
    IOQ__ORDER_NEXT = 1  /* the head has completed (ioq__order_complete): try the next */
};
/* or a negative IOQ_E*: the head could not start. At submission the op is refused; later it
 * completes with that error and the op behind it is tried. */
typedef int (*ioq__issue_fn)(ioq_loop *loop, ioq__op *op);
/* The queue op belongs in; NULL for ops that need no order (connect, files). Inline, as
 * the rest of this group that runs once per op: it sits on every send and receive. */
static inline ioq__opq *ioq__order_queue(ioq__op *op)
{
    switch (op->code) {
    case IOQ_OP_ACCEPT:
    case IOQ_OP_RECV:
    case IOQ_OP_RECV_POOL:
    case IOQ_OP_RECVFROM:
    case IOQ_OP_PROCESS_WAIT: /* a receive of the child's end, one at a time */
        return &op->h->readq;
    case IOQ_OP_SEND:
    case IOQ_OP_SENDV:
    case IOQ_OP_SENDTO:
    case IOQ_OP_SHUTDOWN:
        return &op->h->writeq;
    default:
        return NULL;
    }
}
/* Queue op and issue it if it is the head: 0, or IOQ_E* with nothing queued. */
int ioq__order_start(ioq_loop *loop, ioq__op *op, ioq__issue_fn issue);
/* Issue the ops of q from its head until one waits. */
void ioq__order_run(ioq_loop *loop, ioq__opq *q, ioq__issue_fn issue);
/* Complete op, the head of its queue (a final completion also takes it out of the queue);
 * the ops behind it are left to the caller. */
static inline void ioq__order_complete(ioq_loop *loop, ioq__op *op, int64_t res,
                                       uint64_t value, uint16_t flags)
{
    ioq__opq *q;
    if (flags & IOQ_CQE_MORE) {
        ioq__complete_more(loop, op, res, value, flags);
        return;
    }
    if ((q = ioq__order_queue(op)) != NULL)
        ioq__opq_remove(q, op);
    ioq__complete(loop, op, res, value, flags);
}
/* op finished: ioq__order_complete, then ioq__order_run on its queue. */
void ioq__order_finish(ioq_loop *loop, ioq__op *op, int64_t res, uint64_t value,
                       uint16_t flags, ioq__issue_fn issue);
/* Cancel an op that is not in progress (behind the head, or a head waiting for readiness):
 * it completes with IOQ_ECANCELED and what it had moved. */
void ioq__order_cancel_queued(ioq_loop *loop, ioq__op *op);

/* --- core services: I/O progress (progress.c) --------------------------------------------- */

/* The unsent pieces of a gather send, one a call: start with *pos = op->iovpos; each call
 * gives the next non-empty piece and returns true, false after the last. */
bool ioq__sendv_piece(const ioq__op *op, uint32_t *pos, void **base, size_t *len);
/* A send, sendv or write moved n more bytes: op->done, and a gather send's position. */
void ioq__op_moved(ioq__op *op, size_t n);
/* A completion backend's send or sendv moved n bytes and ended with err (0 or IOQ_E*):
 * resume it when it is short, else finish it (ioq__order_finish). */
void ioq__send_result(ioq_loop *loop, ioq__op *op, size_t n, int err, ioq__issue_fn issue);
/* The same for a positional file write (no stream order: files have none). */
void ioq__write_result(ioq_loop *loop, ioq__op *op, size_t n, int err, ioq__issue_fn issue);
/* A connect ended: err 0 makes the handle visible (kind TCP or LOCAL) and completes with
 * its value; an IOQ_E* completes with it and destroys the handle. */
void ioq__connect_done(ioq_loop *loop, ioq__op *op, int err);
/* A connection accepted on listener, as a registered handle of the matching kind: 0, or
 * IOQ_E* with fd closed. */
int ioq__accepted(ioq_loop *loop, const ioq__handle *listener, int64_t fd, ioq__handle **out);
/* An open ended with res (0, or IOQ_E*) and, on success, descriptor fd: complete op with
 * the new file handle (fd is closed if none can be made). */
void ioq__open_done(ioq_loop *loop, ioq__op *op, int64_t res, int64_t fd);

/* --- core services: watches (watch.c) ------------------------------------------------------ */

/* The IOQ_WATCH_READABLE / WRITABLE bits that the live, uncancelled watches of h ask for. */
uint32_t ioq__watch_events(const ioq__handle *h);
/* The descriptor of watch handle h showed `seen` (IOQ_WATCH_* bits, ERROR and HANGUP
 * included): every live watch of h that asked for one of them, or any watch for ERROR or
 * HANGUP, completes (a multishot one with IOQ_CQE_MORE, staying live). Returns true when
 * a watch ended (the events asked for may have changed). h stays valid: a watch handle's
 * close never waits for its watches. */
bool ioq__watch_report(ioq_loop *loop, ioq__handle *h, uint32_t seen);
/* The result bits of op (a watch) for `seen`, 0 when none concerns it. */
uint32_t ioq__watch_result(const ioq__op *op, uint32_t seen);

/* --- core services: pools ------------------------------------------------------------------ */

/* Take a free buffer for a receive (UINT32_MAX when empty) / put one back. Inline: each
 * runs once per message of a pooled receive. */
static inline uint32_t ioq__pool_take(ioq__pool *pool)
{
    uint32_t id;
    if (pool->nfree == 0)
        return UINT32_MAX;
    id = pool->free_ids[--pool->nfree];
    pool->held[id] = 1;
    return id;
}

static inline void ioq__pool_put(ioq__pool *pool, uint32_t id)
{
    pool->held[id] = 0;
    pool->free_ids[pool->nfree++] = id;
}

static inline void *ioq__pool_buf(const ioq__pool *pool, uint32_t id)
{
    return pool->mem + (size_t)id * pool->size;
}

#endif /* IOQ_BACKEND_H */
