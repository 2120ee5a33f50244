/* config.h: the worker's configuration, from the environment and flags.
 *
 * Every setting is one row of the table in config.c; names follow PROTOCOL.md
 * section 4. After exw_config_load() the struct is read-only and shared.
 * Redis URLs are parsed by redis_addr.c and lookup services read by
 * services.c; this header includes theirs, so its users need no other. */
#ifndef EXW_CONFIG_H
#define EXW_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include "exw/err.h"
#include "exw/log.h"
#include "exw/redis_addr.h" /* struct exw_redis_addr, exw_redis_addr_parse() */
#include "exw/services.h"   /* struct exw_service, exw_config_service() */

struct exw_config {
    char *redis_url; /* as given, password included: log exw_config_describe() instead */
    struct exw_redis_addr redis;   /* the URL parsed, with the sentinels when set */
    char *redis_sentinels;         /* EXPORT_REDIS_SENTINELS as given, or NULL */
    char *redis_master;            /* EXPORT_REDIS_MASTER, or NULL */
    char *redis_sentinel_password; /* EXPORT_REDIS_SENTINEL_PASSWORD (secret), or NULL */
    char *prefix;
    long pool_size;
    long concurrency;
    char *worker_id;
    long max_attempts;
    long job_timeout_s;
    long shutdown_grace_s;
    long result_ttl_s;
    long max_job_bytes;
    long max_row_bytes;    /* largest element of a rows_key list; longer is invalid_job */
    long max_result_bytes; /* largest workbook stored; larger is too_large */
    enum exw_log_format log_format;
    enum exw_log_level log_level;
    /* Extensions beyond PROTOCOL.md. */
    char *tmpdir;            /* EXPORT_TMPDIR: where workbooks are assembled */
    long heartbeat_ttl_ms;   /* EXPORT_HEARTBEAT_TTL_MS */
    long batch_rows;         /* EXPORT_BATCH_ROWS: rows buffered ahead of the writer */
    long max_response_bytes; /* EXPORT_MAX_RESPONSE_BYTES: lookup body cap */
    long max_sheet_rows;     /* EXPORT_MAX_SHEET_ROWS: rows per sheet, header included */
    long max_rows;           /* EXPORT_MAX_ROWS */
    long max_columns;        /* EXPORT_MAX_COLUMNS */
    long max_header_chars;   /* EXPORT_MAX_HEADER_CHARS */
    long max_string_chars;   /* EXPORT_MAX_STRING_CHARS */
    char *tls_ca_file;       /* EXPORT_TLS_CA_FILE, or NULL for the system's CAs */
    char *metrics_addr;      /* EXPORT_METRICS_ADDR: HOST:PORT of /metrics, or NULL: off */
    struct exw_service services[EXW_MAX_SERVICES];
    size_t nservices;
};

/* Reads the configuration from @envp (a NULL-terminated "NAME=value" array, as
 * environ; NULL is empty) and then @argv flags (argv[0], the program, is
 * skipped), which override. An empty variable counts as unset; a flag replaces
 * the variable of its setting, which is then not checked. Every bad setting is
 * reported in @errors, one per line, lines separated by '\n' with none after
 * the last (caller frees; NULL when none). *@c is overwritten, not freed.
 * Returns EXW_OK, or EXW_ECONFIG with @errors set and *@c left with nothing to
 * free. On "--help"/"-h" returns EXW_OK and sets *@help, even if other
 * settings are bad; *@c is then empty. Messages never hold a secret.
 * Thread: main. */
EXW_MUST_CHECK exw_err exw_config_load(struct exw_config *c, char **envp, int argc, char **argv,
                                       int *help, char **errors);

/* Frees what exw_config_load allocated; the struct may be reused. Thread: main. */
void exw_config_cleanup(struct exw_config *c);

/* The --help text, built once; valid for the life of the process. Thread: any. */
const char *exw_config_usage(void);

/* One line describing the config, as "flag-name=value" pairs, with secrets
 * (the Redis password, service auth, user info in URLs) shown as ***
 * (caller frees). Thread: any. */
char *exw_config_describe(const struct exw_config *c);

#endif
