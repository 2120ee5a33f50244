/* test_result.c: result.h against a real redis-server: the upload in
 * chunks, its TTL and its listing in P:uploads:<worker>. */
#include "itest.h"

#include "exw/result.h"
#include "exw/status.h"

static void chunk(struct it_fx *f, const char *id, int first, const void *data, size_t len,
                  long ttl_ms)
{
    struct exw_errbuf eb = {{0}};

    it_expect_ok(exw_result_chunk(f->rd, id, first, data, len, ttl_ms, &eb), &eb);
}

static void test_chunks_append(void **state)
{
    struct it_fx *f = *state;
    struct it_name up = it_key(f, "upload:%s:j1", IT_WORKER), res = it_key(f, "result:j1");

    chunk(f, "j1", 1, "PK\3\4\0\0", 6, 60000);
    it_expect_bytes(f, &up, "PK\3\4\0\0", 6);
    it_expect_pttl(f, &up, 60000);
    chunk(f, "j1", 0, "rest\0!", 6, 60000);
    it_expect_bytes(f, &up, "PK\3\4\0\0rest\0!", 12);
    it_expect_pttl(f, &up, 60000);
    chunk(f, "j1", 0, "", 0, 60000);
    it_expect_bytes(f, &up, "PK\3\4\0\0rest\0!", 12);
    /* Never a result before the end renames it. */
    assert_int_equal(it_exists(f, &res), 0);

    /* A first chunk again starts the upload over (a retried upload). */
    chunk(f, "j1", 1, "new", 3, 30000);
    it_expect_bytes(f, &up, "new", 3);
    it_expect_pttl(f, &up, 30000);
}

static void test_first_chunk_lists_key(void **state)
{
    struct it_fx *f = *state;
    struct it_name up1 = it_key(f, "upload:%s:j1", IT_WORKER);
    struct it_name up2 = it_key(f, "upload:%s:j2", IT_WORKER);
    struct it_name ups = it_key(f, "uploads:%s", IT_WORKER);

    chunk(f, "j1", 1, "a", 1, 60000);
    assert_true(it_is_member(f, &ups, up1.s));
    assert_int_equal(it_int(f->h, "SCARD", ups.s, NULL), 1);
    it_expect_pttl(f, &ups, 60000);
    chunk(f, "j1", 0, "b", 1, 60000);
    chunk(f, "j2", 1, "c", 1, 60000);
    assert_true(it_is_member(f, &ups, up2.s));
    assert_int_equal(it_int(f->h, "SCARD", ups.s, NULL), 2);
    it_expect_pttl(f, &ups, 60000);
}

static void test_result_key(void **state)
{
    char *k = exw_result_key("{export}", "j-1");

    (void)state;
    assert_string_equal(k, "{export}:result:j-1");
    free(k);
}

/* The upload key went (expired during a long outage, or evicted) between two
 * chunks: the next chunk must not start a new key from the middle of the
 * workbook, without a TTL, which the end would then rename into a result
 * that is cut. */
static void test_chunk_after_upload_gone(void **state)
{
    struct it_fx *f = *state;
    struct it_name up = it_key(f, "upload:%s:j1", IT_WORKER);
    struct exw_errbuf eb = {{0}};
    exw_err rc;

    chunk(f, "j1", 1, "PK\3\4", 4, 60000);
    it_ok(f->h, "DEL", up.s, NULL);
    rc = exw_result_chunk(f->rd, "j1", 0, "tail", 4, 60000, &eb);
    if (rc == EXW_OK)
        fail_msg("the chunk after the upload went was accepted: %s now holds %lld bytes, "
                 "PTTL %lld",
                 up.s, it_int(f->h, "STRLEN", up.s, NULL), it_pttl(f, &up));
    assert_int_equal(it_exists(f, &up), 0);
}

int main(void)
{
    struct it_env e;
    int rc;

    if (it_env_init(&e, "result") != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        IT_TEST(test_chunks_append, &e),
        IT_TEST(test_first_chunk_lists_key, &e),
        cmocka_unit_test(test_result_key),
        IT_TEST(test_chunk_after_upload_gone, &e),
    };

    rc = cmocka_run_group_tests(tests, NULL, NULL);
    exw_redis_addr_cleanup(&e.addr);
    return rc;
}
