/* test_utf8.c: the one UTF-8 scanner: well-formedness (overlongs, surrogates,
 * past U+10FFFF, truncation), maximal subparts, character counts, cuts at
 * character boundaries and U+FFFD replacement. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "exw/err.h"
#include "exw/utf8.h"

static void expect_utf8_bad(const char *s, size_t len, size_t at)
{
    size_t bad = 12345;

    assert_false(exw_utf8_valid(s, len, &bad));
    assert_int_equal(bad, at);
    assert_false(exw_utf8_valid(s, len, NULL));
}

static void test_utf8_valid(void **state)
{
    size_t bad = 12345;

    (void)state;
    assert_true(exw_utf8_valid("", 0, &bad));
    assert_true(exw_utf8_valid("plain ASCII", 11, &bad));
    assert_true(exw_utf8_valid("a\0b", 3, &bad));             /* NUL is a code point */
    assert_true(exw_utf8_valid("\xC2\x80", 2, NULL));         /* U+0080 */
    assert_true(exw_utf8_valid("\xDF\xBF", 2, NULL));         /* U+07FF */
    assert_true(exw_utf8_valid("\xE0\xA0\x80", 3, NULL));     /* U+0800 */
    assert_true(exw_utf8_valid("\xED\x9F\xBF", 3, NULL));     /* U+D7FF */
    assert_true(exw_utf8_valid("\xEE\x80\x80", 3, NULL));     /* U+E000 */
    assert_true(exw_utf8_valid("\xEF\xBF\xBF", 3, NULL));     /* U+FFFF */
    assert_true(exw_utf8_valid("\xF0\x90\x80\x80", 4, NULL)); /* U+10000 */
    assert_true(exw_utf8_valid("\xF4\x8F\xBF\xBF", 4, NULL)); /* U+10FFFF */
    assert_int_equal(bad, 12345);

    /* Overlongs. */
    expect_utf8_bad("\xC0\x80", 2, 0);
    expect_utf8_bad("\xC1\xBF", 2, 0);
    expect_utf8_bad("ab\xE0\x80\x80", 5, 2);
    expect_utf8_bad("\xE0\x9F\xBF", 3, 0);
    expect_utf8_bad("\xF0\x80\x80\x80", 4, 0);
    expect_utf8_bad("\xF0\x8F\xBF\xBF", 4, 0);
    /* Surrogates. */
    expect_utf8_bad("x\xED\xA0\x80", 4, 1);
    expect_utf8_bad("\xED\xBF\xBF", 3, 0);
    /* Past U+10FFFF. */
    expect_utf8_bad("\xF4\x90\x80\x80", 4, 0);
    expect_utf8_bad("\xF5\x80\x80\x80", 4, 0);
    expect_utf8_bad("\xF8\x88\x80\x80\x80", 5, 0);
    expect_utf8_bad("\xFF", 1, 0);
    expect_utf8_bad("\xFE", 1, 0);
    /* Truncated sequences and stray continuation bytes. */
    expect_utf8_bad("abc\xE2\x82", 5, 3);
    expect_utf8_bad("\xE2\x82x", 3, 0);
    expect_utf8_bad("\xF0\x9F\x98", 3, 0);
    expect_utf8_bad("\xC3", 1, 0);
    expect_utf8_bad("a\x80", 2, 1);
    expect_utf8_bad("\xC3\xA9\xBF", 3, 2);
    /* The length bounds the check: a valid prefix of a longer buffer. */
    assert_true(exw_utf8_valid("\xC3\xA9\xFF", 2, NULL));
}

static void test_utf8_len(void **state)
{
    (void)state;
    assert_int_equal(exw_utf8_len("", 0), 0);
    assert_int_equal(exw_utf8_len("abc", 3), 3);
    assert_int_equal(exw_utf8_len("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 10), 4);
}

static void expect_sanitized(const char *in, size_t len, const char *want)
{
    char *got = exw_utf8_sanitize(in, len);

    assert_string_equal(got, want);
    free(got);
}

#define FFFD "\xEF\xBF\xBD"

static void test_utf8_sanitize(void **state)
{
    (void)state;
    expect_sanitized("", 0, "");
    expect_sanitized("ok \xC3\xA9", 5, "ok \xC3\xA9");
    expect_sanitized("a\0b", 3, "a" FFFD "b");
    /* The example of Unicode 15, table 3-8: one U+FFFD per maximal subpart. */
    expect_sanitized("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64", 13,
                     "a" FFFD FFFD FFFD "b" FFFD "c" FFFD FFFD "d");
    /* Overlongs, surrogates and > U+10FFFF: each byte on its own. */
    expect_sanitized("\xC0\xAF", 2, FFFD FFFD);
    expect_sanitized("\xE0\x80\xAF", 3, FFFD FFFD FFFD);
    expect_sanitized("\xED\xA0\x80", 3, FFFD FFFD FFFD);
    expect_sanitized("\xF4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD);
    expect_sanitized("\xF5x", 2, FFFD "x");
    /* A truncated sequence is one maximal subpart. */
    expect_sanitized("\xF0\x9F\x98x", 4, FFFD "x");
    expect_sanitized("x\xE2\x82", 3, "x" FFFD);
    expect_sanitized("\xE2\x82\xE2\x82\xAC", 5, FFFD "\xE2\x82\xAC");
}

static void expect_seq(const char *s, size_t n, size_t want, size_t want_sub)
{
    size_t sub = 99;

    assert_int_equal(exw_utf8_seq(s, n, &sub), want);
    if (want == 0)
        assert_int_equal(sub, want_sub);
    assert_int_equal(exw_utf8_seq(s, n, NULL), want);
}

static void test_utf8_seq(void **state)
{
    (void)state;
    expect_seq("a", 1, 1, 0);
    expect_seq("\0", 1, 1, 0);
    expect_seq("\xC3\xA9", 2, 2, 0);
    expect_seq("\xE2\x82\xAC", 3, 3, 0);
    expect_seq("\xF0\x9F\x98\x80", 4, 4, 0);
    /* Ill-formed: the maximal subpart is what one U+FFFD replaces. */
    expect_seq("\x80", 1, 0, 1);
    expect_seq("\xC0\x80", 2, 0, 1);
    expect_seq("\xE0\x80\x80", 3, 0, 1);
    expect_seq("\xED\xA0\x80", 3, 0, 1);
    expect_seq("\xF4\x90\x80\x80", 4, 0, 1);
    expect_seq("\xE2\x82", 2, 0, 2);
    expect_seq("\xE2\x82x", 3, 0, 2);
    expect_seq("\xF0\x9F\x98", 3, 0, 3);
    /* @n bounds the look-ahead. */
    expect_seq("\xC3\xA9", 1, 0, 1);
}

static void test_utf8_cut(void **state)
{
    static const char euro3[] = "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC";
    char buf[8];

    (void)state;
    assert_int_equal(exw_utf8_cut("abc", 3, 5), 3);
    assert_int_equal(exw_utf8_cut("abcdef", 6, 4), 4);
    assert_int_equal(exw_utf8_cut("", 0, 0), 0);
    assert_int_equal(exw_utf8_cut("abc", 3, 0), 0);
    /* Inside a character: back to where it starts. */
    assert_int_equal(exw_utf8_cut(euro3, 9, 4), 3);
    assert_int_equal(exw_utf8_cut(euro3, 9, 5), 3);
    assert_int_equal(exw_utf8_cut(euro3, 9, 6), 6);
    assert_int_equal(exw_utf8_cut("a\xF0\x9F\x98\x80", 5, 4), 1);
    assert_int_equal(exw_utf8_cut("a\xF0\x9F\x98\x80", 5, 5), 5);
    /* Only bytes before @max are read: a buffer cut short by snprintf. */
    memcpy(buf, "ab\xE2\x82", 4);
    assert_int_equal(exw_utf8_cut(buf, 100, 4), 2);
    assert_int_equal(exw_utf8_cut(buf, 100, 2), 2);
}

/* Error texts are cut at whole characters when they do not fit. */
static void test_errbuf_cut(void **state)
{
    struct exw_errbuf eb;
    char text[600];
    size_t i, len;

    (void)state;
    for (i = 0; i + 3 <= 599; i += 3)
        memcpy(text + i, "\xE2\x82\xAC", 3);
    text[i] = '\0';
    for (size_t shift = 0; shift < 3; shift++) {
        exw_errbuf_set(&eb, EXW_EJSON, "%.*s%s", (int)shift, "xx", text);
        len = strlen(eb.msg);
        assert_true(len <= sizeof(eb.msg) - 1 && len >= sizeof(eb.msg) - 4);
        assert_true(exw_utf8_valid(eb.msg, len, NULL));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_seq),      cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_len),      cmocka_unit_test(test_utf8_cut),
        cmocka_unit_test(test_utf8_sanitize), cmocka_unit_test(test_errbuf_cut),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
