/* xlsx.c: the workbook writer, the only user of libxlsxwriter.
 *
 * The workbook is written in libxlsxwriter's constant-memory mode: each row
 * goes to a temporary file as soon as the next one starts, so a million rows
 * cost no more memory than one, but rows must come in order and a sheet's
 * autofilter can only be set once its last row is known (when the sheet is
 * continued or the workbook closed). Text is stored as inline strings. A
 * small workbook is built in memory instead (xlsx_hooks.c). */
#include "exw/xlsx.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <xlsxwriter.h>

#include "exw/utf8.h"
#include "exw/xlsx_hooks.h"

/* A distinct number format string and the format made for it. */
struct num_format {
    const char *text;
    lxw_format *format;
};

struct exw_xlsx {
    lxw_workbook *wb;
    lxw_worksheet *ws;            /* the sheet being written */
    lxw_format *bold;             /* header row */
    lxw_format *datetime_default; /* a date cell in a column without a format */
    lxw_format **col_format;      /* per column, NULL for General */
    struct num_format *formats;   /* distinct number formats */
    size_t nformats;
    const struct exw_column *cols; /* borrowed */
    size_t ncols;
    char *path;
    char *base;                 /* name of the first sheet */
    char *tmpdir;               /* libxlsxwriter keeps a pointer to it */
    int in_memory;              /* all in memory (no path given) */
    struct exw_xlsx_memory mem; /* with in_memory: its parts and zip */
    lxw_worksheet **sheets;     /* every sheet so far, for their temporary files */
    unsigned nsheets;
    uint32_t rows_per_sheet;         /* header row included */
    uint32_t row;                    /* next row of ws; 0 is the header */
    unsigned long long rows_written; /* data rows, all sheets */
    exw_err failed;                  /* sticky: a half-written row cannot be taken back */
};

/* Fills @eb with @fmt's context and libxlsxwriter's text for @err; returns the
 * matching exw_err. */
static exw_err EXW_PRINTF(3, 4) lxw_fail(struct exw_errbuf *eb, lxw_error err, const char *fmt, ...)
{
    exw_err rc = err == LXW_ERROR_MEMORY_MALLOC_FAILED ? EXW_ENOMEM : EXW_EXLSX;
    char ctx[192];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(ctx, sizeof(ctx), fmt, ap);
    va_end(ap);
    return exw_errbuf_set(eb, rc, "%s: %s", ctx, lxw_strerror(err));
}

/* ---- Sheet names ---- */

void exw_xlsx_sheet_name(const char *base, unsigned n, char *out, size_t outsz)
{
    char suffix[16] = "";
    size_t blen = strlen(base), slen = 0, keep = (size_t)-1, chars = 0, i = 0, step;

    if (outsz == 0)
        return;
    if (n >= 2) {
        slen = (size_t)snprintf(suffix, sizeof(suffix), " (%u)", n);
        if (slen + 1 > outsz)
            slen = outsz - 1;
        /* libxlsxwriter counts characters (code points); the suffix is ASCII. */
        keep = EXW_SHEET_NAME_MAX - slen;
    }
    while (base[i] != '\0' && chars < keep) {
        /* A whole character; a byte that is not one counts as one. */
        step = exw_utf8_seq(base + i, blen - i, NULL);
        if (step == 0)
            step = 1;
        if (i + step + slen + 1 > outsz)
            break;
        i += step;
        chars++;
    }
    memcpy(out, base, i);
    memcpy(out + i, suffix, slen);
    out[i + slen] = '\0';
}

/* ---- Text ---- */

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Bytes at @s that Excel would not read back as written: "_xHHHH_" (Excel's
 * escape for characters XML cannot carry; libxlsxwriter 1.1.4 escapes control
 * characters that way but leaves literal escapes alone), and U+FFFE and
 * U+FFFF, which XML forbids. Returns the length of such a sequence, else 0. */
static size_t escape_at(const char *s)
{
    if (s[0] == '_' && s[1] == 'x' && is_hex(s[2]) && is_hex(s[3]) && is_hex(s[4]) &&
        is_hex(s[5]) && s[6] == '_')
        return 1; /* only the underscore is escaped */
    if (s[0] == '\xEF' && s[1] == '\xBF' && (s[2] == '\xBE' || s[2] == '\xBF'))
        return 3;
    return 0;
}

/* A heap copy of @s with the sequences of escape_at() escaped, or NULL when @s
 * has none (the common case: nothing is copied). */
static char *escape_text(const char *s)
{
    size_t i, n, extra = 0, o = 0;
    char *out;

    for (i = 0; s[i] != '\0'; i++) {
        if (escape_at(s + i) != 0)
            extra += 7;
    }
    if (extra == 0)
        return NULL;
    out = exw_xmalloc(i + extra + 1);
    for (i = 0; s[i] != '\0';) {
        n = escape_at(s + i);
        if (n == 1) {
            memcpy(out + o, "_x005F_", 7);
            o += 7;
        } else if (n == 3) {
            memcpy(out + o, s[i + 2] == '\xBE' ? "_xFFFE_" : "_xFFFF_", 7);
            o += 7;
        } else {
            out[o++] = s[i];
            n = 1;
        }
        i += n;
    }
    out[o] = '\0';
    return out;
}

/* Writes @text as a text cell (never a formula, whatever it begins with). */
static lxw_error write_text(lxw_worksheet *ws, lxw_row_t row, lxw_col_t col, const char *text,
                            lxw_format *format)
{
    char *escaped = escape_text(text);
    lxw_error err;

    /* A string cell is text whatever it begins with; a quote-prefix format would also keep an
     * edit in Excel from making it a formula, but libxlsxwriter 1.1.4 has none. */
    err = worksheet_write_string(ws, row, col, escaped != NULL ? escaped : text, format);
    free(escaped);
    return err;
}

/* ---- Sheets ---- */

/* Sets the autofilter over the header and the rows written to the sheet. */
static exw_err finish_sheet(struct exw_xlsx *x, struct exw_errbuf *eb)
{
    lxw_error err;

    err = worksheet_autofilter(x->ws, 0, 0, x->row - 1, (lxw_col_t)(x->ncols - 1));
    if (err != LXW_NO_ERROR)
        return lxw_fail(eb, err, "autofilter of sheet %u", x->nsheets);
    return EXW_OK;
}

/* Adds the next sheet with its columns' widths and formats, the bold header
 * row and the frozen pane below it. */
static exw_err add_sheet(struct exw_xlsx *x, struct exw_errbuf *eb)
{
    const struct exw_column *col;
    const char *name;
    char buf[128], sys[96];
    lxw_worksheet *ws;
    lxw_error err;
    size_t c;

    /* The first sheet has the name as given: a bad one is an error, not cut. */
    if (x->nsheets == 0) {
        name = x->base;
    } else {
        exw_xlsx_sheet_name(x->base, x->nsheets + 1, buf, sizeof(buf));
        name = buf;
    }
    /* Checked first so that a bad name is an error with a reason, not NULL. */
    err = workbook_validate_sheet_name(x->wb, name);
    if (err != LXW_NO_ERROR)
        return lxw_fail(eb, err, "sheet name \"%s\"", name);
    errno = 0;
    exw_xlsx_memory_use(x->in_memory ? &x->mem : NULL);
    ws = workbook_add_worksheet(x->wb, name);
    exw_xlsx_memory_use(NULL);
    if (ws == NULL) {
        /* Constant-memory mode opens the sheet's temporary file here. */
        if (errno == ENOMEM)
            return exw_errbuf_set(eb, EXW_ENOMEM, "sheet \"%s\": out of memory", name);
        return exw_errbuf_set(eb, EXW_EXLSX, "sheet \"%s\": cannot create its temporary file (%s)",
                              name, exw_errno_text(errno, sys, sizeof(sys)));
    }
    x->sheets = exw_xrealloc(x->sheets, (x->nsheets + 1) * sizeof(*x->sheets));
    x->sheets[x->nsheets] = ws;
    x->ws = ws;
    x->nsheets++;
    x->row = 0;

    for (c = 0; c < x->ncols; c++) {
        col = &x->cols[c];
        if (col->width <= 0)
            continue;
        /* Cells carry their own formats; the column only gets its width. */
        err = worksheet_set_column(ws, (lxw_col_t)c, (lxw_col_t)c, col->width, NULL);
        if (err != LXW_NO_ERROR)
            return lxw_fail(eb, err, "sheet \"%s\", column %zu", name, c + 1);
    }
    for (c = 0; c < x->ncols; c++) {
        err = write_text(ws, 0, (lxw_col_t)c, x->cols[c].header != NULL ? x->cols[c].header : "",
                         x->bold);
        if (err != LXW_NO_ERROR)
            return lxw_fail(eb, err, "sheet \"%s\", header of column %zu", name, c + 1);
    }
    worksheet_freeze_panes(ws, 1, 0);
    x->row = 1;
    return EXW_OK;
}

/* ---- Temporary files ----
 *
 * libxlsxwriter 1.1.4 closes a sheet's temporary file only as it packs that
 * sheet into the zip. A workbook_close() that fails before (the file cannot be
 * created, the disk is full) and lxw_workbook_free() leave it open: an
 * unlinked file whose descriptor and disk space stay taken for the life of the
 * process. These functions find and close such files. (Parts kept in memory
 * are on their workbook's list instead, which xlsx_free() empties.) */

/* A sheet's temporary file as it was before workbook_close(). */
struct held_tmpfile {
    FILE *fp;   /* libxlsxwriter's stream, or NULL */
    int fd;     /* its descriptor */
    int dup_fd; /* ours: keeps the file, so its inode number cannot be reused */
    dev_t dev;
    ino_t ino;
};

/* Records every sheet's temporary file. Returns x->nsheets entries. */
static struct held_tmpfile *hold_tmpfiles(struct exw_xlsx *x)
{
    struct held_tmpfile *held = exw_xcalloc(x->nsheets, sizeof(*held));
    struct held_tmpfile *h;
    struct stat st;
    unsigned i;

    for (i = 0; i < x->nsheets; i++) {
        h = &held[i];
        h->dup_fd = -1;
        if (x->sheets[i]->optimize_tmpfile == NULL)
            continue;
        h->fd = fileno(x->sheets[i]->optimize_tmpfile);
        if (fstat(h->fd, &st) != 0)
            continue;
        h->dup_fd = fcntl(h->fd, F_DUPFD_CLOEXEC, 0);
        if (h->dup_fd < 0)
            continue;
        h->fp = x->sheets[i]->optimize_tmpfile;
        h->dev = st.st_dev;
        h->ino = st.st_ino;
    }
    return held;
}

/* Drops the records of hold_tmpfiles(); with @close_leaked, first closes the
 * files libxlsxwriter left open. Such a file still has its descriptor: had the
 * library closed it, the number would now name another file or none, since
 * our duplicate keeps the inode from being reused. */
static void release_tmpfiles(struct held_tmpfile *held, unsigned n, int close_leaked)
{
    struct held_tmpfile *h;
    struct stat st;
    unsigned i;

    for (i = 0; i < n; i++) {
        h = &held[i];
        if (h->fp == NULL)
            continue;
        if (close_leaked && fstat(h->fd, &st) == 0 && st.st_dev == h->dev && st.st_ino == h->ino)
            fclose(h->fp);
        close(h->dup_fd);
    }
    free(held);
}

/* Frees a workbook that is not to be written, with its sheets' temporary
 * files (all still open: only workbook_close() closes them). */
static void discard_workbook(struct exw_xlsx *x)
{
    unsigned i;

    for (i = 0; i < x->nsheets; i++) {
        if (x->sheets[i]->optimize_tmpfile != NULL) {
            fclose(x->sheets[i]->optimize_tmpfile);
            x->sheets[i]->optimize_tmpfile = NULL;
        }
    }
    lxw_workbook_free(x->wb);
    x->wb = NULL;
}

/* ---- Opening ---- */

/* The format for number format @text, shared by the columns that use it. */
static lxw_format *format_for(struct exw_xlsx *x, const char *text)
{
    lxw_format *f;
    size_t i;

    for (i = 0; i < x->nformats; i++) {
        if (strcmp(x->formats[i].text, text) == 0)
            return x->formats[i].format;
    }
    f = workbook_add_format(x->wb);
    if (f == NULL)
        return NULL;
    format_set_num_format(f, text);
    x->formats[x->nformats].text = text;
    x->formats[x->nformats].format = f;
    x->nformats++;
    return f;
}

/* Checks the columns and makes their formats. */
static exw_err setup_columns(struct exw_xlsx *x, struct exw_errbuf *eb)
{
    const struct exw_column *col;
    const char *text;
    size_t c;

    x->col_format = exw_xcalloc(x->ncols, sizeof(*x->col_format));
    x->formats = exw_xcalloc(x->ncols, sizeof(*x->formats));
    for (c = 0; c < x->ncols; c++) {
        col = &x->cols[c];
        if (!(col->width >= 0 && col->width <= 255))
            return exw_errbuf_set(eb, EXW_EXLSX, "column %zu: width %g is not 0 to 255", c + 1,
                                  col->width);
        text = col->format != NULL ? col->format : exw_col_type_default_format(col->type);
        if (text == NULL || text[0] == '\0')
            continue;
        if (strlen(text) > EXW_XLSX_FORMAT_MAX)
            return exw_errbuf_set(eb, EXW_EXLSX, "column %zu: number format longer than %d bytes",
                                  c + 1, EXW_XLSX_FORMAT_MAX);
        x->col_format[c] = format_for(x, text);
        if (x->col_format[c] == NULL)
            return exw_errbuf_set(eb, EXW_ENOMEM, "column %zu: out of memory for its format",
                                  c + 1);
    }
    return EXW_OK;
}

/* Frees @x, whose workbook is closed or freed: a memory part still open is
 * one the library let go of (a failed workbook_close() leaves its sheets'
 * open, as it does their files on disk). */
static void xlsx_free(struct exw_xlsx *x)
{
    exw_xlsx_memory_free(&x->mem);
    free(x->sheets);
    free(x->col_format);
    free(x->formats);
    free(x->path);
    free(x->base);
    free(x->tmpdir);
    free(x);
}

exw_err exw_xlsx_open(const char *path, const char *tmpdir, const char *sheet,
                      const struct exw_column *cols, size_t ncols, uint32_t rows_per_sheet,
                      struct exw_xlsx **out, struct exw_errbuf *eb)
{
    lxw_workbook_options opts = {.constant_memory = LXW_TRUE, .use_zip64 = LXW_TRUE};
    struct exw_xlsx *x;
    exw_err rc;

    EXW_ASSERT(sheet != NULL && out != NULL);
    *out = NULL;
    if (ncols == 0 || ncols > EXW_EXCEL_MAX_COLUMNS || cols == NULL)
        return exw_errbuf_set(eb, EXW_EXLSX, "%zu columns: a sheet holds 1 to %ld", ncols,
                              EXW_EXCEL_MAX_COLUMNS);

    x = exw_xcalloc(1, sizeof(*x));
    x->cols = cols;
    x->ncols = ncols;
    /* libxlsxwriter needs a name even for a workbook that goes to no file. */
    x->path = exw_xstrdup(path != NULL ? path : "the workbook in memory");
    x->base = exw_xstrdup(sheet);
    x->in_memory = path == NULL;
    x->tmpdir = tmpdir != NULL && !x->in_memory ? exw_xstrdup(tmpdir) : NULL;
    x->rows_per_sheet = rows_per_sheet;
    if (x->rows_per_sheet == 0 || x->rows_per_sheet > EXW_EXCEL_MAX_ROWS)
        x->rows_per_sheet = EXW_EXCEL_MAX_ROWS;
    if (x->rows_per_sheet < 2)
        x->rows_per_sheet = 2; /* the header and at least one row */

    /* libxlsxwriter quietly falls back to /tmp when @tmpdir is unusable, which
     * may be a small RAM disk in a container: refuse instead. */
    if (x->tmpdir != NULL && access(x->tmpdir, W_OK | X_OK) != 0) {
        char sys[96];

        rc = exw_errbuf_set(eb, EXW_EXLSX, "temporary folder %.160s: %s", tmpdir,
                            exw_errno_text(errno, sys, sizeof(sys)));
        xlsx_free(x);
        return rc;
    }
    opts.tmpdir = x->tmpdir;
    x->wb = workbook_new_opt(x->path, &opts);
    if (x->wb == NULL) {
        xlsx_free(x);
        return exw_errbuf_set(eb, EXW_ENOMEM, "workbook %.160s: out of memory", x->path);
    }
    x->bold = workbook_add_format(x->wb);
    x->datetime_default = workbook_add_format(x->wb);
    if (x->bold == NULL || x->datetime_default == NULL) {
        rc = exw_errbuf_set(eb, EXW_ENOMEM, "workbook %.160s: out of memory for formats", x->path);
        goto out;
    }
    format_set_bold(x->bold);
    format_set_num_format(x->datetime_default, exw_col_type_default_format(EXW_COL_DATETIME));
    rc = setup_columns(x, eb);
    if (rc != EXW_OK)
        goto out;
    rc = add_sheet(x, eb);
out:
    if (rc != EXW_OK) {
        /* Nothing worth keeping was written: free without creating the file. */
        discard_workbook(x);
        xlsx_free(x);
        return rc;
    }
    *out = x;
    return EXW_OK;
}

/* ---- Rows ---- */

static exw_err write_cell(struct exw_xlsx *x, size_t c, const struct exw_cell *cell,
                          struct exw_errbuf *eb)
{
    lxw_format *format = x->col_format[c];
    lxw_col_t col = (lxw_col_t)c;
    lxw_datetime dt;
    lxw_error err = LXW_NO_ERROR;

    switch (cell->kind) {
    case EXW_CELL_EMPTY:
        break;
    case EXW_CELL_STRING:
        if (cell->str != NULL)
            err = write_text(x->ws, x->row, col, cell->str, format);
        break;
    case EXW_CELL_NUMBER:
        /* libxlsxwriter would write "inf" or "nan", which Excel cannot open. */
        if (!isfinite(cell->num))
            return exw_errbuf_set(eb, EXW_EXLSX, "row %llu, column %zu: number is not finite",
                                  x->rows_written + 1, c + 1);
        err = worksheet_write_number(x->ws, x->row, col, cell->num, format);
        break;
    case EXW_CELL_BOOLEAN:
        err = worksheet_write_boolean(x->ws, x->row, col, cell->num != 0, format);
        break;
    case EXW_CELL_DATETIME:
        dt.year = cell->dt.year;
        dt.month = cell->dt.month;
        dt.day = cell->dt.day;
        dt.hour = cell->dt.hour;
        dt.min = cell->dt.min;
        dt.sec = cell->dt.sec;
        err = worksheet_write_datetime(x->ws, x->row, col, &dt,
                                       format != NULL ? format : x->datetime_default);
        break;
    }
    if (err != LXW_NO_ERROR)
        return lxw_fail(eb, err, "row %llu, column %zu", x->rows_written + 1, c + 1);
    return EXW_OK;
}

exw_err exw_xlsx_write_row(struct exw_xlsx *x, const struct exw_cell *cells, struct exw_errbuf *eb)
{
    exw_err rc;
    size_t c;

    if (x->failed != EXW_OK)
        return exw_errbuf_set(eb, x->failed, "the workbook is incomplete after an earlier error");
    if (x->row >= x->rows_per_sheet) {
        rc = finish_sheet(x, eb);
        if (rc == EXW_OK)
            rc = add_sheet(x, eb);
        if (rc != EXW_OK)
            goto out;
    }
    for (c = 0; c < x->ncols; c++) {
        rc = write_cell(x, c, &cells[c], eb);
        if (rc != EXW_OK)
            goto out;
    }
    x->row++;
    x->rows_written++;
    rc = EXW_OK;
out:
    x->failed = rc;
    return rc;
}

void exw_xlsx_discard(struct exw_xlsx *x)
{
    if (x == NULL)
        return;
    /* lxw_workbook_free(), not workbook_close(): nothing is packed or written. */
    discard_workbook(x);
    xlsx_free(x);
}

/* exw_xlsx_close() and exw_xlsx_close_memory(): *@data is NULL for a workbook
 * on disk. */
static exw_err close_workbook(struct exw_xlsx *x, char **data, size_t *len, struct exw_errbuf *eb)
{
    struct held_tmpfile *held;
    char text[96];
    exw_err rc;
    lxw_error err;
    int sys;

    *data = NULL;
    *len = 0;
    if (x == NULL)
        return EXW_OK;
    rc = x->failed;
    if (rc != EXW_OK) {
        /* Packing rows that will be thrown away would only cost time and disk. */
        discard_workbook(x);
        xlsx_free(x);
        return exw_errbuf_set(eb, rc, "the workbook is incomplete after an earlier error");
    }
    rc = finish_sheet(x, eb);
    /* workbook_close() writes the file and frees the workbook, also on error.
     * Its errno is the failed system call's (libxlsxwriter reports it too). */
    held = hold_tmpfiles(x);
    errno = 0;
    exw_xlsx_memory_use(x->in_memory ? &x->mem : NULL);
    err = workbook_close(x->wb);
    exw_xlsx_memory_use(NULL);
    sys = errno;
    release_tmpfiles(held, x->nsheets, err != LXW_NO_ERROR);
    if (err != LXW_NO_ERROR && rc == EXW_OK) {
        rc = err == LXW_ERROR_MEMORY_MALLOC_FAILED ? EXW_ENOMEM : EXW_EXLSX;
        exw_errbuf_set(eb, rc, "writing %.120s: %s (%s)", x->path, lxw_strerror(err),
                       sys != 0 ? exw_errno_text(sys, text, sizeof(text)) : "no system error");
    }
    if (rc == EXW_OK && x->in_memory) {
        if (x->mem.zip == NULL) {
            rc = exw_errbuf_set(eb, EXW_EXLSX, "writing %.120s: no zip was made", x->path);
        } else {
            *data = x->mem.zip;
            *len = x->mem.zip_len;
            x->mem.zip = NULL;
        }
    }
    xlsx_free(x);
    return rc;
}

exw_err exw_xlsx_close(struct exw_xlsx *x, struct exw_errbuf *eb)
{
    char *data;
    size_t len;
    exw_err rc = close_workbook(x, &data, &len, eb);

    free(data);
    return rc;
}

exw_err exw_xlsx_close_memory(struct exw_xlsx *x, char **data, size_t *len, struct exw_errbuf *eb)
{
    return close_workbook(x, data, len, eb);
}
