/* http.c: blocking GET for the lookup pool; the only user of libcurl.
 *
 * Each pool thread owns one struct exw_http and so one CURL easy handle, reused
 * for every request so that its connections stay open between lookups.
 *
 * All handles share one DNS cache (a curl share handle, made once in
 * exw_http_global_init). Without it each pool thread asks the resolver for
 * itself: 32 questions for one name when a job starts, and right after a
 * container starts its resolver may stall each of them for seconds.
 * exw_http_resolve puts a service's name in the shared cache before the first
 * job, so the pool's first requests find it there.
 *
 * Every handle sets CURLOPT_QUICK_EXIT: by default a transfer that times out
 * while its name is being resolved waits for the resolver thread to finish,
 * however long the resolver stalls, so a 5 s timeout could take 40 s. With it
 * the resolver thread is left to end (and free itself) on its own.
 *
 * A request blocks its thread until it ends, as curl_easy_perform would, but
 * is driven here, on a multi handle of the handle's own, by the readiness of
 * its sockets (perform). curl_easy_perform drives it with
 * curl_multi_perform, which asks the kernel whether the socket is readable
 * before every read, on top of the poll() that waits: five poll() calls for a
 * request on a kept-alive connection. Told which socket is ready
 * (curl_multi_socket_action), curl skips its own checks: three calls, and
 * about a twentieth less of the worker's CPU per lookup. */
#include "exw/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include "exw/clock.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Sockets one transfer may have at once: its connection, a second address
 * tried beside the first (happy eyeballs), the resolver thread's pipe. */
#define SOCKETS_MAX 8
/* A request that waits is asked whether to stop (abort_fn) at least this
 * often, as curl_easy_perform asks the progress callback. */
#define ABORT_CHECK_MS 1000

struct exw_http {
    CURL *curl;
    CURLM *multi;  /* the only transfer on it is curl's, while exw_http_get runs */
    char *ca_file; /* the handle's CURLOPT_CAINFO, NULL for curl's default */
    int set_up;    /* set_common() succeeded for ca_file */
    /* The sockets curl wants watched, and for what (on_socket). */
    struct pollfd fds[SOCKETS_MAX];
    nfds_t nfds;
    int64_t timer_us; /* exw_mono_us() when curl wants its timeouts run; -1: none */
    char errbuf[CURL_ERROR_SIZE];
};

/* What the write and header callbacks of one request see. */
struct transfer {
    struct exw_http_response *resp;
    int over_cap;
    const struct exw_http_request *req;
};

/* The DNS cache every handle shares, and one lock for each kind of data curl
 * locks in it. Set up and torn down by the main thread alone, with no other
 * thread running. */
static CURLSH *share;
static pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];

static void share_lock(CURL *c, curl_lock_data data, curl_lock_access access, void *ud)
{
    (void)c;
    (void)access;
    (void)ud;
    pthread_mutex_lock(&share_mu[data]);
}

static void share_unlock(CURL *c, curl_lock_data data, void *ud)
{
    (void)c;
    (void)ud;
    pthread_mutex_unlock(&share_mu[data]);
}

exw_err exw_http_global_init(void)
{
    int i;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return EXW_ENOMEM;
    share = curl_share_init();
    if (share == NULL) {
        curl_global_cleanup();
        return EXW_ENOMEM;
    }
    for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&share_mu[i], NULL);
    curl_share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    return EXW_OK;
}

void exw_http_global_cleanup(void)
{
    int i;

    curl_share_cleanup(share);
    share = NULL;
    for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&share_mu[i]);
    curl_global_cleanup();
}

void exw_http_response_init(struct exw_http_response *r, size_t max_body)
{
    r->sent = 0;
    r->last_sent_us = 0;
    r->status = 0;
    r->retry_after_s = -1;
    exw_buf_init(&r->body, max_body);
}

void exw_http_response_cleanup(struct exw_http_response *r) { exw_buf_cleanup(&r->body); }

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct transfer *tr = ud;
    size_t n = size * nmemb;

    if (exw_buf_append(&tr->resp->body, data, n) != EXW_OK) {
        tr->over_cap = 1;
        return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
    }
    return n;
}

/* Picks Retry-After out of the headers: only the delay-seconds form; an HTTP
 * date is rare from services and treated as absent. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct transfer *tr = ud;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";

    if (n > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        char value[32];
        size_t len = n - (sizeof(name) - 1);
        char *end;
        long secs;

        if (len >= sizeof(value))
            len = sizeof(value) - 1;
        memcpy(value, data + sizeof(name) - 1, len);
        value[len] = '\0';
        secs = strtol(value, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (end != value && *end == '\0' && secs >= 0)
            tr->resp->retry_after_s = secs;
    }
    return n;
}

/* Called as each request is about to go out on its connection, new or
 * reused: so curl's own resend on a fresh connection is counted too. */
static int on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    struct transfer *tr = ud;

    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    tr->resp->sent++;
    tr->resp->last_sent_us = exw_mono_us();
    return CURL_PREREQFUNC_OK;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct transfer *tr = ud;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return tr->req->abort_fn != NULL && tr->req->abort_fn(tr->req->abort_ud);
}

/* The options every request of @h shares, set once per handle rather than
 * per request: curl_easy_reset and two dozen options cost a lookup about a
 * tenth of its instructions. Returns 0 when one that guards the requests
 * (the protocols, the certificate checks and the CA file) could not be set,
 * for lack of memory; the others only make a request fail if they fail. */
static int set_common(struct exw_http *h)
{
    CURL *c = h->curl;
    int ok = 1;

    curl_easy_setopt(c, CURLOPT_SHARE, share);
    curl_easy_setopt(c, CURLOPT_QUICK_EXIT, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    /* A key of "." or ".." stays one path segment, as the protocol says. */
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    ok &= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    /* Counts each time the request goes out (curl's own resend included). */
    curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Certificates are always verified (curl's default, kept explicit). */
    ok &= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK;
    if (h->ca_file != NULL)
        ok &= curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file) == CURLE_OK;
    return ok;
}

/* curl's word on which of a transfer's sockets to watch, and for what. */
static int on_socket(CURL *c, curl_socket_t fd, int what, void *ud, void *socket_ud)
{
    struct exw_http *h = ud;
    nfds_t i;

    (void)c;
    (void)socket_ud;
    for (i = 0; i < h->nfds && h->fds[i].fd != fd; i++)
        ;
    if (what == CURL_POLL_REMOVE) {
        if (i < h->nfds)
            h->fds[i] = h->fds[--h->nfds];
        return 0;
    }
    if (i == h->nfds) {
        if (h->nfds == SOCKETS_MAX)
            return -1; /* curl fails the transfer */
        h->fds[h->nfds++].fd = fd;
    }
    h->fds[i].events =
        (short)(((what & CURL_POLL_IN) ? POLLIN : 0) | ((what & CURL_POLL_OUT) ? POLLOUT : 0));
    return 0;
}

/* curl's word on when to run its timeouts next (-1: no need). */
static int on_timer(CURLM *m, long ms, void *ud)
{
    struct exw_http *h = ud;

    (void)m;
    h->timer_us = ms < 0 ? -1 : exw_mono_us() + (int64_t)ms * 1000;
    return 0;
}

/* Runs the transfer set up on h->curl to its end, waiting in poll() on its
 * sockets and handing curl each one that is ready. Returns its result. */
static CURLcode perform(struct exw_http *h, const struct exw_http_request *req)
{
    struct pollfd ready[SOCKETS_MAX];
    CURLcode cc = CURLE_OK;
    CURLMcode mc;
    CURLMsg *msg;
    int running = 0, left, n, aborted = 0;
    nfds_t i, nready;

    mc = curl_multi_add_handle(h->multi, h->curl);
    if (mc != CURLM_OK)
        return mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
    /* Starts it: on a kept-alive connection, the request goes out here. */
    mc = curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    while (mc == CURLM_OK && running > 0) {
        int64_t wait_ms = ABORT_CHECK_MS;

        if (h->timer_us >= 0) {
            int64_t due_ms = (h->timer_us - exw_mono_us() + 999) / 1000;

            if (due_ms < wait_ms)
                wait_ms = due_ms > 0 ? due_ms : 0;
        }
        n = poll(h->fds, h->nfds, (int)wait_ms);
        if (n < 0 && errno != EINTR) {
            char why[96];

            snprintf(h->errbuf, sizeof(h->errbuf), "poll failed: %s",
                     exw_errno_text(errno, why, sizeof(why)));
            cc = CURLE_RECV_ERROR;
            break;
        }
        /* curl's callbacks may change h->fds under the loop: first the list.
         * A descriptor that is no longer open (curl says when it closes one,
         * so never, but it must not make every poll() return at once) is
         * dropped. */
        for (i = nready = 0; n > 0 && i < h->nfds;) {
            if (h->fds[i].revents != 0)
                ready[nready++] = h->fds[i];
            if (h->fds[i].revents & POLLNVAL)
                h->fds[i] = h->fds[--h->nfds]; /* the last one, not yet looked at */
            else
                i++;
        }
        for (i = 0; mc == CURLM_OK && i < nready; i++) {
            short rev = ready[i].revents;
            int ev = ((rev & POLLIN) ? CURL_CSELECT_IN : 0) |
                     ((rev & POLLOUT) ? CURL_CSELECT_OUT : 0) |
                     ((rev & (POLLERR | POLLHUP | POLLNVAL)) ? CURL_CSELECT_ERR : 0);

            mc = curl_multi_socket_action(h->multi, ready[i].fd, ev, &running);
        }
        if (mc == CURLM_OK && running > 0 && h->timer_us >= 0 && exw_mono_us() >= h->timer_us)
            mc = curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        if (n == 0 && running > 0 && req->abort_fn != NULL && req->abort_fn(req->abort_ud)) {
            aborted = 1;
            break;
        }
    }
    while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE)
            cc = msg->data.result;
    }
    /* Also when it did not end: the connection is then closed, not kept. */
    curl_multi_remove_handle(h->multi, h->curl);
    if (aborted)
        cc = CURLE_ABORTED_BY_CALLBACK;
    else if (mc == CURLM_OUT_OF_MEMORY)
        cc = CURLE_OUT_OF_MEMORY;
    else if (mc != CURLM_OK && cc == CURLE_OK)
        cc = CURLE_FAILED_INIT;
    return cc;
}

exw_err exw_http_new(struct exw_http **out, struct exw_errbuf *eb)
{
    struct exw_http *h = exw_xcalloc(1, sizeof(*h));
    exw_err rc = EXW_OK;

    h->timer_us = -1;
    h->curl = curl_easy_init();
    h->multi = curl_multi_init();
    if (h->multi != NULL) {
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
        curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer);
        curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    }
    if (h->curl == NULL || h->multi == NULL || !(h->set_up = set_common(h))) {
        rc = exw_errbuf_set(eb, EXW_ENOMEM, "cannot set up a curl handle");
        exw_http_free(h);
        h = NULL;
    }
    *out = h;
    return rc;
}

void exw_http_free(struct exw_http *h)
{
    if (h == NULL)
        return;
    curl_easy_cleanup(h->curl);
    curl_multi_cleanup(h->multi); /* closes the connections it keeps */
    free(h->ca_file);
    free(h);
}

static exw_err map_curl_error(CURLcode cc, const struct transfer *tr, const char *detail,
                              struct exw_errbuf *eb)
{
    const char *text = detail[0] ? detail : curl_easy_strerror(cc);

    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return exw_errbuf_set(eb, EXW_ETIMEOUT, "no answer within %ld ms", tr->req->timeout_ms);
    case CURLE_ABORTED_BY_CALLBACK:
        return exw_errbuf_set(eb, EXW_ECANCELLED, "request abandoned");
    case CURLE_WRITE_ERROR:
        if (tr->over_cap)
            return exw_errbuf_set(eb, EXW_ELIMIT, "response body over %zu bytes",
                                  tr->resp->body.max);
        break;
    case CURLE_OUT_OF_MEMORY:
        return exw_errbuf_set(eb, EXW_ENOMEM, "%s", text);
    default:
        break;
    }
    return exw_errbuf_set(eb, EXW_EHTTP, "%s", text);
}

exw_err exw_http_get(struct exw_http *h, const struct exw_http_request *req,
                     struct exw_http_response *resp, struct exw_errbuf *eb)
{
    struct transfer tr = {.resp = resp, .over_cap = 0, .req = req};
    struct curl_slist *headers = NULL;
    char *auth = NULL;
    CURLcode cc;
    exw_err rc = EXW_OK;
    CURL *c = h->curl;

    resp->status = 0;
    resp->retry_after_s = -1;
    resp->sent = 0;
    resp->last_sent_us = 0;
    exw_buf_reset(&resp->body);
    h->errbuf[0] = '\0';
    /* A handle keeps its CA file: one that differs (in practice never, as
     * the whole worker has one) starts the handle's options over. */
    if (!h->set_up || (req->ca_file == NULL) != (h->ca_file == NULL) ||
        (req->ca_file != NULL && strcmp(req->ca_file, h->ca_file) != 0)) {
        free(h->ca_file);
        h->ca_file = req->ca_file ? exw_xstrdup(req->ca_file) : NULL;
        curl_easy_reset(c);
        h->set_up = set_common(h);
        if (!h->set_up)
            return exw_errbuf_set(eb, EXW_ENOMEM, "cannot set up the curl handle");
    }
    if (req->auth != NULL) {
        size_t len = strlen(req->auth) + sizeof("Authorization: ");

        auth = exw_xmalloc(len);
        snprintf(auth, len, "Authorization: %s", req->auth);
        headers = curl_slist_append(NULL, auth);
        if (headers == NULL) {
            rc = exw_errbuf_set(eb, EXW_ENOMEM, "cannot build request headers");
            goto out;
        }
    }
    /* What differs from one request to the next (set_common has the rest).
     * The URL is copied: should that fail, the last request's must not be
     * sent in its place. */
    if (curl_easy_setopt(c, CURLOPT_URL, req->url) != CURLE_OK) {
        rc = exw_errbuf_set(eb, EXW_ENOMEM, "cannot set the request's URL");
        goto out;
    }
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &tr);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &tr);
    curl_easy_setopt(c, CURLOPT_PREREQDATA, &tr);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &tr);
    curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, req->fresh_connect ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
                     (curl_off_t)(req->max_body > 0 ? req->max_body : 0));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    /* Only when asked: the header alone costs curl about a tenth of a small
     * request's instructions. */
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, req->compressed ? "" : NULL);

    cc = perform(h, req);
    if (cc == CURLE_FILESIZE_EXCEEDED) {
        tr.over_cap = 1;
        cc = CURLE_WRITE_ERROR;
    }
    /* The status, also of a transfer that failed after it (0 when none came). */
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    if (cc != CURLE_OK)
        rc = map_curl_error(cc, &tr, h->errbuf, eb);
out:
    /* The header list and the auth value are freed at once: the secret does not
     * outlive the request in our memory. */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(headers);
    if (auth != NULL) {
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    return rc;
}

exw_err exw_http_resolve(const struct exw_http_request *req, int *resolved, struct exw_errbuf *eb)
{
    struct exw_http_response resp;
    struct transfer tr = {.resp = &resp, .over_cap = 0, .req = req};
    char detail[CURL_ERROR_SIZE] = "";
    curl_off_t lookup_us = 0;
    exw_err rc = EXW_OK;
    CURLcode cc;
    CURL *c;

    *resolved = 0;
    c = curl_easy_init();
    if (c == NULL)
        return exw_errbuf_set(eb, EXW_ENOMEM, "curl_easy_init failed");
    exw_http_response_init(&resp, 0);
    curl_easy_setopt(c, CURLOPT_SHARE, share);
    curl_easy_setopt(c, CURLOPT_QUICK_EXIT, 1L);
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &tr);
    if (req->ca_file != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, req->ca_file);
    cc = curl_easy_perform(c);
    /* The name lookup's time is set once it ended well, also when the
     * connection then failed. */
    curl_easy_getinfo(c, CURLINFO_NAMELOOKUP_TIME_T, &lookup_us);
    *resolved = cc == CURLE_OK || (cc != CURLE_COULDNT_RESOLVE_HOST && lookup_us > 0);
    if (cc != CURLE_OK)
        rc = map_curl_error(cc, &tr, detail, eb);
    curl_easy_cleanup(c);
    exw_http_response_cleanup(&resp);
    return rc;
}

static int unreserved(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

/* Appends the @len bytes at @key to @b, each byte outside RFC 3986's
 * unreserved set percent-encoded. */
static exw_err append_escaped(struct exw_buf *b, const char *key, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    exw_err rc = EXW_OK;
    size_t i;

    for (i = 0; rc == EXW_OK && i < len; i++) {
        unsigned char ch = (unsigned char)key[i];
        char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};

        rc = unreserved(ch) ? exw_buf_append(b, &key[i], 1) : exw_buf_append(b, enc, 3);
    }
    return rc;
}

/* Expands @tmpl with every @placeholder replaced by the @n keys of @keys
 * (@lens their lengths), escaped and joined by commas. */
static exw_err expand(const char *tmpl, const char *placeholder, const char *const *keys,
                      const size_t *lens, size_t n, char **url, struct exw_errbuf *eb)
{
    size_t plen = strlen(placeholder);
    struct exw_buf b;
    const char *p = tmpl;
    exw_err rc = EXW_OK;

    *url = NULL;
    if (strncasecmp(tmpl, "http://", 7) != 0 && strncasecmp(tmpl, "https://", 8) != 0)
        return exw_errbuf_set(eb, EXW_ECONFIG, "only http:// and https:// URLs are allowed");
    exw_buf_init(&b, (size_t)1 << 20);
    for (;;) {
        const char *hole = strstr(p, placeholder);
        size_t i;

        if (hole == NULL) {
            rc = exw_buf_append(&b, p, strlen(p));
            break;
        }
        rc = exw_buf_append(&b, p, (size_t)(hole - p));
        for (i = 0; rc == EXW_OK && i < n; i++) {
            if (i > 0)
                rc = exw_buf_append(&b, ",", 1);
            if (rc == EXW_OK)
                rc = append_escaped(&b, keys[i], lens[i]);
        }
        if (rc != EXW_OK)
            break;
        p = hole + plen;
    }
    if (rc != EXW_OK) {
        exw_buf_cleanup(&b);
        return exw_errbuf_set(eb, rc, "lookup URL over 1 MiB");
    }
    if (b.data == NULL)
        rc = exw_buf_append(&b, "", 0);
    *url = exw_buf_steal(&b, NULL);
    return rc;
}

exw_err exw_http_expand(const char *tmpl, const char *key, size_t len, char **url,
                        struct exw_errbuf *eb)
{
    return expand(tmpl, "{key}", &key, &len, 1, url, eb);
}

exw_err exw_http_expand_batch(const char *tmpl, const char *const *keys, size_t n, char **url,
                              struct exw_errbuf *eb)
{
    size_t *lens = exw_xcalloc(n ? n : 1, sizeof(*lens));
    exw_err rc;
    size_t i;

    for (i = 0; i < n; i++)
        lens[i] = strlen(keys[i]);
    rc = expand(tmpl, "{keys}", keys, lens, n, url, eb);
    free(lens);
    return rc;
}
