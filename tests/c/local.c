/* AF_UNIX streams in a temp dir. */
#include "harness.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void local_pair(ioq_loop *loop, const char *path, ioq_handle *lis, ioq_handle *c,
                       ioq_handle *s)
{
    assert_int_equal(ioq_local_listen(loop, path, 0, 0, lis), 0);
    uint64_t ta = h_tok(), tc = h_tok();
    assert_int_equal(h_accept(loop, *lis, 0, ta), 0);
    assert_int_equal(h_local_connect(loop, path, 0, tc), 0);
    ioq_cqe x = h_wait(loop, ta), y = h_wait(loop, tc);
    assert_int_equal(x.result, 0);
    assert_int_equal(y.result, 0);
    assert_int_not_equal(x.value, 0);
    assert_int_not_equal(y.value, 0);
    *s = x.value;
    *c = y.value;
}

static void test_echo(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    const char *path = h_path("echo.sock");
    ioq_handle lis, c, s;
    local_pair(loop, path, &lis, &c, &s);
#ifndef _WIN32 /* a named pipe leaves no file behind */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
#endif
    char buf[32];
    h_send_wait(loop, c, "local hello", 11);
    h_recv_exact(loop, s, buf, 11);
    assert_memory_equal(buf, "local hello", 11);
    ioq_iov iov[2] = {{"ab", 2}, {"cd", 2}};
    uint64_t t = h_tok();
    assert_int_equal(h_sendv(loop, s, iov, 2, t), 0);
    assert_int_equal(h_wait(loop, t).result, 4);
    h_recv_exact(loop, c, buf, 4);
    assert_memory_equal(buf, "abcd", 4);
#ifdef _WIN32 /* a named pipe has no half-close */
    assert_int_equal(h_shutdown(loop, c, 9), 0);
    assert_int_equal(h_wait(loop, 9).result, IOQ_ENOTSUP);
#else
    /* EOF after the peer shuts down its write side. */
    assert_int_equal(h_shutdown(loop, c, 9), 0);
    assert_int_equal(h_wait(loop, 9).result, 0);
    assert_int_equal(h_recv_once(loop, s, buf, sizeof buf), 0);
#endif
    /* sockname is not for local sockets. */
    ioq_addr a;
    assert_int_equal(ioq_sockname(loop, c, &a), IOQ_ENOTSUP);
    assert_int_equal(ioq_peername(loop, c, &a), IOQ_ENOTSUP);
    assert_int_equal(ioq_sockname(loop, lis, &a), IOQ_ENOTSUP);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_close_wait(loop, lis);
    h_finish(loop);
}

static void test_addrinuse_unlink(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    const char *path = h_path("stale.sock");
    ioq_handle l1, l2 = 0;
    assert_int_equal(ioq_local_listen(loop, path, 0, 0, &l1), 0);
    h_close_wait(loop, l1);
    /* The socket file outlives its listener (as on any Unix). */
    if (access(path, F_OK) != 0) {
        /* The library removed its own file on close: nothing stale to test then, but
         * a fresh listen must work. */
        print_message("the socket file went with its listener\n");
        assert_int_equal(ioq_local_listen(loop, path, 0, 0, &l2), 0);
        h_close_wait(loop, l2);
        h_finish(loop);
        return;
    }
    assert_int_equal(ioq_local_listen(loop, path, 0, 0, &l2), IOQ_EADDRINUSE);
    assert_int_equal(ioq_local_listen(loop, path, 0, IOQ_UNLINK, &l2), 0);
    /* And it works. */
    uint64_t ta = h_tok(), tc = h_tok();
    assert_int_equal(h_accept(loop, l2, 0, ta), 0);
    assert_int_equal(h_local_connect(loop, path, 0, tc), 0);
    ioq_cqe x = h_wait(loop, ta), y = h_wait(loop, tc);
    assert_int_equal(x.result, 0);
    assert_int_equal(y.result, 0);
    h_close_wait(loop, x.value);
    h_close_wait(loop, y.value);
    h_close_wait(loop, l2);
    h_finish(loop);
}

static void test_missing_path(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint64_t t = h_tok();
    int rc = h_local_connect(loop, h_path("nobody.sock"), 0, t);
    if (rc == 0)
        assert_int_equal(h_wait(loop, t).result, IOQ_ENOENT);
    else
        assert_int_equal(rc, IOQ_ENOENT);
    /* A listen in a missing directory. */
    ioq_handle h = 0;
    assert_int_equal(ioq_local_listen(loop, h_path("nodir/x.sock"), 0, 0, &h), IOQ_ENOENT);
    h_finish(loop);
}

static void test_refused(void **state)
{
    (void)state;
    /* A socket file with no listener behind it refuses. */
    ioq_loop *loop = h_loop_new();
    const char *path = h_path("dead.sock");
    ioq_handle l1;
    assert_int_equal(ioq_local_listen(loop, path, 0, 0, &l1), 0);
    h_close_wait(loop, l1);
    if (access(path, F_OK) != 0) {
        h_finish(loop);
        h_skip("the socket file went with its listener");
    }
    uint64_t t = h_tok();
    int rc = h_local_connect(loop, path, 0, t);
    if (rc == 0)
        assert_int_equal(h_wait(loop, t).result, IOQ_ECONNREFUSED);
    else
        assert_int_equal(rc, IOQ_ECONNREFUSED);
    h_finish(loop);
}

static void test_path_too_long(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    char path[400];
    size_t max = sizeof(((struct sockaddr_un *)0)->sun_path);
    int n = snprintf(path, sizeof path, "%s/", h_tmpdir());
    while ((size_t)n < max + 10)
        path[n++] = 'x';
    path[n] = 0;
    ioq_handle h = 0;
    assert_int_equal(ioq_local_listen(loop, path, 0, 0, &h), IOQ_ENAMETOOLONG);
    assert_int_equal(h, 0);
    uint64_t t = h_tok();
    int rc = h_local_connect(loop, path, 0, t);
    if (rc == 0)
        assert_int_equal(h_wait(loop, t).result, IOQ_ENAMETOOLONG);
    else
        assert_int_equal(rc, IOQ_ENAMETOOLONG);
    h_finish(loop);
}

static void test_peer_close_eof(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle lis, c, s;
    local_pair(loop, h_path("eof.sock"), &lis, &c, &s);
    char buf[8];
    uint64_t t = h_tok();
    assert_int_equal(h_recv(loop, s, buf, sizeof buf, t), 0);
    h_poll(loop, 0);
    h_close_wait(loop, c);
    assert_int_equal(h_wait(loop, t).result, 0);
    h_close_wait(loop, s);
    h_close_wait(loop, lis);
    h_finish(loop);
}

/* A connect to a listener whose backlog is full ends at once with IOQ_EAGAIN on every
 * backend (on Windows: every pipe instance is taken), and succeeds again once an accept
 * has made room. */
static void test_backlog_full(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    const char *path = h_path("full.sock");
    ioq_handle lis, conns[256];
    int n = 0, full = 0;
    assert_int_equal(ioq_local_listen(loop, path, 1, 0, &lis), 0);
    while (n < 256 && !full) {
        uint64_t t = h_tok();
        assert_int_equal(h_local_connect(loop, path, 0, t), 0);
        ioq_cqe c = h_wait(loop, t);
        if (c.result == IOQ_EAGAIN) {
            full = 1;
        } else {
            assert_int_equal(c.result, 0);
            conns[n++] = c.value;
        }
    }
    assert_true(full);
    assert_true(n >= 1);
    /* An accept makes room. */
    uint64_t ta = h_tok(), tc = h_tok();
    assert_int_equal(h_accept(loop, lis, 0, ta), 0);
    ioq_cqe a = h_wait(loop, ta);
    assert_int_equal(a.result, 0);
    assert_int_equal(h_local_connect(loop, path, 0, tc), 0);
    ioq_cqe c = h_wait(loop, tc);
    assert_int_equal(c.result, 0);
    h_close_wait(loop, c.value);
    h_close_wait(loop, a.value);
    for (int i = 0; i < n; i++)
        h_close_wait(loop, conns[i]);
    h_close_wait(loop, lis);
    h_finish(loop);
}

static const struct CMUnitTest local_tests[] = {
    H_TEST(echo),
    H_TEST(addrinuse_unlink),
    H_TEST(missing_path),
    H_TEST(refused),
    H_TEST(path_too_long),
    H_TEST(peer_close_eof),
    H_TEST(backlog_full),
};

H_MAIN(local_tests)
