/* Notifiers: ioq_notify from any thread, coalesced into ioq_notify_wait completions. */
#include "harness.h"
#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#define MS 1000000ll

static int h_notify_wait(ioq_loop *l, ioq_handle n, uint32_t flags, uint64_t tok)
{
    return h_track(l, ioq_notify_wait(l, n, flags, tok), tok, IOQ_OP_NOTIFY_WAIT,
                   flags & IOQ_MULTISHOT);
}

static ioq_handle notifier(ioq_loop *loop)
{
    ioq_handle n = 0;
    assert_int_equal(ioq_notifier_new(loop, &n), 0);
    assert_true(n != 0);
    return n;
}

static void test_basic(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle n = notifier(loop);
    uint64_t t = h_tok();
    assert_int_equal(h_notify_wait(loop, n, 0, t), 0);
    h_assert_quiet(loop, 20);
    assert_int_equal(ioq_notify(loop, n), 0);
    ioq_cqe c = h_wait(loop, t);
    assert_int_equal(c.result, 1);
    assert_int_equal(c.value, 0);
    assert_int_equal(c.flags, 0);
    assert_int_equal(c.op, IOQ_OP_NOTIFY_WAIT);
    h_close_wait(loop, n);
    h_finish(loop);
}

static void test_coalescing(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle n = notifier(loop);
    uint64_t t = h_tok();
    assert_int_equal(h_notify_wait(loop, n, IOQ_MULTISHOT, t), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(ioq_notify(loop, n), 0);
    /* One record for the thousand. */
    ioq_cqe c[8];
    int got = 0;
    for (int i = 0; i < 100 && got == 0; i++)
        got = h_poll_into(loop, c, 8, 10 * MS);
    assert_int_equal(got, 1);
    assert_int_equal(c[0].token, t);
    assert_int_equal(c[0].result, 1000);
    assert_int_equal(c[0].flags, IOQ_CQE_MORE);
    h_assert_quiet(loop, 20);
    h_close_wait(loop, n);
    assert_int_equal(h_wait(loop, t).result, IOQ_ECANCELED);
    h_finish(loop);
}

static void test_before_wait(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle n = notifier(loop);
    assert_int_equal(ioq_notify(loop, n), 0);
    assert_int_equal(ioq_notify(loop, n), 0);
    h_assert_quiet(loop, 10); /* no wait yet: nothing completes, nothing is lost */
    assert_int_equal(ioq_notify(loop, n), 0);
    uint64_t t = h_tok();
    assert_int_equal(h_notify_wait(loop, n, 0, t), 0);
    assert_int_equal(h_wait(loop, t).result, 3);
    /* Counted since the last completion: a new wait starts from zero. */
    t = h_tok();
    assert_int_equal(h_notify_wait(loop, n, 0, t), 0);
    h_assert_quiet(loop, 20);
    assert_int_equal(ioq_notify(loop, n), 0);
    assert_int_equal(h_wait(loop, t).result, 1);
    h_close_wait(loop, n);
    h_finish(loop);
}

static void test_multishot(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle n = notifier(loop);
    uint64_t t = h_tok();
    assert_int_equal(h_notify_wait(loop, n, IOQ_MULTISHOT, t), 0);
    for (int round = 1; round <= 3; round++) {
        for (int i = 0; i < round; i++)
            assert_int_equal(ioq_notify(loop, n), 0);
        ioq_cqe c = h_next(loop, t);
        assert_int_equal(c.result, round);
        assert_int_equal(c.flags, IOQ_CQE_MORE);
        h_assert_quiet(loop, 10);
    }
    uint64_t ct = h_tok();
    assert_int_equal(h_cancel(loop, t, ct), 0);
    assert_int_equal(h_wait(loop, t).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, ct).result, 1);
    /* The notifier lives on: a new wait works. */
    t = h_tok();
    assert_int_equal(h_notify_wait(loop, n, 0, t), 0);
    assert_int_equal(ioq_notify(loop, n), 0);
    assert_int_equal(h_wait(loop, t).result, 1);
    h_close_wait(loop, n);
    h_finish(loop);
}

enum { THREADS = 4, PER_THREAD = 100000 };

typedef struct {
    ioq_loop *loop;
    ioq_handle n;
    atomic_int *go;
    int count;      /* calls to make; 0 = until stop */
    atomic_int *stop;
    long ok, bad, other;
} notifier_arg;

static void *notifier_thread(void *p)
{
    notifier_arg *a = p;
    while (!atomic_load(a->go))
        ;
    for (long i = 0; a->count ? i < a->count : !atomic_load(a->stop); i++) {
        int rc = ioq_notify(a->loop, a->n);
        if (rc == 0)
            a->ok++;
        else if (rc == IOQ_EBADHANDLE)
            a->bad++;
        else
            a->other++;
        if (i % 5000 == 4999) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL); /* now and then find the loop asleep */
        }
    }
    return NULL;
}

static void test_any_thread(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle n = notifier(loop);
    uint64_t t = h_tok();
    atomic_int go = 0;
    pthread_t th[THREADS];
    notifier_arg a[THREADS] = {{0}};
    assert_int_equal(h_notify_wait(loop, n, IOQ_MULTISHOT, t), 0);
    for (int i = 0; i < THREADS; i++) {
        a[i].loop = loop;
        a[i].n = n;
        a[i].go = &go;
        a[i].count = PER_THREAD;
        pthread_create(&th[i], NULL, notifier_thread, &a[i]);
    }
    atomic_store(&go, 1);
    long total = 0, records = 0;
    uint64_t deadline = (uint64_t)time(NULL) + 60;
    while (total < (long)THREADS * PER_THREAD) {
        ioq_cqe c[16];
        int got = h_poll_into(loop, c, 16, 100 * MS);
        for (int i = 0; i < got; i++) {
            assert_int_equal(c[i].token, t);
            assert_true(c[i].result >= 1);
            assert_int_equal(c[i].flags, IOQ_CQE_MORE);
            total += (long)c[i].result;
            records++;
        }
        assert_true((uint64_t)time(NULL) < deadline);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].ok, PER_THREAD);
    }
    assert_int_equal(total, (long)THREADS * PER_THREAD);
    assert_true(records <= total);
    print_message("%ld notifications in %ld completions\n", total, records);
    h_assert_quiet(loop, 10);
    h_close_wait(loop, n);
    assert_int_equal(h_wait(loop, t).result, IOQ_ECANCELED);
    h_finish(loop);
}

/* A loop blocked in ioq_poll(-1) is woken by another thread's ioq_notify. */
static void *late_notify(void *p)
{
    notifier_arg *a = p;
    struct timespec ts = {0, 30 * 1000000};
    nanosleep(&ts, NULL);
    a->ok = ioq_notify(a->loop, a->n) == 0;
    return NULL;
}

static void test_wakes_blocked_loop(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle n = notifier(loop);
    uint64_t t = h_tok();
    assert_int_equal(h_notify_wait(loop, n, 0, t), 0);
    notifier_arg a = {.loop = loop, .n = n};
    pthread_t th;
    pthread_create(&th, NULL, late_notify, &a);
    ioq_cqe c;
    assert_int_equal(h_poll_into(loop, &c, 1, -1), 1);
    assert_int_equal(c.token, t);
    assert_int_equal(c.result, 1);
    pthread_join(th, NULL);
    assert_int_equal(a.ok, 1);
    h_close_wait(loop, n);
    h_finish(loop);
}

/* Threads keep notifying while the loop closes the notifier and makes new ones (which may
 * take the same slot): the old value only ever gives IOQ_EBADHANDLE, never a crash, and
 * never counts towards a new notifier. */
static void test_close_while_notifying(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    for (int round = 0; round < 20; round++) {
        ioq_handle n = notifier(loop);
        uint64_t t = h_tok();
        atomic_int go = 0, stop = 0;
        pthread_t th[2];
        notifier_arg a[2] = {{0}};
        assert_int_equal(h_notify_wait(loop, n, IOQ_MULTISHOT, t), 0);
        for (int i = 0; i < 2; i++) {
            a[i].loop = loop;
            a[i].n = n;
            a[i].go = &go;
            a[i].stop = &stop;
            pthread_create(&th[i], NULL, notifier_thread, &a[i]);
        }
        atomic_store(&go, 1);
        h_poll(loop, 1 * MS);
        h_poll(loop, 0);
        uint64_t tc = h_tok();
        assert_int_equal(h_close(loop, n, tc), 0);
        assert_int_equal(h_wait(loop, tc).result, 0);
        assert_true(h_done(loop, t));
        /* A new notifier, maybe in the same slot, while the threads still hit the old. */
        ioq_handle n2 = notifier(loop);
        uint64_t t2 = h_tok();
        assert_int_equal(h_notify_wait(loop, n2, 0, t2), 0);
        h_assert_quiet(loop, 2);
        atomic_store(&stop, 1);
        for (int i = 0; i < 2; i++) {
            pthread_join(th[i], NULL);
            assert_int_equal(a[i].other, 0);
        }
        assert_int_equal(ioq_notify(loop, n), IOQ_EBADHANDLE);
        assert_int_equal(ioq_notify(loop, n2), 0);
        assert_int_equal(h_wait(loop, t2).result, 1);
        h_close_wait(loop, n2);
    }
    h_finish(loop);
}

static void test_close_pending(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle n = notifier(loop);
    uint64_t t = h_tok(), tc = h_tok();
    assert_int_equal(h_notify_wait(loop, n, 0, t), 0);
    assert_int_equal(h_close(loop, n, tc), 0);
    assert_int_equal(ioq_notify(loop, n), IOQ_EBADHANDLE);
    assert_int_equal(ioq_notify_wait(loop, n, 0, h_tok()), IOQ_EBADHANDLE);
    ioq_cqe a = h_next_any(loop), b = h_next_any(loop);
    assert_int_equal(a.token, t);
    assert_int_equal(a.result, IOQ_ECANCELED);
    assert_int_equal(b.token, tc);
    assert_int_equal(b.result, 0);
    h_finish(loop);
}

static void test_loop_free(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle n = notifier(loop), n2 = notifier(loop);
    assert_int_equal(ioq_notify_wait(loop, n, IOQ_MULTISHOT, 1), 0);
    assert_int_equal(ioq_notify(loop, n), 0);
    assert_int_equal(ioq_notify(loop, n2), 0);
    ioq_loop_free(loop);
    h_forget(loop);
}

static void test_bad_args(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new(), *other = h_loop_new();
    ioq_handle n = notifier(loop), x = 0;
    assert_int_equal(ioq_notifier_new(NULL, &x), IOQ_EINVAL);
    assert_int_equal(ioq_notifier_new(loop, NULL), IOQ_EINVAL);
    assert_int_equal(ioq_notify(NULL, n), IOQ_EINVAL);
    assert_int_equal(ioq_notify(loop, 0), IOQ_EBADHANDLE);
    assert_int_equal(ioq_notify(loop, n + 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_notify(loop, ~(uint64_t)0), IOQ_EBADHANDLE);
    assert_int_equal(ioq_notify(other, n), IOQ_EBADHANDLE);
    assert_int_equal(ioq_notify_wait(NULL, n, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_notify_wait(loop, n, 2, 1), IOQ_EINVAL);
    assert_int_equal(ioq_notify_wait(loop, 0, 0, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_notify_wait(other, n, 0, 1), IOQ_EBADHANDLE);
    /* Not a notifier. */
    ioq_handle pool = 0;
    assert_int_equal(ioq_pool_new(loop, 1, 64, &pool), 0);
    assert_int_equal(ioq_notify(loop, pool), IOQ_EBADHANDLE);
    assert_int_equal(ioq_notify_wait(loop, pool, 0, 1), IOQ_EBADHANDLE);
    /* One wait at a time. */
    uint64_t t = h_tok();
    assert_int_equal(h_notify_wait(loop, n, 0, t), 0);
    assert_int_equal(ioq_notify_wait(loop, n, 0, h_tok()), IOQ_EBUSY);
    uint64_t os = 0;
    assert_int_equal(ioq_os_handle(loop, n, &os), IOQ_ENOTSUP);
    h_close_wait(loop, pool);
    h_close_wait(loop, n);
    assert_int_equal(h_wait(loop, t).result, IOQ_ECANCELED);
    h_finish(other);
    h_finish(loop);
}

/* Many notifiers, waits one-shot and multishot, notifications, cancels and closes: each
 * wait completes exactly once and the counts add up. */
static void test_exactly_once(void **state)
{
    (void)state;
    enum { N = 100 };
    ioq_loop *loop = h_loop_new();
    ioq_handle n[N];
    uint64_t t[N];
    for (int i = 0; i < N; i++) {
        n[i] = notifier(loop);
        t[i] = h_tok();
        assert_int_equal(h_notify_wait(loop, n[i], (i & 1) ? IOQ_MULTISHOT : 0, t[i]), 0);
    }
    for (int i = 0; i < N; i += 2)
        assert_int_equal(ioq_notify(loop, n[i]), 0);
    for (int k = 0; k < 3; k++)
        h_poll(loop, 5 * MS);
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0)
            assert_int_equal(h_cancel(loop, t[i], h_tok()), 0);
        assert_int_equal(h_close(loop, n[i], h_tok()), 0);
    }
    h_finish(loop);
}

/* --- wake-ups: the loop wakes for every batch, and a batch is never stranded --------------- */

typedef struct {
    ioq_loop *loop;
    ioq_handle n;
    int rounds, burst;   /* per round: one call, then `burst` more at once */
    long pause_ns;       /* before each round: time for the loop to fall asleep */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long acked;          /* calls the loop has counted */
    int failed;
} rt_arg;

/* Each round: one notification (the loop is asleep: it must be woken), then `burst` more
 * straight after, while the woken loop runs; then wait until the loop has counted them. */
static void *rt_producer(void *p)
{
    rt_arg *a = p;
    long sent = 0;
    for (int r = 0; r < a->rounds && !a->failed; r++) {
        if (a->pause_ns) {
            struct timespec ts = {0, a->pause_ns};
            nanosleep(&ts, NULL);
        }
        for (int i = 0; i <= a->burst; i++, sent++)
            if (ioq_notify(a->loop, a->n) != 0)
                a->failed = 1;
        pthread_mutex_lock(&a->mu);
        while (a->acked < sent && !a->failed)
            pthread_cond_wait(&a->cv, &a->mu);
        pthread_mutex_unlock(&a->mu);
    }
    return NULL;
}

static void run_rounds(int rounds, int burst, long pause_ns)
{
    ioq_loop *loop = h_loop_new();
    ioq_handle n = notifier(loop);
    uint64_t t = h_tok();
    rt_arg a = {.loop = loop, .n = n, .rounds = rounds, .burst = burst, .pause_ns = pause_ns};
    long want = (long)rounds * (burst + 1), total = 0;
    pthread_t th;
    pthread_mutex_init(&a.mu, NULL);
    pthread_cond_init(&a.cv, NULL);
    assert_int_equal(h_notify_wait(loop, n, IOQ_MULTISHOT, t), 0);
    pthread_create(&th, NULL, rt_producer, &a);
    while (total < want) {
        ioq_cqe c[8];
        /* No timeout: a notification that does not wake the loop hangs the test. */
        int got = h_poll_into(loop, c, 8, -1);
        for (int i = 0; i < got; i++) {
            assert_int_equal(c[i].token, t);
            assert_true(c[i].result >= 1);
            total += (long)c[i].result;
        }
        if (got > 0) {
            pthread_mutex_lock(&a.mu);
            a.acked = total;
            pthread_cond_signal(&a.cv);
            pthread_mutex_unlock(&a.mu);
        }
    }
    pthread_mutex_lock(&a.mu);
    a.failed |= total != want;
    pthread_cond_signal(&a.cv);
    pthread_mutex_unlock(&a.mu);
    pthread_join(th, NULL);
    assert_int_equal(total, want);
    assert_int_equal(a.failed, 0);
    h_assert_quiet(loop, 10);
    h_close_wait(loop, n);
    assert_int_equal(h_wait(loop, t).result, IOQ_ECANCELED);
    pthread_mutex_destroy(&a.mu);
    pthread_cond_destroy(&a.cv);
    h_finish(loop);
}

/* One notification in flight: every one must wake the sleeping loop. */
static void test_round_trips(void **state)
{
    (void)state;
    run_rounds(2000, 0, 0);
}

/* A producer that keeps notifying right after the call that woke the loop (the loop may
 * wait for that call to end before it sleeps again): all counted, none stranded. */
static void test_burst_after_wake(void **state)
{
    (void)state;
    run_rounds(200, 1000, 0);
}

/* Floods long enough to stay armed while the loop takes them (its lanes looked at only
 * now and then), each followed by one notification to the sleeping loop: the flood's
 * last signals must not be stranded, and the loop that settled must be woken again. */
static void test_flood_then_wake(void **state)
{
    (void)state;
    run_rounds(20, 100000, 0);
}

/* A waker held up right after its wake call, before it says the call is done: shorter
 * than the loop waits for it, and much longer (the loop stops waiting and sleeps). Either
 * way the next notification must still wake the loop. */
static atomic_long stall_ns, stalls_left;

static void stall_hook(void)
{
    if (atomic_fetch_sub(&stalls_left, 1) > 0) {
        long ns = atomic_load(&stall_ns);
        struct timespec ts = {ns / 1000000000, ns % 1000000000};
        nanosleep(&ts, NULL);
    }
}

static void stalled_waker(long ns)
{
    atomic_store(&stall_ns, ns);
    atomic_store(&stalls_left, 20);
    ioq__test_wake_hook(stall_hook);
    run_rounds(20, 3, 1 * MS);
    ioq__test_wake_hook(NULL);
    long left = atomic_load(&stalls_left);
    print_message("%ld wake calls held up\n", 20 - (left > 0 ? left : 0));
}

static void test_stalled_waker_short(void **state)
{
    (void)state;
    stalled_waker(100 * 1000);
}

static void test_stalled_waker_long(void **state)
{
    (void)state;
    stalled_waker(5 * MS);
}

/* More threads than a notifier has lanes, in bursts past IOQ__NOTIFY_ARM
 * with pauses in which the loop falls asleep: the first threads count in lanes, without a
 * fence once a batch is armed, the others in the shared count. Every call is reported,
 * and none is left behind when the producers stop: once they are done, the loop's next
 * poll must bring the rest without any further call (5 s without a record fails). */
enum { LANES = 4, ARM = 64 }; /* as core/loop.h: IOQ__NLANES, IOQ__NOTIFY_ARM */

static unsigned next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

typedef struct {
    ioq_loop *loop;
    ioq_handle n;
    atomic_int *done;
    unsigned seed;
    long sent;
} burst_arg;

static void *burst_thread(void *p)
{
    burst_arg *a = p;
    for (int r = 0; r < 200; r++) {
        int k = 1 + (int)(next_rand(&a->seed) % 400);
        for (int i = 0; i < k; i++)
            if (ioq_notify(a->loop, a->n) == 0)
                a->sent++;
        if (next_rand(&a->seed) % 3 == 0) {
            struct timespec ts = {0, (long)(next_rand(&a->seed) % 200) * 1000};
            nanosleep(&ts, NULL);
        }
    }
    atomic_fetch_add(a->done, 1);
    return NULL;
}

static void test_many_threads(void **state)
{
    (void)state;
    enum { T = LANES + 4 };
    ioq_loop *loop = h_loop_new();
    ioq_handle n = notifier(loop);
    uint64_t t = h_tok();
    atomic_int done = 0;
    pthread_t th[T];
    burst_arg a[T];
    long total = 0, want = 0;
    assert_int_equal(h_notify_wait(loop, n, IOQ_MULTISHOT, t), 0);
    for (int i = 0; i < T; i++) {
        a[i] = (burst_arg){.loop = loop, .n = n, .done = &done, .seed = 7u * (unsigned)i + 1};
        pthread_create(&th[i], NULL, burst_thread, &a[i]);
    }
    for (;;) {
        ioq_cqe c[8];
        int all = atomic_load(&done) == T, got;
        if (all && want == 0)
            for (int i = 0; i < T; i++)
                want += a[i].sent;
        if (all && total == want)
            break;
        got = h_poll_into(loop, c, 8, all ? 5000 * MS : 100 * MS);
        for (int i = 0; i < got; i++) {
            assert_int_equal(c[i].token, t);
            assert_true(c[i].result >= 1);
            total += (long)c[i].result;
        }
        if (all)
            assert_true(got > 0); /* a count left in a lane, nothing to wake the loop */
    }
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(total, want);
    h_assert_quiet(loop, 10);
    h_close_wait(loop, n);
    assert_int_equal(h_wait(loop, t).result, IOQ_ECANCELED);
    h_finish(loop);
}

/* From the loop's own thread: a batch past IOQ__NOTIFY_ARM (its later calls unfenced) is
 * one completion with the exact count, and so is the next, smaller one. */
static void test_armed_batch(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle n = notifier(loop);
    uint64_t t = h_tok();
    assert_int_equal(h_notify_wait(loop, n, IOQ_MULTISHOT, t), 0);
    for (int i = 0; i < 5 * ARM; i++)
        assert_int_equal(ioq_notify(loop, n), 0);
    ioq_cqe c;
    assert_int_equal(h_poll_into(loop, &c, 1, -1), 1);
    assert_int_equal(c.result, 5 * ARM);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ioq_notify(loop, n), 0);
    assert_int_equal(h_poll_into(loop, &c, 1, -1), 1);
    assert_int_equal(c.result, 3);
    h_assert_quiet(loop, 2);
    h_close_wait(loop, n);
    assert_int_equal(h_wait(loop, t).result, IOQ_ECANCELED);
    h_finish(loop);
}

static const struct CMUnitTest notify_tests[] = {
    H_TEST(basic),
    H_TEST(coalescing),
    H_TEST(before_wait),
    H_TEST(multishot),
    H_TEST(any_thread),
    H_TEST(wakes_blocked_loop),
    H_TEST(close_while_notifying),
    H_TEST(close_pending),
    H_TEST(loop_free),
    H_TEST(bad_args),
    H_TEST(exactly_once),
    H_TEST(round_trips),
    H_TEST(burst_after_wake),
    H_TEST(flood_then_wake),
    H_TEST(stalled_waker_short),
    H_TEST(stalled_waker_long),
    H_TEST(many_threads),
    H_TEST(armed_batch),
};

H_MAIN(notify_tests)
