/* err.h: error codes shared by every module of export-worker.
 *
 * Fallible functions return an exw_err and may fill a caller-owned
 * struct exw_errbuf with a sentence a person can act on. */
#ifndef EXW_ERR_H
#define EXW_ERR_H

#include <stddef.h>

#if defined(__GNUC__) || defined(__clang__)
#define EXW_MUST_CHECK __attribute__((warn_unused_result))
#define EXW_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define EXW_MUST_CHECK
#define EXW_PRINTF(fmt, args)
#endif

typedef enum exw_err {
    EXW_OK = 0,
    EXW_ENOMEM,     /* a library could not allocate */
    EXW_ECONFIG,    /* bad configuration value */
    EXW_EREDIS,     /* Redis transport: the connection is gone or never came */
    EXW_EHTTP,      /* HTTP transport error (connection refused, reset, ...) */
    EXW_EJSON,      /* JSON that does not parse or breaks the job schema */
    EXW_EXLSX,      /* libxlsxwriter or file system error while writing */
    EXW_ETIMEOUT,   /* a deadline passed */
    EXW_ESHUTDOWN,  /* work abandoned because its owner is stopping */
    EXW_ELIMIT,     /* input over a configured size limit */
    EXW_ECANCELLED, /* work abandoned because the job was cancelled */
    EXW_EREPLY,     /* Redis answered with an error that a retry will not change */
    EXW_EAGAIN,     /* Redis answered with an error that passes (LOADING, BUSY...) */
    EXW_ERR_COUNT
} exw_err;

/* A short fixed name for @e ("EHTTP"); never NULL, "EUNKNOWN" if out of range.
 * Thread: any. */
const char *exw_strerror(exw_err e);

/* Optional context for an error, owned by the caller; may be NULL everywhere. */
struct exw_errbuf {
    char msg[256];
};

/* Formats into @eb (if not NULL), truncating to fit. Returns @rc so callers can write
 * `return exw_errbuf_set(eb, EXW_EJSON, "...")`. Thread: any. */
exw_err exw_errbuf_set(struct exw_errbuf *eb, exw_err rc, const char *fmt, ...) EXW_PRINTF(3, 4);

/* The message for errno value @e (strerror_r), in @out; returns @out.
 * Thread: any. */
const char *exw_errno_text(int e, char *out, size_t size);

/* Allocation that never fails: logs to stderr and aborts on OOM (redis zmalloc).
 * Thread: any. */
void *exw_xmalloc(size_t n);
void *exw_xcalloc(size_t n, size_t size);
void *exw_xrealloc(void *p, size_t n);
char *exw_xstrdup(const char *s);
char *exw_xstrndup(const char *s, size_t n);

#define EXW_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            exw_assert_fail(#cond, __FILE__, __LINE__);                                            \
    } while (0)

/* Reports a broken invariant (a bug, never bad input) and aborts. */
void exw_assert_fail(const char *what, const char *file, int line) __attribute__((noreturn));

#endif
