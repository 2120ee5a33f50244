/* test_rq.c: the Redis adapter against a real redis-server.
 *
 * scripts/with-redis.sh starts a throw-away server and names it in
 * EXW_TEST_REDIS_URL. Every test works under a key prefix of its own
 * ("t<test number>-<pid>"), so tests never see each other's keys, and checks
 * what each call did to Redis through a plain hiredis connection of its own
 * (the helper), never through the adapter under test. Assertions are made on
 * the test's thread only: the recovery race records what its threads saw and
 * checks it after joining them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "exw/clock.h"
#include "exw/config.h"
#include "exw/err.h"
#include "exw/rq.h"

#define SENTINEL __attribute__((sentinel))

/* The worker id of each fixture's adapter. */
#define WORKER "w1"
/* The adapter's connect and command timeout. */
#define TIMEOUT_MS 2000
/* Rounds of the recovery race, each on fresh keys. */
#define RACE_ROUNDS 50
#define RACE_DEAD 3 /* dead workers per round */
#define RACE_JOBS 3 /* jobs each dead worker holds */

/* What every test shares; set up once by main. */
struct env {
    struct exw_redis_addr addr; /* of EXW_TEST_REDIS_URL */
    long pid;
    int seq; /* tests set up so far, numbering the prefixes */
};

/* One test's keys and connections. */
struct fx {
    struct env *env;
    char prefix[64];
    redisContext *h;   /* the helper: raw setup and checks, database 0 */
    struct exw_rq *rq; /* the adapter under test, worker WORKER */
};

/* A key name, returned by value so that it needs no freeing. */
struct name {
    char s[256];
};

/* ---- Key names ---- */

/* "<prefix>:<fmt...>" under the fixture's prefix. */
static struct name key(const struct fx *f, const char *fmt, ...) EXW_PRINTF(2, 3);
static struct name key(const struct fx *f, const char *fmt, ...)
{
    struct name n;
    va_list ap;
    int len = snprintf(n.s, sizeof(n.s), "%s:", f->prefix);

    assert_true(len > 0 && (size_t)len < sizeof(n.s));
    va_start(ap, fmt);
    vsnprintf(n.s + len, sizeof(n.s) - (size_t)len, fmt, ap);
    va_end(ap);
    return n;
}

/* ---- Raw Redis through hiredis ---- */

static redisContext *raw_connect(const struct env *e)
{
    struct timeval tv = {.tv_sec = 3, .tv_usec = 0};
    redisContext *c = redisConnectWithTimeout(e->addr.host, e->addr.port, tv);

    assert_non_null(c);
    if (c->err)
        fail_msg("helper connection: %s", c->errstr);
    /* A reply that never comes (an event not published) fails the test
     * instead of hanging it. */
    assert_int_equal(redisSetTimeout(c, tv), REDIS_OK);
    return c;
}

/* Runs a command given as a NULL-terminated list of strings; fails the test
 * on a lost connection or an error reply. */
static redisReply *vcmd(redisContext *h, const char *arg, va_list ap)
{
    const char *argv[32];
    int argc = 0;
    redisReply *r;

    for (; arg != NULL; arg = va_arg(ap, const char *)) {
        assert_true(argc < 32);
        argv[argc++] = arg;
    }
    r = redisCommandArgv(h, argc, argv, NULL);
    if (r == NULL)
        fail_msg("%s: %s", argv[0], h->errstr);
    if (r->type == REDIS_REPLY_ERROR) {
        print_error("%s: %s\n", argv[0], r->str);
        freeReplyObject(r);
        fail();
    }
    return r;
}

static redisReply *cmd(redisContext *h, const char *arg, ...) SENTINEL;
static redisReply *cmd(redisContext *h, const char *arg, ...)
{
    redisReply *r;
    va_list ap;

    va_start(ap, arg);
    r = vcmd(h, arg, ap);
    va_end(ap);
    return r;
}

/* A command whose reply does not matter beyond not being an error. */
static void cmd_ok(redisContext *h, const char *arg, ...) SENTINEL;
static void cmd_ok(redisContext *h, const char *arg, ...)
{
    va_list ap;

    va_start(ap, arg);
    freeReplyObject(vcmd(h, arg, ap));
    va_end(ap);
}

/* A command replying with an integer. */
static long long cmd_int(redisContext *h, const char *arg, ...) SENTINEL;
static long long cmd_int(redisContext *h, const char *arg, ...)
{
    redisReply *r;
    long long v;
    va_list ap;

    va_start(ap, arg);
    r = vcmd(h, arg, ap);
    va_end(ap);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    v = r->integer;
    freeReplyObject(r);
    return v;
}

/* A command replying with a bulk string (caller frees) or nil (NULL). */
static char *cmd_str(redisContext *h, const char *arg, ...) SENTINEL;
static char *cmd_str(redisContext *h, const char *arg, ...)
{
    redisReply *r;
    char *s = NULL;
    va_list ap;

    va_start(ap, arg);
    r = vcmd(h, arg, ap);
    va_end(ap);
    if (r->type != REDIS_REPLY_NIL) {
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        s = strndup(r->str, r->len);
        assert_non_null(s);
    }
    freeReplyObject(r);
    return s;
}

/* Pushes a document that may hold NUL bytes on the left of a list. */
static void lpush_bin(redisContext *h, const char *list, const char *doc, size_t len)
{
    redisReply *r = redisCommand(h, "LPUSH %s %b", list, doc, len);

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
}

/* ---- Checks on Redis state ---- */

static long long exists(struct fx *f, const struct name *k)
{
    return cmd_int(f->h, "EXISTS", k->s, NULL);
}

static long long pttl(struct fx *f, const struct name *k)
{
    return cmd_int(f->h, "PTTL", k->s, NULL);
}

/* Asserts the value of a hash field; @want NULL means absent. */
static void expect_field(struct fx *f, const struct name *hash, const char *field, const char *want)
{
    char *got = cmd_str(f->h, "HGET", hash->s, field, NULL);

    if (want == NULL) {
        if (got != NULL)
            fail_msg("%s %s: want absent, got \"%s\"", hash->s, field, got);
    } else {
        if (got == NULL)
            fail_msg("%s %s: want \"%s\", got absent", hash->s, field, want);
        assert_string_equal(got, want);
    }
    free(got);
}

/* Asserts a string value; @want NULL means the key is absent. */
static void expect_bytes(struct fx *f, const struct name *k, const char *want, size_t len)
{
    redisReply *r = cmd(f->h, "GET", k->s, NULL);

    if (want == NULL) {
        assert_int_equal(r->type, REDIS_REPLY_NIL);
    } else {
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_int_equal(r->len, len);
        assert_memory_equal(r->str, want, len);
    }
    freeReplyObject(r);
}

/* Asserts a whole list, left to right (the left end is the newest push, the
 * right end of P:queue the next job taken). */
static void expect_list(struct fx *f, const struct name *k, const char *const *want, size_t n)
{
    redisReply *r = cmd(f->h, "LRANGE", k->s, "0", "-1", NULL);
    size_t i;

    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    if (r->elements != n)
        fail_msg("%s: want %zu elements, got %zu", k->s, n, r->elements);
    for (i = 0; i < n; i++) {
        assert_int_equal(r->element[i]->type, REDIS_REPLY_STRING);
        assert_int_equal(r->element[i]->len, strlen(want[i]));
        assert_memory_equal(r->element[i]->str, want[i], strlen(want[i]));
    }
    freeReplyObject(r);
}

/* Asserts a TTL in (0, @max] milliseconds. */
static void expect_pttl(struct fx *f, const struct name *k, long long max)
{
    long long t = pttl(f, k);

    if (t <= 0 || t > max)
        fail_msg("%s: PTTL %lld, want 1..%lld", k->s, t, max);
}

/* A hash dumped as "field=value\n" lines in field order, to compare a hash
 * before and after a call that must not touch it. */
struct dump {
    char s[1024];
};

static struct dump hash_dump(struct fx *f, const struct name *k)
{
    redisReply *r = cmd(f->h, "HGETALL", k->s, NULL);
    struct dump d = {{0}};
    size_t i, j, used = 0;
    int n;

    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    /* Sort pairs by field so that the dump does not depend on hash order. */
    for (i = 0; i + 2 < r->elements; i += 2) {
        for (j = i + 2; j + 1 < r->elements; j += 2) {
            if (strcmp(r->element[j]->str, r->element[i]->str) < 0) {
                redisReply *tf = r->element[i], *tv = r->element[i + 1];

                r->element[i] = r->element[j];
                r->element[i + 1] = r->element[j + 1];
                r->element[j] = tf;
                r->element[j + 1] = tv;
            }
        }
    }
    for (i = 0; i + 1 < r->elements && used < sizeof(d.s); i += 2) {
        n = snprintf(d.s + used, sizeof(d.s) - used, "%s=%s\n", r->element[i]->str,
                     r->element[i + 1]->str);
        used += n > 0 ? (size_t)n : 0;
    }
    freeReplyObject(r);
    assert_true(used < sizeof(d.s));
    return d;
}

/* ---- Events ---- */

/* A second connection subscribed to P:events before the call under test. */
static redisContext *subscribe(struct fx *f)
{
    struct name ch = key(f, "events");
    redisContext *s = raw_connect(f->env);
    redisReply *r = cmd(s, "SUBSCRIBE", ch.s, NULL);

    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[0]->str, "subscribe");
    freeReplyObject(r);
    return s;
}

/* Waits for the next message on the subscription and checks its payload. */
static void expect_event(redisContext *s, const char *want)
{
    void *reply = NULL;
    redisReply *r;

    if (redisGetReply(s, &reply) != REDIS_OK)
        fail_msg("no event (want %s): %s", want, s->errstr);
    r = reply;
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[0]->str, "message");
    assert_string_equal(r->element[2]->str, want);
    freeReplyObject(r);
}

/* Asserts that nothing was published since the last event read: a marker
 * published now must be the next message. */
static void expect_no_event(struct fx *f, redisContext *s)
{
    struct name ch = key(f, "events");

    assert_int_equal(cmd_int(f->h, "PUBLISH", ch.s, "marker", NULL), 1);
    expect_event(s, "marker");
}

/* ---- The adapter ---- */

static void expect_ok(exw_err rc, const struct exw_errbuf *eb)
{
    if (rc != EXW_OK)
        fail_msg("%s: %s", exw_strerror(rc), eb->msg);
}

static struct exw_rq *open_rq(const struct env *e, const char *prefix, const char *worker)
{
    struct exw_errbuf eb = {{0}};
    struct exw_rq *rq = NULL;

    expect_ok(exw_rq_connect(&e->addr, prefix, worker, TIMEOUT_MS, &rq, &eb), &eb);
    assert_non_null(rq);
    assert_false(exw_rq_broken(rq));
    return rq;
}

/* Takes the next job and asserts it is @want (NULL: none came). */
static void expect_take(struct exw_rq *rq, const char *want)
{
    struct exw_errbuf eb = {{0}};
    char *doc = NULL;
    size_t len = 99;

    expect_ok(exw_rq_take(rq, 0.1, &doc, &len, &eb), &eb);
    if (want == NULL) {
        if (doc != NULL)
            fail_msg("took \"%s\", want none", doc);
        assert_int_equal(len, 0);
    } else {
        if (doc == NULL)
            fail_msg("took none, want \"%s\"", want);
        assert_int_equal(len, strlen(want));
        assert_string_equal(doc, want);
    }
    free(doc);
}

/* Queues @doc and takes it with @rq, so that it sits in its processing list. */
static void seed_taken(struct fx *f, struct exw_rq *rq, const char *doc)
{
    struct name q = key(f, "queue");

    assert_int_equal(exists(f, &q), 0);
    cmd_ok(f->h, "LPUSH", q.s, doc, NULL);
    expect_take(rq, doc);
}

static void beat(struct exw_rq *rq, const char *job, long long done, long ttl_ms)
{
    struct exw_rq_beat b = {
        .host = "host-a",
        .pid = 4242,
        .started_at = INT64_C(1700000000123),
        .job = job,
        .jobs_done = done,
        .ttl_ms = ttl_ms,
    };
    struct exw_errbuf eb = {{0}};

    expect_ok(exw_rq_heartbeat(rq, &b, &eb), &eb);
}

/* ---- Fixture ---- */

static int fx_setup(void **state)
{
    struct env *e = *state;
    struct fx *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    f->env = e;
    snprintf(f->prefix, sizeof(f->prefix), "t%d-%ld", ++e->seq, e->pid);
    f->h = raw_connect(e);
    f->rq = open_rq(e, f->prefix, WORKER);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;

    /* The password test may have failed half-way. */
    freeReplyObject(redisCommand(f->h, "CONFIG SET requirepass %s", ""));
    exw_rq_free(f->rq);
    redisFree(f->h);
    free(f);
    return 0;
}

/* ---- connect ---- */

/* A loopback port nothing listens on (free a moment ago). */
static int closed_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t salen = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static void expect_connect_fails(const struct exw_redis_addr *addr, const char *secret)
{
    struct exw_errbuf eb = {{0}};
    struct exw_rq *rq = (struct exw_rq *)&eb; /* must be reset to NULL */
    exw_err rc = exw_rq_connect(addr, "p", WORKER, TIMEOUT_MS, &rq, &eb);

    assert_int_equal(rc, EXW_EREDIS);
    assert_null(rq);
    assert_true(eb.msg[0] != '\0');
    if (secret != NULL && strstr(eb.msg, secret) != NULL)
        fail_msg("the error shows the password: %s", eb.msg);
}

static void test_connect_unreachable(void **state)
{
    struct fx *f = *state;
    struct exw_redis_addr addr = f->env->addr;

    addr.port = closed_port();
    expect_connect_fails(&addr, NULL);
    addr = f->env->addr;
    addr.host = "no-such-host.invalid";
    expect_connect_fails(&addr, NULL);
}

static void test_connect_wrong_password(void **state)
{
    struct fx *f = *state;
    struct exw_redis_addr addr = f->env->addr;
    char right[64], wrong[64];
    struct exw_errbuf eb = {{0}};
    struct exw_rq *rq = NULL;
    struct name q = key(f, "queue");
    long long n = -1;

    snprintf(right, sizeof(right), "right-pw-%ld", f->env->pid);
    snprintf(wrong, sizeof(wrong), "wrong-pw-%ld", f->env->pid);
    cmd_ok(f->h, "CONFIG", "SET", "requirepass", right, NULL);

    addr.password = wrong;
    expect_connect_fails(&addr, wrong);
    addr.user = "default";
    expect_connect_fails(&addr, wrong);

    addr.password = right;
    expect_ok(exw_rq_connect(&addr, f->prefix, WORKER, TIMEOUT_MS, &rq, &eb), &eb);
    expect_ok(exw_rq_llen(rq, q.s, &n, &eb), &eb);
    assert_int_equal(n, 0);
    exw_rq_free(rq);

    cmd_ok(f->h, "CONFIG", "SET", "requirepass", "", NULL);
}

static void test_connect_selects_db(void **state)
{
    struct fx *f = *state;
    struct exw_redis_addr addr;
    struct exw_errbuf eb = {{0}};
    struct exw_rq *rq = NULL;
    struct name q = key(f, "queue"), p = key(f, "processing:%s", "w3");
    redisContext *db3 = raw_connect(f->env);
    char url[128];

    snprintf(url, sizeof(url), "redis://%s:%d/3", f->env->addr.host, f->env->addr.port);
    expect_ok(exw_redis_addr_parse(url, &addr, &eb), &eb);
    assert_int_equal(addr.db, 3);
    cmd_ok(db3, "SELECT", "3", NULL);
    cmd_ok(db3, "LPUSH", q.s, "in-db3", NULL);
    cmd_ok(f->h, "LPUSH", q.s, "in-db0", NULL);

    expect_ok(exw_rq_connect(&addr, f->prefix, "w3", TIMEOUT_MS, &rq, &eb), &eb);
    expect_take(rq, "in-db3");

    assert_int_equal(cmd_int(db3, "LLEN", q.s, NULL), 0);
    assert_int_equal(cmd_int(db3, "LLEN", p.s, NULL), 1);
    expect_list(f, &q, (const char *const[]){"in-db0"}, 1);
    assert_int_equal(exists(f, &p), 0);

    cmd_ok(db3, "DEL", p.s, NULL);
    exw_rq_free(rq);
    exw_redis_addr_cleanup(&addr);
    redisFree(db3);
}

/* ---- take ---- */

static void test_take_times_out(void **state)
{
    struct fx *f = *state;
    struct exw_errbuf eb = {{0}};
    char *doc = (char *)&eb; /* must be reset to NULL */
    size_t len = 99;
    int64_t t0 = exw_mono_ms(), waited;

    expect_ok(exw_rq_take(f->rq, 0.2, &doc, &len, &eb), &eb);
    waited = exw_mono_ms() - t0;
    assert_null(doc);
    assert_int_equal(len, 0);
    if (waited < 150 || waited > 1500)
        fail_msg("waited %lld ms for a 0.2 s take", (long long)waited);
    assert_false(exw_rq_broken(f->rq));
}

static void test_take_fifo(void **state)
{
    struct fx *f = *state;
    struct name q = key(f, "queue"), p = key(f, "processing:%s", WORKER);

    /* The backend LPUSHes; a is the older job. */
    cmd_ok(f->h, "LPUSH", q.s, "a", NULL);
    cmd_ok(f->h, "LPUSH", q.s, "b", NULL);
    expect_take(f->rq, "a");
    expect_list(f, &q, (const char *const[]){"b"}, 1);
    expect_list(f, &p, (const char *const[]){"a"}, 1);
    expect_take(f->rq, "b");
    assert_int_equal(exists(f, &q), 0);
    expect_list(f, &p, (const char *const[]){"b", "a"}, 2);
    expect_take(f->rq, NULL);
}

static void test_take_binary(void **state)
{
    struct fx *f = *state;
    static const char bin[] = "{\"id\":\0\"x\"}\0\xff";
    const size_t binlen = sizeof(bin) - 1;
    struct name q = key(f, "queue"), p = key(f, "processing:%s", WORKER);
    struct exw_rq_finish fin = {.ttl_ms = 1000};
    struct exw_errbuf eb = {{0}};
    char *doc = NULL;
    size_t len = 0;
    redisReply *r;
    int owned = -1;

    lpush_bin(f->h, q.s, bin, binlen);
    expect_ok(exw_rq_take(f->rq, 0.1, &doc, &len, &eb), &eb);
    assert_non_null(doc);
    assert_int_equal(len, binlen);
    assert_memory_equal(doc, bin, binlen);

    r = cmd(f->h, "LRANGE", p.s, "0", "-1", NULL);
    assert_int_equal(r->elements, 1);
    assert_int_equal(r->element[0]->len, binlen);
    assert_memory_equal(r->element[0]->str, bin, binlen);
    freeReplyObject(r);

    /* The document as taken, NUL bytes included, is what finish looks for. */
    fin.doc = doc;
    fin.doc_len = len;
    expect_ok(exw_rq_finish(f->rq, &fin, &owned, &eb), &eb);
    assert_int_equal(owned, 1);
    assert_int_equal(exists(f, &p), 0);
    free(doc);
}

/* ---- precheck ---- */

static void test_precheck(void **state)
{
    struct fx *f = *state;
    struct name st = key(f, "job:%s", "j1");
    struct exw_errbuf eb = {{0}};
    struct exw_rq_precheck pc = {.cancel = 7, .attempts = 7};

    expect_ok(exw_rq_precheck(f->rq, "j1", &pc, &eb), &eb);
    assert_int_equal(pc.cancel, 0);
    assert_int_equal(pc.attempts, 0);
    assert_int_equal(exists(f, &st), 0);

    cmd_ok(f->h, "HSET", st.s, "cancel", "1", "attempts", "3", "state", "queued", NULL);
    expect_ok(exw_rq_precheck(f->rq, "j1", &pc, &eb), &eb);
    assert_int_equal(pc.cancel, 1);
    assert_int_equal(pc.attempts, 3);

    cmd_ok(f->h, "HSET", st.s, "cancel", "0", NULL);
    cmd_ok(f->h, "HDEL", st.s, "attempts", NULL);
    expect_ok(exw_rq_precheck(f->rq, "j1", &pc, &eb), &eb);
    assert_int_equal(pc.cancel, 0);
    assert_int_equal(pc.attempts, 0);
}

/* ---- update ---- */

static void test_update(void **state)
{
    struct fx *f = *state;
    struct name st = key(f, "job:%s", "j1");
    static const char *const running[] = {"state", "running", "worker", WORKER, "progress", "0"};
    static const char ev[] = "{\"id\":\"j1\",\"state\":\"running\",\"progress\":0}";
    struct exw_rq_update u = {
        .fields = running,
        .nfields = 6,
        .incr_attempts = 1,
        .clear_outcome = 1,
        .event = ev,
    };
    struct exw_errbuf eb = {{0}};
    redisContext *sub = subscribe(f);
    int cancel = -1;

    /* What an earlier, failed attempt left. */
    cmd_ok(f->h, "HSET", st.s, "state", "failed", "queued_at", "123", "attempts", "2", "error_code",
           "timeout", "error", "too slow", "finished_at", "456", "result_key", "k", "result_bytes",
           "9", "result_sha256", "ab", "filename", "x.xlsx", NULL);

    expect_ok(exw_rq_update(f->rq, "j1", &u, &cancel, &eb), &eb);
    assert_int_equal(cancel, 0);
    expect_field(f, &st, "state", "running");
    expect_field(f, &st, "worker", WORKER);
    expect_field(f, &st, "progress", "0");
    expect_field(f, &st, "attempts", "3");
    expect_field(f, &st, "queued_at", "123");
    expect_field(f, &st, "filename", "x.xlsx");
    expect_field(f, &st, "error_code", NULL);
    expect_field(f, &st, "error", NULL);
    expect_field(f, &st, "finished_at", NULL);
    expect_field(f, &st, "result_key", NULL);
    expect_field(f, &st, "result_bytes", NULL);
    expect_field(f, &st, "result_sha256", NULL);
    expect_event(sub, ev);

    /* A client asks for cancellation; a progress step without an event reads
     * it back and publishes nothing. */
    cmd_ok(f->h, "HSET", st.s, "cancel", "1", NULL);
    u = (struct exw_rq_update){.fields = (const char *const[]){"progress", "40"}, .nfields = 2};
    expect_ok(exw_rq_update(f->rq, "j1", &u, &cancel, &eb), &eb);
    assert_int_equal(cancel, 1);
    expect_field(f, &st, "progress", "40");
    expect_field(f, &st, "attempts", "3");
    expect_no_event(f, sub);

    /* An attempt not counted after all. */
    u = (struct exw_rq_update){.incr_attempts = -1};
    expect_ok(exw_rq_update(f->rq, "j1", &u, &cancel, &eb), &eb);
    assert_int_equal(cancel, 1);
    expect_field(f, &st, "attempts", "2");
    expect_field(f, &st, "queued_at", "123");
    assert_int_equal(pttl(f, &st), -1);
    redisFree(sub);
}

static void test_update_sets_queued_at_once(void **state)
{
    struct fx *f = *state;
    struct name st = key(f, "job:%s", "j2");
    struct exw_rq_update u = {.fields = (const char *const[]){"state", "running"}, .nfields = 2};
    struct exw_errbuf eb = {{0}};
    int64_t before = exw_wall_ms(), after;
    char *first, *second, *end;
    long long at;
    int cancel = -1;

    expect_ok(exw_rq_update(f->rq, "j2", &u, &cancel, &eb), &eb);
    after = exw_wall_ms();
    assert_int_equal(cancel, 0);
    expect_field(f, &st, "state", "running");
    expect_field(f, &st, "attempts", NULL);
    first = cmd_str(f->h, "HGET", st.s, "queued_at", NULL);
    assert_non_null(first);
    at = strtoll(first, &end, 10);
    assert_true(*end == '\0');
    assert_true(at >= before && at <= after);

    exw_sleep_ms(5);
    expect_ok(exw_rq_update(f->rq, "j2", &u, &cancel, &eb), &eb);
    second = cmd_str(f->h, "HGET", st.s, "queued_at", NULL);
    assert_non_null(second);
    assert_string_equal(first, second);
    free(first);
    free(second);
}

/* ---- result upload and finish ---- */

static void test_finish_with_result(void **state)
{
    struct fx *f = *state;
    static const char part1[] = "PK\3\4\0\0";
    static const char part2[] = "rest\0!";
    static const char whole[] = "PK\3\4\0\0rest\0!";
    static const char ev[] = "{\"id\":\"j1\",\"state\":\"succeeded\",\"progress\":100}";
    struct name st = key(f, "job:%s", "j1"), res = key(f, "result:%s", "j1");
    struct name up = key(f, "result:%s:upload:%s", "j1", WORKER);
    struct name p = key(f, "processing:%s", WORKER), stats = key(f, "stats");
    struct name rows = key(f, "rows:%s", "j1"), dead = key(f, "dead");
    const char *const fields[] = {"state",       "succeeded",    "progress",     "100",
                                  "result_key",  res.s,          "result_bytes", "12",
                                  "finished_at", "1700000000999"};
    const char *const counts[] = {"jobs_succeeded", "1", "bytes_out", "12"};
    struct exw_rq_finish fin = {
        .id = "j1",
        .doc = "doc-j1",
        .doc_len = 6,
        .ttl_ms = 5000,
        .has_result = 1,
        .rows_key = rows.s,
        .fields = fields,
        .nfields = 10,
        .stats = counts,
        .nstats = 4,
        .event = ev,
    };
    struct exw_errbuf eb = {{0}};
    redisContext *sub = subscribe(f);
    int owned = -1;

    seed_taken(f, f->rq, "doc-j1");
    cmd_ok(f->h, "HSET", st.s, "state", "running", "attempts", "1", NULL);
    cmd_ok(f->h, "HSET", stats.s, "jobs_succeeded", "4", NULL);
    cmd_ok(f->h, "RPUSH", rows.s, "{\"sn\":1}", "{\"sn\":2}", NULL);

    expect_ok(exw_rq_result_chunk(f->rq, "j1", 1, part1, sizeof(part1) - 1, 60000, &eb), &eb);
    expect_bytes(f, &up, part1, sizeof(part1) - 1);
    expect_pttl(f, &up, 60000);
    expect_ok(exw_rq_result_chunk(f->rq, "j1", 0, part2, sizeof(part2) - 1, 60000, &eb), &eb);
    expect_bytes(f, &up, whole, sizeof(whole) - 1);
    expect_pttl(f, &up, 60000);
    assert_int_equal(exists(f, &res), 0);

    expect_ok(exw_rq_finish(f->rq, &fin, &owned, &eb), &eb);
    assert_int_equal(owned, 1);
    assert_int_equal(exists(f, &up), 0);
    expect_bytes(f, &res, whole, sizeof(whole) - 1);
    expect_pttl(f, &res, 5000);
    expect_field(f, &st, "state", "succeeded");
    expect_field(f, &st, "progress", "100");
    expect_field(f, &st, "result_key", res.s);
    expect_field(f, &st, "result_bytes", "12");
    expect_field(f, &st, "finished_at", "1700000000999");
    expect_field(f, &st, "attempts", "1");
    expect_pttl(f, &st, 5000);
    assert_int_equal(exists(f, &p), 0);
    expect_field(f, &stats, "jobs_succeeded", "5");
    expect_field(f, &stats, "bytes_out", "12");
    assert_int_equal(exists(f, &rows), 0);
    assert_int_equal(exists(f, &dead), 0);
    expect_event(sub, ev);
    redisFree(sub);
}

static void test_finish_dead_entry(void **state)
{
    struct fx *f = *state;
    static const char entry[] = "{\"job\":\"doc-j1\",\"error\":\"too many\",\"failed_at\":1}";
    static const char noid[] = "{\"job\":\"not json\",\"error\":\"no id\",\"failed_at\":2}";
    struct name st = key(f, "job:%s", "j1"), noid_st = key(f, "job:");
    struct name p = key(f, "processing:%s", WORKER), stats = key(f, "stats");
    struct name dead = key(f, "dead"), res = key(f, "result:%s", "j1");
    const char *const fields[] = {"state", "failed", "error_code", "too_many_attempts"};
    const char *const failed[] = {"jobs_failed", "1", "jobs_dead", "1"};
    const char *const dead_only[] = {"jobs_dead", "1"};
    struct exw_rq_finish fin = {
        .id = "j1",
        .doc = "doc-j1",
        .doc_len = 6,
        .ttl_ms = 5000,
        .dead_entry = entry,
        .fields = fields,
        .nfields = 4,
        .stats = failed,
        .nstats = 4,
    };
    struct exw_errbuf eb = {{0}};
    int owned = -1;

    cmd_ok(f->h, "LPUSH", dead.s, "older", NULL);
    seed_taken(f, f->rq, "doc-j1");
    expect_ok(exw_rq_finish(f->rq, &fin, &owned, &eb), &eb);
    assert_int_equal(owned, 1);
    expect_list(f, &dead, (const char *const[]){entry, "older"}, 2);
    expect_field(f, &st, "state", "failed");
    expect_field(f, &st, "error_code", "too_many_attempts");
    expect_pttl(f, &st, 5000);
    expect_field(f, &stats, "jobs_failed", "1");
    expect_field(f, &stats, "jobs_dead", "1");
    assert_int_equal(exists(f, &p), 0);
    assert_int_equal(exists(f, &res), 0);

    /* A document without a usable id: a dead letter and nothing else. */
    seed_taken(f, f->rq, "not json");
    fin = (struct exw_rq_finish){
        .doc = "not json",
        .doc_len = 8,
        .ttl_ms = 5000,
        .dead_entry = noid,
        .stats = dead_only,
        .nstats = 2,
    };
    expect_ok(exw_rq_finish(f->rq, &fin, &owned, &eb), &eb);
    assert_int_equal(owned, 1);
    expect_list(f, &dead, (const char *const[]){noid, entry, "older"}, 3);
    expect_field(f, &stats, "jobs_dead", "2");
    assert_int_equal(exists(f, &noid_st), 0);
    assert_int_equal(exists(f, &p), 0);
}

static void test_finish_without_result(void **state)
{
    struct fx *f = *state;
    struct name st = key(f, "job:%s", "j1"), res = key(f, "result:%s", "j1");
    struct name up = key(f, "result:%s:upload:%s", "j1", WORKER);
    struct name p = key(f, "processing:%s", WORKER), stats = key(f, "stats");
    const char *const fields[] = {"state",         "failed", "error_code",
                                  "lookup_failed", "error",  "key C-1: HTTP 404"};
    const char *const counts[] = {"jobs_failed", "1"};
    struct exw_rq_finish fin = {
        .id = "j1",
        .doc = "doc-j1",
        .doc_len = 6,
        .ttl_ms = 3000,
        .fields = fields,
        .nfields = 6,
        .stats = counts,
        .nstats = 2,
    };
    struct exw_errbuf eb = {{0}};
    int owned = -1;

    /* An earlier attempt succeeded; this one (a re-run) fails half-way. */
    cmd_ok(f->h, "SET", res.s, "stale workbook", NULL);
    cmd_ok(f->h, "SET", up.s, "half an upload", NULL);
    cmd_ok(f->h, "HSET", st.s, "state", "running", "result_key", res.s, "result_bytes", "14",
           "result_sha256", "00ff", "filename", "a.xlsx", NULL);
    seed_taken(f, f->rq, "doc-j1");

    expect_ok(exw_rq_finish(f->rq, &fin, &owned, &eb), &eb);
    assert_int_equal(owned, 1);
    assert_int_equal(exists(f, &res), 0);
    assert_int_equal(exists(f, &up), 0);
    expect_field(f, &st, "state", "failed");
    expect_field(f, &st, "error_code", "lookup_failed");
    expect_field(f, &st, "error", "key C-1: HTTP 404");
    expect_field(f, &st, "result_key", NULL);
    expect_field(f, &st, "result_bytes", NULL);
    expect_field(f, &st, "result_sha256", NULL);
    expect_field(f, &st, "filename", "a.xlsx");
    expect_pttl(f, &st, 3000);
    expect_field(f, &stats, "jobs_failed", "1");
    assert_int_equal(exists(f, &p), 0);
}

static void test_finish_not_owned(void **state)
{
    struct fx *f = *state;
    static const char ev[] = "{\"id\":\"j1\",\"state\":\"succeeded\",\"progress\":100}";
    struct name st = key(f, "job:%s", "j1"), res = key(f, "result:%s", "j1");
    struct name up = key(f, "result:%s:upload:%s", "j1", WORKER);
    struct name mine = key(f, "processing:%s", WORKER), theirs = key(f, "processing:%s", "w2");
    struct name stats = key(f, "stats"), dead = key(f, "dead"), rows = key(f, "rows:%s", "j1");
    const char *const fields[] = {"state", "succeeded", "result_key", res.s};
    const char *const counts[] = {"jobs_succeeded", "1", "bytes_out", "3"};
    struct exw_rq_finish fin = {
        .id = "j1",
        .doc = "doc-j1",
        .doc_len = 6,
        .ttl_ms = 5000,
        .has_result = 1,
        .rows_key = rows.s,
        .dead_entry = "{\"job\":\"doc-j1\"}",
        .fields = fields,
        .nfields = 4,
        .stats = counts,
        .nstats = 4,
        .event = ev,
    };
    struct exw_errbuf eb = {{0}};
    redisContext *sub = subscribe(f);
    struct dump st_before, st_after, stats_before, stats_after;
    int owned = -1;

    /* Recovery gave the job to w2, which runs it now; this worker still has
     * another job of its own. */
    cmd_ok(f->h, "LPUSH", theirs.s, "doc-j1", NULL);
    cmd_ok(f->h, "LPUSH", mine.s, "doc-other", NULL);
    cmd_ok(f->h, "HSET", st.s, "state", "running", "worker", "w2", "attempts", "2", NULL);
    cmd_ok(f->h, "HSET", stats.s, "jobs_succeeded", "4", NULL);
    cmd_ok(f->h, "LPUSH", dead.s, "older", NULL);
    cmd_ok(f->h, "RPUSH", rows.s, "{\"sn\":1}", NULL);
    expect_ok(exw_rq_result_chunk(f->rq, "j1", 1, "abc", 3, 60000, &eb), &eb);
    st_before = hash_dump(f, &st);
    stats_before = hash_dump(f, &stats);

    expect_ok(exw_rq_finish(f->rq, &fin, &owned, &eb), &eb);
    assert_int_equal(owned, 0);
    st_after = hash_dump(f, &st);
    stats_after = hash_dump(f, &stats);
    assert_string_equal(st_after.s, st_before.s);
    assert_string_equal(stats_after.s, stats_before.s);
    assert_int_equal(pttl(f, &st), -1);
    assert_int_equal(exists(f, &res), 0);
    expect_bytes(f, &up, "abc", 3);
    expect_list(f, &dead, (const char *const[]){"older"}, 1);
    expect_list(f, &rows, (const char *const[]){"{\"sn\":1}"}, 1);
    expect_list(f, &theirs, (const char *const[]){"doc-j1"}, 1);
    expect_list(f, &mine, (const char *const[]){"doc-other"}, 1);
    expect_no_event(f, sub);
    redisFree(sub);
}

/* A finish that fails must write nothing, as one that is not owned does:
 * Redis does not roll back a script that stops on an error, and the worker
 * retries a failed finish, so writes made before the error would be repeated,
 * counting the job in P:stats once per try. Here the upload to rename is gone
 * (evicted, or expired while Redis was unreachable for longer than its TTL),
 * so RENAME fails. */
static void test_finish_error_writes_nothing(void **state)
{
    struct fx *f = *state;
    struct name st = key(f, "job:%s", "j1"), res = key(f, "result:%s", "j1");
    struct name p = key(f, "processing:%s", WORKER), stats = key(f, "stats");
    const char *const fields[] = {"state", "succeeded", "result_key", res.s};
    const char *const counts[] = {"jobs_succeeded", "1", "bytes_out", "3"};
    struct exw_rq_finish fin = {
        .id = "j1",
        .doc = "doc-j1",
        .doc_len = 6,
        .ttl_ms = 5000,
        .has_result = 1,
        .fields = fields,
        .nfields = 4,
        .stats = counts,
        .nstats = 4,
    };
    struct exw_errbuf eb = {{0}};
    struct dump st_before, st_after, stats_before, stats_after;
    exw_err rc;
    int owned = -1, try;

    seed_taken(f, f->rq, "doc-j1");
    cmd_ok(f->h, "HSET", st.s, "state", "running", "attempts", "1", NULL);
    cmd_ok(f->h, "HSET", stats.s, "jobs_succeeded", "4", NULL);
    st_before = hash_dump(f, &st);
    stats_before = hash_dump(f, &stats);

    for (try = 0; try < 3; try++) {
        rc = exw_rq_finish(f->rq, &fin, &owned, &eb);
        assert_int_equal(rc, EXW_EREDIS);
        assert_true(eb.msg[0] != '\0');
        assert_int_equal(owned, 0);
        assert_false(exw_rq_broken(f->rq));
    }
    st_after = hash_dump(f, &st);
    stats_after = hash_dump(f, &stats);
    expect_list(f, &p, (const char *const[]){"doc-j1"}, 1);
    assert_int_equal(exists(f, &res), 0);
    assert_int_equal(pttl(f, &st), -1);
    assert_string_equal(st_after.s, st_before.s);
    assert_string_equal(stats_after.s, stats_before.s);
}

/* ---- requeue ---- */

static void test_requeue(void **state)
{
    struct fx *f = *state;
    static const char ev[] = "{\"id\":\"j1\",\"state\":\"queued\",\"progress\":0}";
    struct name st = key(f, "job:%s", "j1"), q = key(f, "queue");
    struct name p = key(f, "processing:%s", WORKER);
    struct exw_errbuf eb = {{0}};
    redisContext *sub = subscribe(f);
    int64_t before = exw_wall_ms();
    char *updated;
    int owned = -1;

    seed_taken(f, f->rq, "doc-j1");
    /* Jobs queued while it ran: x is older than y. */
    cmd_ok(f->h, "LPUSH", q.s, "x", NULL);
    cmd_ok(f->h, "LPUSH", q.s, "y", NULL);
    cmd_ok(f->h, "HSET", st.s, "state", "running", "progress", "40", "attempts", "2", NULL);

    expect_ok(exw_rq_requeue(f->rq, "j1", "doc-j1", 6, ev, &owned, &eb), &eb);
    assert_int_equal(owned, 1);
    assert_int_equal(exists(f, &p), 0);
    expect_list(f, &q, (const char *const[]){"y", "x", "doc-j1"}, 3);
    expect_field(f, &st, "state", "queued");
    expect_field(f, &st, "progress", "0");
    expect_field(f, &st, "attempts", "1");
    updated = cmd_str(f->h, "HGET", st.s, "updated_at", NULL);
    assert_non_null(updated);
    assert_true(strtoll(updated, NULL, 10) >= before);
    free(updated);
    expect_event(sub, ev);

    /* The job put back is the one taken next, before older queued jobs. */
    expect_take(f->rq, "doc-j1");
    expect_take(f->rq, "x");
    redisFree(sub);
}

static void test_requeue_not_owned(void **state)
{
    struct fx *f = *state;
    struct name st = key(f, "job:%s", "j1"), q = key(f, "queue");
    struct name mine = key(f, "processing:%s", WORKER), theirs = key(f, "processing:%s", "w2");
    struct exw_errbuf eb = {{0}};
    redisContext *sub = subscribe(f);
    struct dump before, after;
    int owned = -1;

    cmd_ok(f->h, "LPUSH", theirs.s, "doc-j1", NULL);
    cmd_ok(f->h, "LPUSH", mine.s, "doc-other", NULL);
    cmd_ok(f->h, "LPUSH", q.s, "x", NULL);
    cmd_ok(f->h, "HSET", st.s, "state", "running", "worker", "w2", "attempts", "2", NULL);
    before = hash_dump(f, &st);

    expect_ok(exw_rq_requeue(f->rq, "j1", "doc-j1", 6, "{\"id\":\"j1\"}", &owned, &eb), &eb);
    assert_int_equal(owned, 0);
    after = hash_dump(f, &st);
    assert_string_equal(after.s, before.s);
    expect_list(f, &q, (const char *const[]){"x"}, 1);
    expect_list(f, &theirs, (const char *const[]){"doc-j1"}, 1);
    expect_list(f, &mine, (const char *const[]){"doc-other"}, 1);
    expect_no_event(f, sub);
    redisFree(sub);
}

/* ---- recover and release ---- */

/* Waits until a key is gone (a heartbeat's TTL lapsing). */
static void wait_gone(struct fx *f, const struct name *k)
{
    int64_t until = exw_mono_ms() + 3000;

    while (exists(f, k) == 1) {
        if (exw_mono_ms() > until)
            fail_msg("%s did not expire", k->s);
        exw_sleep_ms(10);
    }
}

static void test_recover(void **state)
{
    struct fx *f = *state;
    struct name q = key(f, "queue"), workers = key(f, "workers");
    struct name pdead = key(f, "processing:%s", "dead"), hbdead = key(f, "worker:%s", "dead");
    struct name plive = key(f, "processing:%s", "live"), hblive = key(f, "worker:%s", "live");
    struct exw_rq *dead = open_rq(f->env, f->prefix, "dead");
    struct exw_rq *live = open_rq(f->env, f->prefix, "live");
    struct exw_errbuf eb = {{0}};
    long long moved = -1;

    beat(dead, "", 0, 100);
    beat(live, "", 0, 60000);
    /* d1 is the oldest job; the dead worker took d1, then d2. */
    cmd_ok(f->h, "LPUSH", q.s, "d1", "d2", "l1", NULL);
    expect_take(dead, "d1");
    expect_take(dead, "d2");
    expect_take(live, "l1");
    cmd_ok(f->h, "LPUSH", q.s, "q0", NULL);
    /* Registered, never beat, holds nothing. */
    cmd_ok(f->h, "SADD", workers.s, "ghost", NULL);
    exw_rq_free(dead); /* killed: its heartbeat lapses */
    wait_gone(f, &hbdead);

    expect_ok(exw_rq_recover(f->rq, &moved, &eb), &eb);
    assert_int_equal(moved, 2);
    expect_list(f, &q, (const char *const[]){"q0", "d2", "d1"}, 3);
    assert_int_equal(exists(f, &pdead), 0);
    assert_int_equal(cmd_int(f->h, "SISMEMBER", workers.s, "dead", NULL), 0);
    assert_int_equal(cmd_int(f->h, "SISMEMBER", workers.s, "ghost", NULL), 0);
    assert_int_equal(cmd_int(f->h, "SISMEMBER", workers.s, "live", NULL), 1);
    assert_int_equal(cmd_int(f->h, "SCARD", workers.s, NULL), 1);
    expect_list(f, &plive, (const char *const[]){"l1"}, 1);
    assert_int_equal(exists(f, &hblive), 1);

    expect_ok(exw_rq_recover(f->rq, &moved, &eb), &eb);
    assert_int_equal(moved, 0);
    expect_take(f->rq, "d1");
    expect_take(f->rq, "d2");
    expect_take(f->rq, "q0");
    exw_rq_free(live);
}

struct racer {
    struct exw_rq *rq;
    pthread_barrier_t *go;
    exw_err rc;
    long long moved;
    struct exw_errbuf eb;
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;

    pthread_barrier_wait(r->go);
    r->rc = exw_rq_recover(r->rq, &r->moved, &r->eb);
    return NULL;
}

/* One round of the race on fresh keys under @f's prefix. */
static void race_round(struct fx *f, int round)
{
    struct name q = key(f, "queue"), workers = key(f, "workers");
    struct name hblive = key(f, "worker:live"), plive = key(f, "processing:live");
    struct racer rs[2] = {{0}};
    pthread_t th[2];
    pthread_barrier_t go;
    redisReply *r;
    char doc[64];
    int i, w, j, seen;
    size_t k;

    for (w = 0; w < RACE_DEAD; w++) {
        char wid[16];
        struct name pl;

        snprintf(wid, sizeof(wid), "dead%d", w);
        pl = key(f, "processing:%s", wid);
        cmd_ok(f->h, "SADD", workers.s, wid, NULL);
        for (j = 0; j < RACE_JOBS; j++) {
            snprintf(doc, sizeof(doc), "r%d-w%d-j%d", round, w, j);
            cmd_ok(f->h, "LPUSH", pl.s, doc, NULL);
        }
    }
    cmd_ok(f->h, "SADD", workers.s, "live", NULL);
    cmd_ok(f->h, "HSET", hblive.s, "host", "h", NULL);
    cmd_ok(f->h, "PEXPIRE", hblive.s, "60000", NULL);
    cmd_ok(f->h, "LPUSH", plive.s, "live-job", NULL);

    assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
    for (i = 0; i < 2; i++) {
        rs[i].rq = open_rq(f->env, f->prefix, i == 0 ? "a" : "b");
        rs[i].go = &go;
        rs[i].rc = EXW_ERR_COUNT;
        rs[i].moved = -1;
        assert_int_equal(pthread_create(&th[i], NULL, racer_main, &rs[i]), 0);
    }
    for (i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&go);
    for (i = 0; i < 2; i++) {
        expect_ok(rs[i].rc, &rs[i].eb);
        exw_rq_free(rs[i].rq);
    }
    assert_int_equal(rs[0].moved + rs[1].moved, RACE_DEAD * RACE_JOBS);

    r = cmd(f->h, "LRANGE", q.s, "0", "-1", NULL);
    assert_int_equal(r->elements, RACE_DEAD * RACE_JOBS);
    for (w = 0; w < RACE_DEAD; w++) {
        for (j = 0; j < RACE_JOBS; j++) {
            snprintf(doc, sizeof(doc), "r%d-w%d-j%d", round, w, j);
            seen = 0;
            for (k = 0; k < r->elements; k++)
                seen += strcmp(r->element[k]->str, doc) == 0;
            if (seen != 1)
                fail_msg("round %d: %s is %d times in the queue", round, doc, seen);
        }
    }
    freeReplyObject(r);
    assert_int_equal(cmd_int(f->h, "SCARD", workers.s, NULL), 1);
    assert_int_equal(cmd_int(f->h, "SISMEMBER", workers.s, "live", NULL), 1);
    assert_int_equal(cmd_int(f->h, "LLEN", plive.s, NULL), 1);
}

static void test_recover_race(void **state)
{
    struct fx *f = *state;
    struct fx rf = *f; /* the same connections, a fresh prefix each round */
    int round;

    for (round = 0; round < RACE_ROUNDS; round++) {
        snprintf(rf.prefix, sizeof(rf.prefix), "t%d-%ld-r%d", f->env->seq, f->env->pid, round);
        race_round(&rf, round);
    }
}

static void test_release_own(void **state)
{
    struct fx *f = *state;
    struct name q = key(f, "queue"), p = key(f, "processing:%s", WORKER);
    struct exw_errbuf eb = {{0}};
    long long moved = -1;

    cmd_ok(f->h, "LPUSH", q.s, "a", "b", NULL);
    expect_take(f->rq, "a");
    expect_take(f->rq, "b");
    cmd_ok(f->h, "LPUSH", q.s, "c", NULL);

    expect_ok(exw_rq_release_own(f->rq, &moved, &eb), &eb);
    assert_int_equal(moved, 2);
    assert_int_equal(exists(f, &p), 0);
    expect_list(f, &q, (const char *const[]){"c", "b", "a"}, 3);
    expect_take(f->rq, "a");

    expect_ok(exw_rq_release_own(f->rq, &moved, &eb), &eb);
    assert_int_equal(moved, 1);
    expect_list(f, &q, (const char *const[]){"c", "b", "a"}, 3);
    expect_take(f->rq, "a");
    expect_take(f->rq, "b");
    expect_take(f->rq, "c");
}

/* ---- heartbeat and deregister ---- */

static void test_heartbeat(void **state)
{
    struct fx *f = *state;
    struct name hb = key(f, "worker:%s", WORKER), workers = key(f, "workers");

    beat(f->rq, "j1", 7, 3000);
    expect_field(f, &hb, "host", "host-a");
    expect_field(f, &hb, "pid", "4242");
    expect_field(f, &hb, "started_at", "1700000000123");
    expect_field(f, &hb, "job", "j1");
    expect_field(f, &hb, "jobs_done", "7");
    expect_pttl(f, &hb, 3000);
    assert_int_equal(cmd_int(f->h, "SISMEMBER", workers.s, WORKER, NULL), 1);

    cmd_ok(f->h, "PEXPIRE", hb.s, "500", NULL);
    beat(f->rq, "", 8, 3000);
    expect_field(f, &hb, "job", "");
    expect_field(f, &hb, "jobs_done", "8");
    assert_true(pttl(f, &hb) > 500);
    expect_pttl(f, &hb, 3000);
    assert_int_equal(cmd_int(f->h, "SCARD", workers.s, NULL), 1);
}

static void test_deregister(void **state)
{
    struct fx *f = *state;
    struct name hb = key(f, "worker:%s", WORKER), workers = key(f, "workers");
    struct name q = key(f, "queue"), p = key(f, "processing:%s", WORKER);
    struct exw_rq *other = open_rq(f->env, f->prefix, "w2");
    struct exw_errbuf eb = {{0}};
    long long moved = -1;

    beat(f->rq, "", 0, 3000);
    expect_ok(exw_rq_deregister(f->rq, &eb), &eb);
    assert_int_equal(exists(f, &hb), 0);
    assert_int_equal(cmd_int(f->h, "SISMEMBER", workers.s, WORKER, NULL), 0);

    /* With a job it could not put back, it stays registered so that recovery
     * finds the job. */
    beat(f->rq, "j1", 0, 3000);
    seed_taken(f, f->rq, "doc-j1");
    expect_ok(exw_rq_deregister(f->rq, &eb), &eb);
    assert_int_equal(exists(f, &hb), 0);
    assert_int_equal(cmd_int(f->h, "SISMEMBER", workers.s, WORKER, NULL), 1);
    expect_list(f, &p, (const char *const[]){"doc-j1"}, 1);

    expect_ok(exw_rq_recover(other, &moved, &eb), &eb);
    assert_int_equal(moved, 1);
    expect_list(f, &q, (const char *const[]){"doc-j1"}, 1);
    assert_int_equal(exists(f, &p), 0);
    assert_int_equal(cmd_int(f->h, "SISMEMBER", workers.s, WORKER, NULL), 0);
    exw_rq_free(other);
}

/* ---- llen, lrange, config_get ---- */

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

static void test_llen_lrange(void **state)
{
    struct fx *f = *state;
    struct name l = key(f, "list"), none = key(f, "none"), str = key(f, "str");
    struct exw_errbuf eb = {{0}};
    struct seen s = {0};
    long long n = -1;

    cmd_ok(f->h, "RPUSH", l.s, "e0", "e1", NULL);
    lpush_bin(f->h, l.s, "b\0n", 3);
    cmd_ok(f->h, "RPUSH", l.s, "e3", "e4", NULL);
    /* The list: "b\0n" e0 e1 e3 e4. */
    expect_ok(exw_rq_llen(f->rq, l.s, &n, &eb), &eb);
    assert_int_equal(n, 5);
    expect_ok(exw_rq_llen(f->rq, none.s, &n, &eb), &eb);
    assert_int_equal(n, 0);

    expect_ok(exw_rq_lrange(f->rq, l.s, 0, -1, collect, &s, &eb), &eb);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.len[0], 3);
    assert_memory_equal(s.data[0], "b\0n", 3);
    assert_int_equal(s.len[4], 2);
    assert_memory_equal(s.data[4], "e4", 2);

    memset(&s, 0, sizeof(s));
    expect_ok(exw_rq_lrange(f->rq, l.s, 1, 2, collect, &s, &eb), &eb);
    assert_int_equal(s.n, 2);
    assert_memory_equal(s.data[0], "e0", 2);
    assert_memory_equal(s.data[1], "e1", 2);

    memset(&s, 0, sizeof(s));
    expect_ok(exw_rq_lrange(f->rq, none.s, 0, -1, collect, &s, &eb), &eb);
    assert_int_equal(s.n, 0);

    /* The callback's error ends the iteration and is returned as is. */
    memset(&s, 0, sizeof(s));
    s.stop_at = 3;
    assert_int_equal(exw_rq_lrange(f->rq, l.s, 0, -1, collect, &s, &eb), EXW_EJSON);
    assert_int_equal(s.n, 3);
    assert_false(exw_rq_broken(f->rq));

    /* An error reply is an error, but the connection stays usable. */
    cmd_ok(f->h, "SET", str.s, "x", NULL);
    assert_int_equal(exw_rq_llen(f->rq, str.s, &n, &eb), EXW_EREDIS);
    assert_non_null(strstr(eb.msg, "WRONGTYPE"));
    assert_false(exw_rq_broken(f->rq));
    expect_ok(exw_rq_llen(f->rq, l.s, &n, &eb), &eb);
    assert_int_equal(n, 5);
}

static void test_config_get(void **state)
{
    struct fx *f = *state;
    struct exw_errbuf eb = {{0}};
    redisReply *r = cmd(f->h, "CONFIG", "GET", "maxmemory-policy", NULL);
    char buf[64] = "junk";

    assert_int_equal(r->elements, 2);
    expect_ok(exw_rq_config_get(f->rq, "maxmemory-policy", buf, sizeof(buf), &eb), &eb);
    assert_string_equal(buf, r->element[1]->str);
    freeReplyObject(r);
    expect_ok(exw_rq_config_get(f->rq, "no-such-setting", buf, sizeof(buf), &eb), &eb);
    assert_string_equal(buf, "");
}

/* ---- a broken connection ---- */

enum op { OP_LLEN, OP_TAKE, OP_UPDATE, OP_HEARTBEAT, OP_FINISH, OP_COUNT };

static exw_err run_op(struct exw_rq *rq, enum op op, struct exw_errbuf *eb)
{
    struct exw_rq_beat b = {.host = "h", .pid = 1, .job = "", .ttl_ms = 1000};
    struct exw_rq_update u = {.fields = (const char *const[]){"progress", "1"}, .nfields = 2};
    struct exw_rq_finish fin = {.id = "j1", .doc = "d", .doc_len = 1, .ttl_ms = 1000};
    long long n;
    char *doc = NULL;
    size_t len;
    int flag;
    exw_err rc = EXW_OK;

    switch (op) {
    case OP_LLEN:
        rc = exw_rq_llen(rq, "x", &n, eb);
        break;
    case OP_TAKE:
        rc = exw_rq_take(rq, 0.1, &doc, &len, eb);
        free(doc);
        break;
    case OP_UPDATE:
        rc = exw_rq_update(rq, "j1", &u, &flag, eb);
        break;
    case OP_HEARTBEAT:
        rc = exw_rq_heartbeat(rq, &b, eb);
        break;
    case OP_FINISH:
        rc = exw_rq_finish(rq, &fin, &flag, eb);
        break;
    case OP_COUNT:
        break;
    }
    return rc;
}

static void test_broken_connection(void **state)
{
    struct fx *f = *state;
    struct exw_errbuf eb = {{0}};
    long long id = cmd_int(f->h, "CLIENT", "ID", NULL);
    int op;

    for (op = 0; op < OP_COUNT; op++) {
        struct exw_rq *rq = open_rq(f->env, f->prefix, "w2");

        expect_ok(run_op(rq, (enum op)op, &eb), &eb);
        /* Every normal client but the helper itself (SKIPME) goes. */
        assert_true(cmd_int(f->h, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes", NULL) >= 1);
        assert_int_equal(cmd_int(f->h, "CLIENT", "ID", NULL), id);

        memset(&eb, 0, sizeof(eb));
        if (run_op(rq, (enum op)op, &eb) != EXW_EREDIS)
            fail_msg("op %d: not EXW_EREDIS after the connection was killed", op);
        assert_true(eb.msg[0] != '\0');
        assert_true(exw_rq_broken(rq));
        /* It stays broken; no call tries the dead socket again. */
        memset(&eb, 0, sizeof(eb));
        assert_int_equal(run_op(rq, OP_LLEN, &eb), EXW_EREDIS);
        assert_true(exw_rq_broken(rq));
        exw_rq_free(rq);
    }
}

int main(void)
{
    const char *url = getenv("EXW_TEST_REDIS_URL");
    struct exw_errbuf eb = {{0}};
    struct env e = {.pid = (long)getpid()};
    int rc;

    if (url == NULL || url[0] == '\0') {
        fprintf(stderr, "EXW_TEST_REDIS_URL is not set: run through scripts/with-redis.sh\n");
        return 1;
    }
    if (exw_redis_addr_parse(url, &e.addr, &eb) != EXW_OK) {
        fprintf(stderr, "EXW_TEST_REDIS_URL: %s\n", eb.msg);
        return 1;
    }
    if (e.addr.host == NULL) {
        fprintf(stderr, "EXW_TEST_REDIS_URL: a TCP address is needed\n");
        exw_redis_addr_cleanup(&e.addr);
        return 1;
    }
    /* A write to a connection the server closed must fail, not kill us. */
    signal(SIGPIPE, SIG_IGN);

#define T(fn) cmocka_unit_test_prestate_setup_teardown(fn, fx_setup, fx_teardown, &e)
    const struct CMUnitTest tests[] = {
        T(test_connect_unreachable),
        T(test_connect_wrong_password),
        T(test_connect_selects_db),
        T(test_take_times_out),
        T(test_take_fifo),
        T(test_take_binary),
        T(test_precheck),
        T(test_update),
        T(test_update_sets_queued_at_once),
        T(test_finish_with_result),
        T(test_finish_dead_entry),
        T(test_finish_without_result),
        T(test_finish_not_owned),
        T(test_finish_error_writes_nothing),
        T(test_requeue),
        T(test_requeue_not_owned),
        T(test_recover),
        T(test_recover_race),
        T(test_release_own),
        T(test_heartbeat),
        T(test_deregister),
        T(test_llen_lrange),
        T(test_config_get),
        T(test_broken_connection),
    };
#undef T

    rc = cmocka_run_group_tests(tests, NULL, NULL);
    exw_redis_addr_cleanup(&e.addr);
    return rc;
}
