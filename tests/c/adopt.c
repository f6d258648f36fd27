/* Bringing OS descriptors into a loop, and getting them back out. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void test_socketpair_local(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ioq_handle h = 0;
    assert_int_equal(ioq_adopt(loop, (uint64_t)sv[0], IOQ_KIND_LOCAL, &h), 0);
    assert_int_not_equal(h, 0);
    uint64_t os = 0;
    assert_int_equal(ioq_os_handle(loop, h, &os), 0);
    assert_int_equal(os, (uint64_t)sv[0]);
    /* Made non-blocking where the kind needs it: readiness backends do their own I/O. */
    if (strcmp(h_backend(), "epoll") == 0 || strcmp(h_backend(), "kqueue") == 0)
        assert_true(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    h_plain_write_all(sv[1], "from peer", 9);
    char buf[16];
    h_recv_exact(loop, h, buf, 9);
    assert_memory_equal(buf, "from peer", 9);
    h_send_wait(loop, h, "to peer", 7);
    h_plain_read_all(sv[1], buf, 7);
    assert_memory_equal(buf, "to peer", 7);
    /* ioq owns the descriptor now: its close closes it. */
    h_close_wait(loop, h);
    errno = 0;
    assert_int_equal(fcntl(sv[0], F_GETFD), -1);
    assert_int_equal(errno, EBADF);
    assert_int_equal(ioq_os_handle(loop, h, &os), IOQ_EBADHANDLE);
    /* The peer sees the end of the stream. */
    assert_int_equal(read(sv[1], buf, sizeof buf), 0);
    close(sv[1]);
    h_finish(loop);
}

static void test_bad_kind(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ioq_handle h = 0;
    assert_int_equal(ioq_adopt(loop, (uint64_t)sv[0], 0, &h), IOQ_EINVAL);
    /* Kinds that are not descriptors, and the first number past the last kind. */
    assert_int_equal(ioq_adopt(loop, (uint64_t)sv[0], IOQ_KIND_PROCESS, &h), IOQ_EINVAL);
    assert_int_equal(ioq_adopt(loop, (uint64_t)sv[0], IOQ_KIND_NOTIFIER, &h), IOQ_EINVAL);
    assert_int_equal(ioq_adopt(loop, (uint64_t)sv[0], IOQ_KIND_NOTIFIER + 1, &h), IOQ_EINVAL);
    assert_int_equal(ioq_adopt(loop, (uint64_t)sv[0], UINT32_MAX, &h), IOQ_EINVAL);
    assert_int_equal(h, 0);
    /* A refused adoption leaves the descriptor with the caller. */
    assert_int_not_equal(fcntl(sv[0], F_GETFD), -1);
    /* Descriptors that are not open. */
    assert_int_equal(ioq_adopt(loop, UINT64_MAX, IOQ_KIND_LOCAL, &h), IOQ_EINVAL);
    assert_int_equal(ioq_adopt(loop, (uint64_t)1 << 40, IOQ_KIND_LOCAL, &h), IOQ_EINVAL);
    int dead = dup(sv[0]);
    close(dead);
    assert_int_equal(ioq_adopt(loop, (uint64_t)dead, IOQ_KIND_LOCAL, &h), IOQ_EINVAL);
    assert_int_equal(h, 0);
    close(sv[0]);
    close(sv[1]);
    h_finish(loop);
}

static void test_tcp_listener(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    int lfd = h_plain_listen(&port);
    ioq_handle lis;
    assert_int_equal(ioq_adopt(loop, (uint64_t)lfd, IOQ_KIND_TCP_LISTENER, &lis), 0);
    ioq_addr a;
    assert_int_equal(ioq_sockname(loop, lis, &a), 0);
    assert_int_equal(a.port, port);
    assert_int_equal(h_accept(loop, lis, 0, 1), 0);
    int cfd = h_plain_connect(port);
    ioq_cqe c = h_wait(loop, 1);
    assert_int_equal(c.result, 0);
    h_plain_write_all(cfd, "hi", 2);
    char buf[2];
    h_recv_exact(loop, c.value, buf, 2);
    assert_memory_equal(buf, "hi", 2);
    close(cfd);
    h_close_wait(loop, c.value);
    h_close_wait(loop, lis);
    h_finish(loop);
}

static void test_tcp_stream(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    int lfd = h_plain_listen(&port);
    int cfd = h_plain_connect(port);
    int sfd = h_plain_accept(lfd);
    close(lfd);
    ioq_handle h;
    assert_int_equal(ioq_adopt(loop, (uint64_t)cfd, IOQ_KIND_TCP, &h), 0);
    ioq_addr p;
    assert_int_equal(ioq_peername(loop, h, &p), 0);
    assert_int_equal(p.port, port);
    assert_int_equal(ioq_setopt(loop, h, IOQ_OPT_NODELAY, 1), 0);
    h_send_wait(loop, h, "tcp", 3);
    char buf[3];
    h_plain_read_all(sfd, buf, 3);
    assert_memory_equal(buf, "tcp", 3);
    h_close_wait(loop, h);
    close(sfd);
    h_finish(loop);
}

static void test_file(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    const char *path = h_path("adopted");
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("file contents", fp);
    fclose(fp);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    ioq_handle h;
    assert_int_equal(ioq_adopt(loop, (uint64_t)fd, IOQ_KIND_FILE, &h), 0);
    uint64_t os;
    assert_int_equal(ioq_os_handle(loop, h, &os), 0);
    assert_int_equal(os, (uint64_t)fd);
    char buf[8] = {0};
    assert_int_equal(h_read(loop, h, buf, 8, 5, 1), 0);
    assert_int_equal(h_wait(loop, 1).result, 8);
    assert_memory_equal(buf, "contents", 8);
    h_close_wait(loop, h);
    h_finish(loop);
}

static void test_udp(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    ioq_handle u;
    assert_int_equal(ioq_adopt(loop, (uint64_t)fd, IOQ_KIND_UDP, &u), 0);
    ioq_addr any = h_addr4(0), got;
    ioq_handle b;
    assert_int_equal(ioq_udp_bind(loop, &any, 0, &b), 0);
    assert_int_equal(ioq_sockname(loop, b, &got), 0);
    ioq_addr dst = h_addr4(got.port);
    char buf[4];
    assert_int_equal(h_recvfrom(loop, b, buf, sizeof buf, NULL, 1), 0);
    assert_int_equal(h_sendto(loop, u, "udp", 3, &dst, 2), 0);
    assert_int_equal(h_wait(loop, 2).result, 3);
    assert_int_equal(h_wait(loop, 1).result, 3);
    assert_memory_equal(buf, "udp", 3);
    h_close_wait(loop, u);
    h_close_wait(loop, b);
    h_finish(loop);
}

static void test_os_handle_kinds(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle c, s, pool;
    h_pair(loop, &c, &s);
    uint64_t oc, os;
    assert_int_equal(ioq_os_handle(loop, c, &oc), 0);
    assert_int_equal(ioq_os_handle(loop, s, &os), 0);
    assert_int_not_equal(oc, os);
    /* The descriptor is the real socket: a plain send on it reaches the peer. */
    assert_int_equal(send((int)oc, "raw", 3, MSG_NOSIGNAL), 3);
    char buf[3];
    h_recv_exact(loop, s, buf, 3);
    assert_memory_equal(buf, "raw", 3);
    /* A pool has no OS descriptor. */
    assert_int_equal(ioq_pool_new(loop, 1, 8, &pool), 0);
    uint64_t op;
    int rc = ioq_os_handle(loop, pool, &op);
    assert_true(rc == IOQ_EBADHANDLE || rc == IOQ_EINVAL || rc == IOQ_ENOTSUP);
    h_close_wait(loop, pool);
    h_close_wait(loop, c);
    h_close_wait(loop, s);
    h_finish(loop);
}

static void test_unconnected_tcp(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    ioq_handle h;
    assert_int_equal(ioq_adopt(loop, (uint64_t)fd, IOQ_KIND_TCP, &h), 0);
    ioq_addr a;
    assert_int_equal(ioq_peername(loop, h, &a), IOQ_ENOTCONN);
    uint64_t t = h_tok();
    int rc = h_shutdown(loop, h, t);
    int64_t r = rc == 0 ? h_wait(loop, t).result : rc;
    assert_int_equal(r, IOQ_ENOTCONN);
    h_close_wait(loop, h);
    h_finish(loop);
}

static const struct CMUnitTest adopt_tests[] = {
    H_TEST(socketpair_local),
    H_TEST(bad_kind),
    H_TEST(tcp_listener),
    H_TEST(tcp_stream),
    H_TEST(file),
    H_TEST(udp),
    H_TEST(os_handle_kinds),
    H_TEST(unconnected_tcp),
};

H_MAIN(adopt_tests)
