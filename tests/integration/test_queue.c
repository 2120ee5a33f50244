/* test_queue.c: queue.h against a real redis-server: take (BLMOVE into the
 * own processing list), the own list after a lost take, requeue, recovery of
 * dead workers (and its race), release, rows_key lists, and the P:dead
 * entry. */
#include "itest.h"

#include <cjson/cJSON.h>
#include <pthread.h>

#include "exw/clock.h"
#include "exw/digest.h"
#include "exw/queue.h"
#include "exw/result.h"
#include "exw/status.h"

/* Rounds of the recovery race, each on fresh keys. */
#define RACE_ROUNDS 50
#define RACE_DEAD 3 /* dead workers per round */
#define RACE_JOBS 3 /* jobs each dead worker holds */

/* Takes the next job and asserts it is @want (NULL: none came). */
static void expect_take(struct exw_redis *rd, const char *want)
{
    struct exw_errbuf eb = {{0}};
    char *doc = NULL;
    size_t len = 99;

    it_expect_ok(exw_queue_take(rd, 0.05, &doc, &len, &eb), &eb);
    if (want == NULL && doc != NULL)
        fail_msg("took \"%s\", want none", doc);
    if (want != NULL && doc == NULL)
        fail_msg("took none, want \"%s\"", want);
    if (want != NULL) {
        assert_int_equal(len, strlen(want));
        assert_string_equal(doc, want);
    } else {
        assert_int_equal(len, 0);
    }
    free(doc);
}

/* Queues @doc and takes it, so that it sits in the processing list. */
static void seed_taken(struct it_fx *f, struct exw_redis *rd, const char *doc)
{
    struct it_name q = it_key(f, "queue");

    assert_int_equal(it_exists(f, &q), 0);
    it_ok(f->h, "LPUSH", q.s, doc, NULL);
    expect_take(rd, doc);
}

static void expect_oldest_own(struct exw_redis *rd, const char *want)
{
    struct exw_errbuf eb = {{0}};
    char *doc = (char *)&eb; /* must be reset */
    size_t len = 99;

    it_expect_ok(exw_queue_orphan(rd, NULL, 0, 0, &doc, &len, &eb), &eb);
    if (want == NULL) {
        assert_null(doc);
        assert_int_equal(len, 0);
        return;
    }
    assert_non_null(doc);
    assert_string_equal(doc, want);
    assert_int_equal(len, strlen(want));
    free(doc);
}

/* ---- take ---- */

static void test_take_fifo(void **state)
{
    struct it_fx *f = *state;
    struct it_name q = it_key(f, "queue"), p = it_key(f, "processing:%s", IT_WORKER);

    /* The backend LPUSHes; a is the older job, at the right end. */
    it_ok(f->h, "LPUSH", q.s, "a", "b", NULL);
    expect_take(f->rd, "a");
    it_expect_list(f, &q, (const char *const[]){"b"}, 1);
    it_expect_list(f, &p, (const char *const[]){"a"}, 1);
    expect_take(f->rd, "b");
    assert_int_equal(it_exists(f, &q), 0);
    it_expect_list(f, &p, (const char *const[]){"b", "a"}, 2);
    expect_take(f->rd, NULL);
    it_expect_list(f, &p, (const char *const[]){"b", "a"}, 2);
}

/* A document of several MiB gives back the connection's read buffer as it is
 * taken (exw_redis_trim): the connection reads on as before. */
static void test_take_large(void **state)
{
    struct it_fx *f = *state;
    struct it_name q = it_key(f, "queue");
    struct exw_errbuf eb = {{0}};
    size_t big = (size_t)3 << 20, len = 0;
    char *want = malloc(big), *doc = NULL;
    int i;

    assert_non_null(want);
    for (i = 0; i < 2; i++) {
        memset(want, 'a' + i, big);
        it_lpush_bin(f->h, q.s, want, big);
    }
    it_ok(f->h, "LPUSH", q.s, "small", NULL);
    for (i = 0; i < 2; i++) {
        it_expect_ok(exw_queue_take(f->rd, 0.05, &doc, &len, &eb), &eb);
        assert_int_equal(len, big);
        memset(want, 'a' + i, big);
        assert_memory_equal(doc, want, big);
        free(doc);
        assert_false(exw_redis_broken(f->rd));
    }
    expect_take(f->rd, "small");
    exw_redis_trim(f->rd); /* idle and small: as good as before */
    expect_take(f->rd, NULL);
    free(want);
}

static void test_take_times_out(void **state)
{
    struct it_fx *f = *state;
    struct exw_errbuf eb = {{0}};
    struct exw_redis *rd = NULL;
    struct it_name k = it_key(f, "never");
    char *doc = (char *)&eb; /* must be reset to NULL */
    size_t len = 99;
    int64_t t0, waited;

    /* A wait longer than the command timeout: the socket must outwait it. */
    it_expect_ok(exw_redis_connect(&f->env->addr, f->prefix, IT_WORKER, 300, &rd, &eb), &eb);
    t0 = exw_mono_ms();
    it_expect_ok(exw_queue_take(rd, 0.6, &doc, &len, &eb), &eb);
    waited = exw_mono_ms() - t0;
    assert_null(doc);
    assert_int_equal(len, 0);
    if (waited < 500 || waited > 3000)
        fail_msg("waited %lld ms for a 0.6 s take", (long long)waited);
    assert_false(exw_redis_broken(rd));
    /* The command timeout is back afterwards. */
    it_expect_err(it_try(rd, &eb, "BLPOP", k.s, "3", NULL), EXW_EREDIS, &eb);
    exw_redis_free(rd);
}

/* A wait under a millisecond is sent as BLMOVE ... 0.000, which Redis reads
 * as "block forever": the take outlives the socket timeout and the
 * connection breaks, while the BLMOVE is left blocked on the server. */
static void test_take_short_wait(void **state)
{
    struct it_fx *f = *state;
    struct exw_errbuf eb = {{0}};
    char *doc = NULL;
    size_t len = 0;

    exw_redis_set_timeout(f->rd, 300);
    it_expect_ok(exw_queue_take(f->rd, 0.0004, &doc, &len, &eb), &eb);
    assert_null(doc);
    assert_false(exw_redis_broken(f->rd));
}

static void test_take_binary(void **state)
{
    struct it_fx *f = *state;
    static const char bin[] = "{\"id\":\0\"x\"}\0\xff";
    const size_t binlen = sizeof(bin) - 1;
    struct it_name q = it_key(f, "queue"), p = it_key(f, "processing:%s", IT_WORKER);
    struct exw_status_end e = {.doc = bin, .doc_len = binlen, .ttl_ms = 1000};
    struct exw_errbuf eb = {{0}};
    struct exw_reply *r;
    enum exw_end how;
    char *doc = NULL;
    size_t len = 0;
    int owned = -1;

    it_lpush_bin(f->h, q.s, bin, binlen);
    it_expect_ok(exw_queue_take(f->rd, 0.05, &doc, &len, &eb), &eb);
    assert_non_null(doc);
    assert_int_equal(len, binlen);
    assert_memory_equal(doc, bin, binlen);
    r = it_cmd(f->h, "LRANGE", p.s, "0", "-1", NULL);
    assert_int_equal(exw_reply_count(r), 1);
    {
        size_t n;
        const char *s = exw_reply_string(exw_reply_at(r, 0), &n);

        assert_int_equal(n, binlen);
        assert_memory_equal(s, bin, binlen);
    }
    exw_reply_free(r);
    free(doc);
    doc = NULL;
    /* The document as taken, NUL bytes included, is what requeue and the
     * end find. */
    it_expect_ok(exw_queue_requeue(f->rd, "x", bin, binlen, 1, NULL, &owned, &eb), &eb);
    assert_int_equal(owned, 1);
    assert_int_equal(it_exists(f, &p), 0);
    assert_int_equal(it_int(f->h, "LLEN", q.s, NULL), 1);
    it_expect_ok(exw_queue_take(f->rd, 0.05, &doc, &len, &eb), &eb);
    assert_int_equal(len, binlen);
    free(doc);
    it_expect_ok(exw_status_end(f->rd, &e, &how, &eb), &eb);
    assert_int_equal(how, EXW_END_DONE);
    assert_int_equal(it_exists(f, &p), 0);
}

/* A take whose reply is lost still moved the job: it is in the own
 * processing list, where exw_queue_orphan finds it. */
static void test_take_lost_reply(void **state)
{
    struct it_fx *f = *state;
    struct it_name q = it_key(f, "queue"), p = it_key(f, "processing:%s", IT_WORKER);
    struct it_fault ft = {.cmd = "BLMOVE"};
    struct exw_errbuf eb = {{0}};
    char *doc = NULL;
    size_t len = 0;

    expect_oldest_own(f->rd, NULL);
    it_ok(f->h, "LPUSH", q.s, "a", "b", NULL);
    exw_redis_set_fault(f->rd, it_fault_fn, &ft);
    it_expect_err(exw_queue_take(f->rd, 0.05, &doc, &len, &eb), EXW_EREDIS, &eb);
    assert_null(doc);
    assert_int_equal(ft.lost, 1);
    assert_true(exw_redis_broken(f->rd));
    it_expect_list(f, &q, (const char *const[]){"b"}, 1);
    it_expect_list(f, &p, (const char *const[]){"a"}, 1);

    it_reconnect(f);
    expect_oldest_own(f->rd, "a");
    it_expect_list(f, &p, (const char *const[]){"a"}, 1); /* only read */
    /* With two, the oldest is the one taken first. */
    expect_take(f->rd, "b");
    expect_oldest_own(f->rd, "a");
}

/* With job threads holding some documents of the own processing list, the
 * orphan is the oldest of the others; equal documents count one each. */
static void test_orphan_skips_held(void **state)
{
    struct it_fx *f = *state;
    struct it_name p = it_key(f, "processing:%s", IT_WORKER);
    struct exw_errbuf eb = {{0}};
    char held[3][41];
    char *doc = NULL;
    size_t len = 0;

    /* LPUSH puts the last named first: "a" is the oldest. */
    it_ok(f->h, "LPUSH", p.s, "a", "b", "a", "c", NULL);
    assert_int_equal(exw_sha1_hex("a", 1, held[0]), EXW_OK);
    assert_int_equal(exw_sha1_hex("b", 1, held[1]), EXW_OK);
    assert_int_equal(exw_sha1_hex("c", 1, held[2]), EXW_OK);
    /* Redis's own SHA-1 agrees with ours. */
    assert_string_equal(held[0], "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8");

    it_expect_ok(exw_queue_orphan(f->rd, held, 1, 0, &doc, &len, &eb), &eb);
    assert_string_equal(doc, "b"); /* one "a" is held, "b" is next oldest */
    free(doc);
    it_expect_ok(exw_queue_orphan(f->rd, held, 2, 0, &doc, &len, &eb), &eb);
    assert_string_equal(doc, "a"); /* the second, equal "a" is no thread's */
    free(doc);
    memcpy(held[1], held[0], sizeof(held[0]));
    it_expect_ok(exw_queue_orphan(f->rd, held, 2, 0, &doc, &len, &eb), &eb);
    assert_string_equal(doc, "b"); /* both "a" are held */
    free(doc);
    assert_int_equal(exw_sha1_hex("b", 1, held[2]), EXW_OK);
    it_expect_ok(exw_queue_orphan(f->rd, held, 3, 0, &doc, &len, &eb), &eb);
    assert_string_equal(doc, "c"); /* the newest is the only one left */
    free(doc);
    {
        char all[4][41];

        memcpy(all, held, sizeof(held));
        assert_int_equal(exw_sha1_hex("c", 1, all[3]), EXW_OK);
        it_expect_ok(exw_queue_orphan(f->rd, all, 4, 0, &doc, &len, &eb), &eb);
        assert_null(doc);
        assert_int_equal(len, 0);
        /* A routine look hashes nothing with 4 held for 4 in the list, even
         * when, as here, one held name is wrong (a thread's document that
         * just left); a look after a failure finds the hidden orphan. */
        assert_int_equal(exw_sha1_hex("z", 1, all[3]), EXW_OK);
        it_expect_ok(exw_queue_orphan(f->rd, all, 4, 1, &doc, &len, &eb), &eb);
        assert_null(doc);
        it_expect_ok(exw_queue_orphan(f->rd, all, 4, 0, &doc, &len, &eb), &eb);
        assert_string_equal(doc, "c");
        free(doc);
        it_expect_ok(exw_queue_orphan(f->rd, all, 3, 1, &doc, &len, &eb), &eb);
        assert_string_equal(doc, "c"); /* 4 in the list, 3 held: looked at */
        free(doc);
    }
    it_expect_list(f, &p, (const char *const[]){"c", "a", "b", "a"}, 4); /* only read */
}

/* ---- requeue ---- */

/* A job running here as attempt 2, with a partial upload. */
static void seed_running(struct it_fx *f, const char *worker, const char *attempts)
{
    struct it_name st = it_key(f, "job:j1");
    struct exw_errbuf eb = {{0}};

    seed_taken(f, f->rd, "doc-j1");
    it_ok(f->h, "HSET", st.s, "state", "running", "worker", worker, "progress", "40", "attempts",
          attempts, NULL);
    it_expect_ok(exw_result_chunk(f->rd, "j1", 1, "PK", 2, 60000, &eb), &eb);
}

static void test_requeue(void **state)
{
    struct it_fx *f = *state;
    static const char ev[] = "{\"id\":\"j1\",\"state\":\"queued\",\"progress\":0}";
    struct it_name st = it_key(f, "job:j1"), q = it_key(f, "queue");
    struct it_name p = it_key(f, "processing:%s", IT_WORKER);
    struct it_name up = it_key(f, "upload:%s:j1", IT_WORKER),
                   ups = it_key(f, "uploads:%s", IT_WORKER);
    struct it_sub sub = it_subscribe(f);
    struct exw_errbuf eb = {{0}};
    int64_t before = exw_wall_ms();
    int owned = -1;

    seed_running(f, IT_WORKER, "2");
    /* Jobs queued while it ran: x is older than y. */
    it_ok(f->h, "LPUSH", q.s, "x", "y", NULL);
    assert_true(it_is_member(f, &ups, up.s));

    it_expect_ok(exw_queue_requeue(f->rd, "j1", "doc-j1", 6, 2, ev, &owned, &eb), &eb);
    assert_int_equal(owned, 1);
    assert_int_equal(it_exists(f, &p), 0);
    it_expect_list(f, &q, (const char *const[]){"y", "x", "doc-j1"}, 3);
    it_expect_field(f, &st, "state", "queued");
    it_expect_field(f, &st, "progress", "0");
    it_expect_field(f, &st, "attempts", "1");
    it_expect_time(f, &st, "updated_at", before, exw_wall_ms());
    assert_int_equal(it_exists(f, &up), 0);
    assert_false(it_is_member(f, &ups, up.s));
    it_expect_events(&sub, (const char *const[]){ev}, 1);

    /* The job put back is the one taken next, before older queued jobs. */
    expect_take(f->rd, "doc-j1");
    expect_take(f->rd, "x");
    it_sub_close(&sub);
}

/* The status names another worker or another attempt (recovered and started
 * again meanwhile): the document goes back, the status is not this run's. */
static void test_requeue_other_run(void **state)
{
    struct it_fx *f = *state;
    struct it_name st = it_key(f, "job:j1"), q = it_key(f, "queue");
    struct it_name up = it_key(f, "upload:%s:j1", IT_WORKER);
    struct it_sub sub = it_subscribe(f);
    struct exw_errbuf eb = {{0}};
    int owned = -1;

    seed_running(f, "w2", "2");
    it_expect_ok(exw_queue_requeue(f->rd, "j1", "doc-j1", 6, 2, NULL, &owned, &eb), &eb);
    assert_int_equal(owned, 1);
    it_expect_list(f, &q, (const char *const[]){"doc-j1"}, 1);
    it_expect_field(f, &st, "state", "running");
    it_expect_field(f, &st, "attempts", "2");
    it_expect_field(f, &st, "progress", "40");
    assert_int_equal(it_exists(f, &up), 0);
    it_expect_no_event(&sub);

    it_ok(f->h, "DEL", q.s, NULL);
    it_ok(f->h, "HSET", st.s, "worker", IT_WORKER, NULL);
    seed_taken(f, f->rd, "doc-j1");
    it_expect_ok(exw_queue_requeue(f->rd, "j1", "doc-j1", 6, 1, NULL, &owned, &eb), &eb);
    assert_int_equal(owned, 1);
    it_expect_field(f, &st, "state", "running");
    it_expect_field(f, &st, "attempts", "2");
    it_sub_close(&sub);
}

static void test_requeue_not_owned(void **state)
{
    struct it_fx *f = *state;
    struct it_name st = it_key(f, "job:j1"), q = it_key(f, "queue");
    struct it_name mine = it_key(f, "processing:%s", IT_WORKER);
    struct it_name theirs = it_key(f, "processing:w2");
    struct it_sub sub = it_subscribe(f);
    struct exw_errbuf eb = {{0}};
    char *before;
    int owned = -1;

    it_ok(f->h, "LPUSH", theirs.s, "doc-j1", NULL);
    it_ok(f->h, "LPUSH", mine.s, "doc-other", NULL);
    it_ok(f->h, "LPUSH", q.s, "x", NULL);
    it_ok(f->h, "HSET", st.s, "state", "running", "worker", IT_WORKER, "attempts", "2", NULL);
    it_expect_ok(exw_result_chunk(f->rd, "j1", 1, "PK", 2, 60000, &eb), &eb);
    before = it_snapshot(f);

    it_expect_ok(exw_queue_requeue(f->rd, "j1", "doc-j1", 6, 2, "{\"id\":\"j1\"}", &owned, &eb),
                 &eb);
    assert_int_equal(owned, 0);
    it_expect_unchanged(f, before);
    it_expect_no_event(&sub);
    it_sub_close(&sub);
}

/* ---- recover and release ---- */

static void test_recover(void **state)
{
    struct it_fx *f = *state;
    struct it_name q = it_key(f, "queue"), workers = it_key(f, "workers");
    struct it_name pdead = it_key(f, "processing:dead"), hbdead = it_key(f, "worker:dead");
    struct it_name plive = it_key(f, "processing:live"), hblive = it_key(f, "worker:live");
    struct it_name up1 = it_key(f, "upload:dead:d1"), up2 = it_key(f, "upload:dead:d2");
    struct it_name ups = it_key(f, "uploads:dead"), uplive = it_key(f, "upload:live:l1");
    struct exw_redis *dead = it_open(f->env, f->prefix, "dead");
    struct exw_redis *live = it_open(f->env, f->prefix, "live");
    struct exw_errbuf eb = {{0}};
    long long moved = -1;

    /* d1 is the oldest job; the dead worker took d1, then d2. */
    it_ok(f->h, "LPUSH", q.s, "d1", "d2", "l1", NULL);
    expect_take(dead, "d1");
    expect_take(dead, "d2");
    expect_take(live, "l1");
    it_expect_ok(exw_result_chunk(dead, "d1", 1, "x", 1, 60000, &eb), &eb);
    it_expect_ok(exw_result_chunk(dead, "d2", 1, "y", 1, 60000, &eb), &eb);
    it_expect_ok(exw_result_chunk(live, "l1", 1, "z", 1, 60000, &eb), &eb);
    it_ok(f->h, "LPUSH", q.s, "q0", NULL);
    it_ok(f->h, "SADD", workers.s, "dead", "live", "ghost", NULL); /* ghost: holds nothing */
    it_ok(f->h, "HSET", hblive.s, "host", "h", NULL);
    it_ok(f->h, "PEXPIRE", hblive.s, "60000", NULL);
    assert_int_equal(it_exists(f, &hbdead), 0);

    it_expect_ok(exw_queue_recover(f->rd, &moved, &eb), &eb);
    assert_int_equal(moved, 2);
    it_expect_list(f, &q, (const char *const[]){"q0", "d2", "d1"}, 3);
    assert_int_equal(it_exists(f, &pdead), 0);
    assert_int_equal(it_exists(f, &up1), 0);
    assert_int_equal(it_exists(f, &up2), 0);
    assert_int_equal(it_exists(f, &ups), 0);
    assert_false(it_is_member(f, &workers, "dead"));
    assert_false(it_is_member(f, &workers, "ghost"));
    assert_true(it_is_member(f, &workers, "live"));
    assert_int_equal(it_int(f->h, "SCARD", workers.s, NULL), 1);
    it_expect_list(f, &plive, (const char *const[]){"l1"}, 1);
    it_expect_bytes(f, &uplive, "z", 1);
    assert_int_equal(it_exists(f, &hblive), 1);

    it_expect_ok(exw_queue_recover(f->rd, &moved, &eb), &eb);
    assert_int_equal(moved, 0);
    expect_take(f->rd, "d1");
    expect_take(f->rd, "d2");
    expect_take(f->rd, "q0");
    exw_redis_free(dead);
    exw_redis_free(live);
}

struct racer {
    struct exw_redis *rd;
    pthread_barrier_t *go;
    exw_err rc;
    long long moved;
    struct exw_errbuf eb;
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;

    pthread_barrier_wait(r->go);
    r->rc = exw_queue_recover(r->rd, &r->moved, &r->eb);
    return NULL;
}

/* Asserts that each job of the round is in the queue exactly once. */
static void expect_each_once(struct it_fx *f, int round)
{
    struct it_name q = it_key(f, "queue");
    struct exw_reply *r = it_cmd(f->h, "LRANGE", q.s, "0", "-1", NULL);
    char doc[64];
    int w, j, seen;
    size_t k;

    assert_int_equal(exw_reply_count(r), RACE_DEAD * RACE_JOBS);
    for (w = 0; w < RACE_DEAD; w++) {
        for (j = 0; j < RACE_JOBS; j++) {
            snprintf(doc, sizeof(doc), "r%d-w%d-j%d", round, w, j);
            seen = 0;
            for (k = 0; k < exw_reply_count(r); k++)
                seen += exw_reply_is(exw_reply_at(r, k), doc);
            if (seen != 1)
                fail_msg("round %d: %s is %d times in the queue", round, doc, seen);
        }
    }
    exw_reply_free(r);
}

/* One round of two live workers recovering at once, on fresh keys. */
static void race_round(struct it_fx *f, int round)
{
    struct it_name workers = it_key(f, "workers");
    struct it_name hblive = it_key(f, "worker:live"), plive = it_key(f, "processing:live");
    struct racer rs[2];
    pthread_t th[2];
    pthread_barrier_t go;
    char doc[64], wid[16];
    int i, w, j;

    for (w = 0; w < RACE_DEAD; w++) {
        struct it_name pl;

        snprintf(wid, sizeof(wid), "dead%d", w);
        pl = it_key(f, "processing:%s", wid);
        it_ok(f->h, "SADD", workers.s, wid, NULL);
        for (j = 0; j < RACE_JOBS; j++) {
            snprintf(doc, sizeof(doc), "r%d-w%d-j%d", round, w, j);
            it_ok(f->h, "LPUSH", pl.s, doc, NULL);
        }
    }
    it_ok(f->h, "SADD", workers.s, "live", NULL);
    it_ok(f->h, "HSET", hblive.s, "host", "h", NULL);
    it_ok(f->h, "PEXPIRE", hblive.s, "60000", NULL);
    it_ok(f->h, "LPUSH", plive.s, "live-job", NULL);

    assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
    for (i = 0; i < 2; i++) {
        memset(&rs[i], 0, sizeof(rs[i]));
        rs[i].rd = it_open(f->env, f->prefix, i == 0 ? "a" : "b");
        rs[i].go = &go;
        rs[i].rc = EXW_ERR_COUNT;
        rs[i].moved = -1;
        assert_int_equal(pthread_create(&th[i], NULL, racer_main, &rs[i]), 0);
    }
    for (i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&go);
    for (i = 0; i < 2; i++) {
        it_expect_ok(rs[i].rc, &rs[i].eb);
        exw_redis_free(rs[i].rd);
    }
    assert_int_equal(rs[0].moved + rs[1].moved, RACE_DEAD * RACE_JOBS);
    expect_each_once(f, round);
    assert_int_equal(it_int(f->h, "SCARD", workers.s, NULL), 1);
    assert_true(it_is_member(f, &workers, "live"));
    assert_int_equal(it_int(f->h, "LLEN", plive.s, NULL), 1);
}

static void test_recover_race(void **state)
{
    struct it_fx *f = *state;
    struct it_fx rf = *f; /* the same connections, a fresh prefix each round */
    int round;

    for (round = 0; round < RACE_ROUNDS; round++) {
        snprintf(rf.prefix, sizeof(rf.prefix), "%.60s-r%d", f->prefix, round);
        race_round(&rf, round);
    }
}

static void test_release_own(void **state)
{
    struct it_fx *f = *state;
    struct it_name q = it_key(f, "queue"), p = it_key(f, "processing:%s", IT_WORKER);
    struct exw_errbuf eb = {{0}};
    long long moved = -1;

    it_ok(f->h, "LPUSH", q.s, "a", "b", NULL);
    expect_take(f->rd, "a");
    expect_take(f->rd, "b");
    it_ok(f->h, "LPUSH", q.s, "c", NULL);

    it_expect_ok(exw_queue_release_own(f->rd, &moved, &eb), &eb);
    assert_int_equal(moved, 2);
    assert_int_equal(it_exists(f, &p), 0);
    it_expect_list(f, &q, (const char *const[]){"c", "b", "a"}, 3);
    expect_take(f->rd, "a");

    it_expect_ok(exw_queue_release_own(f->rd, &moved, &eb), &eb);
    assert_int_equal(moved, 1);
    it_expect_list(f, &q, (const char *const[]){"c", "b", "a"}, 3);
    expect_take(f->rd, "a");
    expect_take(f->rd, "b");
    expect_take(f->rd, "c");
    it_expect_ok(exw_queue_release_own(f->rd, &moved, &eb), &eb);
    assert_int_equal(moved, 3);
}

/* ---- rows_key lists ---- */

static void test_rows_len(void **state)
{
    struct it_fx *f = *state;
    struct it_name l = it_key(f, "list"), none = it_key(f, "none"), str = it_key(f, "str");
    struct exw_errbuf eb = {{0}};
    long long n = -1, bytes = 0;

    it_expect_err(exw_queue_rows_len(f->rd, none.s, 10, 100, &n, &bytes, &eb), EXW_EREPLY, &eb);
    assert_non_null(strstr(eb.msg, "does not exist"));
    assert_int_equal(n, 0);
    assert_int_equal(bytes, -1);
    it_ok(f->h, "SET", str.s, "x", NULL);
    n = -1;
    it_expect_err(exw_queue_rows_len(f->rd, str.s, 10, 100, &n, &bytes, &eb), EXW_EREPLY, &eb);
    assert_non_null(strstr(eb.msg, "string"));
    assert_int_equal(n, 0);
    assert_false(exw_redis_broken(f->rd));
    it_ok(f->h, "RPUSH", l.s, "a", "bb", "ccc", NULL);
    /* Measured when it has at most measure_max elements of at most bytes_max
     * bytes together, else not. */
    it_expect_ok(exw_queue_rows_len(f->rd, l.s, 3, 6, &n, &bytes, &eb), &eb);
    assert_int_equal(n, 3);
    assert_int_equal(bytes, 6);
    it_expect_ok(exw_queue_rows_len(f->rd, l.s, 2, 100, &n, &bytes, &eb), &eb);
    assert_int_equal(n, 3);
    assert_int_equal(bytes, -1);
    it_expect_ok(exw_queue_rows_len(f->rd, l.s, 3, 5, &n, &bytes, &eb), &eb);
    assert_int_equal(n, 3);
    assert_int_equal(bytes, -1);
}

struct seen {
    size_t n;
    size_t stop_at; /* the call (1-based) that returns EXW_EJSON; 0: none */
    char data[8][8];
    size_t len[8];
};

static exw_err collect(const char *data, size_t len, void *ud)
{
    struct seen *s = ud;

    if (s->n < 8 && len <= sizeof(s->data[0])) {
        memcpy(s->data[s->n], data, len);
        s->len[s->n] = len;
    }
    s->n++;
    return s->n == s->stop_at ? EXW_EJSON : EXW_OK;
}

static void test_rows(void **state)
{
    struct it_fx *f = *state;
    struct it_name l = it_key(f, "list"), none = it_key(f, "none"), str = it_key(f, "str");
    struct exw_errbuf eb = {{0}};
    struct seen s = {0};
    long long too_long = 99;

    it_ok(f->h, "RPUSH", l.s, "e0", "e1", NULL);
    it_lpush_bin(f->h, l.s, "b\0n", 3);
    it_ok(f->h, "RPUSH", l.s, "e3", "e4", NULL);
    /* The list: "b\0n" e0 e1 e3 e4. */
    it_expect_ok(exw_queue_rows(f->rd, l.s, 0, -1, 8, 1 << 20, collect, &s, &too_long, &eb), &eb);
    assert_int_equal(too_long, -1);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.len[0], 3);
    assert_memory_equal(s.data[0], "b\0n", 3);
    assert_memory_equal(s.data[4], "e4", 2);

    memset(&s, 0, sizeof(s));
    it_expect_ok(exw_queue_rows(f->rd, l.s, 1, 2, 8, 1 << 20, collect, &s, &too_long, &eb), &eb);
    assert_int_equal(s.n, 2);
    assert_memory_equal(s.data[0], "e0", 2);
    assert_memory_equal(s.data[1], "e1", 2);

    /* Past the end, and a list that does not exist: nothing. */
    memset(&s, 0, sizeof(s));
    it_expect_ok(exw_queue_rows(f->rd, l.s, 5, 9, 8, 1 << 20, collect, &s, &too_long, &eb), &eb);
    it_expect_ok(exw_queue_rows(f->rd, none.s, 0, -1, 8, 1 << 20, collect, &s, &too_long, &eb),
                 &eb);
    assert_int_equal(s.n, 0);

    /* The callback's error ends the range and is returned as is. */
    memset(&s, 0, sizeof(s));
    s.stop_at = 3;
    assert_int_equal(exw_queue_rows(f->rd, l.s, 0, -1, 8, 1 << 20, collect, &s, &too_long, &eb),
                     EXW_EJSON);
    assert_int_equal(s.n, 3);
    assert_false(exw_redis_broken(f->rd));

    /* A key of another type is Redis's refusal; the connection stays. */
    it_ok(f->h, "SET", str.s, "x", NULL);
    it_expect_err(exw_queue_rows(f->rd, str.s, 0, -1, 8, 1 << 20, collect, &s, &too_long, &eb),
                  EXW_EREPLY, &eb);
    assert_non_null(strstr(eb.msg, "WRONGTYPE"));
    assert_false(exw_redis_broken(f->rd));
}

static void test_rows_too_long(void **state)
{
    struct it_fx *f = *state;
    struct it_name l = it_key(f, "list");
    struct exw_errbuf eb = {{0}};
    struct seen s = {0};
    long long too_long = -1;

    it_ok(f->h, "RPUSH", l.s, "a", "bb", "ccc", "dddd", "ee", "ffff", NULL);
    /* Elements of exactly max_bytes pass. */
    it_expect_ok(exw_queue_rows(f->rd, l.s, 0, 2, 3, 1 << 20, collect, &s, &too_long, &eb), &eb);
    assert_int_equal(s.n, 3);
    assert_int_equal(too_long, -1);

    /* Index 3 is the first too long one in 2..5: none is handed over, and the
     * index counts from the list's start. */
    memset(&s, 0, sizeof(s));
    it_expect_err(exw_queue_rows(f->rd, l.s, 2, 5, 3, 1 << 20, collect, &s, &too_long, &eb),
                  EXW_ELIMIT, &eb);
    assert_int_equal(too_long, 3);
    assert_int_equal(s.n, 0);
    assert_non_null(strstr(eb.msg, "4 bytes"));
    assert_false(exw_redis_broken(f->rd));
}

static void test_rows_budget(void **state)
{
    struct it_fx *f = *state;
    struct it_name l = it_key(f, "list"), w = it_key(f, "wide");
    struct exw_errbuf eb = {{0}};
    struct seen s = {0};
    long long too_long = -1;
    char e[8];
    int i;

    for (i = 0; i < 150; i++) {
        snprintf(e, sizeof(e), "e%03d", i);
        it_ok(f->h, "RPUSH", l.s, e, NULL);
    }
    /* Past the budget of 10 bytes with the third 4-byte element. */
    it_expect_ok(exw_queue_rows(f->rd, l.s, 0, 149, 8, 10, collect, &s, &too_long, &eb), &eb);
    assert_int_equal(s.n, 2);
    assert_memory_equal(s.data[1], "e001", 4);
    /* The first element goes whatever the budget. */
    memset(&s, 0, sizeof(s));
    it_expect_ok(exw_queue_rows(f->rd, l.s, 7, 149, 8, 1, collect, &s, &too_long, &eb), &eb);
    assert_int_equal(s.n, 1);
    assert_memory_equal(s.data[0], "e007", 4);
    /* Read 64 at a time in Redis: ranges over one and over three such reads. */
    memset(&s, 0, sizeof(s));
    it_expect_ok(exw_queue_rows(f->rd, l.s, 100, -1, 8, 1 << 20, collect, &s, &too_long, &eb), &eb);
    assert_int_equal(s.n, 50);
    assert_memory_equal(s.data[0], "e100", 4);
    assert_int_equal(too_long, -1);
    memset(&s, 0, sizeof(s));
    it_expect_ok(exw_queue_rows(f->rd, l.s, 0, -1, 8, 1 << 20, collect, &s, &too_long, &eb), &eb);
    assert_int_equal(s.n, 150);

    /* An element past the budget is not looked at: the rows before a too long
     * one come first, and the next range from it is refused. */
    it_ok(f->h, "RPUSH", w.s, "a", "bb", "ccccc", NULL);
    memset(&s, 0, sizeof(s));
    it_expect_ok(exw_queue_rows(f->rd, w.s, 0, -1, 3, 3, collect, &s, &too_long, &eb), &eb);
    assert_int_equal(s.n, 2);
    assert_int_equal(too_long, -1);
    memset(&s, 0, sizeof(s));
    it_expect_err(exw_queue_rows(f->rd, w.s, 2, -1, 3, 3, collect, &s, &too_long, &eb), EXW_ELIMIT,
                  &eb);
    assert_int_equal(too_long, 2);
    assert_int_equal(s.n, 0);
}

/* ---- the P:dead entry ---- */

/* Parses @entry, checks job/error/failed_at and returns the tree. */
static cJSON *parse_entry(const char *entry, const char *error, long long failed_at)
{
    cJSON *root = cJSON_Parse(entry), *v;

    assert_non_null(root);
    v = cJSON_GetObjectItemCaseSensitive(root, "error");
    assert_true(cJSON_IsString(v));
    assert_string_equal(v->valuestring, error);
    v = cJSON_GetObjectItemCaseSensitive(root, "failed_at");
    assert_true(cJSON_IsNumber(v));
    assert_true(v->valuedouble == (double)failed_at);
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "job")));
    return root;
}

static const char *job_of(cJSON *root)
{
    return cJSON_GetObjectItemCaseSensitive(root, "job")->valuestring;
}

static void test_dead_entry_short(void **state)
{
    static const char doc[] = "{\"id\": \"\xc3\xa9t\xc3\xa9\", \"q\": \"a\\\"b\"}";
    static const char bad[] = "ab\xff"
                              "c\xe2\x82"
                              "d\0e";
    char *entry;
    cJSON *root;

    (void)state;
    entry = exw_queue_dead_entry(doc, sizeof(doc) - 1, "no \"id\"", 1700000000123LL);
    root = parse_entry(entry, "no \"id\"", 1700000000123LL);
    assert_string_equal(job_of(root), doc);
    assert_null(cJSON_GetObjectItemCaseSensitive(root, "truncated"));
    assert_null(cJSON_GetObjectItemCaseSensitive(root, "job_bytes"));
    assert_null(cJSON_GetObjectItemCaseSensitive(root, "job_sha256"));
    cJSON_Delete(root);
    free(entry);

    /* Ill-formed UTF-8 (a stray byte, a cut sequence) and NUL: U+FFFD each. */
    entry = exw_queue_dead_entry(bad, sizeof(bad) - 1, "unparseable", 5);
    root = parse_entry(entry, "unparseable", 5);
    assert_string_equal(job_of(root), "ab\xef\xbf\xbd"
                                      "c\xef\xbf\xbd"
                                      "d\xef\xbf\xbd"
                                      "e");
    cJSON_Delete(root);
    free(entry);
}

static void sha256_hex(const char *data, size_t len, char hex[65])
{
    struct exw_sha256 *sha = NULL;

    assert_int_equal(exw_sha256_new(&sha), EXW_OK);
    assert_int_equal(exw_sha256_update(sha, data, len), EXW_OK);
    assert_int_equal(exw_sha256_final(sha, hex), EXW_OK);
    exw_sha256_free(sha);
}

/* Checks the entry of a document of @len bytes cut to @keep bytes. */
static void expect_cut(const char *doc, size_t len, size_t keep)
{
    char *entry = exw_queue_dead_entry(doc, len, "too_large", 7);
    cJSON *root = parse_entry(entry, "too_large", 7), *v;
    char hex[65];

    assert_int_equal(strlen(job_of(root)), keep);
    assert_memory_equal(job_of(root), doc, keep);
    v = cJSON_GetObjectItemCaseSensitive(root, "truncated");
    if (keep == len) {
        assert_null(v);
    } else {
        assert_true(cJSON_IsTrue(v));
        v = cJSON_GetObjectItemCaseSensitive(root, "job_bytes");
        assert_true(cJSON_IsNumber(v));
        assert_true(v->valuedouble == (double)len);
        sha256_hex(doc, len, hex);
        v = cJSON_GetObjectItemCaseSensitive(root, "job_sha256");
        assert_true(cJSON_IsString(v));
        assert_string_equal(v->valuestring, hex);
    }
    cJSON_Delete(root);
    free(entry);
}

static void test_dead_entry_cut(void **state)
{
    const size_t max = EXW_DEAD_JOB_MAX, len = 3 * max;
    char *doc = exw_xmalloc(len);

    (void)state;
    memset(doc, 'a', len);
    doc[len - 1] = 'z'; /* the hash covers the whole document */
    /* Exactly the limit: whole. One more byte: cut at the limit. */
    expect_cut(doc, max, max);
    expect_cut(doc, max + 1, max);
    /* A 3-byte character across the limit: the cut goes before it. */
    memcpy(doc + max - 1, "\xe2\x82\xac", 3);
    expect_cut(doc, len, max - 1);
    /* A 4-byte character ending exactly at the limit stays whole. */
    memset(doc, 'a', len - 1);
    memcpy(doc + max - 4, "\xf0\x9f\x98\x80", 4);
    expect_cut(doc, len, max);
    /* Starting at the limit: cut at the limit. */
    memcpy(doc + max, "\xf0\x9f\x98\x80", 4);
    expect_cut(doc, len, max);
    free(doc);
}

/* A long run of stray continuation bytes is ill-formed UTF-8, one U+FFFD per
 * byte, each its own character: the cut may go back at most 3 bytes to a
 * boundary, not to the start of the run. */
static void test_dead_entry_cut_ill_formed(void **state)
{
    const size_t max = EXW_DEAD_JOB_MAX, len = 2 * max;
    char *doc = exw_xmalloc(len);
    char *entry;
    cJSON *root, *job;

    (void)state;
    memset(doc, 0x80, len);
    memcpy(doc, "{\"a\":", 5);
    entry = exw_queue_dead_entry(doc, len, "unparseable", 1);
    root = parse_entry(entry, "unparseable", 1);
    job = cJSON_GetObjectItemCaseSensitive(root, "job");
    /* "{\"a\":" and at least max - 8 replacement characters of 3 bytes. */
    if (strlen(job->valuestring) < 5 + 3 * (max - 8))
        fail_msg("the entry keeps %zu bytes of a %zu-byte document", strlen(job->valuestring), len);
    cJSON_Delete(root);
    free(entry);
    free(doc);
}

/* A document too large to take in whole is read in parts: the parts make
 * the document, and the dead entry built from its head and their hash is
 * the one built from the whole. */
static void test_peek_own(void **state)
{
    struct it_fx *f = *state;
    struct it_name p = it_key(f, "processing:%s", IT_WORKER);
    const size_t len = 3 * EXW_DEAD_JOB_MAX + 17;
    char *doc = exw_xmalloc(len), *whole, *from_head, *part = NULL;
    struct exw_sha256 *sha = NULL;
    struct exw_errbuf eb = {{0}};
    long long total = -1;
    size_t n = 0, off;
    char hex[65];

    for (off = 0; off < len; off++)
        doc[off] = (char)('a' + off % 26);
    it_expect_ok(exw_queue_peek_own(f->rd, 0, 10, &part, &n, &total, &eb), &eb);
    assert_int_equal(total, 0); /* an empty list */
    free(part);
    it_lpush_bin(f->h, p.s, doc, len);
    it_lpush_bin(f->h, p.s, "newer", 5);
    assert_int_equal(exw_sha256_new(&sha), EXW_OK);
    for (off = 0; off < len; off += n) {
        it_expect_ok(exw_queue_peek_own(f->rd, off, 1000000, &part, &n, &total, &eb), &eb);
        assert_int_equal(total, (long long)len);
        assert_true(n > 0 && n <= 1000000);
        assert_memory_equal(part, doc + off, n);
        assert_int_equal(exw_sha256_update(sha, part, n), EXW_OK);
        free(part);
    }
    assert_int_equal(exw_sha256_final(sha, hex), EXW_OK);
    exw_sha256_free(sha);
    whole = exw_queue_dead_entry(doc, len, "too big", 7);
    from_head = exw_queue_dead_entry_head(doc, EXW_DEAD_JOB_MAX + 3, len, hex, "too big", 7);
    assert_string_equal(from_head, whole);
    free(whole);
    free(from_head);
    free(doc);
}

int main(void)
{
    struct it_env e;
    int rc;

    if (it_env_init(&e, "queue") != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        IT_TEST(test_take_fifo, &e),
        IT_TEST(test_take_large, &e),
        IT_TEST(test_take_times_out, &e),
        IT_TEST(test_take_short_wait, &e),
        IT_TEST(test_take_binary, &e),
        IT_TEST(test_take_lost_reply, &e),
        IT_TEST(test_orphan_skips_held, &e),
        IT_TEST(test_requeue, &e),
        IT_TEST(test_requeue_other_run, &e),
        IT_TEST(test_requeue_not_owned, &e),
        IT_TEST(test_recover, &e),
        IT_TEST(test_recover_race, &e),
        IT_TEST(test_release_own, &e),
        IT_TEST(test_rows_len, &e),
        IT_TEST(test_rows, &e),
        IT_TEST(test_rows_too_long, &e),
        IT_TEST(test_rows_budget, &e),
        IT_TEST(test_peek_own, &e),
        cmocka_unit_test(test_dead_entry_short),
        cmocka_unit_test(test_dead_entry_cut),
        cmocka_unit_test(test_dead_entry_cut_ill_formed),
    };

    rc = cmocka_run_group_tests(tests, NULL, NULL);
    exw_redis_addr_cleanup(&e.addr);
    return rc;
}
