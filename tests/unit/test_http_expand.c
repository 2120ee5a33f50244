/* test_http_expand.c: URL template expansion (exw_http_expand and
 * exw_http_expand_batch): what is escaped, how keys are joined, which
 * templates are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exw/http.h"

static char *expand_ok(const char *tmpl, const char *key, size_t len)
{
    struct exw_errbuf eb = {{0}};
    char *url = (char *)&eb;

    assert_int_equal(exw_http_expand(tmpl, key, len, &url, &eb), EXW_OK);
    assert_non_null(url);
    return url;
}

static void assert_expands(const char *tmpl, const char *key, size_t len, const char *want)
{
    char *url = expand_ok(tmpl, key, len);

    assert_string_equal(url, want);
    free(url);
}

static void test_expand_unreserved_kept(void **state)
{
    static const char unreserved[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789-._~";
    char want[256];

    (void)state;
    snprintf(want, sizeof(want), "http://h/x/%s", unreserved);
    assert_expands("http://h/x/{key}", unreserved, strlen(unreserved), want);
}

static void test_expand_reserved_escaped(void **state)
{
    (void)state;
    assert_expands("http://h/{key}", " ", 1, "http://h/%20");
    assert_expands("http://h/{key}", "/", 1, "http://h/%2F");
    assert_expands("http://h/{key}", "?", 1, "http://h/%3F");
    assert_expands("http://h/{key}", "#", 1, "http://h/%23");
    assert_expands("http://h/{key}", "&", 1, "http://h/%26");
    assert_expands("http://h/{key}", "+", 1, "http://h/%2B");
    assert_expands("http://h/{key}", "%", 1, "http://h/%25");
    assert_expands("http://h/{key}", "=", 1, "http://h/%3D");
    assert_expands("http://h/q?id={key}", "a b&c=d", 7, "http://h/q?id=a%20b%26c%3Dd");
    /* A path traversal stays one segment. */
    assert_expands("http://h/items/{key}", "../admin", 8, "http://h/items/..%2Fadmin");
    assert_expands("http://h/items/{key}", "..", 2, "http://h/items/..");
    /* A key that looks like the placeholder is not expanded again. */
    assert_expands("http://h/{key}", "{key}", 5, "http://h/%7Bkey%7D");
    /* Only @len bytes of the key are used. */
    assert_expands("http://h/{key}", "abcdef", 3, "http://h/abc");
}

static void test_expand_utf8_and_binary(void **state)
{
    char key[2];
    char want[64];
    unsigned b;

    (void)state;
    assert_expands("http://h/{key}", "\xc3\xa9", 2, "http://h/%C3%A9");
    assert_expands("http://h/{key}", "caf\xc3\xa9 \xe2\x82\xac", 9,
                   "http://h/caf%C3%A9%20%E2%82%AC");
    assert_expands("http://h/{key}", "\xf0\x9f\x98\x80", 4, "http://h/%F0%9F%98%80");
    /* Every byte but NUL: unreserved ones as they are, the rest as %XX in upper case. */
    for (b = 1; b < 256; b++) {
        int plain = (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') ||
                    b == '-' || b == '.' || b == '_' || b == '~';

        key[0] = (char)b;
        key[1] = '\0';
        if (plain)
            snprintf(want, sizeof(want), "https://h/k/%c/end", (char)b);
        else
            snprintf(want, sizeof(want), "https://h/k/%%%02X/end", b);
        assert_expands("https://h/k/{key}/end", key, 1, want);
    }
    /* Invalid UTF-8 is escaped byte by byte too. */
    assert_expands("http://h/{key}", "\xff\xfe\x80", 3, "http://h/%FF%FE%80");
}

static void test_expand_placeholders(void **state)
{
    (void)state;
    assert_expands("http://h/{key}/sub/{key}?again={key}", "a/b", 3,
                   "http://h/a%2Fb/sub/a%2Fb?again=a%2Fb");
    assert_expands("http://h/{key}{key}", "x", 1, "http://h/xx");
    /* No placeholder: the template as it is. */
    assert_expands("http://h/static", "ignored", 7, "http://h/static");
    /* Something that is not quite the placeholder stays. */
    assert_expands("http://h/{ke}/{KEY}/{key", "k", 1, "http://h/{ke}/{KEY}/{key");
    /* An empty key leaves the placeholder's place empty. */
    assert_expands("http://h/a/{key}/b", "", 0, "http://h/a//b");
    /* Schemes are case-insensitive. */
    assert_expands("HTTPS://h/{key}", "k", 1, "HTTPS://h/k");
    assert_expands("Http://h:8080/{key}", "k", 1, "Http://h:8080/k");
}

/* Batch templates: each key escaped as for {key}, joined by ',', so a ',' in
 * a key is %2C and the service can split the list before decoding. */
static void test_expand_batch(void **state)
{
    const char *keys[] = {"a,b", "c", "x y", "caf\xc3\xa9", ",", "{keys}"};
    char *url = NULL;
    struct exw_errbuf eb;

    (void)state;
    assert_int_equal(exw_http_expand_batch("http://h/b/{keys}?again={keys}", keys, 6, &url, &eb),
                     EXW_OK);
    assert_string_equal(url, "http://h/b/a%2Cb,c,x%20y,caf%C3%A9,%2C,%7Bkeys%7D"
                             "?again=a%2Cb,c,x%20y,caf%C3%A9,%2C,%7Bkeys%7D");
    free(url);
    assert_int_equal(exw_http_expand_batch("http://h/b?sn={keys}", keys + 1, 1, &url, &eb), EXW_OK);
    assert_string_equal(url, "http://h/b?sn=c");
    free(url);
    /* {key} is not a batch template's placeholder. */
    assert_int_equal(exw_http_expand_batch("http://h/{key}", keys, 2, &url, &eb), EXW_OK);
    assert_string_equal(url, "http://h/{key}");
    free(url);
    assert_int_equal(exw_http_expand_batch("ftp://h/{keys}", keys, 2, &url, &eb), EXW_ECONFIG);
    assert_null(url);
}

static void test_expand_bad_scheme(void **state)
{
    static const char *const bad[] = {
        "ftp://h/{key}",
        "file:///etc/{key}",
        "gopher://h/{key}",
        "{key}",
        "",
        "/relative/{key}",
        "http:/h/{key}",
        "httpx://h/{key}",
        " http://h/{key}",
        "javascript:{key}",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct exw_errbuf eb = {{0}};
        char *url = (char *)&eb;

        assert_int_equal(exw_http_expand(bad[i], "k", 1, &url, &eb), EXW_ECONFIG);
        assert_null(url);
        assert_non_null(strstr(eb.msg, "http"));
    }
    /* The errbuf is optional. */
    {
        char *url = NULL;

        assert_int_equal(exw_http_expand("ftp://h/", "k", 1, &url, NULL), EXW_ECONFIG);
        assert_null(url);
    }
}

static void test_expand_long_key(void **state)
{
    size_t len = 100000;
    char *key = malloc(len);
    char *url;
    size_t i;

    (void)state;
    assert_non_null(key);
    memset(key, '/', len);
    url = expand_ok("http://h/{key}", key, len);
    assert_int_equal(strlen(url), strlen("http://h/") + 3 * len);
    for (i = 0; i < len; i++)
        assert_memory_equal(url + strlen("http://h/") + 3 * i, "%2F", 3);
    free(url);
    free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand_unreserved_kept),
        cmocka_unit_test(test_expand_reserved_escaped),
        cmocka_unit_test(test_expand_utf8_and_binary),
        cmocka_unit_test(test_expand_placeholders),
        cmocka_unit_test(test_expand_batch),
        cmocka_unit_test(test_expand_bad_scheme),
        cmocka_unit_test(test_expand_long_key),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
