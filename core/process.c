/*
 * Pipes, terminals and child processes (ABI 1.1): the submission calls. A pipe or terminal
 * is a stream handle (kinds PIPE and TTY) that recv, recv_pool, send, sendv, shutdown and
 * close take like a socket's, in the same stream order; the backends read and write it
 * with read/write instead of recv/send. A child process is a handle (kind PROCESS) whose
 * descriptor turns readable when the child ends (the OS layer's "wait descriptor"), so
 * ioq_process_wait is a receive on it that the backend finishes by reaping the child.
 * The OS work (fork and exec, pidfd, termios) is the OS layer's (os.h).
 */
#include "loop.h"

static int loop_ok(ioq_loop *loop)
{
    if (!loop)
        return IOQ_EINVAL;
    return loop->in_free ? IOQ_EMISUSE : 0;
}

/* A stream handle for descriptor fd, which ioq owns from here on (closed on failure). */
static int stream_handle(ioq_loop *loop, uint8_t kind, int64_t fd, uint16_t dir,
                         ioq__handle **out)
{
    int rc = ioq__handle_take(loop, kind, 0, fd, out);
    if (rc == 0)
        (*out)->rstate |= dir;
    return rc;
}

int ioq__adopt_stream(ioq_loop *loop, uint64_t os_handle, uint32_t kind, ioq_handle *out)
{
    uint16_t dir = 0;
    ioq__handle *h;
    int rc = ioq__os_stream_adopt((int64_t)os_handle, kind, &dir);
    if (rc != 0)
        return rc;
    /* On failure the descriptor is not ours yet: the caller keeps it. */
    if ((rc = ioq__handle_open(loop, (uint8_t)kind, 0, (int64_t)os_handle, &h)) != 0)
        return rc;
    h->rstate |= dir;
    *out = ioq__handle_value(loop, h);
    return 0;
}

int ioq_pipe(ioq_loop *loop, uint32_t flags, ioq_handle out[2])
{
    ioq__handle *r, *w;
    int64_t fds[2];
    int rc = loop_ok(loop);
    if (rc != 0)
        return rc;
    if (!out || flags)
        return IOQ_EINVAL;
    if ((rc = ioq__os_pipe(fds, 3)) != 0)
        return rc;
    if ((rc = stream_handle(loop, IOQ__K_PIPE, fds[0], IOQ__R_NOWRITE, &r)) != 0) {
        ioq__os_close(fds[1]);
        return rc;
    }
    if ((rc = stream_handle(loop, IOQ__K_PIPE, fds[1], IOQ__R_NOREAD, &w)) != 0) {
        ioq__handle_destroy(loop, r);
        return rc;
    }
    out[0] = ioq__handle_value(loop, r);
    out[1] = ioq__handle_value(loop, w);
    return 0;
}

static int tty_get(ioq_loop *loop, ioq_handle tty, ioq__handle **h)
{
    return ioq__handle_arg(loop, tty, IOQ__KIND_BIT(IOQ__K_TTY), h);
}

int ioq_tty_set_mode(ioq_loop *loop, ioq_handle tty, uint32_t mode)
{
    ioq__handle *h;
    int rc = tty_get(loop, tty, &h);
    if (rc != 0)
        return rc;
    if (mode != IOQ_TTY_MODE_NORMAL && mode != IOQ_TTY_MODE_RAW)
        return IOQ_EINVAL;
    if (h->fd < 0)
        return IOQ_ENOTTY; /* shut down */
    return ioq__os_tty_mode(h->fd, &h->obj, mode);
}

int ioq_tty_get_size(ioq_loop *loop, ioq_handle tty, uint32_t *cols, uint32_t *rows)
{
    ioq__handle *h;
    int rc = tty_get(loop, tty, &h);
    if (rc != 0)
        return rc;
    if (!cols || !rows)
        return IOQ_EINVAL;
    if (h->fd < 0)
        return IOQ_ENOTTY;
    return ioq__os_tty_size(h->fd, cols, rows);
}

/* What an IOQ_STDIO_HANDLE may name: anything with a descriptor a child can use. */
#define STDIO_KINDS                                                                        \
    (IOQ__KIND_BIT(IOQ__K_PIPE) | IOQ__KIND_BIT(IOQ__K_TTY) | IOQ__KIND_BIT(IOQ__K_TCP) |  \
     IOQ__KIND_BIT(IOQ__K_LOCAL) | IOQ__KIND_BIT(IOQ__K_FILE))

int ioq_spawn(ioq_loop *loop, const ioq_process_options *opts, ioq_handle *process,
              ioq_handle pipes[3])
{
    int64_t child_fd[3] = {-1, -1, -1}, pfd[3][2];
    ioq__handle *ph[3] = {NULL, NULL, NULL}, *p;
    void *proc = NULL;
    int64_t wfd;
    int rc = loop_ok(loop);
    if (rc != 0)
        return rc;
    if (!opts || !process || opts->size < sizeof(ioq_process_options) || !opts->file ||
        !*opts->file || !opts->argv || !opts->argv[0] ||
        (opts->flags & ~(uint32_t)(IOQ_SPAWN_SEARCH_PATH | IOQ_SPAWN_NEW_SESSION)))
        return IOQ_EINVAL;
    /* Every check first: nothing is created before the options are known to be good. */
    for (int i = 0; i < 3; i++) {
        const ioq_stdio *s = &opts->stdio[i];
        if (s->mode > IOQ_STDIO_OS || s->reserved)
            return IOQ_EINVAL;
        if (s->mode == IOQ_STDIO_PIPE && !pipes)
            return IOQ_EINVAL;
        if (s->mode == IOQ_STDIO_HANDLE) {
            ioq__handle *h = ioq__handle_get(loop, s->value, STDIO_KINDS);
            if (!h || h->fd < 0)
                return IOQ_EBADHANDLE;
            child_fd[i] = h->fd;
        } else if (s->mode == IOQ_STDIO_OS) {
            if (!ioq__os_valid_fd(s->value))
                return IOQ_EINVAL;
            child_fd[i] = (int64_t)s->value;
        } else if (s->mode == IOQ_STDIO_NULL) {
            child_fd[i] = IOQ__OS_DEVNULL;
        }
    }
    if (pipes)
        pipes[0] = pipes[1] = pipes[2] = 0;
    /* The pipes: the parent's end a handle (non-blocking as its backend wants), the child's
     * end a plain blocking descriptor, closed here once the child has its copy. */
    for (int i = 0; i < 3; i++) {
        int parent;
        if (opts->stdio[i].mode != IOQ_STDIO_PIPE)
            continue;
        parent = i == 0 ? 1 : 0; /* the child reads its stdin, writes stdout and stderr */
        if ((rc = ioq__os_pipe(pfd[i], 1u << parent)) != 0)
            goto fail;
        if ((rc = stream_handle(loop, IOQ__K_PIPE, pfd[i][parent],
                                parent ? IOQ__R_NOREAD : IOQ__R_NOWRITE, &ph[i])) != 0) {
            ioq__os_close(pfd[i][1 - parent]);
            goto fail;
        }
        child_fd[i] = pfd[i][1 - parent];
    }
    wfd = loop->backend->wait_by_pid ? IOQ__OS_NO_WAIT_FD : -1;
    rc = ioq__os_spawn(opts, child_fd, &proc, &wfd);
    for (int i = 0; i < 3; i++)
        if (ph[i])
            ioq__os_close(child_fd[i]);
    if (rc != 0)
        goto fail_handles;
    if ((rc = ioq__handle_take(loop, IOQ__K_PROCESS, 0, wfd, &p)) != 0) {
        /* The caller never learns of this child: end it (and have it reaped). */
        ioq__os_process_free(proc, true);
        goto fail_handles;
    }
    p->obj = proc;
    *process = ioq__handle_value(loop, p);
    for (int i = 0; i < 3; i++)
        if (ph[i])
            pipes[i] = ioq__handle_value(loop, ph[i]);
    return 0;

fail:
    for (int i = 0; i < 3; i++)
        if (ph[i] && child_fd[i] >= 0)
            ioq__os_close(child_fd[i]);
fail_handles:
    for (int i = 0; i < 3; i++)
        if (ph[i])
            ioq__handle_destroy(loop, ph[i]);
    return rc;
}

static int process_get(ioq_loop *loop, ioq_handle process, ioq__handle **h)
{
    return ioq__handle_arg(loop, process, IOQ__KIND_BIT(IOQ__K_PROCESS), h);
}

int ioq_process_wait(ioq_loop *loop, ioq_handle process, uint64_t token)
{
    ioq__handle *h;
    ioq__op *op;
    int rc = process_get(loop, process, &h);
    if (rc != 0)
        return rc;
    if (h->readq.head)
        return IOQ_EBUSY;
    if (!(op = ioq__op_new(loop, IOQ_OP_PROCESS_WAIT, token)))
        return IOQ_ENOMEM;
    return ioq__op_start(loop, op, h);
}

int ioq_kill(ioq_loop *loop, ioq_handle process, int signum)
{
    ioq__handle *h;
    int rc = process_get(loop, process, &h);
    if (rc != 0)
        return rc;
    if (signum < 0 || signum > 64)
        return IOQ_EINVAL;
    return ioq__os_process_kill(h->obj, signum);
}

int ioq_process_pid(ioq_loop *loop, ioq_handle process, int64_t *pid)
{
    ioq__handle *h;
    int rc = process_get(loop, process, &h);
    if (rc != 0)
        return rc;
    if (!pid)
        return IOQ_EINVAL;
    *pid = ioq__os_process_pid(h->obj);
    return 0;
}
