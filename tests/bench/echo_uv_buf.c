/*
 * echo_uv_buf - a TCP echo server on libuv written the way a performance-minded libuv user
 * writes it: each connection owns one receive buffer (alloc_cb hands it out, no malloc per
 * read), the echo goes out with uv_try_write, and only what the socket did not take is
 * copied into a pending write (a uv_write_t embedded in the connection) while reading pauses
 * until it is done. The other libuv peer, echo_uv, copies libuv's own benchmark (a 64 KiB
 * malloc per read and a malloc'ed request per write); bench.sh runs both, labelled.
 *
 *   echo_uv_buf [addr:port]     (default 127.0.0.1:7000)
 */
#include <uv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_SIZE 16384 /* as ioq's echo_server */

typedef struct {
    uv_tcp_t tcp; /* first: the handle's address is the connection's */
    uv_write_t wreq;
    char buf[BUF_SIZE];
    char pending[BUF_SIZE]; /* what uv_try_write left over, until uv_write is done */
} conn;

static uv_loop_t *loop;

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn *c = (conn *)h;
    (void)suggested;
    *buf = uv_buf_init(c->buf, sizeof c->buf);
}

static void close_cb(uv_handle_t *h) { free(h); }

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void write_cb(uv_write_t *req, int status)
{
    conn *c = (conn *)req->handle;
    if (status < 0) {
        if (!uv_is_closing((uv_handle_t *)c))
            uv_close((uv_handle_t *)c, close_cb);
        return;
    }
    uv_read_start((uv_stream_t *)c, alloc_cb, read_cb);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    conn *c = (conn *)s;
    uv_buf_t rest;
    int w;
    if (n < 0) {
        uv_close((uv_handle_t *)s, close_cb);
        return;
    }
    if (n == 0)
        return;
    rest = uv_buf_init(buf->base, (unsigned)n);
    w = uv_try_write(s, &rest, 1);
    if (w == (int)n)
        return;
    if (w < 0 && w != UV_EAGAIN) {
        uv_close((uv_handle_t *)s, close_cb);
        return;
    }
    if (w < 0)
        w = 0;
    /* The socket is full: keep the rest, stop reading until it is written. */
    memcpy(c->pending, buf->base + w, (size_t)(n - w));
    rest = uv_buf_init(c->pending, (unsigned)(n - w));
    uv_read_stop(s);
    if (uv_write(&c->wreq, s, &rest, 1, write_cb) != 0)
        uv_close((uv_handle_t *)s, close_cb);
}

static void on_conn(uv_stream_t *server, int status)
{
    conn *c;
    if (status < 0 || !(c = malloc(sizeof *c)))
        return;
    uv_tcp_init(loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) == 0) {
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    } else {
        uv_close((uv_handle_t *)&c->tcp, close_cb);
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
        fprintf(stderr, "usage: echo_uv_buf [addr:port]\n");
        return 2;
    }
    memcpy(host, where, hl);
    host[hl] = 0;
    loop = uv_default_loop();
    uv_ip4_addr(host, atoi(colon + 1), &addr);
    uv_tcp_init(loop, &server);
    if (uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&server, 1024, on_conn) != 0) {
        fprintf(stderr, "echo_uv_buf: cannot listen on %s\n", where);
        return 1;
    }
    printf("echo_uv_buf listening on %s (libuv %s)\n", where, uv_version_string());
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
