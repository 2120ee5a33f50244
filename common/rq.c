/* rq.c: the Redis side of a job; the only user of hiredis.
 *
 * Commands go through redisCommandArgv with explicit lengths, never format
 * strings built at run time. Writes that must happen together (a job's end)
 * are one Lua script, which also checks that the job is still this worker's:
 * a worker that lost its job to recovery can never overwrite the outcome. */
#include "exw/rq.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "exw/clock.h"

struct exw_rq {
    redisContext *c;
    char *prefix;
    char *worker_id;
    char *processing; /* P:processing:<worker> */
    long timeout_ms;
    int broken;
};

/* An argument vector for redisCommandArgv; owns the strings it formats. */
struct args {
    const char *v[64];
    size_t len[64];
    char *owned[64];
    int n;
    int nowned;
    const char **bigv; /* used instead of v when more are needed */
    size_t *biglen;
    int cap;
};

static void args_init(struct args *a)
{
    a->n = 0;
    a->nowned = 0;
    a->bigv = NULL;
    a->biglen = NULL;
    a->cap = 64;
}

static void args_add_len(struct args *a, const char *s, size_t len)
{
    if (a->n == a->cap) {
        int cap = a->cap * 2;

        if (a->bigv == NULL) {
            a->bigv = exw_xmalloc(sizeof(*a->bigv) * (size_t)cap);
            a->biglen = exw_xmalloc(sizeof(*a->biglen) * (size_t)cap);
            memcpy(a->bigv, a->v, sizeof(a->v));
            memcpy(a->biglen, a->len, sizeof(a->len));
        } else {
            a->bigv = exw_xrealloc(a->bigv, sizeof(*a->bigv) * (size_t)cap);
            a->biglen = exw_xrealloc(a->biglen, sizeof(*a->biglen) * (size_t)cap);
        }
        a->cap = cap;
    }
    if (a->bigv != NULL) {
        a->bigv[a->n] = s;
        a->biglen[a->n] = len;
    } else {
        a->v[a->n] = s;
        a->len[a->n] = len;
    }
    a->n++;
}

static void args_add(struct args *a, const char *s) { args_add_len(a, s, strlen(s)); }

/* Adds a formatted string the vector owns (at most 64 of them). */
static void args_addf(struct args *a, const char *fmt, ...) EXW_PRINTF(2, 3);
static void args_addf(struct args *a, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;

    EXW_ASSERT(a->nowned < 64);
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    s = exw_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    a->owned[a->nowned++] = s;
    args_add_len(a, s, (size_t)n);
}

static void args_cleanup(struct args *a)
{
    int i;

    for (i = 0; i < a->nowned; i++)
        free(a->owned[i]);
    free(a->bigv);
    free(a->biglen);
    args_init(a);
}

/* Maps a NULL reply or an error reply to EXW_EREDIS; a NULL reply breaks the
 * connection. */
static exw_err check_reply(struct exw_rq *rq, redisReply *r, const char *what,
                           struct exw_errbuf *eb)
{
    if (r == NULL) {
        rq->broken = 1;
        return exw_errbuf_set(eb, EXW_EREDIS, "%s: %s", what,
                              rq->c->errstr[0] ? rq->c->errstr : "connection lost");
    }
    if (r->type == REDIS_REPLY_ERROR)
        return exw_errbuf_set(eb, EXW_EREDIS, "%s: %.*s", what, (int)r->len, r->str);
    return EXW_OK;
}

/* Runs one command; on EXW_OK *@out is the reply (caller frees with
 * freeReplyObject). */
static exw_err run(struct exw_rq *rq, struct args *a, const char *what, redisReply **out,
                   struct exw_errbuf *eb)
{
    redisReply *r;
    exw_err rc;

    *out = NULL;
    if (rq->broken)
        return exw_errbuf_set(eb, EXW_EREDIS, "%s: connection broken", what);
    r = redisCommandArgv(rq->c, a->n, a->bigv ? a->bigv : a->v, a->bigv ? a->biglen : a->len);
    rc = check_reply(rq, r, what, eb);
    if (rc != EXW_OK) {
        if (r != NULL)
            freeReplyObject(r);
        return rc;
    }
    *out = r;
    return EXW_OK;
}

/* Runs a command (a script, mostly) whose reply is an integer, into *@out (0
 * for any other reply), and empties @a. */
static exw_err run_int(struct exw_rq *rq, struct args *a, const char *what, long long *out,
                       struct exw_errbuf *eb)
{
    redisReply *r;
    exw_err rc = run(rq, a, what, &r, eb);

    args_cleanup(a);
    *out = 0;
    if (rc == EXW_OK) {
        if (r->type == REDIS_REPLY_INTEGER)
            *out = r->integer;
        freeReplyObject(r);
    }
    return rc;
}

/* Runs a command whose reply only matters for errors. */
static exw_err run_simple(struct exw_rq *rq, struct args *a, const char *what,
                          struct exw_errbuf *eb)
{
    redisReply *r;
    exw_err rc = run(rq, a, what, &r, eb);

    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

static char *key_of(const struct exw_rq *rq, const char *kind, const char *id)
{
    size_t len = strlen(rq->prefix) + strlen(kind) + strlen(id) + 3;
    char *k = exw_xmalloc(len);

    snprintf(k, len, "%s:%s%s%s", rq->prefix, kind, id[0] ? ":" : "", id);
    return k;
}

static void set_timeout(struct exw_rq *rq, long ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

    redisSetTimeout(rq->c, tv);
}

exw_err exw_rq_connect(const struct exw_redis_addr *addr, const char *prefix, const char *worker_id,
                       long timeout_ms, struct exw_rq **out, struct exw_errbuf *eb)
{
    struct exw_rq *rq = exw_xcalloc(1, sizeof(*rq));
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    struct args a;
    exw_err rc = EXW_OK;

    args_init(&a);
    rq->prefix = exw_xstrdup(prefix);
    rq->worker_id = exw_xstrdup(worker_id);
    rq->processing = key_of(rq, "processing", worker_id);
    rq->timeout_ms = timeout_ms;
    if (addr->path != NULL)
        rq->c = redisConnectUnixWithTimeout(addr->path, tv);
    else
        rq->c = redisConnectWithTimeout(addr->host, addr->port, tv);
    if (rq->c == NULL) {
        rc = exw_errbuf_set(eb, EXW_ENOMEM, "cannot allocate a Redis connection");
        goto out;
    }
    if (rq->c->err) {
        rc = exw_errbuf_set(eb, EXW_EREDIS, "cannot connect to Redis at %s:%d: %s",
                            addr->path ? addr->path : addr->host, addr->path ? 0 : addr->port,
                            rq->c->errstr);
        goto out;
    }
    set_timeout(rq, timeout_ms);
    if (addr->password != NULL) {
        args_add(&a, "AUTH");
        if (addr->user != NULL)
            args_add(&a, addr->user);
        args_add(&a, addr->password);
        /* The reply text never contains the password; the context names only the
         * user. */
        rc = run_simple(rq, &a, "AUTH", eb);
        args_cleanup(&a);
        if (rc != EXW_OK)
            goto out;
    }
    if (addr->db != 0) {
        args_add(&a, "SELECT");
        args_addf(&a, "%d", addr->db);
        rc = run_simple(rq, &a, "SELECT", eb);
        args_cleanup(&a);
    }
out:
    if (rc != EXW_OK) {
        exw_rq_free(rq);
        rq = NULL;
    }
    *out = rq;
    return rc;
}

void exw_rq_free(struct exw_rq *rq)
{
    if (rq == NULL)
        return;
    if (rq->c != NULL)
        redisFree(rq->c);
    free(rq->prefix);
    free(rq->worker_id);
    free(rq->processing);
    free(rq);
}

int exw_rq_broken(const struct exw_rq *rq) { return rq->broken; }

exw_err exw_rq_config_get(struct exw_rq *rq, const char *name, char *out, size_t outsz,
                          struct exw_errbuf *eb)
{
    struct args a;
    redisReply *r;
    exw_err rc;

    out[0] = '\0';
    args_init(&a);
    args_add(&a, "CONFIG");
    args_add(&a, "GET");
    args_add(&a, name);
    rc = run(rq, &a, "CONFIG GET", &r, eb);
    args_cleanup(&a);
    if (rc != EXW_OK)
        return rc;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING)
        snprintf(out, outsz, "%.*s", (int)r->element[1]->len, r->element[1]->str);
    freeReplyObject(r);
    return EXW_OK;
}

exw_err exw_rq_take(struct exw_rq *rq, double timeout_s, char **doc, size_t *len,
                    struct exw_errbuf *eb)
{
    char *queue = key_of(rq, "queue", "");
    struct args a;
    redisReply *r;
    exw_err rc;

    *doc = NULL;
    *len = 0;
    args_init(&a);
    args_add(&a, "BLMOVE");
    args_add(&a, queue);
    args_add(&a, rq->processing);
    args_add(&a, "RIGHT");
    args_add(&a, "LEFT");
    args_addf(&a, "%.3f", timeout_s);
    /* The socket must outwait the blocking command. */
    set_timeout(rq, (long)(timeout_s * 1000) + rq->timeout_ms);
    rc = run(rq, &a, "BLMOVE", &r, eb);
    if (!rq->broken)
        set_timeout(rq, rq->timeout_ms);
    args_cleanup(&a);
    free(queue);
    if (rc != EXW_OK)
        return rc;
    if (r->type == REDIS_REPLY_STRING) {
        *doc = exw_xstrndup(r->str, r->len);
        *len = r->len;
    }
    freeReplyObject(r);
    return EXW_OK;
}

exw_err exw_rq_precheck(struct exw_rq *rq, const char *id, struct exw_rq_precheck *out,
                        struct exw_errbuf *eb)
{
    char *status = key_of(rq, "job", id);
    struct args a;
    redisReply *r;
    exw_err rc;

    out->cancel = 0;
    out->attempts = 0;
    args_init(&a);
    args_add(&a, "HMGET");
    args_add(&a, status);
    args_add(&a, "cancel");
    args_add(&a, "attempts");
    rc = run(rq, &a, "HMGET", &r, eb);
    args_cleanup(&a);
    free(status);
    if (rc != EXW_OK)
        return rc;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        if (r->element[0]->type == REDIS_REPLY_STRING)
            out->cancel = r->element[0]->len == 1 && r->element[0]->str[0] == '1';
        if (r->element[1]->type == REDIS_REPLY_STRING)
            out->attempts = strtol(r->element[1]->str, NULL, 10);
    }
    freeReplyObject(r);
    return EXW_OK;
}

/* Reads the replies of @n pipelined commands, keeping the first error and the
 * reply of command @keep (or NULL). */
static exw_err read_pipeline(struct exw_rq *rq, int n, int keep, redisReply **kept,
                             struct exw_errbuf *eb)
{
    exw_err rc = EXW_OK;
    int i;

    if (kept != NULL)
        *kept = NULL;
    for (i = 0; i < n; i++) {
        void *reply = NULL;
        redisReply *r;

        if (redisGetReply(rq->c, &reply) != REDIS_OK) {
            rq->broken = 1;
            return exw_errbuf_set(eb, EXW_EREDIS, "pipeline: %s",
                                  rq->c->errstr[0] ? rq->c->errstr : "connection lost");
        }
        r = reply;
        if (rc == EXW_OK)
            rc = check_reply(rq, r, "pipeline", eb);
        if (i == keep && kept != NULL && r->type != REDIS_REPLY_ERROR)
            *kept = r;
        else
            freeReplyObject(r);
    }
    return rc;
}

static void append(struct exw_rq *rq, struct args *a)
{
    redisAppendCommandArgv(rq->c, a->n, a->bigv ? a->bigv : a->v, a->bigv ? a->biglen : a->len);
    args_cleanup(a);
}

exw_err exw_rq_update(struct exw_rq *rq, const char *id, const struct exw_rq_update *u, int *cancel,
                      struct exw_errbuf *eb)
{
    char *status = key_of(rq, "job", id);
    char *events = key_of(rq, "events", "");
    struct args a;
    redisReply *r = NULL;
    exw_err rc;
    int n = 0, cancel_at;
    size_t i;

    *cancel = 0;
    if (rq->broken) {
        rc = exw_errbuf_set(eb, EXW_EREDIS, "status update: connection broken");
        goto out;
    }
    args_init(&a);
    if (u->incr_attempts != 0) {
        args_add(&a, "HINCRBY");
        args_add(&a, status);
        args_add(&a, "attempts");
        args_addf(&a, "%d", u->incr_attempts);
        append(rq, &a);
        n++;
    }
    if (u->clear_outcome) {
        args_add(&a, "HDEL");
        args_add(&a, status);
        args_add(&a, "error_code");
        args_add(&a, "error");
        args_add(&a, "finished_at");
        args_add(&a, "result_key");
        args_add(&a, "result_bytes");
        args_add(&a, "result_sha256");
        append(rq, &a);
        n++;
    }
    args_add(&a, "HSETNX");
    args_add(&a, status);
    args_add(&a, "queued_at");
    args_addf(&a, "%lld", (long long)exw_wall_ms());
    append(rq, &a);
    n++;
    if (u->nfields > 0) {
        args_add(&a, "HSET");
        args_add(&a, status);
        for (i = 0; i < u->nfields; i++)
            args_add(&a, u->fields[i]);
        append(rq, &a);
        n++;
    }
    args_add(&a, "HGET");
    args_add(&a, status);
    args_add(&a, "cancel");
    append(rq, &a);
    cancel_at = n++;
    if (u->event != NULL) {
        args_add(&a, "PUBLISH");
        args_add(&a, events);
        args_add(&a, u->event);
        append(rq, &a);
        n++;
    }
    rc = read_pipeline(rq, n, cancel_at, &r, eb);
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        *cancel = r->len == 1 && r->str[0] == '1';
    if (r != NULL)
        freeReplyObject(r);
out:
    free(status);
    free(events);
    return rc;
}

/* KEYS: status. ARGV: worker, attempt, channel, event, field/value pairs...
 * Returns {owned, cancel}. */
static const char progress_lua[] =
    "local st = redis.call('HMGET', KEYS[1], 'worker', 'attempts', 'state', 'cancel')\n"
    "local cancel = st[4] == '1' and 1 or 0\n"
    "if st[1] ~= ARGV[1] or st[2] ~= ARGV[2] or st[3] ~= 'running' then return {0, cancel} end\n"
    "if #ARGV > 4 then redis.call('HSET', KEYS[1], unpack(ARGV, 5)) end\n"
    "if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end\n"
    "return {1, cancel}\n";

exw_err exw_rq_progress(struct exw_rq *rq, const char *id, long attempt, const char *const *fields,
                        size_t nfields, const char *event, int *owned, int *cancel,
                        struct exw_errbuf *eb)
{
    char *status = key_of(rq, "job", id);
    char *events = key_of(rq, "events", "");
    struct args a;
    redisReply *r;
    exw_err rc;
    size_t i;

    *owned = 0;
    *cancel = 0;
    args_init(&a);
    args_add(&a, "EVAL");
    args_add(&a, progress_lua);
    args_add(&a, "1");
    args_add(&a, status);
    args_add(&a, rq->worker_id);
    args_addf(&a, "%ld", attempt);
    args_add(&a, events);
    args_add(&a, event ? event : "");
    for (i = 0; i < nfields; i++)
        args_add(&a, fields[i]);
    rc = run(rq, &a, "progress", &r, eb);
    args_cleanup(&a);
    if (rc == EXW_OK) {
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_INTEGER &&
            r->element[1]->type == REDIS_REPLY_INTEGER) {
            *owned = r->element[0]->integer == 1;
            *cancel = r->element[1]->integer == 1;
        }
        freeReplyObject(r);
    }
    free(status);
    free(events);
    return rc;
}

exw_err exw_rq_result_chunk(struct exw_rq *rq, const char *id, int first, const void *data,
                            size_t len, long ttl_ms, struct exw_errbuf *eb)
{
    char *result = key_of(rq, "result", id);
    size_t klen = strlen(result) + strlen(rq->worker_id) + sizeof(":upload:");
    char *tmp = exw_xmalloc(klen);
    struct args a;
    exw_err rc;

    snprintf(tmp, klen, "%s:upload:%s", result, rq->worker_id);
    args_init(&a);
    args_add(&a, first ? "SET" : "APPEND");
    args_add(&a, tmp);
    args_add_len(&a, data, len);
    if (first) {
        args_add(&a, "PX");
        args_addf(&a, "%ld", ttl_ms);
    }
    rc = run_simple(rq, &a, first ? "SET result" : "APPEND result", eb);
    args_cleanup(&a);
    free(tmp);
    free(result);
    return rc;
}

/* KEYS: processing, status, stats, upload, result, rows, dead.
 * ARGV: doc, ttl_ms, channel, event, has_result, del_rows, dead_entry, has_status,
 *       nstats, stats pairs..., status pairs...
 * Returns 0 without writing anything when the job is no longer this worker's. */
static const char finish_lua[] =
    "local doc = ARGV[1]\n"
    "if not redis.call('LPOS', KEYS[1], doc) then return 0 end\n"
    /* Every check that can fail comes before the first write: Redis does not
     * undo a script's writes when it stops on an error. */
    "if ARGV[8] == '1' then\n"
    "  if ARGV[5] == '1' and redis.call('EXISTS', KEYS[4]) == 0 then\n"
    "    return redis.error_reply('" EXW_RQ_UPLOAD_MISSING "')\n"
    "  end\n"
    "  local t = redis.call('TYPE', KEYS[2])['ok']\n"
    "  if t ~= 'none' and t ~= 'hash' then\n"
    "    return redis.error_reply('the status key ' .. KEYS[2] .. ' is not a hash')\n"
    "  end\n"
    "end\n"
    "local ttl = tonumber(ARGV[2])\n"
    "local nstats = tonumber(ARGV[9])\n"
    "local i = 10\n"
    "for k = 1, nstats do\n"
    "  redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1])\n"
    "  i = i + 2\n"
    "end\n"
    "if ARGV[8] == '1' then\n"
    "  if ARGV[5] == '1' then\n"
    "    redis.call('RENAME', KEYS[4], KEYS[5])\n"
    "    redis.call('PEXPIRE', KEYS[5], ttl)\n"
    "  else\n"
    "    redis.call('DEL', KEYS[4], KEYS[5])\n"
    "    redis.call('HDEL', KEYS[2], 'result_key', 'result_bytes', 'result_sha256')\n"
    "  end\n"
    "  if i <= #ARGV then redis.call('HSET', KEYS[2], unpack(ARGV, i)) end\n"
    "  redis.call('PEXPIRE', KEYS[2], ttl)\n"
    "end\n"
    "if ARGV[6] == '1' then redis.call('DEL', KEYS[6]) end\n"
    "if ARGV[7] ~= '' then redis.call('LPUSH', KEYS[7], ARGV[7]) end\n"
    "redis.call('LREM', KEYS[1], 1, doc)\n"
    "if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end\n"
    "return 1\n";

exw_err exw_rq_finish(struct exw_rq *rq, const struct exw_rq_finish *f, int *owned,
                      struct exw_errbuf *eb)
{
    const char *id = f->id ? f->id : "";
    char *status = key_of(rq, "job", id);
    char *stats = key_of(rq, "stats", "");
    char *result = key_of(rq, "result", id);
    char *events = key_of(rq, "events", "");
    char *dead = key_of(rq, "dead", "");
    char *upload;
    size_t klen = strlen(result) + strlen(rq->worker_id) + sizeof(":upload:");
    struct args a;
    long long n = 0;
    exw_err rc;
    size_t i;

    *owned = 0;
    upload = exw_xmalloc(klen);
    snprintf(upload, klen, "%s:upload:%s", result, rq->worker_id);
    args_init(&a);
    args_add(&a, "EVAL");
    args_add(&a, finish_lua);
    args_add(&a, "7");
    args_add(&a, rq->processing);
    args_add(&a, status);
    args_add(&a, stats);
    args_add(&a, upload);
    args_add(&a, result);
    /* Without a rows list, name a key of the job's own that the script will not
     * touch, so that every key stays in the prefix's slot on a cluster. */
    args_add(&a, f->rows_key ? f->rows_key : status);
    args_add(&a, dead);
    args_add_len(&a, f->doc, f->doc_len);
    args_addf(&a, "%ld", f->ttl_ms);
    args_add(&a, events);
    args_add(&a, f->event ? f->event : "");
    args_add(&a, f->has_result ? "1" : "0");
    args_add(&a, f->rows_key ? "1" : "0");
    args_add(&a, f->dead_entry ? f->dead_entry : "");
    args_add(&a, f->id ? "1" : "0");
    args_addf(&a, "%zu", f->nstats / 2);
    for (i = 0; i < f->nstats; i++)
        args_add(&a, f->stats[i]);
    for (i = 0; i < f->nfields; i++)
        args_add(&a, f->fields[i]);
    rc = run_int(rq, &a, "finish", &n, eb);
    *owned = n == 1;
    free(status);
    free(stats);
    free(result);
    free(events);
    free(dead);
    free(upload);
    return rc;
}

/* KEYS: processing, queue, status. ARGV: doc, channel, event, updated_at. */
static const char requeue_lua[] =
    "if not redis.call('LPOS', KEYS[1], ARGV[1]) then return 0 end\n"
    "redis.call('LREM', KEYS[1], 1, ARGV[1])\n"
    "redis.call('RPUSH', KEYS[2], ARGV[1])\n"
    "if redis.call('EXISTS', KEYS[3]) == 1 then\n"
    "  redis.call('HSET', KEYS[3], 'state', 'queued', 'progress', '0', 'updated_at', ARGV[4])\n"
    "  redis.call('HINCRBY', KEYS[3], 'attempts', -1)\n"
    "end\n"
    "if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[2], ARGV[3]) end\n"
    "return 1\n";

exw_err exw_rq_requeue(struct exw_rq *rq, const char *id, const char *doc, size_t doc_len,
                       const char *event, int *owned, struct exw_errbuf *eb)
{
    char *queue = key_of(rq, "queue", "");
    char *status = key_of(rq, "job", id);
    char *events = key_of(rq, "events", "");
    struct args a;
    long long n = 0;
    exw_err rc;

    *owned = 0;
    args_init(&a);
    args_add(&a, "EVAL");
    args_add(&a, requeue_lua);
    args_add(&a, "3");
    args_add(&a, rq->processing);
    args_add(&a, queue);
    args_add(&a, status);
    args_add_len(&a, doc, doc_len);
    args_add(&a, events);
    args_add(&a, event ? event : "");
    args_addf(&a, "%lld", (long long)exw_wall_ms());
    rc = run_int(rq, &a, "requeue", &n, eb);
    *owned = n == 1;
    free(queue);
    free(status);
    free(events);
    return rc;
}

exw_err exw_rq_llen(struct exw_rq *rq, const char *key, long long *out, struct exw_errbuf *eb)
{
    struct args a;
    redisReply *r;
    exw_err rc;

    *out = 0;
    args_init(&a);
    args_add(&a, "LLEN");
    args_add(&a, key);
    rc = run(rq, &a, "LLEN", &r, eb);
    args_cleanup(&a);
    if (rc != EXW_OK)
        return rc;
    if (r->type == REDIS_REPLY_INTEGER)
        *out = r->integer;
    freeReplyObject(r);
    return EXW_OK;
}

exw_err exw_rq_lrange(struct exw_rq *rq, const char *key, long long start, long long stop,
                      exw_rq_elem_fn fn, void *ud, struct exw_errbuf *eb)
{
    struct args a;
    redisReply *r;
    exw_err rc;
    size_t i;

    args_init(&a);
    args_add(&a, "LRANGE");
    args_add(&a, key);
    args_addf(&a, "%lld", start);
    args_addf(&a, "%lld", stop);
    rc = run(rq, &a, "LRANGE", &r, eb);
    args_cleanup(&a);
    if (rc != EXW_OK)
        return rc;
    for (i = 0; rc == EXW_OK && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *e = r->element[i];

        if (e->type == REDIS_REPLY_STRING)
            rc = fn(e->str, e->len, ud);
        else
            rc = exw_errbuf_set(eb, EXW_EREDIS, "LRANGE: unexpected reply type %d", e->type);
    }
    freeReplyObject(r);
    return rc;
}

exw_err exw_rq_heartbeat(struct exw_rq *rq, const struct exw_rq_beat *b, struct exw_errbuf *eb)
{
    char *workers = key_of(rq, "workers", "");
    char *beat = key_of(rq, "worker", rq->worker_id);
    struct args a;
    exw_err rc = EXW_OK;

    if (rq->broken) {
        rc = exw_errbuf_set(eb, EXW_EREDIS, "heartbeat: connection broken");
        goto out;
    }
    args_init(&a);
    args_add(&a, "HSET");
    args_add(&a, beat);
    args_add(&a, "host");
    args_add(&a, b->host);
    args_add(&a, "pid");
    args_addf(&a, "%ld", b->pid);
    args_add(&a, "started_at");
    args_addf(&a, "%lld", (long long)b->started_at);
    args_add(&a, "job");
    args_add(&a, b->job);
    args_add(&a, "jobs_done");
    args_addf(&a, "%lld", b->jobs_done);
    append(rq, &a);
    args_add(&a, "PEXPIRE");
    args_add(&a, beat);
    args_addf(&a, "%ld", b->ttl_ms);
    append(rq, &a);
    args_add(&a, "SADD");
    args_add(&a, workers);
    args_add(&a, rq->worker_id);
    append(rq, &a);
    rc = read_pipeline(rq, 3, -1, NULL, eb);
out:
    free(workers);
    free(beat);
    return rc;
}

/* KEYS: workers, queue. ARGV: prefix.
 * The processing lists and heartbeats of other workers cannot be declared as
 * KEYS before the script reads P:workers; they share the prefix, and so the
 * prefix's hash slot on a cluster. The processing list is emptied from its
 * newest end, so that its oldest job ends up taken first. */
static const char recover_lua[] =
    "local moved = 0\n"
    "for _, wid in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  if redis.call('EXISTS', ARGV[1] .. ':worker:' .. wid) == 0 then\n"
    "    local plist = ARGV[1] .. ':processing:' .. wid\n"
    "    while true do\n"
    "      local doc = redis.call('LPOP', plist)\n"
    "      if not doc then break end\n"
    "      redis.call('RPUSH', KEYS[2], doc)\n"
    "      moved = moved + 1\n"
    "    end\n"
    "    redis.call('SREM', KEYS[1], wid)\n"
    "  end\n"
    "end\n"
    "return moved\n";

exw_err exw_rq_recover(struct exw_rq *rq, long long *recovered, struct exw_errbuf *eb)
{
    char *workers = key_of(rq, "workers", "");
    char *queue = key_of(rq, "queue", "");
    struct args a;
    exw_err rc;

    *recovered = 0;
    args_init(&a);
    args_add(&a, "EVAL");
    args_add(&a, recover_lua);
    args_add(&a, "2");
    args_add(&a, workers);
    args_add(&a, queue);
    args_add(&a, rq->prefix);
    rc = run_int(rq, &a, "recover", recovered, eb);
    free(workers);
    free(queue);
    return rc;
}

/* KEYS: own processing list, queue. Emptied from its newest end, as recovery does. */
static const char release_lua[] = "local moved = 0\n"
                                  "while true do\n"
                                  "  local doc = redis.call('LPOP', KEYS[1])\n"
                                  "  if not doc then break end\n"
                                  "  redis.call('RPUSH', KEYS[2], doc)\n"
                                  "  moved = moved + 1\n"
                                  "end\n"
                                  "return moved\n";

exw_err exw_rq_release_own(struct exw_rq *rq, long long *moved, struct exw_errbuf *eb)
{
    char *queue = key_of(rq, "queue", "");
    struct args a;
    exw_err rc;

    *moved = 0;
    args_init(&a);
    args_add(&a, "EVAL");
    args_add(&a, release_lua);
    args_add(&a, "2");
    args_add(&a, rq->processing);
    args_add(&a, queue);
    rc = run_int(rq, &a, "release", moved, eb);
    free(queue);
    return rc;
}

/* KEYS: heartbeat, workers, own processing list. ARGV: worker id. */
static const char deregister_lua[] =
    "redis.call('DEL', KEYS[1])\n"
    "if redis.call('LLEN', KEYS[3]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end\n"
    "return 1\n";

exw_err exw_rq_deregister(struct exw_rq *rq, struct exw_errbuf *eb)
{
    char *workers = key_of(rq, "workers", "");
    char *beat = key_of(rq, "worker", rq->worker_id);
    struct args a;
    exw_err rc;

    args_init(&a);
    args_add(&a, "EVAL");
    args_add(&a, deregister_lua);
    args_add(&a, "3");
    args_add(&a, beat);
    args_add(&a, workers);
    args_add(&a, rq->processing);
    args_add(&a, rq->worker_id);
    rc = run_simple(rq, &a, "deregister", eb);
    args_cleanup(&a);
    free(workers);
    free(beat);
    return rc;
}
