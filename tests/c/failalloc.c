/* Allocation failure for the C tests (see failalloc.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "failalloc.h"

#include "ioq.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);

/* dlsym may itself call calloc before real_calloc is known: serve it from here. The
 * C library never frees this memory through free() during start-up. */
static _Alignas(16) unsigned char boot[4096];
static size_t boot_used;
static atomic_int resolving;

static atomic_int armed;
static atomic_ulong skip_left, failed;
static int fail_once;
static void *lib_base;

static void resolve(void)
{
    if (real_malloc)
        return;
    atomic_store(&resolving, 1);
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    atomic_store(&resolving, 0);
}

/* Whether the allocation asked for from `caller` fails. */
static int should_fail(void *caller)
{
    Dl_info info;
    if (!atomic_load(&armed) || !lib_base)
        return 0;
    if (!dladdr(caller, &info) || info.dli_fbase != lib_base)
        return 0;
    if (atomic_load(&skip_left) > 0) {
        atomic_fetch_sub(&skip_left, 1);
        return 0;
    }
    if (fail_once)
        atomic_store(&armed, 0);
    atomic_fetch_add(&failed, 1);
    return 1;
}

void *malloc(size_t n)
{
    if (!real_malloc) {
        if (atomic_load(&resolving))
            return NULL;
        resolve();
    }
    if (should_fail(__builtin_return_address(0)))
        return NULL;
    return real_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    if (!real_calloc) {
        if (atomic_load(&resolving)) {
            size_t bytes = (n * size + 15) & ~(size_t)15;
            void *p;
            if (bytes > sizeof boot - boot_used)
                return NULL;
            p = boot + boot_used;
            boot_used += bytes;
            return p; /* static storage: already zero */
        }
        resolve();
    }
    if (should_fail(__builtin_return_address(0)))
        return NULL;
    return real_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    if (!real_realloc) {
        if (atomic_load(&resolving))
            return NULL;
        resolve();
    }
    if (n && should_fail(__builtin_return_address(0)))
        return NULL;
    return real_realloc(p, n);
}

/* Whether libioq's allocations come here: fail its first one and see ioq_loop_new say so.
 * Not when libioq is linked statically or an allocator goes first (valgrind's). */
int fa_available(void)
{
    Dl_info info;
    ioq_loop *loop = NULL;
    int rc;
    if (!lib_base && dladdr((void *)(uintptr_t)ioq_loop_new, &info))
        lib_base = info.dli_fbase;
    if (!lib_base)
        return 0;
    {
        Dl_info self;
        if (!dladdr((void *)(uintptr_t)fa_available, &self) || self.dli_fbase == lib_base)
            return 0;
    }
#if defined(__linux__)
    {
        /* kqueue on Linux is libkqueue's emulation, linked into libioq: its allocations
         * would fail too, and it does not survive that (a loop whose backend state is
         * gone after ioq_loop_new succeeded). Not ioq's to test. */
        const char *b = getenv("IOQ_BACKEND");
        if (b && strcmp(b, "kqueue") == 0)
            return 0;
    }
#endif
    fa_arm(0, 1);
    rc = ioq_loop_new(NULL, &loop);
    fa_disarm();
    if (rc == 0)
        ioq_loop_free(loop);
    return rc == IOQ_ENOMEM && fa_failed() > 0;
}

void fa_arm(unsigned long skip, int once)
{
    if (!lib_base) {
        Dl_info info;
        if (dladdr((void *)(uintptr_t)ioq_loop_new, &info))
            lib_base = info.dli_fbase;
    }
    atomic_store(&failed, 0);
    atomic_store(&skip_left, skip);
    fail_once = once;
    atomic_store(&armed, 1);
}

void fa_disarm(void) { atomic_store(&armed, 0); }

unsigned long fa_failed(void) { return atomic_load(&failed); }
