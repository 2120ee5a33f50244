/* lookup.c: one job's lookups, spread over the fixed pool of HTTP threads.
 *
 * Each distinct key of a job is looked up once: the first row that names it
 * makes an entry (in a hash table keyed by the key) and submits it to the
 * pool; later rows wait on the same entry. Entries live until the job ends, so
 * what a job holds grows with its distinct keys (a key and its lookup cells),
 * not with its rows. Retries, backoff and the job's deadline are handled here,
 * on the pool thread that owns the request. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exw/clock.h"
#include "exw/http.h"
#include "exw/log.h"
#include "worker.h"

#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 5000

enum entry_state { ENTRY_PENDING, ENTRY_OK, ENTRY_FAILED };

struct lookup_entry {
    struct exw_task task; /* first: the pool hands this back */
    struct lookups *owner;
    char *key;
    struct exw_cell *cells; /* ENTRY_OK: nlookup_columns cells, owned */
    char *error;            /* ENTRY_FAILED: why */
    int state;              /* guarded by owner->mu */
    struct lookup_entry *next_in_bucket;
};

struct lookups {
    struct exw_pool *pool;
    const struct exw_job *job;
    const struct exw_service *svc;
    size_t max_response_bytes;
    const char *ca_file;
    int64_t deadline_ms;
    atomic_int abort;
    atomic_llong requests;
    atomic_llong reached; /* keys with at least one request sent */
    struct exw_mutex mu;
    pthread_cond_t changed;        /* an entry finished */
    struct lookup_entry **buckets; /* owned by the job thread */
    size_t nbuckets;
    long long total;       /* entries made (job thread only) */
    long long done;        /* guarded by mu */
    long long failed;      /* guarded by mu */
    long long inflight;    /* guarded by mu: submitted, done callback not yet run */
    char first_error[300]; /* guarded by mu */
};

struct lookup_thread {
    struct exw_http *http;
    uint64_t rng;
};

void *exw_lookup_thread_init(unsigned idx, void *ud)
{
    struct lookup_thread *t = exw_xcalloc(1, sizeof(*t));
    struct exw_errbuf eb;
    char name[16];

    (void)ud;
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
    return t;
}

void exw_lookup_thread_fini(void *ctx, void *ud)
{
    struct lookup_thread *t = ctx;

    (void)ud;
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

static int should_abort(void *ud)
{
    struct lookups *l = ud;

    return atomic_load(&l->abort) || exw_mono_ms() >= l->deadline_ms;
}

/* Sleeps @ms in short steps, waking early when the job's lookups must stop.
 * Returns 0 when it had to stop. */
static int backoff_sleep(struct lookups *l, int64_t ms)
{
    int64_t until = exw_mono_ms() + ms;

    while (!should_abort(l)) {
        int64_t left = until - exw_mono_ms();

        if (left <= 0)
            return 1;
        exw_sleep_ms(left < 50 ? left : 50);
    }
    return 0;
}

static void fail_entry(struct lookup_entry *e, const char *fmt, ...) EXW_PRINTF(2, 3);
static void fail_entry(struct lookup_entry *e, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    free(e->error);
    e->error = exw_xstrdup(msg);
}

static void run_lookup(struct exw_task *task, void *thread_ctx)
{
    struct lookup_entry *e = (struct lookup_entry *)task;
    struct lookup_thread *t = thread_ctx;
    struct lookups *l = e->owner;
    const struct exw_service *svc = l->svc;
    struct exw_http_response resp;
    struct exw_errbuf eb;
    char *url = NULL;
    long attempt;

    exw_http_response_init(&resp, l->max_response_bytes);
    if (exw_http_expand(svc->url, e->key, strlen(e->key), &url, &eb) != EXW_OK) {
        fail_entry(e, "%s", eb.msg);
        goto out;
    }
    for (attempt = 0; attempt <= svc->retries; attempt++) {
        int64_t left = l->deadline_ms - exw_mono_ms();
        struct exw_http_request req = {
            .url = url,
            .auth = svc->auth,
            .timeout_ms = left < svc->timeout_ms ? (long)left : svc->timeout_ms,
            .max_body = l->max_response_bytes,
            .ca_file = l->ca_file,
            /* On the last try a fresh connection: curl never resends on one, so
             * a key gets at most RETRIES + 1 requests. */
            .fresh_connect = attempt == svc->retries,
            .abort_fn = should_abort,
            .abort_ud = l,
        };
        int64_t wait_ms;
        long sent;
        exw_err rc;

        if (atomic_load(&l->abort)) {
            fail_entry(e, "abandoned: the job's outcome was already decided");
            goto out;
        }
        if (left <= 0) {
            fail_entry(e, "the job's time limit passed before the lookup finished");
            goto out;
        }
        rc = exw_http_get(t->http, &req, &resp, &eb);
        /* A refused connection is an attempt too; a silent resend by curl uses
         * up one of ours. */
        sent = resp.sent > 0 ? resp.sent : 1;
        atomic_fetch_add(&l->requests, sent);
        if (attempt == 0)
            atomic_fetch_add(&l->reached, 1);
        attempt += sent - 1;
        if (rc == EXW_OK && resp.status == 200) {
            e->cells = exw_xcalloc(l->job->nlookup_columns ? l->job->nlookup_columns : 1,
                                   sizeof(*e->cells));
            if (exw_job_lookup_cells(l->job, resp.body.data ? resp.body.data : "", resp.body.len,
                                     e->cells, &eb) != EXW_OK) {
                free(e->cells);
                e->cells = NULL;
                fail_entry(e, "%s", eb.msg);
            }
            goto out;
        }
        if (rc == EXW_ECANCELLED) {
            fail_entry(e, "abandoned: the job's outcome was already decided");
            goto out;
        }
        if (rc == EXW_OK) {
            int retryable = resp.status >= 500 || resp.status == 429;

            fail_entry(e, "HTTP %ld from service %s", resp.status, svc->name);
            if (!retryable)
                goto out;
        } else {
            fail_entry(e, "%s (service %s)", eb.msg, svc->name);
            if (rc != EXW_ETIMEOUT && rc != EXW_EHTTP)
                goto out; /* a body over the cap or no memory: retrying will not help */
        }
        if (attempt >= svc->retries)
            break;
        /* Full jitter (AWS architecture blog): a random wait up to the
         * exponential bound, so that many keys failing at once do not retry in
         * step. A Retry-After from the service wins, within the deadline. */
        if (rc == EXW_OK && resp.retry_after_s >= 0) {
            wait_ms = resp.retry_after_s * 1000;
        } else {
            int64_t bound = BACKOFF_BASE_MS << (attempt < 10 ? attempt : 10);

            if (bound > BACKOFF_CAP_MS)
                bound = BACKOFF_CAP_MS;
            wait_ms = (int64_t)(next_random(t) % (uint64_t)(bound + 1));
        }
        EXW_LOG(EXW_LOG_DEBUG, "lookup attempt %ld failed (%s), retrying in %lld ms", attempt + 1,
                e->error, (long long)wait_ms);
        if (!backoff_sleep(l, wait_ms))
            break;
    }
    if (exw_mono_ms() >= l->deadline_ms)
        fail_entry(e, "the job's time limit passed before the lookup finished");
out:
    free(url);
    exw_http_response_cleanup(&resp);
}

static void lookup_done(struct exw_task *task, exw_err rc)
{
    struct lookup_entry *e = (struct lookup_entry *)task;
    struct lookups *l = e->owner;

    exw_mutex_lock(&l->mu);
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
            if (l->first_error[0] == '\0') {
                char *clean = exw_xstrndup(e->key, strlen(e->key) > 80 ? 80 : strlen(e->key));

                snprintf(l->first_error, sizeof(l->first_error), "lookup of key \"%s\": %s", clean,
                         e->error);
                free(clean);
            }
        }
    }
    l->done++;
    l->inflight--;
    pthread_cond_broadcast(&l->changed);
    exw_mutex_unlock(&l->mu);
}

struct lookups *exw_lookups_new(struct exw_pool *pool, const struct exw_job *job,
                                const struct exw_service *svc, const struct exw_config *cfg,
                                int64_t deadline_ms)
{
    struct lookups *l = exw_xcalloc(1, sizeof(*l));

    l->pool = pool;
    l->job = job;
    l->svc = svc;
    l->max_response_bytes = (size_t)cfg->max_response_bytes;
    l->ca_file = cfg->tls_ca_file;
    l->deadline_ms = deadline_ms;
    atomic_init(&l->abort, 0);
    atomic_init(&l->requests, 0);
    atomic_init(&l->reached, 0);
    pthread_mutex_init(&l->mu.m, NULL);
    if (exw_cond_init_mono(&l->changed) != 0)
        EXW_ASSERT(!"a condition variable could not be made");
    l->nbuckets = 1024;
    l->buckets = exw_xcalloc(l->nbuckets, sizeof(*l->buckets));
    return l;
}

void exw_lookups_abort(struct lookups *l) { atomic_store(&l->abort, 1); }

void exw_lookups_free(struct lookups *l)
{
    size_t i;

    if (l == NULL)
        return;
    exw_lookups_abort(l);
    exw_mutex_lock(&l->mu);
    while (l->inflight > 0)
        pthread_cond_wait(&l->changed, &l->mu.m);
    exw_mutex_unlock(&l->mu);
    for (i = 0; i < l->nbuckets; i++) {
        struct lookup_entry *e = l->buckets[i];

        while (e != NULL) {
            struct lookup_entry *next = e->next_in_bucket;

            if (e->cells != NULL) {
                exw_cells_cleanup(e->cells, l->job->nlookup_columns);
                free(e->cells);
            }
            free(e->error);
            free(e->key);
            free(e);
            e = next;
        }
    }
    free(l->buckets);
    pthread_cond_destroy(&l->changed);
    pthread_mutex_destroy(&l->mu.m);
    free(l);
}

static uint64_t hash_key(const char *s)
{
    uint64_t h = 14695981039346656037ull;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* Doubles the table when it holds twice as many entries as buckets. */
static void maybe_grow(struct lookups *l)
{
    struct lookup_entry **old = l->buckets;
    size_t oldn = l->nbuckets;
    size_t i;

    if ((size_t)l->total < l->nbuckets * 2)
        return;
    l->nbuckets *= 2;
    l->buckets = exw_xcalloc(l->nbuckets, sizeof(*l->buckets));
    for (i = 0; i < oldn; i++) {
        struct lookup_entry *e = old[i];

        while (e != NULL) {
            struct lookup_entry *next = e->next_in_bucket;
            size_t b = hash_key(e->key) & (l->nbuckets - 1);

            e->next_in_bucket = l->buckets[b];
            l->buckets[b] = e;
            e = next;
        }
    }
    free(old);
}

struct lookup_entry *exw_lookups_request(struct lookups *l, const char *key)
{
    size_t b = hash_key(key) & (l->nbuckets - 1);
    struct lookup_entry *e;

    for (e = l->buckets[b]; e != NULL; e = e->next_in_bucket)
        if (strcmp(e->key, key) == 0)
            return e;
    e = exw_xcalloc(1, sizeof(*e));
    e->owner = l;
    e->key = exw_xstrdup(key);
    e->state = ENTRY_PENDING;
    e->task.run = run_lookup;
    e->task.done = lookup_done;
    e->next_in_bucket = l->buckets[b];
    l->buckets[b] = e;
    l->total++;
    exw_mutex_lock(&l->mu);
    l->inflight++;
    exw_mutex_unlock(&l->mu);
    if (exw_pool_submit(l->pool, &e->task) != EXW_OK)
        lookup_done(&e->task, EXW_ESHUTDOWN);
    maybe_grow(l);
    return e;
}

int exw_lookups_wait(struct lookups *l, struct lookup_entry *e, int64_t wait_ms,
                     const struct exw_cell **cells, const char **error)
{
    struct timespec until = exw_mono_deadline(wait_ms);
    int done;

    exw_mutex_lock(&l->mu);
    while (e->state == ENTRY_PENDING && wait_ms > 0) {
        if (pthread_cond_timedwait(&l->changed, &l->mu.m, &until) != 0)
            break;
    }
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
    snprintf(out->first_error, sizeof(out->first_error), "%s", l->first_error);
    exw_mutex_unlock(&l->mu);
    out->requests = atomic_load(&l->requests);
    out->reached = atomic_load(&l->reached);
}
