/* heartbeat.c: keeps P:worker:<id> alive from a thread of its own, so that a
 * long job never lets it lapse, and tells the job when it did lapse. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exw/clock.h"
#include "exw/log.h"
#include "worker.h"

struct heartbeat {
    struct worker *w;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    int stopping; /* guarded by mu */
};

void exw_worker_set_job(struct worker *w, const char *id)
{
    pthread_mutex_lock(&w->mu);
    snprintf(w->current_job, sizeof(w->current_job), "%s", id ? id : "");
    pthread_mutex_unlock(&w->mu);
}

/* One renewal on @rq (connecting first if needed). Returns 1 on success. */
static int beat(struct heartbeat *hb, struct exw_rq **rq)
{
    struct worker *w = hb->w;
    struct exw_rq_beat b;
    struct exw_errbuf eb;
    char job[EXW_ID_MAX + 1];

    if (*rq != NULL && exw_rq_broken(*rq)) {
        exw_rq_free(*rq);
        *rq = NULL;
    }
    if (*rq == NULL &&
        exw_rq_connect(&w->cfg->redis, w->cfg->prefix, w->cfg->worker_id, 2000, rq, &eb) != EXW_OK)
        return 0;
    pthread_mutex_lock(&w->mu);
    memcpy(job, w->current_job, sizeof(job));
    b.jobs_done = w->jobs_done;
    pthread_mutex_unlock(&w->mu);
    b.host = w->host;
    b.pid = w->pid;
    b.started_at = w->started_at;
    b.job = job;
    b.ttl_ms = w->cfg->heartbeat_ttl_ms;
    return exw_rq_heartbeat(*rq, &b, &eb) == EXW_OK;
}

/* Every live worker looks for dead ones at each beat; the script is atomic, so
 * they need no lock between them. */
static void recover(struct exw_rq *rq)
{
    struct exw_errbuf eb;
    long long moved = 0;

    if (exw_rq_recover(rq, &moved, &eb) != EXW_OK)
        EXW_LOG(EXW_LOG_WARN, "looking for dead workers failed: %s", eb.msg);
    else if (moved > 0)
        EXW_LOG(EXW_LOG_WARN, "put %lld job(s) of dead workers back on the queue", moved);
}

static void *heartbeat_main(void *arg)
{
    struct heartbeat *hb = arg;
    struct worker *w = hb->w;
    long period = w->cfg->heartbeat_ttl_ms / 3;
    int64_t last_ok = exw_mono_ms();
    struct exw_rq *rq = NULL;
    struct exw_errbuf eb;
    int failing = 0;

    exw_log_set_thread("hb");
    pthread_mutex_lock(&hb->mu);
    while (!hb->stopping) {
        struct timespec until;

        pthread_mutex_unlock(&hb->mu);
        if (beat(hb, &rq)) {
            /* A renewal that comes after the key expired (the process was
             * frozen, or starved) means the job may have been taken over. */
            if (exw_mono_ms() - last_ok > w->cfg->heartbeat_ttl_ms &&
                !atomic_exchange(&w->lease_lost, 1))
                EXW_LOG(EXW_LOG_ERROR,
                        "heartbeat lapsed (%lld ms without renewal): the running "
                        "job may be taken over and is abandoned here",
                        (long long)(exw_mono_ms() - last_ok));
            if (failing)
                EXW_LOG(EXW_LOG_INFO, "heartbeat renewed again");
            failing = 0;
            last_ok = exw_mono_ms();
            recover(rq);
        } else {
            if (!failing)
                EXW_LOG(EXW_LOG_WARN, "heartbeat renewal failed; retrying");
            failing = 1;
            if (exw_mono_ms() - last_ok > w->cfg->heartbeat_ttl_ms &&
                !atomic_exchange(&w->lease_lost, 1))
                EXW_LOG(EXW_LOG_ERROR, "heartbeat lapsed: the running job may be taken over "
                                       "and is abandoned here");
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += period / 1000;
        until.tv_nsec += (period % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&hb->mu);
        while (!hb->stopping && pthread_cond_timedwait(&hb->wake, &hb->mu, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&hb->mu);
    if (rq == NULL || exw_rq_broken(rq)) {
        exw_rq_free(rq);
        rq = NULL;
        if (exw_rq_connect(&w->cfg->redis, w->cfg->prefix, w->cfg->worker_id, 2000, &rq, &eb) !=
            EXW_OK)
            rq = NULL;
    }
    if (rq == NULL || exw_rq_deregister(rq, &eb) != EXW_OK)
        EXW_LOG(EXW_LOG_WARN, "could not deregister; the heartbeat will lapse by itself");
    exw_rq_free(rq);
    return NULL;
}

exw_err exw_heartbeat_start(struct worker *w, struct heartbeat **out, struct exw_errbuf *eb)
{
    struct heartbeat *hb = exw_xcalloc(1, sizeof(*hb));

    hb->w = w;
    pthread_mutex_init(&hb->mu, NULL);
    pthread_cond_init(&hb->wake, NULL);
    if (pthread_create(&hb->tid, NULL, heartbeat_main, hb) != 0) {
        pthread_cond_destroy(&hb->wake);
        pthread_mutex_destroy(&hb->mu);
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
    pthread_mutex_lock(&hb->mu);
    hb->stopping = 1;
    pthread_cond_signal(&hb->wake);
    pthread_mutex_unlock(&hb->mu);
    pthread_join(hb->tid, NULL);
    pthread_cond_destroy(&hb->wake);
    pthread_mutex_destroy(&hb->mu);
    free(hb);
}
