/*
 * The datagram protocol of the UDP benchmarks, shared by every UDP server (udp_ioq,
 * udp_uv, udp_ev, udp_event) so that they differ only in the library that moves the
 * datagrams. The client is loadgen (modes udp-pingpong and udp-pummel). The first byte of
 * a datagram says what it is:
 *
 *   'E' ...   ping-pong: sent back to its sender unchanged
 *   'D' ...   pummel: counted, never answered
 *   'Z'       reset: the count starts again from zero; answered with "Z"
 *   'Q'       query: answered with "R <data datagrams> <ns from the first to the last>"
 *
 * The server takes the time of every counted datagram, so the rate it reports is the rate
 * at which it took datagrams out of its socket while the sender was flooding it; what the
 * sender sent and the server never counted was dropped by the kernel (a full receive
 * buffer) and is the loss that loadgen reports.
 */
#ifndef IOQ_UDP_COMMON_H
#define IOQ_UDP_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#ifndef _WIN32
#  include <arpa/inet.h>
#  include <errno.h>
#  include <fcntl.h>
#  include <netinet/in.h>
#  include <stdlib.h>
#  include <sys/socket.h>
#  include <unistd.h>
#endif

/* Largest datagram a server reads; loadgen never sends more. */
#define UDP_MAX_DGRAM 2048

enum { UDP_IGNORE, UDP_ECHO, UDP_REPLY };

static uint64_t udp_count, udp_t_first, udp_t_last;

static inline uint64_t udp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Looks at datagram p[0..n). UDP_ECHO: send p[0..n) back to its sender. UDP_REPLY: send
 * reply[0..*rlen) (reply holds at least 64 bytes) back. UDP_IGNORE: send nothing. */
static inline int udp_handle(const char *p, size_t n, char *reply, size_t *rlen)
{
    int len;
    if (n == 0)
        return UDP_IGNORE;
    switch (p[0]) {
    case 'E':
        return UDP_ECHO;
    case 'D':
        udp_t_last = udp_now_ns();
        if (udp_count++ == 0)
            udp_t_first = udp_t_last;
        return UDP_IGNORE;
    case 'Z':
        udp_count = udp_t_first = udp_t_last = 0;
        reply[0] = 'Z';
        *rlen = 1;
        return UDP_REPLY;
    case 'Q':
        len = snprintf(reply, 64, "R %llu %llu", (unsigned long long)udp_count,
                       (unsigned long long)(udp_t_last - udp_t_first));
        *rlen = (size_t)len;
        return UDP_REPLY;
    default:
        return UDP_IGNORE;
    }
}

#ifndef _WIN32
/* For the servers on readiness libraries (libev, libevent), which leave the socket to the
 * program: a non-blocking UDP socket bound to "addr:port" (port 0 picks one, written to
 * *port). Returns the descriptor or -1. */
static inline int udp_bind_fd(const char *where, int *port)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    const char *colon = strrchr(where, ':');
    char host[64];
    size_t hl;
    int fd;

    if (!colon || (hl = (size_t)(colon - where)) >= sizeof host)
        return -1;
    memcpy(host, where, hl);
    host[hl] = 0;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        return -1;
    /* fcntl rather than SOCK_NONBLOCK: macOS has only the former */
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        return -1;
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 ||
        bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(sin.sin_port);
    return fd;
}

/* The body of a read callback: reads what is queued on fd, at most a batch so that one
 * busy socket cannot starve the loop, and answers what asks for an answer. */
static inline void udp_serve_readable(int fd)
{
    char buf[UDP_MAX_DGRAM], reply[64];
    struct sockaddr_storage from;
    socklen_t flen;
    ssize_t n;
    size_t rlen = 0;
    int i;

    for (i = 0; i < 64; i++) {
        flen = sizeof from;
        n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* EAGAIN, or an ICMP error of an earlier answer */
        }
        switch (udp_handle(buf, (size_t)n, reply, &rlen)) {
        case UDP_ECHO:
            sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, flen);
            break;
        case UDP_REPLY:
            sendto(fd, reply, rlen, 0, (struct sockaddr *)&from, flen);
            break;
        default:
            break;
        }
    }
}
#endif

#endif
