/* run.h: one job's run, shared by runner.c (its lifecycle in Redis) and
 * workbook.c (its rows, workbook and upload). Private to the daemon; every
 * function here runs on the job's own thread (a slot, dispatch.c). */
#ifndef EXW_RUN_H
#define EXW_RUN_H

#include <limits.h>
#include <stdint.h>

#include "exw/xlsx.h"
#include "worker.h"

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
    const struct exw_row *row;  /* the row */
    struct exw_row *owned;      /* the row when this run owns it; freed once written */
    struct lookup_entry *entry; /* NULL: no lookup for this row */
};

/* Packing the workbook runs on a thread of its own, so that a cancel or a
 * stop is still seen while a large one is packed. */
struct packer {
    pthread_t tid;
    int ready;             /* mu and finished were made */
    int running;           /* the thread was started and not yet joined */
    struct exw_xlsx *xlsx; /* the packer's own while it runs */
    exw_err rc;
    struct exw_errbuf eb;
    struct exw_mutex mu;
    pthread_cond_t finished; /* on CLOCK_MONOTONIC; signalled when done is set */
    int done;                /* guarded by mu */
};

struct run {
    struct worker *w;
    struct slot *slot; /* the job thread it runs on */
    struct conn *conn; /* the slot's Redis connection */
    const char *doc;
    size_t doc_len;
    long long doc_total; /* nonzero: doc is only the head of a document this long */
    char *id;            /* the id, once known (owned) */
    struct exw_job *job; /* the parsed document, once parsed */
    const struct exw_service *svc;
    struct lookups *lookups;
    int64_t taken_at;       /* monotonic: when the take was sent */
    int64_t began_us;       /* exw_mono_us() as this thread began the run, for its duration */
    int64_t deadline;       /* monotonic */
    int64_t grace_deadline; /* monotonic; 0 until a stop is asked for */
    int64_t next_progress;
    int last_progress;
    long attempt; /* this run's start, as the status says while it owns the job; 0 before */
    long long rows_total;
    long long rows_bytes; /* a rows_key list's elements together, -1 unless measured */
    long long rows_read;
    long long rows_written;
    struct pending *window; /* a ring of cfg->batch_rows */
    size_t wcap, whead, wcount;
    size_t wbytes;              /* what the window's rows hold (exw_row_bytes) */
    struct rows_reader *reader; /* a rows_key job's rows, read ahead */
    struct exw_xlsx *xlsx;
    struct packer packer;
    char path[PATH_MAX];
    char scratch[PATH_MAX]; /* path + ".d": libxlsxwriter's temporary files; "" when none */
    int fd;                 /* the workbook file, locked while this run lives; -1 when none */
    int in_memory;          /* made in memory: no file (fd -1, path ""), its bytes in result */
    struct exw_cell *cells;
    enum outcome outcome;
    const char *error_code;
    char error[512];
    long long result_bytes;
    char sha256[65];
    /* The packed workbook's bytes: made in memory, or read back whole from
     * its file when they fit one upload chunk. Those of one chunk at most are
     * stored with the job's end, in the same script call, not uploaded before
     * it; NULL once uploaded. Owned by the run. */
    char *result;
};

/* Decides the job's outcome, once: later calls change nothing. */
void run_set_outcome(struct run *r, enum outcome o, const char *code, const char *fmt, ...)
    EXW_PRINTF(4, 5);

/* Everything that can end a job while it runs (cancel, timeout, stop, a lost
 * lease, a failed lookup), checked between steps; writes progress at most
 * every few hundred ms, or now with @force. Returns nonzero once the outcome
 * is decided. */
int run_check(struct run *r, int force_progress);

/* A workbook is built in memory, not in EXPORT_TMPDIR, when the text it can
 * hold fits this many bytes (and its cells run_memory_rows(): workbook.c). */
#define RUN_MEMORY_BYTES (4ll << 20)

/* workbook.c: the most rows @job's workbook may have to be built in memory:
 * a rows_key list that short is measured as the job starts (up to
 * RUN_MEMORY_BYTES). */
long long run_memory_rows(const struct exw_job *job);

/* workbook.c: writes every row into the workbook, packs it, and uploads it;
 * on return either the result is uploaded or the outcome is decided. */
void run_workbook(struct run *r);

/* workbook.c: frees what run_workbook left (the window, the workbook, the
 * packer, the file). */
void run_workbook_cleanup(struct run *r);

/* rows_reader.c: starts reading a rows_key job's rows ahead, on a thread of
 * their own; with @typed (a job without lookups) their cells are typed there
 * too, for rows_reader_next_cells(). NULL when the thread cannot be had. */
struct rows_reader *rows_reader_start(const struct run *r, int typed);

/* rows_reader.c: the next row in order (the caller owns it), waiting for the
 * reader while a cancel, the deadline or a stop is checked. Returns 0 after
 * the last row, or with the outcome set when the reading failed. For a
 * reader started without @typed. */
int rows_reader_next(struct rows_reader *rr, struct run *r, struct exw_row **out);

/* rows_reader.c: the cells of the next row in order (job->ncolumns of them,
 * borrowed until the next call), waiting as rows_reader_next() does; a row
 * whose cells cannot be typed fails the job as exw_job_row_cells() says, once
 * the rows before it are taken. Returns 0 after the last row, or with the
 * outcome set. For a reader started with @typed. */
int rows_reader_next_cells(struct rows_reader *rr, struct run *r, const struct exw_cell **out);

/* rows_reader.c: stops the reader and frees what it read. NULL is a no-op. */
void rows_reader_stop(struct rows_reader *rr);

/* workbook.c: removes the workbooks that dead workers left in @tmpdir (their
 * lock is free). Returns how many. */
int run_sweep_tmpdir(const char *tmpdir);

#endif
