/* json.c: the one checker of JSON texts and the one caller of cJSON's parser;
 * numbers judged by their digits, number formatting and string writing.
 *
 * cJSON is lenient where the job document must not be: it accepts raw control
 * characters, cuts strings at an escaped NUL, reads numbers through a double
 * and recurses up to 1000 levels; and its tree costs some 50 times the bytes
 * of a text of tiny values. So every text is first checked here, iteratively
 * and without allocating, against the whole grammar and the worker's own
 * rules. Most callers then read the checked text in place (json_text.c);
 * exw_json_parse() hands it to cJSON, under a lock because cJSON writes a
 * global on every parse. */
#include "exw/json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exw/buf.h"
#include "exw/mutex.h"
#include "exw/utf8.h"

/* Serialises cJSON parses: cJSON records the last error position in a global. */
static struct exw_mutex parse_mu = {PTHREAD_MUTEX_INITIALIZER};

static const char bom[] = "\xEF\xBB\xBF";

static int is_json_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* ---- Numbers, by their digits ---- */

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

/* Exponents are kept up to this size: past it every value is 0 or infinite,
 * and sums of it and a digit count cannot overflow. */
#define EXP_CAP 1000000000000000LL

/* A number literal taken apart: the value is (-1 if @neg) times the digits
 * (integer digits then fraction digits, as one integer) times 10^(exp - nf). */
struct number {
    int neg;
    const char *digits_int;
    size_t ni;
    const char *digits_frac;
    size_t nf;
    long long exp;
};

/* Splits the literal @s (@n bytes); 0 when it is not exactly one JSON number. */
static int split_number(const char *s, size_t n, struct number *num)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    int eneg = 0;

    if (n == 0 || number_end(u, n, 0) != n)
        return 0;
    memset(num, 0, sizeof(*num));
    num->neg = u[0] == '-';
    i = (size_t)num->neg;
    num->digits_int = s + i;
    while (i < n && is_digit(u[i]))
        i++;
    num->ni = (size_t)(s + i - num->digits_int);
    if (i < n && u[i] == '.') {
        num->digits_frac = s + ++i;
        while (i < n && is_digit(u[i]))
            i++;
        num->nf = (size_t)(s + i - num->digits_frac);
    }
    if (i < n) {
        i++; /* e or E */
        if (u[i] == '+' || u[i] == '-')
            eneg = u[i++] == '-';
        for (; i < n; i++) {
            if (num->exp < EXP_CAP)
                num->exp = num->exp * 10 + (u[i] - '0');
        }
        if (eneg)
            num->exp = -num->exp;
    }
    return 1;
}

/* Digit @k of the number's digit string (integer digits, then fraction). */
static char digit_at(const struct number *num, size_t k)
{
    return k < num->ni ? num->digits_int[k] : num->digits_frac[k - num->ni];
}

/* Significant digits handed to strtod; past them one sticky digit stands for
 * the rest. Exact halfway points between doubles have at most 767
 * significant digits, so the rounding is that of the whole literal. */
#define SIG_DIGITS 800

static double number_value(const char *s, size_t n, const struct number *num)
{
    char buf[SIG_DIGITS + 40];
    size_t total = num->ni + num->nf, first, k, o = 0;
    long long point;

    if (n < 64) {
        memcpy(buf, s, n);
        buf[n] = '\0';
        return strtod(buf, NULL);
    }
    /* A long literal: rewrite it as 0.<significant digits>e<point>. */
    for (first = 0; first < total && digit_at(num, first) == '0'; first++)
        ;
    if (first == total)
        return num->neg ? -0.0 : 0.0;
    point = (long long)num->ni - (long long)first + num->exp;
    if (point > 100000)
        point = 100000; /* infinite either way */
    else if (point < -100000)
        point = -100000; /* zero either way */
    if (num->neg)
        buf[o++] = '-';
    buf[o++] = '0';
    buf[o++] = '.';
    for (k = first; k < total && k - first < SIG_DIGITS; k++)
        buf[o++] = digit_at(num, k);
    for (; k < total; k++) {
        if (digit_at(num, k) != '0') {
            buf[o++] = '1';
            break;
        }
    }
    snprintf(buf + o, sizeof(buf) - o, "e%lld", point);
    return strtod(buf, NULL);
}

exw_err exw_json_number(const struct exw_json_value *v, double *out)
{
    struct number num;

    *out = 0;
    if (v->kind != EXW_JSON_NUMBER || !split_number(v->text, v->len, &num))
        return EXW_EJSON;
    *out = number_value(v->text, v->len, &num);
    return isfinite(*out) ? EXW_OK : EXW_ELIMIT;
}

int exw_json_number_whole(const struct exw_json_value *v, double *out)
{
    const unsigned long long two53 = 9007199254740992ULL;
    struct number num;
    size_t total, first, last, k;
    unsigned long long value = 0;
    long long scale;

    *out = 0;
    if (v->kind != EXW_JSON_NUMBER || !split_number(v->text, v->len, &num))
        return 0;
    total = num.ni + num.nf;
    for (first = 0; first < total && digit_at(&num, first) == '0'; first++)
        ;
    if (first == total)
        return 1; /* zero, -0 included */
    for (last = total - 1; digit_at(&num, last) == '0'; last--)
        ;
    /* The value is digits[first..last] times 10^scale. */
    scale = num.exp - (long long)num.nf + (long long)(total - 1 - last);
    if (scale < 0)
        return 0; /* a fraction remains */
    /* 2^53 has 16 digits: anything longer is out of range. */
    if ((long long)(last - first + 1) + scale > 16)
        return 0;
    for (k = first; k <= last; k++)
        value = value * 10 + (unsigned long long)(digit_at(&num, k) - '0');
    for (; scale > 0; scale--)
        value *= 10;
    if (value > two53)
        return 0;
    *out = num.neg ? -(double)value : (double)value;
    return 1;
}

/* ---- Checking ---- */

/* Where the check stands between values. */
enum check_state { WANT_VALUE, WANT_KEY, AFTER_VALUE };

static exw_err syntax_error(struct exw_errbuf *eb, size_t at)
{
    return exw_errbuf_set(eb, EXW_EJSON, "invalid JSON at byte %zu", at);
}

/* Skips JSON whitespace from *@i; a control character there is an error. */
static exw_err check_space(const unsigned char *u, size_t len, size_t *i, struct exw_errbuf *eb)
{
    while (*i < len && is_json_space(u[*i]))
        (*i)++;
    if (*i < len && u[*i] < 0x20)
        return syntax_error(eb, *i);
    return EXW_OK;
}

/* Checks the string whose opening quote is at *@i and moves past it. The text
 * is well-formed UTF-8 already. */
static exw_err check_string(const unsigned char *u, size_t len, size_t *i, struct exw_errbuf *eb)
{
    const char *s = (const char *)u;
    size_t j;
    long cp, low;

    for (j = *i + 1; j < len; j++) {
        if (u[j] == '"') {
            *i = j + 1;
            return EXW_OK;
        }
        if (u[j] < 0x20)
            return exw_errbuf_set(eb, EXW_EJSON, "control character U+%04X in a string at byte %zu",
                                  (unsigned)u[j], j);
        if (u[j] != '\\')
            continue;
        if (j + 1 >= len)
            break;
        if (u[j + 1] != 'u') {
            if (strchr("\"\\/bfnrt", u[j + 1]) == NULL || u[j + 1] == '\0')
                return syntax_error(eb, j);
            j++;
            continue;
        }
        cp = len - j >= 6 ? exw_json_hex4(s + j + 2) : -1;
        if (cp < 0)
            return syntax_error(eb, j);
        if (cp == 0)
            return exw_errbuf_set(eb, EXW_ELIMIT, "string contains a NUL character at byte %zu", j);
        /* JSON's grammar allows an unpaired surrogate escape; UTF-8 cannot
         * hold one: valid JSON over our own rules. */
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return exw_errbuf_set(eb, EXW_ELIMIT,
                                  "unpaired surrogate escape in a string at byte %zu", j);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            low = len - j >= 12 && s[j + 6] == '\\' && s[j + 7] == 'u' ? exw_json_hex4(s + j + 8)
                                                                       : -1;
            if (low < 0xDC00 || low > 0xDFFF)
                return exw_errbuf_set(eb, EXW_ELIMIT,
                                      "unpaired surrogate escape in a string at byte %zu", j);
            j += 6; /* the pair's low half */
        }
        j += 5;
    }
    return syntax_error(eb, len); /* the text ends inside the string */
}

/* Checks the number at *@i and moves past it. */
static exw_err check_number(const unsigned char *u, size_t len, size_t *i, struct exw_errbuf *eb)
{
    size_t end = number_end(u, len, *i), k;
    struct number num;
    int may_overflow = 0;

    if (end == 0)
        return exw_errbuf_set(eb, EXW_EJSON, "invalid JSON at byte %zu: malformed number", *i);
    /* Only an exponent or over 308 integer digits can reach past a double;
     * other numbers need no conversion here. */
    for (k = *i; k < end && !may_overflow; k++)
        may_overflow = u[k] == 'e' || u[k] == 'E';
    if (may_overflow || end - *i > 308) {
        split_number((const char *)u + *i, end - *i, &num);
        if (!isfinite(number_value((const char *)u + *i, end - *i, &num)))
            return exw_errbuf_set(eb, EXW_ELIMIT, "number out of range (beyond +-1.8e308)");
    }
    *i = end;
    return EXW_OK;
}

/* Checks the literal true, false or null at *@i and moves past it. */
static exw_err check_literal(const unsigned char *u, size_t len, size_t *i, struct exw_errbuf *eb)
{
    static const char *const words[] = {"true", "false", "null"};
    size_t k, n;

    for (k = 0; k < 3; k++) {
        n = strlen(words[k]);
        if (len - *i >= n && memcmp(u + *i, words[k], n) == 0) {
            *i += n;
            return EXW_OK;
        }
    }
    return syntax_error(eb, *i);
}

exw_err exw_json_check(const char *buf, size_t len, int max_depth, struct exw_errbuf *eb)
{
    const unsigned char *u = (const unsigned char *)buf;
    /* Bit d: the container at depth d is an object (else an array). */
    uint64_t is_object[(EXW_JSON_MAX_DEPTH + 63) / 64] = {0};
    enum check_state state = WANT_VALUE;
    size_t i = 0, depth = 0;
    exw_err rc = EXW_OK;
    unsigned char c;

    if (max_depth < 0)
        max_depth = 0;
    if (max_depth > EXW_JSON_MAX_DEPTH)
        max_depth = EXW_JSON_MAX_DEPTH;
    if (buf == NULL || len == 0)
        return exw_errbuf_set(eb, EXW_EJSON, "empty document");
    if (!exw_utf8_valid(buf, len, &i))
        return exw_errbuf_set(eb, EXW_EJSON, "invalid UTF-8 at byte %zu", i);
    i = len >= 3 && memcmp(buf, bom, 3) == 0 ? 3 : 0;
    while (rc == EXW_OK) {
        rc = check_space(u, len, &i, eb);
        if (rc != EXW_OK)
            break;
        if (state == AFTER_VALUE && depth == 0) {
            if (i < len)
                rc = exw_errbuf_set(eb, EXW_EJSON, "unexpected data at byte %zu", i);
            break;
        }
        if (i >= len) {
            rc = syntax_error(eb, i); /* the text ends too soon */
            break;
        }
        c = u[i];
        if (state == AFTER_VALUE) {
            int in_object = (is_object[(depth - 1) / 64] >> ((depth - 1) % 64)) & 1;

            if (c == ',') {
                i++;
                state = in_object ? WANT_KEY : WANT_VALUE;
            } else if (c == (in_object ? '}' : ']')) {
                i++;
                depth--;
            } else {
                rc = syntax_error(eb, i);
            }
        } else if (state == WANT_KEY) {
            if (c != '"') {
                rc = syntax_error(eb, i);
                break;
            }
            rc = check_string(u, len, &i, eb);
            if (rc == EXW_OK)
                rc = check_space(u, len, &i, eb);
            if (rc == EXW_OK && (i >= len || u[i] != ':'))
                rc = syntax_error(eb, i);
            i++;
            state = WANT_VALUE;
        } else if (c == '{' || c == '[') {
            if (depth >= (size_t)max_depth) {
                rc = exw_errbuf_set(eb, EXW_ELIMIT, "nesting deeper than %d levels at byte %zu",
                                    max_depth, i);
                break;
            }
            if (c == '{')
                is_object[depth / 64] |= (uint64_t)1 << (depth % 64);
            else
                is_object[depth / 64] &= ~((uint64_t)1 << (depth % 64));
            depth++;
            i++;
            rc = check_space(u, len, &i, eb);
            if (rc == EXW_OK && i < len && u[i] == (c == '{' ? '}' : ']')) {
                i++;
                depth--;
                state = AFTER_VALUE;
            } else {
                state = c == '{' ? WANT_KEY : WANT_VALUE;
            }
        } else {
            if (c == '"')
                rc = check_string(u, len, &i, eb);
            else if (c == '-' || is_digit(c))
                rc = check_number(u, len, &i, eb);
            else
                rc = check_literal(u, len, &i, eb);
            state = AFTER_VALUE;
        }
    }
    return rc;
}

/* ---- Trees ---- */

/* Thread: any, with parse_mu held. */
static cJSON *parse_locked(const char *buf, size_t len) EXW_REQUIRES(parse_mu)
{
    /* The buffer need not end in a NUL, so cJSON must not look for one; the
     * check has seen the whole text already. */
    return cJSON_ParseWithLengthOpts(buf, len, NULL, 0);
}

exw_err exw_json_parse(const char *buf, size_t len, int max_depth, struct cJSON **out,
                       struct exw_errbuf *eb)
{
    cJSON *root = NULL;
    exw_err rc = exw_json_check(buf, len, max_depth, eb);

    if (rc == EXW_OK) {
        /* cJSON skips a byte order mark only in texts of 5 bytes or more. */
        if (len >= 3 && memcmp(buf, bom, 3) == 0) {
            buf += 3;
            len -= 3;
        }
        exw_mutex_lock(&parse_mu);
        root = parse_locked(buf, len);
        exw_mutex_unlock(&parse_mu);
        /* The text is valid JSON within cJSON's own nesting limit: no tree
         * means no memory. */
        if (root == NULL)
            rc =
                exw_errbuf_set(eb, EXW_ENOMEM, "out of memory for the JSON tree of %zu bytes", len);
    }
    *out = root;
    return rc;
}

/* ---- Formatting numbers ---- */

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

/* ---- Writing ---- */

/* How many bytes at @s[@i] go into a JSON string as they are: printable ASCII
 * but the quote and the backslash, and whole well-formed characters; 0 for a
 * byte that needs an escape or a replacement. */
static size_t plain_at(const char *s, size_t len, size_t i)
{
    unsigned char c = (unsigned char)s[i];

    if (c >= 0x80)
        return exw_utf8_seq(s + i, len - i, NULL);
    return c >= 0x20 && c != '"' && c != '\\';
}

exw_err exw_json_append_string(struct exw_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t start = b->len, i = 0, run, n, sub;
    char esc[6];
    exw_err rc = exw_buf_append(b, "\"", 1);

    while (rc == EXW_OK && i < len) {
        /* The longest run that goes out as it is: printable ASCII but the
         * quote and the backslash, and well-formed multi-byte characters. */
        for (run = i; run < len; run += n) {
            n = plain_at(s, len, run);
            if (n == 0)
                break;
        }
        if (run > i)
            rc = exw_buf_append(b, s + i, run - i);
        i = run;
        if (rc != EXW_OK || i == len)
            break;
        n = 1;
        if (u[i] == '"' || u[i] == '\\') {
            esc[0] = '\\';
            esc[1] = (char)u[i];
            rc = exw_buf_append(b, esc, 2);
        } else if (u[i] == 0 || u[i] >= 0x80) {
            /* Ill-formed UTF-8, one U+FFFD per maximal subpart; NUL too, since
             * our own parser refuses the escape \u0000. */
            if (u[i] != 0 && exw_utf8_seq(s + i, len - i, &sub) == 0)
                n = sub;
            rc = exw_buf_append(b, "\xEF\xBF\xBD", 3);
        } else {
            const char *named = u[i] == '\n'   ? "\\n"
                                : u[i] == '\r' ? "\\r"
                                : u[i] == '\t' ? "\\t"
                                : u[i] == '\b' ? "\\b"
                                : u[i] == '\f' ? "\\f"
                                               : NULL;

            if (named != NULL) {
                rc = exw_buf_append(b, named, 2);
            } else {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[u[i] >> 4];
                esc[5] = hex[u[i] & 15];
                rc = exw_buf_append(b, esc, 6);
            }
        }
        i += n;
    }
    if (rc == EXW_OK)
        rc = exw_buf_append(b, "\"", 1);
    if (rc != EXW_OK && b->data != NULL) {
        b->len = start;
        b->data[start] = '\0';
    }
    return rc;
}
