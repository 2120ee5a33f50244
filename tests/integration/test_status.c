/* test_status.c: status.h against a real redis-server: the fenced start
 * (every outcome), progress, and the all-or-nothing end. */
#include "itest.h"

#include "exw/clock.h"
#include "exw/result.h"
#include "exw/status.h"

#define EV_RUNNING "{\"id\":\"j1\",\"state\":\"running\",\"progress\":0}"
#define EV_DONE "{\"id\":\"j1\",\"state\":\"succeeded\",\"progress\":100}"

/* Puts @doc in @worker's processing list. */
static void seed_processing(struct it_fx *f, const char *worker, const char *doc)
{
    struct it_name p = it_key(f, "processing:%s", worker);

    it_ok(f->h, "LPUSH", p.s, doc, NULL);
}

/* A live worker: its heartbeat key exists. */
static void seed_live(struct it_fx *f, const char *worker)
{
    struct it_name hb = it_key(f, "worker:%s", worker);

    it_ok(f->h, "HSET", hb.s, "host", "h", NULL);
    it_ok(f->h, "PEXPIRE", hb.s, "60000", NULL);
}

static enum exw_start start_here(struct it_fx *f, const char *doc, long max, int busy_here,
                                 const char *event, long *attempts)
{
    struct exw_errbuf eb = {{0}};
    enum exw_start how = EXW_START_STARTED;

    it_expect_ok(
        exw_status_start(f->rd, "j1", doc, strlen(doc), max, busy_here, event, &how, attempts, &eb),
        &eb);
    return how;
}

static enum exw_start start(struct it_fx *f, const char *doc, long max, const char *event,
                            long *attempts)
{
    return start_here(f, doc, max, 0, event, attempts);
}

/* ---- start ---- */

static void test_start_started(void **state)
{
    struct it_fx *f = *state;
    struct it_name st = it_key(f, "job:j1"), p = it_key(f, "processing:%s", IT_WORKER);
    struct it_sub sub = it_subscribe(f);
    int64_t before = exw_wall_ms(), after;
    long attempts = -1;

    /* What an earlier, failed run left. */
    it_ok(f->h, "HSET", st.s, "state", "failed", "queued_at", "123", "attempts", "2", "error_code",
          "timeout", "error", "too slow", "finished_at", "456", "result_key", "k", "result_bytes",
          "9", "result_sha256", "ab", "filename", "x.xlsx", "progress", "70", "rows_written", "5",
          NULL);
    it_ok(f->h, "PEXPIRE", st.s, "60000", NULL);
    seed_processing(f, IT_WORKER, "doc-j1");

    assert_int_equal(start(f, "doc-j1", 3, EV_RUNNING, &attempts), EXW_START_STARTED);
    after = exw_wall_ms();
    assert_int_equal(attempts, 3);
    it_expect_field(f, &st, "state", "running");
    it_expect_field(f, &st, "worker", IT_WORKER);
    it_expect_field(f, &st, "attempts", "3");
    it_expect_field(f, &st, "queued_at", "123");
    it_expect_field(f, &st, "filename", "x.xlsx");
    it_expect_field(f, &st, "progress", "0");
    it_expect_field(f, &st, "rows_written", "0");
    it_expect_field(f, &st, "lookups_total", "0");
    it_expect_field(f, &st, "lookups_done", "0");
    it_expect_field(f, &st, "lookups_failed", "0");
    it_expect_time(f, &st, "started_at", before, after);
    it_expect_time(f, &st, "updated_at", before, after);
    it_expect_field(f, &st, "error_code", NULL);
    it_expect_field(f, &st, "error", NULL);
    it_expect_field(f, &st, "finished_at", NULL);
    it_expect_field(f, &st, "result_key", NULL);
    it_expect_field(f, &st, "result_bytes", NULL);
    it_expect_field(f, &st, "result_sha256", NULL);
    assert_int_equal(it_pttl(f, &st), -1);
    it_expect_list(f, &p, (const char *const[]){"doc-j1"}, 1);
    it_expect_events(&sub, (const char *const[]){EV_RUNNING}, 1);
    it_sub_close(&sub);
}

static void test_start_fresh(void **state)
{
    struct it_fx *f = *state;
    struct it_name st = it_key(f, "job:j1");
    int64_t before = exw_wall_ms(), after;
    long attempts = -1;
    char *queued, *started;

    seed_processing(f, IT_WORKER, "doc-j1");
    assert_int_equal(start(f, "doc-j1", 3, EV_RUNNING, &attempts), EXW_START_STARTED);
    after = exw_wall_ms();
    assert_int_equal(attempts, 1);
    it_expect_time(f, &st, "queued_at", before, after);
    queued = it_str(f->h, "HGET", st.s, "queued_at", NULL);
    started = it_str(f->h, "HGET", st.s, "started_at", NULL);
    assert_string_equal(queued, started);
    free(queued);
    free(started);
}

/* Without an event, nothing is published (as progress, requeue and end do). */
static void test_start_without_event(void **state)
{
    struct it_fx *f = *state;
    struct it_sub sub = it_subscribe(f);
    long attempts = -1;

    seed_processing(f, IT_WORKER, "doc-j1");
    assert_int_equal(start(f, "doc-j1", 3, NULL, &attempts), EXW_START_STARTED);
    it_expect_no_event(&sub);
    it_sub_close(&sub);
}

/* The outcomes that write nothing at all. */
static void expect_start_writes_nothing(struct it_fx *f, const char *doc, long max,
                                        enum exw_start want, long want_attempts)
{
    struct it_sub sub = it_subscribe(f);
    char *before = it_snapshot(f);
    long attempts = -1;

    assert_int_equal(start(f, doc, max, EV_RUNNING, &attempts), want);
    assert_int_equal(attempts, want_attempts);
    it_expect_quiet(f, before, &sub);
}

static void test_start_gone(void **state)
{
    struct it_fx *f = *state;
    struct it_name st = it_key(f, "job:j1");

    it_ok(f->h, "HSET", st.s, "state", "queued", "attempts", "1", NULL);
    seed_processing(f, IT_WORKER, "doc-other");
    seed_processing(f, "w2", "doc-j1");
    expect_start_writes_nothing(f, "doc-j1", 3, EXW_START_GONE, 0);
}

static void test_start_cancelled(void **state)
{
    struct it_fx *f = *state;
    struct it_name st = it_key(f, "job:j1");

    it_ok(f->h, "HSET", st.s, "state", "queued", "cancel", "1", "attempts", "1", NULL);
    seed_processing(f, IT_WORKER, "doc-j1");
    expect_start_writes_nothing(f, "doc-j1", 3, EXW_START_CANCELLED, 1);
}

static void test_start_exhausted(void **state)
{
    struct it_fx *f = *state;
    struct it_name st = it_key(f, "job:j1");

    it_ok(f->h, "HSET", st.s, "state", "running", "worker", "gone", "attempts", "3", NULL);
    seed_processing(f, IT_WORKER, "doc-j1");
    expect_start_writes_nothing(f, "doc-j1", 3, EXW_START_EXHAUSTED, 3);
    it_ok(f->h, "HSET", st.s, "attempts", "5", NULL);
    expect_start_writes_nothing(f, "doc-j1", 3, EXW_START_EXHAUSTED, 5);
}

/* A refusal: @rc is EXW_EREPLY saying @text, the connection is still usable,
 * and nothing was written since @before (freed) nor published on @sub
 * (closed). */
static void expect_refused(struct it_fx *f, exw_err rc, const struct exw_errbuf *eb,
                           const char *text, char *before, struct it_sub *sub)
{
    it_expect_err(rc, EXW_EREPLY, eb);
    if (strstr(eb->msg, text) == NULL)
        fail_msg("\"%s\" does not say %s", eb->msg, text);
    assert_false(exw_redis_broken(f->rd));
    it_expect_quiet(f, before, sub);
}

static void test_start_wrongtype(void **state)
{
    struct it_fx *f = *state;
    struct it_name st = it_key(f, "job:j1");
    struct it_sub sub = it_subscribe(f);
    struct exw_errbuf eb = {{0}};
    enum exw_start how;
    long attempts = -1;
    char *before;
    exw_err rc;

    it_ok(f->h, "SET", st.s, "not a hash", NULL);
    seed_processing(f, IT_WORKER, "doc-j1");
    before = it_snapshot(f);
    rc = exw_status_start(f->rd, "j1", "doc-j1", 6, 3, 0, EV_RUNNING, &how, &attempts, &eb);
    expect_refused(f, rc, &eb, "WRONGTYPE", before, &sub);
    assert_int_equal(attempts, 0);
}

/* j1 running on the live worker w2 when a copy of it starts here: the keys
 * looked at and the subscription. */
struct w2_fx {
    struct it_name st, q, mine, theirs;
    struct it_sub sub;
};

/* Seeds j1 as running on the live worker w2 as attempt @attempts. */
static void w2_seed(struct it_fx *f, struct w2_fx *x, const char *attempts)
{
    x->st = it_key(f, "job:j1");
    x->q = it_key(f, "queue");
    x->mine = it_key(f, "processing:%s", IT_WORKER);
    x->theirs = it_key(f, "processing:w2");
    x->sub = it_subscribe(f);
    it_ok(f->h, "HSET", x->st.s, "state", "running", "worker", "w2", "attempts", attempts, NULL);
    seed_live(f, "w2");
}

/* j1 is still w2's as attempt @attempts, and nothing was published. */
static void w2_expect_kept(struct it_fx *f, struct w2_fx *x, const char *attempts)
{
    it_expect_field(f, &x->st, "worker", "w2");
    it_expect_field(f, &x->st, "attempts", attempts);
    it_expect_no_event(&x->sub);
    it_sub_close(&x->sub);
}

/* The same document runs on another live worker: this copy leaves the
 * processing list, uncharged. */
static void test_start_duplicate(void **state)
{
    struct it_fx *f = *state;
    long attempts = -1;
    struct w2_fx x;

    w2_seed(f, &x, "1");
    seed_processing(f, "w2", "doc-j1");
    seed_processing(f, IT_WORKER, "doc-j1");
    seed_processing(f, IT_WORKER, "doc-mine");
    assert_int_equal(start(f, "doc-j1", 3, EV_RUNNING, &attempts), EXW_START_DUPLICATE);
    assert_int_equal(attempts, 1);
    it_expect_list(f, &x.mine, (const char *const[]){"doc-mine"}, 1);
    it_expect_list(f, &x.theirs, (const char *const[]){"doc-j1"}, 1);
    assert_int_equal(it_exists(f, &x.q), 0);
    w2_expect_kept(f, &x, "1");
}

/* Another document with the same id runs on a live worker: this copy goes
 * to the far (left) end of the queue, uncharged. */
static void test_start_deferred(void **state)
{
    struct it_fx *f = *state;
    long attempts = -1;
    struct w2_fx x;

    w2_seed(f, &x, "2");
    seed_processing(f, "w2", "doc-j1-v1");
    seed_processing(f, IT_WORKER, "doc-j1-v2");
    it_ok(f->h, "LPUSH", x.q.s, "older", NULL);
    assert_int_equal(start(f, "doc-j1-v2", 3, EV_RUNNING, &attempts), EXW_START_DEFERRED);
    assert_int_equal(attempts, 2);
    assert_int_equal(it_exists(f, &x.mine), 0);
    it_expect_list(f, &x.theirs, (const char *const[]){"doc-j1-v1"}, 1);
    it_expect_list(f, &x.q, (const char *const[]){"doc-j1-v2", "older"}, 2);
    w2_expect_kept(f, &x, "2");
}

/* Another job thread of this worker runs j1 (busy_here): an equal copy is
 * dropped, another document goes to the far end of the queue, whatever the
 * status says so far (the other thread may not have started yet). */
static void test_start_busy_here(void **state)
{
    struct it_fx *f = *state;
    struct it_name st = it_key(f, "job:j1"), q = it_key(f, "queue"),
                   p = it_key(f, "processing:%s", IT_WORKER);
    struct it_sub sub = it_subscribe(f);
    long attempts = -1;

    it_ok(f->h, "HSET", st.s, "state", "queued", "attempts", "1", NULL);
    seed_processing(f, IT_WORKER, "doc-j1");
    seed_processing(f, IT_WORKER, "doc-j1");
    assert_int_equal(start_here(f, "doc-j1", 3, 1, EV_RUNNING, &attempts), EXW_START_DUPLICATE);
    assert_int_equal(attempts, 1);
    it_expect_list(f, &p, (const char *const[]){"doc-j1"}, 1);
    assert_int_equal(it_exists(f, &q), 0);

    seed_processing(f, IT_WORKER, "doc-j1-v2");
    assert_int_equal(start_here(f, "doc-j1-v2", 3, 1, EV_RUNNING, &attempts), EXW_START_DEFERRED);
    it_expect_list(f, &p, (const char *const[]){"doc-j1"}, 1);
    it_expect_list(f, &q, (const char *const[]){"doc-j1-v2"}, 1);
    it_expect_field(f, &st, "state", "queued");
    it_expect_field(f, &st, "attempts", "1");
    it_expect_no_event(&sub);
    it_sub_close(&sub);
}

/* A holder whose heartbeat is gone does not block the start. */
static void test_start_dead_holder(void **state)
{
    struct it_fx *f = *state;
    struct it_name st = it_key(f, "job:j1");
    long attempts = -1;

    it_ok(f->h, "HSET", st.s, "state", "running", "worker", "w2", "attempts", "1", NULL);
    seed_processing(f, "w2", "doc-j1");
    seed_processing(f, IT_WORKER, "doc-j1");
    assert_int_equal(start(f, "doc-j1", 3, EV_RUNNING, &attempts), EXW_START_STARTED);
    assert_int_equal(attempts, 2);
    it_expect_field(f, &st, "worker", IT_WORKER);
    it_expect_field(f, &st, "state", "running");
}

/* ---- progress ---- */

static void progress(struct it_fx *f, long attempt, const char *const *fields, size_t n,
                     const char *event, int want_owned, int want_cancel)
{
    struct exw_errbuf eb = {{0}};
    int owned = -1, cancel = -1;

    it_expect_ok(exw_status_progress(f->rd, "j1", attempt, fields, n, event, &owned, &cancel, &eb),
                 &eb);
    assert_int_equal(owned, want_owned);
    assert_int_equal(cancel, want_cancel);
}

static void test_progress(void **state)
{
    struct it_fx *f = *state;
    static const char ev[] = "{\"id\":\"j1\",\"state\":\"running\",\"progress\":40}";
    const char *const p40[] = {"progress", "40", "rows_written", "4"};
    const char *const p50[] = {"progress", "50"};
    struct it_name st = it_key(f, "job:j1");
    struct it_sub sub = it_subscribe(f);
    char *before;

    it_ok(f->h, "HSET", st.s, "state", "running", "worker", IT_WORKER, "attempts", "2", NULL);
    progress(f, 2, p40, 4, ev, 1, 0);
    it_expect_field(f, &st, "progress", "40");
    it_expect_field(f, &st, "rows_written", "4");
    it_expect_events(&sub, (const char *const[]){ev}, 1);

    /* A client asks for cancellation; a step without an event reads it back
     * and publishes nothing; one without fields writes nothing. */
    it_ok(f->h, "HSET", st.s, "cancel", "1", NULL);
    progress(f, 2, p50, 2, NULL, 1, 1);
    it_expect_field(f, &st, "progress", "50");
    before = it_snapshot(f);
    progress(f, 2, NULL, 0, NULL, 1, 1);
    it_expect_unchanged(f, before);
    it_expect_no_event(&sub);

    /* Fenced: another attempt, another worker, a state not running, or no
     * status at all write nothing (cancel is still read). */
    before = it_snapshot(f);
    progress(f, 1, p40, 4, ev, 0, 1);
    progress(f, 3, p40, 4, ev, 0, 1);
    it_ok(f->h, "HSET", st.s, "worker", "w2", NULL);
    progress(f, 2, p40, 4, ev, 0, 1);
    it_ok(f->h, "HSET", st.s, "worker", IT_WORKER, "state", "succeeded", NULL);
    progress(f, 2, p40, 4, ev, 0, 1);
    it_ok(f->h, "HSET", st.s, "state", "running", NULL);
    it_expect_unchanged(f, before);
    it_ok(f->h, "DEL", st.s, NULL);
    progress(f, 2, p40, 4, ev, 0, 0);
    assert_int_equal(it_exists(f, &st), 0);
    it_expect_no_event(&sub);
    it_sub_close(&sub);
}

/* ---- end ---- */

/* A succeeded end of j1 ("doc-j1", attempt 1), with its keys. */
struct end_fx {
    struct it_name st, res, up, ups, p, stats, rows, dead;
    const char *fields[10];
    const char *stats_v[4];
    struct exw_status_end e;
};

/* An end of j1 ("doc-j1", attempt 1) that writes the status @fields and
 * counts @stats, both kept for @ttl_ms. */
static struct exw_status_end end_of_j1(long ttl_ms, const char *const *fields, size_t nfields,
                                       const char *const *stats, size_t nstats)
{
    return (struct exw_status_end){.id = "j1",
                                   .write_status = 1,
                                   .doc = "doc-j1",
                                   .doc_len = 6,
                                   .attempt = 1,
                                   .ttl_ms = ttl_ms,
                                   .fields = fields,
                                   .nfields = nfields,
                                   .stats = stats,
                                   .nstats = nstats};
}

static void end_init(struct it_fx *f, struct end_fx *x)
{
    x->st = it_key(f, "job:j1");
    x->res = it_key(f, "result:j1");
    x->up = it_key(f, "upload:%s:j1", IT_WORKER);
    x->ups = it_key(f, "uploads:%s", IT_WORKER);
    x->p = it_key(f, "processing:%s", IT_WORKER);
    x->stats = it_key(f, "stats");
    x->rows = it_key(f, "rows:j1");
    x->dead = it_key(f, "dead");
    memcpy(x->fields,
           (const char *[]){"state", "succeeded", "progress", "100", "result_key", x->res.s,
                            "result_bytes", "12", "finished_at", "1700000000999"},
           sizeof(x->fields));
    memcpy(x->stats_v, (const char *[]){"jobs_succeeded", "1", "bytes_out", "12"},
           sizeof(x->stats_v));
    x->e = end_of_j1(5000, x->fields, 10, x->stats_v, 4);
    x->e.has_result = 1;
    x->e.rows_key = x->rows.s;
    x->e.event = EV_DONE;
}

/* end_init(), and j1 taken and started here as attempt 1, uploaded, with a
 * rows list. */
static void end_seed(struct it_fx *f, struct end_fx *x)
{
    struct exw_errbuf eb = {{0}};
    long attempts = -1;

    end_init(f, x);
    seed_processing(f, IT_WORKER, "doc-j1");
    assert_int_equal(start(f, "doc-j1", 3, EV_RUNNING, &attempts), EXW_START_STARTED);
    assert_int_equal(attempts, 1);
    it_ok(f->h, "HSET", x->stats.s, "jobs_succeeded", "4", NULL);
    it_ok(f->h, "RPUSH", x->rows.s, "{\"sn\":1}", "{\"sn\":2}", NULL);
    it_expect_ok(exw_result_chunk(f->rd, "j1", 1, "PK\3\4\0\0", 6, 60000, &eb), &eb);
    it_expect_ok(exw_result_chunk(f->rd, "j1", 0, "rest\0!", 6, 60000, &eb), &eb);
}

static enum exw_end end(struct it_fx *f, const struct exw_status_end *e)
{
    struct exw_errbuf eb = {{0}};
    enum exw_end how = EXW_END_NOT_OWNED;

    it_expect_ok(exw_status_end(f->rd, e, &how, &eb), &eb);
    return how;
}

static void expect_succeeded(struct it_fx *f, struct end_fx *x)
{
    it_expect_bytes(f, &x->res, "PK\3\4\0\0rest\0!", 12);
    it_expect_pttl(f, &x->res, 5000);
    assert_int_equal(it_exists(f, &x->up), 0);
    assert_false(it_is_member(f, &x->ups, x->up.s));
    it_expect_field(f, &x->st, "state", "succeeded");
    it_expect_field(f, &x->st, "progress", "100");
    it_expect_field(f, &x->st, "result_key", x->res.s);
    it_expect_field(f, &x->st, "result_bytes", "12");
    it_expect_field(f, &x->st, "finished_at", "1700000000999");
    it_expect_field(f, &x->st, "attempts", "1");
    it_expect_pttl(f, &x->st, 5000);
    assert_int_equal(it_exists(f, &x->p), 0);
    it_expect_field(f, &x->stats, "jobs_succeeded", "5");
    it_expect_field(f, &x->stats, "bytes_out", "12");
    assert_int_equal(it_exists(f, &x->rows), 0);
    assert_int_equal(it_exists(f, &x->dead), 0);
}

static void test_end_succeeded(void **state)
{
    struct it_fx *f = *state;
    struct end_fx x;
    struct it_sub sub;

    end_seed(f, &x);
    sub = it_subscribe(f);
    assert_int_equal(end(f, &x.e), EXW_END_DONE);
    expect_succeeded(f, &x);
    it_expect_events(&sub, (const char *const[]){EV_DONE}, 1);
    it_sub_close(&sub);
}

/* A small workbook goes with the end itself: stored as given, with no
 * upload before it, and the upload key never made. A second try (a lost
 * reply) stores nothing twice. */
static void test_end_succeeded_with_the_workbook(void **state)
{
    struct it_fx *f = *state;
    struct end_fx x;
    struct it_sub sub;
    long attempts = -1;
    char *before;

    end_init(f, &x);
    seed_processing(f, IT_WORKER, "doc-j1");
    assert_int_equal(start(f, "doc-j1", 3, EV_RUNNING, &attempts), EXW_START_STARTED);
    it_ok(f->h, "HSET", x.stats.s, "jobs_succeeded", "4", NULL);
    it_ok(f->h, "RPUSH", x.rows.s, "{\"sn\":1}", NULL);
    x.e.result = "PK\3\4\0\0rest\0!";
    x.e.result_len = 12;
    sub = it_subscribe(f);
    assert_int_equal(end(f, &x.e), EXW_END_DONE);
    expect_succeeded(f, &x);
    it_expect_events(&sub, (const char *const[]){EV_DONE}, 1);
    before = it_snapshot(f);
    assert_int_equal(end(f, &x.e), EXW_END_ALREADY);
    it_expect_unchanged(f, before);
    it_sub_close(&sub);
}

/* The end ran but its reply was lost: the retry of the same end says so and
 * counts nothing twice. */
static void test_end_retry_after_lost_reply(void **state)
{
    struct it_fx *f = *state;
    struct it_fault ft = {.script = &exw_lua_finish};
    struct exw_errbuf eb = {{0}};
    struct it_sub sub;
    enum exw_end how;
    struct end_fx x;
    char *before;

    end_seed(f, &x);
    sub = it_subscribe(f);
    exw_redis_set_fault(f->rd, it_fault_fn, &ft);
    it_expect_err(exw_status_end(f->rd, &x.e, &how, &eb), EXW_EREDIS, &eb);
    assert_int_equal(ft.lost, 1);
    assert_true(exw_redis_broken(f->rd));
    expect_succeeded(f, &x);

    it_reconnect(f);
    before = it_snapshot(f);
    assert_int_equal(end(f, &x.e), EXW_END_ALREADY);
    it_expect_unchanged(f, before);
    expect_succeeded(f, &x);
    it_expect_events(&sub, (const char *const[]){EV_DONE}, 1);

    /* Another attempt's retry is not this run's: not owned. */
    x.e.attempt = 2;
    assert_int_equal(end(f, &x.e), EXW_END_NOT_OWNED);
    it_sub_close(&sub);
}

/* Recovery gave the job to w2 meanwhile: nothing written. */
static void test_end_not_owned(void **state)
{
    struct it_fx *f = *state;
    struct it_name theirs = it_key(f, "processing:w2");
    struct it_sub sub;
    struct end_fx x;
    char *before;

    end_seed(f, &x);
    sub = it_subscribe(f);
    it_ok(f->h, "LREM", x.p.s, "1", "doc-j1", NULL);
    it_ok(f->h, "LPUSH", x.p.s, "doc-other", NULL);
    it_ok(f->h, "LPUSH", theirs.s, "doc-j1", NULL);
    it_ok(f->h, "HSET", x.st.s, "worker", "w2", "attempts", "2", NULL);
    it_ok(f->h, "LPUSH", x.dead.s, "older", NULL);
    x.e.dead_entry = "{\"job\":\"doc-j1\"}";
    before = it_snapshot(f);
    assert_int_equal(end(f, &x.e), EXW_END_NOT_OWNED);
    it_expect_quiet(f, before, &sub);
}

/* The upload expired or was evicted: nothing written, however often. */
static void test_end_upload_gone(void **state)
{
    struct it_fx *f = *state;
    struct it_sub sub;
    struct end_fx x;
    char *before;
    int try;

    end_seed(f, &x);
    sub = it_subscribe(f);
    it_ok(f->h, "DEL", x.up.s, NULL);
    before = it_snapshot(f);
    for (try = 0; try < 3; try++)
        assert_int_equal(end(f, &x.e), EXW_END_UPLOAD_GONE);
    assert_false(exw_redis_broken(f->rd));
    it_expect_quiet(f, before, &sub);
}

/* A refusal: EXW_EREPLY with nothing written, the connection usable. */
static void expect_end_refused(struct it_fx *f, const struct exw_status_end *e, const char *text)
{
    struct it_sub sub = it_subscribe(f);
    struct exw_errbuf eb = {{0}};
    enum exw_end how;
    char *before = it_snapshot(f);
    exw_err rc = exw_status_end(f->rd, e, &how, &eb);

    expect_refused(f, rc, &eb, text, before, &sub);
}

static void test_end_stats_not_integer(void **state)
{
    struct it_fx *f = *state;
    struct end_fx x;

    end_seed(f, &x);
    it_ok(f->h, "HSET", x.stats.s, "bytes_out", "abc", NULL);
    expect_end_refused(f, &x.e, "not an integer");
}

/* Values Redis's HINCRBY refuses though they look like integers: more than
 * 64 bits, leading zeros, "-0", and one that the increment takes past the
 * largest integer. The end must be refused with nothing written: here the
 * first stat (jobs_succeeded) would be counted before the second fails, and
 * counted again by each retry. */
static void test_end_stats_hincrby_refuses(void **state)
{
    static const char *const bad[] = {"99999999999999999999", "007", "-0", "9223372036854775807"};
    struct it_fx *f = *state;
    struct exw_errbuf eb = {{0}};
    char wrote[256] = "";
    enum exw_end how;
    struct end_fx x;
    size_t i;

    end_seed(f, &x);
    for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char *before, *after;
        exw_err rc;

        it_ok(f->h, "HSET", x.stats.s, "jobs_succeeded", "4", "bytes_out", bad[i], NULL);
        before = it_snapshot(f);
        rc = exw_status_end(f->rd, &x.e, &how, &eb);
        after = it_snapshot(f);
        if (rc != EXW_EREPLY || strcmp(before, after) != 0)
            snprintf(wrote + strlen(wrote), sizeof(wrote) - strlen(wrote), " %s (%s%s%s)", bad[i],
                     exw_strerror(rc), strcmp(before, after) ? ", wrote" : "",
                     rc == EXW_EREPLY ? "" : ", not EREPLY");
        free(before);
        free(after);
        assert_false(exw_redis_broken(f->rd));
    }
    if (wrote[0] != '\0')
        fail_msg("P:stats bytes_out values that broke all-or-nothing:%s", wrote);
}

static void test_end_wrong_types(void **state)
{
    struct it_fx *f = *state;
    struct it_name tmp = it_key(f, "tmp");
    struct end_fx x;

    end_seed(f, &x);
    x.e.dead_entry = "{\"job\":\"doc-j1\"}";
    it_ok(f->h, "SET", x.dead.s, "not a list", NULL);
    expect_end_refused(f, &x.e, "WRONGTYPE");
    it_ok(f->h, "DEL", x.dead.s, NULL);

    it_ok(f->h, "RENAME", x.stats.s, tmp.s, NULL);
    it_ok(f->h, "SET", x.stats.s, "not a hash", NULL);
    expect_end_refused(f, &x.e, "WRONGTYPE");
    it_ok(f->h, "DEL", x.stats.s, NULL);
    it_ok(f->h, "RENAME", tmp.s, x.stats.s, NULL);

    it_ok(f->h, "RENAME", x.st.s, tmp.s, NULL);
    it_ok(f->h, "SADD", x.st.s, "not a hash", NULL);
    expect_end_refused(f, &x.e, "WRONGTYPE");
    it_ok(f->h, "DEL", x.st.s, NULL);
    it_ok(f->h, "RENAME", tmp.s, x.st.s, NULL);

    it_ok(f->h, "RENAME", x.p.s, tmp.s, NULL);
    it_ok(f->h, "SET", x.p.s, "not a list", NULL);
    expect_end_refused(f, &x.e, "WRONGTYPE");
}

/* P:uploads:<worker> is a key of the end too (SREM): of another type, the
 * end must be refused before its first write, as for the others. */
static void test_end_uploads_wrongtype(void **state)
{
    struct it_fx *f = *state;
    struct end_fx x;

    end_seed(f, &x);
    it_ok(f->h, "DEL", x.ups.s, NULL);
    it_ok(f->h, "SET", x.ups.s, "not a set", NULL);
    expect_end_refused(f, &x.e, "WRONGTYPE");
}

/* A re-run fails half-way after an earlier attempt succeeded: the stale
 * result and its fields go, the upload too, the filename stays. */
static void test_end_failed_without_result(void **state)
{
    struct it_fx *f = *state;
    const char *const fields[] = {"state",         "failed", "error_code",
                                  "lookup_failed", "error",  "key C-1: HTTP 404"};
    const char *const counts[] = {"jobs_failed", "1"};
    struct end_fx x;

    end_seed(f, &x);
    it_ok(f->h, "SET", x.res.s, "stale workbook", NULL);
    it_ok(f->h, "HSET", x.st.s, "result_key", x.res.s, "result_bytes", "14", "result_sha256",
          "00ff", "filename", "a.xlsx", NULL);
    x.e = end_of_j1(3000, fields, 6, counts, 2);
    assert_int_equal(end(f, &x.e), EXW_END_DONE);
    assert_int_equal(it_exists(f, &x.res), 0);
    assert_int_equal(it_exists(f, &x.up), 0);
    assert_false(it_is_member(f, &x.ups, x.up.s));
    it_expect_field(f, &x.st, "state", "failed");
    it_expect_field(f, &x.st, "error_code", "lookup_failed");
    it_expect_field(f, &x.st, "error", "key C-1: HTTP 404");
    it_expect_field(f, &x.st, "result_key", NULL);
    it_expect_field(f, &x.st, "result_bytes", NULL);
    it_expect_field(f, &x.st, "result_sha256", NULL);
    it_expect_field(f, &x.st, "filename", "a.xlsx");
    it_expect_pttl(f, &x.st, 3000);
    it_expect_field(f, &x.stats, "jobs_failed", "1");
    it_expect_field(f, &x.stats, "jobs_succeeded", "4");
    assert_int_equal(it_exists(f, &x.p), 0);
    it_expect_list(f, &x.rows, (const char *const[]){"{\"sn\":1}", "{\"sn\":2}"}, 2);
}

/* Out of attempts: the status says failed and the document goes to P:dead,
 * in the same end. */
static void test_end_failed_with_dead_entry(void **state)
{
    struct it_fx *f = *state;
    static const char entry[] = "{\"job\":\"doc-j1\",\"error\":\"too many\",\"failed_at\":1}";
    const char *const fields[] = {"state", "failed", "error_code", "too_many_attempts"};
    const char *const counts[] = {"jobs_failed", "1", "jobs_dead", "1"};
    struct end_fx x;

    end_seed(f, &x);
    it_ok(f->h, "LPUSH", x.dead.s, "older", NULL);
    x.e = end_of_j1(5000, fields, 4, counts, 4);
    x.e.dead_entry = entry;
    assert_int_equal(end(f, &x.e), EXW_END_DONE);
    it_expect_list(f, &x.dead, (const char *const[]){entry, "older"}, 2);
    it_expect_field(f, &x.st, "state", "failed");
    it_expect_field(f, &x.st, "error_code", "too_many_attempts");
    it_expect_pttl(f, &x.st, 5000);
    it_expect_field(f, &x.stats, "jobs_failed", "1");
    it_expect_field(f, &x.stats, "jobs_dead", "1");
    assert_int_equal(it_exists(f, &x.p), 0);
    assert_int_equal(it_exists(f, &x.res), 0);
    assert_int_equal(it_exists(f, &x.up), 0);
}

/* write_status = 0 with a dead entry: P:dead, P:stats and the processing
 * list, nothing else. */
static void test_end_dead_only(void **state)
{
    struct it_fx *f = *state;
    static const char entry[] = "{\"job\":\"doc-j1\",\"error\":\"too many\",\"failed_at\":1}";
    static const char noid[] = "{\"job\":\"not json\",\"error\":\"no id\",\"failed_at\":2}";
    const char *const dead_stat[] = {"jobs_dead", "1"};
    struct it_name noid_st = it_key(f, "job:");
    struct exw_errbuf eb = {{0}};
    struct end_fx x;
    char *before, *after;

    end_init(f, &x);
    it_ok(f->h, "LPUSH", x.dead.s, "older", NULL);
    it_ok(f->h, "HSET", x.st.s, "state", "queued", "attempts", "3", NULL);
    it_ok(f->h, "SET", x.res.s, "an earlier result", NULL);
    seed_processing(f, IT_WORKER, "doc-j1");
    before = it_snapshot(f);
    x.e = (struct exw_status_end){.id = "j1",
                                  .doc = "doc-j1",
                                  .doc_len = 6,
                                  .ttl_ms = 5000,
                                  .dead_entry = entry,
                                  .stats = dead_stat,
                                  .nstats = 2};
    assert_int_equal(end(f, &x.e), EXW_END_DONE);
    it_expect_list(f, &x.dead, (const char *const[]){entry, "older"}, 2);
    it_expect_field(f, &x.stats, "jobs_dead", "1");
    assert_int_equal(it_exists(f, &x.p), 0);
    /* Put back what may change, and the rest is as it was. */
    it_ok(f->h, "DEL", x.stats.s, NULL);
    it_ok(f->h, "LPOP", x.dead.s, NULL);
    seed_processing(f, IT_WORKER, "doc-j1");
    it_expect_unchanged(f, before);

    /* A document without a usable id: a dead letter and nothing else. */
    it_ok(f->h, "DEL", x.p.s, NULL);
    seed_processing(f, IT_WORKER, "not json");
    x.e = (struct exw_status_end){.doc = "not json",
                                  .doc_len = 8,
                                  .ttl_ms = 5000,
                                  .dead_entry = noid,
                                  .stats = dead_stat,
                                  .nstats = 2};
    it_expect_ok(exw_result_chunk(f->rd, "j1", 1, "PK", 2, 60000, &eb), &eb);
    before = it_snapshot(f);
    assert_int_equal(end(f, &x.e), EXW_END_DONE);
    it_expect_list(f, &x.dead, (const char *const[]){noid, "older"}, 2);
    assert_int_equal(it_exists(f, &noid_st), 0);
    assert_int_equal(it_exists(f, &x.p), 0);
    it_ok(f->h, "DEL", x.stats.s, NULL);
    it_ok(f->h, "LPOP", x.dead.s, NULL);
    seed_processing(f, IT_WORKER, "not json");
    after = it_snapshot(f);
    assert_string_equal(after, before);
    free(before);
    free(after);
}

/* A document too large for the worker to take in is named by its head and
 * length: the end checks the oldest of the processing list by those, and
 * removes that one; a head or length that does not match writes nothing. */
static void test_end_by_head(void **state)
{
    struct it_fx *f = *state;
    static const char entry[] = "{\"job\":\"{\\\"pad\",\"error\":\"too big\",\"failed_at\":3}";
    const char *const dead_stat[] = {"jobs_dead", "1"};
    struct exw_errbuf eb = {{0}};
    struct end_fx x;
    char *before;
    enum exw_end out = EXW_END_DONE;

    end_init(f, &x);
    seed_processing(f, IT_WORKER, "{\"pad\":\"xxxxxxxxxxxxxxxx\"}"); /* the oldest, 26 bytes */
    seed_processing(f, IT_WORKER, "newer");
    x.e = (struct exw_status_end){.doc = "{\"pad",
                                  .doc_len = 5,
                                  .doc_total = 27,
                                  .ttl_ms = 5000,
                                  .dead_entry = entry,
                                  .stats = dead_stat,
                                  .nstats = 2};
    before = it_snapshot(f);
    it_expect_ok(exw_status_end(f->rd, &x.e, &out, &eb), &eb);
    assert_int_equal(out, EXW_END_NOT_OWNED); /* the length does not match */
    it_expect_unchanged(f, before);
    x.e.doc_total = 26;
    x.e.doc = "{\"pud";
    before = it_snapshot(f);
    it_expect_ok(exw_status_end(f->rd, &x.e, &out, &eb), &eb);
    assert_int_equal(out, EXW_END_NOT_OWNED); /* nor the head */
    it_expect_unchanged(f, before);
    x.e.doc = "{\"pad";
    assert_int_equal(end(f, &x.e), EXW_END_DONE);
    it_expect_list(f, &x.p, (const char *const[]){"newer"}, 1);
    it_expect_list(f, &x.dead, (const char *const[]){entry}, 1);
    it_expect_field(f, &x.stats, "jobs_dead", "1");
}

int main(void)
{
    struct it_env e;
    int rc;

    if (it_env_init(&e, "status") != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        IT_TEST(test_start_started, &e),
        IT_TEST(test_start_fresh, &e),
        IT_TEST(test_start_without_event, &e),
        IT_TEST(test_start_gone, &e),
        IT_TEST(test_start_cancelled, &e),
        IT_TEST(test_start_exhausted, &e),
        IT_TEST(test_start_wrongtype, &e),
        IT_TEST(test_start_duplicate, &e),
        IT_TEST(test_start_deferred, &e),
        IT_TEST(test_start_busy_here, &e),
        IT_TEST(test_start_dead_holder, &e),
        IT_TEST(test_progress, &e),
        IT_TEST(test_end_succeeded, &e),
        IT_TEST(test_end_succeeded_with_the_workbook, &e),
        IT_TEST(test_end_retry_after_lost_reply, &e),
        IT_TEST(test_end_not_owned, &e),
        IT_TEST(test_end_upload_gone, &e),
        IT_TEST(test_end_stats_not_integer, &e),
        IT_TEST(test_end_stats_hincrby_refuses, &e),
        IT_TEST(test_end_wrong_types, &e),
        IT_TEST(test_end_uploads_wrongtype, &e),
        IT_TEST(test_end_failed_without_result, &e),
        IT_TEST(test_end_failed_with_dead_entry, &e),
        IT_TEST(test_end_dead_only, &e),
        IT_TEST(test_end_by_head, &e),
    };

    rc = cmocka_run_group_tests(tests, NULL, NULL);
    exw_redis_addr_cleanup(&e.addr);
    return rc;
}
