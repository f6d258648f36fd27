/*
 * The POSIX OS layer for child processes, pipes and terminals (os.h), shared by epoll,
 * io_uring and kqueue.
 *
 * A child is started with fork and exec; a close-on-exec pipe brings an exec failure back
 * to ioq_spawn, which reaps that child itself, so a failed spawn leaves nothing behind. ioq
 * never installs a SIGCHLD handler: each child has a "wait descriptor" that turns readable
 * when it ends, and the backends wait on it like on any descriptor.
 *  - Linux 5.3 and later: a pidfd (pidfd_open), readable once the child has exited.
 *    The loop reaps with waitid(WNOHANG) when it is readable; a process handle closed
 *    before its child ended hands the child to a detached thread that blocks in waitpid
 *    for it.
 *  - kqueue with EVFILT_PROC (macOS, the BSDs; libkqueue on Linux in tests): no wait
 *    descriptor; the backend registers the pid (NOTE_EXIT) and reaps with waitid(WNOHANG)
 *    when it fires; a closed handle's child is reaped by a detached thread, as with pidfd.
 *  - Elsewhere, or when pidfd_open is refused (older kernels, valgrind): a small thread
 *    per child blocks in waitpid, leaves the status for the loop, then closes the write
 *    end of a pipe whose read end is the wait descriptor. It reaps the child whether or
 *    not its handle is still open.
 * Either way no zombie is ever left by ioq. A host that reaps every child itself
 * (waitpid(-1) in a SIGCHLD handler) takes the status away: the wait then ends with
 * IOQ_ESRCH.
 *
 * Writes to a pipe or terminal whose reader is gone raise SIGPIPE, which ioq must keep from
 * the host: macOS has F_SETNOSIGPIPE; elsewhere the signal is blocked around the write and a
 * SIGPIPE it raised is taken back before it is unblocked (ioq__px_write).
 */
#include "posix.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#if defined(__linux__)
#  include <sys/syscall.h>
#endif

extern char **environ;

/* --- writes without SIGPIPE ------------------------------------------------------------- */

#if defined(F_SETNOSIGPIPE)
static void no_sigpipe_fd(int fd) { fcntl(fd, F_SETNOSIGPIPE, 1); }
#else
static void no_sigpipe_fd(int fd) { (void)fd; }
#endif

ssize_t ioq__px_write(int fd, const struct iovec *iov, int cnt)
{
    ssize_t n;
#if defined(F_SETNOSIGPIPE)
    do
        n = writev(fd, iov, cnt);
    while (n < 0 && errno == EINTR);
#else
    sigset_t pipe_set, old, pending;
    int e, was_pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    /* A SIGPIPE pending before the write is the host's own: leave it. */
    sigpending(&pending);
    was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    do
        n = writev(fd, iov, cnt);
    while (n < 0 && errno == EINTR);
    e = errno;
    if (n < 0 && e == EPIPE && !was_pending) {
        int sig;
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE))
            sigwait(&pipe_set, &sig);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
#endif
    return n;
}

int ioq__px_pipe_peek(int fd)
{
    struct pollfd pfd;
    int avail = 0;
    if (ioctl(fd, FIONREAD, &avail) == 0 && avail > 0)
        return 1;
    /* Nothing buffered: a hang-up (no writer left) is the end of the stream. */
    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR)))
        return 0;
    return -EAGAIN;
}

int ioq__px_pipe_shutdown(ioq__handle *h)
{
    int nul, rc = 0;
    if (h->rstate & IOQ__R_SHUTWR)
        return 0;
    if ((nul = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
        return ioq__os_errno_map(errno);
    /* dup2 closes the write end (the kernel drops its registrations with it) in the same
     * step that puts the null device on its number: the number is never free for another
     * descriptor while the handle holds it. */
    while (dup2(nul, (int)h->fd) < 0) {
        if (errno != EINTR) {
            rc = ioq__os_errno_map(errno);
            break;
        }
    }
    close(nul);
    if (rc == 0) {
        fcntl((int)h->fd, F_SETFD, FD_CLOEXEC);
        /* Sends behind the shutdown fail at once (EPIPE): none may wait for an edge. */
        h->rstate |= IOQ__R_SHUTWR | IOQ__R_WRITABLE;
    }
    return rc;
}

/* --- pipes and terminals ---------------------------------------------------------------- */

static int cloexec_pipe(int fds[2])
{
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__) || \
    defined(__DragonFly__)
    if (pipe2(fds, O_CLOEXEC) < 0)
        return ioq__os_errno_map(errno);
#else
    if (pipe(fds) < 0)
        return ioq__os_errno_map(errno);
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
#endif
    return 0;
}

int ioq__os_pipe(int64_t out[2], unsigned ours)
{
    int fds[2], rc = cloexec_pipe(fds);
    if (rc != 0)
        return rc;
    for (int i = 0; i < 2; i++) {
        /* A child's end stays as a child expects its stdio: blocking, SIGPIPE-raising. */
        if (ours & (1u << i)) {
            no_sigpipe_fd(fds[i]);
            if ((rc = ioq__px_set_nonblock(fds[i])) != 0) {
                close(fds[0]);
                close(fds[1]);
                return rc;
            }
        }
        out[i] = fds[i];
    }
    return 0;
}

int ioq__os_stream_adopt(int64_t fd64, uint32_t kind, uint16_t *rstate)
{
    int fd = (int)fd64, fl;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return IOQ_EINVAL;
    if (kind == IOQ_KIND_TTY) {
        if (!isatty(fd))
            return IOQ_ENOTTY;
    } else if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode) && !S_ISSOCK(st.st_mode)) {
        return IOQ_EINVAL; /* a regular file or a directory: IOQ_KIND_FILE */
    }
    if ((fl = fcntl(fd, F_GETFL)) < 0)
        return IOQ_EINVAL;
    *rstate = 0;
    if ((fl & O_ACCMODE) == O_WRONLY)
        *rstate |= IOQ__R_NOREAD;
    if ((fl & O_ACCMODE) == O_RDONLY)
        *rstate |= IOQ__R_NOWRITE;
    /* Close-on-exec stays as the caller had it: stdin or stdout adopted here may still be
     * meant for the children the host starts itself. */
    no_sigpipe_fd(fd);
    return ioq__px_set_nonblock(fd);
}

/* Kept per terminal handle: the mode it had before the first change. */
typedef struct {
    struct termios orig;
    bool raw;
} tty_saved;

int ioq__os_tty_mode(int64_t fd64, void **saved, uint32_t mode)
{
    int fd = (int)fd64;
    tty_saved *s = *saved;
    struct termios t;
    if (!s) {
        if (mode == IOQ_TTY_MODE_NORMAL)
            return 0; /* never changed */
        if (!(s = calloc(1, sizeof *s)))
            return IOQ_ENOMEM;
        if (tcgetattr(fd, &s->orig) < 0) {
            int e = errno;
            free(s);
            return e == ENOTTY ? IOQ_ENOTTY : ioq__os_errno_map(e);
        }
        *saved = s;
    }
    if (mode == IOQ_TTY_MODE_NORMAL) {
        t = s->orig;
    } else {
        /* Raw as libuv and cfmakeraw have it: bytes in as typed, no echo, no signals from
         * keys, output untouched. */
        t = s->orig;
        t.c_iflag &= ~(tcflag_t)(BRKINT | ICRNL | INPCK | ISTRIP | IXON);
        t.c_oflag |= (tcflag_t)ONLCR;
        t.c_cflag |= (tcflag_t)CS8;
        t.c_lflag &= ~(tcflag_t)(ECHO | ICANON | IEXTEN | ISIG);
        t.c_cc[VMIN] = 1;
        t.c_cc[VTIME] = 0;
    }
    while (tcsetattr(fd, TCSADRAIN, &t) < 0) {
        if (errno != EINTR)
            return errno == ENOTTY ? IOQ_ENOTTY : ioq__os_errno_map(errno);
    }
    s->raw = mode == IOQ_TTY_MODE_RAW;
    return 0;
}

void ioq__os_tty_free(int64_t fd, void *saved)
{
    tty_saved *s = saved;
    if (!s)
        return;
    /* A terminal left raw would be unusable for the shell after us. */
    if (s->raw && fd >= 0)
        tcsetattr((int)fd, TCSADRAIN, &s->orig);
    free(s);
}

int ioq__os_tty_size(int64_t fd, uint32_t *cols, uint32_t *rows)
{
    struct winsize ws;
    if (ioctl((int)fd, TIOCGWINSZ, &ws) < 0)
        return errno == ENOTTY ? IOQ_ENOTTY : ioq__os_errno_map(errno);
    *cols = ws.ws_col;
    *rows = ws.ws_row;
    return 0;
}

/* --- child processes ---------------------------------------------------------------------- */

/* Without pidfd, the thread that waits for a child reaps it and leaves the status here for
 * the loop (refs: the thread and the process handle, whichever lets go last frees it). */
typedef struct {
    atomic_int refs;
    atomic_int done;  /* set (release) once result is written */
    int64_t result;
} px_shared;

typedef struct {
    pid_t pid;
    bool reaped;
    int64_t result;   /* once reaped: exit code, or 256 + signal */
    px_shared *sh;    /* without pidfd: the waiting thread's record */
} px_proc;

static void shared_unref(px_shared *sh)
{
    if (atomic_fetch_sub_explicit(&sh->refs, 1, memory_order_acq_rel) == 1)
        free(sh);
}

/* Run fn(arg) on a detached thread with every signal blocked (the host's handlers must never
 * run there) and a small stack. */
static int detached(void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;
    int rc;
    sigfillset(&all);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024 > PTHREAD_STACK_MIN ? 64 * 1024 : PTHREAD_STACK_MIN);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&t, &attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc;
}

typedef struct {
    pid_t pid;
    int wfd;
    px_shared *sh;
} watch_arg;

/* Without pidfd: reap the child when it ends, leave its status, then close the write end so
 * that the loop's read end turns readable (the status is there before the loop looks). A
 * child whose handle was closed is reaped all the same. */
static void *exit_watch(void *p)
{
    watch_arg *a = p;
    int st = 0;
    pid_t r;
    while ((r = waitpid(a->pid, &st, 0)) < 0 && errno == EINTR)
        ;
    a->sh->result = r < 0                 ? IOQ_ESRCH
                    : WIFEXITED(st)       ? (int64_t)WEXITSTATUS(st)
                    : WIFSIGNALED(st)     ? 256 + (int64_t)WTERMSIG(st)
                                          : IOQ_EUNKNOWN;
    atomic_store_explicit(&a->sh->done, 1, memory_order_release);
    close(a->wfd);
    shared_unref(a->sh);
    free(a);
    return NULL;
}

/* With pidfd, a child whose handle is closed before it ends gets a thread that reaps it. */
static void *orphan_reap(void *p)
{
    pid_t pid = (pid_t)(intptr_t)p;
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return NULL;
}

/* A descriptor readable once the child has ended: 0 and *out, or IOQ_E*. */
static int wait_fd(px_proc *p, int64_t *out)
{
    int fds[2], rc;
    watch_arg *a;
#if defined(__linux__) && defined(SYS_pidfd_open)
    if (!getenv("IOQ_NO_PIDFD")) { /* the tests' way to run the fallback below */
        int fd = (int)syscall(SYS_pidfd_open, p->pid, 0);
        if (fd >= 0) {
            fcntl(fd, F_SETFD, FD_CLOEXEC);
            *out = fd;
            return 0;
        }
        if (errno != ENOSYS && errno != EPERM && errno != EINVAL)
            return ioq__os_errno_map(errno);
    }
#endif
    if ((rc = cloexec_pipe(fds)) != 0)
        return rc;
    a = malloc(sizeof *a);
    p->sh = calloc(1, sizeof *p->sh);
    if (!a || !p->sh) {
        free(a);
        free(p->sh);
        p->sh = NULL;
        close(fds[0]);
        close(fds[1]);
        return IOQ_ENOMEM;
    }
    atomic_init(&p->sh->refs, 2);
    atomic_init(&p->sh->done, 0);
    a->pid = p->pid;
    a->wfd = fds[1];
    a->sh = p->sh;
    if ((rc = detached(exit_watch, a)) != 0) {
        free(a);
        free(p->sh);
        p->sh = NULL;
        close(fds[0]);
        close(fds[1]);
        return ioq__os_errno_map(rc);
    }
    *out = fds[0];
    return 0;
}

/* The child's side, between fork and exec: only async-signal-safe calls. Never returns. */
static void child(const ioq_process_options *o, int src[3], char *const *envp,
                  const char *path, char *pathbuf, int errfd)
{
    sigset_t empty;
    int err = 0;

    /* Start clean: default dispositions (the parent blocked every signal before fork, so no
     * handler of the host runs here) and an empty mask. */
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &sa, NULL);
    }
    if ((o->flags & IOQ_SPAWN_NEW_SESSION) && setsid() < 0)
        goto fail;
    /* Move a source that sits on another stdio number out of the way first, so that no
     * dup2 below overwrites a source still to be used. */
    for (int i = 0; i < 3; i++) {
        if (src[i] >= 0 && src[i] < 3 && src[i] != i &&
            (src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3)) < 0)
            goto fail;
    }
    for (int i = 0; i < 3; i++) {
        if (src[i] < 0) {
            /* Inherited: also when ioq made it close-on-exec (a closed one stays closed). */
            fcntl(i, F_SETFD, 0);
            continue;
        }
        if (src[i] == i) {
            if (fcntl(i, F_SETFD, 0) < 0)
                goto fail;
        } else if (dup2(src[i], i) < 0) {
            goto fail;
        }
    }
    if (o->cwd && chdir(o->cwd) < 0)
        goto fail;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    if (!pathbuf) {
        execve(o->file, (char *const *)o->argv, envp);
        goto fail;
    }
    /* PATH search (PATH read before fork). An entry that cannot be searched
     * is passed over; EACCES is reported if no entry had the program. */
    {
        const char *p = path;
        size_t flen = strlen(o->file);
        bool denied = false;
        for (;;) {
            const char *end = p;
            size_t n;
            while (*end && *end != ':')
                end++;
            n = (size_t)(end - p);
            if (n == 0) {
                pathbuf[0] = '.';
                n = 1;
            } else {
                memcpy(pathbuf, p, n);
            }
            pathbuf[n] = '/';
            memcpy(pathbuf + n + 1, o->file, flen + 1);
            execve(pathbuf, (char *const *)o->argv, envp);
            if (errno == EACCES)
                denied = true;
            else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ELOOP &&
                     errno != ENAMETOOLONG)
                goto fail;
            if (!*end)
                break;
            p = end + 1;
        }
        errno = denied ? EACCES : ENOENT;
    }
fail:
    err = errno;
    while (write(errfd, &err, sizeof err) < 0 && errno == EINTR)
        ;
    _exit(127);
}

int ioq__os_spawn(const ioq_process_options *o, const int64_t fds[3], void **proc,
                  int64_t *wfd)
{
    px_proc *p;
    int src[3], devnull = -1, errp[2], rc, err = 0;
    const char *path = NULL;
    char *pathbuf = NULL;
    char *const *envp = o->env ? (char *const *)o->env : environ;
    sigset_t all, old;
    pid_t pid;
    ssize_t n;

    for (int i = 0; i < 3; i++) {
        if (fds[i] == IOQ__OS_DEVNULL && devnull < 0) {
            devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
            if (devnull < 0)
                return ioq__os_errno_map(errno);
        }
        src[i] = fds[i] == IOQ__OS_DEVNULL ? devnull : (int)fds[i];
    }
    if ((o->flags & IOQ_SPAWN_SEARCH_PATH) && !strchr(o->file, '/')) {
        /* The child's PATH when its environment is given, else ours. */
        if (o->env) {
            for (const char *const *e = o->env; *e; e++)
                if (strncmp(*e, "PATH=", 5) == 0)
                    path = *e + 5;
        } else {
            path = getenv("PATH");
        }
        if (!path || !*path)
            path = "/usr/local/bin:/bin:/usr/bin";
        if (!(pathbuf = malloc(strlen(path) + strlen(o->file) + 2))) {
            rc = IOQ_ENOMEM;
            goto out;
        }
    }
    if (!(p = calloc(1, sizeof *p))) {
        rc = IOQ_ENOMEM;
        goto out;
    }
    if ((rc = cloexec_pipe(errp)) != 0) {
        free(p);
        goto out;
    }
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = fork();
    if (pid == 0)
        child(o, src, envp, path, pathbuf, errp[1]);
    err = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(errp[1]);
    if (pid < 0) {
        close(errp[0]);
        free(p);
        rc = ioq__os_errno_map(err);
        goto out;
    }
    /* The pipe closes on exec (0 bytes) or carries the child's errno. */
    do
        n = read(errp[0], &err, sizeof err);
    while (n < 0 && errno == EINTR);
    close(errp[0]);
    if (n == (ssize_t)sizeof err) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        free(p);
        rc = err == ENOEXEC ? IOQ_ENOEXEC : ioq__os_errno_map(err);
        if (rc == IOQ_EUNKNOWN && (err == ETXTBSY || err == E2BIG))
            rc = err == E2BIG ? IOQ_EINVAL : IOQ_EBUSY;
        goto out;
    }
    p->pid = pid;
    if (*wfd == IOQ__OS_NO_WAIT_FD) {
        *wfd = -1; /* the backend waits by pid (kqueue's EVFILT_PROC) */
    } else if ((rc = wait_fd(p, wfd)) != 0) {
        /* The child runs but cannot be waited for: end it rather than lose it. */
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        free(p);
        goto out;
    }
    *proc = p;
    rc = 0;
out:
    if (devnull >= 0)
        close(devnull);
    free(pathbuf);
    return rc;
}

int ioq__os_process_reap(void *proc, int64_t *result)
{
    px_proc *p = proc;
    siginfo_t si;
    if (!p->reaped && p->sh) {
        if (!atomic_load_explicit(&p->sh->done, memory_order_acquire))
            return 0;
        if (p->sh->result < 0)
            return (int)p->sh->result;
        p->result = p->sh->result;
        p->reaped = true;
    } else if (!p->reaped) {
        int r;
        memset(&si, 0, sizeof si);
        do
            r = waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG);
        while (r < 0 && errno == EINTR);
        if (r < 0)
            return errno == ECHILD ? IOQ_ESRCH : ioq__os_errno_map(errno);
        if (si.si_pid == 0)
            return 0; /* still running */
        p->reaped = true;
        p->result = si.si_code == CLD_EXITED ? (si.si_status & 0xff) : 256 + si.si_status;
    }
    *result = p->result;
    return 1;
}

int ioq__os_process_kill(void *proc, int sig)
{
    px_proc *p = proc;
    if (sig < 0 || sig >= NSIG)
        return IOQ_EINVAL;
    /* Once reaped the pid may belong to another process: never signal it. */
    if (p->reaped || (p->sh && atomic_load_explicit(&p->sh->done, memory_order_acquire)))
        return IOQ_ESRCH;
    if (kill(p->pid, sig) < 0)
        return errno == ESRCH ? IOQ_ESRCH : ioq__os_errno_map(errno);
    return 0;
}

int64_t ioq__os_process_pid(void *proc) { return ((px_proc *)proc)->pid; }

void ioq__os_process_free(void *proc, bool kill_it)
{
    px_proc *p = proc;
    int64_t res;
    if (!p)
        return;
    if (kill_it)
        ioq__os_process_kill(p, SIGKILL);
    if (p->sh) {
        shared_unref(p->sh); /* its thread reaps the child */
    } else if (ioq__os_process_reap(p, &res) == 0) {
        /* Still running: a thread waits for it, so that it never stays a zombie. Without a
         * thread to spare it would (blocking the loop instead is worse). */
        (void)detached(orphan_reap, (void *)(intptr_t)p->pid);
    }
    free(p);
}
