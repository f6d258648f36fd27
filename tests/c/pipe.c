/* Pipes and terminals as streams: ioq_pipe, adopted pipes, FIFOs and character devices,
 * and ioq_tty_* on a pseudo-terminal. */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifndef _WIN32
#  include <sys/ioctl.h>
#  include <termios.h>
#endif

#ifdef _WIN32
/* An overlapped pipe made outside ioq, as a host would hand one over: a uniquely named
 * pipe (server end, inbound) and its client (write end). */
static void win_pipe(HANDLE *r, HANDLE *w, DWORD client_flags)
{
    static LONG serial;
    char name[96];
    snprintf(name, sizeof name, "\\\\.\\pipe\\ioq-test-%lu-%ld",
             (unsigned long)GetCurrentProcessId(), (long)InterlockedIncrement(&serial));
    *r = CreateNamedPipeA(name, PIPE_ACCESS_INBOUND | FILE_FLAG_OVERLAPPED,
                          PIPE_TYPE_BYTE | PIPE_WAIT, 1, 65536, 65536, 0, NULL);
    assert_true(*r != INVALID_HANDLE_VALUE);
    *w = CreateFileA(name, GENERIC_WRITE, 0, NULL, OPEN_EXISTING, client_flags, NULL);
    assert_true(*w != INVALID_HANDLE_VALUE);
}

static int handle_open(HANDLE h)
{
    DWORD fl;
    return GetHandleInformation(h, &fl) != 0;
}
#endif

static ioq_cqe wait_ok(ioq_loop *l, uint64_t tok, int64_t want)
{
    ioq_cqe c = h_wait(l, tok);
    if (c.result != want)
        fail_msg("token %llu: result %lld (%s), want %lld", (unsigned long long)tok,
                 (long long)c.result, c.result < 0 ? ioq_errname((int)c.result) : "",
                 (long long)want);
    return c;
}

static void test_both_ways(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle a[2], b[2];
    char buf[64];
    assert_int_equal(ioq_pipe(loop, 0, a), 0);
    assert_int_equal(ioq_pipe(loop, 0, b), 0);
    assert_int_not_equal(a[0], a[1]);
    /* One way through a, the answer back through b, as between a parent and a child. */
    h_send_wait(loop, a[1], "ping", 4);
    h_recv_exact(loop, a[0], buf, 4);
    assert_memory_equal(buf, "ping", 4);
    h_send_wait(loop, b[1], "pong!", 5);
    h_recv_exact(loop, b[0], buf, 5);
    assert_memory_equal(buf, "pong!", 5);
    /* A receive waits for the data sent after it. */
    uint64_t t = h_tok();
    assert_int_equal(h_recv(loop, a[0], buf, sizeof buf, t), 0);
    h_assert_quiet(loop, 20);
    ioq_iov iov[3] = {{"ga", 2}, {"th", 2}, {"er", 2}};
    uint64_t s = h_tok();
    assert_int_equal(h_sendv(loop, a[1], iov, 3, s), 0);
    wait_ok(loop, s, 6);
    wait_ok(loop, t, 6);
    assert_memory_equal(buf, "gather", 6);
    /* The descriptors are real pipes, close-on-exec. */
    uint64_t fd;
    assert_int_equal(ioq_os_handle(loop, a[0], &fd), 0);
#ifdef _WIN32
    DWORD hfl = 0;
    assert_int_equal(GetFileType((HANDLE)(uintptr_t)fd), FILE_TYPE_PIPE);
    assert_true(GetHandleInformation((HANDLE)(uintptr_t)fd, &hfl));
    assert_false(hfl & HANDLE_FLAG_INHERIT);
    assert_int_equal(ioq_os_handle(loop, a[1], &fd), 0);
    assert_int_equal(GetFileType((HANDLE)(uintptr_t)fd), FILE_TYPE_PIPE);
#else
    struct stat st;
    assert_int_equal(fstat((int)fd, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_true(fcntl((int)fd, F_GETFD) & FD_CLOEXEC);
#endif
    for (int i = 0; i < 2; i++) {
        h_close_wait(loop, a[i]);
        h_close_wait(loop, b[i]);
    }
    h_finish(loop);
}

static void test_eof(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle p[2], q[2];
    char buf[16];
    assert_int_equal(ioq_pipe(loop, 0, p), 0);
    /* shutdown of the write end: what was sent still arrives, then the end of the stream. */
    uint64_t r = h_tok();
    h_send_wait(loop, p[1], "last", 4);
    uint64_t sd = h_tok();
    assert_int_equal(h_shutdown(loop, p[1], sd), 0);
    wait_ok(loop, sd, 0);
    h_recv_exact(loop, p[0], buf, 4);
    assert_memory_equal(buf, "last", 4);
    assert_int_equal(h_recv(loop, p[0], buf, sizeof buf, r), 0);
    wait_ok(loop, r, 0);
    /* A send after the shutdown fails with EPIPE; a second shutdown is harmless. */
    uint64_t s = h_tok();
    assert_int_equal(h_send(loop, p[1], "x", 1, s), 0);
    wait_ok(loop, s, IOQ_EPIPE);
    sd = h_tok();
    assert_int_equal(h_shutdown(loop, p[1], sd), 0);
    wait_ok(loop, sd, 0);
    h_close_wait(loop, p[0]);
    h_close_wait(loop, p[1]);
    /* Closing the write end ends the stream too, also for a receive already waiting. */
    assert_int_equal(ioq_pipe(loop, 0, q), 0);
    r = h_tok();
    assert_int_equal(h_recv(loop, q[0], buf, sizeof buf, r), 0);
    h_assert_quiet(loop, 20);
    h_close_wait(loop, q[1]);
    wait_ok(loop, r, 0);
    h_close_wait(loop, q[0]);
    h_finish(loop);
}

/* A shutdown finishes without the kernel on io_uring: the submission slot it takes must not
 * go to the kernel as it is. After a ring's worth of writes to another pipe each slot holds
 * such a write; a replayed one would put a stray byte there (and complete an op twice). */
static void test_shutdown_ring_slots(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle p[2], q[2];
    uint64_t fd;
    char c;
    assert_int_equal(ioq_pipe(loop, 0, p), 0);
    assert_int_equal(ioq_pipe(loop, 0, q), 0);
    assert_int_equal(ioq_os_handle(loop, q[0], &fd), 0);
    for (int i = 0; i < 1024; i++) {
        h_send_wait(loop, q[1], "w", 1);
        assert_int_equal(read((int)fd, &c, 1), 1);
    }
    for (int i = 0; i < 4; i++) {
        uint64_t sd = h_tok();
        assert_int_equal(h_shutdown(loop, p[1], sd), 0);
        wait_ok(loop, sd, 0);
    }
    h_assert_quiet(loop, 50);
    /* Nothing more came: the pipe is empty (a poll: the descriptor may be blocking). */
    struct pollfd pf = {(int)fd, POLLIN, 0};
    assert_int_equal(poll(&pf, 1, 0), 0);
    for (int i = 0; i < 2; i++) {
        h_close_wait(loop, p[i]);
        h_close_wait(loop, q[i]);
    }
    h_finish(loop);
}

static void test_epipe(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle p[2];
#ifndef _WIN32
    /* SIGPIPE keeps its default action: if ioq let it through, it would end this test. */
    signal(SIGPIPE, SIG_DFL);
#endif
    assert_int_equal(ioq_pipe(loop, 0, p), 0);
    h_close_wait(loop, p[0]);
    uint64_t s = h_tok();
    assert_int_equal(h_send(loop, p[1], "lost", 4, s), 0);
    wait_ok(loop, s, IOQ_EPIPE);
    ioq_iov iov[2] = {{"a", 1}, {"b", 1}};
    s = h_tok();
    assert_int_equal(h_sendv(loop, p[1], iov, 2, s), 0);
    wait_ok(loop, s, IOQ_EPIPE);
#ifndef _WIN32
    /* No SIGPIPE is left pending for the host either. */
    sigset_t pend;
    sigpending(&pend);
    assert_false(sigismember(&pend, SIGPIPE));
#endif
    h_close_wait(loop, p[1]);
    h_finish(loop);
}

static void test_cancel_close(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle p[2];
    char buf[16];
    assert_int_equal(ioq_pipe(loop, 0, p), 0);
    uint64_t r1 = h_tok(), r2 = h_tok();
    assert_int_equal(h_recv(loop, p[0], buf, sizeof buf, r1), 0);
    assert_int_equal(h_recv(loop, p[0], buf, sizeof buf, r2), 0);
    h_poll(loop, 0);
    uint64_t c = h_tok();
    assert_int_equal(h_cancel(loop, r1, c), 0);
    wait_ok(loop, r1, IOQ_ECANCELED);
    /* A full pipe: a send that cannot finish, ended by the close of its handle. */
    static char big[1 << 20];
    uint64_t s = h_tok();
    assert_int_equal(h_send(loop, p[1], big, sizeof big, s), 0);
    h_poll(loop, 10 * 1000000);
    h_close_wait(loop, p[1]);
    ioq_cqe sc = h_wait(loop, s);
    assert_int_equal(sc.result, IOQ_ECANCELED);
    /* The receive still waiting sees the data that went out, the end of the stream (if the
     * send was cancelled before it wrote anything), or its own close. */
    h_close_wait(loop, p[0]);
    ioq_cqe rc = h_wait(loop, r2);
    assert_true(rc.result == IOQ_ECANCELED || rc.result >= 0);
    h_finish(loop);
}

/* Many sends queued at once on a pipe much smaller than them: they arrive whole, in order. */
static void test_big_order(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle p[2];
    enum { N = 16, LEN = 256 * 1024 };
    static char out[N][LEN], in[N * LEN];
    uint64_t tok[N];
    assert_int_equal(ioq_pipe(loop, 0, p), 0);
    for (int i = 0; i < N; i++) {
        h_fill(out[i], LEN, 7, (uint64_t)i * LEN);
        tok[i] = h_tok();
        if (i % 3 == 2) {
            ioq_iov iov[3] = {{out[i], 1000}, {NULL, 0}, {out[i] + 1000, LEN - 1000}};
            assert_int_equal(h_sendv(loop, p[1], iov, 3, tok[i]), 0);
        } else {
            assert_int_equal(h_send(loop, p[1], out[i], LEN, tok[i]), 0);
        }
    }
    size_t got = 0;
    while (got < sizeof in) {
        size_t want = sizeof in - got < 100000 ? sizeof in - got : 100000;
        int64_t n = h_recv_once(loop, p[0], in + got, want);
        assert_true(n > 0);
        got += (size_t)n;
    }
    for (int i = 0; i < N; i++)
        wait_ok(loop, tok[i], LEN);
    assert_true(h_check(in, sizeof in, 7, 0));
    h_close_wait(loop, p[0]);
    h_close_wait(loop, p[1]);
    h_finish(loop);
}

static void test_recv_pool(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle p[2], pool;
    assert_int_equal(ioq_pipe(loop, 0, p), 0);
    assert_int_equal(ioq_pool_new(loop, 4, 4096, &pool), 0);
    uint64_t t = h_tok();
    assert_int_equal(h_recv_pool(loop, p[0], pool, IOQ_MULTISHOT, t), 0);
    size_t total = 0, got = 0;
    char msg[100];
    /* Each message is taken (and its buffer given back) before the next: the pool of four
     * never runs dry. */
    for (int i = 0; i < 10; i++) {
        snprintf(msg, sizeof msg, "message %d;", i);
        h_send_wait(loop, p[1], msg, strlen(msg));
        total += strlen(msg);
        while (got < total) {
            ioq_cqe c = h_next(loop, t);
            assert_true(c.flags & IOQ_CQE_MORE);
            assert_true(c.flags & IOQ_CQE_BUFFER);
            assert_true(c.result > 0);
            assert_memory_equal(ioq_buf(loop, pool, (uint32_t)c.value),
                                msg + (got - (total - strlen(msg))), (size_t)c.result);
            got += (size_t)c.result;
            assert_int_equal(ioq_buf_release(loop, pool, (uint32_t)c.value), 0);
        }
    }
    /* The end of the stream ends the multishot receive. */
    h_close_wait(loop, p[1]);
    ioq_cqe c = h_next(loop, t);
    assert_false(c.flags & IOQ_CQE_MORE);
    assert_int_equal(c.result, 0);
    assert_int_equal(got, total);
    h_close_wait(loop, p[0]);
    h_close_wait(loop, pool);
    h_finish(loop);
}

/* A pipe receive into an empty pool waits for data, as on a socket: a buffer released
 * before the data arrives serves it; with the pool still empty when data comes, the
 * receive ends with IOQ_ENOBUFS and the data stays in the pipe; the end of the stream is 0. */
static void test_recv_pool_empty(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle p[2], pool;
    char buf[16];
    assert_int_equal(ioq_pipe(loop, 0, p), 0);
    assert_int_equal(ioq_pool_new(loop, 1, 64, &pool), 0);
    /* Take the pool's only buffer. */
    h_send_wait(loop, p[1], "first", 5);
    assert_int_equal(h_recv_pool(loop, p[0], pool, 0, 1), 0);
    ioq_cqe c = h_wait(loop, 1);
    assert_int_equal(c.result, 5);
    uint32_t id = (uint32_t)c.value;
    /* Empty pool, no data: the receive waits. */
    assert_int_equal(h_recv_pool(loop, p[0], pool, 0, 2), 0);
    h_assert_quiet(loop, 20);
    assert_int_equal(ioq_buf_release(loop, pool, id), 0);
    h_send_wait(loop, p[1], "second", 6);
    c = h_wait(loop, 2);
    assert_int_equal(c.result, 6);
    assert_memory_equal(ioq_buf(loop, pool, (uint32_t)c.value), "second", 6);
    id = (uint32_t)c.value;
    /* Empty pool when data arrives: IOQ_ENOBUFS, and the data is still there. */
    assert_int_equal(h_recv_pool(loop, p[0], pool, 0, 3), 0);
    h_send_wait(loop, p[1], "third", 5);
    assert_int_equal(h_wait(loop, 3).result, IOQ_ENOBUFS);
    assert_int_equal(h_recv(loop, p[0], buf, sizeof buf, 4), 0);
    assert_int_equal(h_wait(loop, 4).result, 5);
    assert_memory_equal(buf, "third", 5);
    /* Empty pool at the end of the stream: 0. */
    assert_int_equal(h_recv_pool(loop, p[0], pool, 0, 5), 0);
    h_close_wait(loop, p[1]);
    assert_int_equal(h_wait(loop, 5).result, 0);
    assert_int_equal(ioq_buf_release(loop, pool, id), 0);
    h_close_wait(loop, p[0]);
    h_close_wait(loop, pool);
    h_finish(loop);
}

/* A pipe made the plain way outside ioq, as a host hands one over (a child's stdio, a
 * pipe from another library): pipe() on POSIX; CreatePipe on Windows, whose handles are
 * synchronous, so ioq serves them with blocking calls on worker threads. */
static void plain_pipe(uint64_t *r, uint64_t *w)
{
#ifdef _WIN32
    HANDLE hr, hw;
    assert_true(CreatePipe(&hr, &hw, NULL, 0));
    *r = (uint64_t)(uintptr_t)hr;
    *w = (uint64_t)(uintptr_t)hw;
#else
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(fcntl(fds[0], F_SETFD, FD_CLOEXEC), 0);
    assert_int_equal(fcntl(fds[1], F_SETFD, FD_CLOEXEC), 0);
    *r = (uint64_t)fds[0];
    *w = (uint64_t)fds[1];
#endif
}

static void plain_close(uint64_t fd)
{
#ifdef _WIN32
    assert_true(CloseHandle((HANDLE)(uintptr_t)fd));
#else
    assert_int_equal(close((int)fd), 0);
#endif
}

/* A blocking write of the whole buffer outside ioq: true if it went out, false if the
 * reader is gone. */
static bool plain_write(uint64_t fd, const void *buf, size_t len)
{
#ifdef _WIN32
    DWORD n = 0;
    if (!WriteFile((HANDLE)(uintptr_t)fd, buf, (DWORD)len, &n, NULL)) {
        DWORD e = GetLastError();
        assert_true(e == ERROR_NO_DATA || e == ERROR_BROKEN_PIPE);
        return false;
    }
    return n == len;
#else
    ssize_t n = write((int)fd, buf, len);
    if (n < 0) {
        assert_int_equal(errno, EPIPE);
        return false;
    }
    return (size_t)n == len;
#endif
}

/* Read exactly len bytes outside ioq. */
static void plain_read(uint64_t fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
#ifdef _WIN32
        DWORD n = 0;
        assert_true(ReadFile((HANDLE)(uintptr_t)fd, (char *)buf + got, (DWORD)(len - got), &n,
                             NULL));
#else
        ssize_t n = read((int)fd, (char *)buf + got, len - got);
        assert_true(n > 0);
#endif
        got += (size_t)n;
    }
}

/* Both ends of a plain pipe adopted: data, sendv, a receive waiting for data, sends much
 * larger than the pipe in order, a multishot pool receive, and the end of the stream. */
static void test_plain_both_ways(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint64_t fr, fw;
    ioq_handle r, w, pool;
    char buf[64];
    plain_pipe(&fr, &fw);
    assert_int_equal(ioq_adopt(loop, fr, IOQ_KIND_PIPE, &r), 0);
    assert_int_equal(ioq_adopt(loop, fw, IOQ_KIND_PIPE, &w), 0);
    assert_int_equal(ioq_recv(loop, w, buf, sizeof buf, h_tok()), IOQ_EBADHANDLE);
    assert_int_equal(ioq_send(loop, r, "x", 1, h_tok()), IOQ_EBADHANDLE);
    h_send_wait(loop, w, "plain", 5);
    h_recv_exact(loop, r, buf, 5);
    assert_memory_equal(buf, "plain", 5);
    uint64_t t = h_tok();
    assert_int_equal(h_recv(loop, r, buf, sizeof buf, t), 0);
    h_assert_quiet(loop, 20);
    ioq_iov iov[3] = {{"ga", 2}, {"th", 2}, {"er", 2}};
    uint64_t s = h_tok();
    assert_int_equal(h_sendv(loop, w, iov, 3, s), 0);
    wait_ok(loop, s, 6);
    wait_ok(loop, t, 6);
    assert_memory_equal(buf, "gather", 6);
    /* Four sends of 100 KiB queued at once (the pipe holds a few KiB): whole, in order. */
    enum { N = 4, LEN = 100 * 1024 };
    static char out[N][LEN], in[N * LEN];
    uint64_t st[N];
    for (int i = 0; i < N; i++) {
        memset(out[i], 'a' + i, LEN);
        st[i] = h_tok();
        assert_int_equal(h_send(loop, w, out[i], LEN, st[i]), 0);
    }
    h_recv_exact(loop, r, in, sizeof in);
    for (int i = 0; i < N; i++) {
        wait_ok(loop, st[i], LEN);
        for (size_t k = 0; k < LEN; k += 4096)
            assert_int_equal(in[(size_t)i * LEN + k], 'a' + i);
    }
    /* A multishot pool receive takes what comes, and ends at the end of the stream. */
    assert_int_equal(ioq_pool_new(loop, 4, 4096, &pool), 0);
    t = h_tok();
    assert_int_equal(h_recv_pool(loop, r, pool, IOQ_MULTISHOT, t), 0);
    h_send_wait(loop, w, "pooled", 6);
    ioq_cqe c = h_next(loop, t);
    assert_true(c.flags & IOQ_CQE_MORE);
    assert_true(c.flags & IOQ_CQE_BUFFER);
    assert_int_equal(c.result, 6);
    assert_memory_equal(ioq_buf(loop, pool, (uint32_t)c.value), "pooled", 6);
    assert_int_equal(ioq_buf_release(loop, pool, (uint32_t)c.value), 0);
    h_close_wait(loop, w);
    c = h_next(loop, t);
    assert_false(c.flags & IOQ_CQE_MORE);
    assert_int_equal(c.result, 0);
    /* The end stays the end. */
    assert_int_equal(h_recv_once(loop, r, buf, sizeof buf), 0);
    h_close_wait(loop, r);
    h_close_wait(loop, pool);
    h_finish(loop);
}

/* The end of the stream and EPIPE on adopted plain ends, with the other end outside. */
static void test_plain_eof_epipe(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint64_t fr, fw;
    ioq_handle r, w;
    char buf[16];
#ifndef _WIN32
    signal(SIGPIPE, SIG_DFL); /* ioq's sends must not raise it */
#endif
    /* Reading: data from outside, then a receive waiting when the writer goes: 0. */
    plain_pipe(&fr, &fw);
    assert_int_equal(ioq_adopt(loop, fr, IOQ_KIND_PIPE, &r), 0);
    assert_true(plain_write(fw, "outside", 7));
    h_recv_exact(loop, r, buf, 7);
    assert_memory_equal(buf, "outside", 7);
    uint64_t t = h_tok();
    assert_int_equal(h_recv(loop, r, buf, sizeof buf, t), 0);
    h_assert_quiet(loop, 20);
    plain_close(fw);
    wait_ok(loop, t, 0);
    assert_int_equal(h_recv_once(loop, r, buf, sizeof buf), 0);
    h_close_wait(loop, r);
    /* Writing: what ioq sends arrives outside; its shutdown is the end for the reader; a
     * send after it is EPIPE. */
    plain_pipe(&fr, &fw);
    assert_int_equal(ioq_adopt(loop, fw, IOQ_KIND_PIPE, &w), 0);
    h_send_wait(loop, w, "inside", 6);
    plain_read(fr, buf, 6);
    assert_memory_equal(buf, "inside", 6);
    uint64_t sd = h_tok();
    assert_int_equal(h_shutdown(loop, w, sd), 0);
    wait_ok(loop, sd, 0);
#ifdef _WIN32
    DWORD n = 1;
    assert_false(ReadFile((HANDLE)(uintptr_t)fr, buf, sizeof buf, &n, NULL));
    assert_int_equal(GetLastError(), ERROR_BROKEN_PIPE);
#else
    assert_int_equal(read((int)fr, buf, sizeof buf), 0);
#endif
    uint64_t s = h_tok();
    assert_int_equal(h_send(loop, w, "x", 1, s), 0);
    wait_ok(loop, s, IOQ_EPIPE);
    h_close_wait(loop, w);
    plain_close(fr);
    /* The reader gone: EPIPE for send and sendv. */
    plain_pipe(&fr, &fw);
    assert_int_equal(ioq_adopt(loop, fw, IOQ_KIND_PIPE, &w), 0);
    plain_close(fr);
    s = h_tok();
    assert_int_equal(h_send(loop, w, "lost", 4, s), 0);
    wait_ok(loop, s, IOQ_EPIPE);
    ioq_iov iov[2] = {{"a", 1}, {"b", 1}};
    s = h_tok();
    assert_int_equal(h_sendv(loop, w, iov, 2, s), 0);
    wait_ok(loop, s, IOQ_EPIPE);
    h_close_wait(loop, w);
    h_finish(loop);
}

/* A zero-length write is no end of the stream: on Windows it makes a blocked ReadFile of
 * an anonymous pipe return 0 bytes with success, which the reader must read again past;
 * only ERROR_BROKEN_PIPE is the end (on POSIX such a write sends nothing). A zero-length
 * write before the receive, one while it waits, and one under a multishot pool receive.
 * wine 8 does not end a ReadFile at a zero-length write, so the reads of 0 bytes are also
 * made by a test hook (IOCP only; nothing on POSIX). */
static void test_plain_zero_write(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint64_t fr, fw;
    ioq_handle r, pool;
    char buf[16];
    plain_pipe(&fr, &fw);
    assert_int_equal(ioq_adopt(loop, fr, IOQ_KIND_PIPE, &r), 0);
    ioq__test_empty_reads(2);
    assert_true(plain_write(fw, "", 0));
    uint64_t t = h_tok();
    assert_int_equal(h_recv(loop, r, buf, sizeof buf, t), 0);
    h_assert_quiet(loop, 50);
    assert_true(plain_write(fw, "", 0));
    h_assert_quiet(loop, 50);
    assert_true(plain_write(fw, "data", 4));
    wait_ok(loop, t, 4);
    assert_memory_equal(buf, "data", 4);
    assert_int_equal(ioq_pool_new(loop, 4, 64, &pool), 0);
    ioq__test_empty_reads(1);
    t = h_tok();
    assert_int_equal(h_recv_pool(loop, r, pool, IOQ_MULTISHOT, t), 0);
    assert_true(plain_write(fw, "", 0));
    h_assert_quiet(loop, 50);
    assert_true(plain_write(fw, "more", 4));
    ioq_cqe c = h_next(loop, t);
    assert_true(c.flags & IOQ_CQE_MORE);
    assert_int_equal(c.result, 4);
    assert_memory_equal(ioq_buf(loop, pool, (uint32_t)c.value), "more", 4);
    assert_int_equal(ioq_buf_release(loop, pool, (uint32_t)c.value), 0);
    /* The real end is still the end. */
    plain_close(fw);
    c = h_next(loop, t);
    assert_false(c.flags & IOQ_CQE_MORE);
    assert_int_equal(c.result, 0);
    h_close_wait(loop, r);
    h_close_wait(loop, pool);
    h_finish(loop);
}

/* Cancel and close while a receive waits on an adopted plain pipe (on Windows: while the
 * worker is blocked in ReadFile): each op completes once, with IOQ_ECANCELED; no data is
 * lost to a cancelled receive; after the close the pipe's read end is really gone. A send
 * blocked on a full pipe ends by cancel and by close too. */
static void test_plain_cancel_close(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint64_t fr, fw;
    ioq_handle r, w;
    char buf[16];
#ifndef _WIN32
    signal(SIGPIPE, SIG_IGN); /* the plain write below is the test's, not ioq's */
#endif
    plain_pipe(&fr, &fw);
    assert_int_equal(ioq_adopt(loop, fr, IOQ_KIND_PIPE, &r), 0);
    uint64_t r1 = h_tok();
    assert_int_equal(h_recv(loop, r, buf, sizeof buf, r1), 0);
    h_assert_quiet(loop, 30); /* the read is blocked by now */
    assert_int_equal(h_cancel(loop, r1, h_tok()), 0);
    wait_ok(loop, r1, IOQ_ECANCELED);
    /* The next receive gets what comes after the cancel. */
    uint64_t r2 = h_tok();
    assert_int_equal(h_recv(loop, r, buf, sizeof buf, r2), 0);
    h_assert_quiet(loop, 20);
    assert_true(plain_write(fw, "after", 5));
    wait_ok(loop, r2, 5);
    assert_memory_equal(buf, "after", 5);
    /* Close with a receive blocked. */
    uint64_t r3 = h_tok();
    assert_int_equal(h_recv(loop, r, buf, sizeof buf, r3), 0);
    h_assert_quiet(loop, 30);
    h_close_wait(loop, r);
    wait_ok(loop, r3, IOQ_ECANCELED);
    /* The read end is closed for real (no blocked call keeps it open): the writer sees
     * the reader gone. */
    assert_false(plain_write(fw, "gone", 4));
    plain_close(fw);
    /* A send blocked on a full pipe: cancelled, then another closed. */
    static char big[1 << 20];
    plain_pipe(&fr, &fw);
    assert_int_equal(ioq_adopt(loop, fw, IOQ_KIND_PIPE, &w), 0);
    uint64_t s1 = h_tok();
    assert_int_equal(h_send(loop, w, big, sizeof big, s1), 0);
    h_assert_quiet(loop, 30);
    assert_int_equal(h_cancel(loop, s1, h_tok()), 0);
    wait_ok(loop, s1, IOQ_ECANCELED);
    uint64_t s2 = h_tok();
    assert_int_equal(h_send(loop, w, big, sizeof big, s2), 0);
    h_assert_quiet(loop, 30);
    h_close_wait(loop, w);
    wait_ok(loop, s2, IOQ_ECANCELED);
    plain_close(fr);
    h_finish(loop);
}

#ifdef _WIN32
static void test_adopt(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    HANDLE hr, hw;
    ioq_handle r, w;
    char buf[8];
    win_pipe(&hr, &hw, FILE_FLAG_OVERLAPPED);
    assert_int_equal(ioq_adopt(loop, (uint64_t)(uintptr_t)hr, IOQ_KIND_PIPE, &r), 0);
    assert_int_equal(ioq_adopt(loop, (uint64_t)(uintptr_t)hw, IOQ_KIND_PIPE, &w), 0);
    h_send_wait(loop, w, "adopted", 7);
    h_recv_exact(loop, r, buf, 7);
    assert_memory_equal(buf, "adopted", 7);
    /* Each end goes one way only (its access rights say which): the other direction is
     * refused at submission. */
    assert_int_equal(ioq_recv(loop, w, buf, sizeof buf, h_tok()), IOQ_EBADHANDLE);
    assert_int_equal(ioq_send(loop, r, "x", 1, h_tok()), IOQ_EBADHANDLE);
    assert_int_equal(ioq_shutdown(loop, r, h_tok()), IOQ_EBADHANDLE);
    ioq_addr a;
    assert_int_equal(ioq_sockname(loop, r, &a), IOQ_ENOTSUP);
    assert_int_equal(ioq_setopt(loop, w, IOQ_OPT_SNDBUF, 4096), IOQ_ENOTSUP);
    /* The end of the stream when the adopted writer goes. */
    h_close_wait(loop, w);
    assert_int_equal(h_recv_once(loop, r, buf, sizeof buf), 0);
    h_close_wait(loop, r);
    assert_false(handle_open(hr));
    assert_false(handle_open(hw));
    /* A client opened without FILE_FLAG_OVERLAPPED is synchronous: served by a worker
     * thread (plain_* cases), beside its overlapped server end on the port. */
    win_pipe(&hr, &hw, 0);
    assert_int_equal(ioq_adopt(loop, (uint64_t)(uintptr_t)hw, IOQ_KIND_PIPE, &w), 0);
    assert_int_equal(ioq_adopt(loop, (uint64_t)(uintptr_t)hr, IOQ_KIND_PIPE, &r), 0);
    h_send_wait(loop, w, "sync", 4);
    h_recv_exact(loop, r, buf, 4);
    assert_memory_equal(buf, "sync", 4);
    h_close_wait(loop, w);
    assert_int_equal(h_recv_once(loop, r, buf, sizeof buf), 0);
    h_close_wait(loop, r);
    assert_false(handle_open(hw));
    /* The NUL device (no overlapped I/O either) ends at once and takes anything, like
     * /dev/null. */
    HANDLE nul = CreateFileA("NUL", GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0,
                             NULL);
    ioq_handle nh;
    assert_true(nul != INVALID_HANDLE_VALUE);
    assert_int_equal(ioq_adopt(loop, (uint64_t)(uintptr_t)nul, IOQ_KIND_PIPE, &nh), 0);
    assert_int_equal(h_recv_once(loop, nh, buf, sizeof buf), 0);
    h_send_wait(loop, nh, "void", 4);
    h_close_wait(loop, nh);
    assert_false(handle_open(nul));
    h_finish(loop);
}
#else
static void test_adopt(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int fds[2];
    ioq_handle r, w;
    char buf[8];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(ioq_adopt(loop, (uint64_t)fds[0], IOQ_KIND_PIPE, &r), 0);
    assert_int_equal(ioq_adopt(loop, (uint64_t)fds[1], IOQ_KIND_PIPE, &w), 0);
    h_send_wait(loop, w, "adopted", 7);
    h_recv_exact(loop, r, buf, 7);
    assert_memory_equal(buf, "adopted", 7);
    /* Each end goes one way only: the other direction is refused at submission. */
    assert_int_equal(ioq_recv(loop, w, buf, sizeof buf, h_tok()), IOQ_EBADHANDLE);
    assert_int_equal(ioq_send(loop, r, "x", 1, h_tok()), IOQ_EBADHANDLE);
    assert_int_equal(ioq_shutdown(loop, r, h_tok()), IOQ_EBADHANDLE);
    /* Not sockets: no addresses, no socket options. */
    ioq_addr a;
    assert_int_equal(ioq_sockname(loop, r, &a), IOQ_ENOTSUP);
    assert_int_equal(ioq_setopt(loop, w, IOQ_OPT_SNDBUF, 4096), IOQ_ENOTSUP);
    /* ioq owns them now: close closes them. */
    h_close_wait(loop, r);
    h_close_wait(loop, w);
    assert_int_equal(fcntl(fds[0], F_GETFD), -1);
    assert_int_equal(fcntl(fds[1], F_GETFD), -1);
    /* A character device that cannot be polled works too: /dev/null ends at once and takes
     * anything. */
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    ioq_handle n;
    assert_int_equal(ioq_adopt(loop, (uint64_t)nul, IOQ_KIND_PIPE, &n), 0);
    assert_int_equal(h_recv_once(loop, n, buf, sizeof buf), 0);
    h_send_wait(loop, n, "void", 4);
    h_close_wait(loop, n);
    /* A FIFO. */
    const char *path = h_path("fifo");
    assert_int_equal(mkfifo(path, 0600), 0);
    int fr = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    int fw = open(path, O_WRONLY | O_CLOEXEC);
    assert_true(fr >= 0 && fw >= 0);
    assert_int_equal(ioq_adopt(loop, (uint64_t)fr, IOQ_KIND_PIPE, &r), 0);
    assert_int_equal(ioq_adopt(loop, (uint64_t)fw, IOQ_KIND_PIPE, &w), 0);
    h_send_wait(loop, w, "fifo", 4);
    h_recv_exact(loop, r, buf, 4);
    assert_memory_equal(buf, "fifo", 4);
    h_close_wait(loop, w);
    assert_int_equal(h_recv_once(loop, r, buf, sizeof buf), 0);
    h_close_wait(loop, r);
    h_finish(loop);
}

#endif

static void test_bad_args(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle p[2] = {0, 0};
    assert_int_equal(ioq_pipe(NULL, 0, p), IOQ_EINVAL);
    assert_int_equal(ioq_pipe(loop, 0, NULL), IOQ_EINVAL);
    assert_int_equal(ioq_pipe(loop, 1, p), IOQ_EINVAL);
    assert_int_equal(p[0], 0);
    /* A regular file is not a pipe; a socket is not a terminal. */
    ioq_handle h = 0;
#ifdef _WIN32
    HANDLE f = CreateFileA(h_path("plain"), GENERIC_READ | GENERIC_WRITE, 0, NULL,
                           CREATE_ALWAYS, FILE_FLAG_OVERLAPPED, NULL);
    assert_true(f != INVALID_HANDLE_VALUE);
    assert_int_equal(ioq_adopt(loop, (uint64_t)(uintptr_t)f, IOQ_KIND_PIPE, &h), IOQ_EINVAL);
    assert_int_equal(ioq_adopt(loop, (uint64_t)(uintptr_t)f, IOQ_KIND_TTY, &h), IOQ_ENOTTY);
    CloseHandle(f);
#else
    int f = open(h_path("plain"), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    assert_int_equal(ioq_adopt(loop, (uint64_t)f, IOQ_KIND_PIPE, &h), IOQ_EINVAL);
    assert_int_equal(ioq_adopt(loop, (uint64_t)f, IOQ_KIND_TTY, &h), IOQ_ENOTTY);
    close(f);
#endif
    assert_int_equal(h, 0);
    assert_int_equal(ioq_pipe(loop, 0, p), 0);
    char buf[4];
    assert_int_equal(ioq_recv(loop, p[0], NULL, 4, h_tok()), IOQ_EINVAL);
    assert_int_equal(ioq_recv(loop, p[0], buf, 0, h_tok()), IOQ_EINVAL);
    assert_int_equal(ioq_send(loop, p[1], NULL, 1, h_tok()), IOQ_EINVAL);
    assert_int_equal(ioq_sendv(loop, p[1], NULL, 1, h_tok()), IOQ_EINVAL);
    /* Stream calls of other kinds are refused on pipes. */
    assert_int_equal(ioq_recvfrom(loop, p[0], buf, 4, NULL, h_tok()), IOQ_EBADHANDLE);
    assert_int_equal(ioq_read(loop, p[0], buf, 4, 0, h_tok()), IOQ_EBADHANDLE);
    assert_int_equal(ioq_accept(loop, p[0], 0, h_tok()), IOQ_EBADHANDLE);
    uint32_t cols, rows;
    assert_int_equal(ioq_tty_get_size(loop, p[0], &cols, &rows), IOQ_EBADHANDLE);
    assert_int_equal(ioq_tty_set_mode(loop, p[1], IOQ_TTY_MODE_RAW), IOQ_EBADHANDLE);
    h_close_wait(loop, p[0]);
    h_close_wait(loop, p[1]);
    assert_int_equal(ioq_send(loop, p[1], "x", 1, h_tok()), IOQ_EBADHANDLE);
    h_finish(loop);
}

#ifdef _WIN32
/* Consoles. The case runs in a pseudo console made with CreatePseudoConsole (wine runs the
 * tests without a console), in which this program runs again with the hidden case
 * tty_console; what it writes to the console comes back through a pipe. */
static HANDLE con_open(const char *name)
{
    return CreateFileA(name, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE,
                       NULL, OPEN_EXISTING, 0, NULL);
}

/* Type one character (a UTF-16 unit) into the console's input. */
static void con_key(HANDLE in, wchar_t c)
{
    INPUT_RECORD ir[2];
    DWORD n = 0;
    memset(ir, 0, sizeof ir);
    for (int i = 0; i < 2; i++) {
        ir[i].EventType = KEY_EVENT;
        ir[i].Event.KeyEvent.bKeyDown = i == 0;
        ir[i].Event.KeyEvent.wRepeatCount = 1;
        ir[i].Event.KeyEvent.uChar.UnicodeChar = c;
        if (c == L'\r')
            ir[i].Event.KeyEvent.wVirtualKeyCode = VK_RETURN; /* line editing looks at it */
    }
    assert_true(WriteConsoleInputW(in, ir, 2, &n));
    assert_int_equal(n, 2);
}

/* Press a key without a character (vk: VK_UP...) with modifiers (SHIFT_PRESSED...),
 * repeated rep times, and let it go. */
static void con_vkey(HANDLE in, WORD vk, DWORD state, WORD rep)
{
    INPUT_RECORD ir[2];
    DWORD n = 0;
    memset(ir, 0, sizeof ir);
    for (int i = 0; i < 2; i++) {
        ir[i].EventType = KEY_EVENT;
        ir[i].Event.KeyEvent.bKeyDown = i == 0;
        ir[i].Event.KeyEvent.wRepeatCount = rep;
        ir[i].Event.KeyEvent.wVirtualKeyCode = vk;
        ir[i].Event.KeyEvent.dwControlKeyState = state;
    }
    assert_true(WriteConsoleInputW(in, ir, 2, &n));
    assert_int_equal(n, 2);
}

/* Raw mode: keys without a character arrive as xterm's escape sequences. */
static void con_vt_keys(ioq_loop *loop, HANDLE ci, ioq_handle tin)
{
    static const struct {
        WORD vk;
        DWORD state;
        const char *seq;
    } keys[] = {
        {VK_UP, 0, "\033[A"},
        {VK_DOWN, 0, "\033[B"},
        {VK_RIGHT, 0, "\033[C"},
        {VK_LEFT, 0, "\033[D"},
        {VK_HOME, 0, "\033[H"},
        {VK_END, 0, "\033[F"},
        {VK_CLEAR, 0, "\033[E"}, /* the keypad's centre without Num Lock */
        {VK_INSERT, 0, "\033[2~"},
        {VK_DELETE, 0, "\033[3~"},
        {VK_PRIOR, 0, "\033[5~"},
        {VK_NEXT, 0, "\033[6~"},
        {VK_F1, 0, "\033OP"},
        {VK_F4, 0, "\033OS"},
        {VK_F5, 0, "\033[15~"},
        {VK_F10, 0, "\033[21~"},
        {VK_F11, 0, "\033[23~"},
        {VK_F12, 0, "\033[24~"},
        {VK_UP, LEFT_CTRL_PRESSED, "\033[1;5A"},
        {VK_LEFT, SHIFT_PRESSED, "\033[1;2D"},
        {VK_HOME, RIGHT_ALT_PRESSED, "\033[1;3H"},
        {VK_DELETE, SHIFT_PRESSED, "\033[3;2~"},
        {VK_NEXT, RIGHT_CTRL_PRESSED | SHIFT_PRESSED, "\033[6;6~"},
        {VK_F1, LEFT_ALT_PRESSED, "\033[1;3P"},
        {VK_F12, SHIFT_PRESSED | LEFT_ALT_PRESSED | LEFT_CTRL_PRESSED, "\033[24;8~"},
        {VK_RIGHT, NUMLOCK_ON | ENHANCED_KEY, "\033[C"}, /* lock keys are no modifiers */
    };
    char buf[32];
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        size_t len = strlen(keys[i].seq);
        con_vkey(ci, keys[i].vk, keys[i].state, 1);
        h_recv_exact(loop, tin, buf, len);
        assert_memory_equal(buf, keys[i].seq, len);
    }
    /* Shift alone brings nothing; a repeated key its sequence as often; a character
     * after them comes as before. */
    con_vkey(ci, VK_SHIFT, SHIFT_PRESSED, 1);
    con_vkey(ci, VK_DOWN, 0, 3);
    con_key(ci, L'q');
    h_recv_exact(loop, tin, buf, 10);
    assert_memory_equal(buf, "\033[B\033[B\033[Bq", 10);
}

#define CON_COLS 91
#define CON_ROWS 27

static void test_tty_console(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    HANDLE ci = con_open("CONIN$"), co = con_open("CONOUT$");
    DWORD before, now;
    ioq_handle tin, tout;
    char buf[16];
    assert_true(ci != INVALID_HANDLE_VALUE && co != INVALID_HANDLE_VALUE);
    assert_true(GetConsoleMode(ci, &before));
    assert_true(before & ENABLE_LINE_INPUT);
    /* Input and output each go one way. */
    assert_int_equal(ioq_adopt(loop, (uint64_t)(uintptr_t)co, IOQ_KIND_TTY, &tout), 0);
    assert_int_equal(ioq_adopt(loop, (uint64_t)(uintptr_t)ci, IOQ_KIND_TTY, &tin), 0);
    assert_int_equal(ioq_recv(loop, tout, buf, sizeof buf, h_tok()), IOQ_EBADHANDLE);
    assert_int_equal(ioq_send(loop, tin, "x", 1, h_tok()), IOQ_EBADHANDLE);
    /* The size of the window, from either handle. */
    uint32_t cols = 0, rows = 0;
    assert_int_equal(ioq_tty_get_size(loop, tout, &cols, &rows), 0);
    assert_int_equal(cols, CON_COLS);
    assert_int_equal(rows, CON_ROWS);
    cols = rows = 0;
    assert_int_equal(ioq_tty_get_size(loop, tin, &cols, &rows), 0);
    assert_int_equal(cols, CON_COLS);
    assert_int_equal(rows, CON_ROWS);
    assert_int_equal(ioq_tty_get_size(loop, tin, NULL, &rows), IOQ_EINVAL);
    assert_int_equal(ioq_tty_set_mode(loop, tin, 7), IOQ_EINVAL);
    /* Raw: no line editing, echo or Ctrl-C processing; a key arrives at once. */
    assert_int_equal(ioq_tty_set_mode(loop, tin, IOQ_TTY_MODE_RAW), 0);
    assert_true(GetConsoleMode(ci, &now));
    assert_false(now & (ENABLE_LINE_INPUT | ENABLE_ECHO_INPUT | ENABLE_PROCESSED_INPUT));
    uint64_t r = h_tok();
    assert_int_equal(h_recv(loop, tin, buf, sizeof buf, r), 0);
    h_assert_quiet(loop, 30);
    con_key(ci, L'k');
    assert_int_equal(h_wait(loop, r).result, 1);
    assert_int_equal(buf[0], 'k');
    /* UTF-16 comes as UTF-8, a surrogate pair as one character. */
    con_key(ci, 0xE9);
    h_recv_exact(loop, tin, buf, 2);
    assert_memory_equal(buf, "\xc3\xa9", 2);
    con_key(ci, 0xD83D);
    con_key(ci, 0xDE00);
    h_recv_exact(loop, tin, buf, 4);
    assert_memory_equal(buf, "\xf0\x9f\x98\x80", 4);
    con_vt_keys(loop, ci, tin);
    /* Cancel while the read blocks: once, IOQ_ECANCELED; the next key is not lost. */
    r = h_tok();
    assert_int_equal(h_recv(loop, tin, buf, sizeof buf, r), 0);
    h_assert_quiet(loop, 30);
    assert_int_equal(h_cancel(loop, r, h_tok()), 0);
    assert_int_equal(h_wait(loop, r).result, IOQ_ECANCELED);
    con_key(ci, L'z');
    h_recv_exact(loop, tin, buf, 1);
    assert_int_equal(buf[0], 'z');
    /* Output, UTF-8 split across sends included (the parent finds it in the output). */
    h_send_wait(loop, tout, "ioq-out-\xc3", 9);
    h_send_wait(loop, tout, "\xa9!\r\n", 4);
    /* Normal puts back the mode from before; the output handle sets the input's mode. */
    assert_int_equal(ioq_tty_set_mode(loop, tin, IOQ_TTY_MODE_NORMAL), 0);
    assert_true(GetConsoleMode(ci, &now));
    assert_int_equal(now, before);
    /* Normal: a line at a time, with its end. */
    r = h_tok();
    assert_int_equal(h_recv(loop, tin, buf, sizeof buf, r), 0);
    con_key(ci, L'a');
    con_key(ci, L'b');
    h_assert_quiet(loop, 30);
    con_key(ci, L'\r');
    assert_int_equal(h_wait(loop, r).result, 4);
    assert_memory_equal(buf, "ab\r\n", 4);
    assert_int_equal(ioq_tty_set_mode(loop, tout, IOQ_TTY_MODE_RAW), 0);
    assert_true(GetConsoleMode(ci, &now));
    assert_false(now & ENABLE_LINE_INPUT);
    assert_int_equal(ioq_tty_set_mode(loop, tout, IOQ_TTY_MODE_NORMAL), 0);
    assert_true(GetConsoleMode(ci, &now));
    assert_int_equal(now, before);
    /* Left raw, the console is put back by the close, which also ends a blocked read. */
    assert_int_equal(ioq_tty_set_mode(loop, tin, IOQ_TTY_MODE_RAW), 0);
    r = h_tok();
    assert_int_equal(h_recv(loop, tin, buf, sizeof buf, r), 0);
    h_assert_quiet(loop, 30);
    h_close_wait(loop, tin);
    assert_int_equal(h_wait(loop, r).result, IOQ_ECANCELED);
    HANDLE ci2 = con_open("CONIN$"); /* ci was ioq's: closed with tin */
    assert_true(GetConsoleMode(ci2, &now));
    assert_int_equal(now, before);
    CloseHandle(ci2);
    h_close_wait(loop, tout);
    h_finish(loop);
}

typedef HRESULT(WINAPI *create_pc_fn)(COORD, HANDLE, HANDLE, DWORD, void **);
typedef void(WINAPI *close_pc_fn)(void *);
#ifndef PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE
#  define PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE 0x00020016
#endif

/* Everything the pseudo console wrote so far, appended to out. */
static void con_drain(HANDLE pipe, char *out, size_t cap, size_t *len)
{
    DWORD avail = 0, n = 0;
    while (PeekNamedPipe(pipe, NULL, 0, NULL, &avail, NULL) && avail > 0) {
        char tmp[4096];
        if (!ReadFile(pipe, tmp, avail < sizeof tmp ? avail : sizeof tmp, &n, NULL) || !n)
            return;
        if (*len + n < cap) {
            memcpy(out + *len, tmp, n);
            *len += n;
            out[*len] = 0;
        }
    }
}

static void test_tty_mode_size(void **state)
{
    /* Always in a pseudo console, even where this process has a console: a known size,
     * and keys typed into it disturb nobody. */
    HMODULE k32 = GetModuleHandleA("kernel32.dll");
    create_pc_fn create = (create_pc_fn)(void (*)(void))GetProcAddress(k32, "CreatePseudoConsole");
    close_pc_fn close_pc = (close_pc_fn)(void (*)(void))GetProcAddress(k32, "ClosePseudoConsole");
    (void)state;
    if (!create || !close_pc) {
        h_skip("no console: this Windows has no CreatePseudoConsole to make one");
        return;
    }
    HANDLE in_r, in_w, out_r, out_w;
    assert_true(CreatePipe(&in_r, &in_w, NULL, 0));
    assert_true(CreatePipe(&out_r, &out_w, NULL, 0));
    void *pc = NULL;
    COORD size = {CON_COLS, CON_ROWS};
    if (create(size, in_r, out_w, 0, &pc) != S_OK) {
        h_skip("no console: CreatePseudoConsole failed");
        return;
    }
    SIZE_T asz = 0;
    InitializeProcThreadAttributeList(NULL, 1, 0, &asz);
    LPPROC_THREAD_ATTRIBUTE_LIST al = malloc(asz);
    assert_non_null(al);
    assert_true(InitializeProcThreadAttributeList(al, 1, 0, &asz));
    assert_true(UpdateProcThreadAttribute(al, 0, PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE, pc,
                                          sizeof pc, NULL, NULL));
    STARTUPINFOEXW si;
    PROCESS_INFORMATION pi;
    wchar_t self[MAX_PATH], cmd[MAX_PATH + 32];
    memset(&si, 0, sizeof si);
    si.StartupInfo.cb = sizeof si;
    si.lpAttributeList = al;
    assert_true(GetModuleFileNameW(NULL, self, MAX_PATH) > 0);
    _snwprintf(cmd, sizeof cmd / sizeof cmd[0], L"\"%ls\" tty_console", self);
    cmd[sizeof cmd / sizeof cmd[0] - 1] = 0;
    assert_true(CreateProcessW(NULL, cmd, NULL, NULL, FALSE, EXTENDED_STARTUPINFO_PRESENT, NULL,
                               NULL, &si.StartupInfo, &pi));
    static char out[1 << 16];
    size_t len = 0;
    DWORD code = 1;
    for (int ms = 0; ms < 60000; ms += 10) {
        con_drain(out_r, out, sizeof out, &len);
        if (WaitForSingleObject(pi.hProcess, 10) == WAIT_OBJECT_0)
            break;
    }
    con_drain(out_r, out, sizeof out, &len);
    assert_true(GetExitCodeProcess(pi.hProcess, &code));
    if (code != 0) {
        for (size_t i = 0; i < len; i++)
            if (out[i] == 27)
                out[i] = '^'; /* the escape sequences, readable */
        fail_msg("the case in the pseudo console ended with %lu; its output:\n%s",
                 (unsigned long)code, out);
    }
    /* The bytes sent reached the console: the pseudo console writes them back as UTF-8
     * (with cursor escapes between the two sends). */
    assert_non_null(strstr(out, "ioq-out-"));
    assert_non_null(strstr(out, "\xc3\xa9!"));
    CloseHandle(pi.hThread);
    CloseHandle(pi.hProcess);
    CloseHandle(out_r); /* so that closing the pseudo console never waits for a reader */
    close_pc(pc);
    DeleteProcThreadAttributeList(al);
    free(al);
    CloseHandle(in_r);
    CloseHandle(in_w);
    CloseHandle(out_w);
}
#else
/* A pseudo-terminal: the slave is the terminal ioq adopts, the master plays the user. */
static int open_pty(int *master)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) {
        if (m >= 0)
            close(m);
        return -1;
    }
    int s = open(ptsname(m), O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) {
        close(m);
        return -1;
    }
    *master = m;
    return s;
}

static void test_tty_mode_size(void **state)
{
    (void)state;
    int m, s = open_pty(&m);
    if (s < 0) {
        h_skip("no pseudo-terminal here");
        return;
    }
    ioq_loop *loop = h_loop_new();
    struct winsize ws = {.ws_row = 33, .ws_col = 101};
    assert_int_equal(ioctl(m, TIOCSWINSZ, &ws), 0);
    ioq_handle t;
    assert_int_equal(ioq_adopt(loop, (uint64_t)s, IOQ_KIND_TTY, &t), 0);
    uint32_t cols = 0, rows = 0;
    assert_int_equal(ioq_tty_get_size(loop, t, &cols, &rows), 0);
    assert_int_equal(cols, 101);
    assert_int_equal(rows, 33);
    assert_int_equal(ioq_tty_get_size(loop, t, NULL, &rows), IOQ_EINVAL);
    assert_int_equal(ioq_tty_set_mode(loop, t, 7), IOQ_EINVAL);
    struct termios before, now;
    assert_int_equal(tcgetattr(s, &before), 0);
    assert_true(before.c_lflag & ICANON);
    assert_int_equal(ioq_tty_set_mode(loop, t, IOQ_TTY_MODE_RAW), 0);
    assert_int_equal(tcgetattr(s, &now), 0);
    assert_false(now.c_lflag & (ICANON | ECHO | ISIG));
    /* Raw: a key arrives at once, without a newline. */
    char buf[16];
    uint64_t r = h_tok();
    assert_int_equal(h_recv(loop, t, buf, sizeof buf, r), 0);
    assert_int_equal(write(m, "k", 1), 1);
    ioq_cqe c = h_wait(loop, r);
    assert_int_equal(c.result, 1);
    assert_int_equal(buf[0], 'k');
    /* Output reaches the master. */
    h_send_wait(loop, t, "out", 3);
    size_t got = 0;
    while (got < 3) {
        ssize_t n = read(m, buf + got, sizeof buf - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_memory_equal(buf, "out", 3);
    assert_int_equal(ioq_tty_set_mode(loop, t, IOQ_TTY_MODE_NORMAL), 0);
    assert_int_equal(tcgetattr(s, &now), 0);
    assert_int_equal(now.c_lflag, before.c_lflag);
    assert_int_equal(now.c_iflag, before.c_iflag);
    /* Left raw, a terminal is put back as it was by its close. */
    int s2 = dup(s);
    assert_int_equal(ioq_tty_set_mode(loop, t, IOQ_TTY_MODE_RAW), 0);
    h_close_wait(loop, t);
    assert_int_equal(tcgetattr(s2, &now), 0);
    assert_true(now.c_lflag & ICANON);
    close(s2);
    close(m);
    h_finish(loop);
}

#endif

static void test_enotty(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle h = 0;
#ifdef _WIN32
    HANDLE hr, hw;
    win_pipe(&hr, &hw, FILE_FLAG_OVERLAPPED);
    /* A pipe is no terminal: refused, and left with the caller. */
    assert_int_equal(ioq_adopt(loop, (uint64_t)(uintptr_t)hr, IOQ_KIND_TTY, &h), IOQ_ENOTTY);
    assert_int_equal(h, 0);
    assert_true(handle_open(hr));
    /* As a pipe it is fine, but the terminal calls are not for it. */
    assert_int_equal(ioq_adopt(loop, (uint64_t)(uintptr_t)hr, IOQ_KIND_PIPE, &h), 0);
    assert_int_equal(ioq_tty_set_mode(loop, h, IOQ_TTY_MODE_RAW), IOQ_EBADHANDLE);
    h_close_wait(loop, h);
    CloseHandle(hw);
#else
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    /* A pipe is no terminal: refused, and left with the caller. */
    assert_int_equal(ioq_adopt(loop, (uint64_t)fds[0], IOQ_KIND_TTY, &h), IOQ_ENOTTY);
    assert_int_equal(h, 0);
    assert_int_not_equal(fcntl(fds[0], F_GETFD), -1);
    /* As a pipe it is fine, but the terminal calls are not for it. */
    assert_int_equal(ioq_adopt(loop, (uint64_t)fds[0], IOQ_KIND_PIPE, &h), 0);
    assert_int_equal(ioq_tty_set_mode(loop, h, IOQ_TTY_MODE_RAW), IOQ_EBADHANDLE);
    h_close_wait(loop, h);
    close(fds[1]);
#endif
    h_finish(loop);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest group[] = {
        H_TEST(both_ways),    H_TEST(eof),        H_TEST(epipe),
        H_TEST(cancel_close), H_TEST(big_order),  H_TEST(recv_pool),
        H_TEST(recv_pool_empty), H_TEST(shutdown_ring_slots),
        H_TEST(adopt),        H_TEST(bad_args),   H_TEST(tty_mode_size),
        H_TEST(enotty),       H_TEST(plain_both_ways), H_TEST(plain_eof_epipe),
        H_TEST(plain_cancel_close), H_TEST(plain_zero_write),
#ifdef _WIN32
        /* Not a case of its own: test_tty_mode_size runs it inside a pseudo console. */
        cmocka_unit_test_setup_teardown(test_tty_console, h_setup, h_teardown),
#endif
    };
    return h_main(argc, argv, "pipe", group, sizeof group / sizeof group[0]);
}
