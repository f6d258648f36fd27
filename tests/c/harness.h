/*
 * Shared helpers of the ioq C test suite.
 *
 * Every test creates its loops with h_loop_new(), submits through the h_* wrappers (or
 * registers a submission with h_track()), collects completions with h_poll()/h_wait() and
 * ends with h_finish(). The tracker checks the exactly-once rule on every completion: no
 * completion for a token that was never accepted, no second final completion, IOQ_CQE_MORE
 * only on multishot operations, the right op code and reserved == 0. h_finish() checks
 * that every accepted operation got its final completion.
 */
#ifndef IOQ_TEST_HARNESS_H
#define IOQ_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ioq.h"

#include <sys/socket.h>
/* Where the OS lacks them (macOS): the tests start no child process, so CLOEXEC is moot. */
#ifndef SOCK_CLOEXEC
#define SOCK_CLOEXEC 0
#endif
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* Deadline that only ends a hung test; no test depends on it otherwise. */
#define H_DEADLINE_MS 10000

/* One test case: registered once per backend by CMakeLists.txt (it greps for H_TEST). */
#define H_TEST(name) cmocka_unit_test_setup_teardown(test_##name, h_setup, h_teardown)

/* main() of every area file: runs every case, or the one named by argv[1]. */
#define H_MAIN(group)                                                                    \
    int main(int argc, char **argv)                                                      \
    {                                                                                    \
        return h_main(argc, argv, #group, group, sizeof(group) / sizeof((group)[0]));    \
    }

int h_main(int argc, char **argv, const char *group_name, const struct CMUnitTest *tests,
           size_t n);
int h_setup(void **state);
int h_teardown(void **state);

/* Loops --------------------------------------------------------------------------------- */

/* A loop with default options; asserts its backend is the one IOQ_BACKEND names. */
ioq_loop *h_loop_new(void);
/* The backend under test ("epoll" when IOQ_BACKEND is unset). */
const char *h_backend(void);
/* Poll until every accepted operation of loop has completed, then free it. */
void h_finish(ioq_loop *loop);
/* Forget the loop's tracked operations (after an ioq_loop_free the test did itself). */
void h_forget(ioq_loop *loop);

/* Tracker ------------------------------------------------------------------------------- */

/* Record an accepted submission (rc 0); rc < 0 records nothing. Returns rc. */
int h_track(ioq_loop *loop, int rc, uint64_t token, uint16_t op, int multishot);
/* A fresh token, never used before in this process. */
uint64_t h_tok(void);
/* Number of operations of loop still waiting for their final completion. */
size_t h_pending(ioq_loop *loop);
/* Whether token has no final completion outstanding. */
int h_done(ioq_loop *loop, uint64_t token);

/* One ioq_poll: checks each completion and appends it to the log. Returns the count. */
int h_poll(ioq_loop *loop, int64_t timeout_ns);
/* One ioq_poll into out[] (checked, not logged): for tests that dispatch themselves. */
int h_poll_into(ioq_loop *loop, ioq_cqe *out, uint32_t max, int64_t timeout_ns);
/* Poll (logging) until pred(ctx) is true; fails the test after timeout_ms. */
void h_poll_until(ioq_loop *loop, int (*pred)(void *ctx), void *ctx, int timeout_ms);
/* Poll until token's final completion; take it (and its MORE completions) off the log
 * and return the final one. */
ioq_cqe h_wait(ioq_loop *loop, uint64_t token);
/* Take the first logged completion of token (polling until one comes). */
ioq_cqe h_next(ioq_loop *loop, uint64_t token);
/* Take the first logged completion of any token (polling until one comes). */
ioq_cqe h_next_any(ioq_loop *loop);
/* Take the first logged completion of any token without polling; 0 if none. */
int h_take_logged(ioq_loop *loop, ioq_cqe *out);
/* Whether the log holds a completion of token (without polling). */
int h_logged(ioq_loop *loop, uint64_t token);
/* Assert nothing completes during a few polls of ms milliseconds in total. */
void h_assert_quiet(ioq_loop *loop, int ms);

/* Submission wrappers: call the op and h_track() it. Same arguments as ioq_*. */
int h_accept(ioq_loop *l, ioq_handle lis, uint32_t flags, uint64_t tok);
int h_connect(ioq_loop *l, const ioq_addr *a, uint32_t flags, uint64_t tok);
int h_local_connect(ioq_loop *l, const char *path, uint32_t flags, uint64_t tok);
int h_recv(ioq_loop *l, ioq_handle h, void *buf, size_t len, uint64_t tok);
int h_recv_pool(ioq_loop *l, ioq_handle h, ioq_handle pool, uint32_t flags, uint64_t tok);
int h_send(ioq_loop *l, ioq_handle h, const void *buf, size_t len, uint64_t tok);
int h_sendv(ioq_loop *l, ioq_handle h, const ioq_iov *iov, uint32_t n, uint64_t tok);
int h_sendto(ioq_loop *l, ioq_handle h, const void *buf, size_t len, const ioq_addr *a,
             uint64_t tok);
int h_recvfrom(ioq_loop *l, ioq_handle h, void *buf, size_t len, ioq_addr *a, uint64_t tok);
int h_shutdown(ioq_loop *l, ioq_handle h, uint64_t tok);
int h_close(ioq_loop *l, ioq_handle h, uint64_t tok);
int h_open(ioq_loop *l, const char *path, uint32_t flags, uint32_t mode, uint64_t tok);
int h_read(ioq_loop *l, ioq_handle h, void *buf, size_t len, uint64_t off, uint64_t tok);
int h_write(ioq_loop *l, ioq_handle h, const void *buf, size_t len, uint64_t off,
            uint64_t tok);
int h_fsync(ioq_loop *l, ioq_handle h, uint64_t tok);
int h_timeout(ioq_loop *l, uint64_t ns, uint64_t tok);
int h_timeout_at(ioq_loop *l, uint64_t deadline_ns, uint64_t tok);
int h_cancel(ioq_loop *l, uint64_t target, uint64_t tok);
int h_resolve(ioq_loop *l, const char *host, const char *service, uint32_t flags,
              ioq_addr *out, uint32_t max, uint64_t tok);
int h_post(ioq_loop *l, uint64_t tok, int64_t result);

/* Synchronous conveniences (submit, wait, assert success) ------------------------------- */

/* Close h and wait for the close's completion (asserts result 0). */
void h_close_wait(ioq_loop *l, ioq_handle h);
/* Send all of buf and wait (asserts result len). */
void h_send_wait(ioq_loop *l, ioq_handle h, const void *buf, size_t len);
/* Receive exactly len bytes (several recvs); asserts no EOF before. */
void h_recv_exact(ioq_loop *l, ioq_handle h, void *buf, size_t len);
/* One recv; returns its result. */
int64_t h_recv_once(ioq_loop *l, ioq_handle h, void *buf, size_t len);

/* Addresses and sockets ----------------------------------------------------------------- */

ioq_addr h_addr4(uint16_t port);            /* 127.0.0.1:port */
ioq_addr h_addr6(uint16_t port);            /* [::1]:port */
/* A listener on 127.0.0.1:0; *port receives its port (from ioq_sockname). */
ioq_handle h_listen(ioq_loop *l, uint16_t *port);
/* A connected TCP pair through a temporary listener: *client from ioq_connect, *server
 * from ioq_accept. */
void h_pair(ioq_loop *l, ioq_handle *client, ioq_handle *server);
/* Whether ::1 can be bound here. */
int h_have_ipv6(void);

/* Plain blocking POSIX sockets acting as the remote side. */
int h_plain_listen(uint16_t *port);         /* listening on 127.0.0.1:0 */
int h_plain_bound(uint16_t *port);          /* bound, not listening: connects are refused */
int h_plain_connect(uint16_t port);         /* connected to 127.0.0.1:port */
int h_plain_accept(int lfd);
void h_plain_reset(int fd);                 /* close with SO_LINGER 0: the peer sees RST */
void h_plain_write_all(int fd, const void *buf, size_t len);
void h_plain_read_all(int fd, void *buf, size_t len);
void h_plain_close(int fd);

/* Files, descriptors, data ----------------------------------------------------------------- */

/* The test's temp dir (made with mkdtemp on first use, removed in the teardown). */
const char *h_tmpdir(void);
/* A path inside the temp dir (static storage per call: 8 slots rotate). */
const char *h_path(const char *name);
/* Number of open descriptors of the process (entries of /proc/self/fd). */
int h_fd_count(void);
/* Fill buf with a pattern derived from seed and offset; check it back. */
void h_fill(void *buf, size_t len, uint32_t seed, uint64_t offset);
int h_check(const void *buf, size_t len, uint32_t seed, uint64_t offset);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t h_mono_ns(void);
/* Skip the current test with a message on stderr. */
void h_skip(const char *why);

#endif
