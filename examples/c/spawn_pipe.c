/*
 * spawn_pipe - run a program and stream its standard output through ioq as it comes.
 *
 *   spawn_pipe program [argument ...]
 *   (without arguments: /bin/sh -c 'for i in 1 2 3; do echo "line $i"; sleep 0.1; done',
 *   on Windows cmd /c "echo line 1& echo line 2& echo line 3")
 *
 * The program is looked up in PATH. Its stdout is a pipe whose parent end is an ioq
 * handle: each chunk is received, numbered and printed as soon as it arrives, while a
 * process wait runs beside the receives. The example ends when both the stream has ended
 * (the child, and anything it started, closed its stdout) and the child has been waited
 * for, and exits with the child's status (128 + signal if a signal ended it, as shells do;
 * on Windows a status of 256 + n comes from ioq_kill, see ioq_process_wait).
 */
#include <ioq.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TOK_RECV = 1, TOK_WAIT, TOK_CLOSE };

int main(int argc, char **argv)
{
#ifdef _WIN32
    static const char *const demo[] = {"cmd", "/c", "echo line 1& echo line 2& echo line 3",
                                       NULL};
#else
    static const char *const demo[] = {
        "sh", "-c", "for i in 1 2 3; do echo \"line $i\"; sleep 0.1; done", NULL};
#endif
    ioq_process_options opts;
    ioq_handle proc, pipes[3];
    ioq_loop *loop;
    char buf[4096];
    int rc, ended = 0, waited = 0, closing = 0;
    int64_t status = 0;
    unsigned chunks = 0;

    memset(&opts, 0, sizeof opts);
    opts.size = sizeof opts;
    opts.flags = IOQ_SPAWN_SEARCH_PATH;
    opts.argv = argc > 1 ? (const char *const *)(argv + 1) : demo;
    opts.file = opts.argv[0];
    opts.stdio[0].mode = IOQ_STDIO_NULL;    /* nothing to read */
    opts.stdio[1].mode = IOQ_STDIO_PIPE;    /* streamed to us */
    opts.stdio[2].mode = IOQ_STDIO_INHERIT; /* errors straight to our stderr */

    if ((rc = ioq_loop_new(NULL, &loop)) != 0) {
        fprintf(stderr, "spawn_pipe: ioq_loop_new: %s\n", ioq_strerror(rc));
        return 1;
    }
    if ((rc = ioq_spawn(loop, &opts, &proc, pipes)) != 0) {
        /* An exec failure (ENOENT, EACCES, ENOEXEC) is reported here, synchronously. */
        fprintf(stderr, "spawn_pipe: %s: %s\n", opts.file, ioq_strerror(rc));
        ioq_loop_free(loop);
        return 127;
    }
    if ((rc = ioq_recv(loop, pipes[1], buf, sizeof buf, TOK_RECV)) != 0 ||
        (rc = ioq_process_wait(loop, proc, TOK_WAIT)) != 0) {
        fprintf(stderr, "spawn_pipe: submit: %s\n", ioq_strerror(rc));
        ioq_loop_free(loop);
        return 1;
    }
    while (closing < 2) {
        ioq_cqe cqe[8];
        int n = ioq_poll(loop, cqe, 8, -1);
        if (n < 0) {
            fprintf(stderr, "spawn_pipe: ioq_poll: %s\n", ioq_strerror(n));
            break;
        }
        for (int i = 0; i < n; i++) {
            switch (cqe[i].token) {
            case TOK_RECV:
                if (cqe[i].result > 0) {
                    printf("[chunk %u, %lld bytes] %.*s", ++chunks, (long long)cqe[i].result,
                           (int)cqe[i].result, buf);
                    fflush(stdout);
                    rc = ioq_recv(loop, pipes[1], buf, sizeof buf, TOK_RECV);
                    if (rc == 0)
                        break;
                    fprintf(stderr, "spawn_pipe: ioq_recv: %s\n", ioq_strerror(rc));
                } else if (cqe[i].result < 0) {
                    fprintf(stderr, "spawn_pipe: receive: %s\n", ioq_strerror(cqe[i].result));
                }
                ended = 1; /* end of stream (0) or an error */
                break;
            case TOK_WAIT:
                waited = 1;
                status = cqe[i].result;
                break;
            case TOK_CLOSE:
                closing++;
                break;
            }
        }
        if (ended == 1) {
            ended = 2;
            ioq_close(loop, pipes[1], TOK_CLOSE);
        }
        if (waited == 1) {
            waited = 2;
            ioq_close(loop, proc, TOK_CLOSE);
        }
    }
    ioq_loop_free(loop);
    if (status < 0) {
        fprintf(stderr, "spawn_pipe: wait: %s\n", ioq_strerror(status));
        return 1;
    }
    if (status >= 256) {
        fprintf(stderr, "spawn_pipe: %s ended by signal %lld\n", opts.file,
                (long long)(status - 256));
        return 128 + (int)(status - 256);
    }
    fprintf(stderr, "spawn_pipe: %s exited with %lld after %u chunk(s)\n", opts.file,
            (long long)status, chunks);
    return (int)status;
}
