/* test_redis_addr.c: EXPORT_REDIS_URL forms, the reasons a bad one is refused
 * (never showing its password), and the description with the password as ***. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "exw/redis_addr.h"

static void test_redis_url_forms(void **state)
{
    static const struct {
        const char *url;
        const char *host, *path, *user, *password;
        int port, db;
    } ok[] = {
        {"redis://127.0.0.1:6379/0", "127.0.0.1", NULL, NULL, NULL, 6379, 0},
        {"redis://h", "h", NULL, NULL, NULL, 6379, 0},
        {"redis://h/", "h", NULL, NULL, NULL, 6379, 0},
        {"redis://h:7000", "h", NULL, NULL, NULL, 7000, 0},
        {"redis://redis-1.svc_a/15", "redis-1.svc_a", NULL, NULL, NULL, 6379, 15},
        {"REDIS://H:1/2", "H", NULL, NULL, NULL, 1, 2},
        {"redis://:pw@h", "h", NULL, NULL, "pw", 6379, 0},
        {"redis://:@h", "h", NULL, NULL, NULL, 6379, 0},
        {"redis://alice:pw@h:6380/3", "h", NULL, "alice", "pw", 6380, 3},
        {"redis://al%69ce:p%40ss%3Aw%2F%25@h", "h", NULL, "alice", "p@ss:w/%", 6379, 0},
        {"redis://:p@ss:w/x@h:5/1", "h", NULL, NULL, "p@ss:w/x", 5, 1},
        {"redis://[::1]:6380/1", "::1", NULL, NULL, NULL, 6380, 1},
        {"redis://[::1]", "::1", NULL, NULL, NULL, 6379, 0},
        {"redis://u:p@[fe80::1:2]/4", "fe80::1:2", NULL, "u", "p", 6379, 4},
        {"redis://h:65535/2147483647", "h", NULL, NULL, NULL, 65535, 2147483647},
        {"unix:///run/redis.sock", NULL, "/run/redis.sock", NULL, NULL, 0, 0},
        {"unix:///run/redis.sock?db=4", NULL, "/run/redis.sock", NULL, NULL, 0, 4},
        {"unix://:pw@/tmp/r.sock", NULL, "/tmp/r.sock", NULL, "pw", 0, 0},
        {"unix://u:p%40w@/tmp/r.sock?db=2", NULL, "/tmp/r.sock", "u", "p@w", 0, 2},
    };
    struct exw_redis_addr a;
    struct exw_errbuf eb;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        eb.msg[0] = '\0';
        if (exw_redis_addr_parse(ok[i].url, &a, &eb) != EXW_OK)
            fail_msg("%s: %s", ok[i].url, eb.msg);
        assert_string_or_null(a.host, ok[i].host);
        assert_string_or_null(a.path, ok[i].path);
        assert_string_or_null(a.user, ok[i].user);
        assert_string_or_null(a.password, ok[i].password);
        if (ok[i].host != NULL)
            assert_int_equal(a.port, ok[i].port);
        assert_int_equal(a.db, ok[i].db);
        exw_redis_addr_cleanup(&a);
        assert_null(a.host);
    }
}

static void test_redis_url_bad(void **state)
{
    static const struct {
        const char *url;
        const char *why;
    } bad[] = {
        {"", "is empty"},
        {"http://h", "must start with redis:// or unix://"},
        {"h:6379", "must start with redis:// or unix://"},
        {"rediss://h", "rediss:// (TLS) is not supported"},
        {"redis://", "has no host"},
        {"redis://:6379", "has no host"},
        {"redis://:hunter2@", "has no host"},
        {"redis://h:", "the port must be a number from 1 to 65535"},
        {"redis://h:0", "the port must be a number from 1 to 65535"},
        {"redis://h:65536", "the port must be a number from 1 to 65535"},
        {"redis://h:x", "the port must be a number from 1 to 65535"},
        {"redis://h/x", "the database after / must be a number"},
        {"redis://h/1/2", "the database after / must be a number"},
        {"redis://h/2147483648", "the database after / must be a number"},
        {"redis://h?db=1", "takes no query parameters"},
        {"redis://h h", "must not contain spaces or control characters"},
        {"redis://h!", "the host may only hold"},
        {"redis://[::1", "the IPv6 host lacks its closing ]"},
        {"redis://[::g]", "the IPv6 host is not an IPv6 address"},
        {"redis://[::1]x", "expected :PORT or /DB after the host"},
        {"redis://hunter2@h", "write USER:PASSWORD@ or :PASSWORD@"},
        {"redis://bob:@h", "the user has no password"},
        {"redis://:hunter2%zz@h", "bad percent-encoding in the password"},
        {"redis://:hunter2%0@h", "bad percent-encoding in the password"},
        {"redis://:hunter2%00@h", "bad percent-encoding in the password"},
        {"redis://b%g0b:hunter2@h", "bad percent-encoding in the user name"},
        {"unix://", "unix:// takes an absolute socket path"},
        {"unix://run/redis.sock", "unix:// takes an absolute socket path"},
        {"unix://:hunter2@run/redis.sock", "unix:// takes an absolute socket path"},
        {"unix:///", "has no socket path"},
        {"unix:///s?x=1", "the only query parameter is db=N"},
        {"unix:///s?db=", "db= must be a number"},
        {"unix:///s?db=1&x=2", "db= must be a number"},
        {"unix://hunter2@/s", "write USER:PASSWORD@"},
    };
    struct exw_redis_addr a;
    struct exw_errbuf eb;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&a, 0x5a, sizeof(a));
        eb.msg[0] = '\0';
        if (exw_redis_addr_parse(bad[i].url, &a, &eb) != EXW_ECONFIG)
            fail_msg("%s: accepted", bad[i].url);
        if (strstr(eb.msg, bad[i].why) == NULL)
            fail_msg("%s: got \"%s\", want \"%s\"", bad[i].url, eb.msg, bad[i].why);
        assert_null(strstr(eb.msg, "hunter2"));
        /* Nothing to free after a failure. */
        assert_null(a.host);
        assert_null(a.path);
        assert_null(a.user);
        assert_null(a.password);
    }
    /* A socket path longer than sun_path allows. */
    {
        char url[200] = "unix:///";
        memset(url + 8, 's', 120);
        url[128] = '\0';
        assert_int_equal(exw_redis_addr_parse(url, &a, &eb), EXW_ECONFIG);
        assert_non_null(strstr(eb.msg, "the socket path is longer than 107 bytes"));
        assert_int_equal(exw_redis_addr_parse(url, &a, NULL), EXW_ECONFIG);
    }
}

static void test_cleanup(void **state)
{
    struct exw_redis_addr a;

    (void)state;
    assert_int_equal(exw_redis_addr_parse("redis://u:pw@h:1/2", &a, NULL), EXW_OK);
    exw_redis_addr_cleanup(&a);
    assert_null(a.host);
    assert_null(a.user);
    assert_null(a.password);
    assert_int_equal(a.port, 0);
    exw_redis_addr_cleanup(&a); /* Twice is harmless. */
    exw_redis_addr_cleanup(NULL);
}

static void test_describe(void **state)
{
    static const struct {
        const char *url, *want;
    } cases[] = {
        {"redis://h", "redis://h:6379/0"},
        {"REDIS://H:1/2", "redis://H:1/2"},
        {"redis://:hunter2@h", "redis://:***@h:6379/0"},
        {"redis://al%20ice:hunter2@h:5/3", "redis://al%20ice:***@h:5/3"},
        {"redis://a.b-c_d~e:hunter2@h", "redis://a.b-c_d~e:***@h:6379/0"},
        {"redis://%c3%a9:hunter2@h", "redis://%C3%A9:***@h:6379/0"},
        {"redis://[::1]:6380/1", "redis://[::1]:6380/1"},
        {"redis://u:hunter2@[fe80::1:2]/4", "redis://u:***@[fe80::1:2]:6379/4"},
        {"unix:///run/r.sock", "unix:///run/r.sock"},
        {"unix:///run/r.sock?db=0", "unix:///run/r.sock"},
        {"unix://:hunter2@/run/r.sock?db=3", "unix://:***@/run/r.sock?db=3"},
    };
    struct exw_redis_addr a;
    struct exw_buf b;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(exw_redis_addr_parse(cases[i].url, &a, NULL), EXW_OK);
        exw_buf_init(&b, 1024);
        exw_redis_addr_describe(&a, &b);
        assert_string_equal(b.data, cases[i].want);
        assert_null(strstr(b.data, "hunter2"));
        exw_buf_cleanup(&b);
        exw_redis_addr_cleanup(&a);
    }
    /* A small buffer cuts the description rather than dropping a piece. */
    assert_int_equal(exw_redis_addr_parse("redis://:hunter2@host:6379/0", &a, NULL), EXW_OK);
    exw_buf_init(&b, 12);
    exw_redis_addr_describe(&a, &b);
    assert_string_equal(b.data, "redis://:***");
    exw_buf_cleanup(&b);
    exw_redis_addr_cleanup(&a);
}

static void test_host_optional(void **state)
{
    static const struct {
        const char *url;
        const char *host, *password;
        int db;
    } ok[] = {
        {"redis://:pw@/2", NULL, "pw", 2},
        {"redis:///3", NULL, NULL, 3},
        {"redis://", NULL, NULL, 0},
        {"redis://:pw@", NULL, "pw", 0},
        {"redis://:pw@:6380/1", NULL, "pw", 1},
        {"redis://h:1/4", "h", NULL, 4},
    };
    struct exw_redis_addr a;
    struct exw_buf b;
    struct exw_errbuf eb;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        eb.msg[0] = '\0';
        if (exw_redis_addr_parse_for(ok[i].url, &a, 1, &eb) != EXW_OK)
            fail_msg("%s: %s", ok[i].url, eb.msg);
        assert_string_or_null(a.host, ok[i].host);
        assert_string_or_null(a.password, ok[i].password);
        assert_int_equal(a.db, ok[i].db);
        exw_redis_addr_cleanup(&a);
    }
    /* Without host_optional, as exw_redis_addr_parse, a host is required. */
    assert_int_equal(exw_redis_addr_parse_for("redis://:pw@/2", &a, 0, &eb), EXW_ECONFIG);
    assert_string_equal(eb.msg, "has no host");
    assert_int_equal(exw_redis_addr_parse("redis://:pw@/2", &a, &eb), EXW_ECONFIG);
    /* The rest of the URL is still checked. */
    assert_int_equal(exw_redis_addr_parse_for("redis://:pw@/x", &a, 1, &eb), EXW_ECONFIG);
    assert_null(strstr(eb.msg, "pw"));
    /* A URL without a host is described without one. */
    assert_int_equal(exw_redis_addr_parse_for("redis://u:hunter2@/2", &a, 1, NULL), EXW_OK);
    exw_buf_init(&b, 1024);
    exw_redis_addr_describe(&a, &b);
    assert_string_equal(b.data, "redis://u:***@/2");
    exw_buf_cleanup(&b);
    exw_redis_addr_cleanup(&a);
}

static void test_sentinels(void **state)
{
    struct exw_redis_addr a;
    struct exw_errbuf eb;

    (void)state;
    memset(&a, 0, sizeof(a));
    assert_int_equal(
        exw_redis_addr_set_sentinels(&a, "s1:26379,10.0.0.2:26380, [::1]:5000 ,s4,[fe80::2]",
                                     "mymaster", "hunter2", &eb),
        EXW_OK);
    assert_int_equal(a.nsentinels, 5);
    assert_string_equal(a.sentinels[0].host, "s1");
    assert_int_equal(a.sentinels[0].port, 26379);
    assert_string_equal(a.sentinels[1].host, "10.0.0.2");
    assert_int_equal(a.sentinels[1].port, 26380);
    assert_string_equal(a.sentinels[2].host, "::1");
    assert_int_equal(a.sentinels[2].port, 5000);
    assert_string_equal(a.sentinels[3].host, "s4");
    assert_int_equal(a.sentinels[3].port, 26379);
    assert_string_equal(a.sentinels[4].host, "fe80::2");
    assert_int_equal(a.sentinels[4].port, 26379);
    assert_string_equal(a.master, "mymaster");
    assert_string_equal(a.sentinel_password, "hunter2");
    /* Set again: replaced, not appended. */
    assert_int_equal(exw_redis_addr_set_sentinels(&a, "only:1", "m", NULL, &eb), EXW_OK);
    assert_int_equal(a.nsentinels, 1);
    assert_null(a.sentinel_password);
    exw_redis_addr_cleanup(&a);
    assert_null(a.sentinels);
    assert_int_equal(a.nsentinels, 0);
    assert_null(a.master);
}

static void test_sentinels_bad(void **state)
{
    static const struct {
        const char *list, *why;
    } bad[] = {
        {"", "entry 1 is empty"},
        {"a:1,", "entry 2 is empty"},
        {"a:1,,b:2", "entry 2 is empty"},
        {"a:0", "entry 1: the port must be a number from 1 to 65535"},
        {"a:1,b:65536", "entry 2: the port must be a number from 1 to 65535"},
        {"a:x", "entry 1: the port must be a number from 1 to 65535"},
        {"a:", "entry 1: the port must be a number from 1 to 65535"},
        {"::1:26379", "entry 1: write HOST:PORT"},
        {"[::1:26379", "entry 1: the IPv6 host lacks its closing ]"},
        {"[]:1", "entry 1: the IPv6 host is not an address"},
        {"[zz]:1", "entry 1: the IPv6 host is not an address"},
        {"[::1]x", "entry 1: expected :PORT after the host"},
        {"h/x:1", "entry 1: write HOST:PORT"},
        {"a b:1", "entry 1: write HOST:PORT"},
        {"a:1\n", "must not contain control characters"},
        {"a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", "names more than 16 sentinels"},
    };
    struct exw_redis_addr a;
    struct exw_errbuf eb;
    size_t i;

    (void)state;
    memset(&a, 0, sizeof(a));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        eb.msg[0] = '\0';
        if (exw_redis_addr_set_sentinels(&a, bad[i].list, "m", "pw", &eb) != EXW_ECONFIG)
            fail_msg("%s: accepted", bad[i].list);
        assert_contains(eb.msg, bad[i].why);
        assert_null(a.sentinels);
        assert_int_equal(a.nsentinels, 0);
        assert_null(a.master);
        assert_null(a.sentinel_password);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_url_forms), cmocka_unit_test(test_redis_url_bad),
        cmocka_unit_test(test_cleanup),         cmocka_unit_test(test_describe),
        cmocka_unit_test(test_host_optional),   cmocka_unit_test(test_sentinels),
        cmocka_unit_test(test_sentinels_bad),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
