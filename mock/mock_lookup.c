/*
 * export-mock-lookup: a stand-in for the "contracts" lookup service.
 *
 * DESIGN
 *
 * The demo, the end-to-end tests, the benchmarks and the fault-injection tests all talk to this
 * program as if it were the real service, so it is a real HTTP server whose answers are a pure
 * function of the key and whose timing is the configured latency and nothing else.
 *
 * Threads: libmicrohttpd runs one thread per connection, so a request that waits out its latency
 * blocks only its own connection and hundreds of requests wait side by side. Each waits with its
 * own clock_nanosleep(), not on a shared condition variable: hundreds of timed waits on one
 * condition variable wake tens of milliseconds late, every timed-out waiter fighting for the
 * same lock. Signals are blocked in every thread; the main thread takes SIGINT/SIGTERM with
 * sigwait() and raises an atomic flag that sleeping requests check every STOP_POLL_MS.
 *
 * The request target: libmicrohttpd decodes the path and turns '+' into a space in query values
 * before the access handler runs, which would hide what the client really sent. The URI log
 * callback runs before any of that, so it copies the raw target (path and query, still
 * percent-encoded) into the per-request state; all routing and decoding works on that copy. The
 * same callback stamps the arrival time the latency is measured from.
 *
 * Batches: GET on --batch-path names several keys, split at ',' before they are decoded (a ',' in
 * a key arrives as %2C), and gets one JSON object with each key's answer as a member, after one
 * latency; the fault options apply to the batch as the usage text says.
 *
 * Shared state: the counters (mock_stats.c: also the arrivals per second, for checking a client's
 * rate) live under one mutex, the record file under another; the random faults use an atomic draw
 * counter fed through splitmix64, so each draw depends only on the seed and its index.
 */

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "mock_body.h"
#include "mock_net.h"
#include "mock_options.h"
#include "mock_stats.h"

enum {
    MAX_CONNECTIONS = 4096,
    LISTEN_BACKLOG = 1024,
    CONN_MEMORY_LIMIT = 256 * 1024, /* request line and headers; past it 414 or 431 */
    THREAD_STACK_SIZE = 512 * 1024,
    LOG_TARGET_MAX = 400,
    STOP_POLL_MS = 50
};

struct server {
    const struct options *opt;
    struct mock_stats stats;
    pthread_mutex_t record_mu;
    int record_fd; /* written under record_mu; -1 without --record */
    atomic_int stopping;
    atomic_int started; /* after start-up, libmicrohttpd speaks only with --verbose */
    atomic_uint_fast64_t draws;
};

/* Per-request state, made by the URI log callback and freed when the request completes. */
struct request {
    struct timespec arrival;
    char *target; /* the raw request target */
    int started;
    int in_flight; /* counted in stats.in_flight */
    int is_lookup; /* counted as a lookup */
};

/* An answer for send_reply(); body is malloc'd when body_is_heap, else a literal. */
struct reply {
    unsigned int status;
    const char *content_type;
    char *body;
    size_t len;
    int body_is_heap;
    const char *header;
    const char *header_value;
};

static void now_mono(struct timespec *ts)
{
    /* CLOCK_MONOTONIC cannot fail on Linux; if it did, every latency would be wrong. */
    if (clock_gettime(CLOCK_MONOTONIC, ts) != 0)
        abort();
}

static void ts_add_ms(struct timespec *ts, long ms)
{
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static long ms_since(const struct timespec *start)
{
    struct timespec now;

    now_mono(&now);
    return (long)(now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* ---- Shared state ---- */

static void stats_begin(struct server *s, struct request *req, int is_lookup, size_t batch_keys)
{
    mock_stats_begin(&s->stats, &req->arrival, is_lookup, batch_keys);
    req->in_flight = 1;
    req->is_lookup = is_lookup;
}

/* Ends a counted request; status 0 means the connection was closed without an answer. */
static void stats_end(struct server *s, struct request *req, unsigned int status)
{
    if (!req->in_flight)
        return;
    mock_stats_end(&s->stats, status, req->is_lookup);
    req->in_flight = 0;
}

/* Sleeps until deadline; returns 1 when the server began to stop first, 0 otherwise. */
static int wait_until(struct server *s, const struct timespec *deadline)
{
    for (;;) {
        struct timespec next;
        int rc;

        if (atomic_load(&s->stopping))
            return 1;
        now_mono(&next);
        ts_add_ms(&next, STOP_POLL_MS);
        if (next.tv_sec > deadline->tv_sec ||
            (next.tv_sec == deadline->tv_sec && next.tv_nsec >= deadline->tv_nsec))
            next = *deadline;
        do
            rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        while (rc == EINTR);
        if (rc != 0)
            abort();
        if (next.tv_sec == deadline->tv_sec && next.tv_nsec == deadline->tv_nsec)
            return atomic_load(&s->stopping) != 0;
    }
}

/* A uniform double in [0, 1): splitmix64 of the seed and a global draw index. */
static double draw(struct server *s)
{
    uint64_t x = (uint64_t)atomic_fetch_add(&s->draws, 1);

    x = (uint64_t)s->opt->seed + (x + 1) * 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return (double)(x >> 11) / 9007199254740992.0;
}

/* The random faults (--drop-rate, --timeout-rate, --error-rate): returns 1
 * when the connection is to be dropped; otherwise adds a hang to *@delay_ms
 * or sets *@status to 500, or leaves both. One draw against disjoint
 * intervals keeps each rate exact on its own. */
static int draw_fault(struct server *s, long *delay_ms, long *status)
{
    const struct options *o = s->opt;
    double u;

    if (o->drop_rate <= 0.0 && o->timeout_rate <= 0.0 && o->error_rate <= 0.0)
        return 0;
    u = draw(s);
    if (u < o->drop_rate)
        return 1;
    if (u < o->drop_rate + o->timeout_rate)
        *delay_ms += o->hang_ms;
    else if (u < o->drop_rate + o->timeout_rate + o->error_rate)
        *status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    return 0;
}

static void report_errno(const char *what, const char *arg)
{
    char err[128] = "unknown error";

    (void)strerror_r(errno, err, sizeof(err));
    fprintf(stderr, PROG ": %s %s: %s\n", what, arg, err);
}

static void record_lookup(struct server *s, const char *target, const char *key, size_t key_len)
{
    struct mock_buf line = {0};
    int rc;

    if (s->record_fd < 0)
        return;
    mock_buf_add_escaped(&line, target, strlen(target));
    mock_buf_addc(&line, '\t');
    mock_buf_add_escaped(&line, key, key_len);
    mock_buf_addc(&line, '\n');
    mock_lock(&s->record_mu);
    rc = mock_write_all(s->record_fd, line.p, line.len);
    mock_unlock(&s->record_mu);
    if (rc != 0)
        report_errno("cannot write to", s->opt->record);
    mock_buf_free(&line);
}

static void log_request(struct server *s, const struct request *req, const char *method,
                        unsigned int status)
{
    struct mock_buf line = {0};
    size_t len = strlen(req->target);

    if (!s->opt->verbose)
        return;
    mock_buf_addf(&line, PROG ": %s ", method);
    mock_buf_add_escaped(&line, req->target, len < LOG_TARGET_MAX ? len : LOG_TARGET_MAX);
    mock_buf_adds(&line, len > LOG_TARGET_MAX ? "... " : " ");
    if (status == 0)
        mock_buf_adds(&line, "dropped");
    else
        mock_buf_addf(&line, "%u", status);
    mock_buf_addf(&line, " %ldms\n", ms_since(&req->arrival));
    (void)mock_write_all(STDERR_FILENO, line.p, line.len);
    mock_buf_free(&line);
}

/* ---- Handlers ---- */

static void json_reply(struct reply *r, unsigned int status, const char *body)
{
    memset(r, 0, sizeof(*r));
    r->status = status;
    r->content_type = "application/json";
    r->body = (char *)body;
    r->len = strlen(body);
}

/* Takes over b's bytes as the body of a 200 answer. */
static void heap_reply(struct reply *r, struct mock_buf *b)
{
    json_reply(r, MHD_HTTP_OK, "");
    r->body = b->p;
    r->len = b->len;
    r->body_is_heap = 1;
    memset(b, 0, sizeof(*b));
}

static enum MHD_Result send_reply(struct server *s, struct MHD_Connection *con, struct request *req,
                                  const char *method, struct reply *r)
{
    enum MHD_Result ret = MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        r->len, r->body, r->body_is_heap ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);

    if (resp == NULL) {
        if (r->body_is_heap)
            free(r->body);
        goto out;
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type) != MHD_YES)
        goto out;
    if (r->header != NULL && MHD_add_response_header(resp, r->header, r->header_value) != MHD_YES)
        goto out;
    ret = MHD_queue_response(con, r->status, resp);
out:
    if (resp != NULL)
        MHD_destroy_response(resp);
    stats_end(s, req, r->status);
    log_request(s, req, method, r->status);
    return ret;
}

/* Answers @r once @delay_ms have passed since the request arrived; or, when
 * stopping or told to @drop, closes the connection without a word. */
static enum MHD_Result answer_after(struct server *s, struct MHD_Connection *con,
                                    struct request *req, const char *method, long delay_ms,
                                    int drop, struct reply *r)
{
    struct timespec deadline = req->arrival;

    ts_add_ms(&deadline, delay_ms);
    if (wait_until(s, &deadline) || drop) {
        if (!drop && r->body_is_heap)
            free(r->body);
        stats_end(s, req, 0);
        log_request(s, req, method, 0);
        return MHD_NO;
    }
    return send_reply(s, con, req, method, r);
}

static enum MHD_Result serve_stats(struct server *s, struct MHD_Connection *con,
                                   struct request *req, const char *method)
{
    struct mock_buf b = {0};
    struct reply r;

    mock_stats_json(&s->stats, &b);
    heap_reply(&r, &b);
    return send_reply(s, con, req, method, &r);
}

static enum MHD_Result serve_reset(struct server *s, struct MHD_Connection *con,
                                   struct request *req, const char *method)
{
    struct reply r;

    mock_stats_reset(&s->stats);
    json_reply(&r, MHD_HTTP_OK, "{}");
    return send_reply(s, con, req, method, &r);
}

/* The rule that decides a key's answer: the first match of the first kind that has one. */
static const struct rule *match_rule(const struct options *o, const char *key)
{
    for (int kind = 0; kind < RULE_KIND_COUNT; kind++)
        for (size_t i = 0; i < o->n_rules; i++)
            if ((int)o->rules[i].kind == kind && fnmatch(o->rules[i].glob, key, 0) == 0)
                return &o->rules[i];
    return NULL;
}

/* The answer a status of a fault gets, with Retry-After where a client should wait. */
static void fault_reply(struct reply *r, long status)
{
    json_reply(r, (unsigned int)status, "{\"error\":\"injected\"}");
    if (status == MHD_HTTP_TOO_MANY_REQUESTS || status == MHD_HTTP_SERVICE_UNAVAILABLE) {
        r->header = MHD_HTTP_HEADER_RETRY_AFTER;
        r->header_value = "1";
    }
}

/*
 * Fills r with the answer for a valid key: the rules first, then one random draw against the
 * rates. Adds any extra wait to delay_ms; returns 1 when the connection is to be dropped instead.
 * The body is built here, before the wait, so the answer leaves right at the deadline.
 */
static int lookup_reply(struct server *s, const struct mock_buf *key, long *delay_ms,
                        struct reply *r)
{
    const struct options *o = s->opt;
    const struct rule *hit = match_rule(o, key->p);
    struct mock_buf body = {0};
    long status = 0;

    if (hit == NULL && draw_fault(s, delay_ms, &status))
        return 1;
    if (hit != NULL && hit->kind == RULE_FAIL)
        status = hit->value;
    if (hit != NULL && hit->kind == RULE_SLOW)
        *delay_ms += hit->value;
    if (status != 0) {
        fault_reply(r, status);
    } else if (hit != NULL && hit->kind == RULE_GARBAGE) {
        json_reply(r, MHD_HTTP_OK, "this is not json");
        r->content_type = "text/plain";
    } else if (hit != NULL && hit->kind == RULE_REDIRECT) {
        json_reply(r, MHD_HTTP_FOUND, "{\"error\":\"moved\"}");
        r->header = MHD_HTTP_HEADER_LOCATION;
        r->header_value = "http://127.0.0.1:1/elsewhere";
    } else {
        mock_body_build(&body, key->p, key->len,
                        hit != NULL && hit->kind == RULE_HUGE ? (size_t)hit->value : 0);
        heap_reply(r, &body);
    }
    return 0;
}

static enum MHD_Result serve_lookup(struct server *s, struct MHD_Connection *con,
                                    struct request *req, const char *method, const char *rest,
                                    size_t rest_len, const char *query)
{
    const struct options *o = s->opt;
    struct mock_buf key = {0};
    struct reply r;
    const char *auth;
    long delay_ms = o->latency_ms;
    int drop = 0;
    int found; /* 1 a key, 0 none, -1 a malformed escape */

    stats_begin(s, req, 1, 0);
    if (rest_len > 0)
        found = mock_pct_decode(rest, rest_len, &key) == 0 ? 1 : -1;
    else
        found = query != NULL ? mock_query_param(query, o->param, &key) : 0;
    mock_buf_grow(&key, 0);
    if (found == 1 && key.len == 0)
        found = 0;
    record_lookup(s, req->target, key.p, found == 1 ? key.len : 0);

    /* Every answer on the lookup path, refusals included, waits out the latency. */
    auth = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (o->auth != NULL && (auth == NULL || strcmp(auth, o->auth) != 0)) {
        json_reply(&r, MHD_HTTP_UNAUTHORIZED, "{\"error\":\"unauthorized\"}");
    } else if (found == 0) {
        json_reply(&r, MHD_HTTP_BAD_REQUEST, "{\"error\":\"missing key\"}");
    } else if (found < 0) {
        json_reply(&r, MHD_HTTP_BAD_REQUEST, "{\"error\":\"bad percent-encoding\"}");
    } else {
        drop = lookup_reply(s, &key, &delay_ms, &r);
    }
    mock_buf_free(&key);

    return answer_after(s, con, req, method, delay_ms, drop, &r);
}

/*
 * Fills r with the answer for a batch of valid keys: the random faults drawn once, then each key's
 * rule (see the usage text). Adds any extra wait to delay_ms; returns 1 to drop the connection.
 */
static int batch_reply(struct server *s, const struct mock_buf *keys, size_t nkeys, long *delay_ms,
                       struct reply *r)
{
    const struct options *o = s->opt;
    struct mock_buf body = {0};
    long status = 0, slowest = 0;
    int garbage = 0, redirect = 0, first = 1;

    if (draw_fault(s, delay_ms, &status))
        return 1;
    mock_buf_addc(&body, '{');
    for (size_t i = 0; i < nkeys; i++) {
        const struct rule *hit = match_rule(o, keys[i].p);
        size_t pad = 0;

        if (hit != NULL && hit->kind == RULE_FAIL) {
            if (status == 0 && (hit->value >= 500 || hit->value == MHD_HTTP_TOO_MANY_REQUESTS))
                status = hit->value;
            continue; /* any other status: the key is left out */
        }
        garbage |= hit != NULL && hit->kind == RULE_GARBAGE;
        redirect |= hit != NULL && hit->kind == RULE_REDIRECT;
        if (hit != NULL && hit->kind == RULE_SLOW && hit->value > slowest)
            slowest = hit->value;
        if (hit != NULL && hit->kind == RULE_HUGE)
            pad = (size_t)hit->value;
        if (!first)
            mock_buf_addc(&body, ',');
        first = 0;
        mock_json_string(&body, keys[i].p, keys[i].len);
        mock_buf_addc(&body, ':');
        mock_body_build(&body, keys[i].p, keys[i].len, pad);
    }
    mock_buf_addc(&body, '}');
    *delay_ms += slowest;
    if (status != 0) {
        fault_reply(r, status);
    } else if (redirect) {
        json_reply(r, MHD_HTTP_FOUND, "{\"error\":\"moved\"}");
        r->header = MHD_HTTP_HEADER_LOCATION;
        r->header_value = "http://127.0.0.1:1/elsewhere";
    } else if (garbage) {
        json_reply(r, MHD_HTTP_OK, "this is not json");
        r->content_type = "text/plain";
    } else {
        heap_reply(r, &body);
    }
    mock_buf_free(&body);
    return 0;
}

static enum MHD_Result serve_batch(struct server *s, struct MHD_Connection *con,
                                   struct request *req, const char *method, const char *rest,
                                   size_t rest_len, const char *query)
{
    const struct options *o = s->opt;
    struct mock_buf *keys = NULL;
    size_t nkeys = 0;
    const char *list = rest;
    size_t list_len = rest_len;
    struct reply r;
    const char *auth;
    long delay_ms = o->latency_ms;
    int drop = 0;
    int found =
        rest_len > 0 || (query != NULL && mock_query_raw(query, o->param, &list, &list_len));
    int split = found && list_len > 0 ? mock_split_keys(list, list_len, &keys, &nkeys) : 1;

    stats_begin(s, req, 1, split == 0 ? nkeys : 1);
    for (size_t i = 0; split == 0 && i < nkeys; i++)
        record_lookup(s, req->target, keys[i].p, keys[i].len);
    if (split != 0)
        record_lookup(s, req->target, "", 0);
    auth = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (o->auth != NULL && (auth == NULL || strcmp(auth, o->auth) != 0))
        json_reply(&r, MHD_HTTP_UNAUTHORIZED, "{\"error\":\"unauthorized\"}");
    else if (split == 1)
        json_reply(&r, MHD_HTTP_BAD_REQUEST, "{\"error\":\"missing keys\"}");
    else if (split == -1)
        json_reply(&r, MHD_HTTP_BAD_REQUEST, "{\"error\":\"bad percent-encoding\"}");
    else if (split == -2)
        json_reply(&r, MHD_HTTP_BAD_REQUEST, "{\"error\":\"empty key\"}");
    else if (o->batch_max > 0 && nkeys > (size_t)o->batch_max)
        json_reply(&r, MHD_HTTP_BAD_REQUEST, "{\"error\":\"too many keys\"}");
    else
        drop = batch_reply(s, keys, nkeys, &delay_ms, &r);
    mock_keys_free(keys, nkeys);

    return answer_after(s, con, req, method, delay_ms, drop, &r);
}

/* Whether the request path of path_len bytes at target is under prefix; *rest is what follows it
 * ("/contract?sn=K" is as good as "/contract/?sn=K"). */
static int under_prefix(const char *target, size_t path_len, const char *prefix, const char **rest,
                        size_t *rest_len)
{
    size_t plen = strlen(prefix);

    if (path_len >= plen && memcmp(target, prefix, plen) == 0) {
        *rest = target + plen;
        *rest_len = path_len - plen;
        return 1;
    }
    if (plen > 1 && prefix[plen - 1] == '/' && path_len == plen - 1 &&
        memcmp(target, prefix, path_len) == 0) {
        *rest = target + path_len;
        *rest_len = 0;
        return 1;
    }
    return 0;
}

/* Routes one complete request, once its headers (and any body) are in. */
static enum MHD_Result route(struct server *s, struct MHD_Connection *con, struct request *req,
                             const char *method)
{
    const char *target = req->target;
    size_t path_len = strcspn(target, "?");
    const char *query = target[path_len] == '?' ? target + path_len + 1 : NULL;
    int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    const char *rest = NULL;
    size_t rest_len = 0;
    struct reply r;

    if (path_len == 7 && memcmp(target, "/_stats", 7) == 0 && is_get)
        return serve_stats(s, con, req, method);
    if (path_len == 7 && memcmp(target, "/_reset", 7) == 0 && strcmp(method, "POST") == 0)
        return serve_reset(s, con, req, method);
    if (under_prefix(target, path_len, s->opt->batch_path, &rest, &rest_len) &&
        memchr(rest, '/', rest_len) == NULL && is_get)
        return serve_batch(s, con, req, method, rest, rest_len, query);
    if (!under_prefix(target, path_len, s->opt->path, &rest, &rest_len))
        rest = NULL;
    if (rest != NULL && memchr(rest, '/', rest_len) == NULL && is_get)
        return serve_lookup(s, con, req, method, rest, rest_len, query);
    stats_begin(s, req, 0, 0);
    if (rest != NULL && memchr(rest, '/', rest_len) == NULL) {
        json_reply(&r, MHD_HTTP_METHOD_NOT_ALLOWED, "{\"error\":\"method not allowed\"}");
        r.header = MHD_HTTP_HEADER_ALLOW;
        r.header_value = "GET, HEAD";
    } else {
        json_reply(&r, MHD_HTTP_NOT_FOUND, "{\"error\":\"not found\"}");
    }
    return send_reply(s, con, req, method, &r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    struct request *req = *req_cls;

    (void)url;
    (void)version;
    (void)upload_data;
    if (req == NULL)
        return MHD_NO;
    if (!req->started) {
        /* The first call only announces the request; a body, if any, comes next. */
        req->started = 1;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    return route(cls, con, req, method);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *con)
{
    struct request *req = mock_xrealloc(NULL, sizeof(*req));
    size_t len = strlen(uri) + 1;

    (void)cls;
    (void)con;
    now_mono(&req->arrival);
    req->target = memcpy(mock_xrealloc(NULL, len), uri, len);
    req->started = 0;
    req->in_flight = 0;
    return req;
}

static void on_completed(void *cls, struct MHD_Connection *con, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct request *req = *req_cls;

    (void)con;
    (void)toe;
    if (req == NULL)
        return;
    stats_end(cls, req, 0); /* Only counts if the request was cut off before its answer. */
    free(req->target);
    free(req);
    *req_cls = NULL;
}

/* libmicrohttpd's own messages are chatty once running (each drop is "an internal error"). */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct server *s = cls;

    if (s->opt->verbose || !atomic_load(&s->started)) {
        fputs(PROG ": ", stderr);
        vfprintf(stderr, fmt, ap);
    }
}

/* ---- Start-up ---- */

/* The idle timeout must outlast the longest wait a request can be given. */
static unsigned int connection_timeout(const struct options *o)
{
    long longest = o->hang_ms;

    for (size_t i = 0; i < o->n_rules; i++)
        if (o->rules[i].kind == RULE_SLOW && o->rules[i].value > longest)
            longest = o->rules[i].value;
    return (unsigned int)(60 + (o->latency_ms + longest) / 1000);
}

int main(int argc, char **argv)
{
    struct options opt = {.host = "127.0.0.1",
                          .port = 8080,
                          .path = "/contract/",
                          .batch_path = "/batch/",
                          .param = "sn",
                          .latency_ms = 500,
                          .hang_ms = 30000,
                          .seed = 1};
    struct server srv;
    struct MHD_Daemon *daemon = NULL;
    struct sigaction sa;
    sigset_t sigs;
    unsigned int flags;
    struct sockaddr_storage addr;
    const union MHD_DaemonInfo *info;
    int ipv6;
    int sig = 0;
    int rc = mock_parse_args(argc, argv, &opt);

    memset(&srv, 0, sizeof(srv));
    if (mock_stats_init(&srv.stats) != 0) {
        fputs(PROG ": cannot set up the counters\n", stderr);
        return 1;
    }
    srv.opt = &opt;
    srv.record_fd = -1;
    atomic_init(&srv.stopping, 0);
    atomic_init(&srv.started, 0);
    atomic_init(&srv.draws, 0);
    if (rc != 0) {
        rc = rc == 1 ? 0 : 2;
        goto out;
    }
    rc = 1;

    /* Block the stop signals before any thread exists, so that only sigwait() below sees them. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGPIPE, &sa, NULL) != 0 ||
        sigemptyset(&sigs) != 0 || sigaddset(&sigs, SIGINT) != 0 ||
        sigaddset(&sigs, SIGTERM) != 0 || pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0 ||

        pthread_mutex_init(&srv.record_mu, NULL) != 0) {
        fputs(PROG ": cannot set up signals and locks\n", stderr);
        goto out;
    }
    if (opt.record != NULL) {
        srv.record_fd = open(opt.record, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (srv.record_fd < 0) {
            report_errno("cannot open", opt.record);
            goto out;
        }
    }
    if (mock_resolve_host(opt.host, opt.port, &addr) != 0)
        goto out;
    flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC |
            MHD_USE_ERROR_LOG | (addr.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    daemon = MHD_start_daemon(
        flags, (uint16_t)opt.port, NULL, NULL, on_request, &srv, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, &srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)LISTEN_BACKLOG, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout(&opt),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY_LIMIT, MHD_OPTION_THREAD_STACK_SIZE,
        (size_t)THREAD_STACK_SIZE, MHD_OPTION_URI_LOG_CALLBACK, on_uri, &srv,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, &srv, MHD_OPTION_END);
    info = daemon != NULL ? MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (info == NULL || info->port == 0) {
        fprintf(stderr, PROG ": cannot listen on %s port %ld\n", opt.host, opt.port);
        goto out;
    }
    atomic_store(&srv.started, 1);
    if (opt.port_file != NULL && mock_write_port_file(opt.port_file, info->port) != 0)
        goto out;
    /* An IPv6 literal needs brackets in a URL. */
    ipv6 = strchr(opt.host, ':') != NULL;
    if (printf("listening on http://%s%s%s:%u\n", ipv6 ? "[" : "", opt.host, ipv6 ? "]" : "",
               (unsigned int)info->port) < 0 ||
        fflush(stdout) != 0) {
        fputs(PROG ": cannot write to stdout\n", stderr);
        goto out;
    }

    while (sigwait(&sigs, &sig) != 0)
        ;
    if (opt.verbose)
        fprintf(stderr, PROG ": signal %d, stopping\n", sig);
    rc = 0;
out:
    if (daemon != NULL) {
        /* Cut waiting requests short first, or stopping would wait out their latencies. */
        atomic_store(&srv.stopping, 1);
        MHD_stop_daemon(daemon);
    }
    if (srv.record_fd >= 0 && close(srv.record_fd) != 0 && rc == 0) {
        report_errno("cannot close", opt.record);
        rc = 1;
    }
    for (size_t i = 0; i < opt.n_rules; i++)
        free(opt.rules[i].glob);
    free(opt.rules);
    mock_stats_free(&srv.stats);
    return rc;
}
