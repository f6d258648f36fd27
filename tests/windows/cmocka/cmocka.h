/*
 * A small stand-in for cmocka with the part of its API the ioq C suite uses, for builds
 * where no cmocka is at hand (mingw-w64 cross builds: Debian ships no Windows cmocka).
 * It runs tests for real: each assertion failure ends the current test through longjmp,
 * exactly as cmocka does. Include <setjmp.h>, <stdarg.h>, <stddef.h> and <stdint.h> first.
 */
#ifndef IOQ_MINI_CMOCKA_H
#define IOQ_MINI_CMOCKA_H

#include <stdint.h>

typedef uintmax_t LargestIntegralType;
typedef void (*CMUnitTestFunction)(void **state);
typedef int (*CMFixtureFunction)(void **state);

struct CMUnitTest {
    const char *name;
    CMUnitTestFunction test_func;
    CMFixtureFunction setup_func;
    CMFixtureFunction teardown_func;
    void *initial_state;
};

enum cm_message_output { CM_OUTPUT_STDOUT, CM_OUTPUT_SUBUNIT, CM_OUTPUT_TAP, CM_OUTPUT_XML };

#define cmocka_unit_test(f) { #f, f, NULL, NULL, NULL }
#define cmocka_unit_test_setup_teardown(f, setup, teardown) { #f, f, setup, teardown, NULL }

int _cmocka_run_group_tests(const char *group_name, const struct CMUnitTest *tests,
                            size_t count, CMFixtureFunction group_setup,
                            CMFixtureFunction group_teardown);
#define cmocka_run_group_tests(group, setup, teardown) \
    _cmocka_run_group_tests(#group, group, sizeof(group) / sizeof((group)[0]), setup, teardown)

void cmocka_set_message_output(enum cm_message_output output);
void cmocka_set_test_filter(const char *pattern);
void cmocka_set_skip_filter(const char *pattern);

void print_message(const char *format, ...);
void print_error(const char *format, ...);

void _cm_fail(const char *file, int line);
void _cm_skip(const char *file, int line);
void _cm_fail_msg(const char *file, int line, const char *format, ...);
void _cm_true(uintmax_t v, const char *expr, const char *file, int line);
void _cm_int_equal(uintmax_t a, uintmax_t b, const char *file, int line);
void _cm_int_not_equal(uintmax_t a, uintmax_t b, const char *file, int line);
void _cm_ptr(const void *p, int want_null, const char *expr, const char *file, int line);
void _cm_ptr_not_equal(const void *a, const void *b, const char *file, int line);
void _cm_string(const char *a, const char *b, int want_equal, const char *file, int line);
void _cm_memory_equal(const void *a, const void *b, size_t n, const char *file, int line);

#define fail() _cm_fail(__FILE__, __LINE__)
#define skip() _cm_skip(__FILE__, __LINE__)
#define fail_msg(...) _cm_fail_msg(__FILE__, __LINE__, __VA_ARGS__)
#define assert_true(c) _cm_true((uintmax_t)!!(c), #c, __FILE__, __LINE__)
#define assert_false(c) _cm_true((uintmax_t)!(c), "!(" #c ")", __FILE__, __LINE__)
#define assert_int_equal(a, b) \
    _cm_int_equal((uintmax_t)(a), (uintmax_t)(b), __FILE__, __LINE__)
#define assert_int_not_equal(a, b) \
    _cm_int_not_equal((uintmax_t)(a), (uintmax_t)(b), __FILE__, __LINE__)
#define assert_non_null(p) _cm_ptr((const void *)(p), 0, #p, __FILE__, __LINE__)
#define assert_null(p) _cm_ptr((const void *)(p), 1, #p, __FILE__, __LINE__)
#define assert_ptr_not_equal(a, b) \
    _cm_ptr_not_equal((const void *)(a), (const void *)(b), __FILE__, __LINE__)
#define assert_string_equal(a, b) _cm_string((a), (b), 1, __FILE__, __LINE__)
#define assert_string_not_equal(a, b) _cm_string((a), (b), 0, __FILE__, __LINE__)
#define assert_memory_equal(a, b, n) \
    _cm_memory_equal((const void *)(a), (const void *)(b), (size_t)(n), __FILE__, __LINE__)

#endif
