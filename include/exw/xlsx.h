/* xlsx.h: the workbook writer (the only user of libxlsxwriter).
 *
 * Rows are written in order in constant-memory mode, with the library's
 * temporary files in a folder of the caller's choosing. A sheet that fills up
 * continues in "<sheet> (2)", "<sheet> (3)", ... each with the header row. */
#ifndef EXW_XLSX_H
#define EXW_XLSX_H

#include <stddef.h>
#include <stdint.h>
#include "exw/err.h"
#include "exw/job.h" /* columns and cells: the writer follows the model */

struct exw_xlsx;

/* Longest number format libxlsxwriter keeps, in bytes (it cuts longer ones):
 * the job model's limit, which the writer follows. */
#define EXW_XLSX_FORMAT_MAX EXW_COLUMN_FORMAT_MAX

/* Creates the workbook file at @path and its first sheet @sheet with the header
 * row (bold, frozen; autofilter over the written rows) and the columns' widths
 * and number formats (the column's, else its type's default).
 * @tmpdir holds the library's temporary files (NULL: the system's). A NULL
 * @path makes the workbook in the process's memory instead, its temporary
 * files and its packed bytes alike, for a workbook small enough that no disk
 * is needed (exw_xlsx_close_memory hands the bytes over): the calls that make
 * its files (this one, exw_xlsx_write_row when it starts a sheet, the close)
 * must then come from one thread. @rows_per_sheet counts the header row; 0
 * (or more than 1,048,576) means Excel's 1,048,576, 1 means 2. @cols is
 * borrowed for the writer's life. The file itself is written by
 * exw_xlsx_close(); on error nothing is written and *@out is NULL. Errors:
 * EXW_EXLSX (no or too many columns, a width outside 0 to 255, a number format
 * over EXW_XLSX_FORMAT_MAX bytes, a bad sheet name, no temporary file),
 * EXW_ENOMEM. Thread: owner. */
EXW_MUST_CHECK exw_err exw_xlsx_open(const char *path, const char *tmpdir, const char *sheet,
                                     const struct exw_column *cols, size_t ncols,
                                     uint32_t rows_per_sheet, struct exw_xlsx **out,
                                     struct exw_errbuf *eb);

/* Writes the next data row (ncols cells), starting the next sheet when this
 * one is full. A text cell is always text, never a formula. On error @eb names
 * the data row (1-based, across sheets, header not counted) and the column
 * (1-based); the error is sticky: later rows and exw_xlsx_close() fail too.
 * Thread: owner. */
EXW_MUST_CHECK exw_err exw_xlsx_write_row(struct exw_xlsx *x, const struct exw_cell *cells,
                                          struct exw_errbuf *eb);

/* Finishes the file and frees @x, also on error (then the file is incomplete and
 * the caller removes it; after a failed exw_xlsx_write_row() it is not written
 * at all). NULL is a no-op returning EXW_OK. Errors: EXW_EXLSX naming the path,
 * libxlsxwriter's reason and the system's ("No space left on device"),
 * EXW_ENOMEM. Thread: owner. */
EXW_MUST_CHECK exw_err exw_xlsx_close(struct exw_xlsx *x, struct exw_errbuf *eb);

/* exw_xlsx_close() for a workbook made in memory (opened with no path): its
 * bytes in *@data (malloc'd, the caller frees) and *@len. On error, or for a
 * workbook on disk, *@data is NULL. Thread: owner. */
EXW_MUST_CHECK exw_err exw_xlsx_close_memory(struct exw_xlsx *x, char **data, size_t *len,
                                             struct exw_errbuf *eb);

/* Frees @x without writing the file: the rows written so far and the library's
 * temporary files are thrown away at once, with no packing (for an abandoned
 * job: cancelled, timed out, put back). Nothing is created at the workbook's
 * path. NULL is a no-op. Thread: owner. */
void exw_xlsx_discard(struct exw_xlsx *x);

/* The name of sheet number @n (1-based) of base name @base: @base itself for 1
 * (and 0), else "<base> (n)" with @base shortened (whole UTF-8 characters) so
 * the result has at most 31 characters (code points, as libxlsxwriter counts).
 * @out holds at least 128 bytes. Thread: any. */
void exw_xlsx_sheet_name(const char *base, unsigned n, char *out, size_t outsz);

#endif
