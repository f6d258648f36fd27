/*
 * pump_raw - the pump benchmark's ceiling: blocking write() of 64 KiB chunks.
 */
#include "pump_common.h"

int main(int argc, char **argv)
{
    double secs = pump_seconds(argc, argv), t0, t1;
    int port = pump_sink_start();
    struct sockaddr_in sin;
    unsigned long long bytes = 0;
    unsigned n = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
        perror("pump_raw: connect");
        return 1;
    }
    t0 = t1 = bench_now();
    while (t1 - t0 < secs) {
        ssize_t w = write(fd, pump_buf[0], PUMP_CHUNK);
        if (w <= 0) {
            perror("pump_raw: write");
            return 1;
        }
        bytes += (unsigned long long)w;
        if ((++n & 15) == 0)
            t1 = bench_now();
    }
    t1 = bench_now();
    close(fd);
    pump_sink_wait();
    pump_report("raw-write", bytes, t1 - t0);
    return 0;
}
