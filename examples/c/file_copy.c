/*
 * file_copy - copy a file with ioq's file operations, several reads in flight.
 *
 *   file_copy [-n in_flight] [-b block_bytes] source destination
 *   (defaults: 4 blocks of 64 KiB)
 *
 * Every block slot runs its own chain: read a block at an offset, write what was read at
 * the same offset, then take the next unclaimed offset. A short read (rare for regular
 * files, but allowed) continues where it stopped; a read of 0 bytes marks the end of the
 * file. When every slot is idle the destination is fsync'ed and both files are closed.
 */
#include <ioq.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SLOTS 64

enum { OP_OPEN_SRC = 1, OP_OPEN_DST, OP_READ, OP_WRITE, OP_FSYNC, OP_CLOSE };

static uint64_t token_make(uint64_t slot, unsigned op) { return (slot << 8) | op; }
static uint64_t token_slot(uint64_t token) { return token >> 8; }
static unsigned token_op(uint64_t token) { return (unsigned)(token & 0xff); }

typedef struct slot {
    unsigned char *buf;
    uint64_t offset;  /* where the current block's data belongs */
    size_t want;      /* bytes asked of the current read */
    size_t have;      /* bytes the current write carries */
    int busy;
} slot;

static ioq_loop *loop;
static ioq_handle src, dst;
static slot slots[MAX_SLOTS];
static uint32_t nslots = 4;
static size_t block = 64 * 1024;
static uint64_t next_offset, copied;
static int eof, failed;

static void die(const char *what, int64_t code)
{
    fprintf(stderr, "file_copy: %s: %s\n", what, ioq_strerror(code));
    failed = 1;
}

static int submit_read(uint32_t i, uint64_t offset, size_t len)
{
    int rc;
    slots[i].offset = offset;
    slots[i].want = len;
    slots[i].busy = 1;
    rc = ioq_read(loop, src, slots[i].buf, len, offset, token_make(i, OP_READ));
    if (rc != 0) {
        slots[i].busy = 0;
        die("read", rc);
    }
    return rc;
}

/* Give slot i the next block, unless the end of the file has been seen. */
static void next_block(uint32_t i)
{
    slots[i].busy = 0;
    if (eof || failed)
        return;
    if (submit_read(i, next_offset, block) == 0)
        next_offset += block;
}

static void on_read(uint32_t i, int64_t r)
{
    slot *s = &slots[i];
    int rc;
    if (r < 0) {
        s->busy = 0;
        die("read", r);
        return;
    }
    if (r == 0) {
        /* every later block is past the end too; their reads will also give 0 */
        eof = 1;
        s->busy = 0;
        return;
    }
    s->have = (size_t)r;
    rc = ioq_write(loop, dst, s->buf, s->have, s->offset, token_make(i, OP_WRITE));
    if (rc != 0) {
        s->busy = 0;
        die("write", rc);
    }
}

static void on_write(uint32_t i, int64_t r)
{
    slot *s = &slots[i];
    if (r < 0 || (size_t)r != s->have) {
        s->busy = 0;
        die("write", r < 0 ? r : IOQ_EIO);
        return;
    }
    copied += (uint64_t)r;
    if (s->have < s->want) /* short read: the rest of this block is still to be read */
        submit_read(i, s->offset + s->have, s->want - s->have);
    else
        next_block(i);
}

static int any_busy(void)
{
    uint32_t i;
    for (i = 0; i < nslots; i++)
        if (slots[i].busy)
            return 1;
    return 0;
}

/* Polls until the completion with token want arrives, dispatching block completions. */
static ioq_cqe wait_for(uint64_t want)
{
    ioq_cqe cqes[MAX_SLOTS];
    ioq_cqe found;
    int got = 0;
    memset(&found, 0, sizeof found);
    while (!got) {
        int n = ioq_poll(loop, cqes, MAX_SLOTS, -1), k;
        if (n < 0) {
            die("poll", n);
            exit(1);
        }
        for (k = 0; k < n; k++) {
            if (cqes[k].token == want) {
                found = cqes[k];
                got = 1;
            }
        }
    }
    return found;
}

int main(int argc, char **argv)
{
    const char *from = NULL, *to = NULL;
    ioq_cqe cqes[MAX_SLOTS], c;
    uint64_t t0, t1;
    uint32_t i;
    int a, rc;
    double secs;

    for (a = 1; a < argc; a++) {
        if (strcmp(argv[a], "-n") == 0 && a + 1 < argc)
            nslots = (uint32_t)strtoul(argv[++a], NULL, 10);
        else if (strcmp(argv[a], "-b") == 0 && a + 1 < argc)
            block = (size_t)strtoul(argv[++a], NULL, 10);
        else if (from == NULL)
            from = argv[a];
        else if (to == NULL)
            to = argv[a];
        else
            from = NULL, a = argc;
    }
    if (from == NULL || to == NULL || nslots == 0 || nslots > MAX_SLOTS || block == 0 ||
        block > IOQ_MAX_LEN) {
        fprintf(stderr, "usage: file_copy [-n in_flight] [-b block_bytes] source "
                        "destination\n");
        return 2;
    }
    rc = ioq_loop_new(NULL, &loop);
    if (rc != 0) {
        die("loop", rc);
        return 1;
    }
    for (i = 0; i < nslots; i++) {
        slots[i].buf = malloc(block);
        if (slots[i].buf == NULL)
            return 1;
    }
    t0 = ioq_now(loop);

    /* Both opens run together; each is waited for by its token. */
    if ((rc = ioq_open(loop, from, IOQ_OPEN_READ, 0, token_make(0, OP_OPEN_SRC))) != 0 ||
        (rc = ioq_open(loop, to, IOQ_OPEN_WRITE | IOQ_OPEN_CREATE | IOQ_OPEN_TRUNC, 0644,
                       token_make(0, OP_OPEN_DST))) != 0) {
        die("open", rc);
        return 1;
    }
    {
        int need = 2;
        while (need > 0) {
            int n = ioq_poll(loop, cqes, MAX_SLOTS, -1), k;
            if (n < 0) {
                die("poll", n);
                return 1;
            }
            for (k = 0; k < n; k++, need--) {
                int is_src = token_op(cqes[k].token) == OP_OPEN_SRC;
                if (cqes[k].result < 0) {
                    fprintf(stderr, "file_copy: %s: %s\n", is_src ? from : to,
                            ioq_strerror(cqes[k].result));
                    failed = 1;
                } else if (is_src) {
                    src = cqes[k].value;
                } else {
                    dst = cqes[k].value;
                }
            }
        }
    }

    if (!failed) {
        for (i = 0; i < nslots; i++)
            next_block(i);
        while (any_busy()) {
            int n = ioq_poll(loop, cqes, MAX_SLOTS, -1), k;
            if (n < 0) {
                die("poll", n);
                break;
            }
            for (k = 0; k < n; k++) {
                uint32_t s = (uint32_t)token_slot(cqes[k].token);
                if (token_op(cqes[k].token) == OP_READ)
                    on_read(s, cqes[k].result);
                else if (token_op(cqes[k].token) == OP_WRITE)
                    on_write(s, cqes[k].result);
            }
        }
    }
    if (!failed) {
        rc = ioq_fsync(loop, dst, token_make(0, OP_FSYNC));
        if (rc != 0)
            die("fsync", rc);
        else if ((c = wait_for(token_make(0, OP_FSYNC))).result < 0)
            die("fsync", c.result);
    }
    if (src != 0 && ioq_close(loop, src, token_make(1, OP_CLOSE)) == 0)
        wait_for(token_make(1, OP_CLOSE));
    if (dst != 0 && ioq_close(loop, dst, token_make(2, OP_CLOSE)) == 0)
        wait_for(token_make(2, OP_CLOSE));
    t1 = ioq_now(loop);

    secs = (double)(t1 - t0) / 1e9;
    if (!failed)
        printf("file_copy: %llu bytes in %.3f s, %.1f MB/s (%u x %zu bytes in flight, "
               "backend %s)\n",
               (unsigned long long)copied, secs, secs > 0 ? (double)copied / 1e6 / secs : 0.0,
               nslots, block, ioq_loop_backend(loop));
    ioq_loop_free(loop);
    for (i = 0; i < nslots; i++)
        free(slots[i].buf);
    return failed ? 1 : 0;
}
