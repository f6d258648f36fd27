/*
 * kqueue backend (macOS, FreeBSD): what is kqueue's own. Every socket gets EVFILT_READ and
 * EVFILT_WRITE with EV_CLEAR when it joins the loop; the registrations wait in a change list
 * that the next kevent() wait hands to the kernel, so that a loop iteration costs one system
 * call. The readiness engine (readiness.c) does the rest. EVFILT_USER carries wake-ups and
 * posts; a one-shot EVFILT_TIMER is armed only when the loop is embedded in a foreign loop
 * through ioq_loop_fd(), so that ioq's own timers make the kqueue descriptor readable.
 *
 * Watched descriptors (ioq_watch) get level-triggered filters (no EV_CLEAR), applied at
 * once, only for what their watches ask for; READ and WRITE of one descriptor in one wait
 * make one report.
 *
 * Children (ioq_spawn) are waited for by pid with EVFILT_PROC / NOTE_EXIT where the system
 * has it (wait_by_pid): no descriptor and no thread per child. The filter is added at the
 * first process wait, one-shot; its event makes the handle "readable" for the readiness
 * engine, which reaps the child. Without EVFILT_PROC the OS layer's wait descriptor (a
 * pipe closed by a thread that waits for the child) is read like any other.
 */
#include "fault.h"
#include "posix.h"
#include "readiness.h"

#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef EVFILT_USER
#  error "the kqueue backend needs EVFILT_USER (macOS, FreeBSD 8.1 or later, NetBSD 10)"
#endif

/* Idents of the two non-socket events; told from descriptors by their filter. */
#define IDENT_WAKE 0
#define IDENT_TIMER 1
#define MAX_EVENTS 256

#if defined(IOQ_KQUEUE_EMULATION)
/* libkqueue (tests on Linux) frees a closed kqueue on a thread of its own, later; this waits
 * for it, so that ioq_loop_free() lets go of every descriptor before it returns, as close()
 * of a real kqueue does. */
void libkqueue_drain_pending_close(void);
#endif

typedef struct {
    int kq;
    bool timer_armed;
    struct kevent *changes; /* registrations the next kevent() wait submits */
    int nchanges, cap;
    struct kevent events[MAX_EVENTS];
    /* Watch reports of the wait being dispatched, one per handle. */
    ioq__handle *wh[MAX_EVENTS];
    uint32_t wseen[MAX_EVENTS];
    int nw;
} kq_state;

/* udata is a pointer. A 64-bit one holds the handle value itself; a 32-bit one holds the slot
 * index and the low bits of its generation, enough to tell a stale event from a live one. */
static void *cookie_of(ioq_loop *loop, ioq__handle *h)
{
#if UINTPTR_MAX >= UINT64_MAX
    return (void *)(uintptr_t)ioq__handle_value(loop, h);
#else
    (void)loop;
    return (void *)(uintptr_t)(h->index | (h->gen & 0xffu) << IOQ__INDEX_BITS);
#endif
}

static ioq__handle *handle_of(ioq_loop *loop, void *udata)
{
#if UINTPTR_MAX >= UINT64_MAX
    return ioq__handle_find(loop, (uint64_t)(uintptr_t)udata);
#else
    uint32_t v = (uint32_t)(uintptr_t)udata;
    ioq__handle *h = ioq__handle_slot(loop, v & IOQ__INDEX_MASK);
    if (!h || (h->gen & 0xffu) != v >> IOQ__INDEX_BITS)
        return NULL;
    return ioq__handle_find(loop, ioq__handle_value(loop, h));
#endif
}

/* Give changes to the kernel at once. EV_RECEIPT makes each change come back as a receipt
 * and keeps kevent() from handing out readiness here, which only the wait may consume
 * (an EV_CLEAR edge taken and dropped would be lost). Returns the first real error. */
static int apply_now(kq_state *s, struct kevent *ch, int n)
{
    enum { SLICE = 16 };
    struct kevent rec[SLICE];
    struct timespec zero = {0, 0};
    int rc = 0;

    for (int i = 0; i < n; i++)
        ch[i].flags |= EV_RECEIPT;
    for (int off = 0; off < n; off += SLICE) {
        int k = n - off < SLICE ? n - off : SLICE;
        int got = kevent(s->kq, ch + off, k, rec, k, &zero);
        if (got < 0) {
            if (rc == 0)
                rc = ioq__os_errno_map(errno);
            continue;
        }
        for (int i = 0; i < got; i++) {
            int e = (rec[i].flags & EV_ERROR) ? (int)rec[i].data : 0;
            /* ENOENT: deleting a one-shot timer that already fired. */
            if (e != 0 && e != ENOENT && rc == 0)
                rc = ioq__os_errno_map(e);
        }
    }
    return rc;
}

/* --- watches ------------------------------------------------------------------------------ */

/* The filters of a watched descriptor (readiness.c keeps what is registered in h->be). */
static int watch_apply(ioq_loop *loop, ioq__handle *h, uint32_t want, uint32_t have)
{
    struct kevent ch[2];
    int n = 0;

    /* WRITE first, as in kq_handle_open. */
    if ((want ^ have) & IOQ_WATCH_WRITABLE)
        EV_SET(&ch[n++], (uintptr_t)h->fd, EVFILT_WRITE,
               (want & IOQ_WATCH_WRITABLE) ? EV_ADD : EV_DELETE, 0, 0, cookie_of(loop, h));
    if ((want ^ have) & IOQ_WATCH_READABLE)
        EV_SET(&ch[n++], (uintptr_t)h->fd, EVFILT_READ,
               (want & IOQ_WATCH_READABLE) ? EV_ADD : EV_DELETE, 0, 0, cookie_of(loop, h));
    return n ? apply_now(ioq__backend_data(loop), ch, n) : 0;
}

#if defined(EVFILT_PROC)
/* h->be of a child: NULL before its first wait, its pid while the filter is in, PROC_DONE
 * once the filter is gone (fired, or refused for a child that had ended). */
#define PROC_DONE ((void *)~(uintptr_t)0)

/* The first wait of a child: NOTE_EXIT on its pid. From then on only the filter's event
 * makes the child "readable": reaping it earlier would leave a filter for a reaped pid
 * (libkqueue then fails the kevent() that reports it). A child that has already ended
 * (a zombie, for which some systems refuse the filter with ESRCH) is left "readable", so
 * the wait reaps it at once. A later wait never adds the filter again: the pid may be
 * another process's by then. */
static int proc_register(ioq_loop *loop, ioq__handle *h)
{
    struct kevent ev;
    pid_t pid = (pid_t)ioq__os_process_pid(h->obj);
    int rc;
    if (h->be)
        return 0;
    EV_SET(&ev, (uintptr_t)pid, EVFILT_PROC, EV_ADD | EV_ONESHOT, NOTE_EXIT, 0,
           cookie_of(loop, h));
    rc = apply_now(ioq__backend_data(loop), &ev, 1);
    if (rc != 0 && rc != IOQ_ESRCH)
        return rc;
    if (rc == 0) {
        h->be = (void *)(uintptr_t)pid;
        h->rstate &= (uint16_t)~IOQ__R_READABLE;
    } else {
        h->be = PROC_DONE;
        h->rstate |= IOQ__R_READABLE;
    }
    return 0;
}
#endif

static int kq_start(ioq_loop *loop, ioq__op *op)
{
#if defined(EVFILT_PROC)
    if (op->code == IOQ_OP_PROCESS_WAIT && op->h->fd < 0) {
        int rc = proc_register(loop, op->h);
        if (rc != 0)
            return rc;
    }
#endif
    if (op->code != IOQ_OP_WATCH)
        return ioq__rd_start(loop, op);
    return ioq__rd_watch_start(loop, op, watch_apply);
}

static void kq_cancel(ioq_loop *loop, ioq__op *op)
{
    if (op->code != IOQ_OP_WATCH)
        ioq__rd_cancel(loop, op);
    else
        ioq__rd_watch_cancel(loop, op, watch_apply);
}

static void watch_event(kq_state *s, ioq__handle *h, const struct kevent *ev)
{
    uint32_t seen = ev->filter == EVFILT_READ ? IOQ_WATCH_READABLE : IOQ_WATCH_WRITABLE;
    int i;
    if (ev->flags & EV_EOF)
        seen |= IOQ_WATCH_HANGUP | (ev->fflags ? IOQ_WATCH_ERROR : 0u);
    for (i = 0; i < s->nw && s->wh[i] != h; i++)
        ;
    if (i == s->nw) {
        s->wh[s->nw] = h;
        s->wseen[s->nw++] = 0;
    }
    s->wseen[i] |= seen;
}

static void watch_flush(ioq_loop *loop, kq_state *s)
{
    for (int i = 0; i < s->nw; i++) {
        if (ioq__watch_report(loop, s->wh[i], s->wseen[i]))
            ioq__rd_watch_sync(loop, s->wh[i], watch_apply);
    }
    s->nw = 0;
}

static int kq_init(ioq_loop *loop)
{
    kq_state *s = calloc(1, sizeof *s);
    struct kevent ev;
    int rc;

    if (!s)
        return IOQ_ENOMEM;
    s->kq = kqueue();
    if (s->kq < 0) {
        rc = ioq__os_errno_map(errno);
        free(s);
        return rc;
    }
    /* A fork() child never inherits a kqueue, but exec() would keep the descriptor. */
    fcntl(s->kq, F_SETFD, FD_CLOEXEC);
    EV_SET(&ev, IDENT_WAKE, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    if ((rc = apply_now(s, &ev, 1)) != 0) {
        close(s->kq);
        free(s);
        return rc;
    }
    ioq__backend_data_set(loop, s);
    return 0;
}

static void kq_fini(ioq_loop *loop)
{
    kq_state *s = ioq__backend_data(loop);
    ioq__f_forget(loop);
    close(s->kq);
#if defined(IOQ_KQUEUE_EMULATION)
    libkqueue_drain_pending_close();
#endif
    free(s->changes);
    free(s);
    ioq__backend_data_set(loop, NULL);
}

static int reserve(kq_state *s, int n)
{
    if (s->nchanges + n > s->cap) {
        int cap = s->cap ? s->cap : 64;
        struct kevent *c;
        while (cap < s->nchanges + n)
            cap *= 2;
        c = realloc(s->changes, (size_t)cap * sizeof *c);
        if (!c)
            return IOQ_ENOMEM;
        s->changes = c;
        s->cap = cap;
    }
    return 0;
}

static int kq_handle_open(ioq_loop *loop, ioq__handle *h)
{
    kq_state *s = ioq__backend_data(loop);
    bool listener = h->kind == IOQ__K_TCP_LISTENER || h->kind == IOQ__K_LOCAL_LISTENER;
    struct kevent ch[2];
    int n = 0, rc;
    void *cookie;

    if (h->kind == IOQ__K_FILE || h->kind == IOQ__K_WATCH)
        return 0; /* regular files are always "ready": they go to the thread pool */
    if (h->kind == IOQ__K_PROCESS && h->fd < 0) {
        /* Waited for by pid: registered at its first wait (proc_register). */
        h->rstate |= IOQ__R_REG;
        return 0;
    }
    cookie = cookie_of(loop, h);
    /* A listener is never written to, and some systems refuse EVFILT_WRITE on one. WRITE
     * goes first: libkqueue (the Linux test build) drops READ's EV_EOF when WRITE is added
     * after it; a real kqueue takes them in either order. */
    if (!listener)
        EV_SET(&ch[n++], (uintptr_t)h->fd, EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, 0, cookie);
    EV_SET(&ch[n++], (uintptr_t)h->fd, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, cookie);
    if (ioq__loop_embedded(loop)) {
        /* The host sleeps on the kqueue descriptor, not in our wait: a registration left
         * for the next ioq_poll() could be waited for forever. */
        if ((rc = apply_now(s, ch, n)) != 0)
            return rc;
    } else {
        if ((rc = reserve(s, n)) != 0)
            return rc;
        memcpy(&s->changes[s->nchanges], ch, (size_t)n * sizeof ch[0]);
        s->nchanges += n;
    }
    /* Optimistic until the first EAGAIN: the engine tries before it relies on an edge, and
     * an EV_CLEAR filter reports the current state when it is added, so a registration that
     * takes effect at the next wait misses nothing. */
    h->rstate |= IOQ__R_REG | IOQ__R_READABLE | IOQ__R_WRITABLE;
    return 0;
}

static void kq_handle_close(ioq_loop *loop, ioq__handle *h)
{
    kq_state *s = ioq__backend_data(loop);
    int j = 0;
    if (h->kind == IOQ__K_WATCH) {
        /* The descriptor stays open: its filters must go now. */
        ioq__rd_watch_set(loop, h, 0, watch_apply);
        return;
    }
    if (h->kind == IOQ__K_PROCESS && h->fd < 0) {
#if defined(EVFILT_PROC)
        /* A child still running keeps its filter: remove it (ENOENT once it fired). */
        if (h->be && h->be != PROC_DONE) {
            struct kevent ev;
            EV_SET(&ev, (uintptr_t)h->be, EVFILT_PROC, EV_DELETE, 0, 0, NULL);
            apply_now(s, &ev, 1);
            h->be = NULL;
        }
#endif
        return;
    }
    /* close() removes the descriptor's filters; changes still queued for it would fail with
     * EBADF, or worse, land on a new socket that reuses the number. */
    for (int i = 0; i < s->nchanges; i++)
        if (s->changes[i].ident != (uintptr_t)h->fd)
            s->changes[j++] = s->changes[i];
    s->nchanges = j;
#if defined(IOQ_KQUEUE_EMULATION)
    /* libkqueue cannot see a close(): the filters would outlive the descriptor and swallow
     * the events of the next socket that gets its number. (ENOENT, for filters that were
     * still queued, is ignored.) */
    if (h->fd >= 0 && (h->rstate & IOQ__R_REG)) {
        struct kevent ch[2];
        bool listener = h->kind == IOQ__K_TCP_LISTENER || h->kind == IOQ__K_LOCAL_LISTENER;
        int p[2];
        /* A pipe's shutdown put the null device on the number, which epoll refuses (EPERM)
         * when libkqueue updates its state for the delete, so the state would stay and
         * swallow the next socket's events: on a pollable descriptor registered nowhere
         * epoll answers ENOENT, which libkqueue takes as "already gone". */
        if ((h->rstate & IOQ__R_SHUTWR) && pipe(p) == 0) {
            dup2(p[0], (int)h->fd);
            close(p[0]);
            close(p[1]);
        }
        EV_SET(&ch[0], (uintptr_t)h->fd, EVFILT_READ, EV_DELETE, 0, 0, NULL);
        EV_SET(&ch[1], (uintptr_t)h->fd, EVFILT_WRITE, EV_DELETE, 0, 0, NULL);
        apply_now(s, ch, listener ? 1 : 2);
    }
#endif
}

static void dispatch(ioq_loop *loop, kq_state *s, const struct kevent *ev)
{
    ioq__handle *h;
    unsigned bits;

    /* A queued change that failed. EBADF and ENOENT mean the descriptor was closed
     * meanwhile; anything else (ENOMEM) leaves that socket without events, and there is no
     * caller left to tell: the change was queued by a submission that has returned. */
    if (ev->flags & EV_ERROR)
        return;
    switch (ev->filter) {
    case EVFILT_READ:
        bits = IOQ__R_READABLE | ((ev->flags & EV_EOF) ? IOQ__R_EOF : 0u);
        break;
    case EVFILT_WRITE: bits = IOQ__R_WRITABLE; break;
#if defined(EVFILT_PROC)
    case EVFILT_PROC:
        /* NOTE_EXIT (the filter is gone with it): the wait's reap finds the status. */
        h = handle_of(loop, ev->udata);
        if (h && h->kind == IOQ__K_PROCESS && (uintptr_t)h->be == ev->ident) {
            h->be = PROC_DONE;
            ioq__rd_event(loop, h, IOQ__R_READABLE);
        }
        return;
#endif
    case EVFILT_TIMER:
        /* The one-shot is gone. Forgetting its deadline makes ioq_poll() arm the next one,
         * also when the kernel's clock fired it a little before ioq's. */
        s->timer_armed = false;
        ioq__timer_disarmed(loop);
        return;
    default:
        return; /* EVFILT_USER: a wake; EV_CLEAR has already reset it */
    }
    h = handle_of(loop, ev->udata);
    if (h && h->kind == IOQ__K_WATCH && (uintptr_t)h->fd == ev->ident)
        watch_event(s, h, ev);
    else if (h && (uintptr_t)h->fd == ev->ident)
        ioq__rd_event(loop, h, bits); /* EV_EOF too: the next call reports what happened */
}

static int kq_poll(ioq_loop *loop, int64_t timeout_ns)
{
    kq_state *s = ioq__backend_data(loop);
    struct timespec ts, zero = {0, 0}, *tsp = NULL;
    int total = 0;
    bool replayed = false;

    /* A descriptor the fault layer owes an edge must not wait for the kernel's. */
    if (ioq__f_replay_pending(loop))
        timeout_ns = 0;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    for (;;) {
        /* More changes than result slots: earlier slices go in without sleeping, so that
         * every failed change finds a slot for its EV_ERROR entry. */
        bool last = s->nchanges <= MAX_EVENTS;
        int nch = last ? s->nchanges : MAX_EVENTS;
        int n = kevent(s->kq, s->changes, nch, s->events, MAX_EVENTS,
                       last && total == 0 ? tsp : &zero);
        int e = errno;

        /* The kernel applies the change list before it sleeps: it is used up even when the
         * wait itself was interrupted. Dispatching may queue new changes behind these. */
        s->nchanges -= nch;
        if (s->nchanges > 0)
            memmove(s->changes, s->changes + nch, (size_t)s->nchanges * sizeof *s->changes);
        if (n < 0)
            return e == EINTR ? total : ioq__os_errno_map(e);
        if (!replayed)
            ioq__f_replay(loop, ioq__rd_event, ioq__handle_find);
        replayed = true;
        for (int i = 0; i < n; i++)
            dispatch(loop, s, &s->events[i]);
        watch_flush(loop, s);
        total += n;
        if (last)
            return total;
    }
}

static void kq_wake(ioq_loop *loop)
{
    kq_state *s = ioq__backend_data(loop);
    struct kevent ev;
    /* Any thread: a trigger already pending simply stays pending. */
    EV_SET(&ev, IDENT_WAKE, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    kevent(s->kq, &ev, 1, NULL, 0, NULL);
}

static int64_t kq_loop_fd(ioq_loop *loop)
{
    kq_state *s = ioq__backend_data(loop);
    /* From now on the host waits on the descriptor: what is queued must be in effect. */
    if (s->nchanges > 0) {
        apply_now(s, s->changes, s->nchanges);
        s->nchanges = 0;
    }
    return s->kq;
}

static void kq_arm_timer(ioq_loop *loop, uint64_t deadline)
{
    kq_state *s = ioq__backend_data(loop);
    struct kevent ev;

    if (deadline == UINT64_MAX) {
        if (!s->timer_armed)
            return;
        EV_SET(&ev, IDENT_TIMER, EVFILT_TIMER, EV_DELETE, 0, 0, NULL);
        s->timer_armed = false;
    } else {
        /* kqueue has no absolute timer on the monotonic clock everywhere (macOS's
         * NOTE_ABSOLUTE counts wall-clock time): a relative one-shot from ioq's clock. */
        uint64_t now = ioq__os_now();
        uint64_t rel = deadline > now ? deadline - now : 1;
#if defined(NOTE_NSECONDS)
        unsigned unit = NOTE_NSECONDS;
#else
        unsigned unit = 0; /* milliseconds, rounded up: a timer must never fire early */
        rel = (rel + 999999) / 1000000;
#endif
        if (rel > (uint64_t)INTPTR_MAX)
            rel = (uint64_t)INTPTR_MAX;
        EV_SET(&ev, IDENT_TIMER, EVFILT_TIMER, EV_ADD | EV_ONESHOT, unit, (intptr_t)rel, NULL);
        s->timer_armed = true;
    }
    apply_now(s, &ev, 1);
}

static uint32_t kq_caps(ioq_loop *loop)
{
    (void)loop;
    return IOQ_CAP_LOOP_FD;
}

const ioq__backend ioq__backend_kqueue = {
    .name = "kqueue",
    .id = IOQ_BACKEND_KQUEUE,
    .init = kq_init,
    .fini = kq_fini,
    .start = kq_start,
    .cancel = kq_cancel,
    .wait = kq_poll,
    .wake = kq_wake,
    .handle_open = kq_handle_open,
    .handle_close = kq_handle_close,
    .loop_fd = kq_loop_fd,
    .arm_timer = kq_arm_timer,
    .caps = kq_caps,
#if defined(EVFILT_PROC)
    .wait_by_pid = true,
#endif
    .now = ioq__rd_now,
};
