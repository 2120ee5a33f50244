/* lookup.c: one job's lookups, spread over the fixed pool of HTTP threads.
 *
 * Each distinct key of a job is looked up once: the first row that names it
 * makes an entry and submits it to the pool; later rows wait on the same
 * entry. The job's store (lookup_store.c) indexes every key seen by
 * fingerprint. An entry is held by each window row that names it (its
 * reference count) and, while pending, by the pool. Once finished and held by
 * no row it joins a cache of up to EXPORT_BATCH_ROWS entries; the oldest
 * beyond that is packed into the store's spill file and freed, and a later
 * row naming its key reads it back, finished, with no second request. So a
 * job holds in memory its window, the cache and about 30 bytes per distinct
 * key, whatever its length. Retries, backoff and the job's deadline are
 * handled here, on the pool thread that owns the request, and so are the
 * fleet-wide caps: before each request its thread waits for a permit and a
 * slot of the pace (limiter.c).
 *
 * With the service's shared cache or batch endpoint on, a new entry goes to
 * the stage first (lookup_stage.c), where its key is looked for in Redis
 * with others and the misses are grouped into batch requests
 * (lookup_batch.c); the internals those share are in lookup_int.h.
 *
 * Metrics: each HTTP request is counted (by service and code, with its time)
 * on the pool thread as it ends, and the pool's busy threads around each
 * task; keys and their errors are counted by the runner as the job ends, with
 * P:stats (exw_lookups_counts). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exw/clock.h"
#include "exw/http.h"
#include "exw/json.h"
#include "exw/log.h"
#include "lookup_int.h"

#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 5000

void *exw_lookup_thread_init(unsigned idx, void *ud)
{
    struct lookup_thread *t = exw_xcalloc(1, sizeof(*t));
    struct exw_errbuf eb;
    char name[16];

    t->metrics = ud;
    snprintf(name, sizeof(name), "w%u", idx);
    exw_log_set_thread(name);
    if (exw_http_new(&t->http, &eb) != EXW_OK) {
        EXW_LOG(EXW_LOG_ERROR, "%s", eb.msg);
        free(t);
        return NULL;
    }
    t->rng = ((uint64_t)exw_mono_ms() << 16) ^ ((uint64_t)idx * 0x9E3779B97F4A7C15ull) ^
             (uint64_t)(uintptr_t)t;
    if (t->rng == 0)
        t->rng = 1;
    exw_metrics_gauge_add(t->metrics, EXW_GAUGE_POOL_THREADS, 1);
    return t;
}

void exw_lookup_thread_fini(void *ctx, void *ud)
{
    struct lookup_thread *t = ctx;

    (void)ud;
    exw_metrics_gauge_add(t->metrics, EXW_GAUGE_POOL_THREADS, -1);
    exw_http_free(t->http);
    free(t);
}

/* xorshift64: jitter needs no more than this, and each thread has its own. */
static uint64_t next_random(struct lookup_thread *t)
{
    t->rng ^= t->rng << 13;
    t->rng ^= t->rng >> 7;
    t->rng ^= t->rng << 17;
    return t->rng;
}

/* What curl asks, many times a request, while the request is on the wire:
 * only the abort flag, as the request's own timeout already ends at the
 * job's deadline. Without a clock read each time, 10^5 lookups at 0 ms took
 * 6.1 s of the worker's CPU instead of 6.6 (medians of 6, alternating). */
static int request_aborted(void *ud)
{
    struct lookups *l = ud;

    return atomic_load(&l->abort);
}

int lookup_should_abort(void *ud)
{
    struct lookups *l = ud;

    return request_aborted(l) || exw_mono_ms() >= l->deadline_ms;
}

/* Sleeps @ms in short steps, waking early when the job's lookups must stop.
 * Returns 0 when it had to stop. */
static int backoff_sleep(struct lookups *l, int64_t ms)
{
    int64_t until = exw_mono_ms() + ms;

    while (!lookup_should_abort(l)) {
        int64_t left = until - exw_mono_ms();

        if (left <= 0)
            return 1;
        exw_sleep_ms(left < 50 ? left : 50);
    }
    return 0;
}

void lookup_fail(struct lookup_entry *e, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    free(e->error);
    e->error = exw_xstrdup(msg);
}

/* The code label of a request that ended with @rc and @resp. */
static int request_code(exw_err rc, const struct exw_http_response *resp)
{
    switch (rc) {
    case EXW_OK:
        return (int)resp->status;
    case EXW_ETIMEOUT:
        return EXW_CODE_TIMEOUT;
    case EXW_EHTTP:
        return EXW_CODE_CONNECT;
    case EXW_ECANCELLED:
        return EXW_CODE_ABORTED;
    case EXW_ELIMIT: /* a body over the cap: an answer came, with its status */
        return resp->status > 0 ? (int)resp->status : EXW_CODE_OTHER;
    default:
        return EXW_CODE_OTHER;
    }
}

/* Counts the HTTP requests of one exw_http_get, begun at @began_us, as
 * lookup_requests counts them: at least one, and curl's silent resend as one
 * more. The sends before the last died unanswered on a kept-alive
 * connection: each counts as connect, timed until the next went out. */
static void count_requests(struct lookups *l, struct exw_metrics *m, exw_err rc,
                           const struct exw_http_response *resp, int64_t began_us)
{
    int64_t now = exw_mono_us();
    int i;

    if (resp->sent > 1 && resp->last_sent_us >= began_us) {
        int64_t each = (resp->last_sent_us - began_us) / (resp->sent - 1);

        for (i = 0; i < resp->sent - 1; i++)
            exw_metrics_request(m, l->service, EXW_CODE_CONNECT, each);
        began_us = resp->last_sent_us;
    }
    exw_metrics_request(m, l->service, request_code(rc, resp), now - began_us);
}

/* Counts a request about to go out for the @n entries @es (and their keys as
 * reached on its @first), unless the job's outcome is decided: returns 0 then,
 * and nothing may be sent. Under the lock the job's end reads the counts
 * under, after it raised the abort flag: so every request sent is in the
 * job's lookup_requests, also one still on the wire as the job ends. A batch
 * is one request. */
static int count_attempt(struct lookups *l, struct lookup_entry **es, size_t n, int first)
{
    size_t i;
    int go;

    exw_mutex_lock(&l->mu);
    go = !atomic_load(&l->abort);
    if (go) {
        l->requests++;
        for (i = 0; first && i < n; i++) {
            l->reached++;
            es[i]->reached = 1;
        }
    }
    exw_mutex_unlock(&l->mu);
    return go;
}

#define ABANDONED "abandoned: the job's outcome was already decided"
#define TIME_PASSED "the job's time limit passed before the lookup finished"

int lookup_fetch(struct lookups *l, struct lookup_thread *t, const char *url,
                 struct lookup_entry **es, size_t n, struct exw_http_response *resp, char *why,
                 size_t whysz)
{
    const struct exw_service *svc = l->svc;
    size_t max_body = resp->body.max;
    long attempt;

    for (attempt = 0; attempt <= svc->retries; attempt++) {
        struct exw_http_request req = {
            .url = url,
            .auth = svc->auth,
            .max_body = max_body,
            .ca_file = l->ca_file,
            /* On the last try a fresh connection: curl never resends on one, so
             * a key gets at most RETRIES + 1 requests. */
            .fresh_connect = attempt == svc->retries,
            /* A batch's answer is large enough to gain from compression; a
             * single key's is not worth the header. */
            .compressed = l->use_batch,
            .abort_fn = request_aborted,
            .abort_ud = l,
        };
        struct limiter_grant grant;
        struct exw_errbuf eb;
        int64_t left, wait_ms, began_us;
        long sent;
        exw_err rc;

        if (atomic_load(&l->abort)) {
            snprintf(why, whysz, ABANDONED);
            return 0;
        }
        if (l->deadline_ms - exw_mono_ms() <= 0) {
            snprintf(why, whysz, TIME_PASSED);
            return 0;
        }
        /* The fleet-wide caps: a permit, then a slot of the pace. */
        if (!exw_limiter_wait(l->limiter, l->service, svc->timeout_ms, lookup_should_abort, l,
                              &grant)) {
            snprintf(why, whysz, "%s",
                     atomic_load(&l->abort) ? ABANDONED
                                            : "the job's time limit passed while the lookup "
                                              "waited for the service's fleet-wide cap");
            return 0;
        }
        left = l->deadline_ms - exw_mono_ms();
        req.timeout_ms = left < svc->timeout_ms ? (long)left : svc->timeout_ms;
        if (left <= 0 || !count_attempt(l, es, n, attempt == 0)) {
            exw_limiter_done(l->limiter, &grant);
            snprintf(why, whysz, "%s", left <= 0 ? TIME_PASSED : ABANDONED);
            return 0;
        }
        began_us = exw_mono_us();
        rc = exw_http_get(t->http, &req, resp, &eb);
        exw_limiter_done(l->limiter, &grant);
        count_requests(l, t->metrics, rc, resp, began_us);
        /* A refused connection is an attempt too (counted above); a silent
         * resend by curl is one more, and uses up one of ours. */
        sent = resp->sent > 0 ? resp->sent : 1;
        if (sent > 1) {
            exw_mutex_lock(&l->mu);
            l->requests += sent - 1;
            exw_mutex_unlock(&l->mu);
        }
        attempt += sent - 1;
        if (rc == EXW_OK && resp->status == 200)
            return 1;
        if (rc == EXW_ECANCELLED) {
            snprintf(why, whysz, ABANDONED);
            return 0;
        }
        if (rc == EXW_OK) {
            int retryable = resp->status >= 500 || resp->status == 429;

            snprintf(why, whysz, "HTTP %ld from service %s", resp->status, svc->name);
            if (!retryable)
                return 0;
        } else {
            snprintf(why, whysz, "%s (service %s)", eb.msg, svc->name);
            if (rc != EXW_ETIMEOUT && rc != EXW_EHTTP)
                return 0; /* a body over the cap or no memory: retrying will not help */
        }
        if (attempt >= svc->retries)
            break;
        /* Full jitter (AWS architecture blog): a random wait up to the
         * exponential bound, so that many keys failing at once do not retry in
         * step. A Retry-After from the service wins, within the deadline. */
        if (rc == EXW_OK && resp->retry_after_s >= 0) {
            wait_ms = resp->retry_after_s * 1000;
        } else {
            int64_t bound = BACKOFF_BASE_MS << (attempt < 10 ? attempt : 10);

            if (bound > BACKOFF_CAP_MS)
                bound = BACKOFF_CAP_MS;
            wait_ms = (int64_t)(next_random(t) % (uint64_t)(bound + 1));
        }
        EXW_LOG(EXW_LOG_DEBUG, "lookup attempt %ld failed (%s), retrying in %lld ms", attempt + 1,
                why, (long long)wait_ms);
        if (!backoff_sleep(l, wait_ms))
            break;
    }
    if (exw_mono_ms() >= l->deadline_ms)
        snprintf(why, whysz, TIME_PASSED);
    return 0;
}

static void run_lookup(struct exw_task *task, void *thread_ctx)
{
    struct lookup_entry *e = (struct lookup_entry *)task;
    struct lookup_thread *t = thread_ctx;
    struct lookups *l = e->owner;
    struct exw_http_response resp;
    struct exw_errbuf eb;
    char *url = NULL;
    char why[256];
    const char *body;

    exw_metrics_gauge_add(t->metrics, EXW_GAUGE_POOL_BUSY, 1);
    exw_http_response_init(&resp, l->max_response_bytes);
    if (exw_http_expand(l->svc->url, e->key, strlen(e->key), &url, &eb) != EXW_OK) {
        lookup_fail(e, "%s", eb.msg);
        goto out;
    }
    if (!lookup_fetch(l, t, url, &e, 1, &resp, why, sizeof(why))) {
        lookup_fail(e, "%s", why);
        goto out;
    }
    body = resp.body.data ? resp.body.data : "";
    /* A JSON answer is a hit whatever this job's columns make of it. */
    if (lookup_fill(l, e, body, resp.body.len) ||
        (l->use_cache && exw_json_check(body, resp.body.len, EXW_LOOKUP_MAX_DEPTH, &eb) == EXW_OK))
        lookup_stage_offer(l, e->key, body, resp.body.len);
out:
    free(url);
    exw_http_response_cleanup(&resp);
    exw_metrics_gauge_add(t->metrics, EXW_GAUGE_POOL_BUSY, -1);
}

int lookup_fill(struct lookups *l, struct lookup_entry *e, const char *body, size_t len)
{
    struct exw_errbuf eb;

    e->cells =
        exw_xcalloc(l->job->nlookup_columns ? l->job->nlookup_columns : 1, sizeof(*e->cells));
    if (exw_job_lookup_cells(l->job, body, len, e->cells, &eb) == EXW_OK)
        return 1;
    free(e->cells);
    e->cells = NULL;
    lookup_fail(e, "%s", eb.msg);
    return 0;
}

void lookup_finish(struct lookups *l, struct lookup_entry **es, size_t n, int submitted, exw_err rc)
{
    int wake = 0;
    size_t i;

    exw_mutex_lock(&l->mu);
    for (i = 0; i < n; i++) {
        struct lookup_entry *e = es[i];

        if (rc != EXW_OK && e->error == NULL)
            e->error = exw_xstrdup("abandoned: the worker is stopping");
        if (e->cells != NULL) {
            e->state = ENTRY_OK;
        } else {
            e->state = ENTRY_FAILED;
            if (e->error == NULL)
                e->error = exw_xstrdup("lookup failed");
            if (!atomic_load(&l->abort)) {
                l->failed++;
                /* A key that never got a request is no lookup in P:stats. */
                if (e->reached)
                    l->errors++;
                if (l->first_error[0] == '\0') {
                    char *clean = exw_xstrndup(e->key, strlen(e->key) > 80 ? 80 : strlen(e->key));

                    snprintf(l->first_error, sizeof(l->first_error), "lookup of key \"%s\": %s",
                             clean, e->error);
                    free(clean);
                }
            }
        }
        l->done++;
        if (submitted)
            l->inflight--;
        if (l->awaited == e)
            wake = 1;
    }
    if (submitted && l->await_all && l->inflight == 0)
        wake = 1;
    /* Only the job's thread waits, and only for one entry (or for all): a
     * wake-up for every other entry would cost it a context switch per key. */
    if (wake)
        pthread_cond_signal(&l->changed);
    exw_mutex_unlock(&l->mu);
}

static void lookup_done(struct exw_task *task, exw_err rc)
{
    struct lookup_entry *e = (struct lookup_entry *)task;

    lookup_finish(e->owner, &e, 1, 1, rc);
}

void lookup_submit(struct lookups *l, struct lookup_entry *e)
{
    e->task.run = run_lookup;
    e->task.done = lookup_done;
    exw_mutex_lock(&l->mu);
    l->inflight++;
    exw_mutex_unlock(&l->mu);
    if (exw_pool_submit(l->pool, &l->queue, &e->task) != EXW_OK)
        lookup_done(&e->task, EXW_ESHUTDOWN);
}

struct lookups *exw_lookups_new(struct exw_pool *pool, const struct exw_job *job,
                                const struct exw_service *svc, const struct exw_config *cfg,
                                int64_t deadline_ms)
{
    struct lookups *l = exw_xcalloc(1, sizeof(*l));
    size_t i;

    l->pool = pool;
    exw_pool_queue_init(&l->queue);
    l->job = job;
    l->svc = svc;
    l->service = -1;
    for (i = 0; svc != NULL && i < cfg->nservices; i++)
        if (&cfg->services[i] == svc)
            l->service = (int)i;
    l->max_response_bytes = (size_t)cfg->max_response_bytes;
    l->ca_file = cfg->tls_ca_file;
    l->deadline_ms = deadline_ms;
    atomic_init(&l->abort, 0);
    pthread_mutex_init(&l->mu.m, NULL);
    if (exw_cond_init_mono(&l->changed) != 0)
        EXW_ASSERT(!"a condition variable could not be made");
    l->use_batch = svc != NULL && svc->batch_url != NULL;
    l->store = exw_lookup_store_new(cfg->tmpdir);
    l->cache_max = cfg->batch_rows > 0 ? cfg->batch_rows : 1;
    exw_buf_init(&l->pack, SIZE_MAX);
    return l;
}

void exw_lookups_share(struct lookups *l, struct worker *w, struct conn *conn)
{
    l->metrics = w->metrics;
    l->limiter = w->limiter;
    l->conn = conn;
    l->use_cache = l->svc != NULL && l->svc->cache_ttl_s > 0 && conn != NULL;
}

void exw_lookups_abort(struct lookups *l) { atomic_store(&l->abort, 1); }

static void free_entry(struct lookups *l, struct lookup_entry *e)
{
    if (e->cells != NULL) {
        exw_cells_cleanup(e->cells, l->job->nlookup_columns);
        free(e->cells);
    }
    free(e->error);
    free(e->key);
    free(e);
    l->live--;
}

void exw_lookups_free(struct lookups *l)
{
    uint32_t id, n;

    if (l == NULL)
        return;
    exw_lookups_abort(l);
    exw_mutex_lock(&l->mu);
    l->await_all = 1;
    while (l->inflight > 0)
        pthread_cond_wait(&l->changed, &l->mu.m);
    exw_mutex_unlock(&l->mu);
    /* The answers that came are good for other jobs, whatever ended this one. */
    lookup_stage_write(l, 1);
    lookup_stage_cleanup(l);
    /* Every live entry, held by a row or not, is named by its key's record. */
    n = exw_lookup_store_count(l->store);
    for (id = 1; id <= n; id++) {
        struct lookup_entry *e = exw_lookup_store_live(l->store, id);

        if (e != NULL)
            free_entry(l, e);
    }
    exw_lookup_store_free(l->store);
    exw_buf_cleanup(&l->pack);
    pthread_cond_destroy(&l->changed);
    pthread_mutex_destroy(&l->mu.m);
    free(l);
}

static void cache_remove(struct lookups *l, struct lookup_entry *e)
{
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        l->oldest = e->newer;
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        l->newest = e->older;
    e->older = e->newer = NULL;
    e->cached = 0;
    l->ncached--;
}

static void cache_add(struct lookups *l, struct lookup_entry *e)
{
    e->older = l->newest;
    e->newer = NULL;
    if (l->newest != NULL)
        l->newest->newer = e;
    else
        l->oldest = e;
    l->newest = e;
    e->cached = 1;
    l->ncached++;
}

/* Moves the oldest cached entry to the spill file. Returns 0 when the file
 * failed (the entry then stays, and the job is to fail: exw_lookups_error). */
static int spill_oldest(struct lookups *l)
{
    struct lookup_entry *e = l->oldest;
    struct exw_errbuf eb;

    exw_buf_reset(&l->pack);
    exw_lookup_pack(&l->pack, e->cells, l->job->nlookup_columns, e->error);
    if (exw_lookup_store_spill(l->store, e->id, l->pack.data, l->pack.len, &eb) != EXW_OK) {
        if (l->store_error[0] == '\0') {
            snprintf(l->store_error, sizeof(l->store_error), "%s", eb.msg);
            EXW_LOG(EXW_LOG_ERROR, "%s", eb.msg);
        }
        return 0;
    }
    cache_remove(l, e);
    free_entry(l, e);
    return 1;
}

void exw_lookups_release(struct lookups *l, struct lookup_entry *e)
{
    int pending;

    EXW_ASSERT(e->refs > 0);
    if (--e->refs > 0)
        return;
    exw_mutex_lock(&l->mu);
    pending = e->state == ENTRY_PENDING;
    exw_mutex_unlock(&l->mu);
    /* A pending entry no row holds (only as a job ends) stays until the end. */
    if (pending)
        return;
    cache_add(l, e);
    /* A job that has ended frees everything soon: no point in writing. */
    while (l->ncached > l->cache_max && !atomic_load(&l->abort) && l->store_error[0] == '\0')
        if (!spill_oldest(l))
            break;
}

/* A finished entry for key @id from the spill file: no request is made, and
 * the counts do not change. On a read failure the entry fails and so does the
 * job (exw_lookups_error). */
static struct lookup_entry *read_back(struct lookups *l, uint32_t id, const char *key)
{
    struct lookup_entry *e = exw_xcalloc(1, sizeof(*e));
    struct exw_errbuf eb;
    const char *data;
    size_t len;

    e->owner = l;
    e->key = exw_xstrdup(key);
    e->id = id;
    if (exw_lookup_store_read(l->store, id, &data, &len, &eb) != EXW_OK ||
        exw_lookup_unpack(data, len, l->job->nlookup_columns, &e->cells, &e->error, &eb) !=
            EXW_OK) {
        if (l->store_error[0] == '\0') {
            snprintf(l->store_error, sizeof(l->store_error), "%s", eb.msg);
            EXW_LOG(EXW_LOG_ERROR, "%s", eb.msg);
        }
        e->cells = NULL;
        e->error = exw_xstrdup(eb.msg);
    }
    /* Not yet seen by another thread: no lock needed, but the rule is kept. */
    exw_mutex_lock(&l->mu);
    e->state = e->cells != NULL ? ENTRY_OK : ENTRY_FAILED;
    exw_mutex_unlock(&l->mu);
    exw_lookup_store_set_live(l->store, id, e);
    l->live++;
    l->read_back++;
    return e;
}

struct lookup_entry *exw_lookups_request(struct lookups *l, const char *key)
{
    struct lookup_fp fp;
    struct lookup_entry *e;
    uint32_t id;

    exw_lookup_store_fp(l->store, key, &fp);
    id = exw_lookup_store_find(l->store, &fp);
    if (id != 0) {
        e = exw_lookup_store_live(l->store, id);
        if (e == NULL)
            e = read_back(l, id, key);
        else if (e->cached)
            cache_remove(l, e);
        e->refs++;
        return e;
    }
    e = exw_xcalloc(1, sizeof(*e));
    e->owner = l;
    e->key = exw_xstrdup(key);
    e->state = ENTRY_PENDING;
    e->refs = 1;
    e->id = exw_lookup_store_add(l->store, &fp, e);
    l->live++;
    l->total++;
    if (l->use_cache || l->use_batch)
        lookup_stage_add(l, e);
    else
        lookup_submit(l, e);
    return e;
}

void exw_lookups_write_cache(struct lookups *l) { lookup_stage_write(l, 1); }

const char *exw_lookups_error(struct lookups *l)
{
    return l->store_error[0] != '\0' ? l->store_error : NULL;
}

void exw_lookups_mem(struct lookups *l, struct lookups_mem *out)
{
    out->live = l->live;
    out->cached = l->ncached;
    out->read_back = l->read_back;
    exw_lookup_store_stats(l->store, &out->store);
}

int exw_lookups_wait(struct lookups *l, struct lookup_entry *e, int64_t wait_ms,
                     const struct exw_cell **cells, const char **error)
{
    struct timespec until;
    int done;

    /* Still on the stage: nothing more comes before this row is written. */
    if (e->staged)
        lookup_stage_flush(l);
    lookup_stage_write(l, 0);
    until = exw_mono_deadline(wait_ms);
    exw_mutex_lock(&l->mu);
    l->awaited = e;
    while (e->state == ENTRY_PENDING && wait_ms > 0) {
        if (pthread_cond_timedwait(&l->changed, &l->mu.m, &until) != 0)
            break;
    }
    l->awaited = NULL;
    done = e->state != ENTRY_PENDING;
    exw_mutex_unlock(&l->mu);
    *cells = done ? e->cells : NULL;
    *error = done ? e->error : NULL;
    return done;
}

const char *exw_lookups_key(const struct lookup_entry *e) { return e->key; }

void exw_lookups_counts(struct lookups *l, struct lookup_counts *out)
{
    exw_mutex_lock(&l->mu);
    out->total = l->total;
    out->done = l->done;
    out->failed = l->failed;
    out->errors = l->errors;
    out->requests = l->requests;
    out->reached = l->reached;
    snprintf(out->first_error, sizeof(out->first_error), "%s", l->first_error);
    exw_mutex_unlock(&l->mu);
}
