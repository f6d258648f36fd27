/*
 * Shared by the programs of tests/kqueue: each shows one way in which libkqueue (the kqueue
 * API emulated on Linux) differs from a kqueue kernel, using the kqueue API alone, no ioq.
 * Exit status: 0 the difference is there (what the program shows), 1 the emulation behaves
 * as a kqueue kernel does here (the ioq test disabled for it, or the work-around in
 * core/backend/kqueue.c, can go), 2 the program itself could not run.
 */
#ifndef IOQ_KQ_SHOW_H
#define IOQ_KQ_SHOW_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHOWN 0
#define LIKE_KQUEUE 1

static void die(const char *what)
{
    fprintf(stderr, "%s: %s\n", what, strerror(errno));
    exit(2);
}

static int verdict(int differs, const char *name, const char *kqueue_does)
{
    if (differs)
        printf("%s: shown (a kqueue kernel: %s)\n", name, kqueue_does);
    else
        printf("%s: NOT shown: this emulation behaves as a kqueue kernel here\n", name);
    return differs ? SHOWN : LIKE_KQUEUE;
}

#endif
