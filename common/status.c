/* status.c: a job's start, progress and end, each one fenced script. */
#include "exw/status.h"

#include <stdlib.h>
#include <string.h>

#include "exw/clock.h"
#include "exw/keys.h"

static const struct {
    const char *name;
    enum exw_start start;
} start_outcomes[] = {
    {"started", EXW_START_STARTED},     {"gone", EXW_START_GONE},
    {"duplicate", EXW_START_DUPLICATE}, {"deferred", EXW_START_DEFERRED},
    {"cancelled", EXW_START_CANCELLED}, {"exhausted", EXW_START_EXHAUSTED},
};

exw_err exw_status_start(struct exw_redis *rd, const char *id, const char *doc, size_t doc_len,
                         long max_attempts, int busy_here, const char *event, enum exw_start *out,
                         long *attempts, struct exw_errbuf *eb)
{
    const char *prefix = exw_redis_prefix(rd);
    char *processing = exw_key(prefix, "processing", exw_redis_worker(rd));
    char *status = exw_key(prefix, "job", id);
    char *queue = exw_key(prefix, "queue", NULL);
    char *events = exw_key(prefix, "events", NULL);
    struct exw_reply *r = NULL;
    struct exw_cmd c;
    exw_err rc;
    size_t i;

    *out = EXW_START_GONE;
    *attempts = 0;
    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_start, 3);
    exw_cmd_add(&c, processing);
    exw_cmd_add(&c, status);
    exw_cmd_add(&c, queue);
    exw_cmd_add_len(&c, doc, doc_len);
    exw_cmd_add(&c, exw_redis_worker(rd));
    exw_cmd_addf(&c, "%lld", (long long)exw_wall_ms());
    exw_cmd_addf(&c, "%ld", max_attempts);
    exw_cmd_add(&c, prefix);
    exw_cmd_add(&c, events);
    exw_cmd_add(&c, event ? event : "");
    exw_cmd_add(&c, busy_here ? "1" : "0");
    rc = exw_redis_run(rd, &c, "start", &r, eb);
    if (rc != EXW_OK)
        goto out;
    rc = exw_errbuf_set(eb, EXW_EREPLY, "start: unexpected reply");
    if (exw_reply_count(r) != 2)
        goto out;
    for (i = 0; i < sizeof(start_outcomes) / sizeof(*start_outcomes); i++) {
        if (exw_reply_is(exw_reply_at(r, 0), start_outcomes[i].name)) {
            *out = start_outcomes[i].start;
            *attempts = (long)exw_reply_integer(exw_reply_at(r, 1));
            rc = EXW_OK;
        }
    }
out:
    exw_reply_free(r);
    free(processing);
    free(status);
    free(queue);
    free(events);
    return rc;
}

exw_err exw_status_progress(struct exw_redis *rd, const char *id, long attempt,
                            const char *const *fields, size_t nfields, const char *event,
                            int *owned, int *cancel, struct exw_errbuf *eb)
{
    const char *prefix = exw_redis_prefix(rd);
    char *status = exw_key(prefix, "job", id);
    char *events = exw_key(prefix, "events", NULL);
    struct exw_reply *r = NULL;
    struct exw_cmd c;
    exw_err rc;
    size_t i;

    *owned = 0;
    *cancel = 0;
    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_progress, 1);
    exw_cmd_add(&c, status);
    exw_cmd_add(&c, exw_redis_worker(rd));
    exw_cmd_addf(&c, "%ld", attempt);
    exw_cmd_add(&c, events);
    exw_cmd_add(&c, event ? event : "");
    for (i = 0; i < nfields; i++)
        exw_cmd_add(&c, fields[i]);
    rc = exw_redis_run(rd, &c, "progress", &r, eb);
    if (rc == EXW_OK && exw_reply_count(r) == 2) {
        *owned = exw_reply_integer(exw_reply_at(r, 0)) == 1;
        *cancel = exw_reply_integer(exw_reply_at(r, 1)) == 1;
    }
    exw_reply_free(r);
    free(status);
    free(events);
    return rc;
}

exw_err exw_status_end(struct exw_redis *rd, const struct exw_status_end *e, enum exw_end *out,
                       struct exw_errbuf *eb)
{
    const char *prefix = exw_redis_prefix(rd);
    const char *worker = exw_redis_worker(rd);
    const char *id = e->id ? e->id : "";
    char *keys[] = {
        exw_key(prefix, "processing", worker), exw_key(prefix, "job", id),
        exw_key(prefix, "stats", NULL),        exw_key_upload(prefix, worker, id),
        exw_key(prefix, "result", id),         NULL, /* the rows list, below */
        exw_key(prefix, "dead", NULL),         exw_key(prefix, "uploads", worker),
    };
    char *events = exw_key(prefix, "events", NULL);
    /* The workbook goes with the end only when it is the job's result. */
    int inline_result = e->has_result && e->result != NULL;
    struct exw_cmd c;
    long long n = 0;
    exw_err rc;
    size_t i;

    /* An end that writes no status declares the processing list in place of
     * the job's status and result, which it does not touch: an ACL that
     * refuses those cannot stop a dead letter, and every key stays in the
     * prefix's slot. */
    if (!e->write_status) {
        free(keys[1]);
        keys[1] = exw_xstrdup(keys[0]);
        free(keys[4]);
        keys[4] = exw_xstrdup(keys[0]);
    }
    keys[5] = exw_xstrdup(e->rows_key ? e->rows_key : keys[1]);
    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_finish, (int)(sizeof(keys) / sizeof(*keys)));
    for (i = 0; i < sizeof(keys) / sizeof(*keys); i++)
        exw_cmd_add(&c, keys[i]);
    exw_cmd_add_len(&c, e->doc, e->doc_len);
    exw_cmd_add(&c, worker);
    exw_cmd_addf(&c, "%ld", e->attempt);
    exw_cmd_addf(&c, "%ld", e->ttl_ms);
    exw_cmd_add(&c, events);
    exw_cmd_add(&c, e->event ? e->event : "");
    exw_cmd_add(&c, e->write_status ? "1" : "0");
    exw_cmd_add(&c, !e->has_result ? "0" : inline_result ? "2" : "1");
    exw_cmd_add(&c, e->rows_key ? "1" : "0");
    exw_cmd_add(&c, e->dead_entry ? e->dead_entry : "");
    exw_cmd_addf(&c, "%lld", e->doc_total);
    exw_cmd_add_len(&c, inline_result ? e->result : "", inline_result ? e->result_len : 0);
    exw_cmd_addf(&c, "%zu", e->nstats / 2);
    for (i = 0; i < e->nstats; i++)
        exw_cmd_add(&c, e->stats[i]);
    for (i = 0; i < e->nfields; i++)
        exw_cmd_add(&c, e->fields[i]);
    rc = exw_redis_run_int(rd, &c, "end", &n, eb);
    *out = n == 1    ? EXW_END_DONE
           : n == 2  ? EXW_END_ALREADY
           : n == -1 ? EXW_END_UPLOAD_GONE
                     : EXW_END_NOT_OWNED;
    for (i = 0; i < sizeof(keys) / sizeof(*keys); i++)
        free(keys[i]);
    free(events);
    return rc;
}
