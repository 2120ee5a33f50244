/* metrics_http.c: GET /metrics and GET /healthz (PROTOCOL.md section 4), on
 * EXPORT_METRICS_ADDR, served by libmicrohttpd.
 *
 * One thread of libmicrohttpd's own polls the socket and answers every
 * request itself: each answer is built in microseconds from atomics (the
 * registry, metrics.h, and the liveness fields of struct worker), never from
 * Redis and never under a lock another thread holds across a request, so
 * one thread is enough, and a slow scraper cannot hold up the worker. A few
 * connections at most, each dropped after a short idle time, bound what a
 * misbehaving client can take.
 *
 * The socket is made here rather than by libmicrohttpd, so that a port in use
 * is reported with the system's own reason.
 *
 * /healthz answers 200 "ok" while the heartbeat thread goes round, Redis has
 * taken a renewal within the heartbeat TTL and every lookup thread runs;
 * else 503 with one line per reason. Other paths are 404, other methods 405. */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "exw/clock.h"
#include "exw/log.h"
#include "exw/setting.h"
#include "worker.h"

#define MAX_CONNECTIONS 8
#define IDLE_TIMEOUT_S 10
#define LISTEN_BACKLOG 16
#define TEXT_MAX ((size_t)16 << 20) /* far above the largest /metrics text */
/* The heartbeat goes round every TTL/3 and makes at most four Redis calls of
 * at most 2 s each: a round this late means the thread is stuck. */
#define HB_CALLS_MS 8000
/* Room for a numeric host and port (NI_MAXHOST is not POSIX). */
#define HOST_MAX 64
#define PORT_MAX 8

struct metrics_http {
    struct worker *w;
    struct MHD_Daemon *daemon;
};

void exw_health_check(struct worker *w, struct exw_buf *why)
{
    const struct exw_config *cfg = w->cfg;
    int64_t now = exw_mono_ms();
    long long ok_at = atomic_load(&w->redis_ok_at);
    long long tick = atomic_load(&w->hb_tick_at);
    long long threads = exw_metrics_gauge(w->metrics, EXW_GAUGE_POOL_THREADS);
    int hb = atomic_load(&w->hb_state);

    if (hb == HB_NOT_STARTED)
        exw_buf_printf_cut(why, "starting: the heartbeat thread has not started yet\n");
    else if (hb == HB_EXITED)
        exw_buf_printf_cut(why, "the heartbeat thread has stopped\n");
    else if (now - tick > 2 * cfg->heartbeat_ttl_ms + HB_CALLS_MS)
        exw_buf_printf_cut(why, "the heartbeat thread is stuck: its last round began %lld ms ago\n",
                           (long long)(now - tick));
    if (now - ok_at > cfg->heartbeat_ttl_ms)
        exw_buf_printf_cut(why,
                           "Redis has not answered for %lld ms (the heartbeat's last "
                           "renewal), longer than the heartbeat TTL of %ld ms\n",
                           (long long)(now - ok_at), cfg->heartbeat_ttl_ms);
    if (threads < cfg->pool_size)
        exw_buf_printf_cut(why, "only %lld of %ld lookup threads are running\n", threads,
                           cfg->pool_size);
}

/* Queues @body (@len bytes; freed by libmicrohttpd when @heap, else static)
 * with @status. */
static enum MHD_Result reply(struct MHD_Connection *con, unsigned status, const char *type,
                             char *body, size_t len, int heap, const char *allow)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, body, heap ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret;

    if (resp == NULL) {
        if (heap)
            free(body);
        return MHD_NO;
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
        (allow != NULL && MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow) != MHD_YES)) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    ret = MHD_queue_response(con, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result static_reply(struct MHD_Connection *con, unsigned status, const char *text,
                                    const char *allow)
{
    return reply(con, status, "text/plain; charset=utf-8", (char *)text, strlen(text), 0, allow);
}

static enum MHD_Result serve_metrics(struct metrics_http *h, struct MHD_Connection *con)
{
    struct exw_buf b;
    size_t len;
    char *text;

    exw_buf_init(&b, TEXT_MAX);
    if (exw_metrics_render(h->w->metrics, &b) != EXW_OK) {
        exw_buf_cleanup(&b);
        return static_reply(con, MHD_HTTP_INTERNAL_SERVER_ERROR, "metrics over 16 MiB\n", NULL);
    }
    text = exw_buf_steal(&b, &len);
    return reply(con, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len, 1, NULL);
}

static enum MHD_Result serve_health(struct metrics_http *h, struct MHD_Connection *con)
{
    struct exw_buf why;
    size_t len;
    char *text;

    exw_buf_init(&why, 4096);
    exw_health_check(h->w, &why);
    if (why.len == 0) {
        exw_buf_cleanup(&why);
        return static_reply(con, MHD_HTTP_OK, "ok\n", NULL);
    }
    text = exw_buf_steal(&why, &len);
    return reply(con, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", text, len, 1,
                 NULL);
}

/* Answers at the first call for a request: neither path takes a body, and a
 * body sent anyway is not read (libmicrohttpd then closes the connection). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    struct metrics_http *h = cls;
    int metrics = strcmp(url, "/metrics") == 0, health = strcmp(url, "/healthz") == 0;

    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    if (!metrics && !health)
        return static_reply(con, MHD_HTTP_NOT_FOUND,
                            "not found: this is export-worker's /metrics and /healthz\n", NULL);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return static_reply(con, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET\n",
                            "GET, HEAD");
    return metrics ? serve_metrics(h, con) : serve_health(h, con);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) EXW_PRINTF(2, 0);
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[256];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    EXW_LOG(EXW_LOG_DEBUG, "metrics endpoint: %s", msg);
}

/* The host and port of @sa, as a URL writes them, into @out. */
static void describe_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t size)
{
    char host[HOST_MAX], port[PORT_MAX];

    if (getnameinfo(sa, len, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, size, "?");
        return;
    }
    snprintf(out, size, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

/* A listening socket on cfg->metrics_addr, into *@fd. */
static exw_err listen_on(const char *addr, int *fd, struct exw_errbuf *eb)
{
    struct addrinfo hints, *res = NULL;
    char host[256], portstr[16], why[256], etext[128];
    long port = 0;
    int one = 1, s, rc;

    *fd = -1;
    if (exw_setting_host_port(addr, host, sizeof(host), &port, why, sizeof(why)) != 0)
        return exw_errbuf_set(eb, EXW_ECONFIG, "EXPORT_METRICS_ADDR: %s", why);
    snprintf(portstr, sizeof(portstr), "%ld", port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0)
        return exw_errbuf_set(eb, EXW_ECONFIG, "EXPORT_METRICS_ADDR: cannot resolve %s: %s", host,
                              gai_strerror(rc));
    s = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(s, res->ai_addr, res->ai_addrlen) != 0 || listen(s, LISTEN_BACKLOG) != 0) {
        int e = errno;

        if (s >= 0)
            close(s);
        freeaddrinfo(res);
        return exw_errbuf_set(eb, EXW_EHTTP, "cannot serve metrics on %s: %s", addr,
                              exw_errno_text(e, etext, sizeof(etext)));
    }
    freeaddrinfo(res);
    *fd = s;
    return EXW_OK;
}

exw_err exw_metrics_http_start(struct worker *w, struct metrics_http **out, struct exw_errbuf *eb)
{
    struct metrics_http *h;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    char where[HOST_MAX + PORT_MAX + 4];
    int fd;
    exw_err rc;

    *out = NULL;
    rc = listen_on(w->cfg->metrics_addr, &fd, eb);
    if (rc != EXW_OK)
        return rc;
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
        describe_addr((struct sockaddr *)&ss, sslen, where, sizeof(where));
    else
        snprintf(where, sizeof(where), "%s", w->cfg->metrics_addr);
    h = exw_xcalloc(1, sizeof(*h));
    h->w = w;
    h->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)IDLE_TIMEOUT_S, MHD_OPTION_END);
    if (h->daemon == NULL) {
        /* Whether libmicrohttpd closed the socket on its way out depends on
         * where it failed; no other thread opens files yet, so a descriptor
         * still open is still this socket. */
        if (fcntl(fd, F_GETFD) != -1)
            close(fd);
        free(h);
        return exw_errbuf_set(eb, EXW_ENOMEM, "cannot start the metrics endpoint on %s", where);
    }
    EXW_LOG(EXW_LOG_INFO, "serving metrics on http://%s/metrics and health on http://%s/healthz",
            where, where);
    *out = h;
    return EXW_OK;
}

void exw_metrics_http_stop(struct metrics_http *h)
{
    if (h == NULL)
        return;
    /* Closes the listening socket too, and waits for the server's thread. */
    MHD_stop_daemon(h->daemon);
    free(h);
}
