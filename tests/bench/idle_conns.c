/*
 * idle_conns - memory that ioq itself holds per idle connection that has a receive
 * pending on a provided-buffer pool (ioq_recv_pool), the case that a server with many
 * quiet clients lives in. A child process opens the client ends so that each process needs
 * only N descriptors.
 *
 *   idle_conns [connections]    (default 10000; IOQ_BACKEND picks the backend)
 *
 * Prints the heap bytes per connection taken by accepting (handle) and by the pending
 * pooled receive, measured with mallinfo2 around each phase, and the resident set growth.
 */
#include <ioq.h>

#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static size_t heap(void) { return mallinfo2().uordblks; }

static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void die(const char *what, long rc)
{
    fprintf(stderr, "idle_conns: %s: %ld (%s)\n", what, rc, ioq_strerror(rc));
    exit(1);
}

static int client(uint16_t port, int n, int ready_fd, int done_fd)
{
    struct sockaddr_in sin;
    int *fds = calloc((size_t)n, sizeof *fds);
    char c = 1;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&sin, sizeof sin) < 0) {
            perror("idle_conns client");
            return 1;
        }
    }
    if (write(ready_fd, &c, 1) != 1 || read(done_fd, &c, 1) < 0)
        return 1;
    return 0;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 10000;
    struct rlimit rl;
    ioq_loop *loop;
    ioq_addr any, where;
    ioq_handle lis, pool, *conns;
    ioq_cqe cqes[256];
    int ready[2], done[2], accepted = 0, rc;
    size_t h0, h1, h2;
    long r1, r2;
    pid_t pid;
    char c;

    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)n + 64 > rl.rlim_cur) {
        n = (int)rl.rlim_cur - 64;
        fprintf(stderr, "idle_conns: descriptor limit: using %d connections\n", n);
    }
    conns = calloc((size_t)n, sizeof *conns);
    if ((rc = ioq_loop_new(NULL, &loop)) != 0)
        die("loop", rc);
    ioq_addr_parse("127.0.0.1:0", &any);
    if ((rc = ioq_tcp_listen(loop, &any, 4096, 0, &lis)) != 0)
        die("listen", rc);
    ioq_sockname(loop, lis, &where);
    if ((rc = ioq_pool_new(loop, 256, 65536, &pool)) != 0)
        die("pool", rc);
    if (pipe(ready) != 0 || pipe(done) != 0)
        return 1;
    pid = fork();
    if (pid == 0) {
        ioq_loop_free(loop);
        _exit(client(where.port, n, ready[1], done[0]));
    }

    h0 = heap();
    if ((rc = ioq_accept(loop, lis, IOQ_MULTISHOT, 1)) != 0)
        die("accept", rc);
    while (accepted < n) {
        int got = ioq_poll(loop, cqes, 256, 10 * 1000000000ll);
        if (got <= 0)
            die("accept poll", got);
        for (int i = 0; i < got; i++) {
            if (cqes[i].result < 0)
                die("accept completion", cqes[i].result);
            conns[accepted++] = cqes[i].value;
        }
    }
    if (read(ready[0], &c, 1) != 1)
        return 1;
    h1 = heap();
    r1 = rss_kib();
    for (int i = 0; i < n; i++)
        if ((rc = ioq_recv_pool(loop, conns[i], pool, 0, 2)) != 0)
            die("recv_pool", rc);
    ioq_submit(loop);
    ioq_poll(loop, cqes, 256, 0);
    h2 = heap();
    r2 = rss_kib();

    printf("backend %s, %d idle connections each with a pending ioq_recv_pool\n",
           ioq_loop_backend(loop), n);
    printf("  heap per connection for its handle (accept):   %6.1f bytes\n",
           (double)(h1 - h0) / n);
    printf("  heap per connection for the pending receive:   %6.1f bytes\n",
           (double)(h2 - h1) / n);
    printf("  resident set growth for the receives:          %6.1f bytes per connection\n",
           (double)(r2 - r1) * 1024 / n);
    printf("  (a pinned 64 KiB caller buffer per connection would be 65536 bytes)\n");

    if (write(done[1], &c, 1) != 1)
        return 1;
    waitpid(pid, NULL, 0);
    ioq_loop_free(loop);
    free(conns);
    return 0;
}
