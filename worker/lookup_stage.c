/* lookup_stage.c: where a job's new keys wait to be looked for in the lookup
 * cache the fleet shares, and to be grouped into batch requests.
 *
 * With the service's cache (_CACHE_TTL) or batch endpoint (_BATCH_URL) on, a
 * new entry is not submitted at once but put on the stage. The stage is sent
 * on when CACHE_WINDOW keys wait to be looked for, or _BATCH_MAX misses wait
 * for a batch, or the job's thread is about to wait for an entry still on it
 * (then all of it goes, the last batch short). Sending on reads the keys'
 * cache entries with one MGET per window; a hit finishes its entry there, on
 * the job's thread, with no request; the misses are submitted, singly or in
 * batches. The window fills as fast as rows are read, so this costs one round
 * trip per window of keys, never one per row, and the first requests wait only
 * for the rows before them to be read.
 *
 * A hit must be what a request could have answered: a string of JSON, no
 * larger than the service's cap. Anything else (another type, a corrupted or
 * cut body) is a miss, and the answer that comes instead replaces it.
 *
 * Answers for the cache come from the pool threads (lookup_stage_offer), which
 * have no Redis connection: they are copied into a queue under the lookups'
 * lock, bounded in bytes, and the job's thread writes them in batches, one
 * script call each (cache_put.lua), whenever it waits for a row. Errors are
 * never offered. The cache uses the job's connection only while it is up: a
 * Redis outage makes every key a miss and drops the answers, and never holds
 * a lookup up. */
#include <stdlib.h>
#include <string.h>

#include "exw/clock.h"
#include "exw/json.h"
#include "exw/log.h"
#include "exw/lookup_cache.h"
#include "lookup_int.h"

#define CACHE_WINDOW 100           /* keys per MGET */
#define PUT_BATCH 64               /* answers per write */
#define PUT_BATCH_BYTES (1u << 20) /* bytes per write, past its first answer */
#define PUT_QUEUE_BYTES (8u << 20) /* queued beyond this, an answer is not cached */
#define PUT_DELAY_MS 200           /* the longest an answer waits to be written */

/* The job's Redis connection while it is up; NULL otherwise. */
static struct exw_redis *live_redis(const struct lookups *l)
{
    if (l->conn == NULL || l->conn->rd == NULL || exw_redis_broken(l->conn->rd))
        return NULL;
    return l->conn->rd;
}

static void warn_once(struct lookups *l, const char *what, const char *why)
{
    if (l->cache_warned)
        return;
    l->cache_warned = 1;
    EXW_LOG(EXW_LOG_WARN, "the lookup cache of service %s cannot be %s (%s): asking the service",
            l->svc->name, what, why);
}

void lookup_stage_offer(struct lookups *l, const char *key, const char *body, size_t len)
{
    struct cache_put *p;

    if (!l->use_cache || len > (size_t)l->svc->cache_max_bytes)
        return;
    p = exw_xcalloc(1, sizeof(*p));
    p->key = exw_xstrdup(key);
    p->body = exw_xmalloc(len + 1);
    memcpy(p->body, body, len);
    p->body[len] = '\0';
    p->len = len;
    exw_mutex_lock(&l->mu);
    if (l->put_bytes + len > PUT_QUEUE_BYTES) {
        exw_mutex_unlock(&l->mu);
        free(p->key);
        free(p->body);
        free(p);
        return;
    }
    if (l->puts_tail != NULL)
        l->puts_tail->next = p;
    else
        l->puts = p;
    l->puts_tail = p;
    if (l->nputs == 0)
        l->puts_since = exw_mono_ms();
    l->nputs++;
    l->put_bytes += len;
    exw_mutex_unlock(&l->mu);
}

static void free_puts(struct cache_put *p)
{
    while (p != NULL) {
        struct cache_put *next = p->next;

        free(p->key);
        free(p->body);
        free(p);
        p = next;
    }
}

void lookup_stage_write(struct lookups *l, int force)
{
    struct cache_put *list = NULL, *p;
    struct exw_redis *rd;
    int due;

    if (!l->use_cache)
        return;
    exw_mutex_lock(&l->mu);
    due = l->nputs > 0 && (force || l->nputs >= PUT_BATCH || l->put_bytes >= PUT_BATCH_BYTES ||
                           exw_mono_ms() - l->puts_since >= PUT_DELAY_MS);
    if (due) {
        list = l->puts;
        l->puts = l->puts_tail = NULL;
        l->nputs = 0;
        l->put_bytes = 0;
    }
    exw_mutex_unlock(&l->mu);
    rd = live_redis(l);
    for (p = list; p != NULL && rd != NULL;) {
        const char *keys[PUT_BATCH], *bodies[PUT_BATCH];
        size_t lens[PUT_BATCH], n = 0, bytes = 0;
        struct exw_errbuf eb;

        for (; p != NULL && n < PUT_BATCH && (n == 0 || bytes + p->len <= PUT_BATCH_BYTES);
             p = p->next) {
            keys[n] = p->key;
            bodies[n] = p->body;
            lens[n] = p->len;
            bytes += p->len;
            n++;
        }
        if (exw_cache_put(rd, l->svc->name, l->svc->cache_ttl_s, keys, bodies, lens, n, &eb) !=
            EXW_OK) {
            warn_once(l, "written", eb.msg);
            rd = NULL;
        }
    }
    free_puts(list);
}

void lookup_stage_cleanup(struct lookups *l)
{
    exw_mutex_lock(&l->mu);
    free_puts(l->puts);
    l->puts = l->puts_tail = NULL;
    l->nputs = 0;
    l->put_bytes = 0;
    exw_mutex_unlock(&l->mu);
    free(l->stage);
    l->stage = NULL;
    l->nstage = l->nchecked = l->stage_cap = 0;
}

/* Finishes @e from its cache entry @body (@len bytes), as a request answered
 * with it would have. Returns 0, leaving @e alone, when the entry is no
 * answer a request could have given: a miss. */
static int use_entry(struct lookups *l, struct lookup_entry *e, const char *body, size_t len)
{
    struct exw_errbuf eb;

    if (len > (size_t)l->svc->cache_max_bytes ||
        exw_json_check(body, len, EXW_LOOKUP_MAX_DEPTH, &eb) != EXW_OK)
        return 0;
    lookup_fill(l, e, body, len);
    e->staged = 0;
    e->reached = 1; /* looked up, without a request */
    exw_mutex_lock(&l->mu);
    l->reached++;
    exw_mutex_unlock(&l->mu);
    lookup_finish(l, &e, 1, 0, EXW_OK);
    return 1;
}

/* Looks every key on the stage not yet looked for up in the shared cache,
 * CACHE_WINDOW keys per MGET; hits leave the stage finished, misses stay. */
static void check_cache(struct lookups *l)
{
    struct exw_redis *rd = live_redis(l);
    size_t at = l->nchecked, kept = l->nchecked, i;

    while (at < l->nstage) {
        size_t n = l->nstage - at < CACHE_WINDOW ? l->nstage - at : CACHE_WINDOW;
        const char *keys[CACHE_WINDOW];
        char *bodies[CACHE_WINDOW];
        size_t lens[CACHE_WINDOW];
        struct exw_errbuf eb;
        long long hits = 0;

        for (i = 0; i < n; i++) {
            keys[i] = l->stage[at + i]->key;
            bodies[i] = NULL;
        }
        if (rd == NULL) {
            warn_once(l, "read", "Redis is not reachable");
        } else if (exw_cache_get(rd, l->svc->name, keys, n, bodies, lens, &eb) != EXW_OK) {
            warn_once(l, "read", eb.msg);
            rd = NULL;
        }
        for (i = 0; i < n; i++) {
            struct lookup_entry *e = l->stage[at + i];

            if (bodies[i] != NULL && use_entry(l, e, bodies[i], lens[i]))
                hits++;
            else
                l->stage[kept++] = e;
            free(bodies[i]);
        }
        exw_metrics_cache(l->metrics, l->service, hits, (long long)n - hits);
        at += n;
    }
    l->nstage = l->nchecked = kept;
}

/* Sends the stage on: the cache first, then the misses to the pool, in full
 * batches only unless @all. */
static void send_on(struct lookups *l, int all)
{
    size_t batch = l->use_batch ? (size_t)l->svc->batch_max : 1;
    size_t sent = 0, i;

    if (atomic_load(&l->abort))
        return; /* the job has ended: nothing more is asked */
    if (l->use_cache)
        check_cache(l); /* then every key on the stage is checked */
    while (l->nchecked - sent >= batch || (all && sent < l->nchecked)) {
        size_t n = l->nchecked - sent < batch ? l->nchecked - sent : batch;

        for (i = 0; i < n; i++)
            l->stage[sent + i]->staged = 0;
        if (l->use_batch)
            lookup_batch_submit(l, &l->stage[sent], n);
        else
            lookup_submit(l, l->stage[sent]);
        sent += n;
    }
    memmove(l->stage, l->stage + sent, (l->nstage - sent) * sizeof(*l->stage));
    l->nstage -= sent;
    l->nchecked -= sent;
}

void lookup_stage_add(struct lookups *l, struct lookup_entry *e)
{
    if (l->nstage == l->stage_cap) {
        l->stage_cap = l->stage_cap ? l->stage_cap * 2 : 128;
        l->stage = exw_xrealloc(l->stage, l->stage_cap * sizeof(*l->stage));
    }
    e->staged = 1;
    l->stage[l->nstage++] = e;
    if (!l->use_cache)
        l->nchecked = l->nstage;
    if ((l->use_cache && l->nstage - l->nchecked >= CACHE_WINDOW) ||
        (l->use_batch && l->nchecked >= (size_t)l->svc->batch_max))
        send_on(l, 0);
}

void lookup_stage_flush(struct lookups *l) { send_on(l, 1); }
