/* test_redis.c: the connection adapter against a real redis-server: connect,
 * commands and replies, the three kinds of error (EXW_EREPLY, EXW_EAGAIN,
 * EXW_EREDIS), the NOSCRIPT fallback and the fault seam. */
#include "itest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include "exw/clock.h"
#include "exw/lease.h"
#include "exw/queue.h"
#include "exw/result.h"
#include "exw/status.h"

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

static void expect_connect_fails(const struct exw_redis_addr *addr, exw_err want,
                                 const char *secret)
{
    struct exw_errbuf eb = {{0}};
    struct exw_redis *rd = (struct exw_redis *)&eb; /* must be reset to NULL */

    it_expect_err(exw_redis_connect(addr, "p", IT_WORKER, IT_TIMEOUT_MS, &rd, &eb), want, &eb);
    assert_null(rd);
    if (secret != NULL && strstr(eb.msg, secret) != NULL)
        fail_msg("the error shows the password: %s", eb.msg);
}

static void test_connect_unreachable(void **state)
{
    struct it_fx *f = *state;
    struct exw_redis_addr addr = f->env->addr;

    addr.port = closed_port();
    expect_connect_fails(&addr, EXW_EREDIS, NULL);
    addr = f->env->addr;
    addr.host = "no-such-host.invalid";
    expect_connect_fails(&addr, EXW_EREDIS, NULL);
}

/* A wrong password is Redis's own refusal: a retry would not change it. */
static void test_connect_wrong_password(void **state)
{
    struct it_fx *f = *state;
    struct exw_redis_addr addr = f->env->addr;
    struct exw_errbuf eb = {{0}};
    struct exw_redis *rd = NULL;
    char right[64], wrong[64];

    snprintf(right, sizeof(right), "right-pw-%ld", f->env->pid);
    snprintf(wrong, sizeof(wrong), "wrong-pw-%ld", f->env->pid);
    it_ok(f->h, "CONFIG", "SET", "requirepass", right, NULL);

    addr.password = wrong;
    expect_connect_fails(&addr, EXW_EREPLY, wrong);
    addr.user = "default";
    expect_connect_fails(&addr, EXW_EREPLY, wrong);

    addr.password = right;
    it_expect_ok(exw_redis_connect(&addr, f->prefix, IT_WORKER, IT_TIMEOUT_MS, &rd, &eb), &eb);
    it_expect_ok(it_try(rd, &eb, "PING", NULL), &eb);
    exw_redis_free(rd);
    it_ok(f->h, "CONFIG", "SET", "requirepass", "", NULL);
}

static int teardown_auth(void **state)
{
    struct it_fx *f = *state;
    struct exw_errbuf eb;

    /* The password test may have failed half-way. */
    (void)it_try(f->h, &eb, "CONFIG", "SET", "requirepass", "", NULL);
    (void)it_try(f->h, &eb, "ACL", "DELUSER", "limited", NULL);
    return it_teardown(state);
}

static void test_connect_selects_db(void **state)
{
    struct it_fx *f = *state;
    struct it_name k = it_key(f, "where");
    struct exw_redis_addr addr = f->env->addr;
    struct exw_errbuf eb = {{0}};
    struct exw_redis *rd = NULL;
    struct exw_cmd c;
    long long n = -1;

    addr.db = 3;
    it_expect_ok(exw_redis_connect(&addr, f->prefix, IT_WORKER, IT_TIMEOUT_MS, &rd, &eb), &eb);
    exw_cmd_init(&c);
    exw_cmd_add(&c, "RPUSH");
    exw_cmd_add(&c, k.s);
    exw_cmd_add(&c, "in-db3");
    it_expect_ok(exw_redis_run_int(rd, &c, "RPUSH", &n, &eb), &eb);
    assert_int_equal(n, 1);
    assert_int_equal(it_exists(f, &k), 0);
    it_ok(f->h, "SELECT", "3", NULL);
    assert_int_equal(it_int(f->h, "LLEN", k.s, NULL), 1);
    it_ok(f->h, "DEL", k.s, NULL);
    it_ok(f->h, "SELECT", "0", NULL);
    exw_redis_free(rd);
}

/* An ACL user: connects with user and password; a command it may not run is
 * EXW_EREPLY (NOPERM) and the connection stays usable. */
static void test_acl_user(void **state)
{
    struct it_fx *f = *state;
    struct exw_redis_addr addr = f->env->addr;
    struct exw_errbuf eb;
    struct exw_redis *rd = NULL;

    it_ok(f->h, "ACL", "SETUSER", "limited", "on", ">pw-limited", "~*", "+@all", "-flushall", NULL);
    addr.user = "limited";
    addr.password = "pw-limited";
    it_expect_ok(exw_redis_connect(&addr, f->prefix, IT_WORKER, IT_TIMEOUT_MS, &rd, &eb), &eb);
    it_expect_err(it_try(rd, &eb, "FLUSHALL", NULL), EXW_EREPLY, &eb);
    assert_non_null(strstr(eb.msg, "NOPERM"));
    assert_false(exw_redis_broken(rd));
    it_expect_ok(it_try(rd, &eb, "PING", NULL), &eb);
    exw_redis_free(rd);
    it_ok(f->h, "ACL", "DELUSER", "limited", NULL);
}

/* ---- commands and replies ---- */

static void test_cmd_args(void **state)
{
    struct it_fx *f = *state;
    static const char bin[] = "a\0b\xff";
    struct it_name k = it_key(f, "bin"), l = it_key(f, "many");
    struct exw_errbuf eb = {{0}};
    struct exw_reply *r;
    struct exw_cmd c;
    long long n = -1;
    int i;

    /* Bytes with NUL in them go as they are. */
    exw_cmd_init(&c);
    exw_cmd_add(&c, "SET");
    exw_cmd_add(&c, k.s);
    exw_cmd_add_len(&c, bin, sizeof(bin) - 1);
    it_expect_ok(exw_redis_run_simple(f->rd, &c, "SET", &eb), &eb);
    assert_int_equal(c.n, 0); /* emptied by the run */
    it_expect_bytes(f, &k, bin, sizeof(bin) - 1);

    /* More arguments and formatted strings than the first allocation holds. */
    exw_cmd_init(&c);
    exw_cmd_add(&c, "RPUSH");
    exw_cmd_add(&c, l.s);
    for (i = 0; i < 40; i++)
        exw_cmd_addf(&c, "e%d", i);
    it_expect_ok(exw_redis_run_int(f->rd, &c, "RPUSH", &n, &eb), &eb);
    assert_int_equal(n, 40);
    r = it_cmd(f->h, "LINDEX", l.s, "39", NULL);
    assert_true(exw_reply_is(r, "e39"));
    exw_reply_free(r);

    /* A command never sent is freed by its cleanup alone. */
    exw_cmd_init(&c);
    exw_cmd_addf(&c, "%s", "never sent");
    exw_cmd_cleanup(&c);
    exw_cmd_cleanup(&c);
}

/* Has Redis close f->rd's connection (from the helper connection). */
static void kill_own_connection(struct it_fx *f)
{
    struct exw_errbuf eb = {{0}};
    struct exw_cmd c;
    long long id = -1;
    char ids[32];

    exw_cmd_init(&c);
    exw_cmd_add(&c, "CLIENT");
    exw_cmd_add(&c, "ID");
    it_expect_ok(exw_redis_run_int(f->rd, &c, "CLIENT ID", &id, &eb), &eb);
    snprintf(ids, sizeof(ids), "%lld", id);
    assert_int_equal(it_int(f->h, "CLIENT", "KILL", "ID", ids, NULL), 1);
}

/* A command of 1 MiB or more is written from the caller's buffers, not
 * through hiredis's (redis.c, command_argv): every byte arrives, the reply
 * is read, and the connection stays in step. */
static void test_large_commands(void **state)
{
    struct it_fx *f = *state;
    struct it_name k = it_key(f, "large"), l = it_key(f, "large-list");
    struct exw_errbuf eb = {{0}};
    size_t big = ((size_t)3 << 20) + 7, i, len = 0;
    char *v = malloc(big);
    const char *got;
    struct exw_reply *r;
    struct exw_cmd c;
    long long n = -1;

    assert_non_null(v);
    for (i = 0; i < big; i++)
        v[i] = (char)(i * 131 + (i >> 13)); /* every byte value, \r\n and NUL among them */
    exw_cmd_init(&c);
    exw_cmd_add(&c, "SET");
    exw_cmd_add(&c, k.s);
    exw_cmd_add_len(&c, v, big);
    it_expect_ok(exw_redis_run_simple(f->rd, &c, "SET", &eb), &eb);
    it_expect_bytes(f, &k, v, big);

    /* Two large arguments, then many small ones that gather in the buffer. */
    exw_cmd_init(&c);
    exw_cmd_add(&c, "RPUSH");
    exw_cmd_add(&c, l.s);
    exw_cmd_add_len(&c, v, big);
    exw_cmd_add_len(&c, v + 1, big - 1);
    for (i = 0; i < 2000; i++)
        exw_cmd_addf(&c, "e%zu", i);
    it_expect_ok(exw_redis_run_int(f->rd, &c, "RPUSH", &n, &eb), &eb);
    assert_int_equal(n, 2002);
    r = it_cmd(f->h, "LINDEX", l.s, "1", NULL);
    got = exw_reply_string(r, &len);
    assert_int_equal(len, big - 1);
    assert_memory_equal(got, v + 1, big - 1);
    exw_reply_free(r);
    r = it_cmd(f->h, "LINDEX", l.s, "-1", NULL);
    assert_true(exw_reply_is(r, "e1999"));
    exw_reply_free(r);

    /* A script's large argument. */
    exw_cmd_init(&c);
    exw_cmd_add(&c, "EVAL");
    exw_cmd_add(&c, "return #ARGV[1]");
    exw_cmd_add(&c, "0");
    exw_cmd_add_len(&c, v, big);
    it_expect_ok(exw_redis_run_int(f->rd, &c, "EVAL", &n, &eb), &eb);
    assert_int_equal(n, (long long)big);
    it_expect_ok(it_try(f->rd, &eb, "PING", NULL), &eb);
    assert_false(exw_redis_broken(f->rd));

    /* Written to a connection Redis has closed: an error, as a read gives. */
    kill_own_connection(f);
    exw_cmd_init(&c);
    exw_cmd_add(&c, "SET");
    exw_cmd_add(&c, k.s);
    exw_cmd_add_len(&c, v, big);
    it_expect_err(exw_redis_run_simple(f->rd, &c, "SET", &eb), EXW_EREDIS, &eb);
    assert_true(exw_redis_broken(f->rd));
    free(v);
}

static void test_replies(void **state)
{
    struct it_fx *f = *state;
    struct it_name k = it_key(f, "k"), l = it_key(f, "l");
    struct exw_errbuf eb = {{0}};
    struct exw_reply *r;
    struct exw_cmd c;
    size_t len = 99;
    long long n = -1;

    r = it_cmd(f->rd, "GET", k.s, NULL);
    assert_int_equal(exw_reply_type(r), EXW_REPLY_NIL);
    assert_null(exw_reply_string(r, &len));
    assert_int_equal(len, 0);
    exw_reply_free(r);

    r = it_cmd(f->rd, "SET", k.s, "v", NULL); /* a status line */
    assert_int_equal(exw_reply_type(r), EXW_REPLY_STRING);
    assert_true(exw_reply_is(r, "OK"));
    assert_false(exw_reply_is(r, "OKAY"));
    assert_false(exw_reply_is(r, "O"));
    exw_reply_free(r);

    r = it_cmd(f->rd, "RPUSH", l.s, "x", "", NULL);
    assert_int_equal(exw_reply_type(r), EXW_REPLY_INTEGER);
    assert_int_equal(exw_reply_integer(r), 2);
    assert_int_equal(exw_reply_count(r), 0);
    assert_null(exw_reply_string(r, NULL));
    exw_reply_free(r);

    r = it_cmd(f->rd, "LRANGE", l.s, "0", "-1", NULL);
    assert_int_equal(exw_reply_type(r), EXW_REPLY_ARRAY);
    assert_int_equal(exw_reply_count(r), 2);
    assert_true(exw_reply_is(exw_reply_at(r, 0), "x"));
    assert_true(exw_reply_is(exw_reply_at(r, 1), ""));
    assert_int_equal(exw_reply_integer(r), 0);
    exw_reply_free(r);

    /* NULL is a nil reply to every reader; freeing it is a no-op. */
    assert_int_equal(exw_reply_type(NULL), EXW_REPLY_NIL);
    assert_int_equal(exw_reply_count(NULL), 0);
    exw_reply_free(NULL);

    /* run_int of a reply that is not an integer gives 0. */
    exw_cmd_init(&c);
    exw_cmd_add(&c, "GET");
    exw_cmd_add(&c, k.s);
    it_expect_ok(exw_redis_run_int(f->rd, &c, "GET", &n, &eb), &eb);
    assert_int_equal(n, 0);
    assert_string_equal(exw_redis_prefix(f->rd), f->prefix);
    assert_string_equal(exw_redis_worker(f->rd), IT_WORKER);
    assert_int_equal(exw_redis_timeout(f->rd), IT_TIMEOUT_MS);
}

static void test_config_get(void **state)
{
    struct it_fx *f = *state;
    struct exw_errbuf eb = {{0}};
    char want[64] = "", buf[64] = "junk";
    struct exw_reply *r = it_cmd(f->h, "CONFIG", "GET", "maxmemory-policy", NULL);

    assert_int_equal(exw_reply_count(r), 2);
    snprintf(want, sizeof(want), "%s", exw_reply_string(exw_reply_at(r, 1), NULL));
    exw_reply_free(r);
    it_expect_ok(exw_redis_config_get(f->rd, "maxmemory-policy", buf, sizeof(buf), &eb), &eb);
    assert_string_equal(buf, want);
    it_expect_ok(exw_redis_config_get(f->rd, "no-such-setting", buf, sizeof(buf), &eb), &eb);
    assert_string_equal(buf, "");
}

/* ---- error kinds ---- */

static void test_wrongtype_is_ereply(void **state)
{
    struct it_fx *f = *state;
    struct it_name k = it_key(f, "str");
    struct exw_errbuf eb;

    it_ok(f->h, "SET", k.s, "x", NULL);
    it_expect_err(it_try(f->rd, &eb, "LLEN", k.s, NULL), EXW_EREPLY, &eb);
    assert_non_null(strstr(eb.msg, "try: WRONGTYPE"));
    assert_false(exw_redis_broken(f->rd));
    /* A script's own refusal is permanent too. */
    it_expect_err(it_try(f->rd, &eb, "EVAL", "return redis.error_reply('NOPE no')", "0", NULL),
                  EXW_EREPLY, &eb);
    assert_non_null(strstr(eb.msg, "NOPE no"));
    it_expect_ok(it_try(f->rd, &eb, "GET", k.s, NULL), &eb);
}

struct busy {
    const struct it_env *env;
    exw_err rc;
    struct exw_errbuf eb;
};

static void *busy_main(void *arg)
{
    struct busy *b = arg;
    struct exw_redis *rd = NULL;

    b->rc = exw_redis_connect(&b->env->addr, "busy", "busy", 20000, &rd, &b->eb);
    if (b->rc == EXW_OK)
        b->rc = it_try(rd, &b->eb, "EVAL", "while true do end", "0", NULL);
    exw_redis_free(rd);
    return NULL;
}

/* A script that runs past busy-reply-threshold on another connection makes
 * Redis answer BUSY: a transient error, the connection stays usable. */
static void test_busy_is_eagain(void **state)
{
    struct it_fx *f = *state;
    struct it_name k = it_key(f, "k");
    struct busy b = {.env = f->env, .rc = EXW_ERR_COUNT};
    struct exw_errbuf eb = {{0}};
    char old[32];
    int64_t until = exw_mono_ms() + 10000;
    pthread_t th;
    exw_err rc;

    it_expect_ok(exw_redis_config_get(f->h, "busy-reply-threshold", old, sizeof(old), &eb), &eb);
    assert_true(old[0] != '\0');
    it_ok(f->h, "CONFIG", "SET", "busy-reply-threshold", "20", NULL);
    assert_int_equal(pthread_create(&th, NULL, busy_main, &b), 0);
    /* Until the script runs, GET answers; then it waits for the threshold and
     * is refused. */
    while ((rc = it_try(f->rd, &eb, "GET", k.s, NULL)) == EXW_OK && exw_mono_ms() < until)
        exw_sleep_ms(5);
    it_expect_err(rc, EXW_EAGAIN, &eb);
    assert_non_null(strstr(eb.msg, "BUSY"));
    assert_false(exw_redis_broken(f->rd));
    it_ok(f->h, "SCRIPT", "KILL", NULL);
    assert_int_equal(pthread_join(th, NULL), 0);
    it_expect_err(b.rc, EXW_EREPLY, &b.eb);
    it_expect_ok(it_try(f->rd, &eb, "GET", k.s, NULL), &eb);
    it_ok(f->h, "CONFIG", "SET", "busy-reply-threshold", old, NULL);
}

/* A replica's READONLY is transient and breaks the connection (the next one
 * finds the primary); MASTERDOWN is transient and keeps it. */
static void test_replica_errors(void **state)
{
    struct it_fx *f = *state;
    struct it_name k = it_key(f, "k");
    struct exw_errbuf eb;
    char port[16];

    snprintf(port, sizeof(port), "%d", closed_port());
    it_ok(f->h, "REPLICAOF", "127.0.0.1", port, NULL);
    it_expect_err(it_try(f->rd, &eb, "SET", k.s, "v", NULL), EXW_EAGAIN, &eb);
    assert_non_null(strstr(eb.msg, "READONLY"));
    assert_true(exw_redis_broken(f->rd));
    it_expect_err(it_try(f->rd, &eb, "GET", k.s, NULL), EXW_EREDIS, &eb);

    it_reconnect(f);
    it_ok(f->h, "CONFIG", "SET", "replica-serve-stale-data", "no", NULL);
    it_expect_err(it_try(f->rd, &eb, "GET", k.s, NULL), EXW_EAGAIN, &eb);
    assert_non_null(strstr(eb.msg, "MASTERDOWN"));
    assert_false(exw_redis_broken(f->rd));
    it_ok(f->h, "REPLICAOF", "NO", "ONE", NULL);
    it_ok(f->h, "CONFIG", "SET", "replica-serve-stale-data", "yes", NULL);
    it_expect_ok(it_try(f->rd, &eb, "SET", k.s, "v", NULL), &eb);
}

static int teardown_replica(void **state)
{
    struct it_fx *f = *state;
    struct exw_errbuf eb;

    (void)it_try(f->h, &eb, "REPLICAOF", "NO", "ONE", NULL);
    (void)it_try(f->h, &eb, "CONFIG", "SET", "replica-serve-stale-data", "yes", NULL);
    return it_teardown(state);
}

static void test_dropped_connection(void **state)
{
    struct it_fx *f = *state;
    struct exw_errbuf eb = {{0}};

    kill_own_connection(f);

    it_expect_err(it_try(f->rd, &eb, "PING", NULL), EXW_EREDIS, &eb);
    assert_true(exw_redis_broken(f->rd));
    /* It stays broken; no call tries the dead socket again. */
    it_expect_err(it_try(f->rd, &eb, "PING", NULL), EXW_EREDIS, &eb);
    assert_non_null(strstr(eb.msg, "connection broken"));
    assert_true(exw_redis_broken(f->rd));
}

/* A reply that does not come within the command timeout breaks the
 * connection. */
static void test_timeout_breaks(void **state)
{
    struct it_fx *f = *state;
    struct it_name k = it_key(f, "never");
    struct exw_errbuf eb;

    exw_redis_set_timeout(f->rd, 100);
    it_expect_err(it_try(f->rd, &eb, "BLPOP", k.s, "5", NULL), EXW_EREDIS, &eb);
    assert_true(exw_redis_broken(f->rd));
}

/* ---- scripts ---- */

/* Records the name of every command sent. */
struct seen_cmds {
    char v[8][16];
    int n;
};

static int record_fn(const struct exw_cmd *c, void *ud)
{
    struct seen_cmds *s = ud;

    if (s->n < 8)
        snprintf(s->v[s->n], sizeof(s->v[0]), "%.*s", (int)c->len[0], c->v[0]);
    s->n++;
    return 0;
}

/* The calls=N of cmdstat_@name in INFO commandstats (0 when absent). */
static long long calls_of(struct it_fx *f, const char *name)
{
    char *info = it_str(f->h, "INFO", "commandstats", NULL), want[64];
    const char *at;
    long long n = 0;

    snprintf(want, sizeof(want), "cmdstat_%s:calls=", name);
    at = strstr(info, want);
    if (at != NULL)
        n = strtoll(at + strlen(want), NULL, 10);
    free(info);
    return n;
}

/* Moves @f's processing list to its queue with the release script. */
static exw_err release(struct it_fx *f, long long *moved, struct exw_errbuf *eb)
{
    return exw_queue_release_own(f->rd, moved, eb);
}

static void test_noscript_fallback(void **state)
{
    struct it_fx *f = *state;
    struct it_name p = it_key(f, "processing:%s", IT_WORKER), q = it_key(f, "queue");
    struct seen_cmds seen = {.n = 0};
    struct exw_errbuf eb = {{0}};
    long long moved = -1, evalsha, eval;

    it_ok(f->h, "RPUSH", p.s, "a", NULL);
    it_ok(f->h, "SCRIPT", "FLUSH", NULL);
    assert_int_equal(exw_script_by_sha1(exw_lua_release.sha1), &exw_lua_release);
    exw_redis_set_fault(f->rd, record_fn, &seen);

    it_expect_ok(release(f, &moved, &eb), &eb);
    assert_int_equal(moved, 1);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.v[0], "EVALSHA");
    assert_string_equal(seen.v[1], "EVAL");
    it_expect_list(f, &q, (const char *const[]){"a"}, 1);
    /* The EVAL loaded it: Redis knows the embedded SHA-1 now. */
    {
        struct exw_reply *r = it_cmd(f->h, "SCRIPT", "EXISTS", exw_lua_release.sha1, NULL);

        assert_int_equal(exw_reply_count(r), 1);
        assert_int_equal(exw_reply_integer(exw_reply_at(r, 0)), 1);
        exw_reply_free(r);
    }

    seen.n = 0;
    evalsha = calls_of(f, "evalsha");
    eval = calls_of(f, "eval");
    it_expect_ok(release(f, &moved, &eb), &eb);
    assert_int_equal(moved, 0);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.v[0], "EVALSHA");
    assert_int_equal(calls_of(f, "evalsha"), evalsha + 1);
    assert_int_equal(calls_of(f, "eval"), eval);
    exw_redis_set_fault(f->rd, NULL, NULL);
}

/* ---- the fault seam ---- */

static void test_fault_seam(void **state)
{
    struct it_fx *f = *state;
    struct it_name n = it_key(f, "n"), p = it_key(f, "processing:%s", IT_WORKER);
    struct it_name q = it_key(f, "queue");
    struct it_fault ft = {.cmd = "INCR", .skip = 1};
    struct exw_errbuf eb;
    long long moved = -1;

    exw_redis_set_fault(f->rd, it_fault_fn, &ft);
    it_expect_ok(it_try(f->rd, &eb, "INCR", n.s, NULL), &eb); /* skipped */
    it_expect_ok(it_try(f->rd, &eb, "GET", n.s, NULL), &eb);
    it_expect_err(it_try(f->rd, &eb, "INCR", n.s, NULL), EXW_EREDIS, &eb);
    assert_int_equal(ft.lost, 1);
    assert_true(exw_redis_broken(f->rd));
    /* It ran on Redis; the broken connection sends nothing more. */
    it_expect_bytes(f, &n, "2", 1);
    it_expect_err(it_try(f->rd, &eb, "INCR", n.s, NULL), EXW_EREDIS, &eb);
    it_expect_bytes(f, &n, "2", 1);

    /* A script whose reply is lost has run whole. */
    it_reconnect(f);
    ft = (struct it_fault){.script = &exw_lua_release};
    exw_redis_set_fault(f->rd, it_fault_fn, &ft);
    it_ok(f->h, "RPUSH", p.s, "a", "b", NULL);
    it_expect_err(release(f, &moved, &eb), EXW_EREDIS, &eb);
    assert_true(exw_redis_broken(f->rd));
    assert_int_equal(it_exists(f, &p), 0);
    it_expect_list(f, &q, (const char *const[]){"a", "b"}, 2);

    /* Without the seam, the plain transport again. */
    it_reconnect(f);
    exw_redis_set_fault(f->rd, NULL, NULL);
    it_expect_ok(it_try(f->rd, &eb, "INCR", n.s, NULL), &eb);
}

/* ---- every module on a dropped connection ---- */

enum op { OP_ROWS_LEN, OP_TAKE, OP_START, OP_PROGRESS, OP_END, OP_BEAT, OP_CHUNK, OP_COUNT };

static exw_err run_op(struct exw_redis *rd, enum op op, struct exw_errbuf *eb)
{
    struct exw_beat b = {.host = "h", .pid = 1, .job = "", .jobs = "", .ttl_ms = 1000};
    struct exw_status_end e = {
        .id = "j1", .write_status = 1, .doc = "d", .doc_len = 1, .ttl_ms = 1000};
    const char *const fields[] = {"progress", "1"};
    enum exw_start how;
    enum exw_end end;
    long long n, bytes;
    long attempts;
    char *doc = NULL;
    size_t len;
    int owned, cancel;
    exw_err rc = EXW_OK;

    switch (op) {
    case OP_ROWS_LEN:
        rc = exw_queue_rows_len(rd, "x", 0, 0, &n, &bytes, eb);
        rc = rc == EXW_EREPLY ? EXW_OK : rc; /* "x" does not exist */
        break;
    case OP_TAKE:
        rc = exw_queue_take(rd, 0.05, &doc, &len, eb);
        free(doc);
        break;
    case OP_START:
        rc = exw_status_start(rd, "j1", "d", 1, 3, 0, NULL, &how, &attempts, eb);
        break;
    case OP_PROGRESS:
        rc = exw_status_progress(rd, "j1", 1, fields, 2, NULL, &owned, &cancel, eb);
        break;
    case OP_END:
        rc = exw_status_end(rd, &e, &end, eb);
        break;
    case OP_BEAT:
        rc = exw_lease_beat(rd, &b, eb);
        break;
    case OP_CHUNK:
        rc = exw_result_chunk(rd, "j1", 1, "x", 1, 1000, eb);
        break;
    case OP_COUNT:
        break;
    }
    return rc;
}

static void test_broken_every_module(void **state)
{
    struct it_fx *f = *state;
    struct exw_errbuf eb = {{0}};
    struct exw_cmd c;
    long long id;
    char ids[32];
    int op;

    for (op = 0; op < OP_COUNT; op++) {
        struct exw_redis *rd = it_open(f->env, f->prefix, "w2");

        it_expect_ok(run_op(rd, (enum op)op, &eb), &eb);
        exw_cmd_init(&c);
        exw_cmd_add(&c, "CLIENT");
        exw_cmd_add(&c, "ID");
        it_expect_ok(exw_redis_run_int(rd, &c, "CLIENT ID", &id, &eb), &eb);
        snprintf(ids, sizeof(ids), "%lld", id);
        assert_int_equal(it_int(f->h, "CLIENT", "KILL", "ID", ids, NULL), 1);

        memset(&eb, 0, sizeof(eb));
        if (run_op(rd, (enum op)op, &eb) != EXW_EREDIS)
            fail_msg("op %d: not EXW_EREDIS after the connection was killed", op);
        assert_true(eb.msg[0] != '\0');
        assert_true(exw_redis_broken(rd));
        memset(&eb, 0, sizeof(eb));
        assert_int_equal(run_op(rd, OP_BEAT, &eb), EXW_EREDIS);
        exw_redis_free(rd);
    }
}

int main(void)
{
    struct it_env e;
    int rc;

    if (it_env_init(&e, "redis") != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        IT_TEST(test_connect_unreachable, &e),
        cmocka_unit_test_prestate_setup_teardown(test_connect_wrong_password, it_setup,
                                                 teardown_auth, &e),
        IT_TEST(test_connect_selects_db, &e),
        cmocka_unit_test_prestate_setup_teardown(test_acl_user, it_setup, teardown_auth, &e),
        IT_TEST(test_cmd_args, &e),
        IT_TEST(test_large_commands, &e),
        IT_TEST(test_replies, &e),
        IT_TEST(test_config_get, &e),
        IT_TEST(test_wrongtype_is_ereply, &e),
        IT_TEST(test_busy_is_eagain, &e),
        cmocka_unit_test_prestate_setup_teardown(test_replica_errors, it_setup, teardown_replica,
                                                 &e),
        IT_TEST(test_dropped_connection, &e),
        IT_TEST(test_timeout_breaks, &e),
        IT_TEST(test_noscript_fallback, &e),
        IT_TEST(test_fault_seam, &e),
        IT_TEST(test_broken_every_module, &e),
    };

    rc = cmocka_run_group_tests(tests, NULL, NULL);
    exw_redis_addr_cleanup(&e.addr);
    return rc;
}
