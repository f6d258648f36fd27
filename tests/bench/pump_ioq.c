/*
 * pump_ioq - the pump benchmark's sender on ioq: PUMP_INFLIGHT sends of 64 KiB queued at
 * once, each completion queues the next. IOQ_BACKEND picks the backend.
 */
#include <ioq.h>

#include "pump_common.h"

int main(int argc, char **argv)
{
    static ioq_cqe cqes[64];
    double secs = pump_seconds(argc, argv), t0 = 0, t1 = 0;
    int port = pump_sink_start();
    ioq_loop *loop;
    ioq_addr addr;
    ioq_handle h = 0;
    unsigned long long bytes = 0;
    unsigned inflight = 0, i;
    int rc, n, stopping = 0;
    char where[32], name[32];

    if ((rc = ioq_loop_new(NULL, &loop)) != 0) {
        fprintf(stderr, "pump_ioq: %s\n", ioq_strerror(rc));
        return 1;
    }
    snprintf(where, sizeof where, "127.0.0.1:%d", port);
    ioq_addr_parse(where, &addr);
    if ((rc = ioq_connect(loop, &addr, 0, 1000)) != 0) {
        fprintf(stderr, "pump_ioq: connect: %s\n", ioq_strerror(rc));
        return 1;
    }
    for (;;) {
        n = ioq_poll(loop, cqes, 64, -1);
        if (n < 0) {
            fprintf(stderr, "pump_ioq: poll: %s\n", ioq_strerror(n));
            return 1;
        }
        for (i = 0; i < (unsigned)n; i++) {
            ioq_cqe *c = &cqes[i];
            if (c->result < 0) {
                fprintf(stderr, "pump_ioq: op %u: %s\n", c->op, ioq_strerror(c->result));
                return 1;
            }
            if (c->token == 1000) {
                h = (ioq_handle)c->value;
                t0 = bench_now();
                for (inflight = 0; inflight < PUMP_INFLIGHT; inflight++)
                    ioq_send(loop, h, pump_buf[inflight], PUMP_CHUNK, inflight);
                continue;
            }
            bytes += (unsigned long long)c->result;
            inflight--;
            if (!stopping && (t1 = bench_now()) - t0 >= secs)
                stopping = 1;
            if (!stopping) {
                ioq_send(loop, h, pump_buf[c->token], PUMP_CHUNK, c->token);
                inflight++;
            }
        }
        if (stopping && inflight == 0)
            break;
    }
    snprintf(name, sizeof name, "ioq-%s", ioq_loop_backend(loop));
    ioq_loop_free(loop); /* closes the connection: the sink sees its end */
    pump_sink_wait();
    pump_report(name, bytes, t1 - t0);
    return 0;
}
