/* utf8.c: the one UTF-8 scanner. Everything that checks, counts, cuts or
 * repairs UTF-8 (the JSON reader, log lines, sheet names, error texts) goes
 * through exw_utf8_seq(), so that they all agree on what is well-formed. */
#include "exw/utf8.h"

#include <string.h>

#include "exw/err.h"

size_t exw_utf8_seq(const char *s, size_t n, size_t *sub)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned char lo = 0x80, hi = 0xBF;
    size_t need, i, dummy;

    if (sub == NULL)
        sub = &dummy;
    if (u[0] < 0x80)
        return 1;
    if (u[0] >= 0xC2 && u[0] <= 0xDF) {
        need = 2;
    } else if (u[0] >= 0xE0 && u[0] <= 0xEF) {
        need = 3;
        if (u[0] == 0xE0)
            lo = 0xA0; /* no overlongs */
        else if (u[0] == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (u[0] >= 0xF0 && u[0] <= 0xF4) {
        need = 4;
        if (u[0] == 0xF0)
            lo = 0x90; /* no overlongs */
        else if (u[0] == 0xF4)
            hi = 0x8F; /* nothing past U+10FFFF */
    } else {
        *sub = 1;
        return 0;
    }
    for (i = 1; i < need; i++) {
        if (i >= n || u[i] < lo || u[i] > hi) {
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
    size_t i = 0, n;

    while (i < len) {
        /* ASCII runs are the common case: no call per byte. */
        while (i < len && (unsigned char)s[i] < 0x80)
            i++;
        if (i == len)
            break;
        n = exw_utf8_seq(s + i, len - i, NULL);
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

size_t exw_utf8_cut(const char *s, size_t len, size_t max)
{
    size_t start, need;
    unsigned char lead;

    if (len <= max)
        return len;
    if (max == 0)
        return 0;
    /* Only bytes before @max are read: the caller may hold no more (a
     * truncated snprintf). Find where the last character starts and whether
     * it fits whole. */
    start = max - 1;
    while (start > 0 && max - start < 4 && ((unsigned char)s[start] & 0xC0) == 0x80)
        start--;
    lead = (unsigned char)s[start];
    need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return start + need > max ? start : max;
}

char *exw_utf8_sanitize(const char *s, size_t len)
{
    static const char replacement[] = "\xEF\xBF\xBD";
    size_t i = 0, o = 0, sub, n;
    char *out;

    /* Each byte grows to at most three (a lone bad byte or NUL becomes U+FFFD). */
    EXW_ASSERT(len < ((size_t)-1) / 3);
    out = exw_xmalloc(3 * len + 1);
    while (i < len) {
        n = exw_utf8_seq(s + i, len - i, &sub);
        if (n == 0 || s[i] == '\0') {
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
