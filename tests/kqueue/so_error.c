/*
 * A socket error is consumed by the emulation. libkqueue fills EV_EOF's fflags with
 * getsockopt(SO_ERROR), which on Linux also clears the error; a kqueue kernel copies it and
 * leaves it. So after the event a refused connect reads SO_ERROR 0 (it looks connected),
 * and a reset connection reads end of stream instead of ECONNRESET.
 * Disabled for it: kqueue/tcp-refused, kqueue/tcp-peer-reset, kqueue/tcp-setopt.
 */
#include "show.h"

#include <sys/types.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

static struct sockaddr_in loopback(void)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

/* Waits for one event of filter on fd; returns its flags, or -1 when none came. */
static int wait_one(int kq, int fd, int filter)
{
    struct kevent ev;
    struct timespec ts = {5, 0};
    EV_SET(&ev, (uintptr_t)fd, filter, EV_ADD | EV_CLEAR, 0, 0, NULL);
    if (kevent(kq, &ev, 1, NULL, 0, NULL) < 0)
        die("kevent add");
    if (kevent(kq, NULL, 0, &ev, 1, &ts) != 1)
        return -1;
    printf("  event: filter %d flags %#x fflags %u\n", (int)ev.filter, (unsigned)ev.flags,
           (unsigned)ev.fflags);
    return ev.flags;
}

int main(void)
{
    struct sockaddr_in sa = loopback();
    socklen_t len = sizeof sa;
    int kq = kqueue(), err = 0, refused_lost, reset_lost;
    char c;

    if (kq < 0)
        die("kqueue");
    /* 1. A connect to a port that is bound but not listening is refused. */
    int port = socket(AF_INET, SOCK_STREAM, 0), fd = socket(AF_INET, SOCK_STREAM, 0);
    if (port < 0 || fd < 0 || bind(port, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(port, (struct sockaddr *)&sa, &len) < 0)
        die("socket");
    fcntl(fd, F_SETFL, O_NONBLOCK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 || errno != EINPROGRESS) {
        printf("connect did not wait (%s); nothing to show\n", strerror(errno));
        return 2;
    }
    if (wait_one(kq, fd, EVFILT_WRITE) < 0)
        die("no event for the refused connect");
    len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    printf("  refused connect: SO_ERROR after the event is %d (%s)\n", err,
           err ? strerror(err) : "none");
    refused_lost = err == 0;
    close(fd);
    close(port);

    /* 2. A peer resets an established connection (SO_LINGER 0, then close). */
    sa = loopback();
    len = sizeof sa;
    int lis = socket(AF_INET, SOCK_STREAM, 0), cli = socket(AF_INET, SOCK_STREAM, 0), srv;
    struct linger lg = {1, 0};
    if (lis < 0 || cli < 0 || bind(lis, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(lis, 1) < 0 || getsockname(lis, (struct sockaddr *)&sa, &len) < 0 ||
        connect(cli, (struct sockaddr *)&sa, sizeof sa) < 0 || (srv = accept(lis, NULL, NULL)) < 0)
        die("connection");
    fcntl(srv, F_SETFL, O_NONBLOCK);
    setsockopt(cli, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(cli);
    if (wait_one(kq, srv, EVFILT_READ) < 0)
        die("no event for the reset");
    ssize_t n = recv(srv, &c, 1, 0);
    printf("  reset peer: recv after the event returns %zd (%s)\n", n,
           n < 0 ? strerror(errno) : "end of stream");
    reset_lost = n == 0;
    close(srv);
    close(lis);
    close(kq);
    return verdict(refused_lost && reset_lost, "so_error",
                   "SO_ERROR stays ECONNREFUSED; recv fails with ECONNRESET");
}
