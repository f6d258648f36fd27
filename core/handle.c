/*
 * The handle table: slots in chunks that never move, so a handle pointer stays valid for
 * the loop's life; a value carries the loop's tag, the slot's generation and its index, so
 * a stale, foreign or made-up value finds nothing.
 *
 * A generation only grows: a slot whose generation would pass IOQ__GEN_MASK is retired
 * (never handed out again) instead of wrapping, so no value of a closed handle becomes
 * valid again however often its slot is reused. A slot starts at the loop's gen_base (in
 * the lower half), so it serves at least 2^23 handles before it is retired, and a busy
 * server loses one slot (a hundred bytes) per 8 million closes or more.
 */
#include "loop.h"

#include <stdlib.h>

/* --- descriptor index --------------------------------------------------------------------
 * Which handle owns a descriptor, so that ioq_adopt can refuse one the loop already owns
 * (two handles on one descriptor: closing one would break the other) on every backend, in
 * constant time. Open addressing with linear probing. Backends may reset h->fd on their
 * failure paths without telling the index, so an entry counts only while its handle is
 * live and still has that descriptor. An entry that cannot be added for want of memory
 * only weakens that check. */

#define IOQ__FD_EMPTY (-1)
#define IOQ__FD_DELETED (-2)

static uint32_t fd_hash(int64_t fd, uint32_t mask)
{
    return (uint32_t)((uint64_t)fd * 0x9E3779B97F4A7C15ull >> 32) & mask;
}

/* Rehash into a table at most a quarter full: deleted entries go, and the size follows
 * the live ones (it shrinks too). */
static bool fd_grow(ioq_loop *loop)
{
    ioq__fdent *nt, *old = loop->fdtab;
    uint32_t n = 64, live = 0, used = 0;
    for (uint32_t i = 0; old && i <= loop->fdmask; i++)
        live += old[i].fd >= 0;
    while ((live + 1) * 4 > n)
        n *= 2;
    if (!(nt = malloc(n * sizeof *nt)))
        return false;
    for (uint32_t i = 0; i < n; i++)
        nt[i].fd = IOQ__FD_EMPTY;
    for (uint32_t i = 0; old && i <= loop->fdmask; i++) {
        uint32_t j;
        if (old[i].fd < 0)
            continue;
        for (j = fd_hash(old[i].fd, n - 1); nt[j].fd != IOQ__FD_EMPTY; j = (j + 1) & (n - 1))
            ;
        nt[j] = old[i];
        used++;
    }
    free(old);
    loop->fdtab = nt;
    loop->fdmask = n - 1;
    loop->fdused = used;
    return true;
}

static ioq__fdent *fd_slot(const ioq_loop *loop, int64_t fd)
{
    if (!loop->fdtab)
        return NULL;
    for (uint32_t i = fd_hash(fd, loop->fdmask);; i = (i + 1) & loop->fdmask) {
        if (loop->fdtab[i].fd == fd)
            return &loop->fdtab[i];
        if (loop->fdtab[i].fd == IOQ__FD_EMPTY)
            return NULL;
    }
}

static void fd_add(ioq_loop *loop, const ioq__handle *h)
{
    ioq__fdent *e = fd_slot(loop, h->fd);
    uint32_t i;
    if (e) {
        e->index = h->index; /* a stale entry of a descriptor number now reused */
        return;
    }
    if ((loop->fdused + 1) * 2 > (loop->fdtab ? loop->fdmask + 1 : 0) && !fd_grow(loop))
        return;
    for (i = fd_hash(h->fd, loop->fdmask); loop->fdtab[i].fd >= 0; i = (i + 1) & loop->fdmask)
        ;
    if (loop->fdtab[i].fd == IOQ__FD_EMPTY)
        loop->fdused++;
    loop->fdtab[i].fd = h->fd;
    loop->fdtab[i].index = h->index;
}

static void fd_remove(ioq_loop *loop, const ioq__handle *h)
{
    ioq__fdent *e = h->fd >= 0 ? fd_slot(loop, h->fd) : NULL;
    if (e && e->index == h->index)
        e->fd = IOQ__FD_DELETED;
}

ioq__handle *ioq__handle_by_fd(ioq_loop *loop, int64_t fd)
{
    ioq__fdent *e = fd_slot(loop, fd);
    ioq__handle *h;
    if (!e)
        return NULL;
    h = ioq__handle_at(loop, e->index);
    if (h->kind != IOQ__K_FREE && h->fd == fd)
        return h;
    e->fd = IOQ__FD_DELETED; /* stale */
    return NULL;
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
        h->gen = loop->gen_base;
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

/* A generation past IOQ__GEN_MASK matches no value: the slot is retired. */
static bool retired(const ioq__handle *h) { return h->gen > IOQ__GEN_MASK; }

void ioq__handle_invalidate(ioq__handle *h)
{
    h->gen++; /* IOQ__GEN_MASK + 1 retires the slot: see the top of this file */
    h->rstate |= IOQ__R_CLOSING;
}

void ioq__handle_free(ioq_loop *loop, ioq__handle *h)
{
    fd_remove(loop, h);
    if (!(h->rstate & IOQ__R_CLOSING))
        ioq__handle_invalidate(h);
    h->kind = IOQ__K_FREE;
    h->fd = -1;
    h->next_free = NULL;
    if (retired(h))
        return;
    h->next_free = loop->hfree;
    loop->hfree = h;
}

int ioq__test_handle_reuse(ioq_loop *loop, ioq_handle v, uint32_t n)
{
    ioq__handle *h = ioq__handle_slot(loop, (uint32_t)(v & IOQ__INDEX_MASK));
    ioq__handle **pp;
    if (!h || h->kind != IOQ__K_FREE || retired(h))
        return IOQ_EINVAL;
    h->gen = n > IOQ__GEN_MASK + 1 - h->gen ? IOQ__GEN_MASK + 1 : h->gen + n;
    if (!retired(h))
        return 0;
    for (pp = &loop->hfree; *pp; pp = &(*pp)->next_free) {
        if (*pp == h) {
            *pp = h->next_free;
            break;
        }
    }
    return 0;
}

/* What the OS layer keeps for a handle: a child's record (a child still running is reaped
 * when it ends), a terminal's mode before ioq changed it (restored if left raw). */
static void os_obj_free(ioq__handle *h)
{
    if (h->kind == IOQ__K_PROCESS)
        ioq__os_process_free(h->obj, false);
    else if (h->kind == IOQ__K_TTY)
        ioq__os_tty_free(h->fd, h->obj);
    else
        return;
    h->obj = NULL;
}

void ioq__handle_destroy(ioq_loop *loop, ioq__handle *h)
{
    fd_remove(loop, h);
    os_obj_free(h);
    if (h->kind == IOQ__K_NOTIFIER)
        ioq__notifier_free(loop, h);
    /* A PROCESS handle of a backend that waits by process id has no descriptor. */
    if (h->fd >= 0 || h->kind == IOQ__K_CONNECTING || h->kind == IOQ__K_PROCESS) {
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
    if (fd >= 0)
        fd_add(loop, h);
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
    fd_add(loop, h);
    return 0;
}

int64_t ioq__handle_swap_fd(ioq_loop *loop, ioq__handle *h, int64_t fd)
{
    int64_t old = h->fd;
    fd_remove(loop, h);
    h->fd = fd;
    if (fd >= 0)
        fd_add(loop, h);
    return old;
}

ioq_handle ioq__handle_value(const ioq_loop *loop, const ioq__handle *h)
{
    return (uint64_t)loop->tag << 48 | (uint64_t)(h->gen & IOQ__GEN_MASK) << IOQ__INDEX_BITS |
           h->index;
}

ioq__handle *ioq__handle_find(const ioq_loop *loop, uint64_t v)
{
    return ioq__handle_lookup(loop, v);
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
        os_obj_free(h);
        if (h->kind == IOQ__K_POOL)
            ioq__pool_destroy(loop, h->pool);
        else if (h->kind != IOQ__K_FREE && h->kind != IOQ__K_WATCH && h->fd >= 0)
            ioq__os_close(h->fd);
    }
    for (uint32_t c = 0; c < loop->nchunks; c++)
        free(loop->hchunks[c]);
    free(loop->hchunks);
    free(loop->fdtab);
}
