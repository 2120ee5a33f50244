/* err.c: error names, the error buffer and the allocator that never fails. */
#include "exw/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exw/utf8.h"

static const char *const err_names[EXW_ERR_COUNT] = {
    [EXW_OK] = "OK",         [EXW_ENOMEM] = "ENOMEM",         [EXW_ECONFIG] = "ECONFIG",
    [EXW_EREDIS] = "EREDIS", [EXW_EHTTP] = "EHTTP",           [EXW_EJSON] = "EJSON",
    [EXW_EXLSX] = "EXLSX",   [EXW_ETIMEOUT] = "ETIMEOUT",     [EXW_ESHUTDOWN] = "ESHUTDOWN",
    [EXW_ELIMIT] = "ELIMIT", [EXW_ECANCELLED] = "ECANCELLED", [EXW_EREPLY] = "EREPLY",
    [EXW_EAGAIN] = "EAGAIN",
};

const char *exw_errno_text(int e, char *out, size_t size)
{
    if (strerror_r(e, out, size) != 0)
        snprintf(out, size, "error %d", e);
    return out;
}

const char *exw_strerror(exw_err e)
{
    if ((int)e < 0 || e >= EXW_ERR_COUNT || err_names[e] == NULL)
        return "EUNKNOWN";
    return err_names[e];
}

exw_err exw_errbuf_set(struct exw_errbuf *eb, exw_err rc, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (eb == NULL)
        return rc;
    va_start(ap, fmt);
    n = vsnprintf(eb->msg, sizeof(eb->msg), fmt, ap);
    va_end(ap);
    /* Cut to whole UTF-8 characters: the text may go into a status hash that
     * clients decode. */
    if (n >= (int)sizeof(eb->msg))
        eb->msg[exw_utf8_cut(eb->msg, (size_t)n, sizeof(eb->msg) - 1)] = '\0';
    return rc;
}

/* Out of memory is not an error callers can handle well (redis zmalloc): say so
 * with one write that needs no allocation, and stop. */
static void oom(size_t n)
{
    char line[96];
    int len =
        snprintf(line, sizeof(line), "lvl=error msg=\"out of memory allocating %zu bytes\"\n", n);

    if (len > 0 && write(2, line, (size_t)len) < 0)
        abort();
    abort();
}

void *exw_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL)
        oom(n);
    return p;
}

void *exw_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (p == NULL)
        oom(n * size);
    return p;
}

void *exw_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (q == NULL)
        oom(n);
    return q;
}

char *exw_xstrndup(const char *s, size_t n)
{
    char *p = exw_xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *exw_xstrdup(const char *s) { return exw_xstrndup(s, strlen(s)); }

void exw_assert_fail(const char *what, const char *file, int line)
{
    char msg[512];
    int len = snprintf(msg, sizeof(msg), "lvl=error msg=\"assertion failed: %s at %s:%d\"\n", what,
                       file, line);

    if (len > 0 && write(2, msg, (size_t)len) < 0)
        abort();
    abort();
}
