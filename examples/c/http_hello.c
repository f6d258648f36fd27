/*
 * http_hello - an HTTP/1.1 keep-alive "Hello, World!" server on ioq.
 *
 *   http_hello [addr:port]        (default 127.0.0.1:8080)
 *
 * Receives use ioq_recv_pool with IOQ_MULTISHOT: an idle connection holds no buffer, a
 * buffer is taken from the pool only when data arrives and is given back as soon as its
 * bytes have been copied into the connection's request buffer. Requests are parsed
 * incrementally: a request may be split across receives and several may arrive in one
 * (pipelining); each "\r\n\r\n" ends one request (bodies are not supported: this server
 * answers GET-style requests only). The answers to the requests of one receive go out as
 * one ioq_sendv() whose pieces all point at one static response, so a connection needs no
 * send buffer of its own. "Connection: close" (or HTTP/1.0 without keep-alive) closes the
 * connection once its answers have been sent; so does the end of the client's stream.
 */
#include <ioq.h>

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#  define WIN32_LEAN_AND_MEAN
#  include <windows.h>
#endif

#define MAX_CQES    128
#define POOL_COUNT  512
#define POOL_SIZE   4096
#define REQ_MAX     8192  /* longest request head; longer ones get 431 and a close */
#define IOV_MAX_N   64    /* answers per ioq_sendv */
#define TICK_NS     (200 * 1000 * 1000LL)
#define RETRY_NS    (100 * 1000 * 1000ULL)

enum { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_CLOSE, OP_RETRY, OP_CANCEL };

static uint64_t token_make(uint64_t slot, unsigned op) { return (slot << 8) | op; }
static uint64_t token_slot(uint64_t token) { return token >> 8; }
static unsigned token_op(uint64_t token) { return (unsigned)(token & 0xff); }

static const char RESP_KEEP[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "Connection: keep-alive\r\n"
    "\r\n"
    "Hello, World!";
static const char RESP_CLOSE[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "Connection: close\r\n"
    "\r\n"
    "Hello, World!";
static const char RESP_TOO_LARGE[] =
    "HTTP/1.1 431 Request Header Fields Too Large\r\n"
    "Content-Length: 0\r\n"
    "Connection: close\r\n"
    "\r\n";

typedef struct conn {
    ioq_handle h;
    int closing;          /* ioq_close() submitted */
    int draining;         /* no more requests: close once the sends are done */
    int recv_armed;       /* a multishot ioq_recv_pool is in flight */
    uint32_t sends;       /* ioq_sendv() in flight */
    size_t len;           /* bytes of an unfinished request head in req */
    size_t scanned;       /* req[0..scanned) holds no terminator */
    char req[REQ_MAX];
} conn;

static ioq_loop *loop;
static ioq_handle listener, pool;
static conn **slots;
static uint32_t nslots = 1;
static uint32_t *free_slots;
static uint32_t nfree, live, misc_pending;
static int stopping;
static volatile sig_atomic_t stop_requested;

#ifdef _WIN32
static BOOL WINAPI on_console_ctrl(DWORD type)
{
    (void)type;
    stop_requested = 1;
    ioq_wake(loop);
    return TRUE;
}
#else
static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}
#endif

static void fail(const char *what, int64_t code)
{
    fprintf(stderr, "http_hello: %s: %s\n", what, ioq_strerror(code));
    exit(1);
}

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
        nf = realloc(free_slots, (nslots + 1) * sizeof *nf);
        if (nf == NULL) {
            free(c);
            return 0;
        }
        free_slots = nf;
        i = nslots++;
    }
    memset(c, 0, offsetof(conn, req));
    c->h = h;
    slots[i] = c;
    live++;
    return i;
}

static void slot_free(uint32_t i)
{
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
    /* a pending receive completes with IOQ_ECANCELED before the close itself */
    if (ioq_close(loop, c->h, token_make(i, OP_CLOSE)) != 0)
        slot_free(i);
}

/* Close now if nothing is left to send, else after the last send completes. */
static void conn_drain(uint32_t i)
{
    slots[i]->draining = 1;
    if (slots[i]->sends == 0)
        conn_close(i);
}

static void conn_arm(uint32_t i)
{
    conn *c = slots[i];
    if (c->recv_armed || c->draining || c->closing)
        return;
    if (ioq_recv_pool(loop, c->h, pool, IOQ_MULTISHOT, token_make(i, OP_RECV)) != 0) {
        conn_close(i);
        return;
    }
    c->recv_armed = 1;
}

static int send_answers(uint32_t i, const char *resp, size_t resp_len, uint32_t count)
{
    ioq_iov iov[IOV_MAX_N];
    while (count > 0) {
        uint32_t k, m = count < IOV_MAX_N ? count : IOV_MAX_N;
        for (k = 0; k < m; k++) {
            iov[k].base = (void *)resp;
            iov[k].len = resp_len;
        }
        if (ioq_sendv(loop, slots[i]->h, iov, m, token_make(i, OP_SEND)) != 0)
            return -1;
        slots[i]->sends++;
        count -= m;
    }
    return 0;
}

/* Case-insensitive search for needle in hay[0..len). */
static const char *find_ci(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle), k, j;
    for (k = 0; k + n <= len; k++) {
        for (j = 0; j < n; j++)
            if (tolower((unsigned char)hay[k + j]) != needle[j])
                break;
        if (j == n)
            return hay + k;
    }
    return NULL;
}

/* Whether the request head req[0..len) (ending in "\r\n\r\n") asks to close. */
static int wants_close(const char *req, size_t len)
{
    const char *line_end = find_ci(req, len, "\r\n");
    const char *hdr = find_ci(req, len, "\r\nconnection:");
    int http10 = line_end != NULL && line_end - req >= 8 &&
                 memcmp(line_end - 8, "HTTP/1.0", 8) == 0;
    if (hdr != NULL) {
        const char *end = find_ci(hdr + 2, len - (size_t)(hdr + 2 - req), "\r\n");
        size_t vlen = (size_t)(end - hdr);
        if (find_ci(hdr, vlen, "close") != NULL)
            return 1;
        if (find_ci(hdr, vlen, "keep-alive") != NULL)
            return 0;
    }
    return http10;
}

/* Append data, answer every complete request; returns 0, or -1 when the connection must
 * end (after its answers). */
static int on_data(uint32_t i, const char *data, size_t n)
{
    conn *c = slots[i];
    uint32_t keep = 0;
    int closing = 0;
    size_t start = 0, k;

    while (n > 0 && !closing) {
        size_t room = REQ_MAX - c->len, m = n < room ? n : room;
        memcpy(c->req + c->len, data, m);
        c->len += m;
        data += m;
        n -= m;
        /* a terminator may straddle the previous receive: rescan its last 3 bytes */
        k = c->scanned >= 3 ? c->scanned - 3 : 0;
        for (; k + 4 <= c->len; k++) {
            if (c->req[k] != '\r' || memcmp(c->req + k, "\r\n\r\n", 4) != 0)
                continue;
            if (wants_close(c->req + start, k + 4 - start)) {
                closing = 1;
                break;
            }
            keep++;
            start = k + 4;
            k += 3;
        }
        if (closing)
            break;
        memmove(c->req, c->req + start, c->len - start);
        c->len -= start;
        c->scanned = c->len;
        start = 0;
        if (c->len == REQ_MAX) {
            if (send_answers(i, RESP_KEEP, sizeof RESP_KEEP - 1, keep) != 0 ||
                send_answers(i, RESP_TOO_LARGE, sizeof RESP_TOO_LARGE - 1, 1) != 0)
                return -2;
            return -1;
        }
    }
    if (send_answers(i, RESP_KEEP, sizeof RESP_KEEP - 1, keep) != 0)
        return -2;
    if (closing) {
        if (send_answers(i, RESP_CLOSE, sizeof RESP_CLOSE - 1, 1) != 0)
            return -2;
        return -1;
    }
    return 0;
}

static void on_recv(uint32_t i, const ioq_cqe *cqe)
{
    conn *c = slots[i];
    int more = (cqe->flags & IOQ_CQE_MORE) != 0;
    int rc = 0;

    if (!more)
        c->recv_armed = 0;
    if (cqe->flags & IOQ_CQE_BUFFER) {
        uint32_t id = (uint32_t)cqe->value;
        if (!c->closing && !c->draining && cqe->result > 0)
            rc = on_data(i, ioq_buf(loop, pool, id), (size_t)cqe->result);
        ioq_buf_release(loop, pool, id);
    }
    if (c->closing)
        return;
    if (rc == -2) {
        conn_close(i);
    } else if (rc == -1 || cqe->result == 0) {
        conn_drain(i); /* "Connection: close" or the end of the client's stream */
    } else if (cqe->result < 0 && cqe->result != IOQ_ENOBUFS) {
        if (cqe->result != IOQ_ECONNRESET && cqe->result != IOQ_ECANCELED)
            fprintf(stderr, "http_hello: recv: %s\n", ioq_strerror(cqe->result));
        conn_close(i);
    } else if (!more) {
        /* the multishot receive ended (IOQ_ENOBUFS, or a backend that stops after a
         * while): the buffers above are back in the pool, so go on receiving */
        conn_arm(i);
    }
}

static void listener_accept(void)
{
    int rc = ioq_accept(loop, listener, IOQ_MULTISHOT, token_make(0, OP_ACCEPT));
    if (rc != 0)
        fail("accept", rc);
}

static void on_accept(const ioq_cqe *cqe)
{
    if (cqe->result == 0) {
        uint32_t i = stopping ? 0 : slot_alloc(cqe->value);
        if (i == 0) {
            if (ioq_close(loop, cqe->value, token_make(0, OP_CLOSE)) == 0)
                misc_pending++;
        } else {
            ioq_setopt(loop, cqe->value, IOQ_OPT_NODELAY, 1);
            conn_arm(i);
        }
    }
    if ((cqe->flags & IOQ_CQE_MORE) || stopping)
        return;
    fprintf(stderr, "http_hello: accept ended: %s\n", ioq_strerror(cqe->result));
    if (ioq_timeout(loop, RETRY_NS, token_make(0, OP_RETRY)) != 0)
        fail("timeout", IOQ_ENOMEM);
    misc_pending++;
}

static void begin_stop(void)
{
    uint32_t i;
    stopping = 1;
    if (ioq_close(loop, listener, token_make(0, OP_CLOSE)) == 0)
        misc_pending++;
    if (ioq_cancel(loop, token_make(0, OP_RETRY), token_make(0, OP_CANCEL)) == 0)
        misc_pending++;
    for (i = 1; i < nslots; i++)
        if (slots[i] != NULL)
            conn_close(i);
}

static void dispatch(const ioq_cqe *cqe)
{
    uint32_t i = (uint32_t)token_slot(cqe->token);

    switch (token_op(cqe->token)) {
    case OP_ACCEPT:
        on_accept(cqe);
        break;
    case OP_RECV:
        on_recv(i, cqe);
        break;
    case OP_SEND:
        slots[i]->sends--;
        if (slots[i]->closing)
            break;
        if (cqe->result < 0)
            conn_close(i);
        else if (slots[i]->draining && slots[i]->sends == 0)
            conn_close(i);
        break;
    case OP_CLOSE:
        if (i == 0)
            misc_pending--;
        else
            slot_free(i);
        break;
    case OP_RETRY:
        misc_pending--;
        if (cqe->result == 0 && !stopping)
            listener_accept();
        break;
    case OP_CANCEL:
        misc_pending--;
        break;
    }
}

int main(int argc, char **argv)
{
    const char *where = argc > 1 ? argv[1] : "127.0.0.1:8080";
    ioq_cqe cqes[MAX_CQES];
    ioq_addr addr;
    char text[64];
    int rc, n, k;

    if (argc > 2 || ioq_addr_parse(where, &addr) != 0) {
        fprintf(stderr, "usage: http_hello [addr:port]\n");
        return 2;
    }
    rc = ioq_loop_new(NULL, &loop);
    if (rc != 0)
        fail("loop", rc);
    rc = ioq_pool_new(loop, POOL_COUNT, POOL_SIZE, &pool);
    if (rc != 0)
        fail("pool", rc);
    rc = ioq_tcp_listen(loop, &addr, 0, 0, &listener);
    if (rc != 0)
        fail(where, rc);
    if (ioq_sockname(loop, listener, &addr) == 0 &&
        ioq_addr_format(&addr, text, sizeof text) > 0)
        where = text;
#ifdef _WIN32
    SetConsoleCtrlHandler(on_console_ctrl, TRUE);
#else
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
#endif
    listener_accept();
    printf("http_hello: listening on http://%s/ (backend %s)\n", where,
           ioq_loop_backend(loop));
    fflush(stdout);

    for (;;) {
        if (stop_requested && !stopping)
            begin_stop();
        if (stopping && live == 0 && misc_pending == 0)
            break;
        n = ioq_poll(loop, cqes, MAX_CQES, stopping ? -1 : TICK_NS);
        if (n < 0)
            fail("poll", n);
        for (k = 0; k < n; k++)
            dispatch(&cqes[k]);
    }
    /* every receive on the pool has completed, so the pool may be closed now */
    if (ioq_close(loop, pool, 0) == 0) {
        while (ioq_poll(loop, cqes, 1, -1) == 0) {
        }
    }
    ioq_loop_free(loop);
    free(slots);
    free(free_slots);
    printf("http_hello: stopped\n");
    return 0;
}
