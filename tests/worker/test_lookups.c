/* test_lookups.c: a job's lookups kept off the heap. The key index (SipHash
 * fingerprints, growth, bytes per key), results packed into bytes and back
 * for every kind of cell, the spill file (buffered and written, read back,
 * unlinked at once, its failures), and the whole cycle on a real pool
 * against a small HTTP server of the test's own on loopback: an entry held
 * by rows, cached, spilled when no row holds it, and read back with no
 * second request and no change in the job's counts. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "exw/http.h"
#include "lookup_store.h"
#include "worker.h"

/* A directory of the test's own, removed at the end. */
static char tmpdir[64];

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* ---- SipHash-2-4-128: the reference vectors (key 00..0f, message 00..len-1) ---- */

static void test_siphash_vectors(void **state)
{
    static const struct {
        size_t len;
        unsigned char out[16];
    } v[] = {
        {0,
         {0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02,
          0x93}},
        {1,
         {0xda, 0x87, 0xc1, 0xd8, 0x6b, 0x99, 0xaf, 0x44, 0x34, 0x76, 0x59, 0x11, 0x9b, 0x22, 0xfc,
          0x45}},
        {8,
         {0x3b, 0x62, 0xa9, 0xba, 0x62, 0x58, 0xf5, 0x61, 0x0f, 0x83, 0xe2, 0x64, 0xf3, 0x14, 0x97,
          0xb4}},
        {15,
         {0x54, 0x93, 0xe9, 0x99, 0x33, 0xb0, 0xa8, 0x11, 0x7e, 0x08, 0xec, 0x0f, 0x97, 0xcf, 0xc3,
          0xd9}},
    };
    unsigned char key[16], msg[16];
    size_t i;
    int b;

    (void)state;
    for (i = 0; i < 16; i++)
        key[i] = msg[i] = (unsigned char)i;
    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint64_t out[2];
        unsigned char got[16];

        exw_lookup_siphash128(key, msg, v[i].len, out);
        for (b = 0; b < 8; b++) {
            got[b] = (unsigned char)(out[0] >> (8 * b));
            got[8 + b] = (unsigned char)(out[1] >> (8 * b));
        }
        assert_memory_equal(got, v[i].out, 16);
    }
}

/* ---- The index ---- */

static void *fake_live(uint32_t i) { return (void *)(uintptr_t)(((uintptr_t)i + 1) << 4); }

static void test_index_many_keys(void **state)
{
    enum { N = 300000 };
    struct lookup_store *s = exw_lookup_store_new(tmpdir);
    struct lookup_store_stats st;
    struct lookup_fp fp, other;
    char key[32];
    uint32_t i;

    (void)state;
    for (i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "K-%u", i);
        exw_lookup_store_fp(s, key, &fp);
        assert_int_equal(exw_lookup_store_find(s, &fp), 0);
        assert_int_equal(exw_lookup_store_add(s, &fp, fake_live(i)), i + 1);
    }
    assert_int_equal(exw_lookup_store_count(s), N);
    for (i = 0; i < N; i++) {
        uint32_t id;

        snprintf(key, sizeof(key), "K-%u", i);
        exw_lookup_store_fp(s, key, &fp);
        id = exw_lookup_store_find(s, &fp);
        assert_int_equal(id, i + 1);
        assert_ptr_equal(exw_lookup_store_live(s, id), fake_live(i));
    }
    /* Keys never added, and a fingerprint that differs in one half only. */
    for (i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "K-%u", N + i);
        exw_lookup_store_fp(s, key, &fp);
        assert_int_equal(exw_lookup_store_find(s, &fp), 0);
    }
    exw_lookup_store_fp(s, "K-7", &other);
    other.h[1] ^= 1;
    assert_int_equal(exw_lookup_store_find(s, &other), 0);
    exw_lookup_store_stats(s, &st);
    assert_int_equal(st.keys, N);
    print_message("index: %u keys in %zu bytes, %.1f bytes a key\n", st.keys, st.index_bytes,
                  (double)st.index_bytes / st.keys);
    assert_true(st.index_bytes <= (size_t)N * 33);
    assert_int_equal(st.spilled, 0);
    assert_int_equal(st.file_size, 0);
    exw_lookup_store_free(s);
}

/* Two stores fingerprint the same key differently: each job draws its key. */
static void test_index_keyed(void **state)
{
    struct lookup_store *a = exw_lookup_store_new(tmpdir), *b = exw_lookup_store_new(tmpdir);
    struct lookup_fp fa, fb, fa2;

    (void)state;
    exw_lookup_store_fp(a, "same", &fa);
    exw_lookup_store_fp(a, "same", &fa2);
    exw_lookup_store_fp(b, "same", &fb);
    assert_memory_equal(&fa, &fa2, sizeof(fa));
    assert_memory_not_equal(&fa, &fb, sizeof(fa));
    exw_lookup_store_free(a);
    exw_lookup_store_free(b);
}

/* ---- Results as bytes ---- */

static void set_string(struct exw_cell *c, const char *s)
{
    c->kind = EXW_CELL_STRING;
    c->owned = strdup(s);
    c->str = c->owned;
}

static void assert_cells_equal(const struct exw_cell *a, const struct exw_cell *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        assert_int_equal(a[i].kind, b[i].kind);
        switch (a[i].kind) {
        case EXW_CELL_STRING:
            assert_string_equal(a[i].str, b[i].str);
            assert_ptr_equal(b[i].str, b[i].owned);
            break;
        case EXW_CELL_NUMBER:
        case EXW_CELL_BOOLEAN:
            assert_memory_equal(&a[i].num, &b[i].num, sizeof(double));
            break;
        case EXW_CELL_DATETIME:
            assert_int_equal(a[i].dt.year, b[i].dt.year);
            assert_int_equal(a[i].dt.month, b[i].dt.month);
            assert_int_equal(a[i].dt.day, b[i].dt.day);
            assert_int_equal(a[i].dt.hour, b[i].dt.hour);
            assert_int_equal(a[i].dt.min, b[i].dt.min);
            assert_memory_equal(&a[i].dt.sec, &b[i].dt.sec, sizeof(double));
            break;
        case EXW_CELL_EMPTY:
            assert_null(b[i].owned);
            break;
        }
    }
}

enum { NKINDS = 9 };

/* One cell of every kind, some twice. */
static void every_kind(struct exw_cell *c)
{
    memset(c, 0, NKINDS * sizeof(*c));
    set_string(&c[0], "Zoë – 東京 🍣 \"quoted\" \\ back");
    c[1].kind = EXW_CELL_NUMBER;
    c[1].num = -1234.5678e-300;
    c[2].kind = EXW_CELL_BOOLEAN;
    c[2].num = 1;
    c[3].kind = EXW_CELL_BOOLEAN;
    c[3].num = 0;
    c[4].kind = EXW_CELL_DATETIME;
    c[4].dt = (struct exw_datetime){9999, 12, 31, 23, 59, 59.999};
    c[5].kind = EXW_CELL_EMPTY;
    set_string(&c[6], "");
    c[7].kind = EXW_CELL_NUMBER;
    c[7].num = 9007199254740993.0;
    /* A number typed into a string column points into its own numbuf. */
    c[8].kind = EXW_CELL_STRING;
    snprintf(c[8].numbuf, sizeof(c[8].numbuf), "%s", "1.5e+300");
    c[8].str = c[8].numbuf;
}

static void test_pack_round_trip(void **state)
{
    struct exw_cell in[NKINDS], *out;
    struct exw_buf b;
    struct exw_errbuf eb;
    char *error;
    size_t cut;

    (void)state;
    every_kind(in);
    exw_buf_init(&b, SIZE_MAX);
    exw_lookup_pack(&b, in, NKINDS, NULL);
    assert_int_equal(exw_lookup_unpack(b.data, b.len, NKINDS, &out, &error, &eb), EXW_OK);
    assert_null(error);
    assert_non_null(out);
    assert_cells_equal(in, out, NKINDS);
    exw_cells_cleanup(out, NKINDS);
    free(out);
    /* Every cut of the bytes is refused, as is one byte more. */
    for (cut = 0; cut < b.len; cut++) {
        assert_int_equal(exw_lookup_unpack(b.data, cut, NKINDS, &out, &error, &eb), EXW_EJSON);
        assert_null(out);
        assert_null(error);
    }
    assert_int_equal(exw_buf_append(&b, "x", 1), EXW_OK);
    assert_int_equal(exw_lookup_unpack(b.data, b.len, NKINDS, &out, &error, &eb), EXW_EJSON);
    /* A failure keeps its text, multi-byte characters and all. */
    exw_buf_reset(&b);
    exw_lookup_pack(&b, NULL, NKINDS, "HTTP 404 from service TÉTHER — «nope»");
    assert_int_equal(exw_lookup_unpack(b.data, b.len, NKINDS, &out, &error, &eb), EXW_OK);
    assert_null(out);
    assert_string_equal(error, "HTTP 404 from service TÉTHER — «nope»");
    free(error);
    /* A job with no lookup column: nothing but the tag. */
    exw_buf_reset(&b);
    exw_lookup_pack(&b, in, 0, NULL);
    assert_int_equal(exw_lookup_unpack(b.data, b.len, 0, &out, &error, &eb), EXW_OK);
    assert_non_null(out);
    free(out);
    exw_buf_cleanup(&b);
    exw_cells_cleanup(in, NKINDS);
}

/* ---- The spill file ---- */

static void spill_one(struct lookup_store *s, uint32_t id, const char *text)
{
    struct exw_errbuf eb;
    struct exw_buf b;
    struct exw_cell c[2];

    memset(c, 0, sizeof(c));
    set_string(&c[0], text);
    c[1].kind = EXW_CELL_NUMBER;
    c[1].num = id;
    exw_buf_init(&b, SIZE_MAX);
    exw_lookup_pack(&b, c, 2, NULL);
    assert_int_equal(exw_lookup_store_spill(s, id, b.data, b.len, &eb), EXW_OK);
    assert_null(exw_lookup_store_live(s, id));
    exw_buf_cleanup(&b);
    exw_cells_cleanup(c, 2);
}

static void expect_back(struct lookup_store *s, uint32_t id, const char *text)
{
    struct exw_errbuf eb;
    struct exw_cell *c;
    const char *data;
    char *error;
    size_t len;

    assert_int_equal(exw_lookup_store_read(s, id, &data, &len, &eb), EXW_OK);
    assert_int_equal(exw_lookup_unpack(data, len, 2, &c, &error, &eb), EXW_OK);
    assert_null(error);
    assert_string_equal(c[0].str, text);
    assert_true(c[1].num == id);
    exw_cells_cleanup(c, 2);
    free(c);
}

static void text_of(uint32_t i, char *out, size_t n)
{
    snprintf(out, n, "résultat %u: %.*s", i, (int)(i % 40),
             "ααααααααααααααααααααααααααααααααααααααα");
}

static void test_spill_round_trip(void **state)
{
    enum { N = 20000 };
    struct lookup_store *s = exw_lookup_store_new(tmpdir);
    struct lookup_store_stats st;
    struct lookup_fp fp;
    char key[32], text[128];
    char *big = malloc(200001);
    uint32_t i, bigid;

    (void)state;
    for (i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "%u", i);
        exw_lookup_store_fp(s, key, &fp);
        assert_int_equal(exw_lookup_store_add(s, &fp, fake_live(i)), i + 1);
    }
    assert_int_equal(count_files(tmpdir), 0);
    /* Every other key, then one larger than the write buffer, then the rest:
     * some read back from the file, the last ones from the buffer. */
    for (i = 1; i <= N; i += 2) {
        text_of(i, text, sizeof(text));
        spill_one(s, i, text);
    }
    memset(big, 'b', 200000);
    big[200000] = '\0';
    bigid = 2;
    spill_one(s, bigid, big);
    for (i = 4; i <= N; i += 2) {
        text_of(i, text, sizeof(text));
        spill_one(s, i, text);
    }
    /* The file was made, and is already gone from the directory. */
    assert_int_equal(count_files(tmpdir), 0);
    exw_lookup_store_stats(s, &st);
    assert_int_equal(st.spilled, N);
    assert_true(st.file_size > 200000);
    for (i = N; i >= 1; i--) {
        if (i == bigid) {
            expect_back(s, i, big);
            continue;
        }
        text_of(i, text, sizeof(text));
        expect_back(s, i, text);
    }
    /* Read back, a key is live again. */
    exw_lookup_store_set_live(s, 5, fake_live(5));
    assert_ptr_equal(exw_lookup_store_live(s, 5), fake_live(5));
    free(big);
    exw_lookup_store_free(s);
}

/* Adds keys "0", "1", ... and spills @len bytes of @blob for each until a
 * spill fails (at most 100); *@id is the last key's. Returns the last result. */
static exw_err spill_until_failure(struct lookup_store *s, const char *blob, size_t len,
                                   uint32_t *id, struct exw_errbuf *eb)
{
    exw_err rc = EXW_OK;
    uint32_t i;

    for (i = 0; i < 100 && rc == EXW_OK; i++) {
        struct lookup_fp fp;
        char key[16];

        snprintf(key, sizeof(key), "%u", i);
        exw_lookup_store_fp(s, key, &fp);
        *id = exw_lookup_store_add(s, &fp, fake_live(i));
        rc = exw_lookup_store_spill(s, *id, blob, len, eb);
    }
    return rc;
}

/* A spill file that cannot be made fails, and the key stays live. */
static void test_spill_no_dir(void **state)
{
    struct lookup_store *s = exw_lookup_store_new("/nonexistent/exw-lookups-test");
    struct exw_errbuf eb = {{0}};
    char blob[4096];
    uint32_t id = 0;
    exw_err rc;

    (void)state;
    memset(blob, 'x', sizeof(blob));
    /* The file is made when the buffer first fills. */
    rc = spill_until_failure(s, blob, sizeof(blob), &id, &eb);
    assert_int_equal(rc, EXW_EXLSX);
    assert_non_null(strstr(eb.msg, "/nonexistent/exw-lookups-test"));
    assert_non_null(strstr(eb.msg, "cannot be made"));
    assert_ptr_equal(exw_lookup_store_live(s, id), fake_live(id - 1));
    /* What was spilled before still reads back, from the buffer kept. */
    {
        const char *data;
        size_t len;

        assert_int_equal(exw_lookup_store_read(s, 1, &data, &len, &eb), EXW_OK);
        assert_int_equal(len, sizeof(blob));
    }
    /* Later spills fail at once. */
    assert_int_equal(exw_lookup_store_spill(s, 1, blob, 10, &eb), EXW_EXLSX);
    exw_lookup_store_free(s);
}

/* A write that fails (here over RLIMIT_FSIZE, as a full disk would) fails
 * cleanly too. */
static void test_spill_write_fails(void **state)
{
    struct lookup_store *s = exw_lookup_store_new(tmpdir);
    struct rlimit old, small;
    struct exw_errbuf eb = {{0}};
    char blob[4096];
    uint32_t id = 0;
    exw_err rc;
    void (*was)(int);

    (void)state;
    memset(blob, 'y', sizeof(blob));
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 1000;
    was = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    rc = spill_until_failure(s, blob, sizeof(blob), &id, &eb);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, was);
    assert_int_equal(rc, EXW_EXLSX);
    assert_non_null(strstr(eb.msg, "cannot be written"));
    assert_ptr_equal(exw_lookup_store_live(s, id), fake_live(id - 1));
    assert_int_equal(count_files(tmpdir), 0);
    exw_lookup_store_free(s);
}

/* ---- The whole cycle, on a real pool ---- */

/* A lookup service on loopback: GET /k/KEY answers {"name": ..., "n": ...}
 * (the name_of the key), but 404 for a key that begins with "bad". One
 * request per connection. */
struct server {
    int fd;
    int port;
    pthread_t tid;
    atomic_int stop;
    atomic_int requests;
};

#define LONG_NAME 3000

/* The name the service gives @key: a long one for a key "long-...". */
static void name_of(const char *key, char *out, size_t n)
{
    int len = snprintf(out, n, "Zoë %s 東京", key);

    if (strncmp(key, "long", 4) == 0) {
        assert_true((size_t)len + LONG_NAME < n);
        memset(out + len, 'x', LONG_NAME);
        out[len + LONG_NAME] = '\0';
    }
}

/* GET /b/K1,K2,... answers {"K1": <K1's answer>, ...}, leaving out the keys
 * that begin with "bad" (a partial answer). Keys are plain ASCII here. */
static void serve_batch(int c, char *keys)
{
    char name[4096], *body = malloc(65536), *resp = malloc(66000), *key, *save = NULL;
    size_t len = 0;
    int n;

    assert_non_null(body);
    assert_non_null(resp);
    keys[strcspn(keys, " ")] = '\0';
    len += (size_t)snprintf(body, 65536, "{");
    for (key = strtok_r(keys, ",", &save); key != NULL; key = strtok_r(NULL, ",", &save)) {
        if (strncmp(key, "bad", 3) == 0)
            continue;
        name_of(key, name, sizeof(name));
        len +=
            (size_t)snprintf(body + len, 65536 - len, "%s\"%s\": {\"name\": \"%s\", \"n\": %zu.5}",
                             len > 1 ? ", " : "", key, name, strlen(key));
    }
    len += (size_t)snprintf(body + len, 65536 - len, "}");
    n = snprintf(resp, 66000,
                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                 "%zu\r\nConnection: close\r\n\r\n%s",
                 len, body);
    if (write(c, resp, (size_t)n) != n)
        n = 0;
    free(body);
    free(resp);
}

static void serve_one(struct server *sv, int c)
{
    char req[2048], name[4096], body[4200], resp[4400];
    size_t got = 0;
    char *path, *end;
    int n;

    while (got < sizeof(req) - 1) {
        ssize_t r = read(c, req + got, sizeof(req) - 1 - got);

        if (r <= 0)
            return;
        got += (size_t)r;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL)
            break;
    }
    atomic_fetch_add(&sv->requests, 1);
    if (strncmp(req, "GET /b/", 7) == 0) {
        serve_batch(c, req + 7);
        return;
    }
    path = strstr(req, "/k/");
    end = path != NULL ? strchr(path, ' ') : NULL;
    if (end == NULL)
        return;
    *end = '\0';
    path += 3;
    if (strncmp(path, "bad", 3) == 0) {
        n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    } else {
        int b;

        name_of(path, name, sizeof(name));
        b = snprintf(body, sizeof(body), "{\"name\": \"%s\", \"n\": %zu.5}", name, strlen(path));

        n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     "%d\r\nConnection: close\r\n\r\n%s",
                     b, body);
    }
    if (write(c, resp, (size_t)n) != n)
        return;
}

static void *server_main(void *arg)
{
    struct server *sv = arg;

    while (!atomic_load(&sv->stop)) {
        struct pollfd p = {.fd = sv->fd, .events = POLLIN};
        int c;

        if (poll(&p, 1, 20) <= 0)
            continue;
        c = accept(sv->fd, NULL, NULL);
        if (c < 0)
            continue;
        serve_one(sv, c);
        close(c);
    }
    return NULL;
}

static void server_start(struct server *sv)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sv->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(sv->fd >= 0);
    assert_int_equal(bind(sv->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(sv->fd, 64), 0);
    assert_int_equal(getsockname(sv->fd, (struct sockaddr *)&a, &alen), 0);
    sv->port = ntohs(a.sin_port);
    atomic_init(&sv->stop, 0);
    atomic_init(&sv->requests, 0);
    assert_int_equal(pthread_create(&sv->tid, NULL, server_main, sv), 0);
}

static void server_stop(struct server *sv)
{
    atomic_store(&sv->stop, 1);
    pthread_join(sv->tid, NULL);
    close(sv->fd);
}

static const char job_doc[] =
    "{\"id\": \"lk\", \"lookup\": {\"service\": \"T\", \"key\": \"k\"}, \"columns\": ["
    "{\"header\": \"Key\", \"field\": \"k\"},"
    "{\"header\": \"Name\", \"lookup\": \"/name\"},"
    "{\"header\": \"N\", \"lookup\": \"/n\", \"type\": \"number\"}"
    "], \"rows\": []}";

struct fixture {
    struct server sv;
    struct exw_pool *pool;
    struct exw_job *job;
    struct exw_service svc;
    struct exw_config cfg;
    char url[96];
};

static int cycle_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct exw_limits lim;
    struct exw_errbuf eb;
    enum exw_job_verdict verdict;
    char *id = NULL;

    server_start(&f->sv);
    assert_int_equal(
        exw_pool_new(3, exw_lookup_thread_init, exw_lookup_thread_fini, NULL, &f->pool, &eb),
        EXW_OK);
    exw_limits_default(&lim);
    assert_int_equal(
        exw_job_parse(job_doc, sizeof(job_doc) - 1, &lim, "x:", &f->job, &verdict, &id, &eb),
        EXW_OK);
    free(id);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/k/{key}", f->sv.port);
    snprintf(f->svc.name, sizeof(f->svc.name), "T");
    f->svc.url = f->url;
    f->svc.timeout_ms = 10000;
    f->svc.retries = 0;
    f->cfg.max_response_bytes = 65536;
    f->cfg.tmpdir = tmpdir;
    f->cfg.batch_rows = 4; /* the cache */
    *state = f;
    return 0;
}

static int cycle_teardown(void **state)
{
    struct fixture *f = *state;

    exw_pool_free(f->pool);
    exw_job_free(f->job);
    server_stop(&f->sv);
    free(f);
    return 0;
}

/* Waits for @e and checks what it holds for @key. */
static void expect_entry(struct lookups *l, struct lookup_entry *e, const char *key)
{
    const struct exw_cell *cells;
    const char *error;
    char want[4096];

    assert_int_equal(exw_lookups_wait(l, e, 20000, &cells, &error), 1);
    assert_string_equal(exw_lookups_key(e), key);
    if (strncmp(key, "bad", 3) == 0) {
        assert_null(cells);
        assert_true(strstr(error, "HTTP 404 from service T") != NULL ||
                    strstr(error, "missing from the batch answer of service T") != NULL);
        return;
    }
    assert_non_null(cells);
    name_of(key, want, sizeof(want));
    assert_int_equal(cells[0].kind, EXW_CELL_STRING);
    assert_string_equal(cells[0].str, want);
    assert_int_equal(cells[1].kind, EXW_CELL_NUMBER);
    assert_true(cells[1].num == (double)strlen(key) + 0.5);
}

static void key_of(int i, char *out, size_t n)
{
    snprintf(out, n, i % 10 == 3 ? "bad-%d" : "key-%d", i);
}

/* Rows in a window of 8: each of @n keys asked for as its row comes in
 * (handles in @e), then written (waited for, checked, released) as the
 * window moves on. */
static void run_window(struct lookups *l, struct lookup_entry **e, int n)
{
    char key[32];
    int i;

    for (i = 0; i < n + 8; i++) {
        if (i < n) {
            key_of(i, key, sizeof(key));
            e[i] = exw_lookups_request(l, key);
        }
        if (i >= 8) {
            key_of(i - 8, key, sizeof(key));
            expect_entry(l, e[i - 8], key);
            exw_lookups_release(l, e[i - 8]);
        }
    }
}

static void test_cycle(void **state)
{
    enum { N = 60 };
    struct fixture *f = *state;
    struct lookups *l = exw_lookups_new(f->pool, f->job, &f->svc, &f->cfg, INT64_MAX / 2);
    struct lookup_entry *e[N], *again;
    struct lookup_counts lc, lc2;
    struct lookups_mem m;
    char key[32];
    int i, pass;

    run_window(l, e, N);
    exw_lookups_mem(l, &m);
    assert_int_equal(m.cached, 4);
    assert_int_equal(m.live, 4);
    assert_int_equal(m.store.spilled, N - 4);
    assert_int_equal(m.read_back, 0);
    exw_lookups_counts(l, &lc);
    assert_int_equal(lc.total, N);
    assert_int_equal(lc.done, N);
    assert_int_equal(lc.failed, N / 10);
    assert_int_equal(lc.requests, N);
    assert_int_equal(lc.reached, N);
    assert_non_null(strstr(lc.first_error, "bad-3"));
    assert_int_equal(atomic_load(&f->sv.requests), N);
    assert_null(exw_lookups_error(l));

    /* Every key again, twice over, each held by two rows at once: read back
     * or taken from the cache, never asked again. */
    for (pass = 0; pass < 2; pass++) {
        for (i = N - 1; i >= 0; i--) {
            key_of(i, key, sizeof(key));
            e[i] = exw_lookups_request(l, key);
            again = exw_lookups_request(l, key);
            assert_ptr_equal(again, e[i]);
            expect_entry(l, e[i], key);
            exw_lookups_release(l, e[i]);
            expect_entry(l, again, key); /* still held by the second row */
            exw_lookups_release(l, again);
        }
    }
    exw_lookups_mem(l, &m);
    assert_true(m.read_back >= 2 * (N - 4));
    assert_int_equal(m.live, 4);
    exw_lookups_counts(l, &lc2);
    assert_int_equal(lc2.total, lc.total);
    assert_int_equal(lc2.done, lc.done);
    assert_int_equal(lc2.failed, lc.failed);
    assert_int_equal(lc2.requests, lc.requests);
    assert_int_equal(lc2.reached, lc.reached);
    assert_string_equal(lc2.first_error, lc.first_error);
    assert_int_equal(atomic_load(&f->sv.requests), N);
    assert_int_equal(count_files(tmpdir), 0);
    exw_lookups_free(l);
}

/* The same cycle through a batch endpoint, 5 keys a request: the entries go
 * through the stage, one request per 5 keys; a key left out of an answer
 * fails alone; spilled and read back as before, never asked again. */
static void test_cycle_batched(void **state)
{
    enum { N = 60, BATCH = 5 };
    struct fixture *f = *state;
    struct lookups *l;
    struct lookup_entry *e[N];
    struct lookup_counts lc;
    char key[32], batch_url[96];
    int i;

    snprintf(batch_url, sizeof(batch_url), "http://127.0.0.1:%d/b/{keys}", f->sv.port);
    f->svc.batch_url = batch_url;
    f->svc.batch_max = BATCH;
    l = exw_lookups_new(f->pool, f->job, &f->svc, &f->cfg, INT64_MAX / 2);
    run_window(l, e, N);
    exw_lookups_counts(l, &lc);
    assert_int_equal(lc.total, N);
    assert_int_equal(lc.done, N);
    assert_int_equal(lc.failed, N / 10);
    assert_int_equal(lc.errors, N / 10);
    assert_int_equal(lc.requests, N / BATCH);
    assert_int_equal(lc.reached, N);
    assert_int_equal(atomic_load(&f->sv.requests), N / BATCH);
    /* Read back, not asked again. */
    for (i = 0; i < N; i++) {
        key_of(i, key, sizeof(key));
        e[i] = exw_lookups_request(l, key);
        expect_entry(l, e[i], key);
        exw_lookups_release(l, e[i]);
    }
    /* Three new keys: fewer than a batch, sent short once a row waits. */
    for (i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "new-%d", i);
        e[i] = exw_lookups_request(l, key);
    }
    for (i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "new-%d", i);
        expect_entry(l, e[i], key);
        exw_lookups_release(l, e[i]);
    }
    assert_int_equal(atomic_load(&f->sv.requests), N / BATCH + 1);
    exw_lookups_free(l);
    f->svc.batch_url = NULL;
}

/* Keys still on the stage when the job ends are freed unasked. */
static void test_free_staged(void **state)
{
    struct fixture *f = *state;
    struct lookups *l;
    char batch_url[96];

    snprintf(batch_url, sizeof(batch_url), "http://127.0.0.1:%d/b/{keys}", f->sv.port);
    f->svc.batch_url = batch_url;
    f->svc.batch_max = 100;
    l = exw_lookups_new(f->pool, f->job, &f->svc, &f->cfg, INT64_MAX / 2);
    exw_lookups_request(l, "s-1");
    exw_lookups_request(l, "s-2");
    exw_lookups_free(l);
    assert_int_equal(atomic_load(&f->sv.requests), 0);
    f->svc.batch_url = NULL;
}

/* Entries still held, or still pending, when the job ends are freed with it. */
static void test_free_held_and_pending(void **state)
{
    struct fixture *f = *state;
    struct lookups *l = exw_lookups_new(f->pool, f->job, &f->svc, &f->cfg, INT64_MAX / 2);
    struct lookup_entry *e;
    char key[32];
    int i;

    for (i = 0; i < 20; i++) {
        key_of(i, key, sizeof(key));
        e = exw_lookups_request(l, key);
        if (i < 10) {
            expect_entry(l, e, key);
            exw_lookups_release(l, e);
        }
    }
    exw_lookups_free(l); /* the last ten still held, some perhaps pending */
}

/* A spill file that fails makes exw_lookups_error say so; every result stays
 * in memory, or in the write buffer kept, and reads back right. */
static void test_cycle_spill_fails(void **state)
{
    enum { N = 40 };
    struct fixture *f = *state;
    struct lookups *l;
    struct lookup_entry *e[N];
    struct lookups_mem m;
    char key[32];
    int i;

    f->cfg.tmpdir = "/nonexistent/exw-lookups-test";
    l = exw_lookups_new(f->pool, f->job, &f->svc, &f->cfg, INT64_MAX / 2);
    /* Results of 3 kB each: the 64 kB write buffer fills, and the file that
     * should take it cannot be made. */
    for (i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "long-%d", i);
        e[i] = exw_lookups_request(l, key);
    }
    for (i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "long-%d", i);
        expect_entry(l, e[i], key);
        exw_lookups_release(l, e[i]);
    }
    assert_non_null(exw_lookups_error(l));
    assert_non_null(strstr(exw_lookups_error(l), "cannot be made"));
    exw_lookups_mem(l, &m);
    assert_true(m.store.spilled > 0 && m.store.spilled < N - 4);
    assert_int_equal(m.live, N - m.store.spilled);
    for (i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "long-%d", i);
        e[i] = exw_lookups_request(l, key);
        expect_entry(l, e[i], key);
        exw_lookups_release(l, e[i]);
    }
    assert_int_equal(atomic_load(&f->sv.requests), N);
    exw_lookups_free(l);
    f->cfg.tmpdir = tmpdir;
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/exw-test-lookups-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    return exw_http_global_init() == EXW_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    exw_http_global_cleanup();
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siphash_vectors),
        cmocka_unit_test(test_index_many_keys),
        cmocka_unit_test(test_index_keyed),
        cmocka_unit_test(test_pack_round_trip),
        cmocka_unit_test(test_spill_round_trip),
        cmocka_unit_test(test_spill_no_dir),
        cmocka_unit_test(test_spill_write_fails),
        cmocka_unit_test_setup_teardown(test_cycle, cycle_setup, cycle_teardown),
        cmocka_unit_test_setup_teardown(test_cycle_batched, cycle_setup, cycle_teardown),
        cmocka_unit_test_setup_teardown(test_free_staged, cycle_setup, cycle_teardown),
        cmocka_unit_test_setup_teardown(test_free_held_and_pending, cycle_setup, cycle_teardown),
        cmocka_unit_test_setup_teardown(test_cycle_spill_fails, cycle_setup, cycle_teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
