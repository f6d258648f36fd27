/*
 * xthread_ev - cross-thread benchmark with ev_async_send(): like libuv's, pending sends
 * coalesce, so the callback reads a shared counter.
 */
#include <ev.h>

#include "xthread_common.h"

static struct ev_loop *loop;
static ev_async async;
static uint32_t rt;
static uint64_t wakeups;
static double f1;

static void xt_send(void) { ev_async_send(loop, &async); }

static void on_async(struct ev_loop *l, ev_async *w, int revents)
{
    (void)revents;
    if (rt < xt_rt_count) {
        if (++rt == xt_rt_count)
            xt_loop_mark(0);
        sem_post(&xt_back);
        return;
    }
    wakeups++;
    xt_loop_tick();
    if (atomic_load_explicit(&xt_sent, memory_order_acquire) == xt_flood_count) {
        f1 = bench_now();
        xt_loop_mark(1);
        ev_async_stop(l, w);
    }
}

int main(int argc, char **argv)
{
    pthread_t th;

    xt_count_sent = 1; /* the loop reads xt_sent: the wake-up does not count */
    xt_args(argc, argv);
    loop = ev_default_loop(0);
    ev_async_init(&async, on_async);
    ev_async_start(loop, &async);
    pthread_create(&th, NULL, xt_worker, NULL);
    ev_run(loop, 0);
    pthread_join(th, NULL);
    xt_report("libev", f1, wakeups);
    return 0;
}
