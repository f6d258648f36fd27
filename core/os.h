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
/* A process-wide memory barrier: when ioq__os_barrier returns, every other thread of the
 * process has passed a full barrier since it was called, so whatever each stored before
 * that point is visible here. It lets a hot path of other threads go without a fence of
 * its own (notify.c). ioq__os_barrier_init (any thread, any number of times): true if the
 * OS has one; without it ioq__os_barrier must not be called. */
bool ioq__os_barrier_init(void);
void ioq__os_barrier(void);
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

/* Pipes and terminals (since 1.1). A pipe: out[0] the read end, out[1] the write end, both
 * close-on-exec; the ends whose bit is set in `ours` (1: read end, 2: write end) become
 * ioq's (non-blocking, SIGPIPE-free where the OS can), the others stay as a child expects
 * its stdio. */
int ioq__os_pipe(int64_t out[2], unsigned ours);
/* Check a foreign descriptor for kind PIPE or TTY and make it fit for ioq; *rstate gets
 * IOQ__R_NOREAD / IOQ__R_NOWRITE from its access mode. */
int ioq__os_stream_adopt(int64_t fd, uint32_t kind, uint16_t *rstate);
/* Terminal mode; *saved keeps the mode before the first change (freed by tty_free, which
 * restores it if the terminal was left raw). */
int ioq__os_tty_mode(int64_t fd, void **saved, uint32_t mode);
int ioq__os_tty_size(int64_t fd, uint32_t *cols, uint32_t *rows);
void ioq__os_tty_free(int64_t fd, void *saved);

/* Child processes (since 1.1). fds[i] is what the child gets as stdio i: -1 the parent's
 * own, IOQ__OS_DEVNULL the null device, else a descriptor (left open). 0 once the child
 * runs, with *proc (the OS layer's record) and *wait_fd (readable when the child has
 * ended), or IOQ_E* with no child left (an exec failure is reported here).
 * *wait_fd set to IOQ__OS_NO_WAIT_FD on entry says the backend waits by process id
 * (wait_by_pid): the OS layer may then make no wait descriptor and leave *wait_fd -1 (it
 * must still reap the child of a process record freed while it runs). */
#define IOQ__OS_DEVNULL (-2)
#define IOQ__OS_NO_WAIT_FD (-3)
int ioq__os_spawn(const ioq_process_options *opts, const int64_t fds[3], void **proc,
                  int64_t *wait_fd);
/* Reap the child if it has ended: 1 and *result (exit code, or 256 + signal; kept, so a
 * later call says the same), 0 while it runs, or IOQ_E* (IOQ_ESRCH: reaped by someone
 * else). */
int ioq__os_process_reap(void *proc, int64_t *result);
int ioq__os_process_kill(void *proc, int signum);
int64_t ioq__os_process_pid(void *proc);
/* The handle is gone: free the record (kill: end the child first). A child still running
 * is reaped when it ends, never left a zombie. */
void ioq__os_process_free(void *proc, bool kill);
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
