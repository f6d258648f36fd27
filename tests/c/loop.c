/* Loops: creation, options, backend selection, capabilities, versions, error text, clock,
 * the pollable descriptor and wake-ups. */
#include "harness.h"

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    o.flags = 1;
    loop = (ioq_loop *)1;
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
    H_TEST(loop_fd_io),
    H_TEST(loop_fd_post),
    H_TEST(loop_fd_wake),
    H_TEST(loop_fd_after_submit),
    H_TEST(addr_parse),
    H_TEST(addr_format),
};

H_MAIN(loop_tests)
