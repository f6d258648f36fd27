/* Cancellation and close with operations in flight; loop_free with work pending. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#define MS 1000000ll

static void cancel_one(ioq_loop *loop, uint64_t target)
{
    uint64_t ct = h_tok();
    assert_int_equal(h_cancel(loop, target, ct), 0);
    ioq_cqe c = h_wait(loop, target);
    assert_int_equal(c.result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, ct).result, 1);
}

/* What ioq_cancel counts (ioq.h): the operations with the token that it asked to end, not
 * the ones an earlier cancel or close already asked, and never a close. */
static void test_count(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s, lis;
    char buf[3][8];
    h_pair(loop, &c, &s);
    for (int i = 0; i < 3; i++)
        assert_int_equal(h_recv(loop, s, buf[i], sizeof buf[i], 50), 0);
    assert_int_equal(h_timeout(loop, 60ull * 1000 * 1000 * 1000, 60), 0);
    assert_int_equal(h_cancel(loop, 50, 51), 0);
    /* Asked once already: whether or not they have completed yet, not counted again. */
    assert_int_equal(h_cancel(loop, 50, 52), 0);
    assert_int_equal(h_wait(loop, 51).result, 3);
    assert_int_equal(h_wait(loop, 52).result, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(h_next(loop, 50).result, IOQ_ECANCELED);
    assert_int_equal(h_cancel(loop, 60, 61), 0);
    assert_int_equal(h_wait(loop, 61).result, 1);
    assert_int_equal(h_wait(loop, 60).result, IOQ_ECANCELED);
    /* A close is not cancelled, so not counted. */
    lis = h_listen(loop, NULL);
    assert_int_equal(h_close(loop, lis, 70), 0);
    assert_int_equal(h_cancel(loop, 70, 71), 0);
    assert_int_equal(h_wait(loop, 71).result, 0);
    assert_int_equal(h_wait(loop, 70).result, 0);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

static void test_recv(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    h_pair(loop, &c, &s);
    char old[16], buf[16];
    memset(old, 'o', sizeof old);
    assert_int_equal(h_recv(loop, s, old, sizeof old, 1), 0);
    h_assert_quiet(loop, 20);
    cancel_one(loop, 1);
    /* The stream still works after a cancelled receive, and no byte went to it: the
     * buffer is the caller's again after the final completion. */
    h_send_wait(loop, c, "after", 5);
    h_recv_exact(loop, s, buf, 5);
    assert_memory_equal(buf, "after", 5);
    for (size_t i = 0; i < sizeof old; i++)
        assert_int_equal(old[i], 'o');
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

static void test_accept(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    ioq_handle lis = h_listen(loop, &port);
    assert_int_equal(h_accept(loop, lis, 0, 1), 0);
    h_assert_quiet(loop, 20);
    cancel_one(loop, 1);
    /* The listener still accepts afterwards. */
    int fd = h_plain_connect(port);
    assert_int_equal(h_accept(loop, lis, 0, 2), 0);
    ioq_cqe c = h_wait(loop, 2);
    assert_int_equal(c.result, 0);
    h_plain_close(fd);
    h_close_wait(loop, c.value);
    h_close_wait(loop, lis);
    h_finish(loop);
}

static void test_connect(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    ioq_handle lis = h_listen(loop, &port);
    ioq_addr a = h_addr4(port);
    for (int i = 0; i < 20; i++) {
        uint64_t t = h_tok(), ct = h_tok();
        assert_int_equal(h_connect(loop, &a, 0, t), 0);
        assert_int_equal(h_cancel(loop, t, ct), 0);
        ioq_cqe c = h_wait(loop, t);
        ioq_cqe k = h_wait(loop, ct);
        /* Either cancelled, or it had already connected: exactly one completion. */
        if (c.result == 0) {
            assert_int_not_equal(c.value, 0);
            h_close_wait(loop, c.value);
        } else {
            assert_int_equal(c.result, IOQ_ECANCELED);
            assert_int_equal(c.value, 0);
        }
        assert_true(k.result == 0 || k.result == 1);
    }
    h_close_wait(loop, lis);
    h_finish(loop);
}

/* A connected pair whose client cannot send more: small buffers, nobody reads. */
static void stuck_pair(ioq_loop *loop, ioq_handle *c, ioq_handle *s)
{
    h_pair(loop, c, s);
    assert_int_equal(ioq_setopt(loop, *c, IOQ_OPT_SNDBUF, 4096), 0);
    assert_int_equal(ioq_setopt(loop, *s, IOQ_OPT_RCVBUF, 4096), 0);
}

static void test_stuck_send(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    stuck_pair(loop, &c, &s);
    size_t len = 32u << 20;
    char *big = malloc(len);
    assert_non_null(big);
    h_fill(big, len, 5, 0);
    assert_int_equal(h_send(loop, c, big, len, 1), 0);
    /* A second send queued behind it never starts. */
    assert_int_equal(h_send(loop, c, "tail", 4, 2), 0);
    h_assert_quiet(loop, 100);
    cancel_one(loop, 1);
    /* The bytes that went out are reported in value. Nothing more goes out of big. */
    assert_false(h_done(loop, 2));
    uint64_t ct = h_tok();
    assert_int_equal(h_cancel(loop, 2, ct), 0);
    ioq_cqe t = h_wait(loop, 2);
    assert_true(t.result == IOQ_ECANCELED || t.result == 4);
    assert_true(h_wait(loop, ct).result <= 1);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    free(big);
    h_finish(loop);
}

static void test_stuck_send_value(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    stuck_pair(loop, &c, &s);
    size_t len = 32u << 20;
    char *big = malloc(len);
    assert_non_null(big);
    h_fill(big, len, 6, 0);
    assert_int_equal(h_send(loop, c, big, len, 1), 0);
    h_assert_quiet(loop, 100);
    uint64_t ct = h_tok();
    assert_int_equal(h_cancel(loop, 1, ct), 0);
    ioq_cqe r = h_wait(loop, 1);
    assert_int_equal(r.result, IOQ_ECANCELED);
    assert_true(r.value < len);
    assert_int_equal(h_wait(loop, ct).result, 1);
    /* The peer receives exactly value bytes, all of them the start of big. */
    h_close_wait(loop, c);
    char *got = malloc(len);
    assert_non_null(got);
    size_t n = 0;
    for (;;) {
        int64_t k = h_recv_once(loop, s, got + n, len - n);
        assert_true(k >= 0);
        if (k == 0)
            break;
        n += (size_t)k;
    }
    assert_int_equal(n, r.value);
    assert_true(h_check(got, n, 6, 0));
    h_close_wait(loop, s);
    free(big);
    free(got);
    h_finish(loop);
}

static void test_timeout(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    assert_int_equal(h_timeout(loop, 3600ull * 1000 * MS, 1), 0);
    h_assert_quiet(loop, 10);
    cancel_one(loop, 1);
    h_finish(loop);
}

/* An ended timer's record (and that of the cancel that ended it) waits apart from the other
 * records, in the timer itself: they still come out in the order things completed, one
 * at a time when the caller asks for one. */
static void test_timer_record_order(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    const uint64_t hour = 3600ull * 1000 * MS;
    uint64_t t1 = h_tok(), c1 = h_tok(), c2 = h_tok(), t2 = h_tok(), c3 = h_tok();
    uint64_t s = h_tok(), c4 = h_tok(), t3 = h_tok();
    struct { uint64_t token; int64_t result; uint16_t op; } want[] = {
        { t1, IOQ_ECANCELED, IOQ_OP_TIMEOUT }, { c1, 1, IOQ_OP_CANCEL },
        { c2, 0, IOQ_OP_CANCEL },
        { t2, IOQ_ECANCELED, IOQ_OP_TIMEOUT }, { c3, 1, IOQ_OP_CANCEL },
        { s, IOQ_ECANCELED, IOQ_OP_TIMEOUT }, { s, IOQ_ECANCELED, IOQ_OP_TIMEOUT },
        { c4, 2, IOQ_OP_CANCEL },
        { t3, 0, IOQ_OP_TIMEOUT },
    };
    assert_int_equal(h_timeout(loop, hour, t1), 0);
    assert_int_equal(h_cancel(loop, t1, c1), 0);
    assert_int_equal(h_cancel(loop, h_tok(), c2), 0); /* nothing to cancel */
    assert_int_equal(h_timeout(loop, hour, t2), 0);
    assert_int_equal(h_cancel(loop, t2, c3), 0);
    assert_int_equal(h_timeout(loop, hour, s), 0);
    assert_int_equal(h_timeout(loop, hour, s), 0);
    assert_int_equal(h_cancel(loop, s, c4), 0);
    assert_int_equal(h_timeout(loop, 0, t3), 0);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ioq_cqe c;
        assert_int_equal(h_poll_into(loop, &c, 1, 1000 * MS), 1);
        assert_int_equal(c.token, want[i].token);
        assert_int_equal(c.result, want[i].result);
        assert_int_equal(c.op, want[i].op);
        assert_int_equal(c.value, 0);
        assert_int_equal(c.flags, 0);
        assert_int_equal(c.reserved, 0);
    }
    h_assert_quiet(loop, 5);
    h_finish(loop);
}

static void test_close_inflight(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    stuck_pair(loop, &c, &s);
    size_t len = 32u << 20;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, 1, len);
    char b1[8], b2[8];
    assert_int_equal(h_recv(loop, c, b1, sizeof b1, 1), 0);
    assert_int_equal(h_recv(loop, c, b2, sizeof b2, 2), 0);
    assert_int_equal(h_send(loop, c, big, len, 3), 0);
    assert_int_equal(h_send(loop, c, "x", 1, 4), 0);
    h_assert_quiet(loop, 100);
    assert_int_equal(h_close(loop, c, 5), 0);
    /* Invalid right away. */
    assert_int_equal(ioq_send(loop, c, "x", 1, 6), IOQ_EBADHANDLE);
    int seen = 0;
    for (;;) {
        ioq_cqe e = h_next_any(loop);
        if (e.token == 5) {
            assert_int_equal(e.result, 0);
            assert_int_equal(e.op, IOQ_OP_CLOSE);
            break;
        }
        assert_true(e.token >= 1 && e.token <= 4);
        assert_int_equal(e.result, IOQ_ECANCELED);
        seen++;
    }
    /* Every pending operation completed before the close itself. */
    assert_int_equal(seen, 4);
    h_close_wait(loop, s);
    free(big);
    h_finish(loop);
}

static void test_close_listener_inflight(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle lis = h_listen(loop, NULL);
    assert_int_equal(h_accept(loop, lis, 0, 1), 0);
    assert_int_equal(h_accept(loop, lis, 0, 2), 0);
    h_assert_quiet(loop, 20);
    assert_int_equal(h_close(loop, lis, 3), 0);
    ioq_cqe a = h_next_any(loop), b = h_next_any(loop), c = h_next_any(loop);
    assert_int_equal(a.result, IOQ_ECANCELED);
    assert_int_equal(b.result, IOQ_ECANCELED);
    assert_int_equal(a.token + b.token, 3);
    assert_int_equal(c.token, 3);
    assert_int_equal(c.result, 0);
    h_finish(loop);
}

static void test_free_pending(void **state)
{
    (void)state;
    /* loop_free with socket, timer, file and resolver work in flight returns and leaves
     * no descriptor (the teardown counts them) and no thread touching freed memory. */
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    stuck_pair(loop, &c, &s);
    uint16_t port;
    ioq_handle lis = h_listen(loop, &port);
    size_t len = 16u << 20;
    char *big = malloc(len);
    char *rbuf = malloc(4096);
    char *fbuf = malloc(1 << 20);
    ioq_addr *addrs = malloc(8 * sizeof *addrs);
    assert_non_null(big);
    assert_non_null(rbuf);
    assert_non_null(fbuf);
    assert_non_null(addrs);
    memset(big, 2, len);
    memset(fbuf, 3, 1 << 20);
    assert_int_equal(h_send(loop, c, big, len, 1), 0);
    assert_int_equal(h_recv(loop, s, rbuf, 1, 2), 0);
    assert_int_equal(h_recv(loop, c, rbuf + 1, 1, 2), 0);
    assert_int_equal(h_accept(loop, lis, IOQ_MULTISHOT, 3), 0);
    ioq_addr a = h_addr4(port);
    assert_int_equal(h_connect(loop, &a, 0, 4), 0);
    assert_int_equal(h_timeout(loop, 3600ull * 1000 * MS, 5), 0);
    assert_int_equal(h_timeout(loop, 0, 5), 0);
    uint64_t t = h_tok();
    assert_int_equal(h_open(loop, h_path("f"), IOQ_OPEN_READ | IOQ_OPEN_WRITE |
                            IOQ_OPEN_CREATE, 0644, t), 0);
    ioq_cqe oc = h_wait(loop, t);
    assert_int_equal(oc.result, 0);
    for (int i = 0; i < 16; i++)
        assert_int_equal(h_write(loop, oc.value, fbuf, 1 << 20, (uint64_t)i << 20, 6), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(h_resolve(loop, "localhost", "80", 0, addrs, 8, 7), 0);
    assert_int_equal(h_open(loop, h_path("g"), IOQ_OPEN_WRITE | IOQ_OPEN_CREATE, 0644, 8), 0);
    h_poll(loop, 0);
    ioq_loop_free(loop);
    h_forget(loop);
    free(big);
    free(rbuf);
    free(fbuf);
    free(addrs);
}

static void test_free_right_after_submit(void **state)
{
    (void)state;
    /* Nothing was ever flushed to the kernel. */
    ioq_loop *loop = h_loop_new();
    ioq_handle lis = h_listen(loop, NULL);
    assert_int_equal(h_accept(loop, lis, 0, 1), 0);
    assert_int_equal(h_timeout(loop, 1, 2), 0);
    assert_int_equal(h_post(loop, 3, 0), 0);
    ioq_loop_free(loop);
    h_forget(loop);
}

static void test_cancel_completed(void **state)
{
    (void)state;
    /* A cancel racing the operation's own completion: still exactly one completion. */
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    h_pair(loop, &c, &s);
    for (int i = 0; i < 50; i++) {
        char buf[4];
        uint64_t rt = h_tok(), ct = h_tok();
        assert_int_equal(h_recv(loop, s, buf, sizeof buf, rt), 0);
        h_send_wait(loop, c, "z", 1);
        assert_int_equal(h_cancel(loop, rt, ct), 0);
        ioq_cqe r = h_wait(loop, rt);
        assert_true(r.result == 1 || r.result == IOQ_ECANCELED);
        if (r.result == 1) {
            assert_int_equal(buf[0], 'z');
        } else {
            /* The byte stayed in the socket. */
            h_recv_exact(loop, s, buf, 1);
            assert_int_equal(buf[0], 'z');
        }
        int64_t k = h_wait(loop, ct).result;
        assert_true(k == 0 || k == 1);
    }
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

static void test_file_ops(void **state)
{
    (void)state;
    /* Cancelling thread-pool work: each op completes once, with its result or ECANCELED. */
    ioq_loop *loop = h_loop_new();
    uint64_t t = h_tok();
    assert_int_equal(h_open(loop, h_path("f"), IOQ_OPEN_READ | IOQ_OPEN_WRITE |
                            IOQ_OPEN_CREATE, 0644, t), 0);
    ioq_cqe o = h_wait(loop, t);
    assert_int_equal(o.result, 0);
    size_t len = 1 << 20;
    char *buf = malloc(len * 8);
    assert_non_null(buf);
    memset(buf, 4, len * 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(h_write(loop, o.value, buf + (size_t)i * len, len,
                                 (uint64_t)i * len, 50 + i), 0);
    assert_int_equal(h_cancel(loop, 53, 60), 0);
    assert_int_equal(h_cancel(loop, 57, 61), 0);
    for (int i = 0; i < 8; i++) {
        ioq_cqe c = h_wait(loop, 50 + i);
        assert_true(c.result == (int64_t)len || c.result == IOQ_ECANCELED);
    }
    assert_true(h_wait(loop, 60).result <= 1);
    assert_true(h_wait(loop, 61).result <= 1);
    h_close_wait(loop, o.value);
    free(buf);
    h_finish(loop);
}

/* One token shared by thousands of timers spread over several timer chunks, among timers
 * and a receive with tokens of their own (the index's chains mix them): one cancel ends
 * exactly the shared ones, and each other op is still found by its own token afterwards.
 * Then the freed records are reused with the same tokens. */
static void test_shared_kinds_chunks(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    char buf[16];
    enum { N = 3 * 4096 + 7, OWN = 1u << 29, SHARED = 1u << 30, RECV = SHARED + 1 };
    const uint64_t CANCEL = 1ull << 31;
    h_pair(loop, &c, &s);
    for (int round = 0; round < 2; round++) {
        int shared = 0, own = 0;
        assert_int_equal(h_recv(loop, s, buf, sizeof buf, RECV), 0);
        for (int i = 0; i < N; i++) {
            uint64_t tok = i % 3 == 0 ? SHARED : OWN + (uint64_t)i;
            assert_int_equal(h_timeout(loop, 3600ull * 1000 * MS, tok), 0);
            if (tok == SHARED)
                shared++;
            else
                own++;
        }
        assert_int_equal(h_cancel(loop, SHARED, CANCEL), 0);
        ioq_cqe done = h_wait(loop, CANCEL);
        assert_int_equal(done.op, IOQ_OP_CANCEL);
        assert_int_equal(done.result, shared);
        for (int i = N - 1; i >= 0; i--) {
            if (i % 3 == 0)
                continue;
            assert_int_equal(h_cancel(loop, OWN + (uint64_t)i, CANCEL + 1 + (uint64_t)i), 0);
            own--;
        }
        assert_int_equal(own, 0);
        assert_int_equal(h_cancel(loop, RECV, CANCEL), 0);
        assert_int_equal(h_wait(loop, CANCEL).result, 1);
        while (h_pending(loop) > 0)
            h_poll(loop, 0);
        /* Nothing of either is left in the index. */
        assert_int_equal(h_cancel(loop, SHARED, CANCEL), 0);
        assert_int_equal(h_wait(loop, CANCEL).result, 0);
        assert_int_equal(h_cancel(loop, OWN + 1, CANCEL), 0);
        assert_int_equal(h_wait(loop, CANCEL).result, 0);
    }
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

static void test_close_while_flowing(void **state)
{
    (void)state;
    /* Close a stream while data flows both ways: every op completes exactly once. */
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    h_pair(loop, &c, &s);
    size_t len = 4u << 20;
    char *a = malloc(len), *b = malloc(len), *ra = malloc(len), *rb = malloc(len);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(ra);
    assert_non_null(rb);
    memset(a, 1, len);
    memset(b, 2, len);
    assert_int_equal(h_send(loop, c, a, len, 1), 0);
    assert_int_equal(h_send(loop, s, b, len, 2), 0);
    assert_int_equal(h_recv(loop, c, rb, len, 3), 0);
    assert_int_equal(h_recv(loop, s, ra, len, 4), 0);
    h_poll(loop, 0);
    h_poll(loop, 0);
    assert_int_equal(h_close(loop, c, 5), 0);
    ioq_cqe k = h_wait(loop, 5);
    assert_int_equal(k.result, 0);
    /* Ops of c finished before the close completion. */
    assert_true(h_done(loop, 1));
    assert_true(h_done(loop, 3));
    h_close_wait(loop, s);
    free(a);
    free(b);
    free(ra);
    free(rb);
    h_finish(loop);
}

static const struct CMUnitTest cancel_tests[] = {
    H_TEST(count),
    H_TEST(recv),
    H_TEST(accept),
    H_TEST(connect),
    H_TEST(stuck_send),
    H_TEST(stuck_send_value),
    H_TEST(timeout),
    H_TEST(timer_record_order),
    H_TEST(close_inflight),
    H_TEST(close_listener_inflight),
    H_TEST(free_pending),
    H_TEST(free_right_after_submit),
    H_TEST(cancel_completed),
    H_TEST(file_ops),
    H_TEST(close_while_flowing),
    H_TEST(shared_kinds_chunks),
};

H_MAIN(cancel_tests)
