/* Bad input on every entry point: each call returns its pinned code and completes nothing
 * (the tracker fails the test on any completion of a call that was refused). */
#include "harness.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct fixture {
    ioq_loop *loop;
    ioq_loop *other;
    ioq_handle lis;     /* TCP listener */
    ioq_handle a, b;    /* connected TCP pair */
    ioq_handle udp;
    ioq_handle file;
    ioq_handle pool;
    ioq_handle stale;   /* a closed TCP listener */
    ioq_handle foreign; /* a live listener of the other loop */
    ioq_handle bad[4];  /* 0, made up, stale, foreign */
} fixture;

static void fx_open(fixture *f)
{
    memset(f, 0, sizeof *f);
    f->loop = h_loop_new();
    f->other = h_loop_new();
    f->lis = h_listen(f->loop, NULL);
    h_pair(f->loop, &f->a, &f->b);
    ioq_addr a4 = h_addr4(0);
    assert_int_equal(ioq_udp_bind(f->loop, &a4, 0, &f->udp), 0);
    uint64_t t = h_tok();
    assert_int_equal(h_open(f->loop, h_path("f"), IOQ_OPEN_READ | IOQ_OPEN_WRITE |
                            IOQ_OPEN_CREATE, 0644, t), 0);
    ioq_cqe c = h_wait(f->loop, t);
    assert_int_equal(c.result, 0);
    f->file = c.value;
    assert_int_equal(ioq_pool_new(f->loop, 4, 256, &f->pool), 0);
    f->stale = h_listen(f->loop, NULL);
    h_close_wait(f->loop, f->stale);
    f->foreign = h_listen(f->other, NULL);
    f->bad[0] = 0;
    f->bad[1] = 0x5a5a5a5a12345678ull;
    f->bad[2] = f->stale;
    f->bad[3] = f->foreign;
    /* Every handle is distinct and nonzero. */
    ioq_handle all[] = {f->lis, f->a, f->b, f->udp, f->file, f->pool, f->stale, f->foreign};
    for (size_t i = 0; i < 8; i++) {
        assert_int_not_equal(all[i], 0);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(all[i], all[j]);
    }
}

static void fx_close(fixture *f)
{
    h_assert_quiet(f->loop, 50);
    h_assert_quiet(f->other, 10);
    h_finish(f->other);
    h_finish(f->loop);
}

static void test_null_loop(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f);
    char buf[8] = {0};
    ioq_addr a = h_addr4(1);
    ioq_iov iov = {buf, 1};
    ioq_cqe c;
    ioq_handle h = 0;
    uint64_t os;
    assert_int_equal(ioq_poll(NULL, &c, 1, 0), IOQ_EINVAL);
    assert_int_equal(ioq_submit(NULL), IOQ_EINVAL);
    assert_int_equal(ioq_wake(NULL), IOQ_EINVAL);
    assert_int_equal(ioq_post(NULL, 1, 0), IOQ_EINVAL);
    assert_int_equal(ioq_loop_fd(NULL), IOQ_EINVAL);
    assert_int_equal(ioq_tcp_listen(NULL, &a, 0, 0, &h), IOQ_EINVAL);
    assert_int_equal(ioq_udp_bind(NULL, &a, 0, &h), IOQ_EINVAL);
    assert_int_equal(ioq_local_listen(NULL, h_path("s"), 0, 0, &h), IOQ_EINVAL);
    assert_int_equal(ioq_accept(NULL, f.lis, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_connect(NULL, &a, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_local_connect(NULL, h_path("s"), 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_recv(NULL, f.a, buf, 1, 1), IOQ_EINVAL);
    assert_int_equal(ioq_recv_pool(NULL, f.a, f.pool, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_send(NULL, f.a, buf, 1, 1), IOQ_EINVAL);
    assert_int_equal(ioq_sendv(NULL, f.a, &iov, 1, 1), IOQ_EINVAL);
    assert_int_equal(ioq_sendto(NULL, f.udp, buf, 1, &a, 1), IOQ_EINVAL);
    assert_int_equal(ioq_recvfrom(NULL, f.udp, buf, 1, NULL, 1), IOQ_EINVAL);
    assert_int_equal(ioq_shutdown(NULL, f.a, 1), IOQ_EINVAL);
    assert_int_equal(ioq_close(NULL, f.a, 1), IOQ_EINVAL);
    assert_int_equal(ioq_open(NULL, h_path("f"), IOQ_OPEN_READ, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_read(NULL, f.file, buf, 1, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_write(NULL, f.file, buf, 1, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_fsync(NULL, f.file, 1), IOQ_EINVAL);
    assert_int_equal(ioq_timeout(NULL, 1, 1), IOQ_EINVAL);
    assert_int_equal(ioq_cancel(NULL, 1, 1), IOQ_EINVAL);
    assert_int_equal(ioq_resolve(NULL, "127.0.0.1", NULL, 0, &a, 1, 1), IOQ_EINVAL);
    assert_int_equal(ioq_pool_new(NULL, 1, 1, &h), IOQ_EINVAL);
    assert_null(ioq_buf(NULL, f.pool, 0));
    assert_int_equal(ioq_buf_release(NULL, f.pool, 0), IOQ_EINVAL);
    assert_int_equal(ioq_sockname(NULL, f.lis, &a), IOQ_EINVAL);
    assert_int_equal(ioq_peername(NULL, f.a, &a), IOQ_EINVAL);
    assert_int_equal(ioq_setopt(NULL, f.a, IOQ_OPT_NODELAY, 1), IOQ_EINVAL);
    assert_int_equal(ioq_adopt(NULL, 0, IOQ_KIND_TCP, &h), IOQ_EINVAL);
    assert_int_equal(ioq_os_handle(NULL, f.a, &os), IOQ_EINVAL);
    assert_int_equal(h, 0);
    fx_close(&f);
}

static void test_null_out(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f);
    ioq_addr a = h_addr4(0);
    assert_int_equal(ioq_tcp_listen(f.loop, &a, 0, 0, NULL), IOQ_EINVAL);
    assert_int_equal(ioq_tcp_listen(f.loop, NULL, 0, 0, &f.stale), IOQ_EINVAL);
    assert_int_equal(ioq_udp_bind(f.loop, &a, 0, NULL), IOQ_EINVAL);
    assert_int_equal(ioq_udp_bind(f.loop, NULL, 0, &f.stale), IOQ_EINVAL);
    assert_int_equal(ioq_local_listen(f.loop, h_path("s"), 0, 0, NULL), IOQ_EINVAL);
    assert_int_equal(ioq_local_listen(f.loop, NULL, 0, 0, &f.stale), IOQ_EINVAL);
    assert_int_equal(ioq_pool_new(f.loop, 1, 1, NULL), IOQ_EINVAL);
    assert_int_equal(ioq_sockname(f.loop, f.lis, NULL), IOQ_EINVAL);
    assert_int_equal(ioq_peername(f.loop, f.a, NULL), IOQ_EINVAL);
    assert_int_equal(ioq_os_handle(f.loop, f.a, NULL), IOQ_EINVAL);
    assert_int_equal(ioq_adopt(f.loop, 0, IOQ_KIND_TCP, NULL), IOQ_EINVAL);
    assert_int_equal(ioq_connect(f.loop, NULL, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_local_connect(f.loop, NULL, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_open(f.loop, NULL, IOQ_OPEN_READ, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_sendto(f.loop, f.udp, "x", 1, NULL, 1), IOQ_EINVAL);
    assert_int_equal(ioq_resolve(f.loop, NULL, NULL, 0, &a, 1, 1), IOQ_EINVAL);
    assert_int_equal(ioq_resolve(f.loop, "127.0.0.1", "80", 0, NULL, 1, 1), IOQ_EINVAL);
    assert_int_equal(ioq_resolve(f.loop, "127.0.0.1", "80", 0, &a, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_addr_parse("1.2.3.4", NULL), IOQ_EINVAL);
    fx_close(&f);
}

static void test_null_buf(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f);
    ioq_addr a = h_addr4(9);
    assert_int_equal(ioq_recv(f.loop, f.a, NULL, 1, 1), IOQ_EINVAL);
    assert_int_equal(ioq_send(f.loop, f.a, NULL, 1, 1), IOQ_EINVAL);
    assert_int_equal(ioq_sendv(f.loop, f.a, NULL, 1, 1), IOQ_EINVAL);
    ioq_iov iov[2] = {{"ab", 2}, {NULL, 3}};
    assert_int_equal(ioq_sendv(f.loop, f.a, iov, 2, 1), IOQ_EINVAL);
    assert_int_equal(ioq_sendto(f.loop, f.udp, NULL, 1, &a, 1), IOQ_EINVAL);
    assert_int_equal(ioq_recvfrom(f.loop, f.udp, NULL, 1, NULL, 1), IOQ_EINVAL);
    assert_int_equal(ioq_read(f.loop, f.file, NULL, 1, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_write(f.loop, f.file, NULL, 1, 0, 1), IOQ_EINVAL);
    ioq_cqe c;
    assert_int_equal(ioq_poll(f.loop, NULL, 1, 0), IOQ_EINVAL);
    assert_int_equal(ioq_poll(f.loop, &c, 0, 0), IOQ_EINVAL);
    assert_int_equal(ioq_poll(f.loop, &c, 1, -2), IOQ_EINVAL);
    assert_int_equal(ioq_poll(f.loop, &c, 1, INT64_MIN), IOQ_EINVAL);
    fx_close(&f);
}

/* Every handle-taking entry point refuses each bad handle with EBADHANDLE. */
static void test_bad_handles(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f);
    char buf[8] = {0};
    ioq_addr a = h_addr4(9);
    ioq_iov iov = {buf, 1};
    uint64_t os;
    for (int i = 0; i < 4; i++) {
        ioq_handle h = f.bad[i];
        print_message("bad handle %d: %#llx\n", i, (unsigned long long)h);
        assert_int_equal(ioq_accept(f.loop, h, 0, 1), IOQ_EBADHANDLE);
        assert_int_equal(ioq_accept(f.loop, h, IOQ_MULTISHOT, 1), IOQ_EBADHANDLE);
        assert_int_equal(ioq_recv(f.loop, h, buf, 1, 1), IOQ_EBADHANDLE);
        assert_int_equal(ioq_recv_pool(f.loop, h, f.pool, 0, 1), IOQ_EBADHANDLE);
        assert_int_equal(ioq_recv_pool(f.loop, f.b, h, 0, 1), IOQ_EBADHANDLE);
        assert_int_equal(ioq_send(f.loop, h, buf, 1, 1), IOQ_EBADHANDLE);
        assert_int_equal(ioq_sendv(f.loop, h, &iov, 1, 1), IOQ_EBADHANDLE);
        assert_int_equal(ioq_sendto(f.loop, h, buf, 1, &a, 1), IOQ_EBADHANDLE);
        assert_int_equal(ioq_recvfrom(f.loop, h, buf, 1, NULL, 1), IOQ_EBADHANDLE);
        assert_int_equal(ioq_shutdown(f.loop, h, 1), IOQ_EBADHANDLE);
        assert_int_equal(ioq_close(f.loop, h, 1), IOQ_EBADHANDLE);
        assert_int_equal(ioq_read(f.loop, h, buf, 1, 0, 1), IOQ_EBADHANDLE);
        assert_int_equal(ioq_write(f.loop, h, buf, 1, 0, 1), IOQ_EBADHANDLE);
        assert_int_equal(ioq_fsync(f.loop, h, 1), IOQ_EBADHANDLE);
        assert_int_equal(ioq_sockname(f.loop, h, &a), IOQ_EBADHANDLE);
        assert_int_equal(ioq_peername(f.loop, h, &a), IOQ_EBADHANDLE);
        assert_int_equal(ioq_setopt(f.loop, h, IOQ_OPT_NODELAY, 1), IOQ_EBADHANDLE);
        assert_int_equal(ioq_os_handle(f.loop, h, &os), IOQ_EBADHANDLE);
        assert_null(ioq_buf(f.loop, h, 0));
        assert_int_equal(ioq_buf_release(f.loop, h, 0), IOQ_EBADHANDLE);
    }
    /* The foreign handle still works on its own loop. */
    ioq_addr got;
    assert_int_equal(ioq_sockname(f.other, f.foreign, &got), 0);
    assert_int_not_equal(got.port, 0);
    fx_close(&f);
}

static void test_wrong_kind(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f);
    char buf[8] = {0};
    ioq_addr a = h_addr4(9);
    ioq_iov iov = {buf, 1};
    /* Stream ops on a listener. */
    assert_int_equal(ioq_recv(f.loop, f.lis, buf, 1, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_send(f.loop, f.lis, buf, 1, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_sendv(f.loop, f.lis, &iov, 1, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_recv_pool(f.loop, f.lis, f.pool, 0, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_shutdown(f.loop, f.lis, 1), IOQ_EBADHANDLE);
    /* Accept on a stream, on UDP, on a file, on a pool. */
    assert_int_equal(ioq_accept(f.loop, f.a, 0, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_accept(f.loop, f.udp, 0, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_accept(f.loop, f.file, 0, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_accept(f.loop, f.pool, 0, 1), IOQ_EBADHANDLE);
    /* File ops on sockets. */
    assert_int_equal(ioq_read(f.loop, f.a, buf, 1, 0, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_write(f.loop, f.a, buf, 1, 0, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_fsync(f.loop, f.a, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_read(f.loop, f.lis, buf, 1, 0, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_read(f.loop, f.pool, buf, 1, 0, 1), IOQ_EBADHANDLE);
    /* Socket ops on a file and on a pool. */
    assert_int_equal(ioq_recv(f.loop, f.file, buf, 1, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_send(f.loop, f.file, buf, 1, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_recv(f.loop, f.pool, buf, 1, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_recv_pool(f.loop, f.pool, f.pool, 0, 1), IOQ_EBADHANDLE);
    /* The pool argument must be a pool. */
    assert_int_equal(ioq_recv_pool(f.loop, f.b, f.a, 0, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_recv_pool(f.loop, f.b, f.file, 0, 1), IOQ_EBADHANDLE);
    assert_null(ioq_buf(f.loop, f.a, 0));
    assert_int_equal(ioq_buf_release(f.loop, f.a, 0), IOQ_EBADHANDLE);
    /* Datagram ops on a stream and a listener. */
    assert_int_equal(ioq_sendto(f.loop, f.a, buf, 1, &a, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_recvfrom(f.loop, f.a, buf, 1, NULL, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_sendto(f.loop, f.lis, buf, 1, &a, 1), IOQ_EBADHANDLE);
    /* Queries where the header names ENOTSUP. */
    ioq_addr out;
    assert_int_equal(ioq_sockname(f.loop, f.file, &out), IOQ_ENOTSUP);
    assert_int_equal(ioq_peername(f.loop, f.file, &out), IOQ_ENOTSUP);
    assert_int_equal(ioq_setopt(f.loop, f.file, IOQ_OPT_NODELAY, 1), IOQ_ENOTSUP);
    fx_close(&f);
}

static void test_lengths(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f);
    char buf[8] = {0};
    ioq_addr a = h_addr4(9);
    size_t big = (size_t)IOQ_MAX_LEN + 1;
    assert_int_equal(ioq_recv(f.loop, f.a, buf, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_recv(f.loop, f.a, buf, big, 1), IOQ_EINVAL);
    assert_int_equal(ioq_recv(f.loop, f.a, buf, SIZE_MAX, 1), IOQ_EINVAL);
    assert_int_equal(ioq_send(f.loop, f.a, buf, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_send(f.loop, f.a, buf, big, 1), IOQ_EINVAL);
    assert_int_equal(ioq_sendto(f.loop, f.udp, buf, big, &a, 1), IOQ_EINVAL);
    assert_int_equal(ioq_recvfrom(f.loop, f.udp, buf, big, NULL, 1), IOQ_EINVAL);
    assert_int_equal(ioq_read(f.loop, f.file, buf, 0, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_read(f.loop, f.file, buf, big, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_write(f.loop, f.file, buf, 0, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_write(f.loop, f.file, buf, big, 0, 1), IOQ_EINVAL);
    fx_close(&f);
}

static void test_sendv_bounds(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f);
    static ioq_iov iov[IOQ_MAX_IOV + 1];
    static char byte = 'x';
    for (int i = 0; i <= IOQ_MAX_IOV; i++) {
        iov[i].base = &byte;
        iov[i].len = 1;
    }
    assert_int_equal(ioq_sendv(f.loop, f.a, iov, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_sendv(f.loop, f.a, iov, IOQ_MAX_IOV + 1, 1), IOQ_EINVAL);
    assert_int_equal(ioq_sendv(f.loop, f.a, iov, UINT32_MAX, 1), IOQ_EINVAL);
    /* Total of zero bytes. */
    ioq_iov zero[2] = {{&byte, 0}, {&byte, 0}};
    assert_int_equal(ioq_sendv(f.loop, f.a, zero, 2, 1), IOQ_EINVAL);
    /* Total above IOQ_MAX_LEN (and a sum that would wrap a size_t). */
    ioq_iov huge[2] = {{&byte, IOQ_MAX_LEN}, {&byte, 1}};
    assert_int_equal(ioq_sendv(f.loop, f.a, huge, 2, 1), IOQ_EINVAL);
    ioq_iov wrap[2] = {{&byte, SIZE_MAX}, {&byte, 2}};
    assert_int_equal(ioq_sendv(f.loop, f.a, wrap, 2, 1), IOQ_EINVAL);
    /* Exactly IOQ_MAX_IOV entries is accepted and sends every byte. */
    uint64_t t = h_tok();
    assert_int_equal(h_sendv(f.loop, f.a, iov, IOQ_MAX_IOV, t), 0);
    assert_int_equal(h_wait(f.loop, t).result, IOQ_MAX_IOV);
    char got[IOQ_MAX_IOV];
    h_recv_exact(f.loop, f.b, got, sizeof got);
    for (int i = 0; i < IOQ_MAX_IOV; i++)
        assert_int_equal(got[i], 'x');
    fx_close(&f);
}

static void test_flags(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f);
    ioq_addr a = h_addr4(0), out;
    ioq_handle h = 0;
    assert_int_equal(ioq_accept(f.loop, f.lis, 0x100, 1), IOQ_EINVAL);
    assert_int_equal(ioq_accept(f.loop, f.lis, 0x80000000u, 1), IOQ_EINVAL);
    assert_int_equal(ioq_recv_pool(f.loop, f.b, f.pool, 0x100, 1), IOQ_EINVAL);
    ioq_addr dst = h_addr4(9);
    assert_int_equal(ioq_connect(f.loop, &dst, 0x100, 1), IOQ_EINVAL);
    assert_int_equal(ioq_tcp_listen(f.loop, &a, 0, 0x100, &h), IOQ_EINVAL);
    assert_int_equal(ioq_udp_bind(f.loop, &a, 0x100, &h), IOQ_EINVAL);
    assert_int_equal(ioq_local_listen(f.loop, h_path("s"), 0, 0x100, &h), IOQ_EINVAL);
    assert_int_equal(ioq_open(f.loop, h_path("g"), 0, 0644, 1), IOQ_EINVAL);
    assert_int_equal(ioq_open(f.loop, h_path("g"), IOQ_OPEN_CREATE, 0644, 1), IOQ_EINVAL);
    assert_int_equal(ioq_open(f.loop, h_path("g"), IOQ_OPEN_READ | 0x1000, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_resolve(f.loop, "127.0.0.1", NULL, 0x100, &out, 1, 1), IOQ_EINVAL);
    assert_int_equal(ioq_setopt(f.loop, f.a, 0, 1), IOQ_EINVAL);
    assert_int_equal(ioq_setopt(f.loop, f.a, 99, 1), IOQ_EINVAL);
    assert_int_equal(h, 0);
    fx_close(&f);
}

static void test_bad_family(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f);
    ioq_handle h = 0;
    uint16_t fams[] = {IOQ_AF_UNSPEC, 1, 2, 10, 99, 0xffff};
    for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) {
        ioq_addr a = h_addr4(9);
        a.family = fams[i];
        int rc = ioq_connect(f.loop, &a, 0, 1);
        assert_true(rc == IOQ_EINVAL || rc == IOQ_EAFNOSUPPORT);
        rc = ioq_tcp_listen(f.loop, &a, 0, 0, &h);
        assert_true(rc == IOQ_EINVAL || rc == IOQ_EAFNOSUPPORT);
        rc = ioq_udp_bind(f.loop, &a, 0, &h);
        assert_true(rc == IOQ_EINVAL || rc == IOQ_EAFNOSUPPORT);
        rc = ioq_sendto(f.loop, f.udp, "x", 1, &a, 1);
        assert_true(rc == IOQ_EINVAL || rc == IOQ_EAFNOSUPPORT);
    }
    assert_int_equal(h, 0);
    fx_close(&f);
}

static void test_pool_ids(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f);
    /* Ids 0..3 exist; nothing is held by the caller yet. */
    for (uint32_t id = 0; id < 4; id++)
        assert_non_null(ioq_buf(f.loop, f.pool, id));
    assert_null(ioq_buf(f.loop, f.pool, 4));
    assert_null(ioq_buf(f.loop, f.pool, UINT32_MAX));
    assert_int_equal(ioq_buf_release(f.loop, f.pool, 4), IOQ_EINVAL);
    assert_int_equal(ioq_buf_release(f.loop, f.pool, UINT32_MAX), IOQ_EINVAL);
    assert_int_equal(ioq_buf_release(f.loop, f.pool, 0), IOQ_EINVAL);
    /* Take a buffer through a receive, release it once, then again. */
    uint64_t t = h_tok();
    assert_int_equal(h_recv_pool(f.loop, f.b, f.pool, 0, t), 0);
    h_send_wait(f.loop, f.a, "hello", 5);
    ioq_cqe c = h_wait(f.loop, t);
    assert_int_equal(c.result, 5);
    assert_true(c.flags & IOQ_CQE_BUFFER);
    assert_true(c.value < 4);
    assert_memory_equal(ioq_buf(f.loop, f.pool, (uint32_t)c.value), "hello", 5);
    assert_int_equal(ioq_buf_release(f.loop, f.pool, (uint32_t)c.value), 0);
    assert_int_equal(ioq_buf_release(f.loop, f.pool, (uint32_t)c.value), IOQ_EINVAL);
    /* A pool of another loop is foreign here. */
    ioq_handle p2;
    assert_int_equal(ioq_pool_new(f.other, 1, 16, &p2), 0);
    assert_null(ioq_buf(f.loop, p2, 0));
    assert_int_equal(ioq_recv_pool(f.loop, f.b, p2, 0, 1), IOQ_EBADHANDLE);
    fx_close(&f);
}

static void test_stale_after_close(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle a, b;
    h_pair(loop, &a, &b);
    uint64_t t = h_tok();
    assert_int_equal(h_close(loop, a, t), 0);
    /* Invalid as soon as ioq_close returns, before its completion is polled. */
    char buf[4];
    assert_int_equal(ioq_send(loop, a, "x", 1, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_recv(loop, a, buf, 1, 1), IOQ_EBADHANDLE);
    assert_int_equal(ioq_close(loop, a, 1), IOQ_EBADHANDLE);
    ioq_addr ad;
    assert_int_equal(ioq_peername(loop, a, &ad), IOQ_EBADHANDLE);
    assert_int_equal(h_wait(loop, t).result, 0);
    assert_int_equal(ioq_close(loop, a, 1), IOQ_EBADHANDLE);
    /* A new handle made after the close does not revive the old value. */
    ioq_handle c, d;
    h_pair(loop, &c, &d);
    assert_int_not_equal(c, a);
    assert_int_not_equal(d, a);
    assert_int_equal(ioq_send(loop, a, "x", 1, 1), IOQ_EBADHANDLE);
    h_close_wait(loop, b);
    h_close_wait(loop, c);
    h_close_wait(loop, d);
    h_assert_quiet(loop, 20);
    h_finish(loop);
}

static void test_close_pool_and_file(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f);
    h_close_wait(f.loop, f.pool);
    assert_null(ioq_buf(f.loop, f.pool, 0));
    assert_int_equal(ioq_recv_pool(f.loop, f.b, f.pool, 0, 1), IOQ_EBADHANDLE);
    h_close_wait(f.loop, f.file);
    char buf[4];
    assert_int_equal(ioq_read(f.loop, f.file, buf, 1, 0, 1), IOQ_EBADHANDLE);
    fx_close(&f);
}

static void test_many_handles(void **state)
{
    (void)state;
    /* The handle table grows, and every value of a closed handle stays stale while its
     * slot is reused again and again. */
    ioq_loop *loop = h_loop_new();
    enum { N = 5000, CYCLES = 2000 };
    ioq_handle *hs = malloc(N * sizeof *hs);
    assert_non_null(hs);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ioq_pool_new(loop, 1, 1, &hs[i]), 0);
        assert_int_not_equal(hs[i], 0);
    }
    for (int i = 0; i < N; i++)
        assert_non_null(ioq_buf(loop, hs[i], 0));
    for (int i = 0; i < N; i++)
        assert_int_equal(h_close(loop, hs[i], 1), 0);
    for (int i = 0; i < N; i++)
        assert_null(ioq_buf(loop, hs[i], 0));
    ioq_handle *old = malloc(CYCLES * sizeof *old);
    assert_non_null(old);
    for (int i = 0; i < CYCLES; i++) {
        assert_int_equal(ioq_pool_new(loop, 1, 1, &old[i]), 0);
        assert_int_equal(h_close(loop, old[i], 2), 0);
    }
    ioq_handle live;
    assert_int_equal(ioq_pool_new(loop, 1, 1, &live), 0);
    for (int i = 0; i < CYCLES; i++) {
        assert_int_not_equal(old[i], live);
        assert_null(ioq_buf(loop, old[i], 0));
        assert_int_equal(ioq_close(loop, old[i], 3), IOQ_EBADHANDLE);
    }
    for (int i = 0; i < N; i++) {
        assert_int_not_equal(hs[i], live);
        assert_int_equal(ioq_close(loop, hs[i], 3), IOQ_EBADHANDLE);
    }
    assert_non_null(ioq_buf(loop, live, 0));
    h_close_wait(loop, live);
    free(hs);
    free(old);
    h_finish(loop);
}

static void test_copied_at_submit(void **state)
{
    (void)state;
    /* Addresses and paths are copied by the submit call: clobbering them before the
     * first poll must not change what the operation does. */
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    ioq_handle lis = h_listen(loop, &port);
    assert_int_equal(h_accept(loop, lis, 0, 1), 0);
    ioq_addr *a = malloc(sizeof *a);
    assert_non_null(a);
    *a = h_addr4(port);
    assert_int_equal(h_connect(loop, a, 0, 2), 0);
    memset(a, 0xff, sizeof *a);
    free(a);
    ioq_cqe ca = h_wait(loop, 1), cc = h_wait(loop, 2);
    assert_int_equal(ca.result, 0);
    assert_int_equal(cc.result, 0);

    char *path = strdup(h_path("copied"));
    assert_non_null(path);
    assert_int_equal(h_open(loop, path, IOQ_OPEN_WRITE | IOQ_OPEN_CREATE | IOQ_OPEN_EXCL,
                            0644, 3), 0);
    memset(path, 'z', strlen(path));
    free(path);
    ioq_cqe co = h_wait(loop, 3);
    assert_int_equal(co.result, 0);
    struct stat st;
    assert_int_equal(stat(h_path("copied"), &st), 0);

    char *lpath = strdup(h_path("copied.sock"));
    assert_non_null(lpath);
    ioq_handle ll;
    assert_int_equal(ioq_local_listen(loop, lpath, 0, 0, &ll), 0);
    assert_int_equal(h_accept(loop, ll, 0, 4), 0);
    assert_int_equal(h_local_connect(loop, lpath, 0, 5), 0);
    memset(lpath, 'z', strlen(lpath));
    free(lpath);
    ioq_cqe la = h_wait(loop, 4), lc = h_wait(loop, 5);
    assert_int_equal(la.result, 0);
    assert_int_equal(lc.result, 0);

    ioq_addr any = h_addr4(0), got;
    ioq_handle u1, u2;
    assert_int_equal(ioq_udp_bind(loop, &any, 0, &u1), 0);
    assert_int_equal(ioq_udp_bind(loop, &any, 0, &u2), 0);
    assert_int_equal(ioq_sockname(loop, u2, &got), 0);
    char buf[4];
    assert_int_equal(h_recvfrom(loop, u2, buf, sizeof buf, NULL, 6), 0);
    ioq_addr *to = malloc(sizeof *to);
    assert_non_null(to);
    *to = h_addr4(got.port);
    assert_int_equal(h_sendto(loop, u1, "cp", 2, to, 7), 0);
    memset(to, 0xff, sizeof *to);
    free(to);
    assert_int_equal(h_wait(loop, 7).result, 2);
    assert_int_equal(h_wait(loop, 6).result, 2);

    ioq_handle all[] = {ca.value, cc.value, co.value, la.value, lc.value, ll, lis, u1, u2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        h_close_wait(loop, all[i]);
    h_finish(loop);
}

/* --- handle identity: foreign loops and long-lived slots ---------------------------------- */

/* v is not a live handle of loop: every entry point that takes one refuses it. */
static void assert_refused(ioq_loop *loop, ioq_handle v)
{
    uint64_t os;
    ioq_addr a;
    assert_int_equal(ioq_close(loop, v, h_tok()), IOQ_EBADHANDLE);
    assert_int_equal(ioq_accept(loop, v, 0, h_tok()), IOQ_EBADHANDLE);
    assert_null(ioq_buf(loop, v, 0));
    assert_int_equal(ioq_buf_release(loop, v, 0), IOQ_EBADHANDLE);
    assert_int_equal(ioq_os_handle(loop, v, &os), IOQ_EBADHANDLE);
    assert_int_equal(ioq_sockname(loop, v, &a), IOQ_EBADHANDLE);
}

static void test_foreign_after_65536_loops(void **state)
{
    (void)state;
    ioq_loop *a = h_loop_new();
    ioq_handle alis = h_listen(a, NULL), apool;
    assert_int_equal(ioq_pool_new(a, 1, 64, &apool), 0);
    /* The loops b below are the 65,533rd to the 65,540th created after a: the 16-bit loop
     * tag of handle values came back to a's among them. Each must refuse a's handles, and
     * a must refuse b's. */
    ioq__test_loop_tags_skip(65532);
    for (int i = 0; i < 8; i++) {
        ioq_loop *b = h_loop_new();
        ioq_handle blis = h_listen(b, NULL), bpool;
        assert_int_equal(ioq_pool_new(b, 1, 64, &bpool), 0);
        assert_refused(b, alis);
        assert_refused(b, apool);
        assert_refused(a, blis);
        assert_refused(a, bpool);
        h_finish(b);
    }
    /* a's own handles still work. */
    assert_non_null(ioq_buf(a, apool, 0));
    h_close_wait(a, apool);
    h_close_wait(a, alis);
    h_finish(a);
}

/* Pools are the cheapest handles: a slot reused n times, its values kept in seen[]. */
static ioq_handle reuse_slot(ioq_loop *loop)
{
    ioq_handle p;
    assert_int_equal(ioq_pool_new(loop, 1, 16, &p), 0);
    h_close_wait(loop, p);
    return p;
}

static void test_generation_wrap(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle seen[10];
    seen[0] = reuse_slot(loop);
    /* As if the slot had served 2^24 - 3 more handles: with the 24-bit generation that
     * wrapped, the slot came back to seen[0]'s value within the next three. */
    assert_int_equal(ioq__test_handle_reuse(loop, seen[0], (1u << 24) - 3), 0);
    for (int i = 1; i < 10; i++) {
        seen[i] = reuse_slot(loop);
        for (int j = 0; j < i; j++) {
            assert_int_not_equal(seen[i], seen[j]);
            assert_refused(loop, seen[j]);
        }
    }
    assert_refused(loop, seen[9]);
    h_finish(loop);
}

static void test_slot_reused_long(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_handle first = reuse_slot(loop), prev = first;
    /* One slot serves 20,000 handles in turn: each value is new, none comes back. */
    for (int i = 0; i < 20000; i++) {
        ioq_handle p = reuse_slot(loop);
        assert_int_not_equal(p, first);
        assert_int_not_equal(p, prev);
        prev = p;
    }
    assert_refused(loop, first);
    assert_refused(loop, prev);
    h_finish(loop);
}

static const struct CMUnitTest handles_tests[] = {
    H_TEST(null_loop),
    H_TEST(null_out),
    H_TEST(null_buf),
    H_TEST(bad_handles),
    H_TEST(wrong_kind),
    H_TEST(lengths),
    H_TEST(sendv_bounds),
    H_TEST(flags),
    H_TEST(bad_family),
    H_TEST(pool_ids),
    H_TEST(stale_after_close),
    H_TEST(close_pool_and_file),
    H_TEST(many_handles),
    H_TEST(copied_at_submit),
    H_TEST(foreign_after_65536_loops),
    H_TEST(generation_wrap),
    H_TEST(slot_reused_long),
};

H_MAIN(handles_tests)
