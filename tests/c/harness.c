#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Tracker ------------------------------------------------------------------------------- */

typedef struct rec {
    ioq_loop *loop;   /* NULL = empty slot */
    uint64_t token;
    uint16_t op;
    uint8_t multishot;
    uint32_t pending; /* final completions still owed (tokens may repeat) */
    uint64_t finals;  /* final completions seen */
} rec;

typedef struct logent {
    ioq_loop *loop;
    ioq_cqe cqe;
    int taken;
} logent;

#define H_MAX_LOOPS 16

static rec *g_tab;
static size_t g_cap, g_used;
static logent *g_log;
static size_t g_log_len, g_log_cap, g_log_head;
static struct {
    ioq_loop *loop;
    size_t pending;
} g_loops[H_MAX_LOOPS];
static uint64_t g_next_tok = 0x1000;
static int g_fds_at_setup = -1;
static char g_tmpdir[256];
static int g_skipped;

static size_t slot_of(ioq_loop *loop, uint64_t token, size_t cap)
{
    uint64_t x = token ^ ((uint64_t)(uintptr_t)loop * 0x9e3779b97f4a7c15ull);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return (size_t)(x & (cap - 1));
}

static rec *find(ioq_loop *loop, uint64_t token, int create)
{
    if (g_cap == 0 || (create && (g_used + 1) * 2 > g_cap)) {
        size_t ncap = g_cap ? g_cap * 2 : 1024;
        rec *nt = calloc(ncap, sizeof(rec));
        assert_non_null(nt);
        for (size_t i = 0; i < g_cap; i++) {
            if (g_tab[i].loop == NULL)
                continue;
            size_t s = slot_of(g_tab[i].loop, g_tab[i].token, ncap);
            while (nt[s].loop != NULL)
                s = (s + 1) & (ncap - 1);
            nt[s] = g_tab[i];
        }
        free(g_tab);
        g_tab = nt;
        g_cap = ncap;
    }
    size_t s = slot_of(loop, token, g_cap);
    while (g_tab[s].loop != NULL) {
        if (g_tab[s].loop == loop && g_tab[s].token == token)
            return &g_tab[s];
        s = (s + 1) & (g_cap - 1);
    }
    if (!create)
        return NULL;
    g_tab[s].loop = loop;
    g_tab[s].token = token;
    g_used++;
    return &g_tab[s];
}

static size_t *loop_pending(ioq_loop *loop)
{
    for (int i = 0; i < H_MAX_LOOPS; i++)
        if (g_loops[i].loop == loop)
            return &g_loops[i].pending;
    for (int i = 0; i < H_MAX_LOOPS; i++) {
        if (g_loops[i].loop == NULL) {
            g_loops[i].loop = loop;
            g_loops[i].pending = 0;
            return &g_loops[i].pending;
        }
    }
    fail_msg("too many loops in one test");
    return NULL;
}

int h_track(ioq_loop *loop, int rc, uint64_t token, uint16_t op, int multishot)
{
    if (rc != 0)
        return rc;
    rec *r = find(loop, token, 1);
    if (r->pending > 0 && (r->op != op || r->multishot != (multishot != 0)))
        fail_msg("token %llu is in flight as op %u and reused for op %u",
                 (unsigned long long)token, r->op, op);
    r->op = op;
    r->multishot = multishot != 0;
    r->pending++;
    (*loop_pending(loop))++;
    return rc;
}

uint64_t h_tok(void)
{
    return g_next_tok++;
}

size_t h_pending(ioq_loop *loop)
{
    return *loop_pending(loop);
}

int h_done(ioq_loop *loop, uint64_t token)
{
    rec *r = find(loop, token, 0);
    return r == NULL || r->pending == 0;
}

static void check_cqe(ioq_loop *loop, const ioq_cqe *c)
{
    rec *r = find(loop, c->token, 0);
    if (r == NULL)
        fail_msg("completion for token %llu that was never accepted (op %u, result %lld)",
                 (unsigned long long)c->token, c->op, (long long)c->result);
    if (r->pending == 0)
        fail_msg("second final completion for token %llu (op %u, result %lld, flags %#x)",
                 (unsigned long long)c->token, c->op, (long long)c->result, c->flags);
    if (c->reserved != 0)
        fail_msg("cqe.reserved is %u for token %llu", c->reserved,
                 (unsigned long long)c->token);
    if (c->op != r->op)
        fail_msg("token %llu submitted as op %u completed as op %u (result %lld)",
                 (unsigned long long)c->token, r->op, c->op, (long long)c->result);
    if ((c->flags & ~(IOQ_CQE_MORE | IOQ_CQE_BUFFER)) != 0)
        fail_msg("unknown cqe flags %#x", c->flags);
    if ((c->flags & IOQ_CQE_MORE) && !r->multishot)
        fail_msg("IOQ_CQE_MORE on single-shot op %u, token %llu", c->op,
                 (unsigned long long)c->token);
    if ((c->flags & IOQ_CQE_BUFFER) && (c->op != IOQ_OP_RECV_POOL || c->result <= 0))
        fail_msg("IOQ_CQE_BUFFER on op %u with result %lld", c->op, (long long)c->result);
    if (c->op == IOQ_OP_RECV_POOL && c->result > 0 && !(c->flags & IOQ_CQE_BUFFER))
        fail_msg("recv_pool result %lld without IOQ_CQE_BUFFER", (long long)c->result);
    if ((c->flags & IOQ_CQE_MORE) && c->result < 0)
        fail_msg("IOQ_CQE_MORE on an error completion (%lld)", (long long)c->result);
    if (!(c->flags & IOQ_CQE_MORE)) {
        r->pending--;
        r->finals++;
        (*loop_pending(loop))--;
    }
}

static void log_push(ioq_loop *loop, const ioq_cqe *c)
{
    if (g_log_len == g_log_cap) {
        /* Drop taken entries at the front before growing. */
        if (g_log_head > 0) {
            memmove(g_log, g_log + g_log_head, (g_log_len - g_log_head) * sizeof(logent));
            g_log_len -= g_log_head;
            g_log_head = 0;
        }
        if (g_log_len == g_log_cap) {
            g_log_cap = g_log_cap ? g_log_cap * 2 : 1024;
            g_log = realloc(g_log, g_log_cap * sizeof(logent));
            assert_non_null(g_log);
        }
    }
    g_log[g_log_len].loop = loop;
    g_log[g_log_len].cqe = *c;
    g_log[g_log_len].taken = 0;
    g_log_len++;
}

int h_poll_into(ioq_loop *loop, ioq_cqe *out, uint32_t max, int64_t timeout_ns)
{
    int n = ioq_poll(loop, out, max, timeout_ns);
    if (n < 0)
        fail_msg("ioq_poll failed: %d (%s)", n, ioq_errname(n));
    assert_true((uint32_t)n <= max);
    for (int i = 0; i < n; i++)
        check_cqe(loop, &out[i]);
    return n;
}

int h_poll(ioq_loop *loop, int64_t timeout_ns)
{
    ioq_cqe cqes[128];
    int n = h_poll_into(loop, cqes, 128, timeout_ns);
    for (int i = 0; i < n; i++)
        log_push(loop, &cqes[i]);
    return n;
}

static void deadline_fail(const char *what, int timeout_ms)
{
    fail_msg("%s: nothing after %d ms (the test hung)", what, timeout_ms);
}

void h_poll_until(ioq_loop *loop, int (*pred)(void *ctx), void *ctx, int timeout_ms)
{
    uint64_t end = h_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
    while (!pred(ctx)) {
        if (h_mono_ns() > end)
            deadline_fail("h_poll_until", timeout_ms);
        h_poll(loop, 100 * 1000000ll);
    }
}

static logent *log_find(ioq_loop *loop, uint64_t token, int any)
{
    while (g_log_head < g_log_len && g_log[g_log_head].taken)
        g_log_head++;
    for (size_t i = g_log_head; i < g_log_len; i++) {
        logent *e = &g_log[i];
        if (!e->taken && e->loop == loop && (any || e->cqe.token == token))
            return e;
    }
    return NULL;
}

int h_take_logged(ioq_loop *loop, ioq_cqe *out)
{
    logent *e = log_find(loop, 0, 1);
    if (e == NULL)
        return 0;
    e->taken = 1;
    *out = e->cqe;
    return 1;
}

int h_logged(ioq_loop *loop, uint64_t token)
{
    return log_find(loop, token, 0) != NULL;
}

static ioq_cqe next_impl(ioq_loop *loop, uint64_t token, int any)
{
    uint64_t end = h_mono_ns() + (uint64_t)H_DEADLINE_MS * 1000000ull;
    for (;;) {
        logent *e = log_find(loop, token, any);
        if (e != NULL) {
            e->taken = 1;
            return e->cqe;
        }
        if (h_mono_ns() > end) {
            char what[96];
            snprintf(what, sizeof what, "waiting for token %llu", (unsigned long long)token);
            deadline_fail(what, H_DEADLINE_MS);
        }
        h_poll(loop, 100 * 1000000ll);
    }
}

ioq_cqe h_next(ioq_loop *loop, uint64_t token)
{
    return next_impl(loop, token, 0);
}

ioq_cqe h_next_any(ioq_loop *loop)
{
    return next_impl(loop, 0, 1);
}

ioq_cqe h_wait(ioq_loop *loop, uint64_t token)
{
    for (;;) {
        ioq_cqe c = h_next(loop, token);
        if (!(c.flags & IOQ_CQE_MORE))
            return c;
    }
}

void h_assert_quiet(ioq_loop *loop, int ms)
{
    uint64_t end = h_mono_ns() + (uint64_t)ms * 1000000ull;
    do {
        ioq_cqe c[8];
        int n = h_poll_into(loop, c, 8, 10 * 1000000ll);
        if (n > 0)
            fail_msg("unexpected completion: token %llu op %u result %lld",
                     (unsigned long long)c[0].token, c[0].op, (long long)c[0].result);
    } while (h_mono_ns() < end);
}

/* Loops --------------------------------------------------------------------------------- */

const char *h_backend(void)
{
    const char *b = getenv("IOQ_BACKEND");
    return b && *b ? b : "epoll";
}

ioq_loop *h_loop_new(void)
{
    ioq_loop *loop = NULL;
    int rc = ioq_loop_new(NULL, &loop);
    if (rc != 0)
        fail_msg("ioq_loop_new: %d (%s)", rc, ioq_errname(rc));
    assert_non_null(loop);
    assert_string_equal(ioq_loop_backend(loop), h_backend());
    (void)loop_pending(loop);
    return loop;
}

static int all_done(void *ctx)
{
    return h_pending((ioq_loop *)ctx) == 0;
}

void h_forget(ioq_loop *loop)
{
    for (size_t i = 0; i < g_cap; i++) {
        if (g_tab[i].loop == loop) {
            /* Rebuild: open addressing has no cheap delete. */
            rec *old = g_tab;
            size_t ocap = g_cap;
            g_tab = NULL;
            g_cap = 0;
            g_used = 0;
            for (size_t j = 0; j < ocap; j++) {
                if (old[j].loop != NULL && old[j].loop != loop) {
                    rec *r = find(old[j].loop, old[j].token, 1);
                    *r = old[j];
                }
            }
            free(old);
            break;
        }
    }
    for (size_t i = 0; i < g_log_len; i++)
        if (g_log[i].loop == loop)
            g_log[i].taken = 1;
    for (int i = 0; i < H_MAX_LOOPS; i++)
        if (g_loops[i].loop == loop)
            g_loops[i].loop = NULL;
}

void h_finish(ioq_loop *loop)
{
    h_poll_until(loop, all_done, loop, H_DEADLINE_MS);
    ioq_loop_free(loop);
    h_forget(loop);
}

/* Wrappers -------------------------------------------------------------------------------- */

int h_accept(ioq_loop *l, ioq_handle lis, uint32_t flags, uint64_t tok)
{
    return h_track(l, ioq_accept(l, lis, flags, tok), tok, IOQ_OP_ACCEPT,
                   (flags & IOQ_MULTISHOT) != 0);
}

int h_connect(ioq_loop *l, const ioq_addr *a, uint32_t flags, uint64_t tok)
{
    return h_track(l, ioq_connect(l, a, flags, tok), tok, IOQ_OP_CONNECT, 0);
}

int h_local_connect(ioq_loop *l, const char *path, uint32_t flags, uint64_t tok)
{
    return h_track(l, ioq_local_connect(l, path, flags, tok), tok, IOQ_OP_LOCAL_CONNECT, 0);
}

int h_recv(ioq_loop *l, ioq_handle h, void *buf, size_t len, uint64_t tok)
{
    return h_track(l, ioq_recv(l, h, buf, len, tok), tok, IOQ_OP_RECV, 0);
}

int h_recv_pool(ioq_loop *l, ioq_handle h, ioq_handle pool, uint32_t flags, uint64_t tok)
{
    return h_track(l, ioq_recv_pool(l, h, pool, flags, tok), tok, IOQ_OP_RECV_POOL,
                   (flags & IOQ_MULTISHOT) != 0);
}

int h_send(ioq_loop *l, ioq_handle h, const void *buf, size_t len, uint64_t tok)
{
    return h_track(l, ioq_send(l, h, buf, len, tok), tok, IOQ_OP_SEND, 0);
}

int h_sendv(ioq_loop *l, ioq_handle h, const ioq_iov *iov, uint32_t n, uint64_t tok)
{
    return h_track(l, ioq_sendv(l, h, iov, n, tok), tok, IOQ_OP_SENDV, 0);
}

int h_sendto(ioq_loop *l, ioq_handle h, const void *buf, size_t len, const ioq_addr *a,
             uint64_t tok)
{
    return h_track(l, ioq_sendto(l, h, buf, len, a, tok), tok, IOQ_OP_SENDTO, 0);
}

int h_recvfrom(ioq_loop *l, ioq_handle h, void *buf, size_t len, ioq_addr *a, uint64_t tok)
{
    return h_track(l, ioq_recvfrom(l, h, buf, len, a, tok), tok, IOQ_OP_RECVFROM, 0);
}

int h_shutdown(ioq_loop *l, ioq_handle h, uint64_t tok)
{
    return h_track(l, ioq_shutdown(l, h, tok), tok, IOQ_OP_SHUTDOWN, 0);
}

int h_close(ioq_loop *l, ioq_handle h, uint64_t tok)
{
    return h_track(l, ioq_close(l, h, tok), tok, IOQ_OP_CLOSE, 0);
}

int h_open(ioq_loop *l, const char *path, uint32_t flags, uint32_t mode, uint64_t tok)
{
    return h_track(l, ioq_open(l, path, flags, mode, tok), tok, IOQ_OP_OPEN, 0);
}

int h_read(ioq_loop *l, ioq_handle h, void *buf, size_t len, uint64_t off, uint64_t tok)
{
    return h_track(l, ioq_read(l, h, buf, len, off, tok), tok, IOQ_OP_READ, 0);
}

int h_write(ioq_loop *l, ioq_handle h, const void *buf, size_t len, uint64_t off,
            uint64_t tok)
{
    return h_track(l, ioq_write(l, h, buf, len, off, tok), tok, IOQ_OP_WRITE, 0);
}

int h_fsync(ioq_loop *l, ioq_handle h, uint64_t tok)
{
    return h_track(l, ioq_fsync(l, h, tok), tok, IOQ_OP_FSYNC, 0);
}

int h_timeout(ioq_loop *l, uint64_t ns, uint64_t tok)
{
    return h_track(l, ioq_timeout(l, ns, tok), tok, IOQ_OP_TIMEOUT, 0);
}

int h_timeout_at(ioq_loop *l, uint64_t deadline_ns, uint64_t tok)
{
    return h_track(l, ioq_timeout_at(l, deadline_ns, tok), tok, IOQ_OP_TIMEOUT, 0);
}

int h_cancel(ioq_loop *l, uint64_t target, uint64_t tok)
{
    return h_track(l, ioq_cancel(l, target, tok), tok, IOQ_OP_CANCEL, 0);
}

int h_resolve(ioq_loop *l, const char *host, const char *service, uint32_t flags,
              ioq_addr *out, uint32_t max, uint64_t tok)
{
    return h_track(l, ioq_resolve(l, host, service, flags, out, max, tok), tok,
                   IOQ_OP_RESOLVE, 0);
}

int h_post(ioq_loop *l, uint64_t tok, int64_t result)
{
    /* Tracked first: the completion may be polled by nobody else, but keep the order
     * of the tracker independent of the library's speed. */
    h_track(l, 0, tok, IOQ_OP_POST, 0);
    int rc = ioq_post(l, tok, result);
    if (rc != 0)
        fail_msg("ioq_post: %d", rc);
    return rc;
}

/* Synchronous conveniences ----------------------------------------------------------------- */

void h_close_wait(ioq_loop *l, ioq_handle h)
{
    uint64_t t = h_tok();
    assert_int_equal(h_close(l, h, t), 0);
    ioq_cqe c = h_wait(l, t);
    assert_int_equal(c.result, 0);
}

void h_send_wait(ioq_loop *l, ioq_handle h, const void *buf, size_t len)
{
    uint64_t t = h_tok();
    assert_int_equal(h_send(l, h, buf, len, t), 0);
    ioq_cqe c = h_wait(l, t);
    assert_int_equal(c.result, (int64_t)len);
}

int64_t h_recv_once(ioq_loop *l, ioq_handle h, void *buf, size_t len)
{
    uint64_t t = h_tok();
    assert_int_equal(h_recv(l, h, buf, len, t), 0);
    return h_wait(l, t).result;
}

void h_recv_exact(ioq_loop *l, ioq_handle h, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        int64_t n = h_recv_once(l, h, (char *)buf + got, len - got);
        if (n <= 0)
            fail_msg("recv after %zu of %zu bytes gave %lld", got, len, (long long)n);
        assert_true((size_t)n <= len - got);
        got += (size_t)n;
    }
}

/* Addresses and sockets ----------------------------------------------------------------- */

ioq_addr h_addr4(uint16_t port)
{
    ioq_addr a;
    memset(&a, 0, sizeof a);
    a.family = IOQ_AF_INET;
    a.port = port;
    a.ip[0] = 127;
    a.ip[3] = 1;
    return a;
}

ioq_addr h_addr6(uint16_t port)
{
    ioq_addr a;
    memset(&a, 0, sizeof a);
    a.family = IOQ_AF_INET6;
    a.port = port;
    a.ip[15] = 1;
    return a;
}

ioq_handle h_listen(ioq_loop *l, uint16_t *port)
{
    ioq_addr a = h_addr4(0), got;
    ioq_handle h = 0;
    int rc = ioq_tcp_listen(l, &a, 0, 0, &h);
    if (rc != 0)
        fail_msg("ioq_tcp_listen: %d (%s)", rc, ioq_errname(rc));
    assert_int_not_equal(h, 0);
    assert_int_equal(ioq_sockname(l, h, &got), 0);
    assert_int_equal(got.family, IOQ_AF_INET);
    assert_int_not_equal(got.port, 0);
    if (port)
        *port = got.port;
    return h;
}

void h_pair(ioq_loop *l, ioq_handle *client, ioq_handle *server)
{
    uint16_t port;
    ioq_handle lis = h_listen(l, &port);
    ioq_addr a = h_addr4(port);
    uint64_t ta = h_tok(), tc = h_tok();
    assert_int_equal(h_accept(l, lis, 0, ta), 0);
    assert_int_equal(h_connect(l, &a, 0, tc), 0);
    ioq_cqe cc = h_wait(l, tc);
    ioq_cqe ca = h_wait(l, ta);
    if (cc.result != 0 || ca.result != 0)
        fail_msg("pair: connect %lld accept %lld", (long long)cc.result, (long long)ca.result);
    assert_int_not_equal(cc.value, 0);
    assert_int_not_equal(ca.value, 0);
    assert_int_not_equal(cc.value, ca.value);
    *client = cc.value;
    *server = ca.value;
    h_close_wait(l, lis);
}

#ifdef _WIN32
/* The suite's own blocking sockets need Winsock started, whether or not a loop was made. */
static void plain_init(void)
{
    static int done;
    WSADATA wd;
    if (!done && WSAStartup(MAKEWORD(2, 2), &wd) == 0)
        done = 1;
}
#else
static void plain_init(void) {}
#endif

int h_have_ipv6(void)
{
    plain_init();
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in6 sa;
    memset(&sa, 0, sizeof sa);
    sa.sin6_family = AF_INET6;
    sa.sin6_addr = in6addr_loopback;
    int ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static int plain_socket_bound(uint16_t *port)
{
    plain_init();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

int h_plain_listen(uint16_t *port)
{
    int fd = plain_socket_bound(port);
    assert_int_equal(listen(fd, 64), 0);
    return fd;
}

int h_plain_bound(uint16_t *port)
{
    return plain_socket_bound(port);
}

int h_plain_connect(uint16_t port)
{
    plain_init();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        fail_msg("plain connect to %u: %s", port, strerror(errno));
    return fd;
}

int h_plain_accept(int lfd)
{
#ifdef __linux__
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
#else
    int fd = accept(lfd, NULL, NULL);
#endif
    if (fd < 0)
        fail_msg("plain accept: %s", strerror(errno));
    return fd;
}

void h_plain_reset(int fd)
{
    struct linger lg = {1, 0};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    assert_int_equal(close(fd), 0);
}

void h_plain_write_all(int fd, const void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(fd, (const char *)buf + done, len - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail_msg("plain write: %s", strerror(errno));
        done += (size_t)n;
    }
}

void h_plain_read_all(int fd, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = recv(fd, (char *)buf + done, len - done, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail_msg("plain read after %zu of %zu: %zd %s", done, len, n, strerror(errno));
        done += (size_t)n;
    }
}

void h_plain_close(int fd)
{
    assert_int_equal(close(fd), 0);
}

/* Files, descriptors, data ----------------------------------------------------------------- */

#ifdef _WIN32
/* No mkdtemp: a directory named after the process, numbered until one is new. */
const char *h_tmpdir(void)
{
    if (g_tmpdir[0] == 0) {
        char base[MAX_PATH];
        DWORD n = GetTempPathA(sizeof base, base);
        if (n == 0 || n >= sizeof base)
            fail_msg("GetTempPath failed");
        for (unsigned i = 0;; i++) {
            snprintf(g_tmpdir, sizeof g_tmpdir, "%sioq-test-%lu-%u", base,
                     (unsigned long)GetCurrentProcessId(), i);
            if (CreateDirectoryA(g_tmpdir, NULL))
                break;
            if (GetLastError() != ERROR_ALREADY_EXISTS || i > 1000)
                fail_msg("CreateDirectory %s: %lu", g_tmpdir, (unsigned long)GetLastError());
        }
    }
    return g_tmpdir;
}
#else
const char *h_tmpdir(void)
{
    if (g_tmpdir[0] == 0) {
        const char *base = getenv("TMPDIR");
        snprintf(g_tmpdir, sizeof g_tmpdir, "%s/ioq-test-XXXXXX", base && *base ? base : "/tmp");
        if (mkdtemp(g_tmpdir) == NULL)
            fail_msg("mkdtemp: %s", strerror(errno));
    }
    return g_tmpdir;
}

#endif

const char *h_path(const char *name)
{
    static char slots[8][512];
    static int next;
    char *p = slots[next++ & 7];
    snprintf(p, 512, "%s/%s", h_tmpdir(), name);
    return p;
}

#ifdef _WIN32
static void rm_tree(const char *dir)
{
    char pat[MAX_PATH + 4], path[MAX_PATH * 2];
    WIN32_FIND_DATAA fd;
    HANDLE f;
    snprintf(pat, sizeof pat, "%s\\*", dir);
    f = FindFirstFileA(pat, &fd);
    if (f != INVALID_HANDLE_VALUE) {
        do {
            if (strcmp(fd.cFileName, ".") == 0 || strcmp(fd.cFileName, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s\\%s", dir, fd.cFileName);
            if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) {
                rm_tree(path);
            } else {
                SetFileAttributesA(path, FILE_ATTRIBUTE_NORMAL);
                DeleteFileA(path);
            }
        } while (FindNextFileA(f, &fd));
        FindClose(f);
    }
    RemoveDirectoryA(dir);
}

static void rm_tmpdir(void)
{
    if (g_tmpdir[0] != 0) {
        rm_tree(g_tmpdir);
        g_tmpdir[0] = 0;
    }
}

/* The process's kernel handles stand in for open descriptors. */
int h_fd_count(void)
{
    DWORD n = 0;
    if (!GetProcessHandleCount(GetCurrentProcess(), &n))
        fail_msg("GetProcessHandleCount: %lu", (unsigned long)GetLastError());
    return (int)n;
}
#else
static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tmpdir(void)
{
    if (g_tmpdir[0] != 0) {
        nftw(g_tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        g_tmpdir[0] = 0;
    }
}

int h_fd_count(void)
{
#ifdef __linux__
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
#else
    /* No /proc here (and /dev/fd may show only 0-2): probe every possible descriptor. */
    int n = 0, max = getdtablesize();
    if (max > 1 << 20)
        max = 1 << 20;
    for (int fd = 0; fd < max; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            n++;
    return n;
#endif
}

#endif

static uint8_t pattern_byte(uint32_t seed, uint64_t off)
{
    uint64_t x = (off >> 3) * 0x9e3779b97f4a7c15ull + seed;
    x ^= x >> 29;
    return (uint8_t)((x >> ((off & 7) * 8)) ^ (off * 131));
}

void h_fill(void *buf, size_t len, uint32_t seed, uint64_t offset)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = pattern_byte(seed, offset + i);
}

int h_check(const void *buf, size_t len, uint32_t seed, uint64_t offset)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        if (p[i] != pattern_byte(seed, offset + i))
            return 0;
    return 1;
}

uint64_t h_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void h_skip(const char *why)
{
    fprintf(stderr, "SKIP: %s\n", why);
    g_skipped = 1;
    skip();
}

/* Fixtures and main ------------------------------------------------------------------------ */

static void reset_state(void)
{
    free(g_tab);
    g_tab = NULL;
    g_cap = g_used = 0;
    free(g_log);
    g_log = NULL;
    g_log_len = g_log_cap = g_log_head = 0;
    memset(g_loops, 0, sizeof g_loops);
}

int h_setup(void **state)
{
    (void)state;
    reset_state();
    /* Every test first checks that the loop it gets is the backend under test, so that
     * a silent fallback to another backend fails the whole suite. */
    ioq_loop *loop = NULL;
    int rc = ioq_loop_new(NULL, &loop);
    if (rc != 0 || strcmp(ioq_loop_backend(loop), h_backend()) != 0) {
        fprintf(stderr, "IOQ_BACKEND=%s but the loop is '%s' (ioq_loop_new: %s)\n",
                h_backend(), rc == 0 ? ioq_loop_backend(loop) : "", ioq_errname(rc));
        ioq_loop_free(loop);
        return -1;
    }
    ioq_loop_free(loop);
    g_fds_at_setup = h_fd_count();
    return 0;
}

int h_teardown(void **state)
{
    (void)state;
    rm_tmpdir();
    reset_state();
    int now = h_fd_count();
    if (now != g_fds_at_setup && !g_skipped) {
        fprintf(stderr, "descriptor leak: %d open before the test, %d after\n",
                g_fds_at_setup, now);
        return -1;
    }
    return 0;
}

int h_main(int argc, char **argv, const char *group_name, const struct CMUnitTest *tests,
           size_t n)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        return _cmocka_run_group_tests(group_name, tests, n, NULL, NULL);
    char want[256];
    snprintf(want, sizeof want, "test_%s", argv[1]);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(tests[i].name, want) == 0) {
            int failed = _cmocka_run_group_tests(group_name, &tests[i], 1, NULL, NULL);
            if (failed == 0 && g_skipped)
                return 77;
            return failed;
        }
    }
    fprintf(stderr, "%s: no test case named '%s'\n", argv[0], argv[1]);
    return 2;
}
