/* lease.h: a worker's lease on its jobs: the heartbeat P:worker:<id>, its
 * registration in P:workers, and the timing that tells a job whether the
 * lease may have lapsed since the job was taken.
 *
 * A worker's jobs are safe from recovery while its heartbeat key lives. The
 * key's TTL runs from when Redis renewed it, which is no earlier than when
 * the renewal was sent: so the lease is counted from the send, and lapses
 * when that time plus the TTL passes before the next renewal is answered.
 * A job is given up only for a lapse after it was taken (the time its take
 * was sent): a lapse during an outage that ended before the take leaves the
 * next job alone. */
#ifndef EXW_LEASE_H
#define EXW_LEASE_H

#include <stdint.h>
#include "exw/err.h"
#include "exw/redis.h"

/* Heartbeat fields of P:worker:<id>. */
struct exw_beat {
    const char *host;
    long pid;
    int64_t started_at;
    const char *job;  /* the oldest running job's id, "" when idle */
    const char *jobs; /* all running job ids, space-separated */
    long long jobs_done;
    long ttl_ms;
};

/* Renews P:worker:<id> and the registration in P:workers, in one script, so
 * that the key can never be left without its TTL. Thread: owner. */
EXW_MUST_CHECK exw_err exw_lease_beat(struct exw_redis *rd, const struct exw_beat *b,
                                      struct exw_errbuf *eb);

/* Deletes the heartbeat and leaves P:workers, unless jobs are still in this
 * worker's processing list: then it stays registered, so that recovery puts
 * them back once the heartbeat is gone. Thread: owner. */
EXW_MUST_CHECK exw_err exw_lease_deregister(struct exw_redis *rd, struct exw_errbuf *eb);

/* The lease's timing, on the monotonic clock, in milliseconds. Every time is
 * passed in (the clock is the caller's), so that tests can play any order of
 * events. The caller serializes access. */
struct exw_lease {
    int64_t ttl_ms;
    int64_t valid_until; /* 0 before the first renewal */
    int64_t lapsed_at;   /* when the last lapse began; 0 if never */
    int64_t lapse_end;   /* when it ended at the latest (a renewal's answer) */
};

void exw_lease_init(struct exw_lease *l, int64_t ttl_ms);

/* A renewal sent at @sent_at was answered at @answered_at. */
void exw_lease_renewed(struct exw_lease *l, int64_t sent_at, int64_t answered_at);

/* A renewal failed; @now is when that was known. */
void exw_lease_failed(struct exw_lease *l, int64_t now);

/* Whether the lease is certain to hold until @until. */
int exw_lease_holds_until(const struct exw_lease *l, int64_t until);

/* Whether the lease lapsed, or may have, at or after @since (a job's take):
 * the job may then have been recovered by another worker. @now is the time
 * of the question: a lease past its end counts as lapsed even before the
 * failed renewal says so. */
int exw_lease_lapsed_since(const struct exw_lease *l, int64_t since, int64_t now);

#endif
