/*
 * The counters of export-mock-lookup, served by GET /_stats and zeroed by POST /_reset: requests,
 * lookups and batches, answers by status, the requests in flight and their peak, and the arrivals
 * of lookup requests (single and batch) per second: whole seconds since the last reset, and the
 * most in any sliding window of one second. Thread-safe: one mutex guards it all.
 */
#ifndef MOCK_STATS_H
#define MOCK_STATS_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>

#include "mock_body.h"

struct mock_stats {
    pthread_mutex_t mu;
    /* guarded by mu: */
    unsigned long long requests;
    unsigned long long lookups; /* lookup requests, a batch counting as one */
    unsigned long long batches;
    unsigned long long batch_keys;
    unsigned long long dropped;
    long in_flight;
    long max_in_flight;
    unsigned long long by_status[600];
    struct timespec since;     /* the last reset (monotonic) */
    unsigned long *per_second; /* lookup arrivals in each whole second since then */
    size_t nseconds, seconds_cap;
    long long *window; /* arrival times (us) of the last second's lookups, a ring */
    size_t whead, wcount, wcap;
    unsigned long max_in_any_second;
    /* The first lookup's arrival and the last lookup's answer (monotonic us),
     * 0 until there is one: the lookup phase a client went through. */
    long long first_lookup_us, last_answer_us;
};

/* Returns 0, or -1 when the mutex cannot be made. */
int mock_stats_init(struct mock_stats *s);
void mock_stats_free(struct mock_stats *s);

/* A request arrived at @arrival (monotonic): a lookup when @is_lookup, with @batch_keys keys in a
 * batch (0 for a single lookup or anything else). */
/* pthread_mutex_lock/unlock that abort on failure. */
void mock_lock(pthread_mutex_t *mu);
void mock_unlock(pthread_mutex_t *mu);

void mock_stats_begin(struct mock_stats *s, const struct timespec *arrival, int is_lookup,
                      size_t batch_keys);

/* A counted request (a lookup when @is_lookup) ended with @status; 0: its connection was closed
 * without an answer. */
void mock_stats_end(struct mock_stats *s, unsigned int status, int is_lookup);

/* Appends the counters as one JSON object. */
void mock_stats_json(struct mock_stats *s, struct mock_buf *out);

/* Zeroes the counters; requests in flight stay in flight and the peak restarts from them. */
void mock_stats_reset(struct mock_stats *s);

#endif
