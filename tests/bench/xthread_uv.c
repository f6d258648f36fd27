/*
 * xthread_uv - cross-thread benchmark with uv_async_send(): sends made while the callback
 * is pending coalesce into one call, so the callback reads a shared counter.
 */
#include <uv.h>

#include "xthread_common.h"

static uv_async_t async;
static uint32_t rt, seen;
static uint64_t wakeups;
static double f1;

static void xt_send(void) { uv_async_send(&async); }

static void on_async(uv_async_t *a)
{
    if (rt < xt_rt_count) {
        if (++rt == xt_rt_count)
            xt_loop_mark(0);
        sem_post(&xt_back);
        return;
    }
    wakeups++;
    xt_loop_tick();
    seen = atomic_load_explicit(&xt_sent, memory_order_acquire);
    if (seen == xt_flood_count) {
        f1 = bench_now();
        xt_loop_mark(1);
        uv_close((uv_handle_t *)a, NULL);
    }
}

int main(int argc, char **argv)
{
    uv_loop_t *loop = uv_default_loop();
    pthread_t th;

    xt_count_sent = 1; /* the loop reads xt_sent: the wake-up does not count */
    xt_args(argc, argv);
    uv_async_init(loop, &async, on_async);
    pthread_create(&th, NULL, xt_worker, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    xt_report("libuv", f1, wakeups);
    return 0;
}
