/* conn.c: a Redis connection that remakes itself, one policy for every
 * thread that talks to Redis.
 *
 * A connection is remade after any error, through exw_redis_connect(),
 * which asks the sentinels again or finds the cluster slot's owner again
 * (topology.h): that is all it takes to follow a failover. Each switch of
 * the primary is logged once for the whole process, by whichever thread
 * gets a connection first after it. */
#include <stdio.h>
#include <string.h>

#include "exw/cluster.h"
#include "exw/log.h"
#include "exw/topology.h"
#include "worker.h"

/* Both flags live here, in the daemon's library, rather than in main.c: a
 * connection that Redis refuses for good sets them, and the library's tests
 * link without main.c. */
atomic_int exw_stop_requested;
atomic_int exw_config_refused;

/* Logs a switch of the primary, if there was one since the last logged. */
static void log_switch(void)
{
    char was[EXW_NODE_MAX], now[EXW_NODE_MAX], how[EXW_NODE_MAX];

    if (!exw_topology_take_switch(was, now, how, sizeof(was)))
        return;
    if (was[0] == '\0')
        EXW_LOG(EXW_LOG_INFO, "Redis primary is %s, %s", now, how);
    else
        EXW_LOG(EXW_LOG_WARN, "Redis primary switched from %s to %s, %s", was, now, how);
}

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
    c->last_rc = exw_redis_connect(&c->cfg->redis, c->cfg->prefix, c->cfg->worker_id, c->timeout_ms,
                                   &c->rd, &eb);
    if (c->last_rc == EXW_ECONFIG) {
        /* A setting the server cannot take (a cluster and a prefix without
         * a hash tag): no retry helps, so the worker stops, exiting 2. */
        if (!atomic_exchange(&exw_config_refused, 1))
            EXW_LOG(EXW_LOG_ERROR, "refusing to start: %s", eb.msg);
        exw_stop_requested = 1;
        return NULL;
    }
    if (c->last_rc != EXW_OK) {
        if (!c->down_logged)
            EXW_LOG(EXW_LOG_WARN, "Redis unreachable (%s connection), retrying: %s", c->who,
                    eb.msg);
        c->down_logged = 1;
        return NULL;
    }
    log_switch();
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
