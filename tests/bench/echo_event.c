/*
 * echo_event - a TCP echo server on libevent, written as libevent's own book writes it:
 * an evconnlistener hands each connection to a bufferevent whose read callback moves the
 * input buffer to the output buffer. The peer of ioq's echo_server in tests/bench.
 *
 *   echo_event [addr:port]     (default 127.0.0.1:7000)
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void read_cb(struct bufferevent *bev, void *arg)
{
    (void)arg;
    evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

static void event_cb(struct bufferevent *bev, short events, void *arg)
{
    (void)arg;
    if (events & (BEV_EVENT_ERROR | BEV_EVENT_EOF))
        bufferevent_free(bev);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    struct event_base *base = evconnlistener_get_base(l);
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    (void)sa;
    (void)socklen;
    (void)arg;
    if (!bev)
        return;
    bufferevent_setcb(bev, read_cb, NULL, event_cb, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int main(int argc, char **argv)
{
    const char *where = argc > 1 ? argv[1] : "127.0.0.1:7000";
    const char *colon = strrchr(where, ':');
    struct sockaddr_in sin;
    struct event_base *base;
    struct evconnlistener *l;
    char host[64];
    size_t hl;

    if (!colon || (hl = (size_t)(colon - where)) >= sizeof host) {
        fprintf(stderr, "usage: echo_event [addr:port]\n");
        return 2;
    }
    memcpy(host, where, hl);
    host[hl] = 0;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fprintf(stderr, "echo_event: bad address %s\n", where);
        return 2;
    }
    base = event_base_new();
    if (!base)
        return 1;
    l = evconnlistener_new_bind(base, accept_cb, NULL,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
                                (struct sockaddr *)&sin, sizeof sin);
    if (!l) {
        fprintf(stderr, "echo_event: cannot listen on %s\n", where);
        return 1;
    }
    printf("echo_event listening on %s (libevent %s)\n", where, event_get_version());
    fflush(stdout);
    event_base_dispatch(base);
    evconnlistener_free(l);
    event_base_free(base);
    return 0;
}
