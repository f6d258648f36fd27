/*
 * http_uv - an HTTP/1.1 keep-alive "Hello, World!" server on libuv, the peer of
 * examples/c/http_hello for wrk. Like that server it answers GET-style requests only:
 * every "\r\n\r\n" ends one request (the match may span reads), and the answers to one
 * read go out as one uv_write of pieces that all point at one static response.
 *
 *   http_uv [addr:port]     (default 127.0.0.1:8080)
 */
#include <uv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PIECES 64

static const char response[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "Connection: keep-alive\r\n"
    "\r\n"
    "Hello, World!";

typedef struct {
    uv_tcp_t tcp;
    unsigned matched; /* bytes of "\r\n\r\n" seen at the end of the last read */
} conn;

typedef struct {
    uv_write_t req;
    uv_buf_t bufs[MAX_PIECES];
} write_req;

static uv_loop_t *loop;

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char slab[65536]; /* one read at a time: the loop is single-threaded */
    (void)h;
    (void)suggested;
    buf->base = slab;
    buf->len = sizeof slab;
}

static void close_cb(uv_handle_t *h) { free(h); }

static void write_cb(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    static const char end[] = "\r\n\r\n";
    conn *c = (conn *)s;
    unsigned requests = 0;
    ssize_t i;

    if (n < 0) {
        uv_close((uv_handle_t *)s, close_cb);
        return;
    }
    for (i = 0; i < n; i++) {
        char ch = buf->base[i];
        if (ch == end[c->matched]) {
            if (++c->matched == 4) {
                requests++;
                c->matched = 0;
            }
        } else {
            c->matched = ch == '\r' ? 1 : 0;
        }
    }
    while (requests > 0) {
        unsigned k, m = requests < MAX_PIECES ? requests : MAX_PIECES;
        write_req *w = malloc(sizeof *w);
        if (!w)
            break;
        for (k = 0; k < m; k++)
            w->bufs[k] = uv_buf_init((char *)response, sizeof response - 1);
        if (uv_write(&w->req, s, w->bufs, m, write_cb) != 0) {
            free(w);
            break;
        }
        requests -= m;
    }
}

static void on_conn(uv_stream_t *server, int status)
{
    conn *c;
    if (status < 0)
        return;
    c = calloc(1, sizeof *c);
    uv_tcp_init(loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) == 0) {
        uv_tcp_nodelay(&c->tcp, 1);
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    } else {
        uv_close((uv_handle_t *)&c->tcp, close_cb);
    }
}

int main(int argc, char **argv)
{
    const char *where = argc > 1 ? argv[1] : "127.0.0.1:8080";
    char host[64];
    const char *colon = strrchr(where, ':');
    struct sockaddr_in addr;
    uv_tcp_t server;
    size_t hl;

    if (!colon || (hl = (size_t)(colon - where)) >= sizeof host) {
        fprintf(stderr, "usage: http_uv [addr:port]\n");
        return 2;
    }
    memcpy(host, where, hl);
    host[hl] = 0;
    loop = uv_default_loop();
    uv_ip4_addr(host, atoi(colon + 1), &addr);
    uv_tcp_init(loop, &server);
    if (uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&server, 1024, on_conn) != 0) {
        fprintf(stderr, "http_uv: cannot listen on %s\n", where);
        return 1;
    }
    printf("http_uv listening on %s\n", where);
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
