/*
 * pingpong_uv - libuv's ping_pongs benchmark, written the way libuv's own benchmark and
 * echo server are: uv_read_start() with an alloc callback handing out buffers from a free
 * list, uv_write() with a request per write, uv_now() for the clock, uv_shutdown() at the
 * end and a close once the server's end of stream arrives. See pingpong_common.h.
 */
#include <uv.h>

#include "pingpong_common.h"

#define CHECK(expr)                                                                   \
    do {                                                                              \
        int rc_ = (expr);                                                             \
        if (rc_ != 0) {                                                               \
            fprintf(stderr, "pingpong_uv: %s: %s\n", #expr, uv_strerror(rc_));        \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

/* ---- the echo server (libuv's echo-server.c shape) ---------------------------------- */

typedef struct {
    uv_write_t req;
    uv_buf_t buf;
} write_req_t;

static uv_tcp_t srv_listener;
static uv_tcp_t srv_conn;

static void srv_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)handle;
    buf->base = malloc(suggested);
    buf->len = suggested;
}

static void srv_after_write(uv_write_t *req, int status)
{
    write_req_t *wr = (write_req_t *)req;
    (void)status;
    free(wr->buf.base);
    free(wr);
}

static void srv_on_close(uv_handle_t *handle)
{
    (void)handle;
}

static void srv_after_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    write_req_t *wr;
    if (nread < 0) {
        free(buf->base);
        uv_close((uv_handle_t *)stream, srv_on_close);
        uv_close((uv_handle_t *)&srv_listener, srv_on_close);
        return;
    }
    if (nread == 0) {
        free(buf->base);
        return;
    }
    wr = malloc(sizeof *wr);
    wr->buf = uv_buf_init(buf->base, (unsigned int)nread);
    CHECK(uv_write(&wr->req, stream, &wr->buf, 1, srv_after_write));
}

static void srv_on_connection(uv_stream_t *server, int status)
{
    CHECK(status);
    CHECK(uv_tcp_init(server->loop, &srv_conn));
    CHECK(uv_accept(server, (uv_stream_t *)&srv_conn));
    CHECK(uv_read_start((uv_stream_t *)&srv_conn, srv_alloc, srv_after_read));
}

static int server(int report_fd)
{
    uv_loop_t *loop = uv_default_loop();
    struct sockaddr_in addr;
    struct sockaddr_storage name;
    int namelen = sizeof name;

    CHECK(uv_ip4_addr("127.0.0.1", 0, &addr));
    CHECK(uv_tcp_init(loop, &srv_listener));
    CHECK(uv_tcp_bind(&srv_listener, (const struct sockaddr *)&addr, 0));
    CHECK(uv_listen((uv_stream_t *)&srv_listener, 128, srv_on_connection));
    CHECK(uv_tcp_getsockname(&srv_listener, (struct sockaddr *)&name, &namelen));
    if (pp_server_report(report_fd, ntohs(((struct sockaddr_in *)&name)->sin_port)) != 0)
        return 1;
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 0;
}

/* ---- the pinger (libuv's benchmark-ping-pongs.c shape) ------------------------------ */

typedef struct buf_s {
    uv_buf_t uv_buf;
    struct buf_s *next;
} buf_t;

typedef struct {
    uint64_t pongs;
    unsigned state;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
} pinger_t;

static buf_t *buf_freelist;
static uint64_t start_time, stop_time, limit_ms;
static int completed;

static void buf_alloc(uv_handle_t *handle, size_t size, uv_buf_t *buf)
{
    buf_t *ab = buf_freelist;
    (void)handle;
    if (ab != NULL) {
        buf_freelist = ab->next;
        *buf = ab->uv_buf;
        return;
    }
    ab = malloc(size + sizeof *ab);
    ab->uv_buf.len = size;
    ab->uv_buf.base = (char *)ab + sizeof *ab;
    *buf = ab->uv_buf;
}

static void buf_free(const uv_buf_t *buf)
{
    buf_t *ab = (buf_t *)(buf->base - sizeof *ab);
    ab->next = buf_freelist;
    buf_freelist = ab;
}

static void pinger_close_cb(uv_handle_t *handle)
{
    (void)handle;
    completed = 1;
}

static void pinger_write_cb(uv_write_t *req, int status)
{
    CHECK(status);
    free(req);
}

static void pinger_write_ping(pinger_t *pinger)
{
    uv_write_t *req = malloc(sizeof *req);
    uv_buf_t buf = uv_buf_init((char *)PING, PING_LEN);
    CHECK(uv_write(req, (uv_stream_t *)&pinger->tcp, &buf, 1, pinger_write_cb));
}

static void pinger_shutdown_cb(uv_shutdown_t *req, int status)
{
    (void)req;
    CHECK(status);
}

static void pinger_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    pinger_t *pinger = stream->data;
    ssize_t i;

    if (nread < 0) {
        if (nread != UV_EOF) {
            fprintf(stderr, "pingpong_uv: read: %s\n", uv_strerror((int)nread));
            exit(1);
        }
        if (buf->base)
            buf_free(buf);
        uv_close((uv_handle_t *)stream, pinger_close_cb);
        return;
    }
    for (i = 0; i < nread; i++) {
        if (buf->base[i] != PING[pinger->state]) {
            fprintf(stderr, "pingpong_uv: wrong byte in the echo\n");
            exit(1);
        }
        pinger->state = (pinger->state + 1) % PING_LEN;
        if (pinger->state == 0) {
            pinger->pongs++;
            if (uv_now(stream->loop) - start_time >= limit_ms) {
                uv_update_time(stream->loop);
                stop_time = uv_hrtime();
                CHECK(uv_shutdown(&pinger->shutdown_req, stream, pinger_shutdown_cb));
                break;
            }
            pinger_write_ping(pinger);
        }
    }
    buf_free(buf);
}

static void pinger_connect_cb(uv_connect_t *req, int status)
{
    pinger_t *pinger = req->handle->data;
    CHECK(status);
    pinger_write_ping(pinger);
    CHECK(uv_read_start(req->handle, buf_alloc, pinger_read_cb));
}

int main(int argc, char **argv)
{
    double seconds = pp_seconds(argc, argv);
    pp_server srv = pp_server_start(server);
    uv_loop_t *loop = uv_default_loop();
    struct sockaddr_in addr;
    pinger_t pinger;
    uint64_t t0;

    memset(&pinger, 0, sizeof pinger);
    limit_ms = (uint64_t)(seconds * 1000);
    CHECK(uv_ip4_addr("127.0.0.1", srv.port, &addr));
    CHECK(uv_tcp_init(loop, &pinger.tcp));
    pinger.tcp.data = &pinger;
    CHECK(uv_tcp_connect(&pinger.connect_req, &pinger.tcp, (const struct sockaddr *)&addr,
                         pinger_connect_cb));
    uv_update_time(loop);
    start_time = uv_now(loop);
    t0 = uv_hrtime();
    uv_run(loop, UV_RUN_DEFAULT);
    if (!completed)
        return 1;
    printf("libuv %.0f\n", (double)pinger.pongs * 1e9 / (double)(stop_time - t0));
    while (buf_freelist != NULL) {
        buf_t *next = buf_freelist->next;
        free(buf_freelist);
        buf_freelist = next;
    }
    uv_loop_close(loop);
    return pp_server_wait(srv) == 0 ? 0 : 1;
}
