/*
 * The kqueue descriptor cannot be polled. libkqueue returns the write end of a pipe as the
 * kqueue descriptor (its close tells libkqueue that the kqueue is gone), so poll() never
 * sees it readable, even with an event pending; a kqueue kernel's descriptor is readable
 * while events are pending. ioq_loop_fd() hands out this descriptor for embedding.
 * Disabled for it: kqueue/loop-loop-fd-timer, -io, -post, -wake.
 */
#include "show.h"

#include <sys/types.h>
#include <sys/event.h>
#include <poll.h>
#include <unistd.h>

int main(void)
{
    struct kevent ev;
    int kq = kqueue();

    if (kq < 0)
        die("kqueue");
    EV_SET(&ev, 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    if (kevent(kq, &ev, 1, NULL, 0, NULL) < 0)
        die("kevent add");
    EV_SET(&ev, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    if (kevent(kq, &ev, 1, NULL, 0, NULL) < 0)
        die("kevent trigger");
    struct pollfd p = {kq, POLLIN, 0};
    int n = poll(&p, 1, 1000);
    printf("  poll(kqueue fd, POLLIN, 1 s) with an EVFILT_USER event pending: %d, revents %#x\n",
           n, (unsigned)p.revents);
    struct timespec zero = {0, 0};
    int pending = kevent(kq, NULL, 0, &ev, 1, &zero);
    printf("  kevent() then returns %d event(s)\n", pending);
    close(kq);
    return verdict(pending == 1 && !(n == 1 && (p.revents & POLLIN)), "pollable_fd",
                   "poll() reports POLLIN at once");
}
