/*
 * Fault injection under the backends' system calls (build option IOQ_FAULT_INJECTION).
 *
 * Without the option every wrapper below is the plain call: no code, no cost. With it, a
 * seeded generator (environment: IOQ_FAULT_SEED, IOQ_FAULT_RATE in percent, default 10;
 * IOQ_FAULT_ERRORS=0 keeps to the harmless faults) makes the calls misbehave the way a
 * kernel may:
 *  - EINTR, and short counts (the kernel really moves fewer bytes; the rest is resent);
 *  - EAGAIN storms on the readiness backends; a descriptor reported EAGAIN falsely is
 *    reported ready again at the next wait, as the kernel would for one that is ready;
 *  - ECONNRESET, ENOBUFS, ENOMEM: real error results of the operation, with nothing
 *    moved by the failing call;
 *  - io_uring: an SQE turned into a failing one (the error arrives in its CQE), and CQEs
 *    whose handling is delayed to the next poll;
 *  - allocation failure where ioq checks for room in its completion ring before a
 *    multishot record (the core's ioq__cq_room and ioq__cq_hold, as if the ring could not
 *    grow): the multishot operation ends with IOQ_ENOMEM. Drawn from a stream of its own
 *    (IOQ_FAULT_ALLOC_RATE in per mille, default 5), so that a seed injects the other
 *    faults as it did before.
 * Every fault is one the contract allows, so any lost, duplicated or inconsistent
 * completion under it is a bug of ioq. The generator is per thread: a single-threaded run
 * with the same seed injects the same faults at the same calls.
 */
#ifndef IOQ_FAULT_H
#define IOQ_FAULT_H

#include "backend.h"

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Counters of injected faults, by kind (ioq__fault_stats). */
enum {
    IOQ__F_EINTR,
    IOQ__F_EAGAIN,
    IOQ__F_SHORT,
    IOQ__F_RESET,
    IOQ__F_NOMEM, /* ENOBUFS or ENOMEM */
    IOQ__F_DELAY,
    IOQ__F_ALLOC, /* an allocation that fails (ioq__fault_alloc) */
    IOQ__F_KINDS
};

#ifdef IOQ_FAULT_INJECTION

ssize_t ioq__fault_recv(ioq_loop *loop, ioq__handle *h, int fd, void *buf, size_t len,
                        int flags);
int ioq__fault_recv_batch(ioq_loop *loop, ioq__handle *h, int fd, struct msghdr *msg,
                          size_t *got, unsigned n);
ssize_t ioq__fault_send(ioq_loop *loop, ioq__handle *h, int fd, const void *buf, size_t len,
                        int flags);
ssize_t ioq__fault_sendmsg(ioq_loop *loop, ioq__handle *h, int fd, const struct msghdr *msg,
                           int flags);
ssize_t ioq__fault_sendto(ioq_loop *loop, ioq__handle *h, int fd, const void *buf, size_t len,
                          int flags, const struct sockaddr *sa, socklen_t slen);
int ioq__fault_accept(ioq_loop *loop, ioq__handle *h, int fd);
/* Readiness: whether handles are owed a replayed edge (the next wait must not block), and
 * the replay itself, after the multiplexer's own events. */
int ioq__fault_replay_pending(ioq_loop *loop);
void ioq__fault_replay(ioq_loop *loop, void (*event)(ioq_loop *, ioq__handle *, unsigned),
                       ioq__handle *(*lookup)(const ioq_loop *, uint64_t));
/* io_uring: the length to put in an SQE, and the descriptor (-1 makes the SQE fail; its
 * CQE result is then rewritten into the injected error by ioq__fault_cqe_res). */
size_t ioq__fault_sqe_len(ioq__op *op, size_t len);
int ioq__fault_sqe_fd(ioq__op *op, int fd);
int ioq__fault_cqe_res(ioq__op *op, int res);
/* io_uring: whether to hold back this CQE until the next reap, and the reap bracket. */
int ioq__fault_cqe_hold(ioq_loop *loop, uint64_t ud, int32_t res, uint32_t flags);
int ioq__fault_cqe_release(ioq_loop *loop, uint64_t *ud, int32_t *res, uint32_t *flags);
void ioq__fault_reap_begin(ioq_loop *loop);
int ioq__fault_held(ioq_loop *loop);
/* Forget everything kept for loop (it is being freed). */
void ioq__fault_forget(ioq_loop *loop);
void ioq__fault_stats(uint64_t out[IOQ__F_KINDS]);

#  define ioq__f_recv(l, h, fd, b, n, fl) ioq__fault_recv(l, h, fd, b, n, fl)
#  define ioq__f_recv_batch(l, h, fd, m, g, n) ioq__fault_recv_batch(l, h, fd, m, g, n)
#  define ioq__f_send(l, h, fd, b, n, fl) ioq__fault_send(l, h, fd, b, n, fl)
#  define ioq__f_sendmsg(l, h, fd, m, fl) ioq__fault_sendmsg(l, h, fd, m, fl)
#  define ioq__f_sendto(l, h, fd, b, n, fl, sa, sl) ioq__fault_sendto(l, h, fd, b, n, fl, sa, sl)
#  define ioq__f_accept(l, h, fd) ioq__fault_accept(l, h, fd)
#  define ioq__f_replay_pending(l) ioq__fault_replay_pending(l)
#  define ioq__f_replay(l, ev, lk) ioq__fault_replay(l, ev, lk)
#  define ioq__f_sqe_len(op, n) ioq__fault_sqe_len(op, n)
#  define ioq__f_sqe_fd(op, fd) ioq__fault_sqe_fd(op, fd)
#  define ioq__f_cqe_res(op, r) ioq__fault_cqe_res(op, r)
#  define ioq__f_cqe_hold(l, ud, r, f) ioq__fault_cqe_hold(l, ud, r, f)
#  define ioq__f_cqe_release(l, ud, r, f) ioq__fault_cqe_release(l, ud, r, f)
#  define ioq__f_reap_begin(l) ioq__fault_reap_begin(l)
#  define ioq__f_held(l) ioq__fault_held(l)
#  define ioq__f_forget(l) ioq__fault_forget(l)

#else /* the plain calls */

#  define ioq__f_recv(l, h, fd, b, n, fl) recv(fd, b, n, fl)
#  define ioq__f_recv_batch(l, h, fd, m, g, n) ioq__px_recv_batch(fd, m, g, n)
#  define ioq__f_send(l, h, fd, b, n, fl) send(fd, b, n, fl)
#  define ioq__f_sendmsg(l, h, fd, m, fl) sendmsg(fd, m, fl)
#  define ioq__f_sendto(l, h, fd, b, n, fl, sa, sl) sendto(fd, b, n, fl, sa, sl)
#  define ioq__f_accept(l, h, fd) ioq__px_accept(fd)
#  define ioq__f_replay_pending(l) 0
#  define ioq__f_replay(l, ev, lk) ((void)0)
#  define ioq__f_sqe_len(op, n) (n)
#  define ioq__f_sqe_fd(op, fd) ((void)(op), (fd))
#  define ioq__f_cqe_res(op, r) (r)
#  define ioq__f_cqe_hold(l, ud, r, f) 0
#  define ioq__f_cqe_release(l, ud, r, f) 0
#  define ioq__f_reap_begin(l) ((void)0)
#  define ioq__f_held(l) 0
#  define ioq__f_forget(l) ((void)0)

#endif

#endif /* IOQ_FAULT_H */
