/* conn.c: a Redis connection that remakes itself, one policy for every
 * thread that talks to Redis. */
#include <stdio.h>
#include <string.h>

#include "exw/log.h"
#include "worker.h"

void exw_conn_init(struct conn *c, const struct exw_config *cfg, struct exw_metrics *metrics,
                   const char *who, long timeout_ms)
{
    memset(c, 0, sizeof(*c));
    c->cfg = cfg;
    c->metrics = metrics;
    c->who = who;
    c->timeout_ms = timeout_ms;
}

struct exw_redis *exw_conn_get(struct conn *c)
{
    struct exw_errbuf eb;

    if (c->rd != NULL && !exw_redis_broken(c->rd))
        return c->rd;
    exw_redis_free(c->rd);
    c->rd = NULL;
    if (exw_redis_connect(&c->cfg->redis, c->cfg->prefix, c->cfg->worker_id, c->timeout_ms, &c->rd,
                          &eb) != EXW_OK) {
        if (!c->down_logged)
            EXW_LOG(EXW_LOG_WARN, "Redis unreachable (%s connection), retrying: %s", c->who,
                    eb.msg);
        c->down_logged = 1;
        return NULL;
    }
    if (c->down_logged)
        EXW_LOG(EXW_LOG_INFO, "Redis reachable again (%s connection)", c->who);
    if (c->connected)
        exw_metrics_add(c->metrics, EXW_COUNTER_REDIS_RECONNECTS, 1);
    c->connected = 1;
    c->down_logged = 0;
    return c->rd;
}

void exw_conn_cleanup(struct conn *c)
{
    exw_redis_free(c->rd);
    c->rd = NULL;
}
