/*
 * udp_ev - the UDP server of the benchmark suite on libev (protocol in udp_common.h), as
 * libev's documentation has it: one ev_io read watcher on the non-blocking socket, whose
 * callback reads the queued datagrams with recvfrom() and answers with sendto().
 *
 *   udp_ev [addr:port]     (default 127.0.0.1:0: prints the port it got)
 */
#include <ev.h>

#include "udp_common.h"

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    udp_serve_readable(w->fd);
}

int main(int argc, char **argv)
{
    const char *where = argc > 1 ? argv[1] : "127.0.0.1:0";
    struct ev_loop *loop = ev_default_loop(0);
    ev_io watcher;
    int port, fd = udp_bind_fd(where, &port);

    if (fd < 0) {
        fprintf(stderr, "udp_ev: cannot bind %s\n", where);
        return 1;
    }
    printf("udp_ev listening on %.*s:%d (libev %d.%d)\n", (int)(strrchr(where, ':') - where),
           where, port, ev_version_major(), ev_version_minor());
    fflush(stdout);
    ev_io_init(&watcher, read_cb, fd, EV_READ);
    ev_io_start(loop, &watcher);
    ev_run(loop, 0);
    close(fd);
    return 0;
}
