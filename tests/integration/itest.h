/* itest.h: what the integration tests of the Redis side share.
 *
 * scripts/with-redis.sh starts a throw-away redis-server and names it in
 * EXW_TEST_REDIS_URL. Every test works under a key prefix of its own
 * ("<file>-<test number>-<pid>"), so tests never see each other's keys. What
 * a call did to Redis is read back through a second connection of the
 * adapter, the helper, with plain commands (exw_cmd and exw_redis_run), never
 * through the module under test. Events are read by a subscribed connection
 * that pings itself (see it_expect_events). Assertions run on the test's
 * thread only.
 *
 * Everything here is static inline, so that a test file that leaves a
 * helper unused compiles without a warning. */
#ifndef EXW_ITEST_H
#define EXW_ITEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exw/err.h"
#include "exw/redis.h"
#include "exw/redis_addr.h"
#include "exw/scripts.h"

#define IT_SENTINEL __attribute__((sentinel))

/* The worker id of each fixture's connection under test. */
#define IT_WORKER "w1"
/* The connect and command timeout of every connection. */
#define IT_TIMEOUT_MS 2000

/* What every test of a file shares; set up once by main. */
struct it_env {
    struct exw_redis_addr addr; /* of EXW_TEST_REDIS_URL */
    const char *name;           /* the test file's, first in each prefix */
    long pid;
    int seq; /* tests set up so far, numbering the prefixes */
};

/* One test's keys and connections. */
struct it_fx {
    struct it_env *env;
    char prefix[96];
    struct exw_redis *h;  /* the helper: raw setup and checks */
    struct exw_redis *rd; /* the connection under test, worker IT_WORKER */
};

/* A key name, returned by value so that it needs no freeing. */
struct it_name {
    char s[256];
};

static inline void it_expect_ok(exw_err rc, const struct exw_errbuf *eb)
{
    if (rc != EXW_OK)
        fail_msg("%s: %s", exw_strerror(rc), eb->msg);
}

/* Asserts @rc is @want and that the errbuf says something. */
static inline void it_expect_err(exw_err rc, exw_err want, const struct exw_errbuf *eb)
{
    if (rc != want)
        fail_msg("got %s (%s), want %s", exw_strerror(rc), rc == EXW_OK ? "" : eb->msg,
                 exw_strerror(want));
    assert_true(eb->msg[0] != '\0');
}

/* "<prefix>:<fmt...>" under the fixture's prefix. */
static inline struct it_name it_key(const struct it_fx *f, const char *fmt, ...) EXW_PRINTF(2, 3);
static inline struct it_name it_key(const struct it_fx *f, const char *fmt, ...)
{
    struct it_name n;
    va_list ap;
    int len = snprintf(n.s, sizeof(n.s), "%s:", f->prefix);

    assert_true(len > 0 && (size_t)len < sizeof(n.s));
    va_start(ap, fmt);
    vsnprintf(n.s + len, sizeof(n.s) - (size_t)len, fmt, ap);
    va_end(ap);
    return n;
}

/* ---- Connections ---- */

static inline struct exw_redis *it_open(const struct it_env *e, const char *prefix,
                                        const char *worker)
{
    struct exw_errbuf eb = {{0}};
    struct exw_redis *rd = NULL;

    it_expect_ok(exw_redis_connect(&e->addr, prefix, worker, IT_TIMEOUT_MS, &rd, &eb), &eb);
    assert_non_null(rd);
    assert_false(exw_redis_broken(rd));
    return rd;
}

/* Replaces the fixture's connection under test (after one broke). */
static inline void it_reconnect(struct it_fx *f)
{
    exw_redis_free(f->rd);
    f->rd = it_open(f->env, f->prefix, IT_WORKER);
}

/* ---- Raw commands ---- */

/* Runs a command given as a NULL-terminated list of strings; fails the test
 * on any error. The caller frees the reply. */
static inline struct exw_reply *it_vcmd(struct exw_redis *rd, const char *arg, va_list ap)
{
    struct exw_errbuf eb = {{0}};
    struct exw_reply *r = NULL;
    struct exw_cmd c;
    exw_err rc;

    exw_cmd_init(&c);
    for (; arg != NULL; arg = va_arg(ap, const char *))
        exw_cmd_add(&c, arg);
    rc = exw_redis_run(rd, &c, "helper", &r, &eb);
    if (rc != EXW_OK)
        fail_msg("%s: %s", exw_strerror(rc), eb.msg);
    return r;
}

static inline struct exw_reply *it_cmd(struct exw_redis *rd, const char *arg, ...) IT_SENTINEL;
static inline struct exw_reply *it_cmd(struct exw_redis *rd, const char *arg, ...)
{
    struct exw_reply *r;
    va_list ap;

    va_start(ap, arg);
    r = it_vcmd(rd, arg, ap);
    va_end(ap);
    return r;
}

/* Runs a command given as a NULL-terminated list of strings and returns what
 * exw_redis_run said, the reply dropped: for commands expected to fail. */
static inline exw_err it_try(struct exw_redis *rd, struct exw_errbuf *eb, const char *arg,
                             ...) IT_SENTINEL;
static inline exw_err it_try(struct exw_redis *rd, struct exw_errbuf *eb, const char *arg, ...)
{
    struct exw_cmd c;
    va_list ap;

    memset(eb, 0, sizeof(*eb));
    exw_cmd_init(&c);
    va_start(ap, arg);
    for (; arg != NULL; arg = va_arg(ap, const char *))
        exw_cmd_add(&c, arg);
    va_end(ap);
    return exw_redis_run_simple(rd, &c, "try", eb);
}

/* A command whose reply does not matter beyond not being an error. */
static inline void it_ok(struct exw_redis *rd, const char *arg, ...) IT_SENTINEL;
static inline void it_ok(struct exw_redis *rd, const char *arg, ...)
{
    va_list ap;

    va_start(ap, arg);
    exw_reply_free(it_vcmd(rd, arg, ap));
    va_end(ap);
}

/* A command replying with an integer. */
static inline long long it_int(struct exw_redis *rd, const char *arg, ...) IT_SENTINEL;
static inline long long it_int(struct exw_redis *rd, const char *arg, ...)
{
    struct exw_reply *r;
    long long v;
    va_list ap;

    va_start(ap, arg);
    r = it_vcmd(rd, arg, ap);
    va_end(ap);
    assert_int_equal(exw_reply_type(r), EXW_REPLY_INTEGER);
    v = exw_reply_integer(r);
    exw_reply_free(r);
    return v;
}

/* A command replying with a string (caller frees) or nil (NULL). */
static inline char *it_str(struct exw_redis *rd, const char *arg, ...) IT_SENTINEL;
static inline char *it_str(struct exw_redis *rd, const char *arg, ...)
{
    struct exw_reply *r;
    const char *s;
    char *out = NULL;
    size_t len;
    va_list ap;

    va_start(ap, arg);
    r = it_vcmd(rd, arg, ap);
    va_end(ap);
    if (exw_reply_type(r) != EXW_REPLY_NIL) {
        s = exw_reply_string(r, &len);
        assert_non_null(s);
        out = exw_xstrndup(s, len);
    }
    exw_reply_free(r);
    return out;
}

/* Pushes @len bytes (NUL bytes allowed) on the left of @list. */
static inline void it_lpush_bin(struct exw_redis *rd, const char *list, const void *doc, size_t len)
{
    struct exw_errbuf eb = {{0}};
    struct exw_cmd c;

    exw_cmd_init(&c);
    exw_cmd_add(&c, "LPUSH");
    exw_cmd_add(&c, list);
    exw_cmd_add_len(&c, doc, len);
    it_expect_ok(exw_redis_run_simple(rd, &c, "LPUSH", &eb), &eb);
}

/* Loads every script, so that a lost EVALSHA reply (the fault seam) always
 * means a script that ran: no NOSCRIPT round comes first. */
static inline void it_load_scripts(struct exw_redis *rd)
{
    const struct exw_script *const all[] = {
        &exw_lua_deregister, &exw_lua_finish,  &exw_lua_heartbeat,
        &exw_lua_progress,   &exw_lua_recover, &exw_lua_release,
        &exw_lua_requeue,    &exw_lua_rows,    &exw_lua_start,
    };
    struct exw_errbuf eb = {{0}};
    struct exw_cmd c;
    size_t i;

    for (i = 0; i < sizeof(all) / sizeof(*all); i++) {
        exw_cmd_init(&c);
        exw_cmd_add(&c, "SCRIPT");
        exw_cmd_add(&c, "LOAD");
        exw_cmd_add_len(&c, all[i]->body, all[i]->len);
        it_expect_ok(exw_redis_run_simple(rd, &c, "SCRIPT LOAD", &eb), &eb);
    }
}

/* ---- Checks on Redis state ---- */

static inline long long it_exists(struct it_fx *f, const struct it_name *k)
{
    return it_int(f->h, "EXISTS", k->s, NULL);
}

static inline long long it_pttl(struct it_fx *f, const struct it_name *k)
{
    return it_int(f->h, "PTTL", k->s, NULL);
}

static inline int it_is_member(struct it_fx *f, const struct it_name *set, const char *m)
{
    return it_int(f->h, "SISMEMBER", set->s, m, NULL) == 1;
}

/* Asserts the value of a hash field; @want NULL means absent. */
static inline void it_expect_field(struct it_fx *f, const struct it_name *hash, const char *field,
                                   const char *want)
{
    char *got = it_str(f->h, "HGET", hash->s, field, NULL);

    if (want == NULL && got != NULL)
        fail_msg("%s %s: want absent, got \"%s\"", hash->s, field, got);
    if (want != NULL && got == NULL)
        fail_msg("%s %s: want \"%s\", got absent", hash->s, field, want);
    if (want != NULL)
        assert_string_equal(got, want);
    free(got);
}

/* Asserts that a hash field holds a time in [@lo, @hi]. */
static inline void it_expect_time(struct it_fx *f, const struct it_name *hash, const char *field,
                                  int64_t lo, int64_t hi)
{
    char *got = it_str(f->h, "HGET", hash->s, field, NULL), *end = NULL;
    long long v;

    if (got == NULL)
        fail_msg("%s %s: want a time, got absent", hash->s, field);
    v = strtoll(got, &end, 10);
    if (*end != '\0' || v < lo || v > hi)
        fail_msg("%s %s: \"%s\" is not in [%lld, %lld]", hash->s, field, got, (long long)lo,
                 (long long)hi);
    free(got);
}

/* Asserts a string value; @want NULL means the key is absent. */
static inline void it_expect_bytes(struct it_fx *f, const struct it_name *k, const void *want,
                                   size_t len)
{
    struct exw_reply *r = it_cmd(f->h, "GET", k->s, NULL);
    const char *got;
    size_t got_len;

    if (want == NULL) {
        assert_int_equal(exw_reply_type(r), EXW_REPLY_NIL);
    } else {
        got = exw_reply_string(r, &got_len);
        if (got == NULL)
            fail_msg("%s: want %zu bytes, got none", k->s, len);
        assert_int_equal(got_len, len);
        assert_memory_equal(got, want, len);
    }
    exw_reply_free(r);
}

/* Asserts a whole list, left to right (the left end is the newest push, the
 * right end of P:queue the next job taken). */
static inline void it_expect_list(struct it_fx *f, const struct it_name *k, const char *const *want,
                                  size_t n)
{
    struct exw_reply *r = it_cmd(f->h, "LRANGE", k->s, "0", "-1", NULL);
    size_t i;

    if (exw_reply_count(r) != n)
        fail_msg("%s: want %zu elements, got %zu", k->s, n, exw_reply_count(r));
    for (i = 0; i < n; i++) {
        if (!exw_reply_is(exw_reply_at(r, i), want[i]))
            fail_msg("%s[%zu]: want \"%s\", got \"%s\"", k->s, i, want[i],
                     exw_reply_string(exw_reply_at(r, i), NULL));
    }
    exw_reply_free(r);
}

/* Asserts a TTL in (0, @max] milliseconds. */
static inline void it_expect_pttl(struct it_fx *f, const struct it_name *k, long long max)
{
    long long t = it_pttl(f, k);

    if (t <= 0 || t > max)
        fail_msg("%s: PTTL %lld, want 1..%lld", k->s, t, max);
}

/* ---- Snapshots: "nothing written" ---- */

static inline int it_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends @len bytes at @s to *@out, as they are. */
static inline void it_append(char **out, size_t *used, const char *s, size_t len)
{
    *out = exw_xrealloc(*out, *used + len + 1);
    memcpy(*out + *used, s, len);
    *used += len;
    (*out)[*used] = '\0';
}

/* Appends @len bytes at @s to *@out, bytes outside printable ASCII (and the
 * backslash) as \xNN. */
static inline void it_append_esc(char **out, size_t *used, const char *s, size_t len)
{
    char hex[8];
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
            it_append(out, used, s + i, 1);
        } else {
            snprintf(hex, sizeof(hex), "\\x%02x", ch);
            it_append(out, used, hex, 4);
        }
    }
    it_append(out, used, "", 0);
}

/* The elements of an array reply as escaped strings; pairs (hashes) joined
 * as "field=value". Sorted when @sort. Caller frees each and the array. */
static inline char **it_render(const struct exw_reply *r, int pairs, int sort, size_t *n)
{
    size_t count = exw_reply_count(r), step = pairs ? 2 : 1, i, len;
    char **v = exw_xcalloc(count / step + 1, sizeof(*v));
    const char *s;

    *n = 0;
    for (i = 0; i + step <= count; i += step) {
        size_t used = 0;
        char *line = NULL;

        s = exw_reply_string(exw_reply_at(r, i), &len);
        it_append_esc(&line, &used, s ? s : "", len);
        if (pairs) {
            it_append(&line, &used, "=", 1);
            s = exw_reply_string(exw_reply_at(r, i + 1), &len);
            it_append_esc(&line, &used, s ? s : "", len);
        }
        v[(*n)++] = line;
    }
    if (sort)
        qsort(v, *n, sizeof(*v), it_cmp_str);
    return v;
}

/* Every key under the fixture's prefix with its type, contents and whether
 * it has a TTL, as one text (caller frees): two snapshots are equal when
 * nothing was written in between (a TTL's value aside). */
static inline char *it_snapshot(struct it_fx *f)
{
    struct it_name pattern = it_key(f, "*");
    struct exw_reply *keys = it_cmd(f->h, "KEYS", pattern.s, NULL);
    char *out = NULL, **names, *type;
    const char *ttl;
    size_t used = 0, nkeys, i, j, n;

    /* The tests' key names are printable: rendered, they are themselves. */
    names = it_render(keys, 0, 1, &nkeys);
    it_append(&out, &used, "", 0);
    for (i = 0; i < nkeys; i++) {
        struct exw_reply *r = NULL;
        char **lines = NULL;

        type = it_str(f->h, "TYPE", names[i], NULL);
        assert_non_null(type);
        it_append(&out, &used, names[i], strlen(names[i]));
        it_append(&out, &used, " ", 1);
        it_append(&out, &used, type, strlen(type));
        ttl = it_int(f->h, "PTTL", names[i], NULL) > 0 ? " ttl:" : ":";
        it_append(&out, &used, ttl, strlen(ttl));
        if (strcmp(type, "string") == 0)
            r = it_cmd(f->h, "MGET", names[i], NULL);
        else if (strcmp(type, "list") == 0)
            r = it_cmd(f->h, "LRANGE", names[i], "0", "-1", NULL);
        else if (strcmp(type, "hash") == 0)
            r = it_cmd(f->h, "HGETALL", names[i], NULL);
        else if (strcmp(type, "set") == 0)
            r = it_cmd(f->h, "SMEMBERS", names[i], NULL);
        else
            fail_msg("%s: a %s in a snapshot", names[i], type);
        lines = it_render(r, strcmp(type, "hash") == 0, strcmp(type, "list") != 0, &n);
        for (j = 0; j < n; j++) {
            it_append(&out, &used, " ", 1);
            it_append(&out, &used, lines[j], strlen(lines[j]));
            free(lines[j]);
        }
        it_append(&out, &used, "\n", 1);
        free(lines);
        exw_reply_free(r);
        free(type);
        free(names[i]);
    }
    free(names);
    exw_reply_free(keys);
    return out;
}

/* Asserts that the keys under the prefix are as @before shows; frees it. */
static inline void it_expect_unchanged(struct it_fx *f, char *before)
{
    char *after = it_snapshot(f);

    if (strcmp(before, after) != 0) {
        fprintf(stderr, "--- keys before\n%s--- keys after\n%s", before, after);
        fail_msg("keys changed (above)");
    }
    free(before);
    free(after);
}

/* ---- Events ---- */

/* A connection subscribed to P:events. */
struct it_sub {
    struct exw_redis *rd;
    long seq; /* the last ping's token */
};

static inline struct it_sub it_subscribe(struct it_fx *f)
{
    struct it_name ch = it_key(f, "events");
    struct it_sub s = {it_open(f->env, f->prefix, "subscriber"), 0};
    struct exw_reply *r = it_cmd(s.rd, "SUBSCRIBE", ch.s, NULL);

    assert_int_equal(exw_reply_count(r), 3);
    assert_true(exw_reply_is(exw_reply_at(r, 0), "subscribe"));
    exw_reply_free(r);
    return s;
}

/* Asserts the messages published on P:events since the last call, in order,
 * are exactly @want. A subscribed connection answers PING <token> with
 * ["pong", token] in turn with the messages, and every message published
 * before the PING comes before its pong: so it reads up to the pong of its
 * first PING, sending a new PING for each further read (their pongs are
 * skipped by the next call). */
static inline void it_expect_events(struct it_sub *s, const char *const *want, size_t n)
{
    long stop = ++s->seq;
    size_t got = 0;
    char tok[32];
    struct exw_reply *r;

    snprintf(tok, sizeof(tok), "%ld", stop);
    r = it_cmd(s->rd, "PING", tok, NULL);
    for (;;) {
        assert_true(exw_reply_count(r) >= 2);
        if (exw_reply_is(exw_reply_at(r, 0), "pong")) {
            const char *t = exw_reply_string(exw_reply_at(r, 1), NULL);

            assert_non_null(t);
            if (strtol(t, NULL, 10) == stop)
                break;
        } else {
            const char *msg = exw_reply_string(exw_reply_at(r, 2), NULL);

            assert_true(exw_reply_is(exw_reply_at(r, 0), "message"));
            if (got >= n)
                fail_msg("an event more than the %zu wanted: \"%s\"", n, msg);
            assert_string_equal(msg, want[got]);
            got++;
        }
        exw_reply_free(r);
        snprintf(tok, sizeof(tok), "%ld", ++s->seq);
        r = it_cmd(s->rd, "PING", tok, NULL);
    }
    exw_reply_free(r);
    if (got != n)
        fail_msg("%zu events, want %zu (the first missing: %s)", got, n, want[got]);
}

static inline void it_expect_no_event(struct it_sub *s) { it_expect_events(s, NULL, 0); }

static inline void it_sub_close(struct it_sub *s) { exw_redis_free(s->rd); }

/* Asserts that nothing was written since @before (freed) and nothing
 * published on @s since its last check; closes @s. */
static inline void it_expect_quiet(struct it_fx *f, char *before, struct it_sub *s)
{
    it_expect_unchanged(f, before);
    it_expect_no_event(s);
    it_sub_close(s);
}

/* ---- The fault seam ---- */

/* Loses the reply of the matching commands after the first @skip: those
 * whose name is @cmd, or, with @script, calls of that script (EVALSHA or
 * EVAL). Counts what it saw. */
struct it_fault {
    const char *cmd;
    const struct exw_script *script;
    int skip;
    int lost;    /* replies lost so far */
    int matched; /* matching commands seen */
};

static inline int it_arg_is(const struct exw_cmd *c, int i, const char *s)
{
    return i < c->n && c->len[i] == strlen(s) && memcmp(c->v[i], s, c->len[i]) == 0;
}

static inline int it_fault_fn(const struct exw_cmd *c, void *ud)
{
    struct it_fault *ft = ud;
    int match;

    if (ft->script != NULL)
        match = (it_arg_is(c, 0, "EVALSHA") && it_arg_is(c, 1, ft->script->sha1)) ||
                (it_arg_is(c, 0, "EVAL") && c->n > 1 && c->v[1] == ft->script->body);
    else
        match = it_arg_is(c, 0, ft->cmd);
    if (!match)
        return 0;
    ft->matched++;
    if (ft->skip > 0) {
        ft->skip--;
        return 0;
    }
    ft->lost++;
    return 1;
}

/* ---- Fixture ---- */

static inline int it_setup(void **state)
{
    struct it_env *e = *state;
    struct it_fx *f = exw_xcalloc(1, sizeof(*f));

    f->env = e;
    snprintf(f->prefix, sizeof(f->prefix), "%s-%d-%ld", e->name, ++e->seq, e->pid);
    f->h = it_open(e, f->prefix, "helper");
    f->rd = it_open(e, f->prefix, IT_WORKER);
    it_load_scripts(f->h);
    *state = f;
    return 0;
}

static inline int it_teardown(void **state)
{
    struct it_fx *f = *state;

    exw_redis_free(f->rd);
    exw_redis_free(f->h);
    free(f);
    return 0;
}

/* Reads EXW_TEST_REDIS_URL into @e. Returns 0, or 1 after saying why not. */
static inline int it_env_init(struct it_env *e, const char *name)
{
    const char *url = getenv("EXW_TEST_REDIS_URL");
    struct exw_errbuf eb = {{0}};

    memset(e, 0, sizeof(*e));
    e->name = name;
    e->pid = (long)getpid();
    if (url == NULL || url[0] == '\0') {
        fprintf(stderr, "EXW_TEST_REDIS_URL is not set: run through scripts/with-redis.sh\n");
        return 1;
    }
    if (exw_redis_addr_parse(url, &e->addr, &eb) != EXW_OK) {
        fprintf(stderr, "EXW_TEST_REDIS_URL: %s\n", eb.msg);
        return 1;
    }
    if (e->addr.host == NULL) {
        fprintf(stderr, "EXW_TEST_REDIS_URL: a TCP address is needed\n");
        exw_redis_addr_cleanup(&e->addr);
        return 1;
    }
    /* A write to a connection the server closed must fail, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

#define IT_TEST(fn, env) cmocka_unit_test_prestate_setup_teardown(fn, it_setup, it_teardown, env)

#endif
