/* limits.c: the fleet-wide caps on a lookup service, in Redis: a semaphore of
 * leased permits and a GCRA pace, one script per step (see limits.h). */
#include "exw/limits.h"

#include <stdlib.h>

#include "exw/keys.h"
#include "exw/services.h"

/* The two keys of the semaphore, added to @c; the caller frees them. */
static void add_semaphore_keys(struct exw_cmd *c, struct exw_redis *rd, const char *service,
                               char **permits, char **waiting)
{
    *permits = exw_key_limit(exw_redis_prefix(rd), service, "permits");
    *waiting = exw_key_limit(exw_redis_prefix(rd), service, "waiting");
    exw_cmd_add(c, *permits);
    exw_cmd_add(c, *waiting);
}

/* "" for a negative time (the script then reads Redis's clock). */
/* How long the semaphore's sets stay once unused: longer than any lease a
 * worker takes (a service's timeout and a few seconds), so that a worker with
 * a shorter _TIMEOUT_MS never cuts another's leases short. */
#define SETS_KEEP_MS (EXW_SERVICE_TIMEOUT_MS_MAX + 60000L)

static void add_time(struct exw_cmd *c, int64_t t)
{
    if (t < 0)
        exw_cmd_add(c, "");
    else
        exw_cmd_addf(c, "%lld", (long long)t);
}

exw_err exw_permits_take(struct exw_redis *rd, const char *service, const char *holder, long max,
                         long want, long lease_ms, long long first_seq, long wait_ms,
                         int64_t now_ms, struct exw_permit_take *out, struct exw_errbuf *eb)
{
    char *permits = NULL, *waiting = NULL;
    struct exw_reply *r = NULL;
    struct exw_cmd c;
    exw_err rc;

    out->granted = 0;
    out->others_waiting = 0;
    out->now_ms = 0;
    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_permit_take, 2);
    add_semaphore_keys(&c, rd, service, &permits, &waiting);
    exw_cmd_add(&c, holder);
    exw_cmd_addf(&c, "%ld", max);
    exw_cmd_addf(&c, "%ld", want);
    exw_cmd_addf(&c, "%ld", lease_ms);
    exw_cmd_addf(&c, "%lld", first_seq);
    exw_cmd_addf(&c, "%ld", wait_ms);
    add_time(&c, now_ms);
    exw_cmd_addf(&c, "%ld", SETS_KEEP_MS);
    rc = exw_redis_run(rd, &c, "permit take", &r, eb);
    if (rc != EXW_OK)
        goto out;
    if (exw_reply_count(r) != 3) {
        rc = exw_errbuf_set(eb, EXW_EREPLY, "permit take: unexpected reply");
        goto out;
    }
    out->granted = (long)exw_reply_integer(exw_reply_at(r, 0));
    out->others_waiting = (long)exw_reply_integer(exw_reply_at(r, 1));
    out->now_ms = (int64_t)exw_reply_integer(exw_reply_at(r, 2));
out:
    exw_reply_free(r);
    free(permits);
    free(waiting);
    return rc;
}

exw_err exw_permits_renew(struct exw_redis *rd, const char *service, const char *holder,
                          long lease_ms, const char *const *ids, size_t n, int64_t now_ms,
                          int *kept, long *others_waiting, int64_t *redis_now_ms,
                          struct exw_errbuf *eb)
{
    char *permits = NULL, *waiting = NULL;
    struct exw_reply *r = NULL;
    struct exw_cmd c;
    exw_err rc;
    size_t i;

    for (i = 0; i < n; i++)
        kept[i] = 0;
    *others_waiting = 0;
    *redis_now_ms = 0;
    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_permit_renew, 2);
    add_semaphore_keys(&c, rd, service, &permits, &waiting);
    exw_cmd_add(&c, holder);
    exw_cmd_addf(&c, "%ld", lease_ms);
    add_time(&c, now_ms);
    exw_cmd_addf(&c, "%ld", SETS_KEEP_MS);
    for (i = 0; i < n; i++)
        exw_cmd_add(&c, ids[i]);
    rc = exw_redis_run(rd, &c, "permit renewal", &r, eb);
    if (rc != EXW_OK)
        goto out;
    if (exw_reply_count(r) != n + 2) {
        rc = exw_errbuf_set(eb, EXW_EREPLY, "permit renewal: unexpected reply");
        goto out;
    }
    *others_waiting = (long)exw_reply_integer(exw_reply_at(r, 0));
    *redis_now_ms = (int64_t)exw_reply_integer(exw_reply_at(r, 1));
    for (i = 0; i < n; i++)
        kept[i] = exw_reply_integer(exw_reply_at(r, i + 2)) == 1;
out:
    exw_reply_free(r);
    free(permits);
    free(waiting);
    return rc;
}

exw_err exw_permits_release(struct exw_redis *rd, const char *service, const char *holder,
                            int still_waiting, const char *const *ids, size_t n, long *released,
                            struct exw_errbuf *eb)
{
    char *permits = NULL, *waiting = NULL;
    struct exw_cmd c;
    long long got = 0;
    exw_err rc;
    size_t i;

    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_permit_release, 2);
    add_semaphore_keys(&c, rd, service, &permits, &waiting);
    exw_cmd_add(&c, holder);
    exw_cmd_add(&c, still_waiting ? "1" : "0");
    for (i = 0; i < n; i++)
        exw_cmd_add(&c, ids[i]);
    rc = exw_redis_run_int(rd, &c, "permit release", &got, eb);
    if (released != NULL)
        *released = rc == EXW_OK ? (long)got : 0;
    free(permits);
    free(waiting);
    return rc;
}

exw_err exw_rate_take(struct exw_redis *rd, const char *service, int64_t interval_us, long want,
                      int64_t horizon_us, int64_t now_us, struct exw_rate_take *out,
                      struct exw_errbuf *eb)
{
    char *key = exw_key_limit(exw_redis_prefix(rd), service, "rate");
    struct exw_reply *r = NULL;
    struct exw_cmd c;
    exw_err rc;

    out->granted = 0;
    out->first_us = 0;
    out->now_us = 0;
    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_rate_take, 1);
    exw_cmd_add(&c, key);
    exw_cmd_addf(&c, "%lld", (long long)interval_us);
    exw_cmd_addf(&c, "%ld", want);
    exw_cmd_addf(&c, "%lld", (long long)horizon_us);
    add_time(&c, now_us);
    rc = exw_redis_run(rd, &c, "rate take", &r, eb);
    if (rc != EXW_OK)
        goto out;
    if (exw_reply_count(r) != 3) {
        rc = exw_errbuf_set(eb, EXW_EREPLY, "rate take: unexpected reply");
        goto out;
    }
    out->granted = (long)exw_reply_integer(exw_reply_at(r, 0));
    out->first_us = (int64_t)exw_reply_integer(exw_reply_at(r, 1));
    out->now_us = (int64_t)exw_reply_integer(exw_reply_at(r, 2));
out:
    exw_reply_free(r);
    free(key);
    return rc;
}
