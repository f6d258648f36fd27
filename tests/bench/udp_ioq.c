/*
 * udp_ioq - the UDP server of the benchmark suite on ioq (protocol in udp_common.h): ping-
 * pong datagrams go back to their sender, pummel datagrams are counted. The completion
 * model's way to keep a datagram socket busy is to have many receives in flight: each slot
 * owns a buffer and an address, its ioq_recvfrom is submitted again as soon as the
 * datagram is dealt with (after the ioq_sendto of the answer, if there is one), and one
 * ioq_poll() hands out the completions of many datagrams. IOQ_BACKEND picks the backend.
 *
 *   udp_ioq [addr:port]     (default 127.0.0.1:0: prints the port it got)
 */
#include <ioq.h>

#include <stdio.h>
#include <stdlib.h>

#include "udp_common.h"

#define SLOTS 64 /* receives in flight */
#define MAX_CQES 128

enum { OP_RECV, OP_SEND };

typedef struct slot {
    ioq_addr from; /* owned by ioq while the receive is in flight */
    char buf[UDP_MAX_DGRAM];
} slot;

static ioq_loop *loop;
static ioq_handle sock;
static slot slots[SLOTS];

static void check(int64_t rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "udp_ioq: %s: %s\n", what, ioq_strerror(rc));
        exit(1);
    }
}

static uint64_t token_make(uint32_t i, unsigned op) { return ((uint64_t)i << 8) | op; }

static void slot_recv(uint32_t i)
{
    check(ioq_recvfrom(loop, sock, slots[i].buf, sizeof slots[i].buf, &slots[i].from,
                       token_make(i, OP_RECV)),
          "recvfrom");
}

static void dispatch(const ioq_cqe *cqe)
{
    uint32_t i = (uint32_t)(cqe->token >> 8);
    slot *s = &slots[i];
    size_t rlen = 0;

    if ((cqe->token & 0xff) == OP_SEND) {
        /* a failed answer is a lost datagram, as the client knows */
        slot_recv(i);
        return;
    }
    if (cqe->result < 0) {
        /* an ICMP error of an earlier answer (the client went away) ends one receive */
        if (cqe->result != IOQ_ECONNREFUSED)
            fprintf(stderr, "udp_ioq: recvfrom: %s\n", ioq_strerror(cqe->result));
        slot_recv(i);
        return;
    }
    switch (udp_handle(s->buf, (size_t)cqe->result, s->buf, &rlen)) {
    case UDP_ECHO:
        rlen = (size_t)cqe->result;
        /* fall through */
    case UDP_REPLY:
        check(ioq_sendto(loop, sock, s->buf, rlen, &s->from, token_make(i, OP_SEND)),
              "sendto");
        break;
    default:
        slot_recv(i);
        break;
    }
}

int main(int argc, char **argv)
{
    const char *where = argc > 1 ? argv[1] : "127.0.0.1:0";
    ioq_cqe cqes[MAX_CQES];
    ioq_addr addr;
    char text[64];
    uint32_t i;
    int n, k;

    if (ioq_addr_parse(where, &addr) != 0) {
        fprintf(stderr, "usage: udp_ioq [addr:port]\n");
        return 2;
    }
    check(ioq_loop_new(NULL, &loop), "loop");
    check(ioq_udp_bind(loop, &addr, 0, &sock), where);
    check(ioq_sockname(loop, sock, &addr), "sockname");
    ioq_addr_format(&addr, text, sizeof text);
    for (i = 0; i < SLOTS; i++)
        slot_recv(i);
    printf("udp_ioq listening on %s (backend %s)\n", text, ioq_loop_backend(loop));
    fflush(stdout);
    for (;;) {
        n = ioq_poll(loop, cqes, MAX_CQES, -1);
        check(n, "poll");
        for (k = 0; k < n; k++)
            dispatch(&cqes[k]);
    }
}
