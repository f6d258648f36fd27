/*
 * pingpong_ioq - libuv's ping_pongs benchmark on ioq (see pingpong_common.h).
 * The backend is ioq's default, or the one named by the IOQ_BACKEND variable; the name
 * printed is "ioq-<backend>".
 */
#include <ioq.h>

#include "pingpong_common.h"

enum { OP_ACCEPT = 1, OP_CONNECT, OP_RECV, OP_SEND, OP_CLOSE };

static void check(int64_t rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "pingpong_ioq: %s: %s\n", what, ioq_strerror(rc));
        exit(1);
    }
}

/* Polls until the completion of token arrives (nothing else is in flight then). */
static ioq_cqe wait_one(ioq_loop *loop, uint64_t token)
{
    ioq_cqe c;
    do {
        check(ioq_poll(loop, &c, 1, -1), "poll");
    } while (c.token != token);
    return c;
}

static int server(int report_fd)
{
    ioq_loop *loop;
    ioq_handle lst, h;
    ioq_addr addr;
    ioq_cqe c;
    char buf[65536];

    check(ioq_loop_new(NULL, &loop), "loop");
    ioq_addr_parse("127.0.0.1:0", &addr);
    check(ioq_tcp_listen(loop, &addr, 0, 0, &lst), "listen");
    check(ioq_sockname(loop, lst, &addr), "sockname");
    check(ioq_accept(loop, lst, 0, OP_ACCEPT), "accept");
    if (pp_server_report(report_fd, addr.port) != 0)
        return 1;
    c = wait_one(loop, OP_ACCEPT);
    check(c.result, "accept");
    h = c.value;
    /* echo: receive, send back what arrived, receive again, until the end of stream */
    for (;;) {
        check(ioq_recv(loop, h, buf, sizeof buf, OP_RECV), "recv");
        c = wait_one(loop, OP_RECV);
        if (c.result <= 0)
            break;
        check(ioq_send(loop, h, buf, (size_t)c.result, OP_SEND), "send");
        check(wait_one(loop, OP_SEND).result, "send");
    }
    ioq_loop_free(loop); /* closes the connection and the listener */
    return 0;
}

int main(int argc, char **argv)
{
    double seconds = pp_seconds(argc, argv);
    pp_server srv = pp_server_start(server);
    ioq_loop *loop;
    ioq_addr addr;
    ioq_handle h;
    ioq_cqe c;
    char buf[64];
    uint64_t t0, t1, limit, pongs = 0;
    unsigned state = 0;

    check(ioq_loop_new(NULL, &loop), "loop");
    ioq_addr_parse("127.0.0.1", &addr);
    addr.port = (uint16_t)srv.port;
    check(ioq_connect(loop, &addr, 0, OP_CONNECT), "connect");
    c = wait_one(loop, OP_CONNECT);
    check(c.result, "connect");
    h = c.value;

    t0 = ioq_now(loop);
    limit = (uint64_t)(seconds * 1e9);
    /* The send and the receive of a round are submitted together: one poll per round. */
    check(ioq_send(loop, h, PING, PING_LEN, OP_SEND), "send");
    check(ioq_recv(loop, h, buf, sizeof buf, OP_RECV), "recv");
    for (;;) {
        int64_t k;
        int again = 0;
        check(ioq_poll(loop, &c, 1, -1), "poll");
        if (c.token == OP_SEND) {
            check(c.result, "send");
            continue;
        }
        check(c.result, "recv");
        if (c.result == 0) {
            fprintf(stderr, "pingpong_ioq: the server closed the connection\n");
            return 1;
        }
        for (k = 0; k < c.result; k++) {
            if (buf[k] != PING[state]) {
                fprintf(stderr, "pingpong_ioq: wrong byte in the echo\n");
                return 1;
            }
            state = (state + 1) % PING_LEN;
            if (state == 0) {
                pongs++;
                again = 1;
            }
        }
        if (again && ioq_now(loop) - t0 >= limit)
            break;
        if (again)
            check(ioq_send(loop, h, PING, PING_LEN, OP_SEND), "send");
        check(ioq_recv(loop, h, buf, sizeof buf, OP_RECV), "recv");
    }
    t1 = ioq_now(loop);
    check(ioq_close(loop, h, OP_CLOSE), "close");
    wait_one(loop, OP_CLOSE);
    printf("ioq-%s %.0f\n", ioq_loop_backend(loop), (double)pongs * 1e9 / (double)(t1 - t0));
    ioq_loop_free(loop);
    return pp_server_wait(srv) == 0 ? 0 : 1;
}
