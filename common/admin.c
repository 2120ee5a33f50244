/* admin.c: the tools' steps on the Redis side, one script each (admin.h). */
#include "exw/admin.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exw/job.h"
#include "exw/json.h"
#include "exw/keys.h"

exw_err exw_admin_enqueue(struct exw_redis *rd, const char *id, const char *doc, size_t len,
                          long long now_ms, char *busy_state, size_t busy_size,
                          struct exw_errbuf *eb)
{
    const char *prefix = exw_redis_prefix(rd);
    char *status = exw_key(prefix, "job", id);
    char *queue = exw_key(prefix, "queue", NULL);
    char *channel = exw_key(prefix, "events", NULL);
    struct exw_reply *r = NULL;
    struct exw_cmd c;
    exw_err rc;

    busy_state[0] = '\0';
    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_enqueue, 2);
    exw_cmd_add(&c, status);
    exw_cmd_add(&c, queue);
    exw_cmd_add_len(&c, doc, len);
    exw_cmd_addf(&c, "%lld", now_ms);
    exw_cmd_add(&c, channel);
    /* Ids hold no character that JSON escapes (exw_job_id_valid). */
    exw_cmd_addf(&c, "{\"id\":\"%s\",\"state\":\"queued\",\"progress\":0}", id);
    rc = exw_redis_run(rd, &c, "enqueue", &r, eb);
    if (rc == EXW_OK && exw_reply_count(r) == 2 && exw_reply_is(exw_reply_at(r, 0), "busy")) {
        size_t n;
        const char *s = exw_reply_string(exw_reply_at(r, 1), &n);

        snprintf(busy_state, busy_size, "%.*s", s ? (int)n : 0, s ? s : "");
    }
    exw_reply_free(r);
    free(status);
    free(queue);
    free(channel);
    return rc;
}

exw_err exw_admin_cancel(struct exw_redis *rd, const char *id, enum exw_cancel *out,
                         struct exw_errbuf *eb)
{
    char *status = exw_key(exw_redis_prefix(rd), "job", id);
    struct exw_reply *r = NULL;
    struct exw_cmd c;
    exw_err rc;

    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_cancel, 1);
    exw_cmd_add(&c, status);
    rc = exw_redis_run(rd, &c, "cancel", &r, eb);
    *out = exw_reply_is(r, "asked")     ? EXW_CANCEL_ASKED
           : exw_reply_is(r, "missing") ? EXW_CANCEL_MISSING
                                        : EXW_CANCEL_ENDED;
    exw_reply_free(r);
    free(status);
    return rc;
}

void exw_admin_dead_cleanup(struct exw_dead *d)
{
    free(d->job);
    free(d->error);
    free(d->id);
    memset(d, 0, sizeof(*d));
}

exw_err exw_admin_dead_parse(const char *entry, size_t len, struct exw_dead *out,
                             struct exw_errbuf *eb)
{
    cJSON *root = NULL;
    const cJSON *job, *error, *at, *truncated, *bytes;
    exw_err rc;

    memset(out, 0, sizeof(*out));
    rc = exw_json_parse(entry, len, 8, &root, eb);
    if (rc != EXW_OK)
        return rc;
    job = cJSON_GetObjectItemCaseSensitive(root, "job");
    if (!cJSON_IsString(job)) {
        cJSON_Delete(root);
        return exw_errbuf_set(eb, EXW_EJSON, "dead entry: job: not a string");
    }
    out->job_len = strlen(job->valuestring);
    out->job = exw_xstrndup(job->valuestring, out->job_len);
    error = cJSON_GetObjectItemCaseSensitive(root, "error");
    out->error = exw_xstrdup(cJSON_IsString(error) ? error->valuestring : "");
    at = cJSON_GetObjectItemCaseSensitive(root, "failed_at");
    out->at_ms = cJSON_IsNumber(at) ? (long long)at->valuedouble : 0;
    truncated = cJSON_GetObjectItemCaseSensitive(root, "truncated");
    out->truncated = cJSON_IsTrue(truncated);
    bytes = cJSON_GetObjectItemCaseSensitive(root, "job_bytes");
    out->job_bytes =
        cJSON_IsNumber(bytes) ? (long long)bytes->valuedouble : (long long)out->job_len;
    out->id = exw_job_scan_id(out->job, out->job_len);
    cJSON_Delete(root);
    return EXW_OK;
}

exw_err exw_admin_revive(struct exw_redis *rd, const char *entry, size_t len, long long now_ms,
                         int *done, struct exw_errbuf *eb)
{
    const char *prefix = exw_redis_prefix(rd);
    struct exw_dead d;
    char *dead, *queue, *status;
    long long n = 0;
    struct exw_cmd c;
    exw_err rc;

    *done = 0;
    rc = exw_admin_dead_parse(entry, len, &d, eb);
    if (rc != EXW_OK) {
        exw_admin_dead_cleanup(&d);
        return rc;
    }
    if (d.truncated) {
        exw_admin_dead_cleanup(&d);
        return exw_errbuf_set(eb, EXW_ELIMIT,
                              "the entry holds only the first part of a %lld-byte document: "
                              "enqueue the whole document again instead",
                              d.job_bytes);
    }
    dead = exw_key(prefix, "dead", NULL);
    queue = exw_key(prefix, "queue", NULL);
    /* Without an id the key is not touched; it is still named, in the slot. */
    status = exw_key(prefix, "job", d.id ? d.id : "");
    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_revive, 3);
    exw_cmd_add(&c, dead);
    exw_cmd_add(&c, queue);
    exw_cmd_add(&c, status);
    exw_cmd_add_len(&c, entry, len);
    exw_cmd_add_len(&c, d.job, d.job_len);
    exw_cmd_addf(&c, "%lld", now_ms);
    exw_cmd_add(&c, d.id ? "1" : "0");
    rc = exw_redis_run_int(rd, &c, "requeue a dead letter", &n, eb);
    *done = n == 1;
    free(dead);
    free(queue);
    free(status);
    exw_admin_dead_cleanup(&d);
    return rc;
}
