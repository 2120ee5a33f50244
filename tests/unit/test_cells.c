/* test_cells.c: typing row values and lookup response values into cells
 * (PROTOCOL.md section 2, "Values"): every column type, integers by their
 * digits, lookup keys and their limit, lookup responses read in place, and
 * error texts. Rows and bodies are copies of exactly their length, without a
 * NUL, so that the sanitizers catch any read past the end. */
#include "jobtest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exw/arena.h"
#include "exw/buf.h"
#include "exw/cells.h"
#include "exw/job.h"
#include "exw/json.h"

/* ---- Row cells ---- */

static const char typed_doc[] =
    "{\"id\": \"typed\", \"lookup\": {\"service\": \"s\", \"key\": \"k\"}, \"columns\": ["
    "{\"header\": \"Text (S)\", \"field\": \"s\"},"
    "{\"header\": \"Amount\", \"field\": \"n\", \"type\": \"number\"},"
    "{\"header\": \"Count\", \"field\": \"i\", \"type\": \"integer\"},"
    "{\"header\": \"Flag\", \"field\": \"b\", \"type\": \"boolean\"},"
    "{\"header\": \"Day\", \"field\": \"d\", \"type\": \"date\"},"
    "{\"header\": \"When\", \"field\": \"t\", \"type\": \"datetime\"},"
    "{\"header\": \"Looked up\", \"lookup\": \"/x\"},"
    "{\"header\": \"Looked up 2\", \"lookup\": \"/y\", \"type\": \"number\"}"
    "], \"rows\": []}";

enum { COL_S, COL_N, COL_I, COL_B, COL_D, COL_T, COL_L1, COL_L2, NCOLS };

/* Row @index of @job from @len bytes at @text, parsed from an exact copy; it
 * must parse. Free with exw_row_free. */
static struct exw_row *parse_row(const struct exw_job *job, const char *text, size_t len,
                                 size_t index)
{
    char *copy = exact_copy(text, len);
    struct exw_errbuf eb = {{0}};
    struct exw_row *row;

    assert_int_equal(exw_row_parse(job, copy, len, index, &row, &eb), EXW_OK);
    free(copy);
    return row;
}

/* The cells of the row @row_json of @job, as row @index; the row is returned in
 * *@row (it owns the strings the cells borrow). */
static exw_err row_cells(const struct exw_job *job, const char *row_json, size_t index,
                         const struct exw_cell *lookup, struct exw_row **row,
                         struct exw_cell *cells, struct exw_errbuf *eb)
{
    *row = parse_row(job, row_json, strlen(row_json), index);
    memset(eb, 0, sizeof(*eb));
    return exw_job_row_cells(job, *row, index, lookup, cells, eb);
}

/* The cells of @row_json as row 0, with the lookup cells @lookup (or none);
 * they must type. Free the row returned with exw_row_free. */
static struct exw_row *row_cells_ok(const struct exw_job *job, const char *row_json,
                                    const struct exw_cell *lookup, struct exw_cell *cells)
{
    struct exw_errbuf eb;
    struct exw_row *row;
    exw_err rc = row_cells(job, row_json, 0, lookup, &row, cells, &eb);

    if (rc != EXW_OK)
        print_error("row %s: %s\n", row_json, eb.msg);
    assert_int_equal(rc, EXW_OK);
    return row;
}

/* One value of one column: @row_json must type into @kind; for text, @str. */
static void expect_cell(const struct exw_job *job, const char *row_json, int col,
                        enum exw_cell_kind kind, const char *str, double num)
{
    struct exw_cell cells[NCOLS];
    struct exw_row *row = row_cells_ok(job, row_json, NULL, cells);

    assert_int_equal(cells[col].kind, kind);
    if (kind == EXW_CELL_STRING) {
        assert_non_null(cells[col].str);
        assert_string_equal(cells[col].str, str);
    } else if (kind == EXW_CELL_NUMBER || kind == EXW_CELL_BOOLEAN) {
        assert_true(cells[col].num == num);
    }
    exw_cells_cleanup(cells, job->ncolumns);
    exw_row_free(row);
}

/* @row_json must be refused as row @index, the error text holding each of
 * the NULL-terminated strings that follow. */
static void expect_cell_error(const struct exw_job *job, const char *row_json, size_t index,
                              exw_err want_rc, ...)
{
    struct exw_cell cells[NCOLS];
    struct exw_errbuf eb;
    struct exw_row *row;
    exw_err rc = row_cells(job, row_json, index, NULL, &row, cells, &eb);
    const char *want;
    va_list ap;

    if (rc == EXW_OK)
        print_error("row %s was accepted\n", row_json);
    assert_int_equal(rc, want_rc);
    va_start(ap, want_rc);
    while ((want = va_arg(ap, const char *)) != NULL)
        assert_contains(eb.msg, want);
    va_end(ap);
    exw_row_free(row);
}

static void test_cells_string(void **state)
{
    struct exw_job *job = parse_ok(typed_doc);

    (void)state;
    expect_cell(job, "{\"s\": \"abc\"}", COL_S, EXW_CELL_STRING, "abc", 0);
    expect_cell(job, "{\"s\": \"\"}", COL_S, EXW_CELL_STRING, "", 0);
    expect_cell(job, "{\"s\": \"=SUM(A1:A2)\"}", COL_S, EXW_CELL_STRING, "=SUM(A1:A2)", 0);
    expect_cell(job, "{\"s\": \"caf\\u00e9 \\ud83d\\ude00\"}", COL_S, EXW_CELL_STRING,
                "caf\xc3\xa9 \xf0\x9f\x98\x80", 0);
    expect_cell(job, "{\"s\": 1.50}", COL_S, EXW_CELL_STRING, "1.5", 0);
    expect_cell(job, "{\"s\": 1e5}", COL_S, EXW_CELL_STRING, "100000", 0);
    expect_cell(job, "{\"s\": 12345678901234567890}", COL_S, EXW_CELL_STRING,
                "12345678901234567000", 0);
    expect_cell(job, "{\"s\": -0.000001}", COL_S, EXW_CELL_STRING, "-0.000001", 0);
    expect_cell(job, "{\"s\": 1e21}", COL_S, EXW_CELL_STRING, "1e+21", 0);
    expect_cell(job, "{\"s\": 0}", COL_S, EXW_CELL_STRING, "0", 0);
    expect_cell(job, "{\"s\": true}", COL_S, EXW_CELL_STRING, "true", 0);
    expect_cell(job, "{\"s\": false}", COL_S, EXW_CELL_STRING, "false", 0);
    expect_cell(job, "{\"s\": null}", COL_S, EXW_CELL_EMPTY, NULL, 0);
    expect_cell(job, "{}", COL_S, EXW_CELL_EMPTY, NULL, 0);
    /* Member names match exactly. */
    expect_cell(job, "{\"S\": \"x\"}", COL_S, EXW_CELL_EMPTY, NULL, 0);
    expect_cell_error(job, "{\"s\": [1]}", 7, EXW_EJSON, "rows[7].s", "\"Text (S)\"", "string",
                      "array", NULL);
    expect_cell_error(job, "{\"s\": {\"a\": 1}}", 0, EXW_EJSON, "rows[0].s", "object", NULL);
    drop(job);
}

static void test_cells_string_limit(void **state)
{
    static const char doc[] = "{\"id\": \"lim\", \"columns\": [{\"header\": \"Name\", \"field\": "
                              "\"s\"}], \"rows\": []}";
    struct exw_limits lim;
    struct exw_errbuf eb;
    struct exw_job *job;

    (void)state;
    exw_limits_default(&lim);
    lim.max_string_chars = 5;
    job = parse_lim(doc, &lim);
    expect_cell(job, "{\"s\": \"abcde\"}", 0, EXW_CELL_STRING, "abcde", 0);
    /* Characters, not bytes. */
    expect_cell(job, "{\"s\": \"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}", 0, EXW_CELL_STRING,
                "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 0);
    {
        struct exw_cell cells[1];
        struct exw_row *row;
        exw_err rc = row_cells(job, "{\"s\": \"abcdef\"}", 4, NULL, &row, cells, &eb);

        assert_int_not_equal(rc, EXW_OK);
        assert_contains(eb.msg, "rows[4].s");
        assert_contains(eb.msg, "\"Name\"");
        assert_contains(eb.msg, "6 characters");
        assert_contains(eb.msg, "limit of 5");
        exw_row_free(row);
        rc = row_cells(job, "{\"s\": \"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}", 4,
                       NULL, &row, cells, &eb);
        assert_int_not_equal(rc, EXW_OK);
        assert_contains(eb.msg, "6 characters");
        exw_row_free(row);
    }
    drop(job);
}

static void test_cells_number(void **state)
{
    struct exw_job *job = parse_ok(typed_doc);

    (void)state;
    expect_cell(job, "{\"n\": 1200.5}", COL_N, EXW_CELL_NUMBER, NULL, 1200.5);
    expect_cell(job, "{\"n\": -3}", COL_N, EXW_CELL_NUMBER, NULL, -3);
    expect_cell(job, "{\"n\": 1e300}", COL_N, EXW_CELL_NUMBER, NULL, 1e300);
    expect_cell(job, "{\"n\": 0.1}", COL_N, EXW_CELL_NUMBER, NULL, 0.1);
    expect_cell(job, "{\"n\": null}", COL_N, EXW_CELL_EMPTY, NULL, 0);
    expect_cell_error(job, "{\"n\": \"12\"}", 3, EXW_EJSON, "rows[3].n", "\"Amount\"", "number",
                      "string \"12\"", NULL);
    expect_cell_error(job, "{\"n\": true}", 3, EXW_EJSON, "rows[3].n", "true", NULL);
    expect_cell_error(job, "{\"n\": {}}", 3, EXW_EJSON, "rows[3].n", NULL);
    drop(job);
}

static void test_cells_integer(void **state)
{
    struct exw_job *job = parse_ok(typed_doc);

    (void)state;
    expect_cell(job, "{\"i\": 42}", COL_I, EXW_CELL_NUMBER, NULL, 42);
    expect_cell(job, "{\"i\": -42}", COL_I, EXW_CELL_NUMBER, NULL, -42);
    expect_cell(job, "{\"i\": 1e3}", COL_I, EXW_CELL_NUMBER, NULL, 1000);
    expect_cell(job, "{\"i\": 4.0}", COL_I, EXW_CELL_NUMBER, NULL, 4);
    expect_cell(job, "{\"i\": 9007199254740992}", COL_I, EXW_CELL_NUMBER, NULL, 9007199254740992.0);
    expect_cell(job, "{\"i\": -9007199254740992}", COL_I, EXW_CELL_NUMBER, NULL,
                -9007199254740992.0);
    expect_cell_error(job, "{\"i\": 9007199254740994}", 1, EXW_EJSON, "rows[1].i", "\"Count\"",
                      "integer", "2^53", NULL);
    expect_cell_error(job, "{\"i\": -9007199254740994}", 1, EXW_EJSON, "rows[1].i", NULL);
    expect_cell_error(job, "{\"i\": 1e300}", 1, EXW_EJSON, "rows[1].i", NULL);
    expect_cell_error(job, "{\"i\": 1.5}", 2, EXW_EJSON, "rows[2].i", "\"Count\"", "1.5", NULL);
    expect_cell_error(job, "{\"i\": \"7\"}", 2, EXW_EJSON, "rows[2].i", NULL);
    expect_cell_error(job, "{\"i\": false}", 2, EXW_EJSON, "rows[2].i", NULL);
    drop(job);
}

static void test_cells_boolean(void **state)
{
    struct exw_job *job = parse_ok(typed_doc);

    (void)state;
    expect_cell(job, "{\"b\": true}", COL_B, EXW_CELL_BOOLEAN, NULL, 1);
    expect_cell(job, "{\"b\": false}", COL_B, EXW_CELL_BOOLEAN, NULL, 0);
    expect_cell(job, "{\"b\": null}", COL_B, EXW_CELL_EMPTY, NULL, 0);
    expect_cell_error(job, "{\"b\": 1}", 9, EXW_EJSON, "rows[9].b", "\"Flag\"", "boolean", NULL);
    expect_cell_error(job, "{\"b\": \"true\"}", 9, EXW_EJSON, "rows[9].b", NULL);
    drop(job);
}

/* A cell of @col for @row_json must be the date and time given. */
static void expect_dt(const struct exw_job *job, const char *row_json, int col, int y, int mo,
                      int d, int h, int mi, double sec)
{
    struct exw_cell cells[NCOLS];
    struct exw_row *row = row_cells_ok(job, row_json, NULL, cells);

    assert_int_equal(cells[col].kind, EXW_CELL_DATETIME);
    assert_int_equal(cells[col].dt.year, y);
    assert_int_equal(cells[col].dt.month, mo);
    assert_int_equal(cells[col].dt.day, d);
    assert_int_equal(cells[col].dt.hour, h);
    assert_int_equal(cells[col].dt.min, mi);
    assert_true(fabs(cells[col].dt.sec - sec) < 1e-9);
    exw_row_free(row);
}

static void test_cells_date(void **state)
{
    struct exw_job *job = parse_ok(typed_doc);

    (void)state;
    expect_dt(job, "{\"d\": \"2026-01-02\"}", COL_D, 2026, 1, 2, 0, 0, 0);
    expect_dt(job, "{\"d\": \"2024-02-29\"}", COL_D, 2024, 2, 29, 0, 0, 0);
    expect_dt(job, "{\"d\": \"1900-01-01\"}", COL_D, 1900, 1, 1, 0, 0, 0);
    expect_dt(job, "{\"d\": \"9999-12-31\"}", COL_D, 9999, 12, 31, 0, 0, 0);
    expect_cell(job, "{\"d\": null}", COL_D, EXW_CELL_EMPTY, NULL, 0);
    expect_cell_error(job, "{\"d\": \"2026-02-30\"}", 5, EXW_EJSON, "rows[5].d", "\"Day\"", "date",
                      "2026-02-30", NULL);
    expect_cell_error(job, "{\"d\": \"1899-12-31\"}", 5, EXW_EJSON, "rows[5].d", "1899", NULL);
    expect_cell_error(job, "{\"d\": \"10000-01-01\"}", 5, EXW_EJSON, "rows[5].d", NULL);
    expect_cell_error(job, "{\"d\": \"2026-1-2\"}", 5, EXW_EJSON, "rows[5].d", NULL);
    expect_cell_error(job, "{\"d\": \"2026-01-02T00:00:00Z\"}", 5, EXW_EJSON, "rows[5].d", NULL);
    expect_cell_error(job, "{\"d\": 20260102}", 5, EXW_EJSON, "rows[5].d", "number", NULL);
    expect_cell_error(job, "{\"d\": \"\"}", 5, EXW_EJSON, "rows[5].d", NULL);
    drop(job);
}

static void test_cells_datetime(void **state)
{
    struct exw_job *job = parse_ok(typed_doc);

    (void)state;
    expect_dt(job, "{\"t\": \"2026-01-02T03:04:05Z\"}", COL_T, 2026, 1, 2, 3, 4, 5);
    expect_dt(job, "{\"t\": \"2026-01-02T03:04:05\"}", COL_T, 2026, 1, 2, 3, 4, 5);
    expect_dt(job, "{\"t\": \"2026-01-02T03:04:05.123456789+02:00\"}", COL_T, 2026, 1, 2, 1, 4,
              5.123);
    expect_dt(job, "{\"t\": \"2026-12-31T20:00:00-05:30\"}", COL_T, 2027, 1, 1, 1, 30, 0);
    expect_cell(job, "{\"t\": null}", COL_T, EXW_CELL_EMPTY, NULL, 0);
    expect_cell_error(job, "{\"t\": \"2026-01-02T03:04Z\"}", 6, EXW_EJSON, "rows[6].t", "\"When\"",
                      "datetime", NULL);
    expect_cell_error(job, "{\"t\": \"2026-01-02\"}", 6, EXW_EJSON, "rows[6].t", NULL);
    expect_cell_error(job, "{\"t\": 1767323045}", 6, EXW_EJSON, "rows[6].t", NULL);
    drop(job);
}

static void test_cells_lookup_columns(void **state)
{
    struct exw_job *job = parse_ok(typed_doc);
    struct exw_cell lookup[2], cells[NCOLS];
    struct exw_errbuf eb;
    struct exw_row *row;
    static const char body[] = "{\"x\": \"looked\", \"y\": 2.5}";

    (void)state;
    assert_int_equal(job->nlookup_columns, 2);
    assert_int_equal(exw_job_lookup_cells(job, body, strlen(body), lookup, &eb), EXW_OK);
    /* Without lookup cells, lookup columns are empty. */
    row = row_cells_ok(job, "{\"s\": \"a\"}", NULL, cells);
    assert_int_equal(cells[COL_L1].kind, EXW_CELL_EMPTY);
    assert_int_equal(cells[COL_L2].kind, EXW_CELL_EMPTY);
    exw_row_free(row);
    /* With them, the row's cells borrow their text and own nothing. */
    row = row_cells_ok(job, "{\"s\": \"a\"}", lookup, cells);
    assert_int_equal(cells[COL_S].kind, EXW_CELL_STRING);
    assert_int_equal(cells[COL_L1].kind, EXW_CELL_STRING);
    assert_string_equal(cells[COL_L1].str, "looked");
    assert_ptr_equal(cells[COL_L1].str, lookup[0].str);
    assert_null(cells[COL_L1].owned);
    assert_int_equal(cells[COL_L2].kind, EXW_CELL_NUMBER);
    assert_true(cells[COL_L2].num == 2.5);
    exw_cells_cleanup(cells, job->ncolumns);
    exw_row_free(row);
    /* The lookup cells are still intact after the row's were cleaned up. */
    assert_string_equal(lookup[0].str, "looked");
    exw_cells_cleanup(lookup, 2);
    assert_int_equal(lookup[0].kind, EXW_CELL_EMPTY);
    assert_null(lookup[0].owned);
    drop(job);
}

static void test_cells_inline_rows_and_cleanup(void **state)
{
    struct exw_job *job = parse_ok("{\"id\": \"j\", \"columns\": [{\"header\": \"A\", \"field\": "
                                   "\"a\"}, {\"header\": \"B\", \"field\": \"b\", \"type\": "
                                   "\"number\"}], \"rows\": [{\"a\": 5, \"b\": 1}, {\"a\": "
                                   "\"x\", \"b\": \"bad\"}]}");
    struct exw_cell cells[2];
    struct exw_errbuf eb = {{0}};
    struct exw_row *row;

    (void)state;
    row = next_row(job);
    assert_int_equal(exw_job_row_cells(job, row, 0, NULL, cells, &eb), EXW_OK);
    assert_string_equal(cells[0].str, "5");
    exw_cells_cleanup(cells, 2);
    assert_int_equal(cells[0].kind, EXW_CELL_EMPTY);
    assert_int_equal(cells[1].kind, EXW_CELL_EMPTY);
    exw_row_free(row);
    row = next_row(job);
    assert_int_equal(exw_job_row_cells(job, row, 1, NULL, cells, &eb), EXW_EJSON);
    assert_contains(eb.msg, "rows[1].b (column \"B\", number)");
    /* The errbuf is optional. */
    assert_int_equal(exw_job_row_cells(job, row, 1, NULL, cells, NULL), EXW_EJSON);
    exw_row_free(row);
    drop(job);
}

/* Error texts end up in the status hash, read by clients in any language: a
 * value shortened for the message must not end in half a UTF-8 sequence. */
static void test_error_texts_utf8(void **state)
{
    char header[128], pointer[128], doc[1024];
    struct exw_errbuf eb;
    struct exw_cell cells[2];
    struct exw_row *row;
    struct exw_job *job;
    int i;

    (void)state;
    /* "a" then 30 two-byte characters: 40 bytes end inside one. */
    header[0] = 'a';
    for (i = 0; i < 30; i++)
        memcpy(header + 1 + 2 * i, "\xc3\xa9", 2);
    header[61] = '\0';
    snprintf(doc, sizeof(doc),
             "{\"id\": \"j\", \"lookup\": {\"service\": \"s\", \"key\": \"k\"}, "
             "\"columns\": [{\"header\": \"%s\", \"field\": \"n\", \"type\": \"number\"}, "
             "{\"header\": \"%s\", \"lookup\": \"/n\", \"type\": \"number\"}], \"rows\": []}",
             header, header);
    job = parse_ok(doc);
    assert_int_equal(row_cells(job, "{\"n\": \"x\"}", 0, NULL, &row, cells, &eb), EXW_EJSON);
    assert_contains(eb.msg, "column \"a\xc3\xa9");
    assert_true(exw_utf8_valid(eb.msg, strlen(eb.msg), NULL));
    exw_row_free(row);
    assert_int_equal(exw_job_lookup_cells(job, "{\"n\": \"x\"}", 10, cells, &eb), EXW_EJSON);
    assert_contains(eb.msg, "column \"a\xc3\xa9");
    assert_true(exw_utf8_valid(eb.msg, strlen(eb.msg), NULL));
    drop(job);

    /* An invalid pointer quoted in the message. */
    memcpy(pointer, "/~2", 3);
    for (i = 0; i < 40; i++)
        memcpy(pointer + 3 + 2 * i, "\xc3\xa9", 2);
    pointer[83] = '\0';
    snprintf(doc, sizeof(doc),
             "{\"id\": \"j\", \"lookup\": {\"service\": \"s\", \"key\": \"k\"}, "
             "\"columns\": [{\"header\": \"A\", \"lookup\": \"%s\"}], \"rows\": []}",
             pointer);
    {
        struct exw_limits lim;
        enum exw_job_verdict verdict;
        char *id;

        exw_limits_default(&lim);
        assert_int_equal(parse_with(doc, strlen(doc), &lim, PREFIX, &job, &verdict, &id, &eb),
                         EXW_EJSON);
        assert_int_equal(verdict, EXW_JOB_INVALID);
        assert_contains(eb.msg, "columns[0].lookup: \"/~2\xc3\xa9");
        assert_true(exw_utf8_valid(eb.msg, strlen(eb.msg), NULL));
        free(id);
    }
}

/* ---- Lookup keys ---- */

static void expect_key(const struct exw_job *job, const char *row_json, const char *want)
{
    char scratch[32];
    const char *key = "unset";
    struct exw_errbuf eb = {{0}};
    struct exw_row *row = parse_row(job, row_json, strlen(row_json), 0);

    assert_int_equal(exw_job_row_key(job, row, 0, scratch, &key, &eb), EXW_OK);
    assert_string_or_null(key, want);
    exw_row_free(row);
}

/* @row (freed here), as row @index, must have no usable key: EXW_EJSON, no
 * key, and an error text holding each of the NULL-terminated strings that
 * follow. */
static void expect_key_error(const struct exw_job *job, struct exw_row *row, size_t index, ...)
{
    char scratch[32];
    const char *key = "unset";
    struct exw_errbuf eb = {{0}};
    const char *want;
    va_list ap;

    assert_int_equal(exw_job_row_key(job, row, index, scratch, &key, &eb), EXW_EJSON);
    assert_null(key);
    va_start(ap, index);
    while ((want = va_arg(ap, const char *)) != NULL)
        assert_contains(eb.msg, want);
    va_end(ap);
    exw_row_free(row);
}

/* A job looking up the row member "sn". */
static const char full_doc[] =
    "{\"id\": \"kd\", \"lookup\": {\"service\": \"tether\", \"key\": \"sn\"}, \"columns\": "
    "[{\"header\": \"SN\", \"field\": \"sn\"}, {\"header\": \"D\", \"lookup\": \"/d\"}], "
    "\"rows\": []}";

static void test_row_key(void **state)
{
    struct exw_job *job = parse_ok(full_doc);
    struct exw_job *plain;
    char scratch[32];
    const char *key = "unset";
    struct exw_errbuf eb = {{0}};
    struct exw_row *row;

    (void)state;
    expect_key(job, "{\"sn\": \"C-0001\"}", "C-0001");
    expect_key(job, "{\"sn\": \"a b/\\u00e9\"}", "a b/\xc3\xa9");
    expect_key(job, "{\"sn\": 42}", "42");
    expect_key(job, "{\"sn\": 1.50}", "1.5");
    expect_key(job, "{\"sn\": 1e21}", "1e+21");
    expect_key(job, "{\"sn\": -7}", "-7");
    expect_key(job, "{\"sn\": null}", NULL);
    expect_key(job, "{}", NULL);
    expect_key(job, "{\"sn\": \"\"}", NULL);
    expect_key(job, "{\"SN\": \"x\"}", NULL);

    /* A number is formatted into the scratch buffer. */
    row = parse_row(job, "{\"sn\": 12}", 10, 0);
    assert_int_equal(exw_job_row_key(job, row, 0, scratch, &key, &eb), EXW_OK);
    assert_ptr_equal(key, scratch);
    exw_row_free(row);

    /* Other types are an error naming the row. */
    expect_key_error(job, parse_row(job, "{\"sn\": true}", 12, 0), 3, "rows[3].sn", "true", NULL);
    expect_key_error(job, parse_row(job, "{\"sn\": [\"a\"]}", 13, 0), 4, "rows[4].sn", NULL);
    drop(job);

    /* A job without lookup has no keys. */
    plain = parse_ok("{\"id\": \"j\", \"columns\": [{\"header\": \"A\", \"field\": \"a\"}], "
                     "\"rows\": [{\"a\": \"x\"}]}");
    row = next_row(plain);
    assert_int_equal(exw_job_row_key(plain, row, 0, scratch, &key, &eb), EXW_OK);
    assert_null(key);
    exw_row_free(row);
    drop(plain);
}

/* ---- Lookup cells ---- */

static const char lookup_doc[] =
    "{\"id\": \"lk\", \"lookup\": {\"service\": \"tether\", \"key\": \"sn\"}, \"columns\": ["
    "{\"header\": \"SN\", \"field\": \"sn\"},"
    "{\"header\": \"Name\", \"lookup\": \"/name\"},"
    "{\"header\": \"Discount share\", \"lookup\": \"/discount/ratio\", \"type\": \"number\"},"
    "{\"header\": \"Tier\", \"lookup\": \"/tiers/0\", \"type\": \"integer\"},"
    "{\"header\": \"Since\", \"lookup\": \"/since\", \"type\": \"date\"},"
    "{\"header\": \"Active\", \"lookup\": \"/a~1b\", \"type\": \"boolean\"},"
    "{\"header\": \"Code\", \"lookup\": \"/code\"}"
    "], \"rows\": []}";

enum { LK_NAME, LK_RATIO, LK_TIER, LK_SINCE, LK_ACTIVE, LK_CODE, NLK };

static exw_err lookup_cells(const struct exw_job *job, const char *body, struct exw_cell *out,
                            struct exw_errbuf *eb)
{
    size_t len = strlen(body);
    char *copy = exact_copy(body, len);
    exw_err rc;

    memset(eb, 0, sizeof(*eb));
    rc = exw_job_lookup_cells(job, copy, len, out, eb);
    /* The body is gone before the cells are looked at: they own their text. */
    memset(copy, 'Z', len);
    free(copy);
    return rc;
}

/* lookup_cells() of @body, which must succeed. */
static void lookup_ok(const struct exw_job *job, const char *body, struct exw_cell *out)
{
    struct exw_errbuf eb;
    exw_err rc = lookup_cells(job, body, out, &eb);

    if (rc != EXW_OK)
        print_error("body %s: %s\n", body, eb.msg);
    assert_int_equal(rc, EXW_OK);
}

static void test_lookup_cells(void **state)
{
    struct exw_job *job = parse_ok(lookup_doc);
    struct exw_cell out[NLK];

    (void)state;
    assert_int_equal(job->nlookup_columns, NLK);
    lookup_ok(job,
              "{\"name\": \"ACME Ltd\", \"discount\": {\"ratio\": 0.25}, "
              "\"tiers\": [3, 4], \"since\": \"2020-05-06\", \"a/b\": true, "
              "\"code\": 17.50, \"other\": [1, 2, 3]}",
              out);
    assert_int_equal(out[LK_NAME].kind, EXW_CELL_STRING);
    assert_string_equal(out[LK_NAME].str, "ACME Ltd");
    assert_non_null(out[LK_NAME].owned);
    assert_ptr_equal(out[LK_NAME].str, out[LK_NAME].owned);
    assert_int_equal(out[LK_RATIO].kind, EXW_CELL_NUMBER);
    assert_true(out[LK_RATIO].num == 0.25);
    assert_int_equal(out[LK_TIER].kind, EXW_CELL_NUMBER);
    assert_true(out[LK_TIER].num == 3);
    assert_int_equal(out[LK_SINCE].kind, EXW_CELL_DATETIME);
    assert_int_equal(out[LK_SINCE].dt.year, 2020);
    assert_int_equal(out[LK_SINCE].dt.month, 5);
    assert_int_equal(out[LK_SINCE].dt.day, 6);
    assert_int_equal(out[LK_ACTIVE].kind, EXW_CELL_BOOLEAN);
    assert_true(out[LK_ACTIVE].num == 1);
    /* A number in a text column is formatted, and owned too. */
    assert_int_equal(out[LK_CODE].kind, EXW_CELL_STRING);
    assert_string_equal(out[LK_CODE].str, "17.5");
    assert_ptr_equal(out[LK_CODE].str, out[LK_CODE].owned);
    exw_cells_cleanup(out, NLK);
    for (size_t i = 0; i < NLK; i++) {
        assert_int_equal(out[i].kind, EXW_CELL_EMPTY);
        assert_null(out[i].owned);
    }

    /* Pointers to nothing or to null are empty cells. */
    lookup_ok(job, "{\"name\": null, \"discount\": {}, \"tiers\": [], \"since\": null}", out);
    for (size_t i = 0; i < NLK; i++)
        assert_int_equal(out[i].kind, EXW_CELL_EMPTY);
    exw_cells_cleanup(out, NLK);
    lookup_ok(job, "[1, 2]", out);
    for (size_t i = 0; i < NLK; i++)
        assert_int_equal(out[i].kind, EXW_CELL_EMPTY);
    exw_cells_cleanup(out, NLK);
    lookup_ok(job, "\"just text\"", out);
    assert_int_equal(out[LK_NAME].kind, EXW_CELL_EMPTY);
    exw_cells_cleanup(out, NLK);
    drop(job);
}

static void test_lookup_cells_errors(void **state)
{
    struct exw_job *job = parse_ok(lookup_doc);
    struct exw_cell out[NLK];
    struct exw_errbuf eb;
    size_t i;

    (void)state;
    /* A wrong type, after a text cell was already made: no leak, all empty. */
    assert_int_equal(
        lookup_cells(job, "{\"name\": \"ACME\", \"discount\": {\"ratio\": \"25%\"}}", out, &eb),
        EXW_EJSON);
    assert_contains(eb.msg, "/discount/ratio");
    assert_contains(eb.msg, "\"Discount share\"");
    assert_contains(eb.msg, "string \"25%\"");
    for (i = 0; i < NLK; i++) {
        assert_int_equal(out[i].kind, EXW_CELL_EMPTY);
        assert_null(out[i].owned);
    }
    assert_int_equal(lookup_cells(job, "{\"name\": \"ACME\", \"tiers\": [1.5]}", out, &eb),
                     EXW_EJSON);
    assert_contains(eb.msg, "/tiers/0");
    assert_int_equal(lookup_cells(job, "{\"since\": \"2020-02-30\"}", out, &eb), EXW_EJSON);
    assert_contains(eb.msg, "/since");
    assert_int_equal(lookup_cells(job, "{\"a/b\": \"yes\"}", out, &eb), EXW_EJSON);
    assert_contains(eb.msg, "/a~1b");
    assert_int_equal(lookup_cells(job, "{\"name\": {\"first\": \"A\"}}", out, &eb), EXW_EJSON);
    assert_contains(eb.msg, "/name");
    assert_contains(eb.msg, "object");

    /* Not JSON at all. */
    assert_int_equal(lookup_cells(job, "<html>502 Bad Gateway</html>", out, &eb), EXW_EJSON);
    assert_contains(eb.msg, "not JSON");
    assert_int_equal(lookup_cells(job, "{\"name\": \"A\"} trailing", out, &eb), EXW_EJSON);
    assert_contains(eb.msg, "not JSON");
    assert_int_equal(exw_job_lookup_cells(job, "", 0, out, &eb), EXW_EJSON);
    assert_contains(eb.msg, "not JSON");
    assert_int_equal(lookup_cells(job, "{\"name\": \"\xff\"}", out, &eb), EXW_EJSON);
    assert_contains(eb.msg, "not JSON");
    for (i = 0; i < NLK; i++)
        assert_int_equal(out[i].kind, EXW_CELL_EMPTY);
    /* The errbuf is optional. */
    assert_int_equal(exw_job_lookup_cells(job, "nope", 4, out, NULL), EXW_EJSON);
    assert_int_equal(exw_job_lookup_cells(job, "{\"tiers\": [\"x\"]}", 16, out, NULL), EXW_EJSON);
    drop(job);
}

static void test_lookup_cells_string_limit(void **state)
{
    struct exw_limits lim;
    struct exw_errbuf eb;
    struct exw_job *job;
    struct exw_cell out[NLK];

    (void)state;
    exw_limits_default(&lim);
    lim.max_string_chars = 4;
    job = parse_lim(lookup_doc, &lim);
    lookup_ok(job, "{\"name\": \"ACME\"}", out);
    assert_string_equal(out[LK_NAME].str, "ACME");
    exw_cells_cleanup(out, NLK);
    assert_int_not_equal(lookup_cells(job, "{\"name\": \"ACME Ltd\"}", out, &eb), EXW_OK);
    assert_contains(eb.msg, "/name");
    assert_contains(eb.msg, "limit of 4");
    assert_null(out[LK_NAME].owned);
    drop(job);
}

/* ---- Integers, by their digits ---- */

/* An integer column takes a number whose exact decimal value is whole and
 * within +-2^53; a double never decides. */
static void test_cells_integer_digits(void **state)
{
    static const struct {
        const char *literal;
        double want;
    } whole[] = {
        {"9007199254740992", 9007199254740992.0},
        {"-9007199254740992", -9007199254740992.0},
        {"9007199254740992.000", 9007199254740992.0},
        {"90071992547409920e-1", 9007199254740992.0},
        {"1.0", 1},
        {"1e3", 1000},
        {"1E+2", 100},
        {"12.50e1", 125},
        {"100e-2", 1},
        {"0.5e1", 5},
        {"0", 0},
        {"-0", 0},
        {"0.000e5", 0},
        {"0e999", 0},
        {"123456789012345", 123456789012345.0},
    };
    static const char *const not_whole[] = {
        "9007199254740993", /* 2^53 + 1: a double would read 2^53 */
        "-9007199254740993",
        "9007199254740994",
        "1.0000000000000001", /* a double reads 1 */
        "9.007199254740993e15",
        "9007199254740992.5",
        "1e16",
        "1e-1",
        "1.5",
        "0.99999999999999999999",
        "12345678901234567890",
    };
    struct exw_job *job = parse_ok(typed_doc);
    char row[128];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
        struct exw_cell cells[NCOLS];
        struct exw_row *r;

        snprintf(row, sizeof(row), "{\"i\": %s}", whole[i].literal);
        r = row_cells_ok(job, row, NULL, cells);
        assert_int_equal(cells[COL_I].kind, EXW_CELL_NUMBER);
        assert_true(cells[COL_I].num == whole[i].want);
        assert_false(signbit(cells[COL_I].num) && whole[i].want == 0); /* -0 is 0 */
        exw_row_free(r);
    }
    for (i = 0; i < sizeof(not_whole) / sizeof(not_whole[0]); i++) {
        snprintf(row, sizeof(row), "{\"i\": %s}", not_whole[i]);
        expect_cell_error(job, row, 4, EXW_EJSON, "rows[4].i", "\"Count\"", "integer",
                          "whole number within +-2^53", not_whole[i], NULL);
    }
    /* The same rule for a number column would round: that is what number is for. */
    expect_cell(job, "{\"n\": 9007199254740993}", COL_N, EXW_CELL_NUMBER, NULL, 9007199254740992.0);
    drop(job);
}

/* A row whose "sn" is @piece @n times. Free with exw_row_free. */
static struct exw_row *long_key_row(const struct exw_job *job, const char *piece, int n)
{
    struct exw_row *row;
    struct exw_buf b;
    int i;

    exw_buf_init(&b, 1 << 20);
    assert_int_equal(exw_buf_printf(&b, "{\"sn\": \""), EXW_OK);
    for (i = 0; i < n; i++)
        assert_int_equal(exw_buf_append(&b, piece, strlen(piece)), EXW_OK);
    assert_int_equal(exw_buf_printf(&b, "\"}"), EXW_OK);
    row = parse_row(job, b.data, b.len, 0);
    exw_buf_cleanup(&b);
    return row;
}

static void test_row_key_limit(void **state)
{
    struct exw_job *job = parse_ok(full_doc);
    struct exw_limits lim;
    char scratch[32];
    const char *key;
    struct exw_errbuf eb = {{0}};
    struct exw_row *row;

    (void)state;
    /* 40,000 characters: no cell could hold it, no service takes it. */
    expect_key_error(job, long_key_row(job, "k", 40000), 7,
                     "rows[7].sn: the lookup key has 40000 characters, over the limit of 32767",
                     NULL);

    /* Exactly the limit is a key; characters are counted, not bytes. */
    row = long_key_row(job, "\xc3\xa9", 32767);
    assert_int_equal(exw_job_row_key(job, row, 0, scratch, &key, &eb), EXW_OK);
    assert_int_equal(strlen(key), 2 * 32767);
    exw_row_free(row);
    drop(job);

    /* The limit is the job's (EXPORT_MAX_STRING_CHARS). */
    exw_limits_default(&lim);
    lim.max_string_chars = 3;
    job = parse_lim(full_doc, &lim);
    expect_key(job, "{\"sn\": \"abc\"}", "abc");
    expect_key_error(job, parse_row(job, "{\"sn\": \"ab\\u00e9d\"}", 19, 0), 2,
                     "rows[2].sn: the lookup key has 4 characters, over the limit of 3", NULL);
    drop(job);
}

/* Rows read into one reused row, their strings into an arena (a typed batch,
 * worker/rows_reader.c): each row's cells stay good after the row is reused
 * for the next and its text is gone, until the arena is reset. */
static void test_rows_in_arena(void **state)
{
    static const char *const rows[] = {
        "{\"s\": \"first\", \"n\": 1.5, \"d\": \"2024-02-29\"}",
        "{\"zz\": [\"not a column\"], \"s\": \"a\\u00e9\\\"b\", \"s\": \"later\", \"i\": 7}",
        "{\"b\": true}",
        /* More named members than the row's first array holds: it grows, and is kept. */
        ("{\"n\": 2, \"s\": 12.25, \"t\": \"2024-01-02T03:04:05\", \"s\": 1, \"s\": 2, "
         "\"i\": 3, \"i\": 4, \"b\": true, \"b\": false, \"zz\": 0, \"i\": 5}"),
    };
    struct exw_job *job = parse_ok(typed_doc);
    struct exw_cell cells[4][NCOLS];
    struct exw_arena strings;
    struct exw_row *row = NULL;
    struct exw_errbuf eb;
    size_t i;

    (void)state;
    exw_arena_init(&strings, 16); /* small blocks: the rows span several */
    for (i = 0; i < 4; i++) {
        char *copy = exact_copy(rows[i], strlen(rows[i]));

        assert_int_equal(exw_row_parse_in(job, copy, strlen(rows[i]), i, &strings, &row, &eb),
                         EXW_OK);
        assert_int_equal(exw_job_row_cells(job, row, i, NULL, cells[i], &eb), EXW_OK);
        free(copy); /* the cells no longer need the row's text */
    }
    assert_string_equal(cells[0][COL_S].str, "first");
    assert_true(cells[0][COL_N].num == 1.5);
    assert_int_equal(cells[0][COL_D].dt.day, 29);
    assert_string_equal(cells[1][COL_S].str, "a\xc3\xa9\"b"); /* the first of equal names */
    assert_true(cells[1][COL_I].num == 7);
    assert_int_equal(cells[1][COL_N].kind, EXW_CELL_EMPTY); /* not carried from row 0 */
    assert_int_equal(cells[2][COL_S].kind, EXW_CELL_EMPTY);
    assert_int_equal(cells[2][COL_B].kind, EXW_CELL_BOOLEAN);
    assert_string_equal(cells[3][COL_S].str, "12.25");
    assert_true(cells[3][COL_I].num == 3);
    assert_true(cells[3][COL_B].num == 1);
    assert_int_equal(cells[3][COL_T].dt.sec, 5);
    for (i = 0; i < 4; i++)
        exw_cells_cleanup(cells[i], NCOLS);
    exw_arena_reset(&strings);
    /* Errors name the row, as exw_row_parse() does. */
    assert_int_equal(exw_row_parse_in(job, "[1]", 3, 9, &strings, &row, &eb), EXW_EJSON);
    assert_contains(eb.msg, "rows[9]: expected an object, got array");
    assert_int_equal(exw_row_parse_in(job, "{\"s\":", 5, 10, &strings, &row, &eb), EXW_EJSON);
    assert_contains(eb.msg, "rows[10]: not valid JSON");
    exw_row_free(row);
    exw_arena_cleanup(&strings);
    drop(job);
}

/* ---- Lookup responses, read in place ---- */

static void test_lookup_cells_in_place(void **state)
{
    struct exw_job *job = parse_ok(lookup_doc);
    struct exw_cell out[NLK];
    struct exw_errbuf eb;

    (void)state;
    /* The first of equal names wins; escaped names match; values around
     * the ones wanted may be anything, deep or big. */
    lookup_ok(job,
              "{\"skip\": [[[{\"name\": \"no\"}]]], \"n\\u0061me\": \"first\", "
              "\"name\": \"second\", \"discount\": {\"x\": \"}\\\"{\", "
              "\"ratio\": 5e-1}, \"tiers\": [9007199254740992, 1], "
              "\"since\": \"2020-05-0\\u0036\", \"a/b\": false, "
              "\"code\": \"\\u00e9\\n\"}",
              out);
    assert_string_equal(out[LK_NAME].str, "first");
    assert_true(out[LK_RATIO].num == 0.5);
    assert_true(out[LK_TIER].num == 9007199254740992.0);
    assert_int_equal(out[LK_SINCE].dt.day, 6);
    assert_int_equal(out[LK_ACTIVE].kind, EXW_CELL_BOOLEAN);
    assert_true(out[LK_ACTIVE].num == 0);
    assert_string_equal(out[LK_CODE].str, "\xc3\xa9\n");
    exw_cells_cleanup(out, NLK);
    /* Integers by their digits here too. */
    assert_int_equal(lookup_cells(job, "{\"tiers\": [9007199254740993]}", out, &eb), EXW_EJSON);
    assert_contains(eb.msg, "/tiers/0");
    assert_contains(eb.msg, "9007199254740993");
    /* The response's own nesting limit is 512 levels. */
    {
        struct exw_buf b;
        int i;

        exw_buf_init(&b, 1 << 20);
        assert_int_equal(exw_buf_printf(&b, "{\"name\": \"deep\", \"x\": "), EXW_OK);
        for (i = 0; i < 511; i++)
            assert_int_equal(exw_buf_append(&b, "[", 1), EXW_OK);
        for (i = 0; i < 511; i++)
            assert_int_equal(exw_buf_append(&b, "]", 1), EXW_OK);
        assert_int_equal(exw_buf_append(&b, "}", 1), EXW_OK);
        assert_int_equal(exw_job_lookup_cells(job, b.data, b.len, out, &eb), EXW_OK);
        assert_string_equal(out[LK_NAME].str, "deep");
        exw_cells_cleanup(out, NLK);
        exw_buf_cleanup(&b);
    }
    drop(job);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cells_string),
        cmocka_unit_test(test_cells_string_limit),
        cmocka_unit_test(test_cells_number),
        cmocka_unit_test(test_cells_integer),
        cmocka_unit_test(test_cells_integer_digits),
        cmocka_unit_test(test_cells_boolean),
        cmocka_unit_test(test_cells_date),
        cmocka_unit_test(test_cells_datetime),
        cmocka_unit_test(test_cells_lookup_columns),
        cmocka_unit_test(test_cells_inline_rows_and_cleanup),
        cmocka_unit_test(test_error_texts_utf8),
        cmocka_unit_test(test_row_key),
        cmocka_unit_test(test_row_key_limit),
        cmocka_unit_test(test_rows_in_arena),
        cmocka_unit_test(test_lookup_cells),
        cmocka_unit_test(test_lookup_cells_errors),
        cmocka_unit_test(test_lookup_cells_string_limit),
        cmocka_unit_test(test_lookup_cells_in_place),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
