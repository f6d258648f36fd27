/*
 * The handle table: slots in chunks that never move, so a handle pointer stays valid for
 * the loop's life; a value carries the loop's tag, the slot's generation and its index, so
 * a stale, foreign or made-up value finds nothing.
 */
#include "loop.h"

#include <stdlib.h>

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
    h->obj = NULL;
    h->next_free = NULL;
    h->be = NULL;
    return h;
}

void ioq__handle_invalidate(ioq__handle *h)
{
    h->gen = (h->gen + 1) & IOQ__GEN_MASK;
    if (h->gen == 0)
        h->gen = 1;
    h->rstate |= IOQ__R_CLOSING;
}

void ioq__handle_free(ioq_loop *loop, ioq__handle *h)
{
    if (!(h->rstate & IOQ__R_CLOSING))
        ioq__handle_invalidate(h);
    h->kind = IOQ__K_FREE;
    h->fd = -1;
    h->next_free = loop->hfree;
    loop->hfree = h;
}

void ioq__handle_destroy(ioq_loop *loop, ioq__handle *h)
{
    if (h->kind == IOQ__K_NOTIFIER)
        ioq__notifier_free(loop, h);
    if (h->fd >= 0 || h->kind == IOQ__K_CONNECTING) {
        if (loop->backend->handle_close)
            loop->backend->handle_close(loop, h);
        /* A watched descriptor belongs to the caller: unregistered, never closed. */
        if (h->fd >= 0 && h->kind != IOQ__K_WATCH)
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

int ioq__handle_take(ioq_loop *loop, uint8_t kind, uint8_t family, int64_t fd,
                     ioq__handle **out)
{
    int rc = ioq__handle_open(loop, kind, family, fd, out);
    if (rc != 0)
        ioq__os_close(fd);
    return rc;
}

int ioq__handle_attach(ioq_loop *loop, ioq__handle *h, int64_t fd)
{
    int rc;
    h->fd = fd;
    if (loop->backend->handle_open && (rc = loop->backend->handle_open(loop, h)) != 0) {
        h->fd = -1;
        return rc;
    }
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

ioq__handle *ioq__handle_slot(const ioq_loop *loop, uint32_t index)
{
    return index < loop->nhandles ? ioq__handle_at(loop, index) : NULL;
}

void ioq__handles_fini(ioq_loop *loop)
{
    for (uint32_t i = 0; i < loop->nhandles; i++) {
        ioq__handle *h = ioq__handle_at(loop, i);
        if (h->kind == IOQ__K_POOL)
            ioq__pool_destroy(loop, h->pool);
        else if (h->kind != IOQ__K_FREE && h->kind != IOQ__K_WATCH && h->fd >= 0)
            ioq__os_close(h->fd);
    }
    for (uint32_t c = 0; c < loop->nchunks; c++)
        free(loop->hchunks[c]);
    free(loop->hchunks);
}
