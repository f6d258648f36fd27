/*
 * The OS layer: what the portable core asks of the operating system. Implemented once per
 * OS family, by core/backend/posix.c (Linux, macOS, BSD) and core/backend/win.c (Windows),
 * so that the portable core needs no OS #ifdef. Not part of the ABI.
 */
#ifndef IOQ_OS_H
#define IOQ_OS_H

#include "ioq.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ioq__op ioq__op;
typedef struct ioq__backend ioq__backend;

/* The backends of this OS, in the order IOQ_BACKEND_AUTO tries them; NULL-terminated. */
extern const ioq__backend *const ioq__os_backends[];

uint64_t ioq__os_now(void);              /* monotonic nanoseconds */
int ioq__os_errno_map(int oserr);        /* OS error -> IOQ_E* */
/* Sockets ioq creates: 0 and *fd set, or IOQ_E* with nothing left open. */
int ioq__os_tcp_listen(const ioq_addr *addr, uint32_t backlog, uint32_t flags, int64_t *fd);
int ioq__os_udp_bind(const ioq_addr *addr, uint32_t flags, int64_t *fd);
int ioq__os_local_listen(const char *path, uint32_t backlog, uint32_t flags, int64_t *fd);
int ioq__os_sockname(int64_t fd, bool peer, ioq_addr *out);
/* Apply a socket option that ioq_setopt() has checked (value range, kind). */
int ioq__os_setopt(int64_t fd, uint8_t kind, uint32_t opt, int64_t value);
/* Check a foreign descriptor against kind and make it fit for ioq (non-blocking, ...). */
int ioq__os_adopt(int64_t fd, uint32_t kind, uint8_t *family);
void ioq__os_close(int64_t fd);
bool ioq__os_valid_fd(uint64_t os_handle);
/* Thread-pool work, run on a worker: open/read/write/fsync, and getaddrinfo. Each leaves
 * its result in op->res (and op->res_value, op->res_fd). */
void ioq__os_file_work(ioq__op *op);
void ioq__os_resolve_work(ioq__op *op);

/* Signals (signal.c). Signal numbers below IOQ__NSIG only. */
#define IOQ__NSIG 65
/* 0 if ioq can catch signum here; IOQ_EINVAL (no such signal, SIGKILL, SIGSTOP) or
 * IOQ_ENOTSUP. */
int ioq__os_signal_check(int signum);
/* Catch signum with a handler that calls ioq__signal_raised (on), or give the signal back
 * the action it had before (off). 0 or IOQ_E*. */
int ioq__os_signal_catch(int signum, bool on);
/* Called by the OS layer's handler, in signal context: async-signal-safe. */
void ioq__signal_raised(int signum);

#endif /* IOQ_OS_H */
