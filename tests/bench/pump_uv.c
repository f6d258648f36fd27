/*
 * pump_uv - the pump benchmark's sender on libuv: PUMP_INFLIGHT uv_write calls of 64 KiB
 * queued at once, each write callback queues the next (as libuv's own pump benchmark
 * keeps its write queue full).
 */
#include <uv.h>

#include "pump_common.h"

static uv_loop_t *loop;
static uv_tcp_t tcp;
static uv_connect_t connect_req;
static uv_write_t writes[PUMP_INFLIGHT];
static uv_buf_t bufs[PUMP_INFLIGHT];
static double secs, t0, t1;
static unsigned long long bytes;
static int stopping;

static void write_cb(uv_write_t *req, int status)
{
    unsigned i = (unsigned)(req - writes);
    if (status < 0) {
        if (stopping)
            return; /* cancelled by the close */
        fprintf(stderr, "pump_uv: write: %s\n", uv_strerror(status));
        exit(1);
    }
    bytes += PUMP_CHUNK;
    if (!stopping && (t1 = bench_now()) - t0 >= secs) {
        stopping = 1;
        uv_close((uv_handle_t *)&tcp, NULL); /* writes still queued end with ECANCELED */
    }
    if (!stopping)
        uv_write(&writes[i], (uv_stream_t *)&tcp, &bufs[i], 1, write_cb);
}

static void connect_cb(uv_connect_t *req, int status)
{
    unsigned i;
    (void)req;
    if (status < 0) {
        fprintf(stderr, "pump_uv: connect: %s\n", uv_strerror(status));
        exit(1);
    }
    t0 = bench_now();
    for (i = 0; i < PUMP_INFLIGHT; i++) {
        bufs[i] = uv_buf_init(pump_buf[i], PUMP_CHUNK);
        uv_write(&writes[i], (uv_stream_t *)&tcp, &bufs[i], 1, write_cb);
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in sin;
    int port;

    secs = pump_seconds(argc, argv);
    port = pump_sink_start();
    loop = uv_default_loop();
    uv_ip4_addr("127.0.0.1", port, &sin);
    uv_tcp_init(loop, &tcp);
    uv_tcp_connect(&connect_req, &tcp, (const struct sockaddr *)&sin, connect_cb);
    uv_run(loop, UV_RUN_DEFAULT);
    pump_sink_wait();
    pump_report("libuv", bytes, t1 - t0);
    return 0;
}
