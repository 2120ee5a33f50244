/* result.h: uploading a finished workbook.
 *
 * The workbook goes up in chunks to P:upload:<worker>:<id>, listed in
 * P:uploads:<worker>, so that a worker never holds it whole in memory and a
 * partial upload is never mistaken for a result; the job's end (status.h)
 * renames it into P:result:<id>. Every other ending deletes it, recovery of
 * a dead worker included, and its TTL bounds what a lost one costs.
 * Thread: owner of the connection. */
#ifndef EXW_RESULT_H
#define EXW_RESULT_H

#include <stddef.h>
#include "exw/err.h"
#include "exw/redis.h"

/* Appends @len bytes to job @id's upload, starting it over when @first. The
 * upload key and its listing live @ttl_ms from the first chunk. */
EXW_MUST_CHECK exw_err exw_result_chunk(struct exw_redis *rd, const char *id, int first,
                                        const void *data, size_t len, long ttl_ms,
                                        struct exw_errbuf *eb);

/* "P:result:<id>", the key a succeeded job's status names. Caller frees.
 * Thread: any. */
char *exw_result_key(const char *prefix, const char *id);

#endif
