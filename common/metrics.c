/* metrics.c: the worker's metrics registry and its Prometheus text.
 *
 * DESIGN
 * ------
 * The numbers are counted where the work happens: a pool thread after each
 * HTTP request, a job thread as each job ends, the heartbeat thread after each
 * renewal. They are read rarely, by a scrape every 15 s or so. So an update
 * must cost next to nothing and never wait, and a read may do the work.
 *
 * Every value is a C11 atomic updated with memory_order_relaxed: the values
 * are independent tallies, and nothing is ordered by them, so no fence is
 * needed. A lock would also be correct, but a pool thread would then queue
 * behind a scrape that formats a few KiB of text.
 *
 * Labels are fixed at start-up, so no table ever grows and no lookup needs a
 * lock: outcomes are an enum; services are the ones configured, by their index
 * in the configuration; a request's code indexes a flat array of the 500
 * statuses 100..599 and four words (timeout, connect, aborted, other), 4 KiB
 * per service. A status seen nowhere is not shown.
 *
 * A histogram is a fixed array of atomic buckets, each counting only its own
 * range (the last one past every bound: +Inf), and an atomic sum in
 * microseconds. An observation is two atomic adds. The cumulative counts of
 * the exposition format are summed at render time, and _count is their total,
 * so _count and the +Inf bucket are always equal.
 */
#include "exw/metrics.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BOUNDS 16
#define HTTP_MIN 100
#define HTTP_MAX 599
#define NSTATUS (HTTP_MAX - HTTP_MIN + 1)
/* The word codes follow the statuses in a service's request counts. */
#define NCODES (NSTATUS + 4)

/* Upper bounds of the buckets, in microseconds. */
static const int64_t job_bounds[] = {
    100000,   250000,   500000,    1000000,   2500000,   5000000,    10000000,
    30000000, 60000000, 120000000, 300000000, 600000000, 1800000000, 3600000000,
};
static const int64_t request_bounds[] = {
    5000,   10000,   25000,   50000,   100000,   250000,
    500000, 1000000, 2500000, 5000000, 10000000, 30000000,
};
static const int64_t wait_bounds[] = {
    1000,   5000,    10000,   25000,   50000,    100000,   250000,
    500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};

static const char *const outcome_names[EXW_OUTCOME_COUNT] = {
    "succeeded", "failed", "cancelled", "dead", "requeued",
};

static const char *const word_codes[NCODES - NSTATUS] = {"timeout", "connect", "aborted", "other"};

struct histogram {
    const int64_t *bounds;                 /* ascending, in microseconds */
    size_t nbounds;                        /* at most MAX_BOUNDS */
    atomic_ullong buckets[MAX_BOUNDS + 1]; /* each its own range; the last: +Inf */
    atomic_ullong sum;                     /* microseconds */
};

struct service_metrics {
    char *name;                  /* lower case */
    atomic_ullong lookups[2];    /* ok, error */
    atomic_ullong codes[NCODES]; /* statuses 100..599, then the word codes */
    struct histogram duration;
    atomic_ullong cache[2];      /* hit, miss */
    atomic_llong permits_in_use; /* a gauge */
    struct histogram permit_wait;
    atomic_ullong rate_delayed;
};

struct exw_metrics {
    char *version;
    char *worker;
    atomic_ullong jobs[EXW_OUTCOME_COUNT];
    struct histogram job_duration;
    atomic_ullong counters[EXW_COUNTER_COUNT];
    atomic_llong gauges[EXW_GAUGE_COUNT];
    struct service_metrics *services;
    size_t nservices;
};

static void histogram_init(struct histogram *h, const int64_t *bounds, size_t n)
{
    size_t i;

    h->bounds = bounds;
    h->nbounds = n < MAX_BOUNDS ? n : MAX_BOUNDS;
    for (i = 0; i <= MAX_BOUNDS; i++)
        atomic_init(&h->buckets[i], 0);
    atomic_init(&h->sum, 0);
}

static void observe(struct histogram *h, int64_t us)
{
    size_t i = 0;

    if (us < 0)
        us = 0;
    while (i < h->nbounds && us > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, (unsigned long long)us, memory_order_relaxed);
}

static void add(atomic_ullong *v, long long n)
{
    if (n > 0)
        atomic_fetch_add_explicit(v, (unsigned long long)n, memory_order_relaxed);
}

static unsigned long long get(const atomic_ullong *v)
{
    /* C11 wants a non-const pointer for a load; loading does not write. */
    return atomic_load_explicit((atomic_ullong *)v, memory_order_relaxed);
}

static char *lower_copy(const char *s)
{
    char *out = exw_xstrdup(s ? s : "");
    char *p;

    for (p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return out;
}

struct exw_metrics *exw_metrics_new(const struct exw_metrics_info *info)
{
    struct exw_metrics *m = exw_xcalloc(1, sizeof(*m));
    size_t i, j;

    m->version = exw_xstrdup(info->version ? info->version : "");
    m->worker = exw_xstrdup(info->worker ? info->worker : "");
    for (i = 0; i < EXW_OUTCOME_COUNT; i++)
        atomic_init(&m->jobs[i], 0);
    for (i = 0; i < EXW_COUNTER_COUNT; i++)
        atomic_init(&m->counters[i], 0);
    for (i = 0; i < EXW_GAUGE_COUNT; i++)
        atomic_init(&m->gauges[i], 0);
    histogram_init(&m->job_duration, job_bounds, sizeof(job_bounds) / sizeof(job_bounds[0]));
    m->nservices = info->nservices;
    m->services = exw_xcalloc(m->nservices ? m->nservices : 1, sizeof(*m->services));
    for (i = 0; i < m->nservices; i++) {
        struct service_metrics *s = &m->services[i];

        s->name = lower_copy(info->services[i]);
        atomic_init(&s->lookups[0], 0);
        atomic_init(&s->lookups[1], 0);
        for (j = 0; j < NCODES; j++)
            atomic_init(&s->codes[j], 0);
        histogram_init(&s->duration, request_bounds,
                       sizeof(request_bounds) / sizeof(request_bounds[0]));
        atomic_init(&s->cache[0], 0);
        atomic_init(&s->cache[1], 0);
        atomic_init(&s->permits_in_use, 0);
        histogram_init(&s->permit_wait, wait_bounds, sizeof(wait_bounds) / sizeof(wait_bounds[0]));
        atomic_init(&s->rate_delayed, 0);
    }
    return m;
}

void exw_metrics_free(struct exw_metrics *m)
{
    size_t i;

    if (m == NULL)
        return;
    for (i = 0; i < m->nservices; i++)
        free(m->services[i].name);
    free(m->services);
    free(m->version);
    free(m->worker);
    free(m);
}

/* ---- updates ---- */

void exw_metrics_job(struct exw_metrics *m, enum exw_outcome o, long long n)
{
    if (m != NULL && (unsigned)o < EXW_OUTCOME_COUNT)
        add(&m->jobs[o], n);
}

void exw_metrics_job_duration(struct exw_metrics *m, int64_t us)
{
    if (m != NULL)
        observe(&m->job_duration, us);
}

static struct service_metrics *service_of(struct exw_metrics *m, int service)
{
    if (m == NULL || service < 0 || (size_t)service >= m->nservices)
        return NULL;
    return &m->services[service];
}

void exw_metrics_lookups(struct exw_metrics *m, int service, long long ok, long long errors)
{
    struct service_metrics *s = service_of(m, service);

    if (s == NULL)
        return;
    add(&s->lookups[0], ok);
    add(&s->lookups[1], errors);
}

/* Where code @code is counted among a service's codes. */
static size_t code_slot(int code)
{
    if (code >= HTTP_MIN && code <= HTTP_MAX)
        return (size_t)(code - HTTP_MIN);
    switch (code) {
    case EXW_CODE_TIMEOUT:
        return NSTATUS;
    case EXW_CODE_CONNECT:
        return NSTATUS + 1;
    case EXW_CODE_ABORTED:
        return NSTATUS + 2;
    default:
        return NSTATUS + 3;
    }
}

void exw_metrics_request(struct exw_metrics *m, int service, int code, int64_t us)
{
    struct service_metrics *s = service_of(m, service);

    if (s == NULL)
        return;
    add(&s->codes[code_slot(code)], 1);
    observe(&s->duration, us);
}

void exw_metrics_cache(struct exw_metrics *m, int service, long long hits, long long misses)
{
    struct service_metrics *s = service_of(m, service);

    if (s == NULL)
        return;
    add(&s->cache[0], hits);
    add(&s->cache[1], misses);
}

void exw_metrics_permits_in_use(struct exw_metrics *m, int service, long long delta)
{
    struct service_metrics *s = service_of(m, service);

    if (s != NULL)
        atomic_fetch_add_explicit(&s->permits_in_use, delta, memory_order_relaxed);
}

void exw_metrics_permit_wait(struct exw_metrics *m, int service, int64_t us)
{
    struct service_metrics *s = service_of(m, service);

    if (s != NULL)
        observe(&s->permit_wait, us);
}

void exw_metrics_rate_delayed(struct exw_metrics *m, int service)
{
    struct service_metrics *s = service_of(m, service);

    if (s != NULL)
        add(&s->rate_delayed, 1);
}

void exw_metrics_add(struct exw_metrics *m, enum exw_counter c, long long n)
{
    if (m != NULL && (unsigned)c < EXW_COUNTER_COUNT)
        add(&m->counters[c], n);
}

void exw_metrics_gauge_add(struct exw_metrics *m, enum exw_gauge g, long long delta)
{
    if (m != NULL && (unsigned)g < EXW_GAUGE_COUNT)
        atomic_fetch_add_explicit(&m->gauges[g], delta, memory_order_relaxed);
}

void exw_metrics_gauge_set(struct exw_metrics *m, enum exw_gauge g, long long value)
{
    if (m != NULL && (unsigned)g < EXW_GAUGE_COUNT)
        atomic_store_explicit(&m->gauges[g], value, memory_order_relaxed);
}

long long exw_metrics_gauge(const struct exw_metrics *m, enum exw_gauge g)
{
    if (m == NULL || (unsigned)g >= EXW_GAUGE_COUNT)
        return 0;
    return atomic_load_explicit((atomic_llong *)&m->gauges[g], memory_order_relaxed);
}

/* ---- the text ---- */

/* The text being built: the first error is kept, and once the buffer is full
 * nothing more is added, so the text never has a hole. */
struct out {
    struct exw_buf *b;
    exw_err rc;
};

static void put_raw(struct out *o, const char *s, size_t n)
{
    if (o->rc == EXW_OK)
        o->rc = exw_buf_append(o->b, s, n);
}

static void put(struct out *o, const char *fmt, ...) EXW_PRINTF(2, 3);
static void put(struct out *o, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* Every format here is short; label values go through put_label. */
    EXW_ASSERT(n >= 0 && (size_t)n < sizeof(line));
    put_raw(o, line, (size_t)n);
}

/* A label value, escaped as the format wants: \\, \" and \n. */
static void put_label(struct out *o, const char *s)
{
    const char *run = s;

    for (; *s; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;

        if (esc == NULL)
            continue;
        put_raw(o, run, (size_t)(s - run));
        put_raw(o, esc, 2);
        run = s + 1;
    }
    put_raw(o, run, strlen(run));
}

/* "# HELP" and "# TYPE" of family @name; the help texts hold neither a
 * backslash nor a newline, which HELP would need escaped. */
static void put_family(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s ", name);
    put_raw(o, help, strlen(help));
    put(o, "\n# TYPE %s %s\n", name, type);
}

/* @us microseconds as seconds, in the fewest digits: 5000 -> "0.005". */
static void format_seconds(int64_t us, char *out, size_t size)
{
    char frac[8];
    int len;

    if (us % 1000000 == 0) {
        snprintf(out, size, "%lld", (long long)(us / 1000000));
        return;
    }
    len = snprintf(frac, sizeof(frac), "%06lld", (long long)(us % 1000000));
    while (len > 0 && frac[len - 1] == '0')
        frac[--len] = '\0';
    snprintf(out, size, "%lld.%s", (long long)(us / 1000000), frac);
}

/* The lines of histogram @h of family @name, whose samples carry the label
 * @label="@value" first when @label is not NULL. */
static void put_histogram(struct out *o, const char *name, const struct histogram *h,
                          const char *label, const char *value)
{
    unsigned long long cumulative = 0, sum = get(&h->sum);
    char le[32];
    size_t i;

    for (i = 0; i <= h->nbounds; i++) {
        cumulative += get(&h->buckets[i]);
        if (i < h->nbounds)
            format_seconds(h->bounds[i], le, sizeof(le));
        else
            snprintf(le, sizeof(le), "+Inf");
        put(o, "%s_bucket{", name);
        if (label != NULL) {
            put(o, "%s=\"", label);
            put_label(o, value);
            put(o, "\",");
        }
        put(o, "le=\"%s\"} %llu\n", le, cumulative);
    }
    put(o, "%s_sum", name);
    if (label != NULL) {
        put(o, "{%s=\"", label);
        put_label(o, value);
        put(o, "\"}");
    }
    put(o, " %llu.%06llu\n", sum / 1000000, sum % 1000000);
    put(o, "%s_count", name);
    if (label != NULL) {
        put(o, "{%s=\"", label);
        put_label(o, value);
        put(o, "\"}");
    }
    put(o, " %llu\n", cumulative);
}

/* A sample line "@name{service="...",@label="@value"} @v". */
static void put_service_sample(struct out *o, const char *name, const char *service,
                               const char *label, const char *value, unsigned long long v)
{
    put(o, "%s{service=\"", name);
    put_label(o, service);
    put(o, "\",%s=\"", label);
    put_label(o, value);
    put(o, "\"} %llu\n", v);
}

static void put_jobs(struct out *o, const struct exw_metrics *m)
{
    size_t i;

    put_family(o, "export_jobs_total", "counter",
               "Jobs by outcome, as this worker added them to P:stats (a job out of attempts "
               "counts as failed and as dead); requeued: put back on the queue at a stop, "
               "recovered from dead workers, or adopted from the own processing list.");
    for (i = 0; i < EXW_OUTCOME_COUNT; i++)
        put(o, "export_jobs_total{outcome=\"%s\"} %llu\n", outcome_names[i], get(&m->jobs[i]));
    put_family(o, "export_job_duration_seconds", "histogram",
               "Time from a job's start on a job thread to its recorded end, per job ended.");
    put_histogram(o, "export_job_duration_seconds", &m->job_duration, NULL, NULL);
    put_family(o, "export_jobs_running", "gauge", "Jobs running on this worker now.");
    put(o, "export_jobs_running %lld\n", exw_metrics_gauge(m, EXW_GAUGE_JOBS_RUNNING));
}

static void put_lookups(struct out *o, const struct exw_metrics *m)
{
    char code[16];
    size_t i, c;

    put_family(o, "export_lookups_total", "counter",
               "Distinct keys looked up per job, by service and result, as P:stats lookups "
               "(result=\"error\": lookup_errors), counted as each job ends.");
    for (i = 0; i < m->nservices; i++) {
        put_service_sample(o, "export_lookups_total", m->services[i].name, "result", "ok",
                           get(&m->services[i].lookups[0]));
        put_service_sample(o, "export_lookups_total", m->services[i].name, "result", "error",
                           get(&m->services[i].lookups[1]));
    }
    put_family(o, "export_lookup_requests_total", "counter",
               "HTTP requests to lookup services, retries included, by service and HTTP status "
               "or timeout, connect, aborted, other; counted as each is made.");
    for (i = 0; i < m->nservices; i++) {
        for (c = 0; c < NCODES; c++) {
            unsigned long long v = get(&m->services[i].codes[c]);

            if (c < NSTATUS && v == 0)
                continue; /* a status never seen */
            if (c < NSTATUS)
                snprintf(code, sizeof(code), "%d", (int)c + HTTP_MIN);
            else
                snprintf(code, sizeof(code), "%s", word_codes[c - NSTATUS]);
            put_service_sample(o, "export_lookup_requests_total", m->services[i].name, "code", code,
                               v);
        }
    }
    put_family(o, "export_lookup_duration_seconds", "histogram",
               "Time of each HTTP request to a lookup service, by service.");
    for (i = 0; i < m->nservices; i++)
        put_histogram(o, "export_lookup_duration_seconds", &m->services[i].duration, "service",
                      m->services[i].name);
}

/* What sparing the services costs and saves: the shared cache, the permits
 * of the fleet-wide cap and the waits for them, the fleet-wide rate. */
static void put_sparing(struct out *o, const struct exw_metrics *m)
{
    size_t i;

    put_family(o, "export_lookup_cache_total", "counter",
               "Keys looked for in the shared lookup cache, by service and result (hit: "
               "answered from P:cache, no request; miss: asked of the service).");
    for (i = 0; i < m->nservices; i++) {
        put_service_sample(o, "export_lookup_cache_total", m->services[i].name, "result", "hit",
                           get(&m->services[i].cache[0]));
        put_service_sample(o, "export_lookup_cache_total", m->services[i].name, "result", "miss",
                           get(&m->services[i].cache[1]));
    }
    put_family(o, "export_lookup_permits_in_use", "gauge",
               "Permits of the service's fleet-wide cap (_MAX_INFLIGHT) held by this worker's "
               "requests now.");
    for (i = 0; i < m->nservices; i++) {
        put(o, "export_lookup_permits_in_use{service=\"");
        put_label(o, m->services[i].name);
        put(o, "\"} %lld\n",
            (long long)atomic_load_explicit((atomic_llong *)&m->services[i].permits_in_use,
                                            memory_order_relaxed));
    }
    put_family(o, "export_lookup_permit_wait_seconds", "histogram",
               "Time each request waited for a permit of the service's fleet-wide cap.");
    for (i = 0; i < m->nservices; i++)
        put_histogram(o, "export_lookup_permit_wait_seconds", &m->services[i].permit_wait,
                      "service", m->services[i].name);
    put_family(o, "export_lookup_rate_delayed_total", "counter",
               "Requests held back by the service's fleet-wide rate (_RATE).");
    for (i = 0; i < m->nservices; i++) {
        put(o, "export_lookup_rate_delayed_total{service=\"");
        put_label(o, m->services[i].name);
        put(o, "\"} %llu\n", get(&m->services[i].rate_delayed));
    }
}

exw_err exw_metrics_render(const struct exw_metrics *m, struct exw_buf *out)
{
    struct out o = {.b = out, .rc = EXW_OK};

    put_family(&o, "export_worker_info", "gauge", "This worker: its version and id; always 1.");
    put(&o, "export_worker_info{version=\"");
    put_label(&o, m->version);
    put(&o, "\",worker=\"");
    put_label(&o, m->worker);
    put(&o, "\"} 1\n");
    put_jobs(&o, m);
    put_lookups(&o, m);
    put_sparing(&o, m);
    put_family(&o, "export_pool_threads", "gauge", "Lookup threads running.");
    put(&o, "export_pool_threads %lld\n", exw_metrics_gauge(m, EXW_GAUGE_POOL_THREADS));
    put_family(&o, "export_pool_busy_threads", "gauge", "Lookup threads busy with a lookup now.");
    put(&o, "export_pool_busy_threads %lld\n", exw_metrics_gauge(m, EXW_GAUGE_POOL_BUSY));
    put_family(&o, "export_queue_length", "gauge",
               "Jobs waiting in P:queue, as the heartbeat last read it.");
    put(&o, "export_queue_length %lld\n", exw_metrics_gauge(m, EXW_GAUGE_QUEUE_LENGTH));
    put_family(&o, "export_result_bytes_total", "counter",
               "Bytes of workbooks stored, as P:stats bytes_out.");
    put(&o, "export_result_bytes_total %llu\n", get(&m->counters[EXW_COUNTER_RESULT_BYTES]));
    put_family(&o, "export_redis_reconnects_total", "counter",
               "Redis connections made again after one was lost or could not be made.");
    put(&o, "export_redis_reconnects_total %llu\n",
        get(&m->counters[EXW_COUNTER_REDIS_RECONNECTS]));
    return o.rc;
}
