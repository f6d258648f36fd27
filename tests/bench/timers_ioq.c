/*
 * timers_ioq - schedule N timeouts, then let them fire (or cancel them all); prints the
 * elapsed time and the peak RSS. IOQ_BACKEND picks the backend.
 *
 *   timers_ioq fire|cancel [N]      (default 1000000)
 */
#include <ioq.h>

#include <stdio.h>

#include "bench_common.h"

#define CANCEL_TOKEN_BIT (1ull << 62)

int main(int argc, char **argv)
{
    static ioq_cqe cqes[512];
    ioq_loop *loop;
    uint32_t n, i;
    uint64_t want, got = 0;
    int mode = bench_timer_args(argc, argv, &n), rc;
    double t0, t1;

    if (mode < 0) {
        fprintf(stderr, "usage: timers_ioq fire|cancel [count]\n");
        return 2;
    }
    if ((rc = ioq_loop_new(NULL, &loop)) != 0) {
        fprintf(stderr, "timers_ioq: %s\n", ioq_strerror(rc));
        return 1;
    }
    t0 = bench_now();
    for (i = 0; i < n; i++) {
        rc = ioq_timeout(loop, (uint64_t)bench_timer_ms(i) * 1000000u, i + 1u);
        if (rc != 0) {
            fprintf(stderr, "timers_ioq: timeout %u: %s\n", i, ioq_strerror(rc));
            return 1;
        }
    }
    want = n;
    if (mode == 1) {
        for (i = 0; i < n; i++) {
            rc = ioq_cancel(loop, i + 1u, CANCEL_TOKEN_BIT | i);
            if (rc != 0) {
                fprintf(stderr, "timers_ioq: cancel %u: %s\n", i, ioq_strerror(rc));
                return 1;
            }
        }
        want = 2u * (uint64_t)n; /* every timeout and every cancel completes */
    }
    while (got < want) {
        rc = ioq_poll(loop, cqes, 512, -1);
        if (rc < 0) {
            fprintf(stderr, "timers_ioq: poll: %s\n", ioq_strerror(rc));
            return 1;
        }
        got += (uint64_t)rc;
    }
    t1 = bench_now();
    printf("ioq-%s timers_%s_s %.4f\n", ioq_loop_backend(loop), argv[1], t1 - t0);
    printf("ioq-%s timers_%s_maxrss_kb %ld\n", ioq_loop_backend(loop), argv[1],
           bench_maxrss_kb());
    ioq_loop_free(loop);
    return 0;
}
