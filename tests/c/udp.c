/* UDP: bind, sendto/recvfrom with addresses, truncation, empty datagrams. */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <stdlib.h>
#include <string.h>

static ioq_handle bind4(ioq_loop *loop, uint16_t *port)
{
    ioq_addr a = h_addr4(0), got;
    ioq_handle h = 0;
    assert_int_equal(ioq_udp_bind(loop, &a, 0, &h), 0);
    assert_int_not_equal(h, 0);
    assert_int_equal(ioq_sockname(loop, h, &got), 0);
    assert_int_equal(got.family, IOQ_AF_INET);
    assert_int_not_equal(got.port, 0);
    *port = got.port;
    return h;
}

static void test_sendto_recvfrom(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t pa, pb;
    ioq_handle a = bind4(loop, &pa), b = bind4(loop, &pb);
    char buf[64];
    ioq_addr from;
    memset(&from, 0xee, sizeof from);
    assert_int_equal(h_recvfrom(loop, b, buf, sizeof buf, &from, 1), 0);
    ioq_addr to = h_addr4(pb);
    assert_int_equal(h_sendto(loop, a, "datagram", 8, &to, 2), 0);
    assert_int_equal(h_wait(loop, 2).result, 8);
    ioq_cqe c = h_wait(loop, 1);
    assert_int_equal(c.result, 8);
    assert_memory_equal(buf, "datagram", 8);
    assert_int_equal(from.family, IOQ_AF_INET);
    assert_int_equal(from.port, pa);
    assert_int_equal(from.ip[0], 127);
    assert_int_equal(from.ip[3], 1);
    /* Reply to the address we got. */
    assert_int_equal(h_sendto(loop, b, "reply", 5, &from, 3), 0);
    assert_int_equal(h_recvfrom(loop, a, buf, sizeof buf, NULL, 4), 0);
    assert_int_equal(h_wait(loop, 3).result, 5);
    assert_int_equal(h_wait(loop, 4).result, 5);
    assert_memory_equal(buf, "reply", 5);
    h_close_wait(loop, a);
    h_close_wait(loop, b);
    h_finish(loop);
}

static void test_datagram_boundaries(void **state)
{
    (void)state;
    /* Datagrams keep their boundaries: three sends, three receives of the same sizes. */
    ioq_loop *loop = h_loop_new();
    uint16_t pa, pb;
    ioq_handle a = bind4(loop, &pa), b = bind4(loop, &pb);
    ioq_addr to = h_addr4(pb);
    static const char *msgs[3] = {"a", "bbbb", "cccccccccc"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(h_sendto(loop, a, msgs[i], strlen(msgs[i]), &to, 10 + i), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(h_wait(loop, 10 + i).result, (int64_t)strlen(msgs[i]));
    for (int i = 0; i < 3; i++) {
        char buf[64];
        uint64_t t = h_tok();
        assert_int_equal(h_recvfrom(loop, b, buf, sizeof buf, NULL, t), 0);
        ioq_cqe c = h_wait(loop, t);
        assert_int_equal(c.result, (int64_t)strlen(msgs[i]));
        assert_memory_equal(buf, msgs[i], strlen(msgs[i]));
    }
    h_close_wait(loop, a);
    h_close_wait(loop, b);
    h_finish(loop);
}

/* Several receives queued on one socket and a burst of datagrams: the receives are filled
 * in submission order, each with its own datagram and sender, none lost or repeated (the
 * epoll/kqueue engine takes them with one recvmmsg). */
static void test_burst_many_receives(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    enum { R = 8, N = 100 };
    uint16_t pa, pb;
    ioq_handle a = bind4(loop, &pa), b = bind4(loop, &pb);
    static unsigned char rbuf[R][80], sbuf[N][80];
    ioq_addr from[R];
    int slot_of_seq[R];
    uint32_t next_recv_seq = 0, got = 0, sent = 0;
    for (int i = 0; i < R; i++) {
        assert_int_equal(h_recvfrom(loop, b, rbuf[i], sizeof rbuf[i], &from[i], 100 + i), 0);
        slot_of_seq[i] = i;
    }
    ioq_addr to = h_addr4(pb);
    for (int i = 0; i < N; i++) {
        size_t len = 4 + (size_t)(i % 60);
        memset(sbuf[i], (int)(i * 7 + 1), len);
        memcpy(sbuf[i], &i, sizeof i);
        assert_int_equal(h_sendto(loop, a, sbuf[i], len, &to, 1000 + (uint64_t)i), 0);
    }
    /* Receives complete in the order they were queued; the k-th completion carries the
     * k-th datagram. */
    uint32_t order = 0;
    while (got < N || sent < N) {
        ioq_cqe c = h_next_any(loop);
        if (c.token >= 1000) {
            assert_int_equal(c.result, 4 + (int64_t)((c.token - 1000) % 60));
            sent++;
            continue;
        }
        int slot = (int)(c.token - 100);
        assert_true(slot >= 0 && slot < R);
        assert_int_equal(slot, slot_of_seq[order % R]);
        int idx;
        memcpy(&idx, rbuf[slot], sizeof idx);
        assert_int_equal(idx, (int)got);
        assert_int_equal(c.result, 4 + (int64_t)(idx % 60));
        assert_memory_equal(rbuf[slot], sbuf[idx], (size_t)c.result);
        assert_int_equal(from[slot].port, pa);
        got++;
        order++;
        /* Queue this slot again, behind the others. */
        memset(rbuf[slot], 0, sizeof rbuf[slot]);
        assert_int_equal(h_recvfrom(loop, b, rbuf[slot], sizeof rbuf[slot], &from[slot],
                                    100 + (uint64_t)slot), 0);
        slot_of_seq[(next_recv_seq++ + R) % R] = slot;
    }
    h_close_wait(loop, a);
    h_close_wait(loop, b);
    h_finish(loop);
}

static void test_truncation(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t pa, pb;
    ioq_handle a = bind4(loop, &pa), b = bind4(loop, &pb);
    ioq_addr to = h_addr4(pb);
    char big[1000];
    h_fill(big, sizeof big, 9, 0);
    assert_int_equal(h_sendto(loop, a, big, sizeof big, &to, 1), 0);
    assert_int_equal(h_sendto(loop, a, "next", 4, &to, 2), 0);
    assert_int_equal(h_wait(loop, 1).result, 1000);
    assert_int_equal(h_wait(loop, 2).result, 4);
    char small[100];
    memset(small, 0, sizeof small);
    assert_int_equal(h_recvfrom(loop, b, small, sizeof small, NULL, 3), 0);
    assert_int_equal(h_wait(loop, 3).result, 100);
    assert_true(h_check(small, sizeof small, 9, 0));
    /* The rest of the truncated datagram is gone: the next receive gets the next one. */
    char buf[64];
    assert_int_equal(h_recvfrom(loop, b, buf, sizeof buf, NULL, 4), 0);
    assert_int_equal(h_wait(loop, 4).result, 4);
    assert_memory_equal(buf, "next", 4);
    h_close_wait(loop, a);
    h_close_wait(loop, b);
    h_finish(loop);
}

static void test_zero_length(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t pa, pb;
    ioq_handle a = bind4(loop, &pa), b = bind4(loop, &pb);
    ioq_addr to = h_addr4(pb), from;
    char buf[16] = "unchanged";
    assert_int_equal(h_sendto(loop, a, buf, 0, &to, 1), 0);
    assert_int_equal(h_wait(loop, 1).result, 0);
    assert_int_equal(h_recvfrom(loop, b, buf, sizeof buf, &from, 2), 0);
    ioq_cqe c = h_wait(loop, 2);
    assert_int_equal(c.result, 0);
    assert_int_equal(from.port, pa);
    assert_string_equal(buf, "unchanged");
    h_close_wait(loop, a);
    h_close_wait(loop, b);
    h_finish(loop);
}

static void test_oversized(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t pa, pb;
    ioq_handle a = bind4(loop, &pa), b = bind4(loop, &pb);
    ioq_addr to = h_addr4(pb);
    size_t len = 70000; /* above the 65507-byte limit of an IPv4 datagram */
    char *big = calloc(1, len);
    assert_non_null(big);
    uint64_t t = h_tok();
    int rc = h_sendto(loop, a, big, len, &to, t);
    if (rc == 0)
        assert_int_equal(h_wait(loop, t).result, IOQ_EMSGSIZE);
    else
        assert_int_equal(rc, IOQ_EMSGSIZE);
    free(big);
    h_close_wait(loop, a);
    h_close_wait(loop, b);
    h_finish(loop);
}

static void test_recvfrom_cancel(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t pb;
    ioq_handle b = bind4(loop, &pb);
    char buf[16];
    ioq_addr from;
    assert_int_equal(h_recvfrom(loop, b, buf, sizeof buf, &from, 1), 0);
    h_poll(loop, 0);
    assert_int_equal(h_cancel(loop, 1, 2), 0);
    assert_int_equal(h_wait(loop, 1).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, 2).result, 1);
    h_close_wait(loop, b);
    h_finish(loop);
}

static void test_ipv6(void **state)
{
    (void)state;
    if (!h_have_ipv6())
        h_skip("::1 is not available here");
    ioq_loop *loop = h_loop_new();
    ioq_addr a6 = h_addr6(0), got;
    ioq_handle a, b;
    assert_int_equal(ioq_udp_bind(loop, &a6, IOQ_V6ONLY, &a), 0);
    assert_int_equal(ioq_udp_bind(loop, &a6, IOQ_V6ONLY, &b), 0);
    assert_int_equal(ioq_sockname(loop, b, &got), 0);
    assert_int_equal(got.family, IOQ_AF_INET6);
    ioq_addr to = h_addr6(got.port), from;
    char buf[8];
    assert_int_equal(h_recvfrom(loop, b, buf, sizeof buf, &from, 1), 0);
    assert_int_equal(h_sendto(loop, a, "v6", 2, &to, 2), 0);
    assert_int_equal(h_wait(loop, 2).result, 2);
    assert_int_equal(h_wait(loop, 1).result, 2);
    assert_int_equal(from.family, IOQ_AF_INET6);
    assert_int_equal(from.ip[15], 1);
    /* An IPv4 destination on a v6-only socket is refused. */
    ioq_addr v4 = h_addr4(got.port);
    uint64_t t = h_tok();
    int rc = h_sendto(loop, a, "x", 1, &v4, t);
    if (rc == 0)
        assert_true(h_wait(loop, t).result < 0);
    else
        assert_true(rc < 0);
    h_close_wait(loop, a);
    h_close_wait(loop, b);
    h_finish(loop);
}

static void test_send_unconnected(void **state)
{
    (void)state;
    /* ioq_send on a UDP socket goes to the connected peer; there is none here. */
    ioq_loop *loop = h_loop_new();
    uint16_t pa;
    ioq_handle a = bind4(loop, &pa);
    uint64_t t = h_tok();
    int rc = h_send(loop, a, "x", 1, t);
    int64_t r = rc == 0 ? h_wait(loop, t).result : rc;
    assert_int_equal(r, IOQ_EDESTADDRREQ);
    h_close_wait(loop, a);
    h_finish(loop);
}

static void test_connected_adopted(void **state)
{
    (void)state;
    /* A connected UDP socket brought in with ioq_adopt: ioq_send and ioq_recv work. */
    ioq_loop *loop = h_loop_new();
    uint16_t pb;
    ioq_handle b = bind4(loop, &pb);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(pb);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ioq_handle u;
    assert_int_equal(ioq_adopt(loop, (uint64_t)fd, IOQ_KIND_UDP, &u), 0);
    ioq_addr me;
    assert_int_equal(ioq_sockname(loop, u, &me), 0);
    char buf[16];
    ioq_addr from;
    assert_int_equal(h_recvfrom(loop, b, buf, sizeof buf, &from, 1), 0);
    h_send_wait(loop, u, "conn", 4);
    assert_int_equal(h_wait(loop, 1).result, 4);
    assert_memory_equal(buf, "conn", 4);
    assert_int_equal(from.port, me.port);
    /* And back, received with ioq_recv on the UDP handle. */
    assert_int_equal(h_sendto(loop, b, "back", 4, &from, 2), 0);
    assert_int_equal(h_wait(loop, 2).result, 4);
    assert_int_equal(h_recv_once(loop, u, buf, sizeof buf), 4);
    assert_memory_equal(buf, "back", 4);
    h_close_wait(loop, u);
    h_close_wait(loop, b);
    h_finish(loop);
}

static void test_wrong_family_dest(void **state)
{
    (void)state;
    if (!h_have_ipv6())
        h_skip("::1 is not available here");
    ioq_loop *loop = h_loop_new();
    uint16_t pa;
    ioq_handle a = bind4(loop, &pa);
    ioq_addr to = h_addr6(9);
    uint64_t t = h_tok();
    int rc = h_sendto(loop, a, "x", 1, &to, t);
    int64_t r = rc == 0 ? h_wait(loop, t).result : rc;
    assert_true(r == IOQ_EAFNOSUPPORT || r == IOQ_EINVAL);
    h_close_wait(loop, a);
    h_finish(loop);
}

static void test_close_pending(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t pb;
    ioq_handle b = bind4(loop, &pb);
    char b1[8], b2[8];
    ioq_addr from;
    assert_int_equal(h_recvfrom(loop, b, b1, sizeof b1, &from, 1), 0);
    assert_int_equal(h_recv(loop, b, b2, sizeof b2, 2), 0);
    h_poll(loop, 0);
    assert_int_equal(h_close(loop, b, 3), 0);
    ioq_cqe x = h_next_any(loop), y = h_next_any(loop), z = h_next_any(loop);
    assert_int_equal(x.result, IOQ_ECANCELED);
    assert_int_equal(y.result, IOQ_ECANCELED);
    assert_int_equal(x.token + y.token, 3);
    assert_int_equal(z.token, 3);
    assert_int_equal(z.result, 0);
    h_finish(loop);
}

static const struct CMUnitTest udp_tests[] = {
    H_TEST(sendto_recvfrom),
    H_TEST(datagram_boundaries),
    H_TEST(burst_many_receives),
    H_TEST(truncation),
    H_TEST(zero_length),
    H_TEST(oversized),
    H_TEST(recvfrom_cancel),
    H_TEST(ipv6),
    H_TEST(send_unconnected),
    H_TEST(connected_adopted),
    H_TEST(wrong_family_dest),
    H_TEST(close_pending),
};

H_MAIN(udp_tests)
