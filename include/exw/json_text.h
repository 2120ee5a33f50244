/* json_text.h: reading a JSON text that passed exw_json_check() (json.h) in
 * place, and RFC 6901 JSON Pointers over such texts and over cJSON trees.
 *
 * Values are spans of the text (struct exw_json_value): finding one skips the
 * values before it, decoding a string copies it, and nothing else allocates.
 * So reading costs the text itself and at most one copy of what is read,
 * whatever the text's shape. */
#ifndef EXW_JSON_TEXT_H
#define EXW_JSON_TEXT_H

#include <stddef.h>
#include "exw/err.h"

struct cJSON;

enum exw_json_kind {
    EXW_JSON_NONE, /* no value: a member that is absent, a pointer to nothing */
    EXW_JSON_NULL,
    EXW_JSON_FALSE,
    EXW_JSON_TRUE,
    EXW_JSON_NUMBER,
    EXW_JSON_STRING,
    EXW_JSON_ARRAY,
    EXW_JSON_OBJECT
};

/* One value of a text that passed exw_json_check(), borrowed from that text. */
struct exw_json_value {
    enum exw_json_kind kind;
    const char *text; /* the value as written: "a\n" with its quotes, 1.50, {...} */
    size_t len;
    const char *str; /* for a string, when its owner has decoded it: NUL-terminated */
    size_t str_len;
};

/* The top-level value of the checked text @buf (@len bytes). Thread: any. */
void exw_json_root(const char *buf, size_t len, struct exw_json_value *out);

/* "string", "number", "object"... ("nothing" for EXW_JSON_NONE). Thread: any. */
const char *exw_json_kind_name(enum exw_json_kind kind);

/* Walks the members of an object or the elements of an array, in order. */
struct exw_json_iter {
    const char *text;
    size_t len;
    size_t pos;
};

/* Starts a walk over @v (an object or an array; anything else has no
 * members). Thread: any. */
void exw_json_iter_init(struct exw_json_iter *it, const struct exw_json_value *v);

/* The next member (@name its name, a string value, may be NULL) or element
 * (@name is then NONE). Returns 0, leaving @value NONE, after the last one.
 * Thread: owner of @it. */
int exw_json_iter_next(struct exw_json_iter *it, struct exw_json_value *name,
                       struct exw_json_value *value);

/* Decodes the string value @s into @out (at least s->len bytes: decoding
 * never grows a string), NUL-terminated; returns its length in bytes.
 * Thread: any. */
size_t exw_json_string_decode(const struct exw_json_value *s, char *out);

/* A decoded heap copy of the string value @s; *@len (may be NULL) is its
 * length. Caller frees. Thread: any. */
char *exw_json_string_dup(const struct exw_json_value *s, size_t *len);

/* Whether the string value @s decodes to the @n bytes at @text, without
 * decoding it anywhere. Thread: any. */
int exw_json_string_eq(const struct exw_json_value *s, const char *text, size_t n);

/* Resolves an RFC 6901 JSON Pointer (as exw_json_pointer() does) against
 * @root, a value of a checked text: *@out is the value named, or NONE. Returns
 * EXW_EJSON (and NONE) when @pointer is NULL or not a valid pointer. Costs a
 * walk over the values it passes by, never an allocation. Thread: any. */
EXW_MUST_CHECK exw_err exw_json_pointer_text(const struct exw_json_value *root, const char *pointer,
                                             struct exw_json_value *out);

/* Resolves an RFC 6901 JSON Pointer against @root ("" is @root itself; member
 * names match exactly, the first of equal names wins; array indexes are 0 or
 * [1-9][0-9]*, so "-" names nothing). Returns EXW_OK with *@out the value
 * (borrowed from @root) or NULL when the pointer names nothing; EXW_EJSON (and
 * *@out NULL) when @pointer is NULL or not a valid pointer. Thread: any. */
EXW_MUST_CHECK exw_err exw_json_pointer(const struct cJSON *root, const char *pointer,
                                        const struct cJSON **out);

/* Whether @pointer is a syntactically valid JSON Pointer. Thread: any. */
int exw_json_pointer_valid(const char *pointer);

/* The value of the four hex digits at @p (as in \u00e9), or -1 when they are
 * not four hex digits. Thread: any. */
long exw_json_hex4(const char *p);

/* Describes @v for an error text, short and valid UTF-8: string "abc" (the
 * first 40 bytes of its decoded text, then ...), number 1.50 (as written, the
 * first 40 characters), true, false, null, array, object, nothing.
 * Thread: any. */
void exw_json_describe(const struct exw_json_value *v, char *out, size_t outsz);

#endif
