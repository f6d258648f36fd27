/*
 * epoll backend: what is epoll's own. Every socket is registered once, edge-triggered for
 * both directions, when it joins the loop; the readiness engine (readiness.c) does the rest.
 * An eventfd carries wake-ups and posts; a timerfd is armed only when the loop is embedded
 * in a foreign loop through ioq_loop_fd(), so that ioq's timers make the epoll fd readable.
 *
 * Watched descriptors (ioq_watch) are the exception: level-triggered, registered only
 * while a watch asks for something (a hung-up pipe would otherwise wake every wait), with
 * the union of what their watches ask for.
 */
#include "fault.h"
#include "posix.h"
#include "readiness.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

/* Cookies below 2^48 are never handle values (a loop's tag is at least 1). */
#define COOKIE_WAKE 0
#define COOKIE_TIMER 1
#define MAX_EVENTS 256

typedef struct {
    int epfd;
    int evfd;
    int tfd;
    bool no_pwait2; /* kernel older than 5.11, or headers without the call */
    struct epoll_event events[MAX_EVENTS];
} epoll_state;

static int epoll_init(ioq_loop *loop)
{
    epoll_state *s = calloc(1, sizeof *s);
    struct epoll_event ev;
    int rc;

    if (!s)
        return IOQ_ENOMEM;
    s->tfd = -1;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        rc = ioq__os_errno_map(errno);
        free(s);
        return rc;
    }
    s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = COOKIE_WAKE;
    if (s->evfd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->evfd, &ev) < 0) {
        rc = ioq__os_errno_map(errno);
        if (s->evfd >= 0)
            close(s->evfd);
        close(s->epfd);
        free(s);
        return rc;
    }
    ioq__backend_data_set(loop, s);
    return 0;
}

static void epoll_fini(ioq_loop *loop)
{
    epoll_state *s = ioq__backend_data(loop);
    ioq__f_forget(loop);
    if (s->tfd >= 0)
        close(s->tfd);
    close(s->evfd);
    close(s->epfd);
    free(s);
    ioq__backend_data_set(loop, NULL);
}

static int epoll_handle_open(ioq_loop *loop, ioq__handle *h)
{
    epoll_state *s = ioq__backend_data(loop);
    struct epoll_event ev;
    if (h->kind == IOQ__K_FILE || h->kind == IOQ__K_WATCH)
        return 0; /* regular files are always "ready": they go to the thread pool */
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = ioq__handle_value(loop, h);
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, (int)h->fd, &ev) < 0) {
        /* A character device that cannot be polled (/dev/null, /dev/zero) never blocks
         * either: always ready, like a file. */
        if (errno == EPERM && (IOQ__KIND_BIT(h->kind) & IOQ__PIPE_KINDS)) {
            h->rstate |= IOQ__R_READABLE | IOQ__R_WRITABLE;
            return 0;
        }
        return ioq__os_errno_map(errno);
    }
    /* Optimistic until the first EAGAIN: a fresh socket may already have data. */
    h->rstate |= IOQ__R_REG | IOQ__R_READABLE | IOQ__R_WRITABLE;
    return 0;
}

static int watch_apply(ioq_loop *loop, ioq__handle *h, uint32_t want, uint32_t have);

static void epoll_handle_close(ioq_loop *loop, ioq__handle *h)
{
    /* close() drops the registration unless the descriptor was duplicated elsewhere (an
     * adopted fd); its late events then carry a stale generation and are ignored. A
     * watched descriptor stays open: its registration must go now. */
    if (h->kind == IOQ__K_WATCH)
        ioq__rd_watch_set(loop, h, 0, watch_apply);
}

/* --- watches ------------------------------------------------------------------------------ */

/* The registration of a watched descriptor (readiness.c keeps what is registered in h->be).
 * The first watch is where a descriptor epoll cannot watch (a regular file: EPERM) or one
 * that is closed already (EBADF) gets its error. */
static int watch_apply(ioq_loop *loop, ioq__handle *h, uint32_t want, uint32_t have)
{
    epoll_state *s = ioq__backend_data(loop);
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = ((want & IOQ_WATCH_READABLE) ? EPOLLIN | EPOLLRDHUP : 0u) |
                ((want & IOQ_WATCH_WRITABLE) ? EPOLLOUT : 0u);
    ev.data.u64 = ioq__handle_value(loop, h);
    if (epoll_ctl(s->epfd, !want ? EPOLL_CTL_DEL : !have ? EPOLL_CTL_ADD : EPOLL_CTL_MOD,
                  (int)h->fd, &ev) < 0)
        return ioq__os_errno_map(errno);
    return 0;
}

static int epoll_start(ioq_loop *loop, ioq__op *op)
{
    if (op->code != IOQ_OP_WATCH)
        return ioq__rd_start(loop, op);
    return ioq__rd_watch_start(loop, op, watch_apply);
}

static void epoll_cancel(ioq_loop *loop, ioq__op *op)
{
    if (op->code != IOQ_OP_WATCH)
        ioq__rd_cancel(loop, op);
    else
        ioq__rd_watch_cancel(loop, op, watch_apply);
}

static void watch_event(ioq_loop *loop, ioq__handle *h, uint32_t e)
{
    uint32_t seen = ((e & EPOLLIN) ? IOQ_WATCH_READABLE : 0u) |
                    ((e & EPOLLOUT) ? IOQ_WATCH_WRITABLE : 0u) |
                    ((e & EPOLLERR) ? IOQ_WATCH_ERROR : 0u) |
                    ((e & (EPOLLHUP | EPOLLRDHUP)) ? IOQ_WATCH_HANGUP : 0u);
    if (ioq__watch_report(loop, h, seen))
        ioq__rd_watch_sync(loop, h, watch_apply);
}

/* epoll_wait's timeout: milliseconds rounded up (a timer must never fire early), at most
 * INT_MAX (some 24 days: a longer wait ends early and ioq_poll waits again). */
static int epoll_ms(int64_t timeout_ns)
{
    int64_t ms;
    if (timeout_ns < 0)
        return -1;
    ms = timeout_ns / 1000000 + (timeout_ns % 1000000 != 0);
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

static int epoll_wait_ns(epoll_state *s, int64_t timeout_ns)
{
    int n;
    if (!s->no_pwait2) {
        struct timespec ts, *tsp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = (time_t)(timeout_ns / 1000000000);
            ts.tv_nsec = (long)(timeout_ns % 1000000000);
            tsp = &ts;
        }
        /* Through syscall(): the glibc wrapper (2.35) would make libioq need that glibc
         * even where the kernel call is missing and epoll_wait serves instead. */
#ifdef SYS_epoll_pwait2
        n = (int)syscall(SYS_epoll_pwait2, s->epfd, s->events, MAX_EVENTS, tsp, NULL, 0);
        if (n >= 0 || errno != ENOSYS)
            return n;
#else
        (void)tsp;
#endif
        s->no_pwait2 = true;
    }
    return epoll_wait(s->epfd, s->events, MAX_EVENTS, epoll_ms(timeout_ns));
}

static int epoll_poll(ioq_loop *loop, int64_t timeout_ns)
{
    epoll_state *s = ioq__backend_data(loop);
    /* A descriptor the fault layer owes an edge must not wait for the kernel's. */
    int n = epoll_wait_ns(s, ioq__f_replay_pending(loop) ? 0 : timeout_ns);

    if (n < 0)
        return errno == EINTR ? 0 : ioq__os_errno_map(errno);
    ioq__f_replay(loop, ioq__rd_event, ioq__handle_find);
    for (int i = 0; i < n; i++) {
        uint32_t e = s->events[i].events;
        uint64_t cookie = s->events[i].data.u64;
        unsigned bits = 0;
        ioq__handle *h;

        if (cookie == COOKIE_WAKE || cookie == COOKIE_TIMER) {
            uint64_t v;
            ssize_t r = read(cookie == COOKIE_WAKE ? s->evfd : s->tfd, &v, sizeof v);
            (void)r;
            continue;
        }
        h = ioq__handle_find(loop, cookie);
        if (!h)
            continue;
        if (h->kind == IOQ__K_WATCH) {
            watch_event(loop, h, e);
            continue;
        }
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            bits |= IOQ__R_READABLE;
        if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            bits |= IOQ__R_EOF;
        if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            bits |= IOQ__R_WRITABLE;
        ioq__rd_event(loop, h, bits);
    }
    return n;
}

static void epoll_wake(ioq_loop *loop)
{
    epoll_state *s = ioq__backend_data(loop);
    uint64_t one = 1;
    ssize_t r = write(s->evfd, &one, sizeof one);
    (void)r; /* EAGAIN means the counter is already non-zero: the wake is pending */
}

static int64_t epoll_loop_fd(ioq_loop *loop) { return ((epoll_state *)ioq__backend_data(loop))->epfd; }

static void epoll_arm_timer(ioq_loop *loop, uint64_t deadline)
{
    epoll_state *s = ioq__backend_data(loop);

    if (s->tfd < 0) {
        struct epoll_event ev;
        if (deadline == UINT64_MAX)
            return;
        s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (s->tfd < 0)
            return;
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN | EPOLLET;
        ev.data.u64 = COOKIE_TIMER;
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->tfd, &ev) < 0) {
            close(s->tfd);
            s->tfd = -1;
            return;
        }
    }
    ioq__px_timerfd_arm(s->tfd, deadline);
}

static uint32_t epoll_caps(ioq_loop *loop)
{
    (void)loop;
    return IOQ_CAP_LOOP_FD;
}

const ioq__backend ioq__backend_epoll = {
    .name = "epoll",
    .id = IOQ_BACKEND_EPOLL,
    .init = epoll_init,
    .fini = epoll_fini,
    .start = epoll_start,
    .cancel = epoll_cancel,
    .wait = epoll_poll,
    .wake = epoll_wake,
    .handle_open = epoll_handle_open,
    .handle_close = epoll_handle_close,
    .loop_fd = epoll_loop_fd,
    .arm_timer = epoll_arm_timer,
    .caps = epoll_caps,
    .now = ioq__rd_now,
};
