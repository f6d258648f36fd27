/* Provided-buffer pools and ioq_recv_pool. */
#include "harness.h"
#include "internal.h"

#include <pthread.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void test_new_bounds(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle p = 0;
    assert_int_equal(ioq_pool_new(loop, 0, 16, &p), IOQ_EINVAL);
    assert_int_equal(ioq_pool_new(loop, 32769, 16, &p), IOQ_EINVAL);
    assert_int_equal(ioq_pool_new(loop, UINT32_MAX, 16, &p), IOQ_EINVAL);
    assert_int_equal(ioq_pool_new(loop, 4, 0, &p), IOQ_EINVAL);
    assert_int_equal(ioq_pool_new(loop, 1, (uint32_t)IOQ_MAX_LEN + 1, &p), IOQ_EINVAL);
    assert_int_equal(ioq_pool_new(loop, 1, UINT32_MAX, &p), IOQ_EINVAL);
    /* count * size above 1 GiB. */
    assert_int_equal(ioq_pool_new(loop, 32768, 65536, &p), IOQ_EINVAL);
    assert_int_equal(ioq_pool_new(loop, 16385, 65536, &p), IOQ_EINVAL);
    assert_int_equal(p, 0);
    ioq_handle a, b;
    assert_int_equal(ioq_pool_new(loop, 1, 1, &a), 0);
    assert_int_equal(ioq_pool_new(loop, 32768, 1, &b), 0);
    assert_int_not_equal(a, 0);
    assert_int_not_equal(b, 0);
    assert_int_not_equal(a, b);
    assert_non_null(ioq_buf(loop, b, 32767));
    assert_null(ioq_buf(loop, b, 32768));
    /* Buffers are distinct memory. */
    assert_ptr_not_equal(ioq_buf(loop, b, 0), ioq_buf(loop, b, 1));
    h_close_wait(loop, a);
    h_close_wait(loop, b);
    h_finish(loop);
}

static void test_single(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s, pool;
    h_pair(loop, &c, &s);
    assert_int_equal(ioq_pool_new(loop, 4, 64, &pool), 0);
    assert_int_equal(h_recv_pool(loop, s, pool, 0, 1), 0);
    h_assert_quiet(loop, 20);
    h_send_wait(loop, c, "pooled data", 11);
    ioq_cqe r = h_wait(loop, 1);
    assert_int_equal(r.result, 11);
    assert_int_equal(r.flags, IOQ_CQE_BUFFER);
    assert_true(r.value < 4);
    const char *p = ioq_buf(loop, pool, (uint32_t)r.value);
    assert_non_null(p);
    assert_memory_equal(p, "pooled data", 11);
    assert_int_equal(ioq_buf_release(loop, pool, (uint32_t)r.value), 0);
    /* A message longer than a buffer arrives in buffer-sized pieces. */
    char big[200];
    h_fill(big, sizeof big, 1, 0);
    h_send_wait(loop, c, big, sizeof big);
    size_t got = 0;
    char back[200];
    while (got < sizeof big) {
        uint64_t t = h_tok();
        assert_int_equal(h_recv_pool(loop, s, pool, 0, t), 0);
        r = h_wait(loop, t);
        assert_true(r.result > 0 && r.result <= 64);
        assert_true(r.flags & IOQ_CQE_BUFFER);
        memcpy(back + got, ioq_buf(loop, pool, (uint32_t)r.value), (size_t)r.result);
        got += (size_t)r.result;
        assert_int_equal(ioq_buf_release(loop, pool, (uint32_t)r.value), 0);
    }
    assert_memory_equal(back, big, sizeof big);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_close_wait(loop, pool);
    h_finish(loop);
}

static void test_multishot(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s, pool;
    h_pair(loop, &c, &s);
    assert_int_equal(ioq_pool_new(loop, 8, 64, &pool), 0);
    assert_int_equal(h_recv_pool(loop, s, pool, IOQ_MULTISHOT, 1), 0);
    uint32_t held[5];
    for (int i = 0; i < 5; i++) {
        char msg[8];
        int n = snprintf(msg, sizeof msg, "msg%d", i);
        h_send_wait(loop, c, msg, (size_t)n);
        ioq_cqe r = h_next(loop, 1);
        assert_int_equal(r.result, n);
        assert_int_equal(r.flags, IOQ_CQE_MORE | IOQ_CQE_BUFFER);
        assert_true(r.value < 8);
        held[i] = (uint32_t)r.value;
        for (int j = 0; j < i; j++)
            assert_int_not_equal(held[i], held[j]); /* all still held by us */
        assert_memory_equal(ioq_buf(loop, pool, held[i]), msg, (size_t)n);
    }
    uint64_t ct = h_tok();
    assert_int_equal(h_cancel(loop, 1, ct), 0);
    ioq_cqe fin = h_wait(loop, 1);
    assert_int_equal(fin.result, IOQ_ECANCELED);
    assert_int_equal(fin.flags, 0);
    assert_int_equal(h_wait(loop, ct).result, 1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ioq_buf_release(loop, pool, held[i]), 0);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_close_wait(loop, pool);
    h_finish(loop);
}

static void test_multishot_stream(void **state)
{
    (void)state;
    /* 1 MiB through a multishot receive into a small pool, released as we go. */
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s, pool;
    h_pair(loop, &c, &s);
    assert_int_equal(ioq_pool_new(loop, 16, 4096, &pool), 0);
    size_t len = 1u << 20;
    char *src = malloc(len), *dst = malloc(len);
    assert_non_null(src);
    assert_non_null(dst);
    h_fill(src, len, 8, 0);
    uint64_t rt = h_tok();
    assert_int_equal(h_recv_pool(loop, s, pool, IOQ_MULTISHOT, rt), 0);
    assert_int_equal(h_send(loop, c, src, len, 2), 0);
    assert_int_equal(h_shutdown(loop, c, 3), 0);
    size_t got = 0;
    int ended = 0, enobufs = 0;
    while (!ended) {
        ioq_cqe r = h_next(loop, rt);
        if (r.result == IOQ_ENOBUFS) {
            /* The pool ran dry before we polled (buffers of completions not yet polled
             * are ours already): the receive ended, no data was lost; submit again. */
            assert_int_equal(r.flags, 0);
            enobufs++;
            assert_true(enobufs < 100000);
            rt = h_tok();
            assert_int_equal(h_recv_pool(loop, s, pool, IOQ_MULTISHOT, rt), 0);
            continue;
        }
        assert_true(r.result >= 0);
        if (r.result == 0) {
            assert_int_equal(r.flags, 0);
            ended = 1;
            break;
        }
        assert_true(r.flags & IOQ_CQE_BUFFER);
        assert_true(got + (size_t)r.result <= len);
        memcpy(dst + got, ioq_buf(loop, pool, (uint32_t)r.value), (size_t)r.result);
        got += (size_t)r.result;
        assert_int_equal(ioq_buf_release(loop, pool, (uint32_t)r.value), 0);
        if (!(r.flags & IOQ_CQE_MORE))
            fail_msg("multishot ended with data and no error");
    }
    assert_int_equal(got, len);
    assert_memory_equal(dst, src, len);
    print_message("pool ran dry %d times\n", enobufs);
    assert_int_equal(h_wait(loop, 2).result, (int64_t)len);
    assert_int_equal(h_wait(loop, 3).result, 0);
    free(src);
    free(dst);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_close_wait(loop, pool);
    h_finish(loop);
}

static void test_empty_single(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s, pool;
    h_pair(loop, &c, &s);
    assert_int_equal(ioq_pool_new(loop, 1, 8, &pool), 0);
    h_send_wait(loop, c, "AAAAAAAA", 8);
    assert_int_equal(h_recv_pool(loop, s, pool, 0, 1), 0);
    ioq_cqe r = h_wait(loop, 1);
    assert_int_equal(r.result, 8);
    assert_int_equal(r.value, 0);
    /* Keep the only buffer: the next data finds the pool empty. */
    h_send_wait(loop, c, "BBBB", 4);
    assert_int_equal(h_recv_pool(loop, s, pool, 0, 2), 0);
    r = h_wait(loop, 2);
    assert_int_equal(r.result, IOQ_ENOBUFS);
    assert_int_equal(r.flags, 0);
    assert_memory_equal(ioq_buf(loop, pool, 0), "AAAAAAAA", 8);
    assert_int_equal(ioq_buf_release(loop, pool, 0), 0);
    /* No data was lost. */
    assert_int_equal(h_recv_pool(loop, s, pool, 0, 3), 0);
    r = h_wait(loop, 3);
    assert_int_equal(r.result, 4);
    assert_memory_equal(ioq_buf(loop, pool, (uint32_t)r.value), "BBBB", 4);
    assert_int_equal(ioq_buf_release(loop, pool, (uint32_t)r.value), 0);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_close_wait(loop, pool);
    h_finish(loop);
}

static void test_empty_multishot(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s, pool;
    h_pair(loop, &c, &s);
    assert_int_equal(ioq_pool_new(loop, 2, 16, &pool), 0);
    assert_int_equal(h_recv_pool(loop, s, pool, IOQ_MULTISHOT, 1), 0);
    char sent[48];
    h_fill(sent, sizeof sent, 4, 0);
    char got[48];
    size_t n = 0;
    uint32_t held[2];
    for (int i = 0; i < 2; i++) {
        h_send_wait(loop, c, sent + 16 * i, 16);
        ioq_cqe r = h_next(loop, 1);
        assert_int_equal(r.result, 16);
        assert_int_equal(r.flags, IOQ_CQE_MORE | IOQ_CQE_BUFFER);
        held[i] = (uint32_t)r.value;
        memcpy(got + n, ioq_buf(loop, pool, held[i]), 16);
        n += 16;
    }
    h_send_wait(loop, c, sent + 32, 16);
    ioq_cqe r = h_next(loop, 1);
    assert_int_equal(r.result, IOQ_ENOBUFS);
    assert_int_equal(r.flags, 0); /* the operation ended */
    assert_true(h_done(loop, 1));
    assert_int_equal(ioq_buf_release(loop, pool, held[0]), 0);
    assert_int_equal(ioq_buf_release(loop, pool, held[1]), 0);
    assert_int_equal(h_recv_pool(loop, s, pool, 0, 2), 0);
    r = h_wait(loop, 2);
    assert_int_equal(r.result, 16);
    memcpy(got + n, ioq_buf(loop, pool, (uint32_t)r.value), 16);
    assert_memory_equal(got, sent, sizeof sent);
    assert_int_equal(ioq_buf_release(loop, pool, (uint32_t)r.value), 0);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_close_wait(loop, pool);
    h_finish(loop);
}

static void test_eof(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s, pool;
    h_pair(loop, &c, &s);
    assert_int_equal(ioq_pool_new(loop, 2, 16, &pool), 0);
    assert_int_equal(h_recv_pool(loop, s, pool, 0, 1), 0);
    assert_int_equal(h_shutdown(loop, c, 2), 0);
    assert_int_equal(h_wait(loop, 2).result, 0);
    ioq_cqe r = h_wait(loop, 1);
    assert_int_equal(r.result, 0);
    assert_int_equal(r.flags, 0);
    assert_int_equal(r.value, 0);
    /* Multishot ends with a final result 0 at EOF. */
    assert_int_equal(h_recv_pool(loop, s, pool, IOQ_MULTISHOT, 3), 0);
    r = h_wait(loop, 3);
    assert_int_equal(r.result, 0);
    assert_int_equal(r.flags, 0);
    /* Both buffers are still free: a caller-held id would be releasable. */
    assert_int_equal(ioq_buf_release(loop, pool, 0), IOQ_EINVAL);
    assert_int_equal(ioq_buf_release(loop, pool, 1), IOQ_EINVAL);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_close_wait(loop, pool);
    h_finish(loop);
}

static void test_close_busy(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s, pool;
    h_pair(loop, &c, &s);
    assert_int_equal(ioq_pool_new(loop, 2, 16, &pool), 0);
    assert_int_equal(h_recv_pool(loop, s, pool, 0, 1), 0);
    h_poll(loop, 0);
    assert_int_equal(ioq_close(loop, pool, 2), IOQ_EBUSY);
    /* The pool is still alive and in use. */
    assert_non_null(ioq_buf(loop, pool, 0));
    h_send_wait(loop, c, "x", 1);
    ioq_cqe r = h_wait(loop, 1);
    assert_int_equal(r.result, 1);
    assert_int_equal(ioq_buf_release(loop, pool, (uint32_t)r.value), 0);
    /* A multishot receive keeps it busy until it ends. */
    assert_int_equal(h_recv_pool(loop, s, pool, IOQ_MULTISHOT, 3), 0);
    h_poll(loop, 0);
    assert_int_equal(ioq_close(loop, pool, 4), IOQ_EBUSY);
    assert_int_equal(h_cancel(loop, 3, 5), 0);
    assert_int_equal(h_wait(loop, 3).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, 5).result, 1);
    h_close_wait(loop, pool);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

static void test_close_socket_pending(void **state)
{
    (void)state;
    /* Closing the socket ends a pending receive; then the pool closes fine. */
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s, pool;
    h_pair(loop, &c, &s);
    assert_int_equal(ioq_pool_new(loop, 2, 16, &pool), 0);
    assert_int_equal(h_recv_pool(loop, s, pool, IOQ_MULTISHOT, 1), 0);
    h_poll(loop, 0);
    assert_int_equal(h_close(loop, s, 2), 0);
    ioq_cqe a = h_next_any(loop), b = h_next_any(loop);
    assert_int_equal(a.token, 1);
    assert_int_equal(a.result, IOQ_ECANCELED);
    assert_int_equal(a.flags, 0);
    assert_int_equal(b.token, 2);
    h_close_wait(loop, pool);
    h_close_wait(loop, c);
    h_finish(loop);
}

static void test_close_with_held_buffers(void **state)
{
    (void)state;
    /* Buffers the caller still holds do not keep a pool open; releasing afterwards is a
     * stale-handle error, not a crash. */
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s, pool;
    h_pair(loop, &c, &s);
    assert_int_equal(ioq_pool_new(loop, 2, 16, &pool), 0);
    assert_int_equal(h_recv_pool(loop, s, pool, 0, 1), 0);
    h_send_wait(loop, c, "held", 4);
    ioq_cqe r = h_wait(loop, 1);
    assert_int_equal(r.result, 4);
    h_close_wait(loop, pool);
    assert_int_equal(ioq_buf_release(loop, pool, (uint32_t)r.value), IOQ_EBADHANDLE);
    assert_null(ioq_buf(loop, pool, (uint32_t)r.value));
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

static void test_free_with_multishot(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s, pool;
    h_pair(loop, &c, &s);
    assert_int_equal(ioq_pool_new(loop, 4, 16, &pool), 0);
    assert_int_equal(h_recv_pool(loop, s, pool, IOQ_MULTISHOT, 1), 0);
    h_send_wait(loop, c, "one", 3);
    ioq_cqe r = h_next(loop, 1);
    assert_int_equal(r.flags, IOQ_CQE_MORE | IOQ_CQE_BUFFER);
    /* A held buffer, a pending multishot receive and unsent data: free drops it all. */
    assert_int_equal(h_send(loop, c, "two", 3, 2), 0);
    ioq_loop_free(loop);
    h_forget(loop);
}

static void test_many_connections_one_pool(void **state)
{
    (void)state;
    /* Idle connections hold no buffer: 32 receives pending on a pool of 2. */
    ioq_loop *loop = h_loop_new();
    enum { N = 32 };
    ioq_handle c[N], s[N], pool;
    assert_int_equal(ioq_pool_new(loop, 2, 64, &pool), 0);
    for (int i = 0; i < N; i++) {
        h_pair(loop, &c[i], &s[i]);
        assert_int_equal(h_recv_pool(loop, s[i], pool, 0, 100 + i), 0);
    }
    h_assert_quiet(loop, 20);
    for (int i = 0; i < N; i++) {
        char msg[8];
        int n = snprintf(msg, sizeof msg, "c%d", i);
        h_send_wait(loop, c[i], msg, (size_t)n);
        ioq_cqe r = h_wait(loop, 100 + i);
        assert_int_equal(r.result, n);
        assert_memory_equal(ioq_buf(loop, pool, (uint32_t)r.value), msg, (size_t)n);
        assert_int_equal(ioq_buf_release(loop, pool, (uint32_t)r.value), 0);
    }
    for (int i = 0; i < N; i++) {
        h_close_wait(loop, c[i]);
        h_close_wait(loop, s[i]);
    }
    h_close_wait(loop, pool);
    h_finish(loop);
}

/* A pool whose receives have completed, but whose records ioq_poll has not handed out
 * yet, is still busy: the caller owns buffers it has not seen. */
static void test_close_undelivered(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    ioq_handle lis = h_listen(loop, &port), srv[2], pool;
    int cli[2];
    for (int i = 0; i < 2; i++) {
        uint64_t t = h_tok();
        cli[i] = h_plain_connect(port);
        assert_int_equal(h_accept(loop, lis, 0, t), 0);
        ioq_cqe c = h_wait(loop, t);
        assert_int_equal(c.result, 0);
        srv[i] = c.value;
    }
    assert_int_equal(ioq_pool_new(loop, 2, 16, &pool), 0);
    assert_int_equal(h_recv_pool(loop, srv[0], pool, 0, 100), 0);
    assert_int_equal(h_recv_pool(loop, srv[1], pool, 0, 101), 0);
    assert_int_equal(ioq_submit(loop), 0);
    h_plain_write_all(cli[0], "first", 5);
    h_plain_write_all(cli[1], "other", 5);
    /* With the data there, one poll finishes both receives and hands out one record. */
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ioq_cqe got[2];
    int n = 0;
    for (int tries = 0; n == 0 && tries < 200; tries++)
        n = h_poll_into(loop, got, 1, tries ? 10 * 1000 * 1000 : 0);
    assert_int_equal(n, 1);
    /* The other record waits in the ring (or its receive is still in flight): either way
     * the caller has not seen its buffer, so the pool cannot go. */
    assert_int_equal(ioq_close(loop, pool, h_tok()), IOQ_EBUSY);
    assert_int_equal(h_poll_into(loop, got + 1, 1, 1000 * 1000 * 1000), 1);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(got[i].result, 5);
        assert_int_equal(got[i].flags, IOQ_CQE_BUFFER);
        const char *p = ioq_buf(loop, pool, (uint32_t)got[i].value);
        assert_non_null(p);
        assert_memory_equal(p, got[i].token == 100 ? "first" : "other", 5);
        assert_int_equal(ioq_buf_release(loop, pool, (uint32_t)got[i].value), 0);
    }
    h_close_wait(loop, pool);
    for (int i = 0; i < 2; i++) {
        h_close_wait(loop, srv[i]);
        h_plain_close(cli[i]);
    }
    h_close_wait(loop, lis);
    h_finish(loop);
}

/* An empty pool at submission is no error: the receive waits for data, and a buffer
 * released before the data arrives serves it (single and multishot). */
static void empty_waits(void)
{
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s, pool;
    h_pair(loop, &c, &s);
    assert_int_equal(ioq_pool_new(loop, 1, 16, &pool), 0);
    h_send_wait(loop, c, "held", 4);
    assert_int_equal(h_recv_pool(loop, s, pool, 0, 1), 0);
    ioq_cqe r = h_wait(loop, 1);
    assert_int_equal(r.result, 4);
    uint32_t held = (uint32_t)r.value;
    for (int multi = 0; multi < 2; multi++) {
        uint64_t t = 10 + (uint64_t)multi;
        assert_int_equal(h_recv_pool(loop, s, pool, multi ? IOQ_MULTISHOT : 0, t), 0);
        h_assert_quiet(loop, 50); /* the pool is empty: it waits, no IOQ_ENOBUFS */
        assert_int_equal(ioq_buf_release(loop, pool, held), 0);
        h_assert_quiet(loop, 20);
        h_send_wait(loop, c, multi ? "again" : "later", 5);
        r = h_next(loop, t);
        assert_int_equal(r.result, 5);
        assert_true(r.flags & IOQ_CQE_BUFFER);
        held = (uint32_t)r.value;
        assert_memory_equal(ioq_buf(loop, pool, held), multi ? "again" : "later", 5);
        if (multi) {
            /* Still going, with the only buffer held: more data ends it with ENOBUFS and
             * nothing lost. */
            assert_int_equal(r.flags, IOQ_CQE_BUFFER | IOQ_CQE_MORE);
            h_send_wait(loop, c, "rest", 4);
            r = h_wait(loop, t);
            assert_int_equal(r.result, IOQ_ENOBUFS);
            assert_int_equal(ioq_buf_release(loop, pool, held), 0);
            assert_int_equal(h_recv_pool(loop, s, pool, 0, 20), 0);
            r = h_wait(loop, 20);
            assert_int_equal(r.result, 4);
            assert_memory_equal(ioq_buf(loop, pool, (uint32_t)r.value), "rest", 4);
            assert_int_equal(ioq_buf_release(loop, pool, (uint32_t)r.value), 0);
        } else {
            assert_int_equal(r.flags, IOQ_CQE_BUFFER);
        }
    }
    /* A waiting receive is cancelled like any other. */
    assert_int_equal(h_recv_pool(loop, s, pool, 0, 30), 0);
    h_poll(loop, 0);
    assert_int_equal(h_cancel(loop, 30, 31), 0);
    assert_int_equal(h_wait(loop, 30).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, 31).result, 1);
    h_close_wait(loop, pool);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

static void test_empty_waits(void **state)
{
    (void)state;
    empty_waits();
}

/* A receive waiting on an empty pool sees the end of the stream as 0, not IOQ_ENOBUFS. */
static void test_empty_eof(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s, pool;
    h_pair(loop, &c, &s);
    assert_int_equal(ioq_pool_new(loop, 1, 16, &pool), 0);
    h_send_wait(loop, c, "held", 4);
    assert_int_equal(h_recv_pool(loop, s, pool, 0, 1), 0);
    ioq_cqe r = h_wait(loop, 1);
    assert_int_equal(r.result, 4);
    assert_int_equal(h_recv_pool(loop, s, pool, 0, 2), 0);
    h_assert_quiet(loop, 20);
    assert_int_equal(h_shutdown(loop, c, 3), 0);
    assert_int_equal(h_wait(loop, 3).result, 0);
    assert_int_equal(h_wait(loop, 2).result, 0);
    assert_int_equal(ioq_buf_release(loop, pool, (uint32_t)r.value), 0);
    h_close_wait(loop, pool);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

/* io_uring on kernels without buffer rings (before 5.19) keeps pools in the core, as the
 * readiness backends do: every pool case holds there too. */
static void test_emulated(void **state)
{
    ioq__test_emulate_pools(1);
    ioq_loop *loop = h_loop_new();
    if (strcmp(h_backend(), "io_uring") == 0)
        assert_false(ioq_loop_caps(loop) & IOQ_CAP_PROVIDED_BUFFERS);
    h_finish(loop);
    test_single(state);
    test_multishot(state);
    test_multishot_stream(state);
    test_empty_single(state);
    test_empty_multishot(state);
    test_eof(state);
    test_close_busy(state);
    test_close_socket_pending(state);
    test_close_with_held_buffers(state);
    empty_waits();
    test_empty_eof(state);
    ioq__test_emulate_pools(0);
}

/* Contract rule 6 with a pool: a thread sets up a multishot receive into a pool, polls
 * once (on io_uring that puts it and the pool's buffers in the kernel from that thread) and
 * ends; the test's thread then owns the loop and gets every byte, in order. */
typedef struct {
    ioq_loop *loop;
    ioq_handle c, s, pool;
    uint64_t rt;
} pool_handoff;

static void *pool_handoff_first(void *arg)
{
    pool_handoff *x = arg;
    x->loop = h_loop_new();
    h_pair(x->loop, &x->c, &x->s);
    assert_int_equal(ioq_pool_new(x->loop, 16, 512, &x->pool), 0);
    x->rt = h_tok();
    assert_int_equal(h_recv_pool(x->loop, x->s, x->pool, IOQ_MULTISHOT, x->rt), 0);
    assert_int_equal(h_poll(x->loop, 0), 0);
    return NULL;
}

static void test_thread_handoff(void **state)
{
    (void)state;
    enum { LEN = 64 * 1024 };
    pool_handoff x;
    pthread_t t;
    char *src, *dst;
    size_t got = 0;
    int ended = 0;

    memset(&x, 0, sizeof x);
    assert_int_equal(pthread_create(&t, NULL, pool_handoff_first, &x), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    src = malloc(LEN);
    dst = malloc(LEN);
    assert_non_null(src);
    assert_non_null(dst);
    h_fill(src, LEN, 11, 0);
    assert_int_equal(h_send(x.loop, x.c, src, LEN, 2), 0);
    while (!ended) {
        ioq_cqe r = h_next(x.loop, x.rt);
        if (r.result == IOQ_ENOBUFS) {
            /* The pool ran dry before we polled: submit again (no data was lost). */
            x.rt = h_tok();
            assert_int_equal(h_recv_pool(x.loop, x.s, x.pool, IOQ_MULTISHOT, x.rt), 0);
            continue;
        }
        assert_true(r.result > 0);
        assert_true(r.flags & IOQ_CQE_BUFFER);
        assert_true(got + (size_t)r.result <= LEN);
        memcpy(dst + got, ioq_buf(x.loop, x.pool, (uint32_t)r.value), (size_t)r.result);
        got += (size_t)r.result;
        assert_int_equal(ioq_buf_release(x.loop, x.pool, (uint32_t)r.value), 0);
        assert_true(r.flags & IOQ_CQE_MORE);
        if (got == LEN) {
            assert_int_equal(h_cancel(x.loop, x.rt, 3), 0);
            assert_int_equal(h_wait(x.loop, x.rt).result, IOQ_ECANCELED);
            ended = 1;
        }
    }
    assert_memory_equal(dst, src, LEN);
    assert_int_equal(h_wait(x.loop, 2).result, LEN);
    h_close_wait(x.loop, x.c);
    h_close_wait(x.loop, x.s);
    free(src);
    free(dst);
    h_finish(x.loop);
}

static void test_records_one_at_a_time(void **state)
{
    (void)state;
    /* Records of a multishot receive taken out one per poll: in order, each buffer with its
     * own bytes, the field that ties an undelivered record to its pool zeroed in the copy,
     * and the pool busy until the receive's final record is out (not a moment longer). */
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s, pool;
    const char *msg = "abcdefghijklmnopqrstuvwx";
    ioq_cqe r[4];
    int n = 0;
    h_pair(loop, &c, &s);
    assert_int_equal(ioq_pool_new(loop, 8, 8, &pool), 0);
    uint64_t rt = h_tok(), ct = h_tok();
    assert_int_equal(h_recv_pool(loop, s, pool, IOQ_MULTISHOT, rt), 0);
    uint64_t st = h_tok();
    int sent = 0;
    assert_int_equal(h_send(loop, c, msg, 24, st), 0);
    uint64_t end = h_mono_ns() + 10ull * 1000000000ull;
    size_t got = 0;
    while (got < 24 || !sent) {
        assert_true(h_mono_ns() < end);
        if (h_poll_into(loop, &r[0], 1, 100 * 1000000ll) != 1)
            continue;
        if (r[0].token == st) {
            assert_int_equal(r[0].result, 24);
            sent = 1;
            continue;
        }
        assert_int_equal(r[0].token, rt);
        assert_int_equal(r[0].flags, IOQ_CQE_MORE | IOQ_CQE_BUFFER);
        assert_int_equal(r[0].reserved, 0);
        assert_true(r[0].result > 0 && got + (size_t)r[0].result <= 24);
        assert_memory_equal(ioq_buf(loop, pool, (uint32_t)r[0].value), msg + got,
                            (size_t)r[0].result);
        got += (size_t)r[0].result;
        assert_int_equal(ioq_buf_release(loop, pool, (uint32_t)r[0].value), 0);
        n++;
    }
    assert_true(n >= 3); /* 8-byte buffers */
    assert_int_equal(h_cancel(loop, rt, ct), 0);
    /* Until the receive's final record is out, the pool is busy (a readiness backend has
     * that record in the ring already); then it may go, whatever else is pending. */
    assert_int_equal(ioq_close(loop, pool, h_tok()), IOQ_EBUSY);
    uint64_t pt = 0;
    int cancel_seen = 0, pool_closed = 0;
    while (!cancel_seen || !pool_closed) {
        assert_true(h_mono_ns() < end);
        if (h_poll_into(loop, &r[0], 1, 100 * 1000000ll) != 1)
            continue;
        if (r[0].token == rt) {
            assert_int_equal(r[0].result, IOQ_ECANCELED);
            assert_int_equal(r[0].flags, 0);
            assert_int_equal(r[0].reserved, 0);
            assert_int_equal(pt, 0);
            pt = h_tok();
            assert_int_equal(h_close(loop, pool, pt), 0);
        } else if (r[0].token == ct) {
            assert_int_equal(r[0].result, 1);
            cancel_seen = 1;
        } else {
            assert_true(pt != 0);
            assert_int_equal(r[0].token, pt);
            assert_int_equal(r[0].result, 0);
            pool_closed = 1;
        }
    }
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

static const struct CMUnitTest pool_tests[] = {
    H_TEST(new_bounds),
    H_TEST(single),
    H_TEST(multishot),
    H_TEST(multishot_stream),
    H_TEST(empty_single),
    H_TEST(empty_multishot),
    H_TEST(eof),
    H_TEST(close_busy),
    H_TEST(close_socket_pending),
    H_TEST(close_with_held_buffers),
    H_TEST(free_with_multishot),
    H_TEST(thread_handoff),
    H_TEST(many_connections_one_pool),
    H_TEST(close_undelivered),
    H_TEST(empty_waits),
    H_TEST(empty_eof),
    H_TEST(emulated),
    H_TEST(records_one_at_a_time),
};

H_MAIN(pool_tests)
