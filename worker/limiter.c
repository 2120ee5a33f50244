/* limiter.c: the fleet-wide caps on each lookup service, on the worker's side
 * (EXPORT_SERVICE_<NAME>_MAX_INFLIGHT and _RATE).
 *
 * DESIGN
 * ------
 * The caps live in Redis (common/limits.c): a semaphore of leased permits and
 * a GCRA pace of request slots, each changed only by a script that reads
 * Redis's clock. Asking Redis before every request would cost a round trip
 * per request, and the pool threads have no Redis connection. So one thread
 * per worker, the limiter, with a connection of its own, deals with Redis for
 * all of them: it leases permits and slots in small batches, as the pool
 * threads' demand says, and hands them out here, under one mutex.
 *
 * Permits. A pool thread holds a permit from just before its request goes out
 * until the answer is in (or the request failed), and gives it back to this
 * worker, not to Redis: the next request of this worker reuses it at once. So
 * while a worker is busy, a permit costs Redis nothing but its renewal, one
 * call per service every RENEW_EVERY_MS for all of them. A permit's lease is
 * the service's timeout plus LEASE_SLACK_MS, and a request starts only on a
 * permit whose lease (counted from when the take or renewal was sent, which
 * is never later than Redis's own count) outlasts the request's longest time
 * plus START_MARGIN_MS. Then a request never runs past its permit's lease
 * even if Redis is lost in the middle of it, and a dead worker's permits come
 * back to the fleet within _TIMEOUT_MS + 5 s. Permits go back to Redis when
 * they have been idle for IDLE_RELEASE_MS, when a renewal finds that others
 * wait and this worker holds more than its share (the cap over the holders
 * that want some), or when the worker stops. When the cap is full, the
 * limiter asks again every RETRY_MIN_MS to RETRY_MIN_MS + RETRY_SPREAD_MS:
 * a timed wait on its own thread, while the pool threads sleep on a
 * condition variable.
 *
 * Slots. A request also needs a slot of the pace, taken after its permit: the
 * limiter reserves as many as threads wait for, among those that begin within
 * RATE_HORIZON_US, and converts their Redis times to this worker's monotonic
 * clock as of the answer (so a slot is never early by the round trip). The
 * thread that takes a slot sleeps until it begins. A slot nobody took within
 * its grace (half the interval, at most SLOT_GRACE_MAX_US) is dropped, so
 * the requests sent in any second come from at most one more slot than the
 * rate, whatever the scheduling.
 *
 * Waiting is done on the pool thread, in steps of STEP_MS that look at the
 * job's abort flag and deadline: a cancel, a timeout, a stop whose grace has
 * passed all end the wait at once; the wait counts against the job's
 * deadline as any other part of a lookup. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exw/clock.h"
#include "exw/digest.h"
#include "exw/limits.h"
#include "exw/log.h"
#include "worker.h"

#define LEASE_SLACK_MS 4000     /* a permit's lease: the service's timeout and this */
#define START_MARGIN_MS 500     /* a request needs its timeout and this left on its permit */
#define RENEW_EVERY_MS 1000     /* how often held permits are renewed */
#define WAITING_MS 2000         /* how long a holder that got too few stays "waiting" */
#define IDLE_RELEASE_MS 100     /* a permit nobody here wants goes back after this */
#define TAKE_BATCH 16           /* the most permits asked for at once */
#define RETRY_MIN_MS 10         /* after a take that got too few ... */
#define RETRY_SPREAD_MS 30      /* ... the next one, at a random time in this range */
#define DOWN_RETRY_MS 500       /* after a failed call */
#define RATE_HORIZON_US 200000  /* slots reserved at most this far ahead */
#define RATE_BATCH 64           /* the most slots asked for at once */
#define RATE_AHEAD_US 50000     /* while busy, ask for the slots of this much use at once */
#define SLOT_GRACE_MIN_US 2000  /* a slot not taken this long after it began is lost ... */
#define SLOT_GRACE_MAX_US 50000 /* ... or longer, as far as the rate's 10 % allow */
#define STEP_MS 50              /* how often a waiting request looks at its job */
#define REDIS_TIMEOUT_MS 2000

struct permit {
    char *id;            /* NULL: the place is empty */
    int64_t valid_until; /* monotonic ms until which its lease holds at least */
    int in_use;          /* a request holds it */
    int lost;            /* the renewal found it gone: dropped once free */
    int64_t free_since;  /* monotonic ms */
};

/* One service's caps. The fields after the settings are guarded by lim->mu. */
struct svc_limit {
    const struct exw_service *svc;
    long max, rate; /* 0: no such cap */
    long lease_ms;
    int64_t interval_us, grace_us;
    struct permit *permits; /* lim->nplaces places */
    long nheld;
    long want_permits; /* pool threads waiting for one */
    long others_waiting;
    int64_t take_after;    /* monotonic ms: no take before */
    int64_t renew_at;      /* monotonic ms */
    int64_t *slots;        /* a ring of lim->nplaces * 2 slot times, monotonic us */
    size_t head, nslots;   /* the ring's first and count, oldest first */
    long want_slots;       /* pool threads waiting for one */
    int64_t rate_after_us; /* monotonic us: no rate take before */
    long taken;            /* slots taken by the pool threads since usage_at */
    int64_t usage_at;      /* monotonic us */
    double usage;          /* slots this worker uses a second, smoothed */
};

struct limiter {
    struct worker *w;
    struct conn conn; /* the limiter thread's */
    char holder[EXW_ID_MAX + 40];
    long long seq; /* the limiter thread's: the next permit's number */
    uint64_t rng;  /* the limiter thread's */
    size_t nplaces;
    pthread_t tid;
    struct exw_mutex mu;
    pthread_cond_t work;    /* to the limiter thread */
    pthread_cond_t granted; /* to the pool threads */
    int stopping;           /* guarded by mu */
    int poked;              /* guarded by mu: a pool thread wants something */
    int down_logged;        /* the limiter thread's */
    struct svc_limit *svcs; /* one per configured service, by number */
    size_t nsvcs;
};

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static uint64_t next_random(struct limiter *lim)
{
    lim->rng ^= lim->rng << 13;
    lim->rng ^= lim->rng >> 7;
    lim->rng ^= lim->rng << 17;
    return lim->rng;
}

/* Sleeps @us microseconds (a short time: at most one step). */
static void sleep_us(int64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};

    nanosleep(&ts, NULL);
}

static void wait_ms(pthread_cond_t *c, struct exw_mutex *mu, int64_t ms) EXW_REQUIRES(*mu)
{
    struct timespec until = exw_mono_deadline(ms > 0 ? ms : 1);

    pthread_cond_timedwait(c, &mu->m, &until);
}

/* ---- The pool threads' side ---- */

/* A free permit of @s whose lease holds at least until @need_until. */
static struct permit *usable_locked(struct limiter *lim, struct svc_limit *s, int64_t need_until)
    EXW_REQUIRES(lim->mu)
{
    size_t i;

    for (i = 0; i < lim->nplaces; i++) {
        struct permit *p = &s->permits[i];

        if (p->id != NULL && !p->in_use && !p->lost && p->valid_until >= need_until)
            return p;
    }
    return NULL;
}

static void poke_locked(struct limiter *lim) EXW_REQUIRES(lim->mu)
{
    lim->poked = 1;
    pthread_cond_signal(&lim->work);
}

static void give_back_locked(struct limiter *lim, struct svc_limit *s, int place)
    EXW_REQUIRES(lim->mu)
{
    struct permit *p = &s->permits[place];

    p->in_use = 0;
    p->free_since = exw_mono_ms();
    exw_metrics_permits_in_use(lim->w->metrics, (int)(s - lim->svcs), -1);
    if (s->want_permits > 0 && !p->lost)
        pthread_cond_broadcast(&lim->granted);
    /* Idle, lost or above this worker's share: the limiter decides. */
    if (s->want_permits == 0 || p->lost || s->others_waiting > 0)
        poke_locked(lim);
}

/* One try of exw_limiter_wait: a permit, then a slot. Returns 1 with @g
 * held, 0 on an abort (nothing held), or -1 when the permit's lease no
 * longer covers the request once its slot began (nothing held: try again). */
static int wait_once(struct limiter *lim, struct svc_limit *s, int service, long timeout_ms,
                     exw_http_abort_fn abort_fn, void *ud, struct limiter_grant *g)
{
    int64_t began_us = exw_mono_us(), slot = 0;
    int delayed = 0, covered = 1;

    exw_mutex_lock(&lim->mu);
    g->service = service;
    if (s->max > 0) {
        struct permit *p;

        s->want_permits++;
        while ((p = usable_locked(lim, s, exw_mono_ms() + timeout_ms + START_MARGIN_MS)) == NULL) {
            if (abort_fn(ud)) {
                s->want_permits--;
                exw_mutex_unlock(&lim->mu);
                g->service = -1;
                return 0;
            }
            poke_locked(lim);
            wait_ms(&lim->granted, &lim->mu, STEP_MS);
        }
        s->want_permits--;
        p->in_use = 1;
        g->permit = (int)(p - s->permits);
        exw_metrics_permits_in_use(lim->w->metrics, service, 1);
        exw_metrics_permit_wait(lim->w->metrics, service, exw_mono_us() - began_us);
    }
    if (s->rate > 0) {
        s->want_slots++;
        for (;;) {
            int64_t now = exw_mono_us();

            while (s->nslots > 0 && s->slots[s->head] + s->grace_us < now) {
                s->head = (s->head + 1) % (lim->nplaces * 2);
                s->nslots--;
            }
            if (s->nslots > 0)
                break;
            delayed = 1;
            if (abort_fn(ud)) {
                s->want_slots--;
                exw_mutex_unlock(&lim->mu);
                exw_limiter_done(lim, g);
                return 0;
            }
            poke_locked(lim);
            wait_ms(&lim->granted, &lim->mu, STEP_MS);
        }
        slot = s->slots[s->head];
        s->head = (s->head + 1) % (lim->nplaces * 2);
        s->nslots--;
        s->want_slots--;
        s->taken++;
    }
    exw_mutex_unlock(&lim->mu);
    if (s->rate > 0) {
        int64_t left;

        if (slot > exw_mono_us() + 1000)
            delayed = 1;
        if (delayed)
            exw_metrics_rate_delayed(lim->w->metrics, service);
        while ((left = slot - exw_mono_us()) > 0) {
            if (abort_fn(ud)) {
                exw_limiter_done(lim, g);
                return 0;
            }
            sleep_us(min64(left, STEP_MS * 1000));
        }
    }
    /* Renewals go on while a request waits for its slot; should they have
     * failed, the permit may no longer cover the whole request. */
    if (g->permit >= 0) {
        exw_mutex_lock(&lim->mu);
        covered = s->permits[g->permit].valid_until >= exw_mono_ms() + timeout_ms &&
                  !s->permits[g->permit].lost;
        exw_mutex_unlock(&lim->mu);
    }
    if (!covered) {
        exw_limiter_done(lim, g);
        return -1;
    }
    return 1;
}

int exw_limiter_wait(struct limiter *lim, int service, long timeout_ms, exw_http_abort_fn abort_fn,
                     void *ud, struct limiter_grant *g)
{
    struct svc_limit *s;
    int rc;

    g->service = -1;
    g->permit = -1;
    if (lim == NULL || service < 0 || (size_t)service >= lim->nsvcs)
        return 1;
    s = &lim->svcs[service];
    if (s->max == 0 && s->rate == 0)
        return 1;
    do
        rc = wait_once(lim, s, service, timeout_ms, abort_fn, ud, g);
    while (rc < 0);
    return rc;
}

void exw_limiter_done(struct limiter *lim, struct limiter_grant *g)
{
    if (lim == NULL || g->service < 0)
        return;
    if (g->permit >= 0) {
        exw_mutex_lock(&lim->mu);
        give_back_locked(lim, &lim->svcs[g->service], g->permit);
        exw_mutex_unlock(&lim->mu);
    }
    g->service = -1;
    g->permit = -1;
}

/* ---- The limiter thread ---- */

/* What one round does for one service, planned under the lock and done with
 * Redis without it. */
struct round {
    char **release; /* ids given back (owned) */
    size_t nrelease;
    int still_waiting;
    long take; /* permits to ask for */
    long long seq;
    int *renew;             /* places whose permits are renewed */
    const char **renew_ids; /* their ids, borrowed: only this thread changes an id */
    int *kept;              /* whether each renewal held */
    size_t nrenew;
    long slots; /* slots to ask for */
};

static void note_down(struct limiter *lim, const struct svc_limit *s, const char *why)
{
    if (lim->down_logged)
        return;
    lim->down_logged = 1;
    EXW_LOG(EXW_LOG_WARN,
            "the fleet-wide caps of service %s cannot be reached in Redis (%s): its requests "
            "wait for them",
            s->svc->name, why);
}

static void note_up(struct limiter *lim)
{
    if (lim->down_logged)
        EXW_LOG(EXW_LOG_INFO, "the fleet-wide caps are reachable again");
    lim->down_logged = 0;
}

/* The most permits this worker should hold while others wait. */
static long share_of(const struct svc_limit *s)
{
    return s->others_waiting > 0 ? (s->max + s->others_waiting) / (s->others_waiting + 1) : s->max;
}

/* Plans @rd, whose arrays have room for lim->nplaces each. */
static void plan_locked(struct limiter *lim, struct svc_limit *s, struct round *rd, int64_t *next)
    EXW_REQUIRES(lim->mu)
{
    int64_t now = exw_mono_ms(), now_us = exw_mono_us();
    long usable = 0, share = share_of(s);
    size_t i;

    rd->nrelease = 0;
    rd->still_waiting = 0;
    rd->take = 0;
    rd->seq = 0;
    rd->nrenew = 0;
    rd->slots = 0;
    if (s->max > 0) {
        for (i = 0; i < lim->nplaces; i++) {
            struct permit *p = &s->permits[i];
            int idle = s->want_permits == 0 && now - p->free_since >= IDLE_RELEASE_MS;

            if (p->id == NULL || p->in_use)
                continue;
            if (p->lost) { /* Redis dropped it already: nothing to give back */
                free(p->id);
                p->id = NULL;
                s->nheld--;
                continue;
            }
            if (lim->stopping || idle || s->nheld > share) {
                rd->release[rd->nrelease++] = p->id;
                p->id = NULL;
                s->nheld--;
                continue;
            }
            if (s->want_permits == 0)
                *next = min64(*next, p->free_since + IDLE_RELEASE_MS);
            if (p->valid_until >= now + s->svc->timeout_ms + START_MARGIN_MS)
                usable++;
        }
        rd->still_waiting = s->want_permits > 0;
        if (!lim->stopping && s->want_permits > usable && s->nheld < (long)lim->nplaces &&
            (s->others_waiting == 0 || s->nheld < share)) {
            if (now >= s->take_after) {
                rd->take = s->want_permits - usable;
                if (rd->take > TAKE_BATCH)
                    rd->take = TAKE_BATCH;
                if (rd->take > (long)lim->nplaces - s->nheld)
                    rd->take = (long)lim->nplaces - s->nheld;
            } else {
                *next = min64(*next, s->take_after);
            }
        }
        if (s->nheld > 0 && !lim->stopping) {
            if (now >= s->renew_at) {
                for (i = 0; i < lim->nplaces; i++) {
                    if (s->permits[i].id != NULL && !s->permits[i].lost) {
                        rd->renew[rd->nrenew] = (int)i;
                        rd->renew_ids[rd->nrenew++] = s->permits[i].id;
                    }
                }
            } else {
                *next = min64(*next, s->renew_at);
            }
        }
    }
    if (s->rate > 0 && now_us - s->usage_at >= 100000) {
        s->usage = (s->usage + (double)s->taken * 1e6 / (double)(now_us - s->usage_at)) / 2;
        s->taken = 0;
        s->usage_at = now_us;
    }
    if (s->rate > 0 && !lim->stopping && s->want_slots > (long)s->nslots) {
        /* What the waiting threads need, or, while this worker is busy, the
         * slots of RATE_AHEAD_US of its use: one call for many requests. */
        long room = (long)(lim->nplaces * 2 - s->nslots);
        long want = s->want_slots - (long)s->nslots;
        long ahead = (long)(s->usage * RATE_AHEAD_US / 1e6 + 0.5) - (long)s->nslots;

        if (ahead > want)
            want = ahead;
        if (now_us >= s->rate_after_us)
            rd->slots = min64(min64(want, RATE_BATCH), room);
        else
            *next = min64(*next, s->rate_after_us / 1000 + 1);
    }
}

/* Adds @granted permits named from @seq, leased as of @sent_at. */
static void add_permits_locked(struct limiter *lim, struct svc_limit *s, long granted,
                               long long seq, int64_t sent_at) EXW_REQUIRES(lim->mu)
{
    size_t i;
    long k;

    for (k = 0, i = 0; k < granted && i < lim->nplaces; i++) {
        struct permit *p = &s->permits[i];
        size_t len;

        if (p->id != NULL)
            continue;
        len = strlen(lim->holder) + 24;
        p->id = exw_xmalloc(len);
        snprintf(p->id, len, "%s:%lld", lim->holder, seq + k);
        p->valid_until = sent_at + s->lease_ms;
        p->in_use = 0;
        p->lost = 0;
        p->free_since = exw_mono_ms();
        s->nheld++;
        k++;
    }
}

/* Does @rd with Redis, then applies what came back. Called and returns with
 * the lock held. */
static void run_round_locked(struct limiter *lim, struct svc_limit *s, struct round *rd)
    EXW_REQUIRES(lim->mu)
{
    const char *name = s->svc->name;
    struct exw_permit_take took = {0};
    struct exw_rate_take paced = {0};
    struct exw_redis *redis;
    struct exw_errbuf eb;
    int64_t take_sent = 0, renew_sent = 0, paced_at = 0;
    long others = 0;
    int64_t redis_now = 0;
    exw_err take_rc = EXW_OK, renew_rc = EXW_OK, rate_rc = EXW_OK;
    size_t i;

    if (rd->nrelease == 0 && rd->take == 0 && rd->nrenew == 0 && rd->slots == 0)
        return;
    if (rd->take > 0) {
        rd->seq = lim->seq;
        lim->seq += rd->take;
    }
    exw_mutex_unlock(&lim->mu);
    redis = exw_conn_get(&lim->conn);
    if (redis == NULL)
        take_rc = renew_rc = rate_rc = EXW_EREDIS;
    if (redis != NULL && rd->nrelease > 0 &&
        exw_permits_release(redis, name, lim->holder, rd->still_waiting,
                            (const char *const *)rd->release, rd->nrelease, NULL, &eb) != EXW_OK)
        EXW_LOG(EXW_LOG_DEBUG, "permits of service %s not given back: %s", name, eb.msg);
    if (redis != NULL && rd->take > 0) {
        take_sent = exw_mono_ms();
        take_rc = exw_permits_take(redis, name, lim->holder, s->max, rd->take, s->lease_ms, rd->seq,
                                   WAITING_MS, -1, &took, &eb);
    }
    if (redis != NULL && rd->nrenew > 0) {
        renew_sent = exw_mono_ms();
        renew_rc = exw_permits_renew(redis, name, lim->holder, s->lease_ms, rd->renew_ids,
                                     rd->nrenew, -1, rd->kept, &others, &redis_now, &eb);
    }
    if (redis != NULL && rd->slots > 0) {
        rate_rc =
            exw_rate_take(redis, name, s->interval_us, rd->slots, RATE_HORIZON_US, -1, &paced, &eb);
        paced_at = exw_mono_us();
    }
    if (take_rc != EXW_OK || renew_rc != EXW_OK || rate_rc != EXW_OK)
        note_down(lim, s, redis != NULL ? eb.msg : "Redis is not reachable");
    else
        note_up(lim);
    exw_mutex_lock(&lim->mu);
    if (rd->take > 0 && take_rc == EXW_OK) {
        add_permits_locked(lim, s, took.granted, rd->seq, take_sent);
        s->others_waiting = took.others_waiting;
        if (took.granted < rd->take)
            s->take_after =
                exw_mono_ms() + RETRY_MIN_MS + (int64_t)(next_random(lim) % (RETRY_SPREAD_MS + 1));
    } else if (rd->take > 0) {
        s->take_after = exw_mono_ms() + DOWN_RETRY_MS;
    }
    if (rd->nrenew > 0 && renew_rc == EXW_OK) {
        s->others_waiting = others;
        s->renew_at = exw_mono_ms() + RENEW_EVERY_MS;
        for (i = 0; i < rd->nrenew; i++) {
            struct permit *p = &s->permits[rd->renew[i]];

            if (rd->kept[i]) {
                p->valid_until = renew_sent + s->lease_ms;
            } else if (p->in_use) {
                p->lost = 1; /* dropped when its request ends */
            } else {
                free(p->id);
                p->id = NULL;
                s->nheld--;
            }
        }
    } else if (rd->nrenew > 0) {
        s->renew_at = exw_mono_ms() + DOWN_RETRY_MS / 2;
    }
    if (rd->slots > 0 && rate_rc == EXW_OK) {
        size_t cap = lim->nplaces * 2;
        int64_t next_tat = paced.first_us + paced.granted * s->interval_us;
        long k;

        /* Redis's times as this worker's, as of the answer: never early. */
        for (k = 0; k < paced.granted && s->nslots < cap; k++) {
            s->slots[(s->head + s->nslots) % cap] =
                paced.first_us + k * s->interval_us - paced.now_us + paced_at;
            s->nslots++;
        }
        s->rate_after_us =
            paced.granted < rd->slots ? next_tat - RATE_HORIZON_US - paced.now_us + paced_at : 0;
    } else if (rd->slots > 0) {
        s->rate_after_us = exw_mono_us() + DOWN_RETRY_MS * 1000;
    }
    pthread_cond_broadcast(&lim->granted);
}

/* Frees the ids @rd gave back. */
static void end_round(struct round *rd)
{
    size_t i;

    for (i = 0; i < rd->nrelease; i++)
        free(rd->release[i]);
    rd->nrelease = 0;
}

/* How late a slot may still be used. The requests sent in any second come from
 * slots that began within that second and the grace before it: at most
 * (1 s + grace) / interval + 1 of them. From 10 a second up the grace keeps that
 * within the rate and 10 % (and at most SLOT_GRACE_MAX_US); below, one more
 * than the rate is the least that any grace gives. */
static int64_t grace_of(long rate, int64_t interval_us)
{
    int64_t room = (rate / 10 - 1) * interval_us;

    if (room > SLOT_GRACE_MAX_US)
        room = SLOT_GRACE_MAX_US;
    return room > SLOT_GRACE_MIN_US ? room : SLOT_GRACE_MIN_US;
}

static void *limiter_main(void *arg)
{
    struct limiter *lim = arg;
    struct round rd = {0};
    int last = 0;
    size_t i;

    exw_log_set_thread("limits");
    rd.release = exw_xcalloc(lim->nplaces, sizeof(*rd.release));
    rd.renew = exw_xcalloc(lim->nplaces, sizeof(*rd.renew));
    rd.renew_ids = exw_xcalloc(lim->nplaces, sizeof(*rd.renew_ids));
    rd.kept = exw_xcalloc(lim->nplaces, sizeof(*rd.kept));
    exw_mutex_lock(&lim->mu);
    while (!last) {
        int64_t next = exw_mono_ms() + RENEW_EVERY_MS;

        /* At the stop one more round gives every permit back. */
        last = lim->stopping;
        lim->poked = 0;
        for (i = 0; i < lim->nsvcs; i++) {
            struct svc_limit *s = &lim->svcs[i];

            if (s->max == 0 && s->rate == 0)
                continue;
            plan_locked(lim, s, &rd, &next);
            run_round_locked(lim, s, &rd);
            end_round(&rd);
        }
        if (!last && !lim->poked && !lim->stopping)
            wait_ms(&lim->work, &lim->mu, next - exw_mono_ms());
    }
    exw_mutex_unlock(&lim->mu);
    exw_conn_cleanup(&lim->conn);
    free(rd.release);
    free(rd.renew);
    free(rd.renew_ids);
    free(rd.kept);
    return NULL;
}

/* 8 random bytes in hex, so that a worker restarted with the same id never
 * takes its dead self's permits for its own. */
static void holder_token(char out[17], uint64_t *seed)
{
    uint64_t x;

    exw_random_bytes(&x, sizeof(x));
    snprintf(out, 17, "%016llx", (unsigned long long)x);
    *seed = x ? x : 1;
}

exw_err exw_limiter_start(struct worker *w, struct limiter **out, struct exw_errbuf *eb)
{
    const struct exw_config *cfg = w->cfg;
    struct limiter *lim;
    char token[17];
    size_t i, any = 0;

    *out = NULL;
    for (i = 0; i < cfg->nservices; i++)
        any += cfg->services[i].max_inflight > 0 || cfg->services[i].rate > 0;
    if (any == 0)
        return EXW_OK;
    lim = exw_xcalloc(1, sizeof(*lim));
    lim->w = w;
    lim->nplaces = (size_t)cfg->pool_size;
    lim->nsvcs = cfg->nservices;
    lim->svcs = exw_xcalloc(lim->nsvcs, sizeof(*lim->svcs));
    holder_token(token, &lim->rng);
    snprintf(lim->holder, sizeof(lim->holder), "%s:%s", cfg->worker_id, token);
    for (i = 0; i < lim->nsvcs; i++) {
        struct svc_limit *s = &lim->svcs[i];

        s->svc = &cfg->services[i];
        s->max = s->svc->max_inflight;
        s->rate = s->svc->rate;
        s->lease_ms = s->svc->timeout_ms + LEASE_SLACK_MS;
        if (s->max > 0)
            s->permits = exw_xcalloc(lim->nplaces, sizeof(*s->permits));
        if (s->rate > 0) {
            s->interval_us = (1000000 + s->rate - 1) / s->rate;
            s->grace_us = grace_of(s->rate, s->interval_us);
            s->slots = exw_xcalloc(lim->nplaces * 2, sizeof(*s->slots));
        }
    }
    exw_conn_init(&lim->conn, cfg, w->metrics, "limits", REDIS_TIMEOUT_MS);
    pthread_mutex_init(&lim->mu.m, NULL);
    if (exw_cond_init_mono(&lim->work) != 0 || exw_cond_init_mono(&lim->granted) != 0)
        EXW_ASSERT(!"a condition variable could not be made");
    if (pthread_create(&lim->tid, NULL, limiter_main, lim) != 0) {
        pthread_cond_destroy(&lim->work);
        pthread_cond_destroy(&lim->granted);
        pthread_mutex_destroy(&lim->mu.m);
        for (i = 0; i < lim->nsvcs; i++) {
            free(lim->svcs[i].permits);
            free(lim->svcs[i].slots);
        }
        free(lim->svcs);
        free(lim);
        return exw_errbuf_set(eb, EXW_ENOMEM, "cannot start the thread of the fleet-wide caps");
    }
    *out = lim;
    return EXW_OK;
}

void exw_limiter_stop(struct limiter *lim)
{
    size_t i, j;

    if (lim == NULL)
        return;
    exw_mutex_lock(&lim->mu);
    lim->stopping = 1;
    pthread_cond_signal(&lim->work);
    exw_mutex_unlock(&lim->mu);
    pthread_join(lim->tid, NULL);
    for (i = 0; i < lim->nsvcs; i++) {
        for (j = 0; lim->svcs[i].permits != NULL && j < lim->nplaces; j++)
            free(lim->svcs[i].permits[j].id);
        free(lim->svcs[i].permits);
        free(lim->svcs[i].slots);
    }
    free(lim->svcs);
    pthread_cond_destroy(&lim->work);
    pthread_cond_destroy(&lim->granted);
    pthread_mutex_destroy(&lim->mu.m);
    free(lim);
}
