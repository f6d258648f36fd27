/*
 * echo_uv - a TCP echo server on libuv, written the way libuv's own documentation and
 * benchmarks write it (uv_read_start with an alloc callback, one uv_write per read that
 * owns the buffer until its callback). The peer of ioq's echo_server in tests/bench.
 *
 *   echo_uv [addr:port]     (default 127.0.0.1:7000)
 */
#include <uv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uv_write_t req;
    uv_buf_t buf;
} write_req;

static uv_loop_t *loop;

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void close_cb(uv_handle_t *h) { free(h); }

static void write_cb(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    (void)status;
    free(w->buf.base);
    free(w);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n > 0) {
        write_req *w = malloc(sizeof *w);
        w->buf = uv_buf_init(buf->base, (unsigned)n);
        if (uv_write(&w->req, s, &w->buf, 1, write_cb) == 0)
            return;
        free(w);
    }
    free(buf->base);
    if (n < 0)
        uv_close((uv_handle_t *)s, close_cb);
}

static void on_conn(uv_stream_t *server, int status)
{
    uv_tcp_t *c;
    if (status < 0)
        return;
    c = malloc(sizeof *c);
    uv_tcp_init(loop, c);
    if (uv_accept(server, (uv_stream_t *)c) == 0) {
        uv_read_start((uv_stream_t *)c, alloc_cb, read_cb);
    } else {
        uv_close((uv_handle_t *)c, close_cb);
    }
}

int main(int argc, char **argv)
{
    const char *where = argc > 1 ? argv[1] : "127.0.0.1:7000";
    char host[64];
    const char *colon = strrchr(where, ':');
    struct sockaddr_in addr;
    uv_tcp_t server;
    size_t hl;

    if (!colon || (hl = (size_t)(colon - where)) >= sizeof host) {
        fprintf(stderr, "usage: echo_uv [addr:port]\n");
        return 2;
    }
    memcpy(host, where, hl);
    host[hl] = 0;
    loop = uv_default_loop();
    uv_ip4_addr(host, atoi(colon + 1), &addr);
    uv_tcp_init(loop, &server);
    if (uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&server, 1024, on_conn) != 0) {
        fprintf(stderr, "echo_uv: cannot listen on %s\n", where);
        return 1;
    }
    printf("echo_uv listening on %s (libuv %s)\n", where, uv_version_string());
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
