/* lease.c: the heartbeat, the registry, and the lease's timing. */
#include "exw/lease.h"

#include <stdlib.h>

#include "exw/keys.h"

exw_err exw_lease_beat(struct exw_redis *rd, const struct exw_beat *b, struct exw_errbuf *eb)
{
    const char *prefix = exw_redis_prefix(rd);
    const char *worker = exw_redis_worker(rd);
    char *beat = exw_key(prefix, "worker", worker);
    char *workers = exw_key(prefix, "workers", NULL);
    struct exw_cmd c;
    exw_err rc;

    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_heartbeat, 2);
    exw_cmd_add(&c, beat);
    exw_cmd_add(&c, workers);
    exw_cmd_add(&c, worker);
    exw_cmd_addf(&c, "%ld", b->ttl_ms);
    exw_cmd_add(&c, "host");
    exw_cmd_add(&c, b->host);
    exw_cmd_add(&c, "pid");
    exw_cmd_addf(&c, "%ld", b->pid);
    exw_cmd_add(&c, "started_at");
    exw_cmd_addf(&c, "%lld", (long long)b->started_at);
    exw_cmd_add(&c, "job");
    exw_cmd_add(&c, b->job);
    exw_cmd_add(&c, "jobs");
    exw_cmd_add(&c, b->jobs);
    exw_cmd_add(&c, "jobs_done");
    exw_cmd_addf(&c, "%lld", b->jobs_done);
    rc = exw_redis_run_simple(rd, &c, "heartbeat", eb);
    free(beat);
    free(workers);
    return rc;
}

exw_err exw_lease_deregister(struct exw_redis *rd, struct exw_errbuf *eb)
{
    const char *prefix = exw_redis_prefix(rd);
    const char *worker = exw_redis_worker(rd);
    char *beat = exw_key(prefix, "worker", worker);
    char *workers = exw_key(prefix, "workers", NULL);
    char *processing = exw_key(prefix, "processing", worker);
    struct exw_cmd c;
    exw_err rc;

    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_deregister, 3);
    exw_cmd_add(&c, beat);
    exw_cmd_add(&c, workers);
    exw_cmd_add(&c, processing);
    exw_cmd_add(&c, worker);
    rc = exw_redis_run_simple(rd, &c, "deregister", eb);
    free(beat);
    free(workers);
    free(processing);
    return rc;
}

void exw_lease_init(struct exw_lease *l, int64_t ttl_ms)
{
    l->ttl_ms = ttl_ms;
    l->valid_until = 0;
    l->lapsed_at = 0;
    l->lapse_end = 0;
}

void exw_lease_renewed(struct exw_lease *l, int64_t sent_at, int64_t answered_at)
{
    /* Answered after the old lease ran out: the key may have expired before
     * Redis renewed it, and recovery may have run in between. */
    if (l->valid_until != 0 && answered_at >= l->valid_until) {
        l->lapsed_at = l->valid_until;
        l->lapse_end = answered_at;
    }
    if (sent_at + l->ttl_ms > l->valid_until)
        l->valid_until = sent_at + l->ttl_ms;
}

void exw_lease_failed(struct exw_lease *l, int64_t now)
{
    if (l->valid_until != 0 && now >= l->valid_until)
        l->lapsed_at = l->valid_until;
}

int exw_lease_holds_until(const struct exw_lease *l, int64_t until)
{
    return l->valid_until != 0 && until < l->valid_until;
}

int exw_lease_lapsed_since(const struct exw_lease *l, int64_t since, int64_t now)
{
    if (l->valid_until != 0 && now >= l->valid_until)
        return 1; /* lapsed now: whatever was taken so far may be moved */
    /* A take that began once the lapse was over (the main thread takes only
     * after a renewal has been answered) is safe from it. */
    return l->lapsed_at != 0 && l->lapse_end > since;
}
