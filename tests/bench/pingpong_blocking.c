/*
 * pingpong_blocking - the ping-pong benchmark with plain blocking sockets and no event
 * loop at all: the ceiling for one connection with one message in flight. See
 * pingpong_common.h.
 */
#include "pingpong_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static uint64_t pp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int server(int report_fd)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    char buf[65536];
    int one = 1, lst, fd;
    ssize_t n;

    lst = socket(AF_INET, SOCK_STREAM, 0);
    if (lst < 0)
        die("socket");
    setsockopt(lst, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lst, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lst, 128) != 0 ||
        getsockname(lst, (struct sockaddr *)&addr, &len) != 0)
        die("bind");
    if (pp_server_report(report_fd, ntohs(addr.sin_port)) != 0)
        return 1;
    fd = accept(lst, NULL, NULL);
    if (fd < 0)
        die("accept");
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        ssize_t off = 0;
        while (off < n) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w <= 0)
                die("write");
            off += w;
        }
    }
    close(fd);
    close(lst);
    return 0;
}

int main(int argc, char **argv)
{
    double seconds = pp_seconds(argc, argv);
    pp_server srv = pp_server_start(server);
    struct sockaddr_in addr;
    uint64_t t0, t1, limit, pongs = 0;
    char buf[64];
    int fd;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)srv.port);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        die("connect");
    limit = (uint64_t)(seconds * 1e9);
    t0 = pp_now_ns();
    do {
        size_t got = 0;
        if (write(fd, PING, PING_LEN) != PING_LEN)
            die("write");
        while (got < PING_LEN) {
            ssize_t n = read(fd, buf + got, PING_LEN - got);
            if (n <= 0)
                die("read");
            got += (size_t)n;
        }
        if (memcmp(buf, PING, PING_LEN) != 0) {
            fprintf(stderr, "pingpong_blocking: wrong bytes in the echo\n");
            return 1;
        }
        pongs++;
        t1 = pp_now_ns();
    } while (t1 - t0 < limit);
    close(fd);
    printf("blocking %.0f\n", (double)pongs * 1e9 / (double)(t1 - t0));
    return pp_server_wait(srv) == 0 ? 0 : 1;
}
