/* ioq_post and ioq_wake from other threads. */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MS 1000000ll

static void test_same_thread(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    assert_int_equal(h_post(loop, 1, 42), 0);
    assert_int_equal(h_post(loop, 2, -7), 0);
    assert_int_equal(h_post(loop, UINT64_MAX, INT64_MIN), 0);
    ioq_cqe a = h_next_any(loop), b = h_next_any(loop), c = h_next_any(loop);
    assert_int_equal(a.token, 1);
    assert_int_equal(a.result, 42);
    assert_int_equal(a.value, 0);
    assert_int_equal(a.op, IOQ_OP_POST);
    assert_int_equal(a.flags, 0);
    assert_int_equal(b.token, 2);
    assert_int_equal(b.result, -7);
    assert_int_equal(c.token, UINT64_MAX);
    assert_true(c.result == INT64_MIN);
    h_finish(loop);
}

enum { THREADS = 4, PER_THREAD = 100000 };

typedef struct {
    ioq_loop *loop;
    int id;
    int pace; /* sleep now and then so some posts find the loop blocked */
    atomic_int *go;
    int errors;
} poster_arg;

static void *poster(void *p)
{
    poster_arg *a = p;
    while (!atomic_load(a->go))
        ;
    for (int i = 0; i < PER_THREAD; i++) {
        uint64_t tok = ((uint64_t)(a->id + 1) << 32) | (uint64_t)i;
        if (ioq_post(a->loop, tok, i) != 0)
            a->errors++;
        if (a->pace && i % 1000 == 999) {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static void run_posters(int pace, int busy)
{
    ioq_loop *loop = h_loop_new();
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++)
            h_track(loop, 0, ((uint64_t)(t + 1) << 32) | (uint64_t)i, IOQ_OP_POST, 0);
    atomic_int go = 0;
    poster_arg args[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (poster_arg){loop, t, pace, &go, 0};
        assert_int_equal(pthread_create(&th[t], NULL, poster, &args[t]), 0);
    }
    /* Some other work on the loop at the same time. */
    if (busy)
        for (int i = 0; i < 100; i++)
            assert_int_equal(h_timeout(loop, (uint64_t)i * 100000, 7), 0);
    atomic_store(&go, 1);
    int next[THREADS] = {0};
    long total = 0;
    uint64_t end = h_mono_ns() + 60ull * 1000000000ull;
    ioq_cqe *c = malloc(1024 * sizeof *c);
    assert_non_null(c);
    while (h_pending(loop) > 0) {
        if (h_mono_ns() > end)
            fail_msg("posts lost: %ld of %d arrived", total, THREADS * PER_THREAD);
        /* Busy: poll without waiting, as a loop with other work does. Else block. */
        int n = h_poll_into(loop, c, 1024, busy ? 0 : 100 * MS);
        for (int i = 0; i < n; i++) {
            if (c[i].op == IOQ_OP_TIMEOUT)
                continue;
            int t = (int)(c[i].token >> 32) - 1;
            int k = (int)(c[i].token & 0xffffffffu);
            assert_true(t >= 0 && t < THREADS);
            /* Per-thread order is kept (the tracker already rules out duplicates). */
            if (k != next[t])
                fail_msg("thread %d: post %d arrived when %d was expected", t, k, next[t]);
            assert_int_equal(c[i].result, k);
            next[t]++;
            total++;
        }
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(args[t].errors, 0);
        assert_int_equal(next[t], PER_THREAD);
    }
    assert_int_equal(total, (long)THREADS * PER_THREAD);
    free(c);
    h_finish(loop);
}

static void test_four_threads(void **state)
{
    (void)state;
    run_posters(0, 0);
}

static void test_four_threads_paced(void **state)
{
    (void)state;
    /* Posts that arrive while the loop is blocked in ioq_poll must wake it. */
    run_posters(1, 0);
}

static void test_four_threads_busy(void **state)
{
    (void)state;
    run_posters(0, 1);
}

typedef struct {
    ioq_loop *loop;
    int delay_ms;
    int what; /* 0 wake, 1 post */
} late_arg;

static void *late(void *p)
{
    late_arg *a = p;
    struct timespec ts = {0, (long)a->delay_ms * 1000000L};
    nanosleep(&ts, NULL);
    if (a->what == 0)
        ioq_wake(a->loop);
    else
        ioq_post(a->loop, 99, 1);
    return NULL;
}

static void test_wake_releases_poll(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    for (int i = 0; i < 5; i++) {
        late_arg a = {loop, 20, 0};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, late, &a), 0);
        ioq_cqe c[4];
        /* Blocks forever unless the wake-up arrives. ctest's timeout ends a hang. */
        int n = h_poll_into(loop, c, 4, -1);
        pthread_join(t, NULL);
        assert_int_equal(n, 0);
    }
    h_finish(loop);
}

static void test_post_releases_poll(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    for (int i = 0; i < 5; i++) {
        h_track(loop, 0, 99, IOQ_OP_POST, 0);
        late_arg a = {loop, 20, 1};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, late, &a), 0);
        ioq_cqe c[4];
        int n;
        do
            n = h_poll_into(loop, c, 4, -1);
        while (n == 0); /* a stray wake-up may return 0 */
        pthread_join(t, NULL);
        assert_int_equal(n, 1);
        assert_int_equal(c[0].token, 99);
        assert_int_equal(c[0].result, 1);
    }
    h_finish(loop);
}

static void *waker_storm(void *p)
{
    ioq_loop *loop = p;
    for (int i = 0; i < 100000; i++)
        ioq_wake(loop);
    return NULL;
}

static void test_wake_storm(void **state)
{
    (void)state;
    /* Many wake-ups coalesce and break nothing; a timer still fires in time. */
    ioq_loop *loop = h_loop_new();
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waker_storm, loop), 0);
    assert_int_equal(h_timeout(loop, 30 * MS, 1), 0);
    ioq_cqe c = h_wait(loop, 1);
    assert_int_equal(c.result, 0);
    pthread_join(t, NULL);
    /* After the storm, wake-ups still work. */
    assert_int_equal(ioq_wake(loop), 0);
    ioq_cqe cs[4];
    assert_int_equal(h_poll_into(loop, cs, 4, -1), 0);
    h_finish(loop);
}

static void test_post_then_free(void **state)
{
    (void)state;
    /* Posts never polled are dropped by loop_free without a leak. */
    ioq_loop *loop = h_loop_new();
    for (int i = 0; i < 1000; i++)
        assert_int_equal(h_post(loop, (uint64_t)i, i), 0);
    ioq_loop_free(loop);
    h_forget(loop);
}

static void test_poll_max_one(void **state)
{
    (void)state;
    /* Completions beyond max wait for the next poll: none lost, order kept. */
    ioq_loop *loop = h_loop_new();
    for (int i = 0; i < 500; i++)
        assert_int_equal(h_post(loop, 1000 + (uint64_t)i, i), 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(h_timeout(loop, 0, 5000 + (uint64_t)i), 0);
    int next_post = 0, next_timer = 0;
    uint64_t end = h_mono_ns() + (uint64_t)H_DEADLINE_MS * 1000000ull;
    while (next_post < 500 || next_timer < 50) {
        assert_true(h_mono_ns() < end);
        ioq_cqe c[1];
        int n = h_poll_into(loop, c, 1, 100 * MS);
        assert_true(n <= 1);
        if (n == 0)
            continue;
        if (c[0].op == IOQ_OP_POST) {
            assert_int_equal(c[0].token, 1000 + (uint64_t)next_post);
            assert_int_equal(c[0].result, next_post);
            next_post++;
        } else {
            assert_int_equal(c[0].token, 5000 + (uint64_t)next_timer);
            next_timer++;
        }
    }
    h_finish(loop);
}

static void test_poll_huge_timeout(void **state)
{
    (void)state;
    /* A very long poll timeout neither overflows into "return at once" nor errors. */
    ioq_loop *loop = h_loop_new();
    h_track(loop, 0, 99, IOQ_OP_POST, 0);
    late_arg a = {loop, 20, 1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, late, &a), 0);
    ioq_cqe c[2];
    int n;
    do
        n = h_poll_into(loop, c, 2, INT64_MAX);
    while (n == 0);
    pthread_join(t, NULL);
    assert_int_equal(n, 1);
    assert_int_equal(c[0].token, 99);
    /* Nothing pending: a huge timeout still ends on a wake-up, with 0. */
    late_arg w = {loop, 20, 0};
    assert_int_equal(pthread_create(&t, NULL, late, &w), 0);
    n = h_poll_into(loop, c, 2, INT64_MAX);
    pthread_join(t, NULL);
    assert_int_equal(n, 0);
    h_finish(loop);
}

static void test_flood_unpolled(void **state)
{
    (void)state;
    /* Tens of thousands of completions queued before the first poll. */
    ioq_loop *loop = h_loop_new();
    enum { N = 20000 };
    for (int i = 0; i < N; i++) {
        assert_int_equal(h_post(loop, 1000000 + (uint64_t)i, i), 0);
        assert_int_equal(h_timeout(loop, 0, 2000000 + (uint64_t)i), 0);
    }
    int posts = 0, timers = 0;
    uint64_t end = h_mono_ns() + (uint64_t)H_DEADLINE_MS * 1000000ull;
    ioq_cqe *c = malloc(4096 * sizeof *c);
    assert_non_null(c);
    while (posts < N || timers < N) {
        assert_true(h_mono_ns() < end);
        int n = h_poll_into(loop, c, 4096, 100 * MS);
        for (int i = 0; i < n; i++) {
            if (c[i].op == IOQ_OP_POST) {
                assert_int_equal(c[i].token, 1000000 + (uint64_t)posts);
                posts++;
            } else {
                assert_int_equal(c[i].token, 2000000 + (uint64_t)timers);
                timers++;
            }
        }
    }
    free(c);
    h_finish(loop);
}

static const struct CMUnitTest post_tests[] = {
    H_TEST(same_thread),
    H_TEST(four_threads),
    H_TEST(four_threads_paced),
    H_TEST(four_threads_busy),
    H_TEST(wake_releases_poll),
    H_TEST(post_releases_poll),
    H_TEST(wake_storm),
    H_TEST(post_then_free),
    H_TEST(poll_max_one),
    H_TEST(poll_huge_timeout),
    H_TEST(flood_unpolled),
};

H_MAIN(post_tests)
