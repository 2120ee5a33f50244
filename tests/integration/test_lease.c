/* test_lease.c: lease.h's Redis side against a real redis-server: the
 * heartbeat with its registration, and deregistration. */
#include "itest.h"

#include "exw/lease.h"
#include "exw/queue.h"

static void beat(struct exw_redis *rd, const char *job, const char *jobs, long long done,
                 long ttl_ms)
{
    struct exw_beat b = {
        .host = "host-a",
        .pid = 4242,
        .started_at = INT64_C(1700000000123),
        .job = job,
        .jobs = jobs,
        .jobs_done = done,
        .ttl_ms = ttl_ms,
    };
    struct exw_errbuf eb = {{0}};

    it_expect_ok(exw_lease_beat(rd, &b, &eb), &eb);
}

static void test_beat(void **state)
{
    struct it_fx *f = *state;
    struct it_name hb = it_key(f, "worker:%s", IT_WORKER), workers = it_key(f, "workers");

    beat(f->rd, "j1", "j1 j2", 7, 3000);
    it_expect_field(f, &hb, "host", "host-a");
    it_expect_field(f, &hb, "pid", "4242");
    it_expect_field(f, &hb, "started_at", "1700000000123");
    it_expect_field(f, &hb, "job", "j1");
    it_expect_field(f, &hb, "jobs", "j1 j2");
    it_expect_field(f, &hb, "jobs_done", "7");
    assert_int_equal(it_int(f->h, "HLEN", hb.s, NULL), 6);
    it_expect_pttl(f, &hb, 3000);
    assert_true(it_is_member(f, &workers, IT_WORKER));

    /* A renewal rewrites the fields and the TTL. */
    it_ok(f->h, "PEXPIRE", hb.s, "500", NULL);
    beat(f->rd, "", "", 8, 3000);
    it_expect_field(f, &hb, "job", "");
    it_expect_field(f, &hb, "jobs", "");
    it_expect_field(f, &hb, "jobs_done", "8");
    assert_true(it_pttl(f, &hb) > 500);
    it_expect_pttl(f, &hb, 3000);
    assert_int_equal(it_int(f->h, "SCARD", workers.s, NULL), 1);

    /* After the key lapsed, a renewal brings back both. */
    it_ok(f->h, "DEL", hb.s, NULL);
    it_ok(f->h, "SREM", workers.s, IT_WORKER, NULL);
    beat(f->rd, "", "", 9, 3000);
    it_expect_pttl(f, &hb, 3000);
    assert_true(it_is_member(f, &workers, IT_WORKER));
}

static void test_deregister(void **state)
{
    struct it_fx *f = *state;
    struct it_name hb = it_key(f, "worker:%s", IT_WORKER), workers = it_key(f, "workers");
    struct it_name q = it_key(f, "queue"), p = it_key(f, "processing:%s", IT_WORKER);
    struct exw_redis *other = it_open(f->env, f->prefix, "w2");
    struct exw_errbuf eb = {{0}};
    long long moved = -1;
    char *doc = NULL;
    size_t len = 0;

    beat(f->rd, "", "", 0, 3000);
    it_expect_ok(exw_lease_deregister(f->rd, &eb), &eb);
    assert_int_equal(it_exists(f, &hb), 0);
    assert_false(it_is_member(f, &workers, IT_WORKER));

    /* With a job it could not put back, it stays registered so that recovery
     * finds the job once the heartbeat is gone. */
    beat(f->rd, "j1", "j1", 0, 3000);
    it_ok(f->h, "LPUSH", q.s, "doc-j1", NULL);
    it_expect_ok(exw_queue_take(f->rd, 0.05, &doc, &len, &eb), &eb);
    assert_non_null(doc);
    free(doc);
    it_expect_ok(exw_lease_deregister(f->rd, &eb), &eb);
    assert_int_equal(it_exists(f, &hb), 0);
    assert_true(it_is_member(f, &workers, IT_WORKER));
    it_expect_list(f, &p, (const char *const[]){"doc-j1"}, 1);

    it_expect_ok(exw_queue_recover(other, &moved, &eb), &eb);
    assert_int_equal(moved, 1);
    it_expect_list(f, &q, (const char *const[]){"doc-j1"}, 1);
    assert_int_equal(it_exists(f, &p), 0);
    assert_false(it_is_member(f, &workers, IT_WORKER));
    exw_redis_free(other);
}

/* Deregistering a worker that never beat is harmless. */
static void test_deregister_unregistered(void **state)
{
    struct it_fx *f = *state;
    struct exw_errbuf eb = {{0}};
    char *before = it_snapshot(f);

    it_expect_ok(exw_lease_deregister(f->rd, &eb), &eb);
    it_expect_unchanged(f, before);
}

int main(void)
{
    struct it_env e;
    int rc;

    if (it_env_init(&e, "lease") != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        IT_TEST(test_beat, &e),
        IT_TEST(test_deregister, &e),
        IT_TEST(test_deregister_unregistered, &e),
    };

    rc = cmocka_run_group_tests(tests, NULL, NULL);
    exw_redis_addr_cleanup(&e.addr);
    return rc;
}
