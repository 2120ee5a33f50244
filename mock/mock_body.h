/*
 * The pure half of export-mock-lookup: a growable buffer, the deterministic answer for a key,
 * and the decoding and escaping of request targets. No I/O beyond the out-of-memory message,
 * no shared state: every function is safe to call from any thread.
 */
#ifndef MOCK_BODY_H
#define MOCK_BODY_H

#include <stddef.h>

/* A growable byte string: zero-initialise it; p is NUL-terminated once anything was added. */
struct mock_buf {
    char *p;
    size_t len;
    size_t cap;
};

/* realloc() that prints a message and aborts when memory runs out; n == 0 is allowed. */
void *mock_xrealloc(void *p, size_t n);

/* Makes room for extra more bytes (and the NUL); afterwards b->p is never NULL. */
void mock_buf_grow(struct mock_buf *b, size_t extra);
void mock_buf_add(struct mock_buf *b, const void *p, size_t n);
void mock_buf_adds(struct mock_buf *b, const char *s);
void mock_buf_addc(struct mock_buf *b, char c);
__attribute__((format(printf, 2, 3))) void mock_buf_addf(struct mock_buf *b, const char *fmt, ...);
/* Frees the bytes and leaves b empty, ready for reuse. */
void mock_buf_free(struct mock_buf *b);

/*
 * Appends the JSON answer for the key (key_len raw bytes, which may hold NULs). With pad_to > 0
 * a "pad" member makes the body exactly pad_to bytes long when that is possible, else empty.
 */
void mock_body_build(struct mock_buf *b, const char *key, size_t key_len, size_t pad_to);

/* Appends the n bytes at s as a JSON string; a byte that is not part of well-formed UTF-8 is
 * written as U+FFFD. */
void mock_json_string(struct mock_buf *b, const char *s, size_t n);

/*
 * Splits the raw (still percent-encoded) list of n bytes at s at each ',' and decodes each part
 * into (*keys)[i], of *nkeys: a ',' inside a key arrives as %2C and stays in it. Returns 0, -1 on a
 * malformed escape, -2 on an empty key; either way free the keys with mock_keys_free().
 */
int mock_split_keys(const char *s, size_t n, struct mock_buf **keys, size_t *nkeys);
void mock_keys_free(struct mock_buf *keys, size_t n);

/* Appends s with %HH escapes decoded ('+' stays '+'); returns 0, or -1 on a malformed escape. */
int mock_pct_decode(const char *s, size_t n, struct mock_buf *out);

/*
 * Finds the first parameter called name in the raw query q (without the '?'); returns 1 with the
 * decoded value appended to out, 0 when there is none, -1 when its value is malformed.
 */
int mock_query_param(const char *q, const char *name, struct mock_buf *out);

/* Finds the first parameter called name in the raw query q: returns 1 with *value and *len its
 * raw (still percent-encoded) value in q, or 0 when there is none. */
int mock_query_raw(const char *q, const char *name, const char **value, size_t *len);

/* Appends s with every byte below 0x20 and the backslash written as \xHH (lowercase hex). */
void mock_buf_add_escaped(struct mock_buf *b, const char *s, size_t n);

#endif
