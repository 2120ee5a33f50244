/* job.h: the job document of PROTOCOL.md section 2 and the typing of its cells.
 *
 * exw_job_parse() validates everything that can be checked without the rows'
 * values; rows are checked as they are turned into cells, so an error names the
 * row and column. Rows are opaque struct exw_row pointers (JSON objects). */
#ifndef EXW_JOB_H
#define EXW_JOB_H

#include <stddef.h>
#include <stdint.h>
#include "exw/err.h"

#define EXW_ID_MAX 128
#define EXW_SHEET_NAME_MAX 31
#define EXW_EXCEL_MAX_ROWS 1048576L
#define EXW_EXCEL_MAX_COLUMNS 16384L
#define EXW_EXCEL_MAX_STRING 32767L

enum exw_col_type {
    EXW_COL_STRING,
    EXW_COL_NUMBER,
    EXW_COL_INTEGER,
    EXW_COL_BOOLEAN,
    EXW_COL_DATE,
    EXW_COL_DATETIME
};

enum exw_on_lookup_error { EXW_ON_LOOKUP_FAIL, EXW_ON_LOOKUP_BLANK };

struct exw_column {
    char *header;
    char *field;   /* row member for a field column, else NULL */
    char *pointer; /* JSON Pointer into the lookup response for a lookup column, else NULL */
    enum exw_col_type type;
    char *format;        /* Excel number format, or NULL for the type's default */
    double width;        /* characters, or 0 for Excel's default */
    size_t lookup_index; /* for a lookup column: its index among the lookup columns */
};

/* Per-field limits (PROTOCOL.md section 2 and Excel's own). */
struct exw_limits {
    size_t max_job_bytes;
    size_t max_rows;
    size_t max_columns;
    size_t max_header_chars;
    size_t max_string_chars;
    int max_depth;
};

/* Fills @l with the defaults: Excel's limits, depth 32, 64 MiB documents. */
void exw_limits_default(struct exw_limits *l);

struct exw_row; /* one row object */

struct exw_job {
    char *id;
    char *filename;
    char *sheet;
    char *service;    /* lookup service name as given, or NULL without lookup */
    char *lookup_key; /* row member holding the key, or NULL */
    struct exw_column *columns;
    size_t ncolumns;
    size_t nlookup_columns;
    enum exw_on_lookup_error on_lookup_error;
    long result_ttl_s;           /* -1 when the document does not say */
    char *rows_key;              /* Redis list of rows, or NULL for inline rows */
    const struct exw_row **rows; /* inline rows, borrowed from the parsed document */
    size_t nrows;
    struct cJSON *root;       /* the parsed document; owns the inline rows */
    struct exw_limits limits; /* the limits the job was parsed under */
};

/* What a failed parse means for the job. */
enum exw_job_verdict {
    EXW_JOB_OK,
    EXW_JOB_DEAD,     /* no usable id: the document goes to P:dead */
    EXW_JOB_INVALID,  /* error_code invalid_job */
    EXW_JOB_TOO_LARGE /* error_code too_large */
};

/* Parses and validates the document of @len bytes. On success returns EXW_OK and
 * *@out (caller frees with exw_job_free). On failure *@out is NULL, *@verdict says
 * how the job ends, *@id is the job's id when one could be read (caller frees,
 * else NULL; it is set on success too) and @eb names the field and what is wrong. @prefix is the
 * key prefix that rows_key must begin with. Thread: any. */
EXW_MUST_CHECK exw_err exw_job_parse(const char *doc, size_t len, const struct exw_limits *lim,
                                     const char *prefix, struct exw_job **out,
                                     enum exw_job_verdict *verdict, char **id,
                                     struct exw_errbuf *eb);

/* The rows_key of a document that failed to parse, when it has a usable one
 * (a string naming a key under @prefix), so that the list can still be deleted
 * as the job ends; else NULL. Caller frees. Thread: any. */
char *exw_job_rows_key_of(const char *doc, size_t len, const struct exw_limits *lim,
                          const char *prefix);

/* Frees the job and its document; NULL is a no-op. Thread: owner. */
void exw_job_free(struct exw_job *job);

/* Whether @id is a usable job id: 1 to 128 of A-Z a-z 0-9 . _ : - . Thread: any. */
int exw_job_id_valid(const char *id, size_t len);

/* Whether @name is a valid Excel sheet name; if not, @eb says why. Thread: any. */
int exw_job_sheet_name_valid(const char *name, struct exw_errbuf *eb);

/* Parses one element of a rows_key list; *@out is freed with exw_row_free.
 * @index is the row's position, for the error text. Thread: any. */
EXW_MUST_CHECK exw_err exw_row_parse(const struct exw_job *job, const char *text, size_t len,
                                     size_t index, struct exw_row **out, struct exw_errbuf *eb);
void exw_row_free(struct exw_row *row);

/* ---- Cells ---- */

enum exw_cell_kind {
    EXW_CELL_EMPTY,
    EXW_CELL_STRING,
    EXW_CELL_NUMBER,
    EXW_CELL_BOOLEAN,
    EXW_CELL_DATETIME
};

struct exw_datetime {
    int year, month, day, hour, min;
    double sec; /* 0 to 59.999, milliseconds kept */
};

struct exw_cell {
    enum exw_cell_kind kind;
    double num;             /* NUMBER; BOOLEAN as 0 or 1 */
    struct exw_datetime dt; /* DATETIME (dates have 0:00:00) */
    const char *str;        /* STRING: NUL-terminated text, borrowed or == owned */
    char *owned;            /* heap copy freed by exw_cells_cleanup, or NULL */
    char numbuf[32];        /* holds a formatted number when str points here */
};

/* The lookup key of @row: *@key is borrowed from @row or formatted into @scratch;
 * NULL when the row has no key (null or absent: its lookup cells stay empty).
 * A key of another type is EXW_EJSON naming the row. Thread: any. */
EXW_MUST_CHECK exw_err exw_job_row_key(const struct exw_job *job, const struct exw_row *row,
                                       size_t index, char scratch[32], const char **key,
                                       struct exw_errbuf *eb);

/* Types every cell of @row (the @index-th row) into @cells (job->ncolumns).
 * @lookup holds the row's lookup cells (job->nlookup_columns) or NULL for empty
 * ones. Strings are borrowed from @row and @lookup: keep both alive while
 * @cells is used. A value the column's type does not take is EXW_EJSON naming
 * the row and column. Thread: any. */
EXW_MUST_CHECK exw_err exw_job_row_cells(const struct exw_job *job, const struct exw_row *row,
                                         size_t index, const struct exw_cell *lookup,
                                         struct exw_cell *cells, struct exw_errbuf *eb);

/* Turns a lookup response body into the lookup cells of one key (@out has
 * job->nlookup_columns, each owning its text: free with exw_cells_cleanup).
 * A body that is not JSON, or a value of the wrong type, is EXW_EJSON with the
 * cause; a pointer to nothing or null gives an empty cell. Thread: any. */
EXW_MUST_CHECK exw_err exw_job_lookup_cells(const struct exw_job *job, const char *body, size_t len,
                                            struct exw_cell *out, struct exw_errbuf *eb);

/* Frees the text owned by @n cells and empties them. Thread: owner. */
void exw_cells_cleanup(struct exw_cell *cells, size_t n);

/* Parses "YYYY-MM-DD" (@with_time 0) or "YYYY-MM-DDTHH:MM:SS[.f{1,9}][Z|+HH:MM|-HH:MM]"
 * (@with_time 1) into UTC, milliseconds kept. Fails outside Excel's years 1900 to
 * 9999. Thread: any. */
EXW_MUST_CHECK exw_err exw_parse_datetime(const char *s, int with_time, struct exw_datetime *out,
                                          struct exw_errbuf *eb);

/* The P:dead entry for a document: {"job": <the document as text, ill-formed
 * UTF-8 replaced by U+FFFD>, "error": @error, "failed_at": @failed_at_ms}.
 * Caller frees. Thread: any. */
char *exw_job_dead_entry(const char *doc, size_t len, const char *error, long long failed_at_ms);

/* The type's name ("number") and the default number format (NULL for none). */
const char *exw_col_type_name(enum exw_col_type t);
const char *exw_col_type_default_format(enum exw_col_type t);

#endif
