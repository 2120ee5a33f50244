/* buf.c: a growable byte buffer with a hard cap (curl's dynbuf). */
#include "exw/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void exw_buf_init(struct exw_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void exw_buf_cleanup(struct exw_buf *b)
{
    free(b->data);
    exw_buf_init(b, b->max);
}

void exw_buf_reset(struct exw_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

/* Makes room for @extra more bytes plus the terminating NUL. */
static exw_err reserve(struct exw_buf *b, size_t extra)
{
    size_t need;
    size_t cap;

    if (extra > b->max || b->len > b->max - extra)
        return EXW_ELIMIT;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return EXW_OK;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    b->data = exw_xrealloc(b->data, cap);
    b->cap = cap;
    return EXW_OK;
}

exw_err exw_buf_append(struct exw_buf *b, const void *p, size_t n)
{
    exw_err rc = reserve(b, n);

    if (rc != EXW_OK)
        return rc;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return EXW_OK;
}

static exw_err vappend(struct exw_buf *b, size_t n, size_t room, const char *fmt, va_list ap)
    EXW_PRINTF(4, 0);
static int vlength(const char *fmt, va_list ap) EXW_PRINTF(1, 0);

/* Appends at most @room of the @n bytes that @fmt makes, plus the NUL. */
static exw_err vappend(struct exw_buf *b, size_t n, size_t room, const char *fmt, va_list ap)
{
    size_t take = n < room ? n : room;
    exw_err rc = reserve(b, take);

    if (rc != EXW_OK)
        return rc;
    vsnprintf(b->data + b->len, take + 1, fmt, ap);
    b->len += take;
    return take < n ? EXW_ELIMIT : EXW_OK;
}

/* The length of what @fmt makes, or -1. */
static int vlength(const char *fmt, va_list ap)
{
    va_list aq;
    int n;

    va_copy(aq, ap);
    n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    return n;
}

exw_err exw_buf_printf(struct exw_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    exw_err rc = EXW_ELIMIT;

    va_start(ap, fmt);
    n = vlength(fmt, ap);
    if (n >= 0)
        rc = vappend(b, (size_t)n, (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

exw_err exw_buf_printf_cut(struct exw_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    exw_err rc = EXW_ELIMIT;

    va_start(ap, fmt);
    n = vlength(fmt, ap);
    if (n >= 0)
        rc = vappend(b, (size_t)n, b->max - b->len, fmt, ap);
    va_end(ap);
    return rc;
}

char *exw_buf_steal(struct exw_buf *b, size_t *len)
{
    char *p = b->data;

    if (len != NULL)
        *len = b->len;
    exw_buf_init(b, b->max);
    return p;
}
