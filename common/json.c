/* json.c: the one caller of cJSON's parser, plus UTF-8, JSON Pointer and number helpers.
 *
 * cJSON is lenient where the job document must not be: it accepts raw control
 * characters, cuts strings at an escaped NUL and recurses up to 1000 levels. So
 * the raw bytes are checked first (UTF-8, then one pass for depth, NULs and
 * control characters, which cannot overflow the stack however deep the input),
 * and only then handed to cJSON, under a lock because cJSON writes a global on
 * every parse. */
#include "exw/json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exw/mutex.h"

/* Serialises cJSON parses: cJSON records the last error position in a global. */
static struct exw_mutex parse_mu = {PTHREAD_MUTEX_INITIALIZER};

/* ---- UTF-8 ---- */

/* Length (1 to 4) of the well-formed sequence starting @s (@n bytes left), or 0
 * when it is ill-formed; then *@sub is the length of its maximal subpart (at
 * least 1), the bytes one U+FFFD replaces (Unicode 15, section 3.9). */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *sub)
{
    unsigned char lo = 0x80, hi = 0xBF;
    size_t need, i;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        need = 2;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        need = 3;
        if (s[0] == 0xE0)
            lo = 0xA0; /* no overlongs */
        else if (s[0] == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        need = 4;
        if (s[0] == 0xF0)
            lo = 0x90; /* no overlongs */
        else if (s[0] == 0xF4)
            hi = 0x8F; /* nothing past U+10FFFF */
    } else {
        *sub = 1;
        return 0;
    }
    for (i = 1; i < need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *sub = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return need;
}

int exw_utf8_valid(const char *s, size_t len, size_t *bad_at)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, sub, n;

    while (i < len) {
        n = utf8_seq(u + i, len - i, &sub);
        if (n == 0) {
            if (bad_at != NULL)
                *bad_at = i;
            return 0;
        }
        i += n;
    }
    return 1;
}

size_t exw_utf8_len(const char *s, size_t len)
{
    size_t i, count = 0;

    for (i = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            count++;
    }
    return count;
}

char *exw_utf8_sanitize(const char *s, size_t len)
{
    static const char replacement[] = "\xEF\xBF\xBD";
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0, sub, n;
    char *out;

    /* Each byte grows to at most three (a lone bad byte or NUL becomes U+FFFD). */
    EXW_ASSERT(len < ((size_t)-1) / 3);
    out = exw_xmalloc(3 * len + 1);
    while (i < len) {
        n = utf8_seq(u + i, len - i, &sub);
        if (n == 0 || u[i] == 0) {
            memcpy(out + o, replacement, 3);
            o += 3;
            i += n == 0 ? sub : 1;
            continue;
        }
        memcpy(out + o, s + i, n);
        o += n;
        i += n;
    }
    out[o] = '\0';
    return out;
}

/* ---- Parsing ---- */

static int is_json_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* One pass over the raw bytes for what cJSON would accept or hide: nesting
 * deeper than @max_depth (refused before cJSON recurses), the escape \u0000
 * (cJSON would silently cut the string there) and control characters, which
 * RFC 8259 forbids inside strings and cJSON takes for whitespace elsewhere.
 * Syntax errors are left to cJSON. */
/* The value of four hex digits at @p, or -1. */
static long hex4(const char *p)
{
    long v = 0;
    int k;

    for (k = 0; k < 4; k++) {
        char c = p[k];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* The end of the JSON number starting at @i (RFC 8259: -?(0|[1-9][0-9]*)
 * (.[0-9]+)?([eE][+-]?[0-9]+)?), or 0 when it is not one. */
static size_t number_end(const unsigned char *u, size_t len, size_t i)
{
    if (i < len && u[i] == '-')
        i++;
    if (i >= len || !is_digit(u[i]))
        return 0;
    if (u[i] == '0') {
        i++;
    } else {
        while (i < len && is_digit(u[i]))
            i++;
    }
    if (i < len && u[i] == '.') {
        if (++i >= len || !is_digit(u[i]))
            return 0;
        while (i < len && is_digit(u[i]))
            i++;
    }
    if (i < len && (u[i] == 'e' || u[i] == 'E')) {
        if (++i < len && (u[i] == '+' || u[i] == '-'))
            i++;
        if (i >= len || !is_digit(u[i]))
            return 0;
        while (i < len && is_digit(u[i]))
            i++;
    }
    if (i < len && (is_digit(u[i]) || u[i] == '.' || u[i] == 'e' || u[i] == 'E'))
        return 0;
    return i;
}

static exw_err prescan(const char *buf, size_t len, int max_depth, struct exw_errbuf *eb)
{
    const unsigned char *u = (const unsigned char *)buf;
    int depth = 0, in_string = 0;
    size_t i;

    for (i = 0; i < len; i++) {
        if (in_string) {
            if (u[i] == '"') {
                in_string = 0;
            } else if (u[i] == '\\') {
                long cp = len - i >= 6 && buf[i + 1] == 'u' ? hex4(buf + i + 2) : -1;

                if (cp == 0)
                    return exw_errbuf_set(eb, EXW_ELIMIT,
                                          "string contains a NUL character at byte %zu", i);
                /* JSON's grammar allows an unpaired surrogate escape; cJSON
                 * (and UTF-8) does not: valid JSON over our own rules. */
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    long low = len - i >= 12 && buf[i + 6] == '\\' && buf[i + 7] == 'u'
                                   ? hex4(buf + i + 8)
                                   : -1;

                    if (low < 0xDC00 || low > 0xDFFF)
                        return exw_errbuf_set(
                            eb, EXW_ELIMIT, "unpaired surrogate escape in a string at byte %zu", i);
                    i += 6; /* the pair's low half */
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return exw_errbuf_set(eb, EXW_ELIMIT,
                                          "unpaired surrogate escape in a string at byte %zu", i);
                }
                i++; /* the escaped character cannot end the string */
            } else if (u[i] < 0x20) {
                return exw_errbuf_set(eb, EXW_EJSON,
                                      "control character U+%04X in a string at byte %zu",
                                      (unsigned)u[i], i);
            }
            continue;
        }
        switch (u[i]) {
        case '"':
            in_string = 1;
            break;
        case '[':
        case '{':
            if (++depth > max_depth)
                return exw_errbuf_set(eb, EXW_ELIMIT, "nesting deeper than %d levels at byte %zu",
                                      max_depth, i);
            break;
        case ']':
        case '}':
            if (depth > 0)
                depth--;
            break;
        case '-':
        case '0':
        case '1':
        case '2':
        case '3':
        case '4':
        case '5':
        case '6':
        case '7':
        case '8':
        case '9': {
            /* cJSON also takes 012, 1. and 1.e5; JSON does not. */
            size_t end = number_end(u, len, i);

            if (end == 0)
                return exw_errbuf_set(eb, EXW_EJSON, "invalid JSON at byte %zu: malformed number",
                                      i);
            i = end - 1;
            break;
        }
        default:
            if (u[i] < 0x20 && !is_json_space(u[i]))
                return exw_errbuf_set(eb, EXW_EJSON, "invalid JSON at byte %zu", i);
            break;
        }
    }
    return EXW_OK;
}

enum tree_fault { TREE_OK, TREE_TOO_DEEP, TREE_NUMBER_RANGE };

/* Checks the tree cJSON built below @item, which is at @depth: containers no
 * deeper than @max_depth (recursion stops one level past it) and numbers that
 * are finite (cJSON reads 1e999 as infinity). */
static enum tree_fault check_tree(const cJSON *item, int depth, int max_depth)
{
    const cJSON *child;
    enum tree_fault f;

    if (cJSON_IsNumber(item))
        return isfinite(item->valuedouble) ? TREE_OK : TREE_NUMBER_RANGE;
    if (!cJSON_IsArray(item) && !cJSON_IsObject(item))
        return TREE_OK;
    if (depth + 1 > max_depth)
        return TREE_TOO_DEEP;
    for (child = item->child; child != NULL; child = child->next) {
        f = check_tree(child, depth + 1, max_depth);
        if (f != TREE_OK)
            return f;
    }
    return TREE_OK;
}

/* Thread: any, with parse_mu held. */
static cJSON *parse_locked(const char *buf, size_t len, const char **end) EXW_REQUIRES(parse_mu)
{
    /* The buffer need not end in a NUL, so cJSON must not look for one; the
     * caller checks what follows the value itself. */
    return cJSON_ParseWithLengthOpts(buf, len, end, 0);
}

exw_err exw_json_parse(const char *buf, size_t len, int max_depth, struct cJSON **out,
                       struct exw_errbuf *eb)
{
    cJSON *root = NULL;
    const char *end = NULL;
    size_t pos = 0;
    exw_err rc;

    if (max_depth < 0)
        max_depth = 0;
    if (buf == NULL || len == 0) {
        rc = exw_errbuf_set(eb, EXW_EJSON, "empty document");
        goto out;
    }
    if (!exw_utf8_valid(buf, len, &pos)) {
        rc = exw_errbuf_set(eb, EXW_EJSON, "invalid UTF-8 at byte %zu", pos);
        goto out;
    }
    rc = prescan(buf, len, max_depth, eb);
    if (rc != EXW_OK)
        goto out;

    exw_mutex_lock(&parse_mu);
    root = parse_locked(buf, len, &end);
    exw_mutex_unlock(&parse_mu);

    pos = end != NULL && end >= buf ? (size_t)(end - buf) : 0;
    if (root == NULL) {
        rc = exw_errbuf_set(eb, EXW_EJSON, "invalid JSON at byte %zu", pos);
        goto out;
    }
    while (pos < len && is_json_space((unsigned char)buf[pos]))
        pos++;
    if (pos < len) {
        rc = exw_errbuf_set(eb, EXW_EJSON, "unexpected data at byte %zu", pos);
        goto out;
    }
    /* The prescan already counted brackets; this checks the tree cJSON built. */
    switch (check_tree(root, 0, max_depth)) {
    case TREE_OK:
        break;
    case TREE_TOO_DEEP:
        rc = exw_errbuf_set(eb, EXW_ELIMIT, "nesting deeper than %d levels", max_depth);
        break;
    case TREE_NUMBER_RANGE:
        rc = exw_errbuf_set(eb, EXW_ELIMIT, "number out of range (beyond +-1.8e308)");
        break;
    }
out:
    if (rc != EXW_OK) {
        cJSON_Delete(root);
        root = NULL;
    }
    *out = root;
    return rc;
}

/* ---- JSON Pointer (RFC 6901) ---- */

int exw_json_pointer_valid(const char *pointer)
{
    const char *p;

    if (pointer == NULL)
        return 0;
    if (pointer[0] == '\0')
        return 1;
    if (pointer[0] != '/')
        return 0;
    for (p = pointer; *p != '\0'; p++) {
        if (*p == '~' && p[1] != '0' && p[1] != '1')
            return 0;
    }
    return 1;
}

/* Whether the reference token @tok (@n bytes, still escaped) is the member name
 * @key. */
static int token_is(const char *tok, size_t n, const char *key)
{
    size_t i;
    char c;

    for (i = 0; i < n; i++, key++) {
        c = tok[i];
        if (c == '~') {
            i++;
            c = tok[i] == '1' ? '/' : '~';
        }
        if (*key != c)
            return 0;
    }
    return *key == '\0';
}

/* Parses an array index token: "0" or [1-9][0-9]*. */
static int token_index(const char *tok, size_t n, size_t *idx)
{
    size_t i, v = 0, d;

    if (n == 0 || (tok[0] == '0' && n > 1))
        return 0;
    for (i = 0; i < n; i++) {
        if (tok[i] < '0' || tok[i] > '9')
            return 0;
        d = (size_t)(tok[i] - '0');
        if (v > (((size_t)-1) - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *idx = v;
    return 1;
}

/* The value token @tok (@n bytes) names inside @cur, or NULL. */
static const cJSON *pointer_step(const cJSON *cur, const char *tok, size_t n)
{
    const cJSON *child;
    size_t idx, i = 0;

    if (cJSON_IsObject(cur)) {
        for (child = cur->child; child != NULL; child = child->next) {
            if (child->string != NULL && token_is(tok, n, child->string))
                return child;
        }
        return NULL;
    }
    if (cJSON_IsArray(cur) && token_index(tok, n, &idx)) {
        for (child = cur->child; child != NULL; child = child->next, i++) {
            if (i == idx)
                return child;
        }
    }
    return NULL;
}

exw_err exw_json_pointer(const struct cJSON *root, const char *pointer, const struct cJSON **out)
{
    const cJSON *cur = root;
    const char *p, *tok;
    size_t n;

    *out = NULL;
    if (!exw_json_pointer_valid(pointer))
        return EXW_EJSON;
    for (p = pointer; cur != NULL && *p == '/'; p = tok + n) {
        tok = p + 1;
        n = strcspn(tok, "/");
        cur = pointer_step(cur, tok, n);
    }
    *out = cur;
    return EXW_OK;
}

/* ---- Numbers ---- */

void exw_json_format_number(double v, char out[32])
{
    char sci[40], digits[24];
    char *o = out, *s;
    int p, k = 0, n, i;
    long e;

    if (isnan(v)) {
        strcpy(out, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(out, v < 0 ? "-Infinity" : "Infinity");
        return;
    }
    if (v == 0) {
        strcpy(out, "0"); /* also -0, as JavaScript prints it */
        return;
    }
    if (v < 0) {
        *o++ = '-';
        v = -v;
    }
    /* The fewest significant digits that read back as the same double. */
    for (p = 1; p < 17; p++) {
        snprintf(sci, sizeof(sci), "%.*e", p - 1, v);
        if (strtod(sci, NULL) == v)
            break;
    }
    snprintf(sci, sizeof(sci), "%.*e", p - 1, v);
    for (s = sci; *s != 'e'; s++) {
        if (*s >= '0' && *s <= '9')
            digits[k++] = *s;
    }
    e = strtol(s + 1, NULL, 10);
    while (k > 1 && digits[k - 1] == '0')
        k--;

    /* ECMAScript Number::toString: the value is 0.d1...dk times 10^n. */
    n = (int)e + 1;
    if (k <= n && n <= 21) {
        memcpy(o, digits, (size_t)k);
        o += k;
        for (i = k; i < n; i++)
            *o++ = '0';
    } else if (0 < n && n <= 21) {
        memcpy(o, digits, (size_t)n);
        o += n;
        *o++ = '.';
        memcpy(o, digits + n, (size_t)(k - n));
        o += k - n;
    } else if (-6 < n && n <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (i = n; i < 0; i++)
            *o++ = '0';
        memcpy(o, digits, (size_t)k);
        o += k;
    } else {
        *o++ = digits[0];
        if (k > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)(k - 1));
            o += k - 1;
        }
        o += snprintf(o, (size_t)(out + 32 - o), "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
    }
    *o = '\0';
}
