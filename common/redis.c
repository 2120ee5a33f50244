/* redis.c: one connection to Redis; the only user of hiredis.
 *
 * Commands go through redisCommandArgv with explicit lengths, never format
 * strings built at run time. Error replies are sorted into transient and
 * permanent ones by their code (the first word, which Redis documents as
 * the error's kind), never by the rest of their text. */
#include "exw/redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct exw_redis {
    redisContext *c;
    char *prefix;
    char *worker_id;
    long timeout_ms;
    int broken;
    exw_redis_fault_fn fault;
    void *fault_ud;
};

/* Error codes after which a retry may well succeed (OOM and MISCONF once the
 * memory or the disk that Redis lacks comes back). READONLY also means the
 * node is a replica now: the connection is dropped so that the next finds
 * the primary. */
static const struct {
    const char *code;
    int reconnect;
} transient_codes[] = {
    {"LOADING", 0}, {"BUSY", 0},    {"TRYAGAIN", 0}, {"MASTERDOWN", 0},
    {"OOM", 0},     {"MISCONF", 0}, {"READONLY", 1},
};

static struct exw_reply *wrap(redisReply *r) { return (struct exw_reply *)(void *)r; }
static const redisReply *unwrap(const struct exw_reply *r)
{
    return (const redisReply *)(const void *)r;
}

/* ---- Commands ---- */

void exw_cmd_init(struct exw_cmd *c) { memset(c, 0, sizeof(*c)); }

void exw_cmd_add_len(struct exw_cmd *c, const void *s, size_t len)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->v = exw_xrealloc(c->v, sizeof(*c->v) * (size_t)c->cap);
        c->len = exw_xrealloc(c->len, sizeof(*c->len) * (size_t)c->cap);
    }
    c->v[c->n] = s;
    c->len[c->n] = len;
    c->n++;
}

void exw_cmd_add(struct exw_cmd *c, const char *s) { exw_cmd_add_len(c, s, strlen(s)); }

void exw_cmd_addf(struct exw_cmd *c, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    EXW_ASSERT(n >= 0);
    s = exw_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    if (c->nowned == c->owned_cap) {
        c->owned_cap = c->owned_cap ? c->owned_cap * 2 : 8;
        c->owned = exw_xrealloc(c->owned, sizeof(*c->owned) * (size_t)c->owned_cap);
    }
    c->owned[c->nowned++] = s;
    exw_cmd_add_len(c, s, (size_t)n);
}

void exw_cmd_cleanup(struct exw_cmd *c)
{
    int i;

    for (i = 0; i < c->nowned; i++)
        free(c->owned[i]);
    free(c->owned);
    free(c->v);
    free(c->len);
    exw_cmd_init(c);
}

void exw_cmd_script(struct exw_cmd *c, const struct exw_script *script, int nkeys)
{
    EXW_ASSERT(c->n == 0);
    exw_cmd_add(c, "EVALSHA");
    exw_cmd_add(c, script->sha1);
    exw_cmd_addf(c, "%d", nkeys);
}

/* ---- The connection ---- */

void exw_redis_set_timeout(struct exw_redis *rd, long timeout_ms)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};

    if (rd->c != NULL && !rd->broken)
        redisSetTimeout(rd->c, tv);
}

/* Sorts a NULL reply or an error reply into the three kinds of redis.h. */
static exw_err check_reply(struct exw_redis *rd, const redisReply *r, const char *what,
                           struct exw_errbuf *eb)
{
    size_t i, code_len;

    if (r == NULL) {
        rd->broken = 1;
        /* A reply too large for this process's memory: a retry gets the
         * same, so the caller must not ask for it whole again. */
        return exw_errbuf_set(eb, rd->c->err == REDIS_ERR_OOM ? EXW_ENOMEM : EXW_EREDIS, "%s: %s",
                              what, rd->c->errstr[0] ? rd->c->errstr : "connection lost");
    }
    if (r->type != REDIS_REPLY_ERROR)
        return EXW_OK;
    code_len = strcspn(r->str, " ");
    for (i = 0; i < sizeof(transient_codes) / sizeof(*transient_codes); i++) {
        if (strlen(transient_codes[i].code) == code_len &&
            memcmp(r->str, transient_codes[i].code, code_len) == 0) {
            if (transient_codes[i].reconnect)
                rd->broken = 1;
            return exw_errbuf_set(eb, EXW_EAGAIN, "%s: %.*s", what, (int)r->len, r->str);
        }
    }
    return exw_errbuf_set(eb, EXW_EREPLY, "%s: %.*s", what, (int)r->len, r->str);
}

static int is_noscript(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 &&
           (r->str[8] == ' ' || r->str[8] == '\0');
}

/* One round trip; *@out is the raw reply (NULL when the connection failed). */
static void round_trip(struct exw_redis *rd, const struct exw_cmd *c, redisReply **out)
{
    int lose = rd->fault != NULL && rd->fault(c, rd->fault_ud);

    *out = redisCommandArgv(rd->c, c->n, c->v, c->len);
    if (lose && *out != NULL) {
        /* The command ran on Redis; its reply is lost on the way back. */
        freeReplyObject(*out);
        *out = NULL;
        rd->c->err = REDIS_ERR_IO;
        snprintf(rd->c->errstr, sizeof(rd->c->errstr), "reply lost (test fault)");
    }
}

exw_err exw_redis_run(struct exw_redis *rd, struct exw_cmd *c, const char *what,
                      struct exw_reply **out, struct exw_errbuf *eb)
{
    redisReply *r = NULL;
    exw_err rc;

    *out = NULL;
    if (rd->broken) {
        rc = exw_errbuf_set(eb, EXW_EREDIS, "%s: connection broken", what);
        goto out;
    }
    round_trip(rd, c, &r);
    if (is_noscript(r) && c->n >= 3 && strcmp(c->v[0], "EVALSHA") == 0) {
        /* Argument 1 is the script's sha1 (exw_cmd_script); EVAL with its
         * body also loads it for the next EVALSHA. */
        const struct exw_script *s = exw_script_by_sha1(c->v[1]);

        freeReplyObject(r);
        EXW_ASSERT(s != NULL);
        c->v[0] = "EVAL";
        c->len[0] = 4;
        c->v[1] = s->body;
        c->len[1] = s->len;
        round_trip(rd, c, &r);
    }
    rc = check_reply(rd, r, what, eb);
    if (rc != EXW_OK) {
        if (r != NULL)
            freeReplyObject(r);
        goto out;
    }
    *out = wrap(r);
out:
    exw_cmd_cleanup(c);
    return rc;
}

exw_err exw_redis_run_simple(struct exw_redis *rd, struct exw_cmd *c, const char *what,
                             struct exw_errbuf *eb)
{
    struct exw_reply *r;
    exw_err rc = exw_redis_run(rd, c, what, &r, eb);

    exw_reply_free(r);
    return rc;
}

exw_err exw_redis_run_int(struct exw_redis *rd, struct exw_cmd *c, const char *what, long long *out,
                          struct exw_errbuf *eb)
{
    struct exw_reply *r;
    exw_err rc = exw_redis_run(rd, c, what, &r, eb);

    *out = exw_reply_integer(r);
    exw_reply_free(r);
    return rc;
}

exw_err exw_redis_connect(const struct exw_redis_addr *addr, const char *prefix,
                          const char *worker_id, long timeout_ms, struct exw_redis **out,
                          struct exw_errbuf *eb)
{
    struct exw_redis *rd = exw_xcalloc(1, sizeof(*rd));
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    struct exw_cmd c;
    exw_err rc = EXW_OK;

    exw_cmd_init(&c);
    rd->prefix = exw_xstrdup(prefix);
    rd->worker_id = exw_xstrdup(worker_id);
    rd->timeout_ms = timeout_ms;
    if (addr->path != NULL)
        rd->c = redisConnectUnixWithTimeout(addr->path, tv);
    else
        rd->c = redisConnectWithTimeout(addr->host, addr->port, tv);
    if (rd->c == NULL) {
        rc = exw_errbuf_set(eb, EXW_ENOMEM, "cannot allocate a Redis connection");
        goto out;
    }
    if (rd->c->err) {
        rc = exw_errbuf_set(eb, EXW_EREDIS, "cannot connect to Redis at %s:%d: %s",
                            addr->path ? addr->path : addr->host, addr->path ? 0 : addr->port,
                            rd->c->errstr);
        goto out;
    }
    exw_redis_set_timeout(rd, timeout_ms);
    if (addr->password != NULL) {
        exw_cmd_add(&c, "AUTH");
        if (addr->user != NULL)
            exw_cmd_add(&c, addr->user);
        exw_cmd_add(&c, addr->password);
        /* The reply text never contains the password. */
        rc = exw_redis_run_simple(rd, &c, "AUTH", eb);
        if (rc != EXW_OK)
            goto out;
    }
    if (addr->db != 0) {
        exw_cmd_add(&c, "SELECT");
        exw_cmd_addf(&c, "%d", addr->db);
        rc = exw_redis_run_simple(rd, &c, "SELECT", eb);
    }
out:
    exw_cmd_cleanup(&c);
    if (rc != EXW_OK) {
        exw_redis_free(rd);
        rd = NULL;
    }
    *out = rd;
    return rc;
}

void exw_redis_free(struct exw_redis *rd)
{
    if (rd == NULL)
        return;
    if (rd->c != NULL)
        redisFree(rd->c);
    free(rd->prefix);
    free(rd->worker_id);
    free(rd);
}

int exw_redis_broken(const struct exw_redis *rd) { return rd->broken; }
long exw_redis_timeout(const struct exw_redis *rd) { return rd->timeout_ms; }
const char *exw_redis_prefix(const struct exw_redis *rd) { return rd->prefix; }
const char *exw_redis_worker(const struct exw_redis *rd) { return rd->worker_id; }

void exw_redis_set_fault(struct exw_redis *rd, exw_redis_fault_fn fn, void *ud)
{
    rd->fault = fn;
    rd->fault_ud = ud;
}

exw_err exw_redis_config_get(struct exw_redis *rd, const char *name, char *out, size_t outsz,
                             struct exw_errbuf *eb)
{
    struct exw_reply *r;
    struct exw_cmd c;
    exw_err rc;

    out[0] = '\0';
    exw_cmd_init(&c);
    exw_cmd_add(&c, "CONFIG");
    exw_cmd_add(&c, "GET");
    exw_cmd_add(&c, name);
    rc = exw_redis_run(rd, &c, "CONFIG GET", &r, eb);
    if (rc == EXW_OK && exw_reply_count(r) == 2) {
        size_t len;
        const char *v = exw_reply_string(exw_reply_at(r, 1), &len);

        if (v != NULL)
            snprintf(out, outsz, "%.*s", (int)len, v);
    }
    exw_reply_free(r);
    return rc;
}

exw_err exw_redis_next_message(struct exw_redis *rd, long timeout_ms, struct exw_reply **out,
                               struct exw_errbuf *eb)
{
    void *r = NULL;
    struct pollfd pfd;
    exw_err rc;
    int n;

    *out = NULL;
    if (rd->broken)
        return exw_errbuf_set(eb, EXW_EREDIS, "waiting for a message: connection broken");
    /* A message may be read already, behind the one before it. */
    if (redisGetReplyFromReader(rd->c, &r) != REDIS_OK)
        return check_reply(rd, NULL, "waiting for a message", eb);
    if (r == NULL) {
        /* hiredis's own timeout would break the connection: wait here. */
        pfd.fd = rd->c->fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        n = poll(&pfd, 1, timeout_ms < 0 ? 0 : (int)timeout_ms);
        if (n == 0 || (n < 0 && errno == EINTR))
            return EXW_OK;
        if (redisGetReply(rd->c, &r) != REDIS_OK)
            return check_reply(rd, NULL, "waiting for a message", eb);
    }
    rc = check_reply(rd, r, "waiting for a message", eb);
    if (rc != EXW_OK) {
        freeReplyObject(r);
        return rc;
    }
    *out = wrap(r);
    return EXW_OK;
}

/* ---- Replies ---- */

enum exw_reply_type exw_reply_type(const struct exw_reply *r)
{
    const redisReply *x = unwrap(r);

    if (x == NULL)
        return EXW_REPLY_NIL;
    switch (x->type) {
    case REDIS_REPLY_NIL:
        return EXW_REPLY_NIL;
    case REDIS_REPLY_INTEGER:
        return EXW_REPLY_INTEGER;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        return EXW_REPLY_STRING;
    case REDIS_REPLY_ARRAY:
        return EXW_REPLY_ARRAY;
    default:
        return EXW_REPLY_OTHER;
    }
}

long long exw_reply_integer(const struct exw_reply *r)
{
    return exw_reply_type(r) == EXW_REPLY_INTEGER ? unwrap(r)->integer : 0;
}

const char *exw_reply_string(const struct exw_reply *r, size_t *len)
{
    if (exw_reply_type(r) != EXW_REPLY_STRING) {
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    if (len != NULL)
        *len = unwrap(r)->len;
    return unwrap(r)->str;
}

size_t exw_reply_count(const struct exw_reply *r)
{
    return exw_reply_type(r) == EXW_REPLY_ARRAY ? unwrap(r)->elements : 0;
}

const struct exw_reply *exw_reply_at(const struct exw_reply *r, size_t i)
{
    EXW_ASSERT(i < exw_reply_count(r));
    return wrap(unwrap(r)->element[i]);
}

char *exw_reply_steal_string(struct exw_reply *r, size_t *len)
{
    redisReply *x = (redisReply *)(void *)r;
    char *s;

    *len = 0;
    if (exw_reply_type(r) != EXW_REPLY_STRING)
        return NULL;
    /* hiredis 0.14 allocates a string reply's text with malloc, with a NUL
     * after it, and frees it only when the pointer is not NULL. */
    s = x->str;
    *len = x->len;
    x->str = NULL;
    x->len = 0;
    return s;
}

char *exw_reply_steal_at(struct exw_reply *r, size_t i, size_t *len)
{
    EXW_ASSERT(i < exw_reply_count(r));
    return exw_reply_steal_string(wrap(unwrap(r)->element[i]), len);
}

int exw_reply_is(const struct exw_reply *r, const char *s)
{
    size_t len;
    const char *str = exw_reply_string(r, &len);

    return str != NULL && len == strlen(s) && memcmp(str, s, len) == 0;
}

void exw_reply_free(struct exw_reply *r)
{
    if (r != NULL)
        freeReplyObject((redisReply *)(void *)r);
}
