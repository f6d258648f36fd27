/*
 * The cross-thread side: ioq_post and ioq_wake may be called from any thread. Posts and
 * finished thread-pool work travel to the loop thread through one MPSC queue; a wake-up
 * system call is made only when the loop is (about to be) blocked.
 */
#include "loop.h"

#include <stdlib.h>

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

void ioq__posts_drain(ioq_loop *loop)
{
    ioq__mpsc_node *n;
    if (atomic_load_explicit(&loop->notify_pending, memory_order_relaxed))
        ioq__notify_drain(loop);
    if (atomic_load_explicit(&loop->signal_pending, memory_order_relaxed))
        ioq__signal_drain(loop);
    for (;;) {
        if ((n = loop->mpsc_held) != NULL)
            loop->mpsc_held = NULL;
        else if ((n = ioq__mpsc_pop(&loop->mpsc)) == NULL)
            break;
        if (n->kind != IOQ__MPSC_OP) {
            ioq__post *p = (ioq__post *)n;
            if (!ioq__cq_reserve(loop, loop->nops_live + 1)) {
                /* Out of memory for the record: this post goes first next time (a posting
                 * thread's order is kept). */
                loop->mpsc_held = n;
                return;
            }
            ioq__cq_push(loop, p->token, p->result, 0, IOQ_OP_POST, 0);
            post_release(loop, p);
        } else {
            ioq__tp_finish(loop, (ioq__op *)((char *)n - offsetof(ioq__op, node)));
        }
    }
}

bool ioq__posts_init(ioq_loop *loop)
{
    ioq__mpsc_init(&loop->mpsc);
    loop->posts = malloc(IOQ__POST_POOL * sizeof *loop->posts);
    loop->post_ret = malloc(IOQ__POST_POOL * sizeof *loop->post_ret);
    if (!loop->posts || !loop->post_ret || !ioq__idxq_init(&loop->post_free, IOQ__POST_POOL))
        return false;
    for (uint32_t i = 0; i < IOQ__POST_POOL; i++)
        ioq__idxq_give(&loop->post_free, i);
    return true;
}

/* Posters have stopped (the contract): what is still queued is dropped. */
void ioq__posts_fini(ioq_loop *loop)
{
    ioq__mpsc_node *n;
    if (loop->mpsc_held && loop->mpsc_held->kind == IOQ__MPSC_POST)
        free(loop->mpsc_held);
    while ((n = ioq__mpsc_pop(&loop->mpsc)) != NULL) {
        if (n->kind == IOQ__MPSC_POST)
            free(n);
    }
    ioq__idxq_fini(&loop->post_free);
    free(loop->posts);
    free(loop->post_ret);
}
