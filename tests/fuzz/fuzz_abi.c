/*
 * libFuzzer harness for the ioq ABI: the input is a program of ABI calls with arbitrary
 * arguments (made-up handles, lengths, flags, tokens) run against a live loop.
 *
 * Byte 0 picks the backend. Every further call starts with an opcode byte and takes its
 * arguments from the following bytes. Between calls the loop is polled with timeout 0.
 *
 * Safety fences, so that a finding is always a bug of ioq and never of the harness:
 *  - addresses are forced to loopback (127.0.0.1 / ::1), binds use port 0, and connects
 *    and sendtos only reach ports of this input's own sockets;
 *  - every buffer handed to ioq is a heap block of exactly the length passed (or the call
 *    passes a length ioq must reject); it is freed at its operation's final completion, so
 *    AddressSanitizer catches any write after that, and the rest are freed after
 *    ioq_loop_free;
 *  - descriptors given to ioq_adopt are this input's own socketpair ends;
 *  - paths stay inside a private temporary directory; names are resolved numerically.
 * The harness also checks the exactly-once rule: a token (unique per submission) gets no
 * completion unless its submission returned 0, and at most one final completion.
 */
#define _GNU_SOURCE
#include "ioq.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_CALLS 256
#define MAX_HANDLES 64
#define MAX_PORTS 16
#define MAX_BUF 65536

typedef struct {
    const uint8_t *p;
    size_t n;
} input;

static uint8_t in_u8(input *in)
{
    uint8_t v = 0;
    if (in->n) {
        v = *in->p++;
        in->n--;
    }
    return v;
}

static uint32_t in_u32(input *in)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 8 | in_u8(in);
    return v;
}

static uint64_t in_u64(input *in) { return (uint64_t)in_u32(in) << 32 | in_u32(in); }

/* Per-submission record: state and the memory ioq owns until the final completion. */
enum { T_UNUSED, T_REJECTED, T_PENDING, T_DONE };
typedef struct {
    uint8_t state;
    uint8_t multishot;
    void *mem[2];
} tok_rec;

typedef struct {
    ioq_loop *loop;
    tok_rec toks[MAX_CALLS + 8];
    uint32_t ntoks;
    ioq_handle handles[MAX_HANDLES];
    uint32_t nhandles;
    ioq_handle pools[8];
    uint32_t npools;
    uint16_t ports[MAX_PORTS];
    uint8_t port_v6[MAX_PORTS];
    uint32_t nports;
    int spare_fds[8];
    uint32_t nspare;
} state;

static char tmpdir[64];

static void rm_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char p[512];
    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(tmpdir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *base = getenv("TMPDIR");
    if (!base || !*base || strlen(base) > 40)
        base = "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/ioq-fuzz-XXXXXX", base);
    if (!mkdtemp(tmpdir))
        abort();
    atexit(rm_tmpdir);
    return 0;
}

static void add_handle(state *s, ioq_handle h)
{
    if (h == 0)
        return;
    if (s->nhandles < MAX_HANDLES)
        s->handles[s->nhandles++] = h;
    else
        s->handles[h % MAX_HANDLES] = h;
}

/* A handle: a live one, a stale or mangled one, 0, or noise. */
static ioq_handle pick_handle(state *s, input *in)
{
    uint8_t sel = in_u8(in);
    ioq_handle h = s->nhandles ? s->handles[in_u8(in) % s->nhandles] : 0;
    switch (sel & 7) {
    case 0: return 0;
    case 1: return in_u64(in);
    case 2: return h ^ ((uint64_t)1 << (in_u8(in) & 63));
    case 3: return s->npools ? s->pools[in_u8(in) % s->npools] : h;
    default: return h;
    }
}

static uint64_t new_token(state *s) { return ++s->ntoks; }

static tok_rec *rec_of(state *s, uint64_t tok)
{
    return tok >= 1 && tok <= s->ntoks ? &s->toks[tok] : NULL;
}

/* Record the outcome of a submission; memory of a rejected one is ioq's no longer. */
static void submitted(state *s, uint64_t tok, int rc, int multishot, void *m0, void *m1)
{
    tok_rec *r = rec_of(s, tok);
    r->multishot = (uint8_t)multishot;
    if (rc == 0) {
        r->state = T_PENDING;
        r->mem[0] = m0;
        r->mem[1] = m1;
    } else {
        if (rc > 0 || rc < IOQ_EUNKNOWN)
            abort(); /* submit calls return 0 or an IOQ_E* code */
        r->state = T_REJECTED;
        free(m0);
        free(m1);
    }
}

/* A length: mostly a real one (a block of that size is allocated), sometimes one that ioq
 * must reject before it touches the memory. */
static size_t pick_len(input *in, int *bogus)
{
    uint8_t sel = in_u8(in);
    *bogus = 0;
    switch (sel & 7) {
    case 0: return 0;
    case 1: *bogus = 1; return (size_t)IOQ_MAX_LEN + 1 + in_u8(in);
    case 2: *bogus = 1; return SIZE_MAX - in_u8(in);
    case 3: return 1 + (in_u32(in) % MAX_BUF);
    default: return 1 + (in_u8(in) % 64);
    }
}

static void *alloc_buf(size_t len, int bogus)
{
    /* A bogus length gets a tiny block: ioq must reject the call without touching it. */
    void *p = malloc(bogus || len == 0 ? 1 : len);
    if (!p)
        abort();
    memset(p, 0xa5, bogus || len == 0 ? 1 : len);
    return p;
}

static ioq_addr pick_addr(state *s, input *in, int for_bind)
{
    ioq_addr a;
    uint8_t sel = in_u8(in);
    memset(&a, 0, sizeof a);
    a.family = (sel & 1) ? IOQ_AF_INET6 : IOQ_AF_INET;
    if ((sel & 0x0e) == 0x0e)
        a.family = in_u8(in); /* a family ioq must reject or map onto loopback below */
    if (for_bind || s->nports == 0) {
        a.port = 0;
    } else {
        uint32_t i = in_u8(in) % s->nports;
        a.port = s->ports[i];
        a.family = s->port_v6[i] ? IOQ_AF_INET6 : IOQ_AF_INET;
    }
    if (a.family == IOQ_AF_INET6) {
        a.ip[15] = 1;
    } else {
        a.ip[0] = 127;
        a.ip[3] = 1;
        if (a.family != IOQ_AF_INET)
            a.port = 0;
    }
    a.scope_id = (sel & 0x10) ? in_u8(in) : 0;
    if (a.family == IOQ_AF_INET6 && a.scope_id)
        a.scope_id = 0; /* a scope on ::1 could name a non-loopback interface */
    return a;
}

static void note_port(state *s, ioq_handle h)
{
    ioq_addr a;
    if (s->nports < MAX_PORTS && ioq_sockname(s->loop, h, &a) == 0 && a.port) {
        s->ports[s->nports] = a.port;
        s->port_v6[s->nports] = a.family == IOQ_AF_INET6;
        s->nports++;
    }
}

static const char *pick_path(input *in, char *buf, size_t len)
{
    uint8_t sel = in_u8(in);
    if ((sel & 15) == 15)
        return NULL;
    if ((sel & 15) == 14) {
        /* longer than sun_path: ENAMETOOLONG, not an overflow */
        int n = snprintf(buf, len, "%s/", tmpdir);
        memset(buf + n, 'x', len - (size_t)n - 1);
        buf[len - 1] = 0;
        return buf;
    }
    snprintf(buf, len, "%s/f%u", tmpdir, sel & 7);
    return buf;
}

static void drain(state *s, input *in)
{
    ioq_cqe cqes[64];
    uint32_t max = 1 + in_u8(in) % 64;
    int n = ioq_poll(s->loop, cqes, max, 0);
    if (n < 0 || (uint32_t)n > max)
        abort();
    for (int i = 0; i < n; i++) {
        ioq_cqe *c = &cqes[i];
        tok_rec *r = rec_of(s, c->token);
        int final = !(c->flags & IOQ_CQE_MORE);
        if (!r || r->state != T_PENDING || c->reserved != 0)
            abort(); /* unknown token, a second final completion, or junk */
        if ((c->flags & IOQ_CQE_MORE) && !r->multishot)
            abort();
        if (c->result >= 0 && (c->op == IOQ_OP_ACCEPT || c->op == IOQ_OP_CONNECT ||
                               c->op == IOQ_OP_LOCAL_CONNECT || c->op == IOQ_OP_OPEN))
            add_handle(s, c->value);
        if (c->flags & IOQ_CQE_BUFFER) {
            /* Give it back now or keep it (the pool then runs dry and says ENOBUFS). */
            if (s->npools && (in_u8(in) & 3) != 0) {
                for (uint32_t k = 0; k < s->npools; k++)
                    if (ioq_buf_release(s->loop, s->pools[k], (uint32_t)c->value) == 0)
                        break;
            }
        }
        if (final) {
            r->state = T_DONE;
            free(r->mem[0]);
            free(r->mem[1]);
            r->mem[0] = r->mem[1] = NULL;
        }
    }
}

static void one_call(state *s, input *in)
{
    ioq_loop *L = s->loop;
    uint8_t op = in_u8(in);
    uint64_t tok = new_token(s);
    ioq_handle h, out = 0;
    ioq_addr a;
    size_t len;
    int bogus, rc;
    void *buf;
    char path[160];

    switch (op % 33) {
    case 0: /* tcp_listen */
        a = pick_addr(s, in, 1);
        rc = ioq_tcp_listen(L, &a, in_u32(in) % 1024, in_u8(in) & 7, &out);
        if (rc == 0) {
            add_handle(s, out);
            note_port(s, out);
        }
        break;
    case 1: /* udp_bind */
        a = pick_addr(s, in, 1);
        rc = ioq_udp_bind(L, &a, in_u8(in) & 7, &out);
        if (rc == 0) {
            add_handle(s, out);
            note_port(s, out);
        }
        break;
    case 2: /* local_listen */
        rc = ioq_local_listen(L, pick_path(in, path, sizeof path), in_u8(in), in_u8(in) & 7,
                              &out);
        if (rc == 0)
            add_handle(s, out);
        break;
    case 3:
        h = pick_handle(s, in);
        rc = ioq_accept(L, h, in_u8(in) & 3, tok);
        submitted(s, tok, rc, 1, NULL, NULL);
        break;
    case 4:
        a = pick_addr(s, in, 0);
        rc = ioq_connect(L, &a, in_u8(in) & 3, tok);
        submitted(s, tok, rc, 0, NULL, NULL);
        break;
    case 5:
        rc = ioq_local_connect(L, pick_path(in, path, sizeof path), in_u8(in) & 3, tok);
        submitted(s, tok, rc, 0, NULL, NULL);
        break;
    case 6:
        h = pick_handle(s, in);
        len = pick_len(in, &bogus);
        buf = alloc_buf(len, bogus);
        rc = ioq_recv(L, h, (in_u8(in) & 15) == 0 ? NULL : buf, len, tok);
        submitted(s, tok, rc, 0, buf, NULL);
        break;
    case 7:
        h = pick_handle(s, in);
        rc = ioq_recv_pool(L, h, pick_handle(s, in), in_u8(in) & 3, tok);
        submitted(s, tok, rc, 1, NULL, NULL);
        break;
    case 8:
    case 9:
        h = pick_handle(s, in);
        len = pick_len(in, &bogus);
        buf = alloc_buf(len, bogus);
        rc = ioq_send(L, h, (in_u8(in) & 15) == 0 ? NULL : buf, len, tok);
        submitted(s, tok, rc, 0, buf, NULL);
        break;
    case 10: { /* sendv: two real blocks, a copied array with arbitrary entries */
        ioq_iov iov[4];
        size_t l1, l2;
        int b1, b2;
        void *m1, *m2;
        uint32_t n = in_u8(in) % 5;
        h = pick_handle(s, in);
        l1 = pick_len(in, &b1);
        l2 = pick_len(in, &b2);
        m1 = alloc_buf(l1, b1);
        m2 = alloc_buf(l2, b2);
        /* A bogus length (or a sum that wraps around) must make ioq refuse the array. */
        for (uint32_t i = 0; i < 4; i++) {
            iov[i].base = (i & 1) ? m2 : m1;
            iov[i].len = (i & 1) ? l2 : l1;
        }
        if ((in_u8(in) & 7) == 0)
            iov[0].base = NULL;
        if (n == 4 && (in_u8(in) & 1))
            n = IOQ_MAX_IOV + 1; /* must be rejected before the array is read */
        rc = ioq_sendv(L, h, (in_u8(in) & 15) == 0 ? NULL : iov, n, tok);
        submitted(s, tok, rc, 0, m1, m2);
        break;
    }
    case 11:
        h = pick_handle(s, in);
        len = pick_len(in, &bogus);
        buf = alloc_buf(len, bogus);
        a = pick_addr(s, in, 0);
        rc = ioq_sendto(L, h, (in_u8(in) & 15) == 0 ? NULL : buf, len,
                        (in_u8(in) & 15) == 0 ? NULL : &a, tok);
        submitted(s, tok, rc, 0, buf, NULL);
        break;
    case 12: {
        ioq_addr *ao = malloc(sizeof *ao);
        if (!ao)
            abort();
        h = pick_handle(s, in);
        len = pick_len(in, &bogus);
        buf = alloc_buf(len, bogus);
        rc = ioq_recvfrom(L, h, buf, len, (in_u8(in) & 1) ? ao : NULL, tok);
        submitted(s, tok, rc, 0, buf, ao);
        break;
    }
    case 13:
        rc = ioq_shutdown(L, pick_handle(s, in), tok);
        submitted(s, tok, rc, 0, NULL, NULL);
        break;
    case 14:
    case 15:
        rc = ioq_close(L, pick_handle(s, in), tok);
        submitted(s, tok, rc, 0, NULL, NULL);
        break;
    case 16:
        rc = ioq_open(L, pick_path(in, path, sizeof path), in_u8(in), in_u32(in) & 0777, tok);
        submitted(s, tok, rc, 0, NULL, NULL);
        break;
    case 17:
        h = pick_handle(s, in);
        len = pick_len(in, &bogus);
        buf = alloc_buf(len, bogus);
        rc = ioq_read(L, h, buf, len, in_u64(in) >> (in_u8(in) & 63), tok);
        submitted(s, tok, rc, 0, buf, NULL);
        break;
    case 18:
        h = pick_handle(s, in);
        len = pick_len(in, &bogus);
        buf = alloc_buf(len, bogus);
        rc = ioq_write(L, h, buf, len, in_u32(in) % (1u << 20), tok);
        submitted(s, tok, rc, 0, buf, NULL);
        break;
    case 19:
        rc = ioq_fsync(L, pick_handle(s, in), tok);
        submitted(s, tok, rc, 0, NULL, NULL);
        break;
    case 20:
    case 21: {
        uint8_t sel = in_u8(in);
        uint64_t ns = sel & 1 ? in_u64(in) : (uint64_t)in_u32(in) % 2000000;
        /* Bit 1: an absolute deadline (ns itself when bit 2 is set too: 0, past or far). */
        if (sel & 2)
            rc = ioq_timeout_at(L, sel & 4 ? ns : ioq_now(L) + ns, tok);
        else
            rc = ioq_timeout(L, ns, tok);
        submitted(s, tok, rc, 0, NULL, NULL);
        break;
    }
    case 22: {
        /* A target: a recent submission's token, or noise. */
        uint8_t sel = in_u8(in);
        uint64_t target = (sel & 3) == 0 ? in_u64(in)
                                         : (s->ntoks > 1 ? 1 + in_u8(in) % (s->ntoks - 1) : 0);
        rc = ioq_cancel(L, target, tok);
        submitted(s, tok, rc, 0, NULL, NULL);
        break;
    }
    case 23: {
        static const char *hosts[] = {"127.0.0.1", "::1", "", "1.2.3.4.5", "[::1]", "x"};
        static const char *servs[] = {"80", "0", "http", "", "99999"};
        uint8_t sel = in_u8(in);
        uint32_t max = in_u8(in) % 9;
        ioq_addr *outa = calloc(max ? max : 1, sizeof *outa);
        const char *host = (sel & 7) < 6 ? hosts[sel & 7] : NULL;
        const char *serv = ((sel >> 3) & 7) < 5 ? servs[(sel >> 3) & 7] : NULL;
        if (!outa)
            abort();
        /* NUMERIC keeps name servers out of it; a long host must give ENAMETOOLONG. */
        if ((sel & 0xc0) == 0xc0) {
            memset(path, 'a', sizeof path - 1);
            path[sizeof path - 1] = 0;
            host = path;
        }
        rc = ioq_resolve(L, host, serv, (in_u8(in) & 3) | IOQ_RESOLVE_NUMERIC,
                         (in_u8(in) & 15) == 0 ? NULL : outa, max, tok);
        submitted(s, tok, rc, 0, outa, NULL);
        break;
    }
    case 24: { /* pools and their buffers */
        uint8_t sel = in_u8(in);
        if ((sel & 3) == 0) {
            rc = ioq_pool_new(L, in_u32(in) % 40000, in_u32(in) % 70000, &out);
            if (rc == 0) {
                if (s->npools < 8)
                    s->pools[s->npools++] = out;
                add_handle(s, out);
            }
        } else if ((sel & 3) == 1) {
            volatile uint8_t *b = ioq_buf(L, pick_handle(s, in), in_u32(in) % 40);
            if (b)
                (void)b[0]; /* read it: a returned address must be a live buffer */
        } else {
            ioq_buf_release(L, pick_handle(s, in), in_u32(in) % 40);
        }
        break;
    }
    case 25: { /* queries */
        ioq_addr qa;
        uint64_t os;
        h = pick_handle(s, in);
        ioq_sockname(L, h, (in_u8(in) & 7) ? &qa : NULL);
        ioq_peername(L, h, (in_u8(in) & 7) ? &qa : NULL);
        ioq_os_handle(L, h, (in_u8(in) & 7) ? &os : NULL);
        ioq_setopt(L, h, in_u8(in) % 10, (int64_t)in_u64(in) >> (in_u8(in) & 63));
        break;
    }
    case 26: { /* adopt one of our own descriptors, or an invalid one */
        uint8_t sel = in_u8(in);
        uint32_t kind = in_u8(in) % 9;
        if (sel & 1) {
            int sv[2];
            if (s->nspare + 1 < 8 && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0) {
                s->spare_fds[s->nspare++] = sv[1];
                rc = ioq_adopt(L, (uint64_t)sv[0], kind, &out);
                if (rc == 0)
                    add_handle(s, out);
                /* A watched descriptor stays ours: closed at the end with the spares. */
                if (rc != 0)
                    close(sv[0]);
                else if (kind == IOQ_KIND_WATCH)
                    s->spare_fds[s->nspare++] = sv[0];
            }
        } else {
            ioq_adopt(L, (sel & 2) ? UINT64_MAX : (uint64_t)1 << 40, kind, &out);
        }
        break;
    }
    case 27:
        rc = ioq_post(L, tok, (int64_t)in_u64(in));
        submitted(s, tok, rc, 0, NULL, NULL);
        break;
    case 28: {
        char text[40];
        ioq_addr pa;
        memset(&pa, 0, sizeof pa);
        size_t n = in_u8(in) % sizeof text;
        for (size_t i = 0; i < n; i++)
            text[i] = (char)in_u8(in);
        text[n] = 0;
        if (n < sizeof text - 1)
            text[sizeof text - 1] = 0;
        if (ioq_addr_parse(text, &pa) == 0) {
            char fmt[64];
            ioq_addr_format(&pa, fmt, in_u8(in) % sizeof fmt);
        }
        ioq_addr_format(&pa, NULL, 5);
        break;
    }
    case 29:
        ioq_submit(L);
        ioq_wake(L);
        ioq_loop_fd(L);
        (void)ioq_loop_caps(L);
        (void)ioq_now(L);
        ioq_errname((int64_t)in_u64(in));
        ioq_strerror((int64_t)in_u64(in));
        break;
    case 30: { /* a second loop with arbitrary options */
        /* The struct sits in a larger zeroed block: a size beyond sizeof(ioq_loop_options)
         * is a newer caller's struct, whose tail ioq reads (and must find zero, or not). */
        union {
            ioq_loop_options o;
            uint8_t raw[256];
        } big;
        ioq_loop_options *op_ = &big.o;
        ioq_loop *l2 = NULL;
        memset(&big, 0, sizeof big);
        big.o.size = (in_u8(in) & 3) ? sizeof big.o : in_u8(in);
        if ((in_u8(in) & 7) == 0)
            big.raw[sizeof big.o + in_u8(in) % (sizeof big.raw - sizeof big.o)] = 1;
#define o (*op_)
        o.backend = in_u8(in) % 6;
        o.flags = (in_u8(in) & 7) == 0 ? in_u32(in) : 0;
        o.threadpool_size = in_u8(in) % 5;
        if ((in_u8(in) & 7) == 0)
            o.reserved[in_u8(in) % 8] = in_u32(in);
        if (ioq_loop_new((in_u8(in) & 7) ? &o : NULL, &l2) == 0)
            ioq_loop_free(l2);
#undef o
        break;
    }
    case 31: { /* the 1.1 calls: watches, notifiers, signals, and the process calls' checks */
        uint8_t sel = in_u8(in);
        uint32_t flags = (in_u8(in) & 7) == 0 ? in_u32(in) : (sel & 0x80 ? IOQ_MULTISHOT : 0);
        h = pick_handle(s, in);
        switch (sel % 6) {
        case 0:
            rc = ioq_watch(L, h, in_u8(in) % 5, flags, tok);
            submitted(s, tok, rc, flags & IOQ_MULTISHOT, NULL, NULL);
            break;
        case 1:
            if (ioq_notifier_new(L, &out) == 0)
                add_handle(s, out);
            break;
        case 2:
            ioq_notify(L, h);
            break;
        case 3:
            rc = ioq_notify_wait(L, h, flags, tok);
            submitted(s, tok, rc, flags & IOQ_MULTISHOT, NULL, NULL);
            break;
        case 4: {
            /* Never a signal that could arrive: only numbers ioq must refuse, and SIGURG
             * (ignored by default, never sent here) to exercise catching and giving back. */
            static const int sigs[] = {0, -1, 9, 19, 65, 1000, 23};
            rc = ioq_signal(L, sigs[in_u8(in) % 7], flags, tok);
            submitted(s, tok, rc, flags & IOQ_MULTISHOT, NULL, NULL);
            break;
        }
        default: {
            ioq_process_options po;
            ioq_handle two[2], three[3];
            uint32_t c = 0, r = 0;
            int64_t pid;
            memset(&po, 0, sizeof po);
            po.size = in_u8(in) & 1 ? sizeof po : in_u8(in);
            po.flags = in_u8(in) & 7 ? 0 : in_u32(in);
            po.stdio[in_u8(in) % 3].mode = in_u8(in) % 6;
            ioq_spawn(L, in_u8(in) & 1 ? &po : NULL, &out, three); /* no file: refused */
            /* A pipe that is made joins the handles: the stream calls then meet PIPE ends. */
            if (ioq_pipe(L, in_u8(in) & 1 ? in_u32(in) : 0, in_u8(in) & 1 ? two : NULL) == 0) {
                add_handle(s, two[0]);
                add_handle(s, two[1]);
            }
            ioq_tty_set_mode(L, h, in_u8(in) % 3);
            ioq_tty_get_size(L, h, in_u8(in) & 1 ? &c : NULL, &r);
            ioq_process_pid(L, h, in_u8(in) & 1 ? &pid : NULL);
            ioq_kill(L, h, 0); /* signal 0 only checks: never a real signal */
            break;
        }
        }
        break;
    }
    default: { /* poll with odd arguments: EINVAL, never a crash */
        ioq_cqe c;
        if (ioq_poll(L, NULL, 1, 0) != IOQ_EINVAL || ioq_poll(L, &c, 0, 0) != IOQ_EINVAL ||
            ioq_poll(L, &c, 1, -2) != IOQ_EINVAL)
            abort();
        break;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static state s; /* large: kept off the stack */
    ioq_loop_options o;
    input in = {data, size};
    uint32_t calls = 0;

    memset(&s, 0, sizeof s);
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.backend = (in_u8(&in) & 1) ? IOQ_BACKEND_URING : IOQ_BACKEND_EPOLL;
    o.threadpool_size = 2;
    if (ioq_loop_new(&o, &s.loop) != 0) {
        o.backend = IOQ_BACKEND_EPOLL;
        if (ioq_loop_new(&o, &s.loop) != 0)
            abort();
    }
    while (in.n && calls++ < MAX_CALLS) {
        one_call(&s, &in);
        drain(&s, &in);
    }
    /* A few more polls so that connects, accepts and file work get to complete. */
    for (int i = 0; i < 4; i++)
        drain(&s, &in);
    ioq_loop_free(s.loop);

    for (uint32_t t = 1; t <= s.ntoks; t++) {
        free(s.toks[t].mem[0]);
        free(s.toks[t].mem[1]);
    }
    for (uint32_t i = 0; i < s.nspare; i++)
        close(s.spare_fds[i]);
    /* Files this input made: the next input starts from an empty directory. */
    rm_tmpdir();
    if (mkdir(tmpdir, 0700) != 0)
        abort();
    return 0;
}
