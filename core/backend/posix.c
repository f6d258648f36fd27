/*
 * The POSIX OS layer: clock, error translation, socket creation and options, file work and
 * name resolution for the thread pool. Shared by epoll, io_uring and kqueue.
 */
#include "posix.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#  include <linux/membarrier.h>
#  include <sys/syscall.h>
#endif

#if defined(IOQ_KQUEUE_EMULATION)
/* A test build on Linux over libkqueue: kqueue alone, as on macOS and BSD. */
const ioq__backend *const ioq__os_backends[] = {&ioq__backend_kqueue, NULL};
#elif defined(__linux__)
const ioq__backend *const ioq__os_backends[] = {
#  if defined(IOQ_HAVE_URING)
    &ioq__backend_uring,
#  endif
    &ioq__backend_epoll, NULL};
#else
const ioq__backend *const ioq__os_backends[] = {&ioq__backend_kqueue, NULL};
#endif

uint64_t ioq__os_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#if defined(__linux__)
/* membarrier(2), private expedited (Linux 4.14): an IPI to the CPUs that run this
 * process's threads. Registered once for the process; refused (old kernel, a seccomp
 * filter, valgrind) means none. */
bool ioq__os_barrier_init(void)
{
    static _Atomic int state; /* 0 not tried, 1 yes, 2 no */
    int s = atomic_load(&state);
    if (s == 0) {
        long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
        s = q >= 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
                    syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0
                ? 1
                : 2;
        atomic_store(&state, s);
    }
    return s == 1;
}

void ioq__os_barrier(void)
{
    /* The kernel documents no failure once the process is registered; were there one, a
     * notification could be lost without a trace: stop loudly instead. */
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
        abort();
}
#else
/* macOS and the BSDs have no such call: the notifier keeps its fenced path. */
bool ioq__os_barrier_init(void) { return false; }
void ioq__os_barrier(void) {}
#endif

int ioq__os_errno_map(int e)
{
    switch (e) {
    case 0: return IOQ_OK;
    case EINVAL: return IOQ_EINVAL;
    case EBADF: return IOQ_EBADHANDLE;
    case ENOMEM: return IOQ_ENOMEM;
    case ECANCELED: return IOQ_ECANCELED;
    case ETIMEDOUT: return IOQ_ETIMEDOUT;
    case ECONNREFUSED: return IOQ_ECONNREFUSED;
    case ECONNRESET: return IOQ_ECONNRESET;
    case ECONNABORTED: return IOQ_ECONNABORTED;
    case EPIPE: return IOQ_EPIPE;
    case EADDRINUSE: return IOQ_EADDRINUSE;
    case EADDRNOTAVAIL: return IOQ_EADDRNOTAVAIL;
    case ENETUNREACH: return IOQ_ENETUNREACH;
    case ENETDOWN: return IOQ_ENETUNREACH;
    case EHOSTUNREACH: return IOQ_EHOSTUNREACH;
    case EHOSTDOWN: return IOQ_EHOSTUNREACH;
    case EMFILE: return IOQ_EMFILE;
    case ENFILE: return IOQ_ENFILE;
    case ENOENT: return IOQ_ENOENT;
    case EACCES: return IOQ_EACCES;
    case EPERM: return IOQ_EPERM;
    case EEXIST: return IOQ_EEXIST;
    case EISDIR: return IOQ_EISDIR;
    case ENOTDIR: return IOQ_ENOTDIR;
    case ENOSPC: return IOQ_ENOSPC;
    case EDQUOT: return IOQ_ENOSPC;
    case EIO: return IOQ_EIO;
    case ENOBUFS: return IOQ_ENOBUFS;
    case EMSGSIZE: return IOQ_EMSGSIZE;
    case EOPNOTSUPP: return IOQ_ENOTSUP;
#if defined(ENOTSUP) && ENOTSUP != EOPNOTSUPP
    case ENOTSUP: return IOQ_ENOTSUP;
#endif
    case EPROTONOSUPPORT: return IOQ_ENOTSUP;
    case EBUSY: return IOQ_EBUSY;
    case ENOTCONN: return IOQ_ENOTCONN;
    case ENAMETOOLONG: return IOQ_ENAMETOOLONG;
    case EAGAIN: return IOQ_EAGAIN;
    case ENOSYS: return IOQ_ENOSYS;
    case EFBIG: return IOQ_EFBIG;
    case EROFS: return IOQ_EROFS;
    case ELOOP: return IOQ_ELOOP;
    case EAFNOSUPPORT: return IOQ_EAFNOSUPPORT;
    case EDESTADDRREQ: return IOQ_EDESTADDRREQ;
    case ESHUTDOWN: return IOQ_ESHUTDOWN;
    case ENOTSOCK: return IOQ_EBADHANDLE;
    case ESRCH: return IOQ_ESRCH;
    case ENOEXEC: return IOQ_ENOEXEC;
    case ENOTTY: return IOQ_ENOTTY;
    default: return IOQ_EUNKNOWN;
    }
}

/* --- addresses ------------------------------------------------------------------------------ */

int ioq__px_family(uint16_t f) { return f == IOQ_AF_INET6 ? AF_INET6 : AF_INET; }

int ioq__px_unix_addr(const char *path, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)ss;
    size_t n = strlen(path);
    memset(ss, 0, sizeof *ss);
    if (n >= sizeof sun->sun_path)
        return IOQ_ENAMETOOLONG;
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n + 1);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

/* --- sockets -------------------------------------------------------------------------------- */

int ioq__px_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return ioq__os_errno_map(errno);
    return 0;
}

static void no_sigpipe(int fd)
{
#if defined(SO_NOSIGPIPE)
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#else
    (void)fd;
#endif
}

int ioq__px_socket(int domain, int type)
{
    int fd;
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
    fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ioq__os_errno_map(errno);
#else
    fd = socket(domain, type, 0);
    if (fd < 0)
        return ioq__os_errno_map(errno);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (ioq__px_set_nonblock(fd) != 0) {
        int e = errno;
        close(fd);
        return ioq__os_errno_map(e);
    }
#endif
    no_sigpipe(fd);
    return fd;
}

int ioq__px_recv_batch(int fd, struct msghdr *msg, size_t *got, unsigned n)
{
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__)
    struct mmsghdr mm[IOQ__PX_BATCH];
    int r;
    for (unsigned i = 0; i < n; i++)
        mm[i].msg_hdr = msg[i];
    do
        r = recvmmsg(fd, mm, n, 0, NULL);
    while (r < 0 && errno == EINTR);
    for (int i = 0; i < r; i++) {
        msg[i].msg_namelen = mm[i].msg_hdr.msg_namelen;
        msg[i].msg_flags = mm[i].msg_hdr.msg_flags;
        got[i] = mm[i].msg_len;
    }
    return r;
#else
    unsigned k = 0;
    while (k < n) {
        ssize_t r = recvmsg(fd, &msg[k], 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return k > 0 ? (int)k : -1;
        got[k++] = (size_t)r;
    }
    return (int)k;
#endif
}

int ioq__px_accept(int fd)
{
    int c;
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
    c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0)
        return -errno;
#else
    c = accept(fd, NULL, NULL);
    if (c < 0)
        return -errno;
    fcntl(c, F_SETFD, FD_CLOEXEC);
    if (ioq__px_set_nonblock(c) != 0) {
        int e = errno;
        close(c);
        return -e;
    }
#endif
    no_sigpipe(c);
    return c;
}

static int bind_inet(int fd, const ioq_addr *addr, uint32_t flags)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int one = 1;

    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        return ioq__os_errno_map(errno);
#if defined(SO_REUSEPORT)
    if ((flags & IOQ_REUSEPORT) &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        return ioq__os_errno_map(errno);
#else
    if (flags & IOQ_REUSEPORT)
        return IOQ_ENOTSUP;
#endif
    if (addr->family == IOQ_AF_INET6) {
        int v6only = (flags & IOQ_V6ONLY) ? 1 : 0;
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0)
            return ioq__os_errno_map(errno);
    }
    ioq__to_sockaddr(addr, &ss, &len);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0)
        return ioq__os_errno_map(errno);
    return 0;
}

int ioq__os_tcp_listen(const ioq_addr *addr, uint32_t backlog, uint32_t flags, int64_t *out)
{
    int fd = ioq__px_socket(ioq__px_family(addr->family), SOCK_STREAM), rc;
    if (fd < 0)
        return fd;
    if ((rc = bind_inet(fd, addr, flags)) != 0 ||
        (listen(fd, (int)backlog) < 0 && (rc = ioq__os_errno_map(errno)) != 0)) {
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

int ioq__os_udp_bind(const ioq_addr *addr, uint32_t flags, int64_t *out)
{
    int fd = ioq__px_socket(ioq__px_family(addr->family), SOCK_DGRAM), rc;
    if (fd < 0)
        return fd;
    if ((rc = bind_inet(fd, addr, flags)) != 0) {
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

int ioq__os_local_listen(const char *path, uint32_t backlog, uint32_t flags, int64_t *out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, rc = ioq__px_unix_addr(path, &ss, &len);
    if (rc != 0)
        return rc;
    if (flags & IOQ_UNLINK) {
        struct stat st;
        /* Only a socket is removed: IOQ_UNLINK must never delete a user's regular file. */
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(path);
    }
    fd = ioq__px_socket(AF_UNIX, SOCK_STREAM);
    if (fd < 0)
        return fd;
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, (int)backlog) < 0) {
        rc = ioq__os_errno_map(errno);
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

int ioq__os_sockname(int64_t fd, bool peer, ioq_addr *out)
{
    return ioq__sock_addr(fd, peer, out) == 0 ? 0 : ioq__os_errno_map(errno);
}

static int set_int(int fd, int level, int name, int v)
{
    if (setsockopt(fd, level, name, &v, sizeof v) < 0)
        return ioq__os_errno_map(errno);
    return 0;
}

int ioq__os_setopt(int64_t fd64, uint8_t kind, uint32_t opt, int64_t value)
{
    int fd = (int)fd64, level, name;
    (void)kind;
    if (ioq__opt_int(opt, &level, &name))
        return set_int(fd, level, name, (int)value);
    switch (opt) {
    case IOQ_OPT_KEEPALIVE: {
        int rc = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, value ? 1 : 0);
        if (rc != 0 || value <= 1)
            return rc;
#if defined(TCP_KEEPIDLE)
        return set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)value);
#elif defined(TCP_KEEPALIVE)
        return set_int(fd, IPPROTO_TCP, TCP_KEEPALIVE, (int)value);
#else
        return 0;
#endif
    }
    case IOQ_OPT_LINGER: {
        struct linger l;
        l.l_onoff = value >= 0;
        l.l_linger = value >= 0 ? (int)value : 0;
        if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) < 0)
            return ioq__os_errno_map(errno);
        return 0;
    }
    default:
        return IOQ_EINVAL;
    }
}

bool ioq__os_valid_fd(uint64_t h)
{
    return h <= INT_MAX && fcntl((int)h, F_GETFD) != -1;
}

int ioq__os_adopt(int64_t fd64, uint32_t kind, uint8_t *family)
{
    int fd = (int)fd64, type = 0, listening = 0;
    socklen_t len = sizeof type;
    struct sockaddr_storage ss;
    socklen_t slen = sizeof ss;
    struct stat st;

    if (kind == IOQ_KIND_WATCH) {
        /* Only watched: nothing about it changes. A regular file or directory is always
         * "ready", and epoll refuses them: not watchable on any backend. */
        *family = 0;
        if (fstat(fd, &st) < 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
            return IOQ_EINVAL;
        return 0;
    }
    if (kind == IOQ_KIND_FILE) {
        if (fstat(fd, &st) < 0 || S_ISSOCK(st.st_mode) || S_ISDIR(st.st_mode))
            return IOQ_EINVAL;
        *family = 0;
        return 0;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &slen) < 0)
        return IOQ_EINVAL;
#if defined(SO_ACCEPTCONN)
    len = sizeof listening;
    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
#endif
    switch (kind) {
    case IOQ_KIND_TCP:
    case IOQ_KIND_TCP_LISTENER:
        if (type != SOCK_STREAM || (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) ||
            (listening != 0) != (kind == IOQ_KIND_TCP_LISTENER))
            return IOQ_EINVAL;
        break;
    case IOQ_KIND_UDP:
        if (type != SOCK_DGRAM || (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
            return IOQ_EINVAL;
        break;
    case IOQ_KIND_LOCAL:
    case IOQ_KIND_LOCAL_LISTENER:
        if (type != SOCK_STREAM || ss.ss_family != AF_UNIX ||
            (listening != 0) != (kind == IOQ_KIND_LOCAL_LISTENER))
            return IOQ_EINVAL;
        break;
    default:
        return IOQ_EINVAL;
    }
    *family = ss.ss_family == AF_INET6 ? IOQ_AF_INET6
              : ss.ss_family == AF_INET ? IOQ_AF_INET
                                        : 0;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    no_sigpipe(fd);
    return ioq__px_set_nonblock(fd);
}

void ioq__os_close(int64_t fd)
{
    /* Linux and the BSDs release the descriptor even when close reports EINTR: no retry. */
    if (fd >= 0)
        close((int)fd);
}

int ioq__px_open_flags(uint32_t f)
{
    int fl = O_CLOEXEC;
    if ((f & IOQ_OPEN_READ) && (f & IOQ_OPEN_WRITE))
        fl |= O_RDWR;
    else if (f & IOQ_OPEN_WRITE)
        fl |= O_WRONLY;
    else
        fl |= O_RDONLY;
    if (f & IOQ_OPEN_CREATE)
        fl |= O_CREAT;
    if (f & IOQ_OPEN_TRUNC)
        fl |= O_TRUNC;
    if (f & IOQ_OPEN_APPEND)
        fl |= O_APPEND;
    if (f & IOQ_OPEN_EXCL)
        fl |= O_EXCL;
    return fl;
}

#if defined(__linux__)
#  include <sys/timerfd.h>

void ioq__px_timerfd_arm(int tfd, uint64_t deadline)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (deadline != UINT64_MAX) {
        /* 0 would disarm: a deadline already past is armed one nanosecond in. */
        uint64_t d = deadline ? deadline : 1;
        its.it_value.tv_sec = (time_t)(d / 1000000000u);
        its.it_value.tv_nsec = (long)(d % 1000000000u);
    }
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}
#endif

/* --- thread-pool work ------------------------------------------------------------------------ */

void ioq__os_file_work(ioq__op *op)
{
    int fd = (int)op->res_fd;
    op->res_value = 0;
    switch (op->code) {
    case IOQ_OP_OPEN: {
        int nfd;
        do
            nfd = open(op->path, ioq__px_open_flags(op->flags), (mode_t)op->mode);
        while (nfd < 0 && errno == EINTR);
        op->res = nfd < 0 ? ioq__os_errno_map(errno) : 0;
        op->res_fd = nfd;
        break;
    }
    case IOQ_OP_READ: {
        ssize_t n;
        do
            n = pread(fd, op->buf, op->len, (off_t)op->offset);
        while (n < 0 && errno == EINTR);
        op->res = n < 0 ? ioq__os_errno_map(errno) : n;
        break;
    }
    case IOQ_OP_WRITE: {
        size_t done = 0;
        op->res = 0;
        while (done < op->len) {
            ssize_t n = pwrite(fd, (char *)op->buf + done, op->len - done,
                               (off_t)(op->offset + done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                op->res = n < 0 ? ioq__os_errno_map(errno) : IOQ_EIO;
                op->res_value = done;
                break;
            }
            done += (size_t)n;
        }
        if (op->res == 0)
            op->res = (int64_t)done;
        break;
    }
    case IOQ_OP_FSYNC:
        op->res = fsync(fd) < 0 ? ioq__os_errno_map(errno) : 0;
        break;
    default:
        op->res = IOQ_ENOTSUP;
        break;
    }
}

static int gai_map(int rc)
{
    switch (rc) {
    case EAI_NONAME:
#if defined(EAI_NODATA) && EAI_NODATA != EAI_NONAME
    case EAI_NODATA:
#endif
    case EAI_SERVICE:
        return IOQ_ENOTFOUND;
    case EAI_AGAIN:
        return IOQ_EAGAIN;
    case EAI_FAMILY:
        return IOQ_EAFNOSUPPORT;
    case EAI_MEMORY:
        return IOQ_ENOMEM;
    case EAI_SYSTEM:
        return ioq__os_errno_map(errno);
    default:
        return IOQ_EUNKNOWN;
    }
}

void ioq__os_resolve_work(ioq__op *op)
{
    struct addrinfo *res = NULL;
    int rc = ioq__resolve_lookup(op, &res);
    if (rc != 0) {
        op->res = gai_map(rc);
        return;
    }
    ioq__resolve_results(op, res);
}

/* --- signals ---------------------------------------------------------------------------- */

static struct sigaction old_actions[IOQ__NSIG];

static void on_signal(int signum)
{
    int saved = errno; /* the interrupted code may be between a call and its errno check */
    ioq__signal_raised(signum);
    errno = saved;
}

int ioq__os_signal_check(int signum)
{
    if (signum <= 0 || signum >= NSIG || signum >= IOQ__NSIG || signum == SIGKILL ||
        signum == SIGSTOP)
        return IOQ_EINVAL;
    return 0;
}

int ioq__os_signal_catch(int signum, bool on)
{
    struct sigaction sa;
    if (!on)
        return sigaction(signum, &old_actions[signum], NULL) < 0 ? ioq__os_errno_map(errno) : 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* SA_RESTART: the host's blocking calls go on as if nothing happened. */
    sa.sa_flags = SA_RESTART;
    return sigaction(signum, &sa, &old_actions[signum]) < 0 ? ioq__os_errno_map(errno) : 0;
}
