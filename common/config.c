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
 * Lookup services are not rows: they are found by scanning the environment
 * for EXPORT_SERVICE_<NAME>_<SETTING>. Secrets (the Redis password, service
 * Authorization values, any user:password in a URL) never reach an error
 * message or the description: messages say what is wrong, not what was
 * given. */
#include "exw/config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SHOW_MAX 72       /* longest echo of a bad value in a message */
#define SHOW_PATH_MAX 200 /* paths get more room: they are what to fix */

#define SVC_PREFIX "EXPORT_SERVICE_"
#define SVC_TIMEOUT_DEFAULT 5000
#define SVC_TIMEOUT_MIN 1
#define SVC_TIMEOUT_MAX 600000
#define SVC_RETRIES_DEFAULT 3
#define SVC_RETRIES_MIN 0
#define SVC_RETRIES_MAX 20
#define SVC_URL_MAX 8192
#define SVC_AUTH_MAX 65536

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

static int check_prefix(const char *value, char *why, size_t why_size);
static int check_worker_id(const char *value, char *why, size_t why_size);
static int check_tmpdir(const char *value, char *why, size_t why_size);
static int check_ca_file(const char *value, char *why, size_t why_size);
static char *default_worker_id(char **envp);
static char *default_tmpdir(char **envp);

static const struct setting settings[] = {
    {URL_SETTING("EXPORT_REDIS_URL", "--redis-url", "URL", redis_url, "redis://127.0.0.1:6379/0", 1,
                 4096),
     .heading = "Redis",
     .help = "Where the queue lives: redis://[USER:PASSWORD@]HOST[:PORT][/DB], with an\n"
             "IPv6 HOST in brackets ([::1]), or unix://[USER:PASSWORD@]/PATH[?db=N].\n"
             "Write :PASSWORD@ for a password alone; percent-encode \":\", \"@\" and \"%\"\n"
             "inside USER and PASSWORD. The password is never logged."},
    {STRING_SETTING("EXPORT_PREFIX", "--prefix", "P", prefix, "export", 1, 64),
     .check = check_prefix,
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

    {INT_SETTING("EXPORT_MAX_ATTEMPTS", "--max-attempts", "N", max_attempts, 3, 1, 100),
     .heading = "Jobs", .help = "Starts of one job before it goes to P:dead as too_many_attempts."},
    {INT_SETTING("EXPORT_JOB_TIMEOUT", "--job-timeout", "SECONDS", job_timeout_s, 900, 1, 86400),
     .help = "Time one attempt may run before the job fails with timeout."},
    {INT_SETTING("EXPORT_SHUTDOWN_GRACE", "--shutdown-grace", "SECONDS", shutdown_grace_s, 8, 0,
                 3600),
     .help = "Time the running job may take to finish after SIGTERM or SIGINT; after\n"
             "that it is put back on the queue and the worker exits."},
    {INT_SETTING("EXPORT_RESULT_TTL", "--result-ttl", "SECONDS", result_ttl_s, 86400, 1, 31536000),
     .help = "How long a finished job's result and status are kept, unless the job\n"
             "sets its own result_ttl."},
    {INT_SETTING("EXPORT_MAX_JOB_BYTES", "--max-job-bytes", "BYTES", max_job_bytes, 67108864, 1024,
                 2147483647),
     .help = "Largest job document accepted (the default is 64 MiB); a larger one\n"
             "fails with too_large."},
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
     .check = check_tmpdir, .make_default = default_tmpdir,
     .shown_default = "$TMPDIR if set, else /var/tmp",
     .help = "Existing, writable folder (an absolute path) where workbooks are built\n"
             "before they are stored in Redis. Pick one on disk, not a tmpfs such as\n"
             "/tmp on many systems: a tmpfs would hold every workbook in RAM."},

    {ENUM_SETTING("EXPORT_LOG_FORMAT", "--log-format", "FORMAT", log_format, "text", log_formats),
     .heading = "Logging",
     .help = "One line per event on stderr: key=value text, or one JSON object."},
    {ENUM_SETTING("EXPORT_LOG_LEVEL", "--log-level", "LEVEL", log_level, "info", log_levels),
     .help = "Least severe level written."},

    {INT_SETTING("EXPORT_POOL_SIZE", "--pool-size", "N", pool_size, 32, 1, 1024),
     .heading = "Lookup services",
     .help = "Lookup threads, shared by all jobs, fixed for the worker's life."},
    {INT_SETTING("EXPORT_MAX_RESPONSE_BYTES", "--max-response-bytes", "BYTES", max_response_bytes,
                 1048576, 1024, 1073741824),
     .help = "Largest lookup response body (the default is 1 MiB); a larger one is a\n"
             "lookup error for that key."},
    {STRING_SETTING("EXPORT_TLS_CA_FILE", "--tls-ca-file", "FILE", tls_ca_file, NULL, 1, 1024),
     .check = check_ca_file, .shown_default = "the system's CA certificates",
     .help = "PEM file of the certificate authorities that https lookup services are\n"
             "checked against, for services with certificates of a private CA.\n"
             "Certificates are always verified."},
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

/* ---- small helpers ---- */

/* A growing string, for the error list, --help and the description. */
struct sbuf {
    char *s;
    size_t len;
    size_t cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    size_t cap = b->cap ? b->cap : 256;

    while (cap < b->len + n + 1)
        cap *= 2;
    if (cap != b->cap) {
        b->s = exw_xrealloc(b->s, cap);
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) EXW_PRINTF(2, 3);

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    char small[256];
    char *big;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        sb_add(b, small, (size_t)n);
        return;
    }
    big = exw_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_add(b, big, (size_t)n);
    free(big);
}

/* Adds one "LABEL: problem" line to the error list. */
static void report(struct sbuf *errs, const char *label, const char *fmt, ...) EXW_PRINTF(3, 4);

static void report(struct sbuf *errs, const char *label, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sb_printf(errs, "%s: %s\n", label, msg);
}

/* Quotes the first @n bytes of @s for a message: escapes quotes, backslashes
 * and control characters, and cuts long values with "...". Only for values
 * that are not secret. */
static const char *show_n(const char *s, size_t n, char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, o = 0;
    unsigned char ch;

    out[o++] = '"';
    for (i = 0; i < n; i++) {
        ch = (unsigned char)s[i];
        if (o + 4 + 5 > size) { /* room for one escape, `..."` and the NUL */
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

static const char *show(const char *s, char *out, size_t size)
{
    return show_n(s, strlen(s), out, size);
}

/* The message for errno @e, via the POSIX strerror_r(). */
static const char *errno_text(int e, char *out, size_t size)
{
    if (strerror_r(e, out, size) != 0)
        snprintf(out, size, "error %d", e);
    return out;
}

/* Overwrites a secret before freeing it. */
static void wipe_free(char *s)
{
    volatile char *p = s;

    if (s == NULL)
        return;
    while (*p)
        *p++ = '\0';
    free(s);
}

static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

static int is_alnum(char ch)
{
    return is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static char to_lower(char ch) { return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch; }

static char to_upper(char ch) { return ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch; }

/* ASCII case-insensitive comparisons, independent of the locale. A shorter
 * string stops same_ci_n() at its NUL, which no other byte matches. */
static int same_ci_n(const char *a, const char *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (to_lower(a[i]) != to_lower(b[i]))
            return 0;
    }
    return 1;
}

static int same_ci(const char *a, const char *b) { return same_ci_n(a, b, strlen(a) + 1); }

static int starts_ci(const char *s, const char *prefix)
{
    return same_ci_n(s, prefix, strlen(prefix));
}

/* Whether @n bytes at @s hold a control character or DEL. */
static int has_control(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 1;
    }
    return 0;
}

static int has_space_or_control(const char *s)
{
    return strchr(s, ' ') != NULL || has_control(s, strlen(s));
}

/* Parses all of @s as a decimal integer. Returns 0, -1 if it is not one, or
 * ERANGE if it does not fit in a long. Unlike bare strtol(), rejects leading
 * spaces, trailing junk and the empty string. */
static int parse_long(const char *s, long *out)
{
    char *end;
    long v;

    if (!(is_digit(s[0]) || ((s[0] == '-' || s[0] == '+') && is_digit(s[1]))))
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (*end != '\0')
        return -1;
    if (errno == ERANGE)
        return ERANGE;
    *out = v;
    return 0;
}

/* Parses @s as an integer in [@min, @max], reporting a bad one under @label.
 * Returns 0 on success. */
static int parse_bounded(const char *s, long min, long max, const char *label, struct sbuf *errs,
                         long *out)
{
    char shown[SHOW_MAX];
    long v = 0;
    int rc = parse_long(s, &v);

    if (rc == -1) {
        report(errs, label, "must be an integer, got %s", show(s, shown, sizeof(shown)));
        return -1;
    }
    if (rc == ERANGE || v < min || v > max) {
        /* Only digits and a sign got here, so the text is safe to echo. */
        report(errs, label, "must be %ld..%ld, got %s", min, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

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

static int check_prefix(const char *value, char *why, size_t why_size)
{
    if (has_space_or_control(value)) {
        snprintf(why, why_size, "must not contain spaces or control characters");
        return -1;
    }
    return 0;
}

static int is_id_char(char ch)
{
    return is_alnum(ch) || ch == '.' || ch == '_' || ch == ':' || ch == '-';
}

static int check_worker_id(const char *value, char *why, size_t why_size)
{
    char shown[SHOW_MAX];
    const char *p;

    for (p = value; *p; p++) {
        if (!is_id_char(*p)) {
            snprintf(why, why_size, "may only contain A-Z a-z 0-9 . _ : -, got %s",
                     show(value, shown, sizeof(shown)));
            return -1;
        }
    }
    return 0;
}

/* A readable regular file; whether it holds certificates curl finds out. */
static int check_ca_file(const char *value, char *why, size_t why_size)
{
    char shown[SHOW_PATH_MAX];
    struct stat st;
    FILE *f;

    show(value, shown, sizeof(shown));
    if (stat(value, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, why_size, "%s is not a file", shown);
        return -1;
    }
    f = fopen(value, "r");
    if (f == NULL) {
        snprintf(why, why_size, "cannot read %s", shown);
        return -1;
    }
    fclose(f);
    return 0;
}

static int check_tmpdir(const char *value, char *why, size_t why_size)
{
    char shown[SHOW_PATH_MAX];
    char etext[128];
    struct stat st;

    show(value, shown, sizeof(shown));
    if (value[0] != '/') {
        snprintf(why, why_size, "must be an absolute path, got %s", shown);
        return -1;
    }
    if (stat(value, &st) != 0) {
        snprintf(why, why_size, "%s: %s", shown, errno_text(errno, etext, sizeof(etext)));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, why_size, "%s is not a folder", shown);
        return -1;
    }
    if (access(value, W_OK | X_OK) != 0) {
        snprintf(why, why_size, "%s is not writable: %s", shown,
                 errno_text(errno, etext, sizeof(etext)));
        return -1;
    }
    return 0;
}

/* Fills @out with random bytes, from /dev/urandom or, failing that, from the
 * clock and pid: an id needs to be unlikely to repeat, not unpredictable. */
static void random_bytes(unsigned char *out, size_t n)
{
    struct timespec ts;
    uint64_t x;
    ssize_t got = -1;
    size_t i;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        got = read(fd, out, n);
        close(fd);
    }
    if (got == (ssize_t)n)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    for (i = 0; i < n; i++) {
        x += 0x9e3779b97f4a7c15ULL; /* splitmix64 */
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        out[i] = (unsigned char)(x ^ (x >> 31));
    }
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
        if (!is_id_char(host[i]))
            host[i] = '-';
    }
    random_bytes(rnd, sizeof(rnd));
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

/* ---- redis:// and unix:// ---- */

static int hex_value(char ch)
{
    if (is_digit(ch))
        return ch - '0';
    ch = to_lower(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Percent-decodes @n bytes of @s into a new string. %00 is refused. */
static exw_err pct_decode(const char *s, size_t n, const char *what, char **out,
                          struct exw_errbuf *eb)
{
    char *d = exw_xmalloc(n + 1);
    size_t i, o = 0;
    int hi, lo;

    *out = NULL;
    for (i = 0; i < n; i++) {
        if (s[i] != '%') {
            d[o++] = s[i];
            continue;
        }
        hi = i + 2 < n ? hex_value(s[i + 1]) : -1;
        lo = i + 2 < n ? hex_value(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            d[o] = '\0';
            wipe_free(d);
            return exw_errbuf_set(eb, EXW_ECONFIG, "bad percent-encoding in the %s", what);
        }
        d[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    d[o] = '\0';
    *out = d;
    return EXW_OK;
}

/* USER:PASSWORD or :PASSWORD, @n bytes at @s. A bare word is refused rather
 * than guessed at: it is as often a password as a user name, and a user name
 * may be shown. */
static exw_err parse_userinfo(const char *s, size_t n, struct exw_redis_addr *a,
                              struct exw_errbuf *eb)
{
    const char *colon = memchr(s, ':', n);
    exw_err rc;

    if (colon == NULL)
        return exw_errbuf_set(eb, EXW_ECONFIG,
                              "write USER:PASSWORD@ or :PASSWORD@ before the host, with a colon");
    rc = pct_decode(s, (size_t)(colon - s), "user name", &a->user, eb);
    if (rc != EXW_OK)
        return rc;
    rc = pct_decode(colon + 1, n - (size_t)(colon - s) - 1, "password", &a->password, eb);
    if (rc != EXW_OK)
        return rc;
    if (a->user[0] == '\0') {
        free(a->user);
        a->user = NULL;
    }
    if (a->password[0] == '\0') {
        free(a->password);
        a->password = NULL;
        if (a->user != NULL)
            return exw_errbuf_set(eb, EXW_ECONFIG, "the user has no password");
    }
    return EXW_OK;
}

/* Parses @n decimal digits at @s into [@min, @max]; -1 if they are not that. */
static long parse_digits(const char *s, size_t n, long min, long max)
{
    long v = 0;
    size_t i;

    if (n == 0 || n > 10)
        return -1;
    for (i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v >= min && v <= max ? v : -1;
}

static int is_host_char(char ch) { return is_alnum(ch) || ch == '.' || ch == '-' || ch == '_'; }

/* HOST[:PORT][/DB] after redis:// and any user info. */
static exw_err parse_tcp_target(const char *p, struct exw_redis_addr *a, struct exw_errbuf *eb)
{
    const char *host, *end;
    size_t hlen, i;
    long v;

    if (strchr(p, '?') != NULL)
        return exw_errbuf_set(eb, EXW_ECONFIG,
                              "redis:// takes no query parameters; put the database after /");
    if (*p == '[') {
        host = p + 1;
        end = strchr(host, ']');
        if (end == NULL)
            return exw_errbuf_set(eb, EXW_ECONFIG, "the IPv6 host lacks its closing ]");
        hlen = (size_t)(end - host);
        for (i = 0; i < hlen; i++) {
            if (hex_value(host[i]) < 0 && host[i] != ':' && host[i] != '.')
                return exw_errbuf_set(eb, EXW_ECONFIG, "the IPv6 host is not an IPv6 address");
        }
        p = end + 1;
    } else {
        host = p;
        hlen = strcspn(p, ":/");
        for (i = 0; i < hlen; i++) {
            if (!is_host_char(host[i]))
                return exw_errbuf_set(eb, EXW_ECONFIG,
                                      "the host may only hold letters, digits, '.', '-' and '_'"
                                      " (an IPv6 address goes in [])");
        }
        p += hlen;
    }
    if (hlen == 0)
        return exw_errbuf_set(eb, EXW_ECONFIG, "has no host");
    a->host = exw_xstrndup(host, hlen);

    a->port = 6379;
    if (*p == ':') {
        p++;
        v = parse_digits(p, strcspn(p, "/"), 1, 65535);
        if (v < 0)
            return exw_errbuf_set(eb, EXW_ECONFIG, "the port must be a number from 1 to 65535");
        a->port = (int)v;
        p += strcspn(p, "/");
    } else if (*p != '/' && *p != '\0') {
        return exw_errbuf_set(eb, EXW_ECONFIG, "expected :PORT or /DB after the host");
    }

    a->db = 0;
    if (*p == '/' && p[1] != '\0') {
        v = parse_digits(p + 1, strlen(p + 1), 0, INT_MAX);
        if (v < 0)
            return exw_errbuf_set(eb, EXW_ECONFIG,
                                  "the database after / must be a number from 0 to %d", INT_MAX);
        a->db = (int)v;
    }
    return EXW_OK;
}

/* The part after redis://. The user info ends at the last '@': a host, port
 * or database never holds one, a careless password might. */
static exw_err parse_tcp(const char *rest, struct exw_redis_addr *a, struct exw_errbuf *eb)
{
    const char *at = strrchr(rest, '@');
    exw_err rc;

    if (at != NULL) {
        rc = parse_userinfo(rest, (size_t)(at - rest), a, eb);
        if (rc != EXW_OK)
            return rc;
        rest = at + 1;
    }
    return parse_tcp_target(rest, a, eb);
}

/* The part after unix://: [USER:PASSWORD@]/PATH[?db=N]. */
static exw_err parse_unix(const char *rest, struct exw_redis_addr *a, struct exw_errbuf *eb)
{
    const size_t path_max = sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1;
    const char *at, *q;
    size_t plen;
    long v;
    exw_err rc;

    if (rest[0] != '/') {
        at = strstr(rest, "@/");
        if (at == NULL)
            return exw_errbuf_set(eb, EXW_ECONFIG,
                                  "unix:// takes an absolute socket path, as in"
                                  " unix:///run/redis/redis.sock");
        rc = parse_userinfo(rest, (size_t)(at - rest), a, eb);
        if (rc != EXW_OK)
            return rc;
        rest = at + 1;
    }
    q = strchr(rest, '?');
    plen = q ? (size_t)(q - rest) : strlen(rest);
    if (plen < 2)
        return exw_errbuf_set(eb, EXW_ECONFIG, "has no socket path");
    if (plen > path_max)
        return exw_errbuf_set(eb, EXW_ECONFIG, "the socket path is longer than %zu bytes",
                              path_max);
    a->path = exw_xstrndup(rest, plen);
    a->db = 0;
    if (q != NULL) {
        if (strncmp(q + 1, "db=", 3) != 0)
            return exw_errbuf_set(eb, EXW_ECONFIG, "the only query parameter is db=N");
        v = parse_digits(q + 4, strlen(q + 4), 0, INT_MAX);
        if (v < 0)
            return exw_errbuf_set(eb, EXW_ECONFIG, "db= must be a number from 0 to %d", INT_MAX);
        a->db = (int)v;
    }
    return EXW_OK;
}

exw_err exw_redis_addr_parse(const char *url, struct exw_redis_addr *out, struct exw_errbuf *eb)
{
    exw_err rc;

    memset(out, 0, sizeof(*out));
    if (url == NULL || url[0] == '\0')
        rc = exw_errbuf_set(eb, EXW_ECONFIG, "is empty");
    else if (has_space_or_control(url))
        rc = exw_errbuf_set(eb, EXW_ECONFIG, "must not contain spaces or control characters");
    else if (starts_ci(url, "redis://"))
        rc = parse_tcp(url + strlen("redis://"), out, eb);
    else if (starts_ci(url, "unix://"))
        rc = parse_unix(url + strlen("unix://"), out, eb);
    else if (starts_ci(url, "rediss://"))
        rc = exw_errbuf_set(eb, EXW_ECONFIG, "rediss:// (TLS) is not supported");
    else
        rc = exw_errbuf_set(eb, EXW_ECONFIG, "must start with redis:// or unix://");
    if (rc != EXW_OK)
        exw_redis_addr_cleanup(out);
    return rc;
}

void exw_redis_addr_cleanup(struct exw_redis_addr *a)
{
    if (a == NULL)
        return;
    free(a->host);
    free(a->path);
    free(a->user);
    wipe_free(a->password);
    memset(a, 0, sizeof(*a));
}

/* ---- the table's settings ---- */

/* Where row @s keeps its value in @c. */
static void *field(struct exw_config *c, const struct setting *s) { return (char *)c + s->field; }

static const void *field_const(const struct exw_config *c, const struct setting *s)
{
    return (const char *)c + s->field;
}

/* "text or json", "debug, info, warn or error". */
static void list_choices(struct sbuf *b, const struct choice *ch)
{
    size_t i, n = 0;

    while (ch[n].name)
        n++;
    for (i = 0; i < n; i++) {
        if (i > 0)
            sb_printf(b, i + 1 == n ? " or " : ", ");
        sb_printf(b, "%s", ch[i].name);
    }
}

static void apply_enum(struct exw_config *c, const struct setting *s, const char *text,
                       const char *label, struct sbuf *errs)
{
    char shown[SHOW_MAX];
    struct sbuf names = {0};
    const struct choice *ch;

    for (ch = s->choices; ch->name; ch++) {
        if (same_ci(text, ch->name)) {
            memcpy(field(c, s), &ch->value, sizeof(ch->value));
            return;
        }
    }
    list_choices(&names, s->choices);
    report(errs, label, "must be %s, got %s", names.s, show(text, shown, sizeof(shown)));
    free(names.s);
}

static void apply_setting(struct exw_config *c, const struct setting *s, const char *text,
                          const char *label, struct sbuf *errs)
{
    struct exw_errbuf eb;
    char why[512];
    size_t len = strlen(text);
    long v;

    switch (s->type) {
    case SET_INT:
        if (parse_bounded(text, s->min, s->max, label, errs, &v) == 0)
            *(long *)field(c, s) = v;
        return;
    case SET_ENUM:
        apply_enum(c, s, text, label, errs);
        return;
    case SET_STRING:
    case SET_URL:
        break;
    }
    if ((long)len < s->min || (long)len > s->max) {
        report(errs, label, "must be %ld to %ld characters long, got %zu", s->min, s->max, len);
        return;
    }
    if (s->type == SET_URL) {
        eb.msg[0] = '\0';
        if (exw_redis_addr_parse(text, &c->redis, &eb) != EXW_OK) {
            report(errs, label, "%s", eb.msg);
            return;
        }
    } else if (s->check != NULL && s->check(text, why, sizeof(why)) != 0) {
        report(errs, label, "%s", why);
        return;
    }
    *(char **)field(c, s) = exw_xstrdup(text);
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
static void scan_flags(int argc, char **argv, struct flag_values *fv, int *help, struct sbuf *errs)
{
    char shown[SHOW_MAX];
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
            sb_printf(errs, "argument %d: unexpected; settings are given as --flag VALUE\n", i);
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
            if (nlen > 64 || has_control(arg, nlen))
                sb_printf(errs, "%s: unknown flag (see --help)\n",
                          show_n(arg, nlen, shown, sizeof(shown)));
            else
                sb_printf(errs, "%.*s: unknown flag (see --help)\n", (int)nlen, arg);
            continue;
        }
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            sb_printf(errs, "%.*s: needs a value\n", (int)nlen, arg);
            continue;
        }
        if (s != NULL)
            fv->value[s - settings] = value;
        else
            fv->services[fv->nservices++] = value;
    }
}

/* ---- lookup services ---- */

enum svc_key { SVC_URL, SVC_AUTH, SVC_AUTH_FILE, SVC_TIMEOUT, SVC_RETRIES };

/* Matched from the right and in this order, so that a suffix wins over any
 * shorter one it ends with and the name is whatever is left. */
static const struct {
    const char *suffix;
    enum svc_key key;
} svc_suffixes[] = {
    {"_TIMEOUT_MS", SVC_TIMEOUT},
    {"_AUTH_FILE", SVC_AUTH_FILE},
    {"_RETRIES", SVC_RETRIES},
    {"_AUTH", SVC_AUTH},
    {"_URL", SVC_URL},
};

/* What the scan found for one service, before it is checked. The strings are
 * borrowed from envp and argv. */
struct svc_found {
    const char *url;
    const char *url_from_flag; /* set when a --service gave the URL */
    const char *auth;
    const char *auth_file;
};

struct svc_scan {
    struct exw_config *c;
    struct svc_found found[EXW_MAX_SERVICES];
    int too_many; /* reported once */
    struct sbuf *errs;
};

static int is_service_name(const char *s, size_t n, int lower_ok)
{
    size_t i;

    if (n == 0 || n > EXW_SERVICE_NAME_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        if (!(is_digit(s[i]) || (s[i] >= 'A' && s[i] <= 'Z') ||
              (lower_ok && s[i] >= 'a' && s[i] <= 'z')))
            return 0;
    }
    return 1;
}

/* The index of the service named by @n bytes at @name (stored upper-cased),
 * added if new; EXW_MAX_SERVICES when there is no room left. */
static size_t find_or_add_service(struct svc_scan *sc, const char *name, size_t n,
                                  const char *label)
{
    struct exw_config *c = sc->c;
    struct exw_service *svc;
    size_t i;

    for (i = 0; i < c->nservices; i++) {
        svc = &c->services[i];
        if (strlen(svc->name) == n && same_ci_n(svc->name, name, n))
            return i;
    }
    if (c->nservices == EXW_MAX_SERVICES) {
        if (!sc->too_many)
            report(sc->errs, label, "too many lookup services, at most %d", EXW_MAX_SERVICES);
        sc->too_many = 1;
        return EXW_MAX_SERVICES;
    }
    svc = &c->services[c->nservices];
    for (i = 0; i < n; i++)
        svc->name[i] = to_upper(name[i]);
    svc->name[n] = '\0';
    svc->timeout_ms = SVC_TIMEOUT_DEFAULT;
    svc->retries = SVC_RETRIES_DEFAULT;
    return c->nservices++;
}

/* One EXPORT_SERVICE_* entry of the environment. */
static void scan_service_var(struct svc_scan *sc, const char *entry)
{
    char label[160];
    char shown[SHOW_MAX];
    const char *eq = strchr(entry, '=');
    const char *name, *value;
    struct svc_found *f;
    struct exw_service *svc;
    size_t klen, slen, nlen, i, k;
    long v;

    if (eq == NULL || eq[1] == '\0')
        return; /* Empty counts as unset. */
    value = eq + 1;
    klen = (size_t)(eq - entry);
    if (klen >= sizeof(label) || has_control(entry, klen)) {
        sb_printf(sc->errs, "%s: not a lookup service setting\n",
                  show_n(entry, klen, shown, sizeof(shown)));
        return;
    }
    memcpy(label, entry, klen);
    label[klen] = '\0';
    name = entry + strlen(SVC_PREFIX);
    for (i = 0; i < sizeof(svc_suffixes) / sizeof(svc_suffixes[0]); i++) {
        slen = strlen(svc_suffixes[i].suffix);
        if (klen >= strlen(SVC_PREFIX) + slen &&
            memcmp(entry + klen - slen, svc_suffixes[i].suffix, slen) == 0)
            break;
    }
    if (i == sizeof(svc_suffixes) / sizeof(svc_suffixes[0])) {
        report(sc->errs, label,
               "not a lookup service setting; expected EXPORT_SERVICE_<NAME>_URL, _AUTH,"
               " _AUTH_FILE, _TIMEOUT_MS or _RETRIES");
        return;
    }
    nlen = klen - strlen(SVC_PREFIX) - slen;
    if (!is_service_name(name, nlen, 0)) {
        report(sc->errs, label, "service names are [A-Z0-9]+%s",
               nlen > EXW_SERVICE_NAME_MAX ? ", at most 64 characters" : "");
        return;
    }
    k = find_or_add_service(sc, name, nlen, label);
    if (k == EXW_MAX_SERVICES)
        return;
    f = &sc->found[k];
    svc = &sc->c->services[k];
    switch (svc_suffixes[i].key) {
    case SVC_URL:
        if (f->url == NULL)
            f->url = value;
        break;
    case SVC_AUTH:
        if (f->auth == NULL)
            f->auth = value;
        break;
    case SVC_AUTH_FILE:
        if (f->auth_file == NULL)
            f->auth_file = value;
        break;
    case SVC_TIMEOUT:
        if (parse_bounded(value, SVC_TIMEOUT_MIN, SVC_TIMEOUT_MAX, label, sc->errs, &v) == 0)
            svc->timeout_ms = v;
        break;
    case SVC_RETRIES:
        if (parse_bounded(value, SVC_RETRIES_MIN, SVC_RETRIES_MAX, label, sc->errs, &v) == 0)
            svc->retries = v;
        break;
    }
}

/* One --service NAME=URL. Names may be given in any case here. */
static void scan_service_flag(struct svc_scan *sc, const char *arg)
{
    char shown[SHOW_MAX];
    const char *eq = strchr(arg, '=');
    size_t k;

    if (eq == NULL || eq[1] == '\0') {
        /* Not echoed: the URL may hold credentials. */
        report(sc->errs, "--service", "expected NAME=URL");
        return;
    }
    if (!is_service_name(arg, (size_t)(eq - arg), 1)) {
        report(sc->errs, "--service", "service names are [A-Za-z0-9]+, at most 64, got %s",
               show_n(arg, (size_t)(eq - arg), shown, sizeof(shown)));
        return;
    }
    k = find_or_add_service(sc, arg, (size_t)(eq - arg), "--service");
    if (k == EXW_MAX_SERVICES)
        return;
    sc->found[k].url = eq + 1;
    sc->found[k].url_from_flag = arg;
}

/* Why @url is not a usable lookup URL template, or NULL if it is one. */
static const char *service_url_problem(const char *url)
{
    const char *authority, *key;
    size_t alen;

    if (strlen(url) > SVC_URL_MAX)
        return "is longer than 8192 bytes";
    if (has_space_or_control(url))
        return "must not contain spaces or control characters (percent-encode them)";
    if (starts_ci(url, "http://"))
        authority = url + strlen("http://");
    else if (starts_ci(url, "https://"))
        authority = url + strlen("https://");
    else
        return "must start with http:// or https://";
    alen = strcspn(authority, "/?#");
    key = strstr(url, "{key}");
    /* The host follows the last '@' of the authority (user info before it). */
    if (alen == 0 || authority[alen - 1] == '@' || authority[0] == '@' ||
        authority[alen - 1] == ':')
        return "has no host";
    if (key == NULL)
        return "must contain {key} where the key goes";
    if (key < authority + alen)
        return "must have {key} in its path or query, not in the host";
    return NULL;
}

/* Reads an Authorization value from @path: one trailing newline (\n or \r\n)
 * is dropped, and what is left must be one non-empty line. Messages name the
 * file, never its contents. */
static int read_auth_file(const char *path, char **out, char *why, size_t why_size)
{
    char shown[SHOW_PATH_MAX];
    char etext[128];
    char *buf = NULL;
    size_t len = 0;
    ssize_t got;
    int fd, rc = -1;

    *out = NULL;
    show(path, shown, sizeof(shown));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, why_size, "cannot read %s: %s", shown,
                 errno_text(errno, etext, sizeof(etext)));
        return -1;
    }
    buf = exw_xmalloc(SVC_AUTH_MAX + 2);
    for (;;) {
        got = read(fd, buf + len, SVC_AUTH_MAX + 1 - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(why, why_size, "cannot read %s: %s", shown,
                     errno_text(errno, etext, sizeof(etext)));
            goto out;
        }
        if (got == 0)
            break;
        len += (size_t)got;
        if (len > SVC_AUTH_MAX) {
            snprintf(why, why_size, "%s is larger than %d bytes", shown, SVC_AUTH_MAX);
            goto out;
        }
    }
    if (len > 0 && buf[len - 1] == '\n') {
        len--;
        if (len > 0 && buf[len - 1] == '\r')
            len--;
    }
    if (len == 0) {
        snprintf(why, why_size, "%s is empty", shown);
        goto out;
    }
    if (has_control(buf, len)) {
        snprintf(why, why_size, "%s must hold one line without control characters", shown);
        goto out;
    }
    *out = exw_xstrndup(buf, len);
    rc = 0;
out:
    close(fd);
    memset(buf, 0, SVC_AUTH_MAX + 2); /* A secret, or part of one. */
    free(buf);
    return rc;
}

/* Checks what the scan found for service @k and fills it in. */
static void finish_service(struct svc_scan *sc, size_t k)
{
    struct exw_service *svc = &sc->c->services[k];
    const struct svc_found *f = &sc->found[k];
    char label[EXW_SERVICE_NAME_MAX + 48];
    char why[512];
    const char *problem;

    if (f->url == NULL) {
        snprintf(label, sizeof(label), SVC_PREFIX "%s", svc->name);
        report(sc->errs, label, "has settings but no " SVC_PREFIX "%s_URL (or --service %s=URL)",
               svc->name, svc->name);
    } else {
        if (f->url_from_flag != NULL)
            snprintf(label, sizeof(label), "--service %s", svc->name);
        else
            snprintf(label, sizeof(label), SVC_PREFIX "%s_URL", svc->name);
        problem = service_url_problem(f->url);
        if (problem != NULL)
            report(sc->errs, label, "%s", problem);
        else
            svc->url = exw_xstrdup(f->url);
    }

    if (f->auth != NULL && f->auth_file != NULL) {
        snprintf(label, sizeof(label), SVC_PREFIX "%s_AUTH", svc->name);
        report(sc->errs, label, "set either this or " SVC_PREFIX "%s_AUTH_FILE, not both",
               svc->name);
    } else if (f->auth != NULL) {
        snprintf(label, sizeof(label), SVC_PREFIX "%s_AUTH", svc->name);
        if (strlen(f->auth) > SVC_AUTH_MAX)
            report(sc->errs, label, "is longer than %d bytes", SVC_AUTH_MAX);
        else if (has_control(f->auth, strlen(f->auth)))
            report(sc->errs, label, "must not contain control characters");
        else
            svc->auth = exw_xstrdup(f->auth);
    } else if (f->auth_file != NULL) {
        snprintf(label, sizeof(label), SVC_PREFIX "%s_AUTH_FILE", svc->name);
        if (read_auth_file(f->auth_file, &svc->auth, why, sizeof(why)) != 0)
            report(sc->errs, label, "%s", why);
    }
}

static int compare_services(const void *a, const void *b)
{
    return strcmp(((const struct exw_service *)a)->name, ((const struct exw_service *)b)->name);
}

static void load_services(struct exw_config *c, char **envp, const struct flag_values *fv,
                          struct sbuf *errs)
{
    struct svc_scan *sc = exw_xcalloc(1, sizeof(*sc));
    char **e;
    size_t i;

    sc->c = c;
    sc->errs = errs;
    for (e = envp; *e; e++) {
        if (strncmp(*e, SVC_PREFIX, strlen(SVC_PREFIX)) == 0)
            scan_service_var(sc, *e);
    }
    for (i = 0; i < fv->nservices; i++)
        scan_service_flag(sc, fv->services[i]);
    for (i = 0; i < c->nservices; i++)
        finish_service(sc, i);
    /* Sorted by name, so the description does not follow envp's order. */
    qsort(c->services, c->nservices, sizeof(c->services[0]), compare_services);
    free(sc);
}

/* ---- the public functions ---- */

exw_err exw_config_load(struct exw_config *c, char **envp, int argc, char **argv, int *help,
                        char **errors)
{
    char *no_env[] = {NULL};
    struct flag_values fv;
    struct sbuf errs = {0};
    const struct setting *s;
    const char *text, *label;
    char *computed;
    size_t i;

    memset(c, 0, sizeof(*c));
    memset(&fv, 0, sizeof(fv));
    *help = 0;
    *errors = NULL;
    if (envp == NULL)
        envp = no_env;
    fv.services = exw_xcalloc(argc > 0 ? (size_t)argc : 1, sizeof(*fv.services));

    scan_flags(argc, argv, &fv, help, &errs);
    if (*help) {
        /* Help wins over bad settings: the user is asking how to fix them. */
        errs.len = 0;
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
    load_services(c, envp, &fv, &errs);
out:
    free(fv.services);
    if (errs.len == 0) {
        free(errs.s);
        return EXW_OK;
    }
    exw_config_cleanup(c);
    errs.s[--errs.len] = '\0'; /* Lines are separated, not terminated. */
    *errors = errs.s;
    return EXW_ECONFIG;
}

void exw_config_cleanup(struct exw_config *c)
{
    size_t i;

    if (c == NULL)
        return;
    wipe_free(c->redis_url);
    exw_redis_addr_cleanup(&c->redis);
    free(c->prefix);
    free(c->worker_id);
    free(c->tmpdir);
    free(c->tls_ca_file);
    for (i = 0; i < c->nservices; i++) {
        wipe_free(c->services[i].url);
        wipe_free(c->services[i].auth);
    }
    memset(c, 0, sizeof(*c));
}

const struct exw_service *exw_config_service(const struct exw_config *c, const char *name)
{
    size_t i;

    if (name == NULL)
        return NULL;
    for (i = 0; i < c->nservices; i++) {
        if (same_ci(c->services[i].name, name))
            return &c->services[i];
    }
    return NULL;
}

/* Appends the user name percent-encoded, as it would be written in a URL. */
static void put_user(struct sbuf *b, const char *user)
{
    const char *p;

    for (p = user; *p; p++) {
        if (is_alnum(*p) || strchr("-._~", *p))
            sb_add(b, p, 1);
        else
            sb_printf(b, "%%%02X", (unsigned char)*p);
    }
}

/* The Redis address in URL form, the password as ***. */
static void describe_redis(struct sbuf *b, const struct exw_redis_addr *a)
{
    sb_printf(b, "%s", a->path ? "unix://" : "redis://");
    if (a->user || a->password) {
        if (a->user)
            put_user(b, a->user);
        sb_printf(b, "%s@", a->password ? ":***" : "");
    }
    if (a->path) {
        sb_printf(b, "%s", a->path);
        if (a->db != 0)
            sb_printf(b, "?db=%d", a->db);
    } else if (a->host) {
        sb_printf(b, strchr(a->host, ':') ? "[%s]:%d/%d" : "%s:%d/%d", a->host, a->port, a->db);
    }
}

/* A service URL with any user info in its authority replaced by ***. */
static void describe_service_url(struct sbuf *b, const char *url)
{
    const char *authority = strstr(url, "://");
    const char *at;
    size_t alen;

    if (authority == NULL) {
        sb_printf(b, "%s", url);
        return;
    }
    authority += 3;
    alen = strcspn(authority, "/?#");
    at = memchr(authority, '@', alen);
    if (at == NULL) {
        sb_printf(b, "%s", url);
        return;
    }
    sb_add(b, url, (size_t)(authority - url));
    sb_printf(b, "***%s", at);
}

/* A value as is, or quoted if it holds a space, a quote or a control character. */
static void put_value(struct sbuf *b, const char *v)
{
    char shown[SHOW_PATH_MAX];

    if (*v != '\0' && !has_space_or_control(v) && strchr(v, '"') == NULL)
        sb_printf(b, "%s", v);
    else
        sb_printf(b, "%s", show(v, shown, sizeof(shown)));
}

char *exw_config_describe(const struct exw_config *c)
{
    struct sbuf b = {0};
    const struct setting *s;
    const struct choice *ch;
    const struct exw_service *svc;
    const char *str;
    size_t i;
    int v;

    for (i = 0; i < NSETTINGS; i++) {
        s = &settings[i];
        if (s->type == SET_STRING && *(char *const *)field_const(c, s) == NULL)
            continue; /* an optional setting left unset */
        sb_printf(&b, "%s%s=", i > 0 ? " " : "", s->flag + 2);
        switch (s->type) {
        case SET_INT:
            sb_printf(&b, "%ld", *(const long *)field_const(c, s));
            break;
        case SET_STRING:
            str = *(char *const *)field_const(c, s);
            put_value(&b, str ? str : "");
            break;
        case SET_ENUM:
            memcpy(&v, field_const(c, s), sizeof(v));
            for (ch = s->choices; ch->name && ch->value != v; ch++)
                continue;
            sb_printf(&b, "%s", ch->name ? ch->name : "?");
            break;
        case SET_URL:
            describe_redis(&b, &c->redis);
            break;
        }
    }
    for (i = 0; i < c->nservices; i++) {
        svc = &c->services[i];
        sb_printf(&b, " service.%s.url=", svc->name);
        describe_service_url(&b, svc->url ? svc->url : "");
        if (svc->auth)
            sb_printf(&b, " service.%s.auth=***", svc->name);
        sb_printf(&b, " service.%s.timeout-ms=%ld service.%s.retries=%ld", svc->name,
                  svc->timeout_ms, svc->name, svc->retries);
    }
    return b.s;
}

/* Appends @text with each line indented by six spaces. */
static void put_help(struct sbuf *b, const char *text)
{
    const char *nl;

    while (*text) {
        nl = strchr(text, '\n');
        if (nl == NULL)
            nl = text + strlen(text);
        sb_add(b, "      ", 6);
        sb_add(b, text, (size_t)(nl - text));
        sb_add(b, "\n", 1);
        text = *nl ? nl + 1 : nl;
    }
}

static void put_usage_setting(struct sbuf *b, const struct setting *s)
{
    sb_printf(b, "  %s, %s %s\n", s->env, s->flag, s->arg);
    put_help(b, s->help);
    switch (s->type) {
    case SET_INT:
        sb_printf(b, "      Default %ld, from %ld to %ld.\n", s->def, s->min, s->max);
        break;
    case SET_ENUM:
        sb_printf(b, "      One of ");
        list_choices(b, s->choices);
        sb_printf(b, "; default %s.\n", s->sdef);
        break;
    case SET_STRING:
        sb_printf(b, "      Default %s; %ld to %ld characters.\n",
                  s->sdef ? s->sdef : s->shown_default, s->min, s->max);
        break;
    case SET_URL:
        sb_printf(b, "      Default %s.\n", s->sdef);
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

static void put_usage_services(struct sbuf *b)
{
    sb_printf(b, "  EXPORT_SERVICE_<NAME>_URL, --service NAME=URL\n");
    put_help(b, "URL template of lookup service NAME, which jobs may name in any case\n"
                "(A-Z and 0-9 only, no underscores): http:// or https://, with {key}\n"
                "in the path or query where the percent-encoded key goes. Needed by\n"
                "every NAME; --service may be repeated and overrides the variable.\n"
                "Example: EXPORT_SERVICE_TETHER_URL=https://tether.internal/c/{key}");
    sb_printf(b, "  EXPORT_SERVICE_<NAME>_AUTH\n");
    put_help(b, "Value of the Authorization header sent to NAME, e.g. \"Bearer t0k3n\".\n"
                "Never logged.");
    sb_printf(b, "  EXPORT_SERVICE_<NAME>_AUTH_FILE\n");
    put_help(b, "A file holding that value instead, e.g. a mounted secret; one trailing\n"
                "newline is removed. Set _AUTH or _AUTH_FILE, not both.");
    sb_printf(b, "  EXPORT_SERVICE_<NAME>_TIMEOUT_MS\n");
    put_help(b, "Time limit of one request, in milliseconds.");
    sb_printf(b, "      Default %d, from %d to %d.\n", SVC_TIMEOUT_DEFAULT, SVC_TIMEOUT_MIN,
              SVC_TIMEOUT_MAX);
    sb_printf(b, "  EXPORT_SERVICE_<NAME>_RETRIES\n");
    put_help(b, "Retries of one key after a timeout, a connection error, a 5xx or a 429,\n"
                "with exponential backoff; other statuses are final.");
    sb_printf(b, "      Default %d, from %d to %d.\n", SVC_RETRIES_DEFAULT, SVC_RETRIES_MIN,
              SVC_RETRIES_MAX);
}

/* Built once, on first use, from settings[]; read-only afterwards. */
static pthread_once_t usage_once = PTHREAD_ONCE_INIT;
static char *usage_text;

static void build_usage(void)
{
    struct sbuf b = {0};
    size_t i;

    sb_printf(&b, "%s", usage_intro);
    for (i = 0; i < NSETTINGS; i++) {
        if (settings[i].heading != NULL)
            sb_printf(&b, "\n%s\n", settings[i].heading);
        put_usage_setting(&b, &settings[i]);
    }
    /* The table ends with the "Lookup services" rows, which these continue. */
    put_usage_services(&b);
    sb_printf(&b, "\nOther\n  -h, --help\n");
    put_help(&b, "Print this text and exit.");
    usage_text = b.s;
}

const char *exw_config_usage(void)
{
    pthread_once(&usage_once, build_usage);
    return usage_text;
}
