/* job.h: the job document of PROTOCOL.md section 2: its fields, columns,
 * lookup and rows.
 *
 * exw_job_parse() checks the whole document (exw_json_check: grammar, UTF-8,
 * nesting, number forms), then reads the members it knows in place; no tree
 * of the document is built, and members it does not know, like the rows, are
 * only skipped. Rows (row.h) are handed out one at a time by
 * exw_job_next_row(), each read from its own span of the document, or parsed
 * by exw_row_parse() from a rows_key list; cells.h types their values.
 *
 * Cost, whatever the document's shape:
 * - time: a few linear passes over the document (UTF-8, grammar, members,
 *   counting rows), then one more over each row as it is handed out;
 * - memory: the document itself, which the caller keeps, plus the job: its
 *   columns and a table of their field names, at most the document's bytes
 *   again (known strings are copied once) and some 100 bytes per column;
 * - a row: a copy of its text for a rows_key row, its referenced string values
 *   decoded (at most its bytes), and 56 bytes per member that a column names
 *   (each such member takes at least 6 bytes of text): at most 11 times the
 *   row's bytes, and never more than 4 x 56 bytes per distinct field name
 *   plus twice its bytes. Members no column names cost nothing.
 * tests/unit/test_job.c measured, for 20 MB documents of the worst shapes,
 * peak RSS of 0.03 MB per MB of document on top of the document itself (1.03
 * for a rows_key element, which is copied). */
#ifndef EXW_JOB_H
#define EXW_JOB_H

#include <stddef.h>
#include <stdint.h>
#include "exw/cells.h" /* cell typing, once declared here */
#include "exw/err.h"
#include "exw/json_text.h"
#include "exw/row.h" /* the rows: cursor, rows_key rows, their members */

#define EXW_ID_MAX 128
#define EXW_SHEET_NAME_MAX 31
#define EXW_EXCEL_MAX_ROWS 1048576L
#define EXW_EXCEL_MAX_COLUMNS 16384L
#define EXW_EXCEL_MAX_STRING 32767L
/* Longest number format of a column in bytes: what libxlsxwriter keeps (it
 * cuts longer ones). */
#define EXW_COLUMN_FORMAT_MAX 127
/* Longest rows_key in bytes. */
#define EXW_ROWS_KEY_MAX 1024

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
    size_t field_index;  /* for a field column: its field among the job's distinct fields */
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

/* Fills @l with the limits a worker of configuration @c applies (its
 * EXPORT_MAX_* settings). Thread: any. */
struct exw_config;
void exw_limits_of_config(struct exw_limits *l, const struct exw_config *c);

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
    long result_ttl_s;        /* -1 when the document does not say */
    char *rows_key;           /* Redis list of rows, or NULL for inline rows */
    size_t nrows;             /* inline rows (0 with rows_key) */
    struct exw_limits limits; /* the limits the job was parsed under */
    /* The rest is the parser's own. */
    struct exw_job_fields *fields;
    size_t key_field;             /* the lookup key's field, when there is a lookup */
    struct exw_json_iter rows_at; /* the cursor over the inline rows */
};

/* What a failed parse means for the job. */
enum exw_job_verdict {
    EXW_JOB_OK,
    EXW_JOB_DEAD,     /* no usable id: the document goes to P:dead */
    EXW_JOB_INVALID,  /* error_code invalid_job */
    EXW_JOB_TOO_LARGE /* error_code too_large */
};

/* Parses and validates the document of @len bytes, which it borrows: the
 * caller keeps @doc alive and unchanged until exw_job_free(), since inline
 * rows are read from it. On success returns EXW_OK and *@out (caller frees
 * with exw_job_free). On failure *@out is NULL, *@verdict says how the job
 * ends, *@id is the job's id when one could be read (caller frees, else NULL;
 * it is set on success too) and @eb names the field and what is wrong. A
 * document over lim->max_job_bytes is EXW_ELIMIT and TOO_LARGE; one that is
 * not JSON or has no usable id EXW_EJSON and DEAD; one that is JSON but over
 * the worker's own rules (nesting, \u0000, numbers beyond a double, invalid
 * UTF-8) or breaks the schema EXW_EJSON and INVALID. @prefix is the key
 * prefix that rows_key must begin with. The cost is in the comment atop this
 * header: no tree of the document is built. Thread: any. */
EXW_MUST_CHECK exw_err exw_job_parse(const char *doc, size_t len, const struct exw_limits *lim,
                                     const char *prefix, struct exw_job **out,
                                     enum exw_job_verdict *verdict, char **id,
                                     struct exw_errbuf *eb);

/* The id of a document without parsing it: a linear scan, allocation-free
 * but for the result, for the first top-level member "id" (escapes decoded
 * as a JSON parser would), so that a document too large, too deep or not
 * valid UTF-8 can still fail under its id. NULL when that member is missing
 * or is not a usable id (exw_job_id_valid). When exw_job_parse() finds an id,
 * it is this same one: both take the first "id" member. Caller frees.
 * Thread: any. */
char *exw_job_scan_id(const char *doc, size_t len);

/* What the document is, from checks that allocate nothing but the id (its
 * size, UTF-8, grammar, that it is an object, its id): EXW_JOB_OK with *@id
 * set; EXW_JOB_DEAD with *@id NULL when it has no usable id (the document
 * goes to P:dead); EXW_JOB_INVALID or EXW_JOB_TOO_LARGE with *@id set when it
 * fails already. @eb says why whenever the verdict is not EXW_JOB_OK. This is
 * the first step of exw_job_parse(), for a caller that must record the job's
 * start before it spends more on the document. Caller frees *@id.
 * Thread: any. */
enum exw_job_verdict exw_job_identify(const char *doc, size_t len, const struct exw_limits *lim,
                                      char **id, struct exw_errbuf *eb);

/* The second step of exw_job_parse(), for a document that exw_job_identify()
 * found EXW_JOB_OK under @id with the same @lim (not checked again): the
 * fields, columns, lookup and rows. On failure *@out is NULL, the job is
 * invalid_job (EXW_EJSON) and @eb says why. Thread: any. */
EXW_MUST_CHECK exw_err exw_job_parse_identified(const char *doc, size_t len,
                                                const struct exw_limits *lim, const char *prefix,
                                                const char *id, struct exw_job **out,
                                                struct exw_errbuf *eb);

/* The rows_key of a document that failed to parse, when it has a usable one
 * (a string naming a key under @prefix, as exw_job_parse() requires), so that
 * the list can still be deleted as the job ends; else NULL. Reads the
 * document in place. Caller frees. Thread: any. */
char *exw_job_rows_key_of(const char *doc, size_t len, const struct exw_limits *lim,
                          const char *prefix);

/* Frees the job; NULL is a no-op. The document it borrowed is the caller's.
 * Thread: owner. */
void exw_job_free(struct exw_job *job);

/* Whether @id is a usable job id: 1 to 128 of A-Z a-z 0-9 . _ : - . Thread: any. */
int exw_job_id_valid(const char *id, size_t len);

/* Whether @name is a valid Excel sheet name; if not, @eb says why. Thread: any. */
int exw_job_sheet_name_valid(const char *name, struct exw_errbuf *eb);

/* The type's name ("number") and the default number format (NULL for none). */
const char *exw_col_type_name(enum exw_col_type t);
const char *exw_col_type_default_format(enum exw_col_type t);

#endif
