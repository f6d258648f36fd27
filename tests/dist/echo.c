/*
 * An echo round trip through an installed ioq: a listener on 127.0.0.1 port 0, a client
 * that connects and sends a line, a server side that echoes it back. Prints
 * "[LABEL: ]echo ok: <line> (backend <name>, ioq <version>)" and exits 0, or says what
 * failed. Usage: echo [LABEL]
 */
#include <ioq.h>
#include <stdio.h>
#include <string.h>

enum { ACCEPT = 1, CONNECT, CSEND, SRECV, SSEND, CRECV, NTOKENS };

static ioq_cqe done[NTOKENS];
static int seen[NTOKENS];

static int wait_for(ioq_loop *loop, uint64_t token)
{
    while (!seen[token]) {
        ioq_cqe cqes[8];
        int n = ioq_poll(loop, cqes, 8, 5000000000LL);
        if (n <= 0) {
            fprintf(stderr, "poll: %s\n", n < 0 ? ioq_strerror(n) : "timed out");
            return -1;
        }
        for (int i = 0; i < n; i++) {
            if (cqes[i].token < NTOKENS) {
                done[cqes[i].token] = cqes[i];
                seen[cqes[i].token] = 1;
            }
        }
    }
    if (done[token].result < 0) {
        fprintf(stderr, "token %u: %s\n", (unsigned)token, ioq_strerror(done[token].result));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const char line[] = "hello through ioq";
    char sbuf[64], cbuf[64];
    ioq_loop *loop;
    ioq_addr addr;
    ioq_handle listener, server, client;

    if (ioq_loop_new(NULL, &loop) != 0 || ioq_addr_parse("127.0.0.1:0", &addr) != 0 ||
        ioq_tcp_listen(loop, &addr, 0, 0, &listener) != 0 ||
        ioq_sockname(loop, listener, &addr) != 0) {
        fprintf(stderr, "set-up failed\n");
        return 1;
    }
    if (ioq_accept(loop, listener, 0, ACCEPT) != 0 || ioq_connect(loop, &addr, 0, CONNECT) != 0 ||
        wait_for(loop, ACCEPT) || wait_for(loop, CONNECT))
        return 1;
    server = done[ACCEPT].value;
    client = done[CONNECT].value;
    if (ioq_send(loop, client, line, strlen(line), CSEND) != 0 ||
        ioq_recv(loop, server, sbuf, sizeof sbuf, SRECV) != 0 || wait_for(loop, CSEND) ||
        wait_for(loop, SRECV))
        return 1;
    if (ioq_send(loop, server, sbuf, (size_t)done[SRECV].result, SSEND) != 0 ||
        ioq_recv(loop, client, cbuf, sizeof cbuf, CRECV) != 0 || wait_for(loop, SSEND) ||
        wait_for(loop, CRECV))
        return 1;
    if ((size_t)done[CRECV].result != strlen(line) || memcmp(cbuf, line, strlen(line)) != 0) {
        fprintf(stderr, "echo differs\n");
        return 1;
    }
    printf("%s%secho ok: %.*s (backend %s, ioq %s)\n", argc > 1 ? argv[1] : "",
           argc > 1 ? ": " : "", (int)done[CRECV].result, cbuf,
           ioq_loop_backend(loop), ioq_version_string());
    ioq_loop_free(loop);
    return 0;
}
