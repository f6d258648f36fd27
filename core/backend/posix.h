/*
 * POSIX helpers shared by the epoll, io_uring and kqueue backends: address conversion,
 * socket creation with the flags every ioq socket needs, and non-signalling sends.
 */
#ifndef IOQ_POSIX_H
#define IOQ_POSIX_H

#include "backend.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "sockaddr.h"

/* MSG_NOSIGNAL keeps SIGPIPE from the host; where it is missing SO_NOSIGPIPE is set on
 * every socket at creation instead. */
#ifdef MSG_NOSIGNAL
#  define IOQ__SEND_FLAGS MSG_NOSIGNAL
#else
#  define IOQ__SEND_FLAGS 0
#endif

int ioq__px_family(uint16_t ioq_family);
/* A non-blocking, close-on-exec, SIGPIPE-free socket; returns fd or a negative IOQ_E*. */
int ioq__px_socket(int domain, int type);
/* Accept one connection as a non-blocking, close-on-exec socket; fd or -errno. */
int ioq__px_accept(int fd);
int ioq__px_unix_addr(const char *path, struct sockaddr_storage *ss, socklen_t *len);
int ioq__px_set_nonblock(int fd);
/* IOQ_OPEN_* flags as open(2) flags (with O_CLOEXEC). */
int ioq__px_open_flags(uint32_t flags);

/* The most datagrams one ioq__px_recv_batch call takes. */
#define IOQ__PX_BATCH 32
/* Receive up to n (<= IOQ__PX_BATCH) datagrams from a non-blocking socket into msg[0..n),
 * their lengths into got[]: recvmmsg() where the OS has it, else recvmsg() until EAGAIN.
 * Returns the count received (>= 1; fewer than n means the socket was found empty), or -1
 * with errno when none was. */
int ioq__px_recv_batch(int fd, struct msghdr *msg, size_t *got, unsigned n);
/* Pipes and terminals (posix_proc.c). A write that never raises SIGPIPE (EPIPE instead);
 * whether a non-blocking pipe holds data (1), has ended (0) or is empty (-EAGAIN); the end of
 * a write end: its descriptor is replaced by the null device, so the reader sees the end of
 * the stream while the handle keeps a valid descriptor until its close (0 or IOQ_E*). */
ssize_t ioq__px_write(int fd, const struct iovec *iov, int cnt);
int ioq__px_pipe_peek(int fd);
int ioq__px_pipe_shutdown(ioq__handle *h);
#if defined(__linux__)
/* Arm a timerfd at an absolute CLOCK_MONOTONIC deadline (UINT64_MAX disarms). */
void ioq__px_timerfd_arm(int tfd, uint64_t deadline);
#endif

#endif /* IOQ_POSIX_H */
