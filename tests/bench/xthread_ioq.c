/*
 * xthread_ioq - cross-thread benchmark with ioq_post(): every post is one completion
 * (posts never coalesce), so "wakeups" counts the ioq_poll() calls that returned work.
 */
#include <ioq.h>

#include "xthread_common.h"

static ioq_loop *loop;

static void xt_send(void)
{
    while (ioq_post(loop, 1, 0) != 0) {
    }
}

int main(int argc, char **argv)
{
    static ioq_cqe cqes[256];
    pthread_t th;
    uint32_t rt = 0, flood = 0;
    uint64_t wakeups = 0;
    double f0 = 0, f1;
    char name[32];
    int n, i, rc;

    xt_args(argc, argv);
    if ((rc = ioq_loop_new(NULL, &loop)) != 0) {
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
        if (n > 0 && rt == xt_rt_count)
            wakeups++;
        for (i = 0; i < n; i++) {
            if (rt < xt_rt_count) {
                rt++;
                sem_post(&xt_back);
                if (rt == xt_rt_count)
                    f0 = bench_now();
            } else {
                flood++;
            }
        }
    }
    f1 = bench_now();
    pthread_join(th, NULL);
    snprintf(name, sizeof name, "ioq-%s", ioq_loop_backend(loop));
    xt_report(name, f0, f1, wakeups);
    ioq_loop_free(loop);
    return 0;
}
