/* test_json.c: the JSON checker and the cJSON adapter (limits and offsets,
 * out of memory), reading checked texts in place, numbers by their digits, JSON
 * Pointer over trees and texts, number formatting and string writing. UTF-8 is
 * in test_utf8.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "exw/buf.h"
#include "exw/json.h"

#define FFFD "\xEF\xBF\xBD"

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
    expect_error_str("[1,2", "invalid JSON at byte 4"); /* the end */
    expect_error_str("tru", "invalid JSON at byte 0");
    expect_error_str("\"abc", "invalid JSON at byte 4");
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
    expect_error(deep, n, 1000, "nesting deeper than 1000 levels at byte 1000");
    /* 1000 is cJSON's own limit: deeper limits are cut to it. */
    expect_error(deep, n, 5000, "nesting deeper than 1000 levels at byte 1000");
    /* Objects count as arrays do; "{{" is no JSON before it is too deep. */
    expect_error(deep, 2, 1, "nesting deeper than 1 levels at byte 1");
    memset(deep, '{', n);
    expect_error(deep, n, 1000, "invalid JSON at byte 1");
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

/* ---- Checking ---- */

static void expect_check_ok(const char *text, size_t len)
{
    struct exw_errbuf eb = {{0}};
    char *copy = malloc(len ? len : 1);
    exw_err rc;

    assert_non_null(copy);
    memcpy(copy, text, len);
    rc = exw_json_check(copy, len, 32, &eb);
    free(copy);
    if (rc != EXW_OK)
        fail_msg("%.80s: %s", text, eb.msg);
}

static void expect_check_str(const char *text) { expect_check_ok(text, strlen(text)); }

static void test_check(void **state)
{
    char *big;
    size_t i;

    (void)state;
    /* A byte order mark at the very start is skipped, as cJSON does. */
    expect_check_ok("\xEF\xBB\xBF{}", 5);
    expect_check_ok("\xEF\xBB\xBF"
                    "1",
                    4);
    expect_error("\xEF\xBB\xBF", 3, 32, "invalid JSON at byte 3");
    expect_error(" \xEF\xBB\xBF{}", 6, 32, "invalid JSON at byte 1");
    expect_error("[\xEF\xBB\xBF]", 5, 32, "invalid JSON at byte 1");
    /* Whitespace only, escapes, literals. */
    expect_error(" \n\t", 3, 32, "invalid JSON at byte 3");
    expect_error_str("[\"\\x\"]", "invalid JSON at byte 2");
    expect_error_str("[\"\\u12G4\"]", "invalid JSON at byte 2");
    expect_error_str("[\"\\u12\"]", "invalid JSON at byte 2");
    expect_error_str("[truex]", "invalid JSON at byte 5");
    expect_error_str("[nul]", "invalid JSON at byte 1");
    expect_error_str("{\"a\":1 \"b\":2}", "invalid JSON at byte 7");
    expect_error_str("{1:2}", "invalid JSON at byte 1");
    expect_error_str("[1}", "invalid JSON at byte 2");
    expect_error_str("{\"a\":1]", "invalid JSON at byte 6");
    expect_check_str("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00\"]");
    expect_check_str(" [ 1 , { \"a\" : [ ] , \"b\" : { } } , -0.5e-3 ] ");
    expect_check_str("\"\"");
    expect_check_str("{\"\":\"\"}");
    /* The range of a double, decided by the digits, however they are written. */
    expect_check_str("1.7976931348623157e308");
    expect_error_str("1.7976931348623159e308", "number out of range (beyond +-1.8e308)");
    expect_check_str("0.00000000000000000000000000000000000000001e-300"); /* underflow: 0 */
    expect_error_str("0.1e310", "number out of range (beyond +-1.8e308)");
    expect_check_str("0.1e309");
    big = malloc(2000);
    assert_non_null(big);
    /* 308 digits are finite, 309 nines are not ... */
    memset(big, '9', 400);
    expect_check_ok(big, 308);
    expect_error(big, 309, 32, "number out of range (beyond +-1.8e308)");
    /* ... and 1,000 digits with an exponent that brings them back are. */
    memcpy(big + 1000, "e-700", 5);
    memset(big, '1', 1000);
    expect_check_ok(big, 1005);
    /* Leading zeros of a fraction count for nothing. */
    memcpy(big, "0.", 2);
    for (i = 2; i < 1990; i++)
        big[i] = '0';
    memcpy(big + 1990, "1e2000", 6);
    expect_check_ok(big, 1996);
    free(big);
}

/* cJSON's allocator, failing after @budget allocations. */
static int alloc_budget;

static void *failing_malloc(size_t n)
{
    if (alloc_budget-- <= 0)
        return NULL;
    return malloc(n);
}

/* A tree cJSON cannot allocate is EXW_ENOMEM, never "invalid JSON". */
static void test_parse_enomem(void **state)
{
    cJSON_Hooks hooks = {failing_malloc, free};
    struct exw_errbuf eb = {{0}};
    cJSON *root = (cJSON *)1;
    int budget;

    (void)state;
    cJSON_InitHooks(&hooks);
    for (budget = 0; budget < 6; budget++) {
        alloc_budget = budget;
        assert_int_equal(
            parse_str("{\"a\": [1, 2, \"three\"], \"b\": {\"c\": null}}", 32, &root, &eb),
            EXW_ENOMEM);
        assert_null(root);
        assert_string_equal(eb.msg, "out of memory for the JSON tree of 40 bytes");
    }
    cJSON_InitHooks(NULL);
    assert_int_equal(parse_str("{\"a\": [1, 2, \"three\"], \"b\": {\"c\": null}}", 32, &root, &eb),
                     EXW_OK);
    cJSON_Delete(root);
}

/* ---- Reading in place ---- */

static void test_read_in_place(void **state)
{
    static const char text[] =
        "\xEF\xBB\xBF { \"n\\u0061me\" : \"caf\\u00e9 \\\"x\\\" \\ud83d\\ude00\","
        " \"list\" : [ 1.50 , true , false , null , [ ] , { } , \"]\" ] ,"
        " \"\" : -0 }";
    struct exw_json_value root, name, v, e;
    struct exw_json_iter it, items;
    char buf[64], seen[96];
    size_t n;
    double d;

    (void)state;
    assert_int_equal(exw_json_check(text, sizeof(text) - 1, 32, NULL), EXW_OK);
    exw_json_root(text, sizeof(text) - 1, &root);
    assert_int_equal(root.kind, EXW_JSON_OBJECT);
    assert_int_equal(root.text[root.len - 1], '}');
    exw_json_iter_init(&it, &root);

    assert_true(exw_json_iter_next(&it, &name, &v));
    assert_true(exw_json_string_eq(&name, "name", 4));
    assert_false(exw_json_string_eq(&name, "nam", 3));
    assert_false(exw_json_string_eq(&name, "names", 5));
    assert_int_equal(v.kind, EXW_JSON_STRING);
    n = exw_json_string_decode(&v, buf);
    assert_int_equal(n, strlen("caf\xC3\xA9 \"x\" \xF0\x9F\x98\x80"));
    assert_string_equal(buf, "caf\xC3\xA9 \"x\" \xF0\x9F\x98\x80");
    assert_true(exw_json_string_eq(&v, buf, n));
    exw_json_describe(&v, seen, sizeof(seen));
    assert_string_equal(seen, "string \"caf\xC3\xA9 \"x\" \xF0\x9F\x98\x80\"");

    assert_true(exw_json_iter_next(&it, &name, &v));
    assert_int_equal(v.kind, EXW_JSON_ARRAY);
    exw_json_iter_init(&items, &v);
    assert_true(exw_json_iter_next(&items, NULL, &e));
    assert_int_equal(e.kind, EXW_JSON_NUMBER);
    assert_int_equal(e.len, 4);
    assert_int_equal(exw_json_number(&e, &d), EXW_OK);
    assert_true(d == 1.5);
    exw_json_describe(&e, seen, sizeof(seen));
    assert_string_equal(seen, "number 1.50");
    assert_true(exw_json_iter_next(&items, &name, &e));
    assert_int_equal(name.kind, EXW_JSON_NONE); /* elements have no name */
    assert_int_equal(e.kind, EXW_JSON_TRUE);
    assert_true(exw_json_iter_next(&items, NULL, &e));
    assert_int_equal(e.kind, EXW_JSON_FALSE);
    assert_true(exw_json_iter_next(&items, NULL, &e));
    assert_int_equal(e.kind, EXW_JSON_NULL);
    assert_true(exw_json_iter_next(&items, NULL, &e));
    assert_int_equal(e.kind, EXW_JSON_ARRAY);
    assert_int_equal(e.len, 3);
    assert_true(exw_json_iter_next(&items, NULL, &e));
    assert_int_equal(e.kind, EXW_JSON_OBJECT);
    assert_true(exw_json_iter_next(&items, NULL, &e));
    assert_int_equal(e.kind, EXW_JSON_STRING);
    assert_false(exw_json_iter_next(&items, NULL, &e));
    assert_int_equal(e.kind, EXW_JSON_NONE);
    assert_false(exw_json_iter_next(&items, NULL, &e)); /* and stays at the end */

    assert_true(exw_json_iter_next(&it, &name, &v));
    assert_true(exw_json_string_eq(&name, "", 0));
    assert_true(exw_json_number_whole(&v, &d));
    assert_true(d == 0 && !signbit(d));
    assert_false(exw_json_iter_next(&it, &name, &v));

    /* Scalars have no members; a long string is described by its start. */
    exw_json_iter_init(&it, &e);
    assert_false(exw_json_iter_next(&it, NULL, &v));
    {
        static const char long_text[] = "\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
                                        "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
                                        "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"";
        char *dup;

        exw_json_root(long_text, sizeof(long_text) - 1, &v);
        exw_json_describe(&v, seen, sizeof(seen));
        assert_int_equal(strlen(seen), strlen("string \"\"...") + 40);
        assert_true(exw_utf8_valid(seen, strlen(seen), NULL));
        dup = exw_json_string_dup(&v, &n);
        assert_int_equal(n, 42);
        free(dup);
    }
    assert_string_equal(exw_json_kind_name(EXW_JSON_NONE), "nothing");
    assert_string_equal(exw_json_kind_name(EXW_JSON_TRUE), "boolean");
}

/* ---- Numbers, by their digits ---- */

static void number_of(const char *literal, struct exw_json_value *v)
{
    memset(v, 0, sizeof(*v));
    v->kind = EXW_JSON_NUMBER;
    v->text = literal;
    v->len = strlen(literal);
}

static void test_numbers_by_digits(void **state)
{
    static const char half[] = /* 2^-1075, exactly: halfway between 0 and 2^-1074 */
        "2.47032822920623272088284396434110686182529901307162382212792841250337"
        "7536351043759326499181808179961898982823477228588654633283551779698981"
        "9938739800539093906315035659515570226392290858392449105184435931802849"
        "9365361525003193704576782492193656236698636584807570015857692699037063"
        "1192827955855133292783433840935197801553124659726357957462276646527282"
        "7220056374006485499977096599470454020828166226237857393450736339007967"
        "7619305775067401763246736009689513405355374585166611342237666786041621"
        "5968046191446729184030053005753084904876539171138659164623952491262365"
        "3881879636239373280423891018672348497668235089863388587925628302755995"
        "6575244555072551893136908362547791869486679949683240497058210285131854"
        "51396213837722826145437693412532098591327667236328125";
    struct exw_json_value v;
    char *big;
    double d;

    (void)state;
    /* Long literals are rounded as strtod rounds all their digits. */
    big = malloc(3000);
    assert_non_null(big);
    memset(big, '0', 2999);
    big[2999] = '\0';
    memcpy(big, "0.", 2);
    big[1000] = '1';
    number_of(big, &v);
    assert_int_equal(exw_json_number(&v, &d), EXW_OK);
    assert_true(d == strtod(big, NULL));
    /* 2^-1075, halfway between 0 and the least subnormal, rounds to even (0);
     * a hair more rounds up, and only a digit far past the 800th says so. */
    assert_true(strlen(half) > 750);
    snprintf(big, 3000, "%se-324", half);
    number_of(big, &v);
    assert_int_equal(exw_json_number(&v, &d), EXW_OK);
    assert_true(d == 0);
    snprintf(big, 3000, "%s%01200de-324", half, 1);
    number_of(big, &v);
    assert_int_equal(exw_json_number(&v, &d), EXW_OK);
    assert_true(d == strtod(big, NULL));
    assert_true(d == 4.9406564584124654e-324);
    free(big);

    number_of("-1e400", &v);
    assert_int_equal(exw_json_number(&v, &d), EXW_ELIMIT);
    number_of("1.5.0", &v);
    assert_int_equal(exw_json_number(&v, &d), EXW_EJSON);
    number_of("01", &v);
    assert_false(exw_json_number_whole(&v, &d));
    v.kind = EXW_JSON_STRING;
    assert_int_equal(exw_json_number(&v, &d), EXW_EJSON);
    assert_false(exw_json_number_whole(&v, &d));

    number_of("12.50e1", &v);
    assert_true(exw_json_number_whole(&v, &d));
    assert_true(d == 125);
    number_of("9007199254740993", &v);
    assert_false(exw_json_number_whole(&v, &d));
    number_of("1.0000000000000001", &v);
    assert_false(exw_json_number_whole(&v, &d));
    number_of("-9007199254740992", &v);
    assert_true(exw_json_number_whole(&v, &d));
    assert_true(d == -9007199254740992.0);
    number_of("1e999999999999999999999", &v);
    assert_false(exw_json_number_whole(&v, &d));
    number_of("1e-999999999999999999999", &v);
    assert_false(exw_json_number_whole(&v, &d));
}

/* ---- JSON Pointer over a text ---- */

/* The text resolver must name what the tree resolver names. */
static void expect_same_pointer(const cJSON *tree, const struct exw_json_value *root,
                                const char *pointer)
{
    const cJSON *t = NULL;
    struct exw_json_value v;
    char *printed;
    char buf[64];

    assert_int_equal(exw_json_pointer(tree, pointer, &t), EXW_OK);
    assert_int_equal(exw_json_pointer_text(root, pointer, &v), EXW_OK);
    if (t == NULL) {
        if (v.kind != EXW_JSON_NONE)
            fail_msg("%s: the text resolver found %.*s", pointer, (int)v.len, v.text);
        return;
    }
    assert_int_not_equal(v.kind, EXW_JSON_NONE);
    /* Compare the two through cJSON's own printing of the text's value. */
    printed = cJSON_PrintUnformatted(t);
    assert_non_null(printed);
    if (v.kind == EXW_JSON_STRING) {
        exw_json_string_decode(&v, buf);
        assert_string_equal(buf, cJSON_GetStringValue(t));
    } else if (v.kind == EXW_JSON_NUMBER) {
        double d;

        assert_int_equal(exw_json_number(&v, &d), EXW_OK);
        assert_true(d == t->valuedouble);
    } else {
        assert_int_equal(v.kind == EXW_JSON_OBJECT, cJSON_IsObject(t));
        assert_int_equal(v.kind == EXW_JSON_ARRAY, cJSON_IsArray(t));
        assert_int_equal(v.kind == EXW_JSON_TRUE, cJSON_IsTrue(t));
        assert_int_equal(v.kind == EXW_JSON_NULL, cJSON_IsNull(t));
    }
    cJSON_free(printed);
}

static void test_pointer_text(void **state)
{
    static const char *const pointers[] = {
        "",
        "/foo",
        "/foo/0",
        "/foo/1",
        "/",
        "/a~1b",
        "/c%d",
        "/e^f",
        "/g|h",
        "/i\\j",
        "/k\"l",
        "/ ",
        "/m~0n",
        "/~01",
        "/~1",
        "/\xC3\xA9t\xC3\xA9",
        "/nested/list/0/x",
        "/nested/list/1/0",
        "/nested/list/1/1",
        "/foo/2",
        "/foo/-",
        "/foo/01",
        "/foo/00",
        "/foo/-1",
        "/foo/+1",
        "/foo/1e0",
        "/foo/ 1",
        "/foo/",
        "/foo/99999999999999999999999999",
        "/FOO",
        "/fo",
        "/fooo",
        "/missing",
        "/a/b",
        "/m~1n",
        "/foo/0/x",
        "/e^f/0",
        "/nested/list/0/x/y",
        "//",
        "/nested/0",
        "/dup",
        "/esc",
    };
    static const char doc_tail[] = ",\"dup\": 1, \"dup\": 2, \"\\u0065sc\": \"\\u00e9\"}";
    struct exw_json_value root, v;
    char text[1024];
    cJSON *tree = NULL;
    size_t i, len;

    (void)state;
    len = strlen(rfc6901_doc) - 1; /* without its closing brace */
    memcpy(text, rfc6901_doc, len);
    memcpy(text + len, doc_tail, sizeof(doc_tail));
    len += sizeof(doc_tail) - 1;
    assert_int_equal(parse_exact(text, len, 32, &tree, NULL), EXW_OK);
    exw_json_root(text, len, &root);
    for (i = 0; i < sizeof(pointers) / sizeof(pointers[0]); i++)
        expect_same_pointer(tree, &root, pointers[i]);
    /* Invalid pointers name nothing, as for trees. */
    v.kind = EXW_JSON_TRUE;
    assert_int_equal(exw_json_pointer_text(&root, "foo", &v), EXW_EJSON);
    assert_int_equal(v.kind, EXW_JSON_NONE);
    assert_int_equal(exw_json_pointer_text(&root, NULL, &v), EXW_EJSON);
    assert_int_equal(exw_json_pointer_text(&root, "/missing/~2", &v), EXW_EJSON);
    cJSON_Delete(tree);
}

/* ---- Writing strings ---- */

/* @s (@len bytes) written as a JSON string must be @want, and read back by
 * the checker (and cJSON) as @back. */
static void expect_written(const char *s, size_t len, const char *want, const char *back)
{
    struct exw_json_value v;
    struct exw_buf b;
    char out[256];
    cJSON *root = NULL;

    exw_buf_init(&b, 4096);
    assert_int_equal(exw_buf_append(&b, "x", 1), EXW_OK);
    assert_int_equal(exw_json_append_string(&b, s, len), EXW_OK);
    assert_string_equal(b.data + 1, want);
    assert_true(b.len - 1 <= 6 * len + 2);
    assert_int_equal(exw_json_check(b.data + 1, b.len - 1, 1, NULL), EXW_OK);
    exw_json_root(b.data + 1, b.len - 1, &v);
    exw_json_string_decode(&v, out);
    assert_string_equal(out, back);
    assert_int_equal(exw_json_parse(b.data + 1, b.len - 1, 1, &root, NULL), EXW_OK);
    assert_string_equal(cJSON_GetStringValue(root), back);
    cJSON_Delete(root);
    exw_buf_cleanup(&b);
}

static void test_append_string(void **state)
{
    struct exw_buf b;

    (void)state;
    expect_written("", 0, "\"\"", "");
    expect_written("plain text", 10, "\"plain text\"", "plain text");
    expect_written("caf\xC3\xA9 \xF0\x9F\x98\x80", 10, "\"caf\xC3\xA9 \xF0\x9F\x98\x80\"",
                   "caf\xC3\xA9 \xF0\x9F\x98\x80");
    /* Quotes, backslashes, control characters. */
    expect_written("a\"b\\c/", 6, "\"a\\\"b\\\\c/\"", "a\"b\\c/");
    expect_written("\n\r\t\b\f\x01\x1f\x7f", 8, "\"\\n\\r\\t\\b\\f\\u0001\\u001f\x7f\"",
                   "\n\r\t\b\f\x01\x1f\x7f");
    /* Ill-formed UTF-8: one U+FFFD per maximal subpart. */
    expect_written("a\xFF"
                   "b",
                   3, "\"a" FFFD "b\"", "a" FFFD "b");
    expect_written("\xC0\xAF", 2, "\"" FFFD FFFD "\"", FFFD FFFD);
    expect_written("\xED\xA0\x80", 3, "\"" FFFD FFFD FFFD "\"", FFFD FFFD FFFD);
    /* An embedded NUL, which \u0000 would carry but our reader refuses. */
    expect_written("a\0b", 3, "\"a" FFFD "b\"", "a" FFFD "b");
    /* A cut in the middle of a character, at the end and before more text. */
    expect_written("ab\xE2\x82", 4, "\"ab" FFFD "\"", "ab" FFFD);
    expect_written("\xF0\x9F\x98"
                   "x",
                   4, "\"" FFFD "x\"", FFFD "x");
    /* Past the buffer's cap: EXW_ELIMIT, the buffer as it was. */
    exw_buf_init(&b, 8);
    assert_int_equal(exw_buf_append(&b, "ab", 2), EXW_OK);
    assert_int_equal(exw_json_append_string(&b, "123456", 6), EXW_ELIMIT);
    assert_int_equal(b.len, 2);
    assert_string_equal(b.data, "ab");
    assert_int_equal(exw_json_append_string(&b, "\n\n\n", 3), EXW_ELIMIT);
    assert_string_equal(b.data, "ab");
    assert_int_equal(exw_json_append_string(&b, "123", 3), EXW_OK);
    assert_string_equal(b.data, "ab\"123\"");
    exw_buf_cleanup(&b);
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
        cmocka_unit_test(test_parse_enomem),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_read_in_place),
        cmocka_unit_test(test_numbers_by_digits),
        cmocka_unit_test(test_pointer_rfc6901),
        cmocka_unit_test(test_pointer_nothing),
        cmocka_unit_test(test_pointer_invalid),
        cmocka_unit_test(test_pointer_text),
        cmocka_unit_test(test_format_number),
        cmocka_unit_test(test_format_number_round_trip),
        cmocka_unit_test(test_append_string),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
