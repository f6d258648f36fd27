/*
 * Pipes, terminals and child processes (ABI 1.1): argument checks. The work behind them
 * is not built yet: every call that passes its checks returns IOQ_ENOTSUP.
 */
#include "loop.h"

static int loop_ok(ioq_loop *loop)
{
    if (!loop)
        return IOQ_EINVAL;
    return loop->in_free ? IOQ_EMISUSE : 0;
}

int ioq__adopt_stream(ioq_loop *loop, uint64_t os_handle, uint32_t kind, ioq_handle *out)
{
    (void)loop;
    (void)os_handle;
    (void)kind;
    (void)out;
    return IOQ_ENOTSUP; /* not built yet */
}

int ioq_pipe(ioq_loop *loop, uint32_t flags, ioq_handle out[2])
{
    int rc = loop_ok(loop);
    if (rc != 0)
        return rc;
    if (!out || flags)
        return IOQ_EINVAL;
    return IOQ_ENOTSUP; /* not built yet */
}

static int tty_get(ioq_loop *loop, ioq_handle tty)
{
    int rc = loop_ok(loop);
    if (rc != 0)
        return rc;
    return ioq__handle_get(loop, tty, IOQ__KIND_BIT(IOQ__K_TTY)) ? 0 : IOQ_EBADHANDLE;
}

int ioq_tty_set_mode(ioq_loop *loop, ioq_handle tty, uint32_t mode)
{
    int rc = tty_get(loop, tty);
    if (rc != 0)
        return rc;
    if (mode != IOQ_TTY_MODE_NORMAL && mode != IOQ_TTY_MODE_RAW)
        return IOQ_EINVAL;
    return IOQ_ENOTSUP; /* not built yet */
}

int ioq_tty_get_size(ioq_loop *loop, ioq_handle tty, uint32_t *cols, uint32_t *rows)
{
    int rc = tty_get(loop, tty);
    if (rc != 0)
        return rc;
    if (!cols || !rows)
        return IOQ_EINVAL;
    return IOQ_ENOTSUP; /* not built yet */
}

int ioq_spawn(ioq_loop *loop, const ioq_process_options *opts, ioq_handle *process,
              ioq_handle pipes[3])
{
    int rc = loop_ok(loop);
    if (rc != 0)
        return rc;
    if (!opts || !process || opts->size < sizeof(ioq_process_options) || !opts->file ||
        !*opts->file || !opts->argv || !opts->argv[0] ||
        (opts->flags & ~(uint32_t)(IOQ_SPAWN_SEARCH_PATH | IOQ_SPAWN_NEW_SESSION)))
        return IOQ_EINVAL;
    for (int i = 0; i < 3; i++) {
        if (opts->stdio[i].mode > IOQ_STDIO_OS || opts->stdio[i].reserved)
            return IOQ_EINVAL;
        if (opts->stdio[i].mode == IOQ_STDIO_PIPE && !pipes)
            return IOQ_EINVAL;
    }
    return IOQ_ENOTSUP; /* not built yet */
}

static int process_get(ioq_loop *loop, ioq_handle process)
{
    int rc = loop_ok(loop);
    if (rc != 0)
        return rc;
    return ioq__handle_get(loop, process, IOQ__KIND_BIT(IOQ__K_PROCESS)) ? 0 : IOQ_EBADHANDLE;
}

int ioq_process_wait(ioq_loop *loop, ioq_handle process, uint64_t token)
{
    int rc = process_get(loop, process);
    (void)token;
    return rc != 0 ? rc : IOQ_ENOTSUP; /* not built yet */
}

int ioq_kill(ioq_loop *loop, ioq_handle process, int signum)
{
    int rc = process_get(loop, process);
    if (rc != 0)
        return rc;
    if (signum < 0 || signum > 64)
        return IOQ_EINVAL;
    return IOQ_ENOTSUP; /* not built yet */
}

int ioq_process_pid(ioq_loop *loop, ioq_handle process, int64_t *pid)
{
    int rc = process_get(loop, process);
    if (rc != 0)
        return rc;
    if (!pid)
        return IOQ_EINVAL;
    return IOQ_ENOTSUP; /* not built yet */
}
