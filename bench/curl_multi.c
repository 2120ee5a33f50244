/* curl_multi.c: the reference for export-worker's lookup throughput (scripts/bench.sh).
 *
 * What plain libcurl code does with the same work: COUNT GETs of a URL
 * template, {key} replaced by KEY_PREFIX followed by the index written as
 * seven digits (escaped as the worker escapes keys), PARALLEL of them in
 * flight at once on one multi handle. Each easy handle is made once and reused
 * for the next key, so its connection stays alive as the worker's pool threads
 * keep theirs; bodies are thrown away unread; a request counts as ok when it
 * ends with status 200. No retries: the mock answers every request.
 *
 * With --threads the same requests go out as the worker sends them instead:
 * PARALLEL threads, each with one easy handle and blocking curl_easy_perform
 * calls, taking the next key from a shared counter. That is the floor under
 * the worker's design (a fixed pool of blocking calls), where the multi
 * handle is the floor under the machine.
 *
 * Prints one line of JSON on stdout, with the peak RSS of this process (VmHWM,
 * which starts afresh at exec):
 *   {"requests":N,"ok":N,"seconds":S,"per_second":R,"peak_rss_kib":K}
 * and exits 0 when every request was a 200, 1 otherwise, 2 on a usage error.
 *
 *   bench-curl-multi [--threads] URL_TEMPLATE COUNT PARALLEL [KEY_PREFIX]
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "measure.h"

#define PROG "bench-curl-multi"
#define TIMEOUT_MS 5000L
#define MAX_PARALLEL 4096

struct options {
    const char *tmpl;
    long count;
    long parallel;
    const char *prefix;
    int threads; /* --threads: blocking calls on PARALLEL threads */
};

/* What the threads of --threads share. */
struct blocking {
    const struct options *o;
    atomic_long next; /* the next key to send */
    atomic_long ok;
    atomic_int failed; /* a setup failure */
};

static size_t discard(char *data, size_t size, size_t n, void *ud)
{
    (void)data;
    (void)ud;
    return size * n;
}

static int parse_count(const char *s, long max, long *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Sets the URL of key number @i on @e; returns 0, or -1 when out of memory. */
static int set_url(CURL *e, const struct options *o, long i)
{
    const char *at = strstr(o->tmpl, "{key}");
    char key[256];
    char *escaped;
    char *url;
    size_t len;
    int rc = -1;

    snprintf(key, sizeof(key), "%s%07ld", o->prefix, i);
    escaped = curl_easy_escape(e, key, 0);
    if (escaped == NULL)
        return -1;
    len = strlen(o->tmpl) - 5 + strlen(escaped) + 1;
    url = malloc(len);
    if (url != NULL) {
        snprintf(url, len, "%.*s%s%s", (int)(at - o->tmpl), o->tmpl, escaped, at + 5);
        /* libcurl copies the string. */
        rc = curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK ? 0 : -1;
        free(url);
    }
    curl_free(escaped);
    return rc;
}

static CURL *new_handle(void)
{
    CURL *e = curl_easy_init();

    if (e == NULL)
        return NULL;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, TIMEOUT_MS);
    return e;
}

/* Runs every request; returns the number of 200s, or -1 on a setup failure. */
static long run(const struct options *o, CURLM *m, CURL **handles)
{
    long next = 0;
    long ended = 0;
    long ok = 0;
    int running = 0;

    for (long i = 0; i < o->parallel && next < o->count; i++, next++) {
        if (set_url(handles[i], o, next) != 0 || curl_multi_add_handle(m, handles[i]) != CURLM_OK)
            return -1;
    }
    while (ended < o->count) {
        CURLMsg *msg;
        int left;

        if (curl_multi_perform(m, &running) != CURLM_OK)
            return -1;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            CURL *e = msg->easy_handle;
            long status = 0;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result == CURLE_OK && status == 200)
                ok++;
            ended++;
            curl_multi_remove_handle(m, e);
            if (next < o->count) {
                if (set_url(e, o, next++) != 0 || curl_multi_add_handle(m, e) != CURLM_OK)
                    return -1;
            }
        }
        if (ended < o->count && curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK)
            return -1;
    }
    return ok;
}

/* One thread of --threads: blocking requests on its handle until no key is left. */
static void *blocking_main(void *arg)
{
    struct blocking *b = arg;
    CURL *e = new_handle();
    long i;

    if (e == NULL) {
        atomic_store(&b->failed, 1);
        return NULL;
    }
    while ((i = atomic_fetch_add(&b->next, 1)) < b->o->count) {
        long status = 0;

        if (set_url(e, b->o, i) != 0) {
            atomic_store(&b->failed, 1);
            break;
        }
        if (curl_easy_perform(e) == CURLE_OK &&
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200)
            atomic_fetch_add(&b->ok, 1);
    }
    curl_easy_cleanup(e);
    return NULL;
}

/* Runs every request on o->parallel threads; returns the number of 200s, or -1
 * on a setup failure. */
static long run_blocking(const struct options *o)
{
    struct blocking b = {.o = o};
    pthread_t *tids = calloc((size_t)o->parallel, sizeof(*tids));
    long started = 0;

    if (tids == NULL)
        return -1;
    while (started < o->parallel && pthread_create(&tids[started], NULL, blocking_main, &b) == 0)
        started++;
    if (started < o->parallel)
        atomic_store(&b.failed, 1);
    for (long i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    free(tids);
    return atomic_load(&b.failed) ? -1 : atomic_load(&b.ok);
}

int main(int argc, char **argv)
{
    struct options o = {NULL, 0, 0, "K", 0};
    CURLM *m = NULL;
    CURL **handles = NULL;
    double t0, secs;
    long ok = -1;
    int rc = 1;

    if (argc > 1 && strcmp(argv[1], "--threads") == 0) {
        o.threads = 1;
        argc--;
        argv++;
    }
    if (argc < 4 || argc > 5 || strstr(argv[1], "{key}") == NULL ||
        parse_count(argv[2], 1000000000L, &o.count) != 0 ||
        parse_count(argv[3], MAX_PARALLEL, &o.parallel) != 0) {
        fprintf(stderr, "usage: " PROG " [--threads] URL_TEMPLATE COUNT PARALLEL [KEY_PREFIX]\n"
                        "  URL_TEMPLATE holds {key}; COUNT >= 1; PARALLEL 1..4096\n");
        return 2;
    }
    o.tmpl = argv[1];
    if (argc == 5)
        o.prefix = argv[4];
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fputs(PROG ": curl_global_init failed\n", stderr);
        return 1;
    }
    if (o.threads) {
        t0 = now_s();
        ok = run_blocking(&o);
        secs = now_s() - t0;
        goto report;
    }
    m = curl_multi_init();
    handles = calloc((size_t)o.parallel, sizeof(*handles));
    if (m == NULL || handles == NULL)
        goto out;
    for (long i = 0; i < o.parallel; i++) {
        handles[i] = new_handle();
        if (handles[i] == NULL)
            goto out;
    }
    t0 = now_s();
    ok = run(&o, m, handles);
    secs = now_s() - t0;
report:
    if (ok < 0) {
        fputs(PROG ": libcurl setup failed\n", stderr);
        goto out;
    }
    printf("{\"requests\":%ld,\"ok\":%ld,\"seconds\":%.6f,\"per_second\":%.1f,"
           "\"peak_rss_kib\":%ld}\n",
           o.count, ok, secs, (double)o.count / secs, peak_rss_kib());
    rc = ok == o.count ? 0 : 1;
out:
    for (long i = 0; handles != NULL && i < o.parallel; i++) {
        if (handles[i] != NULL) {
            curl_multi_remove_handle(m, handles[i]);
            curl_easy_cleanup(handles[i]);
        }
    }
    free(handles);
    if (m != NULL)
        curl_multi_cleanup(m);
    curl_global_cleanup();
    return rc;
}
