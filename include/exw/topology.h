/* topology.h: which server a connection goes to, and the primary in use.
 *
 * Three topologies (PROTOCOL.md section 4, "Redis topologies"):
 *   - Sentinel (EXPORT_REDIS_SENTINELS set): the primary the sentinels name
 *     for EXPORT_REDIS_MASTER, checked with ROLE;
 *   - Redis Cluster (found at connect: CLUSTER INFO answers): the owner of
 *     the prefix's one slot (cluster.h), found with CLUSTER SLOTS from the
 *     owner last known, the URL's node or any node seen before;
 *   - otherwise the URL's server.
 * Every connection is made through here (exw_redis_connect), so every
 * thread follows a failover by connecting again. The primary in use is kept
 * process-wide, so that each switch is told once (exw_topology_take_switch),
 * whichever thread saw it first. */
#ifndef EXW_TOPOLOGY_H
#define EXW_TOPOLOGY_H

#include <stddef.h>

#include "exw/err.h"
#include "exw/redis.h"
#include "exw/redis_addr.h"

/* Connects to the server @addr means for keys under @prefix, authenticated,
 * with the database selected (not on a cluster), into *@out (NULL on error;
 * its names are empty: exw_redis_connect sets them). EXW_ECONFIG when the
 * server is a cluster node and @prefix has no hash tag or @addr's db is not
 * 0, @eb saying why; EXW_EREDIS when no server could be reached or the one
 * named is not (yet) the primary; other errors as exw_redis_run.
 * Thread: any (owner of the connection made). */
EXW_MUST_CHECK exw_err exw_topology_connect(const struct exw_redis_addr *addr, const char *prefix,
                                            long timeout_ms, struct exw_redis **out,
                                            struct exw_errbuf *eb);

/* Notes @node ("host:port") as the primary this process uses now, @how
 * saying who named it ("the sentinels' primary mymaster"). Thread: any. */
void exw_topology_note_primary(const char *node, const char *how);

/* Whether the primary has changed since the last call that returned 1 (the
 * first primary counts as a change from ""): then @was, @now and @how (each
 * of @size bytes) say from what, to what and who named it. Exactly one
 * caller learns of each change. Cheap when nothing changed.
 * Thread: any. */
int exw_topology_take_switch(char *was, char *now, char *how, size_t size);

#endif
