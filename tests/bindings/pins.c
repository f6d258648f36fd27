/*
 * The pin table of the Python and Lua bindings (bindings/swig/pins.h) on its own: shared
 * tokens held until their last final completion, matching by op, undo of a refused
 * operation, clear at loop free; every value released exactly once. Values here are
 * indices into a table of live flags, so a double release or a leak is seen at once.
 *
 *   pins <case>     (ctest: bindings/pins-<case>)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ioq.h"
#include "pins.h"

#define NOBJ 400000
static unsigned char live[NOBJ];
static long nlive;
static uintptr_t next_obj = 1;

static void release(void *ctx, uintptr_t obj)
{
    assert_true(ctx == (void *)&live);
    assert_true(obj > 0 && obj < NOBJ);
    assert_int_equal(live[obj], 1); /* released once */
    live[obj] = 0;
    nlive--;
}

static uintptr_t obj_new(void)
{
    assert_true(next_obj < NOBJ);
    live[next_obj] = 1;
    nlive++;
    return next_obj++;
}

static void shared_token(void **state)
{
    ioq_pins t;
    uintptr_t a, b, c, out[2];
    (void)state;
    ioq_pins_init(&t);
    a = obj_new();
    b = obj_new();
    c = obj_new();
    assert_int_equal(ioq_pins_add(&t, 7, IOQ_OP_SEND, a, 0), 0);
    assert_int_equal(ioq_pins_add(&t, 7, IOQ_OP_SEND, b, c), 0);
    assert_int_equal(ioq_pins_held(&t), 2);
    /* A timeout with the same token pinned nothing: not ours. */
    assert_int_equal(ioq_pins_done(&t, 7, IOQ_OP_TIMEOUT, out, release, &live), IOQ_PINS_NONE);
    /* The first send: nothing can be released, ioq does not say which one it was. */
    assert_int_equal(ioq_pins_done(&t, 7, IOQ_OP_SEND, out, release, &live), IOQ_PINS_HELD);
    assert_int_equal(out[0], a);
    assert_int_equal(nlive, 3);
    assert_int_equal(ioq_pins_held(&t), 2);
    /* The last one releases everything; its own values go to the caller. */
    assert_int_equal(ioq_pins_done(&t, 7, IOQ_OP_SEND, out, release, &live), IOQ_PINS_ENDED);
    assert_int_equal(out[0], b);
    assert_int_equal(out[1], c);
    assert_int_equal(live[a], 0);
    release(&live, b);
    release(&live, c);
    assert_int_equal(nlive, 0);
    assert_int_equal(ioq_pins_held(&t), 0);
    assert_int_equal(ioq_pins_done(&t, 7, IOQ_OP_SEND, out, release, &live), IOQ_PINS_NONE);
    ioq_pins_clear(&t, release, &live);
}

static void undo(void **state)
{
    ioq_pins t;
    uintptr_t a, b, out[2];
    (void)state;
    ioq_pins_init(&t);
    a = obj_new();
    b = obj_new();
    ioq_pins_add(&t, 9, IOQ_OP_RECV, a, 0);
    ioq_pins_add(&t, 9, IOQ_OP_RECV, b, 0);
    ioq_pins_undo(&t, 9, release, &live); /* the newest goes */
    assert_int_equal(live[b], 0);
    assert_int_equal(live[a], 1);
    assert_int_equal(ioq_pins_held(&t), 1);
    /* An operation over already, held for a refused one of its token, goes with it. */
    b = obj_new();
    ioq_pins_add(&t, 9, IOQ_OP_RECV, b, 0);
    assert_int_equal(ioq_pins_done(&t, 9, IOQ_OP_RECV, out, release, &live), IOQ_PINS_HELD);
    ioq_pins_undo(&t, 9, release, &live);
    assert_int_equal(nlive, 0);
    assert_int_equal(ioq_pins_held(&t), 0);
    ioq_pins_undo(&t, 9, release, &live); /* nothing left: no effect */
    ioq_pins_clear(&t, release, &live);
}

static void clear(void **state)
{
    ioq_pins t;
    uint64_t tok;
    (void)state;
    ioq_pins_init(&t);
    for (tok = 0; tok < 1000; tok++)
        assert_int_equal(ioq_pins_add(&t, tok % 300, IOQ_OP_WRITE, obj_new(), obj_new()), 0);
    assert_int_equal(ioq_pins_held(&t), 1000);
    ioq_pins_clear(&t, release, &live);
    assert_int_equal(nlive, 0);
    assert_int_equal(ioq_pins_held(&t), 0);
    /* Usable again after. */
    assert_int_equal(ioq_pins_add(&t, 1, IOQ_OP_WRITE, obj_new(), 0), 0);
    ioq_pins_clear(&t, release, &live);
    assert_int_equal(nlive, 0);
}

/* Random adds, completions and refusals over few tokens (so that they are shared and the
 * table grows and shrinks): every value is released once, none early. */
static void stress(void **state)
{
    ioq_pins t;
    uint32_t s = 12345;
    long i;
    (void)state;
    ioq_pins_init(&t);
    for (i = 0; i < 200000; i++) {
        uint64_t tok;
        uint16_t op;
        uintptr_t out[2];
        s = s * 1103515245u + 12345u;
        tok = (s >> 8) % 3000;
        op = (s >> 20) & 1 ? IOQ_OP_SEND : IOQ_OP_RECV;
        if ((s >> 24) % 3 == 0 && nlive < 90000) {
            assert_int_equal(ioq_pins_add(&t, tok, op, obj_new(), 0), 0);
        } else if ((s >> 24) % 7 == 1) {
            ioq_pins_undo(&t, tok, release, &live);
        } else if (ioq_pins_done(&t, tok, op, out, release, &live) == IOQ_PINS_ENDED) {
            release(&live, out[0]);
        }
    }
    ioq_pins_clear(&t, release, &live);
    assert_int_equal(nlive, 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shared_token),
        cmocka_unit_test(undo),
        cmocka_unit_test(clear),
        cmocka_unit_test(stress),
    };
    size_t i, n = sizeof(tests) / sizeof(tests[0]);
    if (argc > 1) {
        /* A case name that matches nothing must fail, not pass with no test run. */
        for (i = 0; i < n && strcmp(tests[i].name, argv[1]) != 0; i++)
            ;
        if (i == n) {
            fprintf(stderr, "pins: no case %s\n", argv[1]);
            return 1;
        }
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
