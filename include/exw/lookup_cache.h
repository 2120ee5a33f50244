/* lookup_cache.h: the lookup cache the fleet shares in Redis
 * (EXPORT_SERVICE_<NAME>_CACHE_TTL, PROTOCOL.md section 4).
 *
 * A hit of service <name> (a 200 with a JSON body) is kept as that body under
 * P:cache:<name>:<key>, <name> in lower case and <key> the raw key, with the
 * service's TTL, for any job of any worker. Entries are read and written in
 * batches: one MGET for a window of keys, one script call (cache_put.lua) for
 * a batch of answers. An entry that is missing or of another type than a
 * string is a miss; judging a string's contents is the caller's. */
#ifndef EXW_LOOKUP_CACHE_H
#define EXW_LOOKUP_CACHE_H

#include <stddef.h>
#include "exw/err.h"
#include "exw/redis.h"

/* Reads the entries of the @n NUL-terminated @keys of service @service in one
 * MGET: @bodies[i] is entry i, a heap string (the caller frees it) of
 * @lens[i] bytes, or NULL for a miss (no entry, or not a string). On an error
 * every @bodies[i] is NULL. Thread: owner of @rd. */
EXW_MUST_CHECK exw_err exw_cache_get(struct exw_redis *rd, const char *service,
                                     const char *const *keys, size_t n, char **bodies, size_t *lens,
                                     struct exw_errbuf *eb);

/* Stores @n answers of service @service, each @bodies[i] (@lens[i] bytes)
 * under the entry of @keys[i], for @ttl_s seconds, in one script call.
 * Thread: owner of @rd. */
EXW_MUST_CHECK exw_err exw_cache_put(struct exw_redis *rd, const char *service, long ttl_s,
                                     const char *const *keys, const char *const *bodies,
                                     const size_t *lens, size_t n, struct exw_errbuf *eb);

#endif
