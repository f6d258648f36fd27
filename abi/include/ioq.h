/*
 * ioq - completion-based asynchronous I/O with a small, stable C ABI.
 *
 * This is the only public header. A program submits operations, each tagged with a 64-bit
 * completion token of its own choosing, and later polls for completions: 32-byte records
 * that carry the token and the result. No function pointer ever crosses this ABI.
 *
 * The contract:
 *  1. Pull model. Submit calls queue work and return at once; ioq_poll() flushes queued
 *     submissions, waits, and copies completions into the caller's array.
 *  2. Exactly once. A submit call that returns 0 accepted the operation, which produces
 *     exactly one final completion (success, error, ioq_cancel() or ioq_close() of its
 *     handle). Multishot operations produce several; all but the last carry IOQ_CQE_MORE.
 *     A submit call that returns a negative code accepted nothing and completes nothing.
 *  3. Ownership. Memory an operation refers to (buffers, address out-parameters) belongs
 *     to ioq from the submit call until its final completion has been returned by
 *     ioq_poll(). Small descriptors (iovec arrays, addresses passed in, paths) are copied
 *     at submission.
 *  4. Handles carry a generation: stale, closed, foreign or made-up handles give
 *     IOQ_EBADHANDLE. 0 is never a valid handle.
 *  5. Bad input gets a negative error code, never a crash.
 *  6. A loop belongs to the thread that polls it; ioq_post() and ioq_wake() may be called
 *     from any thread while the loop lives (posters stop before ioq_loop_free()). A loop
 *     may change the thread that polls it between polls (a runtime moving work between
 *     threads, even after the old thread has ended), never two at once.
 *  7. Sends on one stream go out in submission order and never interleave; receives on
 *     one stream are filled in submission order.
 *  8. Errors are negative IOQ_E* integers, pinned forever, identical on every platform.
 *
 * Rules of this header (so that SWIG, bindgen and every FFI can read it as it is): fixed
 * width types only, no unions, bitfields, varargs, inline functions, function-like macros
 * or function pointers. Structs that may grow start with a uint32_t size.
 */
#ifndef IOQ_H
#define IOQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) || defined(__CYGWIN__)
#  if defined(IOQ_BUILDING)
#    define IOQ_API __declspec(dllexport)
#  elif defined(IOQ_STATIC)
#    define IOQ_API
#  else
#    define IOQ_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define IOQ_API __attribute__((visibility("default")))
#else
#  define IOQ_API
#endif

/* ---------------------------------------------------------------------------------------
 * Versions. The library's own version is ioq_version(); a program compares it with the
 * header's IOQ_VERSION_NUMBER to detect a mismatch. Within one major version the ABI only
 * grows: new functions and new constants are added, nothing is renumbered or removed.
 * ------------------------------------------------------------------------------------ */
#define IOQ_VERSION_MAJOR 1
#define IOQ_VERSION_MINOR 1
#define IOQ_VERSION_PATCH 0
#define IOQ_VERSION_NUMBER 10100 /* MAJOR*10000 + MINOR*100 + PATCH */
#define IOQ_VERSION_STRING "1.1.0"

/* ---------------------------------------------------------------------------------------
 * Error codes. Values are pinned forever and identical on every platform; they are not
 * errno values. New codes are only ever added with new numbers.
 * ------------------------------------------------------------------------------------ */
#define IOQ_OK              0
#define IOQ_EINVAL         -1  /* invalid argument (NULL, zero or huge length, bad flag) */
#define IOQ_EBADHANDLE     -2  /* handle is stale, closed, foreign, made up or wrong kind */
#define IOQ_ENOMEM         -3  /* out of memory */
#define IOQ_ECANCELED      -4  /* operation cancelled (ioq_cancel, ioq_close) */
#define IOQ_ETIMEDOUT      -5  /* connection timed out */
#define IOQ_ECONNREFUSED   -6  /* connection refused */
#define IOQ_ECONNRESET     -7  /* connection reset by peer */
#define IOQ_ECONNABORTED   -8  /* connection aborted */
#define IOQ_EPIPE          -9  /* broken pipe: the peer closed, or the write side is shut */
#define IOQ_EADDRINUSE    -10  /* address already in use */
#define IOQ_EADDRNOTAVAIL -11  /* address not available */
#define IOQ_ENETUNREACH   -12  /* network unreachable */
#define IOQ_EHOSTUNREACH  -13  /* host unreachable */
#define IOQ_EMFILE        -14  /* too many open files in this process */
#define IOQ_ENFILE        -15  /* too many open files in the system */
#define IOQ_ENOENT        -16  /* no such file or directory */
#define IOQ_EACCES        -17  /* permission denied */
#define IOQ_EPERM         -18  /* operation not permitted (for io_uring: disabled by sysctl) */
#define IOQ_EEXIST        -19  /* file exists */
#define IOQ_EISDIR        -20  /* is a directory */
#define IOQ_ENOTDIR       -21  /* not a directory */
#define IOQ_ENOSPC        -22  /* no space left on device */
#define IOQ_EIO           -23  /* input/output error */
#define IOQ_ENOBUFS       -24  /* no buffer available (provided-buffer pool empty) */
#define IOQ_EMSGSIZE      -25  /* message too long */
#define IOQ_ENOTSUP       -26  /* not supported for this handle, backend or platform */
#define IOQ_EBUSY         -27  /* resource busy (e.g. a pool still in use) */
#define IOQ_ENOTCONN      -28  /* socket not connected */
#define IOQ_ENAMETOOLONG  -29  /* name (path, host) too long */
#define IOQ_ENOTFOUND     -30  /* host or service not found (name resolution) */
#define IOQ_EAGAIN        -31  /* temporary failure, try again (e.g. name server) */
#define IOQ_ENOSYS        -32  /* not implemented by this kernel or forbidden by seccomp */
#define IOQ_EFBIG         -33  /* file too large */
#define IOQ_EROFS         -34  /* read-only file system */
#define IOQ_ELOOP         -35  /* too many symbolic links */
#define IOQ_EAFNOSUPPORT  -36  /* address family not supported */
#define IOQ_EMISUSE       -37  /* call breaks a rule of the API (e.g. poll during free) */
#define IOQ_EDESTADDRREQ  -38  /* destination address required */
#define IOQ_ESHUTDOWN     -39  /* write side already shut down */
#define IOQ_ESRCH         -40  /* no such process (already reaped, or gone); since 1.1 */
#define IOQ_ENOEXEC       -41  /* not an executable (exec format error); since 1.1 */
#define IOQ_ENOTTY        -42  /* not a terminal; since 1.1 */
#define IOQ_EUNKNOWN      -99  /* an OS error with no mapping; the text names it */

/* ---------------------------------------------------------------------------------------
 * Operation codes, as reported in ioq_cqe.op.
 * ------------------------------------------------------------------------------------ */
#define IOQ_OP_NONE           0
#define IOQ_OP_POST           1
#define IOQ_OP_ACCEPT         2
#define IOQ_OP_CONNECT        3
#define IOQ_OP_LOCAL_CONNECT  4
#define IOQ_OP_RECV           5
#define IOQ_OP_RECV_POOL      6
#define IOQ_OP_SEND           7
#define IOQ_OP_SENDV          8
#define IOQ_OP_SENDTO         9
#define IOQ_OP_RECVFROM      10
#define IOQ_OP_SHUTDOWN      11
#define IOQ_OP_CLOSE         12
#define IOQ_OP_OPEN          13
#define IOQ_OP_READ          14
#define IOQ_OP_WRITE         15
#define IOQ_OP_FSYNC         16
#define IOQ_OP_TIMEOUT       17
#define IOQ_OP_CANCEL        18
#define IOQ_OP_RESOLVE       19
#define IOQ_OP_WATCH         20 /* since 1.1 */
#define IOQ_OP_SIGNAL        21 /* since 1.1 */
#define IOQ_OP_PROCESS_WAIT  22 /* since 1.1 */
#define IOQ_OP_NOTIFY_WAIT   23 /* since 1.1 */

/* ioq_cqe.flags */
#define IOQ_CQE_MORE    0x0001 /* more completions follow for this multishot operation */
#define IOQ_CQE_BUFFER  0x0002 /* value is a pool buffer id owned by the caller now */

/* Flags for ioq_accept(), ioq_recv_pool(), ioq_watch(), ioq_signal(), ioq_notify_wait(). */
#define IOQ_MULTISHOT   0x0001 /* keep going until cancelled, closed or failed */

/* Flags for ioq_tcp_listen(), ioq_udp_bind(), ioq_local_listen(). */
#define IOQ_REUSEPORT   0x0001 /* SO_REUSEPORT: several listeners share one port */
#define IOQ_V6ONLY      0x0002 /* IPV6_V6ONLY on an IPv6 socket */
#define IOQ_UNLINK      0x0004 /* local_listen: remove a stale socket file first */

/* Flags for ioq_open(). Mode is the Unix permission mode for new files. */
#define IOQ_OPEN_READ   0x0001
#define IOQ_OPEN_WRITE  0x0002
#define IOQ_OPEN_CREATE 0x0004
#define IOQ_OPEN_TRUNC  0x0008
#define IOQ_OPEN_APPEND 0x0010
#define IOQ_OPEN_EXCL   0x0020

/* Flags for ioq_resolve(): restrict the families returned (0 = any). */
#define IOQ_RESOLVE_INET    0x0001
#define IOQ_RESOLVE_INET6   0x0002
#define IOQ_RESOLVE_NUMERIC 0x0004 /* host is a numeric address: never query a name server */

/* ioq_addr.family */
#define IOQ_AF_UNSPEC 0
#define IOQ_AF_INET   4
#define IOQ_AF_INET6  6

/* ioq_loop_options.backend */
#define IOQ_BACKEND_AUTO   0
#define IOQ_BACKEND_EPOLL  1
#define IOQ_BACKEND_URING  2
#define IOQ_BACKEND_KQUEUE 3
#define IOQ_BACKEND_IOCP   4

/* ioq_loop_options.flags. Since 1.1.
 * IOQ_LOOP_HOST_FLUSH: for a loop embedded in a host's poll (ioq_loop_fd). Without it, a
 *   backend that batches submissions (io_uring) hands each operation to the kernel as it
 *   is submitted, since the host may go to sleep at any moment. With it, operations wait
 *   in the submission queue until the host calls ioq_submit() or ioq_poll(), and the host
 *   promises to call one of them before it sleeps on the descriptor (typically once at the
 *   end of each turn of its loop): work that was never handed over completes never, and
 *   the descriptor cannot say so. One system call then submits a whole turn's operations.
 *   Likewise a completion made inside one of the host's own calls (a send that the
 *   readiness backends finish in its submit call, a cancel) makes the descriptor readable
 *   only at that ioq_submit(), not at once: a host that calls ioq_poll() instead takes it
 *   with no wake-up (Since 1.1, both on io_uring and on epoll and kqueue). Apart from that,
 *   loops not embedded and backends that submit nothing in batches (epoll, kqueue, IOCP)
 *   behave the same with or without it. */
#define IOQ_LOOP_HOST_FLUSH 0x0001

/* ioq_loop_caps() bits: what the backend does natively in the kernel. Every operation of
 * the ABI works on every backend; a missing bit means ioq emulates it in user space. */
#define IOQ_CAP_MULTISHOT_ACCEPT 0x0001
#define IOQ_CAP_MULTISHOT_RECV   0x0002
#define IOQ_CAP_PROVIDED_BUFFERS 0x0004 /* the kernel picks pool buffers itself */
#define IOQ_CAP_ZEROCOPY_SEND    0x0008
#define IOQ_CAP_NATIVE_FILES     0x0010 /* file I/O without the thread pool */
#define IOQ_CAP_LOOP_FD          0x0020 /* ioq_loop_fd() gives a pollable descriptor */
#define IOQ_CAP_BATCHED_SUBMIT   0x0040 /* one kernel entry submits many operations */

/* ioq_setopt() options. Values are int64_t; booleans are 0 or 1. */
#define IOQ_OPT_NODELAY   1 /* TCP_NODELAY */
#define IOQ_OPT_KEEPALIVE 2 /* SO_KEEPALIVE; value > 1 also sets the idle time in seconds */
#define IOQ_OPT_RCVBUF    3 /* SO_RCVBUF in bytes */
#define IOQ_OPT_SNDBUF    4 /* SO_SNDBUF in bytes */
#define IOQ_OPT_REUSEADDR 5 /* SO_REUSEADDR */
#define IOQ_OPT_BROADCAST 6 /* SO_BROADCAST (UDP) */
#define IOQ_OPT_LINGER    7 /* SO_LINGER seconds; -1 = off; 0 = reset the connection on close */

/* ioq_adopt() kinds. */
#define IOQ_KIND_TCP            1 /* connected TCP stream */
#define IOQ_KIND_TCP_LISTENER   2
#define IOQ_KIND_UDP            3
#define IOQ_KIND_LOCAL          4 /* connected AF_UNIX stream / named pipe */
#define IOQ_KIND_LOCAL_LISTENER 5
#define IOQ_KIND_FILE           6 /* regular file: positional read/write */
#define IOQ_KIND_WATCH          7 /* since 1.1: a descriptor ioq only watches (ioq_watch):
                                     never reads, writes or closes it */
#define IOQ_KIND_PIPE           8 /* since 1.1: pipe, FIFO or character device as a byte
                                     stream (recv, send, sendv, shutdown, close) */
#define IOQ_KIND_TTY            9 /* since 1.1: a terminal: a PIPE plus ioq_tty_* */
#define IOQ_KIND_PROCESS       10 /* since 1.1: a child process (ioq_spawn); not adoptable */
#define IOQ_KIND_NOTIFIER      11 /* since 1.1: ioq_notifier_new; not adoptable */

/* ioq_watch() events, and the bits of its completion's result. Since 1.1. */
#define IOQ_WATCH_READABLE 0x0001 /* reading would not block (data, end of stream, error) */
#define IOQ_WATCH_WRITABLE 0x0002 /* writing would not block */
#define IOQ_WATCH_ERROR    0x0004 /* an error is pending: reported, never needs asking */
#define IOQ_WATCH_HANGUP   0x0008 /* the peer hung up (end of stream, no writer left):
                                     reported, never needs asking */

/* ioq_tty_set_mode() modes. Since 1.1. */
#define IOQ_TTY_MODE_NORMAL 0 /* the mode the terminal had when ioq first changed it */
#define IOQ_TTY_MODE_RAW    1 /* no echo, no line editing, no signal keys, bytes as typed */

/* ioq_stdio.mode: what a child of ioq_spawn() gets as stdin, stdout, stderr. Since 1.1. */
#define IOQ_STDIO_INHERIT 0 /* the parent's descriptor */
#define IOQ_STDIO_NULL    1 /* /dev/null (NUL on Windows) */
#define IOQ_STDIO_PIPE    2 /* a new pipe; the parent's end comes back as a PIPE handle */
#define IOQ_STDIO_HANDLE  3 /* value = an ioq handle (PIPE, TTY, TCP, LOCAL, FILE) */
#define IOQ_STDIO_OS      4 /* value = an OS descriptor (fd, HANDLE) the caller owns */

/* ioq_process_options.flags. Since 1.1. */
#define IOQ_SPAWN_SEARCH_PATH 0x0001 /* look file up in PATH (of env, else of the parent) */
#define IOQ_SPAWN_NEW_SESSION 0x0002 /* the child leads a new session (setsid) / group */

/* Largest length of one buffer, and of the sum of an iovec array (fits every OS). */
#define IOQ_MAX_LEN 0x7ffff000
/* Largest number of entries in an iovec array given to ioq_sendv(). */
#define IOQ_MAX_IOV 1024

/* ---------------------------------------------------------------------------------------
 * Types.
 * ------------------------------------------------------------------------------------ */

/* A loop: opaque, owned by the thread that polls it (which may change between polls). */
typedef struct ioq_loop ioq_loop;

/* An I/O object or buffer pool of one loop: a generation-checked 64-bit value; 0 = none. */
typedef uint64_t ioq_handle;

/* A completion record: 32 bytes, frozen. */
typedef struct ioq_cqe {
    uint64_t token;    /* as given at submission */
    int64_t  result;   /* >= 0 op-specific success value, < 0 an IOQ_E* code */
    uint64_t value;    /* op-specific second value, else 0 */
    uint16_t op;       /* IOQ_OP_* of the operation that completed */
    uint16_t flags;    /* IOQ_CQE_* */
    uint32_t reserved; /* 0 */
} ioq_cqe;

/* A network address: fixed size, no sockaddr in the ABI. */
typedef struct ioq_addr {
    uint16_t family;   /* IOQ_AF_INET, IOQ_AF_INET6 */
    uint16_t port;     /* host byte order */
    uint32_t scope_id; /* IPv6 scope (interface index), else 0 */
    uint8_t  ip[16];   /* network byte order; IPv4 in the first 4 bytes */
} ioq_addr;

/* One piece of a gather send. */
typedef struct ioq_iov {
    void  *base;
    size_t len;
} ioq_iov;

/* Options for ioq_loop_new(). Set size to sizeof(ioq_loop_options); zero what is unused. */
typedef struct ioq_loop_options {
    uint32_t size;            /* sizeof(ioq_loop_options) as the caller knew it */
    uint32_t backend;         /* IOQ_BACKEND_* */
    uint32_t flags;           /* IOQ_LOOP_* (1.1; 0 with a 1.0 library) */
    uint32_t threadpool_size; /* worker threads for blocking work; 0 = default (4) */
    uint32_t reserved[8];     /* must be 0 */
} ioq_loop_options;

/* One stdio stream of a child process (ioq_spawn). Since 1.1. */
typedef struct ioq_stdio {
    uint32_t mode;     /* IOQ_STDIO_* */
    uint32_t reserved; /* must be 0 */
    uint64_t value;    /* IOQ_STDIO_HANDLE: an ioq handle; IOQ_STDIO_OS: a descriptor */
} ioq_stdio;

/* Options for ioq_spawn(). Set size to sizeof(ioq_process_options); zero what is unused.
 * Since 1.1. */
typedef struct ioq_process_options {
    uint32_t size;             /* sizeof(ioq_process_options) as the caller knew it */
    uint32_t flags;            /* IOQ_SPAWN_* */
    const char *file;          /* the program (a path, or a name with SEARCH_PATH) */
    const char *const *argv;   /* NULL-terminated, argv[0] included */
    const char *const *env;    /* NULL-terminated "KEY=VALUE" list, or NULL to inherit */
    const char *cwd;           /* working directory, or NULL for the parent's */
    ioq_stdio stdio[3];        /* stdin, stdout, stderr */
} ioq_process_options;

/* ---------------------------------------------------------------------------------------
 * Version and errors.
 * ------------------------------------------------------------------------------------ */

/* ioq_version - the library's version as MAJOR*10000 + MINOR*100 + PATCH.
 * Since: 1.0 */
IOQ_API uint32_t ioq_version(void);

/* ioq_version_string - the library's version as "MAJOR.MINOR.PATCH". Static storage.
 * Since: 1.0 */
IOQ_API const char *ioq_version_string(void);

/* ioq_strerror - a sentence describing an IOQ_E* code (or a result >= 0: "success").
 * Unknown codes give "unknown error". Static storage; never NULL.
 * Since: 1.0 */
IOQ_API const char *ioq_strerror(int64_t code);

/* ioq_errname - the constant's name without prefix ("ECONNREFUSED", "OK"), or "UNKNOWN"
 * for codes that are not defined. Static storage; never NULL.
 * Since: 1.0 */
IOQ_API const char *ioq_errname(int64_t code);

/* ---------------------------------------------------------------------------------------
 * Loops.
 * ------------------------------------------------------------------------------------ */

/* ioq_loop_new - create a loop.
 * opts: NULL for defaults, or options with size set. With IOQ_BACKEND_AUTO the environment
 *   variable IOQ_BACKEND ("epoll", "io_uring", "kqueue", "iocp") picks the backend.
 * out: receives the loop.
 * Returns 0, or IOQ_EINVAL (NULL out, unknown backend/flags, nonzero reserved fields),
 *   IOQ_ENOTSUP (backend not built or not for this OS), IOQ_ENOSYS / IOQ_EPERM (the kernel
 *   lacks or forbids the backend), IOQ_ENOMEM, IOQ_EMFILE.
 * Since: 1.0 */
IOQ_API int ioq_loop_new(const ioq_loop_options *opts, ioq_loop **out);

/* ioq_loop_free - end every operation without handing out completions, wait until no
 * caller memory is referenced by the OS or the thread pool, close every handle and free
 * the loop. Call it on the loop's thread, after every other thread has stopped calling
 * ioq_post() and ioq_wake() on it (a call that overlaps or follows it touches freed
 * memory). Descriptors made by operations that finished but whose completions were never
 * returned by ioq_poll() (open, accept, connect) are closed too. NULL is ignored.
 * Since: 1.0 */
IOQ_API void ioq_loop_free(ioq_loop *loop);

/* ioq_loop_backend - the backend's name: "epoll", "io_uring", "kqueue" or "iocp";
 * "" for NULL. Static storage.
 * Since: 1.0 */
IOQ_API const char *ioq_loop_backend(const ioq_loop *loop);

/* ioq_loop_caps - IOQ_CAP_* bitmap of what the loop's backend does natively; 0 for NULL.
 * Since: 1.0 */
IOQ_API uint32_t ioq_loop_caps(const ioq_loop *loop);

/* ioq_loop_fd - an OS descriptor that becomes readable when ioq_poll() may have work, for
 * embedding ioq in a foreign loop (asyncio, luv, vibe.d, tokio). The host waits for it to
 * be readable, then calls ioq_poll() with timeout 0. Timers of ioq also make it readable.
 * Do not read from it or close it.
 * Returns the descriptor (>= 0), IOQ_EINVAL for NULL, IOQ_ENOTSUP where the backend has
 * none (IOCP), IOQ_EBUSY on io_uring when operations or pools already live in the ring:
 * call it first (the ring is then set up to complete work without the loop's thread).
 * Since: 1.0 */
IOQ_API int64_t ioq_loop_fd(ioq_loop *loop);

/* ioq_now - monotonic clock in nanoseconds, the clock that timeouts use. 0 for NULL.
 * Since: 1.0 */
IOQ_API uint64_t ioq_now(const ioq_loop *loop);

/* ioq_poll - submit queued work, wait for completions and copy them out.
 * cqes: array of at least max records. max: 1 or more.
 * timeout_ns: -1 waits until at least one completion (or ioq_wake), 0 does not wait, > 0
 *   waits at most that long (any value up to INT64_MAX; timers due sooner end it sooner).
 * Any thread may poll, one at a time: work submitted from the thread that polled before
 * completes here (contract rule 6).
 * Returns the number of records written (0 on timeout or wake-up), or IOQ_EINVAL (NULL,
 * max 0, timeout below -1), IOQ_EMISUSE (called from inside ioq_loop_free), or the
 * IOQ_E* error of the kernel's wait when it fails for a reason of its own (such as
 * IOQ_ENOMEM) and no record is ready: the loop stays usable, and every operation still
 * completes exactly once.
 * Since: 1.0 */
IOQ_API int ioq_poll(ioq_loop *loop, ioq_cqe *cqes, uint32_t max, int64_t timeout_ns);

/* ioq_submit - flush queued submissions to the kernel without waiting.
 * On an embedded IOQ_LOOP_HOST_FLUSH loop this is the host's flush (Since 1.1): it hands
 * the queued operations over in at most one system call and completes nothing, so the
 * loop's descriptor keeps telling of what completed since the last ioq_poll().
 * Returns 0, IOQ_EINVAL (NULL), IOQ_EMISUSE (called while ioq_poll() or ioq_loop_free()
 * runs on the loop, which only another thread can do: a broken rule 6).
 * Since: 1.0 */
IOQ_API int ioq_submit(ioq_loop *loop);

/* ioq_wake - make a blocked (or the next) ioq_poll() return, even with no completion.
 * Any thread, while the loop lives: stop calling it before ioq_loop_free(). Wake-ups
 * coalesce. Returns 0 or IOQ_EINVAL.
 * Since: 1.0 */
IOQ_API int ioq_wake(ioq_loop *loop);

/* ioq_post - enqueue a user completion {token, result, value 0, op IOQ_OP_POST}. Any
 * thread, while the loop lives: posters stop before ioq_loop_free() (posts not yet
 * polled are then dropped). Lock-free; costs a system call only when the loop is blocked
 * in ioq_poll().
 * Posts from one thread complete in the order they were posted.
 * Returns 0, IOQ_EINVAL, IOQ_ENOMEM.
 * Since: 1.0 */
IOQ_API int ioq_post(ioq_loop *loop, uint64_t token, int64_t result);

/* ---------------------------------------------------------------------------------------
 * Sockets: creation (synchronous, never blocks).
 * ------------------------------------------------------------------------------------ */

/* ioq_tcp_listen - a bound, listening TCP socket (SO_REUSEADDR is set).
 * addr: address to bind (port 0 picks one; see ioq_sockname). backlog: 0 = default (511).
 * flags: IOQ_REUSEPORT, IOQ_V6ONLY. out: the listener's handle.
 * Returns 0, IOQ_EINVAL, IOQ_EAFNOSUPPORT, IOQ_EADDRINUSE, IOQ_EADDRNOTAVAIL, IOQ_EACCES,
 * IOQ_EMFILE, IOQ_ENOMEM.
 * Since: 1.0 */
IOQ_API int ioq_tcp_listen(ioq_loop *loop, const ioq_addr *addr, uint32_t backlog,
                           uint32_t flags, ioq_handle *out);

/* ioq_udp_bind - a bound UDP socket. addr: port 0 picks one. flags: IOQ_REUSEPORT,
 * IOQ_V6ONLY. Returns as ioq_tcp_listen.
 * Since: 1.0 */
IOQ_API int ioq_udp_bind(ioq_loop *loop, const ioq_addr *addr, uint32_t flags,
                         ioq_handle *out);

/* ioq_local_listen - an AF_UNIX stream listener at path (a named pipe on Windows).
 * flags: IOQ_UNLINK removes an existing socket file first.
 * Returns 0, IOQ_EINVAL, IOQ_ENAMETOOLONG (path longer than the OS allows), IOQ_EADDRINUSE,
 * IOQ_EACCES, IOQ_ENOENT, IOQ_EMFILE, IOQ_ENOMEM.
 * Since: 1.0 */
IOQ_API int ioq_local_listen(ioq_loop *loop, const char *path, uint32_t backlog,
                             uint32_t flags, ioq_handle *out);

/* ---------------------------------------------------------------------------------------
 * Operations. Each returns 0 when accepted (one final completion follows) or a negative
 * code when not (no completion follows): IOQ_EINVAL for bad arguments, IOQ_EBADHANDLE for
 * a handle that is not a live handle of this loop of a fitting kind, IOQ_ENOMEM.
 * ------------------------------------------------------------------------------------ */

/* ioq_accept - accept a connection on a listener.
 * flags: IOQ_MULTISHOT keeps accepting (each completion but the last has IOQ_CQE_MORE).
 * Completion: result 0, value the new connection's handle; or IOQ_EMFILE, IOQ_ENFILE,
 * IOQ_ENOMEM, IOQ_ECANCELED ... (an error ends a multishot accept).
 * Since: 1.0 */
IOQ_API int ioq_accept(ioq_loop *loop, ioq_handle listener, uint32_t flags, uint64_t token);

/* ioq_connect - create a TCP socket and connect it to addr (copied).
 * flags: 0. Completion: result 0, value the new handle; or IOQ_ECONNREFUSED,
 * IOQ_ETIMEDOUT, IOQ_ENETUNREACH, IOQ_EHOSTUNREACH, IOQ_ECANCELED, IOQ_EMFILE ...
 * Since: 1.0 */
IOQ_API int ioq_connect(ioq_loop *loop, const ioq_addr *addr, uint32_t flags,
                        uint64_t token);

/* ioq_local_connect - connect to an AF_UNIX listener (named pipe on Windows) at path.
 * Completion: result 0, value the new handle; or IOQ_ENOENT, IOQ_ECONNREFUSED,
 * IOQ_EAGAIN ... IOQ_EAGAIN, on every backend, when the listener's backlog is full: the
 * connect ends at once rather than wait, since no OS tells when a local backlog has room
 * again; try again later. On Windows the listener keeps one free pipe instance and makes
 * the next when an accept takes a connection, so its backlog is one connection.
 * Since: 1.0 */
IOQ_API int ioq_local_connect(ioq_loop *loop, const char *path, uint32_t flags,
                              uint64_t token);

/* ioq_recv - one receive of up to len bytes (1..IOQ_MAX_LEN) into buf on a stream or UDP
 * socket. Completion: result bytes received; 0 means orderly end of stream.
 * Since: 1.0 */
IOQ_API int ioq_recv(ioq_loop *loop, ioq_handle h, void *buf, size_t len, uint64_t token);

/* ioq_recv_pool - receive into a buffer that ioq takes from pool only when data arrives,
 * so an idle connection holds no buffer.
 * flags: IOQ_MULTISHOT keeps receiving (IOQ_CQE_MORE on all but the last completion).
 * Completion: result bytes (> 0), value the buffer id, flag IOQ_CQE_BUFFER: the buffer
 * (ioq_buf) belongs to the caller until ioq_buf_release(). result 0 (no buffer) means end
 * of stream. An empty pool at submission is no error: the receive waits for data, and a
 * buffer released before the data arrives serves it. IOQ_ENOBUFS when the pool was empty
 * as data arrived: no data is lost (it stays in the socket); the operation ends and may
 * be submitted again after releasing.
 * IOQ_ENOMEM ends a multishot receive when the completion queue cannot grow to hold its
 * records; no data is lost either (the receive ends before taking any).
 * Since: 1.0 */
IOQ_API int ioq_recv_pool(ioq_loop *loop, ioq_handle h, ioq_handle pool, uint32_t flags,
                          uint64_t token);

/* ioq_send - send all len bytes (1..IOQ_MAX_LEN) of buf on a stream, resuming partial
 * sends; sends on one handle never interleave. On a UDP socket: one datagram to the
 * connected peer. Completion: result len; on error result the code and value the bytes
 * sent before it. Never raises SIGPIPE: a closed peer gives IOQ_EPIPE or IOQ_ECONNRESET.
 * Since: 1.0 */
IOQ_API int ioq_send(ioq_loop *loop, ioq_handle h, const void *buf, size_t len,
                     uint64_t token);

/* ioq_sendv - gather send of all bytes of iov[0..n) (n 1..IOQ_MAX_IOV, total 1..IOQ_MAX_LEN;
 * entries of length 0 are allowed). The array is copied; the buffers belong to ioq until
 * the completion. Completion: as ioq_send.
 * Since: 1.0 */
IOQ_API int ioq_sendv(ioq_loop *loop, ioq_handle h, const ioq_iov *iov, uint32_t n,
                      uint64_t token);

/* ioq_sendto - one UDP datagram of len bytes (0..IOQ_MAX_LEN) to addr (copied).
 * Completion: result bytes sent; IOQ_EMSGSIZE for an oversized datagram.
 * Since: 1.0 */
IOQ_API int ioq_sendto(ioq_loop *loop, ioq_handle h, const void *buf, size_t len,
                       const ioq_addr *addr, uint64_t token);

/* ioq_recvfrom - receive one UDP datagram of up to len bytes; addr_out (may be NULL) gets
 * the sender and belongs to ioq until the completion. Completion: result bytes (a longer
 * datagram is truncated to len).
 * Since: 1.0 */
IOQ_API int ioq_recvfrom(ioq_loop *loop, ioq_handle h, void *buf, size_t len,
                         ioq_addr *addr_out, uint64_t token);

/* ioq_shutdown - half-close the write side of a stream after every send submitted before
 * it has gone out. Completion: result 0; IOQ_ENOTCONN.
 * Since: 1.0 */
IOQ_API int ioq_shutdown(ioq_loop *loop, ioq_handle h, uint64_t token);

/* ioq_close - close a handle of any kind (socket, listener, file, pool). h is invalid as
 * soon as this returns. Every pending operation on h completes with IOQ_ECANCELED (or
 * with its result, if it had already finished) before this operation's own completion
 * (result 0). A pool may be closed only when no ioq_recv_pool on it is pending, that is
 * until ioq_poll() has returned the final completion of each: IOQ_EBUSY.
 * Since: 1.0 */
IOQ_API int ioq_close(ioq_loop *loop, ioq_handle h, uint64_t token);

/* ioq_open - open a file without blocking the loop.
 * path: copied. flags: IOQ_OPEN_* (READ and/or WRITE required). mode: for CREATE (0644...).
 * Completion: result 0, value the new handle; or IOQ_ENOENT, IOQ_EACCES, IOQ_EEXIST,
 * IOQ_EISDIR ...
 * Since: 1.0 */
IOQ_API int ioq_open(ioq_loop *loop, const char *path, uint32_t flags, uint32_t mode,
                     uint64_t token);

/* ioq_read - read up to len bytes (1..IOQ_MAX_LEN) at offset of a file. Never blocks the
 * loop. Completion: result bytes read (0 at end of file).
 * Since: 1.0 */
IOQ_API int ioq_read(ioq_loop *loop, ioq_handle h, void *buf, size_t len, uint64_t offset,
                     uint64_t token);

/* ioq_write - write len bytes (1..IOQ_MAX_LEN) at offset of a file. Completion: result
 * bytes written (all of them unless an error such as IOQ_ENOSPC stops it).
 * Since: 1.0 */
IOQ_API int ioq_write(ioq_loop *loop, ioq_handle h, const void *buf, size_t len,
                      uint64_t offset, uint64_t token);

/* ioq_fsync - flush a file's data and metadata to storage. Completion: result 0.
 * Since: 1.0 */
IOQ_API int ioq_fsync(ioq_loop *loop, ioq_handle h, uint64_t token);

/* ioq_timeout - complete after ns nanoseconds (never earlier, measured with ioq_now from
 * this call). Timeouts with the same deadline complete in submission order.
 * Completion: result 0, or IOQ_ECANCELED.
 * Since: 1.0 */
IOQ_API int ioq_timeout(ioq_loop *loop, uint64_t ns, uint64_t token);

/* ioq_timeout_at - complete when ioq_now(loop) >= deadline_ns (never earlier): an absolute
 * deadline on ioq_now's clock, so that many timeouts can share one base time (read ioq_now
 * once, add each delay). A deadline already past (0 included) completes at the next
 * ioq_poll with result 0. Timeouts with the same deadline, from ioq_timeout or
 * ioq_timeout_at, complete in submission order. ioq_cancel, ioq_close and ioq_loop_free
 * treat it as they treat ioq_timeout.
 * Completion: result 0, or IOQ_ECANCELED.
 * Returns 0, IOQ_EINVAL (NULL loop), IOQ_EMISUSE (the loop is being freed), IOQ_ENOMEM;
 *   the same as ioq_timeout.
 * Since: 1.1 */
IOQ_API int ioq_timeout_at(ioq_loop *loop, uint64_t deadline_ns, uint64_t token);

/* ioq_cancel - cancel every in-flight operation whose token is target. Each of them still
 * completes exactly once: with IOQ_ECANCELED, or with its own result if it had already
 * finished in the kernel or thread pool. Completion (op IOQ_OP_CANCEL): result the number
 * of operations this call asked to end: those with token target not yet completed, other
 * than closes and than those an earlier ioq_cancel or ioq_close already asked to end
 * (0 if none).
 * Since: 1.0 */
IOQ_API int ioq_cancel(ioq_loop *loop, uint64_t target, uint64_t token);

/* ioq_resolve - resolve host and service (either may be NULL, not both) off the loop
 * thread. flags: IOQ_RESOLVE_*. out_addrs[0..max) (max >= 1) belongs to ioq until the
 * completion. Completion: result the number of addresses written; IOQ_ENOTFOUND,
 * IOQ_EAGAIN (name server unreachable).
 * Since: 1.0 */
IOQ_API int ioq_resolve(ioq_loop *loop, const char *host, const char *service,
                        uint32_t flags, ioq_addr *out_addrs, uint32_t max, uint64_t token);

/* ---------------------------------------------------------------------------------------
 * Provided-buffer pools.
 * ------------------------------------------------------------------------------------ */

/* ioq_pool_new - a pool of count (1..32768) buffers of size bytes (1..IOQ_MAX_LEN, and
 * count*size at most 1 GiB) for ioq_recv_pool. Buffers are handed to receives only when
 * data arrives. Close the pool with ioq_close (or it goes with the loop). Every backend
 * has pools; IOQ_CAP_PROVIDED_BUFFERS says the kernel picks the buffers itself.
 * Returns 0, IOQ_EINVAL, IOQ_ENOMEM.
 * Since: 1.0 */
IOQ_API int ioq_pool_new(ioq_loop *loop, uint32_t count, uint32_t size, ioq_handle *out);

/* ioq_buf - the address of buffer id of pool (valid while the pool lives); NULL for a bad
 * pool or id.
 * Since: 1.0 */
IOQ_API void *ioq_buf(ioq_loop *loop, ioq_handle pool, uint32_t id);

/* ioq_buf_release - give buffer id (from an IOQ_CQE_BUFFER completion) back to its pool.
 * Returns 0, IOQ_EBADHANDLE, IOQ_EINVAL (bad id, or a buffer the caller does not hold).
 * Since: 1.0 */
IOQ_API int ioq_buf_release(ioq_loop *loop, ioq_handle pool, uint32_t id);

/* ---------------------------------------------------------------------------------------
 * Socket queries and options, OS handles.
 * ------------------------------------------------------------------------------------ */

/* ioq_sockname - the local address of a TCP/UDP socket or listener.
 * Returns 0, IOQ_EINVAL, IOQ_EBADHANDLE, IOQ_ENOTSUP (local sockets, files).
 * Since: 1.0 */
IOQ_API int ioq_sockname(ioq_loop *loop, ioq_handle h, ioq_addr *out);

/* ioq_peername - the remote address of a connected TCP socket.
 * Returns 0, IOQ_EINVAL, IOQ_EBADHANDLE, IOQ_ENOTCONN, IOQ_ENOTSUP.
 * Since: 1.0 */
IOQ_API int ioq_peername(ioq_loop *loop, ioq_handle h, ioq_addr *out);

/* ioq_setopt - set a socket option (IOQ_OPT_*) to value.
 * Returns 0, IOQ_EINVAL (unknown option or bad value), IOQ_EBADHANDLE, IOQ_ENOTSUP.
 * Since: 1.0 */
IOQ_API int ioq_setopt(ioq_loop *loop, ioq_handle h, uint32_t opt, int64_t value);

/* ioq_adopt - bring an OS descriptor (fd, SOCKET or HANDLE) into the loop as a handle of
 * kind (IOQ_KIND_*). ioq owns it from now on and closes it with ioq_close; it is made
 * non-blocking where the kind needs it.
 * Since 1.1, IOQ_KIND_PIPE takes a pipe, FIFO, character device or stream socket (stdin,
 * stdout...) and IOQ_KIND_TTY a terminal; they become streams as described at ioq_pipe().
 * The descriptor is made non-blocking on epoll and kqueue (blocking on io_uring): its file
 * status flags are shared with every copy of it (a shell's terminal, a parent's pipe). Its
 * close-on-exec flag is left as it is. A descriptor open for reading only refuses sends,
 * one open for writing only refuses receives (IOQ_EBADHANDLE).
 * Returns 0, IOQ_EINVAL (bad kind or descriptor, a regular file as PIPE), IOQ_EEXIST (the
 *   descriptor is already a handle of this loop: one descriptor is never two handles),
 *   IOQ_ENOTTY (not a terminal, as TTY), IOQ_ENOMEM, IOQ_ENOTSUP (what the platform cannot
 *   take as that kind: on Windows, WATCH of anything but a socket, see ioq_watch).
 * Since: 1.0 */
IOQ_API int ioq_adopt(ioq_loop *loop, uint64_t os_handle, uint32_t kind, ioq_handle *out);

/* ioq_os_handle - the OS descriptor behind h, still owned by ioq (do not close it).
 * Returns 0, IOQ_EINVAL, IOQ_EBADHANDLE, IOQ_ENOTSUP (a pool: no descriptor).
 * Since: 1.0 */
IOQ_API int ioq_os_handle(ioq_loop *loop, ioq_handle h, uint64_t *out);

/* ---------------------------------------------------------------------------------------
 * Addresses.
 * ------------------------------------------------------------------------------------ */

/* ioq_addr_parse - parse "1.2.3.4:80", "[::1]:80", "[fe80::1%2]:80", or an address without
 * a port ("1.2.3.4", "::1": port 0). No name lookup.
 * Returns 0 or IOQ_EINVAL.
 * Since: 1.0 */
IOQ_API int ioq_addr_parse(const char *text, ioq_addr *out);

/* ioq_addr_format - write "1.2.3.4:80" or "[::1]:80" with a terminating NUL into buf.
 * Returns the length written (without the NUL), IOQ_EINVAL, or IOQ_ENOBUFS when len is
 * too small (64 bytes always suffice).
 * Since: 1.0 */
IOQ_API int ioq_addr_format(const ioq_addr *addr, char *buf, size_t len);

/* ---------------------------------------------------------------------------------------
 * Since 1.1: what host event loops need. Readiness of descriptors ioq does not own, a
 * coalescing cross-thread notifier, signals, pipes and terminals, child processes.
 * ------------------------------------------------------------------------------------ */

/* ioq_watch - report the readiness of a descriptor that someone else reads, writes and
 * closes (asyncio's add_reader/add_writer; c-ares, libpq, X11 descriptors).
 * h: a handle of kind IOQ_KIND_WATCH, made with ioq_adopt(loop, fd, IOQ_KIND_WATCH, &h).
 *   Adopting as WATCH a descriptor the loop already has a handle for gives IOQ_EEXIST; a
 *   regular file or a directory (always "ready") gives IOQ_EINVAL.
 *   ioq never reads, writes, closes or changes the flags of a watched descriptor;
 *   ioq_close(h) ends its watches (IOQ_ECANCELED) and forgets it, leaving it open. Close
 *   the handle before closing the descriptor.
 * events: IOQ_WATCH_READABLE and/or IOQ_WATCH_WRITABLE (at least one).
 * flags: 0 (one completion) or IOQ_MULTISHOT (keeps watching until cancelled or closed).
 * Several watches may live on one handle (a READABLE one and a WRITABLE one, say).
 * Completion: result the IOQ_WATCH_* bits seen (> 0): those asked for that hold, plus
 *   IOQ_WATCH_ERROR (an error is pending on the descriptor) and IOQ_WATCH_HANGUP (the
 *   peer hung up: end of stream, or no writer left on a pipe), which are always reported;
 *   value 0. Level-triggered: a multishot watch reports again (IOQ_CQE_MORE) at a later
 *   ioq_poll() while the condition still holds, at most one record per watch per
 *   ioq_poll() call; read or write until the descriptor would block to quiet it.
 *   A cancelled or closed watch always ends with IOQ_ECANCELED (a report it may have had
 *   is dropped: it would come again).
 * Windows (IOCP) watches sockets only, through AFD polling: ioq_adopt(..., IOQ_KIND_WATCH)
 *   of anything else gives IOQ_ENOTSUP. There a socket that its owner closes under a live
 *   watch (against the rule above) ends the watch with IOQ_WATCH_ERROR | IOQ_WATCH_HANGUP.
 * Returns 0, IOQ_EINVAL (no or unknown events, unknown flags), IOQ_EBADHANDLE (not a live
 *   WATCH handle), IOQ_ENOMEM, IOQ_ENOTSUP (the system offers no way to watch: on Windows,
 *   no AFD driver to poll).
 * Since: 1.1 */
IOQ_API int ioq_watch(ioq_loop *loop, ioq_handle h, uint32_t events, uint32_t flags,
                      uint64_t token);

/* ioq_notifier_new - a notifier: a handle that any thread may signal with ioq_notify(),
 * like libuv's uv_async. Call it on the loop's thread; close it with ioq_close.
 * Returns 0, IOQ_EINVAL (NULL), IOQ_ENOMEM.
 * Since: 1.1 */
IOQ_API int ioq_notifier_new(ioq_loop *loop, ioq_handle *out);

/* ioq_notify - signal a notifier. Any thread; lock-free; costs a system call only when
 * the loop is blocked in ioq_poll() (and then one for any number of notifications).
 * Every ioq_notify() between two completions of the notifier's wait counts towards the
 * next one. On a notifier that is closed (or being closed): IOQ_EBADHANDLE, safely, from
 * any thread, for as long as the loop lives.
 * Returns 0, IOQ_EINVAL (NULL loop), IOQ_EBADHANDLE.
 * Since: 1.1 */
IOQ_API int ioq_notify(ioq_loop *loop, ioq_handle notifier);

/* ioq_notify_wait - wait for ioq_notify() on notifier. One wait per notifier at a time.
 * flags: 0 or IOQ_MULTISHOT (stays armed: one completion with IOQ_CQE_MORE per batch).
 * Completion: result the number of ioq_notify() calls it covers (>= 1): every call made
 * since the previous completion (also before this wait was submitted) coalesces into one
 * record; value 0. IOQ_ECANCELED after ioq_cancel/ioq_close.
 * Returns 0, IOQ_EINVAL (unknown flags), IOQ_EBADHANDLE (not a live notifier), IOQ_EBUSY
 *   (a wait is already pending on it), IOQ_ENOMEM.
 * Since: 1.1 */
IOQ_API int ioq_notify_wait(ioq_loop *loop, ioq_handle notifier, uint32_t flags,
                            uint64_t token);

/* ioq_signal - wait for deliveries of the POSIX signal signum to the process.
 * While any ioq_signal operation for signum lives (in any loop), ioq catches the signal:
 * its default action or the host's handler is replaced, and restored when the last one
 * ends. Several loops may watch one signal: each gets every delivery.
 * Signal mask (POSIX): ioq catches signum with a handler of its own and never changes
 * any thread's signal mask; a thread that blocks signum does not receive it, so leave it
 * unblocked in at least one thread (any thread will do). Do not install another handler
 * for signum while an ioq_signal operation lives.
 * flags: 0 or IOQ_MULTISHOT (one completion with IOQ_CQE_MORE per batch of deliveries).
 * Completion: result the number of deliveries since the previous completion (>= 1;
 *   deliveries that arrive together coalesce); value signum. IOQ_ECANCELED.
 * Returns 0, IOQ_EINVAL (bad signum, SIGKILL, SIGSTOP, unknown flags), IOQ_ENOTSUP (the
 *   platform cannot catch it: on Windows all but SIGINT (Ctrl-C), SIGBREAK (Ctrl-Break) and
 *   SIGHUP (the console closes), which come from the console control handler), IOQ_ENOMEM
 *   (more than 64 loops watch signals).
 * Since: 1.1 */
IOQ_API int ioq_signal(ioq_loop *loop, int signum, uint32_t flags, uint64_t token);

/* ioq_pipe - a new anonymous pipe as two handles of kind IOQ_KIND_PIPE: out[0] the read
 * end, out[1] the write end (close-on-exec both). ioq_recv, ioq_recv_pool, ioq_send,
 * ioq_sendv, ioq_shutdown and ioq_close work on PIPE and TTY handles as on a connected
 * socket, with the same stream order rules: sends go out whole and in order, receives
 * fill in order; a receive gets result 0 at end of stream (every write end closed).
 * Pipes and terminals of the process (stdin, stdout) join a loop with ioq_adopt(fd,
 * IOQ_KIND_PIPE or IOQ_KIND_TTY).
 * Each end goes one way: a receive on a write end, or a send or shutdown on a read end, is
 *   refused with IOQ_EBADHANDLE.
 * ioq_shutdown on a write end closes its writing side at once (the descriptor is swapped
 *   for the null device until ioq_close): the reader sees end of stream once what was sent
 *   before it is read; sends behind it complete with IOQ_EPIPE. On a descriptor that is
 *   also read (a terminal, a FIFO opened for both): IOQ_ENOTSUP.
 * A send whose reader is gone completes with IOQ_EPIPE: SIGPIPE is never raised.
 * flags: 0.
 * Windows (IOCP): a pipe is a named pipe with a unique name nobody else knows (as libuv's),
 *   both ends opened for overlapped I/O, not inheritable, on the loop's port. A sendv goes
 *   out in one WriteFile of up to 64 KiB (its pieces copied together). ioq_shutdown swaps
 *   the write end for the NUL device. ioq_adopt(IOQ_KIND_PIPE) takes any pipe HANDLE, the
 *   NUL device and consoles (the access rights say which way a pipe goes; a console's
 *   input buffer is read, its screen buffer written); IOQ_KIND_TTY takes consoles only
 *   (IOQ_ENOTTY for anything else). A socket is adopted as TCP there, not as PIPE
 *   (IOQ_EINVAL); a disk file is IOQ_KIND_FILE. A handle opened for overlapped I/O
 *   (FILE_FLAG_OVERLAPPED) joins the loop's port. One that is synchronous (CreatePipe's
 *   ends, a client opened without the flag, NUL, a console) is served as libuv serves it:
 *   a thread per handle and direction (made at its first receive or send) makes the
 *   blocking call on its own duplicate of the HANDLE (ReadFile/WriteFile; on a console
 *   ReadConsoleW/ReadConsoleInputW and WriteConsoleW, UTF-16 turned into UTF-8 and back, a
 *   UTF-8 sequence split across sends kept until it is whole) and hands the result to the
 *   loop through its port; the same stream order and one completion per op hold. The
 *   thread reads into a buffer of its own (up to 64 KiB, copied into the receive's buffer)
 *   and copies a send's bytes before writing, so that a cancel or close ends the op at
 *   once with IOQ_ECANCELED and the blocking call is interrupted (CancelSynchronousIo; a
 *   console reader waits for input before it reads, and that wait is ended). A call that
 *   cannot be interrupted (a console read in normal mode once a line is being typed, on
 *   systems whose console ignores CancelSynchronousIo; a device that ignores it) still
 *   ends its op at once; the call runs on: what it reads is kept for the next receive (or
 *   dropped after a close), what it writes still goes out, and the duplicate stays open
 *   until it returns (otherwise a close or shutdown waits up to 50 ms for the thread to
 *   close its duplicate, so that the other side sees the end once it has completed). A
 *   pipe's stream ends at ERROR_BROKEN_PIPE; a read of 0 bytes with success (what a
 *   zero-length WriteFile makes) is read again; 0 bytes from NUL is the end. On a console,
 *   raw mode reads the characters of key presses, and a key without one as the escape
 *   sequence xterm sends for it: arrows ESC [A..D, Home ESC [H, End ESC [F, Insert,
 *   Delete, Page Up, Page Down ESC [2~ [3~ [5~ [6~, F1-F4 ESC OP..OS, F5-F12 ESC [15~ ..
 *   [24~, with Shift, Alt and Ctrl as xterm's modifier (ESC [1;5A is Ctrl-Up, ESC [3;2~
 *   Shift-Delete); other keys without a character (Shift alone) and other events are
 *   left out. Normal mode reads a line with its "\r\n".
 * Returns 0, IOQ_EINVAL, IOQ_EMFILE, IOQ_ENFILE, IOQ_ENOMEM.
 * Since: 1.1 */
IOQ_API int ioq_pipe(ioq_loop *loop, uint32_t flags, ioq_handle out[2]);

/* ioq_tty_set_mode - put a terminal in IOQ_TTY_MODE_RAW or back to IOQ_TTY_MODE_NORMAL
 * (the mode it had when ioq first changed it). Synchronous. Raw: bytes arrive as typed,
 * no echo, no line editing, no signals from keys (^C is a byte). A terminal still raw when
 * its handle is closed is put back in its normal mode first.
 * Windows: SetConsoleMode on the console's input buffer (CONIN$ for an output handle):
 *   raw turns off ENABLE_LINE_INPUT, ENABLE_ECHO_INPUT and ENABLE_PROCESSED_INPUT.
 * Returns 0, IOQ_EINVAL (unknown mode), IOQ_EBADHANDLE (not a TTY handle), IOQ_ENOTTY,
 *   IOQ_ENOTSUP.
 * Since: 1.1 */
IOQ_API int ioq_tty_set_mode(ioq_loop *loop, ioq_handle tty, uint32_t mode);

/* ioq_tty_get_size - the terminal's window size in character cells. Synchronous.
 * Windows: the visible window of the console's screen buffer (CONOUT$ for an input
 *   handle), from GetConsoleScreenBufferInfo.
 * Returns 0, IOQ_EINVAL (NULL cols or rows), IOQ_EBADHANDLE (not a TTY handle),
 *   IOQ_ENOTTY, IOQ_ENOTSUP.
 * Since: 1.1 */
IOQ_API int ioq_tty_get_size(ioq_loop *loop, ioq_handle tty, uint32_t *cols,
                             uint32_t *rows);

/* ioq_spawn - start a child process. Synchronous: returns once the child runs (its exec
 * succeeded) or with the reason it could not start; a failed exec leaves no process.
 * opts: size set; file, argv required. Copied: nothing is referenced after the call.
 * process: receives the process handle (kind IOQ_KIND_PROCESS).
 * pipes: pipes[i] receives the parent's end of stdio[i] when its mode is IOQ_STDIO_PIPE
 *   (a PIPE handle: the write end for stdin, the read end for stdout and stderr), else 0;
 *   may be NULL when no stream is a PIPE.
 * The child inherits no other descriptor of ioq. Its signal dispositions are reset to the
 * defaults and its signal mask is empty. An IOQ_STDIO_HANDLE descriptor is shared with the
 * child as it is (it may be non-blocking: see ioq_adopt). ioq never installs a SIGCHLD
 * handler (POSIX: a pidfd on Linux 5.3 and later, else a small thread per child waits
 * without reaping); a host that reaps every child itself (waitpid(-1)) takes the status
 * away from ioq_process_wait, which then ends with IOQ_ESRCH.
 * Windows (IOCP): CreateProcessW. argv is joined into one command line quoted by the rules
 *   of the Microsoft C runtime (CommandLineToArgvW gives argv back); argv[0] is only the
 *   child's name for itself, file is what runs: a path (".exe" included), or with
 *   IOQ_SPAWN_SEARCH_PATH a bare name looked up with SearchPathW in the child's PATH (ours
 *   when env is NULL), ".exe" added when it has no extension. env (UTF-8 "NAME=value")
 *   becomes a UTF-16 block; SYSTEMROOT is added from ours when env lacks it. stdio:
 *   inheritable copies of the handles are given to the child (ours for IOQ_STDIO_INHERIT,
 *   none when we have none; the NUL device; the handle or HANDLE given; one copy when two
 *   streams share a handle), named in a PROC_THREAD_ATTRIBUTE_HANDLE_LIST: the child
 *   inherits them and no other handle of the process, not even one the host made
 *   inheritable (as libuv and CPython's subprocess do); a new pipe's
 *   child end is a synchronous handle, as a child expects (an IOQ_STDIO_HANDLE of an ioq
 *   pipe is overlapped: a child's synchronous ReadFile/WriteFile on it works while the
 *   call can finish at once, which is not promised for a full pipe; IOQ_STDIO_PIPE is the
 *   safe choice). IOQ_SPAWN_NEW_SESSION is
 *   CREATE_NEW_PROCESS_GROUP. A file that is no Windows program gives IOQ_ENOEXEC.
 * Returns 0, IOQ_EINVAL (bad options), IOQ_ENOENT, IOQ_EACCES, IOQ_ENOEXEC, IOQ_EBADHANDLE
 *   (a stdio handle), IOQ_EMFILE, IOQ_ENOMEM, IOQ_ENOTSUP.
 * Since: 1.1 */
IOQ_API int ioq_spawn(ioq_loop *loop, const ioq_process_options *opts,
                      ioq_handle *process, ioq_handle pipes[3]);

/* ioq_process_wait - wait for a child of ioq_spawn() to end. One wait per process at a
 * time. Completion: result the exit code (0..255) if it exited, 256 + the signal number if
 * a signal ended it; value 0. IOQ_ECANCELED after ioq_cancel/ioq_close. A wait submitted
 * after the child ended completes at once with its status. IOQ_ESRCH: someone else reaped
 * the child.
 * Windows (IOCP): result is the child's 32-bit exit code (0..4294967295: an unhandled
 *   exception gives its NTSTATUS, 0xC0000005 say). A child ended by ioq_kill reports
 *   256 + signum, as on POSIX, because that is the code ioq_kill gives TerminateProcess;
 *   a child that calls exit(256 + n) itself looks the same, and one ended by another
 *   program reports the code that program chose. The wait is a thread-pool wait
 *   (RegisterWaitForSingleObject) on the process handle, posting to the loop's port.
 * Returns 0, IOQ_EBADHANDLE (not a live process handle), IOQ_EBUSY (a wait is pending),
 *   IOQ_ENOMEM.
 * Since: 1.1 */
IOQ_API int ioq_process_wait(ioq_loop *loop, ioq_handle process, uint64_t token);

/* ioq_kill - send signal signum to a child of ioq_spawn().
 * Windows (IOCP) has no signals: SIGINT (2), SIGQUIT (3), SIGKILL (9) and SIGTERM (15) end
 * the child at once with TerminateProcess(exit code 256 + signum) (no handler of the child
 * runs); 0 tells whether it still runs; any other signum gives IOQ_ENOTSUP. One exception:
 * SIGINT to a child spawned with IOQ_SPAWN_NEW_SESSION (CREATE_NEW_PROCESS_GROUP) while
 * this process had a console (which the child shares) is a Ctrl-Break event sent to the
 * child's process group (GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, pid): every process
 * of that group gets it), which the child may handle (SetConsoleCtrlHandler, or SIGBREAK
 * in the C runtime), as a POSIX child may handle SIGINT; unhandled, the child ends with
 * STATUS_CONTROL_C_EXIT (0xC000013A), which its wait reports. Where the event cannot be
 * sent, SIGINT ends the child as above. (Tested only under wine 8, which cannot send
 * console control events, so the Ctrl-Break path has not been run.)
 * Returns 0, IOQ_ESRCH (it has ended and was reaped), IOQ_EINVAL (bad signum),
 * IOQ_EBADHANDLE, IOQ_ENOTSUP.
 * ioq_close() of a process handle does not kill the child: ioq reaps it when it ends and
 * never leaves a zombie behind; a pending wait ends with IOQ_ECANCELED.
 * Since: 1.1 */
IOQ_API int ioq_kill(ioq_loop *loop, ioq_handle process, int signum);

/* ioq_process_pid - the OS process id of a child of ioq_spawn().
 * Returns 0, IOQ_EINVAL (NULL pid), IOQ_EBADHANDLE.
 * Since: 1.1 */
IOQ_API int ioq_process_pid(ioq_loop *loop, ioq_handle process, int64_t *pid);

#ifdef __cplusplus
}
#endif

#endif /* IOQ_H */
