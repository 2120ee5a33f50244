/* utf8.h: the one UTF-8 scanner (Unicode 15, section 3.9): well-formedness,
 * character counts, cuts at character boundaries and U+FFFD replacement. */
#ifndef EXW_UTF8_H
#define EXW_UTF8_H

#include <stddef.h>

/* Length (1 to 4) of the well-formed sequence at the start of @s (@n bytes
 * left, at least 1), or 0 when it is ill-formed (overlongs, surrogates, code
 * points past U+10FFFF, truncated sequences); then *@sub (may be NULL) is the
 * length of its maximal subpart, at least 1: the bytes one U+FFFD replaces.
 * NUL is well-formed (length 1). Thread: any. */
size_t exw_utf8_seq(const char *s, size_t n, size_t *sub);

/* Whether @len bytes at @s are well-formed UTF-8 (NUL is well-formed). On
 * failure *@bad_at is the offset of the first byte of the first ill-formed
 * sequence (may be NULL). Thread: any. */
int exw_utf8_valid(const char *s, size_t len, size_t *bad_at);

/* Number of code points in well-formed UTF-8 (on other bytes: the number of
 * bytes that are not continuation bytes). Thread: any. */
size_t exw_utf8_len(const char *s, size_t len);

/* The length of the longest prefix of @s (@len bytes) of at most @max bytes
 * that does not end inside a UTF-8 sequence: where to cut text that clients
 * read as UTF-8. Thread: any. */
size_t exw_utf8_cut(const char *s, size_t len, size_t max);

/* A NUL-terminated copy of @s with every ill-formed sequence replaced by U+FFFD
 * (one per maximal subpart, as Unicode recommends) and NUL bytes too. Caller
 * frees (free). Thread: any. */
char *exw_utf8_sanitize(const char *s, size_t len);

#endif
