/* services.c: lookup services from EXPORT_SERVICE_<NAME>_<SETTING> variables
 * and --service flags (see services.h).
 *
 * Services are not rows of config.c's table: they are found by scanning the
 * environment for the prefix, so that a misspelt variable of a service is an
 * error rather than silently ignored. The scan first collects what it finds
 * per service, then checks each service whole. */
#include "exw/services.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "exw/config.h"
#include "exw/setting.h"

#define SVC_PREFIX "EXPORT_SERVICE_"
#define SVC_URL_MAX 8192
#define SVC_AUTH_MAX 65536

enum svc_key {
    SVC_URL,
    SVC_AUTH,
    SVC_AUTH_FILE,
    SVC_TIMEOUT,
    SVC_RETRIES,
    SVC_MAX_INFLIGHT,
    SVC_RATE,
    SVC_CACHE_TTL,
    SVC_CACHE_MAX_BYTES,
    SVC_BATCH_URL,
    SVC_BATCH_MAX
};

/* Matched from the right and in this order, so that a suffix wins over any
 * shorter one it ends with and the name is whatever is left. */
static const struct {
    const char *suffix;
    enum svc_key key;
} svc_suffixes[] = {
    {"_CACHE_MAX_BYTES", SVC_CACHE_MAX_BYTES},
    {"_MAX_INFLIGHT", SVC_MAX_INFLIGHT},
    {"_TIMEOUT_MS", SVC_TIMEOUT},
    {"_AUTH_FILE", SVC_AUTH_FILE},
    {"_BATCH_URL", SVC_BATCH_URL},
    {"_BATCH_MAX", SVC_BATCH_MAX},
    {"_CACHE_TTL", SVC_CACHE_TTL},
    {"_RETRIES", SVC_RETRIES},
    {"_RATE", SVC_RATE},
    {"_AUTH", SVC_AUTH},
    {"_URL", SVC_URL},
};

#define NSUFFIXES (sizeof(svc_suffixes) / sizeof(svc_suffixes[0]))

/* What the scan found for one service, before it is checked. The strings are
 * borrowed from envp and argv. */
struct svc_found {
    const char *url;
    const char *url_from_flag; /* set when a --service gave the URL */
    const char *auth;
    const char *auth_file;
    const char *batch_url;
};

struct svc_scan {
    struct exw_service *services; /* room for EXW_MAX_SERVICES */
    size_t n;
    struct svc_found found[EXW_MAX_SERVICES];
    int too_many; /* reported once */
    struct exw_buf *errs;
};

/* Whether @n bytes at @s make a service name: upper case letters and digits,
 * or letters of either case when @lower_ok. */
static int is_service_name(const char *s, size_t n, int lower_ok)
{
    const char *chars = lower_ok ? EXW_SETTING_ALNUM : EXW_SETTING_UPPER EXW_SETTING_DIGITS;

    return n > 0 && n <= EXW_SERVICE_NAME_MAX && strspn(s, chars) >= n;
}

/* The index of the service named by @n bytes at @name (stored upper-cased),
 * added if new; EXW_MAX_SERVICES when there is no room left. */
static size_t find_or_add_service(struct svc_scan *sc, const char *name, size_t n,
                                  const char *label)
{
    struct exw_service *svc;
    size_t i;

    for (i = 0; i < sc->n; i++) {
        svc = &sc->services[i];
        if (strlen(svc->name) == n && strncasecmp(svc->name, name, n) == 0)
            return i;
    }
    if (sc->n == EXW_MAX_SERVICES) {
        if (!sc->too_many)
            exw_setting_report(sc->errs, label, "too many lookup services, at most %d",
                               EXW_MAX_SERVICES);
        sc->too_many = 1;
        return EXW_MAX_SERVICES;
    }
    svc = &sc->services[sc->n];
    memset(svc, 0, sizeof(*svc));
    for (i = 0; i < n; i++) /* [A-Za-z0-9] only, as is_service_name() checked */
        svc->name[i] = name[i] >= 'a' ? (char)(name[i] - 'a' + 'A') : name[i];
    svc->name[n] = '\0';
    svc->timeout_ms = EXW_SERVICE_TIMEOUT_MS_DEFAULT;
    svc->retries = EXW_SERVICE_RETRIES_DEFAULT;
    svc->cache_max_bytes = EXW_SERVICE_CACHE_MAX_BYTES_DEFAULT;
    svc->batch_max = EXW_SERVICE_BATCH_MAX_DEFAULT;
    return sc->n++;
}

/* Which of svc_suffixes[] ends the variable name of @klen bytes at @entry,
 * leaving room for the prefix; NSUFFIXES if none. */
static size_t find_suffix(const char *entry, size_t klen)
{
    size_t i, slen;

    for (i = 0; i < NSUFFIXES; i++) {
        slen = strlen(svc_suffixes[i].suffix);
        if (klen >= strlen(SVC_PREFIX) + slen &&
            memcmp(entry + klen - slen, svc_suffixes[i].suffix, slen) == 0)
            break;
    }
    return i;
}

/* One EXPORT_SERVICE_* entry of the environment. */
static void scan_service_var(struct svc_scan *sc, const char *entry)
{
    char label[160];
    char shown[EXW_SETTING_SHOW_MAX];
    const char *eq = strchr(entry, '=');
    const char *name = entry + strlen(SVC_PREFIX);
    const char *value, **slot = NULL;
    struct exw_service *svc;
    size_t klen, nlen, i, k;

    if (eq == NULL || eq[1] == '\0')
        return; /* Empty counts as unset. */
    value = eq + 1;
    klen = (size_t)(eq - entry);
    if (klen >= sizeof(label) || exw_setting_has_control(entry, klen)) {
        exw_setting_report(sc->errs, exw_setting_show(entry, klen, shown, sizeof(shown)),
                           "not a lookup service setting");
        return;
    }
    memcpy(label, entry, klen);
    label[klen] = '\0';
    i = find_suffix(entry, klen);
    if (i == NSUFFIXES) {
        exw_setting_report(sc->errs, label,
                           "not a lookup service setting; expected EXPORT_SERVICE_<NAME>_URL,"
                           " _AUTH, _AUTH_FILE, _TIMEOUT_MS, _RETRIES, _MAX_INFLIGHT, _RATE,"
                           " _CACHE_TTL, _CACHE_MAX_BYTES, _BATCH_URL or _BATCH_MAX");
        return;
    }
    nlen = klen - strlen(SVC_PREFIX) - strlen(svc_suffixes[i].suffix);
    if (!is_service_name(name, nlen, 0)) {
        exw_setting_report(sc->errs, label, "service names are [A-Z0-9]+%s",
                           nlen > EXW_SERVICE_NAME_MAX ? ", at most 64 characters" : "");
        return;
    }
    k = find_or_add_service(sc, name, nlen, label);
    if (k == EXW_MAX_SERVICES)
        return;
    svc = &sc->services[k];
    switch (svc_suffixes[i].key) {
    case SVC_URL:
        slot = &sc->found[k].url;
        break;
    case SVC_AUTH:
        slot = &sc->found[k].auth;
        break;
    case SVC_AUTH_FILE:
        slot = &sc->found[k].auth_file;
        break;
    case SVC_TIMEOUT:
        exw_setting_parse_long(value, EXW_SERVICE_TIMEOUT_MS_MIN, EXW_SERVICE_TIMEOUT_MS_MAX,
                               &svc->timeout_ms, label, sc->errs);
        break;
    case SVC_RETRIES:
        exw_setting_parse_long(value, EXW_SERVICE_RETRIES_MIN, EXW_SERVICE_RETRIES_MAX,
                               &svc->retries, label, sc->errs);
        break;
    case SVC_MAX_INFLIGHT:
        exw_setting_parse_long(value, EXW_SERVICE_MAX_INFLIGHT_MIN, EXW_SERVICE_MAX_INFLIGHT_MAX,
                               &svc->max_inflight, label, sc->errs);
        break;
    case SVC_RATE:
        exw_setting_parse_long(value, EXW_SERVICE_RATE_MIN, EXW_SERVICE_RATE_MAX, &svc->rate, label,
                               sc->errs);
        break;
    case SVC_CACHE_TTL:
        exw_setting_parse_long(value, 0, EXW_SERVICE_CACHE_TTL_MAX, &svc->cache_ttl_s, label,
                               sc->errs);
        break;
    case SVC_CACHE_MAX_BYTES:
        exw_setting_parse_long(value, EXW_SERVICE_CACHE_MAX_BYTES_MIN,
                               EXW_SERVICE_CACHE_MAX_BYTES_MAX, &svc->cache_max_bytes, label,
                               sc->errs);
        break;
    case SVC_BATCH_URL:
        slot = &sc->found[k].batch_url;
        break;
    case SVC_BATCH_MAX:
        exw_setting_parse_long(value, EXW_SERVICE_BATCH_MAX_MIN, EXW_SERVICE_BATCH_MAX_MAX,
                               &svc->batch_max, label, sc->errs);
        break;
    }
    if (slot != NULL && *slot == NULL)
        *slot = value;
}

/* One --service NAME=URL. Names may be given in any case here. */
static void scan_service_flag(struct svc_scan *sc, const char *arg)
{
    char shown[EXW_SETTING_SHOW_MAX];
    const char *eq = strchr(arg, '=');
    size_t k;

    if (eq == NULL || eq[1] == '\0') {
        /* Not echoed: the URL may hold credentials. */
        exw_setting_report(sc->errs, "--service", "expected NAME=URL");
        return;
    }
    if (!is_service_name(arg, (size_t)(eq - arg), 1)) {
        exw_setting_report(sc->errs, "--service",
                           "service names are [A-Za-z0-9]+, at most 64, got %s",
                           exw_setting_show(arg, (size_t)(eq - arg), shown, sizeof(shown)));
        return;
    }
    k = find_or_add_service(sc, arg, (size_t)(eq - arg), "--service");
    if (k == EXW_MAX_SERVICES)
        return;
    sc->found[k].url = eq + 1;
    sc->found[k].url_from_flag = arg;
}

/* The authority of an http(s) URL: what follows "://", and its length. */
static const char *authority_of(const char *url, size_t *len)
{
    const char *a = strstr(url, "://");

    a = a ? a + 3 : url;
    *len = strcspn(a, "/?#");
    return a;
}

/* Why @url is not a usable lookup URL template with @hole ("{key}" or
 * "{keys}") where the key or keys go, or NULL if it is one. */
static const char *service_url_problem(const char *url, const char *hole)
{
    const char *authority, *key;
    size_t alen;
    int batch = strcmp(hole, "{keys}") == 0;

    if (strlen(url) > SVC_URL_MAX)
        return "is longer than 8192 bytes";
    if (exw_setting_has_space_or_control(url))
        return "must not contain spaces or control characters (percent-encode them)";
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
        return "must start with http:// or https://";
    authority = authority_of(url, &alen);
    key = strstr(url, hole);
    /* The host follows the last '@' of the authority (user info before it). */
    if (alen == 0 || authority[alen - 1] == '@' || authority[0] == '@' ||
        authority[alen - 1] == ':')
        return "has no host";
    if (key == NULL)
        return batch ? "must contain {keys} where the keys go"
                     : "must contain {key} where the key goes";
    if (key < authority + alen)
        return batch ? "must have {keys} in its path or query, not in the host"
                     : "must have {key} in its path or query, not in the host";
    return NULL;
}

/* Reads an Authorization value from @path: one trailing newline (\n or \r\n)
 * is dropped, and what is left must be one non-empty line. Problems are
 * reported under @label; they name the file, never its contents. */
static char *read_auth_file(const char *path, const char *label, struct exw_buf *errs)
{
    char shown[EXW_SETTING_SHOW_PATH_MAX];
    char etext[128];
    char *buf, *value = NULL;
    size_t len = 0;
    ssize_t got;
    int fd;

    exw_setting_show(path, strlen(path), shown, sizeof(shown));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        exw_setting_report(errs, label, "cannot read %s: %s", shown,
                           exw_errno_text(errno, etext, sizeof(etext)));
        return NULL;
    }
    /* One fixed buffer, never grown: a realloc() would leave copies of the
     * secret behind. */
    buf = exw_xmalloc(SVC_AUTH_MAX + 2);
    for (;;) {
        got = read(fd, buf + len, SVC_AUTH_MAX + 1 - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            exw_setting_report(errs, label, "cannot read %s: %s", shown,
                               exw_errno_text(errno, etext, sizeof(etext)));
            goto out;
        }
        if (got == 0)
            break;
        len += (size_t)got;
        if (len > SVC_AUTH_MAX) {
            exw_setting_report(errs, label, "%s is larger than %d bytes", shown, SVC_AUTH_MAX);
            goto out;
        }
    }
    if (len > 0 && buf[len - 1] == '\n') {
        len--;
        if (len > 0 && buf[len - 1] == '\r')
            len--;
    }
    if (len == 0)
        exw_setting_report(errs, label, "%s is empty", shown);
    else if (exw_setting_has_control(buf, len))
        exw_setting_report(errs, label, "%s must hold one line without control characters", shown);
    else
        value = exw_xstrndup(buf, len);
out:
    close(fd);
    memset(buf, 0, SVC_AUTH_MAX + 2); /* A secret, or part of one. */
    free(buf);
    return value;
}

/* Checks what the scan found for service @k and fills it in. */
static void finish_service(struct svc_scan *sc, size_t k)
{
    struct exw_service *svc = &sc->services[k];
    const struct svc_found *f = &sc->found[k];
    char label[EXW_SERVICE_NAME_MAX + 48];
    const char *problem;

    if (f->url == NULL) {
        snprintf(label, sizeof(label), SVC_PREFIX "%s", svc->name);
        exw_setting_report(sc->errs, label,
                           "has settings but no " SVC_PREFIX "%s_URL (or --service %s=URL)",
                           svc->name, svc->name);
    } else {
        snprintf(label, sizeof(label), f->url_from_flag ? "--service %s" : SVC_PREFIX "%s_URL",
                 svc->name);
        problem = service_url_problem(f->url, "{key}");
        if (problem != NULL)
            exw_setting_report(sc->errs, label, "%s", problem);
        else
            svc->url = exw_xstrdup(f->url);
    }
    if (f->batch_url != NULL) {
        snprintf(label, sizeof(label), SVC_PREFIX "%s_BATCH_URL", svc->name);
        problem = service_url_problem(f->batch_url, "{keys}");
        if (problem != NULL)
            exw_setting_report(sc->errs, label, "%s", problem);
        else
            svc->batch_url = exw_xstrdup(f->batch_url);
    }

    snprintf(label, sizeof(label), SVC_PREFIX "%s_AUTH%s", svc->name,
             f->auth == NULL && f->auth_file != NULL ? "_FILE" : "");
    if (f->auth != NULL && f->auth_file != NULL)
        exw_setting_report(sc->errs, label,
                           "set either this or " SVC_PREFIX "%s_AUTH_FILE, not both", svc->name);
    else if (f->auth != NULL && strlen(f->auth) > SVC_AUTH_MAX)
        exw_setting_report(sc->errs, label, "is longer than %d bytes", SVC_AUTH_MAX);
    else if (f->auth != NULL && exw_setting_has_control(f->auth, strlen(f->auth)))
        exw_setting_report(sc->errs, label, "must not contain control characters");
    else if (f->auth != NULL)
        svc->auth = exw_xstrdup(f->auth);
    else if (f->auth_file != NULL)
        svc->auth = read_auth_file(f->auth_file, label, sc->errs);
}

static int compare_services(const void *a, const void *b)
{
    return strcmp(((const struct exw_service *)a)->name, ((const struct exw_service *)b)->name);
}

void exw_services_load(struct exw_service *out, size_t *n, char **envp, const char *const *flags,
                       size_t nflags, struct exw_buf *errs)
{
    struct svc_scan *sc = exw_xcalloc(1, sizeof(*sc));
    char **e;
    size_t i;

    sc->services = out;
    sc->errs = errs;
    for (e = envp; *e; e++) {
        if (strncmp(*e, SVC_PREFIX, strlen(SVC_PREFIX)) == 0)
            scan_service_var(sc, *e);
    }
    for (i = 0; i < nflags; i++)
        scan_service_flag(sc, flags[i]);
    for (i = 0; i < sc->n; i++)
        finish_service(sc, i);
    /* Sorted by name, so the description does not follow envp's order. */
    qsort(out, sc->n, sizeof(out[0]), compare_services);
    *n = sc->n;
    free(sc);
}

void exw_services_cleanup(struct exw_service *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        exw_setting_free_secret(s[i].url);
        exw_setting_free_secret(s[i].auth);
        exw_setting_free_secret(s[i].batch_url);
        s[i].url = NULL;
        s[i].auth = NULL;
        s[i].batch_url = NULL;
    }
}

/* Appends " service.NAME.WHAT=URL", with the user info of @url shown as ***. */
static void describe_url(struct exw_buf *b, const char *name, const char *what, const char *url)
{
    const char *authority, *at;
    size_t alen;

    authority = authority_of(url, &alen);
    at = memchr(authority, '@', alen);
    if (at == NULL || authority == url)
        exw_buf_printf_cut(b, " service.%s.%s=%s", name, what, url);
    else /* The user info, up to the host's '@', is a secret. */
        exw_buf_printf_cut(b, " service.%s.%s=%.*s***%s", name, what, (int)(authority - url), url,
                           at);
}

void exw_services_describe(const struct exw_service *s, size_t n, struct exw_buf *b)
{
    size_t i;

    for (i = 0; i < n; i++) {
        describe_url(b, s[i].name, "url", s[i].url ? s[i].url : "");
        if (s[i].auth)
            exw_buf_printf_cut(b, " service.%s.auth=***", s[i].name);
        exw_buf_printf_cut(b, " service.%s.timeout-ms=%ld service.%s.retries=%ld", s[i].name,
                           s[i].timeout_ms, s[i].name, s[i].retries);
        if (s[i].max_inflight > 0)
            exw_buf_printf_cut(b, " service.%s.max-inflight=%ld", s[i].name, s[i].max_inflight);
        if (s[i].rate > 0)
            exw_buf_printf_cut(b, " service.%s.rate=%ld", s[i].name, s[i].rate);
        if (s[i].cache_ttl_s > 0)
            exw_buf_printf_cut(b, " service.%s.cache-ttl=%ld service.%s.cache-max-bytes=%ld",
                               s[i].name, s[i].cache_ttl_s, s[i].name, s[i].cache_max_bytes);
        if (s[i].batch_url != NULL) {
            describe_url(b, s[i].name, "batch-url", s[i].batch_url);
            exw_buf_printf_cut(b, " service.%s.batch-max=%ld", s[i].name, s[i].batch_max);
        }
    }
}

/* One setting's --help entry, laid out as config.c lays out its own. */
static void usage_entry(struct exw_buf *b, const char *name, const char *help, const char *range)
{
    const char *nl;

    exw_buf_printf_cut(b, "  EXPORT_SERVICE_<NAME>_%s\n", name);
    for (;;) {
        nl = strchr(help, '\n');
        if (nl == NULL)
            nl = help + strlen(help);
        exw_buf_printf_cut(b, "      %.*s\n", (int)(nl - help), help);
        if (*nl == '\0')
            break;
        help = nl + 1;
    }
    if (range != NULL)
        exw_buf_printf_cut(b, "      %s\n", range);
}

void exw_services_usage(struct exw_buf *b)
{
    char range[96];

    snprintf(range, sizeof(range), "Default none, from %d to %d.", EXW_SERVICE_MAX_INFLIGHT_MIN,
             EXW_SERVICE_MAX_INFLIGHT_MAX);
    usage_entry(b, "MAX_INFLIGHT",
                "The most requests to NAME in flight at once across every worker that\n"
                "shares the prefix (permits leased in Redis); a dead worker's permits\n"
                "come back within _TIMEOUT_MS + 5 s.",
                range);
    snprintf(range, sizeof(range), "Default none, from %d to %d.", EXW_SERVICE_RATE_MIN,
             EXW_SERVICE_RATE_MAX);
    usage_entry(b, "RATE",
                "The most requests to NAME in any one second across every worker that\n"
                "shares the prefix (paced in Redis).",
                range);
    snprintf(range, sizeof(range), "Default 0 (off), from 0 to %d.", EXW_SERVICE_CACHE_TTL_MAX);
    usage_entry(b, "CACHE_TTL",
                "Seconds a hit (a 200 with a JSON body) of NAME is kept in Redis under\n"
                "P:cache:<name>:<key> for every job of every worker.",
                range);
    snprintf(range, sizeof(range), "Default %d, from %d to %d.",
             EXW_SERVICE_CACHE_MAX_BYTES_DEFAULT, EXW_SERVICE_CACHE_MAX_BYTES_MIN,
             EXW_SERVICE_CACHE_MAX_BYTES_MAX);
    usage_entry(b, "CACHE_MAX_BYTES", "Larger bodies are not cached.", range);
    usage_entry(b, "BATCH_URL",
                "A second template, with {keys} where up to _BATCH_MAX percent-encoded\n"
                "keys go, joined by commas; the answer is a JSON object with one member\n"
                "per key. When set, every lookup of NAME goes through it.",
                NULL);
    snprintf(range, sizeof(range), "Default %d, from %d to %d.", EXW_SERVICE_BATCH_MAX_DEFAULT,
             EXW_SERVICE_BATCH_MAX_MIN, EXW_SERVICE_BATCH_MAX_MAX);
    usage_entry(b, "BATCH_MAX", "Keys per batch request.", range);
}

const struct exw_service *exw_config_service(const struct exw_config *c, const char *name)
{
    size_t i;

    if (name == NULL)
        return NULL;
    for (i = 0; i < c->nservices; i++) {
        if (strcasecmp(c->services[i].name, name) == 0)
            return &c->services[i];
    }
    return NULL;
}

const struct exw_service *exw_service_for_job(const struct exw_config *c, const char *name,
                                              struct exw_errbuf *eb)
{
    const struct exw_service *svc = exw_config_service(c, name);

    if (svc == NULL)
        exw_errbuf_set(eb, EXW_EJSON,
                       "lookup.service: no lookup service \"%.64s\" is configured on this "
                       "worker (EXPORT_SERVICE_<NAME>_URL)",
                       name);
    return svc;
}
