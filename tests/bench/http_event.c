/*
 * http_event - an HTTP "Hello, World!" server on libevent's evhttp, the way libevent's
 * documentation serves HTTP: a generic callback that answers every request with
 * evhttp_send_reply. The peer of examples/c/http_hello for wrk.
 *
 *   http_event [addr:port]     (default 127.0.0.1:8080)
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct evbuffer *body;

static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
    evbuffer_add_reference(body, "Hello, World!", 13, NULL, NULL);
    evhttp_send_reply(req, 200, "OK", body);
}

int main(int argc, char **argv)
{
    const char *where = argc > 1 ? argv[1] : "127.0.0.1:8080";
    const char *colon = strrchr(where, ':');
    struct event_base *base;
    struct evhttp *http;
    char host[64];
    size_t hl;

    if (!colon || (hl = (size_t)(colon - where)) >= sizeof host) {
        fprintf(stderr, "usage: http_event [addr:port]\n");
        return 2;
    }
    memcpy(host, where, hl);
    host[hl] = 0;
    base = event_base_new();
    http = base ? evhttp_new(base) : NULL;
    body = evbuffer_new();
    if (!http || !body)
        return 1;
    evhttp_set_gencb(http, on_request, NULL);
    if (evhttp_bind_socket(http, host, (unsigned short)atoi(colon + 1)) != 0) {
        fprintf(stderr, "http_event: cannot listen on %s\n", where);
        return 1;
    }
    printf("http_event listening on %s\n", where);
    fflush(stdout);
    event_base_dispatch(base);
    evhttp_free(http);
    evbuffer_free(body);
    event_base_free(base);
    return 0;
}
