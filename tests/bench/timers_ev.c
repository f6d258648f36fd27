/*
 * timers_ev - the timer benchmark on libev: one ev_timer watcher per timer, started, then
 * fired or stopped.
 *
 *   timers_ev fire|cancel [N]
 */
#include <ev.h>

#include <stdio.h>

#include "bench_common.h"

static uint32_t fired;

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    fired++;
}

int main(int argc, char **argv)
{
    uint32_t n, i;
    int mode = bench_timer_args(argc, argv, &n);
    struct ev_loop *loop = ev_default_loop(0);
    ev_timer *timers;
    double t0, t1;
    bench_cpu c0, c1;

    if (mode < 0) {
        fprintf(stderr, "usage: timers_ev fire|cancel [count]\n");
        return 2;
    }
    timers = malloc((size_t)n * sizeof *timers);
    if (!timers)
        return 1;
    t0 = bench_now();
    c0 = bench_cpu_now();
    for (i = 0; i < n; i++) {
        ev_timer_init(&timers[i], on_timer, bench_timer_ms(i) / 1000.0, 0.);
        ev_timer_start(loop, &timers[i]);
    }
    if (mode == 1) {
        for (i = 0; i < n; i++)
            ev_timer_stop(loop, &timers[i]);
    }
    ev_run(loop, 0);
    t1 = bench_now();
    c1 = bench_cpu_now();
    if (mode == 0 && fired != n) {
        fprintf(stderr, "timers_ev: %u of %u fired\n", fired, n);
        return 1;
    }
    printf("libev timers_%s_s %.4f\n", argv[1], t1 - t0);
    printf("libev timers_%s_maxrss_kb %ld\n", argv[1], bench_maxrss_kb());
    {
        char metric[32];
        snprintf(metric, sizeof metric, "timers_%s", argv[1]);
        bench_print_cpu("libev", metric, c0, c1, n, "timer");
    }
    free(timers);
    return 0;
}
