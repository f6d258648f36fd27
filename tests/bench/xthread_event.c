/*
 * xthread_event - cross-thread benchmark with event_active() on a libevent base made
 * thread-safe by evthread_use_pthreads(). Activating an event that is already active
 * only merges flags, so sends coalesce as with the async handles of libuv and libev.
 */
#include <event2/event.h>
#include <event2/thread.h>

#include "xthread_common.h"

static struct event_base *base;
static struct event *ev;
static uint32_t rt;
static uint64_t wakeups;
static double f1;

static void xt_send(void) { event_active(ev, EV_READ, 0); }

static void on_active(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
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
        event_base_loopbreak(base);
    }
}

int main(int argc, char **argv)
{
    pthread_t th;

    xt_count_sent = 1; /* the loop reads xt_sent: the wake-up does not count */
    xt_args(argc, argv);
    evthread_use_pthreads();
    base = event_base_new();
    ev = event_new(base, -1, EV_PERSIST, on_active, NULL);
    if (!base || !ev)
        return 1;
    pthread_create(&th, NULL, xt_worker, NULL);
    event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
    pthread_join(th, NULL);
    xt_report("libevent", f1, wakeups);
    event_free(ev);
    event_base_free(base);
    return 0;
}
