/* TCP: listen, connect, accept, stream I/O, errors, options, IPv6. */
#include "harness.h"
#ifdef IOQ_TEST_FAILALLOC
#include "failalloc.h"
#endif

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void test_echo(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    h_pair(loop, &c, &s);
    char buf[64];
    h_send_wait(loop, c, "hello", 5);
    h_recv_exact(loop, s, buf, 5);
    assert_memory_equal(buf, "hello", 5);
    h_send_wait(loop, s, "world!", 6);
    h_recv_exact(loop, c, buf, 6);
    assert_memory_equal(buf, "world!", 6);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

static void test_recv_before_send(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    h_pair(loop, &c, &s);
    char buf[16];
    uint64_t t = h_tok();
    assert_int_equal(h_recv(loop, s, buf, sizeof buf, t), 0);
    h_assert_quiet(loop, 30);
    h_send_wait(loop, c, "abc", 3);
    ioq_cqe r = h_wait(loop, t);
    assert_int_equal(r.result, 3);
    assert_int_equal(r.value, 0);
    assert_memory_equal(buf, "abc", 3);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

static void test_recv_order(void **state)
{
    (void)state;
    /* Several receives queued on one stream are filled in submission order. */
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    h_pair(loop, &c, &s);
    enum { N = 8 };
    char bufs[N][4];
    for (int i = 0; i < N; i++)
        assert_int_equal(h_recv(loop, s, bufs[i], 4, 100 + i), 0);
    char data[N * 4];
    h_fill(data, sizeof data, 3, 0);
    h_send_wait(loop, c, data, sizeof data);
    /* Whatever the split, concatenating the buffers in submission order gives the data. */
    char got[N * 4];
    size_t off = 0;
    for (int i = 0; i < N; i++) {
        ioq_cqe r = h_wait(loop, 100 + i);
        assert_true(r.result > 0 && r.result <= 4);
        memcpy(got + off, bufs[i], (size_t)r.result);
        off += (size_t)r.result;
        if (off == sizeof data && i + 1 < N) {
            /* The rest stay pending until more data: close ends them. */
            break;
        }
    }
    while (off < sizeof data)
        off += (size_t)h_recv_once(loop, s, got + off, sizeof data - off);
    assert_memory_equal(got, data, sizeof data);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

static void test_sendv(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    h_pair(loop, &c, &s);
    ioq_iov iov[4] = {{"one ", 4}, {"", 0}, {"two ", 4}, {"three", 5}};
    uint64_t t = h_tok();
    assert_int_equal(h_sendv(loop, c, iov, 4, t), 0);
    /* The array is copied at submission: clobbering it must not matter. */
    memset(iov, 0, sizeof iov);
    assert_int_equal(h_wait(loop, t).result, 13);
    char buf[13];
    h_recv_exact(loop, s, buf, 13);
    assert_memory_equal(buf, "one two three", 13);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

static void test_shutdown_eof(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    h_pair(loop, &c, &s);
    assert_int_equal(h_send(loop, c, "bye", 3, 1), 0);
    assert_int_equal(h_shutdown(loop, c, 2), 0);
    assert_int_equal(h_wait(loop, 1).result, 3);
    assert_int_equal(h_wait(loop, 2).result, 0);
    char buf[8];
    h_recv_exact(loop, s, buf, 3);
    assert_memory_equal(buf, "bye", 3);
    assert_int_equal(h_recv_once(loop, s, buf, sizeof buf), 0);
    /* EOF again on a second receive. */
    assert_int_equal(h_recv_once(loop, s, buf, sizeof buf), 0);
    /* The other direction still works after a half close. */
    h_send_wait(loop, s, "ok", 2);
    h_recv_exact(loop, c, buf, 2);
    assert_memory_equal(buf, "ok", 2);
    /* Sending on the shut write side fails, without a crash or a signal. */
    uint64_t t = h_tok();
    int rc = h_send(loop, c, "x", 1, t);
    if (rc == 0) {
        int64_t r = h_wait(loop, t).result;
        assert_true(r == IOQ_EPIPE || r == IOQ_ESHUTDOWN);
    } else {
        assert_true(rc == IOQ_EPIPE || rc == IOQ_ESHUTDOWN);
    }
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

static void test_large_send(void **state)
{
    (void)state;
    /* Several 8 MiB sends queued back to back complete in full, in order, unmixed. */
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    h_pair(loop, &c, &s);
    enum { N = 4 };
    size_t len = 8u << 20;
    char *src[N];
    for (int i = 0; i < N; i++) {
        src[i] = malloc(len);
        assert_non_null(src[i]);
        h_fill(src[i], len, 40, (uint64_t)i * len);
        assert_int_equal(h_send(loop, c, src[i], len, 500 + i), 0);
    }
    size_t total = len * N, got = 0;
    char *dst = malloc(total);
    assert_non_null(dst);
    uint64_t rt = 0;
    int done_sends = 0;
    uint64_t end = h_mono_ns() + 60ull * 1000000000ull;
    while (got < total || done_sends < N) {
        if (h_mono_ns() > end)
            fail_msg("large send: %zu of %zu bytes, %d sends done", got, total, done_sends);
        if (rt == 0 && got < total) {
            rt = h_tok();
            size_t want = total - got < 65536 ? total - got : 65536;
            assert_int_equal(h_recv(loop, s, dst + got, want, rt), 0);
        }
        ioq_cqe cq[64];
        int n = h_poll_into(loop, cq, 64, 100 * 1000000ll);
        for (int i = 0; i < n; i++) {
            if (cq[i].token == rt) {
                assert_true(cq[i].result > 0);
                got += (size_t)cq[i].result;
                rt = 0;
            } else {
                assert_int_equal(cq[i].op, IOQ_OP_SEND);
                /* Sends complete in submission order, each with all of its bytes. */
                assert_int_equal(cq[i].token, 500 + done_sends);
                assert_int_equal(cq[i].result, (int64_t)len);
                done_sends++;
            }
        }
    }
    assert_true(h_check(dst, total, 40, 0));
    for (int i = 0; i < N; i++)
        free(src[i]);
    free(dst);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

static void test_refused(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    int fd = h_plain_bound(&port); /* bound but not listening: the port refuses */
    ioq_addr a = h_addr4(port);
    uint64_t t = h_tok();
    assert_int_equal(h_connect(loop, &a, 0, t), 0);
    ioq_cqe c = h_wait(loop, t);
    assert_int_equal(c.result, IOQ_ECONNREFUSED);
    assert_int_equal(c.value, 0);
    h_plain_close(fd);
    h_finish(loop);
}

static void test_peer_reset(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    ioq_handle lis = h_listen(loop, &port);
    assert_int_equal(h_accept(loop, lis, 0, 1), 0);
    int fd = h_plain_connect(port);
    ioq_cqe c = h_wait(loop, 1);
    assert_int_equal(c.result, 0);
    ioq_handle s = c.value;
    char buf[16];
    uint64_t t = h_tok();
    assert_int_equal(h_recv(loop, s, buf, sizeof buf, t), 0);
    h_poll(loop, 0);
    h_plain_reset(fd);
    c = h_wait(loop, t);
    assert_int_equal(c.result, IOQ_ECONNRESET);
    h_close_wait(loop, s);
    h_close_wait(loop, lis);
    h_finish(loop);
}

static void test_send_to_closed(void **state)
{
    (void)state;
    /* A SIGPIPE would kill this test. */
    void (*old)(int) = signal(SIGPIPE, SIG_DFL);
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    ioq_handle lis = h_listen(loop, &port);
    assert_int_equal(h_accept(loop, lis, 0, 1), 0);
    int fd = h_plain_connect(port);
    ioq_cqe c = h_wait(loop, 1);
    assert_int_equal(c.result, 0);
    ioq_handle s = c.value;
    h_plain_close(fd);
    /* The first sends may still be accepted by the kernel; keep going until it fails. */
    static char data[65536];
    int64_t r = 0;
    for (int i = 0; i < 200 && r >= 0; i++) {
        uint64_t t = h_tok();
        assert_int_equal(h_send(loop, s, data, sizeof data, t), 0);
        c = h_wait(loop, t);
        r = c.result;
        if (r < 0)
            assert_true(c.value < sizeof data);
        else
            assert_int_equal(r, (int64_t)sizeof data);
    }
    assert_true(r == IOQ_EPIPE || r == IOQ_ECONNRESET);
    h_close_wait(loop, s);
    h_close_wait(loop, lis);
    h_finish(loop);
    signal(SIGPIPE, old);
}

static void test_multishot_accept(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    ioq_handle lis = h_listen(loop, &port);
    uint64_t t = h_tok();
    assert_int_equal(h_accept(loop, lis, IOQ_MULTISHOT, t), 0);
    enum { N = 5 };
    int fds[N];
    ioq_handle hs[N];
    for (int i = 0; i < N; i++) {
        fds[i] = h_plain_connect(port);
        ioq_cqe c = h_next(loop, t);
        assert_int_equal(c.result, 0);
        assert_true(c.flags & IOQ_CQE_MORE);
        assert_int_not_equal(c.value, 0);
        hs[i] = c.value;
        for (int j = 0; j < i; j++)
            assert_int_not_equal(hs[i], hs[j]);
    }
    /* Each accepted handle is a working stream. */
    for (int i = 0; i < N; i++) {
        char b = (char)('a' + i), got;
        h_plain_write_all(fds[i], &b, 1);
        h_recv_exact(loop, hs[i], &got, 1);
        assert_int_equal(got, b);
    }
    uint64_t ct = h_tok();
    assert_int_equal(h_cancel(loop, t, ct), 0);
    ioq_cqe fin = h_wait(loop, t);
    assert_int_equal(fin.result, IOQ_ECANCELED);
    assert_int_equal(fin.flags & IOQ_CQE_MORE, 0);
    assert_int_equal(h_wait(loop, ct).result, 1);
    for (int i = 0; i < N; i++) {
        h_plain_close(fds[i]);
        h_close_wait(loop, hs[i]);
    }
    h_close_wait(loop, lis);
    h_finish(loop);
}

static void test_multishot_accept_close(void **state)
{
    (void)state;
    /* Closing the listener ends a multishot accept with a final completion. */
    ioq_loop *loop = h_loop_new();
    ioq_handle lis = h_listen(loop, NULL);
    uint64_t t = h_tok(), ct = h_tok();
    assert_int_equal(h_accept(loop, lis, IOQ_MULTISHOT, t), 0);
    h_poll(loop, 0);
    assert_int_equal(h_close(loop, lis, ct), 0);
    ioq_cqe c = h_wait(loop, t);
    assert_int_equal(c.result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, ct).result, 0);
    h_finish(loop);
}

static void test_sockname_peername(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    ioq_handle lis = h_listen(loop, &port);
    ioq_addr a = h_addr4(port);
    assert_int_equal(h_accept(loop, lis, 0, 1), 0);
    assert_int_equal(h_connect(loop, &a, 0, 2), 0);
    ioq_handle s = h_wait(loop, 1).value, c = h_wait(loop, 2).value;
    ioq_addr cs, cp, ss, sp;
    assert_int_equal(ioq_sockname(loop, c, &cs), 0);
    assert_int_equal(ioq_peername(loop, c, &cp), 0);
    assert_int_equal(ioq_sockname(loop, s, &ss), 0);
    assert_int_equal(ioq_peername(loop, s, &sp), 0);
    assert_int_equal(cp.family, IOQ_AF_INET);
    assert_int_equal(cp.port, port);
    assert_memory_equal(cp.ip, a.ip, 4);
    assert_int_equal(ss.port, port);
    assert_memory_equal(&cs, &sp, sizeof cs);
    assert_memory_equal(&ss, &cp, sizeof ss);
    /* A listener has no peer. */
    ioq_addr x;
    assert_int_equal(ioq_peername(loop, lis, &x), IOQ_ENOTCONN);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_close_wait(loop, lis);
    h_finish(loop);
}

static int getopt_int(ioq_loop *loop, ioq_handle h, int level, int name)
{
    uint64_t os;
    assert_int_equal(ioq_os_handle(loop, h, &os), 0);
    int v = -1;
    socklen_t sl = sizeof v;
    assert_int_equal(getsockopt((int)os, level, name, &v, &sl), 0);
    return v;
}

static void test_setopt(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    h_pair(loop, &c, &s);
    assert_int_equal(ioq_setopt(loop, c, IOQ_OPT_NODELAY, 1), 0);
    assert_int_not_equal(getopt_int(loop, c, IPPROTO_TCP, TCP_NODELAY), 0);
    assert_int_equal(ioq_setopt(loop, c, IOQ_OPT_NODELAY, 0), 0);
    assert_int_equal(getopt_int(loop, c, IPPROTO_TCP, TCP_NODELAY), 0);
    assert_int_equal(ioq_setopt(loop, c, IOQ_OPT_KEEPALIVE, 1), 0);
    assert_int_not_equal(getopt_int(loop, c, SOL_SOCKET, SO_KEEPALIVE), 0);
    assert_int_equal(ioq_setopt(loop, c, IOQ_OPT_KEEPALIVE, 30), 0);
    assert_int_not_equal(getopt_int(loop, c, SOL_SOCKET, SO_KEEPALIVE), 0);
#ifdef TCP_KEEPIDLE
    assert_int_equal(getopt_int(loop, c, IPPROTO_TCP, TCP_KEEPIDLE), 30);
#endif
    assert_int_equal(ioq_setopt(loop, c, IOQ_OPT_KEEPALIVE, 0), 0);
    assert_int_equal(getopt_int(loop, c, SOL_SOCKET, SO_KEEPALIVE), 0);
    assert_int_equal(ioq_setopt(loop, c, IOQ_OPT_RCVBUF, 65536), 0);
    assert_true(getopt_int(loop, c, SOL_SOCKET, SO_RCVBUF) >= 65536);
    assert_int_equal(ioq_setopt(loop, c, IOQ_OPT_SNDBUF, 65536), 0);
    assert_true(getopt_int(loop, c, SOL_SOCKET, SO_SNDBUF) >= 65536);
    assert_int_equal(ioq_setopt(loop, c, IOQ_OPT_REUSEADDR, 1), 0);
    assert_int_equal(ioq_setopt(loop, c, IOQ_OPT_LINGER, 5), 0);
    uint64_t os;
    assert_int_equal(ioq_os_handle(loop, c, &os), 0);
    struct linger lg;
    socklen_t sl = sizeof lg;
    assert_int_equal(getsockopt((int)os, SOL_SOCKET, SO_LINGER, &lg, &sl), 0);
    assert_int_not_equal(lg.l_onoff, 0);
    assert_int_equal(lg.l_linger, 5);
    assert_int_equal(ioq_setopt(loop, c, IOQ_OPT_LINGER, -1), 0);
    sl = sizeof lg;
    assert_int_equal(getsockopt((int)os, SOL_SOCKET, SO_LINGER, &lg, &sl), 0);
    assert_int_equal(lg.l_onoff, 0);
    /* Bad values and options. */
    assert_int_equal(ioq_setopt(loop, c, IOQ_OPT_NODELAY, 2), IOQ_EINVAL);
    assert_int_equal(ioq_setopt(loop, c, IOQ_OPT_NODELAY, -1), IOQ_EINVAL);
    assert_int_equal(ioq_setopt(loop, c, IOQ_OPT_KEEPALIVE, -1), IOQ_EINVAL);
    assert_int_equal(ioq_setopt(loop, c, IOQ_OPT_RCVBUF, -1), IOQ_EINVAL);
    assert_int_equal(ioq_setopt(loop, c, IOQ_OPT_RCVBUF, 0), IOQ_EINVAL);
    assert_int_equal(ioq_setopt(loop, c, IOQ_OPT_SNDBUF, INT64_MAX), IOQ_EINVAL);
    assert_int_equal(ioq_setopt(loop, c, IOQ_OPT_LINGER, -2), IOQ_EINVAL);
    assert_int_equal(ioq_setopt(loop, c, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_setopt(loop, c, 1000, 1), IOQ_EINVAL);
    /* LINGER 0: closing resets the connection, the peer sees ECONNRESET. */
    assert_int_equal(ioq_setopt(loop, c, IOQ_OPT_LINGER, 0), 0);
    char buf[8];
    uint64_t t = h_tok();
    assert_int_equal(h_recv(loop, s, buf, sizeof buf, t), 0);
    h_poll(loop, 0);
    h_close_wait(loop, c);
    assert_int_equal(h_wait(loop, t).result, IOQ_ECONNRESET);
    h_close_wait(loop, s);
    h_finish(loop);
}

static void test_listen_addrinuse(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    ioq_handle lis = h_listen(loop, &port);
    ioq_addr a = h_addr4(port);
    ioq_handle h2 = 0;
    assert_int_equal(ioq_tcp_listen(loop, &a, 0, 0, &h2), IOQ_EADDRINUSE);
    assert_int_equal(h2, 0);
    /* A non-local address cannot be bound. */
    ioq_addr far = h_addr4(0);
    far.ip[0] = 192;
    far.ip[1] = 0;
    far.ip[2] = 2;
    far.ip[3] = 1;
    assert_int_equal(ioq_tcp_listen(loop, &far, 0, 0, &h2), IOQ_EADDRNOTAVAIL);
    h_close_wait(loop, lis);
    h_finish(loop);
}

static void test_reuseport(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_addr a = h_addr4(0), got;
    ioq_handle l1, l2;
    assert_int_equal(ioq_tcp_listen(loop, &a, 0, IOQ_REUSEPORT, &l1), 0);
    assert_int_equal(ioq_sockname(loop, l1, &got), 0);
    a.port = got.port;
    assert_int_equal(ioq_tcp_listen(loop, &a, 0, IOQ_REUSEPORT, &l2), 0);
    h_close_wait(loop, l1);
    h_close_wait(loop, l2);
    h_finish(loop);
}

static void test_ipv6(void **state)
{
    (void)state;
    if (!h_have_ipv6())
        h_skip("::1 is not available here");
    ioq_loop *loop = h_loop_new();
    ioq_addr a = h_addr6(0), got;
    ioq_handle lis;
    assert_int_equal(ioq_tcp_listen(loop, &a, 0, IOQ_V6ONLY, &lis), 0);
    assert_int_equal(ioq_sockname(loop, lis, &got), 0);
    assert_int_equal(got.family, IOQ_AF_INET6);
    assert_int_not_equal(got.port, 0);
    ioq_addr dst = h_addr6(got.port);
    assert_int_equal(h_accept(loop, lis, 0, 1), 0);
    assert_int_equal(h_connect(loop, &dst, 0, 2), 0);
    ioq_cqe ca = h_wait(loop, 1), cc = h_wait(loop, 2);
    assert_int_equal(ca.result, 0);
    assert_int_equal(cc.result, 0);
    ioq_addr peer;
    assert_int_equal(ioq_peername(loop, cc.value, &peer), 0);
    assert_int_equal(peer.family, IOQ_AF_INET6);
    assert_int_equal(peer.port, got.port);
    assert_memory_equal(peer.ip, dst.ip, 16);
    char buf[4];
    h_send_wait(loop, cc.value, "six", 3);
    h_recv_exact(loop, ca.value, buf, 3);
    assert_memory_equal(buf, "six", 3);
    char text[64];
    assert_int_equal(ioq_addr_format(&peer, text, sizeof text) > 0, 1);
    assert_non_null(strstr(text, "[::1]:"));
    h_close_wait(loop, ca.value);
    h_close_wait(loop, cc.value);
    h_close_wait(loop, lis);
    h_finish(loop);
}

static void test_connect_then_close(void **state)
{
    (void)state;
    /* A connection made and closed many times leaves no descriptor behind. */
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    ioq_handle lis = h_listen(loop, &port);
    ioq_addr a = h_addr4(port);
    for (int i = 0; i < 50; i++) {
        uint64_t ta = h_tok(), tc = h_tok();
        assert_int_equal(h_accept(loop, lis, 0, ta), 0);
        assert_int_equal(h_connect(loop, &a, 0, tc), 0);
        ioq_cqe x = h_wait(loop, ta), y = h_wait(loop, tc);
        assert_int_equal(x.result, 0);
        assert_int_equal(y.result, 0);
        h_close_wait(loop, x.value);
        h_close_wait(loop, y.value);
    }
    h_close_wait(loop, lis);
    h_finish(loop);
}


static void test_sendv_large_mixed(void **state)
{
    (void)state;
    /* Big gather sends and plain sends queued together go out whole and in order. */
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    h_pair(loop, &c, &s);
    size_t piece = 64 * 1024, pieces = 128; /* 8 MiB per sendv */
    size_t total = 2 * piece * pieces + 2 * 1000;
    char *src = malloc(total), *dst = malloc(total);
    assert_non_null(src);
    assert_non_null(dst);
    h_fill(src, total, 11, 0);
    ioq_iov *iov = malloc(pieces * sizeof *iov);
    assert_non_null(iov);
    size_t off = 0;
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < pieces; i++) {
            iov[i].base = src + off + i * piece;
            iov[i].len = piece;
        }
        assert_int_equal(h_sendv(loop, c, iov, (uint32_t)pieces, 700 + 2 * round), 0);
        off += piece * pieces;
        assert_int_equal(h_send(loop, c, src + off, 1000, 701 + 2 * round), 0);
        off += 1000;
    }
    free(iov);
    size_t got = 0;
    int next = 700;
    uint64_t rt = 0;
    uint64_t end = h_mono_ns() + 60ull * 1000000000ull;
    while (got < total || next < 704) {
        if (h_mono_ns() > end)
            fail_msg("sendv mixed: %zu of %zu bytes", got, total);
        if (rt == 0 && got < total) {
            rt = h_tok();
            assert_int_equal(h_recv(loop, s, dst + got, total - got, rt), 0);
        }
        ioq_cqe cq[16];
        int n = h_poll_into(loop, cq, 16, 100 * 1000000ll);
        for (int i = 0; i < n; i++) {
            if (cq[i].token == rt) {
                assert_true(cq[i].result > 0);
                got += (size_t)cq[i].result;
                rt = 0;
                continue;
            }
            assert_int_equal(cq[i].token, (uint64_t)next);
            assert_int_equal(cq[i].result, next % 2 == 0 ? (int64_t)(piece * pieces) : 1000);
            next++;
        }
    }
    assert_true(h_check(dst, total, 11, 0));
    free(src);
    free(dst);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

static void test_full_duplex(void **state)
{
    (void)state;
    /* 8 MiB each way at the same time: neither side's sends may stall the other's. */
    ioq_loop *loop = h_loop_new();
    ioq_handle h[2];
    h_pair(loop, &h[0], &h[1]);
    size_t len = 8u << 20;
    char *src[2], *dst[2];
    size_t got[2] = {0, 0};
    uint64_t rt[2] = {0, 0};
    int sent[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        src[k] = malloc(len);
        dst[k] = malloc(len);
        assert_non_null(src[k]);
        assert_non_null(dst[k]);
        h_fill(src[k], len, 20 + (uint32_t)k, 0);
        assert_int_equal(h_send(loop, h[k], src[k], len, 800 + k), 0);
    }
    uint64_t end = h_mono_ns() + 60ull * 1000000000ull;
    while (got[0] < len || got[1] < len || !sent[0] || !sent[1]) {
        if (h_mono_ns() > end)
            fail_msg("full duplex stuck: got %zu/%zu sent %d/%d", got[0], got[1], sent[0],
                     sent[1]);
        for (int k = 0; k < 2; k++) {
            /* h[k] receives what h[1-k] sent. */
            if (rt[k] == 0 && got[k] < len) {
                rt[k] = h_tok();
                assert_int_equal(h_recv(loop, h[k], dst[k] + got[k], len - got[k], rt[k]), 0);
            }
        }
        ioq_cqe cq[16];
        int n = h_poll_into(loop, cq, 16, 100 * 1000000ll);
        for (int i = 0; i < n; i++) {
            if (cq[i].token == 800 || cq[i].token == 801) {
                assert_int_equal(cq[i].result, (int64_t)len);
                sent[cq[i].token - 800] = 1;
                continue;
            }
            int k = cq[i].token == rt[0] ? 0 : 1;
            assert_int_equal(cq[i].token, rt[k]);
            assert_true(cq[i].result > 0);
            got[k] += (size_t)cq[i].result;
            rt[k] = 0;
        }
    }
    assert_true(h_check(dst[0], len, 21, 0));
    assert_true(h_check(dst[1], len, 20, 0));
    for (int k = 0; k < 2; k++) {
        free(src[k]);
        free(dst[k]);
    }
    h_close_wait(loop, h[0]);
    h_close_wait(loop, h[1]);
    h_finish(loop);
}

static void test_recv_order_large(void **state)
{
    (void)state;
    /* 32 receives of 32 KiB queued at once on one stream fill in submission order. */
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    h_pair(loop, &c, &s);
    enum { N = 32, SZ = 32 * 1024 };
    char *bufs = malloc((size_t)N * SZ);
    char *src = malloc((size_t)N * SZ);
    char *cat = malloc((size_t)N * SZ);
    assert_non_null(bufs);
    assert_non_null(src);
    assert_non_null(cat);
    h_fill(src, (size_t)N * SZ, 12, 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(h_recv(loop, s, bufs + (size_t)i * SZ, SZ, 900 + i), 0);
    assert_int_equal(h_send(loop, c, src, (size_t)N * SZ, 1), 0);
    size_t off = 0;
    int i = 0;
    for (; i < N; i++) {
        ioq_cqe r = h_wait(loop, 900 + i);
        assert_true(r.result > 0 && r.result <= SZ);
        memcpy(cat + off, bufs + (size_t)i * SZ, (size_t)r.result);
        off += (size_t)r.result;
        if (off == (size_t)N * SZ)
            break;
    }
    while (off < (size_t)N * SZ)
        off += (size_t)h_recv_once(loop, s, cat + off, (size_t)N * SZ - off);
    assert_int_equal(h_wait(loop, 1).result, (int64_t)N * SZ);
    assert_memory_equal(cat, src, (size_t)N * SZ);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    free(bufs);
    free(src);
    free(cat);
    h_finish(loop);
}

static void test_multishot_accept_burst(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    ioq_handle lis = h_listen(loop, &port);
    enum { N = 200 };
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = h_plain_connect(port);
    uint64_t t = h_tok();
    assert_int_equal(h_accept(loop, lis, IOQ_MULTISHOT, t), 0);
    ioq_handle *hs = calloc(N, sizeof *hs);
    assert_non_null(hs);
    for (int i = 0; i < N; i++) {
        ioq_cqe c = h_next(loop, t);
        assert_int_equal(c.result, 0);
        assert_int_equal(c.flags, IOQ_CQE_MORE);
        hs[i] = c.value;
    }
    assert_int_equal(h_cancel(loop, t, 2), 0);
    assert_int_equal(h_wait(loop, t).result, IOQ_ECANCELED);
    assert_int_equal(h_wait(loop, 2).result, 1);
    for (int i = 0; i < N; i++) {
        close(fds[i]);
        assert_int_equal(h_close(loop, hs[i], 10000 + i), 0);
    }
    free(hs);
    h_close_wait(loop, lis);
    h_finish(loop);
}

static void test_data_then_eof(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    ioq_handle lis = h_listen(loop, &port);
    int fd = h_plain_connect(port);
    assert_int_equal(h_accept(loop, lis, 0, 1), 0);
    ioq_cqe a = h_wait(loop, 1);
    assert_int_equal(a.result, 0);
    /* The peer writes and closes before we ever receive. */
    h_plain_write_all(fd, "last words", 10);
    h_plain_close(fd);
    char buf[64];
    h_recv_exact(loop, a.value, buf, 10);
    assert_memory_equal(buf, "last words", 10);
    assert_int_equal(h_recv_once(loop, a.value, buf, sizeof buf), 0);
    h_close_wait(loop, a.value);
    h_close_wait(loop, lis);
    h_finish(loop);
}

static void test_reset_mid_send(void **state)
{
    (void)state;
    void (*old)(int) = signal(SIGPIPE, SIG_DFL);
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    ioq_handle lis = h_listen(loop, &port);
    int fd = h_plain_connect(port);
    assert_int_equal(h_accept(loop, lis, 0, 1), 0);
    ioq_handle s = h_wait(loop, 1).value;
    size_t len = 32u << 20;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, 7, len);
    assert_int_equal(h_send(loop, s, big, len, 2), 0);
    /* Read a little so the send is surely under way, then reset. */
    char buf[4096];
    size_t have = 0;
    uint64_t end = h_mono_ns() + (uint64_t)H_DEADLINE_MS * 1000000ull;
    while (have < sizeof buf) {
        /* The loop must run for the send to make progress (the pull model). */
        h_poll(loop, 10 * 1000000ll);
        ssize_t n = recv(fd, buf + have, sizeof buf - have, MSG_DONTWAIT);
        if (n > 0)
            have += (size_t)n;
        if (h_mono_ns() > end)
            fail_msg("the send never started");
    }
    h_plain_reset(fd);
    ioq_cqe c = h_wait(loop, 2);
    assert_true(c.result == IOQ_ECONNRESET || c.result == IOQ_EPIPE);
    assert_true(c.value >= sizeof buf && c.value < len);
    free(big);
    h_close_wait(loop, s);
    h_close_wait(loop, lis);
    h_finish(loop);
    signal(SIGPIPE, old);
}

static void test_shutdown_after_big_send(void **state)
{
    (void)state;
    /* The half close waits for every send submitted before it. */
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    h_pair(loop, &c, &s);
    size_t len = 8u << 20;
    char *src = malloc(len), *dst = malloc(len + 1);
    assert_non_null(src);
    assert_non_null(dst);
    h_fill(src, len, 30, 0);
    assert_int_equal(h_send(loop, c, src, len / 2, 1), 0);
    assert_int_equal(h_send(loop, c, src + len / 2, len / 2, 2), 0);
    assert_int_equal(h_shutdown(loop, c, 3), 0);
    size_t got = 0;
    for (;;) {
        int64_t n = h_recv_once(loop, s, dst + got, len + 1 - got);
        assert_true(n >= 0);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    assert_int_equal(got, len);
    assert_true(h_check(dst, len, 30, 0));
    assert_int_equal(h_wait(loop, 1).result, (int64_t)(len / 2));
    assert_int_equal(h_wait(loop, 2).result, (int64_t)(len / 2));
    assert_int_equal(h_wait(loop, 3).result, 0);
    free(src);
    free(dst);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

static void test_recv_max_len(void **state)
{
    (void)state;
    /* The largest allowed length is accepted (the memory is only reserved, not touched). */
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    h_pair(loop, &c, &s);
    char *huge = malloc((size_t)IOQ_MAX_LEN);
    if (huge == NULL) {
        h_close_wait(loop, c);
        h_close_wait(loop, s);
        h_finish(loop);
        h_skip("cannot reserve IOQ_MAX_LEN bytes");
    }
    uint64_t t = h_tok();
    assert_int_equal(h_recv(loop, s, huge, (size_t)IOQ_MAX_LEN, t), 0);
    h_send_wait(loop, c, "tiny", 4);
    assert_int_equal(h_wait(loop, t).result, 4);
    assert_memory_equal(huge, "tiny", 4);
    free(huge);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

/* A multishot accept when the completion ring cannot grow (every allocation of libioq
 * fails) and more connections wait than the ring holds: it ends with IOQ_ENOMEM, no record
 * is overwritten or repeated, and every connection handed out is a live, distinct handle. */
static void test_accept_multishot_nomem(void **state)
{
    (void)state;
#ifdef IOQ_TEST_FAILALLOC
    enum { N = 400 }; /* more than the ring's first 256 records, fewer than the backlog */
    ioq_loop *loop;
    ioq_addr a = h_addr4(0);
    ioq_handle lis = 0;
    ioq_handle *got;
    int peers[N], ngot = 0, ended = 0;
    uint64_t at = h_tok();
    uint16_t port;

    if (!fa_available())
        h_skip("libioq's allocations cannot be failed from here");
    loop = h_loop_new();
    got = calloc(N, sizeof *got);
    assert_non_null(got);
    assert_int_equal(ioq_tcp_listen(loop, &a, 2048, 0, &lis), 0);
    assert_int_equal(ioq_sockname(loop, lis, &a), 0);
    port = a.port;
    assert_int_equal(h_accept(loop, lis, IOQ_MULTISHOT, at), 0);
    for (int i = 0; i < N; i++)
        peers[i] = h_plain_connect(port);
    fa_arm(0, 0);
    while (!ended) {
        ioq_cqe c[8];
        int n = h_poll_into(loop, c, 8, 100 * 1000000ll);
        assert_true(n >= 0);
        for (int i = 0; i < n; i++) {
            assert_int_equal(c[i].token, at);
            if (c[i].flags & IOQ_CQE_MORE) {
                assert_int_equal(c[i].result, 0);
                for (int k = 0; k < ngot; k++)
                    assert_true(got[k] != (ioq_handle)c[i].value);
                assert_true(ngot < N);
                got[ngot++] = (ioq_handle)c[i].value;
            } else {
                assert_int_equal(c[i].result, IOQ_ENOMEM);
                ended = 1;
            }
        }
        if (!ended && ngot == N)
            break; /* the ring held them all after all */
    }
    fa_disarm();
    if (!ended) {
        assert_int_equal(h_cancel(loop, at, h_tok()), 0);
        assert_int_equal(h_wait(loop, at).result, IOQ_ECANCELED);
    }
    print_message("%d of %d connections handed out before the end\n", ngot, N);
    assert_true(ended);
    for (int k = 0; k < ngot; k++) {
        ioq_addr a;
        assert_int_equal(ioq_peername(loop, got[k], &a), 0);
        h_close_wait(loop, got[k]);
    }
    for (int i = 0; i < N; i++)
        h_plain_close(peers[i]);
    h_close_wait(loop, lis);
    free(got);
    h_finish(loop);
#else
    h_skip("allocation failure is not injected on this platform");
#endif
}

/* A multishot receive when the completion ring cannot grow (every allocation of libioq
 * fails): its records are never overwritten or repeated, and it ends with IOQ_ENOMEM
 * rather than lose data; what it did not take is still in the socket. Two rounds: a pool
 * whose receive was set up before allocations failed, and one submitted after. */
static void test_recv_pool_multishot_nomem(void **state)
{
    (void)state;
#ifdef IOQ_TEST_FAILALLOC
    enum { ROUND = 1 << 15 };
    ioq_loop *loop;
    ioq_handle lis, s, pools[2];
    uint16_t port;
    char *sent, *got;
    size_t have = 0;
    int peer, enomem = 0;
    uint64_t at = h_tok();

    if (!fa_available())
        h_skip("libioq's allocations cannot be failed from here");
    loop = h_loop_new();
    sent = malloc(2 * ROUND);
    got = malloc(2 * ROUND);
    assert_non_null(sent);
    assert_non_null(got);
    h_fill(sent, 2 * ROUND, 5, 0);
    lis = h_listen(loop, &port);
    assert_int_equal(h_accept(loop, lis, 0, at), 0);
    peer = h_plain_connect(port);
    s = (ioq_handle)h_wait(loop, at).value;
    assert_int_equal(ioq_pool_new(loop, 1024, 64, &pools[0]), 0);
    assert_int_equal(ioq_pool_new(loop, 8192, 64, &pools[1]), 0);
    for (int round = 0; round < 2; round++) {
        ioq_handle pool = pools[round];
        uint64_t rt = h_tok();
        size_t want = (size_t)(round + 1) * ROUND;
        int rc, ended = 0;

        if (round == 1)
            fa_arm(0, 0);
        rc = h_recv_pool(loop, s, pool, IOQ_MULTISHOT, rt);
        fa_arm(0, 0);
        h_plain_write_all(peer, sent + (size_t)round * ROUND, ROUND);
        if (rc == IOQ_ENOMEM) {
            enomem++; /* refused at once: nothing accepted, nothing taken */
            ended = 1;
        } else {
            assert_int_equal(rc, 0);
        }
        while (!ended) {
            ioq_cqe c[8];
            int n = h_poll_into(loop, c, 8, 100 * 1000000ll);
            assert_true(n >= 0);
            for (int i = 0; i < n; i++) {
                if (c[i].op == IOQ_OP_CANCEL)
                    continue; /* the cancel below, done */
                assert_int_equal(c[i].token, rt);
                if (c[i].flags & IOQ_CQE_BUFFER) {
                    assert_true(c[i].result > 0);
                    assert_true(have + (size_t)c[i].result <= want);
                    memcpy(got + have, ioq_buf(loop, pool, (uint32_t)c[i].value),
                           (size_t)c[i].result);
                    have += (size_t)c[i].result;
                    assert_int_equal(ioq_buf_release(loop, pool, (uint32_t)c[i].value), 0);
                }
                if (!(c[i].flags & IOQ_CQE_MORE)) {
                    if (c[i].result == IOQ_ENOMEM)
                        enomem++;
                    else
                        assert_int_equal(c[i].result, IOQ_ECANCELED);
                    assert_false(c[i].flags & IOQ_CQE_BUFFER);
                    ended = 1;
                }
            }
            /* Room was promised to it: it took everything. */
            if (!ended && have == want && !h_done(loop, rt) && h_pending(loop) == 1) {
                fa_disarm();
                assert_int_equal(h_cancel(loop, rt, h_tok()), 0);
                fa_arm(0, 0);
            }
        }
        fa_disarm();
        /* No byte lost, none twice, in order: the rest is read plainly. */
        if (have < want)
            h_recv_exact(loop, s, got + have, want - have);
        have = want;
        assert_memory_equal(got, sent, want);
        while (h_pending(loop))
            h_poll(loop, 10 * 1000000ll);
    }
    print_message("ended with IOQ_ENOMEM %d times\n", enomem);
    assert_true(enomem > 0);
    h_plain_close(peer);
    h_close_wait(loop, s);
    h_close_wait(loop, lis);
    free(sent);
    free(got);
    h_finish(loop);
#else
    h_skip("allocation failure is not injected on this platform");
#endif
}

/* Completion order: records of tokens in `want`, in the order they came (others fail). */
static void take_in_order(ioq_loop *loop, const uint64_t *want, int n, ioq_cqe *out)
{
    for (int i = 0; i < n; i++) {
        out[i] = h_next_any(loop);
        assert_int_equal(out[i].token, want[i]);
    }
}

static void test_send_inline_close(void **state)
{
    (void)state;
    /* A send that a readiness backend finishes in its submit call has only its record:
     * a cancel right behind it finds nothing, a close behind that completes last, and the
     * peer gets the bytes, then the end of stream. A completion backend may still have the
     * send in flight: then it completes whole or cancelled, never twice. */
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    char buf[64];
    ioq_cqe r[3];
    h_pair(loop, &c, &s);
    uint64_t st = h_tok(), ct = h_tok(), xt = h_tok();
    assert_int_equal(h_send(loop, c, "hello", 5, st), 0);
    assert_int_equal(h_cancel(loop, st, ct), 0);
    assert_int_equal(h_close(loop, c, xt), 0);
    if (strcmp(h_backend(), "epoll") == 0 || strcmp(h_backend(), "kqueue") == 0) {
        const uint64_t order[3] = {st, ct, xt};
        take_in_order(loop, order, 3, r);
        assert_int_equal(r[0].result, 5);
        assert_int_equal(r[1].result, 0); /* nothing left to cancel */
        assert_int_equal(r[2].result, 0);
    } else {
        r[0] = h_wait(loop, st);
        r[1] = h_wait(loop, ct);
        assert_true(r[0].result == 5 || r[0].result == IOQ_ECANCELED);
        /* a cancel that met the send in flight counts it even if it finished whole */
        assert_true(r[1].result == 1 || (r[1].result == 0 && r[0].result == 5));
        assert_int_equal(h_wait(loop, xt).result, 0);
    }
    size_t got = 0;
    for (;;) {
        int64_t n = h_recv_once(loop, s, buf + got, sizeof buf - got);
        assert_true(n >= 0);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    assert_int_equal(got, r[0].result == 5 ? 5 : 0);
    if (got)
        assert_memory_equal(buf, "hello", 5);
    h_close_wait(loop, s);
    h_finish(loop);
}

static void test_send_partial_cancel(void **state)
{
    (void)state;
    /* A send larger than the socket takes: part of it may go in the submit call (until
     * EAGAIN), the rest waits as an op that starts where that left off. Cancelled before
     * the peer reads, it completes once with IOQ_ECANCELED and the bytes that went out,
     * which are exactly the first bytes the peer reads before the end of stream. */
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s;
    size_t len = 16u << 20;
    char *src = malloc(len), *dst = malloc(len);
    assert_non_null(src);
    assert_non_null(dst);
    h_fill(src, len, 23, 0);
    h_pair(loop, &c, &s);
    uint64_t st = h_tok(), ct = h_tok();
    assert_int_equal(h_send(loop, c, src, len, st), 0);
    assert_int_equal(h_cancel(loop, st, ct), 0);
    ioq_cqe r = h_wait(loop, st);
    int64_t sent;
    if (r.result == IOQ_ECANCELED) {
        assert_true(r.value < len);
        /* a readiness backend sent what the socket took in the submit call */
        if (strcmp(h_backend(), "epoll") == 0 || strcmp(h_backend(), "kqueue") == 0)
            assert_true(r.value > 0);
        sent = (int64_t)r.value;
        assert_int_equal(h_wait(loop, ct).result, 1);
    } else {
        /* the socket took all of it at once (a very large buffer) */
        assert_int_equal(r.result, (int64_t)len);
        sent = (int64_t)len;
        assert_int_equal(h_wait(loop, ct).result, 0);
    }
    h_close_wait(loop, c);
    size_t got = 0;
    for (;;) {
        int64_t n = h_recv_once(loop, s, dst + got, len - got < 65536 ? len - got : 65536);
        assert_true(n >= 0);
        if (n == 0)
            break;
        got += (size_t)n;
        assert_true(got <= (size_t)sent);
    }
    assert_int_equal(got, (size_t)sent);
    assert_memory_equal(dst, src, got);
    h_close_wait(loop, s);
    free(src);
    free(dst);
    h_finish(loop);
}

static const struct CMUnitTest tcp_tests[] = {
    H_TEST(echo),
    H_TEST(recv_before_send),
    H_TEST(recv_order),
    H_TEST(sendv),
    H_TEST(shutdown_eof),
    H_TEST(large_send),
    H_TEST(refused),
    H_TEST(peer_reset),
    H_TEST(send_to_closed),
    H_TEST(multishot_accept),
    H_TEST(multishot_accept_close),
    H_TEST(sockname_peername),
    H_TEST(setopt),
    H_TEST(listen_addrinuse),
    H_TEST(reuseport),
    H_TEST(ipv6),
    H_TEST(connect_then_close),
    H_TEST(sendv_large_mixed),
    H_TEST(full_duplex),
    H_TEST(recv_order_large),
    H_TEST(multishot_accept_burst),
    H_TEST(data_then_eof),
    H_TEST(reset_mid_send),
    H_TEST(shutdown_after_big_send),
    H_TEST(recv_max_len),
    H_TEST(accept_multishot_nomem),
    H_TEST(recv_pool_multishot_nomem),
    H_TEST(send_inline_close),
    H_TEST(send_partial_cancel),
};

H_MAIN(tcp_tests)
