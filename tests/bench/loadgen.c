/*
 * loadgen - the neutral load client of the benchmark suite: plain non-blocking sockets on
 * epoll (Linux), no event library, so that every server (ioq on each backend, libuv,
 * libev, libevent, Python) is loaded by the same code.
 *
 *   loadgen echo         [-c conns] [-s bytes] [-d seconds] addr:port
 *   loadgen pound        [-c clients] [-s bytes] [-d seconds] addr:port
 *   loadgen udp-pingpong [-c flows] [-s bytes] [-d seconds] addr:port
 *   loadgen udp-pummel   [-s bytes] [-d seconds] addr:port
 *   (defaults: 100 connections, 1 flow, 64 bytes, 2 seconds)
 *
 * echo: every connection keeps one message in flight and sends the next one when the
 *   whole echo is back and equal to what was sent (the pattern changes per connection and
 *   per round). Prints round trips per second and the 50th and 99th percentile of the
 *   round-trip time in microseconds.
 * pound: every client connects, sends one message, reads its echo, closes, and starts
 *   over. Prints connections per second.
 * udp-pingpong: every flow (its own socket) keeps one datagram in flight; a datagram not
 *   answered within 200 ms is counted as lost and the flow goes on. Prints round trips
 *   per second and the percentiles.
 * udp-pummel: one socket resets the server's count, sends datagrams as fast as sendmmsg()
 *   goes, then asks the server (protocol in udp_common.h) how many it received and in what
 *   time. Prints the server's
 *   received datagrams per second and the share of the sent ones that it never got.
 *
 * Output lines are "loadgen <metric> <value>" for tests/bench/bench.sh. The clock starts
 * when every connection is up. Exits with status 1 on a mismatch or a failed connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "udp_common.h"

#define MAX_EVENTS 256

static struct sockaddr_in target;
static int ep;
static uint32_t nconn = 100;
static size_t msg_size = 64;
static double seconds = 2.0;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ---------------------------------------------------------------------------------------
 * Latency histogram, log-linear over microseconds: 1 us buckets below 1024 us, then 512
 * buckets per power of two (under 0.2 % wide). Fixed size, so a sample costs no malloc.
 * ------------------------------------------------------------------------------------ */
#define H_LINEAR 1024u
#define H_SUB 512u
#define H_OCTAVES 28u /* up to 2^38 us: far beyond any run */
static uint64_t hist[H_LINEAR + H_OCTAVES * H_SUB];
static uint64_t hist_n;

static void hist_add(uint64_t ns)
{
    uint64_t us = ns / 1000u;
    unsigned k;
    size_t i;
    if (us < H_LINEAR) {
        i = (size_t)us;
    } else {
        k = 63u - (unsigned)__builtin_clzll(us); /* 2^k <= us < 2^(k+1), k >= 10 */
        if (k - 10u >= H_OCTAVES)
            k = 10u + H_OCTAVES - 1u;
        i = H_LINEAR + (size_t)(k - 10u) * H_SUB + (size_t)((us >> (k - 9u)) - H_SUB);
    }
    hist[i]++;
    hist_n++;
}

/* The value at quantile q, as the middle of its bucket. */
static double hist_quantile(double q)
{
    uint64_t rank = (uint64_t)(q * (double)hist_n + 0.999999), seen = 0;
    size_t i;
    if (rank == 0)
        rank = 1;
    for (i = 0; i < sizeof hist / sizeof hist[0]; i++) {
        seen += hist[i];
        if (seen >= rank)
            break;
    }
    if (i < H_LINEAR)
        return (double)i + 0.5;
    {
        size_t o = (i - H_LINEAR) / H_SUB, s = (i - H_LINEAR) % H_SUB;
        double width = (double)(1ull << (o + 1u)); /* 2^(k-9) with k = o + 10 */
        return (double)(H_SUB + s) * width + width / 2;
    }
}

static void print_latency(const char *mode)
{
    printf("loadgen %s_p50_us %.1f\n", mode, hist_quantile(0.50));
    printf("loadgen %s_p99_us %.1f\n", mode, hist_quantile(0.99));
}

/* A pattern that differs per connection, per round and per position, so that a stale or
 * misplaced byte is caught. */
static void fill(unsigned char *p, size_t n, uint32_t conn, uint32_t round)
{
    size_t k;
    for (k = 0; k < n; k++)
        p[k] = (unsigned char)(conn * 31u + round * 7u + k);
}

static void ep_ctl(int op, int fd, uint32_t events, uint32_t i)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u32 = i;
    if (epoll_ctl(ep, op, fd, &ev) != 0)
        die("epoll_ctl");
}

/* ---------------------------------------------------------------------------------------
 * TCP: echo and pound.
 * ------------------------------------------------------------------------------------ */
typedef struct conn {
    int fd;
    int connected;
    uint32_t events; /* what the epoll set waits for on fd */
    uint32_t round;
    size_t sent, got;
    uint64_t t0;
    unsigned char *sbuf, *rbuf;
} conn;

static conn *conns;
static uint64_t rounds, errors;
static int pound;

/* Pound closes a connection per message, and its end of each one waits in TIME_WAIT for a
 * minute. With one source address connect() then searches longer and longer for a free
 * port, and the kernel's search, not the server, sets the rate (in a 2 s run the client
 * spends most of its time there). Loopback owns all of 127/8: spreading the connections
 * over 64 source addresses, with the port left to connect() (IP_BIND_ADDRESS_NO_PORT),
 * keeps the first port it tries free. */
#define POUND_SOURCES 64
static void pound_source(int fd)
{
    static uint32_t next;
    struct sockaddr_in src;
    int one = 1;
    if ((ntohl(target.sin_addr.s_addr) >> 24) != 127)
        return; /* a server elsewhere sees the one address we have */
    memset(&src, 0, sizeof src);
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f000001u + 0x100u * (next++ % POUND_SOURCES));
#ifdef IP_BIND_ADDRESS_NO_PORT
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
    (void)one;
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0)
        die("bind");
}

static void tcp_open(uint32_t i)
{
    conn *c = &conns[i];
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket");
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (pound)
        pound_source(c->fd);
    c->connected = 0;
    c->t0 = now_ns();
    if (connect(c->fd, (struct sockaddr *)&target, sizeof target) != 0 &&
        errno != EINPROGRESS)
        die("connect");
    c->events = EPOLLOUT;
    ep_ctl(EPOLL_CTL_ADD, c->fd, EPOLLOUT, i);
}

/* Changes what the epoll set waits for only when it differs: one system call less per
 * round in the common case. */
static void tcp_wait_for(uint32_t i, uint32_t events)
{
    if (conns[i].events != events) {
        conns[i].events = events;
        ep_ctl(EPOLL_CTL_MOD, conns[i].fd, events, i);
    }
}

/* Writes what is left of the message; EPOLLOUT stays armed only while the write is short. */
static void tcp_write(uint32_t i)
{
    conn *c = &conns[i];
    while (c->sent < msg_size) {
        ssize_t w = write(c->fd, c->sbuf + c->sent, msg_size - c->sent);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            die("write");
        }
        c->sent += (size_t)w;
    }
    tcp_wait_for(i, c->sent < msg_size ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

static void round_start(uint32_t i)
{
    conn *c = &conns[i];
    fill(c->sbuf, msg_size, i, c->round);
    c->sent = c->got = 0;
    if (!pound)
        c->t0 = now_ns();
    tcp_write(i);
}

static void tcp_connected(uint32_t i)
{
    conn *c = &conns[i];
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
        errno = err;
        if (!pound)
            die("connect");
        /* pound: a refused or unroutable connect (full backlog, no ephemeral port left) is
         * counted and the client tries again */
        errors++;
        close(c->fd);
        tcp_open(i);
        return;
    }
    c->connected = 1;
    if (pound)
        round_start(i);
    else
        tcp_wait_for(i, EPOLLIN);
}

/* Returns 1 when the round is complete. */
static int tcp_read(uint32_t i)
{
    conn *c = &conns[i];
    while (c->got < msg_size) {
        ssize_t r = read(c->fd, c->rbuf + c->got, msg_size - c->got);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            die("read");
        }
        if (r == 0) {
            fprintf(stderr, "loadgen: connection %u: the server closed it\n", i);
            exit(1);
        }
        c->got += (size_t)r;
    }
    if (c->sent < msg_size) /* cannot happen with an echo server, but be exact */
        return 0;
    if (memcmp(c->sbuf, c->rbuf, msg_size) != 0) {
        fprintf(stderr, "loadgen: connection %u: echo differs from what was sent\n", i);
        exit(1);
    }
    return 1;
}

static int run_tcp(void)
{
    struct epoll_event evs[MAX_EVENTS];
    uint32_t i, up = 0;
    uint64_t t_start = 0, t_end = 0, now;
    int n, k;

    conns = calloc(nconn, sizeof *conns);
    if (!conns)
        die("calloc");
    for (i = 0; i < nconn; i++) {
        conns[i].sbuf = malloc(msg_size);
        conns[i].rbuf = malloc(msg_size);
        if (!conns[i].sbuf || !conns[i].rbuf)
            die("malloc");
        tcp_open(i);
    }
    for (;;) {
        int timeout = -1;
        if (t_end) {
            now = now_ns();
            if (now >= t_end)
                break;
            timeout = (int)((t_end - now + 999999u) / 1000000u);
        }
        n = epoll_wait(ep, evs, MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (k = 0; k < n; k++) {
            conn *c;
            i = evs[k].data.u32;
            c = &conns[i];
            if (!c->connected) {
                tcp_connected(i);
                if (!pound && c->connected && ++up == nconn) {
                    /* every connection is up: the clock starts, every one sends */
                    t_start = now_ns();
                    t_end = t_start + (uint64_t)(seconds * 1e9);
                    for (i = 0; i < nconn; i++)
                        round_start(i);
                }
                continue;
            }
            if ((evs[k].events & EPOLLOUT) && c->sent < msg_size)
                tcp_write(i);
            if (!(evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) || !tcp_read(i))
                continue;
            now = now_ns();
            if (t_end && now < t_end) {
                rounds++;
                if (!pound)
                    hist_add(now - c->t0);
            }
            c->round++;
            if (pound) {
                close(c->fd); /* also leaves the epoll set */
                tcp_open(i);
            } else {
                round_start(i);
            }
        }
        if (pound && t_end == 0) {
            /* pound: the clients start at once; the clock starts with the first batch */
            t_start = now_ns();
            t_end = t_start + (uint64_t)(seconds * 1e9);
        }
    }
    if (pound) {
        printf("loadgen pound_conn_per_s %.0f\n", (double)rounds / seconds);
        if (errors)
            fprintf(stderr, "loadgen: pound: %llu connects failed and were retried\n",
                    (unsigned long long)errors);
    } else {
        printf("loadgen echo_rt_per_s %.0f\n", (double)rounds / seconds);
        print_latency("echo");
    }
    for (i = 0; i < nconn; i++)
        close(conns[i].fd);
    return rounds > 0 ? 0 : 1;
}

/* ---------------------------------------------------------------------------------------
 * UDP: ping-pong and pummel.
 * ------------------------------------------------------------------------------------ */
#define UDP_LOST_NS 200000000u /* an answer later than this is taken as lost */

static int udp_socket(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    if (connect(fd, (struct sockaddr *)&target, sizeof target) != 0)
        die("connect");
    return fd;
}

static void udp_fill(unsigned char *p, uint32_t flow, uint32_t round)
{
    fill(p, msg_size, flow, round);
    p[0] = 'E';
}

static int run_udp_pingpong(void)
{
    struct epoll_event evs[MAX_EVENTS];
    unsigned char rbuf[UDP_MAX_DGRAM];
    uint64_t t_start, t_end, now, next_scan, lost = 0;
    uint32_t i;
    int n, k;

    conns = calloc(nconn, sizeof *conns);
    if (!conns)
        die("calloc");
    for (i = 0; i < nconn; i++) {
        conns[i].fd = udp_socket();
        conns[i].sbuf = malloc(msg_size);
        if (!conns[i].sbuf)
            die("malloc");
        ep_ctl(EPOLL_CTL_ADD, conns[i].fd, EPOLLIN, i);
    }
    t_start = now_ns();
    t_end = t_start + (uint64_t)(seconds * 1e9);
    next_scan = t_start + UDP_LOST_NS;
    for (i = 0; i < nconn; i++) {
        udp_fill(conns[i].sbuf, i, 0);
        conns[i].t0 = now_ns();
        if (send(conns[i].fd, conns[i].sbuf, msg_size, 0) < 0 && errno != EAGAIN)
            die("send");
    }
    for (;;) {
        now = now_ns();
        if (now >= t_end)
            break;
        if (now >= next_scan) {
            /* resend what has been waiting too long: the kernel dropped it */
            for (i = 0; i < nconn; i++) {
                conn *c = &conns[i];
                if (now - c->t0 < UDP_LOST_NS)
                    continue;
                lost++;
                udp_fill(c->sbuf, i, ++c->round);
                c->t0 = now;
                if (send(c->fd, c->sbuf, msg_size, 0) < 0 && errno != EAGAIN)
                    die("send");
            }
            next_scan = now + UDP_LOST_NS / 4;
        }
        n = epoll_wait(ep, evs, MAX_EVENTS, (int)((t_end - now + 999999u) / 1000000u));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (k = 0; k < n; k++) {
            conn *c = &conns[evs[k].data.u32];
            ssize_t r;
            while ((r = recv(c->fd, rbuf, sizeof rbuf, 0)) >= 0) {
                if ((size_t)r != msg_size || memcmp(rbuf, c->sbuf, msg_size) != 0)
                    continue; /* the late answer of a round given up as lost */
                now = now_ns();
                if (now < t_end) {
                    rounds++;
                    hist_add(now - c->t0);
                }
                udp_fill(c->sbuf, evs[k].data.u32, ++c->round);
                c->t0 = now;
                if (send(c->fd, c->sbuf, msg_size, 0) < 0 && errno != EAGAIN)
                    die("send");
            }
            if (errno != EAGAIN && errno != EINTR)
                die("recv");
        }
    }
    printf("loadgen udp_pingpong_rt_per_s %.0f\n", (double)rounds / seconds);
    print_latency("udp_pingpong");
    if (lost)
        fprintf(stderr, "loadgen: udp-pingpong: %llu datagrams lost and sent again\n",
                (unsigned long long)lost);
    for (i = 0; i < nconn; i++)
        close(conns[i].fd);
    return rounds > 0 ? 0 : 1;
}

/* Sends the one-byte command cmd ('Z' or 'Q', see udp_common.h) and waits for its answer
 * (which starts with want) into reply; retries, because both are datagrams that a full
 * receive buffer may drop. */
static int udp_command(int fd, char cmd, char want, char *reply, size_t size)
{
    int attempt;
    for (attempt = 0; attempt < 20; attempt++) {
        uint64_t until = now_ns() + 100000000u;
        if (send(fd, &cmd, 1, 0) < 0 && errno != EAGAIN && errno != ECONNREFUSED)
            die("send");
        while (now_ns() < until) {
            struct epoll_event ev;
            ssize_t r;
            int n = epoll_wait(ep, &ev, 1, 10);
            if (n < 0 && errno != EINTR)
                die("epoll_wait");
            while ((r = recv(fd, reply, size - 1, 0)) > 0) {
                reply[r] = 0;
                if (reply[0] == want)
                    return 0;
            }
        }
    }
    fprintf(stderr, "loadgen: udp-pummel: the server does not answer '%c'\n", cmd);
    return -1;
}

static int run_udp_pummel(void)
{
#define BATCH 64
    static unsigned char bufs[BATCH][UDP_MAX_DGRAM];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    uint64_t t_start, t_end, sent = 0;
    unsigned long long got, ns;
    char reply[128];
    int fd = udp_socket(), i, n;

    for (i = 0; i < BATCH; i++) {
        fill(bufs[i], msg_size, 0, (uint32_t)i);
        bufs[i][0] = 'D';
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = msg_size;
        memset(&msgs[i], 0, sizeof msgs[i]);
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    ep_ctl(EPOLL_CTL_ADD, fd, EPOLLIN, 0);
    if (udp_command(fd, 'Z', 'Z', reply, sizeof reply) != 0)
        return 1;
    t_start = now_ns();
    t_end = t_start + (uint64_t)(seconds * 1e9);
    while (now_ns() < t_end) {
        n = sendmmsg(fd, msgs, BATCH, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ENOBUFS)
                continue;
            if (errno == ECONNREFUSED) /* an ICMP from a server that is not there yet */
                continue;
            die("sendmmsg");
        }
        sent += (uint64_t)n;
    }
    /* let the server empty its receive buffer, so that the query is not dropped too */
    {
        struct timespec pause = {0, 50000000};
        nanosleep(&pause, NULL);
    }
    if (udp_command(fd, 'Q', 'R', reply, sizeof reply) != 0 ||
        sscanf(reply, "R %llu %llu", &got, &ns) != 2)
        return 1;
    if (got == 0 || ns == 0) {
        fprintf(stderr, "loadgen: udp-pummel: the server received %llu datagrams\n", got);
        return 1;
    }
    printf("loadgen udp_pummel_rx_per_s %.0f\n", (double)got * 1e9 / (double)ns);
    printf("loadgen udp_pummel_loss_pct %.2f\n",
           sent > got ? 100.0 * (double)(sent - got) / (double)sent : 0.0);
    fprintf(stderr, "loadgen: udp-pummel: sent %llu (%.0f/s), the server received %llu\n",
            (unsigned long long)sent, (double)sent / seconds, got);
    close(fd);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen echo|pound|udp-pingpong|udp-pummel [-c connections] "
                    "[-s bytes] [-d seconds] addr:port\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *mode, *where = NULL, *colon;
    char host[64];
    int a, udp;
    size_t hl;

    if (argc < 2)
        usage();
    mode = argv[1];
    udp = strncmp(mode, "udp-", 4) == 0;
    if (strcmp(mode, "udp-pingpong") == 0)
        nconn = 1;
    for (a = 2; a < argc; a++) {
        if (strcmp(argv[a], "-c") == 0 && a + 1 < argc)
            nconn = (uint32_t)strtoul(argv[++a], NULL, 10);
        else if (strcmp(argv[a], "-s") == 0 && a + 1 < argc)
            msg_size = (size_t)strtoul(argv[++a], NULL, 10);
        else if (strcmp(argv[a], "-d") == 0 && a + 1 < argc)
            seconds = strtod(argv[++a], NULL);
        else if (argv[a][0] != '-' && !where)
            where = argv[a];
        else
            usage();
    }
    if (!where || nconn == 0 || msg_size == 0 || msg_size > (udp ? UDP_MAX_DGRAM : 1u << 24) ||
        !(seconds > 0))
        usage();
    colon = strrchr(where, ':');
    if (!colon || (hl = (size_t)(colon - where)) >= sizeof host)
        usage();
    memcpy(host, where, hl);
    host[hl] = 0;
    memset(&target, 0, sizeof target);
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &target.sin_addr) != 1) {
        fprintf(stderr, "loadgen: bad address %s\n", where);
        return 2;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    if (strcmp(mode, "echo") == 0)
        return run_tcp();
    if (strcmp(mode, "pound") == 0) {
        pound = 1;
        return run_tcp();
    }
    if (strcmp(mode, "udp-pingpong") == 0)
        return run_udp_pingpong();
    if (strcmp(mode, "udp-pummel") == 0)
        return run_udp_pummel();
    usage();
    return 2;
}
