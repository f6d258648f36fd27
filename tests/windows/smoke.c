/*
 * A small end-to-end check of ioq on Windows, independent of the cmocka suite: one case per
 * run, named by argv[1]. Every completion goes through a tracker that fails the run on a
 * second final completion for a token, a completion for a token never submitted, or an
 * accepted operation that never completes.
 */
#define WIN32_LEAN_AND_MEAN
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ioq.h"

#define MAX_TOKENS 256
#define DEADLINE_MS 10000

static struct {
    uint64_t token;
    int finals;
    int more;
} tracked[MAX_TOKENS];
static int ntracked;
static ioq_cqe last[MAX_TOKENS]; /* final completion per tracked index */

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);       \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)
#define CHECK_RC(expr)                                                                     \
    do {                                                                                   \
        int64_t rc_ = (expr);                                                              \
        if (rc_ != 0) {                                                                    \
            fprintf(stderr, "%s:%d: %s = %lld (%s)\n", __FILE__, __LINE__, #expr,          \
                    (long long)rc_, ioq_errname(rc_));                                     \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

static int find(uint64_t token)
{
    for (int i = 0; i < ntracked; i++)
        if (tracked[i].token == token)
            return i;
    return -1;
}

/* Record an accepted submission. */
static void track(int rc, uint64_t token)
{
    CHECK_RC(rc);
    CHECK(find(token) < 0 && ntracked < MAX_TOKENS);
    tracked[ntracked].token = token;
    tracked[ntracked].finals = 0;
    tracked[ntracked].more = 0;
    ntracked++;
}

static void on_cqe(const ioq_cqe *c)
{
    int i;
    if (c->op == IOQ_OP_POST)
        return; /* posts are counted by their own case */
    i = find(c->token);
    if (i < 0) {
        fprintf(stderr, "completion for unknown token %llu\n", (unsigned long long)c->token);
        exit(1);
    }
    CHECK(tracked[i].finals == 0);
    CHECK(c->reserved == 0);
    if (c->flags & IOQ_CQE_MORE) {
        tracked[i].more++;
    } else {
        tracked[i].finals = 1;
    }
    last[i] = *c;
}

static int done(uint64_t token)
{
    int i = find(token);
    return i >= 0 && tracked[i].finals;
}

/* Poll until token has its final completion; return it. */
static ioq_cqe wait_for(ioq_loop *loop, uint64_t token)
{
    DWORD start = GetTickCount();
    while (!done(token)) {
        ioq_cqe c[16];
        int n = ioq_poll(loop, c, 16, 50 * 1000000LL);
        CHECK(n >= 0);
        for (int i = 0; i < n; i++)
            on_cqe(&c[i]);
        if (GetTickCount() - start > DEADLINE_MS) {
            fprintf(stderr, "token %llu never completed\n", (unsigned long long)token);
            exit(1);
        }
    }
    return last[find(token)];
}

/* Every tracked op has completed; then free the loop. */
static void finish(ioq_loop *loop)
{
    for (int i = 0; i < ntracked; i++)
        wait_for(loop, tracked[i].token);
    ioq_loop_free(loop);
}

static ioq_loop *new_loop(void)
{
    ioq_loop *loop;
    CHECK_RC(ioq_loop_new(NULL, &loop));
    CHECK(strcmp(ioq_loop_backend(loop), "iocp") == 0);
    CHECK(ioq_loop_fd(loop) == IOQ_ENOTSUP);
    return loop;
}

static ioq_handle listen_loopback(ioq_loop *loop, ioq_addr *bound)
{
    ioq_addr a;
    ioq_handle l;
    CHECK_RC(ioq_addr_parse("127.0.0.1:0", &a));
    CHECK_RC(ioq_tcp_listen(loop, &a, 0, 0, &l));
    CHECK_RC(ioq_sockname(loop, l, bound));
    CHECK(bound->port != 0);
    return l;
}

/* A connected pair over TCP loopback. */
static void tcp_pair(ioq_loop *loop, ioq_handle *server, ioq_handle *client, ioq_handle *lis)
{
    ioq_addr bound;
    ioq_cqe a, c;
    *lis = listen_loopback(loop, &bound);
    track(ioq_accept(loop, *lis, 0, 1000), 1000);
    track(ioq_connect(loop, &bound, 0, 1001), 1001);
    a = wait_for(loop, 1000);
    c = wait_for(loop, 1001);
    CHECK_RC(a.result);
    CHECK_RC(c.result);
    *server = a.value;
    *client = c.value;
}

static int case_tcp_echo(void)
{
    ioq_loop *loop = new_loop();
    ioq_handle s, c, l;
    char buf[64], big_in[200000];
    static char big[200000];
    ioq_iov iov[3];
    ioq_addr peer;
    size_t got = 0;
    ioq_cqe r;

    tcp_pair(loop, &s, &c, &l);
    CHECK_RC(ioq_peername(loop, c, &peer));
    CHECK(peer.port != 0);
    CHECK_RC(ioq_setopt(loop, c, IOQ_OPT_NODELAY, 1));
    track(ioq_send(loop, c, "hello", 5, 1), 1);
    track(ioq_recv(loop, s, buf, sizeof buf, 2), 2);
    CHECK(wait_for(loop, 1).result == 5);
    r = wait_for(loop, 2);
    CHECK(r.result == 5 && memcmp(buf, "hello", 5) == 0);
    /* Gather send, echoed back. */
    iov[0].base = "ab";
    iov[0].len = 2;
    iov[1].base = NULL;
    iov[1].len = 0;
    iov[2].base = "cde";
    iov[2].len = 3;
    track(ioq_sendv(loop, s, iov, 3, 3), 3);
    CHECK(wait_for(loop, 3).result == 5);
    while (got < 5) {
        uint64_t t = 10 + got;
        track(ioq_recv(loop, c, buf + got, sizeof buf - got, t), t);
        r = wait_for(loop, t);
        CHECK(r.result > 0);
        got += (size_t)r.result;
    }
    CHECK(memcmp(buf, "abcde", 5) == 0);
    /* A large send goes out whole and in order with a small one behind it. */
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7);
    track(ioq_send(loop, c, big, sizeof big, 4), 4);
    track(ioq_send(loop, c, "Z", 1, 5), 5);
    got = 0;
    for (uint64_t t = 100; got < sizeof big + 1; t++) {
        char *dst = got < sizeof big ? big_in + got : buf;
        size_t room = got < sizeof big ? sizeof big - got : 1;
        track(ioq_recv(loop, s, dst, room, t), t);
        r = wait_for(loop, t);
        CHECK(r.result > 0);
        got += (size_t)r.result;
    }
    CHECK(memcmp(big, big_in, sizeof big) == 0 && buf[0] == 'Z');
    CHECK(wait_for(loop, 4).result == (int64_t)sizeof big);
    CHECK(wait_for(loop, 5).result == 1);
    /* Half-close: the peer reads the end of the stream. */
    track(ioq_shutdown(loop, c, 6), 6);
    track(ioq_recv(loop, s, buf, sizeof buf, 7), 7);
    CHECK(wait_for(loop, 6).result == 0);
    CHECK(wait_for(loop, 7).result == 0);
    track(ioq_close(loop, s, 8), 8);
    track(ioq_close(loop, c, 9), 9);
    track(ioq_close(loop, l, 11), 11);
    finish(loop);
    return 0;
}

static int case_connect_refused(void)
{
    ioq_loop *loop = new_loop();
    struct sockaddr_in sa;
    int len = sizeof sa;
    ioq_addr to;
    SOCKET b;
    /* Bound but not listening: the port stays ours, so the refusal is certain. */
    b = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    CHECK(b != INVALID_SOCKET);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(b, (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(getsockname(b, (struct sockaddr *)&sa, &len) == 0);
    CHECK_RC(ioq_addr_parse("127.0.0.1", &to));
    to.port = ntohs(sa.sin_port);
    track(ioq_connect(loop, &to, 0, 2), 2);
    CHECK(wait_for(loop, 2).result == IOQ_ECONNREFUSED);
    closesocket(b);
    finish(loop);
    return 0;
}

static int case_timer(void)
{
    ioq_loop *loop = new_loop();
    uint64_t t0 = ioq_now(loop);
    track(ioq_timeout(loop, 30 * 1000000ULL, 1), 1);
    track(ioq_timeout(loop, 10 * 1000000ULL, 2), 2);
    CHECK(wait_for(loop, 2).result == 0);
    CHECK(ioq_now(loop) - t0 >= 10 * 1000000ULL);
    CHECK(wait_for(loop, 1).result == 0);
    CHECK(ioq_now(loop) - t0 >= 30 * 1000000ULL);
    finish(loop);
    return 0;
}

static ioq_loop *post_loop;
static volatile LONG posted;

static DWORD WINAPI poster(void *arg)
{
    (void)arg;
    Sleep(20);
    for (int i = 0; i < 100; i++)
        ioq_post(post_loop, 5000 + (uint64_t)i, i);
    InterlockedIncrement(&posted);
    return 0;
}

static int case_post_thread(void)
{
    ioq_loop *loop = new_loop();
    HANDLE th;
    int seen = 0;
    DWORD start = GetTickCount();
    post_loop = loop;
    th = CreateThread(NULL, 0, poster, NULL, 0, NULL);
    CHECK(th != NULL);
    while (seen < 100) {
        ioq_cqe c[32];
        int n = ioq_poll(loop, c, 32, -1); /* blocks: only the post can end it */
        CHECK(n >= 0);
        for (int i = 0; i < n; i++) {
            CHECK(c[i].op == IOQ_OP_POST);
            CHECK(c[i].token == 5000 + (uint64_t)seen && c[i].result == seen);
            seen++;
        }
        CHECK(GetTickCount() - start < DEADLINE_MS);
    }
    WaitForSingleObject(th, INFINITE);
    CloseHandle(th);
    CHECK(ioq_wake(loop) == 0);
    {
        ioq_cqe c[4];
        CHECK(ioq_poll(loop, c, 4, -1) == 0); /* the wake ends it with nothing */
    }
    finish(loop);
    return 0;
}

static void temp_path(char *out, size_t n, const char *name)
{
    char dir[MAX_PATH];
    DWORD len = GetTempPathA(sizeof dir, dir);
    CHECK(len > 0 && len < sizeof dir);
    snprintf(out, n, "%sioq-smoke-%lu-%s", dir, (unsigned long)GetCurrentProcessId(), name);
}

static int case_file(void)
{
    ioq_loop *loop = new_loop();
    char path[MAX_PATH + 64], buf[32];
    ioq_handle f;
    ioq_cqe r;
    temp_path(path, sizeof path, "file");
    track(ioq_open(loop, path, IOQ_OPEN_READ | IOQ_OPEN_WRITE | IOQ_OPEN_CREATE |
                                   IOQ_OPEN_TRUNC, 0644, 1), 1);
    r = wait_for(loop, 1);
    CHECK_RC(r.result);
    f = r.value;
    track(ioq_write(loop, f, "0123456789", 10, 0, 2), 2);
    CHECK(wait_for(loop, 2).result == 10);
    track(ioq_write(loop, f, "AB", 2, 4, 3), 3);
    CHECK(wait_for(loop, 3).result == 2);
    track(ioq_fsync(loop, f, 4), 4);
    CHECK(wait_for(loop, 4).result == 0);
    track(ioq_read(loop, f, buf, sizeof buf, 0, 5), 5);
    CHECK(wait_for(loop, 5).result == 10 && memcmp(buf, "0123AB6789", 10) == 0);
    track(ioq_read(loop, f, buf, sizeof buf, 100, 6), 6);
    CHECK(wait_for(loop, 6).result == 0); /* end of file */
    track(ioq_close(loop, f, 7), 7);
    wait_for(loop, 7);
    track(ioq_open(loop, path, IOQ_OPEN_WRITE | IOQ_OPEN_CREATE | IOQ_OPEN_EXCL, 0644, 8), 8);
    CHECK(wait_for(loop, 8).result == IOQ_EEXIST);
    CHECK(DeleteFileA(path));
    track(ioq_open(loop, path, IOQ_OPEN_READ, 0, 9), 9);
    CHECK(wait_for(loop, 9).result == IOQ_ENOENT);
    finish(loop);
    return 0;
}

static int case_cancel(void)
{
    ioq_loop *loop = new_loop();
    ioq_handle s, c, l;
    char buf[16];
    ioq_cqe r;
    tcp_pair(loop, &s, &c, &l);
    track(ioq_recv(loop, s, buf, sizeof buf, 1), 1);
    track(ioq_recv(loop, s, buf, sizeof buf, 2), 2); /* queued behind the first */
    track(ioq_timeout(loop, 3600ULL * 1000000000ULL, 3), 3);
    track(ioq_cancel(loop, 1, 10), 10);
    track(ioq_cancel(loop, 3, 11), 11);
    r = wait_for(loop, 10);
    CHECK(r.result == 1);
    CHECK(wait_for(loop, 1).result == IOQ_ECANCELED);
    CHECK(wait_for(loop, 3).result == IOQ_ECANCELED);
    CHECK(wait_for(loop, 11).result == 1);
    /* The second receive moved up and still works. */
    track(ioq_send(loop, c, "x", 1, 4), 4);
    CHECK(wait_for(loop, 2).result == 1 && buf[0] == 'x');
    track(ioq_cancel(loop, 999, 12), 12);
    CHECK(wait_for(loop, 12).result == 0);
    /* A pending accept cancels too. */
    track(ioq_accept(loop, l, 0, 5), 5);
    track(ioq_cancel(loop, 5, 13), 13);
    CHECK(wait_for(loop, 5).result == IOQ_ECANCELED);
    finish(loop);
    return 0;
}

static int case_close_pending(void)
{
    ioq_loop *loop = new_loop();
    ioq_handle s, c, l;
    char b1[8], b2[8];
    tcp_pair(loop, &s, &c, &l);
    track(ioq_recv(loop, s, b1, sizeof b1, 1), 1);
    track(ioq_recv(loop, s, b2, sizeof b2, 2), 2);
    track(ioq_accept(loop, l, IOQ_MULTISHOT, 3), 3);
    track(ioq_close(loop, s, 4), 4);
    track(ioq_close(loop, l, 5), 5);
    CHECK(wait_for(loop, 1).result == IOQ_ECANCELED);
    CHECK(wait_for(loop, 2).result == IOQ_ECANCELED);
    CHECK(wait_for(loop, 4).result == 0);
    CHECK(wait_for(loop, 3).result == IOQ_ECANCELED);
    CHECK(wait_for(loop, 5).result == 0);
    CHECK(ioq_recv(loop, s, b1, sizeof b1, 6) == IOQ_EBADHANDLE);
    /* The peer sees the end of the stream. */
    track(ioq_recv(loop, c, b1, sizeof b1, 7), 7);
    CHECK(wait_for(loop, 7).result <= 0);
    /* Freeing a loop with operations in flight ends them without completions. */
    track(ioq_recv(loop, c, b1, sizeof b1, 8), 8);
    ioq_loop_free(loop);
    ntracked = 0;
    return 0;
}

static int case_recv_pool(void)
{
    ioq_loop *loop = new_loop();
    ioq_handle s, c, l, pool;
    ioq_cqe r;
    tcp_pair(loop, &s, &c, &l);
    CHECK_RC(ioq_pool_new(loop, 1, 64, &pool));
    track(ioq_recv_pool(loop, s, pool, IOQ_MULTISHOT, 1), 1);
    track(ioq_send(loop, c, "one", 3, 2), 2);
    wait_for(loop, 2);
    /* The MORE completion carries the buffer. */
    {
        DWORD start = GetTickCount();
        while (tracked[find(1)].more == 0 && !done(1)) {
            ioq_cqe cq[8];
            int n = ioq_poll(loop, cq, 8, 50 * 1000000LL);
            for (int i = 0; i < n; i++)
                on_cqe(&cq[i]);
            CHECK(GetTickCount() - start < DEADLINE_MS);
        }
    }
    r = last[find(1)];
    CHECK(r.result == 3 && (r.flags & IOQ_CQE_BUFFER) && (r.flags & IOQ_CQE_MORE));
    CHECK(memcmp(ioq_buf(loop, pool, (uint32_t)r.value), "one", 3) == 0);
    /* The only buffer is held: the next data ends the receive with ENOBUFS. */
    track(ioq_send(loop, c, "two", 3, 3), 3);
    CHECK(wait_for(loop, 1).result == IOQ_ENOBUFS);
    CHECK_RC(ioq_buf_release(loop, pool, (uint32_t)r.value));
    track(ioq_recv_pool(loop, s, pool, 0, 4), 4);
    r = wait_for(loop, 4);
    CHECK(r.result == 3 && memcmp(ioq_buf(loop, pool, (uint32_t)r.value), "two", 3) == 0);
    CHECK_RC(ioq_buf_release(loop, pool, (uint32_t)r.value));
    /* End of stream: result 0 and no buffer. */
    track(ioq_recv_pool(loop, s, pool, 0, 5), 5);
    track(ioq_close(loop, c, 6), 6);
    r = wait_for(loop, 5);
    CHECK(r.result == 0 && !(r.flags & IOQ_CQE_BUFFER));
    track(ioq_close(loop, pool, 7), 7);
    finish(loop);
    return 0;
}

static int case_udp(void)
{
    ioq_loop *loop = new_loop();
    ioq_addr a, ba, bb, from;
    ioq_handle ua, ub;
    char buf[8];
    CHECK_RC(ioq_addr_parse("127.0.0.1:0", &a));
    CHECK_RC(ioq_udp_bind(loop, &a, 0, &ua));
    CHECK_RC(ioq_udp_bind(loop, &a, 0, &ub));
    CHECK_RC(ioq_sockname(loop, ua, &ba));
    CHECK_RC(ioq_sockname(loop, ub, &bb));
    track(ioq_recvfrom(loop, ub, buf, 4, &from, 1), 1);
    track(ioq_sendto(loop, ua, "datagram", 8, &bb, 2), 2);
    CHECK(wait_for(loop, 2).result == 8);
    CHECK(wait_for(loop, 1).result == 4 && memcmp(buf, "data", 4) == 0); /* truncated */
    CHECK(from.port == ba.port);
    finish(loop);
    return 0;
}

static int case_pipe(void)
{
    ioq_loop *loop = new_loop();
    char path[96], buf[16];
    ioq_handle l, s, c, l2;
    ioq_cqe r;
    snprintf(path, sizeof path, "/tmp/ioq-smoke-%lu.sock", (unsigned long)GetCurrentProcessId());
    CHECK_RC(ioq_local_listen(loop, path, 0, 0, &l));
    CHECK(ioq_local_listen(loop, path, 0, 0, &l2) == IOQ_EADDRINUSE);
    CHECK(ioq_sockname(loop, l, &(ioq_addr){0}) == IOQ_ENOTSUP);
    /* Connect before the accept is submitted: the connection waits for it. */
    track(ioq_local_connect(loop, path, 0, 1), 1);
    r = wait_for(loop, 1);
    CHECK_RC(r.result);
    c = r.value;
    track(ioq_accept(loop, l, 0, 2), 2);
    r = wait_for(loop, 2);
    CHECK_RC(r.result);
    s = r.value;
    track(ioq_send(loop, c, "ping", 4, 3), 3);
    track(ioq_recv(loop, s, buf, sizeof buf, 4), 4);
    CHECK(wait_for(loop, 3).result == 4);
    CHECK(wait_for(loop, 4).result == 4 && memcmp(buf, "ping", 4) == 0);
    track(ioq_send(loop, s, "pong", 4, 5), 5);
    track(ioq_recv(loop, c, buf, sizeof buf, 6), 6);
    CHECK(wait_for(loop, 6).result == 4 && memcmp(buf, "pong", 4) == 0);
    {
        ioq_iov iov[3] = {{"ab", 2}, {NULL, 0}, {"cd", 2}};
        ioq_handle pool;
        track(ioq_sendv(loop, c, iov, 3, 20), 20);
        CHECK(wait_for(loop, 20).result == 4);
        CHECK_RC(ioq_pool_new(loop, 2, 16, &pool));
        track(ioq_recv_pool(loop, s, pool, 0, 21), 21);
        r = wait_for(loop, 21);
        CHECK(r.result == 4 && (r.flags & IOQ_CQE_BUFFER));
        CHECK(memcmp(ioq_buf(loop, pool, (uint32_t)r.value), "abcd", 4) == 0);
        CHECK_RC(ioq_buf_release(loop, pool, (uint32_t)r.value));
        track(ioq_close(loop, pool, 22), 22);
        /* A pipe has no half-close. */
        track(ioq_shutdown(loop, c, 23), 23);
        CHECK(wait_for(loop, 23).result == IOQ_ENOTSUP);
    }
    /* A second client: accept first this time. */
    track(ioq_accept(loop, l, 0, 7), 7);
    track(ioq_local_connect(loop, path, 0, 8), 8);
    CHECK_RC(wait_for(loop, 7).result);
    CHECK_RC(wait_for(loop, 8).result);
    {
        /* Idle receives pin no buffer: with one buffer for two waiting pipes, the one
         * that gets data gets it. */
        ioq_handle pool, s2 = last[find(7)].value, c2 = last[find(8)].value;
        CHECK_RC(ioq_pool_new(loop, 1, 16, &pool));
        track(ioq_recv_pool(loop, s, pool, 0, 30), 30);
        track(ioq_recv_pool(loop, s2, pool, 0, 31), 31);
        track(ioq_send(loop, c2, "x", 1, 32), 32);
        r = wait_for(loop, 31);
        CHECK(r.result == 1 && (r.flags & IOQ_CQE_BUFFER));
        CHECK_RC(ioq_buf_release(loop, pool, (uint32_t)r.value));
        track(ioq_cancel(loop, 30, 33), 33);
        CHECK(wait_for(loop, 30).result == IOQ_ECANCELED);
        track(ioq_close(loop, pool, 34), 34);
        track(ioq_close(loop, c2, 35), 35);
        track(ioq_close(loop, s2, 36), 36);
    }
    /* Closing one end is the end of the stream for the other. */
    track(ioq_recv(loop, s, buf, sizeof buf, 9), 9);
    track(ioq_close(loop, c, 10), 10);
    CHECK(wait_for(loop, 9).result == 0);
    track(ioq_local_connect(loop, "/tmp/ioq-smoke-no-such-pipe", 0, 11), 11);
    CHECK(wait_for(loop, 11).result == IOQ_ENOENT);
    track(ioq_close(loop, l, 12), 12);
    finish(loop);
    return 0;
}

/* Sockets and files made outside ioq join a loop; the kind must fit the descriptor. */
static int case_adopt(void)
{
    ioq_loop *loop = new_loop();
    char path[MAX_PATH + 64], buf[8];
    struct sockaddr_in sa;
    ioq_handle l, u, f, s, c;
    ioq_addr bound;
    uint64_t os;
    SOCKET ls, us;
    HANDLE fh;
    WSADATA wd;
    int len = sizeof sa;
    ioq_cqe r;

    CHECK(WSAStartup(MAKEWORD(2, 2), &wd) == 0);
    /* A listening TCP socket. */
    ls = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    CHECK(ls != INVALID_SOCKET);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(ls, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(ls, 8) == 0);
    CHECK(ioq_adopt(loop, (uint64_t)ls, IOQ_KIND_UDP, &l) == IOQ_EINVAL);
    CHECK(ioq_adopt(loop, (uint64_t)ls, IOQ_KIND_TCP, &l) == IOQ_EINVAL);
    CHECK_RC(ioq_adopt(loop, (uint64_t)ls, IOQ_KIND_TCP_LISTENER, &l));
    CHECK_RC(ioq_os_handle(loop, l, &os));
    CHECK(os == (uint64_t)ls);
    CHECK_RC(ioq_sockname(loop, l, &bound));
    track(ioq_accept(loop, l, 0, 1), 1);
    track(ioq_connect(loop, &bound, 0, 2), 2);
    s = wait_for(loop, 1).value;
    c = wait_for(loop, 2).value;
    track(ioq_send(loop, c, "adopt", 5, 3), 3);
    track(ioq_recv(loop, s, buf, sizeof buf, 4), 4);
    CHECK(wait_for(loop, 4).result == 5 && memcmp(buf, "adopt", 5) == 0);
    /* A UDP socket. */
    us = WSASocketW(AF_INET, SOCK_DGRAM, IPPROTO_UDP, NULL, 0, WSA_FLAG_OVERLAPPED);
    CHECK(us != INVALID_SOCKET);
    CHECK(bind(us, (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(getsockname(us, (struct sockaddr *)&sa, &len) == 0);
    CHECK_RC(ioq_adopt(loop, (uint64_t)us, IOQ_KIND_UDP, &u));
    /* An overlapped file. */
    temp_path(path, sizeof path, "adopt");
    fh = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS,
                     FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OVERLAPPED, NULL);
    CHECK(fh != INVALID_HANDLE_VALUE);
    CHECK(ioq_adopt(loop, (uint64_t)(uintptr_t)fh, IOQ_KIND_TCP, &f) == IOQ_EINVAL);
    CHECK_RC(ioq_adopt(loop, (uint64_t)(uintptr_t)fh, IOQ_KIND_FILE, &f));
    track(ioq_write(loop, f, "file", 4, 0, 5), 5);
    CHECK(wait_for(loop, 5).result == 4);
    track(ioq_read(loop, f, buf, sizeof buf, 0, 6), 6);
    r = wait_for(loop, 6);
    CHECK(r.result == 4 && memcmp(buf, "file", 4) == 0);
    CHECK(ioq_adopt(loop, 0, IOQ_KIND_FILE, &f) == IOQ_EINVAL);
    CHECK(ioq_adopt(loop, (uint64_t)(uintptr_t)fh, 99, &f) == IOQ_EINVAL);
    track(ioq_close(loop, f, 7), 7);
    track(ioq_close(loop, u, 8), 8);
    track(ioq_close(loop, l, 9), 9);
    finish(loop);
    CHECK(DeleteFileA(path));
    return 0;
}

static int case_resolve(void)
{
    ioq_loop *loop = new_loop();
    ioq_addr out[4];
    ioq_cqe r;
    track(ioq_resolve(loop, "127.0.0.1", "80", IOQ_RESOLVE_NUMERIC, out, 4, 1), 1);
    r = wait_for(loop, 1);
    CHECK(r.result >= 1 && out[0].family == IOQ_AF_INET && out[0].port == 80);
    finish(loop);
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(void);
} cases[] = {
    {"tcp_echo", case_tcp_echo},     {"connect_refused", case_connect_refused},
    {"timer", case_timer},           {"post_thread", case_post_thread},
    {"file", case_file},             {"cancel", case_cancel},
    {"close_pending", case_close_pending}, {"recv_pool", case_recv_pool},
    {"udp", case_udp},               {"pipe", case_pipe},
    {"adopt", case_adopt},           {"resolve", case_resolve},
};

int main(int argc, char **argv)
{
    setvbuf(stderr, NULL, _IONBF, 0);
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (argc < 2 || strcmp(argv[1], cases[i].name) == 0) {
            ntracked = 0;
            if (cases[i].fn() != 0)
                return 1;
            if (argc >= 2)
                return 0;
        }
    }
    return argc < 2 ? 0 : 2;
}
