/* Timeouts: order, ties, never early, cancellation, many timers. */
#include "harness.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>
#if defined(__linux__)
#  include <errno.h>
#  include <linux/filter.h>
#  include <linux/seccomp.h>
#  include <sys/prctl.h>
#  include <sys/syscall.h>
#  include <unistd.h>
#endif

#define MS 1000000ull

static void test_deadline_order(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    /* Submitted out of order; they must fire by deadline. The gaps (100 ms) dwarf the time
     * the six submissions take even under valgrind, so the deadlines' order is known. */
    static const uint64_t ms[] = {500, 100, 400, 200, 300, 0};
    for (int i = 0; i < 6; i++)
        assert_int_equal(h_timeout(loop, ms[i] * MS, ms[i] + 1), 0);
    uint64_t prev = 0;
    for (int i = 0; i < 6; i++) {
        ioq_cqe c = h_next_any(loop);
        assert_int_equal(c.result, 0);
        assert_int_equal(c.op, IOQ_OP_TIMEOUT);
        assert_true(c.token > prev);
        prev = c.token;
    }
    h_finish(loop);
}

static void test_equal_deadlines(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    /* A delay of 0 gives every timer a deadline no earlier than the one submitted before
     * it, so ties are broken by submission order and the whole run comes out in order. */
    enum { N = 100 };
    for (int i = 0; i < N; i++)
        assert_int_equal(h_timeout(loop, 0, 1000 + i), 0);
    for (int i = 0; i < N; i++) {
        ioq_cqe c = h_next_any(loop);
        assert_int_equal(c.token, 1000 + i);
        assert_int_equal(c.result, 0);
    }
    /* The same with a longer delay: later submissions have later or equal deadlines. */
    for (int i = 0; i < N; i++)
        assert_int_equal(h_timeout(loop, 20 * MS, 2000 + i), 0);
    for (int i = 0; i < N; i++) {
        ioq_cqe c = h_next_any(loop);
        assert_int_equal(c.token, 2000 + i);
    }
    h_finish(loop);
}

/* Cancelled timers among ones of equal (or nearly equal) deadlines: the survivors fire in
 * submission order, whether the dead entries are most of the heap (dropped together) or a
 * third of it (dropped one by one as they reach the top). */
/* keep_mod >= 0: the timers i with i % 3 == keep_mod survived; else those with i % 3 != 0. */
static void fired_in_order(ioq_loop *loop, uint64_t base, int n, int keep_mod)
{
    int next = 0, seen = 0, want = 0;
    for (int i = 0; i < n; i++)
        if (keep_mod >= 0 ? i % 3 == keep_mod : i % 3 != 0)
            want++;
    while (seen < want) {
        ioq_cqe c = h_next_any(loop);
        if (c.op != IOQ_OP_TIMEOUT || c.result != 0)
            continue;
        assert_true(c.token >= base && c.token < base + (uint64_t)n);
        int i = (int)(c.token - base);
        assert_true(keep_mod >= 0 ? i % 3 == keep_mod : i % 3 != 0);
        assert_true(i >= next);
        next = i + 1;
        seen++;
    }
}

static void test_cancel_among_equal(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    enum { N = 90 };
    for (int i = 0; i < N; i++)
        assert_int_equal(h_timeout(loop, 0, 3000 + i), 0);
    for (int i = 0; i < N; i++)
        if (i % 3 != 0)
            assert_int_equal(h_cancel(loop, 3000 + i, h_tok()), 0);
    fired_in_order(loop, 3000, N, 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(h_timeout(loop, 20 * MS, 4000 + i), 0);
    for (int i = 0; i < N; i += 3)
        assert_int_equal(h_cancel(loop, 4000 + i, h_tok()), 0);
    fired_in_order(loop, 4000, N, -1);
    h_assert_quiet(loop, 5);
    h_finish(loop);
}

static void test_never_early(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    static const uint64_t ms[] = {1, 5, 15, 30, 60};
    for (int i = 0; i < 5; i++) {
        uint64_t t0 = ioq_now(loop);
        uint64_t m0 = h_mono_ns();
        assert_int_equal(h_timeout(loop, ms[i] * MS, 1), 0);
        ioq_cqe c = h_wait(loop, 1);
        uint64_t t1 = ioq_now(loop);
        uint64_t m1 = h_mono_ns();
        assert_int_equal(c.result, 0);
        if (t1 - t0 < ms[i] * MS)
            fail_msg("%llu ms timer fired after %llu ns (ioq_now)",
                     (unsigned long long)ms[i], (unsigned long long)(t1 - t0));
        if (m1 - m0 < ms[i] * MS)
            fail_msg("%llu ms timer fired after %llu ns (CLOCK_MONOTONIC)",
                     (unsigned long long)ms[i], (unsigned long long)(m1 - m0));
    }
    h_finish(loop);
}

static void test_cancel(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    assert_int_equal(h_timeout(loop, 3600ull * 1000 * MS, 1), 0);
    h_poll(loop, 0);
    assert_int_equal(h_cancel(loop, 1, 2), 0);
    ioq_cqe c = h_wait(loop, 1);
    assert_int_equal(c.result, IOQ_ECANCELED);
    assert_int_equal(c.op, IOQ_OP_TIMEOUT);
    ioq_cqe k = h_wait(loop, 2);
    assert_int_equal(k.result, 1);
    assert_int_equal(k.op, IOQ_OP_CANCEL);
    /* Cancelling before the submission was even flushed works the same. */
    assert_int_equal(h_timeout(loop, 3600ull * 1000 * MS, 3), 0);
    assert_int_equal(h_cancel(loop, 3, 4), 0);
    assert_int_equal(h_wait(loop, 3).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, 4).result, 1);
    h_finish(loop);
}

static void test_cancel_unknown(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    assert_int_equal(h_cancel(loop, 424242, 1), 0);
    ioq_cqe c = h_wait(loop, 1);
    assert_int_equal(c.result, 0);
    assert_int_equal(c.value, 0);
    /* A token that already completed is unknown too. */
    assert_int_equal(h_timeout(loop, 0, 2), 0);
    assert_int_equal(h_wait(loop, 2).result, 0);
    assert_int_equal(h_cancel(loop, 2, 3), 0);
    assert_int_equal(h_wait(loop, 3).result, 0);
    h_finish(loop);
}

static void test_cancel_many_same_token(void **state)
{
    (void)state;
    /* One cancel finds every in-flight operation with the target token. */
    ioq_loop *loop = h_loop_new();
    for (int i = 0; i < 5; i++)
        assert_int_equal(h_timeout(loop, 3600ull * 1000 * MS, 9), 0);
    assert_int_equal(h_timeout(loop, 3600ull * 1000 * MS, 10), 0);
    h_poll(loop, 0);
    assert_int_equal(h_cancel(loop, 9, 11), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(h_next(loop, 9).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, 11).result, 5);
    assert_false(h_done(loop, 10));
    assert_int_equal(h_cancel(loop, 10, 12), 0);
    assert_int_equal(h_wait(loop, 10).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, 12).result, 1);
    h_finish(loop);
}

static void test_cancel_cancel(void **state)
{
    (void)state;
    /* A cancel targeting a cancel token: the first cancel completes once either way. */
    ioq_loop *loop = h_loop_new();
    assert_int_equal(h_cancel(loop, 555, 1), 0);
    assert_int_equal(h_cancel(loop, 1, 2), 0);
    ioq_cqe a = h_wait(loop, 1), b = h_wait(loop, 2);
    assert_true(a.result == 0 || a.result == IOQ_ECANCELED);
    assert_true(b.result == 0 || b.result == 1);
    h_finish(loop);
}

static void test_ten_thousand(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    enum { N = 10000 };
    /* Deadlines spread over 0..99 ms in a scrambled order. Each deadline lies between
     * ioq_now before and after its submission plus its delay. */
    uint64_t *lo = malloc(N * sizeof *lo), *hi = malloc(N * sizeof *hi);
    assert_non_null(lo);
    assert_non_null(hi);
    for (int i = 0; i < N; i++) {
        uint64_t ns = (uint64_t)((i * 7919) % 100) * MS;
        lo[i] = ioq_now(loop) + ns;
        assert_int_equal(h_timeout(loop, ns, (uint64_t)i + 1), 0);
        hi[i] = ioq_now(loop) + ns;
    }
    int seen = 0;
    uint64_t max_lo = 0;
    uint64_t end = h_mono_ns() + H_DEADLINE_MS * MS;
    while (seen < N) {
        if (h_mono_ns() > end)
            fail_msg("only %d of %d timers fired", seen, N);
        ioq_cqe c[256];
        int n = h_poll_into(loop, c, 256, 100 * (int64_t)MS);
        uint64_t now = ioq_now(loop);
        for (int i = 0; i < n; i++) {
            assert_int_equal(c[i].result, 0);
            uint64_t k = c[i].token - 1;
            assert_true(k < N);
            /* Never early. */
            if (now < lo[k])
                fail_msg("timer %llu fired %llu ns early", (unsigned long long)k,
                         (unsigned long long)(lo[k] - now));
            /* Never after a timer whose deadline is surely later. */
            if (hi[k] < max_lo)
                fail_msg("timer %llu fired after one with a later deadline",
                         (unsigned long long)k);
            if (lo[k] > max_lo)
                max_lo = lo[k];
        }
        seen += n;
    }
    assert_int_equal(h_pending(loop), 0);
    free(lo);
    free(hi);
    h_finish(loop);
}

/* Cancellation from the middle of a large heap, in a scrambled order: the heap must stay
 * ordered after every removal, and each timer ends exactly once, cancelled or fired. */
static void test_cancel_scattered(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    enum { N = 20000, CANCEL_BASE = 1000000 };
    uint64_t *lo = malloc(N * sizeof *lo), *hi = malloc(N * sizeof *hi);
    assert_non_null(lo);
    assert_non_null(hi);
    for (int i = 0; i < N; i++) {
        uint64_t ns = (uint64_t)((i * 7919) % 50) * MS;
        lo[i] = ioq_now(loop) + ns;
        assert_int_equal(h_timeout(loop, ns, (uint64_t)i + 1), 0);
        hi[i] = ioq_now(loop) + ns;
    }
    /* 4001 is prime to N: (j * 4001) % N visits every index once. */
    int cancels = 0;
    for (int j = 0; j < N; j++) {
        int i = (int)(((long)j * 4001) % N);
        if (i % 3 == 0) {
            assert_int_equal(h_cancel(loop, (uint64_t)i + 1, CANCEL_BASE + (uint64_t)i), 0);
            cancels++;
        }
    }
    int fired = 0, cancelled = 0, cancel_done = 0;
    uint64_t max_lo = 0;
    uint64_t end = h_mono_ns() + H_DEADLINE_MS * MS;
    while (fired + cancelled + cancel_done < N + cancels) {
        if (h_mono_ns() > end)
            fail_msg("only %d fired, %d cancelled of %d", fired, cancelled, N);
        ioq_cqe c[256];
        int n = h_poll_into(loop, c, 256, 100 * (int64_t)MS);
        uint64_t now = ioq_now(loop);
        for (int k = 0; k < n; k++) {
            if (c[k].token >= CANCEL_BASE) {
                assert_int_equal(c[k].op, IOQ_OP_CANCEL);
                assert_int_equal(c[k].result, 1);
                cancel_done++;
                continue;
            }
            uint64_t i = c[k].token - 1;
            assert_true(i < N);
            if (i % 3 == 0) {
                assert_int_equal(c[k].result, IOQ_ECANCELED);
                cancelled++;
                continue;
            }
            assert_int_equal(c[k].result, 0);
            if (now < lo[i])
                fail_msg("timer %llu fired early", (unsigned long long)i);
            if (hi[i] < max_lo)
                fail_msg("timer %llu fired after one with a later deadline",
                         (unsigned long long)i);
            if (lo[i] > max_lo)
                max_lo = lo[i];
            fired++;
        }
    }
    assert_int_equal(cancelled, cancels);
    assert_int_equal(cancel_done, cancels);
    assert_int_equal(fired, N - cancels);
    assert_int_equal(h_pending(loop), 0);
    free(lo);
    free(hi);
    h_finish(loop);
}

/* Timer records come from chunks of growing sizes (256 up to 4096) and the token index
 * grows fourfold several times on the way to 12,033 pending timers: every one, in every
 * chunk, is still found by its token, and a second cancel finds none of them. */
static void test_cancel_every_chunk(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    enum { N = 256 + 512 + 1024 + 2048 + 4096 + 4096 + 1, CANCEL_BASE = 1000000 };
    for (int i = 0; i < N; i++)
        assert_int_equal(h_timeout(loop, 3600ull * 1000 * MS, (uint64_t)i + 1), 0);
    for (int i = N - 1; i >= 0; i--)
        assert_int_equal(h_cancel(loop, (uint64_t)i + 1, CANCEL_BASE + (uint64_t)i), 0);
    int cancelled = 0, cancel_done = 0;
    uint64_t end = h_mono_ns() + H_DEADLINE_MS * MS;
    while (cancelled + cancel_done < 2 * N) {
        if (h_mono_ns() > end)
            fail_msg("only %d cancelled, %d cancels done of %d", cancelled, cancel_done, N);
        ioq_cqe c[256];
        int n = h_poll_into(loop, c, 256, 0);
        for (int k = 0; k < n; k++) {
            if (c[k].token >= CANCEL_BASE) {
                assert_int_equal(c[k].op, IOQ_OP_CANCEL);
                assert_int_equal(c[k].result, 1);
                cancel_done++;
            } else {
                assert_int_equal(c[k].op, IOQ_OP_TIMEOUT);
                assert_int_equal(c[k].result, IOQ_ECANCELED);
                cancelled++;
            }
        }
    }
    assert_int_equal(h_pending(loop), 0);
    /* Gone from the index: cancelling again ends nothing. */
    assert_int_equal(h_cancel(loop, 1, 2 * CANCEL_BASE), 0);
    assert_int_equal(h_wait(loop, 2 * CANCEL_BASE).result, 0);
    assert_int_equal(h_cancel(loop, N, 2 * CANCEL_BASE + 1), 0);
    assert_int_equal(h_wait(loop, 2 * CANCEL_BASE + 1).result, 0);
    h_finish(loop);
}

static void test_free_with_timers(void **state)
{
    (void)state;
    /* Freeing a loop with pending timers hands out nothing and leaks nothing. */
    ioq_loop *loop = h_loop_new();
    for (int i = 0; i < 100; i++)
        assert_int_equal(h_timeout(loop, 3600ull * 1000 * MS, (uint64_t)i + 1), 0);
    h_poll(loop, 0);
    ioq_loop_free(loop);
    h_forget(loop);
}

static void test_cancel_after_fire(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    assert_int_equal(h_timeout(loop, 1, 1), 0);
    /* Let it fire in the loop, then cancel before polling it out: it completes once,
     * with either its own result or ECANCELED. */
    uint64_t m0 = h_mono_ns();
    while (h_mono_ns() - m0 < 5 * MS)
        ;
    assert_int_equal(ioq_submit(loop), 0);
    assert_int_equal(h_cancel(loop, 1, 2), 0);
    ioq_cqe c = h_wait(loop, 1);
    assert_true(c.result == 0 || c.result == IOQ_ECANCELED);
    ioq_cqe k = h_wait(loop, 2);
    assert_true(k.result == 0 || k.result == 1);
    /* And after it was polled, a cancel finds nothing. */
    assert_int_equal(h_cancel(loop, 1, 3), 0);
    assert_int_equal(h_wait(loop, 3).result, 0);
    h_finish(loop);
}

static void test_long_and_short(void **state)
{
    (void)state;
    /* A long timer does not hold back a short one submitted after it. */
    ioq_loop *loop = h_loop_new();
    assert_int_equal(h_timeout(loop, 3600ull * 1000 * MS, 1), 0);
    assert_int_equal(h_timeout(loop, 5 * MS, 2), 0);
    ioq_cqe c = h_next_any(loop);
    assert_int_equal(c.token, 2);
    assert_false(h_done(loop, 1));
    assert_int_equal(h_cancel(loop, 1, 3), 0);
    assert_int_equal(h_wait(loop, 1).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, 3).result, 1);
    h_finish(loop);
}

static void test_huge_delay(void **state)
{
    (void)state;
    /* Delays that overflow a deadline must saturate, never wrap into the past. */
    ioq_loop *loop = h_loop_new();
    assert_int_equal(h_timeout(loop, UINT64_MAX, 1), 0);
    assert_int_equal(h_timeout(loop, (uint64_t)INT64_MAX, 2), 0);
    assert_int_equal(h_timeout(loop, UINT64_MAX - ioq_now(loop) + 1, 3), 0);
    h_assert_quiet(loop, 50);
    for (uint64_t t = 1; t <= 3; t++) {
        assert_int_equal(h_cancel(loop, t, 10 + t), 0);
        assert_int_equal(h_wait(loop, t).result, IOQ_ECANCELED);
        assert_int_equal(h_wait(loop, 10 + t).result, 1);
    }
    h_finish(loop);
}

/* Most of a large heap cancelled, in a scrambled order, with timers added in between: the
 * cancelled entries may linger in the heap and be swept out in bulk, and none of that may
 * change what fires, its order, or how often anything completes. */
static void test_cancel_most(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    enum { N = 20000, LATE = 2000, CANCEL_BASE = 1000000 };
    uint64_t *lo = malloc((N + LATE) * sizeof *lo), *hi = malloc((N + LATE) * sizeof *hi);
    assert_non_null(lo);
    assert_non_null(hi);
    for (int i = 0; i < N; i++) {
        uint64_t ns = (uint64_t)((i * 7919) % 60) * MS;
        lo[i] = ioq_now(loop) + ns;
        assert_int_equal(h_timeout(loop, ns, (uint64_t)i + 1), 0);
        hi[i] = ioq_now(loop) + ns;
    }
    /* Cancel three of every four (the earliest deadlines among them), adding a timer after
     * every tenth cancel. */
    int cancels = 0, late = 0;
    for (int j = 0; j < N; j++) {
        int i = (int)(((long)j * 4001) % N);
        if (i % 4 == 0)
            continue;
        assert_int_equal(h_cancel(loop, (uint64_t)i + 1, CANCEL_BASE + (uint64_t)i), 0);
        if (++cancels % 10 == 0 && late < LATE) {
            int k = N + late++;
            uint64_t ns = (uint64_t)((k * 31) % 60) * MS;
            lo[k] = ioq_now(loop) + ns;
            assert_int_equal(h_timeout(loop, ns, (uint64_t)k + 1), 0);
            hi[k] = ioq_now(loop) + ns;
        }
    }
    int fired = 0, cancelled = 0, cancel_done = 0;
    uint64_t max_lo = 0;
    uint64_t end = h_mono_ns() + H_DEADLINE_MS * MS;
    while (fired + cancelled + cancel_done < N + late + cancels) {
        if (h_mono_ns() > end)
            fail_msg("only %d fired, %d cancelled of %d", fired, cancelled, N + late);
        ioq_cqe c[256];
        int n = h_poll_into(loop, c, 256, 100 * (int64_t)MS);
        uint64_t now = ioq_now(loop);
        for (int k = 0; k < n; k++) {
            if (c[k].token >= CANCEL_BASE) {
                assert_int_equal(c[k].op, IOQ_OP_CANCEL);
                assert_int_equal(c[k].result, 1);
                cancel_done++;
                continue;
            }
            uint64_t i = c[k].token - 1;
            assert_true(i < (uint64_t)(N + late));
            if (i < N && i % 4 != 0) {
                assert_int_equal(c[k].result, IOQ_ECANCELED);
                cancelled++;
                continue;
            }
            assert_int_equal(c[k].result, 0);
            if (now < lo[i])
                fail_msg("timer %llu fired early", (unsigned long long)i);
            if (hi[i] < max_lo)
                fail_msg("timer %llu fired after one with a later deadline",
                         (unsigned long long)i);
            if (lo[i] > max_lo)
                max_lo = lo[i];
            fired++;
        }
    }
    assert_int_equal(cancelled, cancels);
    assert_int_equal(cancel_done, cancels);
    assert_int_equal(fired, N / 4 + late);
    assert_int_equal(h_pending(loop), 0);
    free(lo);
    free(hi);
    h_finish(loop);
}

/* Many timers sharing one token (the header allows it) fire, each exactly once, beside
 * timers with tokens of their own. Completing one of them must not search the others:
 * with a scan per completion this many would take minutes. */
static void test_shared_token_many(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    enum { N = 50000, OWN = 1000, SHARED = 7 };
    for (int i = 0; i < N; i++) {
        assert_int_equal(h_timeout(loop, (uint64_t)(i % 20) * MS, SHARED), 0);
        if (i % (N / OWN) == 0)
            assert_int_equal(h_timeout(loop, (uint64_t)(i % 20) * MS, 100 + (uint64_t)i), 0);
    }
    int shared = 0, own = 0;
    uint64_t end = h_mono_ns() + H_DEADLINE_MS * MS;
    while (shared + own < N + OWN) {
        if (h_mono_ns() > end)
            fail_msg("only %d + %d of %d + %d fired", shared, own, N, OWN);
        ioq_cqe c[512];
        int n = h_poll_into(loop, c, 512, 100 * (int64_t)MS);
        for (int k = 0; k < n; k++) {
            assert_int_equal(c[k].op, IOQ_OP_TIMEOUT);
            assert_int_equal(c[k].result, 0);
            if (c[k].token == SHARED)
                shared++;
            else
                own++;
        }
    }
    assert_int_equal(shared, N);
    assert_int_equal(own, OWN);
    assert_int_equal(h_pending(loop), 0);
    h_finish(loop);
}

/* One cancel ends all of many timers that share a token and counts them; timers with
 * other tokens (some in the same places of the token index) are left alone and can be
 * cancelled one by one afterwards. */
static void test_shared_token_cancel(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    enum { N = 50000, OWN = 1000, SHARED = 7, HOUR = 3600 };
    for (int i = 0; i < N; i++) {
        assert_int_equal(h_timeout(loop, HOUR * 1000 * MS, SHARED), 0);
        if (i % (N / OWN) == 0)
            assert_int_equal(h_timeout(loop, HOUR * 1000 * MS, 100 + (uint64_t)i), 0);
    }
    /* A few of the shared timers fire first: the rest must still all be found. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(h_timeout(loop, 0, SHARED), 0);
    int early = 0;
    while (early < 10) {
        ioq_cqe c[16];
        int n = h_poll_into(loop, c, 16, 100 * (int64_t)MS);
        for (int k = 0; k < n; k++) {
            assert_int_equal(c[k].token, SHARED);
            assert_int_equal(c[k].result, 0);
        }
        early += n;
    }
    assert_int_equal(early, 10);
    assert_int_equal(h_cancel(loop, SHARED, 1), 0);
    int cancelled = 0, count = -1;
    uint64_t end = h_mono_ns() + H_DEADLINE_MS * MS;
    while (cancelled < N || count < 0) {
        if (h_mono_ns() > end)
            fail_msg("only %d of %d cancelled", cancelled, N);
        ioq_cqe c[512];
        int n = h_poll_into(loop, c, 512, 100 * (int64_t)MS);
        for (int k = 0; k < n; k++) {
            if (c[k].token == 1) {
                assert_int_equal(c[k].op, IOQ_OP_CANCEL);
                count = (int)c[k].result;
                continue;
            }
            assert_int_equal(c[k].token, SHARED);
            assert_int_equal(c[k].result, IOQ_ECANCELED);
            cancelled++;
        }
    }
    assert_int_equal(count, N);
    assert_int_equal(cancelled, N);
    /* Nothing left under the shared token; the others are all still there. */
    assert_int_equal(h_cancel(loop, SHARED, 2), 0);
    assert_int_equal(h_wait(loop, 2).result, 0);
    assert_int_equal(h_pending(loop), OWN);
    for (int i = 0; i < N; i += N / OWN) {
        assert_int_equal(h_cancel(loop, 100 + (uint64_t)i, 3), 0);
        assert_int_equal(h_wait(loop, 100 + (uint64_t)i).result, IOQ_ECANCELED);
        assert_int_equal(h_wait(loop, 3).result, 1);
    }
    assert_int_equal(h_pending(loop), 0);
    h_finish(loop);
}

/* The completion ring grows while its records wrap around its end: they must come out in
 * order, each once. Timers of delay 0 complete in submission order. */
static void test_ring_grows_wrapped(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_cqe c[64];
    uint64_t next = 1, tok = 1;
    /* Fill most of the ring, take some out, fill past its end, then grow it. */
    for (int i = 0; i < 200; i++)
        assert_int_equal(h_timeout(loop, 0, tok++), 0);
    while (next <= 150) {
        int n = h_poll_into(loop, c, 50, 100 * (int64_t)MS);
        for (int k = 0; k < n; k++)
            assert_int_equal(c[k].token, next++);
    }
    for (int i = 0; i < 150; i++)
        assert_int_equal(h_timeout(loop, 0, tok++), 0);
    assert_int_equal(h_poll_into(loop, c, 1, 0), 1); /* the 150 fire into the ring */
    assert_int_equal(c[0].token, next++);
    for (int i = 0; i < 3000; i++)
        assert_int_equal(h_timeout(loop, 0, tok++), 0);
    uint64_t end = h_mono_ns() + H_DEADLINE_MS * MS;
    while (next < tok) {
        if (h_mono_ns() > end)
            fail_msg("only %llu of %llu", (unsigned long long)next, (unsigned long long)tok);
        int n = h_poll_into(loop, c, 64, 100 * (int64_t)MS);
        for (int k = 0; k < n; k++)
            assert_int_equal(c[k].token, next++);
    }
    assert_int_equal(h_pending(loop), 0);
    h_finish(loop);
}

/* A watchdog that wakes the loop if a poll sleeps far longer than it asked, so that the
 * bug it catches fails the test instead of hanging it. */
typedef struct {
    ioq_loop *loop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    int fired;
} watchdog;

#define WATCHDOG_MS 5000

static void *watchdog_run(void *arg)
{
    watchdog *w = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WATCHDOG_MS / 1000;
    pthread_mutex_lock(&w->mu);
    while (!w->stop)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &until) != 0)
            break;
    if (!w->stop) {
        w->fired = 1;
        ioq_wake(w->loop);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* One ioq_poll(timeout_ns) under the watchdog: its count, and how long it took. */
static int poll_watched(ioq_loop *loop, int64_t timeout_ns, uint64_t *took_ns)
{
    watchdog w = {loop, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    pthread_t t;
    uint64_t t0;
    int n;
    assert_int_equal(pthread_create(&t, NULL, watchdog_run, &w), 0);
    t0 = h_mono_ns();
    n = h_poll(loop, timeout_ns);
    *took_ns = h_mono_ns() - t0;
    pthread_mutex_lock(&w.mu);
    w.stop = 1;
    pthread_cond_signal(&w.cv);
    pthread_mutex_unlock(&w.mu);
    pthread_join(t, NULL);
    if (w.fired)
        fail_msg("ioq_poll(%lld ns) was still asleep after %d ms", (long long)timeout_ns,
                 WATCHDOG_MS);
    return n;
}

/* Timers whose time to deadline does not fit in a signed 64-bit count of nanoseconds,
 * alone in the heap: a poll with a short timeout still returns after that timeout. And a
 * poll with the longest timeout the header allows returns when a short timer fires. */
static void huge_timeouts(void)
{
    static const uint64_t delays[] = {(uint64_t)INT64_MAX + 1, (uint64_t)INT64_MAX + 1000 * MS,
                                      UINT64_MAX - 1, UINT64_MAX};
    ioq_loop *loop = h_loop_new();
    uint64_t took;

    for (size_t i = 0; i < sizeof delays / sizeof delays[0]; i++) {
        assert_int_equal(h_timeout(loop, delays[i], 1), 0);
        assert_int_equal(poll_watched(loop, 100 * MS, &took), 0);
        assert_true(took >= 100 * MS);
        assert_int_equal(h_cancel(loop, 1, 2), 0);
        assert_int_equal(h_wait(loop, 1).result, IOQ_ECANCELED);
        assert_int_equal(h_wait(loop, 2).result, 1);
    }
    /* The huge timer stays; the short one must still end the longest poll. */
    assert_int_equal(h_timeout(loop, UINT64_MAX, 1), 0);
    assert_int_equal(h_timeout(loop, 20 * MS, 3), 0);
    while (!h_logged(loop, 3))
        poll_watched(loop, INT64_MAX, &took);
    assert_int_equal(h_wait(loop, 3).result, 0);
    /* Every other long poll timeout: a wake-up ends it at once. */
    {
        static const int64_t waits[] = {INT64_MAX - 1, (int64_t)((1ull << 31) + 5) * (int64_t)MS,
                                        (int64_t)((1ull << 32) + 5) * (int64_t)MS, -1};
        for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++) {
            ioq_wake(loop);
            assert_int_equal(poll_watched(loop, waits[i], &took), 0);
        }
    }
    assert_int_equal(h_cancel(loop, 1, 2), 0);
    assert_int_equal(h_wait(loop, 1).result, IOQ_ECANCELED);
    h_finish(loop);
}

static void test_huge_timeout(void **state)
{
    (void)state;
    huge_timeouts();
}

/* The same where the kernel lacks epoll_pwait2 (before 5.11, or a seccomp profile that
 * refuses it): epoll waits in milliseconds then. */
static void test_huge_timeout_ms_wait(void **state)
{
    (void)state;
#if defined(__linux__) && defined(SYS_epoll_pwait2)
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_epoll_pwait2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        h_skip("cannot install a seccomp filter here");
    assert_int_equal(syscall(SYS_epoll_pwait2, -1, NULL, 0, NULL, NULL, 0), -1);
    assert_int_equal(errno, ENOSYS);
    huge_timeouts();
#else
    h_skip("epoll_pwait2 cannot be taken away here");
#endif
}

/* --- ioq_timeout_at: absolute deadlines on ioq_now's clock ---------------------------------- */

static void test_at_never_early(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    /* One base for all, as a user with a cached loop time would do: each completes at or
     * after its own deadline, in deadline order. */
    static const uint64_t ms[] = {30, 1, 15, 5, 60};
    uint64_t base = ioq_now(loop);
    for (int i = 0; i < 5; i++)
        assert_int_equal(h_timeout_at(loop, base + ms[i] * MS, 100 + ms[i]), 0);
    uint64_t prev = 0;
    for (int i = 0; i < 5; i++) {
        ioq_cqe c = h_next_any(loop);
        uint64_t now = ioq_now(loop);
        assert_int_equal(c.result, 0);
        assert_int_equal(c.op, IOQ_OP_TIMEOUT);
        uint64_t want = base + (c.token - 100) * MS;
        if (now < want)
            fail_msg("deadline %llu ns after base completed at %llu ns after it",
                     (unsigned long long)(want - base), (unsigned long long)(now - base));
        assert_true(c.token > prev);
        prev = c.token;
    }
    /* And one at a time, each polled for alone. */
    for (int i = 0; i < 5; i++) {
        uint64_t d = ioq_now(loop) + ms[i] * MS;
        assert_int_equal(h_timeout_at(loop, d, 200 + (uint64_t)i), 0);
        assert_int_equal(h_wait(loop, 200 + (uint64_t)i).result, 0);
        assert_true(ioq_now(loop) >= d);
    }
    h_finish(loop);
}

/* Poll without waiting until token completes: a due timer needs one poll, but a backend
 * may take a second to bring in what it reaped, so a few are allowed (none waits). */
static ioq_cqe at_poll_now(ioq_loop *loop, uint64_t token)
{
    for (int i = 0; i < 3 && !h_logged(loop, token); i++)
        h_poll(loop, 0);
    assert_true(h_logged(loop, token));
    return h_wait(loop, token);
}

static void test_at_past_deadline(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint64_t now = ioq_now(loop);
    /* A deadline already past completes at the next poll, with result 0, without a
     * wait: the poll below would otherwise sleep the hour of the other timer. */
    assert_int_equal(h_timeout(loop, 3600ull * 1000 * MS, 1), 0);
    assert_int_equal(h_timeout_at(loop, now > MS ? now - MS : 1, 2), 0);
    uint64_t m0 = h_mono_ns();
    assert_true(h_poll(loop, 0) >= 1);
    assert_true(h_logged(loop, 2));
    assert_int_equal(h_wait(loop, 2).result, 0);
    /* The deadline "now" is past by the time the poll looks. */
    assert_int_equal(h_timeout_at(loop, ioq_now(loop), 3), 0);
    assert_int_equal(at_poll_now(loop, 3).result, 0);
    assert_true(h_mono_ns() - m0 < 1000 * MS);
    assert_false(h_done(loop, 1));
    assert_int_equal(h_cancel(loop, 1, 4), 0);
    assert_int_equal(h_wait(loop, 1).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, 4).result, 1);
    h_finish(loop);
}

static void test_at_zero_deadline(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    /* Deadline 0 is the earliest there is: it completes at once and before later ones
     * that are also due, in submission order among its equals. */
    assert_int_equal(h_timeout(loop, 0, 1), 0);
    for (uint64_t t = 2; t <= 5; t++)
        assert_int_equal(h_timeout_at(loop, 0, t), 0);
    assert_true(h_poll(loop, 0) >= 1);
    for (uint64_t t = 2; t <= 5; t++) {
        ioq_cqe c = h_next_any(loop);
        assert_int_equal(c.token, t);
        assert_int_equal(c.result, 0);
    }
    assert_int_equal(h_next_any(loop).token, 1);
    h_finish(loop);
}

static void test_at_order_with_timeout(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    /* Interleaved ioq_timeout and ioq_timeout_at whose deadlines never decrease in
     * submission order: each ioq_timeout_at deadline is ioq_now() read after the previous
     * ioq_timeout read its clock, plus the same delay, and is given twice (an exact tie);
     * the next ioq_timeout reads its clock later still. Both calls share one submission
     * order, so everything completes in token order. */
    enum { N = 60 };
    for (int i = 0; i < N; i++) {
        uint64_t tok = 5000 + 3 * (uint64_t)i;
        assert_int_equal(h_timeout(loop, 20 * MS, tok), 0);
        uint64_t d = ioq_now(loop) + 20 * MS;
        assert_int_equal(h_timeout_at(loop, d, tok + 1), 0);
        assert_int_equal(h_timeout_at(loop, d, tok + 2), 0);
    }
    for (int i = 0; i < 3 * N; i++) {
        ioq_cqe c = h_next_any(loop);
        assert_int_equal(c.token, 5000 + (uint64_t)i);
        assert_int_equal(c.result, 0);
    }
    /* Exact ties of both calls: a saturated ioq_timeout has the deadline UINT64_MAX, as
     * has ioq_timeout_at(UINT64_MAX). Neither fires; both are cancelled once. */
    assert_int_equal(h_timeout(loop, UINT64_MAX, 7000), 0);
    assert_int_equal(h_timeout_at(loop, UINT64_MAX, 7000), 0);
    h_assert_quiet(loop, 20);
    assert_int_equal(h_cancel(loop, 7000, 7001), 0);
    assert_int_equal(h_next(loop, 7000).result, IOQ_ECANCELED);
    assert_int_equal(h_next(loop, 7000).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, 7001).result, 2);
    h_finish(loop);
}

static void test_at_cancel(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint64_t far = ioq_now(loop) + 3600ull * 1000 * MS;
    assert_int_equal(h_timeout_at(loop, far, 1), 0);
    h_poll(loop, 0);
    assert_int_equal(h_cancel(loop, 1, 2), 0);
    ioq_cqe c = h_wait(loop, 1);
    assert_int_equal(c.result, IOQ_ECANCELED);
    assert_int_equal(c.op, IOQ_OP_TIMEOUT);
    assert_int_equal(h_wait(loop, 2).result, 1);
    /* Before the submission was flushed, and with a token shared with an ioq_timeout. */
    assert_int_equal(h_timeout_at(loop, far, 3), 0);
    assert_int_equal(h_timeout(loop, 3600ull * 1000 * MS, 3), 0);
    assert_int_equal(h_cancel(loop, 3, 4), 0);
    assert_int_equal(h_next(loop, 3).result, IOQ_ECANCELED);
    assert_int_equal(h_next(loop, 3).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, 4).result, 2);
    /* A past deadline cancelled before any poll: once, with 0 or IOQ_ECANCELED. */
    assert_int_equal(h_timeout_at(loop, 0, 5), 0);
    assert_int_equal(h_cancel(loop, 5, 6), 0);
    ioq_cqe p = h_wait(loop, 5);
    assert_true(p.result == 0 || p.result == IOQ_ECANCELED);
    ioq_cqe k = h_wait(loop, 6);
    assert_true(k.result == 0 || k.result == 1);
    /* A cancelled one among others of the same deadline: the rest keep their order. */
    uint64_t d = ioq_now(loop) + 10 * MS;
    for (uint64_t t = 10; t < 16; t++)
        assert_int_equal(h_timeout_at(loop, d, t), 0);
    assert_int_equal(h_cancel(loop, 12, 20), 0);
    assert_int_equal(h_wait(loop, 12).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, 20).result, 1);
    for (uint64_t t = 10; t < 16; t++) {
        if (t == 12)
            continue;
        ioq_cqe c2 = h_next_any(loop);
        assert_int_equal(c2.token, t);
        assert_int_equal(c2.result, 0);
    }
    h_finish(loop);
}

static void test_at_close_pending(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    /* ioq_close of a handle leaves timers alone, as for ioq_timeout: they still fire. */
    ioq_handle pool;
    assert_int_equal(ioq_pool_new(loop, 4, 64, &pool), 0);
    uint64_t d = ioq_now(loop) + 5 * MS;
    assert_int_equal(h_timeout_at(loop, d, 1), 0);
    assert_int_equal(h_timeout(loop, 5 * MS, 2), 0);
    h_close_wait(loop, pool);
    assert_int_equal(h_wait(loop, 1).result, 0);
    assert_true(ioq_now(loop) >= d);
    assert_int_equal(h_wait(loop, 2).result, 0);
    h_finish(loop);
}

static void test_at_free_pending(void **state)
{
    (void)state;
    /* Freeing a loop with pending absolute timers (far, due, and unflushed) hands out
     * nothing and leaks nothing. */
    ioq_loop *loop = h_loop_new();
    uint64_t now = ioq_now(loop);
    for (int i = 0; i < 100; i++)
        assert_int_equal(h_timeout_at(loop, now + 3600ull * 1000 * MS, (uint64_t)i + 1), 0);
    h_poll(loop, 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(h_timeout_at(loop, 0, (uint64_t)i + 200), 0);
    assert_int_equal(h_timeout(loop, 0, 300), 0);
    ioq_loop_free(loop);
    h_forget(loop);
}

static void test_at_bad_args(void **state)
{
    (void)state;
    /* The same errors as ioq_timeout. */
    assert_int_equal(ioq_timeout_at(NULL, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_timeout(NULL, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_timeout_at(NULL, UINT64_MAX, 1), IOQ_EINVAL);
}

static void test_at_many_one_base(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    /* Ten thousand deadlines from one base, submitted in a scrambled order with many
     * ties: all fire in (deadline, submission) order, never early. */
    enum { N = 10000, SLOTS = 37 };
    uint64_t base = ioq_now(loop) + 5 * MS;
    uint64_t *dl = calloc(N, sizeof *dl);
    assert_non_null(dl);
    for (int i = 0; i < N; i++) {
        dl[i] = base + (uint64_t)((i * 7919) % SLOTS) * (MS / 4);
        assert_int_equal(h_timeout_at(loop, dl[i], 10000 + (uint64_t)i), 0);
    }
    uint64_t last_d = 0;
    int last_i = -1;
    for (int n = 0; n < N; n++) {
        ioq_cqe c = h_next_any(loop);
        assert_int_equal(c.result, 0);
        int i = (int)(c.token - 10000);
        assert_true(i >= 0 && i < N);
        assert_true(ioq_now(loop) >= dl[i]);
        assert_true(dl[i] > last_d || (dl[i] == last_d && i > last_i));
        last_d = dl[i];
        last_i = i;
    }
    free(dl);
    h_finish(loop);
}

static const struct CMUnitTest timer_tests[] = {
    H_TEST(deadline_order),
    H_TEST(equal_deadlines),
    H_TEST(never_early),
    H_TEST(cancel_among_equal),
    H_TEST(cancel),
    H_TEST(cancel_unknown),
    H_TEST(cancel_many_same_token),
    H_TEST(cancel_cancel),
    H_TEST(ten_thousand),
    H_TEST(cancel_scattered),
    H_TEST(cancel_every_chunk),
    H_TEST(free_with_timers),
    H_TEST(cancel_after_fire),
    H_TEST(long_and_short),
    H_TEST(huge_delay),
    H_TEST(cancel_most),
    H_TEST(shared_token_many),
    H_TEST(shared_token_cancel),
    H_TEST(ring_grows_wrapped),
    H_TEST(huge_timeout),
    H_TEST(huge_timeout_ms_wait),
    H_TEST(at_never_early),
    H_TEST(at_past_deadline),
    H_TEST(at_zero_deadline),
    H_TEST(at_order_with_timeout),
    H_TEST(at_cancel),
    H_TEST(at_close_pending),
    H_TEST(at_free_pending),
    H_TEST(at_bad_args),
    H_TEST(at_many_one_base),
};

H_MAIN(timer_tests)
