/* Running out of descriptors: EMFILE is reported, and everything recovers afterwards. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    struct rlimit saved;
    int *fds;
    int n;
} filled;

/* Valgrind checks new descriptors against its own copy of the limit and closes those above
 * it, so a connection accepted into a full table is consumed rather than left queued. */
static void skip_under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");
    if (p && strstr(p, "vgpreload"))
        h_skip("valgrind emulates RLIMIT_NOFILE itself and drops connections on EMFILE");
}

/* Lower the limit a little above what is open, then take every remaining descriptor. */
static void fill(filled *f)
{
    skip_under_valgrind();
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &f->saved), 0);
    struct rlimit lim = f->saved;
    lim.rlim_cur = (rlim_t)h_fd_count() + 32;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
    f->fds = malloc(4096 * sizeof(int));
    assert_non_null(f->fds);
    f->n = 0;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            assert_int_equal(errno, EMFILE);
            break;
        }
        assert_true(f->n < 4096);
        f->fds[f->n++] = fd;
    }
    assert_true(f->n > 0);
}

static void unfill(filled *f)
{
    for (int i = 0; i < f->n; i++)
        close(f->fds[i]);
    free(f->fds);
    f->n = 0;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &f->saved), 0);
}

static int64_t result_of(ioq_loop *loop, int rc, uint64_t t)
{
    return rc == 0 ? h_wait(loop, t).result : rc;
}

static void test_emfile(void **state)
{
    (void)state;
    skip_under_valgrind();
    ioq_loop *loop = h_loop_new();
    uint16_t port;
    ioq_handle lis = h_listen(loop, &port);
    /* The remote side's socket exists before the table is full; it connects after. */
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(cfd >= 0);
    filled f;
    fill(&f);

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(cfd, (struct sockaddr *)&sa, sizeof sa), 0);

    uint64_t t = h_tok();
    assert_int_equal(h_accept(loop, lis, 0, t), 0);
    ioq_cqe c = h_wait(loop, t);
    if (c.result == 0)
        fail_msg("accept succeeded with no descriptor left (handle %llu)",
                 (unsigned long long)c.value);
    assert_int_equal(c.result, IOQ_EMFILE);

    ioq_addr a = h_addr4(port);
    t = h_tok();
    assert_int_equal(result_of(loop, h_connect(loop, &a, 0, t), t), IOQ_EMFILE);

    ioq_addr any = h_addr4(0);
    ioq_handle h = 0;
    assert_int_equal(ioq_tcp_listen(loop, &any, 0, 0, &h), IOQ_EMFILE);
    assert_int_equal(ioq_udp_bind(loop, &any, 0, &h), IOQ_EMFILE);
    assert_int_equal(h, 0);

    t = h_tok();
    int64_t r = result_of(loop, h_open(loop, h_path("x"), IOQ_OPEN_WRITE | IOQ_OPEN_CREATE,
                                       0644, t), t);
    assert_int_equal(r, IOQ_EMFILE);

    /* Multishot accept: an error ends it (no IOQ_CQE_MORE on it). */
    int cfd2 = -1;
    f.n--;
    close(f.fds[f.n]); /* one descriptor for the second remote socket */
    cfd2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(cfd2 >= 0);
    assert_int_equal(connect(cfd2, (struct sockaddr *)&sa, sizeof sa), 0);
    t = h_tok();
    assert_int_equal(h_accept(loop, lis, IOQ_MULTISHOT, t), 0);
    c = h_next(loop, t);
    assert_int_equal(c.result, IOQ_EMFILE);
    assert_int_equal(c.flags, 0);

    unfill(&f);

    /* With descriptors free again the queued connections are accepted. */
    for (int i = 0; i < 2; i++) {
        t = h_tok();
        assert_int_equal(h_accept(loop, lis, 0, t), 0);
        c = h_wait(loop, t);
        assert_int_equal(c.result, 0);
        h_close_wait(loop, c.value);
    }
    t = h_tok();
    assert_int_equal(h_connect(loop, &a, 0, t), 0);
    c = h_wait(loop, t);
    assert_int_equal(c.result, 0);
    h_close_wait(loop, c.value);
    close(cfd);
    close(cfd2);
    /* The connect above is queued on the listener: closing it drops that. */
    h_close_wait(loop, lis);
    h_finish(loop);
}

static void test_loop_new_emfile(void **state)
{
    (void)state;
    filled f;
    fill(&f);
    ioq_loop *loop = NULL;
    int rc = ioq_loop_new(NULL, &loop);
    unfill(&f);
    if (rc == 0) {
        /* A backend that needs no descriptor at all may succeed. */
        assert_non_null(loop);
        ioq_loop_free(loop);
    } else {
        assert_int_equal(rc, IOQ_EMFILE);
        assert_null(loop);
    }
    ioq_loop *ok = h_loop_new();
    h_finish(ok);
}

static const struct CMUnitTest limits_tests[] = {
    H_TEST(emfile),
    H_TEST(loop_new_emfile),
};

H_MAIN(limits_tests)
