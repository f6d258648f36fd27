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

#endif /* IOQ_READINESS_H */
