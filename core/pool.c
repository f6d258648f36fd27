/*
 * Provided-buffer pools. The memory is one block allocated at creation; a buffer is taken
 * from the pool only when data arrives for a receive, so idle connections hold none. The
 * held[] map makes a double or foreign release an error instead of a corrupted free list.
 */
#include "loop.h"

#include <stdlib.h>

#define POOL_MAX_COUNT 32768u
#define POOL_MAX_BYTES (1ull << 30)

int ioq_pool_new(ioq_loop *loop, uint32_t count, uint32_t size, ioq_handle *out)
{
    ioq__pool *pool;
    ioq__handle *h;

    if (!loop || !out || count == 0 || count > POOL_MAX_COUNT || size == 0 ||
        size > IOQ_MAX_LEN || (uint64_t)count * size > POOL_MAX_BYTES)
        return IOQ_EINVAL;
    if (loop->in_free)
        return IOQ_EMISUSE;
    pool = calloc(1, sizeof *pool);
    if (!pool)
        return IOQ_ENOMEM;
    pool->count = count;
    pool->size = size;
    pool->mem = malloc((size_t)count * size);
    pool->free_ids = malloc(count * sizeof *pool->free_ids);
    pool->held = calloc(count, 1);
    h = (pool->mem && pool->free_ids && pool->held) ? ioq__handle_new(loop, IOQ__K_POOL, -1)
                                                    : NULL;
    if (!h) {
        free(pool->mem);
        free(pool->free_ids);
        free(pool->held);
        free(pool);
        return IOQ_ENOMEM;
    }
    /* Lowest ids first: they are handed out in order, which keeps tests readable. */
    for (uint32_t i = 0; i < count; i++)
        pool->free_ids[i] = count - 1 - i;
    pool->nfree = count;
    pool->h = h;
    pool->bgid = h->index;
    h->pool = pool;
    if (loop->backend->pool_new) {
        int rc = loop->backend->pool_new(loop, pool);
        if (rc != 0) {
            ioq__handle_free(loop, h);
            free(pool->mem);
            free(pool->free_ids);
            free(pool->held);
            free(pool);
            return rc;
        }
    }
    *out = ioq__handle_value(loop, h);
    return 0;
}

/* A pool is in use while a receive on it is pending, and after that while any of the
 * receive's records waits in the ring: the caller has not seen the buffers it was given
 * yet, nor the final completion that ends the receive for it (contract rules 2 and 3).
 * Records of recv_pool name their pool in `reserved` until ioq_poll copies them out. Pool
 * closes are rare and the ring short, so a scan costs nothing that matters. */
bool ioq__pool_busy(const ioq_loop *loop, const ioq__pool *pool)
{
    uint32_t tag = pool->h->index + 1;
    if (pool->users > 0)
        return true;
    for (uint32_t i = loop->cq_head; i != loop->cq_tail; i++) {
        const ioq_cqe *c = &loop->cq[i & loop->cq_mask];
        if (c->op == IOQ_OP_RECV_POOL && c->reserved == tag)
            return true;
    }
    return false;
}

void ioq__pool_destroy(ioq_loop *loop, ioq__pool *pool)
{
    if (loop->backend->pool_free)
        loop->backend->pool_free(loop, pool);
    free(pool->mem);
    free(pool->free_ids);
    free(pool->held);
    free(pool);
}

static ioq__pool *pool_get(ioq_loop *loop, ioq_handle v)
{
    ioq__handle *h;
    if (!loop)
        return NULL;
    h = ioq__handle_get(loop, v, IOQ__KIND_BIT(IOQ__K_POOL));
    return h ? h->pool : NULL;
}

void *ioq_buf(ioq_loop *loop, ioq_handle pool_h, uint32_t id)
{
    ioq__pool *pool = pool_get(loop, pool_h);
    if (!pool || id >= pool->count)
        return NULL;
    return ioq__pool_buf(pool, id);
}

int ioq_buf_release(ioq_loop *loop, ioq_handle pool_h, uint32_t id)
{
    ioq__pool *pool;
    if (!loop)
        return IOQ_EINVAL;
    pool = pool_get(loop, pool_h);
    if (!pool)
        return IOQ_EBADHANDLE;
    if (id >= pool->count || !pool->held[id])
        return IOQ_EINVAL;
    if (!loop->backend->buf_release) {
        ioq__pool_put(pool, id);
        return 0;
    }
    pool->held[id] = 0;
    loop->backend->buf_release(loop, pool, id);
    return 0;
}
