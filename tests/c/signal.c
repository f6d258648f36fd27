/* ioq_signal: POSIX signals as completions. */
#include "harness.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MS 1000000ll

static int h_signal(ioq_loop *l, int signum, uint32_t flags, uint64_t tok)
{
    return h_track(l, ioq_signal(l, signum, flags, tok), tok, IOQ_OP_SIGNAL,
                   flags & IOQ_MULTISHOT);
}

static void (*handler_of(int signum))(int)
{
    struct sigaction sa;
    assert_int_equal(sigaction(signum, NULL, &sa), 0);
    return sa.sa_handler;
}

static void test_basic(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint64_t t = h_tok();
    assert_true(handler_of(SIGUSR1) == SIG_DFL);
    assert_int_equal(h_signal(loop, SIGUSR1, 0, t), 0);
    /* The default action (terminate) is replaced while the op lives. */
    assert_true(handler_of(SIGUSR1) != SIG_DFL);
    h_assert_quiet(loop, 10);
    assert_int_equal(raise(SIGUSR1), 0);
    ioq_cqe c = h_wait(loop, t);
    assert_int_equal(c.result, 1);
    assert_int_equal(c.value, SIGUSR1);
    assert_int_equal(c.flags, 0);
    assert_int_equal(c.op, IOQ_OP_SIGNAL);
    /* ... and back once it has ended. */
    assert_true(handler_of(SIGUSR1) == SIG_DFL);
    h_finish(loop);
}

static void test_coalescing(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint64_t t = h_tok();
    assert_int_equal(h_signal(loop, SIGUSR1, IOQ_MULTISHOT, t), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(raise(SIGUSR1), 0);
    ioq_cqe c = h_next(loop, t);
    assert_int_equal(c.result, 3);
    assert_int_equal(c.flags, IOQ_CQE_MORE);
    h_assert_quiet(loop, 10);
    assert_int_equal(raise(SIGUSR1), 0);
    c = h_next(loop, t);
    assert_int_equal(c.result, 1);
    assert_int_equal(c.flags, IOQ_CQE_MORE);
    uint64_t ct = h_tok();
    assert_int_equal(h_cancel(loop, t, ct), 0);
    assert_int_equal(h_wait(loop, t).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, ct).result, 1);
    assert_true(handler_of(SIGUSR1) == SIG_DFL);
    h_finish(loop);
}

/* Several loops (and several ops in one loop) watching one signal each get it. */
static void test_several_loops(void **state)
{
    (void)state;
    ioq_loop *a = h_loop_new(), *b = h_loop_new();
    uint64_t ta = h_tok(), tb = h_tok(), tb2 = h_tok();
    assert_int_equal(h_signal(a, SIGUSR2, 0, ta), 0);
    assert_int_equal(h_signal(b, SIGUSR2, IOQ_MULTISHOT, tb), 0);
    assert_int_equal(h_signal(b, SIGUSR2, 0, tb2), 0);
    assert_int_equal(raise(SIGUSR2), 0);
    assert_int_equal(h_wait(a, ta).result, 1);
    assert_int_equal(h_next(b, tb).result, 1);
    assert_int_equal(h_wait(b, tb2).result, 1);
    /* a's op is gone, b's still holds the signal. */
    assert_true(handler_of(SIGUSR2) != SIG_DFL);
    assert_int_equal(raise(SIGUSR2), 0);
    assert_int_equal(h_next(b, tb).result, 1);
    h_assert_quiet(a, 5);
    assert_int_equal(h_cancel(b, tb, h_tok()), 0);
    h_finish(a);
    h_finish(b);
    assert_true(handler_of(SIGUSR2) == SIG_DFL);
}

static int host_hits;
static void host_handler(int signum)
{
    (void)signum;
    host_hits++;
}

/* The host's own handler is replaced while ioq watches and comes back afterwards. */
static void test_restores_host_handler(void **state)
{
    (void)state;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = host_handler;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    ioq_loop *loop = h_loop_new();
    uint64_t t = h_tok();
    assert_int_equal(h_signal(loop, SIGUSR1, 0, t), 0);
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(h_wait(loop, t).result, 1);
    assert_int_equal(host_hits, 0);
    assert_true(handler_of(SIGUSR1) == host_handler);
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(host_hits, 1);
    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
    h_finish(loop);
}

typedef struct {
    int signum;
} kill_arg;

static void *late_kill(void *p)
{
    kill_arg *a = p;
    struct timespec ts = {0, 30 * 1000000};
    nanosleep(&ts, NULL);
    kill(getpid(), a->signum);
    return NULL;
}

/* A loop blocked in ioq_poll(-1) wakes for a signal sent by another thread. */
static void test_wakes_blocked_loop(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint64_t t = h_tok();
    assert_int_equal(h_signal(loop, SIGUSR1, 0, t), 0);
    kill_arg a = {SIGUSR1};
    pthread_t th;
    pthread_create(&th, NULL, late_kill, &a);
    ioq_cqe c;
    int n;
    do {
        n = h_poll_into(loop, &c, 1, -1);
    } while (n == 0);
    assert_int_equal(n, 1);
    assert_int_equal(c.token, t);
    assert_int_equal(c.result, 1);
    pthread_join(th, NULL);
    h_finish(loop);
}

static void test_loop_free(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    assert_int_equal(ioq_signal(loop, SIGUSR1, IOQ_MULTISHOT, 1), 0);
    assert_int_equal(ioq_signal(loop, SIGUSR2, 0, 2), 0);
    ioq_loop_free(loop);
    h_forget(loop);
    assert_true(handler_of(SIGUSR1) == SIG_DFL);
    assert_true(handler_of(SIGUSR2) == SIG_DFL);
}

static void test_bad_args(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    assert_int_equal(ioq_signal(NULL, SIGUSR1, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_signal(loop, 0, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_signal(loop, -1, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_signal(loop, 65, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_signal(loop, 100000, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_signal(loop, SIGKILL, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_signal(loop, SIGSTOP, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_signal(loop, SIGUSR1, 2, 1), IOQ_EINVAL);
    assert_true(handler_of(SIGUSR1) == SIG_DFL);
    h_finish(loop);
}

/* Ops on several signals, one-shot and multishot, deliveries and cancels: each completes
 * exactly once, and every signal gets its action back. */
static void test_exactly_once(void **state)
{
    (void)state;
    static const int sigs[] = {SIGUSR1, SIGUSR2, SIGWINCH, SIGHUP};
    ioq_loop *loop = h_loop_new();
    uint64_t t[4][3];
    for (int s = 0; s < 4; s++)
        for (int k = 0; k < 3; k++) {
            t[s][k] = h_tok();
            assert_int_equal(h_signal(loop, sigs[s], k == 1 ? IOQ_MULTISHOT : 0, t[s][k]), 0);
        }
    for (int s = 0; s < 4; s += 2)
        assert_int_equal(raise(sigs[s]), 0);
    for (int k = 0; k < 3; k++)
        h_poll(loop, 5 * MS);
    for (int s = 0; s < 4; s++)
        for (int k = 0; k < 3; k++)
            if (!h_done(loop, t[s][k]))
                assert_int_equal(h_cancel(loop, t[s][k], h_tok()), 0);
    h_finish(loop);
    for (int s = 0; s < 4; s++)
        assert_true(handler_of(sigs[s]) == SIG_DFL);
}

static const struct CMUnitTest signal_tests[] = {
    H_TEST(basic),
    H_TEST(coalescing),
    H_TEST(several_loops),
    H_TEST(restores_host_handler),
    H_TEST(wakes_blocked_loop),
    H_TEST(loop_free),
    H_TEST(bad_args),
    H_TEST(exactly_once),
};

H_MAIN(signal_tests)
