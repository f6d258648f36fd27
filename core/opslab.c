/*
 * Ops: two slabs of records (full ops, and short ones for timeouts), the token index that
 * ioq_cancel searches, and an op's life: new, attach, register, complete, free. Each op
 * reserves its final completion record when it is taken, so completing never fails: a
 * full op in the completion ring, a timer in itself (ioq__timer_done).
 */
#include "loop.h"

#include <stdlib.h>
#include <string.h>

/* Fibonacci hashing of all but the low 6 bits, which pick the bucket within a group of 64:
 * the top bits of the product spread tokens evenly over the groups, and the 64 tokens of a
 * counter's run share a group, so that ops submitted and cancelled in token order touch a
 * few cache lines of the index rather than one each (at a million timers, the misses on
 * the index were most of the time of a cancel). Tokens that are pointers, whose low bits
 * barely vary, spread over the groups like any other. */
static uint32_t token_hash(uint64_t token, unsigned shift)
{
    uint32_t group = (uint32_t)((token >> 6) * 0x9E3779B97F4A7C15ull >> shift);
    return group ^ (uint32_t)(token & 63);
}

static void token_link(ioq__op **slot, ioq__op *op)
{
    op->tnext = *slot;
    op->tpprev = slot;
    if (*slot)
        (*slot)->tpprev = &op->tnext;
    *slot = op;
}

/* Timer ops in timer chunk c: 256, doubling up to IOQ__TIMER_CHUNK (a loop with a few
 * timers keeps a small chunk; a million take 250 chunks, not 4,000). */
static int timer_chunk_len(uint32_t c)
{
    return c >= 4 ? IOQ__TIMER_CHUNK : IOQ__OP_CHUNK << c;
}

static void token_rehash_chunk(ioq__op **nb, unsigned shift, uint32_t mask, unsigned char *chunk,
                               size_t size, int count)
{
    for (int i = 0; i < count; i++) {
        ioq__op *op = (ioq__op *)(void *)(chunk + (size_t)i * size);
        if (op->code != IOQ_OP_NONE && op->tpprev)
            token_link(&nb[token_hash(op->token, shift) & mask], op);
    }
}

/* memset through a pointer the compiler cannot see through: it turns malloc then memset
 * into calloc, whose fresh pages come unwritten, and the rehash's first read of each page
 * maps the zero page, then its write faults again (twice the faults, at 200k timers a
 * quarter of all of them). */
static void *(*const volatile zero_fill)(void *, int, size_t) = memset;

/* Doubling rehashes by walking the slabs in address order rather than the chains: with a
 * million ops pending, chasing the chains is a cache miss per op. */
static void token_index_grow(ioq_loop *loop)
{
    /* Four times the buckets: each growth walks every op, and quadrupling walks them about
     * 1.3 times in all where doubling walked them twice; the load stays between half an op
     * and two per bucket, which also leaves fewer inserts sharing a chain (and touching
     * another op's link). */
    uint32_t nsize = (loop->tmask + 1) * 4;
    if (loop->tmask >= (1u << 29))
        return; /* longer chains, still correct */
    /* malloc and memset, not calloc: calloc's pages are the shared zero page until written,
     * and the rehash below reads each bucket before writing it, which took two faults and a
     * TLB flush per page instead of one fault (see zero_fill). */
    ioq__op **nb = malloc(nsize * sizeof *nb);
    if (!nb)
        return; /* longer chains, still correct */
    zero_fill(nb, 0, nsize * sizeof *nb);
    for (uint32_t c = 0; c < loop->nochunks; c++)
        token_rehash_chunk(nb, loop->tshift - 2, nsize - 1, (unsigned char *)loop->ochunks[c],
                           sizeof(ioq__op), IOQ__OP_CHUNK);
    for (uint32_t c = 0; c < loop->ntmchunks; c++)
        token_rehash_chunk(nb, loop->tshift - 2, nsize - 1, loop->tmchunks[c],
                           IOQ__TIMER_OP_SIZE, timer_chunk_len(c));
    free(loop->tbuckets);
    loop->tbuckets = nb;
    loop->tmask = nsize - 1;
    loop->tshift -= 2;
}

static uint32_t token_bucket(const ioq_loop *loop, uint64_t token)
{
    return token_hash(token, loop->tshift) & loop->tmask;
}

static void token_insert(ioq_loop *loop, ioq__op *op)
{
    /* Two ops per bucket before growing: the table (8 bytes a bucket) and its copies
     * while growing were a quarter of the pages a million timers touch; a cancel still
     * finds its op in a chain of about two, and removal is O(1) anyway. */
    if (loop->tcount / 2 > loop->tmask)
        token_index_grow(loop);
    token_link(&loop->tbuckets[token_bucket(loop, op->token)], op);
    loop->tcount++;
}

/* O(1) whatever the chain holds: many ops may share one token (ioq_cancel ends them all),
 * and a scan of the chain per completion would make completing them quadratic. */
static void token_remove(ioq_loop *loop, ioq__op *op)
{
    if (!op->tpprev)
        return;
    *op->tpprev = op->tnext;
    if (op->tnext)
        op->tnext->tpprev = op->tpprev;
    op->tnext = NULL;
    op->tpprev = NULL;
    loop->tcount--;
}

/* The array of k chunk pointers (entries of `entry` bytes) with room for one more, or NULL
 * when it cannot grow (the old array stays). It doubles when full, a power of two of
 * entries: grown by one entry per chunk, each realloc found the new chunk right behind the
 * array and copied it to fresh pages, which at a million timers was a fifth of all page
 * faults. */
static void *chunks_room(void *chunks, uint32_t k, size_t entry)
{
    if (k & (k - 1))
        return chunks;
    return realloc(chunks, (k ? 2 * (size_t)k : 1) * entry);
}

/* Add a chunk of free records to one of the two slabs (IOQ__OP_CHUNK full ops, or
 * timer_chunk_len timers). */
static bool slab_grow(ioq_loop *loop, bool timer)
{
    size_t size = timer ? IOQ__TIMER_OP_SIZE : sizeof(ioq__op);
    int count = timer ? timer_chunk_len(loop->ntmchunks) : IOQ__OP_CHUNK;
    ioq__op **free_list = timer ? &loop->tmfree : &loop->ofree;
    unsigned char *chunk;

    if (timer) {
        unsigned char **nc = chunks_room(loop->tmchunks, loop->ntmchunks, sizeof *nc);
        if (!nc)
            return false;
        loop->tmchunks = nc;
    } else {
        ioq__op **nc = chunks_room(loop->ochunks, loop->nochunks, sizeof *nc);
        if (!nc)
            return false;
        loop->ochunks = nc;
    }
    if (!(chunk = malloc((size_t)count * size)))
        return false;
    if (timer)
        loop->tmchunks[loop->ntmchunks++] = chunk;
    else
        loop->ochunks[loop->nochunks++] = (ioq__op *)(void *)chunk;
    for (int i = count - 1; i >= 0; i--) {
        ioq__op *op = (ioq__op *)(void *)(chunk + (size_t)i * size);
        op->code = IOQ_OP_NONE;
        op->tnext = *free_list;
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

    /* A timer's record is kept in the op itself (ioq__timer_done): no room in the ring. */
    if (!timer && !ioq__cq_reserve(loop, loop->nops_live + 1))
        return NULL;
    if (!*free_list && !slab_grow(loop, timer))
        return NULL;
    op = *free_list;
    *free_list = op->tnext;
    memset(op, 0, timer ? IOQ__TIMER_OP_SIZE : sizeof *op);
    op->code = code;
    op->token = token;
    if (timer)
        loop->ntimers++;
    else
        loop->nops_live++;
    return op;
}


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


/* What a full op owns besides its record. */
static void op_release_memory(ioq__op *op)
{
    /* Tested first: most ops own nothing, and free(NULL) is still a call per field. */
    if (op->iov && op->iov != op->iov_small)
        free(op->iov);
    if (op->path)
        free(op->path);
    if (op->path2)
        free(op->path2);
    if (op->be)
        free(op->be);
}

void ioq__op_free(ioq_loop *loop, ioq__op *op)
{
    if (op->code == IOQ_OP_TIMEOUT) {
        loop->ntimers--;
        op->code = IOQ_OP_NONE;
        op->tnext = loop->tmfree;
        loop->tmfree = op;
        return;
    }
    loop->nops_live--;
    op_release_memory(op);
    op->code = IOQ_OP_NONE;
    op->tnext = loop->ofree;
    loop->ofree = op;
}

void ioq__op_register(ioq_loop *loop, ioq__op *op) { token_insert(loop, op); }

void ioq__op_unregister(ioq_loop *loop, ioq__op *op) { token_remove(loop, op); }

void ioq__op_reject(ioq_loop *loop, ioq__op *op)
{
    token_remove(loop, op);
    if (op->code != IOQ_OP_TIMEOUT) /* a timer has no handle fields */
        op_detach(op);
    ioq__op_free(loop, op);
}

/* A receive's records name their pool until ioq_poll hands them out (and zeroes the
 * field): the pool is busy till then (ioq__pool_busy). */
static uint32_t record_tag(const ioq__op *op)
{
    return op->code == IOQ_OP_RECV_POOL ? op->pool->h->index + 1 : 0;
}

void ioq__complete_more(ioq_loop *loop, ioq__op *op, int64_t result, uint64_t value,
                        uint16_t flags)
{
    ioq__cq_push_tagged(loop, op->token, result, value, op->code, flags, record_tag(op));
}

void ioq__complete(ioq_loop *loop, ioq__op *op, int64_t result, uint64_t value, uint16_t flags)
{
    ioq__handle *h;

    if (op->code == IOQ_OP_TIMEOUT) { /* result: 0, or IOQ_ECANCELED when op->cancelled */
        ioq__timer_done(loop, op, NULL);
        return;
    }
    if (flags & IOQ_CQE_MORE) {
        ioq__complete_more(loop, op, result, value, flags);
        return;
    }
    ioq__cq_push_tagged(loop, op->token, result, value, op->code, flags, record_tag(op));
    op->at = IOQ__AT_NONE;
    token_remove(loop, op);
    h = op->h;
    op_detach(op);
    if (op->pool)
        op->pool->users--;
    if (h && (op->code == IOQ_OP_CONNECT || op->code == IOQ_OP_LOCAL_CONNECT) && result < 0)
        ioq__handle_destroy(loop, h); /* the socket never became visible */
    else if (h && h->close_op && h->nops == 0)
        ioq__close_finish(loop, h);
    ioq__op_free(loop, op);
}

bool ioq__cq_room(ioq_loop *loop, uint32_t n)
{
    return !ioq__fault_alloc() && ioq__cq_reserve(loop, loop->nops_live + n);
}

bool ioq__cq_hold(ioq_loop *loop, uint32_t n)
{
    if ((uint64_t)loop->cq_held + n > UINT32_MAX / 2 || !ioq__cq_room(loop, n))
        return false;
    loop->cq_held += n;
    return true;
}

void ioq__cq_unhold(ioq_loop *loop, uint32_t n) { loop->cq_held -= n; }

ioq__op *ioq__token_chain(const ioq_loop *loop, uint64_t token)
{
    return loop->tbuckets[token_bucket(loop, token)];
}

ioq__op *ioq__op_iter_next(ioq_loop *loop, ioq__op_iter *it)
{
    for (; it->chunk < loop->nochunks; it->chunk++, it->slot = 0) {
        while (it->slot < IOQ__OP_CHUNK) {
            ioq__op *op = &loop->ochunks[it->chunk][it->slot++];
            if (op->code != IOQ_OP_NONE)
                return op;
        }
    }
    return NULL;
}

void ioq__ops_fini(ioq_loop *loop)
{
    ioq__op_iter it = {0, 0};
    for (ioq__op *op; (op = ioq__op_iter_next(loop, &it)) != NULL;)
        op_release_memory(op);
    for (uint32_t c = 0; c < loop->nochunks; c++)
        free(loop->ochunks[c]);
    free(loop->ochunks);
    for (uint32_t c = 0; c < loop->ntmchunks; c++)
        free(loop->tmchunks[c]);
    free(loop->tmchunks);
}
