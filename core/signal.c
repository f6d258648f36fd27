/*
 * Signals: ioq_signal. The OS layer catches a signal while any loop watches it; its
 * handler (ioq__signal_raised, async-signal-safe) counts the delivery in a process-wide
 * counter per signal and flags and wakes every loop that watches signals. Each loop then
 * compares the counter with what each of its ops has seen, so several loops each get
 * every delivery and deliveries between two polls coalesce into one completion.
 *
 * The handler reaches loops through a fixed table of slots. Taking a loop out of it waits
 * until no handler is inside that slot, so a handler never touches a freed loop.
 */
#include "loop.h"

#define MAX_LOOPS 64

static _Atomic uint64_t counts[IOQ__NSIG];     /* deliveries per signal, ever */
static _Atomic(ioq_loop *) loops[MAX_LOOPS];    /* loops with live signal ops */
static _Atomic int inside[MAX_LOOPS];           /* handlers reading that slot now */
static uint32_t users[IOQ__NSIG];               /* live ops per signal, all loops */
static atomic_flag lock = ATOMIC_FLAG_INIT;     /* users[], installing, loops[] writers */

static void lock_take(void)
{
    while (atomic_flag_test_and_set(&lock))
        ;
}

static void lock_give(void) { atomic_flag_clear(&lock); }

void ioq__signal_raised(int signum)
{
    if (signum <= 0 || signum >= IOQ__NSIG)
        return;
    atomic_fetch_add(&counts[signum], 1);
    for (int i = 0; i < MAX_LOOPS; i++) {
        ioq_loop *loop;
        atomic_fetch_add(&inside[i], 1);
        if ((loop = atomic_load(&loops[i])) != NULL) {
            atomic_store(&loop->signal_pending, 1);
            ioq__wake_if_blocked(loop); /* an eventfd write or a kevent trigger */
        }
        atomic_fetch_sub(&inside[i], 1);
    }
}

/* Join the table (lock held). */
static int loop_join(ioq_loop *loop)
{
    if (loop->sig_slot)
        return 0;
    for (uint32_t i = 0; i < MAX_LOOPS; i++) {
        ioq_loop *expect = NULL;
        if (atomic_compare_exchange_strong(&loops[i], &expect, loop)) {
            loop->sig_slot = i + 1;
            return 0;
        }
    }
    return IOQ_ENOMEM;
}

/* Leave it, once no handler is looking at our slot (lock held). */
static void loop_leave(ioq_loop *loop)
{
    uint32_t i;
    if (!loop->sig_slot)
        return;
    i = loop->sig_slot - 1;
    atomic_store(&loops[i], NULL);
    while (atomic_load(&inside[i]) != 0)
        ;
    loop->sig_slot = 0;
}

/* One op of signum ends: give the signal back when it was the last (lock held). */
static void release(ioq_loop *loop, ioq__op *op)
{
    ioq__opq_remove(&loop->sigops, op);
    if (--users[op->signum] == 0)
        ioq__os_signal_catch((int)op->signum, false);
    if (!loop->sigops.head)
        loop_leave(loop);
}

int ioq_signal(ioq_loop *loop, int signum, uint32_t flags, uint64_t token)
{
    ioq__op *op;
    int rc;
    if (!loop || (flags & ~(uint32_t)IOQ_MULTISHOT))
        return IOQ_EINVAL;
    if (loop->in_free)
        return IOQ_EMISUSE;
    if ((rc = ioq__os_signal_check(signum)) != 0)
        return rc;
    if (!(op = ioq__op_new(loop, IOQ_OP_SIGNAL, token)))
        return IOQ_ENOMEM;
    op->flags = flags;
    op->signum = (uint32_t)signum;
    lock_take();
    if ((rc = loop_join(loop)) == 0 && users[signum] == 0)
        rc = ioq__os_signal_catch(signum, true);
    if (rc != 0) {
        if (!loop->sigops.head)
            loop_leave(loop);
        lock_give();
        ioq__op_free(loop, op);
        return rc;
    }
    users[signum]++;
    /* Deliveries from now on count: what came before belongs to no one here. */
    op->offset = atomic_load(&counts[signum]);
    ioq__opq_push(&loop->sigops, op);
    lock_give();
    ioq__op_register(loop, op);
    op->at = IOQ__AT_CORE;
    return 0;
}

void ioq__signal_drain(ioq_loop *loop)
{
    ioq__op *op, *next;
    if (!atomic_exchange(&loop->signal_pending, 0))
        return;
    for (op = loop->sigops.head; op; op = next) {
        uint64_t now = atomic_load(&counts[op->signum]);
        next = op->qnext;
        if (now == op->offset)
            continue;
        if ((op->flags & IOQ_MULTISHOT) && ioq__cq_room(loop, 1)) {
            ioq__complete(loop, op, (int64_t)(now - op->offset), op->signum, IOQ_CQE_MORE);
            op->offset = now;
            continue;
        }
        lock_take();
        release(loop, op);
        lock_give();
        ioq__complete(loop, op, (int64_t)(now - op->offset), op->signum, 0);
    }
}

void ioq__signal_cancel(ioq_loop *loop, ioq__op *op)
{
    lock_take();
    release(loop, op);
    lock_give();
    ioq__complete(loop, op, IOQ_ECANCELED, op->signum, 0);
}

void ioq__signal_fini(ioq_loop *loop)
{
    lock_take();
    while (loop->sigops.head)
        release(loop, loop->sigops.head);
    loop_leave(loop);
    lock_give();
}
