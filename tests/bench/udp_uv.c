/*
 * udp_uv - the UDP server of the benchmark suite on libuv (protocol in udp_common.h), as
 * libuv's documentation writes one: uv_udp_recv_start() with an alloc callback, and since
 * libuv 1.40 the UV_UDP_RECVMMSG flag of uv_udp_init_ex(), with which libuv reads up to 20
 * datagrams per recvmmsg() call into one buffer of 20 x 64 KiB chunks. Answers go out with
 * uv_udp_try_send(); only when the socket is busy does a copy wait in a uv_udp_send().
 *
 *   udp_uv [addr:port]     (default 127.0.0.1:0: prints the port it got)
 */
#include <uv.h>

#include <stdio.h>
#include <stdlib.h>

#include "udp_common.h"

#if UV_VERSION_HEX >= 0x012800 /* UV_UDP_RECVMMSG: libuv 1.40 */
#  define RECV_FLAGS UV_UDP_RECVMMSG
#  define RECV_BUF (20 * 65536) /* libuv reads one datagram per 64 KiB chunk */
#else
#  define RECV_FLAGS 0
#  define RECV_BUF 65536
#endif

typedef struct {
    uv_udp_send_t req;
    char data[];
} send_req;

/* Each datagram is dealt with inside the callback, so one buffer serves every read. */
static char recv_buf[RECV_BUF];

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(recv_buf, sizeof recv_buf);
}

static void send_cb(uv_udp_send_t *req, int status)
{
    (void)status;
    free(req);
}

static void answer(uv_udp_t *h, const char *p, size_t n, const struct sockaddr *to)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    send_req *r;
    if (uv_udp_try_send(h, &b, 1, to) >= 0)
        return;
    r = malloc(sizeof *r + n);
    if (!r)
        return;
    memcpy(r->data, p, n);
    b = uv_buf_init(r->data, (unsigned)n);
    if (uv_udp_send(&r->req, h, &b, 1, to, send_cb) != 0)
        free(r);
}

static void recv_cb(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags)
{
    char reply[64];
    size_t rlen = 0;
    (void)flags; /* UV_UDP_MMSG_FREE: the buffer is static, nothing to free */
    if (n <= 0 || from == NULL)
        return;
    switch (udp_handle(buf->base, (size_t)n, reply, &rlen)) {
    case UDP_ECHO:
        answer(h, buf->base, (size_t)n, from);
        break;
    case UDP_REPLY:
        answer(h, reply, rlen, from);
        break;
    default:
        break;
    }
}

int main(int argc, char **argv)
{
    const char *where = argc > 1 ? argv[1] : "127.0.0.1:0";
    char host[64];
    const char *colon = strrchr(where, ':');
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_loop_t *loop = uv_default_loop();
    uv_udp_t sock;
    size_t hl;

    if (!colon || (hl = (size_t)(colon - where)) >= sizeof host) {
        fprintf(stderr, "usage: udp_uv [addr:port]\n");
        return 2;
    }
    memcpy(host, where, hl);
    host[hl] = 0;
    if (uv_ip4_addr(host, atoi(colon + 1), &addr) != 0 ||
        uv_udp_init_ex(loop, &sock, AF_INET | RECV_FLAGS) != 0 ||
        uv_udp_bind(&sock, (const struct sockaddr *)&addr, 0) != 0 ||
        uv_udp_recv_start(&sock, alloc_cb, recv_cb) != 0) {
        fprintf(stderr, "udp_uv: cannot bind %s\n", where);
        return 1;
    }
    uv_udp_getsockname(&sock, (struct sockaddr *)&bound, &blen);
    printf("udp_uv listening on %s:%d (libuv %s, recvmmsg %s)\n", host,
           ntohs(((struct sockaddr_in *)&bound)->sin_port), uv_version_string(),
#if UV_VERSION_HEX >= 0x012800 /* UV_UDP_RECVMMSG: libuv 1.40 */
           uv_udp_using_recvmmsg(&sock) ? "on" : "off"
#else
           "off"
#endif
    );
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
