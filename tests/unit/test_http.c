/* test_http.c: URL template expansion and the blocking GET. The GET tests talk
 * to a tiny HTTP/1.1 server this file runs on a loopback port: one thread that
 * serves one connection at a time with a canned answer per path and records
 * what it was sent. */
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

/* ---- Expansion ---- */

static char *expand_ok(const char *tmpl, const char *key, size_t len)
{
    struct exw_errbuf eb = {{0}};
    char *url = (char *)&eb;

    assert_int_equal(exw_http_expand(tmpl, key, len, &url, &eb), EXW_OK);
    assert_non_null(url);
    return url;
}

static void assert_expands(const char *tmpl, const char *key, size_t len, const char *want)
{
    char *url = expand_ok(tmpl, key, len);

    assert_string_equal(url, want);
    free(url);
}

static void test_expand_unreserved_kept(void **state)
{
    static const char unreserved[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789-._~";
    char want[256];

    (void)state;
    snprintf(want, sizeof(want), "http://h/x/%s", unreserved);
    assert_expands("http://h/x/{key}", unreserved, strlen(unreserved), want);
}

static void test_expand_reserved_escaped(void **state)
{
    (void)state;
    assert_expands("http://h/{key}", " ", 1, "http://h/%20");
    assert_expands("http://h/{key}", "/", 1, "http://h/%2F");
    assert_expands("http://h/{key}", "?", 1, "http://h/%3F");
    assert_expands("http://h/{key}", "#", 1, "http://h/%23");
    assert_expands("http://h/{key}", "&", 1, "http://h/%26");
    assert_expands("http://h/{key}", "+", 1, "http://h/%2B");
    assert_expands("http://h/{key}", "%", 1, "http://h/%25");
    assert_expands("http://h/{key}", "=", 1, "http://h/%3D");
    assert_expands("http://h/q?id={key}", "a b&c=d", 7, "http://h/q?id=a%20b%26c%3Dd");
    /* A path traversal stays one segment. */
    assert_expands("http://h/items/{key}", "../admin", 8, "http://h/items/..%2Fadmin");
    assert_expands("http://h/items/{key}", "..", 2, "http://h/items/..");
    /* A key that looks like the placeholder is not expanded again. */
    assert_expands("http://h/{key}", "{key}", 5, "http://h/%7Bkey%7D");
    /* Only @len bytes of the key are used. */
    assert_expands("http://h/{key}", "abcdef", 3, "http://h/abc");
}

static void test_expand_utf8_and_binary(void **state)
{
    char key[2];
    char want[64];
    unsigned b;

    (void)state;
    assert_expands("http://h/{key}", "\xc3\xa9", 2, "http://h/%C3%A9");
    assert_expands("http://h/{key}", "caf\xc3\xa9 \xe2\x82\xac", 9,
                   "http://h/caf%C3%A9%20%E2%82%AC");
    assert_expands("http://h/{key}", "\xf0\x9f\x98\x80", 4, "http://h/%F0%9F%98%80");
    /* Every byte but NUL: unreserved ones as they are, the rest as %XX in upper case. */
    for (b = 1; b < 256; b++) {
        int plain = (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') ||
                    b == '-' || b == '.' || b == '_' || b == '~';

        key[0] = (char)b;
        key[1] = '\0';
        if (plain)
            snprintf(want, sizeof(want), "https://h/k/%c/end", (char)b);
        else
            snprintf(want, sizeof(want), "https://h/k/%%%02X/end", b);
        assert_expands("https://h/k/{key}/end", key, 1, want);
    }
    /* Invalid UTF-8 is escaped byte by byte too. */
    assert_expands("http://h/{key}", "\xff\xfe\x80", 3, "http://h/%FF%FE%80");
}

static void test_expand_placeholders(void **state)
{
    (void)state;
    assert_expands("http://h/{key}/sub/{key}?again={key}", "a/b", 3,
                   "http://h/a%2Fb/sub/a%2Fb?again=a%2Fb");
    assert_expands("http://h/{key}{key}", "x", 1, "http://h/xx");
    /* No placeholder: the template as it is. */
    assert_expands("http://h/static", "ignored", 7, "http://h/static");
    /* Something that is not quite the placeholder stays. */
    assert_expands("http://h/{ke}/{KEY}/{key", "k", 1, "http://h/{ke}/{KEY}/{key");
    /* An empty key leaves the placeholder's place empty. */
    assert_expands("http://h/a/{key}/b", "", 0, "http://h/a//b");
    /* Schemes are case-insensitive. */
    assert_expands("HTTPS://h/{key}", "k", 1, "HTTPS://h/k");
    assert_expands("Http://h:8080/{key}", "k", 1, "Http://h:8080/k");
}

/* Batch templates: each key escaped as for {key}, joined by ',', so a ',' in
 * a key is %2C and the service can split the list before decoding. */
static void test_expand_batch(void **state)
{
    const char *keys[] = {"a,b", "c", "x y", "caf\xc3\xa9", ",", "{keys}"};
    char *url = NULL;
    struct exw_errbuf eb;

    (void)state;
    assert_int_equal(exw_http_expand_batch("http://h/b/{keys}?again={keys}", keys, 6, &url, &eb),
                     EXW_OK);
    assert_string_equal(url, "http://h/b/a%2Cb,c,x%20y,caf%C3%A9,%2C,%7Bkeys%7D"
                             "?again=a%2Cb,c,x%20y,caf%C3%A9,%2C,%7Bkeys%7D");
    free(url);
    assert_int_equal(exw_http_expand_batch("http://h/b?sn={keys}", keys + 1, 1, &url, &eb), EXW_OK);
    assert_string_equal(url, "http://h/b?sn=c");
    free(url);
    /* {key} is not a batch template's placeholder. */
    assert_int_equal(exw_http_expand_batch("http://h/{key}", keys, 2, &url, &eb), EXW_OK);
    assert_string_equal(url, "http://h/{key}");
    free(url);
    assert_int_equal(exw_http_expand_batch("ftp://h/{keys}", keys, 2, &url, &eb), EXW_ECONFIG);
    assert_null(url);
}

static void test_expand_bad_scheme(void **state)
{
    static const char *const bad[] = {
        "ftp://h/{key}",
        "file:///etc/{key}",
        "gopher://h/{key}",
        "{key}",
        "",
        "/relative/{key}",
        "http:/h/{key}",
        "httpx://h/{key}",
        " http://h/{key}",
        "javascript:{key}",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct exw_errbuf eb = {{0}};
        char *url = (char *)&eb;

        assert_int_equal(exw_http_expand(bad[i], "k", 1, &url, &eb), EXW_ECONFIG);
        assert_null(url);
        assert_non_null(strstr(eb.msg, "http"));
    }
    /* The errbuf is optional. */
    {
        char *url = NULL;

        assert_int_equal(exw_http_expand("ftp://h/", "k", 1, &url, NULL), EXW_ECONFIG);
        assert_null(url);
    }
}

static void test_expand_long_key(void **state)
{
    size_t len = 100000;
    char *key = malloc(len);
    char *url;
    size_t i;

    (void)state;
    assert_non_null(key);
    memset(key, '/', len);
    url = expand_ok("http://h/{key}", key, len);
    assert_int_equal(strlen(url), strlen("http://h/") + 3 * len);
    for (i = 0; i < len; i++)
        assert_memory_equal(url + strlen("http://h/") + 3 * i, "%2F", 3);
    free(url);
    free(key);
}

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
        cmocka_unit_test(test_expand_unreserved_kept),
        cmocka_unit_test(test_expand_reserved_escaped),
        cmocka_unit_test(test_expand_utf8_and_binary),
        cmocka_unit_test(test_expand_placeholders),
        cmocka_unit_test(test_expand_batch),
        cmocka_unit_test(test_expand_bad_scheme),
        cmocka_unit_test(test_expand_long_key),
        cmocka_unit_test(test_http_new_free),
        cmocka_unit_test(test_resolve),
        CLIENT_TEST(test_get_200_json),
        CLIENT_TEST(test_get_expanded_url),
        CLIENT_TEST(test_get_503_retry_after),
        CLIENT_TEST(test_get_404),
        CLIENT_TEST(test_get_body_limit),
        CLIENT_TEST(test_get_timeout),
        CLIENT_TEST(test_get_refused),
        CLIENT_TEST(test_get_redirect_not_followed),
        CLIENT_TEST(test_get_abort),
        CLIENT_TEST(test_get_authorization),
        CLIENT_TEST(test_get_non_http_scheme),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
