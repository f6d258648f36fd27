/*
 * Force-included (cc -include) into the C files of ioq's Python wheel, so that the built
 * extension runs on glibc 2.17 and later however new the glibc it was built against
 * (manylinux). Nothing changes at run time: each symbol below is bound to the oldest
 * version of the same function, which every newer glibc still exports.
 *
 * - glibc 2.34 moved the pthread functions from libpthread into libc under a new version;
 *   the old version is the same function (same address in libc.so.6).
 * - glibc 2.33 made fstat and lstat real symbols; before, <sys/stat.h> turned them into
 *   calls of __fxstat and __lxstat, which every glibc still exports.
 *
 * New calls (epoll_pwait2, pidfd_open, ...) are not listed here: ioq reaches them through
 * syscall(), so that it falls back at run time instead of failing to load. The wheel check
 * (packaging/python/manylinux.py) reads the symbol versions of the built extension and
 * fails on anything newer than its tag; a symbol it names goes here only when libc.so.6
 * exports its old version at the same address as the new one.
 *
 * On other C libraries, other architectures and old glibc this header does nothing.
 */
#ifndef IOQ_GLIBC_COMPAT_H
#define IOQ_GLIBC_COMPAT_H

#if defined(__linux__) && !defined(__ASSEMBLER__)
#include <features.h>
#endif

#if defined(__GLIBC__) && !defined(__ASSEMBLER__) && \
    (defined(__x86_64__) || defined(__aarch64__))

#if defined(__x86_64__)
#  define IOQ__GLIBC_BASE "GLIBC_2.2.5"
#  define IOQ__STAT_VER 1
#else
#  define IOQ__GLIBC_BASE "GLIBC_2.17"
#  define IOQ__STAT_VER 0
#endif

#if __GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34)
__asm__(".symver pthread_create,pthread_create@" IOQ__GLIBC_BASE);
__asm__(".symver pthread_join,pthread_join@" IOQ__GLIBC_BASE);
__asm__(".symver pthread_detach,pthread_detach@" IOQ__GLIBC_BASE);
__asm__(".symver pthread_attr_setstacksize,pthread_attr_setstacksize@" IOQ__GLIBC_BASE);
__asm__(".symver pthread_sigmask,pthread_sigmask@" IOQ__GLIBC_BASE);
#endif

#if __GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33)
#include <sys/stat.h>
extern int __fxstat(int ver, int fd, struct stat *buf);
extern int __lxstat(int ver, const char *path, struct stat *buf);
static inline int ioq__glibc_fstat(int fd, struct stat *buf)
{
    return __fxstat(IOQ__STAT_VER, fd, buf);
}
static inline int ioq__glibc_lstat(const char *path, struct stat *buf)
{
    return __lxstat(IOQ__STAT_VER, path, buf);
}
#  define fstat ioq__glibc_fstat
#  define lstat ioq__glibc_lstat
#endif

#endif /* __GLIBC__ on x86_64 or aarch64 */
#endif /* IOQ_GLIBC_COMPAT_H */
