/* sentinel.h: asking Redis Sentinels where the primary is.
 *
 * EXPORT_REDIS_SENTINELS lists the sentinels and EXPORT_REDIS_MASTER names
 * the primary at them (redis_addr.h). topology.c asks before each connect,
 * so that a connection made after a failover goes to the new primary. */
#ifndef EXW_SENTINEL_H
#define EXW_SENTINEL_H

#include <stddef.h>

#include "exw/err.h"
#include "exw/redis_addr.h"

/* Asks the sentinels of @a in turn, from the one that answered last, for the
 * address of the primary @a->master (SENTINEL get-master-addr-by-name,
 * after AUTH with @a->sentinel_password when set) and puts the first answer
 * in @host (@host_size bytes) and *@port. Each sentinel gets at most
 * @timeout_ms to connect and to answer. EXW_EREDIS when none named one (all
 * unreachable, or none knows the name), @eb saying what each of the last
 * one said; never a password. Thread: any. */
EXW_MUST_CHECK exw_err exw_sentinel_primary(const struct exw_redis_addr *a, long timeout_ms,
                                            char *host, size_t host_size, int *port,
                                            struct exw_errbuf *eb);

#endif
