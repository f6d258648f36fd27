/*
 * udp_event - the UDP server of the benchmark suite on libevent (protocol in
 * udp_common.h). bufferevents are for streams; for datagrams libevent's book uses a
 * persistent read event on the non-blocking socket, whose callback reads the queued
 * datagrams with recvfrom() and answers with sendto().
 *
 *   udp_event [addr:port]     (default 127.0.0.1:0: prints the port it got)
 */
#include <event2/event.h>

#include "udp_common.h"

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    udp_serve_readable(fd);
}

int main(int argc, char **argv)
{
    const char *where = argc > 1 ? argv[1] : "127.0.0.1:0";
    struct event_base *base;
    struct event *ev;
    int port, fd = udp_bind_fd(where, &port);

    if (fd < 0) {
        fprintf(stderr, "udp_event: cannot bind %s\n", where);
        return 1;
    }
    base = event_base_new();
    ev = base ? event_new(base, fd, EV_READ | EV_PERSIST, read_cb, NULL) : NULL;
    if (!ev || event_add(ev, NULL) != 0)
        return 1;
    printf("udp_event listening on %.*s:%d (libevent %s)\n",
           (int)(strrchr(where, ':') - where), where, port, event_get_version());
    fflush(stdout);
    event_base_dispatch(base);
    event_free(ev);
    event_base_free(base);
    close(fd);
    return 0;
}
