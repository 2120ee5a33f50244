/* test_setting.c: the rules every setting's text follows: control characters,
 * quoting for messages, the error list, strict integers, wiped secrets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exw/setting.h"

static void test_control(void **state)
{
    (void)state;
    assert_false(exw_setting_has_control("plain text ~!", 13));
    assert_true(exw_setting_has_control("a\tb", 3));
    assert_true(exw_setting_has_control("a\x7f", 2));
    assert_true(exw_setting_has_control("a\0b", 3));      /* NUL within @n counts */
    assert_false(exw_setting_has_control("ab\n", 2));     /* only @n bytes */
    assert_false(exw_setting_has_control("\xc3\xa9", 2)); /* UTF-8 is not control */

    assert_false(exw_setting_has_space_or_control(""));
    assert_false(exw_setting_has_space_or_control("{export}:eu"));
    assert_true(exw_setting_has_space_or_control("a b"));
    assert_true(exw_setting_has_space_or_control("a\rb"));
}

static void test_character_sets(void **state)
{
    (void)state;
    assert_int_equal(strlen(EXW_SETTING_DIGITS), 10);
    assert_int_equal(strlen(EXW_SETTING_UPPER), 26);
    assert_int_equal(strlen(EXW_SETTING_LOWER), 26);
    assert_int_equal(strlen(EXW_SETTING_ALNUM), 62);
    assert_int_equal(strspn("Az09_", EXW_SETTING_ALNUM), 4);
}

static void test_show(void **state)
{
    char out[EXW_SETTING_SHOW_MAX];
    char small[16];
    char big[300];

    (void)state;
    assert_string_equal(exw_setting_show("abc", 3, out, sizeof(out)), "\"abc\"");
    assert_string_equal(exw_setting_show("", 0, out, sizeof(out)), "\"\"");
    assert_string_equal(exw_setting_show("a\"b\\c", 5, out, sizeof(out)), "\"a\\\"b\\\\c\"");
    assert_string_equal(exw_setting_show("a\nb\x7f", 4, out, sizeof(out)), "\"a\\x0ab\\x7f\"");
    /* Only @n bytes. */
    assert_string_equal(exw_setting_show("abc=secret", 3, out, sizeof(out)), "\"abc\"");
    /* Cut with "..." to fit, never past @size. */
    memset(big, 'x', sizeof(big));
    exw_setting_show(big, sizeof(big), out, sizeof(out));
    assert_true(strlen(out) < sizeof(out));
    assert_int_equal(strcmp(out + strlen(out) - 4, "...\""), 0);
    exw_setting_show("\n\n\n\n\n\n\n\n", 8, small, sizeof(small));
    assert_true(strlen(small) < sizeof(small));
    assert_int_equal(strcmp(small + strlen(small) - 4, "...\""), 0);
}

static void test_report(void **state)
{
    struct exw_buf errs;

    (void)state;
    exw_buf_init(&errs, 1024);
    exw_setting_report(&errs, "EXPORT_A", "must be %d", 1);
    exw_setting_report(&errs, "--b", "bad");
    assert_string_equal(errs.data, "EXPORT_A: must be 1\n--b: bad\n");
    exw_buf_cleanup(&errs);

    /* Past the cap the list is cut; its first lines stay whole. */
    exw_buf_init(&errs, 20);
    exw_setting_report(&errs, "A", "first");
    exw_setting_report(&errs, "B", "second line");
    exw_setting_report(&errs, "C", "x");
    assert_int_equal(errs.len, 20);
    assert_string_equal(errs.data, "A: first\nB: second l");
    exw_buf_cleanup(&errs);
}

static void test_parse_long(void **state)
{
    static const char *const not_integers[] = {
        "", " 5", "5 ", "0x10", "1e3", "1.0", "+", "-", "+-1", "10k", "\xd9\xa3", "5\n",
    };
    struct exw_buf errs;
    char want[256];
    long v;
    size_t i;

    (void)state;
    exw_buf_init(&errs, 1 << 16);
    v = 7;
    assert_int_equal(exw_setting_parse_long("42", 0, 100, &v, "L", &errs), EXW_OK);
    assert_int_equal(v, 42);
    assert_int_equal(exw_setting_parse_long("+0", 0, 100, &v, "L", &errs), EXW_OK);
    assert_int_equal(v, 0);
    assert_int_equal(exw_setting_parse_long("-5", -5, 5, &v, "L", &errs), EXW_OK);
    assert_int_equal(v, -5);
    assert_int_equal(exw_setting_parse_long("9223372036854775807", 0, LONG_MAX, &v, "L", &errs),
                     EXW_OK);
    assert_int_equal(v, LONG_MAX);
    assert_int_equal(errs.len, 0);

    for (i = 0; i < sizeof(not_integers) / sizeof(not_integers[0]); i++) {
        v = 7;
        exw_buf_reset(&errs);
        assert_int_equal(exw_setting_parse_long(not_integers[i], 0, 100, &v, "L", &errs),
                         EXW_ECONFIG);
        assert_int_equal(v, 7); /* left alone */
        if (strncmp(errs.data, "L: must be an integer, got \"", 28) != 0)
            fail_msg("%s: %s", not_integers[i], errs.data);
    }
    exw_buf_reset(&errs);
    assert_int_equal(exw_setting_parse_long("5\n", 0, 100, &v, "L", &errs), EXW_ECONFIG);
    assert_string_equal(errs.data, "L: must be an integer, got \"5\\x0a\"\n");

    exw_buf_reset(&errs);
    assert_int_equal(exw_setting_parse_long("101", 0, 100, &v, "EXPORT_X", &errs), EXW_ECONFIG);
    assert_string_equal(errs.data, "EXPORT_X: must be 0..100, got 101\n");
    exw_buf_reset(&errs);
    assert_int_equal(exw_setting_parse_long("-1", 0, 100, &v, "EXPORT_X", &errs), EXW_ECONFIG);
    assert_string_equal(errs.data, "EXPORT_X: must be 0..100, got -1\n");
    /* Out of a long's range: the same message, never a wrapped number. */
    exw_buf_reset(&errs);
    assert_int_equal(exw_setting_parse_long("99999999999999999999", 0, 100, &v, "EXPORT_X", &errs),
                     EXW_ECONFIG);
    assert_string_equal(errs.data, "EXPORT_X: must be 0..100, got 99999999999999999999\n");
    snprintf(want, sizeof(want), "EXPORT_X: must be %ld..%ld, got -99999999999999999999\n",
             LONG_MIN, LONG_MAX);
    exw_buf_reset(&errs);
    assert_int_equal(
        exw_setting_parse_long("-99999999999999999999", LONG_MIN, LONG_MAX, &v, "EXPORT_X", &errs),
        EXW_ECONFIG);
    assert_string_equal(errs.data, want);
    assert_int_equal(v, 7);
    exw_buf_cleanup(&errs);
}

static void test_free_secret(void **state)
{
    (void)state;
    exw_setting_free_secret(NULL);
    exw_setting_free_secret(exw_xstrdup(""));
    exw_setting_free_secret(exw_xstrdup("hunter2"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_control),    cmocka_unit_test(test_character_sets),
        cmocka_unit_test(test_show),       cmocka_unit_test(test_report),
        cmocka_unit_test(test_parse_long), cmocka_unit_test(test_free_secret),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
