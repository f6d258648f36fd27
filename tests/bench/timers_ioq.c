/*
 * timers_ioq - schedule N timeouts, then let them fire (or cancel them all); prints the
 * elapsed time, the peak RSS and the user and system time per timer. IOQ_BACKEND picks the
 * backend. With "shared" every timer has the same token (the header allows it) and one
 * ioq_cancel ends them all: the time must stay linear in N, as with distinct tokens.
 * With "at" every timer is an ioq_timeout_at with the deadline base + delay, base being
 * ioq_now() read once before the first: what a libev or libuv user gets, whose timers count
 * from the loop time cached before they start. Without it each ioq_timeout counts from its
 * own clock read, so its deadlines move on while the timers are being scheduled.
 *
 *   timers_ioq fire|cancel [N [shared|at]]      (default 1000000)
 */
#include <ioq.h>

#include <stdio.h>
#include <string.h>

#include "bench_common.h"

#define CANCEL_TOKEN_BIT (1ull << 62)

int main(int argc, char **argv)
{
    static ioq_cqe cqes[512];
    ioq_loop *loop;
    uint32_t n, i;
    uint64_t want, got = 0;
    int mode = bench_timer_args(argc, argv, &n), rc;
    int shared = argc > 3 && strcmp(argv[3], "shared") == 0;
    int at = argc > 3 && strcmp(argv[3], "at") == 0;
    const char *sfx = shared ? "-shared" : at ? "-at" : "";
    uint64_t base;
    char name[64], metric[48];
    double t0, t1;
    bench_cpu c0, c1;

    if (mode < 0) {
        fprintf(stderr, "usage: timers_ioq fire|cancel [count [shared|at]]\n");
        return 2;
    }
    if ((rc = ioq_loop_new(NULL, &loop)) != 0) {
        fprintf(stderr, "timers_ioq: %s\n", ioq_strerror(rc));
        return 1;
    }
    t0 = bench_now();
    c0 = bench_cpu_now();
    base = ioq_now(loop);
    for (i = 0; i < n; i++) {
        uint64_t ns = (uint64_t)bench_timer_ms(i) * 1000000u, tok = shared ? 1u : i + 1u;
        rc = at ? ioq_timeout_at(loop, base + ns, tok) : ioq_timeout(loop, ns, tok);
        if (rc != 0) {
            fprintf(stderr, "timers_ioq: timeout %u: %s\n", i, ioq_strerror(rc));
            return 1;
        }
    }
    want = n;
    if (mode == 1 && shared) {
        rc = ioq_cancel(loop, 1u, CANCEL_TOKEN_BIT);
        if (rc != 0) {
            fprintf(stderr, "timers_ioq: cancel: %s\n", ioq_strerror(rc));
            return 1;
        }
        want = (uint64_t)n + 1u;
    } else if (mode == 1) {
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
    c1 = bench_cpu_now();
    snprintf(name, sizeof name, "ioq-%s%s", ioq_loop_backend(loop), sfx);
    snprintf(metric, sizeof metric, "timers_%s", argv[1]);
    printf("%s %s_s %.4f\n", name, metric, t1 - t0);
    printf("%s %s_maxrss_kb %ld\n", name, metric, bench_maxrss_kb());
    bench_print_cpu(name, metric, c0, c1, n, "timer");
    ioq_loop_free(loop);
    return 0;
}
