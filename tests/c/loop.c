/* Loops: creation, options, backend selection, capabilities, versions, error text, clock,
 * the pollable descriptor and wake-ups. */
#include "harness.h"
#ifdef IOQ_TEST_FAILALLOC
#include "failalloc.h"
#endif

#include <poll.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#ifndef _WIN32
#  include <sys/socket.h>
#  include <unistd.h>
#endif
#if defined(__linux__)
#  include <errno.h>
#  include <linux/filter.h>
#  include <linux/seccomp.h>
#  include <stddef.h>
#  include <sys/prctl.h>
#  include <sys/syscall.h>
#endif

static uint32_t backend_const(const char *name)
{
    if (strcmp(name, "epoll") == 0)
        return IOQ_BACKEND_EPOLL;
    if (strcmp(name, "io_uring") == 0)
        return IOQ_BACKEND_URING;
    if (strcmp(name, "kqueue") == 0)
        return IOQ_BACKEND_KQUEUE;
    if (strcmp(name, "iocp") == 0)
        return IOQ_BACKEND_IOCP;
    fail_msg("unknown IOQ_BACKEND %s", name);
    return 0;
}

static void test_new_free(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    assert_true(strlen(ioq_loop_backend(loop)) > 0);
    h_finish(loop);
    ioq_loop_free(NULL);
    assert_string_equal(ioq_loop_backend(NULL), "");
    assert_int_equal(ioq_loop_caps(NULL), 0);
    assert_int_equal(ioq_now(NULL), 0);
    assert_int_equal(ioq_loop_new(NULL, NULL), IOQ_EINVAL);
}

static void test_many_loops(void **state)
{
    (void)state;
    ioq_loop *loops[8];
    for (int i = 0; i < 8; i++)
        loops[i] = h_loop_new();
    /* Each loop completes its own work and only its own. */
    for (int i = 0; i < 8; i++)
        assert_int_equal(h_timeout(loops[i], 1000, 7), 0);
    for (int i = 0; i < 8; i++) {
        ioq_cqe c = h_wait(loops[i], 7);
        assert_int_equal(c.result, 0);
    }
    for (int i = 0; i < 8; i++)
        h_finish(loops[i]);
}

static void test_options(void **state)
{
    (void)state;
    ioq_loop_options o;
    ioq_loop *loop = NULL;

    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.backend = IOQ_BACKEND_AUTO;
    assert_int_equal(ioq_loop_new(&o, &loop), 0);
    assert_string_equal(ioq_loop_backend(loop), h_backend());
    ioq_loop_free(loop);

    /* The backend named explicitly gives the same loop as the environment picked. */
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.backend = backend_const(h_backend());
    o.threadpool_size = 1;
    loop = NULL;
    assert_int_equal(ioq_loop_new(&o, &loop), 0);
    assert_string_equal(ioq_loop_backend(loop), h_backend());
    ioq_loop_free(loop);

    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.flags = 0x80000000u; /* not an IOQ_LOOP_* flag */
    loop = (ioq_loop *)1;
    assert_int_equal(ioq_loop_new(&o, &loop), IOQ_EINVAL);
    o.flags = IOQ_LOOP_HOST_FLUSH | 2u;
    assert_int_equal(ioq_loop_new(&o, &loop), IOQ_EINVAL);

    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.reserved[3] = 1;
    assert_int_equal(ioq_loop_new(&o, &loop), IOQ_EINVAL);

    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.backend = 99;
    assert_int_equal(ioq_loop_new(&o, &loop), IOQ_EINVAL);

    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    assert_int_equal(ioq_loop_new(&o, NULL), IOQ_EINVAL);
}

static void test_backend_foreign(void **state)
{
    (void)state;
    /* A backend of another OS is refused with ENOTSUP, never replaced by another one. */
    ioq_loop_options o;
    ioq_loop *loop = NULL;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    const char *b = h_backend();
    if (strcmp(b, "epoll") == 0 || strcmp(b, "io_uring") == 0) {
        o.backend = IOQ_BACKEND_IOCP;
        assert_int_equal(ioq_loop_new(&o, &loop), IOQ_ENOTSUP);
        o.backend = IOQ_BACKEND_KQUEUE;
        assert_int_equal(ioq_loop_new(&o, &loop), IOQ_ENOTSUP);
    } else {
        o.backend = IOQ_BACKEND_EPOLL;
        assert_int_equal(ioq_loop_new(&o, &loop), IOQ_ENOTSUP);
    }
    assert_null(loop);
    /* And the loop of the backend under test really is that backend. */
    ioq_loop *l2 = h_loop_new();
    h_finish(l2);
}

static void test_backend_env_unknown(void **state)
{
    (void)state;
    const char *saved = h_backend();
    char keep[32];
    strncpy(keep, saved, sizeof keep - 1);
    keep[sizeof keep - 1] = 0;
    setenv("IOQ_BACKEND", "no-such-backend", 1);
    ioq_loop *loop = NULL;
    int rc = ioq_loop_new(NULL, &loop);
    setenv("IOQ_BACKEND", keep, 1);
    /* An unknown name must not silently fall back. */
    assert_true(rc < 0);
    assert_true(rc == IOQ_EINVAL || rc == IOQ_ENOTSUP);
    assert_null(loop);
}

static void test_caps(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint32_t caps = ioq_loop_caps(loop);
    uint32_t known = IOQ_CAP_MULTISHOT_ACCEPT | IOQ_CAP_MULTISHOT_RECV |
                     IOQ_CAP_PROVIDED_BUFFERS | IOQ_CAP_ZEROCOPY_SEND |
                     IOQ_CAP_NATIVE_FILES | IOQ_CAP_LOOP_FD | IOQ_CAP_BATCHED_SUBMIT;
    assert_int_equal(caps & ~known, 0);
    const char *b = h_backend();
    if (strcmp(b, "iocp") == 0) {
        assert_int_equal(caps & IOQ_CAP_LOOP_FD, 0);
    } else {
        assert_int_not_equal(caps & IOQ_CAP_LOOP_FD, 0);
    }
    if (strcmp(b, "io_uring") == 0)
        assert_int_not_equal(caps & IOQ_CAP_BATCHED_SUBMIT, 0);
    if (strcmp(b, "epoll") == 0 || strcmp(b, "kqueue") == 0) {
        /* Readiness backends emulate all of these in user space. */
        assert_int_equal(caps & (IOQ_CAP_PROVIDED_BUFFERS | IOQ_CAP_NATIVE_FILES), 0);
    }
    h_finish(loop);
}

static void test_version(void **state)
{
    (void)state;
    assert_int_equal(ioq_version(), IOQ_VERSION_NUMBER);
    assert_string_equal(ioq_version_string(), IOQ_VERSION_STRING);
    assert_int_equal(IOQ_VERSION_NUMBER,
                     IOQ_VERSION_MAJOR * 10000 + IOQ_VERSION_MINOR * 100 + IOQ_VERSION_PATCH);
}

static const struct {
    int code;
    const char *name;
} errnames[] = {
    {IOQ_OK, "OK"}, {IOQ_EINVAL, "EINVAL"}, {IOQ_EBADHANDLE, "EBADHANDLE"},
    {IOQ_ENOMEM, "ENOMEM"}, {IOQ_ECANCELED, "ECANCELED"}, {IOQ_ETIMEDOUT, "ETIMEDOUT"},
    {IOQ_ECONNREFUSED, "ECONNREFUSED"}, {IOQ_ECONNRESET, "ECONNRESET"},
    {IOQ_ECONNABORTED, "ECONNABORTED"}, {IOQ_EPIPE, "EPIPE"}, {IOQ_EADDRINUSE, "EADDRINUSE"},
    {IOQ_EADDRNOTAVAIL, "EADDRNOTAVAIL"}, {IOQ_ENETUNREACH, "ENETUNREACH"},
    {IOQ_EHOSTUNREACH, "EHOSTUNREACH"}, {IOQ_EMFILE, "EMFILE"}, {IOQ_ENFILE, "ENFILE"},
    {IOQ_ENOENT, "ENOENT"}, {IOQ_EACCES, "EACCES"}, {IOQ_EPERM, "EPERM"},
    {IOQ_EEXIST, "EEXIST"}, {IOQ_EISDIR, "EISDIR"}, {IOQ_ENOTDIR, "ENOTDIR"},
    {IOQ_ENOSPC, "ENOSPC"}, {IOQ_EIO, "EIO"}, {IOQ_ENOBUFS, "ENOBUFS"},
    {IOQ_EMSGSIZE, "EMSGSIZE"}, {IOQ_ENOTSUP, "ENOTSUP"}, {IOQ_EBUSY, "EBUSY"},
    {IOQ_ENOTCONN, "ENOTCONN"}, {IOQ_ENAMETOOLONG, "ENAMETOOLONG"},
    {IOQ_ENOTFOUND, "ENOTFOUND"}, {IOQ_EAGAIN, "EAGAIN"}, {IOQ_ENOSYS, "ENOSYS"},
    {IOQ_EFBIG, "EFBIG"}, {IOQ_EROFS, "EROFS"}, {IOQ_ELOOP, "ELOOP"},
    {IOQ_EAFNOSUPPORT, "EAFNOSUPPORT"}, {IOQ_EMISUSE, "EMISUSE"},
    {IOQ_EDESTADDRREQ, "EDESTADDRREQ"}, {IOQ_ESHUTDOWN, "ESHUTDOWN"},
    {IOQ_ESRCH, "ESRCH"}, {IOQ_ENOEXEC, "ENOEXEC"}, {IOQ_ENOTTY, "ENOTTY"},
    {IOQ_EUNKNOWN, "EUNKNOWN"},
};

static void test_errname(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof errnames / sizeof errnames[0]; i++) {
        const char *n = ioq_errname(errnames[i].code);
        assert_non_null(n);
        assert_string_equal(n, errnames[i].name);
    }
    assert_string_equal(ioq_errname(-1000), "UNKNOWN");
    assert_string_equal(ioq_errname(-43), "UNKNOWN");
    assert_string_equal(ioq_errname(INT64_MIN), "UNKNOWN");
    assert_string_equal(ioq_errname(-98), "UNKNOWN");
}

static void test_strerror(void **state)
{
    (void)state;
    for (size_t i = 1; i < sizeof errnames / sizeof errnames[0]; i++) {
        const char *s = ioq_strerror(errnames[i].code);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        /* EUNKNOWN may say just that; every other code says what it is. */
        if (errnames[i].code != IOQ_EUNKNOWN)
            assert_string_not_equal(s, "unknown error");
        /* Distinct codes have distinct sentences. */
        for (size_t j = 1; j < i; j++)
            assert_string_not_equal(s, ioq_strerror(errnames[j].code));
    }
    assert_non_null(strcasestr(ioq_strerror(0), "success"));
    assert_non_null(strcasestr(ioq_strerror(12345), "success"));
    assert_string_equal(ioq_strerror(-1000), "unknown error");
    assert_string_equal(ioq_strerror(INT64_MIN), "unknown error");
}

static void test_now(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint64_t a = ioq_now(loop);
    assert_true(a > 0);
    uint64_t m0 = h_mono_ns();
    assert_int_equal(h_timeout(loop, 20 * 1000000ull, 1), 0);
    ioq_cqe c = h_wait(loop, 1);
    assert_int_equal(c.result, 0);
    uint64_t b = ioq_now(loop);
    uint64_t m1 = h_mono_ns();
    assert_true(b >= a + 20 * 1000000ull);
    assert_true(m1 - m0 >= 20 * 1000000ull);
    /* Monotonic: never goes back. */
    uint64_t prev = ioq_now(loop);
    for (int i = 0; i < 1000; i++) {
        uint64_t t = ioq_now(loop);
        assert_true(t >= prev);
        prev = t;
    }
    h_finish(loop);
}

static void test_submit(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    assert_int_equal(ioq_submit(NULL), IOQ_EINVAL);
    assert_int_equal(ioq_submit(loop), 0);
    assert_int_equal(h_timeout(loop, 1, 5), 0);
    assert_int_equal(ioq_submit(loop), 0);
    assert_int_equal(h_wait(loop, 5).result, 0);
    h_finish(loop);
}

static void test_wake_next_poll(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    /* A wake-up before the poll makes the next poll(-1) return, with no completion. */
    assert_int_equal(ioq_wake(loop), 0);
    assert_int_equal(ioq_wake(loop), 0);
    ioq_cqe c[4];
    assert_int_equal(h_poll_into(loop, c, 4, -1), 0);
    assert_int_equal(ioq_wake(NULL), IOQ_EINVAL);
    h_finish(loop);
}

/* Wait with a foreign poll() on the loop's descriptor until token completes. The poll
 * waits up to the whole deadline: a descriptor that only shows readable when poll() gives
 * up (the final scan at the timeout) is a descriptor that never woke its host. */
static ioq_cqe wait_via_fd(ioq_loop *loop, int fd, uint64_t token)
{
    uint64_t end = h_mono_ns() + (uint64_t)H_DEADLINE_MS * 1000000ull;
    for (;;) {
        if (h_logged(loop, token))
            return h_next(loop, token);
        uint64_t now = h_mono_ns();
        if (now >= end)
            fail_msg("loop fd never signalled the completion of token %llu",
                     (unsigned long long)token);
        int ms = (int)((end - now) / 1000000ull) + 1;
        struct pollfd p = {fd, POLLIN, 0};
        int n = poll(&p, 1, ms);
        assert_true(n >= 0);
        if (h_mono_ns() >= end)
            fail_msg("loop fd not readable within %d ms for token %llu", H_DEADLINE_MS,
                     (unsigned long long)token);
        if (n == 1) {
            assert_int_equal(p.revents & (POLLERR | POLLNVAL), 0);
            h_poll(loop, 0);
        }
    }
}

static void test_loop_fd_timer(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    assert_int_equal(ioq_loop_fd(NULL), IOQ_EINVAL);
    int64_t fd = ioq_loop_fd(loop);
    if (strcmp(h_backend(), "iocp") == 0) {
        assert_int_equal(fd, IOQ_ENOTSUP);
        h_finish(loop);
        return;
    }
    assert_true(fd >= 0);
    assert_int_equal(ioq_loop_fd(loop), fd);
    assert_int_equal(h_timeout(loop, 30 * 1000000ull, 1), 0);
    /* The submission itself may still be queued: the host only ever polls with 0. */
    h_poll(loop, 0);
    ioq_cqe c = wait_via_fd(loop, (int)fd, 1);
    assert_int_equal(c.result, 0);
    h_finish(loop);
}

static void test_loop_fd_timer_at(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int64_t fd = ioq_loop_fd(loop);
    if (fd == IOQ_ENOTSUP) {
        h_finish(loop);
        h_skip("no loop fd on this backend");
    }
    assert_true(fd >= 0);
    /* An absolute deadline arms the descriptor like a relative one... */
    uint64_t d = ioq_now(loop) + 30 * 1000000ull;
    assert_int_equal(h_timeout_at(loop, d, 1), 0);
    h_poll(loop, 0);
    assert_int_equal(wait_via_fd(loop, (int)fd, 1).result, 0);
    assert_true(ioq_now(loop) >= d);
    /* ...and one already past (0 included) makes it readable at once, behind a far one. */
    assert_int_equal(h_timeout(loop, 3600ull * 1000 * 1000000ull, 2), 0);
    h_poll(loop, 0);
    assert_int_equal(h_timeout_at(loop, 0, 3), 0);
    assert_int_equal(wait_via_fd(loop, (int)fd, 3).result, 0);
    assert_int_equal(h_cancel(loop, 2, 4), 0);
    assert_int_equal(h_wait(loop, 2).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, 4).result, 1);
    h_finish(loop);
}

static void test_loop_fd_io(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int64_t fd = ioq_loop_fd(loop);
    if (fd == IOQ_ENOTSUP) {
        h_finish(loop);
        h_skip("no loop fd on this backend");
    }
    assert_true(fd >= 0);
    ioq_handle a, b;
    h_pair(loop, &a, &b);
    char buf[16];
    assert_int_equal(h_recv(loop, b, buf, sizeof buf, 2), 0);
    h_poll(loop, 0);
    assert_int_equal(h_send(loop, a, "ping", 4, 3), 0);
    h_poll(loop, 0);
    ioq_cqe c = wait_via_fd(loop, (int)fd, 2);
    assert_int_equal(c.result, 4);
    assert_memory_equal(buf, "ping", 4);
    c = wait_via_fd(loop, (int)fd, 3);
    assert_int_equal(c.result, 4);
    h_close_wait(loop, a);
    h_close_wait(loop, b);
    h_finish(loop);
}

/* io_uring rebuilds its ring for embedding, which it can do only while the ring is empty;
 * the readiness backends hand out their descriptor at any time. */
static void test_loop_fd_after_submit(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    assert_int_equal(h_timeout(loop, 60ull * 1000000000ull, 1), 0);
    ioq_handle a, b;
    h_pair(loop, &a, &b);
    char buf[4];
    assert_int_equal(h_recv(loop, b, buf, sizeof buf, 2), 0);
    h_poll(loop, 0);
    int64_t fd = ioq_loop_fd(loop);
    if (strcmp(h_backend(), "io_uring") == 0)
        assert_int_equal(fd, IOQ_EBUSY);
    else if (fd != IOQ_ENOTSUP)
        assert_true(fd >= 0);
    assert_int_equal(h_cancel(loop, 1, 3), 0);
    h_close_wait(loop, b);
    h_close_wait(loop, a);
    h_finish(loop);
}

typedef struct {
    ioq_loop *loop;
    int what; /* 0 post, 1 wake */
} thr_arg;

static void *poster(void *p)
{
    thr_arg *a = p;
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    if (a->what == 0)
        ioq_post(a->loop, 77, 5);
    else
        ioq_wake(a->loop);
    return NULL;
}

static void test_loop_fd_post(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int64_t fd = ioq_loop_fd(loop);
    if (fd == IOQ_ENOTSUP) {
        h_finish(loop);
        h_skip("no loop fd on this backend");
    }
    assert_true(fd >= 0);
    h_track(loop, 0, 77, IOQ_OP_POST, 0);
    thr_arg a = {loop, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, poster, &a), 0);
    ioq_cqe c = wait_via_fd(loop, (int)fd, 77);
    pthread_join(t, NULL);
    assert_int_equal(c.result, 5);
    assert_int_equal(c.value, 0);
    h_finish(loop);
}

static void test_loop_fd_wake(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int64_t fd = ioq_loop_fd(loop);
    if (fd == IOQ_ENOTSUP) {
        h_finish(loop);
        h_skip("no loop fd on this backend");
    }
    thr_arg a = {loop, 1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, poster, &a), 0);
    struct pollfd p = {(int)fd, POLLIN, 0};
    uint64_t t0 = h_mono_ns();
    int n = poll(&p, 1, H_DEADLINE_MS);
    uint64_t waited = h_mono_ns() - t0;
    pthread_join(t, NULL);
    /* A wake-up must reach a host that waits on the descriptor instead of ioq_poll, and
     * not only at the end of its wait. */
    assert_int_equal(n, 1);
    if (waited >= (uint64_t)(H_DEADLINE_MS - 500) * 1000000ull)
        fail_msg("loop fd became readable only when poll() timed out (%llu ms)",
                 (unsigned long long)(waited / 1000000ull));
    ioq_cqe c[4];
    assert_int_equal(h_poll_into(loop, c, 4, 0), 0);
    h_finish(loop);
}

/* --- IOQ_LOOP_HOST_FLUSH: the host hands queued submissions over (ioq_submit) ---------- */

/* An embedded loop whose host flushes; NULL (test skipped) where there is no loop fd. */
static ioq_loop *host_flush_loop(int64_t *fd)
{
    ioq_loop_options o;
    ioq_loop *loop = NULL;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.backend = backend_const(h_backend());
    o.flags = IOQ_LOOP_HOST_FLUSH;
    assert_int_equal(ioq_loop_new(&o, &loop), 0);
    *fd = ioq_loop_fd(loop);
    if (*fd == IOQ_ENOTSUP) {
        ioq_loop_free(loop);
        return NULL;
    }
    assert_true(*fd >= 0);
    return loop;
}

static int fd_readable(int64_t fd, int ms)
{
    struct pollfd p = {(int)fd, POLLIN, 0};
    int n = poll(&p, 1, ms);
    assert_true(n >= 0);
    return n == 1;
}

static int is_uring(void) { return strcmp(h_backend(), "io_uring") == 0; }

/* Queued operations reach the kernel at ioq_submit, not before; the descriptor tells of
 * their completions, and a flush does not take that readiness away. */
static void test_host_flush_queued(void **state)
{
    (void)state;
    int64_t fd;
    ioq_loop *loop = host_flush_loop(&fd);
    if (!loop)
        h_skip("no loop fd on this backend");
    ioq_handle a, b;
    h_pair(loop, &a, &b);
    assert_int_equal(ioq_submit(loop), 0); /* nothing queued: nothing to do */
    /* A poll that waited may leave the descriptor readable (the kernel signals what it
     * posts during the wait): take that. */
    h_poll(loop, 0);
    char buf[16];
    assert_int_equal(h_recv(loop, b, buf, sizeof buf, 2), 0);
    assert_int_equal(h_send(loop, a, "ping", 4, 3), 0);
    if (is_uring()) {
        /* In the submission queue only: nothing completes, the host is not woken. */
        assert_false(fd_readable(fd, 100));
        assert_int_equal(h_logged(loop, 2) + h_logged(loop, 3), 0);
    }
    assert_int_equal(ioq_submit(loop), 0);
    /* Wait for the kernel's completions without polling the loop. */
    assert_true(fd_readable(fd, H_DEADLINE_MS));
    if (is_uring()) {
        /* A flush with nothing queued leaves the descriptor readable. */
        assert_int_equal(ioq_submit(loop), 0);
        assert_true(fd_readable(fd, 0));
    }
    ioq_cqe c = wait_via_fd(loop, (int)fd, 3);
    assert_int_equal(c.result, 4);
    c = wait_via_fd(loop, (int)fd, 2);
    assert_int_equal(c.result, 4);
    assert_memory_equal(buf, "ping", 4);
    h_close_wait(loop, a);
    h_close_wait(loop, b);
    h_finish(loop);
}

#ifndef _WIN32
/* A stream handle of `loop` over one end of a socket pair; the other end stays outside the
 * loop (*peer), so that what the loop's descriptor tells is only the loop's own doing.
 * The handle's first readiness edge is taken by a poll. */
static ioq_handle adopted_end(ioq_loop *loop, int *peer)
{
    int sv[2];
    ioq_handle h;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(ioq_adopt(loop, (uint64_t)sv[0], IOQ_KIND_LOCAL, &h), 0);
    *peer = sv[1];
    h_poll(loop, 0);
    return h;
}

static void read_peer(int peer, const char *want)
{
    char buf[16];
    size_t len = strlen(want), got = 0;
    while (got < len) {
        ssize_t n = read(peer, buf + got, len - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_memory_equal(buf, want, len);
}

/* Without IOQ_LOOP_HOST_FLUSH a host may sleep on the descriptor right after any call: a
 * record made inside that call (a send done at once on epoll and kqueue) makes the
 * descriptor readable at once. */
static void test_loop_fd_inline(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int64_t fd = ioq_loop_fd(loop);
    if (fd == IOQ_ENOTSUP) {
        h_finish(loop);
        h_skip("no loop fd on this backend");
    }
    assert_true(fd >= 0);
    int peer;
    ioq_handle a = adopted_end(loop, &peer);
    assert_int_equal(h_send(loop, a, "ping", 4, 1), 0);
    assert_true(fd_readable(fd, H_DEADLINE_MS));
    ioq_cqe c = wait_via_fd(loop, (int)fd, 1);
    assert_int_equal(c.result, 4);
    read_peer(peer, "ping");
    h_close_wait(loop, a);
    close(peer);
    h_finish(loop);
}

/* A host that flushes calls ioq_submit or ioq_poll before it sleeps: a record made inside
 * its own call does not wake it (that would cost a wake-up for a record it is about to
 * poll anyway). Its ioq_submit makes the descriptor readable; its ioq_poll hands the
 * record out, with no wake-up left behind. On io_uring the send waits in the submission
 * queue instead: not readable either, until the flush. */
static void test_host_flush_inline(void **state)
{
    (void)state;
    int64_t fd;
    ioq_loop *loop = host_flush_loop(&fd);
    if (!loop)
        h_skip("no loop fd on this backend");
    int peer;
    ioq_handle a = adopted_end(loop, &peer);
    assert_false(fd_readable(fd, 0));
    /* The host polls. */
    assert_int_equal(h_send(loop, a, "ping", 4, 1), 0);
    assert_false(fd_readable(fd, 50));
    h_poll(loop, 0);
    if (!is_uring())
        assert_int_equal(h_logged(loop, 1), 1);
    ioq_cqe c = wait_via_fd(loop, (int)fd, 1);
    if (!is_uring()) {
        /* Handed out by that first poll, which left the descriptor quiet. */
        assert_false(fd_readable(fd, 0));
    }
    assert_int_equal(c.result, 4);
    /* The host flushes, then sleeps. */
    assert_int_equal(h_send(loop, a, "pong", 4, 2), 0);
    /* (io_uring's descriptor may still tell of the first send: readiness without a record
     * is allowed, and host-flush-queued shows the queueing there.) */
    if (!is_uring())
        assert_false(fd_readable(fd, 50));
    assert_int_equal(h_logged(loop, 2), 0);
    assert_int_equal(ioq_submit(loop), 0);
    assert_true(fd_readable(fd, H_DEADLINE_MS));
    c = wait_via_fd(loop, (int)fd, 2);
    assert_int_equal(c.result, 4);
    read_peer(peer, "pingpong");
    h_close_wait(loop, a);
    close(peer);
    h_finish(loop);
}
#else
/* No loop descriptor on Windows (IOCP). */
static void test_loop_fd_inline(void **state) { (void)state; h_skip("no loop fd on IOCP"); }
static void test_host_flush_inline(void **state) { (void)state; h_skip("no loop fd on IOCP"); }
#endif

/* A poll flushes too: ioq_poll(0) is also a host's flush. */
static void test_host_flush_poll(void **state)
{
    (void)state;
    int64_t fd;
    ioq_loop *loop = host_flush_loop(&fd);
    if (!loop)
        h_skip("no loop fd on this backend");
    assert_int_equal(h_timeout(loop, 20 * 1000000ull, 1), 0);
    h_poll(loop, 0);
    ioq_cqe c = wait_via_fd(loop, (int)fd, 1);
    assert_int_equal(c.result, 0);
    h_finish(loop);
}

/* Many operations over several connections, one flush a round: each completes once (the
 * harness checks), with the right bytes. */
static void test_host_flush_exactly_once(void **state)
{
    (void)state;
    enum { PAIRS = 8, ROUNDS = 20 };
    int64_t fd;
    ioq_loop *loop = host_flush_loop(&fd);
    if (!loop)
        h_skip("no loop fd on this backend");
    ioq_handle a[PAIRS], b[PAIRS];
    char in[PAIRS][8], out[PAIRS][8];
    for (int i = 0; i < PAIRS; i++)
        h_pair(loop, &a[i], &b[i]);
    for (int r = 0; r < ROUNDS; r++) {
        uint64_t base = 1000 + (uint64_t)r * 100;
        for (int i = 0; i < PAIRS; i++) {
            snprintf(out[i], sizeof out[i], "%02d-%02d", r, i);
            assert_int_equal(h_recv(loop, b[i], in[i], 5, base + (uint64_t)i), 0);
            assert_int_equal(h_send(loop, a[i], out[i], 5, base + 50 + (uint64_t)i), 0);
        }
        assert_int_equal(ioq_submit(loop), 0);
        for (int i = 0; i < PAIRS; i++) {
            ioq_cqe c = wait_via_fd(loop, (int)fd, base + (uint64_t)i);
            assert_int_equal(c.result, 5);
            assert_memory_equal(in[i], out[i], 5);
            c = wait_via_fd(loop, (int)fd, base + 50 + (uint64_t)i);
            assert_int_equal(c.result, 5);
        }
    }
    for (int i = 0; i < PAIRS; i++) {
        h_close_wait(loop, a[i]);
        h_close_wait(loop, b[i]);
    }
    h_finish(loop);
}

/* Cancelling an operation that is still in the submission queue: it ends with ECANCELED,
 * once, after the flush; the handle stays usable. */
static void test_host_flush_cancel_queued(void **state)
{
    (void)state;
    int64_t fd;
    ioq_loop *loop = host_flush_loop(&fd);
    if (!loop)
        h_skip("no loop fd on this backend");
    ioq_handle a, b;
    h_pair(loop, &a, &b);
    char buf[8];
    assert_int_equal(h_recv(loop, b, buf, sizeof buf, 2), 0);
    assert_int_equal(h_cancel(loop, 2, 3), 0);
    assert_int_equal(ioq_submit(loop), 0);
    ioq_cqe c = wait_via_fd(loop, (int)fd, 2);
    assert_int_equal(c.result, IOQ_ECANCELED);
    c = wait_via_fd(loop, (int)fd, 3);
    assert_int_equal(c.result, 1);
    /* The stream still works. */
    assert_int_equal(h_recv(loop, b, buf, sizeof buf, 4), 0);
    assert_int_equal(h_send(loop, a, "abc", 3, 5), 0);
    assert_int_equal(ioq_submit(loop), 0);
    c = wait_via_fd(loop, (int)fd, 4);
    assert_int_equal(c.result, 3);
    assert_memory_equal(buf, "abc", 3);
    (void)wait_via_fd(loop, (int)fd, 5);
    h_close_wait(loop, a);
    h_close_wait(loop, b);
    h_finish(loop);
}

/* Closing a handle whose operations are still queued: they end with ECANCELED (or, for a
 * send the kernel took first, their own result), then the close; each once. */
static void test_host_flush_close_queued(void **state)
{
    (void)state;
    int64_t fd;
    ioq_loop *loop = host_flush_loop(&fd);
    if (!loop)
        h_skip("no loop fd on this backend");
    ioq_handle a, b;
    h_pair(loop, &a, &b);
    char buf[8];
    assert_int_equal(h_recv(loop, b, buf, sizeof buf, 2), 0);
    assert_int_equal(h_recv(loop, a, buf, sizeof buf, 3), 0);
    assert_int_equal(h_close(loop, b, 4), 0);
    ioq_cqe c = wait_via_fd(loop, (int)fd, 2);
    assert_int_equal(c.result, IOQ_ECANCELED);
    c = wait_via_fd(loop, (int)fd, 4);
    assert_int_equal(c.result, 0);
    /* The peer's receive, queued beside them, sees the end of the stream. */
    c = wait_via_fd(loop, (int)fd, 3);
    assert_int_equal(c.result, 0);
    h_close_wait(loop, a);
    h_finish(loop);
}

/* Freeing the loop with operations never handed to the kernel. */
static void test_host_flush_free_queued(void **state)
{
    (void)state;
    int64_t fd;
    ioq_loop *loop = host_flush_loop(&fd);
    if (!loop)
        h_skip("no loop fd on this backend");
    ioq_handle a, b;
    h_pair(loop, &a, &b);
    static char buf[8];
    assert_int_equal(ioq_recv(loop, b, buf, sizeof buf, 2), 0);
    assert_int_equal(ioq_send(loop, a, "x", 1, 3), 0);
    h_forget(loop);
    ioq_loop_free(loop);
}

static void test_addr_parse(void **state)
{
    (void)state;
    ioq_addr a;
    assert_int_equal(ioq_addr_parse("1.2.3.4:80", &a), 0);
    assert_int_equal(a.family, IOQ_AF_INET);
    assert_int_equal(a.port, 80);
    assert_int_equal(a.ip[0], 1);
    assert_int_equal(a.ip[3], 4);
    assert_int_equal(ioq_addr_parse("127.0.0.1", &a), 0);
    assert_int_equal(a.port, 0);
    assert_int_equal(ioq_addr_parse("[::1]:8080", &a), 0);
    assert_int_equal(a.family, IOQ_AF_INET6);
    assert_int_equal(a.port, 8080);
    assert_int_equal(a.ip[15], 1);
    assert_int_equal(a.ip[0], 0);
    assert_int_equal(ioq_addr_parse("::1", &a), 0);
    assert_int_equal(a.family, IOQ_AF_INET6);
    assert_int_equal(a.port, 0);
    assert_int_equal(ioq_addr_parse("[fe80::1%2]:80", &a), 0);
    assert_int_equal(a.scope_id, 2);
    assert_int_equal(a.ip[0], 0xfe);
    assert_int_equal(a.ip[1], 0x80);
    assert_int_equal(ioq_addr_parse(NULL, &a), IOQ_EINVAL);
    assert_int_equal(ioq_addr_parse("1.2.3.4:80", NULL), IOQ_EINVAL);
    assert_int_equal(ioq_addr_parse("", &a), IOQ_EINVAL);
    assert_int_equal(ioq_addr_parse("localhost:80", &a), IOQ_EINVAL);
    assert_int_equal(ioq_addr_parse("1.2.3.4:70000", &a), IOQ_EINVAL);
    assert_int_equal(ioq_addr_parse("1.2.3.4:", &a), IOQ_EINVAL);
    assert_int_equal(ioq_addr_parse("[::1:80", &a), IOQ_EINVAL);
    assert_int_equal(ioq_addr_parse("1.2.3.256", &a), IOQ_EINVAL);
}

static void test_addr_format(void **state)
{
    (void)state;
    char buf[64];
    ioq_addr a = h_addr4(80);
    assert_int_equal(ioq_addr_format(&a, buf, sizeof buf), 12);
    assert_string_equal(buf, "127.0.0.1:80");
    a = h_addr6(443);
    assert_int_equal(ioq_addr_format(&a, buf, sizeof buf), 9);
    assert_string_equal(buf, "[::1]:443");
    a = h_addr4(80);
    assert_int_equal(ioq_addr_format(&a, buf, 12), IOQ_ENOBUFS);
    assert_int_equal(ioq_addr_format(&a, buf, 13), 12);
    assert_int_equal(ioq_addr_format(NULL, buf, sizeof buf), IOQ_EINVAL);
    assert_int_equal(ioq_addr_format(&a, NULL, sizeof buf), IOQ_EINVAL);
    a.family = 99;
    assert_int_equal(ioq_addr_format(&a, buf, sizeof buf), IOQ_EINVAL);
    /* Round trip through the parser. */
    ioq_addr b, c;
    assert_int_equal(ioq_addr_parse("[2001:db8::7]:65535", &b), 0);
    assert_true(ioq_addr_format(&b, buf, sizeof buf) > 0);
    assert_int_equal(ioq_addr_parse(buf, &c), 0);
    assert_memory_equal(&b, &c, sizeof b);
}

/* --- ioq_loop_free with results finished but never collected ------------------------------
 * Each test lets the thread pool or the kernel finish operations that create a descriptor,
 * collects some of them (so that others sit in the completion ring) and none of the rest,
 * then frees the loop: the harness's descriptor count must come back to where it was. */

static void uncollected_pause(void)
{
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* One poll that collects at most one record, leaving the others in the ring. */
static void uncollected_poll_one(ioq_loop *loop)
{
    ioq_cqe c[1];
    assert_true(ioq_poll(loop, c, 1, 0) >= 0);
}

static void test_free_uncollected_open(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    const char *path = h_path("uncollected");
    for (int round = 0; round < 2; round++) {
        for (uint64_t i = 0; i < 4; i++)
            assert_int_equal(ioq_open(loop, path,
                                      IOQ_OPEN_READ | IOQ_OPEN_WRITE | IOQ_OPEN_CREATE, 0644,
                                      100 + i),
                             0);
        assert_int_equal(ioq_submit(loop), 0);
        uncollected_pause();
        /* First round: one record collected, the others drained into the ring; second
         * round: finished by the workers or the kernel and never seen by a poll. */
        if (round == 0)
            uncollected_poll_one(loop);
    }
    ioq_loop_free(loop);
    h_forget(loop);
}

static void test_free_uncollected_accept(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    ioq_handle lis = h_listen(loop, &port);
    int clients[6];
    assert_int_equal(ioq_accept(loop, lis, IOQ_MULTISHOT, 1), 0);
    assert_int_equal(ioq_accept(loop, lis, 0, 2), 0);
    for (int i = 0; i < 3; i++)
        clients[i] = h_plain_connect(port);
    assert_int_equal(ioq_submit(loop), 0);
    uncollected_pause();
    uncollected_poll_one(loop);
    for (int i = 3; i < 6; i++)
        clients[i] = h_plain_connect(port);
    assert_int_equal(ioq_submit(loop), 0);
    uncollected_pause();
    ioq_loop_free(loop);
    h_forget(loop);
    for (int i = 0; i < 6; i++)
        h_plain_close(clients[i]);
}

static void test_free_uncollected_connect(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    int lfd = h_plain_listen(&port);
    ioq_addr a = h_addr4(port);
    ioq_handle llis;
    const char *path = h_path("uncollected.sock");
    assert_int_equal(ioq_local_listen(loop, path, 0, IOQ_UNLINK, &llis), 0);
    for (int round = 0; round < 2; round++) {
        for (uint64_t i = 0; i < 3; i++) {
            assert_int_equal(ioq_connect(loop, &a, 0, 10 + i), 0);
            assert_int_equal(ioq_local_connect(loop, path, 0, 20 + i), 0);
        }
        assert_int_equal(ioq_submit(loop), 0);
        uncollected_pause();
        if (round == 0)
            uncollected_poll_one(loop);
    }
    ioq_loop_free(loop);
    h_forget(loop);
    h_plain_close(lfd);
}

/* Contract rule 6: a loop may change the thread that polls it between polls. Thread A
 * creates the loop, connects, leaves a receive and a timer in flight after polling (on
 * io_uring that flushed them to the kernel from A) and ends; thread B then owns the loop;
 * then the test's own thread. Each must see the work of the one before complete. */
typedef struct {
    ioq_loop *loop;
    ioq_handle c, s;
    char buf[16], buf2[16];
} handoff;

#define HANDOFF_MS 1000000ll

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *handoff_a(void *arg)
{
    handoff *x = arg;
    x->loop = h_loop_new();
    h_pair(x->loop, &x->c, &x->s);
    assert_int_equal(h_recv(x->loop, x->s, x->buf, sizeof x->buf, 11), 0);
    assert_int_equal(h_timeout(x->loop, 30 * HANDOFF_MS, 12), 0);
    assert_int_equal(h_poll(x->loop, 0), 0);
    return NULL;
}

static void *handoff_b(void *arg)
{
    handoff *x = arg;
    ioq_cqe c;
    uint64_t cpu;

    h_send_wait(x->loop, x->c, "handoff", 7);
    c = h_wait(x->loop, 11);
    assert_int_equal(c.result, 7);
    assert_memory_equal(x->buf, "handoff", 7);
    assert_int_equal(h_wait(x->loop, 12).result, 0);
    /* Waiting for a timer costs no CPU: the poll sleeps in the kernel, it does not spin. */
    assert_int_equal(h_timeout(x->loop, 300 * HANDOFF_MS, 13), 0);
    cpu = thread_cpu_ns();
    while (!h_logged(x->loop, 13))
        assert_true(h_poll(x->loop, -1) >= 0);
    assert_true(thread_cpu_ns() - cpu < 150 * (uint64_t)HANDOFF_MS);
    assert_int_equal(h_wait(x->loop, 13).result, 0);
    /* Left in flight for the next thread. */
    assert_int_equal(h_recv(x->loop, x->s, x->buf2, sizeof x->buf2, 14), 0);
    assert_int_equal(h_poll(x->loop, 0), 0);
    return NULL;
}

static void test_thread_handoff(void **state)
{
    (void)state;
    handoff x;
    pthread_t t;
    memset(&x, 0, sizeof x);
    assert_int_equal(pthread_create(&t, NULL, handoff_a, &x), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(pthread_create(&t, NULL, handoff_b, &x), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    h_send_wait(x.loop, x.c, "again", 5);
    assert_int_equal(h_wait(x.loop, 14).result, 5);
    assert_memory_equal(x.buf2, "again", 5);
    h_close_wait(x.loop, x.c);
    h_close_wait(x.loop, x.s);
    h_finish(x.loop);
}

/* When the kernel's wait itself fails (here: every wait call made to return ENOMEM by a
 * seccomp filter), ioq_poll says so instead of trying again forever. */
static void test_wait_error(void **state)
{
    (void)state;
#if defined(__linux__) && defined(SYS_epoll_pwait2) && defined(SYS_io_uring_enter)
    static const int calls[] = {
#  ifdef SYS_epoll_wait
        SYS_epoll_wait,
#  endif
        SYS_epoll_pwait, SYS_epoll_pwait2, SYS_io_uring_enter};
    struct sock_filter f[2 + 2 * (sizeof calls / sizeof calls[0])];
    struct sock_fprog prog;
    ioq_loop *loop = h_loop_new();
    ioq_cqe c[4];
    unsigned n = 0;
    int rc;

    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, nr));
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)calls[i], 0, 1);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOMEM);
    }
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    prog.len = (unsigned short)n;
    prog.filter = f;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        ioq_loop_free(loop);
        h_forget(loop);
        h_skip("cannot install a seccomp filter here");
    }
    rc = ioq_poll(loop, c, 4, -1);
    assert_int_equal(rc, IOQ_ENOMEM);
    /* Still usable: a post is there without waiting. */
    assert_int_equal(ioq_post(loop, 5, 0), 0);
    assert_int_equal(ioq_poll(loop, c, 4, 0), 1);
    assert_int_equal(c[0].token, 5);
    ioq_loop_free(loop);
    h_forget(loop);
#else
    h_skip("the kernel's wait cannot be made to fail here");
#endif
}

/* Every allocation ioq_loop_new makes, failed in turn: the answer is IOQ_ENOMEM (never
 * another error, which would send AUTO to the next backend), or a working loop of the
 * backend asked for when the allocation was optional. */
static void test_new_nomem(void **state)
{
    (void)state;
#ifdef IOQ_TEST_FAILALLOC
    ioq_loop_options o;
    if (!fa_available())
        h_skip("libioq's allocations cannot be failed from here");
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.backend = backend_const(h_backend());
    for (unsigned long k = 0;; k++) {
        ioq_loop *loop = NULL;
        int rc;
        unsigned long failed;
        fa_arm(k, 1);
        rc = ioq_loop_new(&o, &loop);
        fa_disarm();
        failed = fa_failed();
        if (rc != 0 && rc != IOQ_ENOMEM)
            fail_msg("allocation %lu failed: ioq_loop_new returned %s", k, ioq_strerror(rc));
        if (rc == 0) {
            assert_string_equal(ioq_loop_backend(loop), h_backend());
            ioq_loop_free(loop);
        }
        if (!failed)
            break; /* every allocation has had its turn */
        assert_true(k < 10000);
    }
#else
    h_skip("allocation failure is not injected on this platform");
#endif
}

static const struct CMUnitTest loop_tests[] = {
    H_TEST(new_free),
    H_TEST(many_loops),
    H_TEST(options),
    H_TEST(backend_foreign),
    H_TEST(backend_env_unknown),
    H_TEST(caps),
    H_TEST(version),
    H_TEST(errname),
    H_TEST(strerror),
    H_TEST(now),
    H_TEST(submit),
    H_TEST(wake_next_poll),
    H_TEST(loop_fd_timer),
    H_TEST(loop_fd_timer_at),
    H_TEST(loop_fd_io),
    H_TEST(loop_fd_post),
    H_TEST(loop_fd_wake),
    H_TEST(loop_fd_after_submit),
    H_TEST(host_flush_queued),
    H_TEST(host_flush_poll),
    H_TEST(host_flush_exactly_once),
    H_TEST(host_flush_cancel_queued),
    H_TEST(host_flush_close_queued),
    H_TEST(host_flush_free_queued),
    H_TEST(host_flush_inline),
    H_TEST(loop_fd_inline),
    H_TEST(addr_parse),
    H_TEST(addr_format),
    H_TEST(free_uncollected_open),
    H_TEST(free_uncollected_accept),
    H_TEST(free_uncollected_connect),
    H_TEST(new_nomem),
    H_TEST(thread_handoff),
    H_TEST(wait_error),
};

H_MAIN(loop_tests)
