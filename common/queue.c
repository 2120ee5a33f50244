/* queue.c: taking jobs, putting them back, recovery, rows_key lists and the
 * P:dead entry. */
#include "exw/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exw/buf.h"
#include "exw/clock.h"
#include "exw/digest.h"
#include "exw/json.h"
#include "exw/keys.h"
#include "exw/utf8.h"

/* A document this large gives back its connection's read buffer at once. */
#define LARGE_REPLY (1u << 20)

exw_err exw_queue_take(struct exw_redis *rd, double timeout_s, char **doc, size_t *len,
                       struct exw_errbuf *eb)
{
    const char *prefix = exw_redis_prefix(rd);
    char *queue = exw_key(prefix, "queue", NULL);
    char *processing = exw_key(prefix, "processing", exw_redis_worker(rd));
    struct exw_reply *r;
    struct exw_cmd c;
    exw_err rc;

    exw_cmd_init(&c);
    exw_cmd_add(&c, "BLMOVE");
    exw_cmd_add(&c, queue);
    exw_cmd_add(&c, processing);
    exw_cmd_add(&c, "RIGHT");
    exw_cmd_add(&c, "LEFT");
    exw_cmd_addf(&c, "%.3f", timeout_s < 0.001 ? 0.001 : timeout_s);
    /* The socket must outwait the blocking command. */
    exw_redis_set_timeout(rd, (long)(timeout_s * 1000) + exw_redis_timeout(rd));
    rc = exw_redis_run(rd, &c, "BLMOVE", &r, eb);
    exw_redis_set_timeout(rd, exw_redis_timeout(rd));
    *doc = exw_reply_steal_string(r, len);
    exw_reply_free(r);
    if (*doc != NULL && *len >= LARGE_REPLY)
        exw_redis_trim(rd);
    free(queue);
    free(processing);
    return rc;
}

exw_err exw_queue_orphan(struct exw_redis *rd, const char (*held)[41], size_t nheld, int routine,
                         char **doc, size_t *len, struct exw_errbuf *eb)
{
    char *processing = exw_key(exw_redis_prefix(rd), "processing", exw_redis_worker(rd));
    struct exw_reply *r = NULL;
    struct exw_cmd c;
    exw_err rc;
    size_t i;

    *doc = NULL;
    *len = 0;
    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_orphan, 1);
    exw_cmd_add(&c, processing);
    exw_cmd_add(&c, routine ? "1" : "0");
    for (i = 0; i < nheld; i++)
        exw_cmd_add(&c, held[i]);
    rc = exw_redis_run(rd, &c, "orphan", &r, eb);
    if (rc == EXW_OK && exw_reply_count(r) == 1)
        *doc = exw_reply_steal_at(r, 0, len);
    else if (rc == EXW_OK && exw_reply_count(r) != 0)
        rc = exw_errbuf_set(eb, EXW_EREPLY, "orphan: unexpected reply");
    exw_reply_free(r);
    if (*doc != NULL && *len >= LARGE_REPLY)
        exw_redis_trim(rd);
    free(processing);
    return rc;
}

exw_err exw_queue_requeue(struct exw_redis *rd, const char *id, const char *doc, size_t doc_len,
                          long attempt, const char *event, int *owned, struct exw_errbuf *eb)
{
    const char *prefix = exw_redis_prefix(rd);
    const char *worker = exw_redis_worker(rd);
    char *processing = exw_key(prefix, "processing", worker);
    char *queue = exw_key(prefix, "queue", NULL);
    char *status = exw_key(prefix, "job", id);
    char *upload = exw_key_upload(prefix, worker, id);
    char *uploads = exw_key(prefix, "uploads", worker);
    char *events = exw_key(prefix, "events", NULL);
    struct exw_cmd c;
    long long n = 0;
    exw_err rc;

    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_requeue, 5);
    exw_cmd_add(&c, processing);
    exw_cmd_add(&c, queue);
    exw_cmd_add(&c, status);
    exw_cmd_add(&c, upload);
    exw_cmd_add(&c, uploads);
    exw_cmd_add_len(&c, doc, doc_len);
    exw_cmd_add(&c, worker);
    exw_cmd_addf(&c, "%ld", attempt);
    exw_cmd_addf(&c, "%lld", (long long)exw_wall_ms());
    exw_cmd_add(&c, events);
    exw_cmd_add(&c, event ? event : "");
    rc = exw_redis_run_int(rd, &c, "requeue", &n, eb);
    *owned = n == 1;
    free(processing);
    free(queue);
    free(status);
    free(upload);
    free(uploads);
    free(events);
    return rc;
}

exw_err exw_queue_recover(struct exw_redis *rd, long long *moved, struct exw_errbuf *eb)
{
    const char *prefix = exw_redis_prefix(rd);
    char *workers = exw_key(prefix, "workers", NULL);
    char *queue = exw_key(prefix, "queue", NULL);
    struct exw_cmd c;
    exw_err rc;

    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_recover, 2);
    exw_cmd_add(&c, workers);
    exw_cmd_add(&c, queue);
    exw_cmd_add(&c, prefix);
    rc = exw_redis_run_int(rd, &c, "recover", moved, eb);
    free(workers);
    free(queue);
    return rc;
}

exw_err exw_queue_release_own(struct exw_redis *rd, long long *moved, struct exw_errbuf *eb)
{
    const char *prefix = exw_redis_prefix(rd);
    char *processing = exw_key(prefix, "processing", exw_redis_worker(rd));
    char *queue = exw_key(prefix, "queue", NULL);
    char *uploads = exw_key(prefix, "uploads", exw_redis_worker(rd));
    struct exw_cmd c;
    exw_err rc;

    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_release, 3);
    exw_cmd_add(&c, processing);
    exw_cmd_add(&c, queue);
    exw_cmd_add(&c, uploads);
    rc = exw_redis_run_int(rd, &c, "release", moved, eb);
    free(processing);
    free(queue);
    free(uploads);
    return rc;
}

exw_err exw_queue_length(struct exw_redis *rd, long long *out, struct exw_errbuf *eb)
{
    char *queue = exw_key(exw_redis_prefix(rd), "queue", NULL);
    struct exw_cmd c;
    exw_err rc;

    exw_cmd_init(&c);
    exw_cmd_add(&c, "LLEN");
    exw_cmd_add(&c, queue);
    rc = exw_redis_run_int(rd, &c, "LLEN", out, eb);
    free(queue);
    return rc;
}

exw_err exw_queue_rows_len(struct exw_redis *rd, const char *key, long long measure_max,
                           long long bytes_max, long long *len, long long *bytes,
                           struct exw_errbuf *eb)
{
    const struct exw_reply *kind;
    struct exw_reply *r;
    struct exw_cmd c;
    exw_err rc;

    *len = 0;
    *bytes = -1;
    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_rows_len, 1);
    exw_cmd_add(&c, key);
    exw_cmd_addf(&c, "%lld", measure_max);
    exw_cmd_addf(&c, "%lld", bytes_max);
    rc = exw_redis_run(rd, &c, "reading the length of rows_key", &r, eb);
    if (rc != EXW_OK)
        return rc;
    kind = exw_reply_at(r, 0);
    if (kind == NULL)
        rc = exw_errbuf_set(eb, EXW_EREPLY, "reading the length of rows_key: unexpected reply");
    else if (exw_reply_is(kind, "none"))
        rc = exw_errbuf_set(eb, EXW_EREPLY, "the list does not exist");
    else if (!exw_reply_is(kind, "list") || exw_reply_count(r) != 3)
        rc = exw_errbuf_set(eb, EXW_EREPLY, "the key is a %s, not a list",
                            exw_reply_string(kind, NULL) ? exw_reply_string(kind, NULL) : "?");
    if (rc == EXW_OK) {
        *len = exw_reply_integer(exw_reply_at(r, 1));
        *bytes = exw_reply_integer(exw_reply_at(r, 2));
    }
    exw_reply_free(r);
    return rc;
}

exw_err exw_queue_rows(struct exw_redis *rd, const char *key, long long start, long long stop,
                       size_t max_bytes, size_t budget, exw_queue_row_fn fn, void *ud,
                       long long *too_long, struct exw_errbuf *eb)
{
    struct exw_reply *r;
    struct exw_cmd c;
    exw_err rc;
    size_t i, n;

    *too_long = -1;
    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_rows, 1);
    exw_cmd_add(&c, key);
    exw_cmd_addf(&c, "%lld", start);
    exw_cmd_addf(&c, "%lld", stop);
    exw_cmd_addf(&c, "%zu", max_bytes);
    exw_cmd_addf(&c, "%zu", budget);
    rc = exw_redis_run(rd, &c, "reading rows", &r, eb);
    if (rc != EXW_OK)
        return rc;
    n = exw_reply_count(r);
    if (n == 0) {
        rc = exw_errbuf_set(eb, EXW_EREPLY, "reading rows: unexpected reply");
    } else if (exw_reply_integer(exw_reply_at(r, 0)) == 1 && n == 3) {
        *too_long = exw_reply_integer(exw_reply_at(r, 1));
        rc = exw_errbuf_set(eb, EXW_ELIMIT, "element %lld has %lld bytes", *too_long,
                            exw_reply_integer(exw_reply_at(r, 2)));
    }
    for (i = 1; rc == EXW_OK && i < n; i++) {
        size_t len;
        const char *s = exw_reply_string(exw_reply_at(r, i), &len);

        if (s == NULL)
            rc = exw_errbuf_set(eb, EXW_EREPLY, "reading rows: an element is not a string");
        else
            rc = fn(s, len, ud);
    }
    exw_reply_free(r);
    return rc;
}

char *exw_queue_dead_entry_head(const char *head, size_t head_len, size_t total, const char *sha256,
                                const char *error, long long failed_at_ms)
{
    size_t keep = exw_utf8_cut(head, head_len, EXW_DEAD_JOB_MAX);
    struct exw_buf b;
    exw_err rc;

    /* The cap is far above what the entry can reach: the document's part is
     * at most EXW_DEAD_JOB_MAX bytes, each escaped into at most 6. */
    exw_buf_init(&b, (size_t)EXW_DEAD_JOB_MAX * 6 + strlen(error) * 6 + 256);
    rc = exw_buf_append(&b, "{\"job\":", 7);
    if (rc == EXW_OK)
        rc = exw_json_append_string(&b, head, keep);
    if (rc == EXW_OK)
        rc = exw_buf_append(&b, ",\"error\":", 9);
    if (rc == EXW_OK)
        rc = exw_json_append_string(&b, error, strlen(error));
    if (rc == EXW_OK)
        rc = exw_buf_printf(&b, ",\"failed_at\":%lld", failed_at_ms);
    if (rc == EXW_OK && keep < total)
        rc = exw_buf_printf(&b, ",\"truncated\":true,\"job_bytes\":%zu,\"job_sha256\":\"%s\"",
                            total, sha256);
    if (rc == EXW_OK)
        rc = exw_buf_append(&b, "}", 1);
    EXW_ASSERT(rc == EXW_OK);
    return exw_buf_steal(&b, NULL);
}

char *exw_queue_dead_entry(const char *doc, size_t len, const char *error, long long failed_at_ms)
{
    char hex[65] = "";

    if (exw_utf8_cut(doc, len, EXW_DEAD_JOB_MAX) < len) {
        struct exw_sha256 *sha = NULL;

        if (exw_sha256_new(&sha) != EXW_OK || exw_sha256_update(sha, doc, len) != EXW_OK ||
            exw_sha256_final(sha, hex) != EXW_OK)
            hex[0] = '\0';
        exw_sha256_free(sha);
    }
    return exw_queue_dead_entry_head(doc, len, len, hex, error, failed_at_ms);
}

exw_err exw_queue_peek_own(struct exw_redis *rd, size_t offset, size_t n, char **part,
                           size_t *part_len, long long *total, struct exw_errbuf *eb)
{
    char *processing = exw_key(exw_redis_prefix(rd), "processing", exw_redis_worker(rd));
    struct exw_reply *r;
    struct exw_cmd c;
    exw_err rc;

    *part = NULL;
    *part_len = 0;
    *total = 0;
    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_peek, 1);
    exw_cmd_add(&c, processing);
    exw_cmd_addf(&c, "%zu", offset);
    exw_cmd_addf(&c, "%zu", n);
    rc = exw_redis_run(rd, &c, "peek", &r, eb);
    if (rc == EXW_OK && exw_reply_count(r) == 2) {
        *total = exw_reply_integer(exw_reply_at(r, 0));
        const char *p = exw_reply_string(exw_reply_at(r, 1), part_len);

        *part = p ? exw_xstrndup(p, *part_len) : NULL; /* a part is small */
    } else if (rc == EXW_OK) {
        rc = exw_errbuf_set(eb, EXW_EREPLY, "peek: unexpected reply");
    }
    exw_reply_free(r);
    free(processing);
    return rc;
}
