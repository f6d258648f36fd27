/*
 * The cross-thread side: ioq_post and ioq_wake may be called from any thread. Posts and
 * finished thread-pool work travel to the loop thread through one MPSC queue; a wake-up
 * system call is made only when the loop is (about to be) blocked.
 */
#include "loop.h"

#include <stdlib.h>

/*
 * Wake-ups. The loop publishes `blocked` before it sleeps; a producer that sees it makes
 * the backend's wake call (an eventfd write: some microseconds, most of them spent waking
 * the loop's thread) unless one is in flight (wake_sent). The sender marks the word
 * SENDING for the length of its call and SENT after it.
 *
 * Why SENDING matters: the woken loop runs while its waker is still inside the call. If it
 * took what was queued (one notification, one post) and went back to sleep at once, the
 * producer, back from the call, would find it asleep again and pay another call for its
 * very next item: loop and producer in lockstep, one system call per item, however fast
 * the producer. So a loop about to sleep first waits for a wake still being sent
 * (ioq__wake_settle): the producer, back, queues its next items while the loop is awake
 * and not blocked, so they cost no call, and the loop takes them as one batch. (libuv's
 * uv_async_send gets the same effect by keeping its pending flag busy across the write,
 * which the loop spins on.)
 *
 * The rule that keeps wakes from being lost: the loop publishes `blocked` only with the
 * word IDLE, after the last time it read the wake descriptor. A wake claimed after that
 * (IDLE -> SENDING) is written after it, so it wakes the sleep or makes the next one
 * return at once. The loop never clears SENDING except when it stops waiting for the
 * sender (a preempted sender): the sender's own SENDING -> SENT then fails, harmlessly.
 */
/* Test builds only (not in the ABI): called by a thread that made a wake call, before it
 * marks it SENT, as if it were preempted there. */
static void (*_Atomic wake_hook)(void);
void ioq__test_wake_hook(void (*fn)(void)) { atomic_store(&wake_hook, fn); }

void ioq__wake_send(ioq_loop *loop)
{
    void (*hook)(void);
    int w = IOQ__WAKE_IDLE;
    /* Read first: while a wake is in flight, producers only share the line. */
    if (atomic_load_explicit(&loop->wake_sent, memory_order_relaxed) != IOQ__WAKE_IDLE ||
        !atomic_compare_exchange_strong(&loop->wake_sent, &w, IOQ__WAKE_SENDING))
        return;
    loop->backend->wake(loop);
    if ((hook = atomic_load_explicit(&wake_hook, memory_order_relaxed)) != NULL)
        hook();
    w = IOQ__WAKE_SENDING;
    atomic_compare_exchange_strong(&loop->wake_sent, &w, IOQ__WAKE_SENT);
}

void ioq__wake_if_blocked(ioq_loop *loop)
{
    if (atomic_load(&loop->blocked))
        ioq__wake_send(loop);
}

void ioq__wake_seen(ioq_loop *loop)
{
    int w = IOQ__WAKE_SENT;
    atomic_compare_exchange_strong(&loop->wake_sent, &w, IOQ__WAKE_IDLE);
}

/* How long a loop about to sleep waits for a wake call in flight. The call takes some
 * microseconds: spin that long. Longer, the sender is not running: maybe because this
 * thread preempted it on their one CPU, so yield to it, for a while. A sender preempted
 * elsewhere is given up on: the word goes back to IDLE (its own wake may have been read
 * already), so the next item queued wakes the loop. */
#define SETTLE_SPIN_NS 20000
#define SETTLE_YIELD_NS 500000

bool ioq__wake_settle(ioq_loop *loop)
{
    uint64_t t0 = 0, t;
    int w;
    if (atomic_load_explicit(&loop->wake_sent, memory_order_relaxed) == IOQ__WAKE_IDLE)
        return false;
    while ((w = atomic_load(&loop->wake_sent)) == IOQ__WAKE_SENDING) {
        t = ioq__os_now();
        if (t0 == 0)
            t0 = t;
        if (t - t0 < SETTLE_SPIN_NS) {
            for (int i = 0; i < 64; i++)
                ioq__spin_pause();
        } else if (t - t0 < SETTLE_YIELD_NS) {
            ioq__cpu_relax();
        } else {
            atomic_compare_exchange_strong(&loop->wake_sent, &w, IOQ__WAKE_IDLE);
            return true;
        }
    }
    if (w == IOQ__WAKE_SENT)
        atomic_compare_exchange_strong(&loop->wake_sent, &w, IOQ__WAKE_IDLE);
    return true;
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
    if (loop->lanes_dirty || atomic_load_explicit(&loop->notify_pending, memory_order_relaxed))
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

/* Posters have stopped (the contract): what is still queued is dropped. Finished
 * thread-pool work is dropped too, but a file it opened is nobody's handle yet: it would
 * leak, so it is closed here. */
void ioq__posts_fini(ioq_loop *loop)
{
    ioq__mpsc_node *n;
    if (loop->mpsc_held && loop->mpsc_held->kind == IOQ__MPSC_POST)
        free(loop->mpsc_held);
    while ((n = ioq__mpsc_pop(&loop->mpsc)) != NULL) {
        if (n->kind == IOQ__MPSC_POST) {
            free(n);
        } else if (n->kind == IOQ__MPSC_OP) {
            ioq__op *op = (ioq__op *)((char *)n - offsetof(ioq__op, node));
            if (op->code == IOQ_OP_OPEN && op->res == 0)
                ioq__os_close(op->res_fd);
        }
    }
    ioq__idxq_fini(&loop->post_free);
    free(loop->posts);
    free(loop->post_ret);
}
