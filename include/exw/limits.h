/* limits.h: the Redis side of the fleet-wide caps on a lookup service
 * (EXPORT_SERVICE_<NAME>_MAX_INFLIGHT and _RATE, PROTOCOL.md section 4).
 *
 * Two structures per service, each changed only by a script:
 *   - a semaphore of leased permits, P:limit:<name>:permits, a sorted set of
 *     permit ids scored by the time their lease runs out, with the holders
 *     that wait for more in P:limit:<name>:waiting (permit_take.lua,
 *     permit_renew.lua, permit_release.lua);
 *   - a pace, P:limit:<name>:rate, the GCRA theoretical arrival time of the
 *     next request slot (rate_take.lua).
 * Redis's clock (TIME, inside the scripts) decides for the whole fleet. Each
 * function takes a "now" that tests may set (>= 0) so that every order of
 * events can be played without waiting; the worker passes -1. The worker's
 * side (leasing in batches, handing permits and slots to its threads) is
 * worker/limiter.c. */
#ifndef EXW_LIMITS_H
#define EXW_LIMITS_H

#include <stddef.h>
#include <stdint.h>
#include "exw/err.h"
#include "exw/redis.h"

struct exw_permit_take {
    long granted;        /* permits leased: "<holder>:<first_seq>" and on */
    long others_waiting; /* holders other than this one that wait for a permit */
    int64_t now_ms;      /* Redis's time of the take */
};

/* Leases up to @want permits of service @service (its configured name; keys
 * use it in lower case) to @holder, of @max in all, each for @lease_ms of
 * Redis time, named "<holder>:<seq>" from @first_seq on. When fewer than
 * @want are free, @holder is noted as waiting for @wait_ms. @now_ms < 0: Redis
 * time. Thread: owner of @rd. */
EXW_MUST_CHECK exw_err exw_permits_take(struct exw_redis *rd, const char *service,
                                        const char *holder, long max, long want, long lease_ms,
                                        long long first_seq, long wait_ms, int64_t now_ms,
                                        struct exw_permit_take *out, struct exw_errbuf *eb);

/* Renews for @lease_ms the @n permits @ids of @holder: @kept[i] is 1 when id
 * @i was renewed, 0 when its lease had run out or it was gone (it may be
 * another's now). *@others_waiting as for a take; *@redis_now_ms the time of
 * the renewal. Thread: owner of @rd. */
EXW_MUST_CHECK exw_err exw_permits_renew(struct exw_redis *rd, const char *service,
                                         const char *holder, long lease_ms, const char *const *ids,
                                         size_t n, int64_t now_ms, int *kept, long *others_waiting,
                                         int64_t *redis_now_ms, struct exw_errbuf *eb);

/* Gives back the @n permits @ids of @holder; unless @still_waiting, takes
 * @holder off the waiting set. *@released: how many were still held (may be
 * NULL). Thread: owner of @rd. */
EXW_MUST_CHECK exw_err exw_permits_release(struct exw_redis *rd, const char *service,
                                           const char *holder, int still_waiting,
                                           const char *const *ids, size_t n, long *released,
                                           struct exw_errbuf *eb);

struct exw_rate_take {
    long granted;     /* slots reserved, @interval_us apart */
    int64_t first_us; /* Redis time at which the first begins */
    int64_t now_us;   /* Redis time of the take */
};

/* Reserves up to @want request slots of service @service's pace, one every
 * @interval_us (a million over the rate), that begin within @horizon_us of
 * now. None when the pace is that far ahead: then out->first_us says when the
 * next slot begins. @now_us < 0: Redis time. Thread: owner of @rd. */
EXW_MUST_CHECK exw_err exw_rate_take(struct exw_redis *rd, const char *service, int64_t interval_us,
                                     long want, int64_t horizon_us, int64_t now_us,
                                     struct exw_rate_take *out, struct exw_errbuf *eb);

#endif
