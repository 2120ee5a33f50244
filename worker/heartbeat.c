/* heartbeat.c: keeps the worker's lease (P:worker:<id>) alive from a thread
 * of its own, so that a long job never lets it lapse, and recovers the jobs
 * of dead workers at each renewal. The lease's timing (lease.h) tells a job
 * whether it may have been taken over. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exw/clock.h"
#include "exw/log.h"
#include "exw/queue.h"
#include "worker.h"

struct heartbeat {
    struct worker *w;
    pthread_t tid;
    struct exw_mutex mu;
    pthread_cond_t wake; /* on CLOCK_MONOTONIC */
    int stopping;        /* guarded by mu */
};

int exw_worker_lease_lapsed(struct worker *w, int64_t taken_at)
{
    int lapsed;

    exw_mutex_lock(&w->mu);
    lapsed = exw_lease_lapsed_since(&w->lease, taken_at, exw_mono_ms());
    exw_mutex_unlock(&w->mu);
    return lapsed;
}

int exw_worker_lease_holds(struct worker *w, int64_t ms)
{
    int holds;

    exw_mutex_lock(&w->mu);
    holds = exw_lease_holds_until(&w->lease, exw_mono_ms() + ms);
    exw_mutex_unlock(&w->mu);
    return holds;
}

/* The ids of the running jobs, space-separated, into @jobs (room for every
 * slot's), and the oldest one's into @job. Caller holds w->mu. */
static void running_jobs_locked(struct worker *w, char *jobs, char *job) EXW_REQUIRES(w->mu)
{
    int64_t oldest = INT64_MAX;
    size_t n = 0;
    unsigned i;

    jobs[0] = job[0] = '\0';
    for (i = 0; i < w->nslots; i++) {
        const struct slot *s = &w->slots[i];
        size_t len = strlen(s->id);

        if (len == 0)
            continue;
        if (n > 0)
            jobs[n++] = ' ';
        memcpy(jobs + n, s->id, len + 1);
        n += len;
        if (s->id_since < oldest) {
            oldest = s->id_since;
            memcpy(job, s->id, len + 1);
        }
    }
}

/* One renewal. Returns 1 on success, and then notes the time for /healthz. */
static int beat(struct worker *w, struct exw_redis *rd, char *jobs)
{
    struct exw_beat b;
    struct exw_errbuf eb;
    char job[EXW_ID_MAX + 1];
    int64_t sent_at = exw_mono_ms();
    int ok;

    exw_mutex_lock(&w->mu);
    running_jobs_locked(w, jobs, job);
    b.jobs_done = w->jobs_done;
    exw_mutex_unlock(&w->mu);
    b.host = w->host;
    b.pid = w->pid;
    b.started_at = w->started_at;
    b.job = job;
    b.jobs = jobs;
    b.ttl_ms = w->cfg->heartbeat_ttl_ms;
    ok = rd != NULL && exw_lease_beat(rd, &b, &eb) == EXW_OK;
    exw_mutex_lock(&w->mu);
    if (ok)
        exw_lease_renewed(&w->lease, sent_at, exw_mono_ms());
    else
        exw_lease_failed(&w->lease, exw_mono_ms());
    exw_mutex_unlock(&w->mu);
    if (ok)
        atomic_store(&w->redis_ok_at, exw_mono_ms());
    return ok;
}

/* Every live worker looks for dead ones at each beat; the script is atomic, so
 * they need no lock between them. */
static void recover(struct worker *w, struct exw_redis *rd)
{
    struct exw_errbuf eb;
    long long moved = 0;

    if (exw_queue_recover(rd, &moved, &eb) != EXW_OK) {
        EXW_LOG(EXW_LOG_WARN, "looking for dead workers failed: %s", eb.msg);
    } else if (moved > 0) {
        EXW_LOG(EXW_LOG_WARN, "put %lld job(s) of dead workers back on the queue", moved);
        exw_metrics_job(w->metrics, EXW_OUTCOME_REQUEUED, moved);
    }
}

/* The queue's length for export_queue_length, read here so that a scrape
 * never waits for Redis; only when metrics are served. */
static void read_queue_length(struct worker *w, struct exw_redis *rd)
{
    struct exw_errbuf eb;
    long long n = 0;

    if (w->cfg->metrics_addr == NULL)
        return;
    if (exw_queue_length(rd, &n, &eb) == EXW_OK)
        exw_metrics_gauge_set(w->metrics, EXW_GAUGE_QUEUE_LENGTH, n);
    else
        EXW_LOG(EXW_LOG_DEBUG, "reading the queue's length failed: %s", eb.msg);
}

static void *heartbeat_main(void *arg)
{
    struct heartbeat *hb = arg;
    struct worker *w = hb->w;
    long period = w->cfg->heartbeat_ttl_ms / 3;
    struct conn conn;
    struct exw_errbuf eb;
    int failing = 0, lapsed_logged = 0;
    /* Every job thread's id and a separator. */
    char *jobs = exw_xcalloc((size_t)w->cfg->concurrency + 1, EXW_ID_MAX + 1);

    exw_log_set_thread("hb");
    atomic_store(&w->hb_state, HB_RUNNING);
    exw_conn_init(&conn, w->cfg, w->metrics, "heartbeat", 2000);
    exw_mutex_lock(&hb->mu);
    while (!hb->stopping) {
        struct timespec until;
        struct exw_redis *rd;

        exw_mutex_unlock(&hb->mu);
        atomic_store(&w->hb_tick_at, exw_mono_ms());
        rd = exw_conn_get(&conn);
        if (beat(w, rd, jobs)) {
            if (failing)
                EXW_LOG(EXW_LOG_INFO, "heartbeat renewed again");
            failing = 0;
            lapsed_logged = 0;
            recover(w, rd);
            read_queue_length(w, rd);
        } else {
            if (!failing)
                EXW_LOG(EXW_LOG_WARN, "heartbeat renewal failed; retrying");
            failing = 1;
            if (!lapsed_logged && !exw_worker_lease_holds(w, 0)) {
                EXW_LOG(EXW_LOG_ERROR, "heartbeat lapsed: a running job may be taken over and "
                                       "is abandoned here");
                lapsed_logged = 1;
            }
        }
        until = exw_mono_deadline(period);
        exw_mutex_lock(&hb->mu);
        while (!hb->stopping && pthread_cond_timedwait(&hb->wake, &hb->mu.m, &until) != ETIMEDOUT)
            ;
    }
    exw_mutex_unlock(&hb->mu);
    {
        struct exw_redis *rd = exw_conn_get(&conn);

        if (rd == NULL || exw_lease_deregister(rd, &eb) != EXW_OK)
            EXW_LOG(EXW_LOG_WARN, "could not deregister; the heartbeat will lapse by itself");
    }
    exw_conn_cleanup(&conn);
    free(jobs);
    atomic_store(&w->hb_state, HB_EXITED);
    return NULL;
}

exw_err exw_heartbeat_start(struct worker *w, struct heartbeat **out, struct exw_errbuf *eb)
{
    struct heartbeat *hb = exw_xcalloc(1, sizeof(*hb));

    hb->w = w;
    pthread_mutex_init(&hb->mu.m, NULL);
    if (exw_cond_init_mono(&hb->wake) != 0) {
        pthread_mutex_destroy(&hb->mu.m);
        free(hb);
        *out = NULL;
        return exw_errbuf_set(eb, EXW_ENOMEM, "cannot make the heartbeat's condition variable");
    }
    if (pthread_create(&hb->tid, NULL, heartbeat_main, hb) != 0) {
        pthread_cond_destroy(&hb->wake);
        pthread_mutex_destroy(&hb->mu.m);
        free(hb);
        *out = NULL;
        return exw_errbuf_set(eb, EXW_ENOMEM, "cannot start the heartbeat thread");
    }
    *out = hb;
    return EXW_OK;
}

void exw_heartbeat_stop(struct heartbeat *hb)
{
    if (hb == NULL)
        return;
    exw_mutex_lock(&hb->mu);
    hb->stopping = 1;
    pthread_cond_signal(&hb->wake);
    exw_mutex_unlock(&hb->mu);
    pthread_join(hb->tid, NULL);
    pthread_cond_destroy(&hb->wake);
    pthread_mutex_destroy(&hb->mu.m);
    free(hb);
}
