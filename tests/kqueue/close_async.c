/*
 * close() of a kqueue returns before its descriptors are. libkqueue frees a closed kqueue
 * (an epoll descriptor, eventfds, a pipe, ...) later, on a thread of its own; a kqueue
 * kernel frees it in close(). ioq waits for it on Linux only (kq_fini calls
 * libkqueue_drain_pending_close()), so that ioq_loop_free() leaves no descriptor behind,
 * which every test checks.
 */
#include "show.h"

#include <sys/types.h>
#include <sys/event.h>
#include <fcntl.h>
#include <unistd.h>

static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        n += fcntl(fd, F_GETFD) != -1;
    return n;
}

int main(void)
{
    struct kevent ev;
    int before, after = 0, kq;

    /* A first kqueue, let go of: what the emulation keeps for the process stays open. */
    if ((kq = kqueue()) < 0)
        die("kqueue");
    close(kq);
    sleep(1);
    before = open_fds();
    /* The count races with the emulation's thread: the most of a few tries. */
    for (int i = 0; i < 20; i++) {
        if ((kq = kqueue()) < 0)
            die("kqueue");
        EV_SET(&ev, 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
        if (kevent(kq, &ev, 1, NULL, 0, NULL) < 0)
            die("kevent add");
        close(kq);
        int n = open_fds();
        if (n > after)
            after = n;
    }
    printf("  open descriptors: %d before kqueue(), up to %d right after its close()\n",
           before, after);
    return verdict(after > before, "close_async", "the same count");
}
