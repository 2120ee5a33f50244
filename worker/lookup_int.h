/* lookup_int.h: the inside of one job's lookups, shared by lookup.c (the
 * entries, single requests, retries), lookup_stage.c (the shared cache and the
 * grouping of keys into batches) and lookup_batch.c (batch requests). Private
 * to those three files. */
#ifndef EXW_LOOKUP_INT_H
#define EXW_LOOKUP_INT_H

#include <stdatomic.h>
#include <stdint.h>

#include "exw/buf.h"
#include "exw/http.h"
#include "lookup_store.h"
#include "worker.h"

enum entry_state { ENTRY_PENDING, ENTRY_OK, ENTRY_FAILED };

/* The pool thread that runs a pending entry writes its cells and error, then
 * sets its state under owner->mu and never touches it again; the job thread
 * reads them only once it has seen the state finished under the lock, and
 * alone frees the entry. The fields after state are the job thread's. */
struct lookup_entry {
    struct exw_task task; /* first: the pool hands this back */
    struct lookups *owner;
    char *key;
    struct exw_cell *cells;             /* ENTRY_OK: nlookup_columns cells, owned */
    char *error;                        /* ENTRY_FAILED: why */
    int reached;                        /* a request was sent for it, or the cache answered */
    int state;                          /* guarded by owner->mu */
    uint32_t id;                        /* the key's id in the store */
    long refs;                          /* window rows that hold it */
    int cached;                         /* in the cache: finished, and no row holds it */
    int staged;                         /* on the stage: not yet asked of anyone */
    struct lookup_entry *older, *newer; /* the cache's order, while cached */
};

/* An answer on its way to the shared cache, from a pool thread to the job's. */
struct cache_put {
    struct cache_put *next;
    char *key;
    char *body;
    size_t len;
};

struct lookups {
    struct exw_pool *pool;
    struct exw_pool_queue queue; /* this job's turn in the pool */
    const struct exw_job *job;
    const struct exw_service *svc;
    int service; /* svc's number in the configuration, for the metrics; -1 if none */
    size_t max_response_bytes;
    const char *ca_file;
    int64_t deadline_ms;
    atomic_int abort;
    struct exw_mutex mu;
    long long requests;                 /* guarded by mu: HTTP requests, counted as they go out */
    long long reached;                  /* guarded by mu: keys with at least one request sent */
    pthread_cond_t changed;             /* the entry awaited finished, or the last one in flight */
    const struct lookup_entry *awaited; /* guarded by mu: what the job's thread waits for */
    int await_all;                      /* guarded by mu: it waits for every one in flight */
    /* Sparing the service (exw_lookups_share); all NULL or 0 when not shared: */
    struct exw_metrics *metrics; /* the job thread's counts (cache hits and misses) */
    struct limiter *limiter;     /* the fleet-wide caps; NULL: none */
    struct conn *conn;           /* the job thread's Redis connection, for the cache */
    int use_cache;               /* svc->cache_ttl_s > 0 */
    int use_batch;               /* svc->batch_url set */
    /* The job thread's: */
    struct lookup_store *store;
    struct lookup_entry *oldest, *newest; /* the cache, oldest first */
    long long ncached, cache_max;
    long long live;        /* entries in memory */
    long long read_back;   /* entries read back from the spill file */
    struct exw_buf pack;   /* an entry's bytes on their way to the spill file */
    char store_error[256]; /* why the spill file failed; "" while it works */
    long long total;       /* entries made (job thread only) */
    /* The stage (lookup_stage.c), the job thread's: new entries not yet asked
     * of anyone. The first nchecked were looked for in the shared cache and
     * missed, and wait for a batch; the others were not looked for yet. */
    struct lookup_entry **stage;
    size_t nstage, nchecked, stage_cap;
    int cache_warned; /* a cache failure was logged for this job */
    /* Answers for the shared cache, from the pool threads: guarded by mu. */
    struct cache_put *puts, *puts_tail;
    size_t nputs, put_bytes;
    int64_t puts_since;    /* monotonic ms the oldest was queued */
    long long done;        /* guarded by mu */
    long long failed;      /* guarded by mu */
    long long errors;      /* guarded by mu: of the failed, those with a request sent */
    long long inflight;    /* guarded by mu: submitted, done callback not yet run */
    char first_error[300]; /* guarded by mu */
};

struct lookup_thread {
    struct exw_http *http;
    struct exw_metrics *metrics; /* the pool's user data; may be NULL */
    uint64_t rng;
};

/* lookup.c: sets @e's error from a printf format. Thread: the one that owns @e. */
void lookup_fail(struct lookup_entry *e, const char *fmt, ...) EXW_PRINTF(2, 3);

/* lookup.c: fills @e's cells from the answer @body (@len bytes), or fails @e
 * with the reason it cannot. Returns whether the cells were filled. Thread:
 * the one that owns @e. */
int lookup_fill(struct lookups *l, struct lookup_entry *e, const char *body, size_t len);

/* lookup.c: whether the job's lookups must stop (abort flag or deadline), as an
 * exw_http_abort_fn of @ud, the struct lookups. Thread: any. */
int lookup_should_abort(void *ud);

/* lookup.c: sends GET @url for the @n entries @es (one lookup, or one batch),
 * with the fleet-wide caps, retries and backoff of single lookups, counting each
 * request. Returns 1 with *@resp holding a 200 answer; 0 when the lookup
 * failed for good, with why in @why. Thread: pool (@t is its own). */
int lookup_fetch(struct lookups *l, struct lookup_thread *t, const char *url,
                 struct lookup_entry **es, size_t n, struct exw_http_response *resp, char *why,
                 size_t whysz);

/* lookup.c: finishes the @n entries @es, whose cells or error are set: under
 * the lock, their state and the job's counts; @submitted when they were in
 * flight (their done callback). Thread: any. */
void lookup_finish(struct lookups *l, struct lookup_entry **es, size_t n, int submitted,
                   exw_err rc);

/* lookup.c: queues @e's task on the pool (counted in flight). Thread: main. */
void lookup_submit(struct lookups *l, struct lookup_entry *e);

/* lookup_stage.c: offers the answer @body (@len bytes of JSON) of @key to the
 * shared cache: copied and queued for the job's thread to write, unless the
 * cache is off, the body over the service's cap or the queue full.
 * Thread: pool. */
void lookup_stage_offer(struct lookups *l, const char *key, const char *body, size_t len);

/* lookup_stage.c: puts the new entry @e on the stage, and sends what the
 * stage holds on when it is full. Thread: main. */
void lookup_stage_add(struct lookups *l, struct lookup_entry *e);

/* lookup_stage.c: sends everything on the stage on: looks its keys up in the
 * shared cache, then submits the misses (in batches, the last one short).
 * Thread: main. */
void lookup_stage_flush(struct lookups *l);

/* lookup_stage.c: writes the queued answers to the shared cache when enough
 * are queued or the oldest waited long enough, or with @force all of them.
 * Thread: main. */
void lookup_stage_write(struct lookups *l, int force);

/* lookup_stage.c: frees the queued answers not written. Thread: main. */
void lookup_stage_cleanup(struct lookups *l);

/* lookup_batch.c: submits the @n entries @es as one batch request.
 * Thread: main. */
void lookup_batch_submit(struct lookups *l, struct lookup_entry **es, size_t n);

#endif
