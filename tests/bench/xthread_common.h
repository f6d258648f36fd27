/*
 * Cross-thread benchmark shared part. Two phases, each against the loop's thread:
 *  - round trip: a worker thread wakes the loop, the loop answers through a semaphore,
 *    one message in flight; gives round trips per second.
 *  - flood: the worker sends N wake-ups as fast as it can; gives messages per second and
 *    how many times the loop woke for them (libraries that coalesce wake fewer times).
 * The library-specific file supplies xt_send() and runs the loop; prints
 * "<name> <metric> <value>" lines.
 *
 *   xthread_<lib> [round_trips] [flood_count]    (defaults 100000 1000000)
 *
 * Every program sends the same number of messages from one worker, and its loop stops when
 * it has learnt that all of them arrived.
 */
#ifndef IOQ_BENCH_XTHREAD_COMMON_H
#define IOQ_BENCH_XTHREAD_COMMON_H

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <sys/resource.h>
#include <time.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

static uint32_t xt_rt_count = 100000, xt_flood_count = 1000000;
static sem_t xt_back;            /* loop -> worker in the round-trip phase */
static atomic_uint xt_sent;      /* messages the worker has sent (flood) */
static double xt_t0, xt_t1;

/* XT_DIAG=1: each thread's context switches, CPU time and CPUs during the flood, on
 * stderr (Linux). */
static int xt_diag;
struct xt_mark {
    long vcsw, ivcsw;
    double cpu;
    int on;
};
static struct xt_mark xt_wk[2], xt_lp[2];
static unsigned xt_wk_moves, xt_wk_same; /* worker samples on another CPU / the loop's */
static _Atomic int xt_loop_cpu = -1;

static void xt_mark_now(struct xt_mark *m)
{
    struct timespec ts;
    struct rusage ru;
#ifdef RUSAGE_THREAD
    getrusage(RUSAGE_THREAD, &ru);
#else
    getrusage(RUSAGE_SELF, &ru);
#endif
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    m->vcsw = ru.ru_nvcsw;
    m->ivcsw = ru.ru_nivcsw;
    m->cpu = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    m->on = sched_getcpu();
}

/* Loop thread: at the flood's first message (which 0) and at its last (1). */
static void xt_loop_mark(int which)
{
    if (!xt_diag)
        return;
    xt_mark_now(&xt_lp[which]);
    atomic_store(&xt_loop_cpu, which ? -1 : xt_lp[which].on);
}

/* Loop thread, at each wake-up of the flood: where it runs now. */
static void xt_loop_tick(void)
{
    if (xt_diag)
        atomic_store_explicit(&xt_loop_cpu, sched_getcpu(), memory_order_relaxed);
}

static void xt_diag_sample(void)
{
    static int last = -1;
    int c = sched_getcpu();
    if (last >= 0 && c != last)
        xt_wk_moves++;
    if (c == atomic_load_explicit(&xt_loop_cpu, memory_order_relaxed))
        xt_wk_same++;
    last = c;
}

static void xt_send(void);       /* per library: wake the loop from the worker */
/* Set by the libraries whose wake-up does not say how many messages it covers (libuv,
 * libev, libevent): their worker counts each message in xt_sent for the loop to read, as
 * a program using them must. ioq's notifier counts its calls itself, and every post is
 * a message, so its worker sends nothing else. */
static int xt_count_sent;

/* XT_PIN=<loop cpu>,<worker cpu>: pin the two threads (Linux), to compare one core with
 * two. */
static int xt_pin[2] = {-1, -1};

static void xt_pin_self(int cpu)
{
#ifdef __linux__
    cpu_set_t set;
    if (cpu < 0)
        return;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
#else
    (void)cpu;
#endif
}

static void *xt_worker(void *arg)
{
    uint32_t i;
    (void)arg;
    xt_pin_self(xt_pin[1]);
    xt_t0 = bench_now();
    for (i = 0; i < xt_rt_count; i++) {
        xt_send();
        while (sem_wait(&xt_back) != 0) {
        }
    }
    xt_t1 = bench_now();
    if (xt_diag) {
        xt_mark_now(&xt_wk[0]);
        for (i = 0; i < xt_flood_count; i++) {
            if (xt_count_sent)
                atomic_fetch_add_explicit(&xt_sent, 1, memory_order_release);
            xt_send();
            if ((i & 4095) == 0)
                xt_diag_sample();
        }
        xt_mark_now(&xt_wk[1]);
    } else if (xt_count_sent) {
        for (i = 0; i < xt_flood_count; i++) {
            atomic_fetch_add_explicit(&xt_sent, 1, memory_order_release);
            xt_send();
        }
    } else {
        for (i = 0; i < xt_flood_count; i++)
            xt_send();
    }
    return NULL;
}

static void xt_args(int argc, char **argv)
{
    if (argc > 1)
        xt_rt_count = (uint32_t)strtoul(argv[1], NULL, 10);
    if (argc > 2)
        xt_flood_count = (uint32_t)strtoul(argv[2], NULL, 10);
    /* XT_COUNT_SENT=1: count in xt_sent whatever the library (the same worker loop for
     * all, to compare the wake-up calls alone). */
    if (getenv("XT_COUNT_SENT") && strcmp(getenv("XT_COUNT_SENT"), "1") == 0)
        xt_count_sent = 1;
    if (getenv("XT_PIN"))
        sscanf(getenv("XT_PIN"), "%d,%d", &xt_pin[0], &xt_pin[1]);
    xt_pin_self(xt_pin[0]);
    xt_diag = getenv("XT_DIAG") && strcmp(getenv("XT_DIAG"), "1") == 0;
    sem_init(&xt_back, 0, 0);
}

/* The flood is timed from the worker's start of it (xt_t1, the end of the round trips) to
 * the loop's sight of its last message (flood_t1): the same two points for every library.
 * (A start taken by the loop after its answer to the last round trip would miss whatever
 * the worker sent while the loop's thread was preempted by that answer.) */
static void xt_report(const char *name, double flood_t1, uint64_t wakeups)
{
    printf("%s xthread_rt_per_s %.0f\n", name, (double)xt_rt_count / (xt_t1 - xt_t0));
    printf("%s xthread_flood_per_s %.0f\n", name,
           (double)xt_flood_count / (flood_t1 - xt_t1));
    printf("%s xthread_flood_wakeups %llu\n", name, (unsigned long long)wakeups);
    if (xt_diag)
        fprintf(stderr,
                "diag %s worker: vcsw %ld ivcsw %ld cpu %.3f s on %d->%d moves %u "
                "same-as-loop %u/%u | loop: vcsw %ld ivcsw %ld cpu %.3f s on %d->%d\n",
                name, xt_wk[1].vcsw - xt_wk[0].vcsw, xt_wk[1].ivcsw - xt_wk[0].ivcsw,
                xt_wk[1].cpu - xt_wk[0].cpu, xt_wk[0].on, xt_wk[1].on, xt_wk_moves, xt_wk_same,
                (xt_flood_count + 4095) / 4096, xt_lp[1].vcsw - xt_lp[0].vcsw,
                xt_lp[1].ivcsw - xt_lp[0].ivcsw, xt_lp[1].cpu - xt_lp[0].cpu, xt_lp[0].on,
                xt_lp[1].on);
}

#endif
