/* test_http.c: the blocking GET. The tests talk to a tiny HTTP/1.1 server
 * this file runs on a loopback port: one thread that serves one connection at
 * a time with a canned answer per path and records what it was sent. URL
 * template expansion is tested in test_http_expand.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "exw/http.h"

/* ---- The loopback server ---- */

struct server {
    int lfd;
    unsigned short port;
    pthread_t tid;
    pthread_mutex_t mu;
    char last[8192];    /* guarded by mu: the last request's head */
    unsigned requests;  /* guarded by mu: requests received */
    unsigned json_hits; /* guarded by mu: requests for /json */
};

static struct server srv = {.lfd = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

#define BIG_BODY 5000

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_str(int fd, const char *s) { return send_all(fd, s, strlen(s)); }

/* Reads a request head (up to the blank line) into @buf; its length or -1. */
static ssize_t read_head(int fd, char *buf, size_t size)
{
    size_t len = 0;

    while (len + 1 < size) {
        ssize_t r = recv(fd, buf + len, size - 1 - len, 0);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL)
            return (ssize_t)len;
    }
    return -1;
}

/* Waits until the client closes (or 10 s pass): a server that never answers. */
static void wait_for_close(int fd)
{
    char sink[256];

    for (;;) {
        ssize_t r = recv(fd, sink, sizeof(sink), 0);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return;
    }
}

static void send_body(int fd, const char *status, const char *extra, const char *body)
{
    char head[512];

    snprintf(head, sizeof(head),
             "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s"
             "Connection: close\r\n\r\n",
             status, strlen(body), extra);
    if (send_str(fd, head) == 0)
        send_str(fd, body);
}

static void send_big(int fd, int with_length, size_t size)
{
    char chunk[1000];
    char head[256];
    size_t sent;

    memset(chunk, 'x', sizeof(chunk));
    if (with_length)
        snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", size);
    else
        snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    if (send_str(fd, head) != 0)
        return;
    for (sent = 0; sent < size; sent += sizeof(chunk)) {
        size_t n = size - sent < sizeof(chunk) ? size - sent : sizeof(chunk);

        if (send_all(fd, chunk, n) != 0)
            return;
    }
}

/* gzip of {"a": 1}. */
static const unsigned char GZIPPED[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03,
                                        0xab, 0x56, 0x4a, 0x54, 0xb2, 0x52, 0x30, 0xac, 0x05, 0x00,
                                        0x97, 0x8e, 0xa1, 0xfb, 0x08, 0x00, 0x00, 0x00};

/* Sends GZIPPED as the body, whatever the request asked for. */
static void send_gzipped(int fd)
{
    char head[256];

    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n",
             sizeof(GZIPPED));
    if (send_str(fd, head) == 0)
        send_all(fd, (const char *)GZIPPED, sizeof(GZIPPED));
}

/* Answers one request; returns 1 when the server should stop. */
static int serve(int fd, const char *head)
{
    char path[1024] = "";

    if (sscanf(head, "GET %1023s HTTP/1.1\r\n", path) != 1) {
        send_body(fd, "400 Bad Request", "", "{}");
        return 0;
    }
    pthread_mutex_lock(&srv.mu);
    snprintf(srv.last, sizeof(srv.last), "%s", head);
    srv.requests++;
    if (strcmp(path, "/json") == 0)
        srv.json_hits++;
    pthread_mutex_unlock(&srv.mu);

    if (strcmp(path, "/stop") == 0) {
        send_body(fd, "200 OK", "", "{}");
        return 1;
    }
    if (strcmp(path, "/json") == 0)
        send_body(fd, "200 OK", "", "{\"discount\": {\"ratio\": 0.25}}");
    else if (strcmp(path, "/busy") == 0)
        send_body(fd, "503 Service Unavailable", "Retry-After: 7\r\n", "{\"error\": \"busy\"}");
    else if (strcmp(path, "/slow-down") == 0)
        send_body(fd, "429 Too Many Requests", "retry-after:   120  \r\n", "");
    else if (strcmp(path, "/busy-date") == 0)
        send_body(fd, "503 Service Unavailable", "Retry-After: Wed, 21 Oct 2026 07:28:00 GMT\r\n",
                  "");
    else if (strcmp(path, "/missing") == 0)
        send_body(fd, "404 Not Found", "", "{\"error\": \"no such key\"}");
    else if (strcmp(path, "/redirect") == 0)
        send_body(fd, "302 Found", "Location: /json\r\n", "");
    else if (strcmp(path, "/big") == 0)
        send_big(fd, 1, BIG_BODY);
    else if (strcmp(path, "/big-unsized") == 0)
        send_big(fd, 0, BIG_BODY);
    else if (strcmp(path, "/exact") == 0)
        send_big(fd, 1, 1000);
    else if (strcmp(path, "/gzip") == 0)
        send_gzipped(fd);
    else if (strcmp(path, "/hang") == 0)
        wait_for_close(fd);
    else if (strncmp(path, "/echo/", 6) == 0)
        send_body(fd, "200 OK", "", "[]");
    else
        send_body(fd, "404 Not Found", "", "{}");
    return 0;
}

static void *server_main(void *arg)
{
    char head[8192];

    (void)arg;
    for (;;) {
        struct timeval tv = {10, 0};
        int fd = accept(srv.lfd, NULL, NULL);
        int stop = 0;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break;
        }
        /* A client that vanishes cannot hold the server for ever. */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (read_head(fd, head, sizeof(head)) > 0)
            stop = serve(fd, head);
        close(fd);
        if (stop)
            break;
    }
    return NULL;
}

/* Binds a loopback socket to a free port; the socket or -1. */
static int bind_loopback(unsigned short *port)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (exw_http_global_init() != EXW_OK)
        return -1;
    srv.lfd = bind_loopback(&srv.port);
    if (srv.lfd < 0 || listen(srv.lfd, 16) != 0)
        return -1;
    if (pthread_create(&srv.tid, NULL, server_main, NULL) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    struct exw_http *h = NULL;
    struct exw_http_response resp;
    struct exw_http_request req = {0};
    char url[64];
    exw_err rc;

    (void)state;
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/stop", (unsigned)srv.port);
    req.url = url;
    req.timeout_ms = 5000;
    req.max_body = 1000;
    exw_http_response_init(&resp, 1000);
    if (exw_http_new(&h, NULL) != EXW_OK)
        return -1;
    rc = exw_http_get(h, &req, &resp, NULL);
    exw_http_response_cleanup(&resp);
    exw_http_free(h);
    if (rc != EXW_OK)
        return -1;
    pthread_join(srv.tid, NULL);
    close(srv.lfd);
    exw_http_global_cleanup();
    return 0;
}

/* ---- GET ---- */

/* Per-test client state. */
struct client {
    struct exw_http *h;
    struct exw_http_response resp;
    struct exw_http_request req;
    struct exw_errbuf eb;
    char url[256];
};

static int client_setup(void **state)
{
    struct client *c = calloc(1, sizeof(*c));

    if (c == NULL || exw_http_new(&c->h, NULL) != EXW_OK) {
        free(c);
        return -1;
    }
    exw_http_response_init(&c->resp, 1000);
    c->req.url = c->url;
    c->req.timeout_ms = 5000;
    c->req.max_body = 1000;
    *state = c;
    return 0;
}

static int client_teardown(void **state)
{
    struct client *c = *state;

    exw_http_response_cleanup(&c->resp);
    exw_http_free(c->h);
    free(c);
    return 0;
}

/* GETs @path from the loopback server. */
static exw_err get(struct client *c, const char *path)
{
    snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%u%s", (unsigned)srv.port, path);
    memset(&c->eb, 0, sizeof(c->eb));
    return exw_http_get(c->h, &c->req, &c->resp, &c->eb);
}

/* A copy of the last request head the server saw, in lower case. */
static void last_request_lower(char *out, size_t size)
{
    size_t i;

    pthread_mutex_lock(&srv.mu);
    snprintf(out, size, "%s", srv.last);
    pthread_mutex_unlock(&srv.mu);
    for (i = 0; out[i] != '\0'; i++)
        if (out[i] >= 'A' && out[i] <= 'Z')
            out[i] = (char)(out[i] - 'A' + 'a');
}

static void last_request(char *out, size_t size)
{
    pthread_mutex_lock(&srv.mu);
    snprintf(out, size, "%s", srv.last);
    pthread_mutex_unlock(&srv.mu);
}

static unsigned json_hits(void)
{
    unsigned n;

    pthread_mutex_lock(&srv.mu);
    n = srv.json_hits;
    pthread_mutex_unlock(&srv.mu);
    return n;
}

static long elapsed_ms(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000L + (now.tv_nsec - since->tv_nsec) / 1000000L;
}

static void test_get_200_json(void **state)
{
    struct client *c = *state;
    char head[8192];

    assert_int_equal(get(c, "/json"), EXW_OK);
    assert_int_equal(c->resp.status, 200);
    assert_int_equal(c->resp.retry_after_s, -1);
    assert_int_equal(c->resp.body.len, strlen("{\"discount\": {\"ratio\": 0.25}}"));
    assert_string_equal(c->resp.body.data, "{\"discount\": {\"ratio\": 0.25}}");
    last_request(head, sizeof(head));
    assert_true(strncmp(head, "GET /json HTTP/1.1\r\n", 20) == 0);

    /* The handle is reused: a second request, and the body is replaced, not appended. */
    assert_int_equal(get(c, "/json"), EXW_OK);
    assert_int_equal(c->resp.status, 200);
    assert_string_equal(c->resp.body.data, "{\"discount\": {\"ratio\": 0.25}}");
}

static void test_get_expanded_url(void **state)
{
    struct client *c = *state;
    char tmpl[128], head[8192];
    char *url = NULL;

    snprintf(tmpl, sizeof(tmpl), "http://127.0.0.1:%u/echo/{key}?k={key}", (unsigned)srv.port);
    assert_int_equal(exw_http_expand(tmpl, "a b/../c?d#e\xc3\xa9", 14, &url, NULL), EXW_OK);
    c->req.url = url;
    assert_int_equal(exw_http_get(c->h, &c->req, &c->resp, &c->eb), EXW_OK);
    assert_int_equal(c->resp.status, 200);
    last_request(head, sizeof(head));
    assert_non_null(strstr(head,
                           "GET /echo/a%20b%2F..%2Fc%3Fd%23e%C3%A9?k=a%20b%2F..%2Fc%3Fd%23e%C3%A9 "
                           "HTTP/1.1\r\n"));
    free(url);
    c->req.url = c->url;
}

static void test_get_503_retry_after(void **state)
{
    struct client *c = *state;

    assert_int_equal(get(c, "/busy"), EXW_OK);
    assert_int_equal(c->resp.status, 503);
    assert_int_equal(c->resp.retry_after_s, 7);
    assert_string_equal(c->resp.body.data, "{\"error\": \"busy\"}");

    /* Header names are case-insensitive and the value may be padded. */
    assert_int_equal(get(c, "/slow-down"), EXW_OK);
    assert_int_equal(c->resp.status, 429);
    assert_int_equal(c->resp.retry_after_s, 120);

    /* The date form counts as absent. */
    assert_int_equal(get(c, "/busy-date"), EXW_OK);
    assert_int_equal(c->resp.status, 503);
    assert_int_equal(c->resp.retry_after_s, -1);

    /* A later response without the header does not keep the old value. */
    assert_int_equal(get(c, "/busy"), EXW_OK);
    assert_int_equal(c->resp.retry_after_s, 7);
    assert_int_equal(get(c, "/json"), EXW_OK);
    assert_int_equal(c->resp.retry_after_s, -1);
}

static void test_get_404(void **state)
{
    struct client *c = *state;

    assert_int_equal(get(c, "/missing"), EXW_OK);
    assert_int_equal(c->resp.status, 404);
    assert_string_equal(c->resp.body.data, "{\"error\": \"no such key\"}");
}

static void test_get_body_limit(void **state)
{
    struct client *c = *state;

    /* Announced by Content-Length. */
    assert_int_equal(get(c, "/big"), EXW_ELIMIT);
    assert_non_null(strstr(c->eb.msg, "1000"));
    assert_true(c->resp.body.len <= 1000);
    /* Found out while reading: no Content-Length, the connection just closes. */
    assert_int_equal(get(c, "/big-unsized"), EXW_ELIMIT);
    assert_non_null(strstr(c->eb.msg, "1000"));
    assert_true(c->resp.body.len <= 1000);
    /* Exactly the cap is fine. */
    assert_int_equal(get(c, "/exact"), EXW_OK);
    assert_int_equal(c->resp.status, 200);
    assert_int_equal(c->resp.body.len, 1000);
    /* And the handle still works after a failure. */
    assert_int_equal(get(c, "/big"), EXW_ELIMIT);
    assert_int_equal(get(c, "/json"), EXW_OK);
    assert_int_equal(c->resp.status, 200);
}

static void test_get_timeout(void **state)
{
    struct client *c = *state;
    struct timespec t0;
    long ms;

    c->req.timeout_ms = 300;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(get(c, "/hang"), EXW_ETIMEOUT);
    ms = elapsed_ms(&t0);
    assert_true(ms >= 250);
    assert_true(ms < 5000);
    assert_int_equal(c->resp.status, 0);
    assert_non_null(strstr(c->eb.msg, "300"));
    /* The handle is usable again. */
    c->req.timeout_ms = 5000;
    assert_int_equal(get(c, "/json"), EXW_OK);
    assert_int_equal(c->resp.status, 200);
}

static void test_get_refused(void **state)
{
    struct client *c = *state;
    unsigned short port = 0;
    int fd = bind_loopback(&port);

    /* A port that was just free and has no listener. */
    assert_true(fd >= 0);
    close(fd);
    snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%u/json", (unsigned)port);
    assert_int_equal(exw_http_get(c->h, &c->req, &c->resp, &c->eb), EXW_EHTTP);
    assert_int_equal(c->resp.status, 0);
    assert_true(c->eb.msg[0] != '\0');
}

static void test_get_redirect_not_followed(void **state)
{
    struct client *c = *state;
    unsigned before = json_hits();

    assert_int_equal(get(c, "/redirect"), EXW_OK);
    assert_int_equal(c->resp.status, 302);
    assert_int_equal(json_hits(), before);
}

struct abort_state {
    int calls;
    int answer;
};

static int abort_cb(void *ud)
{
    struct abort_state *a = ud;

    a->calls++;
    return a->answer;
}

static void test_get_abort(void **state)
{
    struct client *c = *state;
    struct abort_state a = {0, 1};
    struct timespec t0;

    c->req.abort_fn = abort_cb;
    c->req.abort_ud = &a;
    c->req.timeout_ms = 10000;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(get(c, "/hang"), EXW_ECANCELLED);
    assert_true(elapsed_ms(&t0) < 5000);
    assert_true(a.calls >= 1);
    assert_int_equal(c->resp.status, 0);

    /* An abort function that says "go on" changes nothing. */
    a.calls = 0;
    a.answer = 0;
    assert_int_equal(get(c, "/json"), EXW_OK);
    assert_int_equal(c->resp.status, 200);
    assert_true(a.calls >= 1);
    c->req.abort_fn = NULL;
    c->req.abort_ud = NULL;
}

/* Says "stop" from 300 ms after @ud's start on. */
static int abort_later_cb(void *ud) { return elapsed_ms(ud) >= 300; }

/* A request that waits on a silent service notices an abort raised
 * meanwhile, with nothing arriving to wake it: within about a second
 * (ABORT_CHECK_MS), not at its 10 s timeout. */
static void test_get_abort_while_waiting(void **state)
{
    struct client *c = *state;
    struct timespec t0;
    long ms;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    c->req.abort_fn = abort_later_cb;
    c->req.abort_ud = &t0;
    c->req.timeout_ms = 10000;
    assert_int_equal(get(c, "/hang"), EXW_ECANCELLED);
    ms = elapsed_ms(&t0);
    if (ms < 300 || ms > 5000)
        fail_msg("stopped after %ld ms", ms);
    c->req.abort_fn = NULL;
    c->req.abort_ud = NULL;
    /* The handle is usable again. */
    assert_int_equal(get(c, "/json"), EXW_OK);
    assert_int_equal(c->resp.status, 200);
}

static void test_get_authorization(void **state)
{
    struct client *c = *state;
    char head[8192];

    c->req.auth = "Bearer s3cr3t-token";
    assert_int_equal(get(c, "/json"), EXW_OK);
    last_request(head, sizeof(head));
    assert_non_null(strstr(head, "\r\nAuthorization: Bearer s3cr3t-token\r\n"));

    /* The next request on the same handle does not carry it. */
    c->req.auth = NULL;
    assert_int_equal(get(c, "/json"), EXW_OK);
    last_request_lower(head, sizeof(head));
    assert_null(strstr(head, "authorization"));
    assert_null(strstr(head, "s3cr3t"));

    /* Nor a request without it on a fresh handle. */
    {
        struct exw_http *h2 = NULL;
        struct exw_http_response resp;

        assert_int_equal(exw_http_new(&h2, NULL), EXW_OK);
        exw_http_response_init(&resp, 1000);
        assert_int_equal(exw_http_get(h2, &c->req, &resp, NULL), EXW_OK);
        assert_int_equal(resp.status, 200);
        last_request_lower(head, sizeof(head));
        assert_null(strstr(head, "authorization"));
        exw_http_response_cleanup(&resp);
        exw_http_free(h2);
    }
}

static void test_get_compressed(void **state)
{
    struct client *c = *state;
    char head[8192];

    /* Asked for: every coding curl decodes is offered, and the body is inflated. */
    c->req.compressed = 1;
    assert_int_equal(get(c, "/gzip"), EXW_OK);
    assert_int_equal(c->resp.status, 200);
    assert_int_equal(c->resp.body.len, strlen("{\"a\": 1}"));
    assert_memory_equal(c->resp.body.data, "{\"a\": 1}", c->resp.body.len);
    last_request_lower(head, sizeof(head));
    assert_non_null(strstr(head, "\r\naccept-encoding: "));
    assert_non_null(strstr(head, "gzip"));

    /* Not asked for, on the same handle: no header, and the bytes arrive as sent. */
    c->req.compressed = 0;
    assert_int_equal(get(c, "/gzip"), EXW_OK);
    assert_int_equal(c->resp.body.len, sizeof(GZIPPED));
    assert_memory_equal(c->resp.body.data, GZIPPED, sizeof(GZIPPED));
    last_request_lower(head, sizeof(head));
    assert_null(strstr(head, "accept-encoding"));
}

static void test_get_non_http_scheme(void **state)
{
    struct client *c = *state;

    /* Even a URL that did not come from exw_http_expand cannot leave HTTP. */
    c->req.url = "file:///etc/passwd";
    assert_int_equal(exw_http_get(c->h, &c->req, &c->resp, &c->eb), EXW_EHTTP);
    assert_int_equal(c->resp.status, 0);
    assert_int_equal(c->resp.body.len, 0);
    c->req.url = c->url;
}

static void test_http_new_free(void **state)
{
    struct exw_http *h = NULL;

    (void)state;
    assert_int_equal(exw_http_new(&h, NULL), EXW_OK);
    assert_non_null(h);
    exw_http_free(h);
    exw_http_free(NULL);
}

static void test_resolve(void **state)
{
    struct exw_http_request req = {.timeout_ms = 5000};
    struct exw_errbuf eb;
    unsigned short closed_port;
    unsigned before, after;
    char url[64];
    int resolved = -1, fd;

    (void)state;
    /* A server that listens: connected, and nothing sent. */
    pthread_mutex_lock(&srv.mu);
    before = srv.requests;
    pthread_mutex_unlock(&srv.mu);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/json", (unsigned)srv.port);
    req.url = url;
    assert_int_equal(exw_http_resolve(&req, &resolved, &eb), EXW_OK);
    assert_int_equal(resolved, 1);
    pthread_mutex_lock(&srv.mu);
    after = srv.requests;
    pthread_mutex_unlock(&srv.mu);
    assert_int_equal(after, before);

    /* Nobody listens: the name resolved all the same. */
    fd = bind_loopback(&closed_port);
    assert_true(fd >= 0);
    close(fd);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/json", (unsigned)closed_port);
    resolved = -1;
    assert_int_equal(exw_http_resolve(&req, &resolved, &eb), EXW_EHTTP);
    assert_int_equal(resolved, 1);

    /* Only http and https. */
    req.url = "file:///etc/passwd";
    assert_int_equal(exw_http_resolve(&req, &resolved, &eb), EXW_EHTTP);
    assert_int_equal(resolved, 0);
}

#define CLIENT_TEST(f) cmocka_unit_test_setup_teardown(f, client_setup, client_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_new_free),  cmocka_unit_test(test_resolve),
        CLIENT_TEST(test_get_200_json),        CLIENT_TEST(test_get_expanded_url),
        CLIENT_TEST(test_get_503_retry_after), CLIENT_TEST(test_get_404),
        CLIENT_TEST(test_get_body_limit),      CLIENT_TEST(test_get_timeout),
        CLIENT_TEST(test_get_refused),         CLIENT_TEST(test_get_redirect_not_followed),
        CLIENT_TEST(test_get_abort),           CLIENT_TEST(test_get_abort_while_waiting),
        CLIENT_TEST(test_get_authorization),   CLIENT_TEST(test_get_compressed),
        CLIENT_TEST(test_get_non_http_scheme),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
