/*
 * The deterministic answer for a key, and the decoding and escaping of request targets, for
 * export-mock-lookup. See mock_body.h.
 */

#include "mock_body.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Days from 1970-01-01 to 2020-01-01, the first possible "signed_on" date. */
#define SIGNED_ON_BASE_DAYS 18262L

/* Running out of memory in a test double is not worth recovering from: say so and stop. */
void *mock_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n != 0 ? n : 1);

    if (q == NULL) {
        fputs("export-mock-lookup: out of memory\n", stderr);
        abort();
    }
    return q;
}

void mock_buf_grow(struct mock_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;

    if (need <= b->cap)
        return;
    if (need < 2 * b->cap)
        need = 2 * b->cap;
    b->p = mock_xrealloc(b->p, need);
    b->cap = need;
    b->p[b->len] = '\0';
}

void mock_buf_add(struct mock_buf *b, const void *p, size_t n)
{
    mock_buf_grow(b, n);
    if (n != 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void mock_buf_adds(struct mock_buf *b, const char *s) { mock_buf_add(b, s, strlen(s)); }

void mock_buf_addc(struct mock_buf *b, char c) { mock_buf_add(b, &c, 1); }

void mock_buf_addf(struct mock_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort(); /* Only a bad format gets here, and that is a bug. */
    mock_buf_grow(b, (size_t)n);
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    b->len += (size_t)n;
}

void mock_buf_free(struct mock_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static uint64_t fnv1a64(const unsigned char *p, size_t n)
{
    uint64_t h = 14695981039346656037ULL;

    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Howard Hinnant's civil_from_days: the proleptic Gregorian date of days since 1970-01-01. */
static void civil_from_days(long z, long *y, unsigned *m, unsigned *d)
{
    long era;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (long)yoe + era * 400 + (*m <= 2);
}

/* The shortest "%.*g" text that reads back as exactly v, so every parser gets the same double. */
static void add_double(struct mock_buf *b, double v)
{
    char buf[40];

    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    mock_buf_adds(b, buf);
}

/* The length of the well-formed UTF-8 sequence at p (no overlong form, no surrogate), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t need = p[0] < 0x80 ? 1 : p[0] < 0xc2 ? 0 : p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
    uint32_t cp = p[0] & (0x7fu >> need);
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};

    if (need == 0 || need > n || p[0] > 0xf4)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3fu);
    }
    if (cp < min[need] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return need;
}

/*
 * Appends s as a JSON string. A key is any bytes (%00 and %FF decode to bytes too), but the body
 * must stay valid JSON, so an invalid UTF-8 byte is written as U+FFFD; the hash still covers the
 * raw bytes.
 */
void mock_json_string(struct mock_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    mock_buf_addc(b, '"');
    while (i < n) {
        size_t run = 0;
        size_t len;

        /* Copy printable ASCII in one go: long keys are mostly that. */
        while (i + run < n && p[i + run] >= 0x20 && p[i + run] < 0x80 && p[i + run] != '"' &&
               p[i + run] != '\\')
            run++;
        mock_buf_add(b, p + i, run);
        i += run;
        if (i == n)
            break;
        len = utf8_len(p + i, n - i);
        if (p[i] == '"' || p[i] == '\\')
            mock_buf_addf(b, "\\%c", p[i]);
        else if (p[i] == '\n')
            mock_buf_adds(b, "\\n");
        else if (p[i] == '\t')
            mock_buf_adds(b, "\\t");
        else if (p[i] < 0x20)
            mock_buf_addf(b, "\\u%04x", p[i]);
        else if (len == 0)
            mock_buf_adds(b, "\\ufffd");
        else
            mock_buf_add(b, p + i, len);
        i += len != 0 ? len : 1;
    }
    mock_buf_addc(b, '"');
}

/* Appends the answer for a key; pad_to > 0 adds a "pad" member making it pad_to bytes long. */
void mock_body_build(struct mock_buf *b, const char *key, size_t key_len, size_t pad_to)
{
    uint64_t h = fnv1a64((const unsigned char *)key, key_len);
    size_t start = b->len; /* the answer may follow others in b (a batch) */
    long y;
    unsigned m, d;

    mock_buf_adds(b, "{\"sn\":");
    mock_json_string(b, key, key_len);
    mock_buf_addf(
        b, ",\"name\":\"Customer-%03u\",\"discount\":{\"ratio\":", (unsigned)((h >> 32) % 1000));
    add_double(b, (double)(h % 10000) / 10000.0);
    mock_buf_addf(b, "},\"score\":%u,\"active\":%s", (unsigned)((h >> 16) % 1000),
                  ((h >> 8) & 1) != 0 ? "true" : "false");
    civil_from_days(SIGNED_ON_BASE_DAYS + (long)((h >> 40) % 2000), &y, &m, &d);
    mock_buf_addf(b, ",\"signed_on\":\"%04ld-%02u-%02u\",\"note\":null", y, m, d);
    if (pad_to > 0) {
        /* ,"pad":" and "} are the 10 bytes around the padding; too small a size pads nothing. */
        size_t len = b->len - start;
        size_t pad = pad_to > len + 10 ? pad_to - len - 10 : 0;

        mock_buf_adds(b, ",\"pad\":\"");
        mock_buf_grow(b, pad);
        memset(b->p + b->len, 'x', pad);
        b->len += pad;
        mock_buf_addc(b, '"');
    }
    mock_buf_addc(b, '}');
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %HH escapes only ('+' stays '+'); returns -1 on a malformed escape. */
int mock_pct_decode(const char *s, size_t n, struct mock_buf *out)
{
    mock_buf_grow(out, n);
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            mock_buf_addc(out, s[i]);
            continue;
        }
        if (i + 2 >= n || hex_value(s[i + 1]) < 0 || hex_value(s[i + 2]) < 0)
            return -1;
        mock_buf_addc(out, (char)(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
        i += 2;
    }
    return 0;
}

int mock_query_raw(const char *q, const char *name, const char **value, size_t *len)
{
    while (*q != '\0') {
        size_t part = strcspn(q, "&");
        const char *eq = memchr(q, '=', part);
        size_t name_len = eq != NULL ? (size_t)(eq - q) : part;
        struct mock_buf k = {0};
        int match =
            mock_pct_decode(q, name_len, &k) == 0 && strcmp(k.p, name) == 0 && strlen(k.p) == k.len;

        mock_buf_free(&k);
        if (match) {
            *value = eq != NULL ? eq + 1 : q + part;
            *len = eq != NULL ? part - name_len - 1 : 0;
            return 1;
        }
        q += part + (q[part] == '&');
    }
    return 0;
}

/* Finds the first query parameter called name: 1 found (value in out), 0 absent, -1 bad escape. */
int mock_query_param(const char *q, const char *name, struct mock_buf *out)
{
    const char *value;
    size_t len;

    if (!mock_query_raw(q, name, &value, &len))
        return 0;
    return mock_pct_decode(value, len, out) == 0 ? 1 : -1;
}

/* Appends s with bytes below 0x20 and the backslash written as \xHH, so a line stays a line. */
void mock_buf_add_escaped(struct mock_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == '\\')
            mock_buf_addf(b, "\\x%02x", c);
        else
            mock_buf_addc(b, (char)c);
    }
}

int mock_split_keys(const char *s, size_t n, struct mock_buf **keys, size_t *nkeys)
{
    size_t count = 1, at = 0, k = 0;

    for (size_t i = 0; i < n; i++)
        count += s[i] == ',';
    *keys = mock_xrealloc(NULL, count * sizeof(**keys));
    memset(*keys, 0, count * sizeof(**keys));
    *nkeys = count;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ',')
            continue;
        if (mock_pct_decode(s + at, i - at, &(*keys)[k]) != 0)
            return -1;
        mock_buf_grow(&(*keys)[k], 0);
        if ((*keys)[k].len == 0)
            return -2;
        k++;
        at = i + 1;
    }
    return 0;
}

void mock_keys_free(struct mock_buf *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mock_buf_free(&keys[i]);
    free(keys);
}
