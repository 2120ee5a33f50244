/* workbook.c: one job's rows into its workbook, the workbook into Redis.
 *
 * The job thread reads rows in order into a window of EXPORT_BATCH_ROWS rows
 * (fewer when they hold WINDOW_BYTES together), asks for each row's lookup as
 * the row enters the window (so the pool works ahead of the writer), and
 * writes rows from the window's head as soon as their lookups are back.
 * Memory is bounded by the window, not the job: inline
 * rows are parsed from the document one at a time, and rows_key rows stream
 * from Redis in chunks. A rows_key job without lookups needs no window: its
 * reader (rows_reader.c) types the cells as well, and this thread only
 * writes them, as a bare libxlsxwriter loop would.
 *
 * The workbook file is created and locked (flock) before libxlsxwriter writes
 * it, and unlinked as soon as it is packed: the upload reads it through the
 * open descriptor. A worker killed while packing leaves a file whose lock is
 * free, which the next worker to start in the same EXPORT_TMPDIR removes.
 *
 * A workbook larger than one UPLOAD_CHUNK is uploaded in chunks before the
 * job's end renames it into place; a smaller one (most jobs) is read back
 * whole and stored by the end's own script call, one round trip less. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exw/clock.h"
#include "exw/digest.h"
#include "exw/log.h"
#include "exw/queue.h"
#include "exw/result.h"
#include "run.h"

#define WAIT_STEP_MS 100
/* The most the window's rows hold together (at least one row): wide rows
 * make a shorter window, still far ahead of any pool for rows of a few KiB. */
#define WINDOW_BYTES (8u << 20)
#define PACK_CHECK_MS 100 /* how often a cancel or stop is looked for while packing */
/* A workbook of at most this many cells packs in a few milliseconds: on the
 * job's own thread, without a packer thread to start and wait for. */
#define PACK_INLINE_CELLS 65536
#define UPLOAD_CHUNK (1u << 20) /* also the largest workbook stored with the end */
#define FILE_PREFIX "export-"
#define FILE_SUFFIX ".xlsx"
#define SCRATCH_SUFFIX FILE_SUFFIX ".d"

/* The next row in order, owned by the caller, from the document or from
 * rows_key. Returns 0 at the end or on an error (then the outcome is set). */
static int next_row(struct run *r, const struct exw_row **row, struct exw_row **owned)
{
    *row = NULL;
    *owned = NULL;
    if (r->rows_read >= r->rows_total)
        return 0;
    if (r->job->rows_key == NULL) {
        struct exw_errbuf eb;

        if (exw_job_next_row(r->job, owned, &eb) != EXW_OK || *owned == NULL) {
            run_set_outcome(r, OUT_FAILED, "invalid_job", "%s",
                            *owned == NULL ? "the rows ended early" : eb.msg);
            exw_row_free(*owned);
            *owned = NULL;
            return 0;
        }
        *row = *owned;
        r->rows_read++;
        return 1;
    }
    if (!rows_reader_next(r->reader, r, owned))
        return 0;
    *row = *owned;
    r->rows_read++;
    return 1;
}

/* Tops up the window with rows and starts their lookups. A row is typed
 * before its key is looked up, so that a row the job cannot take fails the
 * job before anything is asked of the lookup service. */
static void fill_window(struct run *r)
{
    while (r->wcount < r->wcap && (r->wcount == 0 || r->wbytes < WINDOW_BYTES) &&
           r->outcome == OUT_NONE) {
        struct pending *p = &r->window[(r->whead + r->wcount) % r->wcap];
        size_t index = (size_t)r->rows_read;
        struct exw_errbuf eb;
        char scratch[32];
        const char *key;

        if (!next_row(r, &p->row, &p->owned))
            return;
        p->entry = NULL;
        r->wcount++;
        r->wbytes += exw_row_bytes(p->owned);
        if (exw_job_row_key(r->job, p->row, index, scratch, &key, &eb) != EXW_OK) {
            run_set_outcome(r, OUT_FAILED, "invalid_job", "%s", eb.msg);
            return;
        }
        if (key == NULL)
            continue;
        if (exw_job_row_cells(r->job, p->row, index, NULL, r->cells, &eb) != EXW_OK) {
            run_set_outcome(r, OUT_FAILED, "invalid_job", "%s", eb.msg);
            return;
        }
        exw_cells_cleanup(r->cells, r->job->ncolumns);
        p->entry = exw_lookups_request(r->lookups, key);
    }
}

static void pop_window(struct run *r)
{
    struct pending *p = &r->window[r->whead];

    if (p->entry != NULL) /* the lookups outlive the window (exw_run_job) */
        exw_lookups_release(r->lookups, p->entry);
    r->wbytes -= exw_row_bytes(p->owned);
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
    exw_err rc;

    if (p->entry != NULL) {
        if (!exw_lookups_wait(r->lookups, p->entry, wait_ms, &lookup, &error))
            return 0;
        if (lookup == NULL && r->job->on_lookup_error == EXW_ON_LOOKUP_FAIL) {
            if (exw_mono_ms() >= r->deadline)
                return run_check(r, 0), 0;
            run_set_outcome(r, OUT_FAILED, "lookup_failed",
                            "rows[%zu]: lookup of key \"%.80s\": %s", index,
                            exw_lookups_key(p->entry), error);
            return 0;
        }
    }
    if (exw_job_row_cells(r->job, p->row, index, lookup, r->cells, &eb) != EXW_OK) {
        run_set_outcome(r, OUT_FAILED, "invalid_job", "%s", eb.msg);
        return 0;
    }
    rc = exw_xlsx_write_row(r->xlsx, r->cells, &eb);
    exw_cells_cleanup(r->cells, r->job->ncolumns);
    if (rc != EXW_OK) {
        run_set_outcome(r, OUT_FAILED, "internal", "writing the workbook failed: %s", eb.msg);
        return 0;
    }
    r->rows_written++;
    pop_window(r);
    return 1;
}

/* Removes the folder @name in the folder @at and whatever a killed libxlsxwriter
 * left in it (it unlinks its temporary files as soon as it makes them, so
 * only a process killed in between leaves one). */
static void remove_scratch(int at, const char *name)
{
    int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;

    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
    unlinkat(at, name, AT_REMOVEDIR);
}

long long run_memory_rows(const struct exw_job *job)
{
    return PACK_INLINE_CELLS / (long long)(job->ncolumns ? job->ncolumns : 1);
}

/* Whether the workbook is small enough to build in memory: its cells fit
 * PACK_INLINE_CELLS and the text it can hold (its inline document, or its
 * rows_key list as measured at the start, and at most EXPORT_MAX_STRING_CHARS
 * per lookup cell) RUN_MEMORY_BYTES. Its files then cost no inodes, which for
 * a small job is most of its cost. A list that grows since fails the job in
 * the reader. */
static int fits_in_memory(const struct run *r)
{
    const struct exw_job *job = r->job;
    double text = (double)r->doc_len + (job->rows_key ? (double)r->rows_bytes : 0.0) +
                  (double)r->rows_total * (double)job->nlookup_columns * 4.0 *
                      (double)job->limits.max_string_chars;

    return (job->rows_key == NULL || r->rows_bytes >= 0) && r->rows_total <= run_memory_rows(job) &&
           text <= (double)RUN_MEMORY_BYTES;
}

/* Creates the workbook's file, which libxlsxwriter then writes through the
 * same path (the same inode): a file in EXPORT_TMPDIR, locked while this run
 * lives; none for a small workbook, made in memory. */
static int open_file(struct run *r)
{
    const struct exw_config *cfg = r->w->cfg;
    char why[96];

    if (fits_in_memory(r)) {
        r->in_memory = 1;
        return 1;
    }

    snprintf(r->path, sizeof(r->path), "%s/" FILE_PREFIX "%s-%s" FILE_SUFFIX, cfg->tmpdir,
             cfg->worker_id, r->job->id);
    r->fd = open(r->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (r->fd < 0 || flock(r->fd, LOCK_EX | LOCK_NB) != 0) {
        run_set_outcome(r, OUT_FAILED, "internal", "cannot create the workbook %s: %s", r->path,
                        exw_errno_text(errno, why, sizeof(why)));
        return 0;
    }
    return 1;
}

/* Every 1,024 rows or WAIT_STEP_MS, whichever comes first, or at once with
 * @now: the progress, and whether the job must stop (run_check). Rows that
 * trickle in must not hold off progress and a cancel. */
static void checkpoint(struct run *r, long long *written_at, int64_t *at, int now)
{
    if (now || r->rows_written - *written_at >= 1024 || exw_mono_ms() >= *at) {
        *written_at = r->rows_written;
        *at = exw_mono_ms() + WAIT_STEP_MS;
        run_check(r, 0);
    }
}

/* After the last row: a job that ends short of its rows without a reason
 * fails. */
static void expect_all_written(struct run *r)
{
    if (r->outcome == OUT_NONE && r->rows_written < r->rows_total)
        run_set_outcome(r, OUT_FAILED, "internal", "only %lld of %lld rows were written",
                        r->rows_written, r->rows_total);
}

/* Writes the rows of a rows_key job without lookups: the reader types their
 * cells, and this thread only hands them to the workbook. */
static void write_typed_rows(struct run *r)
{
    const struct exw_cell *cells;
    struct exw_errbuf eb;
    long long written_at = 0;
    int64_t check_at = exw_mono_ms() + WAIT_STEP_MS;

    while (r->outcome == OUT_NONE && r->rows_written < r->rows_total &&
           rows_reader_next_cells(r->reader, r, &cells)) {
        r->rows_read++;
        if (exw_xlsx_write_row(r->xlsx, cells, &eb) != EXW_OK) {
            run_set_outcome(r, OUT_FAILED, "internal", "writing the workbook failed: %s", eb.msg);
            return;
        }
        r->rows_written++;
        if ((r->rows_written & 15) == 0) /* the clock is read every 16 rows */
            checkpoint(r, &written_at, &check_at, 0);
    }
    expect_all_written(r);
}

static void write_rows(struct run *r)
{
    const struct exw_config *cfg = r->w->cfg;
    struct exw_errbuf eb;
    long long written_at = -1;
    int64_t check_at = 0;
    int typed;

    typed = r->job->rows_key != NULL && r->job->lookup_key == NULL;
    if (!typed) {
        /* No larger than the job: a small job's window is a few slots. */
        r->wcap = (size_t)cfg->batch_rows;
        if (r->rows_total < cfg->batch_rows)
            r->wcap = r->rows_total > 0 ? (size_t)r->rows_total : 1;
        r->window = exw_xcalloc(r->wcap, sizeof(*r->window));
        r->cells = exw_xcalloc(r->job->ncolumns, sizeof(*r->cells));
    }
    if (!open_file(r))
        return;
    /* libxlsxwriter's temporary files go to a folder of the workbook's own,
     * so that what a kill leaves of them is swept with the workbook; or, for
     * a workbook in memory, to memory as well. */
    if (r->in_memory)
        errno = 0;
    else if (snprintf(r->scratch, sizeof(r->scratch), "%s.d", r->path) >= (int)sizeof(r->scratch))
        errno = ENAMETOOLONG;
    else if (mkdir(r->scratch, 0700) == 0 || errno == EEXIST)
        errno = 0;
    if (errno != 0) {
        char why[96];

        run_set_outcome(r, OUT_FAILED, "internal", "cannot create %s: %s", r->scratch,
                        exw_errno_text(errno, why, sizeof(why)));
        r->scratch[0] = '\0';
        return;
    }
    if (exw_xlsx_open(r->in_memory ? NULL : r->path, r->in_memory ? NULL : r->scratch,
                      r->job->sheet, r->job->columns, r->job->ncolumns,
                      (uint32_t)cfg->max_sheet_rows, &r->xlsx, &eb) != EXW_OK) {
        run_set_outcome(r, OUT_FAILED, "internal", "cannot create the workbook in %s: %s",
                        cfg->tmpdir, eb.msg);
        return;
    }
    if (r->job->rows_key != NULL && (r->reader = rows_reader_start(r, typed)) == NULL) {
        run_set_outcome(r, OUT_LOST, NULL, "cannot start a thread to read %s", r->job->rows_key);
        return;
    }
    if (typed) {
        write_typed_rows(r);
        return;
    }
    while (r->outcome == OUT_NONE && r->rows_written < r->rows_total) {
        fill_window(r);
        if (r->outcome != OUT_NONE || r->wcount == 0)
            break;
        /* Write every row that is ready; wait a little on one that is not. */
        while (r->wcount > 0 && r->outcome == OUT_NONE && write_head(r, 0))
            ;
        /* Checked at once after a wait that ran out. */
        checkpoint(r, &written_at, &check_at,
                   r->outcome == OUT_NONE && r->wcount > 0 && !write_head(r, WAIT_STEP_MS));
    }
    expect_all_written(r);
}

/* Packs the workbook; on the packer thread, or on the job's own for a small
 * one. */
static void *pack_main(void *arg)
{
    struct packer *p = arg;
    exw_err rc;

    rc = exw_xlsx_close(p->xlsx, &p->eb);
    exw_mutex_lock(&p->mu);
    p->rc = rc;
    p->xlsx = NULL;
    p->done = 1;
    pthread_cond_signal(&p->finished);
    exw_mutex_unlock(&p->mu);
    return NULL;
}

static void *pack_thread(void *arg)
{
    exw_log_set_thread("pack");
    return pack_main(arg);
}

/* Waits up to @ms for the packer; returns whether it is done. */
static int pack_wait(struct packer *p, int64_t ms)
{
    struct timespec until = exw_mono_deadline(ms);
    int done;

    exw_mutex_lock(&p->mu);
    while (!p->done && pthread_cond_timedwait(&p->finished, &p->mu.m, &until) == 0)
        ;
    done = p->done;
    exw_mutex_unlock(&p->mu);
    return done;
}

/* Packs the workbook on the packer thread, checking for a cancel or a stop
 * meanwhile. On an outcome decided first, the packer is left to finish and
 * joined in run_workbook_cleanup, after the job's end is recorded. */
static void pack(struct run *r)
{
    struct packer *p = &r->packer;

    if (r->in_memory) { /* small: packed here, into r->result */
        struct exw_errbuf eb;
        size_t len;
        exw_err rc = exw_xlsx_close_memory(r->xlsx, &r->result, &len, &eb);

        r->xlsx = NULL;
        r->result_bytes = (long long)len;
        if (rc != EXW_OK)
            run_set_outcome(r, OUT_FAILED, "internal", "finishing the workbook failed: %s", eb.msg);
        return;
    }
    p->xlsx = r->xlsx;
    r->xlsx = NULL;
    pthread_mutex_init(&p->mu.m, NULL);
    if (exw_cond_init_mono(&p->finished) != 0) {
        pthread_mutex_destroy(&p->mu.m);
        run_set_outcome(r, OUT_FAILED, "internal", "cannot make the packer's condition variable");
        return;
    }
    p->ready = 1;
    if (r->rows_total * (long long)r->job->ncolumns <= PACK_INLINE_CELLS ||
        pthread_create(&p->tid, NULL, pack_thread, p) != 0) {
        pack_main(p); /* small, or no thread to be had: pack here */
    } else {
        p->running = 1;
        while (!pack_wait(p, PACK_CHECK_MS) && !run_check(r, 0))
            ;
        if (!pack_wait(p, 0))
            return;
        pthread_join(p->tid, NULL);
        p->running = 0;
    }
    if (p->rc != EXW_OK)
        run_set_outcome(r, OUT_FAILED, "internal", "finishing the workbook failed: %s", p->eb.msg);
    else if (unlink(r->path) == 0)
        r->path[0] = '\0'; /* only the fd holds the workbook now */
}

/* At most UPLOAD_CHUNK bytes of the @size-byte workbook from @off into *@at:
 * in place when it is in memory, else read into @buf. Returns their number,
 * 0 when the file ends short of @size, -1 on error. */
static ssize_t read_book(struct run *r, long long size, long long off, char *buf, const char **at)
{
    size_t n = (size_t)(size - off < (long long)UPLOAD_CHUNK ? size - off : UPLOAD_CHUNK);
    ssize_t got;

    if (r->in_memory) {
        *at = r->result + off;
        return (ssize_t)n;
    }
    *at = buf;
    while ((got = pread(r->fd, buf, n, (off_t)off)) < 0 && errno == EINTR)
        ;
    return got;
}

/* Streams the @size-byte workbook into Redis in chunks while hashing it.
 * Returns 1 when stored; 0 when Redis failed on the way (*@why says how) or
 * the outcome was decided meanwhile. */
static int upload_once(struct run *r, long long size, char *why, size_t whysz)
{
    struct exw_sha256 *sha = NULL;
    struct exw_errbuf eb;
    char *chunk = r->in_memory ? NULL : exw_xmalloc(UPLOAD_CHUNK);
    const char *at;
    long long off = 0;
    int stored = 0;
    ssize_t n;

    why[0] = '\0';
    if (exw_sha256_new(&sha) != EXW_OK) {
        run_set_outcome(r, OUT_FAILED, "internal", "hashing the workbook failed");
        goto out;
    }
    while (off < size) {
        struct exw_redis *rd = exw_conn_get(r->conn);
        /* The upload lives no longer than the job may run, plus a margin. */
        int64_t ttl = r->deadline - exw_mono_ms() + 60000;

        if ((n = read_book(r, size, off, chunk, &at)) <= 0) {
            run_set_outcome(r, OUT_FAILED, "internal", "reading back the workbook failed");
            goto out;
        }
        if (exw_sha256_update(sha, at, (size_t)n) != EXW_OK) {
            run_set_outcome(r, OUT_FAILED, "internal", "hashing the workbook failed");
            goto out;
        }
        if (rd == NULL || exw_result_chunk(rd, r->job->id, off == 0, at, (size_t)n,
                                           (long)(ttl > 60000 ? ttl : 60000), &eb) != EXW_OK) {
            snprintf(why, whysz, "%s", rd ? eb.msg : "Redis unreachable");
            goto out;
        }
        off += n;
        /* A cancel, the time limit or the shutdown grace still apply here. */
        if (run_check(r, 0))
            goto out;
    }
    if (exw_sha256_final(sha, r->sha256) != EXW_OK) {
        run_set_outcome(r, OUT_FAILED, "internal", "hashing the workbook failed");
        goto out;
    }
    stored = 1;
out:
    exw_sha256_free(sha);
    free(chunk);
    return stored;
}

/* Keeps a workbook of at most one chunk whole in r->result, reading it back
 * when it is on disk, for the job's end to store (no upload, one round trip
 * less), and hashes it. */
static void keep_small(struct run *r, long long size)
{
    struct exw_sha256 *sha = NULL;
    const char *at;
    long long got = 0;

    if (!r->in_memory) {
        r->result = exw_xmalloc(size ? (size_t)size : 1);
        while (got < size) {
            ssize_t n = read_book(r, size, got, r->result + got, &at);

            if (n <= 0) {
                run_set_outcome(r, OUT_FAILED, "internal", "reading back the workbook failed");
                return;
            }
            got += n;
        }
    }
    if (exw_sha256_new(&sha) != EXW_OK ||
        exw_sha256_update(sha, r->result, (size_t)size) != EXW_OK ||
        exw_sha256_final(sha, r->sha256) != EXW_OK)
        run_set_outcome(r, OUT_FAILED, "internal", "hashing the workbook failed");
    exw_sha256_free(sha);
    r->result_bytes = size;
}

/* Stores the result, starting over while Redis is away, until the job's
 * deadline; or keeps it for the end when it fits in one chunk. */
static void upload(struct run *r)
{
    const struct exw_config *cfg = r->w->cfg;
    int64_t backoff = 100;
    long long size = r->result_bytes;
    struct stat st;
    char why[256];
    int failures = 0;

    if (!r->in_memory) {
        if (fstat(r->fd, &st) != 0) {
            run_set_outcome(r, OUT_FAILED, "internal", "cannot read back the workbook");
            return;
        }
        size = (long long)st.st_size;
    }
    if (size > cfg->max_result_bytes) {
        run_set_outcome(r, OUT_FAILED, "too_large",
                        "the workbook has %lld bytes, over EXPORT_MAX_RESULT_BYTES (%ld); split "
                        "the export",
                        size, cfg->max_result_bytes);
        return;
    }
    if (size <= (long long)UPLOAD_CHUNK) {
        keep_small(r, size);
        return;
    }

    while (!upload_once(r, size, why, sizeof(why)) && r->outcome == OUT_NONE) {
        /* Once per outage, not once per try. */
        EXW_LOG(failures++ == 0 ? EXW_LOG_WARN : EXW_LOG_DEBUG,
                "storing the result failed, retrying: %s", why);
        exw_sleep_ms(backoff);
        backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
        if (run_check(r, 0))
            return;
    }
    /* Uploaded: not to be stored again with the end. */
    free(r->result);
    r->result = NULL;
    r->result_bytes = size;
}

void run_workbook(struct run *r)
{
    write_rows(r);
    if (r->outcome == OUT_NONE)
        pack(r);
    if (r->outcome == OUT_NONE)
        upload(r);
}

void run_workbook_cleanup(struct run *r)
{
    /* An abandoned workbook is dropped unpacked. */
    exw_xlsx_discard(r->xlsx);
    r->xlsx = NULL;
    if (r->packer.running) {
        pthread_join(r->packer.tid, NULL);
        r->packer.running = 0;
    }
    if (r->packer.ready) {
        pthread_cond_destroy(&r->packer.finished);
        pthread_mutex_destroy(&r->packer.mu.m);
        r->packer.ready = 0;
    }
    if (r->scratch[0] != '\0') {
        remove_scratch(AT_FDCWD, r->scratch);
        r->scratch[0] = '\0';
    }
    if (!r->in_memory && r->path[0] != '\0' && unlink(r->path) != 0 && errno != ENOENT)
        EXW_LOG(EXW_LOG_WARN, "cannot remove %s", r->path);
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->in_memory = 0;
    while (r->wcount > 0)
        pop_window(r);
    rows_reader_stop(r->reader);
    r->reader = NULL;
    free(r->window);
    free(r->cells);
    free(r->result);
    r->result = NULL;
}

/* Whether a live worker holds the lock of the workbook named by the first
 * @n bytes of @name in the folder @at (the scratch folder's name less its ".d"). */
static int workbook_in_use(int at, const char *name, size_t n)
{
    char file[NAME_MAX + 1];
    int fd, in_use;

    snprintf(file, sizeof(file), "%.*s", (int)n, name);
    fd = openat(at, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return 0; /* packed and unlinked, or never made: its owner is done */
    in_use = flock(fd, LOCK_EX | LOCK_NB) != 0;
    close(fd);
    return in_use;
}

int run_sweep_tmpdir(const char *tmpdir)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    int removed = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        int fd;

        if (strncmp(e->d_name, FILE_PREFIX, strlen(FILE_PREFIX)) != 0)
            continue;
        if (n > strlen(SCRATCH_SUFFIX) &&
            strcmp(e->d_name + n - strlen(SCRATCH_SUFFIX), SCRATCH_SUFFIX) == 0) {
            if (!workbook_in_use(dirfd(d), e->d_name, n - 2)) {
                remove_scratch(dirfd(d), e->d_name);
                removed++;
            }
            continue;
        }
        if (n < strlen(FILE_SUFFIX) ||
            strcmp(e->d_name + n - strlen(FILE_SUFFIX), FILE_SUFFIX) != 0)
            continue;
        fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            continue;
        /* A live worker holds its file's lock for as long as it uses it. */
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
        close(fd);
    }
    closedir(d);
    return removed;
}
