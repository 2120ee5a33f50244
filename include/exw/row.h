/* row.h: the rows of a job: the cursor over a document's inline rows, the
 * elements of a rows_key list, and the members of a row that columns name.
 *
 * A row is read in place from its text (the document's span of it, or its
 * own copy for a rows_key element): one walk over its members keeps those
 * whose names the job's columns or lookup key use, matched through a hash
 * table of the distinct names, and decodes their strings. A row costs its
 * text (rows_key rows only), its kept strings decoded (at most its bytes) and
 * 56 bytes per kept member; members no column names cost nothing, and a name
 * repeated in a row is kept once (the first): a row never holds more than 8
 * plus 4 times as many members as the job has field names. */
#ifndef EXW_ROW_H
#define EXW_ROW_H

#include <stddef.h>
#include "exw/err.h"
#include "exw/json_text.h"

struct exw_arena;
struct exw_job;
struct exw_row;        /* one row object, read in place */
struct exw_job_fields; /* the distinct field names of a job's columns */

/* Not a field: job->key_field of a job without lookup. */
#define EXW_NO_FIELD ((size_t)-1)

/* The next inline row, in order, read from the document (which the caller
 * keeps alive and unchanged for the job's life: exw_job_parse borrows @doc).
 * *@out (free with exw_row_free) is NULL after the last row, and for a job
 * with rows_key. Rows were checked by exw_job_parse(), so this cannot fail
 * today; @eb is for the day it can. Costs one pass over the row's text.
 * Thread: owner. */
EXW_MUST_CHECK exw_err exw_job_next_row(struct exw_job *job, struct exw_row **out,
                                        struct exw_errbuf *eb);

/* Parses one element of a rows_key list (@len bytes at @text, copied: the
 * caller may free it at once); *@out is freed with exw_row_free. @index is
 * the row's position, for the error text. The element is checked as a
 * document is (nesting counted from the row) and must be an object; anything
 * else is EXW_EJSON naming the row. Thread: any. */
EXW_MUST_CHECK exw_err exw_row_parse(const struct exw_job *job, const char *text, size_t len,
                                     size_t index, struct exw_row **out, struct exw_errbuf *eb);

/* Parses like exw_row_parse(), into *@row for rows that are used at once
 * and dropped together (a batch whose cells are typed as it is read): *@row
 * is NULL the first time, then the same row is reused (its members array is
 * kept; free it with exw_row_free). The row reads @text in place, so it is
 * good only while @text lives, and its decoded strings go to @strings, where
 * they stay until the arena is reset. Thread: owner of *@row and @strings. */
EXW_MUST_CHECK exw_err exw_row_parse_in(const struct exw_job *job, const char *text, size_t len,
                                        size_t index, struct exw_arena *strings,
                                        struct exw_row **row, struct exw_errbuf *eb);

/* The bytes @row holds on the heap (its text, members and strings); 0 for
 * NULL. Thread: any. */
size_t exw_row_bytes(const struct exw_row *row);

/* Frees a row; NULL is a no-op. Thread: owner. */
void exw_row_free(struct exw_row *row);

/* The value of @row's member named by field column @col (job->columns[col],
 * which must have a field), or NULL when the row has none; the first of
 * members with equal names counts. A string value is decoded (->str).
 * Borrowed from @row. Thread: any. */
const struct exw_json_value *exw_row_field(const struct exw_job *job, const struct exw_row *row,
                                           size_t col);

/* The value of @row's lookup key member, or NULL (no such member, or a job
 * without lookup). Thread: any. */
const struct exw_json_value *exw_row_key_value(const struct exw_job *job,
                                               const struct exw_row *row);

/* Indexes the distinct field names of @job's columns and lookup key: sets
 * each field column's field_index, job->key_field and job->fields. For
 * exw_job_parse(), once the columns and the lookup are read. Thread: owner. */
void exw_job_index_fields(struct exw_job *job);

/* Frees an index of field names; NULL is a no-op. Thread: owner. */
void exw_job_fields_free(struct exw_job_fields *fields);

#endif
