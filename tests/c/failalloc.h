/*
 * Allocation failure for the C tests: this program's malloc, calloc and realloc stand in
 * for the C library's (the dynamic linker looks in the executable first), so libioq's
 * allocations pass through them and can be made to fail. Only calls made from inside
 * libioq fail; the test's and the harness's own allocations never do.
 */
#ifndef IOQ_TEST_FAILALLOC_H
#define IOQ_TEST_FAILALLOC_H

#include <stddef.h>

/* Whether failures can be injected here (libioq is a shared library we stand in front
 * of, and no other allocator does). A test that needs them skips (exit code 77) when not:
 * ask first, before allocating anything. */
int fa_available(void);
/* Let `skip` allocations of libioq through, then fail: only the next one (once != 0) or
 * every one from then on (once == 0), until fa_disarm(). */
void fa_arm(unsigned long skip, int once);
void fa_disarm(void);
/* Allocations of libioq failed since the last fa_arm(). */
unsigned long fa_failed(void);

#endif
