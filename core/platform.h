/*
 * The one platform header of the core: threads, locks and atomics. Everything else that
 * depends on the OS lives in core/backend/.
 */
#ifndef IOQ_PLATFORM_H
#define IOQ_PLATFORM_H

#include <stdatomic.h>
#include <stdint.h>

#if defined(_WIN32)
#  ifndef WIN32_LEAN_AND_MEAN
#    define WIN32_LEAN_AND_MEAN
#  endif
#  include <windows.h>
typedef SRWLOCK ioq__mutex;
typedef CONDITION_VARIABLE ioq__cond;
typedef HANDLE ioq__thread;
#  define IOQ__THREAD_RET DWORD WINAPI
typedef DWORD (WINAPI *ioq__thread_fn)(void *);

static inline int ioq__mutex_init(ioq__mutex *m) { InitializeSRWLock(m); return 0; }
static inline void ioq__mutex_destroy(ioq__mutex *m) { (void)m; }
static inline void ioq__mutex_lock(ioq__mutex *m) { AcquireSRWLockExclusive(m); }
static inline void ioq__mutex_unlock(ioq__mutex *m) { ReleaseSRWLockExclusive(m); }
static inline int ioq__cond_init(ioq__cond *c) { InitializeConditionVariable(c); return 0; }
static inline void ioq__cond_destroy(ioq__cond *c) { (void)c; }
static inline void ioq__cond_wait(ioq__cond *c, ioq__mutex *m)
{
    SleepConditionVariableSRW(c, m, INFINITE, 0);
}
static inline void ioq__cond_signal(ioq__cond *c) { WakeConditionVariable(c); }
static inline void ioq__cond_broadcast(ioq__cond *c) { WakeAllConditionVariable(c); }
static inline int ioq__thread_create(ioq__thread *t, ioq__thread_fn fn, void *arg)
{
    *t = CreateThread(NULL, 256 * 1024, fn, arg, 0, NULL);
    return *t ? 0 : -1;
}
static inline void ioq__thread_join(ioq__thread t)
{
    WaitForSingleObject(t, INFINITE);
    CloseHandle(t);
}
static inline void ioq__cpu_relax(void) { YieldProcessor(); }
static inline void ioq__spin_pause(void) { YieldProcessor(); }
#else
#  include <pthread.h>
#  include <sched.h>
typedef pthread_mutex_t ioq__mutex;
typedef pthread_cond_t ioq__cond;
typedef pthread_t ioq__thread;
#  define IOQ__THREAD_RET void *
typedef void *(*ioq__thread_fn)(void *);

static inline int ioq__mutex_init(ioq__mutex *m) { return pthread_mutex_init(m, NULL); }
static inline void ioq__mutex_destroy(ioq__mutex *m) { pthread_mutex_destroy(m); }
static inline void ioq__mutex_lock(ioq__mutex *m) { pthread_mutex_lock(m); }
static inline void ioq__mutex_unlock(ioq__mutex *m) { pthread_mutex_unlock(m); }
static inline int ioq__cond_init(ioq__cond *c) { return pthread_cond_init(c, NULL); }
static inline void ioq__cond_destroy(ioq__cond *c) { pthread_cond_destroy(c); }
static inline void ioq__cond_wait(ioq__cond *c, ioq__mutex *m) { pthread_cond_wait(c, m); }
static inline void ioq__cond_signal(ioq__cond *c) { pthread_cond_signal(c); }
static inline void ioq__cond_broadcast(ioq__cond *c) { pthread_cond_broadcast(c); }
static inline int ioq__thread_create(ioq__thread *t, ioq__thread_fn fn, void *arg)
{
    pthread_attr_t attr;
    int rc;
    /* Workers run short blocking calls (pread, getaddrinfo): a small stack is plenty. */
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    rc = pthread_create(t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return rc;
}
static inline void ioq__thread_join(ioq__thread t) { pthread_join(t, NULL); }
static inline void ioq__cpu_relax(void) { sched_yield(); }
/* One step of a short busy wait: tells the CPU (and a hypervisor) that this core spins. */
static inline void ioq__spin_pause(void)
{
#  if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#  elif defined(__aarch64__) || (defined(__arm__) && __ARM_ARCH >= 7)
    __asm__ __volatile__("yield");
#  endif
}
#endif

/* A static function that is to be inlined in each caller, specialised for its constant
 * arguments (a submission call per message). */
#if defined(__GNUC__) || defined(__clang__)
#  define IOQ__INLINE_ALWAYS static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#  define IOQ__INLINE_ALWAYS static __forceinline
#else
#  define IOQ__INLINE_ALWAYS static inline
#endif

#endif /* IOQ_PLATFORM_H */
