/*
 * echo_server - a TCP echo server on ioq, the reference example of the completion model.
 *
 *   echo_server [addr:port]        (default 127.0.0.1:7000; port 0 picks a free port)
 *
 * There are no callbacks. Every operation carries a 64-bit token that says which
 * connection it belongs to and what it was; the main loop polls completions and
 * dispatches on the token. Each connection has one multishot receive from a provided-buffer
 * pool that all connections share (ioq_recv_pool): a connection holds a buffer only from
 * the moment its data arrives until the send that echoes it has completed, so a thousand
 * idle connections hold none, and a buffer released is the next one handed out, still
 * warm in the cache. Sends on a handle go out in submission order, so the receive keeps
 * going while an echo is being sent. When the pool runs dry the receive ends with
 * IOQ_ENOBUFS (the data stays in the socket); the connection waits until a buffer comes
 * back, then receives again. A connection's slot is reused only after the completion of
 * its ioq_close(), because ioq guarantees that every pending operation of the handle
 * completes before that: a token can never be confused with the next owner of the slot.
 *
 * SIGINT / SIGTERM (Ctrl-C / Ctrl-Break on Windows) stop it cleanly: the listener and
 * every connection are closed, their completions drained, then the loop is freed. The
 * signals arrive as completions of ioq_signal(); where ioq cannot catch them (Windows, for
 * now) a handler sets a flag that the loop looks at.
 */
#include <ioq.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#  define WIN32_LEAN_AND_MEAN
#  include <windows.h>
#endif

#define BUF_SIZE   16384
#define BUF_COUNT  4096     /* shared by all connections; memory is touched only as used */
#define MAX_CQES   64
/* Without ioq_signal(): a POSIX signal handler may not call ioq_wake() (it is not
 * documented as async-signal-safe), so the loop wakes up this often to look at the flag. */
#define TICK_NS    (200 * 1000 * 1000LL)
#define RETRY_NS   (100 * 1000 * 1000ULL)

/* Token layout: bits 0..7 the operation, bits 8..23 the pool buffer a send echoes, bits
 * 24..63 the connection's slot. Slot 0 is the listener (and the loop-wide operations). */
enum { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_CLOSE, OP_RETRY, OP_CANCEL, OP_SIGNAL };

static uint64_t token_make(uint64_t slot, unsigned op) { return (slot << 24) | op; }
static uint64_t token_send(uint64_t slot, uint32_t buf)
{
    return (slot << 24) | ((uint64_t)buf << 8) | OP_SEND;
}
static uint64_t token_slot(uint64_t token) { return token >> 24; }
static uint32_t token_buf(uint64_t token) { return (uint32_t)(token >> 8) & 0xffff; }
static unsigned token_op(uint64_t token) { return (unsigned)(token & 0xff); }

typedef struct conn {
    ioq_handle h;
    int closing;
    int receiving;         /* its multishot receive is pending */
    int starving;          /* in the starved list: waits for a buffer to receive again */
    uint32_t next_starved;
} conn;

static ioq_loop *loop;
static ioq_handle listener;
static ioq_handle pool;
static char *bufs[BUF_COUNT]; /* ioq_buf() of each buffer id, looked up once */
static uint32_t starved, starved_tail; /* the starved list, oldest first (slots; 0 = none) */
static conn **slots;        /* slots[0] unused: slot 0 is the listener */
static uint32_t nslots = 1;
static uint32_t *free_slots;
static uint32_t nfree;
static uint32_t live;       /* connections whose close has not completed */
static uint32_t misc_pending; /* listener close, retry timer, cancel, orphan closes */
static uint64_t served;
static int stopping;
static volatile sig_atomic_t stop_requested;
static int signals_by_ioq;  /* SIGINT and SIGTERM come as ioq_signal() completions */

#ifdef _WIN32
static BOOL WINAPI on_console_ctrl(DWORD type)
{
    (void)type;
    stop_requested = 1;
    ioq_wake(loop); /* runs on its own thread, where ioq_wake() is allowed */
    return TRUE;
}
#else
static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}
#endif

static void install_stop_handlers(void)
{
#ifdef _WIN32
    SetConsoleCtrlHandler(on_console_ctrl, TRUE);
#else
    /* Both as multishot completions (one token), or both through a handler. */
    if (ioq_signal(loop, SIGINT, IOQ_MULTISHOT, token_make(0, OP_SIGNAL)) == 0) {
        misc_pending++;
        if (ioq_signal(loop, SIGTERM, IOQ_MULTISHOT, token_make(0, OP_SIGNAL)) == 0) {
            misc_pending++;
            signals_by_ioq = 1;
            return;
        }
        if (ioq_cancel(loop, token_make(0, OP_SIGNAL), token_make(0, OP_CANCEL)) == 0)
            misc_pending++;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
#endif
}

static void fail(const char *what, int64_t code)
{
    fprintf(stderr, "echo_server: %s: %s (%s)\n", what, ioq_strerror(code),
            ioq_errname(code));
    exit(1);
}

/* Returns the new slot, or 0 when out of memory. */
static uint32_t slot_alloc(ioq_handle h)
{
    uint32_t i;
    conn *c = malloc(sizeof *c);
    if (c == NULL)
        return 0;
    if (nfree > 0) {
        i = free_slots[--nfree];
    } else {
        conn **ns = realloc(slots, (nslots + 1) * sizeof *ns);
        uint32_t *nf;
        if (ns == NULL) {
            free(c);
            return 0;
        }
        slots = ns;
        /* the free list can hold every slot, so slot_free() never needs memory */
        nf = realloc(free_slots, (nslots + 1) * sizeof *nf);
        if (nf == NULL) {
            free(c);
            return 0;
        }
        free_slots = nf;
        i = nslots++;
    }
    c->h = h;
    c->closing = 0;
    c->receiving = 0;
    c->starving = 0;
    c->next_starved = 0;
    slots[i] = c;
    live++;
    return i;
}

static void slot_free(uint32_t i)
{
    if (slots[i]->starving) { /* rare: unlinked by a walk of the list */
        uint32_t *at = &starved, prev = 0;
        while (*at != i) {
            prev = *at;
            at = &slots[*at]->next_starved;
        }
        *at = slots[i]->next_starved;
        if (starved_tail == i)
            starved_tail = prev;
    }
    free(slots[i]);
    slots[i] = NULL;
    free_slots[nfree++] = i;
    live--;
}

static void conn_close(uint32_t i)
{
    conn *c = slots[i];
    if (c->closing)
        return;
    c->closing = 1;
    if (ioq_close(loop, c->h, token_make(i, OP_CLOSE)) != 0)
        slot_free(i); /* nothing was accepted, so no completion will come */
}

static void conn_recv(uint32_t i)
{
    int rc = ioq_recv_pool(loop, slots[i]->h, pool, IOQ_MULTISHOT, token_make(i, OP_RECV));
    if (rc != 0) {
        fprintf(stderr, "echo_server: recv: %s\n", ioq_strerror(rc));
        conn_close(i);
        return;
    }
    slots[i]->receiving = 1;
}

/* A buffer is back in the pool: the connection that has waited longest for one (if it is
 * still open) receives again. */
static void buf_release(uint32_t id)
{
    uint32_t i;
    if (ioq_buf_release(loop, pool, id) != 0)
        fail("buf_release", IOQ_EINVAL);
    while ((i = starved) != 0) {
        starved = slots[i]->next_starved;
        if (starved == 0)
            starved_tail = 0;
        slots[i]->starving = 0;
        if (!slots[i]->closing) {
            conn_recv(i);
            break;
        }
    }
}

static void conn_starve(uint32_t i)
{
    slots[i]->starving = 1;
    slots[i]->next_starved = 0;
    if (starved_tail != 0)
        slots[starved_tail]->next_starved = i;
    else
        starved = i;
    starved_tail = i;
}

static void listener_accept(void)
{
    int rc = ioq_accept(loop, listener, IOQ_MULTISHOT, token_make(0, OP_ACCEPT));
    if (rc != 0)
        fail("accept", rc);
}

static void begin_stop(void)
{
    uint32_t i;
    stopping = 1;
    /* closing the listener ends the multishot accept with IOQ_ECANCELED */
    if (ioq_close(loop, listener, token_make(0, OP_CLOSE)) == 0)
        misc_pending++;
    if (ioq_cancel(loop, token_make(0, OP_RETRY), token_make(0, OP_CANCEL)) == 0)
        misc_pending++;
    if (ioq_cancel(loop, token_make(0, OP_SIGNAL), token_make(0, OP_CANCEL)) == 0)
        misc_pending++;
    for (i = 1; i < nslots; i++)
        if (slots[i] != NULL)
            conn_close(i);
}

static void on_accept(const ioq_cqe *cqe)
{
    if (cqe->result == 0) {
        ioq_handle h = cqe->value;
        uint32_t i = stopping ? 0 : slot_alloc(h);
        if (i == 0) {
            if (ioq_close(loop, h, token_make(0, OP_CLOSE)) == 0)
                misc_pending++;
        } else {
            served++;
            conn_recv(i);
        }
    }
    if (cqe->flags & IOQ_CQE_MORE)
        return;
    /* The multishot accept has ended. Unless we are stopping, that was an error such
     * as IOQ_EMFILE: back off briefly so that connections can close, then re-arm. */
    if (stopping)
        return;
    fprintf(stderr, "echo_server: accept ended: %s\n", ioq_strerror(cqe->result));
    if (ioq_timeout(loop, RETRY_NS, token_make(0, OP_RETRY)) != 0)
        fail("timeout", IOQ_ENOMEM);
    misc_pending++;
}

static void dispatch(const ioq_cqe *cqe)
{
    uint32_t i = (uint32_t)token_slot(cqe->token);
    int64_t r = cqe->result;

    switch (token_op(cqe->token)) {
    case OP_ACCEPT:
        on_accept(cqe);
        break;
    case OP_RECV:
        if (!(cqe->flags & IOQ_CQE_MORE))
            slots[i]->receiving = 0;
        if (r > 0) {
            /* cqe->value is the buffer id (IOQ_CQE_BUFFER): ours until released. */
            uint32_t id = (uint32_t)cqe->value;
            if (slots[i]->closing ||
                ioq_send(loop, slots[i]->h, bufs[id], (size_t)r, token_send(i, id)) != 0) {
                buf_release(id);
                conn_close(i);
                break;
            }
            if (!slots[i]->receiving && !slots[i]->closing)
                conn_recv(i); /* the receive ended with data: arm it again */
        } else if (slots[i]->closing) {
            break; /* IOQ_ECANCELED (or a late result) of a connection being closed */
        } else if (r == IOQ_ENOBUFS) {
            conn_starve(i); /* the data waits in the socket for a buffer */
        } else {
            if (r < 0 && r != IOQ_ECONNRESET)
                fprintf(stderr, "echo_server: recv: %s\n", ioq_strerror(r));
            conn_close(i); /* r == 0: orderly end of stream */
        }
        break;
    case OP_SEND:
        buf_release(token_buf(cqe->token));
        if (r < 0 && !slots[i]->closing) {
            if (r != IOQ_EPIPE && r != IOQ_ECONNRESET)
                fprintf(stderr, "echo_server: send: %s\n", ioq_strerror(r));
            conn_close(i);
        }
        break;
    case OP_CLOSE:
        if (i == 0)
            misc_pending--;
        else
            slot_free(i);
        break;
    case OP_RETRY:
        misc_pending--;
        if (r == 0 && !stopping)
            listener_accept();
        break;
    case OP_CANCEL:
        misc_pending--;
        break;
    case OP_SIGNAL:
        /* result > 0: SIGINT or SIGTERM arrived (value says which); IOQ_ECANCELED when
         * begin_stop() ended the watch. */
        if (!(cqe->flags & IOQ_CQE_MORE))
            misc_pending--;
        if (r > 0 && !stopping)
            begin_stop();
        break;
    default:
        fprintf(stderr, "echo_server: unexpected token %llu\n",
                (unsigned long long)cqe->token);
        break;
    }
}

int main(int argc, char **argv)
{
    const char *where = argc > 1 ? argv[1] : "127.0.0.1:7000";
    ioq_cqe cqes[MAX_CQES];
    ioq_addr addr;
    char text[64];
    int rc, n, k;

    if (argc > 2 || ioq_addr_parse(where, &addr) != 0) {
        fprintf(stderr, "usage: echo_server [addr:port]\n");
        return 2;
    }
    rc = ioq_loop_new(NULL, &loop);
    if (rc != 0)
        fail("loop", rc);
    rc = ioq_pool_new(loop, BUF_COUNT, BUF_SIZE, &pool);
    if (rc != 0)
        fail("pool", rc);
    for (k = 0; k < BUF_COUNT; k++)
        bufs[k] = ioq_buf(loop, pool, (uint32_t)k);
    rc = ioq_tcp_listen(loop, &addr, 0, 0, &listener);
    if (rc != 0)
        fail(where, rc);
    if (ioq_sockname(loop, listener, &addr) == 0 &&
        ioq_addr_format(&addr, text, sizeof text) > 0)
        where = text;
    install_stop_handlers();
    listener_accept();
    printf("echo_server: listening on %s (backend %s)\n", where, ioq_loop_backend(loop));
    fflush(stdout);

    for (;;) {
        if (stop_requested && !stopping)
            begin_stop();
        if (stopping && live == 0 && misc_pending == 0)
            break;
        n = ioq_poll(loop, cqes, MAX_CQES, stopping || signals_by_ioq ? -1 : TICK_NS);
        if (n < 0)
            fail("poll", n);
        for (k = 0; k < n; k++)
            dispatch(&cqes[k]);
    }

    ioq_loop_free(loop);
    free(slots);
    free(free_slots);
    printf("echo_server: stopped after %llu connections\n", (unsigned long long)served);
    return 0;
}
