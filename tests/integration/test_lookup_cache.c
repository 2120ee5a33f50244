/* test_lookup_cache.c: lookup_cache.h against a real redis-server: entry
 * names (the service in lower case, the key as it is), one MGET for a window
 * of keys with misses for absent entries and entries of another type, and
 * writes in one script call, with the TTL, over whatever was there. */
#include "itest.h"

#include "exw/lookup_cache.h"

static void test_get_hits_and_misses(void **state)
{
    struct it_fx *f = *state;
    struct it_name a = it_key(f, "cache:tether:A"), list = it_key(f, "cache:tether:L");
    struct it_name hash = it_key(f, "cache:tether:H"), odd = it_key(f, "cache:tether:x y,z:1");
    const char *keys[] = {"A", "missing", "L", "H", "x y,z:1", "a"};
    char *bodies[6];
    size_t lens[6], i;
    struct exw_errbuf eb = {{0}};

    it_ok(f->h, "SET", a.s, "{\"n\":1}", NULL);
    it_ok(f->h, "RPUSH", list.s, "x", NULL);
    it_ok(f->h, "HSET", hash.s, "f", "v", NULL);
    it_ok(f->h, "SET", odd.s, "[]", NULL);
    it_expect_ok(exw_cache_get(f->rd, "TETHER", keys, 6, bodies, lens, &eb), &eb);
    assert_non_null(bodies[0]);
    assert_int_equal(lens[0], 7);
    assert_string_equal(bodies[0], "{\"n\":1}");
    assert_null(bodies[1]);
    assert_null(bodies[2]); /* a list is a miss, not an error */
    assert_null(bodies[3]);
    assert_non_null(bodies[4]);
    assert_string_equal(bodies[4], "[]");
    assert_null(bodies[5]); /* keys are case-sensitive */
    for (i = 0; i < 6; i++)
        free(bodies[i]);
}

static void test_put_with_ttl(void **state)
{
    struct it_fx *f = *state;
    struct it_name k1 = it_key(f, "cache:tether:K1"), k2 = it_key(f, "cache:tether:K2");
    const char *keys[] = {"K1", "K2"};
    const char *bodies[] = {"{\"a\":1}", "nul\0inside"};
    size_t lens[] = {7, 10};
    char *got[2];
    size_t got_lens[2];
    struct exw_errbuf eb = {{0}};

    it_ok(f->h, "RPUSH", k2.s, "was a list", NULL);
    it_expect_ok(exw_cache_put(f->rd, "Tether", 90, keys, bodies, lens, 2, &eb), &eb);
    it_expect_bytes(f, &k1, "{\"a\":1}", 7);
    it_expect_bytes(f, &k2, "nul\0inside", 10);
    assert_true(it_pttl(f, &k1) > 85000 && it_pttl(f, &k1) <= 90000);
    assert_true(it_pttl(f, &k2) > 85000);
    it_expect_ok(exw_cache_get(f->rd, "tether", keys, 2, got, got_lens, &eb), &eb);
    assert_int_equal(got_lens[1], 10);
    assert_memory_equal(got[1], "nul\0inside", 10);
    free(got[0]);
    free(got[1]);
}

int main(void)
{
    struct it_env e;
    int rc;

    if (it_env_init(&e, "lookup_cache") != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        IT_TEST(test_get_hits_and_misses, &e),
        IT_TEST(test_put_with_ttl, &e),
    };

    rc = cmocka_run_group_tests(tests, NULL, NULL);
    exw_redis_addr_cleanup(&e.addr);
    return rc;
}
