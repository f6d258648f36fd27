/*
 * Helpers shared by the timer and cross-thread benchmarks: a monotonic clock and the peak
 * resident set size. Each program prints lines "<name> <metric> <value>" for bench.sh.
 */
#ifndef IOQ_BENCH_COMMON_H
#define IOQ_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline long bench_maxrss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss; /* kilobytes on Linux */
}

/* User and system CPU time of this process so far, in seconds (getrusage: no perf needed). */
typedef struct {
    double user, sys;
} bench_cpu;

static inline bench_cpu bench_cpu_now(void)
{
    struct rusage ru;
    bench_cpu c;
    getrusage(RUSAGE_SELF, &ru);
    c.user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    c.sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    return c;
}

/* Prints "<name> <metric>_user_ns_per_<unit> X" and the same for system time: where the
 * time between a and b went, per unit of work (count units). */
static inline void bench_print_cpu(const char *name, const char *metric, bench_cpu a,
                                   bench_cpu b, double count, const char *unit)
{
    printf("%s %s_user_ns_per_%s %.1f\n", name, metric, unit, (b.user - a.user) * 1e9 / count);
    printf("%s %s_sys_ns_per_%s %.1f\n", name, metric, unit, (b.sys - a.sys) * 1e9 / count);
}

/* Timer i waits (i % 100) ms: every library sees the same spread of deadlines, and the
 * millisecond clocks of libuv and libevent can represent all of them. */
static inline unsigned bench_timer_ms(uint32_t i) { return i % 100u; }

/* argv: mode ("fire" or "cancel") and count; returns 0 for fire, 1 for cancel, -1 bad. */
static inline int bench_timer_args(int argc, char **argv, uint32_t *n)
{
    *n = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 1000000u;
    if (argc < 2 || *n == 0)
        return -1;
    if (strcmp(argv[1], "fire") == 0)
        return 0;
    if (strcmp(argv[1], "cancel") == 0)
        return 1;
    return -1;
}

#endif
