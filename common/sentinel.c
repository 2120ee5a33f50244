/* sentinel.c: the primary, as the sentinels name it (see sentinel.h).
 *
 * A sentinel is asked over a connection of its own, made and closed for each
 * question: they are asked only when a connection to the primary is made,
 * which is rare, and a long-lived connection to each would be one more
 * thing to keep alive. The sentinel that answered last is asked first, so
 * that a dead one costs a connect timeout once, not at every connect. */
#include "exw/sentinel.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "exw/cluster.h"
#include "exw/redis.h"

/* Index of the sentinel that answered last. */
static atomic_size_t last_good;

/* Asks sentinel @s; on EXW_OK @host and *@port hold its answer. */
static exw_err ask_one(const struct exw_redis_addr *a, const struct exw_redis_sentinel *s,
                       long timeout_ms, char *host, size_t host_size, int *port,
                       struct exw_errbuf *eb)
{
    struct exw_redis *rd = NULL;
    struct exw_reply *r = NULL;
    const char *h, *p;
    size_t hlen, plen;
    struct exw_cmd c;
    size_t i;
    exw_err rc;

    exw_cmd_init(&c);
    /* The sentinels' password is theirs, not the primary's: no ACL user. */
    rc = exw_redis_open(s->host, s->port, NULL, NULL, a->sentinel_password, timeout_ms, &rd, eb);
    if (rc != EXW_OK)
        return rc;
    exw_cmd_add(&c, "SENTINEL");
    exw_cmd_add(&c, "get-master-addr-by-name");
    exw_cmd_add(&c, a->master);
    rc = exw_redis_run(rd, &c, "SENTINEL get-master-addr-by-name", &r, eb);
    if (rc != EXW_OK)
        goto out;
    if (exw_reply_count(r) != 2) {
        rc = exw_errbuf_set(eb, EXW_EREDIS, "the sentinel knows no primary named %s", a->master);
        goto out;
    }
    h = exw_reply_string(exw_reply_at(r, 0), &hlen);
    p = exw_reply_string(exw_reply_at(r, 1), &plen);
    if (h == NULL || p == NULL || hlen == 0 || hlen >= host_size || plen == 0 || plen > 5 ||
        strspn(p, "0123456789") != plen) {
        rc = exw_errbuf_set(eb, EXW_EREDIS, "the sentinel's answer is not an address");
        goto out;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = 0;
    for (i = 0; i < plen; i++)
        *port = *port * 10 + (p[i] - '0');
    if (*port < 1 || *port > 65535)
        rc = exw_errbuf_set(eb, EXW_EREDIS, "the sentinel's answer is not an address");
out:
    exw_reply_free(r);
    exw_redis_free(rd);
    return rc;
}

exw_err exw_sentinel_primary(const struct exw_redis_addr *a, long timeout_ms, char *host,
                             size_t host_size, int *port, struct exw_errbuf *eb)
{
    struct exw_errbuf why = {{0}};
    char name[EXW_NODE_MAX];
    size_t first = atomic_load(&last_good), i, k = 0;
    exw_err rc = EXW_EREDIS;

    if (a->nsentinels == 0 || a->master == NULL)
        return exw_errbuf_set(eb, EXW_ECONFIG, "no sentinels or no primary name");
    for (i = 0; i < a->nsentinels; i++) {
        k = (first + i) % a->nsentinels;
        why.msg[0] = '\0';
        rc = ask_one(a, &a->sentinels[k], timeout_ms, host, host_size, port, &why);
        if (rc == EXW_OK) {
            atomic_store(&last_good, k);
            return EXW_OK;
        }
    }
    /* The last sentinel's reason stands for all: they tend to fail alike. */
    return exw_errbuf_set(
        eb, rc == EXW_ENOMEM ? EXW_ENOMEM : EXW_EREDIS,
        "no sentinel named the primary %s (%zu asked; the last, %s: %s)", a->master, a->nsentinels,
        exw_cluster_node_name(a->sentinels[k].host, a->sentinels[k].port, name, sizeof(name)),
        why.msg);
}
