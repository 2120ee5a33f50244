/* config.c: the worker's settings, from the environment and then from flags.
 *
 * Every setting is one row of settings[] (redis static_configs[]): its
 * variable and flag (PROTOCOL.md section 4), where it lands in struct
 * exw_config, its default, its bounds and its --help text. For each row
 * exw_config_load() takes one text (the last flag given, else the variable,
 * else the default), checks it against the row and reports every bad one, so
 * an operator fixes them all in one go. The --help text and
 * exw_config_describe() are built from the same rows, so they cannot drift.
 *
 * EXPORT_REDIS_URL is a row whose text redis_addr.c parses. Lookup services
 * are not rows: services.c finds them by scanning the environment for
 * EXPORT_SERVICE_<NAME>_<SETTING>. The rules every setting's text follows are
 * setting.c's. Secrets (the Redis password, service Authorization values, any
 * user:password in a URL) never reach an error message or the description:
 * messages say what is wrong, not what was given. */
#include "exw/digest.h"
#include "exw/config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "exw/buf.h"
#include "exw/setting.h"

/* Cap of the error list, the --help text and the description. --help needs a
 * few KiB and the description at most about 600 KiB (64 service URLs of 8 KiB);
 * past the cap, which only a flood of bad variables reaches, the error list is
 * cut, keeping its first lines. */
#define TEXT_MAX ((size_t)1 << 20)

/* What a worker id may hold. */
#define ID_CHARS EXW_SETTING_ALNUM "._:-"

enum setting_type { SET_INT, SET_STRING, SET_ENUM, SET_URL };

struct choice {
    const char *name;
    int value;
};

/* Checks a string setting beyond its length; on failure writes why into @why
 * (without the setting's name) and returns -1. */
typedef int (*check_fn)(const char *value, char *why, size_t why_size);
/* Computes a default that depends on the host or environment (caller frees). */
typedef char *(*default_fn)(char **envp);

struct setting {
    const char *env;  /* EXPORT_POOL_SIZE */
    const char *flag; /* --pool-size */
    const char *arg;  /* what the flag takes, for --help */
    enum setting_type type;
    size_t field;                 /* offsetof() the value in struct exw_config */
    long def;                     /* SET_INT: the default */
    const char *sdef;             /* others: the default, or NULL when make_default computes it */
    long min, max;                /* SET_INT: bounds; others: bounds of the length */
    const struct choice *choices; /* SET_ENUM: accepted words, NULL-terminated */
    check_fn check;               /* SET_STRING: a further rule, or NULL */
    default_fn make_default;      /* SET_STRING: computes the default if sdef is NULL */
    const char *shown_default;    /* --help's words for a computed default */
    const char *heading;          /* starts a --help section */
    int secret;                   /* SET_STRING: shown as *** and wiped when freed */
    const char *help;             /* --help text, lines of at most 74 columns */
};

#define INT_SETTING(e, f, a, fld, d, lo, hi)                                                       \
    .env = e, .flag = f, .arg = a, .type = SET_INT, .field = offsetof(struct exw_config, fld),     \
    .def = d, .min = lo, .max = hi
#define STRING_SETTING(e, f, a, fld, d, lo, hi)                                                    \
    .env = e, .flag = f, .arg = a, .type = SET_STRING, .field = offsetof(struct exw_config, fld),  \
    .sdef = d, .min = lo, .max = hi
#define ENUM_SETTING(e, f, a, fld, d, names)                                                       \
    .env = e, .flag = f, .arg = a, .type = SET_ENUM, .field = offsetof(struct exw_config, fld),    \
    .sdef = d, .choices = names
#define URL_SETTING(e, f, a, fld, d, lo, hi)                                                       \
    .env = e, .flag = f, .arg = a, .type = SET_URL, .field = offsetof(struct exw_config, fld),     \
    .sdef = d, .min = lo, .max = hi

/* Enum settings are stored through an int; both enums are int-sized. */
_Static_assert(sizeof(enum exw_log_format) == sizeof(int), "log format is int-sized");
_Static_assert(sizeof(enum exw_log_level) == sizeof(int), "log level is int-sized");

static const struct choice log_formats[] = {
    {"text", EXW_LOG_TEXT},
    {"json", EXW_LOG_JSON},
    {NULL, 0},
};

static const struct choice log_levels[] = {
    {"debug", EXW_LOG_DEBUG},
    {"info", EXW_LOG_INFO},
    {"warn", EXW_LOG_WARN},
    {"error", EXW_LOG_ERROR},
    {NULL, 0},
};

static int check_no_space(const char *value, char *why, size_t why_size);
static int check_worker_id(const char *value, char *why, size_t why_size);
static int check_sentinels(const char *value, char *why, size_t why_size);
static char *default_worker_id(char **envp);
static char *default_tmpdir(char **envp);

static const struct setting settings[] = {
    {URL_SETTING("EXPORT_REDIS_URL", "--redis-url", "URL", redis_url, "redis://127.0.0.1:6379/0", 1,
                 4096),
     .heading = "Redis",
     .help = "Where the queue lives: redis://[USER:PASSWORD@]HOST[:PORT][/DB], with an\n"
             "IPv6 HOST in brackets ([::1]), or unix://[USER:PASSWORD@]/PATH[?db=N].\n"
             "Write :PASSWORD@ for a password alone; percent-encode \":\", \"@\" and \"%\"\n"
             "inside USER and PASSWORD. The password is never logged. With\n"
             "EXPORT_REDIS_SENTINELS the HOST and PORT are ignored and may be left out\n"
             "(redis://:PASSWORD@/DB). On Redis Cluster the URL may name any node."},
    {STRING_SETTING("EXPORT_REDIS_SENTINELS", "--redis-sentinels", "HOST:PORT,...", redis_sentinels,
                    NULL, 1, 4096),
     .check = check_sentinels, .shown_default = "unset (no Sentinel)",
     .help = "Redis Sentinels to ask where the primary is, comma-separated HOST:PORT\n"
             "(an IPv6 HOST in brackets; PORT 26379 when left out). After a failover\n"
             "the worker finds the new primary by itself."},
    {STRING_SETTING("EXPORT_REDIS_MASTER", "--redis-master", "NAME", redis_master, NULL, 1, 256),
     .check = check_no_space, .shown_default = "unset",
     .help = "The primary's name at the sentinels; required with\n"
             "EXPORT_REDIS_SENTINELS."},
    {STRING_SETTING("EXPORT_REDIS_SENTINEL_PASSWORD", "--redis-sentinel-password", "PASSWORD",
                    redis_sentinel_password, NULL, 1, 1024),
     .secret = 1, .shown_default = "unset",
     .help = "The sentinels' own password (their requirepass), if they need one.\n"
             "Never logged."},
    {STRING_SETTING("EXPORT_PREFIX", "--prefix", "P", prefix, "export", 1, 64),
     .check = check_no_space,
     .help = "Start of every key the worker uses (P:queue, P:job:ID, ...), without\n"
             "spaces. On Redis Cluster use a hash tag such as {export}."},
    {STRING_SETTING("EXPORT_WORKER_ID", "--worker-id", "ID", worker_id, NULL, 1, 128),
     .check = check_worker_id, .make_default = default_worker_id,
     .shown_default = "HOSTNAME-PID-RANDOM",
     .help = "This worker's name in P:workers, P:worker:ID and P:processing:ID: letters,\n"
             "digits and . _ : - only, unique among live workers. RANDOM is 6 hex\n"
             "digits, so a restarted worker gets a new name."},
    {INT_SETTING("EXPORT_HEARTBEAT_TTL_MS", "--heartbeat-ttl-ms", "MS", heartbeat_ttl_ms, 6000,
                 1000, 10000),
     .help = "Lifetime of the heartbeat key P:worker:ID, renewed well before it lapses.\n"
             "Jobs of a worker that dies are put back on the queue within twice this."},

    {INT_SETTING("EXPORT_CONCURRENCY", "--concurrency", "N", concurrency, 1, 1, 64),
     .heading = "Jobs",
     .help = "Jobs this worker runs at once, each on a thread and a Redis connection\n"
             "of its own, all sharing the lookup pool round robin: a small job is not\n"
             "held up behind a large one. Memory and disk grow with it."},
    {INT_SETTING("EXPORT_MAX_ATTEMPTS", "--max-attempts", "N", max_attempts, 3, 1, 100),
     .help = "Starts of one job before it goes to P:dead as too_many_attempts."},
    {INT_SETTING("EXPORT_JOB_TIMEOUT", "--job-timeout", "SECONDS", job_timeout_s, 900, 1, 86400),
     .help = "Time one attempt may run before the job fails with timeout."},
    {INT_SETTING("EXPORT_SHUTDOWN_GRACE", "--shutdown-grace", "SECONDS", shutdown_grace_s, 8, 0,
                 3600),
     .help = "Time the running jobs may take to finish after SIGTERM or SIGINT; after\n"
             "that they are put back on the queue and the worker exits."},
    {INT_SETTING("EXPORT_RESULT_TTL", "--result-ttl", "SECONDS", result_ttl_s, 86400, 1, 31536000),
     .help = "How long a finished job's result and status are kept, unless the job\n"
             "sets its own result_ttl."},
    {INT_SETTING("EXPORT_MAX_JOB_BYTES", "--max-job-bytes", "BYTES", max_job_bytes, 67108864, 1024,
                 2147483647),
     .help = "Largest job document accepted (the default is 64 MiB); a larger one\n"
             "fails with too_large."},
    {INT_SETTING("EXPORT_MAX_ROW_BYTES", "--max-row-bytes", "BYTES", max_row_bytes, 1048576, 1024,
                 536870912),
     .help = "Largest element of a job's rows_key list (the default is 1 MiB); a\n"
             "longer one fails the job with invalid_job."},
    {INT_SETTING("EXPORT_MAX_RESULT_BYTES", "--max-result-bytes", "BYTES", max_result_bytes,
                 268435456, 4096, 536870912),
     .help = "Largest workbook stored (the default is 256 MiB; Redis's own limit for\n"
             "a string is 512 MiB); a job whose workbook would be larger fails with\n"
             "too_large."},
    {INT_SETTING("EXPORT_MAX_ROWS", "--max-rows", "N", max_rows, 10000000, 1, 1000000000),
     .help = "Most rows one job may have, inline or in its rows_key list; more is\n"
             "invalid_job."},
    {INT_SETTING("EXPORT_MAX_COLUMNS", "--max-columns", "N", max_columns, 16384, 1, 16384),
     .help = "Most columns one job may have (Excel's limit is the default)."},
    {INT_SETTING("EXPORT_MAX_HEADER_CHARS", "--max-header-chars", "N", max_header_chars, 255, 1,
                 32767),
     .help = "Longest column header, in characters."},
    {INT_SETTING("EXPORT_MAX_STRING_CHARS", "--max-string-chars", "N", max_string_chars, 32767, 1,
                 32767),
     .help = "Longest text cell, in characters (Excel's limit is the default); a longer\n"
             "value in a row is invalid_job, in a lookup response a lookup error."},
    {INT_SETTING("EXPORT_BATCH_ROWS", "--batch-rows", "N", batch_rows, 4096, 1, 1000000),
     .help = "Rows buffered ahead of the workbook writer."},
    {INT_SETTING("EXPORT_MAX_SHEET_ROWS", "--max-sheet-rows", "N", max_sheet_rows, 1048576, 2,
                 1048576),
     .help = "Rows per sheet, the header row included (Excel's limit is the default);\n"
             "an export past it continues in \"<sheet> (2)\", \"<sheet> (3)\", ..."},
    {STRING_SETTING("EXPORT_TMPDIR", "--tmpdir", "DIR", tmpdir, NULL, 1, 1024),
     .check = exw_setting_check_folder, .make_default = default_tmpdir,
     .shown_default = "$TMPDIR if set, else /var/tmp",
     .help = "Existing, writable folder (an absolute path) where workbooks are built\n"
             "before they are stored in Redis. Pick one on disk, not a tmpfs such as\n"
             "/tmp on many systems: a tmpfs would hold every workbook in RAM."},

    {ENUM_SETTING("EXPORT_LOG_FORMAT", "--log-format", "FORMAT", log_format, "text", log_formats),
     .heading = "Logging",
     .help = "One line per event on stderr: key=value text, or one JSON object."},
    {ENUM_SETTING("EXPORT_LOG_LEVEL", "--log-level", "LEVEL", log_level, "info", log_levels),
     .help = "Least severe level written."},

    {STRING_SETTING("EXPORT_METRICS_ADDR", "--metrics-addr", "HOST:PORT", metrics_addr, NULL, 3,
                    300),
     .check = exw_setting_check_listen_addr, .shown_default = "unset (no endpoint)",
     .heading = "Monitoring",
     .help = "Where to serve GET /metrics (Prometheus text format) and GET /healthz\n"
             "(200 while Redis answers and the worker's threads run, else 503 and\n"
             "why): HOST:PORT, an IPv6 HOST in brackets ([::1]:9100), 0.0.0.0 for\n"
             "every interface; port 0 takes a free one, named in the log. There is\n"
             "no authentication: bind to a private address."},

    {INT_SETTING("EXPORT_POOL_SIZE", "--pool-size", "N", pool_size, 32, 1, 1024),
     .heading = "Lookup services",
     .help = "Lookup threads, shared by all jobs, fixed for the worker's life."},
    {INT_SETTING("EXPORT_MAX_RESPONSE_BYTES", "--max-response-bytes", "BYTES", max_response_bytes,
                 1048576, 1024, 1073741824),
     .help = "Largest lookup response body (the default is 1 MiB); a larger one is a\n"
             "lookup error for that key."},
    {STRING_SETTING("EXPORT_TLS_CA_FILE", "--tls-ca-file", "FILE", tls_ca_file, NULL, 1, 1024),
     .check = exw_setting_check_file, .shown_default = "the system's CA certificates",
     .help = "PEM file of the certificate authorities that https lookup services are\n"
             "checked against, for services with certificates of a private CA.\n"
             "Certificates are always verified."},
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

/* ---- reading the environment ---- */

/* The value of @name in @envp, or NULL if it is absent or empty: an empty
 * variable (FOO= in a compose file) counts as unset. */
static const char *env_get(char **envp, const char *name)
{
    size_t n = strlen(name);
    char **e;

    for (e = envp; *e; e++) {
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return (*e)[n + 1] ? *e + n + 1 : NULL;
    }
    return NULL;
}

/* ---- string checks and computed defaults ---- */

/* A word: no spaces or control characters (the prefix, the master's name). */
static int check_no_space(const char *value, char *why, size_t why_size)
{
    if (exw_setting_has_space_or_control(value)) {
        snprintf(why, why_size, "must not contain spaces or control characters");
        return -1;
    }
    return 0;
}

static int check_worker_id(const char *value, char *why, size_t why_size)
{
    char shown[EXW_SETTING_SHOW_MAX];

    if (value[strspn(value, ID_CHARS)] != '\0') {
        snprintf(why, why_size, "may only contain A-Z a-z 0-9 . _ : -, got %s",
                 exw_setting_show(value, strlen(value), shown, sizeof(shown)));
        return -1;
    }
    return 0;
}

/* The sentinel list's syntax; the list is parsed again into the Redis
 * address once every row is read (check_topology). */
static int check_sentinels(const char *value, char *why, size_t why_size)
{
    struct exw_redis_addr a;
    struct exw_errbuf eb;

    memset(&a, 0, sizeof(a));
    eb.msg[0] = '\0';
    if (exw_redis_addr_set_sentinels(&a, value, NULL, NULL, &eb) != EXW_OK) {
        snprintf(why, why_size, "%s", eb.msg);
        return -1;
    }
    exw_redis_addr_cleanup(&a);
    return 0;
}

/* HOSTNAME-PID-RANDOM, with characters an id may not hold replaced by '-'. */
static char *default_worker_id(char **envp)
{
    char host[256];
    char id[160];
    unsigned char rnd[3];
    size_t i;

    (void)envp;
    if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "worker");
    host[sizeof(host) - 1] = '\0'; /* gethostname() may not terminate a long name. */
    for (i = 0; host[i]; i++) {
        if (strchr(ID_CHARS, host[i]) == NULL)
            host[i] = '-';
    }
    exw_random_bytes(rnd, sizeof(rnd));
    /* 100 bytes of host name leave room for the rest within 128. */
    snprintf(id, sizeof(id), "%.100s-%ld-%02x%02x%02x", host, (long)getpid(), rnd[0], rnd[1],
             rnd[2]);
    return exw_xstrdup(id);
}

/* $TMPDIR, else /var/tmp: on disk on most systems, unlike a tmpfs /tmp. */
static char *default_tmpdir(char **envp)
{
    const char *t = env_get(envp, "TMPDIR");

    return exw_xstrdup(t ? t : "/var/tmp");
}

/* ---- the table's settings ---- */

/* Where row @s keeps its value in @c. */
static void *field(struct exw_config *c, const struct setting *s) { return (char *)c + s->field; }

static const void *field_const(const struct exw_config *c, const struct setting *s)
{
    return (const char *)c + s->field;
}

/* "text or json", "debug, info, warn or error". */
static void list_choices(struct exw_buf *b, const struct choice *ch)
{
    size_t i, n = 0;

    while (ch[n].name)
        n++;
    for (i = 0; i < n; i++)
        exw_buf_printf_cut(b, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ", ch[i].name);
}

static void apply_enum(struct exw_config *c, const struct setting *s, const char *text,
                       const char *label, struct exw_buf *errs)
{
    char shown[EXW_SETTING_SHOW_MAX];
    struct exw_buf names;
    const struct choice *ch;

    for (ch = s->choices; ch->name; ch++) {
        if (strcasecmp(text, ch->name) == 0) {
            memcpy(field(c, s), &ch->value, sizeof(ch->value));
            return;
        }
    }
    exw_buf_init(&names, TEXT_MAX);
    list_choices(&names, s->choices);
    exw_setting_report(errs, label, "must be %s, got %s", names.data,
                       exw_setting_show(text, strlen(text), shown, sizeof(shown)));
    exw_buf_cleanup(&names);
}

static void apply_setting(struct exw_config *c, const struct setting *s, const char *text,
                          const char *label, struct exw_buf *errs)
{
    struct exw_errbuf eb;
    char why[512];
    size_t len = strlen(text);

    switch (s->type) {
    case SET_INT:
        exw_setting_parse_long(text, s->min, s->max, (long *)field(c, s), label, errs);
        return;
    case SET_ENUM:
        apply_enum(c, s, text, label, errs);
        return;
    case SET_STRING:
    case SET_URL:
        break;
    }
    if ((long)len < s->min || (long)len > s->max) {
        exw_setting_report(errs, label, "must be %ld to %ld characters long, got %zu", s->min,
                           s->max, len);
        return;
    }
    if (s->type == SET_URL) {
        eb.msg[0] = '\0';
        /* The host may be left out here; check_topology() requires it
         * unless sentinels name the primary. */
        if (exw_redis_addr_parse_for(text, &c->redis, 1, &eb) != EXW_OK) {
            exw_setting_report(errs, label, "%s", eb.msg);
            return;
        }
    } else if (s->check != NULL && s->check(text, why, sizeof(why)) != 0) {
        exw_setting_report(errs, label, "%s", why);
        return;
    }
    *(char **)field(c, s) = exw_xstrdup(text);
}

/* ---- the Redis topology ---- */

/* The name row @env was given under (its flag or its variable). */
static const char *label_of(const char *const *labels, const char *env)
{
    size_t i;

    for (i = 0; i < NSETTINGS; i++) {
        if (strcmp(settings[i].env, env) == 0)
            return labels[i];
    }
    return env;
}

/* Once every row is read: the sentinels go into the Redis address with the
 * primary's name they need, and the URL may leave out its host only when
 * they name it. A row that was bad is reported already and skipped here. */
static void check_topology(struct exw_config *c, const char *const *labels, struct exw_buf *errs)
{
    const char *url = label_of(labels, "EXPORT_REDIS_URL");
    const char *sentinels = label_of(labels, "EXPORT_REDIS_SENTINELS");
    struct exw_errbuf eb;
    size_t before = errs->len;

    if (c->redis_url == NULL)
        return;
    if (c->redis_sentinels == NULL) {
        if (c->redis_master != NULL)
            exw_setting_report(errs, label_of(labels, "EXPORT_REDIS_MASTER"),
                               "is set, but EXPORT_REDIS_SENTINELS is not");
        if (c->redis_sentinel_password != NULL)
            exw_setting_report(errs, label_of(labels, "EXPORT_REDIS_SENTINEL_PASSWORD"),
                               "is set, but EXPORT_REDIS_SENTINELS is not");
        if (c->redis.host == NULL && c->redis.path == NULL)
            exw_setting_report(errs, url,
                               "has no host (it may be left out only with"
                               " EXPORT_REDIS_SENTINELS)");
        return;
    }
    if (c->redis_master == NULL)
        exw_setting_report(errs, label_of(labels, "EXPORT_REDIS_MASTER"), "required with %s",
                           sentinels);
    if (c->redis.path != NULL)
        exw_setting_report(errs, url,
                           "must be redis:// with %s: the sentinels name a host and port,"
                           " not a socket",
                           sentinels);
    if (errs->len != before)
        return;
    eb.msg[0] = '\0';
    if (exw_redis_addr_set_sentinels(&c->redis, c->redis_sentinels, c->redis_master,
                                     c->redis_sentinel_password, &eb) != EXW_OK)
        exw_setting_report(errs, sentinels, "%s", eb.msg);
}

/* ---- flags ---- */

struct flag_values {
    const char *value[NSETTINGS]; /* the last value given for each row, or NULL */
    const char **services;        /* each --service NAME=URL, in order */
    size_t nservices;
};

static const struct setting *find_flag(const char *name, size_t n)
{
    size_t i;

    for (i = 0; i < NSETTINGS; i++) {
        if (strlen(settings[i].flag) == n && memcmp(settings[i].flag, name, n) == 0)
            return &settings[i];
    }
    return NULL;
}

/* Collects flag values (argv[0] is the program). A flag's value is the rest of
 * the word after '=', else the next word, whatever it looks like (getopt does
 * the same). Bad flags are echoed only up to any '=': what follows may be a
 * secret meant for a mistyped flag. */
static void scan_flags(int argc, char **argv, struct flag_values *fv, int *help,
                       struct exw_buf *errs)
{
    char shown[EXW_SETTING_SHOW_MAX];
    const struct setting *s;
    const char *arg, *eq, *value;
    size_t nlen;
    int i, options_done = 0;

    for (i = 1; i < argc; i++) {
        arg = argv[i];
        if (!options_done && strcmp(arg, "--") == 0) {
            options_done = 1;
            continue;
        }
        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            /* Not echoed: it may be a value meant for a mistyped flag. */
            exw_buf_printf_cut(errs,
                               "argument %d: unexpected; settings are given as --flag VALUE\n", i);
            continue;
        }
        eq = strchr(arg, '=');
        nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            *help = 1;
            continue;
        }
        s = find_flag(arg, nlen);
        if (s == NULL && !(nlen == 9 && memcmp(arg, "--service", 9) == 0)) {
            if (nlen > 64 || exw_setting_has_control(arg, nlen))
                exw_setting_report(errs, exw_setting_show(arg, nlen, shown, sizeof(shown)),
                                   "unknown flag (see --help)");
            else
                exw_buf_printf_cut(errs, "%.*s: unknown flag (see --help)\n", (int)nlen, arg);
            continue;
        }
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            exw_buf_printf_cut(errs, "%.*s: needs a value\n", (int)nlen, arg);
            continue;
        }
        if (s != NULL)
            fv->value[s - settings] = value;
        else
            fv->services[fv->nservices++] = value;
    }
}

/* ---- the public functions ---- */

exw_err exw_config_load(struct exw_config *c, char **envp, int argc, char **argv, int *help,
                        char **errors)
{
    char *no_env[] = {NULL};
    struct flag_values fv;
    struct exw_buf errs;
    const struct setting *s;
    const char *text, *label;
    const char *labels[NSETTINGS]; /* each row's name as given: its flag or variable */
    char *computed;
    size_t i;

    memset(c, 0, sizeof(*c));
    memset(&fv, 0, sizeof(fv));
    exw_buf_init(&errs, TEXT_MAX);
    *help = 0;
    *errors = NULL;
    if (envp == NULL)
        envp = no_env;
    fv.services = exw_xcalloc(argc > 0 ? (size_t)argc : 1, sizeof(*fv.services));

    scan_flags(argc, argv, &fv, help, &errs);
    if (*help) {
        /* Help wins over bad settings: the user is asking how to fix them. */
        exw_buf_reset(&errs);
        goto out;
    }
    for (i = 0; i < NSETTINGS; i++) {
        s = &settings[i];
        computed = NULL;
        text = fv.value[i];
        label = s->flag;
        if (text == NULL) {
            text = env_get(envp, s->env);
            label = s->env;
        }
        labels[i] = label;
        if (text == NULL && s->type == SET_INT) {
            *(long *)field(c, s) = s->def;
            continue;
        }
        if (text == NULL && s->sdef == NULL && s->make_default == NULL)
            continue; /* an optional setting left unset */
        if (text == NULL)
            text = s->sdef ? s->sdef : (computed = s->make_default(envp));
        apply_setting(c, s, text, label, &errs);
        free(computed);
    }
    check_topology(c, labels, &errs);
    exw_services_load(c->services, &c->nservices, envp, fv.services, fv.nservices, &errs);
out:
    free(fv.services);
    if (errs.len == 0) {
        exw_buf_cleanup(&errs);
        return EXW_OK;
    }
    exw_config_cleanup(c);
    if (errs.data[errs.len - 1] == '\n') /* Lines are separated, not terminated. */
        errs.data[--errs.len] = '\0';
    *errors = exw_buf_steal(&errs, NULL);
    return EXW_ECONFIG;
}

void exw_config_cleanup(struct exw_config *c)
{
    if (c == NULL)
        return;
    exw_setting_free_secret(c->redis_url);
    exw_redis_addr_cleanup(&c->redis);
    free(c->redis_sentinels);
    free(c->redis_master);
    exw_setting_free_secret(c->redis_sentinel_password);
    free(c->prefix);
    free(c->worker_id);
    free(c->tmpdir);
    free(c->tls_ca_file);
    free(c->metrics_addr);
    exw_services_cleanup(c->services, c->nservices);
    memset(c, 0, sizeof(*c));
}

/* A value as is, or quoted if it holds a space, a quote or a control character. */
static void put_value(struct exw_buf *b, const char *v)
{
    char shown[EXW_SETTING_SHOW_PATH_MAX];

    if (*v != '\0' && !exw_setting_has_space_or_control(v) && strchr(v, '"') == NULL)
        exw_buf_printf_cut(b, "%s", v);
    else
        exw_buf_printf_cut(b, "%s", exw_setting_show(v, strlen(v), shown, sizeof(shown)));
}

char *exw_config_describe(const struct exw_config *c)
{
    struct exw_buf b;
    const struct setting *s;
    const struct choice *ch;
    const char *str;
    size_t i;
    int v;

    exw_buf_init(&b, TEXT_MAX);
    for (i = 0; i < NSETTINGS; i++) {
        s = &settings[i];
        if (s->type == SET_STRING && *(char *const *)field_const(c, s) == NULL)
            continue; /* an optional setting left unset */
        exw_buf_printf_cut(&b, "%s%s=", i > 0 ? " " : "", s->flag + 2);
        switch (s->type) {
        case SET_INT:
            exw_buf_printf_cut(&b, "%ld", *(const long *)field_const(c, s));
            break;
        case SET_STRING:
            str = *(char *const *)field_const(c, s);
            put_value(&b, s->secret ? "***" : str ? str : "");
            break;
        case SET_ENUM:
            memcpy(&v, field_const(c, s), sizeof(v));
            for (ch = s->choices; ch->name && ch->value != v; ch++)
                continue;
            exw_buf_printf_cut(&b, "%s", ch->name ? ch->name : "?");
            break;
        case SET_URL:
            exw_redis_addr_describe(&c->redis, &b);
            break;
        }
    }
    exw_services_describe(c->services, c->nservices, &b);
    return exw_buf_steal(&b, NULL);
}

/* ---- --help ---- */

/* Appends @text with each line indented by six spaces. */
static void put_help(struct exw_buf *b, const char *text)
{
    const char *nl;

    while (*text) {
        nl = strchr(text, '\n');
        if (nl == NULL)
            nl = text + strlen(text);
        exw_buf_printf_cut(b, "      %.*s\n", (int)(nl - text), text);
        text = *nl ? nl + 1 : nl;
    }
}

static void put_range(struct exw_buf *b, long def, long min, long max)
{
    exw_buf_printf_cut(b, "      Default %ld, from %ld to %ld.\n", def, min, max);
}

static void put_usage_setting(struct exw_buf *b, const struct setting *s)
{
    exw_buf_printf_cut(b, "  %s, %s %s\n", s->env, s->flag, s->arg);
    put_help(b, s->help);
    switch (s->type) {
    case SET_INT:
        put_range(b, s->def, s->min, s->max);
        break;
    case SET_ENUM:
        exw_buf_printf_cut(b, "      One of ");
        list_choices(b, s->choices);
        exw_buf_printf_cut(b, "; default %s.\n", s->sdef);
        break;
    case SET_STRING:
        exw_buf_printf_cut(b, "      Default %s; %ld to %ld characters.\n",
                           s->sdef ? s->sdef : s->shown_default, s->min, s->max);
        break;
    case SET_URL:
        exw_buf_printf_cut(b, "      Default %s.\n", s->sdef);
        break;
    }
}

static const char usage_intro[] =
    "Usage: export-worker [--FLAG VALUE]...\n"
    "\n"
    "Takes export jobs from Redis and stores each result back as an .xlsx\n"
    "workbook. Every setting comes from an environment variable; the flag\n"
    "beside it, given as --flag VALUE or --flag=VALUE, overrides it. An empty\n"
    "variable counts as unset. If any setting is bad, the worker lists every\n"
    "bad one and exits with status 2 before it starts.\n";

static void put_usage_services(struct exw_buf *b)
{
    exw_buf_printf_cut(b, "  EXPORT_SERVICE_<NAME>_URL, --service NAME=URL\n");
    put_help(b, "URL template of lookup service NAME, which jobs may name in any case\n"
                "(A-Z and 0-9 only, no underscores): http:// or https://, with {key}\n"
                "in the path or query where the percent-encoded key goes. Needed by\n"
                "every NAME; --service may be repeated and overrides the variable.\n"
                "Example: EXPORT_SERVICE_TETHER_URL=https://tether.internal/c/{key}");
    exw_buf_printf_cut(b, "  EXPORT_SERVICE_<NAME>_AUTH\n");
    put_help(b, "Value of the Authorization header sent to NAME, e.g. \"Bearer t0k3n\".\n"
                "Never logged.");
    exw_buf_printf_cut(b, "  EXPORT_SERVICE_<NAME>_AUTH_FILE\n");
    put_help(b, "A file holding that value instead, e.g. a mounted secret; one trailing\n"
                "newline is removed. Set _AUTH or _AUTH_FILE, not both.");
    exw_buf_printf_cut(b, "  EXPORT_SERVICE_<NAME>_TIMEOUT_MS\n");
    put_help(b, "Time limit of one request, in milliseconds.");
    put_range(b, EXW_SERVICE_TIMEOUT_MS_DEFAULT, EXW_SERVICE_TIMEOUT_MS_MIN,
              EXW_SERVICE_TIMEOUT_MS_MAX);
    exw_buf_printf_cut(b, "  EXPORT_SERVICE_<NAME>_RETRIES\n");
    put_help(b, "Retries of one key after a timeout, a connection error, a 5xx or a 429,\n"
                "with exponential backoff; other statuses are final.");
    put_range(b, EXW_SERVICE_RETRIES_DEFAULT, EXW_SERVICE_RETRIES_MIN, EXW_SERVICE_RETRIES_MAX);
    exw_services_usage(b);
}

/* Built once, on first use, from settings[]; read-only afterwards. */
static pthread_once_t usage_once = PTHREAD_ONCE_INIT;
static char *usage_text;

static void build_usage(void)
{
    struct exw_buf b;
    size_t i;

    exw_buf_init(&b, TEXT_MAX);
    exw_buf_printf_cut(&b, "%s", usage_intro);
    for (i = 0; i < NSETTINGS; i++) {
        if (settings[i].heading != NULL)
            exw_buf_printf_cut(&b, "\n%s\n", settings[i].heading);
        put_usage_setting(&b, &settings[i]);
    }
    /* The table ends with the "Lookup services" rows, which these continue. */
    put_usage_services(&b);
    exw_buf_printf_cut(&b, "\nOther\n  -h, --help\n");
    put_help(&b, "Print this text and exit.");
    usage_text = exw_buf_steal(&b, NULL);
}

const char *exw_config_usage(void)
{
    pthread_once(&usage_once, build_usage);
    return usage_text;
}
