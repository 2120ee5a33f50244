/* redis_addr.c: EXPORT_REDIS_URL, parsed (see redis_addr.h).
 *
 * Messages say what is wrong, never what was given: the URL may hold a
 * password anywhere a typo can put it. */
#include "exw/redis_addr.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "exw/setting.h"

#define HEX_DIGITS EXW_SETTING_DIGITS "abcdefABCDEF"
/* RFC 3986's unreserved characters, which a user name shows as they are. */
#define UNRESERVED EXW_SETTING_ALNUM "-._~"

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
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
            exw_setting_free_secret(d);
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
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v >= min && v <= max ? v : -1;
}

/* HOST[:PORT][/DB] after redis:// and any user info; HOST may be left out
 * when @host_optional. */
static exw_err parse_tcp_target(const char *p, struct exw_redis_addr *a, int host_optional,
                                struct exw_errbuf *eb)
{
    const char *host, *end;
    size_t hlen;
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
        if (strspn(host, HEX_DIGITS ":.") < hlen)
            return exw_errbuf_set(eb, EXW_ECONFIG, "the IPv6 host is not an IPv6 address");
        p = end + 1;
    } else {
        host = p;
        hlen = strcspn(p, ":/");
        if (strspn(host, EXW_SETTING_ALNUM ".-_") < hlen)
            return exw_errbuf_set(eb, EXW_ECONFIG,
                                  "the host may only hold letters, digits, '.', '-' and '_'"
                                  " (an IPv6 address goes in [])");
        p += hlen;
    }
    if (hlen == 0 && !host_optional)
        return exw_errbuf_set(eb, EXW_ECONFIG, "has no host");
    if (hlen > 0)
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
static exw_err parse_tcp(const char *rest, struct exw_redis_addr *a, int host_optional,
                         struct exw_errbuf *eb)
{
    const char *at = strrchr(rest, '@');
    exw_err rc;

    if (at != NULL) {
        rc = parse_userinfo(rest, (size_t)(at - rest), a, eb);
        if (rc != EXW_OK)
            return rc;
        rest = at + 1;
    }
    return parse_tcp_target(rest, a, host_optional, eb);
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

/* Whether @url starts with @scheme in any case. */
static int has_scheme(const char *url, const char *scheme)
{
    return strncasecmp(url, scheme, strlen(scheme)) == 0;
}

exw_err exw_redis_addr_parse(const char *url, struct exw_redis_addr *out, struct exw_errbuf *eb)
{
    return exw_redis_addr_parse_for(url, out, 0, eb);
}

exw_err exw_redis_addr_parse_for(const char *url, struct exw_redis_addr *out, int host_optional,
                                 struct exw_errbuf *eb)
{
    exw_err rc;

    memset(out, 0, sizeof(*out));
    if (url == NULL || url[0] == '\0')
        rc = exw_errbuf_set(eb, EXW_ECONFIG, "is empty");
    else if (exw_setting_has_space_or_control(url))
        rc = exw_errbuf_set(eb, EXW_ECONFIG, "must not contain spaces or control characters");
    else if (has_scheme(url, "redis://"))
        rc = parse_tcp(url + strlen("redis://"), out, host_optional, eb);
    else if (has_scheme(url, "unix://"))
        rc = parse_unix(url + strlen("unix://"), out, eb);
    else if (has_scheme(url, "rediss://"))
        rc = exw_errbuf_set(eb, EXW_ECONFIG, "rediss:// (TLS) is not supported");
    else
        rc = exw_errbuf_set(eb, EXW_ECONFIG, "must start with redis:// or unix://");
    if (rc != EXW_OK)
        exw_redis_addr_cleanup(out);
    return rc;
}

/* ---- Sentinels ---- */

static void free_sentinels(struct exw_redis_addr *a)
{
    size_t i;

    for (i = 0; i < a->nsentinels; i++)
        free(a->sentinels[i].host);
    free(a->sentinels);
    free(a->master);
    exw_setting_free_secret(a->sentinel_password);
    a->sentinels = NULL;
    a->nsentinels = 0;
    a->master = NULL;
    a->sentinel_password = NULL;
}

/* One entry of the list, @n bytes at @s, spaces trimmed: HOST[:PORT] or
 * [IPV6][:PORT]. The text is no secret, but it is not shown either: the
 * entry's number says which one to fix. */
static exw_err parse_sentinel(const char *s, size_t n, size_t nr, struct exw_redis_sentinel *out,
                              struct exw_errbuf *eb)
{
    const char *host = s, *rest;
    size_t hlen;
    long v;

    if (n == 0)
        return exw_errbuf_set(eb, EXW_ECONFIG, "entry %zu is empty", nr);
    if (*s == '[') {
        const char *end = memchr(s, ']', n);

        host = s + 1;
        if (end == NULL)
            return exw_errbuf_set(eb, EXW_ECONFIG, "entry %zu: the IPv6 host lacks its closing ]",
                                  nr);
        hlen = (size_t)(end - host);
        if (hlen == 0 || strspn(host, HEX_DIGITS ":.") < hlen)
            return exw_errbuf_set(eb, EXW_ECONFIG, "entry %zu: the IPv6 host is not an address",
                                  nr);
        rest = end + 1;
    } else {
        hlen = 0;
        while (hlen < n && s[hlen] != ':')
            hlen++;
        if (hlen == 0 || strspn(host, EXW_SETTING_ALNUM ".-_") < hlen)
            return exw_errbuf_set(eb, EXW_ECONFIG,
                                  "entry %zu: write HOST:PORT, the host of letters, digits, '.',"
                                  " '-' and '_' (an IPv6 address goes in [])",
                                  nr);
        rest = s + hlen;
    }
    out->port = 26379;
    if (rest < s + n) {
        if (*rest != ':')
            return exw_errbuf_set(eb, EXW_ECONFIG, "entry %zu: expected :PORT after the host", nr);
        v = parse_digits(rest + 1, (size_t)(s + n - rest - 1), 1, 65535);
        if (v < 0)
            return exw_errbuf_set(eb, EXW_ECONFIG,
                                  "entry %zu: the port must be a number from 1 to 65535", nr);
        out->port = (int)v;
    }
    out->host = exw_xstrndup(host, hlen);
    return EXW_OK;
}

exw_err exw_redis_addr_set_sentinels(struct exw_redis_addr *a, const char *list, const char *master,
                                     const char *sentinel_password, struct exw_errbuf *eb)
{
    const char *p = list, *end;
    size_t n, nr = 0;
    exw_err rc = EXW_OK;

    free_sentinels(a);
    if (exw_setting_has_control(list, strlen(list)))
        return exw_errbuf_set(eb, EXW_ECONFIG, "must not contain control characters");
    a->sentinels = exw_xcalloc(EXW_REDIS_SENTINELS_MAX, sizeof(*a->sentinels));
    for (;;) {
        end = strchr(p, ',');
        n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && *p == ' ') {
            p++;
            n--;
        }
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (++nr > EXW_REDIS_SENTINELS_MAX) {
            rc = exw_errbuf_set(eb, EXW_ECONFIG, "names more than %d sentinels",
                                EXW_REDIS_SENTINELS_MAX);
            break;
        }
        rc = parse_sentinel(p, n, nr, &a->sentinels[a->nsentinels], eb);
        if (rc != EXW_OK)
            break;
        a->nsentinels++;
        if (end == NULL)
            break;
        p = end + 1;
    }
    if (rc != EXW_OK) {
        free_sentinels(a);
        return rc;
    }
    a->master = master ? exw_xstrdup(master) : NULL;
    a->sentinel_password = sentinel_password ? exw_xstrdup(sentinel_password) : NULL;
    return EXW_OK;
}

void exw_redis_addr_cleanup(struct exw_redis_addr *a)
{
    if (a == NULL)
        return;
    free(a->host);
    free(a->path);
    free(a->user);
    exw_setting_free_secret(a->password);
    free_sentinels(a);
    memset(a, 0, sizeof(*a));
}

void exw_redis_addr_describe(const struct exw_redis_addr *a, struct exw_buf *b)
{
    const char *p;

    exw_buf_printf_cut(b, "%s", a->path ? "unix://" : "redis://");
    if (a->user || a->password) {
        /* The user name percent-encoded, as it would be written in the URL. */
        for (p = a->user ? a->user : ""; *p; p++) {
            if (strchr(UNRESERVED, *p) != NULL)
                exw_buf_printf_cut(b, "%c", *p);
            else
                exw_buf_printf_cut(b, "%%%02X", (unsigned char)*p);
        }
        exw_buf_printf_cut(b, "%s@", a->password ? ":***" : "");
    }
    if (a->path) {
        exw_buf_printf_cut(b, "%s", a->path);
        if (a->db != 0)
            exw_buf_printf_cut(b, "?db=%d", a->db);
    } else if (a->host) {
        exw_buf_printf_cut(b, strchr(a->host, ':') ? "[%s]:%d/%d" : "%s:%d/%d", a->host, a->port,
                           a->db);
    } else {
        exw_buf_printf_cut(b, "/%d", a->db);
    }
}
