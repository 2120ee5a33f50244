/* runner.c: one job's lifecycle, from the document just taken to its end.
 *
 *   taken ──identify──> dead (no usable id)            P:dead, no status
 *     │        └──────> failed (too large, not UTF-8)  under its id, not started
 *     └──start──> running ──> succeeded / failed / cancelled
 *           │            └──> queued again (shutdown: put back, start uncounted)
 *           ├──> dropped (a duplicate of a copy running elsewhere)
 *           ├──> deferred (another document with the id runs elsewhere)
 *           └──> failed too_many_attempts, into P:dead
 *
 * Every transition is one fenced script (status.h, queue.h): the start and
 * the end happen only while the document is still in this worker's
 * processing list, progress only while the status names this run. The start
 * is counted before the document is parsed, so that a document that kills
 * its worker is charged for it and ends in P:dead after EXPORT_MAX_ATTEMPTS
 * starts. Only cheap, allocation-free checks (size, UTF-8, syntax, the id)
 * come before it. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exw/clock.h"
#include "exw/digest.h"
#include "exw/keys.h"
#include "exw/log.h"
#include "exw/queue.h"
#include "exw/result.h"
#include "exw/status.h"
#include "run.h"

#define PROGRESS_EVERY_MS 250
#define END_BACKOFF_MAX_MS 2000
#define END_RETRY_MIN_MS 30000
#define HASH_PART (4u << 20) /* read a document too large to take in by this much */

static int64_t ttl_ms(const struct run *r)
{
    long s = r->job && r->job->result_ttl_s > 0 ? r->job->result_ttl_s : r->w->cfg->result_ttl_s;

    return (int64_t)s * 1000;
}

/* The rows_key of a job that ends before its document was parsed, so that its
 * list is deleted all the same; NULL when it has none. Caller frees. */
static char *rows_key_of(const struct run *r)
{
    struct exw_limits lim;

    exw_limits_of_config(&lim, r->w->cfg);
    return exw_job_rows_key_of(r->doc, r->doc_len, &lim, r->w->cfg->prefix);
}

void run_set_outcome(struct run *r, enum outcome o, const char *code, const char *fmt, ...)
{
    va_list ap;

    if (r->outcome != OUT_NONE)
        return; /* the first decision stands */
    r->outcome = o;
    r->error_code = code;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof(r->error), fmt, ap);
    va_end(ap);
    if (r->lookups != NULL && o != OUT_SUCCEEDED)
        exw_lookups_abort(r->lookups);
}

static void event_json(const struct run *r, const char *state, int progress, char *out,
                       size_t outsz)
{
    if (progress < 0)
        progress = 0;
    /* The id is of a safe alphabet (checked when read): no escaping needed. */
    snprintf(out, outsz, "{\"id\":\"%s\",\"state\":\"%s\",\"progress\":%d}", r->id, state,
             progress);
}

static int progress_of(const struct run *r, const struct lookup_counts *lc)
{
    long long total = r->rows_total + lc->total;
    long long done = r->rows_written + lc->done;
    int p = total > 0 ? (int)(done * 100 / total) : 0;

    return p > 99 ? 99 : p;
}

/* Writes progress to the status hash (at most every PROGRESS_EVERY_MS, or now
 * with @force) and learns whether the job was cancelled. */
static void report_progress(struct run *r, int force)
{
    struct lookup_counts lc = {0};
    char f_prog[16], f_rw[24], f_rt[24], f_lt[24], f_ld[24], f_lf[24], f_up[24], ev[256];
    int64_t now = exw_mono_ms();
    const char *event = NULL;
    struct exw_errbuf eb;
    struct exw_redis *rd;
    int progress, cancel = 0, owned = 0;

    if (!force && now < r->next_progress)
        return;
    r->next_progress = now + PROGRESS_EVERY_MS;
    if (r->lookups != NULL)
        exw_lookups_counts(r->lookups, &lc);
    progress = progress_of(r, &lc);
    snprintf(f_prog, sizeof(f_prog), "%d", progress);
    snprintf(f_rw, sizeof(f_rw), "%lld", r->rows_written);
    snprintf(f_rt, sizeof(f_rt), "%lld", r->rows_total);
    snprintf(f_lt, sizeof(f_lt), "%lld", lc.total);
    snprintf(f_ld, sizeof(f_ld), "%lld", lc.done);
    snprintf(f_lf, sizeof(f_lf), "%lld", lc.failed);
    snprintf(f_up, sizeof(f_up), "%lld", (long long)exw_wall_ms());
    if (progress != r->last_progress) {
        event_json(r, "running", progress, ev, sizeof(ev));
        event = ev;
    }
    rd = exw_conn_get(r->conn);
    if (rd == NULL)
        return;
    {
        const char *fields[] = {"progress",     f_prog, "rows_written",   f_rw,
                                "rows_total",   f_rt,   "lookups_total",  f_lt,
                                "lookups_done", f_ld,   "lookups_failed", f_lf,
                                "updated_at",   f_up,   "filename",       r->job->filename};

        if (exw_status_progress(rd, r->id, r->attempt, fields, sizeof(fields) / sizeof(*fields),
                                event, &owned, &cancel, &eb) != EXW_OK) {
            EXW_LOG(EXW_LOG_WARN, "progress not recorded: %s", eb.msg);
            return;
        }
    }
    r->last_progress = progress;
    if (!owned)
        run_set_outcome(r, OUT_LOST, NULL,
                        "the status no longer names this run: another worker took the job over");
    else if (cancel)
        run_set_outcome(r, OUT_CANCELLED, NULL, "cancelled by request");
}

/* Notes a stop request: from then on the job has the shutdown grace. */
static void note_stop(struct run *r)
{
    if (exw_stop_requested && r->grace_deadline == 0) {
        r->grace_deadline = exw_mono_ms() + r->w->cfg->shutdown_grace_s * 1000;
        EXW_LOG(EXW_LOG_INFO, "stop requested: the job has %ld s to finish",
                r->w->cfg->shutdown_grace_s);
    }
}

int run_check(struct run *r, int force_progress)
{
    int64_t now = exw_mono_ms();

    note_stop(r);
    if (r->grace_deadline != 0 && now >= r->grace_deadline)
        run_set_outcome(r, OUT_REQUEUE, NULL, "shutdown grace passed");
    if (now >= r->deadline)
        run_set_outcome(r, OUT_FAILED, "timeout",
                        "the job ran longer than EXPORT_JOB_TIMEOUT (%ld s); %lld of %lld rows "
                        "were written",
                        r->w->cfg->job_timeout_s, r->rows_written, r->rows_total);
    if (exw_worker_lease_lapsed(r->w, r->taken_at))
        run_set_outcome(r, OUT_LOST, NULL, "heartbeat lapsed since the job was taken");
    if (r->lookups != NULL && exw_lookups_error(r->lookups) != NULL)
        run_set_outcome(r, OUT_FAILED, "internal", "%s", exw_lookups_error(r->lookups));
    if (r->outcome == OUT_NONE && r->job->on_lookup_error == EXW_ON_LOOKUP_FAIL &&
        r->lookups != NULL) {
        struct lookup_counts lc;

        exw_lookups_counts(r->lookups, &lc);
        if (lc.failed > 0)
            run_set_outcome(r, OUT_FAILED, "lookup_failed", "%s", lc.first_error);
    }
    if (r->outcome == OUT_NONE)
        report_progress(r, force_progress);
    return r->outcome != OUT_NONE;
}

static void add_pair(const char **v, size_t *n, const char *name, const char *value)
{
    v[(*n)++] = name;
    v[(*n)++] = value;
}

/* The status fields of a job failed because its end was refused, into
 * @fields; returns how many strings. */
static size_t failed_fields(const struct run *r, const char **fields, const char *now)
{
    size_t n = 0;

    add_pair(fields, &n, "state", "failed");
    add_pair(fields, &n, "worker", r->w->cfg->worker_id);
    add_pair(fields, &n, "finished_at", now);
    add_pair(fields, &n, "updated_at", now);
    add_pair(fields, &n, "error_code", r->error_code);
    add_pair(fields, &n, "error", r->error);
    return n;
}

/* Sends @e until Redis answers, while the job's time lasts (at least
 * END_RETRY_MIN_MS) and no stop's grace has run out. Returns EXW_OK with
 * *@out, EXW_EREPLY when Redis refused it for good (@eb says why), or
 * EXW_ETIMEOUT when it gave up. */
static exw_err send_end(struct run *r, const struct exw_status_end *e, enum exw_end *out,
                        struct exw_errbuf *eb)
{
    int64_t now = exw_mono_ms();
    int64_t give_up = now + END_RETRY_MIN_MS > r->deadline ? now + END_RETRY_MIN_MS : r->deadline;
    int64_t backoff = 100;
    int failures = 0;

    for (;;) {
        struct exw_redis *rd = exw_conn_get(r->conn);
        exw_err rc = rd ? exw_status_end(rd, e, out, eb) : EXW_EREDIS;

        if (rc == EXW_OK || rc == EXW_EREPLY)
            return rc;
        EXW_LOG(failures++ == 0 ? EXW_LOG_WARN : EXW_LOG_DEBUG,
                "could not record the job's end, retrying: %s", rd ? eb->msg : "Redis unreachable");
        note_stop(r);
        now = exw_mono_ms();
        if (now >= give_up || (r->grace_deadline != 0 && now >= r->grace_deadline))
            return EXW_ETIMEOUT;
        if (r->grace_deadline != 0 && now + backoff > r->grace_deadline)
            backoff = r->grace_deadline - now;
        exw_sleep_ms(backoff);
        backoff = backoff * 2 > END_BACKOFF_MAX_MS ? END_BACKOFF_MAX_MS : backoff * 2;
    }
}

/* Ends the job in P:dead after Redis refused its end @e for good (a key of
 * the wrong type, an ACL, a broken counter: @eb says which), since retrying
 * cannot help. Tries, in turn, with a failed status and the counters, with
 * the status alone, with the counters alone, and with nothing but the dead
 * letter @dead, so that whatever Redis still takes tells the story. */
static exw_err end_refused(struct run *r, struct exw_status_end *e, const char *dead,
                           const char **fields, const char *now, char *ev, size_t evsz,
                           enum exw_end *end, struct exw_errbuf *eb)
{
    static const char *const counts[] = {"jobs_failed", "1", "jobs_dead", "1"};
    int had_status = e->write_status;
    exw_err rc = EXW_EREPLY;
    int tier;

    EXW_LOG(EXW_LOG_ERROR, "the job's end cannot be recorded: %s; it goes to %s:dead", eb->msg,
            r->w->cfg->prefix);
    snprintf(r->error, sizeof(r->error), "%s; the job is in %s:dead", eb->msg, r->w->cfg->prefix);
    r->error_code = "internal";
    event_json(r, "failed", r->last_progress, ev, evsz);
    e->has_result = 0;
    e->dead_entry = dead;
    for (tier = had_status ? 0 : 2; tier < 4 && rc == EXW_EREPLY; tier++) {
        int with_status = tier < 2, with_counts = tier % 2 == 0;

        e->write_status = with_status;
        e->nfields = with_status ? failed_fields(r, fields, now) : 0;
        e->event = with_status ? ev : NULL;
        e->rows_key = with_status ? e->rows_key : NULL;
        e->stats = with_counts ? counts + (with_status ? 0 : 2) : NULL;
        e->nstats = with_counts ? (with_status ? 4 : 2) : 0;
        rc = send_end(r, e, end, eb);
    }
    if (rc == EXW_EREPLY)
        EXW_LOG(EXW_LOG_ERROR, "not even %s:dead can be written: %s", r->w->cfg->prefix, eb->msg);
    return rc;
}

/* The counter of export_jobs_total that P:stats field @name feeds, or -1. */
static int outcome_of(const char *name)
{
    static const char *const fields[EXW_OUTCOME_COUNT] = {
        [EXW_OUTCOME_SUCCEEDED] = "jobs_succeeded",
        [EXW_OUTCOME_FAILED] = "jobs_failed",
        [EXW_OUTCOME_CANCELLED] = "jobs_cancelled",
        [EXW_OUTCOME_DEAD] = "jobs_dead",
    };
    int i;

    for (i = 0; i < EXW_OUTCOME_COUNT; i++)
        if (fields[i] != NULL && strcmp(fields[i], name) == 0)
            return i;
    return -1;
}

/* Counts in the metrics what the end @e just added to P:stats, read from the
 * very pairs it sent (after a refused end, those of the tier that went
 * through), so that the two cannot disagree; and the job's duration. */
static void count_end(const struct run *r, const struct exw_status_end *e)
{
    struct exw_metrics *m = r->w->metrics;
    long long lookups = 0, errors = 0;
    size_t i;

    for (i = 0; i + 1 < e->nstats; i += 2) {
        const char *name = e->stats[i];
        long long n = strtoll(e->stats[i + 1], NULL, 10);
        int o = outcome_of(name);

        if (o >= 0)
            exw_metrics_job(m, (enum exw_outcome)o, n);
        else if (strcmp(name, "lookups") == 0)
            lookups = n;
        else if (strcmp(name, "lookup_errors") == 0)
            errors = n;
        else if (strcmp(name, "bytes_out") == 0)
            exw_metrics_add(m, EXW_COUNTER_RESULT_BYTES, n);
    }
    if (lookups > 0 || errors > 0) {
        const struct exw_config *cfg = r->w->cfg;
        int service = -1;

        for (i = 0; r->svc != NULL && i < cfg->nservices; i++)
            if (&cfg->services[i] == r->svc)
                service = (int)i;
        exw_metrics_lookups(m, service, lookups > errors ? lookups - errors : 0, errors);
    }
    exw_metrics_job_duration(m, exw_mono_us() - r->began_us);
}

/* Ends the job in Redis as @state (NULL: only to P:dead, with no status).
 * Returns RUN_ENDED when it ended here or is no longer this worker's,
 * RUN_LEFT when it could not be recorded (it is still in the processing
 * list). */
static enum run_result finish(struct run *r, const char *state, const char *dead_entry)
{
    struct lookup_counts lc = {0};
    char now[24], rw[24], rt[24], lt[24], ld[24], lf[24], rb[24], ev[256];
    char s_lookups[24], s_req[24], s_err[24], s_bytes[24];
    char *result_key = NULL, *fallback = NULL, *stray_rows = NULL;
    const char *fields[40], *stats[16];
    size_t nf = 0, ns = 0;
    struct exw_status_end e = {0};
    struct exw_errbuf eb;
    enum exw_end end = EXW_END_NOT_OWNED;
    enum run_result res = RUN_ENDED;
    exw_err rc;

    if (r->lookups != NULL)
        exw_lookups_counts(r->lookups, &lc);
    snprintf(now, sizeof(now), "%lld", (long long)exw_wall_ms());
    snprintf(rw, sizeof(rw), "%lld", r->rows_written);
    snprintf(rt, sizeof(rt), "%lld", r->rows_total);
    snprintf(lt, sizeof(lt), "%lld", lc.total);
    snprintf(ld, sizeof(ld), "%lld", lc.done);
    snprintf(lf, sizeof(lf), "%lld", lc.failed);
    snprintf(s_lookups, sizeof(s_lookups), "%lld", lc.reached);
    snprintf(s_req, sizeof(s_req), "%lld", lc.requests);
    snprintf(s_err, sizeof(s_err), "%lld", lc.errors);
    e.id = r->id;
    e.doc = r->doc;
    e.doc_len = r->doc_len;
    e.doc_total = r->doc_total;
    e.attempt = r->attempt;
    e.ttl_ms = (long)ttl_ms(r);
    e.dead_entry = dead_entry;
    if (state != NULL) {
        int succeeded = strcmp(state, "succeeded") == 0;

        add_pair(fields, &nf, "state", state);
        add_pair(fields, &nf, "worker", r->w->cfg->worker_id);
        add_pair(fields, &nf, "finished_at", now);
        add_pair(fields, &nf, "updated_at", now);
        add_pair(fields, &nf, "rows_total", rt);
        add_pair(fields, &nf, "rows_written", rw);
        add_pair(fields, &nf, "lookups_total", lt);
        add_pair(fields, &nf, "lookups_done", ld);
        add_pair(fields, &nf, "lookups_failed", lf);
        if (r->job != NULL && r->job->filename != NULL)
            add_pair(fields, &nf, "filename", r->job->filename);
        if (succeeded) {
            result_key = exw_result_key(r->w->cfg->prefix, r->id);
            snprintf(rb, sizeof(rb), "%lld", r->result_bytes);
            add_pair(fields, &nf, "progress", "100");
            add_pair(fields, &nf, "result_key", result_key);
            add_pair(fields, &nf, "result_bytes", rb);
            add_pair(fields, &nf, "result_sha256", r->sha256);
        }
        if (r->error_code != NULL) {
            add_pair(fields, &nf, "error_code", r->error_code);
            add_pair(fields, &nf, "error", r->error);
        }
        event_json(r, state, succeeded ? 100 : r->last_progress, ev, sizeof(ev));
        e.event = ev;
        e.write_status = 1;
        e.has_result = succeeded;
        if (succeeded && r->result != NULL) {
            e.result = r->result;
            e.result_len = (size_t)r->result_bytes;
        }
        e.rows_key = r->job ? r->job->rows_key : (stray_rows = rows_key_of(r));
        /* A list that names one of the worker's own keys is never deleted. */
        if (e.rows_key != NULL && !exw_key_rows_allowed(r->w->cfg->prefix, e.rows_key))
            e.rows_key = NULL;
        add_pair(stats, &ns,
                 succeeded                         ? "jobs_succeeded"
                 : strcmp(state, "cancelled") == 0 ? "jobs_cancelled"
                                                   : "jobs_failed",
                 "1");
        if (lc.requests > 0 || lc.reached > 0) { /* reached: cache hits too */
            add_pair(stats, &ns, "lookups", s_lookups);
            add_pair(stats, &ns, "lookup_requests", s_req);
            add_pair(stats, &ns, "lookup_errors", s_err);
        }
        if (succeeded) {
            snprintf(s_bytes, sizeof(s_bytes), "%lld", r->result_bytes);
            add_pair(stats, &ns, "bytes_out", s_bytes);
        }
    }
    if (dead_entry != NULL)
        add_pair(stats, &ns, "jobs_dead", "1");
    e.fields = fields;
    e.nfields = nf;
    e.stats = stats;
    e.nstats = ns;
    rc = send_end(r, &e, &end, &eb);
    if (rc == EXW_EREPLY) {
        fallback = exw_queue_dead_entry(r->doc, r->doc_len, eb.msg, (long long)exw_wall_ms());
        state = "failed";
        rc = end_refused(r, &e, fallback, fields, now, ev, sizeof(ev), &end, &eb);
    }
    if (rc != EXW_OK) {
        EXW_LOG(EXW_LOG_ERROR, "gave up recording the job's end; it stays in %s:processing:%s",
                r->w->cfg->prefix, r->w->cfg->worker_id);
        res = RUN_LEFT;
    } else if (end == EXW_END_UPLOAD_GONE) {
        EXW_LOG(EXW_LOG_WARN, "the uploaded result has gone (expired or evicted); the job "
                              "runs again");
        res = RUN_LEFT;
    } else if (end == EXW_END_NOT_OWNED) {
        EXW_LOG(EXW_LOG_WARN,
                "the job was taken over by another worker; its outcome here (%s) "
                "is dropped",
                state ? state : "dead");
    } else {
        if (r->error_code != NULL)
            EXW_LOG(EXW_LOG_WARN, "job %s: %s: %s", state ? state : "dead", r->error_code,
                    r->error);
        else
            EXW_LOG(EXW_LOG_INFO, "job %s: %lld rows, %lld lookups (%lld requests), %lld bytes",
                    state ? state : "dead", r->rows_written, lc.total, lc.requests,
                    r->result_bytes);
        exw_mutex_lock(&r->w->mu);
        r->w->jobs_done++;
        exw_mutex_unlock(&r->w->mu);
        count_end(r, &e);
    }
    free(result_key);
    free(fallback);
    free(stray_rows);
    return res;
}

/* Ends the job in P:dead, with a status only when it has an id. */
static enum run_result finish_dead(struct run *r, const char *state)
{
    char *dead = exw_queue_dead_entry(r->doc, r->doc_len, r->error, (long long)exw_wall_ms());
    enum run_result res;

    EXW_LOG(EXW_LOG_WARN, "job goes to %s:dead: %s", r->w->cfg->prefix, r->error);
    res = finish(r, state, dead);
    free(dead);
    return res;
}

/* Puts the job back on the queue (shutdown). */
static enum run_result requeue(struct run *r)
{
    struct exw_redis *rd = exw_conn_get(r->conn);
    struct exw_errbuf eb;
    char ev[256];
    int owned = 0;

    event_json(r, "queued", 0, ev, sizeof(ev));
    if (rd == NULL ||
        exw_queue_requeue(rd, r->id, r->doc, r->doc_len, r->attempt, ev, &owned, &eb) != EXW_OK) {
        EXW_LOG(EXW_LOG_ERROR, "could not put the job back on the queue now (%s)",
                rd ? eb.msg : "Redis unreachable");
        return RUN_LEFT;
    }
    if (owned) {
        EXW_LOG(EXW_LOG_INFO, "job put back on the queue unfinished: %s", r->error);
        exw_metrics_job(r->w->metrics, EXW_OUTCOME_REQUEUED, 1);
    }
    return RUN_ENDED;
}

/* The fenced start. Returns 1 when the job runs; else the outcome is set, or
 * *@res says what became of the document. */
static int start(struct run *r, int busy_here, enum run_result *res)
{
    const struct exw_config *cfg = r->w->cfg;
    struct exw_redis *rd = exw_conn_get(r->conn);
    enum exw_start how = EXW_START_GONE;
    struct exw_errbuf eb;
    char ev[256];
    long attempts = 0;
    exw_err rc;

    *res = RUN_ENDED;
    event_json(r, "running", 0, ev, sizeof(ev));
    rc = rd ? exw_status_start(rd, r->id, r->doc, r->doc_len, cfg->max_attempts, busy_here, ev,
                               &how, &attempts, &eb)
            : EXW_EREDIS;
    if (rc == EXW_EREPLY) {
        /* The status cannot be written (a key of another type, an ACL): the
         * job cannot have one, so it goes to P:dead rather than round the
         * queue again. */
        run_set_outcome(r, OUT_DEAD, NULL, "the job's status %s:job:%s cannot be written: %s",
                        cfg->prefix, r->id, eb.msg);
        return 0;
    }
    if (rc == EXW_ENOMEM) {
        /* The document cannot even be sent back to Redis from here. */
        *res = RUN_OVERSIZED;
        return 0;
    }
    if (rc != EXW_OK) {
        run_set_outcome(r, OUT_LOST, NULL, "Redis unreachable at the start: %s",
                        rd ? eb.msg : "no connection");
        return 0;
    }
    switch (how) {
    case EXW_START_STARTED:
        r->attempt = attempts;
        EXW_LOG(EXW_LOG_INFO, "job started: attempt %ld", attempts);
        return 1;
    case EXW_START_GONE:
        EXW_LOG(EXW_LOG_WARN, "the job left this worker's processing list before its start");
        return 0;
    case EXW_START_DUPLICATE:
        EXW_LOG(EXW_LOG_INFO, "a copy of the same document runs on %s: this duplicate is dropped",
                busy_here ? "another job thread of this worker" : "another worker");
        return 0;
    case EXW_START_DEFERRED:
        EXW_LOG(EXW_LOG_INFO,
                "another document with this id runs on %s: this one waits at the end of the queue",
                busy_here ? "another job thread of this worker" : "another worker");
        *res = RUN_DEFERRED;
        return 0;
    case EXW_START_CANCELLED:
        r->attempt = attempts;
        run_set_outcome(r, OUT_CANCELLED, NULL, "cancelled before it started");
        return 0;
    case EXW_START_EXHAUSTED:
        r->attempt = attempts;
        run_set_outcome(r, OUT_DEAD, "too_many_attempts",
                        "the job was started %ld times without finishing (EXPORT_MAX_ATTEMPTS "
                        "is %ld); it is in %s:dead",
                        attempts, cfg->max_attempts, cfg->prefix);
        return 0;
    }
    return 0;
}

/* What a started job needs before its rows: the parsed document, its lookup
 * service and its rows_key list. Returns 0 with the outcome set. */
static int prepare(struct run *r, const struct exw_limits *lim)
{
    const struct exw_config *cfg = r->w->cfg;
    struct exw_errbuf eb;
    struct exw_redis *rd;

    /* exw_run_job() identified the document before its start. */
    if (exw_job_parse_identified(r->doc, r->doc_len, lim, cfg->prefix, r->id, &r->job, &eb) !=
        EXW_OK) {
        run_set_outcome(r, OUT_FAILED, "invalid_job", "%s", eb.msg);
        return 0;
    }
    if (r->job->service != NULL) {
        r->svc = exw_service_for_job(cfg, r->job->service, &eb);
        if (r->svc == NULL) {
            run_set_outcome(r, OUT_FAILED, "invalid_job", "%s", eb.msg);
            return 0;
        }
    }
    if (r->job->rows_key == NULL) {
        r->rows_total = (long long)r->job->nrows;
        return 1;
    }
    if (!exw_key_rows_check(cfg->prefix, r->job->rows_key, &eb)) {
        run_set_outcome(r, OUT_FAILED, "invalid_job", "%s", eb.msg);
        return 0;
    }
    rd = exw_conn_get(r->conn);
    if (rd == NULL) {
        run_set_outcome(r, OUT_LOST, NULL, "Redis unreachable reading rows_key");
        return 0;
    }
    switch (exw_queue_rows_len(rd, r->job->rows_key, run_memory_rows(r->job), RUN_MEMORY_BYTES,
                               &r->rows_total, &r->rows_bytes, &eb)) {
    case EXW_OK:
        break;
    case EXW_EREPLY:
        run_set_outcome(r, OUT_FAILED, "invalid_job", "rows_key: %s: %s", r->job->rows_key, eb.msg);
        return 0;
    default:
        run_set_outcome(r, OUT_LOST, NULL, "reading rows_key: %s", eb.msg);
        return 0;
    }
    if ((size_t)r->rows_total > r->job->limits.max_rows) {
        run_set_outcome(r, OUT_FAILED, "invalid_job",
                        "rows_key: %lld rows is over the limit of %zu", r->rows_total,
                        r->job->limits.max_rows);
        return 0;
    }
    return 1;
}

/* Ends the job as its outcome says. */
static enum run_result conclude(struct run *r)
{
    switch (r->outcome) {
    case OUT_SUCCEEDED:
        return finish(r, "succeeded", NULL);
    case OUT_CANCELLED:
        EXW_LOG(EXW_LOG_INFO, "job cancelled");
        return finish(r, "cancelled", NULL);
    case OUT_FAILED:
        return finish(r, "failed", NULL);
    case OUT_DEAD:
        /* Out of attempts: failed under its id, and in P:dead. Its status
         * cannot be written: P:dead only. */
        return finish_dead(r, r->error_code != NULL ? "failed" : NULL);
    case OUT_REQUEUE:
        return requeue(r);
    case OUT_LOST:
    case OUT_NONE:
        break;
    }
    EXW_LOG(EXW_LOG_ERROR, "job abandoned here (%s); it goes back on the queue", r->error);
    return RUN_LEFT;
}

enum run_result exw_run_job(struct slot *s, const char *doc, size_t len, int64_t taken_at)
{
    struct worker *w = s->w;
    const struct exw_config *cfg = w->cfg;
    struct run r = {.w = w,
                    .slot = s,
                    .conn = &s->conn,
                    .doc = doc,
                    .doc_len = len,
                    .last_progress = -1,
                    .rows_bytes = -1,
                    .fd = -1};
    struct exw_limits lim;
    enum exw_job_verdict verdict;
    enum run_result res = RUN_ENDED;
    struct exw_errbuf eb;
    int busy_here;

    exw_limits_of_config(&lim, cfg);
    r.began_us = exw_mono_us();
    r.taken_at = taken_at;
    r.deadline = exw_mono_ms() + cfg->job_timeout_s * 1000;
    verdict = exw_job_identify(doc, len, &lim, &r.id, &eb);
    if (r.id == NULL) {
        snprintf(r.error, sizeof(r.error), "%s", eb.msg);
        res = finish_dead(&r, NULL);
        goto out;
    }
    exw_log_set_job(r.id);
    busy_here = !exw_slot_set_job(s, r.id);
    if (verdict != EXW_JOB_OK) {
        /* Found wanting before anything was parsed: failed under its id, and
         * never started. */
        run_set_outcome(&r, OUT_FAILED, verdict == EXW_JOB_TOO_LARGE ? "too_large" : "invalid_job",
                        "%s", eb.msg);
    } else if (start(&r, busy_here, &res) && prepare(&r, &lim)) {
        r.last_progress = 0;
        /* The start wrote progress 0 and saw no cancel: a job that ends
         * sooner than this writes no progress at all, only its end. */
        r.next_progress = exw_mono_ms() + PROGRESS_EVERY_MS;
        r.lookups = exw_lookups_new(w->pool, r.job, r.svc, cfg, r.deadline);
        exw_lookups_share(r.lookups, w, r.conn);
        run_workbook(&r);
        /* Every answer that came is in the cache before the job ends. */
        exw_lookups_write_cache(r.lookups);
        /* A spill that failed after the last row still fails the job. */
        if (exw_lookups_error(r.lookups) != NULL)
            run_set_outcome(&r, OUT_FAILED, "internal", "%s", exw_lookups_error(r.lookups));
        if (r.outcome == OUT_NONE)
            r.outcome = OUT_SUCCEEDED;
    }
    if (r.outcome != OUT_NONE)
        res = conclude(&r);
out:
    run_workbook_cleanup(&r); /* before the lookups: window rows release their entries */
    exw_lookups_free(r.lookups);
    exw_job_free(r.job);
    free(r.id);
    exw_slot_set_job(s, NULL);
    exw_log_set_job(NULL);
    return res;
}

/* The SHA-256 of the oldest document of the own processing list, read in
 * parts, into @hex. Returns 0 when Redis failed or the document changed. */
static int hash_oldest(struct slot *s, long long total, char hex[65])
{
    struct exw_redis *rd = exw_conn_get(&s->conn);
    struct exw_sha256 *sha = NULL;
    struct exw_errbuf eb;
    long long offset = 0;
    int ok = rd != NULL && exw_sha256_new(&sha) == EXW_OK;

    while (ok && offset < total) {
        char *part = NULL;
        size_t n = 0;
        long long now_total = 0;

        ok = exw_queue_peek_own(rd, (size_t)offset, HASH_PART, &part, &n, &now_total, &eb) ==
                 EXW_OK &&
             now_total == total && n > 0 && exw_sha256_update(sha, part, n) == EXW_OK;
        offset += (long long)n;
        free(part);
    }
    ok = ok && exw_sha256_final(sha, hex) == EXW_OK;
    exw_sha256_free(sha);
    return ok;
}

enum run_result exw_run_oversized(struct slot *s, int64_t taken_at)
{
    struct worker *w = s->w;
    const struct exw_config *cfg = w->cfg;
    struct run r = {.w = w,
                    .slot = s,
                    .conn = &s->conn,
                    .last_progress = -1,
                    .fd = -1,
                    .began_us = exw_mono_us()};
    struct exw_redis *rd = exw_conn_get(&s->conn);
    enum run_result res = RUN_LEFT;
    struct exw_errbuf eb;
    char *head = NULL;
    size_t head_len = 0;
    long long total = 0;

    if (rd == NULL ||
        exw_queue_peek_own(rd, 0, EXW_DEAD_JOB_MAX, &head, &head_len, &total, &eb) != EXW_OK)
        goto out;
    if (total == 0) {
        res = RUN_ENDED;
        goto out;
    }
    r.doc = head;
    r.doc_len = head_len;
    r.doc_total = total;
    r.taken_at = taken_at;
    r.deadline = exw_mono_ms() + cfg->job_timeout_s * 1000;
    r.id = exw_job_scan_id(head, head_len);
    exw_log_set_job(r.id);
    run_set_outcome(&r, OUT_FAILED, "too_large",
                    "the job document has %lld bytes, more than this worker could take into "
                    "memory (a document costs about twice its size; EXPORT_MAX_JOB_BYTES is %ld)",
                    total, cfg->max_job_bytes);
    EXW_LOG(EXW_LOG_ERROR, "%s", r.error);
    if (r.id != NULL) {
        res = conclude(&r);
    } else {
        char hex[65];
        char *dead;

        if (!hash_oldest(s, total, hex))
            goto out;
        dead = exw_queue_dead_entry_head(head, head_len, (size_t)total, hex, r.error,
                                         (long long)exw_wall_ms());
        res = finish(&r, NULL, dead);
        free(dead);
    }
out:
    free(r.id);
    free(head);
    exw_log_set_job(NULL);
    return res;
}
