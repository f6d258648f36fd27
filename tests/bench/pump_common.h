/*
 * Shared by the pump benchmarks: one TCP connection over loopback carrying bulk 64 KiB
 * writes for a fixed time. The receiving end is the same for every library: a forked child
 * that reads with blocking read() and throws the bytes away, so only the sender differs.
 * Each program prints "<name> pump_gbit_per_s <value>": bits whose write had completed
 * when the time was up, per second.
 *
 *   pump_<lib> [seconds]        (default 5)
 */
#ifndef IOQ_BENCH_PUMP_COMMON_H
#define IOQ_BENCH_PUMP_COMMON_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"

#define PUMP_CHUNK (64 * 1024)
#define PUMP_INFLIGHT 4 /* writes queued at once by the event-loop senders */

static char pump_buf[PUMP_INFLIGHT][PUMP_CHUNK];
static pid_t pump_sink_pid;

static double pump_seconds(int argc, char **argv)
{
    double s = argc > 1 ? strtod(argv[1], NULL) : 5.0;
    if (!(s > 0)) {
        fprintf(stderr, "usage: %s [seconds]\n", argv[0]);
        exit(2);
    }
    return s;
}

/* Forks the sink; returns the port it listens on (127.0.0.1). */
static int pump_sink_start(void)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(fd, 1) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
        perror("pump: sink socket");
        exit(1);
    }
    fflush(stdout);
    pump_sink_pid = fork();
    if (pump_sink_pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pump_sink_pid == 0) {
        static char rbuf[PUMP_CHUNK];
        int c;
        alarm(120); /* a sender that dies must not leave the sink behind for long */
        c = accept(fd, NULL, NULL);
        while (c >= 0 && read(c, rbuf, sizeof rbuf) > 0) {
        }
        _exit(0);
    }
    close(fd);
    return ntohs(sin.sin_port);
}

static void pump_sink_wait(void)
{
    waitpid(pump_sink_pid, NULL, 0);
}

static void pump_report(const char *name, unsigned long long bytes, double secs)
{
    printf("%s pump_gbit_per_s %.3f\n", name, (double)bytes * 8.0 / secs / 1e9);
}

#endif
