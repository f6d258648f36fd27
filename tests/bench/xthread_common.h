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
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

static uint32_t xt_rt_count = 100000, xt_flood_count = 1000000;
static sem_t xt_back;            /* loop -> worker in the round-trip phase */
static atomic_uint xt_sent;      /* messages the worker has sent (flood) */
static double xt_t0, xt_t1;

static void xt_send(void);       /* per library: wake the loop from the worker */
/* Set by the libraries whose wake-up does not say how many messages it covers (libuv,
 * libev, libevent): their worker counts each message in xt_sent for the loop to read, as
 * a program using them must. ioq's notifier counts its calls itself, and every post is
 * a message, so its worker sends nothing else. */
static int xt_count_sent;

static void *xt_worker(void *arg)
{
    uint32_t i;
    (void)arg;
    xt_t0 = bench_now();
    for (i = 0; i < xt_rt_count; i++) {
        xt_send();
        while (sem_wait(&xt_back) != 0) {
        }
    }
    xt_t1 = bench_now();
    if (xt_count_sent) {
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
}

#endif
