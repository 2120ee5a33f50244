/*
 * The counters of export-mock-lookup (see mock_stats.h). The sliding maximum keeps the arrival
 * times of the last second in a ring that grows as needed: on each arrival the times older than a
 * second leave it, and what is left, the new one included, is the count of the window that ends
 * there; the largest such count over all arrivals is the most in any one second.
 */
#include "mock_stats.h"

#include <stdlib.h>
#include <string.h>

enum { MAX_SECONDS = 7 * 24 * 3600 }; /* per-second counts kept for a week after a reset */

void mock_lock(pthread_mutex_t *mu)
{
    if (pthread_mutex_lock(mu) != 0)
        abort();
}

void mock_unlock(pthread_mutex_t *mu)
{
    if (pthread_mutex_unlock(mu) != 0)
        abort();
}

static long long us_of(const struct timespec *ts)
{
    return (long long)ts->tv_sec * 1000000 + ts->tv_nsec / 1000;
}

int mock_stats_init(struct mock_stats *s)
{
    memset(s, 0, sizeof(*s));
    if (clock_gettime(CLOCK_MONOTONIC, &s->since) != 0)
        abort();
    return pthread_mutex_init(&s->mu, NULL) == 0 ? 0 : -1;
}

void mock_stats_free(struct mock_stats *s)
{
    free(s->per_second);
    free(s->window);
    pthread_mutex_destroy(&s->mu);
}

/* Counts a lookup arriving at @t (us) in its second and in the sliding window. */
static void count_arrival(struct mock_stats *s, long long t)
{
    long long second = (t - us_of(&s->since)) / 1000000;

    if (second >= 0 && second < MAX_SECONDS) {
        if ((size_t)second >= s->seconds_cap) {
            size_t cap = s->seconds_cap ? s->seconds_cap : 64;

            while (cap <= (size_t)second)
                cap *= 2;
            s->per_second = mock_xrealloc(s->per_second, cap * sizeof(*s->per_second));
            memset(s->per_second + s->seconds_cap, 0,
                   (cap - s->seconds_cap) * sizeof(*s->per_second));
            s->seconds_cap = cap;
        }
        s->per_second[second]++;
        if ((size_t)second + 1 > s->nseconds)
            s->nseconds = (size_t)second + 1;
    }
    while (s->wcount > 0 && s->window[s->whead] <= t - 1000000) {
        s->whead = (s->whead + 1) % s->wcap;
        s->wcount--;
    }
    if (s->wcount == s->wcap) {
        size_t cap = s->wcap ? s->wcap * 2 : 1024;
        long long *w = mock_xrealloc(NULL, cap * sizeof(*w));

        for (size_t i = 0; i < s->wcount; i++)
            w[i] = s->window[(s->whead + i) % s->wcap];
        free(s->window);
        s->window = w;
        s->wcap = cap;
        s->whead = 0;
    }
    s->window[(s->whead + s->wcount) % s->wcap] = t;
    s->wcount++;
    if (s->wcount > s->max_in_any_second)
        s->max_in_any_second = s->wcount;
}

void mock_stats_begin(struct mock_stats *s, const struct timespec *arrival, int is_lookup,
                      size_t batch_keys)
{
    mock_lock(&s->mu);
    s->requests++;
    if (is_lookup) {
        s->lookups++;
        s->batches += batch_keys > 0;
        s->batch_keys += batch_keys;
        count_arrival(s, us_of(arrival));
        if (s->first_lookup_us == 0)
            s->first_lookup_us = us_of(arrival);
    }
    if (++s->in_flight > s->max_in_flight)
        s->max_in_flight = s->in_flight;
    mock_unlock(&s->mu);
}

void mock_stats_end(struct mock_stats *s, unsigned int status, int is_lookup)
{
    struct timespec now;
    int answered = is_lookup && status != 0;

    if (answered && clock_gettime(CLOCK_MONOTONIC, &now) != 0)
        abort();
    mock_lock(&s->mu);
    if (answered)
        s->last_answer_us = us_of(&now);
    s->in_flight--;
    if (status == 0)
        s->dropped++;
    else if (status < 600)
        s->by_status[status]++;
    mock_unlock(&s->mu);
}

void mock_stats_json(struct mock_stats *s, struct mock_buf *b)
{
    const char *sep = "";
    unsigned long max_per_second = 0;

    mock_lock(&s->mu);
    mock_buf_addf(b,
                  "{\"requests\":%llu,\"lookups\":%llu,\"batches\":%llu,\"batch_keys\":%llu,"
                  "\"in_flight\":%ld,\"max_in_flight\":%ld,\"dropped\":%llu,\"by_status\":{",
                  s->requests, s->lookups, s->batches, s->batch_keys, s->in_flight,
                  s->max_in_flight, s->dropped);
    for (unsigned int st = 100; st < 600; st++) {
        if (s->by_status[st] != 0) {
            mock_buf_addf(b, "%s\"%u\":%llu", sep, st, s->by_status[st]);
            sep = ",";
        }
    }
    mock_buf_adds(b, "},\"arrivals_per_second\":[");
    for (size_t i = 0; i < s->nseconds; i++) {
        mock_buf_addf(b, "%s%lu", i ? "," : "", s->per_second[i]);
        if (s->per_second[i] > max_per_second)
            max_per_second = s->per_second[i];
    }
    mock_buf_addf(b, "],\"max_per_second\":%lu,\"max_in_any_second\":%lu,\"lookup_span_ms\":%.3f}",
                  max_per_second, s->max_in_any_second,
                  s->first_lookup_us != 0 && s->last_answer_us > s->first_lookup_us
                      ? (double)(s->last_answer_us - s->first_lookup_us) / 1000.0
                      : 0.0);
    mock_unlock(&s->mu);
}

void mock_stats_reset(struct mock_stats *s)
{
    mock_lock(&s->mu);
    s->requests = 0;
    s->lookups = 0;
    s->batches = 0;
    s->batch_keys = 0;
    s->dropped = 0;
    s->max_in_flight = s->in_flight;
    memset(s->by_status, 0, sizeof(s->by_status));
    if (clock_gettime(CLOCK_MONOTONIC, &s->since) != 0)
        abort();
    s->nseconds = 0;
    if (s->per_second != NULL)
        memset(s->per_second, 0, s->seconds_cap * sizeof(*s->per_second));
    s->wcount = 0;
    s->max_in_any_second = 0;
    s->first_lookup_us = 0;
    s->last_answer_us = 0;
    mock_unlock(&s->mu);
}
