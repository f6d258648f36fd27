/*
 * The completion ring and ioq_poll: records wait in a ring that grows (never shrinks) and
 * are copied out in order. ioq_poll drains the cross-thread queue, fires due timers and
 * asks the backend to wait, and keeps the loop's descriptor honest in embedded mode.
 */
#include "loop.h"

#include <stdlib.h>
#include <string.h>

bool ioq__cq_grow(ioq_loop *loop, uint32_t extra)
{
    uint32_t cap = loop->cq_mask + 1, count = ioq__cq_count(loop), ncap = cap;
    ioq_cqe *ncq;

    if ((uint64_t)count + extra <= cap)
        return true;
    while ((uint64_t)count + extra > ncap) {
        if (ncap >= (1u << 30))
            return false;
        ncap *= 2;
    }
    /* realloc: a large ring moves by remapping its pages, without copying or touching the
     * records (and the reservation of a million timers grows it before any is written).
     * Only the wrapped-around part of the records has to move, to the new end. */
    ncq = realloc(loop->cq, (size_t)ncap * sizeof *ncq);
    if (!ncq)
        return false;
    {
        uint32_t h = loop->cq_head & loop->cq_mask;
        if (count > cap - h) {
            uint32_t first = cap - h; /* records from h to the old end */
            memmove(ncq + (ncap - first), ncq + h, (size_t)first * sizeof *ncq);
            h = ncap - first;
        }
        loop->cq = ncq;
        loop->cq_head = h;
        loop->cq_tail = h + count;
        loop->cq_mask = ncap - 1;
    }
    return true;
}

void ioq__cq_push_grow(ioq_loop *loop, uint64_t token, int64_t result, uint64_t value,
                       uint16_t op, uint16_t flags, uint32_t reserved)
{
    ioq__cq_grow(loop, 1);
    ioq__cq_store(loop, token, result, value, op, flags, reserved);
}

/* The record a finished timer keeps in its op (ioq__timer_done). */
static void timer_record(ioq_cqe *c, uint64_t token, int64_t result, uint16_t code)
{
    c->token = token;
    c->result = result;
    c->value = 0;
    c->op = code;
    c->flags = 0;
    c->reserved = 0;
}

/* Ring records and finished timers, merged in the order they completed: a timer's record
 * is due once the ring records that came before it (op->heap_idx counts them, in
 * cq_out's numbering) are out. Each timer op goes back to the slab once its records are. */
uint32_t ioq__records_out(ioq_loop *loop, ioq_cqe *cqes, uint32_t max)
{
    uint32_t n = 0, ring = ioq__cq_count(loop), head = loop->cq_head, out = loop->cq_out;
    uint32_t ti = loop->tdone_head;
    ioq__op *t = ti ? ioq__timer_op(loop, ti) : NULL;

    if (!t) {
        /* Only ring records (the usual case): copied without the merge's tests. */
        n = ring < max ? ring : max;
        for (uint32_t i = 0; i < n; i++) {
            cqes[i] = loop->cq[(head + i) & loop->cq_mask];
            cqes[i].reserved = 0; /* see ioq__pool_busy */
        }
        loop->cq_head = head + n;
        loop->cq_out = out + n;
        return n;
    }
    while (n < max) {
        if (t && (ring == 0 || (int32_t)(t->heap_idx - out) <= 0)) {
            uint32_t next = t->tnext;
            if (t->at != IOQ__AT_DONE_CANCEL_ONLY)
                timer_record(&cqes[n++], t->token, t->cancelled ? IOQ_ECANCELED : 0,
                             IOQ_OP_TIMEOUT);
            if (t->at != IOQ__AT_DONE) {
                if (n == max) { /* the cancel's record goes out next time */
                    t->at = IOQ__AT_DONE_CANCEL_ONLY;
                    break;
                }
                timer_record(&cqes[n++], t->cancel_token, 1, IOQ_OP_CANCEL);
            }
            loop->ntdone--;
            ioq__op_free(loop, t);
            ti = next;
            t = next ? ioq__timer_op(loop, next) : NULL;
        } else if (ring) {
            cqes[n] = loop->cq[head & loop->cq_mask];
            cqes[n++].reserved = 0; /* see ioq__pool_busy */
            head++;
            out++;
            ring--;
        } else {
            break;
        }
    }
    loop->tdone_head = ti;
    if (!ti)
        loop->tdone_tail = 0;
    loop->cq_head = head;
    loop->cq_out = out;
    return n;
}

/* --- timers (heap in timer.c) ------------------------------------------------------------- */

/* Fire the due timers, at most `limit` of them: ioq_poll fires no more than the caller's
 * array can take now, so that each fired op is still in the cache when its record goes
 * out (a million due timers fired at once were each missed twice). The rest stay due and
 * fire at the next poll, still in deadline order. */
static void run_timers(ioq_loop *loop, uint32_t limit)
{
    ioq__op *op;
    uint64_t now;
    if (loop->heap_len == 0)
        return;
    now = ioq__os_now();
    while (limit && (op = ioq__timer_due(loop, now)) != NULL) {
        ioq__complete(loop, op, 0, 0, 0);
        limit--;
    }
}

/* How many timers ioq_poll fires now: room left in the caller's array. An embedded loop
 * fires every due timer: the host wakes on the timer armed for the earliest deadline, and
 * one left due behind an expired arming would never wake it. */
static uint32_t room(const ioq_loop *loop, uint32_t max)
{
    uint32_t ready = ioq__ready_count(loop);
    if (loop->embedded)
        return UINT32_MAX;
    return ready < max ? max - ready : 0;
}

/* --- poll ---------------------------------------------------------------------------------- */

static void arm_embedded_timer(ioq_loop *loop)
{
    uint64_t d = ioq__timer_next(loop);
    if (d != loop->armed_deadline && loop->backend->arm_timer) {
        loop->armed_deadline = d;
        loop->backend->arm_timer(loop, d);
    }
}

/* Leaving ioq_poll/ioq_submit. An embedded loop is "blocked" from now on: the host sleeps
 * on ioq_loop_fd(), so producers must signal it. Publish that first, then look again: a
 * post or a thread-pool result that arrived while we were busy (and did not signal) and
 * records left over for the next poll must make the descriptor readable now. */
void ioq__leave_poll(ioq_loop *loop)
{
    if (!loop->embedded) {
        ioq__wake_seen(loop);
        return;
    }
    /* Whatever wake was in flight has been seen or will be: let the next one through (even
     * past one still being sent, as `blocked` may be published only with the word IDLE). */
    atomic_store(&loop->wake_sent, IOQ__WAKE_IDLE);
    arm_embedded_timer(loop);
    atomic_store(&loop->blocked, 1);
    ioq__notify_settle(loop); /* may make records: counted just below */
    if (ioq__ready_count(loop) > 0 || ioq__posts_pending(loop))
        ioq__wake_send(loop);
}

int ioq_submit(ioq_loop *loop)
{
    if (!loop)
        return IOQ_EINVAL;
    if (loop->in_free || loop->in_poll)
        return IOQ_EMISUSE;
    if (loop->embedded && loop->host_flush && loop->backend->flush) {
        /* The host's flush, once per turn of its loop: only the system call that submits.
         * The loop stays "blocked" (a producer still signals the descriptor), and what
         * completes is reaped by the host's next ioq_poll. */
        loop->backend->flush(loop);
        /* Records made by the host's calls since its last poll did not wake it (loop.h
         * ioq__ready_signal): it is about to sleep, so they do now. */
        if (ioq__ready_count(loop) > 0)
            ioq__wake_send(loop);
        return 0;
    }
    ioq__posts_drain(loop);
    /* For readiness backends submissions already ran; a completion backend flushes here. */
    loop->in_poll = true;
    atomic_store(&loop->blocked, 0);
    loop->backend->wait(loop, 0);
    ioq__posts_drain(loop);
    run_timers(loop, UINT32_MAX);
    loop->in_poll = false;
    ioq__leave_poll(loop);
    return 0;
}

int ioq_poll(ioq_loop *loop, ioq_cqe *cqes, uint32_t max, int64_t timeout_ns)
{
    uint64_t deadline = 0;
    bool waited = false;
    uint32_t n;
    int err = 0;

    if (!loop || !cqes || max == 0 || timeout_ns < -1)
        return IOQ_EINVAL;
    if (loop->in_free || loop->in_poll)
        return IOQ_EMISUSE;
    loop->in_poll = true;
    if (loop->embedded)
        atomic_store(&loop->blocked, 0); /* set by leave_poll() for the host's sleep */
    if (timeout_ns > 0) {
        uint64_t now = ioq__os_now();
        deadline = (uint64_t)timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + (uint64_t)timeout_ns;
    }

    for (;;) {
        int64_t wait_ns;
        uint64_t now = 0;
        bool woke, published = false;

        ioq__posts_drain(loop);
        run_timers(loop, room(loop, max));
        woke = atomic_load_explicit(&loop->wake_requested, memory_order_relaxed) &&
               atomic_exchange(&loop->wake_requested, 0);
        if (ioq__ready_count(loop) > 0 || woke) {
            /* Records are ready. Ask the kernel too, but only every other time, so that
             * inline completions cannot starve I/O without doubling the syscalls of a
             * ping-pong. */
            if (!waited && loop->skipped_wait) {
                loop->backend->wait(loop, 0);
                ioq__posts_drain(loop);
                run_timers(loop, room(loop, max));
                loop->skipped_wait = false;
            } else {
                loop->skipped_wait = !waited;
            }
            break;
        }
        if (waited && timeout_ns == 0)
            break;
        if (timeout_ns == 0) {
            wait_ns = 0;
        } else if (timeout_ns < 0) {
            wait_ns = -1;
        } else {
            now = ioq__os_now();
            if (now >= deadline) {
                if (waited)
                    break;
                wait_ns = 0;
            } else {
                uint64_t left = deadline - now;
                wait_ns = left > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)left;
            }
        }
        if (wait_ns != 0 && loop->heap_len) {
            /* ioq__timer_next drops dead entries from the top: they are not deadlines. */
            uint64_t d = ioq__timer_next(loop);
            if (loop->heap_len) {
                /* Unsigned until clamped: a deadline more than 2^63 ns away (a timeout
                 * near UINT64_MAX) must not turn negative, which the backends take as
                 * "forever". */
                uint64_t left;
                int64_t t;
                if (now == 0)
                    now = ioq__os_now();
                left = d > now ? d - now : 0;
                t = left > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)left;
                if (wait_ns < 0 || t < wait_ns)
                    wait_ns = t;
            }
        }
        if (wait_ns != 0) {
            /* A producer still in the call that woke us queues more as soon as it is back:
             * wait for it, and look again, rather than sleep and cost it another call. */
            if (ioq__wake_settle(loop) || ioq__notify_linger(loop))
                continue;
            /* Publish that we may sleep, then look once more: a producer either sees the
             * flag (and wakes us) or we see its item. */
            atomic_store(&loop->blocked, 1);
            published = true;
            if (ioq__notify_settle(loop) || ioq__posts_pending(loop) ||
                atomic_load(&loop->wake_requested))
                wait_ns = 0;
        }
        err = loop->backend->wait(loop, wait_ns);
        if (published) {
            /* Only a loop that published `blocked` can have been sent a wake. */
            atomic_store(&loop->blocked, 0);
            ioq__wake_seen(loop);
        }
        waited = true;
        loop->skipped_wait = false;
        if (err < 0) {
            /* The kernel's wait failed for a reason of its own: waiting again would only
             * fail again (a spin). Report it, after any record that is ready. */
            ioq__posts_drain(loop);
            run_timers(loop, room(loop, max));
            if (ioq__ready_count(loop) == 0)
                break;
        }
        err = 0;
    }

    if (err < 0) {
        loop->in_poll = false;
        ioq__leave_poll(loop);
        return err;
    }
    n = ioq__records_out(loop, cqes, max);
    loop->in_poll = false;
    ioq__leave_poll(loop);
    return (int)n;
}
