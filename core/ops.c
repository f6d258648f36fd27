/*
 * The public submission calls. Each validates every argument before anything changes, so a
 * negative return means nothing was accepted; then it takes an op, copies what the caller
 * may reuse at once (iovec arrays, addresses, paths) and hands the op to its owner.
 */
#include "loop.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_LEN 4096
#define HOST_MAX_LEN 1024

static bool addr_ok(const ioq_addr *a)
{
    return a && (a->family == IOQ_AF_INET || a->family == IOQ_AF_INET6);
}

static int path_check(const char *path)
{
    size_t n;
    if (!path || !*path)
        return IOQ_EINVAL;
    n = strlen(path);
    return n > PATH_MAX_LEN ? IOQ_ENAMETOOLONG : 0;
}

/* An op that carries a private copy of a path, checked first: 0 (*out set) or IOQ_E*. */
static int path_op(ioq_loop *loop, uint16_t code, const char *path, uint64_t token,
                   ioq__op **out)
{
    ioq__op *op;
    int rc;
    if ((rc = path_check(path)) != 0)
        return rc;
    if (loop->in_free)
        return IOQ_EMISUSE;
    if (!(op = ioq__op_new(loop, code, token)))
        return IOQ_ENOMEM;
    if (!(op->path = ioq__strdup(path))) {
        ioq__op_free(loop, op);
        return IOQ_ENOMEM;
    }
    *out = op;
    return 0;
}

int ioq__op_start(ioq_loop *loop, ioq__op *op, ioq__handle *h)
{
    int rc;
    if (h)
        ioq__op_attach(op, h);
    ioq__op_register(loop, op);
    op->at = IOQ__AT_BACKEND;
    rc = loop->backend->start(loop, op);
    if (rc != 0)
        ioq__op_reject(loop, op);
    return rc;
}

/* A handle for a socket ioq has just created: on failure the socket is closed. */
static int new_handle(ioq_loop *loop, uint8_t kind, uint8_t family, int64_t fd, ioq_handle *out)
{
    ioq__handle *h;
    int rc = ioq__handle_take(loop, kind, family, fd, &h);
    if (rc == 0)
        *out = ioq__handle_value(loop, h);
    return rc;
}

/* --- sockets --------------------------------------------------------------------------- */

int ioq_tcp_listen(ioq_loop *loop, const ioq_addr *addr, uint32_t backlog, uint32_t flags,
                   ioq_handle *out)
{
    int64_t fd;
    int rc;
    if (!loop || !out || !addr_ok(addr) || (flags & ~(uint32_t)(IOQ_REUSEPORT | IOQ_V6ONLY)) ||
        backlog > 65535 || ((flags & IOQ_V6ONLY) && addr->family != IOQ_AF_INET6))
        return IOQ_EINVAL;
    if (loop->in_free)
        return IOQ_EMISUSE;
    rc = ioq__os_tcp_listen(addr, backlog ? backlog : 511, flags, &fd);
    if (rc != 0)
        return rc;
    return new_handle(loop, IOQ__K_TCP_LISTENER, (uint8_t)addr->family, fd, out);
}

int ioq_udp_bind(ioq_loop *loop, const ioq_addr *addr, uint32_t flags, ioq_handle *out)
{
    int64_t fd;
    int rc;
    if (!loop || !out || !addr_ok(addr) || (flags & ~(uint32_t)(IOQ_REUSEPORT | IOQ_V6ONLY)) ||
        ((flags & IOQ_V6ONLY) && addr->family != IOQ_AF_INET6))
        return IOQ_EINVAL;
    if (loop->in_free)
        return IOQ_EMISUSE;
    rc = ioq__os_udp_bind(addr, flags, &fd);
    if (rc != 0)
        return rc;
    return new_handle(loop, IOQ__K_UDP, (uint8_t)addr->family, fd, out);
}

int ioq_local_listen(ioq_loop *loop, const char *path, uint32_t backlog, uint32_t flags,
                     ioq_handle *out)
{
    int64_t fd;
    int rc;
    if (!loop || !out || (flags & ~(uint32_t)IOQ_UNLINK) || backlog > 65535)
        return IOQ_EINVAL;
    if ((rc = path_check(path)) != 0)
        return rc;
    if (loop->in_free)
        return IOQ_EMISUSE;
    rc = ioq__os_local_listen(path, backlog ? backlog : 511, flags, &fd);
    if (rc != 0)
        return rc;
    return new_handle(loop, IOQ__K_LOCAL_LISTENER, 0, fd, out);
}

int ioq_accept(ioq_loop *loop, ioq_handle listener, uint32_t flags, uint64_t token)
{
    ioq__handle *h;
    ioq__op *op;
    int rc = ioq__handle_arg(loop, listener, IOQ__LISTENER_KINDS, &h);
    if (rc != 0)
        return rc;
    if (flags & ~(uint32_t)IOQ_MULTISHOT)
        return IOQ_EINVAL;
    if (!(op = ioq__op_new(loop, IOQ_OP_ACCEPT, token)))
        return IOQ_ENOMEM;
    op->flags = flags;
    return ioq__op_start(loop, op, h);
}

static int connect_common(ioq_loop *loop, uint8_t family, ioq__op *op)
{
    ioq__handle *h = ioq__handle_new(loop, IOQ__K_CONNECTING, -1);
    int rc;
    if (!h) {
        ioq__op_free(loop, op);
        return IOQ_ENOMEM;
    }
    h->family = family;
    rc = ioq__op_start(loop, op, h);
    if (rc != 0)
        ioq__handle_free(loop, h);
    return rc;
}

int ioq_connect(ioq_loop *loop, const ioq_addr *addr, uint32_t flags, uint64_t token)
{
    ioq__op *op;
    if (!loop || !addr_ok(addr) || addr->port == 0 || flags)
        return IOQ_EINVAL;
    if (loop->in_free)
        return IOQ_EMISUSE;
    if (!(op = ioq__op_new(loop, IOQ_OP_CONNECT, token)))
        return IOQ_ENOMEM;
    op->addr = *addr;
    return connect_common(loop, (uint8_t)addr->family, op);
}

int ioq_local_connect(ioq_loop *loop, const char *path, uint32_t flags, uint64_t token)
{
    ioq__op *op;
    int rc;
    if (!loop || flags)
        return IOQ_EINVAL;
    if ((rc = path_op(loop, IOQ_OP_LOCAL_CONNECT, path, token, &op)) != 0)
        return rc;
    return connect_common(loop, 0, op);
}

/* Buffer operations on a handle of `kinds`: inlined in each of the four calls, so that
 * ioq_send and ioq_recv (once per message) are specialised for their code. */
IOQ__INLINE_ALWAYS int buf_op(ioq_loop *loop, uint16_t code, ioq_handle hv, uint32_t kinds, void *buf,
                  size_t len, uint64_t offset, uint64_t token)
{
    ioq__handle *h;
    ioq__op *op;
    size_t done = 0;
    int rc = ioq__handle_arg(loop, hv, kinds, &h);
    if (rc != 0)
        return rc;
    if (!buf || len == 0 || len > IOQ_MAX_LEN || offset > (uint64_t)INT64_MAX)
        return IOQ_EINVAL;
    if (h->rstate & (code == IOQ_OP_RECV ? IOQ__R_NOREAD : IOQ__R_NOWRITE))
        return IOQ_EBADHANDLE; /* the other end of a pipe */
    if (loop->backend->now && code != IOQ_OP_READ && code != IOQ_OP_WRITE) {
        /* A readiness backend finishes most receives and sends in the call: then the
         * record, reserved first like an op's, is all there is. */
        int64_t res = 0;
        if (!ioq__cq_reserve(loop, loop->nops_live + 1))
            return IOQ_ENOMEM;
        if (loop->backend->now(loop, h, code, buf, len, &res, &done)) {
            ioq__cq_push(loop, token, res, res < 0 ? (uint64_t)done : 0, code, 0);
            return 0;
        }
    }
    if (!(op = ioq__op_new(loop, code, token)))
        return IOQ_ENOMEM;
    op->buf = buf;
    op->len = len;
    op->offset = offset;
    op->done = done;
    return ioq__op_start(loop, op, h);
}

int ioq_recv(ioq_loop *loop, ioq_handle h, void *buf, size_t len, uint64_t token)
{
    return buf_op(loop, IOQ_OP_RECV, h, IOQ__SOCKET_KINDS | IOQ__PIPE_KINDS, buf, len, 0, token);
}

int ioq_send(ioq_loop *loop, ioq_handle h, const void *buf, size_t len, uint64_t token)
{
    return buf_op(loop, IOQ_OP_SEND, h, IOQ__SOCKET_KINDS | IOQ__PIPE_KINDS, (void *)buf, len, 0,
                  token);
}

int ioq_read(ioq_loop *loop, ioq_handle h, void *buf, size_t len, uint64_t offset,
             uint64_t token)
{
    return buf_op(loop, IOQ_OP_READ, h, IOQ__KIND_BIT(IOQ__K_FILE), buf, len, offset, token);
}

int ioq_write(ioq_loop *loop, ioq_handle h, const void *buf, size_t len, uint64_t offset,
              uint64_t token)
{
    return buf_op(loop, IOQ_OP_WRITE, h, IOQ__KIND_BIT(IOQ__K_FILE), (void *)buf, len, offset,
                  token);
}

int ioq_recv_pool(ioq_loop *loop, ioq_handle hv, ioq_handle pool_h, uint32_t flags,
                  uint64_t token)
{
    ioq__handle *h, *ph;
    ioq__op *op;
    int rc = ioq__handle_arg(loop, hv, IOQ__SOCKET_KINDS | IOQ__PIPE_KINDS, &h);
    if (rc != 0)
        return rc;
    if (h->rstate & IOQ__R_NOREAD)
        return IOQ_EBADHANDLE;
    if (!(ph = ioq__handle_get(loop, pool_h, IOQ__KIND_BIT(IOQ__K_POOL))))
        return IOQ_EBADHANDLE;
    if (flags & ~(uint32_t)IOQ_MULTISHOT)
        return IOQ_EINVAL;
    if (!(op = ioq__op_new(loop, IOQ_OP_RECV_POOL, token)))
        return IOQ_ENOMEM;
    op->flags = flags;
    op->pool = ph->pool;
    ph->pool->users++;
    rc = ioq__op_start(loop, op, h);
    if (rc != 0)
        ph->pool->users--;
    return rc;
}

int ioq_sendv(ioq_loop *loop, ioq_handle hv, const ioq_iov *iov, uint32_t n, uint64_t token)
{
    ioq__handle *h;
    ioq__op *op;
    uint64_t total = 0;
    int rc = ioq__handle_arg(loop, hv, IOQ__SOCKET_KINDS | IOQ__PIPE_KINDS, &h);
    if (rc != 0)
        return rc;
    if (h->rstate & IOQ__R_NOWRITE)
        return IOQ_EBADHANDLE;
    if (!iov || n == 0 || n > IOQ_MAX_IOV)
        return IOQ_EINVAL;
    for (uint32_t i = 0; i < n; i++) {
        if (iov[i].len > IOQ_MAX_LEN || (!iov[i].base && iov[i].len))
            return IOQ_EINVAL;
        total += iov[i].len;
    }
    if (total == 0 || total > IOQ_MAX_LEN)
        return IOQ_EINVAL;
    if (!(op = ioq__op_new(loop, IOQ_OP_SENDV, token)))
        return IOQ_ENOMEM;
    if (n <= sizeof op->iov_small / sizeof op->iov_small[0]) {
        op->iov = op->iov_small;
    } else if (!(op->iov = malloc(n * sizeof *op->iov))) {
        ioq__op_free(loop, op);
        return IOQ_ENOMEM;
    }
    memcpy(op->iov, iov, n * sizeof *iov);
    op->iovcnt = n;
    op->len = (size_t)total;
    return ioq__op_start(loop, op, h);
}

int ioq_sendto(ioq_loop *loop, ioq_handle hv, const void *buf, size_t len, const ioq_addr *addr,
               uint64_t token)
{
    ioq__handle *h;
    ioq__op *op;
    int rc = ioq__handle_arg(loop, hv, IOQ__KIND_BIT(IOQ__K_UDP), &h);
    if (rc != 0)
        return rc;
    if ((!buf && len) || len > IOQ_MAX_LEN || !addr_ok(addr) || addr->port == 0)
        return IOQ_EINVAL;
    if (!(op = ioq__op_new(loop, IOQ_OP_SENDTO, token)))
        return IOQ_ENOMEM;
    op->buf = (void *)buf;
    op->len = len;
    op->addr = *addr;
    return ioq__op_start(loop, op, h);
}

int ioq_recvfrom(ioq_loop *loop, ioq_handle hv, void *buf, size_t len, ioq_addr *addr_out,
                 uint64_t token)
{
    ioq__handle *h;
    ioq__op *op;
    int rc = ioq__handle_arg(loop, hv, IOQ__KIND_BIT(IOQ__K_UDP), &h);
    if (rc != 0)
        return rc;
    if (!buf || len == 0 || len > IOQ_MAX_LEN)
        return IOQ_EINVAL;
    if (!(op = ioq__op_new(loop, IOQ_OP_RECVFROM, token)))
        return IOQ_ENOMEM;
    op->buf = buf;
    op->len = len;
    op->addr_out = addr_out;
    return ioq__op_start(loop, op, h);
}

int ioq_shutdown(ioq_loop *loop, ioq_handle hv, uint64_t token)
{
    ioq__handle *h;
    ioq__op *op;
    int rc = ioq__handle_arg(loop, hv, IOQ__STREAM_KINDS | IOQ__PIPE_KINDS, &h);
    if (rc != 0)
        return rc;
    if (h->rstate & IOQ__R_NOWRITE)
        return IOQ_EBADHANDLE; /* the read end of a pipe */
    /* A pipe's shutdown closes its descriptor's writing side, which for a descriptor that
     * is also read (a terminal, a FIFO opened for both) would end the reading too. */
    if ((IOQ__KIND_BIT(h->kind) & IOQ__PIPE_KINDS) && !(h->rstate & IOQ__R_NOREAD))
        return IOQ_ENOTSUP;
    if (!(op = ioq__op_new(loop, IOQ_OP_SHUTDOWN, token)))
        return IOQ_ENOMEM;
    return ioq__op_start(loop, op, h);
}

/* --- files ------------------------------------------------------------------------------- */

int ioq_open(ioq_loop *loop, const char *path, uint32_t flags, uint32_t mode, uint64_t token)
{
    const uint32_t known = IOQ_OPEN_READ | IOQ_OPEN_WRITE | IOQ_OPEN_CREATE | IOQ_OPEN_TRUNC |
                           IOQ_OPEN_APPEND | IOQ_OPEN_EXCL;
    ioq__op *op;
    int rc;
    if (!loop || (flags & ~known) || !(flags & (IOQ_OPEN_READ | IOQ_OPEN_WRITE)) ||
        mode > 07777 || ((flags & IOQ_OPEN_EXCL) && !(flags & IOQ_OPEN_CREATE)))
        return IOQ_EINVAL;
    if ((rc = path_op(loop, IOQ_OP_OPEN, path, token, &op)) != 0)
        return rc;
    op->flags = flags;
    op->mode = mode;
    return ioq__op_start(loop, op, NULL);
}

int ioq_fsync(ioq_loop *loop, ioq_handle hv, uint64_t token)
{
    ioq__handle *h;
    ioq__op *op;
    int rc = ioq__handle_arg(loop, hv, IOQ__KIND_BIT(IOQ__K_FILE), &h);
    if (rc != 0)
        return rc;
    if (!(op = ioq__op_new(loop, IOQ_OP_FSYNC, token)))
        return IOQ_ENOMEM;
    return ioq__op_start(loop, op, h);
}

/* --- timers, resolve ------------------------------------------------------------------------ */

/* One path for both timeout calls: past this point a deadline is absolute on ioq_now's
 * clock. ioq_timeout reads that clock in the call (its "never earlier" counts from there);
 * ioq_timeout_at leaves the base to the caller, who may read it once for many timers. */
static int timeout_add(ioq_loop *loop, int relative, uint64_t t, uint64_t token)
{
    ioq__op *op;
    int rc;
    if (!loop)
        return IOQ_EINVAL;
    if (loop->in_free)
        return IOQ_EMISUSE;
    if (!(op = ioq__op_new(loop, IOQ_OP_TIMEOUT, token)))
        return IOQ_ENOMEM;
    if (relative) {
        uint64_t now = ioq__os_now();
        t = t > UINT64_MAX - now ? UINT64_MAX : now + t;
    }
    /* A deadline already past is simply the heap's least key: ioq_poll fires it at once. */
    op->deadline = t;
    ioq__op_register(loop, op);
    rc = ioq__timer_add(loop, op);
    if (rc != 0)
        ioq__op_reject(loop, op);
    return rc;
}

int ioq_timeout(ioq_loop *loop, uint64_t ns, uint64_t token)
{
    return timeout_add(loop, 1, ns, token);
}

int ioq_timeout_at(ioq_loop *loop, uint64_t deadline_ns, uint64_t token)
{
    return timeout_add(loop, 0, deadline_ns, token);
}

int ioq_resolve(ioq_loop *loop, const char *host, const char *service, uint32_t flags,
                ioq_addr *out_addrs, uint32_t max, uint64_t token)
{
    const uint32_t known = IOQ_RESOLVE_INET | IOQ_RESOLVE_INET6 | IOQ_RESOLVE_NUMERIC;
    ioq__op *op;
    int rc;
    if (!loop || (!host && !service) || !out_addrs || max == 0 || (flags & ~known))
        return IOQ_EINVAL;
    if ((host && strlen(host) > HOST_MAX_LEN) || (service && strlen(service) > HOST_MAX_LEN))
        return IOQ_ENAMETOOLONG;
    if (loop->in_free)
        return IOQ_EMISUSE;
    if (!(op = ioq__op_new(loop, IOQ_OP_RESOLVE, token)))
        return IOQ_ENOMEM;
    if ((host && !(op->path = ioq__strdup(host))) ||
        (service && !(op->path2 = ioq__strdup(service)))) {
        ioq__op_free(loop, op);
        return IOQ_ENOMEM;
    }
    op->flags = flags;
    op->addr_out = out_addrs;
    op->max = max;
    ioq__op_register(loop, op);
    rc = ioq__tp_submit(loop, op, ioq__os_resolve_work);
    if (rc != 0)
        ioq__op_reject(loop, op);
    return rc;
}

/* --- queries, options, adoption -------------------------------------------------------------- */

static int sock_name(ioq_loop *loop, ioq_handle hv, bool peer, ioq_addr *out)
{
    ioq__handle *h;
    int rc = ioq__handle_arg(loop, hv, ~0u, &h);
    if (rc != 0)
        return rc;
    if (!out)
        return IOQ_EINVAL;
    if (h->family == 0)
        return IOQ_ENOTSUP;
    if (peer && h->kind == IOQ__K_TCP_LISTENER)
        return IOQ_ENOTCONN;
    return ioq__os_sockname(h->fd, peer, out);
}

int ioq_sockname(ioq_loop *loop, ioq_handle hv, ioq_addr *out)
{
    return sock_name(loop, hv, false, out);
}

int ioq_peername(ioq_loop *loop, ioq_handle hv, ioq_addr *out)
{
    return sock_name(loop, hv, true, out);
}

/* What each IOQ_OPT_* accepts: the value range (checked first: IOQ_EINVAL) and the socket
 * kinds it means something for (IOQ_ENOTSUP otherwise). The OS layer only applies it. */
static const struct {
    int64_t min, max;
    uint32_t kinds;
} opt_rules[] = {
    [IOQ_OPT_NODELAY] = {0, 1, IOQ__TCP_KINDS},
    [IOQ_OPT_KEEPALIVE] = {0, 32767, IOQ__TCP_KINDS},
    [IOQ_OPT_RCVBUF] = {1, INT_MAX / 2, IOQ__ANY_SOCKET_KINDS},
    [IOQ_OPT_SNDBUF] = {1, INT_MAX / 2, IOQ__ANY_SOCKET_KINDS},
    [IOQ_OPT_REUSEADDR] = {0, 1, IOQ__ANY_SOCKET_KINDS},
    [IOQ_OPT_BROADCAST] = {0, 1, IOQ__KIND_BIT(IOQ__K_UDP)},
    [IOQ_OPT_LINGER] = {-1, 65535, IOQ__ANY_SOCKET_KINDS & ~IOQ__KIND_BIT(IOQ__K_UDP)},
};

int ioq_setopt(ioq_loop *loop, ioq_handle hv, uint32_t opt, int64_t value)
{
    ioq__handle *h;
    int rc = ioq__handle_arg(loop, hv, ~0u, &h);
    if (rc != 0)
        return rc;
    if (opt < IOQ_OPT_NODELAY || opt > IOQ_OPT_LINGER)
        return IOQ_EINVAL;
    if (h->kind == IOQ__K_FILE || h->kind == IOQ__K_POOL)
        return IOQ_ENOTSUP;
    if (value < opt_rules[opt].min || value > opt_rules[opt].max)
        return IOQ_EINVAL;
    if (!(opt_rules[opt].kinds & IOQ__KIND_BIT(h->kind)))
        return IOQ_ENOTSUP;
    return ioq__os_setopt(h->fd, h->kind, opt, value);
}

int ioq_adopt(ioq_loop *loop, uint64_t os_handle, uint32_t kind, ioq_handle *out)
{
    uint8_t family = 0;
    int rc;
    if (!loop || !out || kind < IOQ_KIND_TCP || kind > IOQ_KIND_TTY ||
        !ioq__os_valid_fd(os_handle))
        return IOQ_EINVAL;
    if (loop->in_free)
        return IOQ_EMISUSE;
    /* Before ioq__os_adopt changes the descriptor's flags under the handle that owns it. A
     * watch being closed does not own its descriptor: it may be watched again at once. */
    {
        ioq__handle *old = ioq__handle_by_fd(loop, (int64_t)os_handle);
        if (old && !(kind == IOQ_KIND_WATCH && old->kind == IOQ__K_WATCH &&
                     (old->rstate & IOQ__R_CLOSING)))
            return IOQ_EEXIST;
    }
    if (kind == IOQ_KIND_PIPE || kind == IOQ_KIND_TTY)
        return ioq__adopt_stream(loop, os_handle, kind, out);
    rc = ioq__os_adopt((int64_t)os_handle, kind, &family);
    if (rc != 0)
        return rc;
    {
        ioq__handle *h;
        /* On failure the descriptor is not ours yet: the caller keeps it. */
        if ((rc = ioq__handle_open(loop, (uint8_t)kind, family, (int64_t)os_handle, &h)) != 0)
            return rc;
        *out = ioq__handle_value(loop, h);
    }
    return 0;
}

int ioq_os_handle(ioq_loop *loop, ioq_handle hv, uint64_t *out)
{
    ioq__handle *h;
    int rc = ioq__handle_arg(loop, hv, ~0u, &h);
    if (rc != 0)
        return rc;
    if (!out)
        return IOQ_EINVAL;
    if (h->fd < 0)
        return IOQ_ENOTSUP;
    *out = (uint64_t)h->fd;
    return 0;
}
