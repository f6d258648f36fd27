/*
 * xthread_ioq - cross-thread benchmark of ioq, two ways (IOQ_XT_MODE):
 *  - "notify" (default): ioq_notify() on a notifier with a multishot ioq_notify_wait();
 *    notifications made while the loop is busy coalesce into one completion whose result
 *    counts them, like libuv's uv_async. "wakeups" counts the completions of the flood.
 *  - "post": ioq_post(); every post is one completion (posts never coalesce), so
 *    "wakeups" counts the ioq_poll() calls that returned work.
 */
#include <ioq.h>

#include <string.h>

#include "xthread_common.h"

static ioq_loop *loop;
static ioq_handle notifier;
static int post_mode;

static void xt_send(void)
{
    if (post_mode) {
        while (ioq_post(loop, 1, 1) != 0) {
        }
    } else {
        ioq_notify(loop, notifier);
    }
}

int main(int argc, char **argv)
{
    static ioq_cqe cqes[256];
    const char *mode = getenv("IOQ_XT_MODE");
    pthread_t th;
    uint32_t rt = 0, flood = 0;
    uint64_t wakeups = 0;
    double f1;
    char name[40];
    int n, i, rc;

    xt_args(argc, argv);
    post_mode = mode && strcmp(mode, "post") == 0;
    if ((rc = ioq_loop_new(NULL, &loop)) != 0 ||
        (!post_mode && ((rc = ioq_notifier_new(loop, &notifier)) != 0 ||
                        (rc = ioq_notify_wait(loop, notifier, IOQ_MULTISHOT, 1)) != 0))) {
        fprintf(stderr, "xthread_ioq: %s\n", ioq_strerror(rc));
        return 1;
    }
    pthread_create(&th, NULL, xt_worker, NULL);
    while (rt < xt_rt_count || flood < xt_flood_count) {
        n = ioq_poll(loop, cqes, 256, -1);
        if (n < 0) {
            fprintf(stderr, "xthread_ioq: poll: %s\n", ioq_strerror(n));
            return 1;
        }
        if (n > 0 && rt == xt_rt_count && post_mode)
            wakeups++;
        for (i = 0; i < n; i++) {
            /* A notification's result counts the calls it covers; a post's is 1. */
            uint32_t k = cqes[i].result > 0 ? (uint32_t)cqes[i].result : 0;
            if (rt < xt_rt_count) {
                rt += k; /* one message in flight: k is 1 */
                if (rt == xt_rt_count)
                    xt_loop_mark(0);
                sem_post(&xt_back);
            } else {
                flood += k;
                xt_loop_tick();
                if (!post_mode)
                    wakeups++;
            }
        }
    }
    f1 = bench_now();
    xt_loop_mark(1);
    pthread_join(th, NULL);
    snprintf(name, sizeof name, "ioq-%s%s", post_mode ? "post-" : "", ioq_loop_backend(loop));
    xt_report(name, f1, wakeups);
    ioq_loop_free(loop);
    return 0;
}
