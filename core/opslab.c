/*
 * Ops: a slab of full ops and an array of short ones for timeouts, the token index that
 * ioq_cancel searches, and an op's life: new, attach, register, complete, free. Each op
 * reserves its final completion record when it is taken, so completing never fails: a
 * full op in the completion ring, a timer in itself (ioq__timer_done).
 */
#include "loop.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(offsetof(ioq__op, seq) + sizeof(uint64_t) <= IOQ__TIMER_OP_SIZE,
               "a timer op is its head and the timer body");

/* The token index: buckets of 32-bit op references, each the first op of a chain linked
 * through tnext/tprev (references too: half the bytes of pointers in the op and in the
 * table, and at a million timers the pages first touched were a third of the time).
 *
 * Fibonacci hashing of all but the low 6 bits, which pick the bucket within a group of 64:
 * the top bits of the product spread tokens evenly over the groups, and the 64 tokens of a
 * counter's run share a group, so that ops submitted and cancelled in token order touch a
 * few cache lines of the index rather than one each. Tokens that are pointers, whose low
 * bits barely vary, spread over the groups like any other. */
static uint32_t token_hash(uint64_t token, unsigned shift)
{
    uint32_t group = (uint32_t)((token >> 6) * 0x9E3779B97F4A7C15ull >> shift);
    return group ^ (uint32_t)(token & 63);
}

static uint32_t token_bucket(const ioq_loop *loop, uint64_t token)
{
    return token_hash(token, loop->tshift) & loop->tmask;
}

static void token_link(ioq_loop *loop, uint32_t *bucket, ioq__op *op, uint32_t ref)
{
    op->tnext = *bucket;
    op->tprev = IOQ__TREF_FIRST;
    if (*bucket)
        ioq__op_at(loop, *bucket)->tprev = ref;
    *bucket = ref;
}

/* memset through a pointer the compiler cannot see through: it turns malloc then memset
 * into calloc, whose fresh pages come unwritten, and the rehash's first read of each page
 * maps the zero page, then its write faults again (twice the faults). */
static void *(*const volatile zero_fill)(void *, int, size_t) = memset;

/* Quadruples the buckets, walking the ops in address order rather than the chains: with a
 * million ops pending, chasing the chains is a cache miss per op. Each growth walks every
 * op; quadrupling walks them about 1.3 times in all where doubling walked them twice. */
static void token_index_grow(ioq_loop *loop)
{
    uint32_t nsize = (loop->tmask + 1) * 4, shift = loop->tshift - 2;
    uint32_t *nb;
    if (loop->tmask >= (1u << 29))
        return; /* longer chains, still correct */
    /* malloc and memset, not calloc: see zero_fill. */
    if (!(nb = malloc(nsize * sizeof *nb)))
        return; /* longer chains, still correct */
    zero_fill(nb, 0, nsize * sizeof *nb);
    for (uint32_t c = 0; c < loop->nochunks; c++) {
        for (uint32_t i = 0; i < IOQ__OP_CHUNK; i++) {
            ioq__op *op = &loop->ochunks[c][i];
            if (op->code != IOQ_OP_NONE && op->tprev)
                token_link(loop, &nb[token_hash(op->token, shift) & (nsize - 1)], op, op->ref);
        }
    }
    for (uint32_t i = 1; i < loop->tmused; i++) {
        ioq__op *op = ioq__timer_op(loop, i); /* a chunk's first is never a timer */
        if (op->code != IOQ_OP_NONE && op->tprev)
            token_link(loop, &nb[token_hash(op->token, shift) & (nsize - 1)], op,
                       IOQ__TREF_TIMER | i);
    }
    free(loop->tbuckets);
    loop->tbuckets = nb;
    loop->tmask = nsize - 1;
    loop->tshift = shift;
}

bool ioq__token_index_init(ioq_loop *loop)
{
    loop->tbuckets = calloc(256, sizeof *loop->tbuckets);
    loop->tmask = 255;
    loop->tshift = 64 - 8;
    return loop->tbuckets != NULL;
}

static void token_insert(ioq_loop *loop, ioq__op *op)
{
    /* Two ops per bucket before growing: the table and its copies while growing were a
     * quarter of the pages a million timers touch; a cancel still finds its op in a chain
     * of about two, and removal is O(1) anyway. */
    if (loop->tcount / 2 > loop->tmask)
        token_index_grow(loop);
    token_link(loop, &loop->tbuckets[token_bucket(loop, op->token)], op, ioq__op_ref(loop, op));
    loop->tcount++;
}

/* O(1) whatever the chain holds: many ops may share one token (ioq_cancel ends them all),
 * and a scan of the chain per completion would make completing them quadratic. */
static void token_remove(ioq_loop *loop, ioq__op *op)
{
    if (!op->tprev)
        return;
    if (op->tprev == IOQ__TREF_FIRST)
        loop->tbuckets[token_bucket(loop, op->token)] = op->tnext;
    else
        ioq__op_at(loop, op->tprev)->tnext = op->tnext;
    if (op->tnext)
        ioq__op_at(loop, op->tnext)->tprev = op->tprev;
    op->tnext = 0;
    op->tprev = 0;
    loop->tcount--;
}

ioq__op *ioq__token_chain(const ioq_loop *loop, uint64_t token)
{
    uint32_t ref = loop->tbuckets[token_bucket(loop, token)];
    return ref ? ioq__op_at(loop, ref) : NULL;
}

/* A new full-op chunk of IOQ__OP_CHUNK free records. The array of chunk pointers doubles
 * when full (a power of two of entries): grown by one entry per chunk, each realloc found
 * the new chunk right behind the array and copied it to fresh pages. */
static bool ochunk_grow(ioq_loop *loop)
{
    uint32_t k = loop->nochunks;
    ioq__op *chunk;
    if (k >= IOQ__OCHUNKS_MAX)
        return false;
    if (!(k & (k - 1))) {
        ioq__op **nc = realloc(loop->ochunks, (k ? 2 * (size_t)k : 1) * sizeof *nc);
        if (!nc)
            return false;
        loop->ochunks = nc;
    }
    if (!(chunk = malloc(IOQ__OP_CHUNK * sizeof *chunk)))
        return false;
    loop->ochunks[loop->nochunks++] = chunk;
    for (uint32_t i = IOQ__OP_CHUNK; i-- > 0;) {
        chunk[i].code = IOQ_OP_NONE;
        chunk[i].ref = (k + 1) << 8 | i;
        chunk[i].tnext = loop->ofree;
        loop->ofree = chunk[i].ref;
    }
    return true;
}

/* A new chunk of timer ops, aligned to its size (see IOQ__TCHUNK_SHIFT): malloc'ed twice
 * as large, of which the pages outside the aligned part are never touched. */
static bool timer_chunk_grow(ioq_loop *loop)
{
    uint32_t k = loop->ntmc;
    unsigned char *raw, *chunk;
    ioq__op *first;
    if (k >= (IOQ__TIMERS_MAX >> IOQ__TCHUNK_SHIFT))
        return false;
    if (!(k & (k - 1))) {
        size_t n = k ? 2 * (size_t)k : 1;
        unsigned char **nc = realloc(loop->tmc, n * sizeof *nc);
        void **nr;
        if (!nc)
            return false;
        loop->tmc = nc;
        if (!(nr = realloc(loop->tmraw, n * sizeof *nr)))
            return false;
        loop->tmraw = nr;
    }
    if (!(raw = malloc(2 * IOQ__TCHUNK_BYTES)))
        return false;
    chunk = raw + ((IOQ__TCHUNK_BYTES - ((uintptr_t)raw & (IOQ__TCHUNK_BYTES - 1))) &
                   (IOQ__TCHUNK_BYTES - 1));
    first = (ioq__op *)(void *)chunk;
    memset(first, 0, IOQ__TIMER_OP_SIZE); /* chunk 0: the dead op, seq 0 */
    first->token = k;
    loop->tmc[k] = chunk;
    loop->tmraw[k] = raw;
    loop->ntmc++;
    return true;
}

/* A fresh op for a submission, with a completion record reserved for its final result.
 * Timeouts come from the array of short records (see struct ioq__op). */
ioq__op *ioq__op_new(ioq_loop *loop, uint16_t code, uint64_t token)
{
    ioq__op *op;

    if (code == IOQ_OP_TIMEOUT) {
        /* A timer's record is kept in the op itself (ioq__timer_done): no room in the
         * ring. */
        uint32_t i = loop->tmfree;
        if (i) {
            op = ioq__timer_op(loop, i);
            loop->tmfree = op->tnext;
        } else {
            if (!(loop->tmused & (IOQ__TCHUNK_LEN - 1))) {
                /* Index 0 of a chunk names it. */
                if ((loop->tmused >> IOQ__TCHUNK_SHIFT) == loop->ntmc && !timer_chunk_grow(loop))
                    return NULL;
                loop->tmused++;
            }
            op = ioq__timer_op(loop, loop->tmused++);
        }
        /* Field by field: the 32 bytes in a few stores, where memset was a call. */
        op->token = token;
        op->code = code;
        op->at = IOQ__AT_NONE;
        op->cancelled = 0;
        op->heap_idx = 0;
        op->tnext = 0;
        op->tprev = 0;
        op->deadline = 0;
        loop->ntimers++;
        return op;
    }
    if (!ioq__cq_reserve(loop, loop->nops_live + 1))
        return NULL;
    if (!loop->ofree && !ochunk_grow(loop))
        return NULL;
    op = ioq__op_at(loop, loop->ofree);
    loop->ofree = op->tnext;
    {
        uint32_t ref = op->ref;
        memset(op, 0, sizeof *op);
        op->ref = ref;
    }
    op->code = code;
    op->token = token;
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
        loop->tmfree = ioq__timer_index(loop, op);
        return;
    }
    loop->nops_live--;
    op_release_memory(op);
    op->code = IOQ_OP_NONE;
    op->tnext = loop->ofree;
    loop->ofree = op->ref;
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
    for (uint32_t c = 0; c < loop->ntmc; c++)
        free(loop->tmraw[c]);
    free(loop->tmc);
    free(loop->tmraw);
}
