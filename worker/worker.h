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
#include "exw/job.h"
#include "exw/pool.h"
#include "exw/rq.h"

/* Set by the SIGTERM/SIGINT handler; read everywhere. */
extern volatile sig_atomic_t exw_stop_requested;

struct worker {
    const struct exw_config *cfg;
    struct exw_pool *pool; /* the lookup threads */
    struct exw_rq *rq;     /* the main thread's Redis connection, or NULL */
    char host[256];
    long pid;
    int64_t started_at;
    pthread_mutex_t mu;               /* guards current_job and jobs_done */
    char current_job[EXW_ID_MAX + 1]; /* guarded by mu; "" when idle */
    long long jobs_done;              /* guarded by mu */
    atomic_int lease_lost;            /* set by the heartbeat when renewals failed past the TTL */
};

/* ---- lookup.c: the lookup pool and one job's lookups ---- */

struct lookups;

/* The pool's per-thread set-up and tear-down (an HTTP handle each). */
void *exw_lookup_thread_init(unsigned idx, void *ud);
void exw_lookup_thread_fini(void *ctx, void *ud);

/* One job's lookups against @svc, which ends at @deadline_ms (monotonic). */
struct lookups *exw_lookups_new(struct exw_pool *pool, const struct exw_job *job,
                                const struct exw_service *svc, const struct exw_config *cfg,
                                int64_t deadline_ms);

/* Stops the job's lookups still queued or running, waits for all of them to come
 * back, then frees everything. NULL is a no-op. */
void exw_lookups_free(struct lookups *l);

/* Asks every lookup of the job to stop as soon as it can. Thread: any. */
void exw_lookups_abort(struct lookups *l);

/* The result of key @key once known: starts its lookup the first time the key
 * is seen. Returns an opaque handle for exw_lookups_wait; never NULL. */
struct lookup_entry *exw_lookups_request(struct lookups *l, const char *key);

/* Waits up to @wait_ms for @e. Returns 1 when done; then *@cells is its lookup
 * cells (NULL when it failed; *@error then says why). */
int exw_lookups_wait(struct lookups *l, struct lookup_entry *e, int64_t wait_ms,
                     const struct exw_cell **cells, const char **error);

/* The key of @e. */
const char *exw_lookups_key(const struct lookup_entry *e);

/* Figures for the status hash and P:stats. */
struct lookup_counts {
    long long total, done, failed, requests, reached;
    char first_error[300]; /* the first key that failed, and why */
};
void exw_lookups_counts(struct lookups *l, struct lookup_counts *out);

/* ---- runner.c: one job from the queue to its end ---- */

/* Runs the job document @doc that was just taken and ends it in Redis. Returns
 * 1 when its end could not be recorded (Redis away, or its lease lost) and the
 * document may still be in this worker's processing list, for the caller to
 * put back with exw_rq_release_own. */
int exw_run_job(struct worker *w, const char *doc, size_t len);

/* The main thread's Redis connection, remade when broken; NULL while Redis
 * cannot be reached (logged once per change). */
struct exw_rq *exw_worker_redis(struct worker *w);

/* ---- heartbeat.c ---- */

struct heartbeat;
EXW_MUST_CHECK exw_err exw_heartbeat_start(struct worker *w, struct heartbeat **out,
                                           struct exw_errbuf *eb);
/* Stops the thread and deregisters the worker. */
void exw_heartbeat_stop(struct heartbeat *hb);

void exw_worker_set_job(struct worker *w, const char *id);

#endif
