/* rows_reader.c: a rows_key job's rows, read ahead on a thread of their own.
 *
 * Reading a batch of rows (LRANGE), parsing them and typing their cells costs
 * about a third of writing them. On a machine with a second core that work
 * can run beside the writer: a reader thread, with a Redis connection of its
 * own, fills one of two batches of parsed rows while the job's thread writes
 * the other. The connection belongs to the job's slot and stays open from one
 * job to the next (a small job would otherwise spend more on connecting than
 * on its rows); only the reader uses it while it runs. The reader is never
 * more than two batches ahead, so memory stays bounded by the batches (each
 * of at most READ_ROWS rows and READ_BYTES bytes of elements), not by the
 * list.
 *
 * A job with lookups takes the parsed rows into its row window one by one
 * (its lookups start there, and its cells are typed as they are written). A
 * job without lookups has its rows typed here as well, into cells that the
 * batch holds (at most READ_CELLS of them, so a wide row makes a short batch):
 * its thread only hands the cells to the workbook. Such a row is read in
 * place from the reply and dropped at once; the text its cells need goes to
 * the batch's arena, given back in one piece when the batch is filled again
 * (a malloc and free per row and string cost the reader half its time).
 *
 * The job's thread owns the reader. A batch belongs to the reader while it is
 * EMPTY and to the job's thread once FULL. An error ends the reading: the
 * reader records the outcome (its kind, code and message) and the job's
 * thread decides it when it reaches that point, in order, exactly as if it
 * had read the rows itself. A row whose cells cannot be typed is such an
 * error, with the text exw_job_row_cells() gives it: the rows before it are
 * written first, and no later row is read.
 *
 * Thread: the job's thread calls every function here; reader_main runs on
 * the reader thread, which touches only its batches, its connection and the
 * fields marked "guarded by mu". */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exw/arena.h"
#include "exw/cells.h"
#include "exw/clock.h"
#include "exw/log.h"
#include "exw/queue.h"
#include "run.h"

#define READ_ROWS 1000
/* The most cells a batch of typed rows holds (about 1.5 MiB of them). */
#define READ_CELLS 16384
/* A batch ends early once its elements reach this many bytes: wide rows make
 * short batches, so that two of them and the reply they came in stay small. */
#define READ_BYTES (2u << 20)
#define WAIT_STEP_MS 100
/* The blocks of a typed batch's strings: a full batch fills about eight. */
#define ARENA_BLOCK (256u << 10)

enum batch_state { BATCH_EMPTY, BATCH_FULL };

struct batch {
    enum batch_state state;   /* guarded by mu */
    struct exw_row **rows;    /* untyped: batch_rows slots; NULL once handed out */
    struct exw_cell *cells;   /* typed: batch_rows rows of ncols cells, borrowing from strings */
    struct exw_arena strings; /* typed: the rows' decoded strings */
    size_t n, pos;            /* rows in it; the next one to hand out */
};

struct rows_reader {
    /* Read-only while the thread runs: */
    const struct exw_job *job;
    const struct exw_config *cfg;
    struct conn *conn; /* the slot's, the reader thread's until joined */
    long long total;
    long long bytes_max; /* with a workbook in memory: the list's bytes at the start; else -1 */
    long long bytes;     /* the reader thread: the bytes of the rows read so far */
    int typed;           /* the rows' cells are typed here (a job without lookups) */
    size_t ncols;        /* the job's columns */
    size_t batch_rows;   /* rows in a full batch */
    pthread_t tid;
    struct exw_mutex mu;
    pthread_cond_t changed; /* on CLOCK_MONOTONIC; a batch filled or emptied, or a stop */
    struct batch batch[2];
    unsigned reading;        /* the job's thread: the batch it waits for or hands rows out of */
    struct batch *cur;       /* the job's thread: that batch once seen FULL, until used up */
    long long next;          /* the reader thread: the index of the next row to read */
    struct exw_row *scratch; /* the reader thread: typed, the row being read */
    int stop;                /* guarded by mu: the job's thread asks the reader to end */
    int ended;               /* guarded by mu: the reader read the last row or failed */
    enum outcome fail;       /* guarded by mu: OUT_NONE, or how the reading failed */
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
    struct rows_reader *rr = f->rr;
    size_t index = (size_t)(rr->next + (long long)f->b->n);
    struct exw_errbuf eb;
    struct exw_row *row;

    /* A workbook built in memory was sized by the list's bytes at the start:
     * a list that grew since cannot make it any larger. */
    rr->bytes += (long long)len;
    if (rr->bytes_max >= 0 && rr->bytes > rr->bytes_max) {
        snprintf(f->msg, sizeof(f->msg),
                 "rows_key: the list %s changed while the job ran (its rows passed the %lld bytes "
                 "they had at the start)",
                 rr->job->rows_key, rr->bytes_max);
        return EXW_EJSON;
    }
    if (rr->typed) {
        struct exw_cell *cells = &f->b->cells[f->b->n * rr->ncols];

        /* Typed at once: the row is read in place, its strings into the
         * batch's arena, where the cells borrow them until it is emptied. */
        if (exw_row_parse_in(rr->job, data, len, index, &f->b->strings, &rr->scratch, &eb) !=
            EXW_OK) {
            snprintf(f->msg, sizeof(f->msg), "%s", eb.msg);
            return EXW_EJSON;
        }
        /* A cell the row cannot fill ends the reading there (also EXW_ELIMIT,
         * which the caller would take for a row too long). */
        if (exw_job_row_cells(rr->job, rr->scratch, index, NULL, cells, &eb) != EXW_OK) {
            snprintf(f->msg, sizeof(f->msg), "%s", eb.msg);
            exw_cells_cleanup(cells, rr->ncols);
            return EXW_EJSON;
        }
        f->b->n++;
        return EXW_OK;
    }
    if (exw_row_parse(rr->job, data, len, index, &row, &eb) != EXW_OK) {
        snprintf(f->msg, sizeof(f->msg), "%s", eb.msg);
        return EXW_EJSON;
    }
    f->b->rows[f->b->n++] = row;
    return EXW_OK;
}

/* Frees what @b held: the rows not handed out, and their cells' text. */
static void empty_batch(struct rows_reader *rr, struct batch *b)
{
    size_t i;

    if (rr->typed) {
        exw_cells_cleanup(b->cells, b->n * rr->ncols);
        exw_arena_reset(&b->strings);
    } else {
        for (i = 0; i < b->n; i++) {
            exw_row_free(b->rows[i]);
            b->rows[i] = NULL;
        }
    }
    b->n = b->pos = 0;
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
    long long last = rr->next + (long long)rr->batch_rows - 1;
    exw_err rc = EXW_EREDIS;

    empty_batch(rr, b);    /* the rows it held were written: freed here, where made */
    if (last >= rr->total) /* rows pushed since the job started are not its own */
        last = rr->total - 1;
    if (rd != NULL)
        rc = exw_queue_rows(rd, key, rr->next, last, (size_t)rr->cfg->max_row_bytes, READ_BYTES,
                            keep_row, &f, &too_long, &eb);
    /* The connection is kept between jobs, so it may have died unnoticed
     * since (a Redis restart): a read is safe to send again, once, on a new
     * one, rather than losing the job for a connection it never used. */
    if (rd != NULL && rc == EXW_EREDIS && b->n == 0 && exw_redis_broken(rd) &&
        (rd = exw_conn_get(conn)) != NULL)
        rc = exw_queue_rows(rd, key, rr->next, last, (size_t)rr->cfg->max_row_bytes, READ_BYTES,
                            keep_row, &f, &too_long, &eb);
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
    unsigned fill = 0;

    exw_log_set_thread("rows");
    for (;;) {
        struct batch *b = &rr->batch[fill];
        int go;

        exw_mutex_lock(&rr->mu);
        while (!rr->stop && b->state != BATCH_EMPTY)
            pthread_cond_wait(&rr->changed, &rr->mu.m);
        go = !rr->stop && !rr->ended;
        exw_mutex_unlock(&rr->mu);
        if (!go || !read_batch(rr, rr->conn, b))
            break;
        fill ^= 1u;
    }
    return NULL;
}

struct rows_reader *rows_reader_start(const struct run *r, int typed)
{
    struct rows_reader *rr = exw_xcalloc(1, sizeof(*rr));
    unsigned i;

    rr->job = r->job;
    rr->cfg = r->w->cfg;
    rr->conn = &r->slot->rows;
    rr->bytes_max = r->in_memory ? r->rows_bytes : -1;
    rr->total = r->rows_total;
    rr->ended = rr->total <= 0;
    rr->typed = typed;
    rr->ncols = r->job->ncolumns;
    rr->batch_rows = READ_ROWS;
    if (typed && rr->ncols > 0 && READ_CELLS / rr->ncols < READ_ROWS)
        rr->batch_rows = READ_CELLS / rr->ncols > 0 ? READ_CELLS / rr->ncols : 1;
    /* A short list needs no more room than its rows. */
    if (rr->total > 0 && (size_t)rr->total < rr->batch_rows)
        rr->batch_rows = (size_t)rr->total;
    for (i = 0; i < 2; i++) {
        if (typed)
            rr->batch[i].cells =
                exw_xcalloc(rr->batch_rows * rr->ncols, sizeof(*rr->batch[i].cells));
        else
            rr->batch[i].rows = exw_xcalloc(rr->batch_rows, sizeof(*rr->batch[i].rows));
        exw_arena_init(&rr->batch[i].strings, ARENA_BLOCK);
    }
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
    for (i = 0; i < 2; i++) {
        free(rr->batch[i].rows);
        free(rr->batch[i].cells);
    }
    free(rr);
    return NULL;
}

/* Waits until the current batch has a row to hand out. Returns 0 after the
 * last row, or with the outcome set. */
static int wait_row(struct rows_reader *rr, struct run *r)
{
    for (;;) {
        struct timespec until;
        struct batch *b;
        int ended;

        /* A FULL batch is the job's thread's: no lock to hand a row out. */
        if (rr->cur != NULL && rr->cur->pos < rr->cur->n)
            return 1;
        exw_mutex_lock(&rr->mu);
        if (rr->cur != NULL) { /* used up: back to the reader */
            rr->cur->state = BATCH_EMPTY;
            rr->cur = NULL;
            rr->reading ^= 1u;
            pthread_cond_broadcast(&rr->changed);
        }
        b = &rr->batch[rr->reading];
        until = exw_mono_deadline(WAIT_STEP_MS);
        while (b->state != BATCH_FULL && !rr->ended &&
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
        /* Waiting on Redis: a cancel, the deadline or a stop still apply. */
        if (rr->cur == NULL && run_check(r, 0))
            return 0;
    }
}

int rows_reader_next(struct rows_reader *rr, struct run *r, struct exw_row **out)
{
    EXW_ASSERT(!rr->typed);
    *out = NULL;
    if (!wait_row(rr, r))
        return 0;
    *out = rr->cur->rows[rr->cur->pos];
    rr->cur->rows[rr->cur->pos++] = NULL;
    return 1;
}

int rows_reader_next_cells(struct rows_reader *rr, struct run *r, const struct exw_cell **out)
{
    EXW_ASSERT(rr->typed);
    *out = NULL;
    if (!wait_row(rr, r))
        return 0;
    *out = &rr->cur->cells[rr->cur->pos++ * rr->ncols];
    return 1;
}

void rows_reader_stop(struct rows_reader *rr)
{
    unsigned i;

    if (rr == NULL)
        return;
    exw_mutex_lock(&rr->mu);
    rr->stop = 1;
    pthread_cond_broadcast(&rr->changed);
    exw_mutex_unlock(&rr->mu);
    pthread_join(rr->tid, NULL);
    for (i = 0; i < 2; i++) {
        empty_batch(rr, &rr->batch[i]);
        exw_arena_cleanup(&rr->batch[i].strings);
        free(rr->batch[i].rows);
        free(rr->batch[i].cells);
    }
    exw_row_free(rr->scratch);
    pthread_cond_destroy(&rr->changed);
    pthread_mutex_destroy(&rr->mu.m);
    free(rr);
}
