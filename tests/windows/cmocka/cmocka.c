/*
 * The runner and assertions of the small cmocka stand-in (see cmocka.h). Output follows
 * cmocka's plain format closely enough for a person reading a ctest log.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmocka.h"

static jmp_buf *cm_jump;
static int cm_failed, cm_skipped;

static void cm_end(int skipped)
{
    if (skipped)
        cm_skipped = 1;
    else
        cm_failed = 1;
    if (cm_jump)
        longjmp(*cm_jump, 1);
    abort(); /* an assertion outside a test */
}

void print_message(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    vprintf(format, ap);
    va_end(ap);
    fflush(stdout);
}

void print_error(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    vfprintf(stderr, format, ap);
    va_end(ap);
}

void cmocka_set_message_output(enum cm_message_output output) { (void)output; }
void cmocka_set_test_filter(const char *pattern) { (void)pattern; }
void cmocka_set_skip_filter(const char *pattern) { (void)pattern; }

void _cm_fail(const char *file, int line)
{
    print_error("%s:%d: error: Failure!\n", file, line);
    cm_end(0);
}

void _cm_skip(const char *file, int line)
{
    (void)file;
    (void)line;
    cm_end(1);
}

void _cm_fail_msg(const char *file, int line, const char *format, ...)
{
    va_list ap;
    print_error("%s:%d: error: ", file, line);
    va_start(ap, format);
    vfprintf(stderr, format, ap);
    va_end(ap);
    print_error("\n");
    cm_end(0);
}

void _cm_true(uintmax_t v, const char *expr, const char *file, int line)
{
    if (!v) {
        print_error("%s:%d: error: %s\n", file, line, expr);
        cm_end(0);
    }
}

void _cm_int_equal(uintmax_t a, uintmax_t b, const char *file, int line)
{
    if (a != b) {
        print_error("%s:%d: error: %jd (%#jx) != %jd (%#jx)\n", file, line, (intmax_t)a, a,
                    (intmax_t)b, b);
        cm_end(0);
    }
}

void _cm_int_not_equal(uintmax_t a, uintmax_t b, const char *file, int line)
{
    if (a == b) {
        print_error("%s:%d: error: %jd == %jd\n", file, line, (intmax_t)a, (intmax_t)b);
        cm_end(0);
    }
}

void _cm_ptr(const void *p, int want_null, const char *expr, const char *file, int line)
{
    if ((p == NULL) != (want_null != 0)) {
        print_error("%s:%d: error: %s is %sNULL\n", file, line, expr, want_null ? "not " : "");
        cm_end(0);
    }
}

void _cm_ptr_not_equal(const void *a, const void *b, const char *file, int line)
{
    if (a == b) {
        print_error("%s:%d: error: %p == %p\n", file, line, a, b);
        cm_end(0);
    }
}

void _cm_string(const char *a, const char *b, int want_equal, const char *file, int line)
{
    int eq = a && b ? strcmp(a, b) == 0 : a == b;
    if (eq != (want_equal != 0)) {
        print_error("%s:%d: error: \"%s\" %s \"%s\"\n", file, line, a ? a : "(null)",
                    want_equal ? "!=" : "==", b ? b : "(null)");
        cm_end(0);
    }
}

void _cm_memory_equal(const void *a, const void *b, size_t n, const char *file, int line)
{
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i]) {
            print_error("%s:%d: error: memory differs at byte %zu of %zu (%#x != %#x)\n",
                        file, line, i, n, x[i], y[i]);
            cm_end(0);
        }
    }
}

int _cmocka_run_group_tests(const char *group_name, const struct CMUnitTest *tests,
                            size_t count, CMFixtureFunction group_setup,
                            CMFixtureFunction group_teardown)
{
    void *group_state = NULL;
    int failures = 0;
    size_t passed = 0, skipped = 0;

    print_message("[==========] %s: Running %zu test(s).\n", group_name, count);
    if (group_setup && group_setup(&group_state) != 0) {
        print_error("[  ERROR   ] %s: group setup failed\n", group_name);
        return (int)count;
    }
    for (size_t i = 0; i < count; i++) {
        const struct CMUnitTest *t = &tests[i];
        void *state = t->initial_state ? t->initial_state : group_state;
        jmp_buf jb;
        volatile int setup_ok = 1;

        print_message("[ RUN      ] %s\n", t->name);
        cm_failed = cm_skipped = 0;
        cm_jump = &jb;
        if (setjmp(jb) == 0) {
            if (t->setup_func && t->setup_func(&state) != 0) {
                setup_ok = 0;
                cm_failed = 1;
            } else {
                t->test_func(&state);
            }
        }
        if (setup_ok && t->teardown_func) {
            if (setjmp(jb) == 0 && t->teardown_func(&state) != 0)
                cm_failed = 1;
        }
        cm_jump = NULL;
        if (cm_failed) {
            failures++;
            print_message("[  FAILED  ] %s\n", t->name);
        } else if (cm_skipped) {
            skipped++;
            print_message("[  SKIPPED ] %s\n", t->name);
        } else {
            passed++;
            print_message("[       OK ] %s\n", t->name);
        }
    }
    if (group_teardown)
        group_teardown(&group_state);
    print_message("[==========] %s: %zu test(s) run.\n", group_name, count);
    print_message("[  PASSED  ] %zu test(s).\n", passed);
    if (skipped)
        print_message("[  SKIPPED ] %zu test(s).\n", skipped);
    if (failures)
        print_message("[  FAILED  ] %d test(s).\n", failures);
    return failures;
}
