/*
 * timers_event - the timer benchmark on libevent: one event per timer from evtimer_new()
 * (libevent's documented way), added, then fired or deleted.
 *
 *   timers_event fire|cancel [N]
 */
#include <event2/event.h>

#include <stdio.h>

#include "bench_common.h"

static uint32_t fired;

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    fired++;
}

int main(int argc, char **argv)
{
    uint32_t n, i;
    int mode = bench_timer_args(argc, argv, &n);
    struct event_base *base;
    struct event **timers;
    double t0, t1;
    bench_cpu c0, c1;

    if (mode < 0) {
        fprintf(stderr, "usage: timers_event fire|cancel [count]\n");
        return 2;
    }
    base = event_base_new();
    timers = malloc((size_t)n * sizeof *timers);
    if (!base || !timers)
        return 1;
    t0 = bench_now();
    c0 = bench_cpu_now();
    for (i = 0; i < n; i++) {
        struct timeval tv = {0, (long)bench_timer_ms(i) * 1000};
        timers[i] = evtimer_new(base, on_timer, NULL);
        evtimer_add(timers[i], &tv);
    }
    if (mode == 1) {
        for (i = 0; i < n; i++)
            evtimer_del(timers[i]);
    }
    event_base_dispatch(base);
    t1 = bench_now();
    c1 = bench_cpu_now();
    if (mode == 0 && fired != n) {
        fprintf(stderr, "timers_event: %u of %u fired\n", fired, n);
        return 1;
    }
    printf("libevent timers_%s_s %.4f\n", argv[1], t1 - t0);
    printf("libevent timers_%s_maxrss_kb %ld\n", argv[1], bench_maxrss_kb());
    {
        char metric[32];
        snprintf(metric, sizeof metric, "timers_%s", argv[1]);
        bench_print_cpu("libevent", metric, c0, c1, n, "timer");
    }
    for (i = 0; i < n; i++)
        event_free(timers[i]);
    free(timers);
    event_base_free(base);
    return 0;
}
