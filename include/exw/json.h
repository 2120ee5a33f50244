/* json.h: the one place that checks and parses JSON.
 *
 * exw_json_check() validates a text in one pass and allocates nothing; the
 * text can then be read in place (json_text.h: values are spans of it,
 * numbers are judged by their digits), which is how the job document, its
 * rows and lookup responses are read: the cost is the text itself, whatever
 * its shape. exw_json_parse() builds a cJSON tree, for small texts whose
 * every value is wanted; callers outside the adapters only pass such trees
 * around as the opaque struct cJSON. cJSON writes a global on every parse, so
 * exw_json_parse() serialises parses behind a mutex. */
#ifndef EXW_JSON_H
#define EXW_JSON_H

#include <stddef.h>
#include <stdint.h>
#include "exw/err.h"
#include "exw/json_text.h" /* reading checked texts, JSON Pointer */
#include "exw/utf8.h"      /* the UTF-8 helpers once lived here */

struct cJSON;
struct exw_buf;

/* The deepest nesting exw_json_check() follows (cJSON's own limit); deeper
 * limits are cut to it. */
#define EXW_JSON_MAX_DEPTH 1000

/* Validates the JSON text of @len bytes at @buf (need not be NUL-terminated),
 * in one pass without allocating: RFC 8259's grammar (one value; JSON
 * whitespace around it; a UTF-8 byte order mark at the very start is skipped)
 * and well-formed UTF-8, plus the worker's own rules: nesting no deeper than
 * @max_depth (arrays and objects counted; a top-level scalar is depth 0), no
 * escape \u0000 (strings are handled as C strings), no unpaired surrogate
 * escapes, no raw control characters in strings, and numbers within a
 * double's range (decided exactly, from the digits). On error @eb says what
 * and at which byte offset where one is known; the code is EXW_ELIMIT for
 * well-formed JSON over the worker's own rules and EXW_EJSON for anything
 * else. Thread: any. */
EXW_MUST_CHECK exw_err exw_json_check(const char *buf, size_t len, int max_depth,
                                      struct exw_errbuf *eb);

/* Parses @len bytes at @buf into a cJSON tree *@out after exw_json_check()
 * (same rules, codes and messages). A text that passes the check and still
 * yields no tree means cJSON ran out of memory: EXW_ENOMEM. A tree costs
 * about 100 bytes per value, which for tiny values is some 50 times the text:
 * read large or untrusted texts in place instead. The caller owns *@out
 * (cJSON_Delete); on error it is NULL. Thread: any (parses are serialised on
 * an internal lock). */
EXW_MUST_CHECK exw_err exw_json_parse(const char *buf, size_t len, int max_depth,
                                      struct cJSON **out, struct exw_errbuf *eb);

/* ---- Numbers, format, writing ---- */

/* The number value @v as the nearest double (correctly rounded from all its
 * digits). EXW_ELIMIT beyond a double's range, EXW_EJSON for anything but a
 * JSON number. Thread: any. */
EXW_MUST_CHECK exw_err exw_json_number(const struct exw_json_value *v, double *out);

/* Whether the number value @v is a whole number from -2^53 to 2^53, judged
 * exactly by its digits and never through a double: its decimal value, with
 * the exponent applied, has no fraction. So 1.0, 1e3, 12.50e1 (125),
 * -9007199254740992 and -0 (0) are whole, while 1.5, 1e-1,
 * 1.0000000000000001 and 9007199254740993 (2^53 + 1) are not. When whole,
 * *@out is the value (exact). Thread: any. */
int exw_json_number_whole(const struct exw_json_value *v, double *out);

/* Writes @v in its shortest round-trip decimal form as JavaScript prints
 * numbers (1.5, 100000, 1e+21, 1e-7, -0 as "0"; NaN, Infinity) into @out (at
 * least 32 bytes). Thread: any. */
void exw_json_format_number(double v, char out[32]);

/* Appends @s (@len bytes) to @b as a JSON string literal, quotes included:
 * the quote, the backslash and control characters escaped (\n, \u001f...),
 * every ill-formed UTF-8 sequence replaced by U+FFFD (one per maximal subpart)
 * and NUL bytes too (this reader refuses the escape \u0000). Each input byte
 * becomes at most 6 output bytes. Returns EXW_ELIMIT (b unchanged) past b's
 * cap. Thread: any. */
EXW_MUST_CHECK exw_err exw_json_append_string(struct exw_buf *b, const char *s, size_t len);

#endif
