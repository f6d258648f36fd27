/*
 * echo_ev - a TCP echo server on libev, in the style of libev's documentation: one ev_io
 * watcher for the listening socket, one per connection for reading, and a write watcher
 * started only while a reply could not be written at once.
 *
 *   echo_ev [addr:port]     (default 127.0.0.1:7000)
 */
#include <ev.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    ev_io rio, wio;
    char *pending;  /* bytes read but not yet written back */
    size_t plen, pcap;
} conn;

static void conn_close(struct ev_loop *loop, conn *c)
{
    ev_io_stop(loop, &c->rio);
    ev_io_stop(loop, &c->wio);
    close(c->rio.fd);
    free(c->pending);
    free(c);
}

/* Writes what is pending; returns -1 when the connection is gone. */
static int flush_pending(struct ev_loop *loop, conn *c)
{
    while (c->plen > 0) {
        ssize_t w = write(c->rio.fd, c->pending, c->plen);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ev_io_start(loop, &c->wio);
                ev_io_stop(loop, &c->rio); /* back-pressure: stop reading */
                return 0;
            }
            if (errno == EINTR)
                continue;
            return -1;
        }
        memmove(c->pending, c->pending + w, c->plen - (size_t)w);
        c->plen -= (size_t)w;
    }
    ev_io_stop(loop, &c->wio);
    ev_io_start(loop, &c->rio);
    return 0;
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    conn *c = (conn *)((char *)w - offsetof(conn, wio));
    (void)revents;
    if (flush_pending(loop, c) < 0)
        conn_close(loop, c);
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    conn *c = (conn *)w;
    char buf[65536];
    ssize_t n;
    (void)revents;
    n = read(w->fd, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(loop, c);
        return;
    }
    if (c->plen + (size_t)n > c->pcap) {
        size_t cap = c->plen + (size_t)n;
        char *p = realloc(c->pending, cap);
        if (!p) {
            conn_close(loop, c);
            return;
        }
        c->pending = p;
        c->pcap = cap;
    }
    memcpy(c->pending + c->plen, buf, (size_t)n);
    c->plen += (size_t)n;
    if (flush_pending(loop, c) < 0)
        conn_close(loop, c);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    int fd;
    (void)revents;
    while ((fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        ev_io_init(&c->rio, read_cb, fd, EV_READ);
        ev_io_init(&c->wio, write_cb, fd, EV_WRITE);
        ev_io_start(loop, &c->rio);
    }
}

int main(int argc, char **argv)
{
    const char *where = argc > 1 ? argv[1] : "127.0.0.1:7000";
    const char *colon = strrchr(where, ':');
    struct sockaddr_in sin;
    struct ev_loop *loop = ev_default_loop(0);
    ev_io listener;
    char host[64];
    size_t hl;
    int fd, one = 1;

    if (!colon || (hl = (size_t)(colon - where)) >= sizeof host) {
        fprintf(stderr, "usage: echo_ev [addr:port]\n");
        return 2;
    }
    memcpy(host, where, hl);
    host[hl] = 0;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fprintf(stderr, "echo_ev: bad address %s\n", where);
        return 2;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(fd, 1024) != 0) {
        fprintf(stderr, "echo_ev: cannot listen on %s\n", where);
        return 1;
    }
    printf("echo_ev listening on %s (libev %d.%d)\n", where, ev_version_major(),
           ev_version_minor());
    fflush(stdout);
    ev_io_init(&listener, accept_cb, fd, EV_READ);
    ev_io_start(loop, &listener);
    ev_run(loop, 0);
    close(fd);
    return 0;
}
