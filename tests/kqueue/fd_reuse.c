/*
 * A close() is not seen by the emulation. libkqueue keeps the filters of a closed
 * descriptor, and when a new socket gets the same number its EV_ADD finds them and only
 * updates them: the new socket's events never come. A kqueue kernel drops a descriptor's
 * filters in close(). ioq works around it on Linux only (kq_handle_close deletes the
 * filters before the close); without that almost every test would hang.
 */
#include "show.h"

#include <sys/types.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
    int kq = kqueue(), a[2], b[2];
    struct kevent ev;
    struct timespec ts = {1, 0};

    if (kq < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, a) < 0)
        die("setup");
    EV_SET(&ev, (uintptr_t)a[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
    if (kevent(kq, &ev, 1, NULL, 0, NULL) < 0)
        die("kevent add");
    close(a[0]); /* no EV_DELETE: a kqueue kernel needs none */
    close(a[1]);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, b) < 0)
        die("socketpair");
    if (b[0] != a[0]) {
        printf("the new socket did not reuse descriptor %d; nothing to show\n", a[0]);
        return 2;
    }
    EV_SET(&ev, (uintptr_t)b[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
    if (kevent(kq, &ev, 1, NULL, 0, NULL) < 0)
        die("kevent add");
    if (write(b[1], "x", 1) != 1)
        die("write");
    int n = kevent(kq, NULL, 0, &ev, 1, &ts);
    printf("  descriptor %d closed and reused, data written to the new socket: %d event(s) "
           "in 1 s\n", b[0], n);
    close(b[0]);
    close(b[1]);
    close(kq);
    return verdict(n == 0, "fd_reuse", "one EVFILT_READ event");
}
