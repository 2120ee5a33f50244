/* redis.c: one connection to Redis; the only user of hiredis.
 *
 * Commands go through redisCommandArgv with explicit lengths, never format
 * strings built at run time; one whose arguments reach DIRECT_BYTES is
 * written to the socket from the caller's buffers instead (command_argv).
 * Error replies are sorted into transient and
 * permanent ones by their code (the first word, which Redis documents as
 * the error's kind), never by the rest of their text.
 *
 * Redis Sentinel and Cluster: which node a connection goes to is
 * topology.c's (exw_redis_connect asks it); this file talks to the node.
 * exw_redis_run() follows MOVED (the connection moves to the node named and
 * the command is sent again) and ASK (ASKING and the command, once, on a
 * connection of their own), at most REDIRECTS_MAX times; NOSCRIPT is
 * answered with EVAL on whichever node said it. A redirect is safe to
 * follow: the node that sends one did not run the command. Errors that mean
 * the primary or the owner changed (READONLY, CLUSTERDOWN, redirects past
 * the limit) break the connection, so that the next one finds the new one. */
#include "exw/redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "exw/cluster.h"
#include "exw/topology.h"
#include "exw/setting.h"

/* MOVED and ASK followed for one command; a slot that moves more often than
 * this during one command is in the middle of a reshard: retry later. */
#define REDIRECTS_MAX 5

/* A command whose arguments reach this many bytes is written to the socket
 * straight from the caller's buffers. redisCommandArgv formats a command
 * into a buffer and then copies that into the context's output buffer, so a
 * job's start or end script, which carries its inline document of D bytes,
 * had the worker hold 3D at once; written directly, it holds D. */
#define DIRECT_BYTES ((size_t)1 << 20)

struct exw_redis {
    redisContext *c;
    char *prefix;
    char *worker_id;
    long timeout_ms;      /* as given to exw_redis_connect */
    long cur_timeout_ms;  /* as set now: blocking commands raise it */
    long sock_timeout_ms; /* as c's socket has it: set before the next command */
    int broken;
    exw_redis_fault_fn fault;
    void *fault_ud;
    char *user, *password;   /* the URL's, for AUTH on another node (MOVED, ASK) */
    int slot;                /* the prefix's slot on a cluster, else -1 */
    char node[EXW_NODE_MAX]; /* host:port of the server; "" on a unix socket */
};

/* Error codes after which a retry may well succeed (OOM and MISCONF once the
 * memory or the disk that Redis lacks comes back). READONLY also means the
 * node is a replica now, CLUSTERDOWN that the slot's owner is failing over,
 * and MOVED or ASK left after REDIRECTS_MAX that the slot keeps moving: the
 * connection is dropped so that the next finds the primary. */
static const struct {
    const char *code;
    int reconnect;
} transient_codes[] = {
    {"LOADING", 0}, {"BUSY", 0},     {"TRYAGAIN", 0},    {"MASTERDOWN", 0}, {"OOM", 0},
    {"MISCONF", 0}, {"READONLY", 1}, {"CLUSTERDOWN", 1}, {"MOVED", 1},      {"ASK", 1},
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

static struct timeval to_timeval(long ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

    return tv;
}

/* The socket gets the new timeout only before the next command
 * (round_trip): the dispatcher raises and lowers it around every take, two
 * system calls each, while it needs changing only between a take and some
 * other command. */
void exw_redis_set_timeout(struct exw_redis *rd, long timeout_ms)
{
    rd->cur_timeout_ms = timeout_ms;
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

/* The pieces of a command written directly: small ones gather in buf, one
 * at least as large goes out on its own. */
struct direct {
    int fd;
    size_t used;
    char buf[16384];
};

static int send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int direct_flush(struct direct *w)
{
    int rc = send_all(w->fd, w->buf, w->used);

    w->used = 0;
    return rc;
}

static int direct_put(struct direct *w, const void *p, size_t len)
{
    if (w->used + len > sizeof(w->buf) && direct_flush(w) != 0)
        return -1;
    if (len >= sizeof(w->buf))
        return send_all(w->fd, p, len);
    memcpy(w->buf + w->used, p, len);
    w->used += len;
    return 0;
}

/* redisCommandArgv, but a command of DIRECT_BYTES or more is written by
 * hand (RESP, as hiredis would) from @v, without a copy, and its reply read
 * by hiredis. The output buffer of a blocking context is empty between
 * commands, so nothing of hiredis's can be interleaved. */
static redisReply *command_argv(redisContext *ctx, int n, const char **v, const size_t *len)
{
    struct direct *w;
    void *reply = NULL;
    size_t total = 0;
    char head[32];
    int i, rc;

    for (i = 0; i < n; i++)
        total += len[i];
    if (total < DIRECT_BYTES || ctx->err != 0 || sdslen(ctx->obuf) != 0)
        return redisCommandArgv(ctx, n, v, len);
    w = exw_xmalloc(sizeof(*w));
    w->fd = ctx->fd;
    w->used = 0;
    snprintf(head, sizeof(head), "*%d\r\n", n);
    rc = direct_put(w, head, strlen(head));
    for (i = 0; rc == 0 && i < n; i++) {
        snprintf(head, sizeof(head), "$%zu\r\n", len[i]);
        rc = direct_put(w, head, strlen(head));
        if (rc == 0)
            rc = direct_put(w, v[i], len[i]);
        if (rc == 0)
            rc = direct_put(w, "\r\n", 2);
    }
    if (rc == 0)
        rc = direct_flush(w);
    free(w);
    if (rc != 0) {
        /* As hiredis reports a failed write; the connection is done for. */
        ctx->err = REDIS_ERR_IO;
        exw_errno_text(errno, ctx->errstr, sizeof(ctx->errstr));
        return NULL;
    }
    return redisGetReply(ctx, &reply) == REDIS_OK ? reply : NULL;
}

/* One round trip on @c (the connection's own, or a redirect's); *@out is the
 * raw reply (NULL when the connection failed). The test fault applies to the
 * connection's own context only. */
static void round_trip(struct exw_redis *rd, redisContext *ctx, const struct exw_cmd *c,
                       redisReply **out)
{
    int lose = ctx == rd->c && rd->fault != NULL && rd->fault(c, rd->fault_ud);

    if (ctx == rd->c && rd->sock_timeout_ms != rd->cur_timeout_ms) {
        redisSetTimeout(ctx, to_timeval(rd->cur_timeout_ms));
        rd->sock_timeout_ms = rd->cur_timeout_ms;
    }
    *out = command_argv(ctx, c->n, c->v, c->len);
    if (lose && *out != NULL) {
        /* The command ran on Redis; its reply is lost on the way back. */
        freeReplyObject(*out);
        *out = NULL;
        ctx->err = REDIS_ERR_IO;
        snprintf(ctx->errstr, sizeof(ctx->errstr), "reply lost (test fault)");
    }
}

/* A round trip, and again as EVAL when the server does not know the script
 * (a restart, a failover, another node). */
static void send_cmd(struct exw_redis *rd, redisContext *ctx, struct exw_cmd *c, redisReply **out)
{
    round_trip(rd, ctx, c, out);
    if (is_noscript(*out) && c->n >= 3 && strcmp(c->v[0], "EVALSHA") == 0) {
        /* Argument 1 is the script's sha1 (exw_cmd_script); EVAL with its
         * body also loads it for the next EVALSHA. */
        const struct exw_script *s = exw_script_by_sha1(c->v[1]);

        freeReplyObject(*out);
        EXW_ASSERT(s != NULL);
        c->v[0] = "EVAL";
        c->len[0] = 4;
        c->v[1] = s->body;
        c->len[1] = s->len;
        round_trip(rd, ctx, c, out);
    }
}

/* Opens @host:@port or the unix socket @path with the connection's timeout
 * into *@out and authenticates as the URL says. */
static exw_err open_ctx(const struct exw_redis *rd, const char *host, int port, const char *path,
                        redisContext **out, struct exw_errbuf *eb)
{
    char node[EXW_NODE_MAX];
    redisContext *ctx;
    redisReply *r;
    const char *argv[3];
    size_t argl[3];
    int n = 0;

    *out = NULL;
    if (path != NULL)
        ctx = redisConnectUnixWithTimeout(path, to_timeval(rd->timeout_ms));
    else
        ctx = redisConnectWithTimeout(host, port, to_timeval(rd->timeout_ms));
    if (ctx == NULL)
        return exw_errbuf_set(eb, EXW_ENOMEM, "cannot allocate a Redis connection");
    if (path == NULL)
        exw_cluster_node_name(host, port, node, sizeof(node));
    if (ctx->err) {
        exw_errbuf_set(eb, EXW_EREDIS, "cannot connect to Redis at %s: %s", path ? path : node,
                       ctx->errstr);
        redisFree(ctx);
        return EXW_EREDIS;
    }
    redisSetTimeout(ctx, to_timeval(rd->cur_timeout_ms));
    if (rd->password != NULL) {
        argv[n++] = "AUTH";
        if (rd->user != NULL)
            argv[n++] = rd->user;
        argv[n++] = rd->password;
        for (int i = 0; i < n; i++)
            argl[i] = strlen(argv[i]);
        r = redisCommandArgv(ctx, n, argv, argl);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            exw_err rc = r == NULL ? EXW_EREDIS : EXW_EREPLY;

            /* The reply text never contains the password. */
            exw_errbuf_set(eb, rc, "AUTH at %s: %s", path ? path : node, r ? r->str : ctx->errstr);
            if (r != NULL)
                freeReplyObject(r);
            redisFree(ctx);
            return rc;
        }
        freeReplyObject(r);
    }
    *out = ctx;
    return EXW_OK;
}

/* A MOVED or ASK reply of Redis Cluster. */
struct redirect {
    int ask; /* ASK, else MOVED */
    int slot;
    char host[EXW_NODE_MAX];
    int port;
};

/* Whether @r is a MOVED or ASK error that names a node; then into @to. */
static int parse_redirect(const redisReply *r, struct redirect *to)
{
    const char *p, *sp;
    long v = 0;

    if (r == NULL || r->type != REDIS_REPLY_ERROR)
        return 0;
    if (strncmp(r->str, "MOVED ", 6) == 0)
        to->ask = 0;
    else if (strncmp(r->str, "ASK ", 4) == 0)
        to->ask = 1;
    else
        return 0;
    p = r->str + (to->ask ? 4 : 6);
    for (sp = p; *sp >= '0' && *sp <= '9' && v < EXW_CLUSTER_SLOTS; sp++)
        v = v * 10 + (*sp - '0');
    if (sp == p || *sp != ' ' || v >= EXW_CLUSTER_SLOTS)
        return 0;
    to->slot = (int)v;
    sp++;
    return exw_cluster_node_parse(sp, strlen(sp), to->host, sizeof(to->host), &to->port) == 0;
}

/* Sends @c to the node that @to (parsed from @r) names and replaces @r with
 * that node's reply. MOVED moves the connection there; ASK sends ASKING and
 * the command on a connection of their own, closed after. */
static exw_err follow(struct exw_redis *rd, struct exw_cmd *c, const struct redirect *to,
                      redisReply **r, const char *what, struct exw_errbuf *eb)
{
    const char *host = to->host;
    char node[EXW_NODE_MAX];
    struct exw_errbuf why = {{0}};
    redisContext *ctx = NULL;
    redisReply *asking;
    int ask = to->ask, slot = to->slot, port = to->port;
    exw_err rc;

    freeReplyObject(*r);
    *r = NULL;
    exw_cluster_node_name(host, port, node, sizeof(node));
    exw_cluster_note_node(host, port);
    rc = open_ctx(rd, host, port, NULL, &ctx, &why);
    if (rc != EXW_OK) {
        rd->broken = 1;
        return exw_errbuf_set(eb, rc == EXW_ENOMEM ? EXW_ENOMEM : EXW_EREDIS,
                              "%s: following %s to %s: %s", what, ask ? "ASK" : "MOVED", node,
                              why.msg);
    }
    if (!ask) {
        redisFree(rd->c);
        rd->c = ctx;
        rd->sock_timeout_ms = rd->cur_timeout_ms; /* open_ctx's */
        snprintf(rd->node, sizeof(rd->node), "%s", node);
        if (slot == rd->slot) {
            exw_cluster_note_owner(host, port);
            exw_topology_note_primary(node, "the owner of the prefix's cluster slot");
        }
        send_cmd(rd, rd->c, c, r);
        return EXW_OK;
    }
    asking = redisCommand(ctx, "ASKING");
    if (asking != NULL && asking->type != REDIS_REPLY_ERROR)
        send_cmd(rd, ctx, c, r);
    if (asking != NULL)
        freeReplyObject(asking);
    if (*r == NULL) {
        rd->broken = 1;
        rc = exw_errbuf_set(eb, EXW_EREDIS, "%s: following ASK to %s: %s", what, node,
                            ctx->errstr[0] ? ctx->errstr : "ASKING refused");
    }
    redisFree(ctx);
    return rc;
}

exw_err exw_redis_run(struct exw_redis *rd, struct exw_cmd *c, const char *what,
                      struct exw_reply **out, struct exw_errbuf *eb)
{
    struct redirect to;
    redisReply *r = NULL;
    exw_err rc;
    int hops;

    *out = NULL;
    if (rd->broken) {
        rc = exw_errbuf_set(eb, EXW_EREDIS, "%s: connection broken", what);
        goto out;
    }
    send_cmd(rd, rd->c, c, &r);
    /* Redis Cluster: the command did not run where it was sent; send it
     * where the node says. What is left after the limit counts as a
     * transient error (check_reply). */
    for (hops = 0; hops < REDIRECTS_MAX && parse_redirect(r, &to); hops++) {
        rc = follow(rd, c, &to, &r, what, eb);
        if (rc != EXW_OK)
            goto out;
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

exw_err exw_redis_open(const char *host, int port, const char *path, const char *user,
                       const char *password, long timeout_ms, struct exw_redis **out,
                       struct exw_errbuf *eb)
{
    struct exw_redis *rd = exw_xcalloc(1, sizeof(*rd));
    exw_err rc;

    rd->prefix = exw_xstrdup("");
    rd->worker_id = exw_xstrdup("");
    rd->timeout_ms = rd->cur_timeout_ms = rd->sock_timeout_ms = timeout_ms;
    rd->user = user ? exw_xstrdup(user) : NULL;
    rd->password = password ? exw_xstrdup(password) : NULL;
    rd->slot = -1;
    rc = open_ctx(rd, host, port, path, &rd->c, eb);
    if (rc != EXW_OK) {
        exw_redis_free(rd);
        rd = NULL;
    } else if (path == NULL) {
        exw_cluster_node_name(host, port, rd->node, sizeof(rd->node));
    }
    *out = rd;
    return rc;
}

void exw_redis_set_names(struct exw_redis *rd, const char *prefix, const char *worker_id)
{
    free(rd->prefix);
    free(rd->worker_id);
    rd->prefix = exw_xstrdup(prefix);
    rd->worker_id = exw_xstrdup(worker_id);
}

void exw_redis_set_cluster(struct exw_redis *rd, int slot) { rd->slot = slot; }

const char *exw_redis_node(const struct exw_redis *rd) { return rd->node; }

exw_err exw_redis_connect(const struct exw_redis_addr *addr, const char *prefix,
                          const char *worker_id, long timeout_ms, struct exw_redis **out,
                          struct exw_errbuf *eb)
{
    exw_err rc = exw_topology_connect(addr, prefix, timeout_ms, out, eb);

    if (rc == EXW_OK)
        exw_redis_set_names(*out, prefix, worker_id);
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
    free(rd->user);
    exw_setting_free_secret(rd->password);
    free(rd);
}

void exw_redis_trim(struct exw_redis *rd)
{
    redisReader *old = rd != NULL && rd->c != NULL ? rd->c->reader : NULL, *fresh;

    if (old == NULL || old->ridx != -1 || old->pos != old->len)
        return; /* none, or a reply under way */
    fresh = redisReaderCreate();
    if (fresh == NULL)
        return;
    fresh->maxbuf = old->maxbuf;
    redisReaderFree(old);
    rd->c->reader = fresh;
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
