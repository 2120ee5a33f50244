/* xlsx_loop.c: the reference for export-worker's workbook speed (scripts/bench.sh).
 *
 * What plain libxlsxwriter code does with the same cells: one worksheet in
 * constant_memory mode (with use_zip64, as the worker opens its workbooks),
 * a bold frozen header row with an autofilter, then ROWS rows of the ten typed
 * columns that scripts/bench.py puts in its jobs, made here from the row
 * number by the same formulas (bench.py's row_json() is the other half):
 *
 *   ID        string   "R%07d" of i
 *   Customer  string   "Customer %03d" of i % 1000
 *   City      string   CITIES[i % 8]
 *   Amount    number   i * 1.25                     format #,##0.00
 *   Discount  number   (i % 10000) / 10000          format 0.00%
 *   Quantity  integer  i % 1000                     format 0
 *   Sequence  integer  i                            format 0
 *   Signed    date     2020-01-01 + (i % 2000) days format yyyy-mm-dd
 *   Due       date     Signed + 30 days             format yyyy-mm-dd
 *   Active    boolean  i % 3 == 0
 *
 * It takes the worker's allocator settings (worker/main.c, tune_malloc):
 * without them glibc gives back the heap's top after each workbook, zlib's
 * buffers are faulted in again for the next, and where page faults are dear
 * the loop measures them instead of the library (5.3 ms a 10-row workbook
 * rather than 0.9 on one machine).
 *
 * Nothing is read, parsed or stored: this is the floor under the worker's
 * rows-to-workbook path. With --books N it writes N such workbooks, one after
 * the other, over the same file: for small ones, the floor under a small
 * job's workbook (the worker keeps a small workbook's files in memory; point
 * OUTPUT and TMPDIR at a tmpfs to compare). Prints one line of JSON on stdout,
 * with the peak RSS of this process (VmHWM, which starts afresh at exec):
 *   {"rows":N,"books":N,"seconds":S,"bytes":B,"peak_rss_kib":K}
 *
 *   bench-xlsx-loop [--books N] OUTPUT.xlsx ROWS [TMPDIR]
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <xlsxwriter.h>

#include "measure.h"

#define PROG "bench-xlsx-loop"
#define NCOLS 10
/* Days from 1970-01-01 to 2020-01-01. */
#define BASE_DAYS 18262L

static const char *const cities[8] = {"Lisbon", "Oslo",  "Tallinn", "Porto",
                                      "Graz",   "Turku", "Ghent",   "Brno"};
static const char *const headers[NCOLS] = {"ID",       "Customer", "City",   "Amount", "Discount",
                                           "Quantity", "Sequence", "Signed", "Due",    "Active"};

/* Howard Hinnant's civil_from_days: the date of @z days since 1970-01-01. */
static lxw_datetime date_of(long z)
{
    lxw_datetime dt = {0, 0, 0, 0, 0, 0.0};
    long era;
    unsigned doe, yoe, doy, mp, m;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    m = mp < 10 ? mp + 3 : mp - 9;
    dt.year = (int)((long)yoe + era * 400 + (m <= 2));
    dt.month = (int)m;
    dt.day = (int)(doy - (153 * mp + 2) / 5 + 1);
    return dt;
}

static lxw_error write_row(lxw_worksheet *ws, lxw_row_t row, long i, lxw_format *money,
                           lxw_format *pct, lxw_format *whole, lxw_format *date)
{
    char id[24], name[24];
    lxw_datetime signed_on = date_of(BASE_DAYS + i % 2000);
    lxw_datetime due = date_of(BASE_DAYS + i % 2000 + 30);
    lxw_error err;

    snprintf(id, sizeof(id), "R%07ld", i);
    snprintf(name, sizeof(name), "Customer %03ld", i % 1000);
    err = worksheet_write_string(ws, row, 0, id, NULL);
    if (err == LXW_NO_ERROR)
        err = worksheet_write_string(ws, row, 1, name, NULL);
    if (err == LXW_NO_ERROR)
        err = worksheet_write_string(ws, row, 2, cities[i % 8], NULL);
    if (err == LXW_NO_ERROR)
        err = worksheet_write_number(ws, row, 3, (double)i * 1.25, money);
    if (err == LXW_NO_ERROR)
        err = worksheet_write_number(ws, row, 4, (double)(i % 10000) / 10000.0, pct);
    if (err == LXW_NO_ERROR)
        err = worksheet_write_number(ws, row, 5, (double)(i % 1000), whole);
    if (err == LXW_NO_ERROR)
        err = worksheet_write_number(ws, row, 6, (double)i, whole);
    if (err == LXW_NO_ERROR)
        err = worksheet_write_datetime(ws, row, 7, &signed_on, date);
    if (err == LXW_NO_ERROR)
        err = worksheet_write_datetime(ws, row, 8, &due, date);
    if (err == LXW_NO_ERROR)
        err = worksheet_write_boolean(ws, row, 9, i % 3 == 0, NULL);
    return err;
}

/* Writes one workbook of @rows rows to @path; returns 0, or 1 after saying
 * why on stderr. */
static int write_book(const char *path, long rows, lxw_workbook_options *opts)
{
    lxw_workbook *wb;
    lxw_worksheet *ws;
    lxw_format *bold, *money, *pct, *whole, *date;
    lxw_error err = LXW_NO_ERROR;

    wb = workbook_new_opt(path, opts);
    if (wb == NULL) {
        fprintf(stderr, PROG ": cannot create %s\n", path);
        return 1;
    }
    ws = workbook_add_worksheet(wb, "Data");
    bold = workbook_add_format(wb);
    money = workbook_add_format(wb);
    pct = workbook_add_format(wb);
    whole = workbook_add_format(wb);
    date = workbook_add_format(wb);
    if (ws == NULL || bold == NULL || money == NULL || pct == NULL || whole == NULL ||
        date == NULL) {
        fputs(PROG ": out of memory\n", stderr);
        lxw_workbook_free(wb);
        return 1;
    }
    format_set_bold(bold);
    format_set_num_format(money, "#,##0.00");
    format_set_num_format(pct, "0.00%");
    format_set_num_format(whole, "0");
    format_set_num_format(date, "yyyy-mm-dd");
    for (lxw_col_t c = 0; c < NCOLS && err == LXW_NO_ERROR; c++)
        err = worksheet_write_string(ws, 0, c, headers[c], bold);
    worksheet_freeze_panes(ws, 1, 0);
    if (err == LXW_NO_ERROR)
        err = worksheet_autofilter(ws, 0, 0, (lxw_row_t)rows, NCOLS - 1);
    for (long i = 0; i < rows && err == LXW_NO_ERROR; i++)
        err = write_row(ws, (lxw_row_t)(i + 1), i, money, pct, whole, date);
    if (err != LXW_NO_ERROR) {
        fprintf(stderr, PROG ": writing rows: %s\n", lxw_strerror(err));
        lxw_workbook_free(wb);
        return 1;
    }
    err = workbook_close(wb);
    if (err != LXW_NO_ERROR) {
        fprintf(stderr, PROG ": closing %s: %s\n", path, lxw_strerror(err));
        return 1;
    }
    return 0;
}

static int parse_long(const char *s, long max, long *out)
{
    char *end = NULL;

    errno = 0;
    *out = strtol(s, &end, 10);
    return errno == 0 && end != s && *end == '\0' && *out >= 1 && *out <= max ? 0 : -1;
}

int main(int argc, char **argv)
{
    lxw_workbook_options opts = {.constant_memory = LXW_TRUE, .use_zip64 = LXW_TRUE};
    struct stat st;
    double t0, secs;
    long rows, books = 1;

    int books_ok = 1;

    if (argc > 2 && strcmp(argv[1], "--books") == 0) {
        books_ok = parse_long(argv[2], 100000000L, &books) == 0;
        argc -= 2;
        argv += 2;
    }
    if (!books_ok || argc < 3 || argc > 4 || parse_long(argv[2], 1048575L, &rows) != 0) {
        fprintf(stderr, "usage: " PROG " [--books N] OUTPUT.xlsx ROWS [TMPDIR]   (ROWS "
                        "1..1048575)\n");
        return 2;
    }
    if (argc == 4)
        opts.tmpdir = argv[3];
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 20);
    t0 = now_s();
    for (long b = 0; b < books; b++)
        if (write_book(argv[1], rows, &opts) != 0)
            return 1;
    secs = now_s() - t0;
    if (stat(argv[1], &st) != 0) {
        fprintf(stderr, PROG ": %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    printf("{\"rows\":%ld,\"books\":%ld,\"seconds\":%.6f,\"bytes\":%lld,"
           "\"peak_rss_kib\":%ld}\n",
           rows, books, secs, (long long)st.st_size, peak_rss_kib());
    return 0;
}
