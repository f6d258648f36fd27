/*
 * Shared by the ping-pong benchmarks: the rules of libuv's ping_pongs benchmark. One TCP
 * connection over loopback, the 5-byte message "PING\n", one message in flight: the
 * client sends it, waits until the echo is back, sends again. As in libuv's benchmark
 * runner, the echo server is a separate process (libuv starts tcp4_echo_server as a
 * child process of the benchmark); here each program forks its own server, written with the
 * same library as its client, and reports "<name> <round trips per second>".
 */
#ifndef PINGPONG_COMMON_H
#define PINGPONG_COMMON_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char PING[] = "PING\n";
#define PING_LEN 5

typedef struct pp_server {
    pid_t pid;
    int port;
} pp_server;

/* Runs in the child: binds 127.0.0.1 port 0, writes the port to report_fd (as an int),
 * serves one connection until its end, returns the exit status. */
typedef int (*pp_server_fn)(int report_fd);

static double pp_seconds(int argc, char **argv)
{
    double s = argc > 1 ? strtod(argv[1], NULL) : 5.0;
    if (!(s > 0)) {
        fprintf(stderr, "usage: %s [seconds]\n", argv[0]);
        exit(2);
    }
    return s;
}

static pp_server pp_server_start(pp_server_fn fn)
{
    pp_server s = { -1, 0 };
    int p[2];
    fflush(stdout);
    if (pipe(p) != 0) {
        perror("pipe");
        exit(1);
    }
    s.pid = fork();
    if (s.pid < 0) {
        perror("fork");
        exit(1);
    }
    if (s.pid == 0) {
        close(p[0]);
        /* a client that dies must not leave the server behind for long */
        alarm(120);
        _exit(fn(p[1]));
    }
    close(p[1]);
    if (read(p[0], &s.port, sizeof s.port) != (ssize_t)sizeof s.port) {
        fprintf(stderr, "pingpong: the server did not start\n");
        kill(s.pid, SIGKILL);
        waitpid(s.pid, NULL, 0);
        exit(1);
    }
    close(p[0]);
    return s;
}

static int pp_server_report(int fd, int port)
{
    int ok = write(fd, &port, sizeof port) == (ssize_t)sizeof port;
    close(fd);
    return ok ? 0 : -1;
}

/* Waits for the server, which ends when the client's connection ends. */
static int pp_server_wait(pp_server s)
{
    int status = 0;
    if (waitpid(s.pid, &status, 0) != s.pid)
        return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

#endif
