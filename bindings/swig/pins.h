/*
 * The pin table of the Python and Lua bindings: which values of the language keep alive the
 * memory that the in-flight operations of one loop refer to.
 *
 * ioq owns an operation's memory from the submit call until its final completion has been
 * polled (contract rule 3), but a garbage collector knows nothing of ioq. Each binding
 * therefore files, for every accepted operation that refers to memory of the language, the
 * values that own that memory (a Python capsule of buffer views, a Lua registry reference)
 * under the operation's token, and the completions returned by poll release them.
 *
 * One rule for shared tokens, the C header's: several operations may carry one token, all
 * of them pinning memory. ioq does not say which of two operations of one token and one
 * kind a completion belongs to, so no single record can be released early: a token's
 * values are held, counted, until the final completion (no IOQ_CQE_MORE) of its last
 * pinning operation has been polled, then all released at once. That is never too early
 * and at most as late as the last operation of the token. A completion of an operation
 * that pinned nothing (a timeout sharing the token) leaves the pins alone: records are
 * matched by op. ioq_loop_free() releases what is left, since after it nothing refers to
 * caller memory any more.
 *
 * The table is plain C: the language supplies a release callback that drops one value.
 * This file is inserted verbatim into each generated wrapper (%insert in python.i and
 * lua.i), so everything here is static and the wrappers need no extra source file.
 */
#ifndef IOQ_BINDINGS_PINS_H
#define IOQ_BINDINGS_PINS_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Drops the language value obj (a PyObject *, a Lua reference); ctx is the caller's. */
typedef void (*ioq_pins_release_fn)(void *ctx, uintptr_t obj);

/* One accepted operation: its kind, whether its final completion has come, and up to two
 * values (0 for none). */
typedef struct ioq_pin_rec {
    uint16_t op;
    uint16_t done;
    uintptr_t obj[2];
} ioq_pin_rec;

/* The operations of one token. */
typedef struct ioq_pin_group {
    uint64_t token;
    uint32_t n;    /* records */
    uint32_t left; /* records still waiting for their final completion */
    uint32_t cap;
    ioq_pin_rec *recs; /* &one until a second operation shares the token */
    ioq_pin_rec one;
    struct ioq_pin_group *next; /* in the bucket, or in the free list */
} ioq_pin_group;

typedef struct ioq_pins {
    ioq_pin_group **buckets;
    size_t nbuckets; /* a power of two, or 0 before the first pin */
    size_t ngroups;
    size_t nrecs; /* operations whose values are held: what pinned() reports */
    ioq_pin_group *spare; /* freed groups kept for reuse: a send costs no malloc */
    size_t nspare;
} ioq_pins;

#define IOQ_PINS_SPARE_MAX 256

static void ioq_pins_init(ioq_pins *t)
{
    memset(t, 0, sizeof(*t));
}

static size_t ioq_pins_slot(const ioq_pins *t, uint64_t token)
{
    /* Tokens are often small consecutive integers or pointers: mix before masking. */
    uint64_t h = token * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h >> 32) & (t->nbuckets - 1);
}

static ioq_pin_group *ioq_pins_find(const ioq_pins *t, uint64_t token)
{
    ioq_pin_group *g;
    if (t->nbuckets == 0)
        return NULL;
    for (g = t->buckets[ioq_pins_slot(t, token)]; g != NULL; g = g->next)
        if (g->token == token)
            return g;
    return NULL;
}

static int ioq_pins_grow(ioq_pins *t)
{
    size_t n = t->nbuckets ? t->nbuckets * 2 : 16, i, old = t->nbuckets;
    ioq_pin_group **b = (ioq_pin_group **)calloc(n, sizeof(*b)), **ob = t->buckets;
    if (b == NULL)
        return -1;
    t->buckets = b;
    t->nbuckets = n;
    for (i = 0; i < old; i++) {
        ioq_pin_group *g = ob[i], *next;
        for (; g != NULL; g = next) {
            size_t s = ioq_pins_slot(t, g->token);
            next = g->next;
            g->next = b[s];
            b[s] = g;
        }
    }
    free(ob);
    return 0;
}

/* Take g out of the table; its records stay readable until ioq_pins_recycle(g). Release
 * callbacks run between the two, so that code they run (a Python finalizer) finds a
 * consistent table. */
static void ioq_pins_detach(ioq_pins *t, ioq_pin_group *g)
{
    ioq_pin_group **p = &t->buckets[ioq_pins_slot(t, g->token)];
    while (*p != g)
        p = &(*p)->next;
    *p = g->next;
    t->ngroups--;
    t->nrecs -= g->n;
}

static void ioq_pins_recycle(ioq_pins *t, ioq_pin_group *g)
{
    if (g->recs != &g->one)
        free(g->recs);
    if (t->nspare < IOQ_PINS_SPARE_MAX) {
        g->next = t->spare;
        t->spare = g;
        t->nspare++;
    } else {
        free(g);
    }
}

/* File an accepted (or about to be submitted) operation op of token with the values a and
 * b (0: none); the table now owns one reference of each. Returns 0, or -1 when out of
 * memory (nothing was filed). */
static int ioq_pins_add(ioq_pins *t, uint64_t token, uint16_t op, uintptr_t a, uintptr_t b)
{
    ioq_pin_group *g = ioq_pins_find(t, token);
    ioq_pin_rec *r;
    if (g == NULL) {
        size_t s;
        if (t->ngroups >= t->nbuckets && ioq_pins_grow(t) < 0)
            return -1;
        if (t->spare != NULL) {
            g = t->spare;
            t->spare = g->next;
            t->nspare--;
        } else if ((g = (ioq_pin_group *)malloc(sizeof(*g))) == NULL) {
            return -1;
        }
        g->token = token;
        g->n = g->left = 0;
        g->cap = 1;
        g->recs = &g->one;
        s = ioq_pins_slot(t, token);
        g->next = t->buckets[s];
        t->buckets[s] = g;
        t->ngroups++;
    } else if (g->n == g->cap) {
        uint32_t cap = g->cap * 2;
        ioq_pin_rec *recs;
        if (g->recs == &g->one) {
            recs = (ioq_pin_rec *)malloc(cap * sizeof(*recs));
            if (recs != NULL)
                recs[0] = g->one;
        } else {
            recs = (ioq_pin_rec *)realloc(g->recs, cap * sizeof(*recs));
        }
        if (recs == NULL)
            return -1;
        g->recs = recs;
        g->cap = cap;
    }
    r = &g->recs[g->n++];
    r->op = op;
    r->done = 0;
    r->obj[0] = a;
    r->obj[1] = b;
    g->left++;
    t->nrecs++;
    return 0;
}

static void ioq_pins_release_rec(const ioq_pin_rec *r, ioq_pins_release_fn release, void *ctx)
{
    if (r->obj[0])
        release(ctx, r->obj[0]);
    if (r->obj[1])
        release(ctx, r->obj[1]);
}

/* Take back the newest record of token (ioq refused the operation filed last), releasing
 * its values. */
static void ioq_pins_undo(ioq_pins *t, uint64_t token, ioq_pins_release_fn release, void *ctx)
{
    ioq_pin_group *g = ioq_pins_find(t, token);
    ioq_pin_rec r;
    uint32_t i;
    if (g == NULL || g->n == 0)
        return;
    r = g->recs[--g->n];
    if (!r.done)
        g->left--;
    t->nrecs--;
    if (g->left > 0) {
        ioq_pins_release_rec(&r, release, ctx);
        return;
    }
    /* The operations left, if any, were all over already: their values go now. */
    ioq_pins_detach(t, g);
    for (i = 0; i < g->n; i++)
        ioq_pins_release_rec(&g->recs[i], release, ctx);
    ioq_pins_release_rec(&r, release, ctx);
    ioq_pins_recycle(t, g);
}

enum { IOQ_PINS_NONE = 0, IOQ_PINS_HELD = 1, IOQ_PINS_ENDED = 2 };

/* A final completion of op with token has been polled. Marks the oldest record of that op
 * still waiting as done and copies its values to out. Returns
 *  - IOQ_PINS_NONE: no operation of that kind pinned anything under token;
 *  - IOQ_PINS_HELD: other operations of the token are in flight; the values stay held and
 *    out only borrows them;
 *  - IOQ_PINS_ENDED: that was the token's last one: every other value has been released
 *    and the caller owns the references in out (to read results from, then drop). */
static int ioq_pins_done(ioq_pins *t, uint64_t token, uint16_t op, uintptr_t out[2],
                         ioq_pins_release_fn release, void *ctx)
{
    ioq_pin_group *g = ioq_pins_find(t, token);
    uint32_t i, k;
    if (g == NULL)
        return IOQ_PINS_NONE;
    for (k = 0; k < g->n; k++)
        if (!g->recs[k].done && g->recs[k].op == op)
            break;
    if (k == g->n)
        return IOQ_PINS_NONE;
    g->recs[k].done = 1;
    out[0] = g->recs[k].obj[0];
    out[1] = g->recs[k].obj[1];
    if (--g->left > 0)
        return IOQ_PINS_HELD;
    ioq_pins_detach(t, g);
    for (i = 0; i < g->n; i++)
        if (i != k)
            ioq_pins_release_rec(&g->recs[i], release, ctx);
    ioq_pins_recycle(t, g);
    return IOQ_PINS_ENDED;
}

/* Release every value (the loop has been freed) and the table's memory; the table is empty
 * and usable again after. */
static void ioq_pins_clear(ioq_pins *t, ioq_pins_release_fn release, void *ctx)
{
    size_t i;
    uint32_t k;
    ioq_pin_group *g, *next;
    /* Unhook everything first: a release callback may run code that pins again. */
    ioq_pin_group **b = t->buckets;
    size_t n = t->nbuckets;
    ioq_pin_group *spare = t->spare;
    memset(t, 0, sizeof(*t));
    for (i = 0; i < n; i++) {
        for (g = b[i]; g != NULL; g = next) {
            next = g->next;
            for (k = 0; k < g->n; k++)
                ioq_pins_release_rec(&g->recs[k], release, ctx);
            if (g->recs != &g->one)
                free(g->recs);
            free(g);
        }
    }
    free(b);
    for (g = spare; g != NULL; g = next) {
        next = g->next;
        free(g);
    }
}

/* Operations whose values are held (a finished one too, while its token has others). */
static size_t ioq_pins_held(const ioq_pins *t)
{
    return t->nrecs;
}

#endif
