/*
 * The library's hidden test hooks (core/loop.h), for the areas that link the static
 * library (IOQ_TEST_INTERNAL_AREAS in CMakeLists.txt). Not part of the ABI.
 */
#ifndef IOQ_TEST_INTERNAL_H
#define IOQ_TEST_INTERNAL_H

#include "ioq.h"

/* As if n more loops had been created and freed. */
void ioq__test_loop_tags_skip(uint32_t n);
/* As if the slot that value v named (now free) had been reused n more times. */
int ioq__test_handle_reuse(ioq_loop *loop, ioq_handle v, uint32_t n);
/* Loops created while on keep pools as on kernels without provided buffers (io_uring
 * before 5.19); no effect on backends whose pools are always the core's. */
void ioq__test_emulate_pools(int on);
/* fn (NULL: none) runs in every thread that made a loop's wake call, right after it, while
 * the call still counts as in flight: as if that thread were preempted there. */
void ioq__test_wake_hook(void (*fn)(void));
/* The next n blocking reads of a synchronous pipe on IOCP end with 0 bytes and no error, as
 * ReadFile does on Windows after a zero-length WriteFile; no effect on other backends. */
void ioq__test_empty_reads(int n);

#endif
