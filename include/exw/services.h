/* services.h: lookup services, configured as EXPORT_SERVICE_<NAME>_*
 * variables and --service NAME=URL flags (PROTOCOL.md section 4).
 *
 * Their Authorization values and any user info in their URLs are secrets:
 * they never reach a message or a description. */
#ifndef EXW_SERVICES_H
#define EXW_SERVICES_H

#include <stddef.h>
#include "exw/buf.h"
#include "exw/err.h"

#define EXW_SERVICE_NAME_MAX 64
#define EXW_MAX_SERVICES 64

/* Bounds of EXPORT_SERVICE_<NAME>_TIMEOUT_MS and _RETRIES, for --help. */
#define EXW_SERVICE_TIMEOUT_MS_DEFAULT 5000
#define EXW_SERVICE_TIMEOUT_MS_MIN 1
#define EXW_SERVICE_TIMEOUT_MS_MAX 600000
#define EXW_SERVICE_RETRIES_DEFAULT 3
#define EXW_SERVICE_RETRIES_MIN 0
#define EXW_SERVICE_RETRIES_MAX 20
/* Bounds of the settings that spare a service: fleet-wide caps, the shared
 * cache and batch lookups (PROTOCOL.md section 4). */
#define EXW_SERVICE_MAX_INFLIGHT_MIN 1
#define EXW_SERVICE_MAX_INFLIGHT_MAX 100000
#define EXW_SERVICE_RATE_MIN 1
#define EXW_SERVICE_RATE_MAX 1000000
#define EXW_SERVICE_CACHE_TTL_MAX 31536000 /* a year, in seconds */
#define EXW_SERVICE_CACHE_MAX_BYTES_DEFAULT 65536
#define EXW_SERVICE_CACHE_MAX_BYTES_MIN 1
#define EXW_SERVICE_CACHE_MAX_BYTES_MAX 16777216
#define EXW_SERVICE_BATCH_MAX_DEFAULT 100
#define EXW_SERVICE_BATCH_MAX_MIN 1
#define EXW_SERVICE_BATCH_MAX_MAX 10000

struct exw_service {
    char name[EXW_SERVICE_NAME_MAX + 1]; /* upper case, [A-Z0-9]+ */
    char *url;                           /* template with {key} */
    char *auth;                          /* Authorization header value or NULL; secret */
    long timeout_ms;
    long retries;
    long max_inflight;    /* _MAX_INFLIGHT: requests in flight across the fleet; 0: no cap */
    long rate;            /* _RATE: requests a second across the fleet; 0: no cap */
    long cache_ttl_s;     /* _CACHE_TTL: seconds a hit stays in P:cache:*; 0: no cache */
    long cache_max_bytes; /* _CACHE_MAX_BYTES: larger bodies are not cached */
    char *batch_url;      /* _BATCH_URL: template with {keys}, or NULL; may hold a secret */
    long batch_max;       /* _BATCH_MAX: keys per batch request */
};

struct exw_config;

/* Finds the lookup services in @envp (each EXPORT_SERVICE_* "NAME=value"
 * entry; an empty value counts as unset) and in @flags, the @nflags values of
 * --service flags ("NAME=URL", overriding that service's _URL variable; the
 * last one wins), checks them and reads any _AUTH_FILE. Fills @out (room for
 * EXW_MAX_SERVICES) sorted by name and sets *@n. Every problem is added to
 * @errs as one line (exw_setting_report), without a secret; the services
 * filled in, whole or not, are then still to be freed with
 * exw_services_cleanup(). Thread: main. */
void exw_services_load(struct exw_service *out, size_t *n, char **envp, const char *const *flags,
                       size_t nflags, struct exw_buf *errs);

/* Appends the --help text of the settings that spare a service (_MAX_INFLIGHT,
 * _RATE, _CACHE_TTL, _CACHE_MAX_BYTES, _BATCH_URL, _BATCH_MAX), in the layout
 * of config.c's usage. Thread: owner of @b. */
void exw_services_usage(struct exw_buf *b);

/* Frees, wiping them, the URLs and auth values of @n services at @s. Thread: owner. */
void exw_services_cleanup(struct exw_service *s, size_t n);

/* Appends " service.NAME.url=URL service.NAME.auth=*** ..." for each of the
 * @n services at @s, user info in a URL shown as ***. Thread: owner of @b. */
void exw_services_describe(const struct exw_service *s, size_t n, struct exw_buf *b);

/* Finds a service of @c by name, case-insensitively; NULL if not configured
 * or @name is NULL. Thread: any. */
const struct exw_service *exw_config_service(const struct exw_config *c, const char *name);

/* The service a job's lookup names, as a worker resolves it; NULL, with the
 * job's error (invalid_job) in @eb, when @c has none of that name.
 * Thread: any. */
const struct exw_service *exw_service_for_job(const struct exw_config *c, const char *name,
                                              struct exw_errbuf *eb);

#endif
