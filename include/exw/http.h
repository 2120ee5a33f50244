/* http.h: blocking HTTP GET for the lookup pool (the only user of libcurl).
 *
 * One struct exw_http per pool thread, reused so that connections stay alive. */
#ifndef EXW_HTTP_H
#define EXW_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include "exw/buf.h"
#include "exw/err.h"

struct exw_http;

/* Call once in main before any thread starts: curl's global state, and the
 * DNS cache all handles share. Thread: main. */
EXW_MUST_CHECK exw_err exw_http_global_init(void);
void exw_http_global_cleanup(void);

/* A handle for one thread. Thread: owner. */
EXW_MUST_CHECK exw_err exw_http_new(struct exw_http **out, struct exw_errbuf *eb);
void exw_http_free(struct exw_http *h);

/* Returns nonzero when the request should stop at once (job cancelled or over). */
typedef int (*exw_http_abort_fn)(void *ud);

struct exw_http_request {
    const char *url;
    const char *auth;           /* Authorization header value, or NULL */
    long timeout_ms;            /* total time for the request, connect included */
    size_t max_body;            /* larger bodies fail with EXW_ELIMIT */
    const char *ca_file;        /* PEM CA bundle for https, or NULL for the system's */
    int fresh_connect;          /* use a new connection, not a kept-alive one */
    int compressed;             /* ask for a compressed body (Accept-Encoding with every
                                   coding curl decodes); without, none is asked for and
                                   none is decoded */
    exw_http_abort_fn abort_fn; /* may be NULL */
    void *abort_ud;
};

struct exw_http_response {
    long status;          /* HTTP status, 0 when none arrived (also on an error after
                             the status line, e.g. a body over the cap) */
    long retry_after_s;   /* Retry-After in seconds, or -1 */
    int sent;             /* times the request went out: curl silently resends once
                             when a kept-alive connection dies unanswered */
    int64_t last_sent_us; /* exw_mono_us() when it last went out; 0 when it never did */
    struct exw_buf body;  /* owned by the caller: exw_buf_cleanup */
};

/* Performs one GET without following redirects. Returns EXW_OK when a response
 * arrived (whatever its status), EXW_ETIMEOUT, EXW_EHTTP (connection failed or
 * broke), EXW_ELIMIT (body over the cap), EXW_ECANCELLED (abort_fn said so).
 * @resp must be initialised with exw_http_response_init. Thread: owner of @h. */
EXW_MUST_CHECK exw_err exw_http_get(struct exw_http *h, const struct exw_http_request *req,
                                    struct exw_http_response *resp, struct exw_errbuf *eb);

/* Connects to the host of @req's URL without sending anything, within its
 * timeout, so that the name is in the DNS cache every handle shares before
 * the first request. Returns EXW_OK once connected; otherwise as exw_http_get
 * does (EXW_EHTTP also for a name that does not resolve). *@resolved says
 * whether the name resolved, whether or not the connection then failed.
 * Only @req's url, timeout_ms, ca_file and abort_fn count. Thread: any. */
EXW_MUST_CHECK exw_err exw_http_resolve(const struct exw_http_request *req, int *resolved,
                                        struct exw_errbuf *eb);

void exw_http_response_init(struct exw_http_response *r, size_t max_body);
void exw_http_response_cleanup(struct exw_http_response *r);

/* Expands @tmpl, replacing each "{key}" with @key (@len bytes) percent-encoded:
 * every byte outside A-Z a-z 0-9 - . _ ~ becomes %XX. Caller frees *@url.
 * Only http:// and https:// templates are accepted. Thread: any. */
EXW_MUST_CHECK exw_err exw_http_expand(const char *tmpl, const char *key, size_t len, char **url,
                                       struct exw_errbuf *eb);

/* Expands the batch template @tmpl, replacing each "{keys}" with the @n
 * NUL-terminated @keys, each percent-encoded as exw_http_expand does (so a
 * ',' in a key is %2C) and joined by ','. Caller frees *@url. EXW_ELIMIT when
 * the URL would pass 1 MiB. Thread: any. */
EXW_MUST_CHECK exw_err exw_http_expand_batch(const char *tmpl, const char *const *keys, size_t n,
                                             char **url, struct exw_errbuf *eb);

#endif
