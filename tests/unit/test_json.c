/* test_json.c: the JSON adapter (parse limits and offsets), UTF-8, JSON Pointer
 * and number formatting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "exw/json.h"

/* Parses a copy of @text without its NUL in a buffer of exactly its length, so
 * that the sanitizers catch any read past the end. */
static exw_err parse_exact(const char *text, size_t len, int max_depth, cJSON **out,
                           struct exw_errbuf *eb)
{
    char *copy = malloc(len ? len : 1);
    exw_err rc;

    assert_non_null(copy);
    memcpy(copy, text, len);
    rc = exw_json_parse(copy, len, max_depth, out, eb);
    free(copy);
    return rc;
}

static exw_err parse_str(const char *text, int max_depth, cJSON **out, struct exw_errbuf *eb)
{
    return parse_exact(text, strlen(text), max_depth, out, eb);
}

/* Asserts that @text fails to parse with exactly the message @msg. */
static void expect_error(const char *text, size_t len, int max_depth, const char *msg)
{
    struct exw_errbuf eb = {{0}};
    cJSON *root = (cJSON *)1;

    /* Well-formed JSON over our own limits is ELIMIT, anything else EJSON. */
    exw_err want = strncmp(msg, "nesting", 7) == 0 ||
                           strncmp(msg, "string contains a NUL", 21) == 0 ||
                           strncmp(msg, "number out of range", 19) == 0 ||
                           strncmp(msg, "unpaired surrogate", 18) == 0
                       ? EXW_ELIMIT
                       : EXW_EJSON;

    assert_int_equal(parse_exact(text, len, max_depth, &root, &eb), want);
    assert_null(root);
    assert_string_equal(eb.msg, msg);
}

static void expect_error_str(const char *text, const char *msg)
{
    expect_error(text, strlen(text), 32, msg);
}

/* ---- Parsing ---- */

static void test_parse_ok(void **state)
{
    struct exw_errbuf eb = {{0}};
    const cJSON *v;
    cJSON *root = NULL;

    (void)state;
    assert_int_equal(
        parse_str(" {\"a\": [1, 2.5, {\"b\": null}], \"c\": \"x\"} \n\t\r ", 32, &root, &eb),
        EXW_OK);
    assert_non_null(root);
    assert_int_equal(exw_json_pointer(root, "/a/1", &v), EXW_OK);
    assert_true(cJSON_IsNumber(v));
    assert_true(v->valuedouble == 2.5);
    assert_int_equal(exw_json_pointer(root, "/c", &v), EXW_OK);
    assert_string_equal(cJSON_GetStringValue(v), "x");
    cJSON_Delete(root);

    /* Scalars, values ending exactly at the end of the buffer. */
    assert_int_equal(parse_str("123", 0, &root, &eb), EXW_OK);
    assert_true(root->valuedouble == 123);
    cJSON_Delete(root);
    assert_int_equal(parse_str("true", 0, &root, &eb), EXW_OK);
    assert_true(cJSON_IsTrue(root));
    cJSON_Delete(root);
    assert_int_equal(parse_str("\"\\u00e9\\ud83d\\ude00\"", 0, &root, &eb), EXW_OK);
    assert_string_equal(cJSON_GetStringValue(root), "\xC3\xA9\xF0\x9F\x98\x80");
    cJSON_Delete(root);

    /* A NULL errbuf is fine on both paths. */
    assert_int_equal(parse_str("[]", 1, &root, NULL), EXW_OK);
    cJSON_Delete(root);
    assert_int_equal(parse_str("[", 1, &root, NULL), EXW_EJSON);
    assert_null(root);
}

static void test_parse_errors(void **state)
{
    (void)state;
    expect_error("", 0, 32, "empty document");
    expect_error_str("{\"a\":1,}", "invalid JSON at byte 7");
    expect_error_str("{\"a\" 1}", "invalid JSON at byte 5");
    expect_error_str("[1,]", "invalid JSON at byte 3");
    expect_error_str("[1,2", "invalid JSON at byte 3");
    expect_error_str("tru", "invalid JSON at byte 0");
    expect_error_str("\"abc", "invalid JSON at byte 1");
    expect_error_str("[.5]", "invalid JSON at byte 1");
    expect_error_str("[NaN]", "invalid JSON at byte 1");
    /* Lone surrogates in escapes cannot become UTF-8. */
    expect_error_str("\"\\ud800\"", "unpaired surrogate escape in a string at byte 1");
    expect_error_str("\"\\udc00x\"", "unpaired surrogate escape in a string at byte 1");
    expect_error_str("\"\\ud800\\u0041\"", "unpaired surrogate escape in a string at byte 1");
    expect_error_str("[012]", "invalid JSON at byte 1: malformed number");
    expect_error_str("[-01]", "invalid JSON at byte 1: malformed number");
    expect_error_str("[1.]", "invalid JSON at byte 1: malformed number");
    expect_error_str("[1.e5]", "invalid JSON at byte 1: malformed number");
    expect_error_str("[00]", "invalid JSON at byte 1: malformed number");
    expect_error_str("[-]", "invalid JSON at byte 1: malformed number");
}

static void test_parse_trailing(void **state)
{
    (void)state;
    expect_error_str("{\"a\":1} x", "unexpected data at byte 8");
    expect_error_str("[1]]", "unexpected data at byte 3");
    expect_error_str("1 2", "unexpected data at byte 2");
    expect_error_str("{} {}", "unexpected data at byte 3");
    expect_error_str("1.5e", "invalid JSON at byte 0: malformed number");
    /* A NUL after the value is data, not an end marker (and no JSON at all). */
    expect_error("[1]\0", 4, 32, "invalid JSON at byte 3");
    expect_error("[1] \0 ", 6, 32, "invalid JSON at byte 4");
}

static void test_parse_depth(void **state)
{
    struct exw_errbuf eb = {{0}};
    cJSON *root = NULL;
    char buf[128];
    size_t i, n;
    char *deep;

    (void)state;
    /* 32 levels pass, 33 do not; the prescan reports the byte of the 33rd. */
    for (i = 0; i < 32; i++) {
        buf[i] = '[';
        buf[64 + i] = ']';
    }
    assert_int_equal(parse_exact(buf, 32, 32, &root, &eb), EXW_EJSON); /* unclosed */
    memcpy(buf + 32, buf + 64, 32);
    assert_int_equal(parse_exact(buf, 64, 32, &root, &eb), EXW_OK);
    cJSON_Delete(root);
    expect_error(buf, 64, 31, "nesting deeper than 31 levels at byte 31");
    expect_error("{\"a\":{\"b\":[1]}}", 15, 2, "nesting deeper than 2 levels at byte 10");
    expect_error("[]", 2, 0, "nesting deeper than 0 levels at byte 0");
    assert_int_equal(parse_str("{\"a\":{\"b\":[1]}}", 3, &root, &eb), EXW_OK);
    cJSON_Delete(root);

    /* Brackets inside strings, escaped quotes included, do not count. */
    assert_int_equal(parse_str("[\"[[[[{{{{\", \"\\\"[[[[\", {\"[[\": \"]]]]\"}]", 2, &root, &eb),
                     EXW_OK);
    cJSON_Delete(root);

    /* 100,000 levels are refused before cJSON recurses, closed or not. */
    n = 100000;
    deep = malloc(2 * n);
    assert_non_null(deep);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    expect_error(deep, 2 * n, 32, "nesting deeper than 32 levels at byte 32");
    expect_error(deep, n, 32, "nesting deeper than 32 levels at byte 32");
    memset(deep, '{', n);
    expect_error(deep, n, 1000, "nesting deeper than 1000 levels at byte 1000");
    free(deep);
}

static void test_parse_nul_and_controls(void **state)
{
    struct exw_errbuf eb = {{0}};
    cJSON *root = NULL;

    (void)state;
    expect_error_str("{\"a\":\"x\\u0000y\"}", "string contains a NUL character at byte 7");
    expect_error_str("[\"\\u0000\"]", "string contains a NUL character at byte 2");
    /* An escaped backslash followed by the letters u0000 is plain text. */
    assert_int_equal(parse_str("[\"\\\\u0000\"]", 32, &root, &eb), EXW_OK);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(root, 0)), "\\u0000");
    cJSON_Delete(root);
    /* Other escapes of control characters are fine. */
    assert_int_equal(parse_str("\"a\\u0001\\tb\"", 32, &root, &eb), EXW_OK);
    assert_string_equal(cJSON_GetStringValue(root), "a\001\tb");
    cJSON_Delete(root);

    /* Raw NUL and control bytes: RFC 8259 forbids them in strings. */
    expect_error("[\"a\0b\"]", 7, 32, "control character U+0000 in a string at byte 3");
    expect_error_str("[\"a\tb\"]", "control character U+0009 in a string at byte 3");
    expect_error("[1,\0 2]", 7, 32, "invalid JSON at byte 3");
    expect_error_str("[1,\001 2]", "invalid JSON at byte 3");
}

static void test_parse_utf8(void **state)
{
    struct exw_errbuf eb = {{0}};
    cJSON *root = NULL;

    (void)state;
    expect_error_str("[\"\xC3\x28\"]", "invalid UTF-8 at byte 2");
    expect_error_str("[\"ok\", \"\xED\xA0\x80\"]", "invalid UTF-8 at byte 8");
    expect_error_str("\xFF", "invalid UTF-8 at byte 0");
    expect_error("[\"\xE2\x82", 4, 32, "invalid UTF-8 at byte 2");
    assert_int_equal(parse_str("[\"\xE2\x82\xAC \xF0\x9F\x98\x80\"]", 32, &root, &eb), EXW_OK);
    cJSON_Delete(root);
}

static void test_parse_number_range(void **state)
{
    (void)state;
    expect_error_str("[1e999]", "number out of range (beyond +-1.8e308)");
    expect_error_str("{\"a\": -1e400}", "number out of range (beyond +-1.8e308)");
}

#define PARSE_THREADS 4

static void *parse_many(void *arg)
{
    static const char doc[] = "{\"id\":\"x\",\"rows\":[{\"a\":1},{\"a\":[true,false,null]}]}";
    cJSON *root;
    int i, *failures = arg;

    for (i = 0; i < 2000; i++) {
        if (exw_json_parse(doc, sizeof(doc) - 1, 32, &root, NULL) != EXW_OK)
            (*failures)++;
        cJSON_Delete(root);
        if (exw_json_parse(doc, sizeof(doc) - 2, 32, &root, NULL) == EXW_OK)
            (*failures)++;
    }
    return NULL;
}

/* Parses from several threads at once (run under TSan in CI). */
static void test_parse_threads(void **state)
{
    pthread_t tid[PARSE_THREADS];
    int failures[PARSE_THREADS] = {0};
    int i;

    (void)state;
    for (i = 0; i < PARSE_THREADS; i++)
        assert_int_equal(pthread_create(&tid[i], NULL, parse_many, &failures[i]), 0);
    for (i = 0; i < PARSE_THREADS; i++) {
        assert_int_equal(pthread_join(tid[i], NULL), 0);
        assert_int_equal(failures[i], 0);
    }
}

/* ---- UTF-8 ---- */

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

/* ---- JSON Pointer ---- */

static const char rfc6901_doc[] = "{\n"
                                  "  \"foo\": [\"bar\", \"baz\"],\n"
                                  "  \"\": 0,\n"
                                  "  \"a/b\": 1,\n"
                                  "  \"c%d\": 2,\n"
                                  "  \"e^f\": 3,\n"
                                  "  \"g|h\": 4,\n"
                                  "  \"i\\\\j\": 5,\n"
                                  "  \"k\\\"l\": 6,\n"
                                  "  \" \": 7,\n"
                                  "  \"m~n\": 8,\n"
                                  "  \"~1\": 9,\n"
                                  "  \"/\": 10,\n"
                                  "  \"nested\": {\"list\": [{\"x\": true}, [null, \"deep\"]]},\n"
                                  "  \"\xC3\xA9t\xC3\xA9\": 11\n"
                                  "}";

static const cJSON *lookup(const cJSON *root, const char *pointer)
{
    const cJSON *v = (const cJSON *)1;

    assert_int_equal(exw_json_pointer(root, pointer, &v), EXW_OK);
    return v;
}

static void expect_number(const cJSON *root, const char *pointer, double want)
{
    const cJSON *v = lookup(root, pointer);

    assert_non_null(v);
    assert_true(cJSON_IsNumber(v));
    assert_true(v->valuedouble == want);
}

static void test_pointer_rfc6901(void **state)
{
    cJSON *root = NULL;
    const cJSON *v;

    (void)state;
    assert_int_equal(parse_str(rfc6901_doc, 32, &root, NULL), EXW_OK);

    /* RFC 6901 section 5. */
    assert_ptr_equal(lookup(root, ""), root);
    v = lookup(root, "/foo");
    assert_true(cJSON_IsArray(v));
    assert_int_equal(cJSON_GetArraySize(v), 2);
    assert_string_equal(cJSON_GetStringValue(lookup(root, "/foo/0")), "bar");
    assert_string_equal(cJSON_GetStringValue(lookup(root, "/foo/1")), "baz");
    expect_number(root, "/", 0);
    expect_number(root, "/a~1b", 1);
    expect_number(root, "/c%d", 2);
    expect_number(root, "/e^f", 3);
    expect_number(root, "/g|h", 4);
    expect_number(root, "/i\\j", 5);
    expect_number(root, "/k\"l", 6);
    expect_number(root, "/ ", 7);
    expect_number(root, "/m~0n", 8);

    /* "~01" is "~1", not "/": unescape ~1 before ~0. */
    expect_number(root, "/~01", 9);
    expect_number(root, "/~1", 10);
    expect_number(root, "/\xC3\xA9t\xC3\xA9", 11);
    assert_true(cJSON_IsTrue(lookup(root, "/nested/list/0/x")));
    assert_true(cJSON_IsNull(lookup(root, "/nested/list/1/0")));
    assert_string_equal(cJSON_GetStringValue(lookup(root, "/nested/list/1/1")), "deep");
    cJSON_Delete(root);
}

static void test_pointer_nothing(void **state)
{
    cJSON *root = NULL;

    (void)state;
    assert_int_equal(parse_str(rfc6901_doc, 32, &root, NULL), EXW_OK);
    /* Out of range or malformed indexes. */
    assert_null(lookup(root, "/foo/2"));
    assert_null(lookup(root, "/foo/-"));
    assert_null(lookup(root, "/foo/01"));
    assert_null(lookup(root, "/foo/00"));
    assert_null(lookup(root, "/foo/-1"));
    assert_null(lookup(root, "/foo/+1"));
    assert_null(lookup(root, "/foo/1e0"));
    assert_null(lookup(root, "/foo/ 1"));
    assert_null(lookup(root, "/foo/"));
    assert_null(lookup(root, "/foo/99999999999999999999999999"));
    assert_null(lookup(root, "/foo/18446744073709551616"));
    /* Exact, case-sensitive member names. */
    assert_null(lookup(root, "/FOO"));
    assert_null(lookup(root, "/fo"));
    assert_null(lookup(root, "/fooo"));
    assert_null(lookup(root, "/missing"));
    assert_null(lookup(root, "/a/b"));
    assert_null(lookup(root, "/m~1n"));
    assert_null(lookup(root, "/\xC3\x89t\xC3\xA9"));
    /* Through a scalar, and past the end of the path's values. */
    assert_null(lookup(root, "/foo/0/x"));
    assert_null(lookup(root, "/e^f/0"));
    assert_null(lookup(root, "/nested/list/0/x/y"));
    assert_null(lookup(root, "//"));
    /* An object is not indexed by position. */
    assert_null(lookup(root, "/nested/0"));
    /* A NULL root names nothing. */
    assert_null(lookup(NULL, "/foo"));
    assert_null(lookup(NULL, ""));
    cJSON_Delete(root);
}

static void test_pointer_invalid(void **state)
{
    static const char *const bad[] = {"foo", "#/foo", "/~2", "/a~", "/~", "/foo/~x", "~0"};
    static const char *const good[] = {"", "/", "//", "/~0~1", "/a/b/0", "/ "};
    const cJSON *v;
    cJSON *root = NULL;
    size_t i;

    (void)state;
    assert_int_equal(parse_str(rfc6901_doc, 32, &root, NULL), EXW_OK);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(exw_json_pointer_valid(bad[i]));
        v = (const cJSON *)1;
        assert_int_equal(exw_json_pointer(root, bad[i], &v), EXW_EJSON);
        assert_null(v);
    }
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(exw_json_pointer_valid(good[i]));
    assert_false(exw_json_pointer_valid(NULL));
    v = (const cJSON *)1;
    assert_int_equal(exw_json_pointer(root, NULL, &v), EXW_EJSON);
    assert_null(v);
    /* Invalid even where the walk would stop early. */
    v = (const cJSON *)1;
    assert_int_equal(exw_json_pointer(root, "/missing/~2", &v), EXW_EJSON);
    assert_null(v);
    cJSON_Delete(root);
}

/* ---- Numbers ---- */

static void expect_format(double v, const char *want)
{
    char out[32];

    memset(out, 'x', sizeof(out));
    exw_json_format_number(v, out);
    assert_string_equal(out, want);
}

/* The number a JSON text holds, formatted. */
static void expect_format_json(const char *json, const char *want)
{
    cJSON *root = NULL;

    assert_int_equal(parse_str(json, 0, &root, NULL), EXW_OK);
    expect_format(root->valuedouble, want);
    cJSON_Delete(root);
}

static void test_format_number(void **state)
{
    (void)state;
    expect_format(1.5, "1.5");
    expect_format_json("1.50", "1.5");
    expect_format_json("1e5", "100000");
    expect_format(1e21, "1e+21");
    expect_format(1e20, "100000000000000000000");
    expect_format(0.000001, "0.000001");
    expect_format(1e-7, "1e-7");
    expect_format(123456789012.0, "123456789012");
    expect_format(0.1 + 0.2, "0.30000000000000004");
    expect_format(-2.5, "-2.5");

    expect_format(0.0, "0");
    expect_format(-0.0, "0");
    expect_format(1, "1");
    expect_format(-1, "-1");
    expect_format(0.1, "0.1");
    expect_format(100, "100");
    expect_format(123.456, "123.456");
    expect_format(1.2e21, "1.2e+21");
    expect_format(-1e-7, "-1e-7");
    expect_format(1.5e-7, "1.5e-7");
    expect_format(0.00001234, "0.00001234");
    expect_format(1.23e-18, "1.23e-18");
    expect_format(9007199254740992.0, "9007199254740992");
    expect_format(12345678901234567890.0, "12345678901234567000");
    expect_format(1e100, "1e+100");
    expect_format(5e-324, "5e-324");
    expect_format(-1.7976931348623157e308, "-1.7976931348623157e+308");
    expect_format(2.2250738585072014e-308, "2.2250738585072014e-308");
    expect_format(-1.2345678901234567e-300, "-1.2345678901234568e-300");
    expect_format(NAN, "NaN");
    expect_format(INFINITY, "Infinity");
    expect_format(-INFINITY, "-Infinity");
    expect_format_json("-0.0", "0");
    expect_format_json("0.1e1", "1");
    expect_format_json("123456789012345678", "123456789012345680");
}

/* Every formatted number reads back as the same double. */
static void test_format_number_round_trip(void **state)
{
    char out[32];
    uint64_t bits = 0x9E3779B97F4A7C15u;
    double v;
    int i;

    (void)state;
    for (i = 0; i < 20000; i++) {
        bits ^= bits << 13;
        bits ^= bits >> 7;
        bits ^= bits << 17;
        memcpy(&v, &bits, sizeof(v));
        if (!isfinite(v))
            continue;
        exw_json_format_number(v, out);
        assert_true(strlen(out) < sizeof(out));
        assert_true(strtod(out, NULL) == v || (v == 0 && strcmp(out, "0") == 0));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_trailing),
        cmocka_unit_test(test_parse_depth),
        cmocka_unit_test(test_parse_nul_and_controls),
        cmocka_unit_test(test_parse_utf8),
        cmocka_unit_test(test_parse_number_range),
        cmocka_unit_test(test_parse_threads),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_len),
        cmocka_unit_test(test_utf8_sanitize),
        cmocka_unit_test(test_pointer_rfc6901),
        cmocka_unit_test(test_pointer_nothing),
        cmocka_unit_test(test_pointer_invalid),
        cmocka_unit_test(test_format_number),
        cmocka_unit_test(test_format_number_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
