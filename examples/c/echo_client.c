/*
 * echo_client - a load client for echo_server on ioq.
 *
 *   echo_client [-c connections] [-s message_bytes] [-d seconds] [addr:port]
 *   (defaults: 1 connection, 64 bytes, 3 seconds, 127.0.0.1:7000)
 *
 * Each connection sends a message and waits for the whole echo before it sends the next
 * one. The send and the receive of a round are in flight together (ioq keeps a stream's
 * sends and receives in submission order), and the echo is compared byte for byte: every
 * round uses a different pattern so that a stale or misplaced byte is caught. The clock
 * starts when every connection is up; at the end the client prints the round trips per
 * second and the backend. It exits with status 1 on any error or mismatch.
 */
#include <ioq.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CQES 128

/* Token layout: bits 0..7 the operation, bits 8..63 the connection (1..N); 0 = the timer */
enum { OP_CONNECT = 1, OP_SEND, OP_RECV, OP_CLOSE, OP_TIMER, OP_CANCEL };

static uint64_t token_make(uint64_t slot, unsigned op) { return (slot << 8) | op; }
static uint64_t token_slot(uint64_t token) { return token >> 8; }
static unsigned token_op(uint64_t token) { return (unsigned)(token & 0xff); }

typedef struct conn {
    ioq_handle h;
    uint32_t round;
    size_t got;       /* echo bytes received in this round */
    int send_done;    /* the send buffer is ours again */
    int state;        /* see enum below */
    unsigned char *sbuf;
    unsigned char *rbuf;
} conn;

enum { C_CONNECTING, C_IDLE, C_ROUND, C_CLOSING, C_CLOSED };

static ioq_loop *loop;
static conn *conns;
static uint32_t nconn = 1;
static size_t msg_size = 64;
static double seconds = 3.0;
static uint32_t connected, open_conns, pending_timer, pending_cancel;
static uint64_t round_trips, counted;
static uint64_t t_start, t_end;
static int running, stopping, failed;

static void conn_close(uint32_t i)
{
    conn *c = &conns[i];
    if (c->state == C_CLOSING || c->state == C_CLOSED || c->state == C_CONNECTING)
        return;
    c->state = C_CLOSING;
    if (ioq_close(loop, c->h, token_make(i + 1, OP_CLOSE)) != 0) {
        c->state = C_CLOSED;
        open_conns--;
    }
}

static void stop_all(void)
{
    uint32_t i;
    if (stopping)
        return;
    stopping = 1;
    if (t_end == 0)
        t_end = ioq_now(loop);
    counted = round_trips;
    for (i = 0; i < nconn; i++)
        if (conns[i].state == C_IDLE)
            conn_close(i);
    /* connections in the middle of a round finish it first, then close */
}

static void failure(uint32_t i, const char *what, int64_t code)
{
    if (code < 0)
        fprintf(stderr, "echo_client: connection %u: %s: %s\n", i, what, ioq_strerror(code));
    else
        fprintf(stderr, "echo_client: connection %u: %s\n", i, what);
    failed = 1;
    stop_all();
    conn_close(i);
}

static void round_start(uint32_t i)
{
    conn *c = &conns[i];
    size_t k;
    int rc;
    /* a pattern that differs per connection, per round and per position */
    for (k = 0; k < msg_size; k++)
        c->sbuf[k] = (unsigned char)(i * 31u + c->round * 7u + k);
    c->got = 0;
    c->send_done = 0;
    c->state = C_ROUND;
    rc = ioq_send(loop, c->h, c->sbuf, msg_size, token_make(i + 1, OP_SEND));
    if (rc == 0)
        rc = ioq_recv(loop, c->h, c->rbuf, msg_size, token_make(i + 1, OP_RECV));
    if (rc != 0)
        failure(i, "submit", rc);
}

static void round_check(uint32_t i)
{
    conn *c = &conns[i];
    if (!c->send_done || c->got < msg_size)
        return;
    if (memcmp(c->sbuf, c->rbuf, msg_size) != 0) {
        failure(i, "echo differs from what was sent", 0);
        return;
    }
    round_trips++;
    c->round++;
    c->state = C_IDLE;
    if (stopping)
        conn_close(i);
    else
        round_start(i);
}

static void start_clock(void)
{
    uint32_t i;
    if (ioq_timeout(loop, (uint64_t)(seconds * 1e9), token_make(0, OP_TIMER)) != 0) {
        fprintf(stderr, "echo_client: timeout not accepted\n");
        exit(1);
    }
    pending_timer = 1;
    running = 1;
    t_start = ioq_now(loop);
    for (i = 0; i < nconn; i++)
        round_start(i);
}

static void dispatch(const ioq_cqe *cqe)
{
    uint32_t i = (uint32_t)token_slot(cqe->token) - 1; /* unused by the slot-0 tokens */
    int64_t r = cqe->result;
    conn *c = token_slot(cqe->token) ? &conns[i] : NULL;

    switch (token_op(cqe->token)) {
    case OP_CONNECT:
        if (r < 0) {
            fprintf(stderr, "echo_client: connect: %s\n", ioq_strerror(r));
            failed = 1;
            c->state = C_CLOSED;
            stop_all();
            break;
        }
        c->h = cqe->value;
        c->state = C_IDLE;
        open_conns++;
        ioq_setopt(loop, c->h, IOQ_OPT_NODELAY, 1);
        if (stopping)
            conn_close(i);
        else if (++connected == nconn)
            start_clock();
        break;
    case OP_SEND:
        if (c->state != C_ROUND)
            break;
        if (r < 0) {
            failure(i, "send", r);
            break;
        }
        c->send_done = 1;
        round_check(i);
        break;
    case OP_RECV:
        if (c->state != C_ROUND)
            break;
        if (r <= 0) {
            failure(i, r == 0 ? "the server closed the connection" : "recv", r);
            break;
        }
        c->got += (size_t)r;
        if (c->got < msg_size) {
            int rc = ioq_recv(loop, c->h, c->rbuf + c->got, msg_size - c->got,
                              token_make(i + 1, OP_RECV));
            if (rc != 0)
                failure(i, "recv", rc);
            break;
        }
        round_check(i);
        break;
    case OP_CLOSE:
        c->state = C_CLOSED;
        open_conns--;
        break;
    case OP_TIMER:
        pending_timer = 0;
        stop_all();
        break;
    case OP_CANCEL:
        pending_cancel = 0;
        break;
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: echo_client [-c connections] [-s message_bytes] [-d seconds] "
                    "[addr:port]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *where = "127.0.0.1:7000";
    ioq_cqe cqes[MAX_CQES];
    ioq_addr addr;
    uint32_t i;
    int a, n, k, rc;
    double elapsed;

    for (a = 1; a < argc; a++) {
        if (strcmp(argv[a], "-c") == 0 && a + 1 < argc)
            nconn = (uint32_t)strtoul(argv[++a], NULL, 10);
        else if (strcmp(argv[a], "-s") == 0 && a + 1 < argc)
            msg_size = (size_t)strtoul(argv[++a], NULL, 10);
        else if (strcmp(argv[a], "-d") == 0 && a + 1 < argc)
            seconds = strtod(argv[++a], NULL);
        else if (argv[a][0] != '-')
            where = argv[a];
        else
            usage();
    }
    if (nconn == 0 || msg_size == 0 || msg_size > IOQ_MAX_LEN || !(seconds > 0))
        usage();
    if (ioq_addr_parse(where, &addr) != 0) {
        fprintf(stderr, "echo_client: bad address %s\n", where);
        return 2;
    }
    rc = ioq_loop_new(NULL, &loop);
    if (rc != 0) {
        fprintf(stderr, "echo_client: loop: %s\n", ioq_strerror(rc));
        return 1;
    }
    conns = calloc(nconn, sizeof *conns);
    if (conns == NULL)
        return 1;
    for (i = 0; i < nconn; i++) {
        conns[i].sbuf = malloc(msg_size);
        conns[i].rbuf = malloc(msg_size);
        if (conns[i].sbuf == NULL || conns[i].rbuf == NULL)
            return 1;
        conns[i].state = C_CONNECTING;
        rc = ioq_connect(loop, &addr, 0, token_make(i + 1, OP_CONNECT));
        if (rc != 0) {
            fprintf(stderr, "echo_client: connect: %s\n", ioq_strerror(rc));
            return 1;
        }
    }

    /* Run until the timer has fired (or a failure stopped us) and everything is closed.
     * Connections still connecting are waited for so that no completion is left out. */
    for (;;) {
        int connecting = 0;
        for (i = 0; i < nconn; i++)
            connecting |= conns[i].state == C_CONNECTING;
        if (stopping && open_conns == 0 && !connecting && !pending_timer && !pending_cancel)
            break;
        if (stopping && pending_timer == 1 && open_conns == 0 && !connecting) {
            /* a failure stopped us early: the timer is the last thing in flight */
            if (ioq_cancel(loop, token_make(0, OP_TIMER), token_make(0, OP_CANCEL)) == 0)
                pending_cancel = 1;
            pending_timer = 2;
        }
        n = ioq_poll(loop, cqes, MAX_CQES, -1);
        if (n < 0) {
            fprintf(stderr, "echo_client: poll: %s\n", ioq_strerror(n));
            return 1;
        }
        for (k = 0; k < n; k++) {
            dispatch(&cqes[k]);
        }
    }

    elapsed = running ? (double)(t_end - t_start) / 1e9 : 0.0;
    printf("echo_client: %u connection%s, %zu-byte messages, %.2f s, backend %s\n", nconn,
           nconn == 1 ? "" : "s", msg_size, elapsed, ioq_loop_backend(loop));
    printf("round trips/s: %.0f\n", elapsed > 0 ? (double)counted / elapsed : 0.0);
    ioq_loop_free(loop);
    for (i = 0; i < nconn; i++) {
        free(conns[i].sbuf);
        free(conns[i].rbuf);
    }
    free(conns);
    return failed ? 1 : 0;
}
