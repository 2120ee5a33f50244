/* json.h: the one place that parses JSON, plus the JSON helpers the job model needs.
 *
 * Trees are cJSON's; callers outside the adapters only pass them around as the
 * opaque struct cJSON. cJSON writes a global on every parse, so exw_json_parse()
 * serialises parses behind a mutex. */
#ifndef EXW_JSON_H
#define EXW_JSON_H

#include <stddef.h>
#include <stdint.h>
#include "exw/err.h"

struct cJSON;

/* Parses @len bytes at @buf (need not be NUL-terminated) into *@out. Rejects
 * an empty buffer, trailing garbage (JSON whitespace may follow the value),
 * invalid UTF-8, nesting deeper than @max_depth (arrays and objects counted; a
 * top-level scalar is depth 0), the escape \u0000 and raw control characters
 * in strings (cJSON would cut or keep them), and numbers beyond a double's
 * range. The caller owns *@out (cJSON_Delete). On error *@out is NULL and @eb
 * says what and at which byte offset where one is known; the code is
 * EXW_ELIMIT for well-formed JSON over the worker's own limits (nesting, the
 * escape \u0000, a number beyond a double) and EXW_EJSON for anything else.
 * Thread: any (parses are serialised on an internal lock). */
EXW_MUST_CHECK exw_err exw_json_parse(const char *buf, size_t len, int max_depth,
                                      struct cJSON **out, struct exw_errbuf *eb);

/* Whether @len bytes at @s are well-formed UTF-8 (no overlongs, surrogates or
 * code points past U+10FFFF; NUL is well-formed). On failure *@bad_at is the
 * offset of the first byte of the first ill-formed sequence (may be NULL).
 * Thread: any. */
int exw_utf8_valid(const char *s, size_t len, size_t *bad_at);

/* Number of code points in well-formed UTF-8. Thread: any. */
size_t exw_utf8_len(const char *s, size_t len);

/* A NUL-terminated copy of @s with every ill-formed sequence replaced by U+FFFD
 * (one per maximal subpart, as Unicode recommends) and NUL bytes too. Caller
 * frees (free). Thread: any. */
char *exw_utf8_sanitize(const char *s, size_t len);

/* Resolves an RFC 6901 JSON Pointer against @root ("" is @root itself; member
 * names match exactly; array indexes are 0 or [1-9][0-9]*, so "-" names
 * nothing). Returns EXW_OK with *@out the value (borrowed from @root) or NULL
 * when the pointer names nothing; EXW_EJSON (and *@out NULL) when @pointer is
 * NULL or not a valid pointer. Thread: any. */
EXW_MUST_CHECK exw_err exw_json_pointer(const struct cJSON *root, const char *pointer,
                                        const struct cJSON **out);

/* Whether @pointer is a syntactically valid JSON Pointer. Thread: any. */
int exw_json_pointer_valid(const char *pointer);

/* Writes @v in its shortest round-trip decimal form as JavaScript prints
 * numbers (1.5, 100000, 1e+21, 1e-7, -0 as "0"; NaN, Infinity) into @out (at
 * least 32 bytes). Thread: any. */
void exw_json_format_number(double v, char out[32]);

#endif
