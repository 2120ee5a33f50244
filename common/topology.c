/* topology.c: which server a connection goes to (see topology.h).
 *
 * DESIGN. A connection is always made afresh: after any error, the owner of
 * a struct exw_redis frees it and calls exw_redis_connect() again, which
 * comes here. So "finding the new primary after a failover" is nothing more
 * than connecting again, and this file only has to get one connect right:
 *
 *   Sentinel   ask the sentinels (sentinel.c), connect to the address they
 *              name, check ROLE. A node that is not (yet, or any more) the
 *              primary fails the connect, and the caller retries.
 *   Cluster    try the slot's last known owner, then the URL's node, then
 *              every node seen before (cluster.c keeps them process-wide),
 *              until one answers. There CLUSTER INFO tells a cluster node,
 *              the prefix must hold a hash tag and the db be 0 (else
 *              EXW_ECONFIG: no retry can help), and CLUSTER SLOTS names the
 *              slot's owner, to which the connection then goes. While the
 *              owner is dead and not yet replaced, that connect fails and
 *              the caller retries; once a replica has taken over, CLUSTER
 *              SLOTS names it.
 *   Plain      the URL's server; CLUSTER INFO answers with an error there.
 *
 * Why CLUSTER INFO and not INFO cluster: an ACL can grant the one
 * subcommand (+cluster|info) without the whole of INFO. Any error reply to
 * it, NOPERM included, counts as "not a cluster": MOVED and ASK are still
 * followed (redis.c), only the start-up checks are lost. */
#include "exw/topology.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exw/cluster.h"
#include "exw/mutex.h"
#include "exw/sentinel.h"

/* Most nodes tried for one connect, the URL's and the owner included. */
#define TRIES_MAX 8

/* The primary this process uses, and the last change told. */
static struct {
    struct exw_mutex mu;
    char now[EXW_NODE_MAX]; /* guarded by mu; "" until the first */
    char was[EXW_NODE_MAX]; /* guarded by mu */
    char how[128];          /* guarded by mu */
    atomic_ulong changes;   /* written under mu */
    atomic_ulong told;      /* written under mu: the value of changes last told */
} primary = {.mu = {PTHREAD_MUTEX_INITIALIZER}};

void exw_topology_note_primary(const char *node, const char *how)
{
    exw_mutex_lock(&primary.mu);
    if (strcmp(primary.now, node) != 0) {
        snprintf(primary.was, sizeof(primary.was), "%s", primary.now);
        snprintf(primary.now, sizeof(primary.now), "%s", node);
        snprintf(primary.how, sizeof(primary.how), "%s", how);
        atomic_fetch_add(&primary.changes, 1);
    }
    exw_mutex_unlock(&primary.mu);
}

int exw_topology_take_switch(char *was, char *now, char *how, size_t size)
{
    int changed = 0;

    if (atomic_load(&primary.changes) == atomic_load(&primary.told))
        return 0;
    exw_mutex_lock(&primary.mu);
    if (atomic_load(&primary.changes) != atomic_load(&primary.told)) {
        snprintf(was, size, "%s", primary.was);
        snprintf(now, size, "%s", primary.now);
        snprintf(how, size, "%s", primary.how);
        atomic_store(&primary.told, atomic_load(&primary.changes));
        changed = 1;
    }
    exw_mutex_unlock(&primary.mu);
    return changed;
}

/* ---- Commands of the connect ---- */

static exw_err select_db(struct exw_redis *rd, int db, struct exw_errbuf *eb)
{
    struct exw_cmd c;

    if (db == 0)
        return EXW_OK;
    exw_cmd_init(&c);
    exw_cmd_add(&c, "SELECT");
    exw_cmd_addf(&c, "%d", db);
    return exw_redis_run_simple(rd, &c, "SELECT", eb);
}

/* ROLE's first word ("master", "slave") into @role. */
static exw_err read_role(struct exw_redis *rd, char *role, size_t size, struct exw_errbuf *eb)
{
    struct exw_reply *r = NULL;
    struct exw_cmd c;
    const char *s = NULL;
    size_t len = 0;
    exw_err rc;

    exw_cmd_init(&c);
    exw_cmd_add(&c, "ROLE");
    rc = exw_redis_run(rd, &c, "ROLE", &r, eb);
    if (rc == EXW_OK && exw_reply_count(r) > 0)
        s = exw_reply_string(exw_reply_at(r, 0), &len);
    snprintf(role, size, "%.*s", s ? (int)len : 1, s ? s : "?");
    exw_reply_free(r);
    return rc;
}

/* *@yes = whether the server is a cluster node. */
static exw_err probe_cluster(struct exw_redis *rd, int *yes, struct exw_errbuf *eb)
{
    struct exw_reply *r = NULL;
    struct exw_cmd c;
    exw_err rc;

    *yes = 0;
    exw_cmd_init(&c);
    exw_cmd_add(&c, "CLUSTER");
    exw_cmd_add(&c, "INFO");
    rc = exw_redis_run(rd, &c, "CLUSTER INFO", &r, eb);
    exw_reply_free(r);
    if (rc == EXW_EREPLY) /* "cluster support disabled", or not allowed */
        return EXW_OK;
    *yes = rc == EXW_OK;
    return rc;
}

/* The owner of @slot by CLUSTER SLOTS on @rd (whose own address stands in
 * for an empty one), into @owner; every node listed is noted. */
static exw_err find_owner(struct exw_redis *rd, const char *asked_host, int slot,
                          struct exw_cluster_node *owner, struct exw_errbuf *eb)
{
    struct exw_reply *r = NULL;
    struct exw_cmd c;
    size_t i, j, len;
    int found = 0;
    exw_err rc;

    exw_cmd_init(&c);
    exw_cmd_add(&c, "CLUSTER");
    exw_cmd_add(&c, "SLOTS");
    rc = exw_redis_run(rd, &c, "CLUSTER SLOTS", &r, eb);
    if (rc != EXW_OK)
        return rc;
    for (i = 0; i < exw_reply_count(r); i++) {
        const struct exw_reply *range = exw_reply_at(r, i);
        long long lo, hi;

        if (exw_reply_count(range) < 3)
            continue;
        lo = exw_reply_integer(exw_reply_at(range, 0));
        hi = exw_reply_integer(exw_reply_at(range, 1));
        for (j = 2; j < exw_reply_count(range); j++) {
            const struct exw_reply *n = exw_reply_at(range, j);
            const char *host;
            struct exw_cluster_node node;

            if (exw_reply_count(n) < 2)
                continue;
            host = exw_reply_string(exw_reply_at(n, 0), &len);
            if (host == NULL || len >= sizeof(node.host) || (len == 1 && host[0] == '?'))
                continue;
            memset(&node, 0, sizeof(node));
            if (len == 0)
                snprintf(node.host, sizeof(node.host), "%s", asked_host);
            else
                memcpy(node.host, host, len);
            node.port = (int)exw_reply_integer(exw_reply_at(n, 1));
            exw_cluster_note_node(node.host, node.port);
            if (j == 2 && slot >= lo && slot <= hi) {
                *owner = node;
                found = 1;
            }
        }
    }
    exw_reply_free(r);
    if (!found)
        return exw_errbuf_set(eb, EXW_EREDIS, "no node owns cluster slot %d (CLUSTER SLOTS)", slot);
    return EXW_OK;
}

/* ---- The three topologies ---- */

static exw_err connect_sentinel(const struct exw_redis_addr *addr, long timeout_ms,
                                struct exw_redis **out, struct exw_errbuf *eb)
{
    char host[EXW_NODE_MAX], role[32], how[128];
    struct exw_errbuf why = {{0}};
    struct exw_redis *rd = NULL;
    int port = 0;
    exw_err rc;

    *out = NULL;
    rc = exw_sentinel_primary(addr, timeout_ms, host, sizeof(host), &port, eb);
    if (rc != EXW_OK)
        return rc;
    rc = exw_redis_open(host, port, NULL, addr->user, addr->password, timeout_ms, &rd, &why);
    if (rc == EXW_OK)
        rc = read_role(rd, role, sizeof(role), &why);
    if (rc == EXW_OK && strcmp(role, "master") != 0)
        rc = exw_errbuf_set(&why, EXW_EREDIS, "it answers ROLE with %s, not master", role);
    if (rc == EXW_OK)
        rc = select_db(rd, addr->db, &why);
    if (rc != EXW_OK) {
        char node[EXW_NODE_MAX];

        exw_redis_free(rd);
        return exw_errbuf_set(eb, rc == EXW_ENOMEM ? EXW_ENOMEM : EXW_EREDIS,
                              "the primary that the sentinels name for %s, %s: %s", addr->master,
                              exw_cluster_node_name(host, port, node, sizeof(node)), why.msg);
    }
    snprintf(how, sizeof(how), "named by the sentinels for %s", addr->master);
    exw_topology_note_primary(exw_redis_node(rd), how);
    *out = rd;
    return EXW_OK;
}

/* @rd answers as a cluster node: checks the settings, moves to the owner of
 * the prefix's slot. On EXW_OK *@rd is the owner's connection. *@stop is set
 * when trying other nodes cannot help: the owner they would all name cannot
 * be reached (it died and no replica has taken over yet). */
static exw_err on_cluster(const struct exw_redis_addr *addr, const char *prefix,
                          const char *asked_host, long timeout_ms, struct exw_redis **rd, int *stop,
                          struct exw_errbuf *eb)
{
    struct exw_cluster_node owner;
    struct exw_redis *to = NULL;
    char node[EXW_NODE_MAX], how[64];
    int slot = exw_cluster_prefix_slot(prefix);
    exw_err rc;

    if (slot < 0)
        return exw_errbuf_set(eb, EXW_ECONFIG,
                              "Redis at %s is a cluster node, and EXPORT_PREFIX \"%s\" has no"
                              " hash tag: put one in it, as in {%s}, so that all of its keys"
                              " share one slot",
                              exw_redis_node(*rd), prefix, prefix);
    if (addr->db != 0)
        return exw_errbuf_set(eb, EXW_ECONFIG,
                              "Redis at %s is a cluster node, which has only database 0; the"
                              " URL asks for database %d",
                              exw_redis_node(*rd), addr->db);
    rc = find_owner(*rd, asked_host, slot, &owner, eb);
    if (rc != EXW_OK)
        return rc;
    exw_cluster_node_name(owner.host, owner.port, node, sizeof(node));
    if (strcmp(node, exw_redis_node(*rd)) != 0) {
        struct exw_errbuf why = {{0}};

        rc = exw_redis_open(owner.host, owner.port, NULL, addr->user, addr->password, timeout_ms,
                            &to, &why);
        if (rc != EXW_OK) {
            *stop = 1;
            return exw_errbuf_set(eb, rc, "the owner of cluster slot %d: %s", slot, why.msg);
        }
        exw_redis_free(*rd);
        *rd = to;
    }
    exw_redis_set_cluster(*rd, slot);
    exw_cluster_note_owner(owner.host, owner.port);
    snprintf(how, sizeof(how), "the owner of cluster slot %d", slot);
    exw_topology_note_primary(node, how);
    return EXW_OK;
}

/* One node of the list to try: connects, tells a cluster node, and goes on
 * from there. @is_url: the node is the URL's, the only one that may be a
 * plain server. */
static exw_err try_node(const struct exw_redis_addr *addr, const char *prefix, const char *host,
                        int port, const char *path, int is_url, long timeout_ms,
                        struct exw_redis **out, int *stop, struct exw_errbuf *eb)
{
    struct exw_redis *rd = NULL;
    int cluster = 0;
    exw_err rc;

    *out = NULL;
    *stop = 0;
    rc = exw_redis_open(host, port, path, addr->user, addr->password, timeout_ms, &rd, eb);
    if (rc == EXW_OK)
        rc = probe_cluster(rd, &cluster, eb);
    if (rc == EXW_OK && cluster)
        rc = on_cluster(addr, prefix, host ? host : "", timeout_ms, &rd, stop, eb);
    else if (rc == EXW_OK && is_url)
        rc = select_db(rd, addr->db, eb);
    else if (rc == EXW_OK)
        rc = exw_errbuf_set(eb, EXW_EREDIS, "%s is no cluster node any more", exw_redis_node(rd));
    if (rc != EXW_OK) {
        exw_redis_free(rd);
        rd = NULL;
    }
    *out = rd;
    return rc;
}

/* Adds @node to the @n nodes of @tries unless it is there or @tries is full:
 * its index, or TRIES_MAX when it could not be added. */
static size_t add_try(struct exw_cluster_node *tries, size_t *n,
                      const struct exw_cluster_node *node)
{
    size_t i;

    for (i = 0; i < *n; i++) {
        if (tries[i].port == node->port && strcmp(tries[i].host, node->host) == 0)
            return i;
    }
    if (*n == TRIES_MAX)
        return TRIES_MAX;
    tries[*n] = *node;
    return (*n)++;
}

exw_err exw_topology_connect(const struct exw_redis_addr *addr, const char *prefix, long timeout_ms,
                             struct exw_redis **out, struct exw_errbuf *eb)
{
    struct exw_cluster_node tries[TRIES_MAX], seen[TRIES_MAX], node;
    struct exw_errbuf first = {{0}}, why = {{0}};
    size_t n = 0, known, i, url_at;
    exw_err rc, first_rc = EXW_EREDIS;
    int stop = 0;

    *out = NULL;
    if (addr->nsentinels > 0)
        return connect_sentinel(addr, timeout_ms, out, eb);
    if (addr->path != NULL)
        return try_node(addr, prefix, NULL, 0, addr->path, 1, timeout_ms, out, &stop, eb);

    /* The owner last known first (the usual case after a reconnect), then
     * the URL's node, then the others seen, without repeats. */
    if (exw_cluster_owner(&node))
        add_try(tries, &n, &node);
    memset(&node, 0, sizeof(node));
    snprintf(node.host, sizeof(node.host), "%s", addr->host);
    node.port = addr->port;
    url_at = add_try(tries, &n, &node);
    known = exw_cluster_known(seen, TRIES_MAX);
    for (i = 0; i < known; i++)
        add_try(tries, &n, &seen[i]);
    for (i = 0; i < n; i++) {
        why.msg[0] = '\0';
        rc = try_node(addr, prefix, tries[i].host, tries[i].port, NULL, i == url_at, timeout_ms,
                      out, &stop, &why);
        if (rc == EXW_OK || rc == EXW_ECONFIG || rc == EXW_ENOMEM || stop) {
            if (rc != EXW_OK)
                exw_errbuf_set(eb, rc, "%s", why.msg);
            return rc;
        }
        /* The URL's own failure is the one to report: it is the one the
         * operator configured. */
        if (i == url_at || first.msg[0] == '\0') {
            first = why;
            first_rc = rc;
        }
    }
    if (n > 1)
        return exw_errbuf_set(eb, first_rc, "%s (and %zu other known cluster node(s) failed)",
                              first.msg, n - 1);
    return exw_errbuf_set(eb, first_rc, "%s", first.msg);
}
