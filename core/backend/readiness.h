/*
 * The readiness engine shared by epoll and kqueue: per-handle FIFO queues of operations
 * that are tried when the handle is (believed to be) ready, and parked on EAGAIN until the
 * kernel reports an edge. The multiplexer files only register descriptors, wait, and feed
 * edges in through ioq__rd_event().
 */
#ifndef IOQ_READINESS_H
#define IOQ_READINESS_H

#include "backend.h"

int ioq__rd_start(ioq_loop *loop, ioq__op *op);
void ioq__rd_cancel(ioq_loop *loop, ioq__op *op);
/* The backend table's `now` slot (see there). */
int ioq__rd_now(ioq_loop *loop, ioq__handle *h, uint16_t code, void *buf, size_t len,
                int64_t *res, size_t *done);
/* An edge on h: bits of IOQ__R_READABLE | IOQ__R_WRITABLE, plus IOQ__R_EOF when the kernel
 * says the peer's end of stream (or an error) has arrived. */
void ioq__rd_event(ioq_loop *loop, ioq__handle *h, unsigned bits);

/* Watches (ioq_watch), level-triggered and registered only while a watch asks for
 * something: h->be of a WATCH handle holds the IOQ_WATCH_* bits registered. The backend's
 * apply function changes the kernel's registration from `have` to `want` (0: none) and
 * returns 0 or IOQ_E*; these do the rest. */
typedef int (*ioq__rd_watch_apply_fn)(ioq_loop *loop, ioq__handle *h, uint32_t want,
                                      uint32_t have);
/* Register want; a failed change that only removes bits counts as done. */
int ioq__rd_watch_set(ioq_loop *loop, ioq__handle *h, uint32_t want,
                      ioq__rd_watch_apply_fn apply);
/* What h's live watches ask for (nothing once h is closing), after a report or a cancel. */
void ioq__rd_watch_sync(ioq_loop *loop, ioq__handle *h, ioq__rd_watch_apply_fn apply);
/* start of an IOQ_OP_WATCH: register what it adds (an error refuses it). */
int ioq__rd_watch_start(ioq_loop *loop, ioq__op *op, ioq__rd_watch_apply_fn apply);
/* cancel of an IOQ_OP_WATCH: a watch is never in progress, it ends at once. */
void ioq__rd_watch_cancel(ioq_loop *loop, ioq__op *op, ioq__rd_watch_apply_fn apply);

#endif /* IOQ_READINESS_H */
