/*
 * timers_uv - the timer benchmark on libuv: one uv_timer_t per timer (the caller owns the
 * handle memory, as libuv's documentation has it), started, then fired or stopped.
 *
 *   timers_uv fire|cancel [N]
 */
#include <uv.h>

#include <stdio.h>

#include "bench_common.h"

static uint32_t fired;

static void on_timer(uv_timer_t *t)
{
    (void)t;
    fired++;
}

int main(int argc, char **argv)
{
    uint32_t n, i;
    int mode = bench_timer_args(argc, argv, &n);
    uv_loop_t *loop = uv_default_loop();
    uv_timer_t *timers;
    double t0, t1;
    bench_cpu c0, c1;

    if (mode < 0) {
        fprintf(stderr, "usage: timers_uv fire|cancel [count]\n");
        return 2;
    }
    timers = malloc((size_t)n * sizeof *timers);
    if (!timers)
        return 1;
    t0 = bench_now();
    c0 = bench_cpu_now();
    for (i = 0; i < n; i++) {
        uv_timer_init(loop, &timers[i]);
        uv_timer_start(&timers[i], on_timer, bench_timer_ms(i), 0);
    }
    if (mode == 1) {
        for (i = 0; i < n; i++)
            uv_timer_stop(&timers[i]);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    t1 = bench_now();
    c1 = bench_cpu_now();
    if (mode == 0 && fired != n) {
        fprintf(stderr, "timers_uv: %u of %u fired\n", fired, n);
        return 1;
    }
    printf("libuv timers_%s_s %.4f\n", argv[1], t1 - t0);
    printf("libuv timers_%s_maxrss_kb %ld\n", argv[1], bench_maxrss_kb());
    {
        char metric[32];
        snprintf(metric, sizeof metric, "timers_%s", argv[1]);
        bench_print_cpu("libuv", metric, c0, c1, n, "timer");
    }
    free(timers);
    return 0;
}
