/*
 * POSIX names the ioq C suite uses, mapped onto Winsock and the C runtime for Windows
 * builds. Forced into every test source (-include) together with the stub headers next to
 * it, so that the area files stay one portable text. Sockets are Winsock SOCKETs held in an
 * int, as the suite's plain-socket helpers do.
 */
#ifndef IOQ_TEST_COMPAT_H
#define IOQ_TEST_COMPAT_H

#ifndef WIN32_LEAN_AND_MEAN
#  define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>

#include <fcntl.h>
#include <io.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* <windows.h> leaves these behind as empty macros; the suite uses them as names. */
#undef far
#undef near

#ifndef O_CLOEXEC
#  define O_CLOEXEC _O_NOINHERIT
#endif
#ifndef SOCK_CLOEXEC
#  define SOCK_CLOEXEC 0
#endif
#ifndef MSG_NOSIGNAL
#  define MSG_NOSIGNAL 0 /* Windows has no SIGPIPE */
#endif
#ifndef MSG_DONTWAIT
#  define MSG_DONTWAIT 0
#endif
#ifndef SIGPIPE
#  define SIGPIPE 13
#endif
#ifndef S_ISSOCK
#  define S_ISSOCK(m) 0
#endif

/* close() of the suite's sockets: a SOCKET is not a C runtime descriptor. */
static inline int ioq_compat_close(int fd)
{
    if (closesocket((SOCKET)(intptr_t)fd) == 0)
        return 0;
    return _close(fd);
}
#define close(fd) ioq_compat_close(fd)

/* Winsock takes char pointers and int lengths. */
/* Zeroed first: Windows writes a single byte for some boolean options (TCP_NODELAY). */
static inline int ioq_compat_getsockopt(SOCKET s, int level, int name, void *v, int *len)
{
    memset(v, 0, (size_t)*len);
    return getsockopt(s, level, name, (char *)v, len);
}
#define getsockopt(s, l, n, v, len) ioq_compat_getsockopt((SOCKET)(s), l, n, (void *)(v), len)
#define setsockopt(s, l, n, v, len) setsockopt((SOCKET)(s), l, n, (const char *)(v), (int)(len))
#define poll(fds, n, ms) WSAPoll(fds, n, ms)

static inline int setenv(const char *name, const char *value, int overwrite)
{
    if (!overwrite && getenv(name))
        return 0;
    return _putenv_s(name, value) == 0 ? 0 : -1;
}
static inline int unsetenv(const char *name) { return _putenv_s(name, "") == 0 ? 0 : -1; }

static inline char *strcasestr(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (_strnicmp(hay, needle, n) == 0)
            return (char *)hay;
    return n == 0 ? (char *)hay : NULL;
}

/* No permission bit keeps the owner of a file from reading it: behave as root does. */
static inline int geteuid(void) { return 0; }

/* No per-process descriptor limit to read or lower. */
typedef uint64_t rlim_t;
struct rlimit {
    rlim_t rlim_cur, rlim_max;
};
#define RLIMIT_NOFILE 7
static inline int getrlimit(int res, struct rlimit *r)
{
    (void)res;
    r->rlim_cur = r->rlim_max = 1u << 24; /* the kernel's handle table limit */
    return 0;
}
static inline int setrlimit(int res, const struct rlimit *r)
{
    (void)res;
    (void)r;
    return -1;
}

#endif
