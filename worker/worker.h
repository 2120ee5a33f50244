/* worker.h: the pieces of the export-worker daemon and what they share. */
#ifndef EXW_WORKER_H
#define EXW_WORKER_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "exw/config.h"
#include "exw/err.h"
#include "exw/http.h"
#include "exw/job.h"
#include "exw/lease.h"
#include "exw/metrics.h"
#include "exw/mutex.h"
#include "exw/pool.h"
#include "exw/redis.h"

/* Set by the SIGTERM/SIGINT handler; read everywhere. An atomic, not a
 * volatile sig_atomic_t: the job threads read it too. Lock-free, so the
 * handler may store to it. Thread: any. */
extern atomic_int exw_stop_requested;

/* Set, with exw_stop_requested, when Redis refused the configuration for
 * good (exw_redis_connect said EXW_ECONFIG: a cluster and a prefix without a
 * hash tag): the worker then exits 2. Thread: any. */
extern atomic_int exw_config_refused;

/* A Redis connection that remakes itself after an error, logging once per
 * change between reachable and not. Thread: the one thread that owns it. */
struct conn {
    const struct exw_config *cfg;
    struct exw_metrics *metrics; /* counts reconnects; may be NULL */
    const char *who;             /* names the connection in the log: "main", "heartbeat" */
    long timeout_ms;
    struct exw_redis *rd; /* NULL while down */
    int down_logged;
    int connected;   /* a connection was made before: the next one is a reconnect */
    exw_err last_rc; /* of the last connect: EXW_ECONFIG when Redis refused the settings */
};

void exw_conn_init(struct conn *c, const struct exw_config *cfg, struct exw_metrics *metrics,
                   const char *who, long timeout_ms);
/* The connection, remade when broken; NULL while Redis cannot be reached. */
struct exw_redis *exw_conn_get(struct conn *c);
void exw_conn_cleanup(struct conn *c);

struct slot;

/* Where the heartbeat thread is in its life, for /healthz. */
enum hb_state { HB_NOT_STARTED, HB_RUNNING, HB_EXITED };

struct worker {
    const struct exw_config *cfg;
    struct exw_metrics *metrics; /* the registry; outlives every thread that counts */
    struct exw_pool *pool;       /* the lookup threads */
    struct limiter *limiter;     /* the fleet-wide caps on the services; NULL: none */
    struct conn main;            /* the dispatcher's connection; Thread: main */
    char host[256];
    long pid;
    int64_t started_at;
    struct exw_mutex mu;
    pthread_cond_t freed;   /* signalled (with mu) when a job thread has a result */
    struct slot *slots;     /* cfg->concurrency job threads; the fields each says */
    unsigned nslots;        /* threads started */
    int quitting;           /* guarded by mu: the job threads are to exit */
    long long jobs_done;    /* guarded by mu */
    struct exw_lease lease; /* guarded by mu; renewed by the heartbeat */
    /* Liveness, written by the heartbeat thread and read by /healthz: */
    atomic_llong redis_ok_at; /* monotonic ms of the last renewal Redis took */
    atomic_llong hb_tick_at;  /* monotonic ms the heartbeat last went round its loop */
    atomic_int hb_state;      /* enum hb_state */
};

/* Whether the lease lapsed since @taken_at (monotonic ms). Thread: any. */
int exw_worker_lease_lapsed(struct worker *w, int64_t taken_at);

/* Whether the lease holds for @ms from now. Thread: any. */
int exw_worker_lease_holds(struct worker *w, int64_t ms);

/* ---- lookup.c: the lookup pool and one job's lookups ---- */

struct lookups;

/* The pool's per-thread set-up and tear-down (an HTTP handle each).
 * Thread: pool. */
void *exw_lookup_thread_init(unsigned idx, void *ud);
void exw_lookup_thread_fini(void *ctx, void *ud);

/* One job's lookups against @svc, which ends at @deadline_ms (monotonic).
 * Thread: main. */
struct lookups *exw_lookups_new(struct exw_pool *pool, const struct exw_job *job,
                                const struct exw_service *svc, const struct exw_config *cfg,
                                int64_t deadline_ms);

/* Stops the job's lookups still queued or running, waits for all of them to come
 * back, then frees everything. NULL is a no-op. Thread: main. */
void exw_lookups_free(struct lookups *l);

/* Lets the job's lookups spare the service as it is configured: the fleet-wide
 * caps of @w's limiter, and the shared cache through @conn, the job thread's
 * Redis connection (used only while it is up, never remade for the cache).
 * Without it (the unit tests) neither is used. Call before the first request.
 * Thread: main. */
void exw_lookups_share(struct lookups *l, struct worker *w, struct conn *conn);

/* Writes the answers still queued for the shared cache, so a job that ends
 * has put all its answers there before its status says so. Thread: main. */
void exw_lookups_write_cache(struct lookups *l);

/* Asks every lookup of the job to stop as soon as it can. Thread: any. */
void exw_lookups_abort(struct lookups *l);

/* The result of key @key once known: starts its lookup the first time the key
 * is seen, and reads it back from the job's spill file when it was written
 * there (no second request). Returns an opaque handle for exw_lookups_wait;
 * never NULL. Each call holds the entry for one row: give it back with
 * exw_lookups_release once the row is written (exw_lookups_free frees entries
 * still held). Thread: main. */
struct lookup_entry *exw_lookups_request(struct lookups *l, const char *key);

/* Gives back one row's hold on @e, from exw_lookups_request: @e may then be
 * moved to the spill file and freed, so the row must not use it, nor the
 * cells or error it gave, any more. Thread: main. */
void exw_lookups_release(struct lookups *l, struct lookup_entry *e);

/* Why the job's lookup spill file failed (it could not be made, written or
 * read back: a full disk), or NULL while it works. Once set the job must
 * fail with error_code internal: a result may be missing. Thread: main. */
const char *exw_lookups_error(struct lookups *l);

/* Waits up to @wait_ms for @e. Returns 1 when done; then *@cells is its lookup
 * cells (NULL when it failed; *@error then says why). Thread: main. */
int exw_lookups_wait(struct lookups *l, struct lookup_entry *e, int64_t wait_ms,
                     const struct exw_cell **cells, const char **error);

/* The key of @e. Thread: main. */
const char *exw_lookups_key(const struct lookup_entry *e);

/* Figures for the status hash and P:stats. Thread: main (the counts are
 * taken under the lookups' lock). */
struct lookup_counts {
    long long total, done, failed, requests, reached;
    long long errors;      /* of the failed, those reached: P:stats lookup_errors */
    char first_error[300]; /* the first key that failed, and why */
};
void exw_lookups_counts(struct lookups *l, struct lookup_counts *out);

/* ---- limiter.c: the fleet-wide caps on each lookup service ---- */

struct limiter;

/* What one request holds of its service's caps, from exw_limiter_wait to
 * exw_limiter_done. */
struct limiter_grant {
    int service; /* -1: nothing held */
    int permit;  /* the permit's place in the worker's table; -1: none */
};

/* Starts the limiter thread, with a Redis connection of its own, when a
 * service has _MAX_INFLIGHT or _RATE; *@out is NULL when none has. It leases
 * permits and slots of the pace from Redis in small batches, renews the
 * permits' leases and gives back what its threads do not need. Call with the
 * stop signals blocked. Thread: main. */
EXW_MUST_CHECK exw_err exw_limiter_start(struct worker *w, struct limiter **out,
                                         struct exw_errbuf *eb);

/* Stops the thread, gives every permit back and frees @lim; NULL is a no-op.
 * No request may hold a grant any more. Thread: main. */
void exw_limiter_stop(struct limiter *lim);

/* Waits for what service number @service's caps ask before one request that
 * may take @timeout_ms: a permit whose lease outlasts it, then a slot of the
 * pace, whose time it sleeps until. Returns 1 with @g to give back with
 * exw_limiter_done (at once when @lim is NULL or the service has no cap), or
 * 0 as soon as @abort_fn says stop, holding nothing. The waits are timed
 * waits, never a busy loop. Thread: pool. */
int exw_limiter_wait(struct limiter *lim, int service, long timeout_ms, exw_http_abort_fn abort_fn,
                     void *ud, struct limiter_grant *g);

/* Gives back what @g holds, once its request has ended. Thread: pool. */
void exw_limiter_done(struct limiter *lim, struct limiter_grant *g);

/* ---- runner.c: one job from the queue to its end ---- */

enum run_result {
    RUN_ENDED,    /* ended here, or no longer this worker's */
    RUN_LEFT,     /* may still be in this worker's processing list: adopt it later */
    RUN_DEFERRED, /* another copy of the id runs elsewhere: this one waits in the queue */
    RUN_OVERSIZED /* too large for this process's memory: end it with exw_run_oversized */
};

/* Runs the job document @doc on job thread @s, taken (or found in this
 * worker's processing list) by a request sent at @taken_at (monotonic ms),
 * and ends it in Redis. Thread: @s's. */
enum run_result exw_run_job(struct slot *s, const char *doc, size_t len, int64_t taken_at);

/* Ends the oldest job of this worker's own processing list, whose document
 * is too large for this process's memory to take in (its reply could not be
 * allocated): failed too_large under its id when its head shows one, else
 * into P:dead, read in parts. Only while no other job thread runs a job: the
 * oldest must be the one meant. Thread: @s's. */
enum run_result exw_run_oversized(struct slot *s, int64_t taken_at);

/* ---- dispatch.c: jobs from the queue to the job threads ---- */

/* One job thread and the job it runs. The dispatcher (the main thread) hands
 * it a document; the thread runs it to its end and posts the result. */
struct slot {
    struct worker *w;
    unsigned idx;
    pthread_t tid;
    struct conn conn;    /* Thread: the slot's own */
    struct conn rows;    /* Thread: its job's rows reader while one runs (rows_reader.c) */
    pthread_cond_t wake; /* signalled (with w->mu) when work is handed over or on quitting */
    /* guarded by w->mu: */
    int busy;       /* work handed over, result not yet collected */
    int has_result; /* the run ended: result is set */
    enum run_result result;
    char *doc; /* handed over; the thread takes it (and frees it) */
    size_t len;
    int64_t taken_at;
    int oversized;           /* handed over: the oldest own document is too large to read */
    int alone;               /* handed over while no other thread runs a job */
    char held[41];           /* SHA-1 of the document while it may be in the processing list */
    char id[EXW_ID_MAX + 1]; /* the running job's id; "" while none */
    int64_t id_since;        /* monotonic ms when id was set */
};

/* Starts cfg->concurrency job threads. Thread: main. */
EXW_MUST_CHECK exw_err exw_dispatch_start(struct worker *w, struct exw_errbuf *eb);

/* Takes jobs and hands them to the job threads until a stop is asked for;
 * then waits for the running jobs (each ends or goes back to the queue),
 * stops the threads and puts back what is left in the own processing list.
 * Thread: main. */
void exw_dispatch(struct worker *w);

/* Waits until the lease holds for half its TTL. Returns 0 on a stop.
 * Thread: main. */
int exw_dispatch_wait_lease(struct worker *w);

/* Names @id as the job thread @s runs. Returns 0 when another job thread of
 * this worker runs that id already (the start must then treat the document as
 * a copy), 1 otherwise. NULL: none. Thread: @s's. */
int exw_slot_set_job(struct slot *s, const char *id);

/* ---- metrics_http.c: GET /metrics and GET /healthz ---- */

struct metrics_http;

/* Serves /metrics and /healthz on cfg->metrics_addr from a thread of its own
 * (libmicrohttpd's), reading only atomics: w->metrics and the liveness fields.
 * EXW_ECONFIG when the address cannot be resolved; another error when it
 * cannot be listened on (in use, not this host's). Call with the stop signals
 * blocked. Thread: main. */
EXW_MUST_CHECK exw_err exw_metrics_http_start(struct worker *w, struct metrics_http **out,
                                              struct exw_errbuf *eb);

/* Stops serving and frees @h; NULL is a no-op. Thread: main. */
void exw_metrics_http_stop(struct metrics_http *h);

/* Why the worker is unhealthy, one line each, appended to @why (nothing when
 * it is healthy): what GET /healthz answers 503 with. Reads only atomics and
 * the monotonic clock (a test seam). Thread: any. */
void exw_health_check(struct worker *w, struct exw_buf *why);

/* ---- heartbeat.c: the lease, renewed from a thread of its own ---- */

struct heartbeat;
/* Starts the heartbeat thread, which renews the lease every third of its TTL
 * and recovers dead workers' jobs. Thread: main. */
EXW_MUST_CHECK exw_err exw_heartbeat_start(struct worker *w, struct heartbeat **out,
                                           struct exw_errbuf *eb);
/* Stops the thread and deregisters the worker. Thread: main. */
void exw_heartbeat_stop(struct heartbeat *hb);

#endif
