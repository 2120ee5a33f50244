/* dispatch.c: jobs from the queue to the job threads.
 *
 * EXPORT_CONCURRENCY job threads (slots) each run one job at a time on a Redis
 * connection of their own; they share the lookup pool (round robin between
 * jobs, pool.c), the lease and the counters. The main thread is the only one
 * that takes jobs:
 *
 *   wait for a free slot ──> adopt an orphan of the own processing list
 *            ^          └──> or take from P:queue (BLMOVE)
 *            │                      │ hand over
 *            └──── result ◄── slot runs the job (runner.c)
 *
 * Taking in one place keeps the own processing list known. Every document in
 * it is held by a slot (which names it by its SHA-1 while it may be there) or
 * is an orphan: a take whose reply was lost, a job whose end could not be
 * recorded, one left by an earlier process under the same worker id. Adoption
 * (exw_queue_orphan) asks Redis, in one script, for the oldest document that
 * no slot holds, so that a job ending meanwhile on a slot cannot hide one.
 *
 * A document too large for this process to read is ended by its head, as the
 * oldest of the own list (exw_run_oversized); that only holds while nothing
 * else runs, so the dispatcher first lets every slot go idle ("alone") and
 * hands out one job at a time until adoption finds no orphan.
 *
 * Thread: everything here runs on the main thread, except slot_main. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exw/clock.h"
#include "exw/digest.h"
#include "exw/log.h"
#include "exw/queue.h"
#include "worker.h"

#define TAKE_WAIT_MS 1000
#define LEASE_POLL_MS 20
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 5000
/* While Redis cannot be reached at all, a new connection is tried this often:
 * a refused connect, or a question to the sentinels, costs little, and after
 * a failover the jobs should flow again as soon as the new primary is there. */
#define RECONNECT_MS 1000
#define DEFER_WAIT_MS 250
#define IDLE_POLL_MS 200
/* Adoption also runs this often, in case a slot's held document masked an
 * equal orphan (two copies of one document in the list). */
#define ADOPT_EVERY_MS 60000

enum adoption {
    ADOPT_NONE,   /* no orphan */
    ADOPT_HANDED, /* one was handed to the slot */
    ADOPT_WAIT,   /* one is too large to read: first let every slot go idle */
    ADOPT_FAILED  /* Redis could not say */
};

struct dispatch {
    struct worker *w;
    int adopt;       /* look for orphans before the next take */
    int routine;     /* that look is only the periodic one: cheap when all is held */
    int alone;       /* hand out one job at a time, with every slot idle */
    int64_t backoff; /* wait before the next take or adoption */
    int64_t next_adopt;
};

/* ---- the job threads ---- */

int exw_slot_set_job(struct slot *s, const char *id)
{
    struct worker *w = s->w;
    int unique = 1;
    unsigned i;

    exw_mutex_lock(&w->mu);
    for (i = 0; id != NULL && i < w->nslots; i++)
        if (&w->slots[i] != s && strcmp(w->slots[i].id, id) == 0)
            unique = 0;
    snprintf(s->id, sizeof(s->id), "%s", id ? id : "");
    s->id_since = exw_mono_ms();
    exw_mutex_unlock(&w->mu);
    return unique;
}

/* Runs the document @doc (which it frees) taken at @taken_at. One too large
 * for this process is ended without it, once its memory is back, when no
 * other slot runs a job; else the dispatcher sees to it. */
static enum run_result run_taken(struct slot *s, char *doc, size_t len, int64_t taken_at, int alone)
{
    enum run_result res = exw_run_job(s, doc, len, taken_at);

    free(doc);
    return res == RUN_OVERSIZED && alone ? exw_run_oversized(s, taken_at) : res;
}

static void *slot_main(void *arg)
{
    struct slot *s = arg;
    struct worker *w = s->w;
    char name[16];

    snprintf(name, sizeof(name), "job%u", s->idx + 1);
    exw_log_set_thread(name);
    exw_mutex_lock(&w->mu);
    for (;;) {
        enum run_result res;
        char *doc;
        size_t len;
        int64_t taken_at;
        int oversized, alone;

        while (!w->quitting && (!s->busy || s->has_result))
            pthread_cond_wait(&s->wake, &w->mu.m);
        if (w->quitting)
            break;
        doc = s->doc;
        len = s->len;
        taken_at = s->taken_at;
        oversized = s->oversized;
        alone = s->alone;
        s->doc = NULL;
        exw_mutex_unlock(&w->mu);
        exw_metrics_gauge_add(w->metrics, EXW_GAUGE_JOBS_RUNNING, 1);
        res = oversized ? exw_run_oversized(s, taken_at) : run_taken(s, doc, len, taken_at, alone);
        exw_metrics_gauge_add(w->metrics, EXW_GAUGE_JOBS_RUNNING, -1);
        exw_mutex_lock(&w->mu);
        s->held[0] = '\0';
        s->result = res;
        s->has_result = 1;
        exw_mutex_unlock(&w->mu);
        /* After the unlock: the dispatcher, woken, need not wait for the lock. */
        pthread_cond_signal(&w->freed);
        exw_mutex_lock(&w->mu);
    }
    exw_mutex_unlock(&w->mu);
    exw_conn_cleanup(&s->conn);
    exw_conn_cleanup(&s->rows);
    return NULL;
}

/* Stops and joins the job threads (all idle by now). */
static void stop_slots(struct worker *w)
{
    struct slot *slots;
    unsigned n, i;

    exw_mutex_lock(&w->mu);
    w->quitting = 1;
    slots = w->slots;
    n = w->nslots;
    for (i = 0; i < n; i++)
        pthread_cond_signal(&slots[i].wake);
    exw_mutex_unlock(&w->mu);
    for (i = 0; i < n; i++)
        pthread_join(slots[i].tid, NULL);
    exw_mutex_lock(&w->mu); /* the heartbeat reads them */
    w->slots = NULL;
    w->nslots = 0;
    exw_mutex_unlock(&w->mu);
    for (i = 0; i < n; i++)
        pthread_cond_destroy(&slots[i].wake);
    free(slots);
    pthread_cond_destroy(&w->freed);
}

exw_err exw_dispatch_start(struct worker *w, struct exw_errbuf *eb)
{
    unsigned n = (unsigned)w->cfg->concurrency, i;

    if (exw_cond_init_mono(&w->freed) != 0)
        return exw_errbuf_set(eb, EXW_ENOMEM, "cannot make a condition variable");
    exw_mutex_lock(&w->mu);
    w->slots = exw_xcalloc(n, sizeof(*w->slots));
    exw_mutex_unlock(&w->mu);
    for (i = 0; i < n; i++) {
        struct slot *s = &w->slots[i];

        s->w = w;
        s->idx = i;
        exw_conn_init(&s->conn, w->cfg, w->metrics, "job", 5000);
        exw_conn_init(&s->rows, w->cfg, w->metrics, "rows", 5000);
        if (exw_cond_init_mono(&s->wake) != 0) {
            exw_conn_cleanup(&s->conn);
            stop_slots(w);
            return exw_errbuf_set(eb, EXW_ENOMEM, "cannot make a condition variable");
        }
        if (pthread_create(&s->tid, NULL, slot_main, s) != 0) {
            pthread_cond_destroy(&s->wake);
            exw_conn_cleanup(&s->conn);
            stop_slots(w);
            return exw_errbuf_set(eb, EXW_ENOMEM, "cannot start job thread %u of %u", i + 1, n);
        }
        exw_mutex_lock(&w->mu);
        w->nslots++;
        exw_mutex_unlock(&w->mu);
    }
    return EXW_OK;
}

/* ---- results ---- */

static int64_t grow(int64_t backoff, int64_t floor)
{
    if (backoff < floor)
        return floor;
    return backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
}

/* Takes in what the slots of @w (d->w) finished; returns how many are still
 * busy. Caller holds w->mu. */
static unsigned collect_locked(struct worker *w, struct dispatch *d) EXW_REQUIRES(w->mu)
{
    unsigned i, busy = 0;

    for (i = 0; i < w->nslots; i++) {
        struct slot *s = &w->slots[i];

        if (s->busy && s->has_result) {
            s->busy = s->has_result = 0;
            switch (s->result) {
            case RUN_ENDED:
                d->backoff = 0;
                break;
            case RUN_LEFT:
                d->adopt = 1;
                d->backoff = grow(d->backoff, BACKOFF_MIN_MS);
                break;
            case RUN_OVERSIZED:
                /* Its document is an orphan now, to be ended while alone. */
                d->adopt = d->alone = 1;
                break;
            case RUN_DEFERRED:
                /* Waits longer each time the same copy comes back while the
                 * other still runs. */
                d->backoff = grow(d->backoff, DEFER_WAIT_MS);
                break;
            }
        }
        busy += (unsigned)s->busy;
    }
    return busy;
}

/* Waits on w->freed for up to @ms. Caller holds w->mu. */
static void wait_freed(struct worker *w, int64_t ms) EXW_REQUIRES(w->mu)
{
    struct timespec until = exw_mono_deadline(ms);

    pthread_cond_timedwait(&w->freed, &w->mu.m, &until);
}

/* Waits until a slot is free (every slot, when alone), taking in results.
 * Returns the free slot, or NULL on a stop. */
static struct slot *wait_free(struct dispatch *d)
{
    struct worker *w = d->w;
    struct slot *found = NULL;

    exw_mutex_lock(&w->mu);
    while (!exw_stop_requested) {
        unsigned busy = collect_locked(w, d), i;

        if (!d->alone || busy == 0)
            for (i = 0; i < w->nslots && found == NULL; i++)
                if (!w->slots[i].busy)
                    found = &w->slots[i];
        if (found != NULL)
            break;
        wait_freed(w, IDLE_POLL_MS);
    }
    exw_mutex_unlock(&w->mu);
    return found;
}

/* Hands @doc (taken at @taken_at; the slot frees it) to @s, or the oldest own
 * document as too large when @doc is NULL. */
static void hand_over(struct dispatch *d, struct slot *s, char *doc, size_t len, int64_t taken_at)
{
    struct worker *w = d->w;
    char held[41] = "";

    if (doc != NULL && exw_sha1_hex(doc, len, held) != EXW_OK)
        held[0] = '\0'; /* not named: adoption may run it twice, fenced by start */
    exw_mutex_lock(&w->mu);
    s->busy = 1;
    s->has_result = 0;
    s->doc = doc;
    s->len = len;
    s->taken_at = taken_at;
    s->oversized = doc == NULL;
    s->alone = d->alone;
    memcpy(s->held, held, sizeof(held));
    exw_mutex_unlock(&w->mu);
    pthread_cond_signal(&s->wake); /* after the unlock, as in slot_main */
}

/* ---- taking ---- */

/* How long one take blocks: at most a quarter of the heartbeat's TTL, so
 * that it ends well within the lease it started under. */
static double take_wait_s(const struct worker *w)
{
    long ms = w->cfg->heartbeat_ttl_ms / 4;

    return (ms < TAKE_WAIT_MS ? ms : TAKE_WAIT_MS) / 1000.0;
}

int exw_dispatch_wait_lease(struct worker *w)
{
    /* Half the TTL: renewed every third of it, a live lease always has more
     * left, and a take (take_wait_s) fits in it with room to spare. A job
     * taken is then never in the processing list of a worker that recovery
     * cannot see. */
    int64_t margin = w->cfg->heartbeat_ttl_ms / 2;

    while (!exw_stop_requested) {
        if (exw_worker_lease_holds(w, margin))
            return 1;
        exw_sleep_ms(LEASE_POLL_MS);
    }
    return 0;
}

/* Hands the oldest orphan of the own processing list to @s. */
static enum adoption adopt(struct dispatch *d, struct slot *s)
{
    struct worker *w = d->w;
    struct exw_redis *rd = exw_conn_get(&w->main);
    char(*held)[41] = exw_xcalloc(w->nslots + 1, sizeof(*held));
    enum adoption res = ADOPT_FAILED;
    struct exw_errbuf eb;
    size_t nheld = 0, len = 0;
    unsigned i, busy = 0;
    char *doc = NULL;
    int64_t taken_at = exw_mono_ms();

    exw_mutex_lock(&w->mu);
    for (i = 0; i < w->nslots; i++) {
        busy += (unsigned)w->slots[i].busy;
        if (w->slots[i].busy && w->slots[i].held[0] != '\0')
            memcpy(held[nheld++], w->slots[i].held, sizeof(held[0]));
    }
    exw_mutex_unlock(&w->mu);
    if (rd == NULL)
        goto out;
    switch (exw_queue_orphan(rd, (const char(*)[41])held, nheld, d->routine, &doc, &len, &eb)) {
    case EXW_OK:
        if (doc == NULL) {
            res = ADOPT_NONE;
            break;
        }
        EXW_LOG(EXW_LOG_WARN, "running a job found in this worker's own processing list");
        exw_metrics_job(w->metrics, EXW_OUTCOME_REQUEUED, 1);
        hand_over(d, s, doc, len, taken_at);
        res = ADOPT_HANDED;
        break;
    case EXW_ENOMEM:
        /* Too large for this process to take in: it is ended by its head, as
         * the oldest, once nothing else runs. */
        if (busy > 0) {
            res = ADOPT_WAIT;
            break;
        }
        EXW_LOG(EXW_LOG_WARN, "a job in this worker's own processing list is too large to read");
        d->alone = 1; /* nothing may run beside it: it is the oldest */
        exw_metrics_job(w->metrics, EXW_OUTCOME_REQUEUED, 1);
        hand_over(d, s, NULL, 0, taken_at);
        res = ADOPT_HANDED;
        break;
    default:
        EXW_LOG(EXW_LOG_WARN, "reading this worker's own processing list failed: %s", eb.msg);
        break;
    }
out:
    free(held);
    return res;
}

/* Takes the next job from the queue for @s. */
static void take(struct dispatch *d, struct slot *s)
{
    struct worker *w = d->w;
    struct exw_redis *rd = exw_conn_get(&w->main);
    struct exw_errbuf eb;
    char *doc = NULL;
    size_t len = 0;
    int64_t taken_at = exw_mono_ms();

    if (rd == NULL) {
        d->backoff = RECONNECT_MS;
        return;
    }
    if (exw_queue_take(rd, take_wait_s(w), &doc, &len, &eb) != EXW_OK) {
        /* The take may have reached Redis and moved a job whose reply was
         * lost: it is in the own processing list now. */
        EXW_LOG(EXW_LOG_WARN, "taking a job failed: %s", eb.msg);
        d->adopt = 1;
        d->backoff = BACKOFF_MIN_MS;
        return;
    }
    if (doc != NULL)
        hand_over(d, s, doc, len, taken_at);
}

void exw_dispatch(struct worker *w)
{
    struct dispatch d = {.w = w, .adopt = 1}; /* the own processing list first */
    struct exw_redis *rd;
    struct exw_errbuf eb;
    long long moved = 0;

    d.next_adopt = exw_mono_ms() + ADOPT_EVERY_MS;
    while (!exw_stop_requested) {
        struct slot *s;
        int64_t backoff = d.backoff;

        /* Not at once after a failure: whatever kept the job from ending may
         * still hold, and a job going round must not spin the worker. */
        d.backoff = 0;
        exw_sleep_ms(backoff);
        s = wait_free(&d);
        if (s == NULL || !exw_dispatch_wait_lease(w))
            break;
        if (exw_mono_ms() >= d.next_adopt) {
            d.routine = !d.adopt;
            d.adopt = 1;
            d.next_adopt = exw_mono_ms() + ADOPT_EVERY_MS;
        }
        if (d.adopt) {
            enum adoption found = adopt(&d, s);

            d.routine = 0; /* every look after this one is a full one */
            switch (found) {
            case ADOPT_NONE:
                d.adopt = d.alone = 0;
                break; /* on to the queue */
            case ADOPT_HANDED:
                continue; /* and adopt again */
            case ADOPT_WAIT:
                d.alone = 1;
                continue;
            case ADOPT_FAILED:
                /* No connection at all: try again soon (RECONNECT_MS). */
                d.backoff = w->main.rd == NULL ? RECONNECT_MS : BACKOFF_MAX_MS;
                continue;
            }
        }
        take(&d, s);
    }
    /* Every running job ends or goes back to the queue within the grace. */
    exw_mutex_lock(&w->mu);
    while (collect_locked(w, &d) > 0)
        wait_freed(w, IDLE_POLL_MS);
    exw_mutex_unlock(&w->mu);
    stop_slots(w);
    /* Whatever is still in the own processing list goes back on the queue. */
    rd = exw_conn_get(&w->main);
    if (rd != NULL && exw_queue_release_own(rd, &moved, &eb) == EXW_OK && moved > 0) {
        EXW_LOG(EXW_LOG_WARN, "put %lld unfinished job(s) of this worker back on the queue", moved);
        exw_metrics_job(w->metrics, EXW_OUTCOME_REQUEUED, moved);
    }
}
