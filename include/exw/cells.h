/* cells.h: typing a row's values and a lookup response's values into the cells
 * of the workbook, as the job's columns say (PROTOCOL.md section 2, "Values").
 *
 * Values are read in place from the row's or the response's text; an error
 * names the row (or the pointer) and the column, and quotes the value
 * shortened. */
#ifndef EXW_CELLS_H
#define EXW_CELLS_H

#include <stddef.h>
#include "exw/dates.h"
#include "exw/err.h"

struct exw_job;
struct exw_row;

enum exw_cell_kind {
    EXW_CELL_EMPTY,
    EXW_CELL_STRING,
    EXW_CELL_NUMBER,
    EXW_CELL_BOOLEAN,
    EXW_CELL_DATETIME
};

struct exw_cell {
    enum exw_cell_kind kind;
    double num;             /* NUMBER; BOOLEAN as 0 or 1 */
    struct exw_datetime dt; /* DATETIME (dates have 0:00:00) */
    const char *str;        /* STRING: NUL-terminated text, borrowed or == owned */
    char *owned;            /* heap copy freed by exw_cells_cleanup, or NULL */
    char numbuf[32];        /* holds a formatted number when str points here */
};

/* The lookup key of @row (the @index-th row, for the error text): *@key is
 * borrowed from @row or formatted into @scratch; NULL when the job has no
 * lookup or the row has no key (null, absent or "": its lookup cells stay
 * empty). A key of another type, or a text key of more than the job's
 * max_string_chars characters (EXPORT_MAX_STRING_CHARS; no service takes such
 * a URL), is EXW_EJSON naming the row. Thread: any. */
EXW_MUST_CHECK exw_err exw_job_row_key(const struct exw_job *job, const struct exw_row *row,
                                       size_t index, char scratch[32], const char **key,
                                       struct exw_errbuf *eb);

/* Types every cell of @row (the @index-th row) into @cells (job->ncolumns).
 * @lookup holds the row's lookup cells (job->nlookup_columns) or NULL for empty
 * ones. Strings are borrowed from @row and @lookup: keep both alive while
 * @cells is used; the cells own nothing. A value the column's type does not
 * take is EXW_EJSON naming the row and column, and text over the job's
 * max_string_chars is EXW_ELIMIT; both are invalid_job. An integer column
 * takes a number whose digits make a whole number within +-2^53
 * (exw_json_number_whole: 1.0 and 1e3 yes, 1.5 and 9007199254740993 no).
 * Thread: any. */
EXW_MUST_CHECK exw_err exw_job_row_cells(const struct exw_job *job, const struct exw_row *row,
                                         size_t index, const struct exw_cell *lookup,
                                         struct exw_cell *cells, struct exw_errbuf *eb);

/* How deep a lookup response may nest. */
#define EXW_LOOKUP_MAX_DEPTH 512

/* Turns a lookup response body into the lookup cells of one key (@out has
 * job->nlookup_columns, each owning its text: free with exw_cells_cleanup).
 * The body is checked (nesting up to EXW_LOOKUP_MAX_DEPTH levels) and read in place: no tree is
 * built, and each lookup column costs one walk over the values before the
 * one it names. A body that is not JSON, or a value of the wrong type, is
 * EXW_EJSON with the cause; a pointer to nothing or null gives an empty cell.
 * Thread: any. */
EXW_MUST_CHECK exw_err exw_job_lookup_cells(const struct exw_job *job, const char *body, size_t len,
                                            struct exw_cell *out, struct exw_errbuf *eb);

/* Frees the text owned by @n cells and empties them. Thread: owner. */
void exw_cells_cleanup(struct exw_cell *cells, size_t n);

#endif
