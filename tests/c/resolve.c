/* Name resolution off the loop thread (no network here: only local answers). */
#include "harness.h"

#include <string.h>

static int is_loopback(const ioq_addr *a)
{
    static const uint8_t v6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (a->family == IOQ_AF_INET)
        return a->ip[0] == 127;
    if (a->family == IOQ_AF_INET6)
        return memcmp(a->ip, v6, 16) == 0;
    return 0;
}

static void test_localhost(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_addr out[8];
    memset(out, 0, sizeof out);
    assert_int_equal(h_resolve(loop, "localhost", "80", 0, out, 8, 1), 0);
    ioq_cqe c = h_wait(loop, 1);
    assert_true(c.result >= 1 && c.result <= 8);
    for (int i = 0; i < c.result; i++) {
        assert_true(is_loopback(&out[i]));
        assert_int_equal(out[i].port, 80);
    }
    /* Restricted to IPv4. */
    memset(out, 0, sizeof out);
    assert_int_equal(h_resolve(loop, "localhost", "8080", IOQ_RESOLVE_INET, out, 8, 2), 0);
    c = h_wait(loop, 2);
    assert_true(c.result >= 1);
    for (int i = 0; i < c.result; i++) {
        assert_int_equal(out[i].family, IOQ_AF_INET);
        assert_int_equal(out[i].ip[0], 127);
        assert_int_equal(out[i].port, 8080);
    }
    h_finish(loop);
}

static void test_numeric(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_addr out[4];
    assert_int_equal(h_resolve(loop, "127.0.0.1", "443", IOQ_RESOLVE_NUMERIC, out, 4, 1), 0);
    ioq_cqe c = h_wait(loop, 1);
    assert_int_equal(c.result, 1);
    assert_int_equal(out[0].family, IOQ_AF_INET);
    assert_int_equal(out[0].port, 443);
    assert_int_equal(out[0].ip[0], 127);
    assert_int_equal(out[0].ip[3], 1);
    /* Without the flag, the same. */
    assert_int_equal(h_resolve(loop, "127.0.0.1", NULL, 0, out, 4, 2), 0);
    c = h_wait(loop, 2);
    assert_int_equal(c.result, 1);
    assert_int_equal(out[0].port, 0);
    if (h_have_ipv6()) {
        assert_int_equal(h_resolve(loop, "::1", "9", IOQ_RESOLVE_NUMERIC, out, 4, 3), 0);
        c = h_wait(loop, 3);
        assert_int_equal(c.result, 1);
        assert_int_equal(out[0].family, IOQ_AF_INET6);
        assert_int_equal(out[0].ip[15], 1);
        assert_int_equal(out[0].port, 9);
    }
    /* Service only. */
    assert_int_equal(h_resolve(loop, NULL, "80", IOQ_RESOLVE_INET, out, 4, 4), 0);
    c = h_wait(loop, 4);
    assert_true(c.result >= 1);
    assert_int_equal(out[0].port, 80);
    h_finish(loop);
}

static void test_numeric_flag_with_name(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_addr out[4];
    uint64_t t = h_tok();
    int rc = h_resolve(loop, "localhost", "80", IOQ_RESOLVE_NUMERIC, out, 4, t);
    int64_t r = rc == 0 ? h_wait(loop, t).result : rc;
    assert_true(r < 0);
    assert_true(r == IOQ_ENOTFOUND || r == IOQ_EINVAL);
    h_finish(loop);
}

static void test_unknown_host(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    ioq_addr out[4];
    assert_int_equal(h_resolve(loop, "nonexistent.invalid", "80", 0, out, 4, 1), 0);
    ioq_cqe c = h_wait(loop, 1);
    assert_true(c.result == IOQ_ENOTFOUND || c.result == IOQ_EAGAIN);
    /* An unknown service name. */
    assert_int_equal(h_resolve(loop, "127.0.0.1", "no-such-service-xyz", 0, out, 4, 2), 0);
    c = h_wait(loop, 2);
    assert_int_equal(c.result, IOQ_ENOTFOUND);
    h_finish(loop);
}

static void test_max_small(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    /* Find a query with several answers without a network: "localhost" or the loopback
     * addresses of a service-only query (127.0.0.1 and ::1). */
    static const char *hosts[2] = {"localhost", NULL};
    const char *host = NULL;
    int found = 0;
    int64_t full = 0;
    for (int i = 0; i < 2 && !found; i++) {
        ioq_addr all[8];
        uint64_t t = h_tok();
        assert_int_equal(h_resolve(loop, hosts[i], "80", 0, all, 8, t), 0);
        full = h_wait(loop, t).result;
        assert_true(full >= 1);
        if (full >= 2) {
            host = hosts[i];
            found = 1;
        }
    }
    if (!found) {
        h_finish(loop);
        h_skip("no query here has more than one answer");
    }
    ioq_addr out[3];
    memset(out, 0xab, sizeof out);
    assert_int_equal(h_resolve(loop, host, "80", 0, out, 1, 1), 0);
    ioq_cqe c = h_wait(loop, 1);
    assert_int_equal(c.result, 1);
    assert_true(is_loopback(&out[0]));
    assert_int_equal(out[0].port, 80);
    /* Nothing beyond out[max - 1] is written. */
    uint8_t pattern[2 * sizeof(ioq_addr)];
    memset(pattern, 0xab, sizeof pattern);
    assert_memory_equal(&out[1], pattern, sizeof pattern);
    print_message("%lld answers, max 1 gave 1\n", (long long)full);
    h_finish(loop);
}

static void test_name_too_long(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    char host[2000];
    memset(host, 'a', sizeof host - 1);
    host[sizeof host - 1] = 0;
    ioq_addr out[2];
    uint64_t t = h_tok();
    int rc = h_resolve(loop, host, "80", 0, out, 2, t);
    int64_t r = rc == 0 ? h_wait(loop, t).result : rc;
    assert_true(r == IOQ_ENAMETOOLONG || r == IOQ_ENOTFOUND || r == IOQ_EINVAL);
    h_finish(loop);
}

static void test_many_parallel(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    enum { N = 64 };
    static ioq_addr out[N][2];
    for (int i = 0; i < N; i++)
        assert_int_equal(h_resolve(loop, "127.0.0.1", "1234", IOQ_RESOLVE_NUMERIC, out[i], 2,
                                   100 + i), 0);
    for (int i = 0; i < N; i++) {
        ioq_cqe c = h_wait(loop, 100 + i);
        assert_int_equal(c.result, 1);
        assert_int_equal(out[i][0].port, 1234);
    }
    h_finish(loop);
}

static const struct CMUnitTest resolve_tests[] = {
    H_TEST(localhost),
    H_TEST(numeric),
    H_TEST(numeric_flag_with_name),
    H_TEST(unknown_host),
    H_TEST(max_small),
    H_TEST(name_too_long),
    H_TEST(many_parallel),
};

H_MAIN(resolve_tests)
