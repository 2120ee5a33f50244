/* cells.c: typing values into the cells of the workbook (PROTOCOL.md
 * section 2, "Values"), from rows and from lookup responses.
 *
 * Values are read in place (json_text.h): a row's from the members job.c kept
 * for it, a lookup response's by resolving each lookup column's pointer in the
 * body's text. Numbers are judged by their digits, so an integer column never
 * takes a number that a double would have rounded into range. */
#include "exw/cells.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exw/job.h"
#include "exw/json.h"

/* Nesting allowed in a lookup response. */

static void cell_empty(struct exw_cell *c)
{
    memset(c, 0, sizeof(*c) - sizeof(c->numbuf));
    c->kind = EXW_CELL_EMPTY;
    c->numbuf[0] = '\0';
}

void exw_cells_cleanup(struct exw_cell *cells, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(cells[i].owned);
        cell_empty(&cells[i]);
    }
}

/* The text of the string value @v: its decoded ->str when it has one, else
 * decoded into *@tmp (the caller frees it). */
static const char *string_of(const struct exw_json_value *v, char **tmp, size_t *len)
{
    if (v->str != NULL) {
        *len = v->str_len;
        return v->str;
    }
    *tmp = exw_json_string_dup(v, len);
    return *tmp;
}

/* Types @v (NULL or NONE when absent) for a column of type @t. On failure
 * @why says what was wrong. With @copy the cell owns its text. */
static exw_err type_value(const struct exw_json_value *v, enum exw_col_type t, size_t max_chars,
                          int copy, struct exw_cell *c, char *why, size_t whysz)
{
    struct exw_errbuf eb;
    char seen[96], *tmp = NULL;
    const char *s;
    size_t len, chars;
    exw_err rc = EXW_EJSON;

    cell_empty(c);
    if (v == NULL || v->kind == EXW_JSON_NONE || v->kind == EXW_JSON_NULL)
        return EXW_OK;
    switch (t) {
    case EXW_COL_STRING:
        if (v->kind == EXW_JSON_STRING) {
            s = string_of(v, &tmp, &len);
            chars = len > max_chars ? exw_utf8_len(s, len) : 0;
            if (chars > max_chars) {
                snprintf(why, whysz, "text of %zu characters is over the limit of %zu", chars,
                         max_chars);
                free(tmp);
                return EXW_ELIMIT;
            }
            c->str = s;
        } else if (v->kind == EXW_JSON_NUMBER) {
            double d;

            if (exw_json_number(v, &d) != EXW_OK)
                break; /* a checked text has none beyond a double */
            exw_json_format_number(d, c->numbuf);
            c->str = c->numbuf;
        } else if (v->kind == EXW_JSON_TRUE || v->kind == EXW_JSON_FALSE) {
            c->str = v->kind == EXW_JSON_TRUE ? "true" : "false";
        } else {
            break;
        }
        c->kind = EXW_CELL_STRING;
        if (tmp != NULL) {
            c->owned = tmp; /* already a copy */
        } else if (copy) {
            c->owned = exw_xstrdup(c->str);
            c->str = c->owned;
        }
        return EXW_OK;
    case EXW_COL_NUMBER:
        if (v->kind != EXW_JSON_NUMBER || exw_json_number(v, &c->num) != EXW_OK)
            break;
        c->kind = EXW_CELL_NUMBER;
        return EXW_OK;
    case EXW_COL_INTEGER:
        if (v->kind != EXW_JSON_NUMBER)
            break;
        if (!exw_json_number_whole(v, &c->num)) {
            exw_json_describe(v, seen, sizeof(seen));
            snprintf(why, whysz, "expected a whole number within +-2^53, got %s", seen);
            return EXW_EJSON;
        }
        c->kind = EXW_CELL_NUMBER;
        return EXW_OK;
    case EXW_COL_BOOLEAN:
        if (v->kind != EXW_JSON_TRUE && v->kind != EXW_JSON_FALSE)
            break;
        c->kind = EXW_CELL_BOOLEAN;
        c->num = v->kind == EXW_JSON_TRUE;
        return EXW_OK;
    case EXW_COL_DATE:
    case EXW_COL_DATETIME:
        if (v->kind != EXW_JSON_STRING)
            break;
        s = string_of(v, &tmp, &len);
        rc = exw_parse_datetime(s, t == EXW_COL_DATETIME, &c->dt, &eb);
        free(tmp);
        if (rc != EXW_OK) {
            exw_json_describe(v, seen, sizeof(seen));
            snprintf(why, whysz, "%.96s: %.90s", seen, eb.msg);
            return EXW_EJSON;
        }
        c->kind = EXW_CELL_DATETIME;
        return EXW_OK;
    }
    free(tmp);
    cell_empty(c);
    exw_json_describe(v, seen, sizeof(seen));
    snprintf(why, whysz, "expected %s, got %s",
             t == EXW_COL_STRING    ? "text, a number or a boolean"
             : t == EXW_COL_NUMBER  ? "a number"
             : t == EXW_COL_INTEGER ? "a whole number"
             : t == EXW_COL_BOOLEAN ? "true or false"
             : t == EXW_COL_DATE    ? "a date string YYYY-MM-DD"
                                    : "a datetime string YYYY-MM-DDTHH:MM:SS",
             seen);
    return EXW_EJSON;
}

/* How many bytes of @s to quote: at most 40, whole UTF-8 characters. */
static int quoted(const char *s) { return (int)exw_utf8_cut(s, strlen(s), 40); }

exw_err exw_job_row_key(const struct exw_job *job, const struct exw_row *row, size_t index,
                        char scratch[32], const char **key, struct exw_errbuf *eb)
{
    const struct exw_json_value *v;
    char seen[96];
    size_t chars;
    double d;

    *key = NULL;
    if (job->lookup_key == NULL)
        return EXW_OK;
    v = exw_row_key_value(job, row);
    if (v == NULL || v->kind == EXW_JSON_NULL)
        return EXW_OK;
    if (v->kind == EXW_JSON_STRING) {
        /* A key no cell could hold is no key a service takes either (it would
         * only come back as HTTP 414). */
        chars = v->str_len > job->limits.max_string_chars ? exw_utf8_len(v->str, v->str_len) : 0;
        if (chars > job->limits.max_string_chars)
            return exw_errbuf_set(eb, EXW_EJSON,
                                  "rows[%zu].%s: the lookup key has %zu characters, over the "
                                  "limit of %zu",
                                  index, job->lookup_key, chars, job->limits.max_string_chars);
        *key = v->str[0] ? v->str : NULL;
        return EXW_OK;
    }
    if (v->kind == EXW_JSON_NUMBER && exw_json_number(v, &d) == EXW_OK) {
        exw_json_format_number(d, scratch);
        *key = scratch;
        return EXW_OK;
    }
    exw_json_describe(v, seen, sizeof(seen));
    return exw_errbuf_set(eb, EXW_EJSON,
                          "rows[%zu].%s: the lookup key must be text or a number, got %s", index,
                          job->lookup_key, seen);
}

exw_err exw_job_row_cells(const struct exw_job *job, const struct exw_row *row, size_t index,
                          const struct exw_cell *lookup, struct exw_cell *cells,
                          struct exw_errbuf *eb)
{
    size_t i;

    for (i = 0; i < job->ncolumns; i++) {
        const struct exw_column *col = &job->columns[i];
        char why[192];
        exw_err rc;

        if (col->pointer != NULL) {
            cell_empty(&cells[i]);
            if (lookup != NULL) {
                /* Borrow the lookup's text: the row's cells own nothing. */
                cells[i] = lookup[col->lookup_index];
                cells[i].owned = NULL;
            }
            continue;
        }
        rc = type_value(exw_row_field(job, row, i), col->type, job->limits.max_string_chars, 0,
                        &cells[i], why, sizeof(why));
        if (rc != EXW_OK)
            return exw_errbuf_set(eb, rc, "rows[%zu].%s (column \"%.*s\", %s): %s", index,
                                  col->field, quoted(col->header), col->header,
                                  exw_col_type_name(col->type), why);
    }
    return EXW_OK;
}

exw_err exw_job_lookup_cells(const struct exw_job *job, const char *body, size_t len,
                             struct exw_cell *out, struct exw_errbuf *eb)
{
    struct exw_json_value root, v;
    struct exw_errbuf why_json;
    exw_err rc;
    size_t i;

    for (i = 0; i < job->nlookup_columns; i++)
        cell_empty(&out[i]);
    rc = exw_json_check(body, len, EXW_LOOKUP_MAX_DEPTH, &why_json);
    if (rc != EXW_OK)
        return exw_errbuf_set(eb, EXW_EJSON, "response is not JSON (%s)", why_json.msg);
    exw_json_root(body, len, &root);
    for (i = 0; i < job->ncolumns; i++) {
        const struct exw_column *col = &job->columns[i];
        char why[192];

        if (col->pointer == NULL)
            continue;
        if (exw_json_pointer_text(&root, col->pointer, &v) != EXW_OK)
            v.kind = EXW_JSON_NONE; /* the pointer was checked when the job was parsed */
        rc = type_value(&v, col->type, job->limits.max_string_chars, 1, &out[col->lookup_index],
                        why, sizeof(why));
        if (rc != EXW_OK) {
            rc =
                exw_errbuf_set(eb, EXW_EJSON, "%s (column \"%.*s\", %s): %s", col->pointer,
                               quoted(col->header), col->header, exw_col_type_name(col->type), why);
            exw_cells_cleanup(out, job->nlookup_columns);
            return rc;
        }
    }
    return EXW_OK;
}
