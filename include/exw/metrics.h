/* metrics.h: the worker's own metrics, in the Prometheus text exposition
 * format 0.0.4 (PROTOCOL.md section 4, "Metrics and health").
 *
 * A registry of counters, gauges and histograms, each made of C11 atomics,
 * so that counting on the hot path (a pool thread after each HTTP request, a
 * job thread as a job ends) costs one or two relaxed atomic adds and never a
 * lock. Every label set is fixed when the registry is made: the outcomes, the
 * lookup services configured, HTTP statuses 100 to 599 and four words; so
 * memory is bounded (about 4 KiB per service) and nothing is allocated after
 * start-up. The text is rendered at scrape time from the atomics as they are
 * then; a histogram's _count is the sum of its buckets, so the two always
 * agree, while its _sum may be a few observations ahead or behind.
 *
 * Every update function accepts a NULL registry and then does nothing, so that
 * code shared with tools and tests needs no registry. */
#ifndef EXW_METRICS_H
#define EXW_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "exw/buf.h"
#include "exw/err.h"

/* The outcome label of export_jobs_total. */
enum exw_outcome {
    EXW_OUTCOME_SUCCEEDED, /* P:stats jobs_succeeded */
    EXW_OUTCOME_FAILED,    /* P:stats jobs_failed */
    EXW_OUTCOME_CANCELLED, /* P:stats jobs_cancelled */
    EXW_OUTCOME_DEAD,      /* P:stats jobs_dead */
    EXW_OUTCOME_REQUEUED,  /* put back on the queue or recovered: not in P:stats */
    EXW_OUTCOME_COUNT
};

/* Plain counters. */
enum exw_counter {
    EXW_COUNTER_RESULT_BYTES,     /* export_result_bytes_total: P:stats bytes_out */
    EXW_COUNTER_REDIS_RECONNECTS, /* export_redis_reconnects_total */
    EXW_COUNTER_COUNT
};

/* Gauges. */
enum exw_gauge {
    EXW_GAUGE_POOL_THREADS, /* export_pool_threads: lookup threads running */
    EXW_GAUGE_POOL_BUSY,    /* export_pool_busy_threads: of those, running a lookup */
    EXW_GAUGE_JOBS_RUNNING, /* export_jobs_running */
    EXW_GAUGE_QUEUE_LENGTH, /* export_queue_length: LLEN P:queue when last read */
    EXW_GAUGE_COUNT
};

/* The code label of a lookup request that has no HTTP status (any other code
 * is the status, 100 to 599; a status outside that range counts as other). */
#define EXW_CODE_TIMEOUT (-1) /* no answer within the time limit */
#define EXW_CODE_CONNECT (-2) /* the connection could not be made, or broke */
#define EXW_CODE_ABORTED (-3) /* abandoned: the job had ended or was stopping */
#define EXW_CODE_OTHER (-4)   /* anything else, e.g. no memory for the request */

/* What the registry is made for. The strings are copied. */
struct exw_metrics_info {
    const char *version;         /* export_worker_info's version label */
    const char *worker;          /* export_worker_info's worker label */
    const char *const *services; /* the lookup services' names, in the order that
                                    indexes them below; labelled in lower case */
    size_t nservices;
};

struct exw_metrics;

/* A registry with every counter at 0. Never fails (out of memory aborts).
 * Thread: any, before it is shared. */
struct exw_metrics *exw_metrics_new(const struct exw_metrics_info *info);

/* Frees @m; NULL is a no-op. No other thread may still use it. Thread: owner. */
void exw_metrics_free(struct exw_metrics *m);

/* Adds @n jobs of outcome @o. Thread: any. */
void exw_metrics_job(struct exw_metrics *m, enum exw_outcome o, long long n);

/* One job ended after @us microseconds (export_job_duration_seconds).
 * Thread: any. */
void exw_metrics_job_duration(struct exw_metrics *m, int64_t us);

/* Adds to export_lookups_total of service number @service: @ok keys looked up
 * without error, @errors keys failed after retries. An unknown @service (-1)
 * counts nothing. Thread: any. */
void exw_metrics_lookups(struct exw_metrics *m, int service, long long ok, long long errors);

/* One HTTP request to service number @service that ended with @code (an HTTP
 * status or an EXW_CODE_*) after @us microseconds: export_lookup_requests_total
 * and export_lookup_duration_seconds. An unknown @service counts nothing.
 * Thread: any. */
void exw_metrics_request(struct exw_metrics *m, int service, int code, int64_t us);

/* Sparing a service (PROTOCOL.md section 4): @hits keys of service number
 * @service answered from the shared cache and @misses asked of the service
 * after a look in it (export_lookup_cache_total). Thread: any. */
void exw_metrics_cache(struct exw_metrics *m, int service, long long hits, long long misses);

/* Permits of service number @service's fleet-wide cap this worker's requests
 * hold now, moved by @delta (export_lookup_permits_in_use). Thread: any. */
void exw_metrics_permits_in_use(struct exw_metrics *m, int service, long long delta);

/* One request of service number @service waited @us microseconds for a
 * permit (export_lookup_permit_wait_seconds). Thread: any. */
void exw_metrics_permit_wait(struct exw_metrics *m, int service, int64_t us);

/* One request of service number @service was held back by the fleet-wide
 * rate (export_lookup_rate_delayed_total). Thread: any. */
void exw_metrics_rate_delayed(struct exw_metrics *m, int service);

/* Adds @n to counter @c. Thread: any. */
void exw_metrics_add(struct exw_metrics *m, enum exw_counter c, long long n);

/* Adds @delta to gauge @g, or sets it to @value. Thread: any. */
void exw_metrics_gauge_add(struct exw_metrics *m, enum exw_gauge g, long long delta);
void exw_metrics_gauge_set(struct exw_metrics *m, enum exw_gauge g, long long value);

/* The value of gauge @g (0 for a NULL registry). Thread: any. */
long long exw_metrics_gauge(const struct exw_metrics *m, enum exw_gauge g);

/* Appends every metric to @out as Prometheus text 0.0.4: a # HELP and a
 * # TYPE line per family, label values escaped, histograms with cumulative
 * _bucket{le=...} lines up to "+Inf", _sum and _count, in seconds. Returns
 * EXW_ELIMIT when @out's cap is too small (what fitted is kept). Thread: any. */
EXW_MUST_CHECK exw_err exw_metrics_render(const struct exw_metrics *m, struct exw_buf *out);

#endif
