/* keys.h: the name of every Redis key export-worker uses, built from the
 * prefix P (PROTOCOL.md section 1). No other module formats a key name.
 *
 *   P:queue                 jobs waiting
 *   P:processing:<worker>   jobs a worker has taken
 *   P:job:<id>              a job's status
 *   P:result:<id>           a finished workbook
 *   P:upload:<worker>:<id>  a workbook being uploaded (renamed into P:result:<id>)
 *   P:uploads:<worker>      the upload keys a worker has in flight
 *   P:worker:<worker>       a worker's heartbeat
 *   P:workers               registered workers
 *   P:cache:<name>:<key>    a lookup service's answer, shared by the fleet
 *   P:limit:<name>:permits  the fleet's permits to call service <name> (zset)
 *   P:limit:<name>:waiting  workers waiting for one of them (zset)
 *   P:limit:<name>:rate     the pace of requests to service <name>
 *   P:dead, P:stats, P:events
 * Service names are written in lower case. */
#ifndef EXW_KEYS_H
#define EXW_KEYS_H

#include "exw/err.h"

/* "P:<kind>" when @id is NULL, else "P:<kind>:<id>". Caller frees.
 * Thread: any. */
char *exw_key(const char *prefix, const char *kind, const char *id);

/* "P:upload:<worker>:<id>". Caller frees. Thread: any. */
char *exw_key_upload(const char *prefix, const char *worker, const char *id);

/* "P:cache:<service>:<key>", the service's name in lower case and the key
 * as it is (raw bytes). Caller frees. Thread: any. */
char *exw_key_cache(const char *prefix, const char *service, const char *key);

/* "P:limit:<service>:<what>", the service's name in lower case. Caller
 * frees. Thread: any. */
char *exw_key_limit(const char *prefix, const char *service, const char *what);

/* Whether @key may be a job's rows_key as far as the worker's own keys go:
 * none of the names above (the job deletes its list when it ends). The
 * document's own rule (it begins with "P:") is the job parser's. Thread: any. */
int exw_key_rows_allowed(const char *prefix, const char *key);

/* The same, with the job's error (invalid_job) in @eb when @key is not
 * allowed. Thread: any. */
int exw_key_rows_check(const char *prefix, const char *key, struct exw_errbuf *eb);

#endif
