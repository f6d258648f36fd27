/*
 * The thread pool runs what cannot be made non-blocking (regular files on readiness
 * backends, getaddrinfo). Workers start on first use, so loops that never touch a file
 * spawn no thread. A finished op travels back through the loop's MPSC queue and completes
 * on the loop thread; workers never touch loop state other than that queue.
 */
#include "loop.h"

#include <stdlib.h>

static IOQ__THREAD_RET worker(void *arg)
{
    ioq_loop *loop = arg;
    ioq__tpool *tp = &loop->tp;

    ioq__mutex_lock(&tp->lock);
    for (;;) {
        ioq__op *op;
        while (!tp->stop && !tp->queue.head)
            ioq__cond_wait(&tp->cond, &tp->lock);
        if (tp->stop)
            break;
        op = tp->queue.head;
        ioq__opq_remove(&tp->queue, op);
        op->tp_running = 1; /* cancel can no longer stop it */
        ioq__mutex_unlock(&tp->lock);

        op->work(op);
        op->node.kind = IOQ__MPSC_OP;
        ioq__mpsc_push(&loop->mpsc, &op->node);
        ioq__wake_if_blocked(loop);

        ioq__mutex_lock(&tp->lock);
    }
    ioq__mutex_unlock(&tp->lock);
    return 0;
}

int ioq__tp_init(ioq_loop *loop)
{
    ioq__tpool *tp = &loop->tp;
    if (ioq__mutex_init(&tp->lock) != 0)
        return IOQ_ENOMEM;
    if (ioq__cond_init(&tp->cond) != 0) {
        ioq__mutex_destroy(&tp->lock);
        return IOQ_ENOMEM;
    }
    tp->wanted = loop->threadpool_size;
    return 0;
}

static int start_workers(ioq_loop *loop)
{
    ioq__tpool *tp = &loop->tp;
    tp->threads = calloc(tp->wanted, sizeof *tp->threads);
    if (!tp->threads)
        return IOQ_ENOMEM;
    for (uint32_t i = 0; i < tp->wanted; i++) {
        if (ioq__thread_create(&tp->threads[i], worker, loop) != 0)
            break;
        tp->nthreads++;
    }
    if (tp->nthreads == 0) {
        free(tp->threads);
        tp->threads = NULL;
        return IOQ_ENOMEM; /* try again on the next submission */
    }
    tp->started = true;
    return 0;
}

int ioq__tp_submit(ioq_loop *loop, ioq__op *op, ioq__work_fn work)
{
    ioq__tpool *tp = &loop->tp;
    if (!tp->started) {
        int rc = start_workers(loop);
        if (rc != 0)
            return rc;
    }
    op->work = work;
    op->at = IOQ__AT_POOL;
    op->tp_running = 0;
    ioq__mutex_lock(&tp->lock);
    ioq__opq_push(&tp->queue, op);
    ioq__cond_signal(&tp->cond);
    ioq__mutex_unlock(&tp->lock);
    return 0;
}

/* True when op was still queued and is now removed; false when a worker runs it. */
bool ioq__tp_cancel(ioq_loop *loop, ioq__op *op)
{
    ioq__tpool *tp = &loop->tp;
    bool removed = false;
    ioq__mutex_lock(&tp->lock);
    if (!op->tp_running) {
        ioq__opq_remove(&tp->queue, op);
        removed = true;
    }
    ioq__mutex_unlock(&tp->lock);
    return removed;
}

void ioq__tp_finish(ioq_loop *loop, ioq__op *op)
{
    int64_t res = op->res;
    uint64_t value = op->res_value;

    op->at = IOQ__AT_NONE;
    if (op->code == IOQ_OP_OPEN)
        ioq__open_done(loop, op, res, op->res_fd);
    else
        ioq__complete(loop, op, res, value, 0);
}

/* Stop and join the workers. Queued ops are dropped: the loop is going away. */
void ioq__tp_stop(ioq_loop *loop)
{
    ioq__tpool *tp = &loop->tp;
    if (!tp->started)
        return;
    ioq__mutex_lock(&tp->lock);
    tp->stop = true;
    tp->queue.head = tp->queue.tail = NULL;
    ioq__cond_broadcast(&tp->cond);
    ioq__mutex_unlock(&tp->lock);
    for (uint32_t i = 0; i < tp->nthreads; i++)
        ioq__thread_join(tp->threads[i]);
    free(tp->threads);
    tp->threads = NULL;
    tp->nthreads = 0;
    tp->started = false;
}

void ioq__tp_fini(ioq_loop *loop)
{
    ioq__mutex_destroy(&loop->tp.lock);
    ioq__cond_destroy(&loop->tp.cond);
}
