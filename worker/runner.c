/* runner.c: one job, from the document just taken to its end in Redis.
 *
 * The job thread reads rows in order into a window of EXPORT_BATCH_ROWS rows,
 * asks for each row's lookup as the row enters the window (so the pool works
 * ahead of the writer), and writes rows from the window's head as soon as
 * their lookups are back. Memory is bounded by the window, not the job: with
 * rows_key the rows themselves stream from Redis in chunks. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exw/clock.h"
#include "exw/digest.h"
#include "exw/log.h"
#include "exw/xlsx.h"
#include "worker.h"

#define PROGRESS_EVERY_MS 250
#define WAIT_STEP_MS 100
#define FETCH_ROWS 1000
#define UPLOAD_CHUNK (1u << 20)
#define MAX_RESULT_BYTES (512ull << 20) /* Redis' own limit for one string */

enum outcome {
    OUT_NONE,
    OUT_SUCCEEDED,
    OUT_FAILED,
    OUT_CANCELLED,
    OUT_REQUEUE, /* back on the queue unfinished (shutdown) */
    OUT_LOST,    /* Redis away or the job taken over: nothing recorded here */
    OUT_DEAD     /* cannot even have a status: to P:dead */
};

struct pending {
    const struct exw_row *row;
    struct exw_row *owned;      /* rows from rows_key, freed once written */
    struct lookup_entry *entry; /* NULL: no lookup for this row */
};

struct run {
    struct worker *w;
    const char *doc;
    size_t doc_len;
    struct exw_job *job;
    const struct exw_service *svc;
    struct lookups *lookups;
    int64_t deadline;       /* monotonic */
    int64_t grace_deadline; /* monotonic; 0 until a stop is asked for */
    int64_t next_progress;
    int last_progress;
    long attempt; /* this run's number, as the status hash says while it owns the job */
    long long rows_total;
    long long rows_read;
    long long rows_written;
    struct pending *window; /* a ring of cfg->batch_rows */
    size_t wcap, whead, wcount;
    struct exw_row **fetched; /* rows_key rows read ahead, not yet in the window */
    size_t nfetched, fetch_pos;
    struct exw_xlsx *xlsx;
    char path[PATH_MAX];
    struct exw_cell *cells;
    enum outcome outcome;
    const char *error_code;
    char error[512];
    long long result_bytes;
    char sha256[65];
};

static int64_t ttl_ms(const struct run *r)
{
    long s = r->job && r->job->result_ttl_s > 0 ? r->job->result_ttl_s : r->w->cfg->result_ttl_s;

    return (int64_t)s * 1000;
}

static void set_outcome(struct run *r, enum outcome o, const char *code, const char *fmt, ...)
    EXW_PRINTF(4, 5);
static void set_outcome(struct run *r, enum outcome o, const char *code, const char *fmt, ...)
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

/* The main thread's Redis connection, remade when broken. NULL when Redis
 * cannot be reached right now. */
struct exw_rq *exw_worker_redis(struct worker *w)
{
    static int down_logged;
    struct exw_errbuf eb;

    if (w->rq != NULL && !exw_rq_broken(w->rq))
        return w->rq;
    exw_rq_free(w->rq);
    w->rq = NULL;
    if (exw_rq_connect(&w->cfg->redis, w->cfg->prefix, w->cfg->worker_id, 5000, &w->rq, &eb) !=
        EXW_OK) {
        if (!down_logged)
            EXW_LOG(EXW_LOG_WARN, "Redis unreachable, retrying: %s", eb.msg);
        down_logged = 1;
        return NULL;
    }
    if (down_logged)
        EXW_LOG(EXW_LOG_INFO, "Redis reachable again");
    down_logged = 0;
    return w->rq;
}

static void event_json(const struct run *r, const char *state, int progress, char *out,
                       size_t outsz)
{
    if (progress < 0)
        progress = 0;
    /* The id is of a safe alphabet (checked when parsed): no escaping needed. */
    snprintf(out, outsz, "{\"id\":\"%s\",\"state\":\"%s\",\"progress\":%d}", r->job->id, state,
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
    struct lookup_counts lc;
    char f_prog[16], f_rw[24], f_rt[24], f_lt[24], f_ld[24], f_lf[24], f_up[24], ev[256];
    int64_t now = exw_mono_ms();
    struct exw_errbuf eb;
    struct exw_rq *rq;
    int progress, cancel = 0, owned = 0;

    if (!force && now < r->next_progress)
        return;
    r->next_progress = now + PROGRESS_EVERY_MS;
    exw_lookups_counts(r->lookups, &lc);
    progress = progress_of(r, &lc);
    snprintf(f_prog, sizeof(f_prog), "%d", progress);
    snprintf(f_rw, sizeof(f_rw), "%lld", r->rows_written);
    snprintf(f_rt, sizeof(f_rt), "%lld", r->rows_total);
    snprintf(f_lt, sizeof(f_lt), "%lld", lc.total);
    snprintf(f_ld, sizeof(f_ld), "%lld", lc.done);
    snprintf(f_lf, sizeof(f_lf), "%lld", lc.failed);
    snprintf(f_up, sizeof(f_up), "%lld", (long long)exw_wall_ms());
    {
        const char *fields[] = {"progress",     f_prog, "rows_written",   f_rw,
                                "rows_total",   f_rt,   "lookups_total",  f_lt,
                                "lookups_done", f_ld,   "lookups_failed", f_lf,
                                "updated_at",   f_up};
        const char *event = NULL;

        if (progress != r->last_progress) {
            event_json(r, "running", progress, ev, sizeof(ev));
            event = ev;
        }
        rq = exw_worker_redis(r->w);
        if (rq == NULL)
            return;
        if (exw_rq_progress(rq, r->job->id, r->attempt, fields, sizeof(fields) / sizeof(*fields),
                            event, &owned, &cancel, &eb) != EXW_OK) {
            EXW_LOG(EXW_LOG_WARN, "progress not recorded: %s", eb.msg);
            return;
        }
    }
    r->last_progress = progress;
    if (!owned)
        set_outcome(r, OUT_LOST, NULL,
                    "the status no longer names this run: another worker took the job over");
    else if (cancel)
        set_outcome(r, OUT_CANCELLED, NULL, "cancelled by request");
}

/* Everything that can end a job while it runs, checked between rows and while
 * waiting for lookups. Returns nonzero once the outcome is decided. */
static int check(struct run *r, int force_progress)
{
    int64_t now = exw_mono_ms();

    if (exw_stop_requested && r->grace_deadline == 0) {
        r->grace_deadline = now + r->w->cfg->shutdown_grace_s * 1000;
        EXW_LOG(EXW_LOG_INFO, "stop requested: the job has %ld s to finish",
                r->w->cfg->shutdown_grace_s);
    }
    if (r->grace_deadline != 0 && now >= r->grace_deadline)
        set_outcome(r, OUT_REQUEUE, NULL, "shutdown grace passed");
    if (now >= r->deadline)
        set_outcome(r, OUT_FAILED, "timeout",
                    "the job ran longer than EXPORT_JOB_TIMEOUT (%ld s); %lld of %lld rows "
                    "were written",
                    r->w->cfg->job_timeout_s, r->rows_written, r->rows_total);
    if (atomic_load(&r->w->lease_lost))
        set_outcome(r, OUT_LOST, NULL, "heartbeat lapsed");
    if (r->outcome == OUT_NONE && r->job->on_lookup_error == EXW_ON_LOOKUP_FAIL &&
        r->lookups != NULL) {
        struct lookup_counts lc;

        exw_lookups_counts(r->lookups, &lc);
        if (lc.failed > 0)
            set_outcome(r, OUT_FAILED, "lookup_failed", "%s", lc.first_error);
    }
    if (r->outcome == OUT_NONE)
        report_progress(r, force_progress);
    return r->outcome != OUT_NONE;
}

static exw_err keep_row(const char *data, size_t len, void *ud)
{
    struct run *r = ud;
    struct exw_errbuf eb;
    struct exw_row *row;

    if (exw_row_parse(r->job, data, len, (size_t)(r->rows_read + r->nfetched), &row, &eb) !=
        EXW_OK) {
        set_outcome(r, OUT_FAILED, "invalid_job", "%s", eb.msg);
        return EXW_EJSON;
    }
    r->fetched[r->nfetched++] = row;
    return EXW_OK;
}

/* The next row in order, from the document or from rows_key. Returns 0 at the
 * end or on an error (then the outcome is set). */
static int next_row(struct run *r, const struct exw_row **row, struct exw_row **owned)
{
    struct exw_errbuf eb;
    struct exw_rq *rq;

    *owned = NULL;
    if (r->rows_read >= r->rows_total)
        return 0;
    if (r->job->rows_key == NULL) {
        *row = r->job->rows[r->rows_read++];
        return 1;
    }
    if (r->fetch_pos == r->nfetched) {
        r->nfetched = 0;
        r->fetch_pos = 0;
        rq = exw_worker_redis(r->w);
        if (rq == NULL) {
            set_outcome(r, OUT_LOST, NULL, "Redis unreachable while reading rows");
            return 0;
        }
        if (exw_rq_lrange(rq, r->job->rows_key, r->rows_read, r->rows_read + FETCH_ROWS - 1,
                          keep_row, r, &eb) != EXW_OK) {
            if (exw_rq_broken(rq))
                set_outcome(r, OUT_LOST, NULL, "reading %s: %s", r->job->rows_key, eb.msg);
            else /* keep_row already decided, or Redis refused the read */
                set_outcome(r, OUT_FAILED, "invalid_job", "rows_key: %s cannot be read (%s)",
                            r->job->rows_key, eb.msg);
            return 0;
        }
        if (r->nfetched == 0) {
            set_outcome(r, OUT_FAILED, "invalid_job",
                        "rows_key: the list %s ended after %lld of %lld rows (it changed while "
                        "the job ran)",
                        r->job->rows_key, r->rows_read, r->rows_total);
            return 0;
        }
    }
    *owned = r->fetched[r->fetch_pos];
    r->fetched[r->fetch_pos++] = NULL;
    *row = *owned;
    r->rows_read++;
    return 1;
}

/* Tops up the window with rows and starts their lookups. */
static void fill_window(struct run *r)
{
    while (r->wcount < r->wcap && r->outcome == OUT_NONE) {
        struct pending *p = &r->window[(r->whead + r->wcount) % r->wcap];
        struct exw_errbuf eb;
        char scratch[32];
        const char *key;

        if (!next_row(r, &p->row, &p->owned))
            return;
        p->entry = NULL;
        r->wcount++;
        if (exw_job_row_key(r->job, p->row, (size_t)(r->rows_read - 1), scratch, &key, &eb) !=
            EXW_OK) {
            set_outcome(r, OUT_FAILED, "invalid_job", "%s", eb.msg);
            return;
        }
        if (key != NULL)
            p->entry = exw_lookups_request(r->lookups, key);
    }
}

static void pop_window(struct run *r)
{
    struct pending *p = &r->window[r->whead];

    exw_row_free(p->owned);
    memset(p, 0, sizeof(*p));
    r->whead = (r->whead + 1) % r->wcap;
    r->wcount--;
}

/* Writes the window's head row if its lookup is back. Returns 1 if written. */
static int write_head(struct run *r, int64_t wait_ms)
{
    struct pending *p = &r->window[r->whead];
    const struct exw_cell *lookup = NULL;
    const char *error = NULL;
    struct exw_errbuf eb;
    size_t index = (size_t)r->rows_written;

    if (p->entry != NULL) {
        if (!exw_lookups_wait(r->lookups, p->entry, wait_ms, &lookup, &error))
            return 0;
        if (lookup == NULL && r->job->on_lookup_error == EXW_ON_LOOKUP_FAIL) {
            if (exw_mono_ms() >= r->deadline)
                return check(r, 0), 0;
            set_outcome(r, OUT_FAILED, "lookup_failed", "rows[%zu]: lookup of key \"%.80s\": %s",
                        index, exw_lookups_key(p->entry), error);
            return 0;
        }
    }
    if (exw_job_row_cells(r->job, p->row, index, lookup, r->cells, &eb) != EXW_OK) {
        set_outcome(r, OUT_FAILED, "invalid_job", "%s", eb.msg);
        return 0;
    }
    if (exw_xlsx_write_row(r->xlsx, r->cells, &eb) != EXW_OK) {
        set_outcome(r, OUT_FAILED, "internal", "writing the workbook failed: %s", eb.msg);
        return 0;
    }
    r->rows_written++;
    pop_window(r);
    return 1;
}

static void produce(struct run *r)
{
    const struct exw_config *cfg = r->w->cfg;
    struct exw_errbuf eb;
    long long written_at_check = -1;

    r->wcap = (size_t)cfg->batch_rows;
    r->window = exw_xcalloc(r->wcap, sizeof(*r->window));
    r->fetched = exw_xcalloc(FETCH_ROWS, sizeof(*r->fetched));
    r->cells = exw_xcalloc(r->job->ncolumns, sizeof(*r->cells));
    snprintf(r->path, sizeof(r->path), "%s/export-%s-%s.xlsx", cfg->tmpdir, cfg->worker_id,
             r->job->id);
    if (exw_xlsx_open(r->path, cfg->tmpdir, r->job->sheet, r->job->columns, r->job->ncolumns,
                      (uint32_t)cfg->max_sheet_rows, &r->xlsx, &eb) != EXW_OK) {
        set_outcome(r, OUT_FAILED, "internal", "cannot create the workbook in %s: %s", cfg->tmpdir,
                    eb.msg);
        return;
    }
    while (r->outcome == OUT_NONE && r->rows_written < r->rows_total) {
        fill_window(r);
        if (r->outcome != OUT_NONE || r->wcount == 0)
            break;
        /* Write every row that is ready; wait a little on one that is not. */
        while (r->wcount > 0 && r->outcome == OUT_NONE && write_head(r, 0))
            ;
        if (r->outcome == OUT_NONE && r->wcount > 0 && !write_head(r, WAIT_STEP_MS))
            check(r, 0);
        else if (r->rows_written - written_at_check >= 1024) {
            written_at_check = r->rows_written;
            check(r, 0);
        }
    }
    if (r->outcome == OUT_NONE && r->rows_written < r->rows_total)
        set_outcome(r, OUT_FAILED, "internal", "only %lld of %lld rows were written",
                    r->rows_written, r->rows_total);
}

/* Streams the finished file into Redis in chunks while hashing it. */
/* Streams the finished file into Redis in chunks while hashing it. Returns 1
 * when stored; 0 when Redis failed on the way (*@why says how) or the outcome
 * was decided meanwhile. */
static int upload_once(struct run *r, char *why, size_t whysz)
{
    struct exw_sha256 *sha = NULL;
    struct exw_errbuf eb;
    char *chunk = exw_xmalloc(UPLOAD_CHUNK);
    FILE *f = fopen(r->path, "rb");
    int first = 1, stored = 0;
    size_t n;

    why[0] = '\0';
    r->result_bytes = 0;
    if (f == NULL || exw_sha256_new(&sha) != EXW_OK) {
        set_outcome(r, OUT_FAILED, "internal", "cannot read back the workbook %s", r->path);
        goto out;
    }
    while ((n = fread(chunk, 1, UPLOAD_CHUNK, f)) > 0) {
        struct exw_rq *rq = exw_worker_redis(r->w);

        r->result_bytes += (long long)n;
        if ((unsigned long long)r->result_bytes > MAX_RESULT_BYTES) {
            set_outcome(r, OUT_FAILED, "too_large",
                        "the workbook is over %llu MiB, the most one Redis value can hold; "
                        "split the export",
                        MAX_RESULT_BYTES >> 20);
            goto out;
        }
        if (exw_sha256_update(sha, chunk, n) != EXW_OK) {
            set_outcome(r, OUT_FAILED, "internal", "hashing the workbook failed");
            goto out;
        }
        if (rq == NULL ||
            exw_rq_result_chunk(rq, r->job->id, first, chunk, n,
                                ttl_ms(r) + r->w->cfg->job_timeout_s * 1000, &eb) != EXW_OK) {
            snprintf(why, whysz, "%s", rq ? eb.msg : "Redis unreachable");
            goto out;
        }
        first = 0;
        /* A cancel, the time limit or the shutdown grace still apply here. */
        if (check(r, 0))
            goto out;
    }
    if (ferror(f)) {
        set_outcome(r, OUT_FAILED, "internal", "reading back the workbook failed");
        goto out;
    }
    if (exw_sha256_final(sha, r->sha256) != EXW_OK) {
        set_outcome(r, OUT_FAILED, "internal", "hashing the workbook failed");
        goto out;
    }
    stored = 1;
out:
    if (f != NULL)
        fclose(f);
    exw_sha256_free(sha);
    free(chunk);
    return stored;
}

/* Stores the result, starting over while Redis is away, until the job's
 * deadline. */
static void upload(struct run *r)
{
    int64_t backoff = 100;
    char why[256];

    while (!upload_once(r, why, sizeof(why)) && r->outcome == OUT_NONE) {
        EXW_LOG(EXW_LOG_WARN, "storing the result failed, retrying: %s", why);
        exw_sleep_ms(backoff);
        backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
        if (check(r, 0))
            return;
    }
}

static void add_pair(const char **v, size_t *n, const char *name, const char *value)
{
    v[(*n)++] = name;
    v[(*n)++] = value;
}

/* Ends the job in Redis, retrying for a while when Redis is away. Returns 1
 * when this worker ended the job, 0 when another worker had taken it over, -1
 * when it could not be recorded (the job is still in the processing list). */
static int finish(struct run *r, const char *state, const char *dead_entry)
{
    struct lookup_counts lc = {0};
    char now[24], rw[24], rt[24], lt[24], ld[24], lf[24], rb[24], ev[256];
    char s_lookups[24], s_req[24], s_err[24], s_bytes[24];
    char result_key[600];
    const char *fields[40], *stats[16];
    size_t nf = 0, ns = 0;
    struct exw_rq_finish f = {0};
    /* Keep trying while the job's time lasts, and at least 30 s. */
    int64_t give_up = exw_mono_ms() + 30000 > r->deadline ? exw_mono_ms() + 30000 : r->deadline;
    int64_t backoff = 100;
    int owned = 0;

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
    snprintf(s_err, sizeof(s_err), "%lld", lc.failed);

    if (r->job != NULL) {
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
        if (r->job->filename != NULL)
            add_pair(fields, &nf, "filename", r->job->filename);
        if (succeeded) {
            snprintf(result_key, sizeof(result_key), "%s:result:%s", r->w->cfg->prefix, r->job->id);
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
        f.event = ev;
        f.id = r->job->id;
        f.has_result = succeeded;
        f.rows_key = r->job->rows_key;
        add_pair(stats, &ns,
                 succeeded                         ? "jobs_succeeded"
                 : strcmp(state, "cancelled") == 0 ? "jobs_cancelled"
                                                   : "jobs_failed",
                 "1");
        if (lc.requests > 0) {
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
    f.doc = r->doc;
    f.doc_len = r->doc_len;
    f.ttl_ms = (long)ttl_ms(r);
    f.dead_entry = dead_entry;
    f.fields = fields;
    f.nfields = nf;
    f.stats = stats;
    f.nstats = ns;
    for (;;) {
        struct exw_rq *rq = exw_worker_redis(r->w);
        struct exw_errbuf eb;

        if (rq != NULL && exw_rq_finish(rq, &f, &owned, &eb) == EXW_OK)
            break;
        if (rq != NULL && strstr(eb.msg, EXW_RQ_UPLOAD_MISSING) != NULL) {
            /* Retrying cannot bring it back: the job runs again instead. */
            EXW_LOG(EXW_LOG_WARN, "the uploaded result has gone (expired or evicted); the job "
                                  "goes back on the queue");
            return -1;
        }
        if (rq != NULL)
            EXW_LOG(EXW_LOG_WARN, "could not record the job's end, retrying: %s", eb.msg);
        if (exw_mono_ms() >= give_up ||
            (r->grace_deadline != 0 && exw_mono_ms() >= r->grace_deadline)) {
            EXW_LOG(EXW_LOG_ERROR,
                    "gave up recording the job's end; it stays in %s:processing:%s "
                    "for recovery",
                    r->w->cfg->prefix, r->w->cfg->worker_id);
            return -1;
        }
        exw_sleep_ms(backoff);
        backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
    }
    if (!owned) {
        EXW_LOG(EXW_LOG_WARN,
                "the job was taken over by another worker; its outcome here (%s) "
                "is dropped",
                state);
        return 0;
    }
    if (r->error_code != NULL)
        EXW_LOG(EXW_LOG_WARN, "job %s: %s: %s", state, r->error_code, r->error);
    else
        EXW_LOG(EXW_LOG_INFO, "job %s: %lld rows, %lld lookups (%lld requests), %lld bytes", state,
                r->rows_written, lc.total, lc.requests, r->result_bytes);
    return 1;
}

/* Returns 0 when the job could not be put back (it is still in the processing
 * list), else 1. */
static int requeue(struct run *r)
{
    struct exw_rq *rq = exw_worker_redis(r->w);
    struct exw_errbuf eb;
    char ev[256];
    int owned = 0;

    event_json(r, "queued", 0, ev, sizeof(ev));
    if (rq == NULL ||
        exw_rq_requeue(rq, r->job->id, r->doc, r->doc_len, ev, &owned, &eb) != EXW_OK) {
        EXW_LOG(EXW_LOG_ERROR, "could not put the job back on the queue now (%s)",
                rq ? eb.msg : "Redis unreachable");
        return 0;
    }
    if (owned)
        EXW_LOG(EXW_LOG_INFO, "job put back on the queue unfinished: %s", r->error);
    return 1;
}

/* Starts the job: its status says running. Returns 0 if it must not run. */
static int start(struct run *r)
{
    const struct exw_config *cfg = r->w->cfg;
    struct exw_rq_precheck pre;
    char now[24], rt[24], attempts[24], ev[256];
    struct exw_errbuf eb;
    struct exw_rq *rq = exw_worker_redis(r->w);
    int cancel = 0;

    if (rq == NULL || exw_rq_precheck(rq, r->job->id, &pre, &eb) != EXW_OK) {
        /* Redis answering with an error (the status key is not a hash, an ACL
         * refuses it) will answer the same next time: the job cannot have a
         * status, so it goes to P:dead rather than round the queue again. */
        if (rq != NULL && !exw_rq_broken(rq))
            set_outcome(r, OUT_DEAD, NULL, "the job's status %s:job:%s cannot be read: %s",
                        cfg->prefix, r->job->id, eb.msg);
        else
            set_outcome(r, OUT_LOST, NULL, "Redis unreachable at start");
        return 0;
    }
    if (pre.cancel) {
        set_outcome(r, OUT_CANCELLED, NULL, "cancelled before it started");
        return 0;
    }
    if (pre.attempts >= cfg->max_attempts) {
        set_outcome(r, OUT_FAILED, "too_many_attempts",
                    "the job was started %ld times without finishing (EXPORT_MAX_ATTEMPTS is "
                    "%ld); it is in %s:dead",
                    pre.attempts, cfg->max_attempts, cfg->prefix);
        return 0;
    }
    if (r->job->service != NULL) {
        r->svc = exw_config_service(cfg, r->job->service);
        if (r->svc == NULL) {
            set_outcome(r, OUT_FAILED, "invalid_job",
                        "lookup.service: no lookup service \"%.64s\" is configured on this worker "
                        "(EXPORT_SERVICE_<NAME>_URL)",
                        r->job->service);
            return 0;
        }
    }
    if (r->job->rows_key != NULL) {
        if (exw_rq_llen(rq, r->job->rows_key, &r->rows_total, &eb) != EXW_OK) {
            if (exw_rq_broken(rq))
                set_outcome(r, OUT_LOST, NULL, "reading rows_key: %s", eb.msg);
            else
                set_outcome(r, OUT_FAILED, "invalid_job", "rows_key: %s is not a list of rows (%s)",
                            r->job->rows_key, eb.msg);
            return 0;
        }
        if ((size_t)r->rows_total > r->job->limits.max_rows) {
            set_outcome(r, OUT_FAILED, "invalid_job",
                        "rows_key: %lld rows is over the limit of %zu", r->rows_total,
                        r->job->limits.max_rows);
            return 0;
        }
    } else {
        r->rows_total = (long long)r->job->nrows;
    }
    snprintf(now, sizeof(now), "%lld", (long long)exw_wall_ms());
    snprintf(rt, sizeof(rt), "%lld", r->rows_total);
    r->attempt = pre.attempts + 1;
    snprintf(attempts, sizeof(attempts), "%ld", r->attempt);
    event_json(r, "running", 0, ev, sizeof(ev));
    {
        const char *fields[] = {"state",          "running",
                                "worker",         cfg->worker_id,
                                "started_at",     now,
                                "updated_at",     now,
                                "progress",       "0",
                                "rows_total",     rt,
                                "rows_written",   "0",
                                "lookups_total",  "0",
                                "lookups_done",   "0",
                                "lookups_failed", "0",
                                "filename",       r->job->filename};
        struct exw_rq_update u = {.fields = fields,
                                  .nfields = sizeof(fields) / sizeof(*fields),
                                  .incr_attempts = 1,
                                  .clear_outcome = 1,
                                  .event = ev};

        if (exw_rq_update(rq, r->job->id, &u, &cancel, &eb) != EXW_OK) {
            set_outcome(r, OUT_LOST, NULL, "recording the start failed: %s", eb.msg);
            return 0;
        }
    }
    EXW_LOG(EXW_LOG_INFO, "job started: %lld rows, attempt %s", r->rows_total, attempts);
    return 1;
}

static void cleanup(struct run *r)
{
    struct exw_errbuf eb;
    size_t i;

    exw_lookups_free(r->lookups);
    if (r->xlsx != NULL && exw_xlsx_close(r->xlsx, &eb) != EXW_OK)
        EXW_LOG(EXW_LOG_DEBUG, "closing an abandoned workbook: %s", eb.msg);
    if (r->path[0] != '\0' && unlink(r->path) != 0 && errno != ENOENT)
        EXW_LOG(EXW_LOG_WARN, "cannot remove %s", r->path);
    while (r->wcount > 0)
        pop_window(r);
    for (i = r->fetch_pos; i < r->nfetched; i++)
        exw_row_free(r->fetched[i]);
    free(r->fetched);
    free(r->window);
    free(r->cells);
    exw_job_free(r->job);
}

int exw_run_job(struct worker *w, const char *doc, size_t len)
{
    const struct exw_config *cfg = w->cfg;
    struct run r = {.w = w, .doc = doc, .doc_len = len, .last_progress = -1};
    struct exw_limits lim;
    enum exw_job_verdict verdict;
    struct exw_errbuf eb;
    char *id = NULL;
    char *dead = NULL;
    int ended = 0; /* this worker recorded the job's end */
    int left = 0;  /* the job may still be in the processing list */

    exw_limits_default(&lim);
    lim.max_job_bytes = (size_t)cfg->max_job_bytes;
    lim.max_rows = (size_t)cfg->max_rows;
    lim.max_columns = (size_t)cfg->max_columns;
    lim.max_header_chars = (size_t)cfg->max_header_chars;
    lim.max_string_chars = (size_t)cfg->max_string_chars;
    r.deadline = exw_mono_ms() + cfg->job_timeout_s * 1000;
    if (exw_job_parse(doc, len, &lim, cfg->prefix, &r.job, &verdict, &id, &eb) != EXW_OK) {
        if (verdict == EXW_JOB_DEAD || id == NULL) {
            EXW_LOG(EXW_LOG_WARN, "job document without a usable id goes to %s:dead: %s",
                    cfg->prefix, eb.msg);
            dead = exw_job_dead_entry(doc, len, eb.msg, (long long)exw_wall_ms());
            ended = finish(&r, "dead", dead);
            goto out;
        }
        /* A job with an id fails under it; a stand-in job carries the id. */
        r.job = exw_xcalloc(1, sizeof(*r.job));
        r.job->id = id;
        id = NULL;
        r.job->result_ttl_s = -1;
        r.job->rows_key = exw_job_rows_key_of(doc, len, &lim, cfg->prefix);
        exw_log_set_job(r.job->id);
        exw_worker_set_job(w, r.job->id);
        set_outcome(&r, OUT_FAILED, verdict == EXW_JOB_TOO_LARGE ? "too_large" : "invalid_job",
                    "%s", eb.msg);
        ended = finish(&r, "failed", NULL);
        goto out;
    }
    exw_log_set_job(r.job->id);
    exw_worker_set_job(w, r.job->id);
    if (start(&r)) {
        r.last_progress = 0;
        r.lookups = exw_lookups_new(w->pool, r.job, r.svc, cfg, r.deadline);
        produce(&r);
        if (r.outcome == OUT_NONE) {
            exw_err rc = exw_xlsx_close(r.xlsx, &eb);

            r.xlsx = NULL;
            if (rc != EXW_OK)
                set_outcome(&r, OUT_FAILED, "internal", "finishing the workbook failed: %s",
                            eb.msg);
            else
                upload(&r);
        }
        if (r.outcome == OUT_NONE)
            r.outcome = OUT_SUCCEEDED;
    }
    switch (r.outcome) {
    case OUT_SUCCEEDED:
        ended = finish(&r, "succeeded", NULL);
        break;
    case OUT_CANCELLED:
        EXW_LOG(EXW_LOG_INFO, "job cancelled");
        ended = finish(&r, "cancelled", NULL);
        break;
    case OUT_FAILED:
        if (strcmp(r.error_code, "too_many_attempts") == 0)
            dead = exw_job_dead_entry(doc, len, r.error, (long long)exw_wall_ms());
        ended = finish(&r, "failed", dead);
        break;
    case OUT_REQUEUE:
        left = !requeue(&r);
        break;
    case OUT_DEAD:
        EXW_LOG(EXW_LOG_WARN, "job goes to %s:dead: %s", cfg->prefix, r.error);
        dead = exw_job_dead_entry(doc, len, r.error, (long long)exw_wall_ms());
        exw_job_free(r.job);
        r.job = NULL; /* no status to write */
        ended = finish(&r, "dead", dead);
        break;
    case OUT_LOST:
    case OUT_NONE:
        EXW_LOG(EXW_LOG_ERROR, "job abandoned here (%s); it goes back on the queue", r.error);
        left = 1;
        break;
    }
out:
    cleanup(&r);
    free(id);
    free(dead);
    if (ended < 0)
        left = 1;
    if (ended > 0) {
        pthread_mutex_lock(&w->mu);
        w->jobs_done++;
        pthread_mutex_unlock(&w->mu);
    }
    exw_worker_set_job(w, NULL);
    exw_log_set_job(NULL);
    return left;
}
