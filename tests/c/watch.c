/* ioq_watch: readiness of descriptors ioq does not own (IOQ_KIND_WATCH). */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MS 1000000ll
#define R IOQ_WATCH_READABLE
#define W IOQ_WATCH_WRITABLE

static int h_watch(ioq_loop *l, ioq_handle h, uint32_t events, uint32_t flags, uint64_t tok)
{
    return h_track(l, ioq_watch(l, h, events, flags, tok), tok, IOQ_OP_WATCH,
                   flags & IOQ_MULTISHOT);
}

static ioq_handle adopt_watch(ioq_loop *loop, int fd)
{
    ioq_handle h = 0;
    assert_int_equal(ioq_adopt(loop, (uint64_t)fd, IOQ_KIND_WATCH, &h), 0);
    assert_true(h != 0);
    return h;
}

#ifdef _WIN32
/* Windows watches sockets only (AFD polling): a loopback TCP connection stands in for
 * socketpair, read and written with recv and send. A socket has no descriptor flags. */
#define OWNED_KIND IOQ_KIND_TCP

static void pair(int sv[2])
{
    uint16_t port = 0;
    int lfd = h_plain_listen(&port);
    sv[0] = h_plain_connect(port);
    sv[1] = h_plain_accept(lfd);
    close(lfd);
}

static int put(int fd, const char *buf, size_t len) { return send((SOCKET)fd, buf, (int)len, 0); }
static int get(int fd, char *buf, size_t len) { return recv((SOCKET)fd, buf, (int)len, 0); }
static int fd_flags(int fd)
{
    (void)fd;
    return 0;
}
static bool fd_open(int fd)
{
    int type = 0;
    int len = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
}
#else
#define OWNED_KIND IOQ_KIND_LOCAL

static void pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static int put(int fd, const char *buf, size_t len) { return (int)write(fd, buf, len); }
static int get(int fd, char *buf, size_t len) { return (int)read(fd, buf, len); }
static int fd_flags(int fd) { return fcntl(fd, F_GETFL); }
static bool fd_open(int fd) { return fcntl(fd, F_GETFD) != -1; }
#endif

/* The descriptor is still open and still ours: ioq neither closed it nor changed it. */
static void assert_open(int fd, int flags_before)
{
    assert_true(fd_open(fd));
    assert_int_equal(fd_flags(fd), flags_before);
}

static void test_readable(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int sv[2];
    pair(sv);
    int fl = fd_flags(sv[0]);
    ioq_handle h = adopt_watch(loop, sv[0]);
    uint64_t t = h_tok();
    assert_int_equal(h_watch(loop, h, R, 0, t), 0);
    h_assert_quiet(loop, 30);
    assert_int_equal(put(sv[1], "x", 1), 1);
    ioq_cqe c = h_wait(loop, t);
    assert_int_equal(c.result, R);
    assert_int_equal(c.value, 0);
    assert_int_equal(c.flags, 0);
    /* ioq did not read: the byte is still there for the owner. */
    char b;
    assert_int_equal(get(sv[0], &b, 1), 1);
    h_close_wait(loop, h);
    assert_open(sv[0], fl);
    close(sv[0]);
    close(sv[1]);
    h_finish(loop);
}

static void test_writable(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int sv[2];
    pair(sv);
    ioq_handle h = adopt_watch(loop, sv[0]);
    uint64_t t = h_tok();
    assert_int_equal(h_watch(loop, h, W, 0, t), 0);
    ioq_cqe c = h_wait(loop, t);
    assert_int_equal(c.result, W);
    h_close_wait(loop, h);
    close(sv[0]);
    close(sv[1]);
    h_finish(loop);
}

static void test_both(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int sv[2];
    pair(sv);
    ioq_handle h = adopt_watch(loop, sv[0]);
    uint64_t t = h_tok();
    /* Nothing to read: only what holds is reported. */
    assert_int_equal(h_watch(loop, h, R | W, 0, t), 0);
    assert_int_equal(h_wait(loop, t).result, W);
    assert_int_equal(put(sv[1], "x", 1), 1);
    t = h_tok();
    assert_int_equal(h_watch(loop, h, R | W, 0, t), 0);
    assert_int_equal(h_wait(loop, t).result, R | W);
    h_close_wait(loop, h);
    close(sv[0]);
    close(sv[1]);
    h_finish(loop);
}

/* Records of token among n completions. */
static int count_tok(const ioq_cqe *c, int n, uint64_t tok, int *more)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (c[i].token == tok) {
            k++;
            if (more && (c[i].flags & IOQ_CQE_MORE))
                (*more)++;
        }
    }
    return k;
}

static void test_oneshot(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int sv[2];
    pair(sv);
    ioq_handle h = adopt_watch(loop, sv[0]);
    assert_int_equal(put(sv[1], "x", 1), 1);
    uint64_t t = h_tok();
    assert_int_equal(h_watch(loop, h, R, 0, t), 0);
    assert_int_equal(h_wait(loop, t).result, R);
    /* Done: the data still waiting does not make it report again. */
    h_assert_quiet(loop, 30);
    h_close_wait(loop, h);
    close(sv[0]);
    close(sv[1]);
    h_finish(loop);
}

static void test_multishot(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int sv[2];
    pair(sv);
    ioq_handle h = adopt_watch(loop, sv[0]);
    uint64_t t = h_tok();
    assert_int_equal(h_watch(loop, h, R, IOQ_MULTISHOT, t), 0);
    h_assert_quiet(loop, 20);
    assert_int_equal(put(sv[1], "xy", 2), 2);
    /* Level-triggered: while the data stays unread every poll reports it, once. */
    int reports = 0;
    for (int i = 0; i < 200 && reports < 5; i++) {
        ioq_cqe c[16];
        int more = 0;
        int n = h_poll_into(loop, c, 16, 100 * MS);
        int k = count_tok(c, n, t, &more);
        assert_true(k <= 1);
        assert_int_equal(more, k);
        for (int j = 0; j < n; j++)
            if (c[j].token == t)
                assert_int_equal(c[j].result, R);
        reports += k;
    }
    assert_int_equal(reports, 5);
    /* Read it all: quiet; new data: reports again. */
    char b[8];
    assert_int_equal(get(sv[0], b, sizeof b), 2);
    h_assert_quiet(loop, 30);
    assert_int_equal(put(sv[1], "z", 1), 1);
    ioq_cqe c = h_next(loop, t);
    assert_int_equal(c.result, R);
    assert_true(c.flags & IOQ_CQE_MORE);
    assert_int_equal(get(sv[0], b, sizeof b), 1);
    uint64_t ct = h_tok();
    assert_int_equal(h_cancel(loop, t, ct), 0);
    assert_int_equal(h_wait(loop, ct).result, 1);
    c = h_wait(loop, t);
    assert_int_equal(c.result, IOQ_ECANCELED);
    assert_int_equal(c.flags, 0);
    h_close_wait(loop, h);
    close(sv[0]);
    close(sv[1]);
    h_finish(loop);
}

/* A READABLE and a WRITABLE watch on one handle (add_reader + add_writer). */
static void test_reader_and_writer(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int sv[2];
    pair(sv);
    ioq_handle h = adopt_watch(loop, sv[0]);
    uint64_t tr = h_tok(), tw = h_tok();
    assert_int_equal(h_watch(loop, h, R, IOQ_MULTISHOT, tr), 0);
    assert_int_equal(h_watch(loop, h, W, IOQ_MULTISHOT, tw), 0);
    ioq_cqe c = h_next(loop, tw);
    assert_int_equal(c.result, W);
    assert_false(h_logged(loop, tr));
    /* The writer goes; the reader stays and hears only of data. */
    uint64_t ct = h_tok();
    assert_int_equal(h_cancel(loop, tw, ct), 0);
    assert_int_equal(h_wait(loop, tw).result, IOQ_ECANCELED);
    h_wait(loop, ct);
    while (h_take_logged(loop, &c))
        assert_true(c.token != tr);
    h_assert_quiet(loop, 30);
    assert_int_equal(put(sv[1], "x", 1), 1);
    c = h_next(loop, tr);
    assert_int_equal(c.result, R);
    h_close_wait(loop, h);
    assert_int_equal(h_wait(loop, tr).result, IOQ_ECANCELED);
    close(sv[0]);
    close(sv[1]);
    h_finish(loop);
}

static void test_hangup(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int sv[2];
    pair(sv);
    ioq_handle h = adopt_watch(loop, sv[0]);
    uint64_t t = h_tok();
    assert_int_equal(h_watch(loop, h, R, 0, t), 0);
    close(sv[1]);
    ioq_cqe c = h_wait(loop, t);
    assert_true(c.result & R);
    assert_true(c.result & IOQ_WATCH_HANGUP);
    h_close_wait(loop, h);
    close(sv[0]);
#ifndef _WIN32
    /* A pipe: the reader hears that no writer is left... */
    int p[2];
    assert_int_equal(pipe(p), 0);
    h = adopt_watch(loop, p[0]);
    t = h_tok();
    assert_int_equal(h_watch(loop, h, R, 0, t), 0);
    h_assert_quiet(loop, 20);
    close(p[1]);
    c = h_wait(loop, t);
    assert_true(c.result & IOQ_WATCH_HANGUP);
    h_close_wait(loop, h);
    close(p[0]);
#endif
    h_finish(loop);
}

#ifdef _WIN32
/* A connection reset under a reader: an error (and the end of the stream), reported
 * without asking. */
static void test_error(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int sv[2];
    pair(sv);
    ioq_handle h = adopt_watch(loop, sv[0]);
    uint64_t t = h_tok();
    assert_int_equal(h_watch(loop, h, R, 0, t), 0);
    h_assert_quiet(loop, 20);
    h_plain_reset(sv[1]);
    ioq_cqe c = h_wait(loop, t);
    assert_true(c.result & IOQ_WATCH_ERROR);
    assert_int_equal(c.result & ~(int64_t)(R | IOQ_WATCH_ERROR | IOQ_WATCH_HANGUP), 0);
    h_close_wait(loop, h);
    close(sv[0]);
    h_finish(loop);
}
#else
static void test_error(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    /* ... and a writer that its reader is gone: an error, reported without asking. */
    int p[2];
    assert_int_equal(pipe(p), 0);
    /* Fill the pipe so that WRITABLE does not hold. */
    fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) | O_NONBLOCK);
    char buf[4096];
    memset(buf, 'x', sizeof buf);
    while (write(p[1], buf, sizeof buf) > 0)
        ;
    ioq_handle h = adopt_watch(loop, p[1]);
    uint64_t t = h_tok();
    assert_int_equal(h_watch(loop, h, W, 0, t), 0);
    h_assert_quiet(loop, 20);
    close(p[0]);
    ioq_cqe c = h_wait(loop, t);
    assert_true(c.result & IOQ_WATCH_ERROR);
    assert_int_equal(c.result & ~(int64_t)(W | IOQ_WATCH_ERROR | IOQ_WATCH_HANGUP), 0);
    h_close_wait(loop, h);
    close(p[1]);
    h_finish(loop);
}
#endif

static void test_cancel(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int sv[2];
    pair(sv);
    ioq_handle h = adopt_watch(loop, sv[0]);
    uint64_t t = h_tok(), t2 = h_tok();
    assert_int_equal(h_watch(loop, h, R, 0, t), 0);
    assert_int_equal(h_watch(loop, h, R, IOQ_MULTISHOT, t2), 0);
    uint64_t ct = h_tok();
    assert_int_equal(h_cancel(loop, t, ct), 0);
    assert_int_equal(h_wait(loop, t).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, ct).result, 1);
    /* The other watch lives on. */
    assert_int_equal(put(sv[1], "x", 1), 1);
    assert_int_equal(h_next(loop, t2).result, R);
    ct = h_tok();
    assert_int_equal(h_cancel(loop, t2, ct), 0);
    assert_int_equal(h_wait(loop, t2).result, IOQ_ECANCELED);
    h_wait(loop, ct);
    h_assert_quiet(loop, 20);
    h_close_wait(loop, h);
    close(sv[0]);
    close(sv[1]);
    h_finish(loop);
}

static void test_close_in_flight(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int sv[2];
    pair(sv);
    int fl = fd_flags(sv[0]);
    ioq_handle h = adopt_watch(loop, sv[0]);
    uint64_t t1 = h_tok(), t2 = h_tok(), t3 = h_tok(), tc = h_tok();
    assert_int_equal(h_watch(loop, h, R, 0, t1), 0);
    assert_int_equal(h_watch(loop, h, R, IOQ_MULTISHOT, t2), 0);
    assert_int_equal(h_watch(loop, h, R | W, IOQ_MULTISHOT, t3), 0);
    assert_int_equal(h_close(loop, h, tc), 0);
    /* The handle is gone at once; its watches end before the close completes. */
    assert_int_equal(ioq_watch(loop, h, R, 0, h_tok()), IOQ_EBADHANDLE);
    assert_int_equal(h_wait(loop, t1).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, t2).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, t3).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, tc).result, 0);
    /* Not closed by ioq: the descriptor still works, unchanged, and can be watched again. */
    assert_open(sv[0], fl);
    assert_int_equal(put(sv[1], "x", 1), 1);
    char b;
    assert_int_equal(get(sv[0], &b, 1), 1);
    h = adopt_watch(loop, sv[0]);
    assert_int_equal(put(sv[1], "y", 1), 1);
    uint64_t t = h_tok();
    assert_int_equal(h_watch(loop, h, R, 0, t), 0);
    assert_int_equal(h_wait(loop, t).result, R);
    h_close_wait(loop, h);
    close(sv[0]);
    close(sv[1]);
    h_finish(loop);
}

/* Embedded in a host loop (asyncio's way): the loop's descriptor turns readable for a
 * report, and again at the host's next round while the condition holds. */
static int loop_fd_readable(int64_t fd, int ms)
{
    struct pollfd p = {(int)fd, POLLIN, 0};
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

static void test_embedded(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int64_t lfd = ioq_loop_fd(loop);
    if (lfd == IOQ_ENOTSUP) {
        h_finish(loop);
        h_skip("no loop fd on this backend");
    }
    assert_true(lfd >= 0);
    int sv[2];
    pair(sv);
    ioq_handle h = adopt_watch(loop, sv[0]);
    uint64_t t = h_tok();
    assert_int_equal(h_watch(loop, h, R, IOQ_MULTISHOT, t), 0);
    assert_int_equal(put(sv[1], "x", 1), 1);
    for (int round = 0; round < 3; round++) {
        int got = 0;
        for (int i = 0; i < 50 && !got; i++) {
            ioq_cqe c[4];
            assert_true(loop_fd_readable(lfd, 100));
            int n = h_poll_into(loop, c, 4, 0);
            got = count_tok(c, n, t, NULL);
            assert_true(got <= 1);
        }
        assert_int_equal(got, 1);
    }
    char b;
    assert_int_equal(get(sv[0], &b, 1), 1);
    uint64_t ct = h_tok();
    assert_int_equal(h_cancel(loop, t, ct), 0);
    h_wait(loop, ct);
    assert_int_equal(h_wait(loop, t).result, IOQ_ECANCELED);
    h_close_wait(loop, h);
    close(sv[0]);
    close(sv[1]);
    h_finish(loop);
}

/* Freeing the loop with live watches leaves the descriptors open. */
static void test_loop_free(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int sv[2];
    pair(sv);
    ioq_handle h = adopt_watch(loop, sv[0]);
    assert_int_equal(ioq_watch(loop, h, R, IOQ_MULTISHOT, 1), 0);
    ioq_loop_free(loop);
    h_forget(loop);
    assert_true(fd_open(sv[0]));
    close(sv[0]);
    close(sv[1]);
}

static void test_bad_args(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int sv[2];
    pair(sv);
    ioq_handle h = adopt_watch(loop, sv[0]);
    assert_int_equal(ioq_watch(NULL, h, R, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_watch(loop, h, 0, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_watch(loop, h, IOQ_WATCH_ERROR, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_watch(loop, h, IOQ_WATCH_HANGUP | R, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_watch(loop, h, 0x10, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_watch(loop, h, R, 2, 1), IOQ_EINVAL);
    assert_int_equal(ioq_watch(loop, 0, R, 0, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_watch(loop, h + 1, R, 0, 1), IOQ_EBADHANDLE);
    /* Other kinds are not watched in 1.1. */
    ioq_handle lh = 0;
    assert_int_equal(ioq_adopt(loop, (uint64_t)sv[1], OWNED_KIND, &lh), 0);
    assert_int_equal(ioq_watch(loop, lh, R, 0, 1), IOQ_EBADHANDLE);
    /* What cannot be watched. */
    ioq_handle x = 0;
#ifdef _WIN32
    /* Windows watches sockets only: anything else is IOQ_ENOTSUP. */
    HANDLE pr = NULL, pw = NULL;
    assert_true(CreatePipe(&pr, &pw, NULL, 0));
    assert_int_equal(ioq_adopt(loop, (uint64_t)(uintptr_t)pr, IOQ_KIND_WATCH, &x), IOQ_ENOTSUP);
    CloseHandle(pr);
    CloseHandle(pw);
#else
    char path[] = "/tmp/ioq-watch-XXXXXX";
    int f = mkstemp(path);
    assert_true(f >= 0);
    unlink(path);
    assert_int_equal(ioq_adopt(loop, (uint64_t)f, IOQ_KIND_WATCH, &x), IOQ_EINVAL);
    close(f);
    assert_int_equal(ioq_adopt(loop, (uint64_t)f, IOQ_KIND_WATCH, &x), IOQ_EINVAL);
#endif
    assert_int_equal(ioq_adopt(loop, (uint64_t)sv[0], IOQ_KIND_WATCH, NULL), IOQ_EINVAL);
    assert_int_equal(x, 0);
    h_close_wait(loop, h);
    h_close_wait(loop, lh); /* closes sv[1] */
    close(sv[0]);
    h_finish(loop);
}

static void test_eexist(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int sv[2];
    pair(sv);
    ioq_handle h = adopt_watch(loop, sv[0]), h2 = 0;
    assert_int_equal(ioq_adopt(loop, (uint64_t)sv[0], IOQ_KIND_WATCH, &h2), IOQ_EEXIST);
    assert_int_equal(h2, 0);
    /* A descriptor the loop owns cannot be watched behind its back either. */
    ioq_handle lh = 0;
    assert_int_equal(ioq_adopt(loop, (uint64_t)sv[1], OWNED_KIND, &lh), 0);
    assert_int_equal(ioq_adopt(loop, (uint64_t)sv[1], IOQ_KIND_WATCH, &h2), IOQ_EEXIST);
    /* Another loop may watch it. */
    ioq_loop *other = h_loop_new();
    assert_int_equal(ioq_adopt(other, (uint64_t)sv[0], IOQ_KIND_WATCH, &h2), 0);
    h_close_wait(other, h2);
    h_finish(other);
    h_close_wait(loop, h);
    h = adopt_watch(loop, sv[0]);
    h_close_wait(loop, h);
    h_close_wait(loop, lh);
    close(sv[0]);
    h_finish(loop);
}

/* Many descriptors, one-shot and multishot watches, data, hang-ups, cancels and closes in
 * one mix: every watch completes exactly once (the harness checks each record). */
static void test_exactly_once(void **state)
{
    (void)state;
    enum { N = 64 };
    ioq_loop *loop = h_loop_new();
    int sv[N][2];
    ioq_handle h[N];
    uint64_t t[N][2];
    for (int i = 0; i < N; i++) {
        pair(sv[i]);
        h[i] = adopt_watch(loop, sv[i][0]);
        t[i][0] = h_tok();
        t[i][1] = h_tok();
        assert_int_equal(h_watch(loop, h[i], R, (i & 1) ? IOQ_MULTISHOT : 0, t[i][0]), 0);
        assert_int_equal(h_watch(loop, h[i], (i & 2) ? W : R | W, IOQ_MULTISHOT, t[i][1]), 0);
    }
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0)
            assert_int_equal(put(sv[i][1], "x", 1), 1);
        else if (i % 3 == 1)
            close(sv[i][1]), sv[i][1] = -1;
    }
    for (int k = 0; k < 5; k++)
        h_poll(loop, 10 * MS);
    for (int i = 0; i < N; i++) {
        if (i % 4 == 0)
            assert_int_equal(h_cancel(loop, t[i][1], h_tok()), 0);
        else
            assert_int_equal(h_close(loop, h[i], h_tok()), 0);
        h_poll(loop, 0);
    }
    for (int i = 0; i < N; i += 4)
        assert_int_equal(h_close(loop, h[i], h_tok()), 0);
    h_finish(loop);
    for (int i = 0; i < N; i++) {
        close(sv[i][0]);
        if (sv[i][1] >= 0)
            close(sv[i][1]);
    }
}

static const struct CMUnitTest watch_tests[] = {
    H_TEST(readable),
    H_TEST(writable),
    H_TEST(both),
    H_TEST(oneshot),
    H_TEST(multishot),
    H_TEST(reader_and_writer),
    H_TEST(hangup),
    H_TEST(error),
    H_TEST(cancel),
    H_TEST(close_in_flight),
    H_TEST(embedded),
    H_TEST(loop_free),
    H_TEST(bad_args),
    H_TEST(eexist),
    H_TEST(exactly_once),
};

H_MAIN(watch_tests)
