/*
 * Link-only stand-in for cmocka, used by scripts/check-macos.sh: it cross-compiles the C
 * suite for macOS with `zig cc`, where no macOS build of cmocka is at hand. The test sources
 * are compiled against the real cmocka.h; only the link resolves to these symbols, so their
 * signatures do not matter. A binary linked with this file is not a test: it refuses to run.
 * On a Mac, install cmocka (brew install cmocka) and run `make test-c` instead.
 */
#include <stdio.h>
#include <stdlib.h>

static void not_runnable(void)
{
    fputs("this binary was linked against a cmocka stub for a link check; "
          "build with the real cmocka to run it\n", stderr);
    abort();
}

#define STUB(name) void name(void); void name(void) { not_runnable(); }

STUB(_assert_float_equal)
STUB(_assert_float_not_equal)
STUB(_assert_in_range)
STUB(_assert_in_set)
STUB(_assert_int_equal)
STUB(_assert_int_not_equal)
STUB(_assert_memory_equal)
STUB(_assert_memory_not_equal)
STUB(_assert_not_in_range)
STUB(_assert_not_in_set)
STUB(_assert_return_code)
STUB(_assert_string_equal)
STUB(_assert_string_not_equal)
STUB(_assert_true)
STUB(_check_expected)
STUB(_cmocka_run_group_tests)
STUB(_expect_any)
STUB(_expect_check)
STUB(_expect_function_call)
STUB(_expect_in_range)
STUB(_expect_in_set)
STUB(_expect_memory)
STUB(_expect_not_in_range)
STUB(_expect_not_in_set)
STUB(_expect_not_memory)
STUB(_expect_not_string)
STUB(_expect_not_value)
STUB(_expect_string)
STUB(_expect_value)
STUB(_fail)
STUB(_function_called)
STUB(_mock)
STUB(_run_group_tests)
STUB(_run_test)
STUB(_run_tests)
STUB(_skip)
STUB(_test_calloc)
STUB(_test_free)
STUB(_test_malloc)
STUB(_test_realloc)
STUB(_will_return)
STUB(cm_print_error)
STUB(cmocka_set_message_output)
STUB(cmocka_set_skip_filter)
STUB(cmocka_set_test_filter)
STUB(mock_assert)
STUB(print_error)
STUB(print_message)
STUB(vprint_error)
STUB(vprint_message)

void *global_expect_assert_env;
int global_expecting_assert;
const char *global_last_failed_assert;
