/*
 * The loop: completion ring, handle table, op slab, token index, poll and cross-thread
 * wake-ups. Backend-neutral: the OS is reached only through loop->backend and ioq__os_*.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Each OS layer lists its backends in the order AUTO tries them. */
extern const ioq__backend *const ioq__os_backends[];

static _Atomic uint32_t loop_tags;

/* --- small helpers ------------------------------------------------------------------------ */

char *ioq__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* --- completion ring ---------------------------------------------------------------------- */

static uint32_t cq_count(const ioq_loop *loop) { return loop->cq_tail - loop->cq_head; }

/* Make room for `extra` more records. The ring never shrinks; growth keeps records in order. */
static bool cq_reserve(ioq_loop *loop, uint32_t extra)
{
    uint32_t cap = loop->cq_mask + 1, count = cq_count(loop), ncap = cap;
    ioq_cqe *ncq;

    if ((uint64_t)count + extra <= cap)
        return true;
    while ((uint64_t)count + extra > ncap) {
        if (ncap >= (1u << 30))
            return false;
        ncap *= 2;
    }
    ncq = malloc((size_t)ncap * sizeof *ncq);
    if (!ncq)
        return false;
    for (uint32_t i = 0; i < count; i++)
        ncq[i] = loop->cq[(loop->cq_head + i) & loop->cq_mask];
    free(loop->cq);
    loop->cq = ncq;
    loop->cq_head = 0;
    loop->cq_tail = count;
    loop->cq_mask = ncap - 1;
    return true;
}

static void cq_push(ioq_loop *loop, uint64_t token, int64_t result, uint64_t value, uint16_t op,
                    uint16_t flags)
{
    ioq_cqe *c;
    /* Every live op reserved its final record when it was accepted; only multishot records
     * and posts can need growth here, and their producers check cq_reserve first. */
    if (cq_count(loop) == loop->cq_mask + 1)
        cq_reserve(loop, 1);
    c = &loop->cq[loop->cq_tail & loop->cq_mask];
    c->token = token;
    c->result = result;
    c->value = value;
    c->op = op;
    c->flags = flags;
    c->reserved = 0;
    loop->cq_tail++;
    /* A host that sleeps on ioq_loop_fd() must learn of records made outside ioq_poll(). */
    if (loop->embedded && !loop->in_poll && cq_count(loop) == 1 &&
        !atomic_exchange(&loop->wake_sent, 1))
        loop->backend->wake(loop);
}

/* --- handles ------------------------------------------------------------------------------ */

ioq__handle *ioq__handle_at(const ioq_loop *loop, uint32_t index)
{
    return &loop->hchunks[index / IOQ__HANDLE_CHUNK][index % IOQ__HANDLE_CHUNK];
}

ioq__handle *ioq__handle_new(ioq_loop *loop, uint8_t kind, int64_t fd)
{
    ioq__handle *h = loop->hfree;
    if (h) {
        loop->hfree = h->next_free;
    } else {
        uint32_t index = loop->nhandles;
        if (index > IOQ__INDEX_MASK)
            return NULL;
        if (index / IOQ__HANDLE_CHUNK == loop->nchunks) {
            ioq__handle **nc = realloc(loop->hchunks, (loop->nchunks + 1) * sizeof *nc);
            if (!nc)
                return NULL;
            loop->hchunks = nc;
            nc[loop->nchunks] = calloc(IOQ__HANDLE_CHUNK, sizeof(ioq__handle));
            if (!nc[loop->nchunks])
                return NULL;
            loop->nchunks++;
        }
        h = ioq__handle_at(loop, index);
        h->index = index;
        h->gen = 1;
        loop->nhandles++;
    }
    h->kind = kind;
    h->family = 0;
    h->rstate = 0;
    h->nops = 0;
    h->fd = fd;
    h->ops = NULL;
    h->close_op = NULL;
    h->readq.head = h->readq.tail = NULL;
    h->writeq.head = h->writeq.tail = NULL;
    h->pool = NULL;
    h->next_free = NULL;
    h->be = NULL;
    return h;
}

static void handle_invalidate(ioq__handle *h)
{
    h->gen = (h->gen + 1) & IOQ__GEN_MASK;
    if (h->gen == 0)
        h->gen = 1;
    h->rstate |= IOQ__R_CLOSING;
}

void ioq__handle_free(ioq_loop *loop, ioq__handle *h)
{
    if (!(h->rstate & IOQ__R_CLOSING))
        handle_invalidate(h);
    h->kind = IOQ__K_FREE;
    h->fd = -1;
    h->next_free = loop->hfree;
    loop->hfree = h;
}

void ioq__handle_destroy(ioq_loop *loop, ioq__handle *h)
{
    if (h->fd >= 0 || h->kind == IOQ__K_CONNECTING) {
        if (loop->backend->handle_close)
            loop->backend->handle_close(loop, h);
        if (h->fd >= 0)
            ioq__os_close(h->fd);
        h->fd = -1;
    }
    ioq__handle_free(loop, h);
}

int ioq__handle_open(ioq_loop *loop, uint8_t kind, uint8_t family, int64_t fd,
                     ioq__handle **out)
{
    ioq__handle *h = ioq__handle_new(loop, kind, fd);
    int rc;
    if (!h)
        return IOQ_ENOMEM;
    h->family = family;
    if (loop->backend->handle_open && (rc = loop->backend->handle_open(loop, h)) != 0) {
        h->fd = -1;
        ioq__handle_free(loop, h);
        return rc;
    }
    *out = h;
    return 0;
}

ioq_handle ioq__handle_value(const ioq_loop *loop, const ioq__handle *h)
{
    return (uint64_t)loop->tag << 48 | (uint64_t)h->gen << IOQ__INDEX_BITS | h->index;
}

ioq__handle *ioq__handle_find(const ioq_loop *loop, uint64_t v)
{
    uint32_t index = (uint32_t)(v & IOQ__INDEX_MASK);
    uint32_t gen = (uint32_t)(v >> IOQ__INDEX_BITS) & IOQ__GEN_MASK;
    ioq__handle *h;

    if ((uint16_t)(v >> 48) != loop->tag || index >= loop->nhandles)
        return NULL;
    h = ioq__handle_at(loop, index);
    return h->gen == gen && h->kind != IOQ__K_FREE ? h : NULL;
}

/* The handle behind a caller's value v: live, visible, not closing, of a kind in `kinds`
 * (a bit mask of 1 << IOQ__K_*). */
ioq__handle *ioq__handle_get(const ioq_loop *loop, ioq_handle v, uint32_t kinds)
{
    ioq__handle *h = ioq__handle_find(loop, v);
    if (!h || h->kind == IOQ__K_CONNECTING || (h->rstate & IOQ__R_CLOSING) ||
        !(kinds & (1u << h->kind)))
        return NULL;
    return h;
}

/* --- op slab and token index -------------------------------------------------------------- */

/* Fibonacci hashing: the top bits of the product spread sequential tokens evenly. */
static uint32_t token_hash(uint64_t token, unsigned shift)
{
    return (uint32_t)(token * 0x9E3779B97F4A7C15ull >> shift);
}

static void token_rehash_chunk(ioq__op **nb, unsigned shift, unsigned char *chunk, size_t size)
{
    for (int i = 0; i < IOQ__OP_CHUNK; i++) {
        ioq__op *op = (ioq__op *)(void *)(chunk + (size_t)i * size);
        if (op->code != IOQ_OP_NONE && op->indexed) {
            uint32_t b = token_hash(op->token, shift);
            op->tnext = nb[b];
            nb[b] = op;
        }
    }
}

/* Doubling rehashes by walking the slabs in address order rather than the chains: with a
 * million ops pending, chasing the chains is a cache miss per op. */
static void token_index_grow(ioq_loop *loop)
{
    uint32_t nsize = (loop->tmask + 1) * 2;
    ioq__op **nb = calloc(nsize, sizeof *nb);
    if (!nb)
        return; /* longer chains, still correct */
    for (uint32_t c = 0; c < loop->nochunks; c++)
        token_rehash_chunk(nb, loop->tshift - 1, (unsigned char *)loop->ochunks[c],
                           sizeof(ioq__op));
    for (uint32_t c = 0; c < loop->ntmchunks; c++)
        token_rehash_chunk(nb, loop->tshift - 1, loop->tmchunks[c], IOQ__TIMER_OP_SIZE);
    free(loop->tbuckets);
    loop->tbuckets = nb;
    loop->tmask = nsize - 1;
    loop->tshift--;
}

static uint32_t token_bucket(const ioq_loop *loop, uint64_t token)
{
    return token_hash(token, loop->tshift);
}

static void token_insert(ioq_loop *loop, ioq__op *op)
{
    uint32_t b;
    if (loop->tcount > loop->tmask)
        token_index_grow(loop);
    b = token_bucket(loop, op->token);
    op->tnext = loop->tbuckets[b];
    loop->tbuckets[b] = op;
    op->indexed = 1;
    loop->tcount++;
}

static void token_remove(ioq_loop *loop, ioq__op *op)
{
    ioq__op **pp = &loop->tbuckets[token_bucket(loop, op->token)];
    while (*pp && *pp != op)
        pp = &(*pp)->tnext;
    if (*pp) {
        *pp = op->tnext;
        op->indexed = 0;
        loop->tcount--;
    }
}

/* Add a chunk of IOQ__OP_CHUNK free records to one of the two slabs. */
static bool slab_grow(ioq_loop *loop, bool timer)
{
    size_t size = timer ? IOQ__TIMER_OP_SIZE : sizeof(ioq__op);
    ioq__op **free_list = timer ? &loop->tmfree : &loop->ofree;
    unsigned char *chunk;

    if (timer) {
        unsigned char **nc = realloc(loop->tmchunks, (loop->ntmchunks + 1) * sizeof *nc);
        if (!nc)
            return false;
        loop->tmchunks = nc;
    } else {
        ioq__op **nc = realloc(loop->ochunks, (loop->nochunks + 1) * sizeof *nc);
        if (!nc)
            return false;
        loop->ochunks = nc;
    }
    if (!(chunk = malloc(IOQ__OP_CHUNK * size)))
        return false;
    if (timer)
        loop->tmchunks[loop->ntmchunks++] = chunk;
    else
        loop->ochunks[loop->nochunks++] = (ioq__op *)(void *)chunk;
    for (int i = IOQ__OP_CHUNK - 1; i >= 0; i--) {
        ioq__op *op = (ioq__op *)(void *)(chunk + (size_t)i * size);
        op->code = IOQ_OP_NONE;
        op->qnext = *free_list;
        *free_list = op;
    }
    return true;
}

/* A fresh op for a submission, with a completion record reserved for its final result.
 * Timeouts come from the slab of short records (see struct ioq__op). */
ioq__op *ioq__op_new(ioq_loop *loop, uint16_t code, uint64_t token)
{
    bool timer = code == IOQ_OP_TIMEOUT;
    ioq__op **free_list = timer ? &loop->tmfree : &loop->ofree;
    ioq__op *op;

    if (!cq_reserve(loop, loop->nops_live + 1))
        return NULL;
    if (!*free_list && !slab_grow(loop, timer))
        return NULL;
    op = *free_list;
    *free_list = op->qnext;
    memset(op, 0, timer ? IOQ__TIMER_OP_SIZE : sizeof *op);
    op->code = code;
    op->token = token;
    loop->nops_live++;
    return op;
}

/* Attach an op to its handle so that ioq_close can find it. */
void ioq__op_attach(ioq__op *op, ioq__handle *h)
{
    op->h = h;
    op->hprev = NULL;
    op->hnext = h->ops;
    if (h->ops)
        h->ops->hprev = op;
    h->ops = op;
    h->nops++;
}

static void op_detach(ioq__op *op)
{
    ioq__handle *h = op->h;
    if (!h)
        return;
    if (op->hprev)
        op->hprev->hnext = op->hnext;
    else if (h->ops == op)
        h->ops = op->hnext;
    else
        return; /* never attached */
    if (op->hnext)
        op->hnext->hprev = op->hprev;
    op->hnext = op->hprev = NULL;
    h->nops--;
}

/* Return an op to the slab (no completion: rejected submissions and loop teardown). */
void ioq__op_free(ioq_loop *loop, ioq__op *op)
{
    loop->nops_live--;
    if (op->code == IOQ_OP_TIMEOUT) {
        op->code = IOQ_OP_NONE;
        op->qnext = loop->tmfree;
        loop->tmfree = op;
        return;
    }
    if (op->iov && op->iov != op->iov_small)
        free(op->iov);
    free(op->path);
    free(op->path2);
    free(op->be);
    op->code = IOQ_OP_NONE;
    op->qnext = loop->ofree;
    loop->ofree = op;
}

/* Register an accepted op in the token index (before the backend can complete it). */
void ioq__op_register(ioq_loop *loop, ioq__op *op) { token_insert(loop, op); }

/* Undo ioq__op_register + attach for a submission the backend rejected. */
void ioq__op_reject(ioq_loop *loop, ioq__op *op)
{
    token_remove(loop, op);
    op_detach(op);
    ioq__op_free(loop, op);
}

static void finish_close(ioq_loop *loop, ioq__handle *h)
{
    ioq__op *close_op = h->close_op;
    h->close_op = NULL;
    ioq__handle_destroy(loop, h);
    ioq__complete(loop, close_op, 0, 0, 0);
}

void ioq__complete(ioq_loop *loop, ioq__op *op, int64_t result, uint64_t value, uint16_t flags)
{
    ioq__handle *h = op->h;

    cq_push(loop, op->token, result, value, op->code, flags);
    if (flags & IOQ_CQE_MORE)
        return;
    op->at = IOQ__AT_NONE;
    token_remove(loop, op);
    op_detach(op);
    if (op->code != IOQ_OP_TIMEOUT && op->pool)
        op->pool->users--;
    if (h && (op->code == IOQ_OP_CONNECT || op->code == IOQ_OP_LOCAL_CONNECT) && result < 0)
        ioq__handle_destroy(loop, h); /* the socket never became visible */
    else if (h && h->close_op && h->nops == 0)
        finish_close(loop, h);
    ioq__op_free(loop, op);
}

bool ioq__cq_room(ioq_loop *loop, uint32_t n) { return cq_reserve(loop, loop->nops_live + n); }

/* --- cancel and close ---------------------------------------------------------------------- */

/* Ask an op to end early. It still completes exactly once, possibly right here. */
void ioq__op_cancel(ioq_loop *loop, ioq__op *op)
{
    if (op->cancelled)
        return;
    op->cancelled = 1;
    switch (op->at) {
    case IOQ__AT_TIMER:
        ioq__timer_remove(loop, op);
        ioq__complete(loop, op, IOQ_ECANCELED, 0, 0);
        break;
    case IOQ__AT_POOL:
        if (ioq__tp_cancel(loop, op))
            ioq__complete(loop, op, IOQ_ECANCELED, 0, 0);
        break;
    case IOQ__AT_BACKEND:
        loop->backend->cancel(loop, op);
        break;
    default:
        break;
    }
}

/* The cancel's own completion is known before it returns, so it needs no op: a reserved
 * record is enough (and keeps a cancel as cheap as the targets it ends). */
int ioq_cancel(ioq_loop *loop, uint64_t target, uint64_t token)
{
    ioq__op *o, *small[32], **found = small;
    uint32_t n = 0, cap = 32;

    if (!loop)
        return IOQ_EINVAL;
    if (loop->in_free)
        return IOQ_EMISUSE;
    if (!cq_reserve(loop, loop->nops_live + 1))
        return IOQ_ENOMEM;
    /* Collect first: cancelling completes ops, which edits the chain being walked. */
    for (o = loop->tbuckets[token_bucket(loop, target)]; o; o = o->tnext) {
        if (o->token != target || o->code == IOQ_OP_CLOSE || o->cancelled)
            continue;
        if (n == cap) {
            ioq__op **nf = malloc(2 * cap * sizeof *nf);
            if (!nf) {
                if (found != small)
                    free(found);
                return IOQ_ENOMEM;
            }
            memcpy(nf, found, n * sizeof *nf);
            if (found != small)
                free(found);
            found = nf;
            cap *= 2;
        }
        found[n++] = o;
    }
    for (uint32_t i = 0; i < n; i++)
        ioq__op_cancel(loop, found[i]);
    if (found != small)
        free(found);
    /* Ending the targets used their own reserved records; the one reserved above is ours. */
    cq_push(loop, token, n, 0, IOQ_OP_CANCEL, 0);
    return 0;
}

int ioq_close(ioq_loop *loop, ioq_handle hv, uint64_t token)
{
    ioq__handle *h;
    ioq__op *op, *o, *next;

    if (!loop)
        return IOQ_EINVAL;
    if (loop->in_free)
        return IOQ_EMISUSE;
    h = ioq__handle_get(loop, hv, ~0u);
    if (!h || h->kind == IOQ__K_CONNECTING)
        return IOQ_EBADHANDLE;
    if (h->kind == IOQ__K_POOL && h->pool->users > 0)
        return IOQ_EBUSY;
    op = ioq__op_new(loop, IOQ_OP_CLOSE, token);
    if (!op)
        return IOQ_ENOMEM;
    token_insert(loop, op);
    handle_invalidate(h);
    if (h->kind == IOQ__K_POOL) {
        ioq__pool_destroy(loop, h->pool);
        ioq__handle_free(loop, h);
        ioq__complete(loop, op, 0, 0, 0);
        return 0;
    }
    op->at = IOQ__AT_CLOSE;
    for (o = h->ops; o; o = next) {
        next = o->hnext;
        ioq__op_cancel(loop, o);
    }
    h->close_op = op;
    if (h->nops == 0)
        finish_close(loop, h);
    return 0;
}

/* --- cross-thread -------------------------------------------------------------------------- */

void ioq__wake_if_blocked(ioq_loop *loop)
{
    if (atomic_load(&loop->blocked) && !atomic_exchange(&loop->wake_sent, 1))
        loop->backend->wake(loop);
}

int ioq_wake(ioq_loop *loop)
{
    if (!loop)
        return IOQ_EINVAL;
    atomic_store(&loop->wake_requested, 1);
    ioq__wake_if_blocked(loop);
    return 0;
}

/* Posts use the loop's preallocated records while any is free (malloc and a cross-thread
 * free were 40% of a post flood) and fall back to malloc beyond IOQ__POST_POOL in flight. */
int ioq_post(ioq_loop *loop, uint64_t token, int64_t result)
{
    ioq__post *p;
    uint32_t idx;
    if (!loop)
        return IOQ_EINVAL;
    if (ioq__idxq_take(&loop->post_free, &idx)) {
        p = &loop->posts[idx];
        p->node.kind = IOQ__MPSC_POST_POOLED;
    } else if ((p = malloc(sizeof *p)) != NULL) {
        p->node.kind = IOQ__MPSC_POST;
    } else {
        return IOQ_ENOMEM;
    }
    p->token = token;
    p->result = result;
    ioq__mpsc_push(&loop->mpsc, &p->node);
    ioq__wake_if_blocked(loop);
    return 0;
}

static void post_release(ioq_loop *loop, ioq__post *p)
{
    if (p->node.kind == IOQ__MPSC_POST) {
        free(p);
        return;
    }
    /* Give back the indices that could not go before, then this one; a cell a taker has
     * claimed but not yet released waits for the next time. */
    while (loop->post_nret > 0 &&
           ioq__idxq_give(&loop->post_free, loop->post_ret[loop->post_nret - 1]))
        loop->post_nret--;
    if (loop->post_nret > 0 || !ioq__idxq_give(&loop->post_free, (uint32_t)(p - loop->posts)))
        loop->post_ret[loop->post_nret++] = (uint32_t)(p - loop->posts);
}

static bool posts_pending(ioq_loop *loop)
{
    return loop->mpsc_held || !ioq__mpsc_empty(&loop->mpsc);
}

static void drain_mpsc(ioq_loop *loop)
{
    ioq__mpsc_node *n;
    for (;;) {
        if ((n = loop->mpsc_held) != NULL)
            loop->mpsc_held = NULL;
        else if ((n = ioq__mpsc_pop(&loop->mpsc)) == NULL)
            break;
        if (n->kind != IOQ__MPSC_OP) {
            ioq__post *p = (ioq__post *)n;
            if (!cq_reserve(loop, loop->nops_live + 1)) {
                /* Out of memory for the record: this post goes first next time (a posting
                 * thread's order is kept). */
                loop->mpsc_held = n;
                return;
            }
            cq_push(loop, p->token, p->result, 0, IOQ_OP_POST, 0);
            post_release(loop, p);
        } else {
            ioq__tp_finish(loop, (ioq__op *)((char *)n - offsetof(ioq__op, node)));
        }
    }
}

/* --- timers (heap in timer.c) ------------------------------------------------------------- */

static void run_timers(ioq_loop *loop)
{
    uint64_t now;
    if (loop->heap_len == 0)
        return;
    now = ioq__os_now();
    while (loop->heap_len && loop->heap[0].deadline <= now) {
        ioq__op *op = loop->heap[0].op;
        ioq__timer_remove(loop, op);
        ioq__complete(loop, op, 0, 0, 0);
    }
}

/* --- poll ---------------------------------------------------------------------------------- */

static void arm_embedded_timer(ioq_loop *loop)
{
    uint64_t d = loop->heap_len ? loop->heap[0].deadline : UINT64_MAX;
    if (d != loop->armed_deadline && loop->backend->arm_timer) {
        loop->armed_deadline = d;
        loop->backend->arm_timer(loop, d);
    }
}

/* Leaving ioq_poll/ioq_submit. An embedded loop is "blocked" from now on: the host sleeps
 * on ioq_loop_fd(), so producers must signal it. Publish that first, then look again: a
 * post or a thread-pool result that arrived while we were busy (and did not signal) and
 * records left over for the next poll must make the descriptor readable now. */
static void leave_poll(ioq_loop *loop)
{
    /* Whatever wake was in flight has been seen or will be: let the next one through. */
    atomic_store(&loop->wake_sent, 0);
    if (!loop->embedded)
        return;
    arm_embedded_timer(loop);
    atomic_store(&loop->blocked, 1);
    if ((cq_count(loop) > 0 || posts_pending(loop)) &&
        !atomic_exchange(&loop->wake_sent, 1))
        loop->backend->wake(loop);
}

int ioq_submit(ioq_loop *loop)
{
    if (!loop)
        return IOQ_EINVAL;
    if (loop->in_free || loop->in_poll)
        return IOQ_EMISUSE;
    drain_mpsc(loop);
    /* For readiness backends submissions already ran; a completion backend flushes here. */
    loop->in_poll = true;
    atomic_store(&loop->blocked, 0);
    loop->backend->wait(loop, 0);
    drain_mpsc(loop);
    run_timers(loop);
    loop->in_poll = false;
    leave_poll(loop);
    return 0;
}

int ioq_poll(ioq_loop *loop, ioq_cqe *cqes, uint32_t max, int64_t timeout_ns)
{
    uint64_t deadline = 0;
    bool waited = false;
    uint32_t n, count;

    if (!loop || !cqes || max == 0 || timeout_ns < -1)
        return IOQ_EINVAL;
    if (loop->in_free || loop->in_poll)
        return IOQ_EMISUSE;
    loop->in_poll = true;
    if (loop->embedded)
        atomic_store(&loop->blocked, 0); /* set by leave_poll() for the host's sleep */
    if (timeout_ns > 0)
        deadline = ioq__os_now() + (uint64_t)timeout_ns;

    for (;;) {
        int64_t wait_ns;
        uint64_t now = 0;
        bool woke, published = false;

        drain_mpsc(loop);
        run_timers(loop);
        woke = atomic_load_explicit(&loop->wake_requested, memory_order_relaxed) &&
               atomic_exchange(&loop->wake_requested, 0);
        if (cq_count(loop) > 0 || woke) {
            /* Records are ready. Ask the kernel too, but only every other time, so that
             * inline completions cannot starve I/O without doubling the syscalls of a
             * ping-pong. */
            if (!waited && loop->skipped_wait) {
                loop->backend->wait(loop, 0);
                drain_mpsc(loop);
                run_timers(loop);
                loop->skipped_wait = false;
            } else {
                loop->skipped_wait = !waited;
            }
            break;
        }
        if (waited && timeout_ns == 0)
            break;
        if (timeout_ns == 0) {
            wait_ns = 0;
        } else if (timeout_ns < 0) {
            wait_ns = -1;
        } else {
            now = ioq__os_now();
            if (now >= deadline) {
                if (waited)
                    break;
                wait_ns = 0;
            } else {
                wait_ns = (int64_t)(deadline - now);
            }
        }
        if (loop->heap_len && wait_ns != 0) {
            uint64_t d = loop->heap[0].deadline;
            int64_t t;
            if (now == 0)
                now = ioq__os_now();
            t = d > now ? (int64_t)(d - now) : 0;
            if (wait_ns < 0 || t < wait_ns)
                wait_ns = t;
        }
        if (wait_ns != 0) {
            /* Publish that we may sleep, then look once more: a producer either sees the
             * flag (and wakes us) or we see its item. */
            atomic_store(&loop->blocked, 1);
            published = true;
            if (posts_pending(loop) || atomic_load(&loop->wake_requested))
                wait_ns = 0;
        }
        loop->backend->wait(loop, wait_ns);
        if (published) {
            /* Only a loop that published `blocked` can have been sent a wake. */
            atomic_store(&loop->blocked, 0);
            atomic_store(&loop->wake_sent, 0);
        }
        waited = true;
        loop->skipped_wait = false;
    }

    count = cq_count(loop);
    n = count < max ? count : max;
    for (uint32_t i = 0; i < n; i++)
        cqes[i] = loop->cq[(loop->cq_head + i) & loop->cq_mask];
    loop->cq_head += n;
    loop->in_poll = false;
    leave_poll(loop);
    return (int)n;
}

/* --- loop life ------------------------------------------------------------------------------- */

static int backend_from_env(uint32_t *id)
{
    static const struct {
        const char *name;
        uint32_t id;
    } names[] = {{"epoll", IOQ_BACKEND_EPOLL}, {"io_uring", IOQ_BACKEND_URING},
                 {"uring", IOQ_BACKEND_URING}, {"kqueue", IOQ_BACKEND_KQUEUE},
                 {"iocp", IOQ_BACKEND_IOCP},   {"auto", IOQ_BACKEND_AUTO},
                 {"", IOQ_BACKEND_AUTO}};
    const char *env = getenv("IOQ_BACKEND");
    if (!env)
        return 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(env, names[i].name) == 0) {
            *id = names[i].id;
            return 0;
        }
    }
    return IOQ_EINVAL;
}

/* The allocations ioq_loop_new makes before the backend: its failure paths and
 * ioq_loop_free end with this. */
static void free_loop_memory(ioq_loop *loop)
{
    ioq__idxq_fini(&loop->post_free);
    free(loop->posts);
    free(loop->post_ret);
    free(loop->cq);
    free(loop->tbuckets);
    free(loop);
}

int ioq_loop_new(const ioq_loop_options *opts, ioq_loop **out)
{
    ioq_loop_options o;
    ioq_loop *loop;
    int rc = IOQ_ENOTSUP;

    if (!out)
        return IOQ_EINVAL;
    *out = NULL;
    memset(&o, 0, sizeof o);
    if (opts) {
        size_t n = opts->size;
        if (n < 2 * sizeof(uint32_t))
            return IOQ_EINVAL;
        memcpy(&o, opts, n < sizeof o ? n : sizeof o);
        /* A newer caller's extra fields must be zero: we cannot honour what we do not know. */
        for (size_t i = sizeof o; i < n; i++)
            if (((const uint8_t *)opts)[i])
                return IOQ_EINVAL;
    }
    if (o.flags || o.backend > IOQ_BACKEND_IOCP || o.threadpool_size > 1024)
        return IOQ_EINVAL;
    for (size_t i = 0; i < sizeof o.reserved / sizeof o.reserved[0]; i++)
        if (o.reserved[i])
            return IOQ_EINVAL;
    if (o.backend == IOQ_BACKEND_AUTO && backend_from_env(&o.backend) != 0)
        return IOQ_EINVAL;

    loop = calloc(1, sizeof *loop);
    if (!loop)
        return IOQ_ENOMEM;
    loop->tag = (uint16_t)(atomic_fetch_add(&loop_tags, 1) % 0xffff + 1);
    loop->cq = malloc(256 * sizeof *loop->cq);
    loop->tbuckets = calloc(256, sizeof *loop->tbuckets);
    loop->tmask = 255;
    loop->tshift = 64 - 8;
    loop->cq_mask = 255;
    loop->threadpool_size = o.threadpool_size ? o.threadpool_size : 4;
    loop->armed_deadline = UINT64_MAX;
    ioq__mpsc_init(&loop->mpsc);
    loop->posts = malloc(IOQ__POST_POOL * sizeof *loop->posts);
    loop->post_ret = malloc(IOQ__POST_POOL * sizeof *loop->post_ret);
    if (!loop->cq || !loop->tbuckets || !loop->posts || !loop->post_ret ||
        !ioq__idxq_init(&loop->post_free, IOQ__POST_POOL) || ioq__tp_init(loop) != 0) {
        free_loop_memory(loop);
        return IOQ_ENOMEM;
    }
    for (uint32_t i = 0; i < IOQ__POST_POOL; i++)
        ioq__idxq_give(&loop->post_free, i);
    for (size_t i = 0; ioq__os_backends[i]; i++) {
        const ioq__backend *b = ioq__os_backends[i];
        if (o.backend != IOQ_BACKEND_AUTO && b->id != o.backend)
            continue;
        loop->backend = b;
        rc = b->init(loop);
        if (rc == 0)
            break;
        loop->backend = NULL;
        if (o.backend != IOQ_BACKEND_AUTO)
            break;
    }
    if (!loop->backend) {
        ioq__tp_stop(loop);
        free_loop_memory(loop);
        return rc;
    }
    *out = loop;
    return 0;
}

void ioq_loop_free(ioq_loop *loop)
{
    ioq__mpsc_node *n;

    if (!loop || loop->in_free)
        return;
    loop->in_free = true;
    /* Workers first: after this no thread touches caller memory or pushes to the queue. */
    ioq__tp_stop(loop);
    /* The backend makes the kernel let go of every buffer before we close descriptors. */
    loop->backend->fini(loop);
    for (uint32_t i = 0; i < loop->nhandles; i++) {
        ioq__handle *h = ioq__handle_at(loop, i);
        if (h->kind == IOQ__K_POOL)
            ioq__pool_destroy(loop, h->pool);
        else if (h->kind != IOQ__K_FREE && h->fd >= 0)
            ioq__os_close(h->fd);
    }
    if (loop->mpsc_held && loop->mpsc_held->kind == IOQ__MPSC_POST)
        free(loop->mpsc_held);
    while ((n = ioq__mpsc_pop(&loop->mpsc)) != NULL) {
        if (n->kind == IOQ__MPSC_POST)
            free(n);
    }
    for (uint32_t c = 0; c < loop->nochunks; c++) {
        ioq__op *chunk = loop->ochunks[c];
        for (int i = 0; i < IOQ__OP_CHUNK; i++) {
            ioq__op *op = &chunk[i];
            if (op->code == IOQ_OP_NONE)
                continue;
            if (op->iov && op->iov != op->iov_small)
                free(op->iov);
            free(op->path);
            free(op->path2);
            free(op->be);
        }
        free(chunk);
    }
    for (uint32_t c = 0; c < loop->ntmchunks; c++)
        free(loop->tmchunks[c]);
    free(loop->tmchunks);
    for (uint32_t c = 0; c < loop->nchunks; c++)
        free(loop->hchunks[c]);
    free(loop->hchunks);
    free(loop->ochunks);
    free(loop->heap);
    ioq__mutex_destroy(&loop->tp.lock);
    ioq__cond_destroy(&loop->tp.cond);
    free_loop_memory(loop);
}

const char *ioq_loop_backend(const ioq_loop *loop) { return loop ? loop->backend->name : ""; }

uint32_t ioq_loop_caps(const ioq_loop *loop)
{
    return loop ? loop->backend->caps((ioq_loop *)loop) : 0;
}

int64_t ioq_loop_fd(ioq_loop *loop)
{
    int64_t fd;
    if (!loop)
        return IOQ_EINVAL;
    if (!loop->backend->loop_fd)
        return IOQ_ENOTSUP;
    fd = loop->backend->loop_fd(loop);
    if (fd >= 0 && !loop->embedded) {
        loop->embedded = true;
        if (!loop->in_poll)
            leave_poll(loop);
    }
    return fd;
}

uint64_t ioq_now(const ioq_loop *loop) { return loop ? ioq__os_now() : 0; }
