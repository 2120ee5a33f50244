/* xlsx_cells.c: the reference for export-worker's workbook speed on rows of
 * any shape (scripts/bench.sh --shape).
 *
 * bench-xlsx-loop writes the suite's ten columns from formulas; this program
 * writes whatever rows it is given, so that the worker can be measured on an
 * export's own shape. It reads a job document's columns (field columns only:
 * a lookup column has nothing to write without the service) and a file of
 * rows, one JSON object a line, as scripts/bench.py pushes them to the
 * worker's rows_key list. It types every cell first, untimed, by the rules of
 * docs/protocol.md ("Values") in short: text from a string, a number or a
 * boolean; numbers; whole numbers; dates and datetimes from their ISO text;
 * booleans; anything else, or nothing, an empty cell. Then, timed, it does
 * what plain libxlsxwriter code does with those cells: a workbook in
 * constant_memory mode (with use_zip64, as the worker opens its workbooks), a
 * bold frozen header row, the columns' number formats and widths, a new sheet
 * after 1,048,575 rows, an autofilter on each, and the close, which packs it.
 *
 * Nothing is read from Redis, parsed or uploaded while the clock runs: this
 * is the floor under the worker's rows-to-workbook path for those rows. Its
 * memory holds every typed cell at once, so its peak RSS says nothing about
 * the worker's. Prints one line of JSON on stdout:
 *   {"rows":N,"seconds":S,"bytes":B,"peak_rss_kib":K}
 *
 *   bench-xlsx-cells JOB.json ROWS.jsonl OUTPUT.xlsx [TMPDIR]
 */
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <xlsxwriter.h>

#include "measure.h"

#define PROG "bench-xlsx-cells"
#define SHEET_ROWS 1048575u /* data rows a sheet holds under its header */
#define MAX_COLS 16384

enum kind { K_STRING, K_NUMBER, K_INTEGER, K_DATE, K_DATETIME, K_BOOLEAN };

struct column {
    const char *header, *field;
    enum kind kind;
    const char *num_format; /* NULL: none */
    lxw_format *format;
    double width; /* 0: the default */
};

struct cell {
    enum { C_EMPTY, C_TEXT, C_NUMBER, C_BOOL, C_DATE } type;
    double num;
    lxw_datetime dt;
    char *text;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;

    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0, got;

    if (f == NULL)
        die("cannot open %s", path);
    do {
        if (n + 65536 > cap) {
            cap = cap ? 2 * cap : 1 << 20;
            buf = realloc(buf, cap + 1);
            if (buf == NULL)
                die("%s: out of memory", path);
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static enum kind kind_of(const char *type, const char *header)
{
    static const char *const names[] = {"string", "number",   "integer",
                                        "date",   "datetime", "boolean"};

    if (type == NULL)
        return K_STRING;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(type, names[i]) == 0)
            return (enum kind)i;
    die("column %s: unknown type", header);
}

/* The cell of @v for a column of @kind (docs/protocol.md, "Values"). */
static void type_cell(const cJSON *v, enum kind kind, struct cell *c)
{
    char text[40];
    int n;

    memset(c, 0, sizeof(*c));
    if (v == NULL || cJSON_IsNull(v))
        return;
    switch (kind) {
    case K_STRING:
        if (cJSON_IsString(v)) {
            c->text = strdup(v->valuestring);
        } else if (cJSON_IsNumber(v)) {
            snprintf(text, sizeof(text), "%.17g", v->valuedouble);
            c->text = strdup(text);
        } else if (cJSON_IsBool(v)) {
            c->text = strdup(cJSON_IsTrue(v) ? "true" : "false");
        }
        c->type = c->text != NULL ? C_TEXT : C_EMPTY;
        return;
    case K_NUMBER:
    case K_INTEGER:
        if (cJSON_IsNumber(v)) {
            c->type = C_NUMBER;
            c->num = v->valuedouble;
        }
        return;
    case K_BOOLEAN:
        if (cJSON_IsBool(v)) {
            c->type = C_BOOL;
            c->num = cJSON_IsTrue(v);
        }
        return;
    case K_DATE:
    case K_DATETIME:
        if (!cJSON_IsString(v))
            return;
        n = sscanf(v->valuestring, "%4d-%2d-%2d%*[T ]%2d:%2d:%lf", &c->dt.year, &c->dt.month,
                   &c->dt.day, &c->dt.hour, &c->dt.min, &c->dt.sec);
        if (n >= 3)
            c->type = C_DATE;
        return;
    }
}

static lxw_error write_cell(lxw_worksheet *ws, lxw_row_t row, lxw_col_t col, struct cell *c,
                            lxw_format *format)
{
    switch (c->type) {
    case C_TEXT:
        return worksheet_write_string(ws, row, col, c->text, format);
    case C_NUMBER:
        return worksheet_write_number(ws, row, col, c->num, format);
    case C_BOOL:
        return worksheet_write_boolean(ws, row, col, c->num != 0, format);
    case C_DATE:
        return worksheet_write_datetime(ws, row, col, &c->dt, format);
    default:
        return LXW_NO_ERROR;
    }
}

/* A new sheet with the header row; NULL on failure. */
static lxw_worksheet *add_sheet(lxw_workbook *wb, const char *name, unsigned nth,
                                const struct column *cols, size_t ncols, lxw_format *bold)
{
    char numbered[48];
    lxw_worksheet *ws;

    if (nth > 1) {
        snprintf(numbered, sizeof(numbered), "%.24s (%u)", name, nth);
        name = numbered;
    }
    ws = workbook_add_worksheet(wb, name);
    if (ws == NULL)
        return NULL;
    for (size_t c = 0; c < ncols; c++) {
        if (cols[c].width > 0)
            worksheet_set_column(ws, (lxw_col_t)c, (lxw_col_t)c, cols[c].width, NULL);
        if (worksheet_write_string(ws, 0, (lxw_col_t)c, cols[c].header, bold) != LXW_NO_ERROR)
            return NULL;
    }
    worksheet_freeze_panes(ws, 1, 0);
    return ws;
}

int main(int argc, char **argv)
{
    lxw_workbook_options opts = {.constant_memory = LXW_TRUE, .use_zip64 = LXW_TRUE};
    struct column cols[MAX_COLS];
    struct cell *cells = NULL;
    size_t ncols = 0, nrows = 0, cap = 0, len;
    const char *sheet = "Data";
    char *text, *line, *next;
    const cJSON *jcols, *jc;
    cJSON *job;
    lxw_workbook *wb;
    lxw_worksheet *ws;
    lxw_format *bold;
    lxw_error err = LXW_NO_ERROR;
    struct stat st;
    unsigned nsheets = 1;
    lxw_row_t row = 1;
    double t0, secs;

    if (argc < 4 || argc > 5) {
        fputs("usage: " PROG " JOB.json ROWS.jsonl OUTPUT.xlsx [TMPDIR]\n", stderr);
        return 2;
    }
    if (argc == 5)
        opts.tmpdir = argv[4];
    /* As the worker (worker/main.c, tune_malloc): a freed heap is kept. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);

    text = slurp(argv[1], &len);
    job = cJSON_ParseWithLength(text, len);
    free(text);
    jcols = cJSON_GetObjectItemCaseSensitive(job, "columns");
    if (!cJSON_IsArray(jcols) || cJSON_GetArraySize(jcols) < 1 ||
        cJSON_GetArraySize(jcols) > MAX_COLS)
        die("%s: no columns", argv[1]);
    if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(job, "sheet")))
        sheet = cJSON_GetObjectItemCaseSensitive(job, "sheet")->valuestring;
    cJSON_ArrayForEach(jc, jcols)
    {
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(jc, "header");
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(jc, "field");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(jc, "type");
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(jc, "width");
        const cJSON *nf = cJSON_GetObjectItemCaseSensitive(jc, "format");
        static const char *const defaults[] = {NULL, NULL, "0", "yyyy-mm-dd", "yyyy-mm-dd hh:mm:ss",
                                               NULL};

        if (!cJSON_IsString(h) || !cJSON_IsString(f))
            die("%s: every column needs a header and a field (no lookup columns)", argv[1]);
        cols[ncols].header = h->valuestring;
        cols[ncols].field = f->valuestring;
        cols[ncols].kind = kind_of(cJSON_IsString(t) ? t->valuestring : NULL, h->valuestring);
        cols[ncols].width = cJSON_IsNumber(w) ? w->valuedouble : 0;
        cols[ncols].num_format = cJSON_IsString(nf) ? nf->valuestring : defaults[cols[ncols].kind];
        ncols++;
    }

    /* Every row's cells, typed before the clock starts. */
    text = slurp(argv[2], &len);
    for (line = text; line < text + len; line = next) {
        cJSON *obj;

        next = memchr(line, '\n', (size_t)(text + len - line));
        next = next != NULL ? next + 1 : text + len;
        if (next - line <= 1)
            continue;
        obj = cJSON_ParseWithLength(line, (size_t)(next - line));
        if (!cJSON_IsObject(obj))
            die("%s: a line is not a JSON object", argv[2]);
        if (nrows == cap) {
            cap = cap ? 2 * cap : 4096;
            cells = realloc(cells, cap * ncols * sizeof(*cells));
            if (cells == NULL)
                die("%s: out of memory", argv[2]);
        }
        for (size_t c = 0; c < ncols; c++)
            type_cell(cJSON_GetObjectItemCaseSensitive(obj, cols[c].field), cols[c].kind,
                      &cells[nrows * ncols + c]);
        cJSON_Delete(obj);
        nrows++;
    }
    free(text);

    t0 = now_s();
    wb = workbook_new_opt(argv[3], &opts);
    if (wb == NULL)
        die("cannot create %s", argv[3]);
    bold = workbook_add_format(wb);
    format_set_bold(bold);
    for (size_t c = 0; c < ncols; c++) {
        const char *num = cols[c].num_format;

        cols[c].format = NULL;
        for (size_t k = 0; num != NULL && k < c; k++) /* one format per distinct text */
            if (cols[k].num_format != NULL && strcmp(cols[k].num_format, num) == 0)
                cols[c].format = cols[k].format;
        if (num != NULL && cols[c].format == NULL) {
            cols[c].format = workbook_add_format(wb);
            format_set_num_format(cols[c].format, num);
        }
    }
    ws = add_sheet(wb, sheet, nsheets, cols, ncols, bold);
    for (size_t i = 0; i < nrows && ws != NULL && err == LXW_NO_ERROR; i++, row++) {
        if (row > SHEET_ROWS) {
            err = worksheet_autofilter(ws, 0, 0, row - 1, (lxw_col_t)(ncols - 1));
            ws = add_sheet(wb, sheet, ++nsheets, cols, ncols, bold);
            row = 1;
            if (ws == NULL)
                break;
        }
        for (size_t c = 0; c < ncols && err == LXW_NO_ERROR; c++)
            err = write_cell(ws, row, (lxw_col_t)c, &cells[i * ncols + c], cols[c].format);
    }
    if (ws == NULL)
        die("%s: cannot add a sheet", argv[3]);
    if (err == LXW_NO_ERROR)
        err = worksheet_autofilter(ws, 0, 0, row - 1, (lxw_col_t)(ncols - 1));
    if (err != LXW_NO_ERROR)
        die("writing rows: %s", lxw_strerror(err));
    err = workbook_close(wb);
    if (err != LXW_NO_ERROR)
        die("closing the workbook: %s", lxw_strerror(err));
    secs = now_s() - t0;
    if (stat(argv[3], &st) != 0)
        die("%s: cannot stat the workbook", argv[3]);
    printf("{\"rows\":%zu,\"seconds\":%.6f,\"bytes\":%lld,\"peak_rss_kib\":%ld}\n", nrows, secs,
           (long long)st.st_size, peak_rss_kib());
    for (size_t i = 0; i < nrows * ncols; i++)
        free(cells[i].text);
    free(cells);
    cJSON_Delete(job);
    return 0;
}
