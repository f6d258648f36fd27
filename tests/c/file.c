/* Files: open, positional read/write, fsync, errors, a 1 MiB copy. */
#include "harness.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static ioq_handle open_ok(ioq_loop *loop, const char *path, uint32_t flags, uint32_t mode)
{
    uint64_t t = h_tok();
    assert_int_equal(h_open(loop, path, flags, mode, t), 0);
    ioq_cqe c = h_wait(loop, t);
    if (c.result != 0)
        fail_msg("open %s: %lld (%s)", path, (long long)c.result, ioq_errname(c.result));
    assert_int_not_equal(c.value, 0);
    return c.value;
}

static int64_t open_err(ioq_loop *loop, const char *path, uint32_t flags, uint32_t mode)
{
    uint64_t t = h_tok();
    int rc = h_open(loop, path, flags, mode, t);
    if (rc != 0)
        return rc;
    ioq_cqe c = h_wait(loop, t);
    assert_int_equal(c.value, 0);
    return c.result;
}

static void test_write_read(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    const char *path = h_path("data");
    ioq_handle f = open_ok(loop, path, IOQ_OPEN_READ | IOQ_OPEN_WRITE | IOQ_OPEN_CREATE, 0600);
    assert_int_equal(h_write(loop, f, "hello world", 11, 0, 1), 0);
    assert_int_equal(h_wait(loop, 1).result, 11);
    assert_int_equal(h_fsync(loop, f, 2), 0);
    assert_int_equal(h_wait(loop, 2).result, 0);
    char buf[32];
    memset(buf, 0, sizeof buf);
    assert_int_equal(h_read(loop, f, buf, sizeof buf, 0, 3), 0);
    assert_int_equal(h_wait(loop, 3).result, 11);
    assert_string_equal(buf, "hello world");
    /* Reads at offsets. */
    memset(buf, 0, sizeof buf);
    assert_int_equal(h_read(loop, f, buf, 5, 6, 4), 0);
    assert_int_equal(h_wait(loop, 4).result, 5);
    assert_string_equal(buf, "world");
    /* Writes at offsets, including past the end (a hole). */
    assert_int_equal(h_write(loop, f, "W", 1, 6, 5), 0);
    assert_int_equal(h_wait(loop, 5).result, 1);
    assert_int_equal(h_write(loop, f, "!", 1, 20, 6), 0);
    assert_int_equal(h_wait(loop, 6).result, 1);
    memset(buf, 'z', sizeof buf);
    assert_int_equal(h_read(loop, f, buf, sizeof buf, 0, 7), 0);
    assert_int_equal(h_wait(loop, 7).result, 21);
    assert_memory_equal(buf, "hello World\0\0\0\0\0\0\0\0\0!", 21);
    /* End of file reads 0, at the end and far beyond it. */
    assert_int_equal(h_read(loop, f, buf, sizeof buf, 21, 8), 0);
    assert_int_equal(h_wait(loop, 8).result, 0);
    assert_int_equal(h_read(loop, f, buf, sizeof buf, 1u << 30, 9), 0);
    assert_int_equal(h_wait(loop, 9).result, 0);
    h_close_wait(loop, f);
    /* The mode was used for the new file and the data is on disk. */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
#ifndef _WIN32 /* Windows keeps only a read-only bit */
    assert_int_equal(st.st_mode & 0777, 0600 & ~0);
#endif
    assert_int_equal(st.st_size, 21);
    h_finish(loop);
}

static void test_open_errors(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    assert_int_equal(open_err(loop, h_path("missing"), IOQ_OPEN_READ, 0), IOQ_ENOENT);
    assert_int_equal(open_err(loop, h_path("nodir/x"), IOQ_OPEN_WRITE | IOQ_OPEN_CREATE,
                              0644), IOQ_ENOENT);
    ioq_handle f = open_ok(loop, h_path("exists"), IOQ_OPEN_WRITE | IOQ_OPEN_CREATE, 0644);
    h_close_wait(loop, f);
    assert_int_equal(open_err(loop, h_path("exists"),
                              IOQ_OPEN_WRITE | IOQ_OPEN_CREATE | IOQ_OPEN_EXCL, 0644),
                     IOQ_EEXIST);
    assert_int_equal(open_err(loop, h_tmpdir(), IOQ_OPEN_WRITE, 0), IOQ_EISDIR);
    assert_int_equal(open_err(loop, h_path("exists/below"), IOQ_OPEN_READ, 0), IOQ_ENOTDIR);
    if (geteuid() != 0) {
        chmod(h_path("exists"), 0);
        assert_int_equal(open_err(loop, h_path("exists"), IOQ_OPEN_READ, 0), IOQ_EACCES);
    }
    h_finish(loop);
}

static void test_read_only_handle(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    const char *path = h_path("ro");
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("abc", fp);
    fclose(fp);
    ioq_handle f = open_ok(loop, path, IOQ_OPEN_READ, 0);
    char buf[4];
    assert_int_equal(h_read(loop, f, buf, 3, 0, 1), 0);
    assert_int_equal(h_wait(loop, 1).result, 3);
    assert_memory_equal(buf, "abc", 3);
    /* Writing through a read-only handle fails (at submission or completion). */
    uint64_t t = h_tok();
    int rc = h_write(loop, f, "x", 1, 0, t);
    int64_t r = rc == 0 ? h_wait(loop, t).result : rc;
    assert_true(r < 0);
    h_close_wait(loop, f);
    h_finish(loop);
}

static void test_trunc_append(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    const char *path = h_path("ta");
    ioq_handle f = open_ok(loop, path, IOQ_OPEN_WRITE | IOQ_OPEN_CREATE, 0644);
    assert_int_equal(h_write(loop, f, "0123456789", 10, 0, 1), 0);
    assert_int_equal(h_wait(loop, 1).result, 10);
    h_close_wait(loop, f);
    f = open_ok(loop, path, IOQ_OPEN_WRITE | IOQ_OPEN_TRUNC, 0);
    assert_int_equal(h_write(loop, f, "ab", 2, 0, 2), 0);
    assert_int_equal(h_wait(loop, 2).result, 2);
    h_close_wait(loop, f);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 2);
    f = open_ok(loop, path, IOQ_OPEN_WRITE | IOQ_OPEN_APPEND, 0);
    assert_int_equal(h_write(loop, f, "cd", 2, 0, 3), 0);
    assert_int_equal(h_wait(loop, 3).result, 2);
    h_close_wait(loop, f);
    f = open_ok(loop, path, IOQ_OPEN_READ, 0);
    char buf[8];
    assert_int_equal(h_read(loop, f, buf, sizeof buf, 0, 4), 0);
    assert_int_equal(h_wait(loop, 4).result, 4);
    assert_memory_equal(buf, "abcd", 4);
    h_close_wait(loop, f);
    h_finish(loop);
}

static void test_copy_1mib(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    size_t size = 1u << 20, chunk = 64 * 1024;
    char *data = malloc(size);
    assert_non_null(data);
    h_fill(data, size, 77, 0);
    ioq_handle src = open_ok(loop, h_path("src"), IOQ_OPEN_READ | IOQ_OPEN_WRITE |
                             IOQ_OPEN_CREATE, 0644);
    /* Write the source with all chunks in flight at once. */
    for (size_t off = 0; off < size; off += chunk)
        assert_int_equal(h_write(loop, src, data + off, chunk, off, 1000 + off / chunk), 0);
    for (size_t off = 0; off < size; off += chunk)
        assert_int_equal(h_wait(loop, 1000 + off / chunk).result, (int64_t)chunk);
    ioq_handle dst = open_ok(loop, h_path("dst"), IOQ_OPEN_READ | IOQ_OPEN_WRITE |
                             IOQ_OPEN_CREATE | IOQ_OPEN_EXCL, 0644);
    char *buf = malloc(chunk);
    assert_non_null(buf);
    uint64_t off = 0;
    for (;;) {
        uint64_t t = h_tok();
        assert_int_equal(h_read(loop, src, buf, chunk, off, t), 0);
        int64_t n = h_wait(loop, t).result;
        assert_true(n >= 0);
        if (n == 0)
            break;
        t = h_tok();
        assert_int_equal(h_write(loop, dst, buf, (size_t)n, off, t), 0);
        assert_int_equal(h_wait(loop, t).result, n);
        off += (uint64_t)n;
    }
    assert_int_equal(off, size);
    assert_int_equal(h_fsync(loop, dst, 1), 0);
    assert_int_equal(h_wait(loop, 1).result, 0);
    char *back = malloc(size);
    assert_non_null(back);
    uint64_t t = h_tok();
    assert_int_equal(h_read(loop, dst, back, size, 0, t), 0);
    assert_int_equal(h_wait(loop, t).result, (int64_t)size);
    assert_memory_equal(back, data, size);
    h_close_wait(loop, src);
    h_close_wait(loop, dst);
    free(data);
    free(buf);
    free(back);
    h_finish(loop);
}

static void test_close_many(void **state)
{
    (void)state;
    /* Open and close many files concurrently: every close completes, nothing leaks. */
    ioq_loop *loop = h_loop_new();
    enum { N = 64 };
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", i);
        assert_int_equal(h_open(loop, h_path(name), IOQ_OPEN_WRITE | IOQ_OPEN_CREATE, 0644,
                                100 + i), 0);
    }
    ioq_handle hs[N];
    for (int i = 0; i < N; i++) {
        ioq_cqe c = h_wait(loop, 100 + i);
        assert_int_equal(c.result, 0);
        hs[i] = c.value;
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(h_close(loop, hs[i], 200 + i), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(h_wait(loop, 200 + i).result, 0);
    h_finish(loop);
}

static void test_bad_offset(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle f = open_ok(loop, h_path("o"), IOQ_OPEN_READ | IOQ_OPEN_WRITE | IOQ_OPEN_CREATE,
                           0644);
    /* An offset whose end does not fit a file offset: refused, never a wrapped write. */
    uint64_t t = h_tok();
    int rc = h_write(loop, f, "x", 1, UINT64_MAX, t);
    int64_t r = rc == 0 ? h_wait(loop, t).result : rc;
    assert_true(r == IOQ_EINVAL || r == IOQ_EFBIG);
    t = h_tok();
    char buf[4];
    rc = h_read(loop, f, buf, 1, UINT64_MAX, t);
    r = rc == 0 ? h_wait(loop, t).result : rc;
    assert_true(r == IOQ_EINVAL || r == 0);
    struct stat st;
    assert_int_equal(stat(h_path("o"), &st), 0);
    assert_int_equal(st.st_size, 0);
    h_close_wait(loop, f);
    h_finish(loop);
}

static void test_close_pending(void **state)
{
    (void)state;
    /* Closing a file with writes in flight: each completes (its result or ECANCELED)
     * before the close's own completion. */
    ioq_loop *loop = h_loop_new();
    ioq_handle f = open_ok(loop, h_path("c"), IOQ_OPEN_WRITE | IOQ_OPEN_CREATE, 0644);
    size_t len = 1 << 20;
    char *buf = malloc(len);
    assert_non_null(buf);
    memset(buf, 9, len);
    for (int i = 0; i < 16; i++)
        assert_int_equal(h_write(loop, f, buf, len, (uint64_t)i * len, 10 + i), 0);
    assert_int_equal(h_close(loop, f, 99), 0);
    int seen = 0;
    for (;;) {
        ioq_cqe c = h_next_any(loop);
        if (c.token == 99) {
            assert_int_equal(c.result, 0);
            break;
        }
        assert_true(c.token >= 10 && c.token < 26);
        assert_true(c.result == (int64_t)len || c.result == IOQ_ECANCELED);
        seen++;
    }
    assert_int_equal(seen, 16);
    free(buf);
    h_finish(loop);
}

static void test_many_small_writes(void **state)
{
    (void)state;
    /* 8192 writes in flight, their completions left unpolled for a while (more than a
     * completion ring holds): none may be lost. */
    ioq_loop *loop = h_loop_new();
    enum { N = 8192, SZ = 16 };
    ioq_handle f = open_ok(loop, h_path("w"), IOQ_OPEN_READ | IOQ_OPEN_WRITE | IOQ_OPEN_CREATE,
                           0644);
    char *data = malloc((size_t)N * SZ);
    assert_non_null(data);
    h_fill(data, (size_t)N * SZ, 123, 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(h_write(loop, f, data + (size_t)i * SZ, SZ, (uint64_t)i * SZ,
                                 100000 + (uint64_t)i), 0);
    assert_int_equal(ioq_submit(loop), 0);
    uint64_t m0 = h_mono_ns();
    while (h_mono_ns() - m0 < 200 * 1000000ull)
        ; /* let the kernel or the thread pool finish everything before the first poll */
    int seen = 0;
    uint64_t end = h_mono_ns() + (uint64_t)H_DEADLINE_MS * 1000000ull;
    while (seen < N) {
        if (h_mono_ns() > end)
            fail_msg("%d of %d writes completed", seen, N);
        ioq_cqe c[512];
        int n = h_poll_into(loop, c, 512, 100 * 1000000ll);
        for (int i = 0; i < n; i++)
            assert_int_equal(c[i].result, SZ);
        seen += n;
    }
    char *back = malloc((size_t)N * SZ);
    assert_non_null(back);
    uint64_t t = h_tok();
    assert_int_equal(h_read(loop, f, back, (size_t)N * SZ, 0, t), 0);
    assert_int_equal(h_wait(loop, t).result, (int64_t)N * SZ);
    assert_memory_equal(back, data, (size_t)N * SZ);
    free(data);
    free(back);
    h_close_wait(loop, f);
    h_finish(loop);
}

static const struct CMUnitTest file_tests[] = {
    H_TEST(write_read),
    H_TEST(open_errors),
    H_TEST(read_only_handle),
    H_TEST(trunc_append),
    H_TEST(copy_1mib),
    H_TEST(close_many),
    H_TEST(bad_offset),
    H_TEST(close_pending),
    H_TEST(many_small_writes),
};

H_MAIN(file_tests)
