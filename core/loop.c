/*
 * The loop's life: ioq_loop_new picks a backend and sets up the core's parts, ioq_loop_free
 * takes them down in the order that lets go of caller memory first. Also the accessors
 * through which backends reach what they need of the loop (backend.h).
 */
#include "loop.h"

#include <stdlib.h>
#include <string.h>

/* Loop tags. A handle value carries its loop's 16-bit tag, so no two live loops may hold
 * the same tag: a handle of one would name a slot of the other. The bitmap says which tags
 * live loops hold; the cursor hands them out in turn, so that a freed tag comes back only
 * after every other free one has been used (a handle of a freed loop that meets the new
 * holder of its tag must then also match a generation, which starts per loop at
 * gen_base). */
#define TAGS 65536u
static _Atomic uint64_t tags_used[TAGS / 64];
static _Atomic uint32_t tags_cursor;

static bool tag_take(ioq_loop *loop)
{
    uint32_t start = atomic_fetch_add(&tags_cursor, 1);
    for (uint32_t i = 0; i < TAGS - 1; i++) {
        uint32_t t = (start + i) % (TAGS - 1) + 1; /* 0 is never a tag: no value is 0 */
        uint64_t bit = 1ull << (t % 64);
        if (!(atomic_fetch_or(&tags_used[t / 64], bit) & bit)) {
            uint64_t x = (uint64_t)start * 0x9E3779B97F4A7C15ull;
            loop->tag = (uint16_t)t;
            /* In the lower half of the generations: every slot has 2^23 uses or more
             * before it is retired (ioq__handle_invalidate). */
            loop->gen_base = 1 + (uint32_t)(x >> 41);
            return true;
        }
    }
    return false; /* 65,535 live loops */
}

static void tag_give(ioq_loop *loop)
{
    if (loop->tag)
        atomic_fetch_and(&tags_used[loop->tag / 64], ~(1ull << (loop->tag % 64)));
}

/* Test builds only (not in the ABI): as if n more loops had been created and freed; pools
 * as on kernels without provided buffers (io_uring before 5.19). */
void ioq__test_loop_tags_skip(uint32_t n) { atomic_fetch_add(&tags_cursor, n); }

static _Atomic int pools_emulated;
void ioq__test_emulate_pools(int on) { atomic_store(&pools_emulated, on); }
bool ioq__test_pools_emulated(void) { return atomic_load(&pools_emulated) != 0; }

/* Test builds only: the next n blocking pipe reads end with 0 bytes and no error, as a
 * zero-length write makes ReadFile end on Windows (wine does not). Only the IOCP backend's
 * workers ask. */
static _Atomic int empty_reads;
void ioq__test_empty_reads(int n) { atomic_store(&empty_reads, n); }
bool ioq__test_empty_read(void)
{
    int n = atomic_load(&empty_reads);
    while (n > 0)
        if (atomic_compare_exchange_weak(&empty_reads, &n, n - 1))
            return true;
    return false;
}

/* --- small helpers ------------------------------------------------------------------------ */

char *ioq__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
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
    tag_give(loop);
    ioq__notify_fini(loop);
    ioq__posts_fini(loop);
    free(loop->cq);
    free(loop->tbuckets);
    free(loop);
}

int ioq_loop_new(const ioq_loop_options *opts, ioq_loop **out)
{
    ioq_loop_options o;
    ioq_loop *loop;
    int rc = IOQ_ENOTSUP;
    bool posts_ok, index_ok;

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
    if ((o.flags & ~(uint32_t)IOQ_LOOP_HOST_FLUSH) || o.backend > IOQ_BACKEND_IOCP ||
        o.threadpool_size > 1024)
        return IOQ_EINVAL;
    for (size_t i = 0; i < sizeof o.reserved / sizeof o.reserved[0]; i++)
        if (o.reserved[i])
            return IOQ_EINVAL;
    if (o.backend == IOQ_BACKEND_AUTO && backend_from_env(&o.backend) != 0)
        return IOQ_EINVAL;

    loop = calloc(1, sizeof *loop);
    if (!loop)
        return IOQ_ENOMEM;
    /* First: free_loop_memory takes the posts' queue down whatever failed after it. */
    posts_ok = ioq__posts_init(loop);
    loop->cq = malloc(256 * sizeof *loop->cq);
    index_ok = ioq__token_index_init(loop);
    loop->cq_mask = 255;
    loop->threadpool_size = o.threadpool_size ? o.threadpool_size : 4;
    loop->armed_deadline = UINT64_MAX;
    loop->host_flush = (o.flags & IOQ_LOOP_HOST_FLUSH) != 0;
    if (!posts_ok || !loop->cq || !index_ok || !tag_take(loop) ||
        ioq__tp_init(loop) != 0) {
        free_loop_memory(loop);
        return IOQ_ENOMEM;
    }
    loop->ntag = loop->tag;
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
    if (!loop || loop->in_free)
        return;
    loop->in_free = true;
    /* Workers first: after this no thread touches caller memory or pushes to the queue. */
    ioq__tp_stop(loop);
    /* Then signal handlers: after this none reaches the loop. */
    ioq__signal_fini(loop);
    /* The backend makes the kernel let go of every buffer before we close descriptors. */
    loop->backend->fini(loop);
    ioq__handles_fini(loop);
    /* Before the ops: finished thread-pool work in the queue points into the slab. */
    ioq__posts_fini(loop);
    ioq__ops_fini(loop);
    ioq__notify_fini(loop);
    free(loop->heap);
    ioq__tp_fini(loop);
    free(loop->cq);
    free(loop->tbuckets);
    tag_give(loop);
    free(loop);
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
            ioq__leave_poll(loop);
    }
    return fd;
}

uint64_t ioq_now(const ioq_loop *loop) { return loop ? ioq__os_now() : 0; }

/* --- for the backends -------------------------------------------------------------------- */

void *ioq__backend_data(const ioq_loop *loop) { return loop->be; }

void ioq__backend_data_set(ioq_loop *loop, void *data) { loop->be = data; }

bool ioq__loop_embedded(const ioq_loop *loop) { return loop->embedded; }

bool ioq__loop_submit_now(const ioq_loop *loop) { return loop->embedded && !loop->host_flush; }
