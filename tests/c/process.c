/* Child processes: ioq_spawn, ioq_process_wait, ioq_kill, ioq_process_pid and close. The
 * children are /bin/sh scripts on POSIX; on Windows they are scripts of the small child
 * program tests/windows/child.c (its own command language: S_* below hold both forms). */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifndef _WIN32
#  include <sys/wait.h>
#endif

#ifdef _WIN32
#  ifndef SIGKILL
#    define SIGKILL 9
#  endif
#  define S_SLEEP_30 "sleep 30000"
#  define S_SLEEP_200 "sleep 200"
#  define S_LINES "lines 20000; echo err >&2"
#  define S_STDIO_KINDS "cat; echo to-handle; echo to-os >&2"
#  define S_INHERITED "test-env IOQ_INHERITED yes"
#  define S_ECHO_INHERITED "echo inherited"

/* The child program, beside the test program. */
static const char *child_exe(void)
{
    static char path[MAX_PATH + 32];
    if (!path[0]) {
        DWORD n = GetModuleFileNameA(NULL, path, MAX_PATH);
        assert_true(n > 0 && n < MAX_PATH);
        while (n > 0 && path[n - 1] != '\\' && path[n - 1] != '/')
            n--;
        strcpy(path + n, "ioq_test_child.exe");
    }
    return path;
}

/* Options for the child program running script, with every stdio inherited. */
static ioq_process_options sh_opts(const char *script, const char **argv)
{
    ioq_process_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    argv[0] = "child";
    argv[1] = script;
    argv[2] = NULL;
    o.file = child_exe();
    o.argv = argv;
    return o;
}

/* Is process pid still running? */
static int proc_alive(int64_t pid)
{
    HANDLE h = OpenProcess(SYNCHRONIZE, FALSE, (DWORD)pid);
    int alive;
    if (!h)
        return 0;
    alive = WaitForSingleObject(h, 0) == WAIT_TIMEOUT;
    CloseHandle(h);
    return alive;
}

/* Read a plain (synchronous) pipe to its end. */
static size_t read_handle(HANDLE h, char *buf, size_t cap)
{
    size_t got = 0;
    DWORD n;
    while (got < cap && ReadFile(h, buf + got, (DWORD)(cap - got), &n, NULL) && n > 0)
        got += n;
    return got;
}
#else
#  define S_SLEEP_30 "exec sleep 30"
#  define S_SLEEP_200 "sleep 0.2"
#  define S_LINES                                                                            \
      "i=0; while [ $i -lt 20000 ]; do echo \"line $i\"; i=$((i+1)); done; echo err >&2"
#  define S_STDIO_KINDS "cat; echo to-handle; echo to-os >&2"
#  define S_INHERITED "test \"$IOQ_INHERITED\" = yes"
#  define S_ECHO_INHERITED "echo inherited"

static const char *const SH = "/bin/sh";

/* Options for /bin/sh -c script, with every stdio inherited. */
static ioq_process_options sh_opts(const char *script, const char **argv)
{
    ioq_process_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    argv[0] = "sh";
    argv[1] = "-c";
    argv[2] = script;
    argv[3] = NULL;
    o.file = SH;
    o.argv = argv;
    return o;
}

static int proc_alive(int64_t pid) { return kill((pid_t)pid, 0) == 0; }
#endif

static int h_wait_proc(ioq_loop *l, ioq_handle p, uint64_t tok)
{
    return h_track(l, ioq_process_wait(l, p, tok), tok, IOQ_OP_PROCESS_WAIT, 0);
}

/* Spawn, wait, close: the child's result. */
static int64_t run(ioq_loop *l, const ioq_process_options *o)
{
    ioq_handle p;
    assert_int_equal(ioq_spawn(l, o, &p, NULL), 0);
    uint64_t t = h_tok();
    assert_int_equal(h_wait_proc(l, p, t), 0);
    ioq_cqe c = h_wait(l, t);
    assert_int_equal(c.value, 0);
    h_close_wait(l, p);
    return c.result;
}

static int64_t run_sh(ioq_loop *l, const char *script)
{
    const char *argv[4];
    ioq_process_options o = sh_opts(script, argv);
    return run(l, &o);
}

/* Read a PIPE handle to its end. */
static size_t read_all(ioq_loop *l, ioq_handle h, char *buf, size_t cap)
{
    size_t got = 0;
    for (;;) {
        assert_true(got < cap);
        int64_t n = h_recv_once(l, h, buf + got, cap - got);
        assert_true(n >= 0);
        if (n == 0)
            return got;
        got += (size_t)n;
    }
}

/* Wait (a little) until the process has `want` descriptors again: a child's waiting thread
 * (the path without pidfd) closes its end of a pipe just after it reaped the child. */
static void settle_fds(int want)
{
    uint64_t t0 = h_mono_ns();
    while (h_fd_count() != want && h_mono_ns() - t0 < 5ull * 1000000000)
        usleep(5000);
    assert_int_equal(h_fd_count(), want);
}

static void no_children_left(void)
{
#ifndef _WIN32 /* Windows has no zombies: a process is gone once every handle is closed */
    /* Every child this test made was reaped (by ioq): none is left, not even a zombie. */
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
#endif
}

static void test_exit_code(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    assert_int_equal(run_sh(loop, "exit 0"), 0);
    assert_int_equal(run_sh(loop, "exit 7"), 7);
    assert_int_equal(run_sh(loop, "exit 255"), 255);
    no_children_left();
    h_finish(loop);
}

static void test_signal(void **state)
{
    (void)state;
#ifdef _WIN32
    h_skip("no signals on Windows"); /* disabled there: tests/windows/README.md */
#else
    ioq_loop *loop = h_loop_new();
    assert_int_equal(run_sh(loop, "kill -TERM $$"), 256 + SIGTERM);
    assert_int_equal(run_sh(loop, "kill -KILL $$"), 256 + SIGKILL);
    h_finish(loop);
#endif
}

static void test_kill(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    const char *argv[4];
    ioq_process_options o = sh_opts(S_SLEEP_30, argv);
    ioq_handle p;
    assert_int_equal(ioq_spawn(loop, &o, &p, NULL), 0);
    int64_t pid = 0;
    assert_int_equal(ioq_process_pid(loop, p, &pid), 0);
    assert_true(pid > 0);
    assert_true(proc_alive(pid));
    uint64_t t = h_tok();
    assert_int_equal(h_wait_proc(loop, p, t), 0);
    h_assert_quiet(loop, 20);
    assert_int_equal(ioq_kill(loop, p, 0), 0); /* signal 0: is it there? */
    assert_int_equal(ioq_kill(loop, p, SIGKILL), 0);
    ioq_cqe c = h_wait(loop, t);
    assert_int_equal(c.result, 256 + SIGKILL);
    /* Reaped: the pid is not ours any more, and is never signalled. */
    assert_int_equal(ioq_kill(loop, p, SIGTERM), IOQ_ESRCH);
    /* A wait after the end completes at once, with the same status. */
    t = h_tok();
    assert_int_equal(h_wait_proc(loop, p, t), 0);
    c = h_wait(loop, t);
    assert_int_equal(c.result, 256 + SIGKILL);
    h_close_wait(loop, p);
    no_children_left();
    h_finish(loop);
}

/* SIGINT can be handled by the child: it ends with the code its handler chose. On Windows
 * the child is in a process group of its own (IOQ_SPAWN_NEW_SESSION) and gets Ctrl-Break;
 * this needs a console that parent and child share. */
static void test_kill_int_handled(void **state)
{
    (void)state;
#ifdef _WIN32
    if (GetConsoleCP() == 0) {
        h_skip("no console: SIGINT is sent as Ctrl-Break to a console process group, and "
               "this process has no console (wine runs the tests without one, and wine 8 "
               "cannot send console control events even in a pseudo console)");
        return;
    }
#  define S_ON_INT "on-break 42; echo ready; sleep 30000"
#else
#  define S_ON_INT "trap 'exit 42' INT; echo ready; while :; do sleep 0.05; done"
#endif
    ioq_loop *loop = h_loop_new();
    const char *argv[4];
    ioq_process_options o = sh_opts(S_ON_INT, argv);
    o.flags = IOQ_SPAWN_NEW_SESSION;
    o.stdio[1].mode = IOQ_STDIO_PIPE;
    ioq_handle p, pipes[3];
    char buf[8];
    assert_int_equal(ioq_spawn(loop, &o, &p, pipes), 0);
    h_recv_exact(loop, pipes[1], buf, 6); /* its handler is in place */
    assert_memory_equal(buf, "ready\n", 6);
    uint64_t t = h_tok();
    assert_int_equal(h_wait_proc(loop, p, t), 0);
    assert_int_equal(ioq_kill(loop, p, SIGINT), 0);
    assert_int_equal(h_wait(loop, t).result, 42);
    h_close_wait(loop, pipes[1]);
    h_close_wait(loop, p);
    h_finish(loop);
}

static void test_stdout_pipe(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    const char *argv[4];
    /* 20000 lines, written as the child goes: streamed, in order, to the end. */
    ioq_process_options o = sh_opts(S_LINES, argv);
    o.stdio[1].mode = IOQ_STDIO_PIPE;
    o.stdio[2].mode = IOQ_STDIO_PIPE;
    ioq_handle p, pipes[3] = {1, 1, 1};
    assert_int_equal(ioq_spawn(loop, &o, &p, pipes), 0);
    assert_int_equal(pipes[0], 0);
    assert_int_not_equal(pipes[1], 0);
    assert_int_not_equal(pipes[2], 0);
    static char out[400000];
    size_t n = read_all(loop, pipes[1], out, sizeof out);
    char line[32];
    size_t pos = 0;
    for (int i = 0; i < 20000; i++) {
        int len = snprintf(line, sizeof line, "line %d\n", i);
        assert_true(pos + (size_t)len <= n);
        assert_memory_equal(out + pos, line, (size_t)len);
        pos += (size_t)len;
    }
    assert_int_equal(pos, n);
    char err[16];
    assert_int_equal(read_all(loop, pipes[2], err, sizeof err), 4);
    assert_memory_equal(err, "err\n", 4);
    uint64_t t = h_tok();
    assert_int_equal(h_wait_proc(loop, p, t), 0);
    assert_int_equal(h_wait(loop, t).result, 0);
    h_close_wait(loop, pipes[1]);
    h_close_wait(loop, pipes[2]);
    h_close_wait(loop, p);
    h_finish(loop);
}

static void test_stdin_pipe(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
#ifdef _WIN32
    /* Found in PATH (the child's own, given in env), ".exe" added. */
    const char *argv[] = {"child", "cat", NULL};
    char pathvar[MAX_PATH + 8];
    snprintf(pathvar, sizeof pathvar, "PATH=%s", child_exe());
    *strrchr(pathvar, '\\') = 0;
    const char *env[] = {pathvar, NULL};
    ioq_process_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.flags = IOQ_SPAWN_SEARCH_PATH;
    o.file = "ioq_test_child";
    o.argv = argv;
    o.env = env;
#else
    const char *argv[] = {"cat", NULL};
    ioq_process_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.flags = IOQ_SPAWN_SEARCH_PATH;
    o.file = "cat";
    o.argv = argv;
#endif
    o.stdio[0].mode = IOQ_STDIO_PIPE;
    o.stdio[1].mode = IOQ_STDIO_PIPE;
    ioq_handle p, pipes[3];
    assert_int_equal(ioq_spawn(loop, &o, &p, pipes), 0);
    assert_int_equal(pipes[2], 0);
    /* More than a pipe holds: cat echoes while we write, both streams move at once. */
    enum { LEN = 1 << 20 };
    static char in[LEN], out[LEN + 1];
    h_fill(in, LEN, 3, 0);
    uint64_t s = h_tok(), sd = h_tok();
    assert_int_equal(h_send(loop, pipes[0], in, LEN, s), 0);
    assert_int_equal(h_shutdown(loop, pipes[0], sd), 0);
    assert_int_equal(read_all(loop, pipes[1], out, sizeof out), LEN);
    assert_int_equal(h_wait(loop, s).result, LEN);
    assert_int_equal(h_wait(loop, sd).result, 0);
    assert_true(h_check(out, LEN, 3, 0));
    uint64_t t = h_tok();
    assert_int_equal(h_wait_proc(loop, p, t), 0);
    assert_int_equal(h_wait(loop, t).result, 0);
    h_close_wait(loop, pipes[0]);
    h_close_wait(loop, pipes[1]);
    h_close_wait(loop, p);
    h_finish(loop);
}

static void test_exec_failure(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    const char *argv[] = {"prog", NULL};
    ioq_process_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.argv = argv;
    ioq_handle p = 0;
    o.file = "/nonexistent/ioq-no-such-program";
    assert_int_equal(ioq_spawn(loop, &o, &p, NULL), IOQ_ENOENT);
    o.flags = IOQ_SPAWN_SEARCH_PATH;
    o.file = "ioq-no-such-program-in-path";
    assert_int_equal(ioq_spawn(loop, &o, &p, NULL), IOQ_ENOENT);
    o.flags = 0;
    int fd;
#ifndef _WIN32 /* Windows has no execute bit */
    /* Not executable (even root needs an x bit to exec). */
    const char *noexec = h_path("noexec");
    fd = open(noexec, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "#!/bin/sh\nexit 0\n", 17), 17);
    close(fd);
    o.file = noexec;
    assert_int_equal(ioq_spawn(loop, &o, &p, NULL), IOQ_EACCES);
#endif
    /* Executable, but no format the kernel knows. */
    const char *garbage = h_path("garbage.exe");
    fd = open(garbage, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\001\002\003\004 not a program\n", 20), 20);
    close(fd);
    o.file = garbage;
    assert_int_equal(ioq_spawn(loop, &o, &p, NULL), IOQ_ENOEXEC);
    /* A directory as cwd that does not exist. */
    const char *sh_argv[4];
    ioq_process_options s = sh_opts("exit 0", sh_argv);
    s.cwd = "/nonexistent/ioq-dir";
    assert_int_equal(ioq_spawn(loop, &s, &p, NULL), IOQ_ENOENT);
    /* Pipes made for a child that never ran are gone again. */
    s.cwd = NULL;
    s.file = "/nonexistent/ioq-no-such-program";
    s.stdio[1].mode = IOQ_STDIO_PIPE;
    ioq_handle pipes[3] = {5, 5, 5};
    assert_int_equal(ioq_spawn(loop, &s, &p, pipes), IOQ_ENOENT);
    assert_int_equal(p, 0);
    /* Every failed child was reaped by the call: no zombie. */
    no_children_left();
    h_finish(loop);
}

static void test_close_no_kill(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    const char *argv[4];
    char script[600];
    const char *mark = h_path("mark");
#ifdef _WIN32
    snprintf(script, sizeof script, "sleep 500; mark %s", mark);
#else
    snprintf(script, sizeof script, "sleep 0.5; echo done > '%s'", mark);
#endif
    ioq_process_options o = sh_opts(script, argv);
    ioq_handle p;
    int fds = h_fd_count();
    assert_int_equal(ioq_spawn(loop, &o, &p, NULL), 0);
    int64_t pid;
    assert_int_equal(ioq_process_pid(loop, p, &pid), 0);
    uint64_t t = h_tok();
    assert_int_equal(h_wait_proc(loop, p, t), 0);
    /* The close ends the wait, not the child (which, on a slow machine, may have ended
     * already: then the wait has its status). */
    h_close_wait(loop, p);
    int64_t res = h_wait(loop, t).result;
    assert_true(res == IOQ_ECANCELED || res == 0);
    /* It finishes its work (the mark is written after its sleep: a killed child would never
     * write it), and is reaped by ioq: gone without a zombie. */
    uint64_t t0 = h_mono_ns();
    struct stat st;
    while (stat(mark, &st) != 0 || proc_alive(pid)) {
        assert_true(h_mono_ns() - t0 < 10ull * 1000000000);
        usleep(10000);
    }
#ifndef _WIN32
    assert_int_equal(errno, ESRCH);
#endif
    settle_fds(fds);
    no_children_left();
    h_finish(loop);
}

static void test_wait_cancel(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    const char *argv[4];
    ioq_process_options o = sh_opts(S_SLEEP_30, argv);
    ioq_handle p;
    assert_int_equal(ioq_spawn(loop, &o, &p, NULL), 0);
    uint64_t t = h_tok();
    assert_int_equal(h_wait_proc(loop, p, t), 0);
    /* One wait at a time. */
    assert_int_equal(ioq_process_wait(loop, p, h_tok()), IOQ_EBUSY);
    h_poll(loop, 0);
    assert_int_equal(h_cancel(loop, t, h_tok()), 0);
    assert_int_equal(h_wait(loop, t).result, IOQ_ECANCELED);
    /* The process lives on; a new wait sees its end. */
    t = h_tok();
    assert_int_equal(h_wait_proc(loop, p, t), 0);
    assert_int_equal(ioq_kill(loop, p, SIGTERM), 0);
    assert_int_equal(h_wait(loop, t).result, 256 + SIGTERM);
    h_close_wait(loop, p);
    no_children_left();
    h_finish(loop);
}

static void test_env_cwd(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    const char *argv[4];
#ifdef _WIN32
    ioq_process_options o = sh_opts("getenv IOQ_A; put |; getenv IOQ_B; put |; pwd", argv);
#else
    ioq_process_options o = sh_opts("printf '%s|%s|%s' \"$IOQ_A\" \"$IOQ_B\" \"$(pwd)\"", argv);
#endif
    const char *env[] = {"IOQ_A=one", "IOQ_B=two words", NULL};
    o.env = env;
    o.cwd = h_tmpdir();
    o.stdio[1].mode = IOQ_STDIO_PIPE;
    ioq_handle p, pipes[3];
    assert_int_equal(ioq_spawn(loop, &o, &p, pipes), 0);
    char out[4200], want[4200];
    size_t n = read_all(loop, pipes[1], out, sizeof out - 1);
    out[n] = 0;
    char real[4096];
#ifdef _WIN32
    assert_true(GetFullPathNameA(h_tmpdir(), sizeof real, real, NULL) > 0);
#else
    assert_non_null(realpath(h_tmpdir(), real));
#endif
    snprintf(want, sizeof want, "one|two words|%s", real);
    assert_string_equal(out, want);
    uint64_t t = h_tok();
    assert_int_equal(h_wait_proc(loop, p, t), 0);
    assert_int_equal(h_wait(loop, t).result, 0);
    h_close_wait(loop, pipes[1]);
    h_close_wait(loop, p);
    /* NULL env: the parent's environment. */
    setenv("IOQ_INHERITED", "yes", 1);
    assert_int_equal(run_sh(loop, S_INHERITED), 0);
    h_finish(loop);
}

static void test_stdio_kinds(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    const char *argv[4];
    /* stdin from the null device: cat ends at once. stdout into an ioq pipe given as a
     * handle; stderr into a plain descriptor given as an OS handle. */
    ioq_process_options o = sh_opts(S_STDIO_KINDS, argv);
    ioq_handle pp[2];
    assert_int_equal(ioq_pipe(loop, 0, pp), 0);
#ifdef _WIN32
    HANDLE raw[2];
    assert_true(CreatePipe(&raw[0], &raw[1], NULL, 0));
    uint64_t raw_w = (uint64_t)(uintptr_t)raw[1];
#else
    int raw[2];
    assert_int_equal(pipe(raw), 0);
    uint64_t raw_w = (uint64_t)raw[1];
#endif
    o.stdio[0].mode = IOQ_STDIO_NULL;
    o.stdio[1].mode = IOQ_STDIO_HANDLE;
    o.stdio[1].value = pp[1];
    o.stdio[2].mode = IOQ_STDIO_OS;
    o.stdio[2].value = raw_w;
    ioq_handle p;
    assert_int_equal(ioq_spawn(loop, &o, &p, NULL), 0);
    /* The child has its own copies: the parent closes its write ends to see the end. */
    h_close_wait(loop, pp[1]);
    char buf[64];
#ifdef _WIN32
    CloseHandle(raw[1]);
#else
    close(raw[1]);
#endif
    assert_int_equal(read_all(loop, pp[0], buf, sizeof buf), 10);
    assert_memory_equal(buf, "to-handle\n", 10);
#ifdef _WIN32
    size_t got = read_handle(raw[0], buf, sizeof buf);
    CloseHandle(raw[0]);
#else
    ssize_t n, got = 0;
    while ((n = read(raw[0], buf + got, sizeof buf - (size_t)got)) > 0)
        got += n;
    close(raw[0]);
#endif
    assert_int_equal(got, 6);
    assert_memory_equal(buf, "to-os\n", 6);
    uint64_t t = h_tok();
    assert_int_equal(h_wait_proc(loop, p, t), 0);
    assert_int_equal(h_wait(loop, t).result, 0);
    h_close_wait(loop, pp[0]);
    h_close_wait(loop, p);
    h_finish(loop);
}

/* The child gets its stdio and nothing else: on Windows not even a handle the host made
 * inheritable (ioq names the child's stdio in PROC_THREAD_ATTRIBUTE_HANDLE_LIST), on POSIX
 * no close-on-exec descriptor. Seen twice: the child itself looks for the handle values
 * (Windows), and the parent closes its write end of a pipe and sees the end of it at once,
 * while the child still runs. stdout and stderr are one and the same handle. */
static void test_handle_list(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    char script[160], buf[16];
    const char *argv[4];
#ifdef _WIN32
    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
    HANDLE ev = CreateEventW(&sa, TRUE, FALSE, NULL), lk[2], out[2];
    assert_non_null(ev);
    assert_true(CreatePipe(&lk[0], &lk[1], &sa, 0)); /* both ends inheritable */
    assert_true(CreatePipe(&out[0], &out[1], NULL, 0));
    snprintf(script, sizeof script, "no-handle %llu; no-handle %llu; no-handle %llu; "
             "echo out; echo err >&2; sleep 30000",
             (unsigned long long)(uintptr_t)ev, (unsigned long long)(uintptr_t)lk[0],
             (unsigned long long)(uintptr_t)lk[1]);
    uint64_t out_w = (uint64_t)(uintptr_t)out[1];
#else
    int lk[2], out[2];
    assert_int_equal(pipe(lk), 0);
    assert_int_equal(pipe(out), 0);
    assert_int_equal(fcntl(lk[0], F_SETFD, FD_CLOEXEC), 0);
    assert_int_equal(fcntl(lk[1], F_SETFD, FD_CLOEXEC), 0);
    snprintf(script, sizeof script, "echo out; echo err >&2; %s", S_SLEEP_30);
    uint64_t out_w = (uint64_t)out[1];
#endif
    ioq_process_options o = sh_opts(script, argv);
    o.stdio[0].mode = IOQ_STDIO_NULL;
    o.stdio[1].mode = IOQ_STDIO_OS;
    o.stdio[1].value = out_w;
    o.stdio[2].mode = IOQ_STDIO_OS;
    o.stdio[2].value = out_w;
    ioq_handle p;
    assert_int_equal(ioq_spawn(loop, &o, &p, NULL), 0);
#ifdef _WIN32
    CloseHandle(out[1]);
    size_t got = read_handle(out[0], buf, 8);
    CloseHandle(out[0]);
    /* The child is past its checks and still runs: our write end was the only one. */
    CloseHandle(lk[1]);
    DWORD n;
    assert_false(ReadFile(lk[0], buf + 8, 1, &n, NULL));
    assert_int_equal(GetLastError(), ERROR_BROKEN_PIPE);
    CloseHandle(lk[0]);
    CloseHandle(ev);
#else
    close(out[1]);
    ssize_t n, got = 0;
    while (got < 8 && (n = read(out[0], buf + got, 8 - (size_t)got)) > 0)
        got += n;
    close(out[0]);
    close(lk[1]);
    assert_int_equal(read(lk[0], buf + 8, 1), 0);
    close(lk[0]);
#endif
    assert_int_equal(got, 8);
    assert_memory_equal(buf, "out\nerr\n", 8);
    /* Still sleeping: neither a check nor the end of the pipe ended it. */
    assert_int_equal(ioq_kill(loop, p, SIGKILL), 0);
    uint64_t t = h_tok();
    assert_int_equal(h_wait_proc(loop, p, t), 0);
    assert_int_equal(h_wait(loop, t).result, 256 + SIGKILL);
    h_close_wait(loop, p);
    h_finish(loop);
}

/* An inherited stdio descriptor reaches the child even when it is close-on-exec in the
 * parent (as a descriptor ioq made or a host marked). */
static void test_inherit_cloexec(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
#ifdef _WIN32
    /* Our standard output a non-inheritable pipe: the child gets an inheritable copy. */
    HANDLE rr, rw, saved = GetStdHandle(STD_OUTPUT_HANDLE);
    assert_true(CreatePipe(&rr, &rw, NULL, 0));
    assert_true(SetStdHandle(STD_OUTPUT_HANDLE, rw));
    const char *argv[4];
    ioq_process_options o = sh_opts(S_ECHO_INHERITED, argv);
    ioq_handle p;
    int rc = ioq_spawn(loop, &o, &p, NULL);
    SetStdHandle(STD_OUTPUT_HANDLE, saved);
    CloseHandle(rw);
    assert_int_equal(rc, 0);
    char buf[32];
    size_t got = read_handle(rr, buf, sizeof buf);
    CloseHandle(rr);
#else
    int raw[2], saved = dup(1);
    assert_true(saved >= 0);
    assert_int_equal(pipe(raw), 0);
    assert_int_equal(dup2(raw[1], 1), 1);
    assert_int_equal(fcntl(1, F_SETFD, FD_CLOEXEC), 0);
    close(raw[1]);
    const char *argv[4];
    ioq_process_options o = sh_opts("echo inherited", argv);
    ioq_handle p;
    int rc = ioq_spawn(loop, &o, &p, NULL);
    dup2(saved, 1); /* stdout back before any assertion may print */
    close(saved);
    assert_int_equal(rc, 0);
    char buf[32];
    ssize_t n, got = 0;
    while ((n = read(raw[0], buf + got, sizeof buf - (size_t)got)) > 0)
        got += n;
    close(raw[0]);
#endif
    assert_int_equal(got, 10);
    assert_memory_equal(buf, "inherited\n", 10);
    uint64_t t = h_tok();
    assert_int_equal(h_wait_proc(loop, p, t), 0);
    assert_int_equal(h_wait(loop, t).result, 0);
    h_close_wait(loop, p);
    h_finish(loop);
}

static void test_new_session(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    const char *argv[4];
    ioq_process_options o = sh_opts(S_SLEEP_30, argv);
    o.flags = IOQ_SPAWN_NEW_SESSION;
    ioq_handle p;
    assert_int_equal(ioq_spawn(loop, &o, &p, NULL), 0);
    int64_t pid;
    assert_int_equal(ioq_process_pid(loop, p, &pid), 0);
#ifndef _WIN32 /* a process group of its own there: not visible from outside */
    assert_int_equal(getsid((pid_t)pid), (pid_t)pid);
    assert_int_not_equal(getsid(0), (pid_t)pid);
#endif
    assert_int_equal(ioq_kill(loop, p, SIGKILL), 0);
    uint64_t t = h_tok();
    assert_int_equal(h_wait_proc(loop, p, t), 0);
    assert_int_equal(h_wait(loop, t).result, 256 + SIGKILL);
    h_close_wait(loop, p);
    h_finish(loop);
}

static void test_bad_args(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    const char *argv[4];
    ioq_process_options o = sh_opts("exit 0", argv), b;
    ioq_handle p = 0, pipes[3];
    assert_int_equal(ioq_spawn(NULL, &o, &p, NULL), IOQ_EINVAL);
    assert_int_equal(ioq_spawn(loop, NULL, &p, NULL), IOQ_EINVAL);
    assert_int_equal(ioq_spawn(loop, &o, NULL, NULL), IOQ_EINVAL);
    b = o, b.size = sizeof b - 1;
    assert_int_equal(ioq_spawn(loop, &b, &p, NULL), IOQ_EINVAL);
    b = o, b.file = NULL;
    assert_int_equal(ioq_spawn(loop, &b, &p, NULL), IOQ_EINVAL);
    b = o, b.file = "";
    assert_int_equal(ioq_spawn(loop, &b, &p, NULL), IOQ_EINVAL);
    b = o, b.argv = NULL;
    assert_int_equal(ioq_spawn(loop, &b, &p, NULL), IOQ_EINVAL);
    const char *empty[] = {NULL};
    b = o, b.argv = empty;
    assert_int_equal(ioq_spawn(loop, &b, &p, NULL), IOQ_EINVAL);
    b = o, b.flags = 0x100;
    assert_int_equal(ioq_spawn(loop, &b, &p, NULL), IOQ_EINVAL);
    b = o, b.stdio[1].mode = 9;
    assert_int_equal(ioq_spawn(loop, &b, &p, NULL), IOQ_EINVAL);
    b = o, b.stdio[1].reserved = 1;
    assert_int_equal(ioq_spawn(loop, &b, &p, NULL), IOQ_EINVAL);
    b = o, b.stdio[1].mode = IOQ_STDIO_PIPE;
    assert_int_equal(ioq_spawn(loop, &b, &p, NULL), IOQ_EINVAL);
    b = o, b.stdio[1].mode = IOQ_STDIO_HANDLE, b.stdio[1].value = 12345;
    assert_int_equal(ioq_spawn(loop, &b, &p, pipes), IOQ_EBADHANDLE);
    b = o, b.stdio[1].mode = IOQ_STDIO_OS, b.stdio[1].value = 100000;
    assert_int_equal(ioq_spawn(loop, &b, &p, pipes), IOQ_EINVAL);
    assert_int_equal(p, 0);
    /* The process calls want a process handle. */
    ioq_handle pp[2];
    assert_int_equal(ioq_pipe(loop, 0, pp), 0);
    int64_t pid;
    assert_int_equal(ioq_process_wait(loop, pp[0], h_tok()), IOQ_EBADHANDLE);
    assert_int_equal(ioq_kill(loop, pp[0], SIGTERM), IOQ_EBADHANDLE);
    assert_int_equal(ioq_process_pid(loop, pp[0], &pid), IOQ_EBADHANDLE);
    assert_int_equal(ioq_process_wait(NULL, pp[0], h_tok()), IOQ_EINVAL);
    assert_int_equal(ioq_spawn(loop, &o, &p, NULL), 0);
    assert_int_equal(ioq_process_pid(loop, p, NULL), IOQ_EINVAL);
    assert_int_equal(ioq_kill(loop, p, -1), IOQ_EINVAL);
    assert_int_equal(ioq_kill(loop, p, 100000), IOQ_EINVAL);
    /* A process handle is no stream. */
    char buf[4];
    assert_int_equal(ioq_recv(loop, p, buf, sizeof buf, h_tok()), IOQ_EBADHANDLE);
    assert_int_equal(ioq_send(loop, p, "x", 1, h_tok()), IOQ_EBADHANDLE);
    uint64_t t = h_tok();
    assert_int_equal(h_wait_proc(loop, p, t), 0);
    assert_int_equal(h_wait(loop, t).result, 0);
    h_close_wait(loop, p);
    assert_int_equal(ioq_process_wait(loop, p, h_tok()), IOQ_EBADHANDLE);
    h_close_wait(loop, pp[0]);
    h_close_wait(loop, pp[1]);
    h_finish(loop);
}

/* Arguments arrive as given, whatever they hold (on Windows: quoted into one command line
 * by the C runtime rules, and split again by the child). */
static void test_argv(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    static const char *const args[] = {
        "plain", "two words", "", "quote\"inside", "back\\slash", "trail\\",
        "trail\\\\\"q", "tab\there", " lead", "\xc3\xa9\xe2\x82\xac", NULL};
    const char *argv[16];
    size_t k = 0;
#ifdef _WIN32
    argv[k++] = "child";
    argv[k++] = "args";
    const char *file = child_exe();
#else
    argv[k++] = "sh";
    argv[k++] = "-c";
    argv[k++] = "for a in \"$@\"; do printf '%s\\n' \"$a\"; done";
    argv[k++] = "sh";
    const char *file = SH;
#endif
    for (size_t i = 0; args[i]; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    ioq_process_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.file = file;
    o.argv = argv;
    o.stdio[1].mode = IOQ_STDIO_PIPE;
    ioq_handle p, pipes[3];
    assert_int_equal(ioq_spawn(loop, &o, &p, pipes), 0);
    char out[512], want[512];
    size_t n = read_all(loop, pipes[1], out, sizeof out - 1), w = 0;
    out[n] = 0;
    for (size_t i = 0; args[i]; i++)
        w += (size_t)snprintf(want + w, sizeof want - w, "%s\n", args[i]);
    assert_string_equal(out, want);
    uint64_t t = h_tok();
    assert_int_equal(h_wait_proc(loop, p, t), 0);
    assert_int_equal(h_wait(loop, t).result, 0);
    h_close_wait(loop, pipes[1]);
    h_close_wait(loop, p);
    h_finish(loop);
}

/* Many children at once, each waited for: one completion each, with its own status. */
static void test_exactly_once(void **state)
{
    (void)state;
    ioq_loop *loop = h_loop_new();
    enum { N = 24 };
    ioq_handle p[N];
    uint64_t t[N];
    char script[N][32];
    const char *argv[N][4];
    for (int i = 0; i < N; i++) {
        snprintf(script[i], sizeof script[i], "exit %d", i + 1);
        ioq_process_options o = sh_opts(script[i], argv[i]);
        assert_int_equal(ioq_spawn(loop, &o, &p[i], NULL), 0);
        t[i] = h_tok();
        assert_int_equal(h_wait_proc(loop, p[i], t[i]), 0);
    }
    for (int i = N - 1; i >= 0; i--) {
        ioq_cqe c = h_wait(loop, t[i]);
        assert_int_equal(c.op, IOQ_OP_PROCESS_WAIT);
        assert_int_equal(c.result, i + 1);
    }
    h_assert_quiet(loop, 20);
    for (int i = 0; i < N; i++)
        h_close_wait(loop, p[i]);
    no_children_left();
    h_finish(loop);
}

/* The same without pidfd: the wait descriptor is a pipe a small thread closes (the path of
 * kernels before 5.3 and of every other POSIX system). */
static void test_no_pidfd(void **state)
{
    (void)state;
#ifdef _WIN32
    h_skip("pidfd is Linux's"); /* disabled there: tests/windows/README.md */
    return;
#endif
    setenv("IOQ_NO_PIDFD", "1", 1);
    ioq_loop *loop = h_loop_new();
    assert_int_equal(run_sh(loop, "exit 9"), 9);
    assert_int_equal(run_sh(loop, "kill -TERM $$"), 256 + SIGTERM);
    const char *argv[4];
    ioq_process_options o = sh_opts(S_SLEEP_200, argv);
    ioq_handle p;
    int fds = h_fd_count();
    assert_int_equal(ioq_spawn(loop, &o, &p, NULL), 0);
    int64_t pid;
    assert_int_equal(ioq_process_pid(loop, p, &pid), 0);
    h_close_wait(loop, p);
    uint64_t t0 = h_mono_ns();
    while (proc_alive(pid)) {
        assert_true(h_mono_ns() - t0 < 10ull * 1000000000);
        usleep(10000);
    }
    settle_fds(fds);
    no_children_left();
    unsetenv("IOQ_NO_PIDFD");
    h_finish(loop);
}

static void test_loop_free(void **state)
{
    (void)state;
    /* Freeing a loop with a child still running and waited for: the wait ends without a
     * completion (the loop is gone), the child runs on and is still reaped. */
    int fds = h_fd_count();
    ioq_loop *loop = h_loop_new();
    const char *argv[4];
    ioq_process_options o = sh_opts(S_SLEEP_200, argv);
    ioq_handle p;
    assert_int_equal(ioq_spawn(loop, &o, &p, NULL), 0);
    int64_t pid;
    assert_int_equal(ioq_process_pid(loop, p, &pid), 0);
    assert_int_equal(ioq_process_wait(loop, p, 77), 0);
    ioq_loop_free(loop);
    h_forget(loop);
    uint64_t t0 = h_mono_ns();
    while (proc_alive(pid)) {
        assert_true(h_mono_ns() - t0 < 10ull * 1000000000);
        usleep(10000);
    }
    settle_fds(fds);
    no_children_left();
}

int main(int argc, char **argv)
{
    const struct CMUnitTest group[] = {
        H_TEST(exit_code),    H_TEST(signal),        H_TEST(kill),
        H_TEST(stdout_pipe),  H_TEST(stdin_pipe),    H_TEST(exec_failure),
        H_TEST(close_no_kill), H_TEST(wait_cancel),  H_TEST(env_cwd),
        H_TEST(stdio_kinds),  H_TEST(new_session),   H_TEST(bad_args),
        H_TEST(exactly_once), H_TEST(no_pidfd),      H_TEST(loop_free),
        H_TEST(inherit_cloexec), H_TEST(argv),     H_TEST(handle_list),
        H_TEST(kill_int_handled),
    };
    return h_main(argc, argv, "process", group, sizeof group / sizeof group[0]);
}
