/*
 * EV_EOF depends on the order of the filters. libkqueue watches a socket with one epoll
 * registration; adding EVFILT_WRITE after EVFILT_READ rewrites it without EPOLLRDHUP, and
 * then a read event that comes with data and the peer's FIN together carries no EV_EOF
 * (ioq would wait for an edge that never comes). A kqueue kernel reports EV_EOF in both
 * orders. ioq adds WRITE first on every system; with that order nothing is disabled.
 */
#include "show.h"

#include <sys/types.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <unistd.h>

/* Returns whether the read event had EV_EOF (or -1 without a read event). */
static int eof_seen(int read_first)
{
    int kq = kqueue(), sv[2], eof = -1, n;
    struct kevent ch[2], ev[4];
    struct timespec ts = {1, 0};

    if (kq < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        die("setup");
    EV_SET(&ch[read_first ? 0 : 1], (uintptr_t)sv[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
    EV_SET(&ch[read_first ? 1 : 0], (uintptr_t)sv[0], EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, 0, NULL);
    if (kevent(kq, ch, 2, NULL, 0, NULL) < 0)
        die("kevent add");
    kevent(kq, NULL, 0, ev, 4, &ts); /* the first "writable" */
    if (write(sv[1], "hello", 5) != 5 || shutdown(sv[1], SHUT_WR) < 0)
        die("write");
    n = kevent(kq, NULL, 0, ev, 4, &ts);
    for (int i = 0; i < n; i++)
        if (ev[i].filter == EVFILT_READ)
            eof = (ev[i].flags & EV_EOF) != 0;
    printf("  %s first: data and FIN queued, read event %s\n", read_first ? "READ" : "WRITE",
           eof < 0 ? "missing" : eof ? "with EV_EOF" : "without EV_EOF");
    close(sv[0]);
    close(sv[1]);
    close(kq);
    return eof;
}

int main(void)
{
    int read_first = eof_seen(1), write_first = eof_seen(0);
    return verdict(read_first == 0 && write_first == 1, "eof_order", "EV_EOF in both orders");
}
