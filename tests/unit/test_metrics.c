/* test_metrics.c: the metrics registry and its Prometheus text: every family
 * with # HELP and # TYPE, every outcome at 0 from the start, cumulative
 * buckets up to +Inf, codes and their words, escaped label values, the cap,
 * a NULL registry, and counts from several threads summing exactly. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exw/metrics.h"
#include "testutil.h"

#define THREADS 8
#define ROUNDS 20000

static const char *const families[][2] = {
    {"export_worker_info", "gauge"},
    {"export_jobs_total", "counter"},
    {"export_job_duration_seconds", "histogram"},
    {"export_jobs_running", "gauge"},
    {"export_lookups_total", "counter"},
    {"export_lookup_requests_total", "counter"},
    {"export_lookup_duration_seconds", "histogram"},
    {"export_pool_threads", "gauge"},
    {"export_pool_busy_threads", "gauge"},
    {"export_queue_length", "gauge"},
    {"export_result_bytes_total", "counter"},
    {"export_redis_reconnects_total", "counter"},
    {"export_lookup_cache_total", "counter"},
    {"export_lookup_permits_in_use", "gauge"},
    {"export_lookup_permit_wait_seconds", "histogram"},
    {"export_lookup_rate_delayed_total", "counter"},
};

static struct exw_metrics *make(const char *version, const char *worker)
{
    static const char *const services[] = {"TETHER", "BILLING2"};
    struct exw_metrics_info info = {
        .version = version, .worker = worker, .services = services, .nservices = 2};

    return exw_metrics_new(&info);
}

/* The registry's text; caller frees. */
static char *render(const struct exw_metrics *m)
{
    struct exw_buf b;

    exw_buf_init(&b, (size_t)1 << 20);
    assert_int_equal(exw_metrics_render(m, &b), EXW_OK);
    return exw_buf_steal(&b, NULL);
}

/* Fails unless @text holds the whole line @line. */
static void assert_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    const char *p = text;

    while ((p = strstr(p, line)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return;
        p++;
    }
    fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void assert_no_line_with(const char *text, const char *part)
{
    if (strstr(text, part) != NULL)
        fail_msg("\"%s\" should not be in:\n%s", part, text);
}

/* Every sample line is "name[{labels}] value" of a family whose # HELP and
 * # TYPE came just before its first sample. */
static void assert_well_formed(const char *text)
{
    const char *family = NULL;
    size_t flen = 0;
    const char *p = text;

    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len;

        assert_non_null(nl); /* every line ends with a newline */
        len = (size_t)(nl - p);
        if (strncmp(p, "# HELP ", 7) == 0) {
            const char *name = p + 7, *sp = memchr(name, ' ', len - 7);
            char want[128];

            assert_non_null(sp);
            family = name;
            flen = (size_t)(sp - name);
            snprintf(want, sizeof(want), "# TYPE %.*s ", (int)flen, family);
            assert_true(strncmp(nl + 1, want, strlen(want)) == 0);
            p = strchr(nl + 1, '\n') + 1; /* the TYPE line */
            continue;
        }
        assert_non_null(family);
        /* The sample's name starts with its family's. */
        assert_true(strncmp(p, family, flen) == 0);
        assert_non_null(memchr(p, ' ', len));
        p = nl + 1;
    }
}

static void test_families_and_zeros(void **state)
{
    struct exw_metrics *m = make("1.2.3", "host-1-abc");
    char *text = render(m);
    char want[160];
    size_t i;

    (void)state;
    assert_well_formed(text);
    for (i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        snprintf(want, sizeof(want), "# TYPE %s %s", families[i][0], families[i][1]);
        assert_line(text, want);
        snprintf(want, sizeof(want), "# HELP %s ", families[i][0]);
        assert_contains(text, want);
    }
    assert_line(text, "export_worker_info{version=\"1.2.3\",worker=\"host-1-abc\"} 1");
    assert_line(text, "export_jobs_total{outcome=\"succeeded\"} 0");
    assert_line(text, "export_jobs_total{outcome=\"failed\"} 0");
    assert_line(text, "export_jobs_total{outcome=\"cancelled\"} 0");
    assert_line(text, "export_jobs_total{outcome=\"dead\"} 0");
    assert_line(text, "export_jobs_total{outcome=\"requeued\"} 0");
    /* Services in lower case, both results, the word codes, no status yet. */
    assert_line(text, "export_lookups_total{service=\"tether\",result=\"ok\"} 0");
    assert_line(text, "export_lookups_total{service=\"billing2\",result=\"error\"} 0");
    assert_line(text, "export_lookup_requests_total{service=\"tether\",code=\"timeout\"} 0");
    assert_line(text, "export_lookup_requests_total{service=\"billing2\",code=\"connect\"} 0");
    assert_no_line_with(text, "code=\"200\"");
    assert_line(text, "export_job_duration_seconds_bucket{le=\"+Inf\"} 0");
    assert_line(text, "export_job_duration_seconds_sum 0.000000");
    assert_line(text, "export_job_duration_seconds_count 0");
    assert_line(text, "export_lookup_duration_seconds_count{service=\"tether\"} 0");
    assert_line(text, "export_pool_threads 0");
    assert_line(text, "export_queue_length 0");
    assert_line(text, "export_result_bytes_total 0");
    free(text);
    exw_metrics_free(m);
}

static void test_histogram_cumulative(void **state)
{
    struct exw_metrics *m = make("v", "w");
    char *text;

    (void)state;
    exw_metrics_job_duration(m, 50000);        /* 0.05 s */
    exw_metrics_job_duration(m, 100000);       /* on the bound 0.1: counted in it */
    exw_metrics_job_duration(m, 300000);       /* 0.3 s */
    exw_metrics_job_duration(m, 2000000);      /* 2 s */
    exw_metrics_job_duration(m, 5000000000LL); /* past every bound */
    exw_metrics_job_duration(m, -5);           /* a clock oddity: 0 */
    text = render(m);
    assert_well_formed(text);
    assert_line(text, "export_job_duration_seconds_bucket{le=\"0.1\"} 3");
    assert_line(text, "export_job_duration_seconds_bucket{le=\"0.25\"} 3");
    assert_line(text, "export_job_duration_seconds_bucket{le=\"0.5\"} 4");
    assert_line(text, "export_job_duration_seconds_bucket{le=\"1\"} 4");
    assert_line(text, "export_job_duration_seconds_bucket{le=\"2.5\"} 5");
    assert_line(text, "export_job_duration_seconds_bucket{le=\"3600\"} 5");
    assert_line(text, "export_job_duration_seconds_bucket{le=\"+Inf\"} 6");
    assert_line(text, "export_job_duration_seconds_sum 5002.450000");
    assert_line(text, "export_job_duration_seconds_count 6");
    free(text);

    /* A labelled histogram: the service first, then le; sub-millisecond bounds. */
    exw_metrics_request(m, 1, 200, 3000);
    exw_metrics_request(m, 1, 200, 7000);
    exw_metrics_request(m, 1, 503, 40000000);
    text = render(m);
    assert_line(text, "export_lookup_duration_seconds_bucket{service=\"billing2\",le=\"0.005\"} 1");
    assert_line(text, "export_lookup_duration_seconds_bucket{service=\"billing2\",le=\"0.01\"} 2");
    assert_line(text, "export_lookup_duration_seconds_bucket{service=\"billing2\",le=\"30\"} 2");
    assert_line(text, "export_lookup_duration_seconds_bucket{service=\"billing2\",le=\"+Inf\"} 3");
    assert_line(text, "export_lookup_duration_seconds_sum{service=\"billing2\"} 40.010000");
    assert_line(text, "export_lookup_duration_seconds_count{service=\"billing2\"} 3");
    assert_line(text, "export_lookup_duration_seconds_count{service=\"tether\"} 0");
    free(text);
    exw_metrics_free(m);
}

static void test_codes_and_counters(void **state)
{
    struct exw_metrics *m = make("v", "w");
    char *text;

    (void)state;
    exw_metrics_request(m, 0, 200, 1);
    exw_metrics_request(m, 0, 200, 1);
    exw_metrics_request(m, 0, 503, 1);
    exw_metrics_request(m, 0, 100, 1);
    exw_metrics_request(m, 0, 599, 1);
    exw_metrics_request(m, 0, 99, 1);  /* not a status: other */
    exw_metrics_request(m, 0, 600, 1); /* not a status: other */
    exw_metrics_request(m, 0, EXW_CODE_TIMEOUT, 1);
    exw_metrics_request(m, 0, EXW_CODE_CONNECT, 1);
    exw_metrics_request(m, 0, EXW_CODE_ABORTED, 1);
    exw_metrics_request(m, -1, 200, 1); /* unknown services count nowhere */
    exw_metrics_request(m, 2, 200, 1);
    exw_metrics_lookups(m, 0, 7, 2);
    exw_metrics_lookups(m, 5, 1, 1);
    exw_metrics_job(m, EXW_OUTCOME_REQUEUED, 3);
    exw_metrics_job(m, EXW_OUTCOME_DEAD, 1);
    exw_metrics_job(m, EXW_OUTCOME_FAILED, 0);
    exw_metrics_job(m, EXW_OUTCOME_COUNT, 1); /* out of range: nothing */
    exw_metrics_add(m, EXW_COUNTER_RESULT_BYTES, 12345);
    exw_metrics_add(m, EXW_COUNTER_REDIS_RECONNECTS, 2);
    exw_metrics_gauge_set(m, EXW_GAUGE_QUEUE_LENGTH, 42);
    exw_metrics_gauge_add(m, EXW_GAUGE_POOL_THREADS, 4);
    exw_metrics_gauge_add(m, EXW_GAUGE_POOL_BUSY, 2);
    exw_metrics_gauge_add(m, EXW_GAUGE_POOL_BUSY, -1);
    exw_metrics_gauge_add(m, EXW_GAUGE_JOBS_RUNNING, 1);
    assert_int_equal(exw_metrics_gauge(m, EXW_GAUGE_POOL_BUSY), 1);
    text = render(m);
    assert_well_formed(text);
    assert_line(text, "export_lookup_requests_total{service=\"tether\",code=\"200\"} 2");
    assert_line(text, "export_lookup_requests_total{service=\"tether\",code=\"503\"} 1");
    assert_line(text, "export_lookup_requests_total{service=\"tether\",code=\"100\"} 1");
    assert_line(text, "export_lookup_requests_total{service=\"tether\",code=\"599\"} 1");
    assert_line(text, "export_lookup_requests_total{service=\"tether\",code=\"other\"} 2");
    assert_line(text, "export_lookup_requests_total{service=\"tether\",code=\"timeout\"} 1");
    assert_line(text, "export_lookup_requests_total{service=\"tether\",code=\"connect\"} 1");
    assert_line(text, "export_lookup_requests_total{service=\"tether\",code=\"aborted\"} 1");
    assert_no_line_with(text, "service=\"billing2\",code=\"200\"");
    assert_line(text, "export_lookup_duration_seconds_count{service=\"tether\"} 10");
    assert_line(text, "export_lookups_total{service=\"tether\",result=\"ok\"} 7");
    assert_line(text, "export_lookups_total{service=\"tether\",result=\"error\"} 2");
    assert_line(text, "export_lookups_total{service=\"billing2\",result=\"ok\"} 0");
    assert_line(text, "export_jobs_total{outcome=\"requeued\"} 3");
    assert_line(text, "export_jobs_total{outcome=\"dead\"} 1");
    assert_line(text, "export_jobs_total{outcome=\"failed\"} 0");
    assert_line(text, "export_result_bytes_total 12345");
    assert_line(text, "export_redis_reconnects_total 2");
    assert_line(text, "export_queue_length 42");
    assert_line(text, "export_pool_threads 4");
    assert_line(text, "export_pool_busy_threads 1");
    assert_line(text, "export_jobs_running 1");
    free(text);
    exw_metrics_free(m);
}

static void test_label_escaping(void **state)
{
    static const char *const services[] = {"A\"B"};
    struct exw_metrics_info info = {
        .version = "1.0\\beta", .worker = "we\"ird\nid\\", .services = services, .nservices = 1};
    struct exw_metrics *m = exw_metrics_new(&info);
    char *text;

    (void)state;
    text = render(m);
    assert_line(text,
                "export_worker_info{version=\"1.0\\\\beta\",worker=\"we\\\"ird\\nid\\\\\"} 1");
    assert_line(text, "export_lookups_total{service=\"a\\\"b\",result=\"ok\"} 0");
    assert_line(text, "export_lookup_duration_seconds_sum{service=\"a\\\"b\"} 0.000000");
    free(text);
    exw_metrics_free(m);
}

static void test_cap(void **state)
{
    struct exw_metrics *m = make("v", "w");
    struct exw_buf b;

    (void)state;
    exw_buf_init(&b, 300);
    assert_int_equal(exw_metrics_render(m, &b), EXW_ELIMIT);
    /* What fitted is kept, never past the cap. */
    assert_true(b.len <= 300);
    exw_buf_cleanup(&b);
    exw_metrics_free(m);
}

/* Sparing the services: cache hits and misses, permits, waits, the rate. */
static void test_sparing(void **state)
{
    struct exw_metrics *m = make("v", "w");
    char *text = render(m);

    (void)state;
    assert_line(text, "export_lookup_cache_total{service=\"tether\",result=\"hit\"} 0");
    assert_line(text, "export_lookup_cache_total{service=\"billing2\",result=\"miss\"} 0");
    assert_line(text, "export_lookup_permits_in_use{service=\"tether\"} 0");
    assert_line(text, "export_lookup_permit_wait_seconds_count{service=\"billing2\"} 0");
    assert_line(text, "export_lookup_rate_delayed_total{service=\"tether\"} 0");
    free(text);
    exw_metrics_cache(m, 0, 7, 3);
    exw_metrics_cache(m, 1, 0, 2);
    exw_metrics_permits_in_use(m, 0, 3);
    exw_metrics_permits_in_use(m, 0, -1);
    exw_metrics_permit_wait(m, 0, 2500);     /* 2.5 ms */
    exw_metrics_permit_wait(m, 0, 30000000); /* 30 s */
    exw_metrics_rate_delayed(m, 1);
    exw_metrics_rate_delayed(m, 1);
    exw_metrics_cache(m, 5, 1, 1); /* an unknown service counts nothing */
    text = render(m);
    assert_well_formed(text);
    assert_line(text, "export_lookup_cache_total{service=\"tether\",result=\"hit\"} 7");
    assert_line(text, "export_lookup_cache_total{service=\"tether\",result=\"miss\"} 3");
    assert_line(text, "export_lookup_cache_total{service=\"billing2\",result=\"miss\"} 2");
    assert_line(text, "export_lookup_permits_in_use{service=\"tether\"} 2");
    assert_line(text,
                "export_lookup_permit_wait_seconds_bucket{service=\"tether\",le=\"0.001\"} 0");
    assert_line(text,
                "export_lookup_permit_wait_seconds_bucket{service=\"tether\",le=\"0.005\"} 1");
    assert_line(text, "export_lookup_permit_wait_seconds_bucket{service=\"tether\",le=\"30\"} 2");
    assert_line(text, "export_lookup_permit_wait_seconds_count{service=\"tether\"} 2");
    assert_line(text, "export_lookup_permit_wait_seconds_sum{service=\"tether\"} 30.002500");
    assert_line(text, "export_lookup_rate_delayed_total{service=\"billing2\"} 2");
    free(text);
    exw_metrics_free(m);
}

static void test_null_registry(void **state)
{
    (void)state;
    exw_metrics_job(NULL, EXW_OUTCOME_SUCCEEDED, 1);
    exw_metrics_job_duration(NULL, 1);
    exw_metrics_lookups(NULL, 0, 1, 1);
    exw_metrics_request(NULL, 0, 200, 1);
    exw_metrics_add(NULL, EXW_COUNTER_RESULT_BYTES, 1);
    exw_metrics_gauge_add(NULL, EXW_GAUGE_POOL_BUSY, 1);
    exw_metrics_gauge_set(NULL, EXW_GAUGE_QUEUE_LENGTH, 1);
    assert_int_equal(exw_metrics_gauge(NULL, EXW_GAUGE_POOL_BUSY), 0);
    exw_metrics_cache(NULL, 0, 1, 1);
    exw_metrics_permits_in_use(NULL, 0, 1);
    exw_metrics_permit_wait(NULL, 0, 1);
    exw_metrics_rate_delayed(NULL, 0);
    exw_metrics_free(NULL);
}

/* What every thread of test_concurrent does: a pool thread's and a job
 * thread's counting, ROUNDS times, and a scrape now and then. */
static void *hammer(void *arg)
{
    struct exw_metrics *m = arg;
    int i;

    for (i = 0; i < ROUNDS; i++) {
        exw_metrics_gauge_add(m, EXW_GAUGE_POOL_BUSY, 1);
        exw_metrics_request(m, i % 2, i % 3 == 0 ? 503 : 200, 1000);
        exw_metrics_gauge_add(m, EXW_GAUGE_POOL_BUSY, -1);
        exw_metrics_lookups(m, 0, 1, i % 5 == 0);
        exw_metrics_job(m, EXW_OUTCOME_SUCCEEDED, 1);
        exw_metrics_job_duration(m, 1000000);
        exw_metrics_add(m, EXW_COUNTER_RESULT_BYTES, 3);
        if (i % 5000 == 0) {
            struct exw_buf b;

            exw_buf_init(&b, (size_t)1 << 20);
            if (exw_metrics_render(m, &b) != EXW_OK)
                abort(); /* no cmocka assertion off the test's thread */
            exw_buf_cleanup(&b);
        }
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    struct exw_metrics *m = make("v", "w");
    pthread_t tid[THREADS];
    long long total = (long long)THREADS * ROUNDS;
    long long n503 = (long long)THREADS * ((ROUNDS + 2) / 3);
    char line[160], *text;
    int i;

    (void)state;
    for (i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&tid[i], NULL, hammer, m), 0);
    for (i = 0; i < THREADS; i++)
        pthread_join(tid[i], NULL);
    text = render(m);
    assert_well_formed(text);
    snprintf(line, sizeof(line), "export_jobs_total{outcome=\"succeeded\"} %lld", total);
    assert_line(text, line);
    snprintf(line, sizeof(line), "export_job_duration_seconds_count %lld", total);
    assert_line(text, line);
    snprintf(line, sizeof(line), "export_job_duration_seconds_bucket{le=\"1\"} %lld", total);
    assert_line(text, line);
    snprintf(line, sizeof(line), "export_job_duration_seconds_sum %lld.000000", total);
    assert_line(text, line);
    snprintf(line, sizeof(line), "export_lookups_total{service=\"tether\",result=\"ok\"} %lld",
             total);
    assert_line(text, line);
    snprintf(line, sizeof(line), "export_lookups_total{service=\"tether\",result=\"error\"} %lld",
             (long long)THREADS * (ROUNDS / 5));
    assert_line(text, line);
    /* Both services, both codes: 503 for every third round, 200 for the rest. */
    snprintf(line, sizeof(line), "export_lookup_duration_seconds_count{service=\"tether\"} %lld",
             total / 2);
    assert_line(text, line);
    snprintf(line, sizeof(line), "export_lookup_duration_seconds_count{service=\"billing2\"} %lld",
             total / 2);
    assert_line(text, line);
    snprintf(line, sizeof(line), "export_result_bytes_total %lld", total * 3);
    assert_line(text, line);
    assert_line(text, "export_pool_busy_threads 0");
    free(text);
    {
        /* The 503s over both services, from the text itself. */
        long long seen = 0, v;
        const char *p;

        text = render(m);
        for (p = text; (p = strstr(p, "code=\"503\"} ")) != NULL; p++) {
            v = strtoll(p + strlen("code=\"503\"} "), NULL, 10);
            seen += v;
        }
        assert_int_equal(seen, n503);
        free(text);
    }
    exw_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_families_and_zeros),
        cmocka_unit_test(test_histogram_cumulative),
        cmocka_unit_test(test_codes_and_counters),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_sparing),
        cmocka_unit_test(test_null_registry),
        cmocka_unit_test(test_concurrent),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
