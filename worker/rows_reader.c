/* rows_reader.c: a rows_key job's rows, read ahead on a thread of their own.
 *
 * Reading a batch of rows (LRANGE) and parsing them costs about as much CPU as
 * a tenth of writing them. On a machine with a second core that work can run
 * beside the writer: a reader thread, with a Redis connection of its own,
 * fills one of two batches of READ_ROWS parsed rows while the job's thread
 * writes the other. The reader is never more than two batches ahead, so
 * memory stays bounded by the batches, not by the list.
 *
 * The job's thread owns the reader. A batch belongs to the reader while it is
 * EMPTY and to the job's thread once FULL; the rows in it move into the row
 * window one by one. An error ends the reading: the reader records the
 * outcome (its kind, code and message) and the job's thread decides it when
 * it reaches that point, in order, exactly as if it had read the rows itself.
 *
 * Thread: the job's thread calls every function here; reader_main runs on
 * the reader thread, which touches only its batches, its connection and the
 * fields marked "guarded by mu". */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exw/clock.h"
#include "exw/log.h"
#include "exw/queue.h"
#include "run.h"

#define READ_ROWS 1000
#define WAIT_STEP_MS 100

enum batch_state { BATCH_EMPTY, BATCH_FULL };

struct batch {
    enum batch_state state; /* guarded by mu */
    struct exw_row **rows;  /* READ_ROWS slots */
    size_t n, pos;          /* rows in it; the next one to hand out */
};

struct rows_reader {
    /* Read-only while the thread runs: */
    const struct exw_job *job;
    const struct exw_config *cfg;
    struct exw_metrics *metrics;
    long long total;
    pthread_t tid;
    struct exw_mutex mu;
    pthread_cond_t changed; /* on CLOCK_MONOTONIC; a batch filled or emptied, or a stop */
    struct batch batch[2];
    unsigned reading;  /* the job's thread: the batch it waits for or hands rows out of */
    struct batch *cur; /* the job's thread: that batch once seen FULL, until used up */
    long long next;    /* the reader thread: the index of the next row to read */
    int stop;          /* guarded by mu: the job's thread asks the reader to end */
    int ended;         /* guarded by mu: the reader read the last row or failed */
    enum outcome fail; /* guarded by mu: OUT_NONE, or how the reading failed */
    const char *fail_code;
    char fail_msg[512];
};

struct fill {
    struct rows_reader *rr;
    struct batch *b;
    char msg[512]; /* why a row could not be parsed */
};

static exw_err keep_row(const char *data, size_t len, void *ud)
{
    struct fill *f = ud;
    struct exw_errbuf eb;
    struct exw_row *row;

    if (exw_row_parse(f->rr->job, data, len, (size_t)(f->rr->next + (long long)f->b->n), &row,
                      &eb) != EXW_OK) {
        snprintf(f->msg, sizeof(f->msg), "%s", eb.msg);
        return EXW_EJSON;
    }
    f->b->rows[f->b->n++] = row;
    return EXW_OK;
}

/* Records why the reading ended. Caller holds rr->mu. */
static void fail_locked(struct rows_reader *rr, enum outcome o, const char *code, const char *fmt,
                        ...) EXW_REQUIRES(rr->mu) EXW_PRINTF(4, 5);

static void fail_locked(struct rows_reader *rr, enum outcome o, const char *code, const char *fmt,
                        ...)
{
    va_list ap;

    rr->fail = o;
    rr->fail_code = code;
    va_start(ap, fmt);
    vsnprintf(rr->fail_msg, sizeof(rr->fail_msg), fmt, ap);
    va_end(ap);
    rr->ended = 1;
}

/* Reads the next batch into @b (EMPTY, the reader's). Returns 0 when the
 * reading ended (fail set, under the lock taken here). */
static int read_batch(struct rows_reader *rr, struct conn *conn, struct batch *b)
{
    const char *key = rr->job->rows_key;
    struct fill f = {rr, b, ""};
    struct exw_redis *rd = exw_conn_get(conn);
    struct exw_errbuf eb;
    long long too_long = -1;
    long long last = rr->next + READ_ROWS - 1;
    exw_err rc = EXW_EREDIS;

    b->n = b->pos = 0;
    if (last >= rr->total) /* rows pushed since the job started are not its own */
        last = rr->total - 1;
    if (rd != NULL)
        rc = exw_queue_rows(rd, key, rr->next, last, (size_t)rr->cfg->max_row_bytes, keep_row, &f,
                            &too_long, &eb);
    exw_mutex_lock(&rr->mu);
    if (rd == NULL)
        fail_locked(rr, OUT_LOST, NULL, "Redis unreachable while reading rows");
    else if (rc == EXW_ELIMIT)
        fail_locked(rr, OUT_FAILED, "invalid_job",
                    "rows_key: element %lld of %s is longer than EXPORT_MAX_ROW_BYTES (%ld "
                    "bytes): %s",
                    too_long, key, rr->cfg->max_row_bytes, eb.msg);
    else if (rc == EXW_EREDIS || rc == EXW_EAGAIN)
        fail_locked(rr, OUT_LOST, NULL, "reading %s: %s", key, eb.msg);
    else if (rc != EXW_OK && f.msg[0] != '\0')
        fail_locked(rr, OUT_FAILED, "invalid_job", "%s", f.msg);
    else if (rc != EXW_OK)
        fail_locked(rr, OUT_FAILED, "invalid_job", "rows_key: %s cannot be read (%s)", key, eb.msg);
    else if (b->n == 0)
        fail_locked(rr, OUT_FAILED, "invalid_job",
                    "rows_key: the list %s ended after %lld of %lld rows (it changed while the "
                    "job ran)",
                    key, rr->next, rr->total);
    /* The rows parsed before a failure still go out, in order. */
    if (b->n > 0)
        b->state = BATCH_FULL;
    rr->next += (long long)b->n;
    if (rr->next >= rr->total)
        rr->ended = 1;
    pthread_cond_broadcast(&rr->changed);
    exw_mutex_unlock(&rr->mu);
    return !rr->ended;
}

static void *reader_main(void *arg)
{
    struct rows_reader *rr = arg;
    struct conn conn;
    unsigned fill = 0;

    exw_log_set_thread("rows");
    exw_conn_init(&conn, rr->cfg, rr->metrics, "rows", 5000);
    for (;;) {
        struct batch *b = &rr->batch[fill];
        int go;

        exw_mutex_lock(&rr->mu);
        while (!rr->stop && b->state != BATCH_EMPTY)
            pthread_cond_wait(&rr->changed, &rr->mu.m);
        go = !rr->stop && !rr->ended;
        exw_mutex_unlock(&rr->mu);
        if (!go || !read_batch(rr, &conn, b))
            break;
        fill ^= 1u;
    }
    exw_conn_cleanup(&conn);
    return NULL;
}

struct rows_reader *rows_reader_start(const struct run *r)
{
    struct rows_reader *rr = exw_xcalloc(1, sizeof(*rr));
    unsigned i;

    rr->job = r->job;
    rr->cfg = r->w->cfg;
    rr->metrics = r->w->metrics;
    rr->total = r->rows_total;
    rr->ended = rr->total <= 0;
    for (i = 0; i < 2; i++)
        rr->batch[i].rows = exw_xcalloc(READ_ROWS, sizeof(*rr->batch[i].rows));
    pthread_mutex_init(&rr->mu.m, NULL);
    if (exw_cond_init_mono(&rr->changed) != 0) {
        pthread_mutex_destroy(&rr->mu.m);
        goto fail;
    }
    if (pthread_create(&rr->tid, NULL, reader_main, rr) != 0) {
        pthread_cond_destroy(&rr->changed);
        pthread_mutex_destroy(&rr->mu.m);
        goto fail;
    }
    return rr;
fail:
    free(rr->batch[0].rows);
    free(rr->batch[1].rows);
    free(rr);
    return NULL;
}

int rows_reader_next(struct rows_reader *rr, struct run *r, int wait, struct exw_row **out)
{
    *out = NULL;
    for (;;) {
        struct timespec until;
        struct batch *b;
        int ended;

        /* A FULL batch is the job's thread's: no lock to hand a row out. */
        if (rr->cur != NULL && rr->cur->pos < rr->cur->n) {
            *out = rr->cur->rows[rr->cur->pos];
            rr->cur->rows[rr->cur->pos++] = NULL;
            return 1;
        }
        exw_mutex_lock(&rr->mu);
        if (rr->cur != NULL) { /* used up: back to the reader */
            rr->cur->state = BATCH_EMPTY;
            rr->cur = NULL;
            rr->reading ^= 1u;
            pthread_cond_broadcast(&rr->changed);
        }
        b = &rr->batch[rr->reading];
        until = exw_mono_deadline(wait ? WAIT_STEP_MS : 0);
        while (wait && b->state != BATCH_FULL && !rr->ended &&
               pthread_cond_timedwait(&rr->changed, &rr->mu.m, &until) == 0)
            ;
        if (b->state == BATCH_FULL)
            rr->cur = b;
        ended = rr->cur == NULL && rr->ended;
        exw_mutex_unlock(&rr->mu);
        /* Ended: every row was handed out, or the reading failed (the reader
         * writes fail before ended, and neither again). */
        if (ended && rr->fail != OUT_NONE)
            run_set_outcome(r, rr->fail, rr->fail_code, "%s", rr->fail_msg);
        if (ended)
            return 0;
        if (rr->cur == NULL && !wait)
            return -1;
        /* Waiting on Redis: a cancel, the deadline or a stop still apply. */
        if (rr->cur == NULL && run_check(r, 0))
            return 0;
    }
}

void rows_reader_stop(struct rows_reader *rr)
{
    unsigned i;
    size_t j;

    if (rr == NULL)
        return;
    exw_mutex_lock(&rr->mu);
    rr->stop = 1;
    pthread_cond_broadcast(&rr->changed);
    exw_mutex_unlock(&rr->mu);
    pthread_join(rr->tid, NULL);
    for (i = 0; i < 2; i++) {
        for (j = rr->batch[i].pos; j < rr->batch[i].n; j++)
            exw_row_free(rr->batch[i].rows[j]);
        free(rr->batch[i].rows);
    }
    pthread_cond_destroy(&rr->changed);
    pthread_mutex_destroy(&rr->mu.m);
    free(rr);
}
