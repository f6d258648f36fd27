/*
 * Events are lost when the event list fills. libkqueue asks epoll for as many descriptors
 * as the list has slots, but a socket with an EVFILT_READ and an EVFILT_WRITE filter gives
 * two events: those that find no slot are dropped, and with EV_CLEAR (epoll's edge
 * trigger) they never come again. A kqueue kernel leaves them queued for the next call.
 * ioq asks for 256 events at a time, so this strikes once more than 128 sockets are ready
 * together. Disabled for it: kqueue/stress-echo-1000, kqueue/soak-connections-10000.
 */
#include "show.h"

#include <sys/types.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <unistd.h>

enum { PAIRS = 100, SLOTS = 64 };

int main(void)
{
    int kq = kqueue(), sv[PAIRS][2], got = 0, n;
    struct kevent ev[SLOTS];
    struct timespec zero = {0, 0};

    if (kq < 0)
        die("kqueue");
    for (int i = 0; i < PAIRS; i++) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) < 0)
            die("socketpair");
        EV_SET(&ev[0], (uintptr_t)sv[i][0], EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, 0, NULL);
        EV_SET(&ev[1], (uintptr_t)sv[i][0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
        if (kevent(kq, ev, 2, NULL, 0, NULL) < 0)
            die("kevent add");
        if (write(sv[i][1], "x", 1) != 1) /* readable as well as writable */
            die("write");
    }
    while ((n = kevent(kq, NULL, 0, ev, SLOTS, &zero)) > 0)
        got += n;
    printf("  %d sockets readable and writable, %d slots per kevent(): %d events in all, "
           "%d expected\n", PAIRS, SLOTS, got, 2 * PAIRS);
    for (int i = 0; i < PAIRS; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
    close(kq);
    return verdict(got < 2 * PAIRS, "lost_events", "every event, over several calls");
}
