/* buf.h: a growable byte buffer with a hard cap (curl's dynbuf). */
#ifndef EXW_BUF_H
#define EXW_BUF_H

#include <stddef.h>
#include "exw/err.h"

struct exw_buf {
    char *data; /* always NUL-terminated when not NULL */
    size_t len;
    size_t cap;
    size_t max; /* appends that would pass this fail with EXW_ELIMIT */
};

/* Caller storage; @max is the most bytes the buffer may hold. Thread: owner. */
void exw_buf_init(struct exw_buf *b, size_t max);
void exw_buf_cleanup(struct exw_buf *b);
void exw_buf_reset(struct exw_buf *b);

/* Appends @n bytes; EXW_ELIMIT (buffer unchanged) past the cap. Thread: owner. */
EXW_MUST_CHECK exw_err exw_buf_append(struct exw_buf *b, const void *p, size_t n);

/* Appends printf-formatted text; EXW_ELIMIT past the cap. Thread: owner. */
EXW_MUST_CHECK exw_err exw_buf_printf(struct exw_buf *b, const char *fmt, ...) EXW_PRINTF(2, 3);

/* Appends printf-formatted text as far as the cap allows, as snprintf() cuts:
 * for messages, where a cut end is better than a failure. Once cut, the buffer
 * is full, so later appends add nothing and the text never has a hole.
 * Returns EXW_ELIMIT when it cut, which the caller may ignore. Thread: owner. */
exw_err exw_buf_printf_cut(struct exw_buf *b, const char *fmt, ...) EXW_PRINTF(2, 3);

/* Hands the data to the caller (to free) and leaves @b empty. Thread: owner. */
char *exw_buf_steal(struct exw_buf *b, size_t *len);

#endif
