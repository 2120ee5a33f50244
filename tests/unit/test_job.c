/* test_job.c: the job document (PROTOCOL.md section 2), its verdicts and error
 * texts, and the typing of row and lookup cells. Documents are parsed from
 * heap copies of exactly their length, without a NUL, so that the sanitizers
 * catch any read past the end. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exw/buf.h"
#include "exw/job.h"
#include "exw/json.h"

#define PREFIX "export"

/* Fails the test, showing both strings, unless @needle occurs in @hay. */
#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        const char *hay_ = (hay);                                                                  \
        const char *needle_ = (needle);                                                            \
        if (strstr(hay_, needle_) == NULL) {                                                       \
            print_error("\"%s\" does not contain \"%s\"\n", hay_, needle_);                        \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* A buffer of exactly @len bytes holding @text (no NUL); caller frees. */
static char *exact_copy(const char *text, size_t len)
{
    char *copy = malloc(len ? len : 1);

    assert_non_null(copy);
    memcpy(copy, text, len);
    return copy;
}

static exw_err parse_with(const char *doc, size_t len, const struct exw_limits *lim,
                          const char *prefix, struct exw_job **job, enum exw_job_verdict *verdict,
                          char **id, struct exw_errbuf *eb)
{
    char *copy = exact_copy(doc, len);
    exw_err rc;

    memset(eb, 0, sizeof(*eb));
    *job = (struct exw_job *)eb; /* must be overwritten */
    *id = (char *)eb;
    rc = exw_job_parse(copy, len, lim, prefix, job, verdict, id, eb);
    free(copy);
    return rc;
}

/* Parses @doc under the default limits; it must be valid. */
static struct exw_job *parse_ok(const char *doc)
{
    struct exw_limits lim;
    struct exw_errbuf eb;
    struct exw_job *job;
    enum exw_job_verdict verdict = EXW_JOB_DEAD;
    char *id;
    exw_err rc;

    exw_limits_default(&lim);
    rc = parse_with(doc, strlen(doc), &lim, PREFIX, &job, &verdict, &id, &eb);
    if (rc != EXW_OK)
        print_error("parse failed: %s\n", eb.msg);
    assert_int_equal(rc, EXW_OK);
    assert_int_equal(verdict, EXW_JOB_OK);
    assert_non_null(job);
    /* Whatever the id out-parameter holds is the caller's to free. */
    if (id != NULL)
        assert_string_equal(id, job->id);
    free(id);
    return job;
}

/* Parses @len bytes of @doc under @lim; it must fail with @want_rc and @want
 * verdict, with the id @want_id (or none) and an error text containing
 * @want_msg. */
static void expect_fail_lim(const char *doc, size_t len, const struct exw_limits *lim,
                            exw_err want_rc, enum exw_job_verdict want, const char *want_id,
                            const char *want_msg)
{
    struct exw_errbuf eb;
    struct exw_job *job;
    enum exw_job_verdict verdict = EXW_JOB_OK;
    char *id;
    exw_err rc = parse_with(doc, len, lim, PREFIX, &job, &verdict, &id, &eb);

    if (rc == EXW_OK || verdict != want)
        print_error("document %.200s: rc %d verdict %d msg \"%s\"\n", doc, rc, verdict, eb.msg);
    assert_int_equal(rc, want_rc);
    assert_int_equal(verdict, want);
    assert_null(job);
    if (want_id == NULL) {
        assert_null(id);
    } else {
        assert_non_null(id);
        assert_string_equal(id, want_id);
    }
    assert_contains(eb.msg, want_msg);
    free(id);
}

static void expect_dead(const char *doc, const char *want_msg)
{
    struct exw_limits lim;

    exw_limits_default(&lim);
    expect_fail_lim(doc, strlen(doc), &lim, EXW_EJSON, EXW_JOB_DEAD, NULL, want_msg);
}

static void expect_invalid(const char *doc, const char *want_id, const char *want_msg)
{
    struct exw_limits lim;

    exw_limits_default(&lim);
    expect_fail_lim(doc, strlen(doc), &lim, EXW_EJSON, EXW_JOB_INVALID, want_id, want_msg);
}

/* A job with id "j", the given column list and members, inline rows []. */
static void expect_invalid_columns(const char *columns, const char *want_msg)
{
    char doc[4096];

    snprintf(doc, sizeof(doc), "{\"id\": \"j\", \"columns\": [%s], \"rows\": []}", columns);
    expect_invalid(doc, "j", want_msg);
}

/* A minimal valid job with id "j" plus the top-level @members ("" for none). */
static void minimal_doc(char *out, size_t size, const char *members)
{
    snprintf(out, size, "{\"id\": \"j\", \"columns\": [{\"header\": \"A\", \"field\": \"a\"}]%s%s}",
             members[0] ? ", " : "", members);
}

static void expect_invalid_member(const char *members, const char *want_msg)
{
    char doc[4096];

    minimal_doc(doc, sizeof(doc), members);
    expect_invalid(doc, "j", want_msg);
}

static struct exw_job *parse_minimal(const char *members)
{
    char doc[4096];

    minimal_doc(doc, sizeof(doc), members);
    return parse_ok(doc);
}

/* ---- The whole document ---- */

static const char full_doc[] =
    "{\n"
    "  \"id\": \"exp-20261125-0001\",\n"
    "  \"filename\": \"contracts-2026-11.xlsx\",\n"
    "  \"sheet\": \"Contracts\",\n"
    "  \"lookup\": { \"service\": \"tether\", \"key\": \"sn\" },\n"
    "  \"columns\": [\n"
    "    { \"header\": \"Contract SN\",    \"field\": \"sn\" },\n"
    "    { \"header\": \"Customer\",       \"field\": \"customer\", \"width\": 30 },\n"
    "    { \"header\": \"Amount\",         \"field\": \"amount\",    \"type\": \"number\", "
    "\"format\": \"#,##0.00\" },\n"
    "    { \"header\": \"Signed\",         \"field\": \"signed_on\", \"type\": \"date\",   "
    "\"format\": \"yyyy-mm-dd\" },\n"
    "    { \"header\": \"Discount share\", \"lookup\": \"/discount/ratio\", \"type\": \"number\", "
    "\"format\": \"0.00%\" },\n"
    "    { \"header\": \"Count\",          \"field\": \"n\", \"type\": \"integer\", \"width\": 8.5 "
    "},\n"
    "    { \"header\": \"Tier\",           \"lookup\": \"/tiers/0\", \"type\": \"integer\" },\n"
    "    { \"header\": \"Seen\",           \"field\": \"seen\", \"type\": \"datetime\" },\n"
    "    { \"header\": \"Active\",         \"field\": \"active\", \"type\": \"boolean\" }\n"
    "  ],\n"
    "  \"rows\": [\n"
    "    { \"sn\": \"C-0001\", \"customer\": \"ACME Ltd\", \"amount\": 1200.5, \"signed_on\": "
    "\"2026-01-02\",\n"
    "      \"n\": 3, \"seen\": \"2026-01-02T03:04:05Z\", \"active\": true },\n"
    "    { \"sn\": \"C-0002\", \"customer\": null },\n"
    "    { }\n"
    "  ],\n"
    "  \"on_lookup_error\": \"blank\",\n"
    "  \"result_ttl\": 86400\n"
    "}\n";

static void test_parse_full(void **state)
{
    struct exw_job *job = parse_ok(full_doc);
    const struct exw_column *c;

    (void)state;
    assert_string_equal(job->id, "exp-20261125-0001");
    assert_string_equal(job->filename, "contracts-2026-11.xlsx");
    assert_string_equal(job->sheet, "Contracts");
    assert_string_equal(job->service, "tether");
    assert_string_equal(job->lookup_key, "sn");
    assert_int_equal(job->on_lookup_error, EXW_ON_LOOKUP_BLANK);
    assert_int_equal(job->result_ttl_s, 86400);
    assert_null(job->rows_key);
    assert_int_equal(job->nrows, 3);
    assert_non_null(job->rows);
    assert_non_null(job->root);
    assert_int_equal(job->ncolumns, 9);
    assert_int_equal(job->nlookup_columns, 2);
    assert_int_equal(job->limits.max_depth, 32);

    c = &job->columns[0];
    assert_string_equal(c->header, "Contract SN");
    assert_string_equal(c->field, "sn");
    assert_null(c->pointer);
    assert_int_equal(c->type, EXW_COL_STRING);
    assert_null(c->format);
    assert_true(c->width == 0);

    c = &job->columns[1];
    assert_string_equal(c->header, "Customer");
    assert_true(c->width == 30);

    c = &job->columns[2];
    assert_string_equal(c->field, "amount");
    assert_int_equal(c->type, EXW_COL_NUMBER);
    assert_string_equal(c->format, "#,##0.00");

    c = &job->columns[3];
    assert_int_equal(c->type, EXW_COL_DATE);
    assert_string_equal(c->format, "yyyy-mm-dd");

    c = &job->columns[4];
    assert_string_equal(c->header, "Discount share");
    assert_null(c->field);
    assert_string_equal(c->pointer, "/discount/ratio");
    assert_int_equal(c->type, EXW_COL_NUMBER);
    assert_string_equal(c->format, "0.00%");
    assert_int_equal(c->lookup_index, 0);

    c = &job->columns[5];
    assert_int_equal(c->type, EXW_COL_INTEGER);
    assert_true(c->width == 8.5);

    c = &job->columns[6];
    assert_string_equal(c->pointer, "/tiers/0");
    assert_int_equal(c->type, EXW_COL_INTEGER);
    assert_int_equal(c->lookup_index, 1);

    assert_int_equal(job->columns[7].type, EXW_COL_DATETIME);
    assert_null(job->columns[7].format);
    assert_int_equal(job->columns[8].type, EXW_COL_BOOLEAN);
    exw_job_free(job);
}

static void test_parse_full_rows(void **state)
{
    struct exw_job *job = parse_ok(full_doc);
    struct exw_cell cells[9];
    struct exw_errbuf eb = {{0}};

    (void)state;
    assert_int_equal(exw_job_row_cells(job, job->rows[0], 0, NULL, cells, &eb), EXW_OK);
    assert_int_equal(cells[0].kind, EXW_CELL_STRING);
    assert_string_equal(cells[0].str, "C-0001");
    assert_string_equal(cells[1].str, "ACME Ltd");
    assert_int_equal(cells[2].kind, EXW_CELL_NUMBER);
    assert_true(cells[2].num == 1200.5);
    assert_int_equal(cells[3].kind, EXW_CELL_DATETIME);
    assert_int_equal(cells[3].dt.year, 2026);
    assert_int_equal(cells[3].dt.month, 1);
    assert_int_equal(cells[3].dt.day, 2);
    /* Lookup columns without lookup cells are empty. */
    assert_int_equal(cells[4].kind, EXW_CELL_EMPTY);
    assert_int_equal(cells[5].kind, EXW_CELL_NUMBER);
    assert_true(cells[5].num == 3);
    assert_int_equal(cells[6].kind, EXW_CELL_EMPTY);
    assert_int_equal(cells[7].kind, EXW_CELL_DATETIME);
    assert_int_equal(cells[7].dt.hour, 3);
    assert_int_equal(cells[8].kind, EXW_CELL_BOOLEAN);
    assert_true(cells[8].num == 1);
    exw_cells_cleanup(cells, 9);

    /* null and absent values are empty cells. */
    assert_int_equal(exw_job_row_cells(job, job->rows[1], 1, NULL, cells, &eb), EXW_OK);
    assert_string_equal(cells[0].str, "C-0002");
    assert_int_equal(cells[1].kind, EXW_CELL_EMPTY);
    assert_int_equal(cells[2].kind, EXW_CELL_EMPTY);
    assert_int_equal(exw_job_row_cells(job, job->rows[2], 2, NULL, cells, &eb), EXW_OK);
    for (size_t i = 0; i < 9; i++)
        assert_int_equal(cells[i].kind, EXW_CELL_EMPTY);
    exw_job_free(job);
}

static void test_parse_defaults(void **state)
{
    struct exw_job *job =
        parse_ok("{\"id\": \"job-1\", \"columns\": [{\"header\": \"A\", \"field\": "
                 "\"a\"}], \"rows\": [{\"a\": \"x\"}]}");

    (void)state;
    assert_string_equal(job->id, "job-1");
    assert_string_equal(job->filename, "job-1.xlsx");
    assert_string_equal(job->sheet, "Sheet1");
    assert_null(job->service);
    assert_null(job->lookup_key);
    assert_int_equal(job->on_lookup_error, EXW_ON_LOOKUP_FAIL);
    assert_int_equal(job->result_ttl_s, -1);
    assert_null(job->rows_key);
    assert_int_equal(job->nrows, 1);
    assert_int_equal(job->ncolumns, 1);
    assert_int_equal(job->nlookup_columns, 0);
    assert_int_equal(job->columns[0].type, EXW_COL_STRING);
    assert_null(job->columns[0].format);
    assert_null(job->columns[0].pointer);
    assert_true(job->columns[0].width == 0);
    exw_job_free(job);

    /* Explicit nulls mean the same as absent members. */
    job = parse_minimal("\"filename\": null, \"sheet\": null, \"lookup\": null, "
                        "\"on_lookup_error\": null, \"result_ttl\": null, \"rows\": []");
    assert_string_equal(job->filename, "j.xlsx");
    assert_string_equal(job->sheet, "Sheet1");
    assert_null(job->service);
    assert_int_equal(job->on_lookup_error, EXW_ON_LOOKUP_FAIL);
    assert_int_equal(job->result_ttl_s, -1);
    assert_int_equal(job->nrows, 0);
    exw_job_free(job);

    job = parse_minimal("\"on_lookup_error\": \"fail\", \"rows\": []");
    assert_int_equal(job->on_lookup_error, EXW_ON_LOOKUP_FAIL);
    exw_job_free(job);
    exw_job_free(NULL);
}

static void test_parse_unknown_members_ignored(void **state)
{
    struct exw_job *job = parse_minimal(
        "\"rows\": [], \"future\": {\"x\": [1, 2, {\"y\": null}]}, \"priority\": 5, \"url\": "
        "\"http://evil/\", \"tags\": [\"a\"]");

    (void)state;
    assert_string_equal(job->id, "j");
    exw_job_free(job);
    /* Unknown members of a column are ignored too. */
    job = parse_ok("{\"id\": \"j\", \"columns\": [{\"header\": \"A\", \"field\": \"a\", "
                   "\"comment\": \"x\"}], \"rows\": []}");
    exw_job_free(job);
}

/* ---- Verdicts ---- */

static void test_verdict_dead(void **state)
{
    char doc[512];
    char id[130];
    struct exw_limits lim;

    (void)state;
    expect_dead("not json", "");
    expect_dead("{\"id\": \"j\", \"columns\": [", "");
    expect_dead("[{\"id\": \"j\"}]", "array");
    expect_dead("\"j\"", "string");
    expect_dead("42", "number");
    expect_dead("null", "null");
    expect_dead("{}", "id");
    expect_dead("{\"columns\": [], \"rows\": []}", "id");
    expect_dead("{\"id\": \"has space\", \"columns\": [{\"header\": \"A\", \"field\": \"a\"}], "
                "\"rows\": []}",
                "id");
    expect_dead("{\"id\": \"\"}", "id");
    expect_dead("{\"id\": 12}", "id");
    expect_dead("{\"id\": null}", "id");
    expect_dead("{\"id\": [\"j\"]}", "id");
    expect_dead("{\"id\": \"a/b\"}", "id");
    expect_dead("{\"id\": \"caf\xc3\xa9\"}", "id");
    expect_dead("{\"ID\": \"j\"}", "id");
    /* An empty document. */
    exw_limits_default(&lim);
    expect_fail_lim("", 0, &lim, EXW_EJSON, EXW_JOB_DEAD, NULL, "");

    /* 128 characters is the longest id, 129 is dead. */
    memset(id, 'a', 129);
    id[129] = '\0';
    snprintf(doc, sizeof(doc),
             "{\"id\": \"%s\", \"columns\": [{\"header\": \"A\", \"field\": "
             "\"a\"}], \"rows\": []}",
             id);
    expect_dead(doc, "id");
    id[128] = '\0';
    snprintf(doc, sizeof(doc),
             "{\"id\": \"%s\", \"columns\": [{\"header\": \"A\", \"field\": "
             "\"a\"}], \"rows\": []}",
             id);
    exw_job_free(parse_ok(doc));
    /* Every character the id may have. */
    exw_job_free(parse_ok("{\"id\": \"AZaz09._:-\", \"columns\": [{\"header\": \"A\", \"field\": "
                          "\"a\"}], \"rows\": []}"));
}

static void test_verdict_invalid_with_id(void **state)
{
    (void)state;
    expect_invalid_columns("{\"header\": \"A\", \"field\": \"a\"}, {\"header\": \"B\", \"field\": "
                           "\"b\"}, {\"header\": \"C\", \"field\": \"c\"}, {\"header\": \"D\", "
                           "\"field\": \"d\", \"type\": \"nubmer\"}",
                           "columns[3].type: unknown type \"nubmer\"");
    /* An id that is fine and a document that is not. */
    expect_invalid("{\"id\": \"j-2\"}", "j-2", "columns");
    expect_invalid("{\"rows\": [], \"id\": \"late:id\", \"columns\": 5}", "late:id", "columns");
}

static void test_verdict_too_large(void **state)
{
    struct exw_limits lim;
    char doc[512];

    (void)state;
    exw_limits_default(&lim);
    lim.max_job_bytes = 100;
    /* The id is recovered by scanning, wherever it is among the members; ids
     * inside nested values are not the job's. */
    snprintf(doc, sizeof(doc),
             "{\"rows\": [{\"id\": \"row-id\"}], \"x\": {\"id\": \"nested\"}, \"list\": [\"id\", "
             "\":\", \"fake\"], \"id\" : \"big-1\", \"columns\": [{\"header\": \"A\", \"field\": "
             "\"a\"}]}");
    assert_true(strlen(doc) > 100);
    expect_fail_lim(doc, strlen(doc), &lim, EXW_ELIMIT, EXW_JOB_TOO_LARGE, "big-1", "100");
    expect_fail_lim(doc, strlen(doc), &lim, EXW_ELIMIT, EXW_JOB_TOO_LARGE, "big-1",
                    "EXPORT_MAX_JOB_BYTES");
    /* One byte over. */
    snprintf(doc, sizeof(doc), "{\"id\": \"big-2\", \"pad\": \"%*s\"}", 75, "");
    assert_int_equal(strlen(doc), 101);
    expect_fail_lim(doc, strlen(doc), &lim, EXW_ELIMIT, EXW_JOB_TOO_LARGE, "big-2", "over");
    /* Exactly the limit is not too large (it just is not a complete job). */
    snprintf(doc, sizeof(doc), "{\"id\": \"big-2\", \"pad\": \"%*s\"}", 74, "");
    assert_int_equal(strlen(doc), 100);
    expect_fail_lim(doc, strlen(doc), &lim, EXW_EJSON, EXW_JOB_INVALID, "big-2", "columns");
    /* Truncated: the id is still found. */
    snprintf(doc, sizeof(doc), "{\"id\":\"big-3\",\"rows\":[%*s", 120, "");
    expect_fail_lim(doc, strlen(doc), &lim, EXW_ELIMIT, EXW_JOB_TOO_LARGE, "big-3", "over");
}

static void test_too_large_without_id(void **state)
{
    struct exw_limits lim;
    char doc[512];

    (void)state;
    exw_limits_default(&lim);
    lim.max_job_bytes = 50;
    /* An id written with escapes, an id that is not a usable id, an id that
     * is not a string, no id, an array: nothing to fail under, so dead. */
    snprintf(doc, sizeof(doc), "{\"id\": \"a\\u0062c\", \"pad\": \"%60s\"}", "");
    expect_fail_lim(doc, strlen(doc), &lim, EXW_ELIMIT, EXW_JOB_DEAD, NULL, "over");
    snprintf(doc, sizeof(doc), "{\"id\": \"a b\", \"pad\": \"%60s\"}", "");
    expect_fail_lim(doc, strlen(doc), &lim, EXW_ELIMIT, EXW_JOB_DEAD, NULL, "over");
    snprintf(doc, sizeof(doc), "{\"id\": 17, \"pad\": \"%60s\"}", "");
    expect_fail_lim(doc, strlen(doc), &lim, EXW_ELIMIT, EXW_JOB_DEAD, NULL, "over");
    snprintf(doc, sizeof(doc), "{\"id\": {\"id\": \"inner\"}, \"pad\": \"%60s\"}", "");
    expect_fail_lim(doc, strlen(doc), &lim, EXW_ELIMIT, EXW_JOB_DEAD, NULL, "over");
    snprintf(doc, sizeof(doc), "{\"pad\": \"%60s\"}", "");
    expect_fail_lim(doc, strlen(doc), &lim, EXW_ELIMIT, EXW_JOB_DEAD, NULL, "over");
    snprintf(doc, sizeof(doc), "[{\"id\": \"in-array\"}, \"%60s\"]", "");
    expect_fail_lim(doc, strlen(doc), &lim, EXW_ELIMIT, EXW_JOB_DEAD, NULL, "over");
    /* A value that merely reads "id" is not the member id. */
    snprintf(doc, sizeof(doc), "{\"x\": \"id\", \"y\": \"z\", \"pad\": \"%60s\"}", "");
    expect_fail_lim(doc, strlen(doc), &lim, EXW_ELIMIT, EXW_JOB_DEAD, NULL, "over");
}

static void test_verdict_bad_utf8(void **state)
{
    (void)state;
    expect_invalid("{\"id\": \"u-1\", \"columns\": [{\"header\": \"\xff\", \"field\": \"a\"}], "
                   "\"rows\": []}",
                   "u-1", "UTF-8");
    /* A surrogate encoded in UTF-8, an overlong form. */
    expect_invalid("{\"rows\": [{\"a\": \"\xed\xa0\x80\"}], \"id\": \"u-2\"}", "u-2", "UTF-8");
    expect_invalid("{\"id\": \"u-3\", \"x\": \"\xc0\xaf\"}", "u-3", "UTF-8");
    /* Without a readable id it is dead. */
    {
        struct exw_limits lim;
        static const char doc[] = "{\"x\": \"\xff\", \"id\": \"a b\"}";

        exw_limits_default(&lim);
        expect_fail_lim(doc, strlen(doc), &lim, EXW_EJSON, EXW_JOB_DEAD, NULL, "UTF-8");
    }
}

/* "{"id": "deep", "x": [[[...]]]}" with @n arrays. */
static char *deep_doc(int n)
{
    struct exw_buf b;
    int i;

    exw_buf_init(&b, 1 << 20);
    assert_int_equal(exw_buf_printf(&b, "{\"id\": \"deep\", \"columns\": [{\"header\": \"A\", "
                                        "\"field\": \"a\"}], \"rows\": [], \"x\": "),
                     EXW_OK);
    for (i = 0; i < n; i++)
        assert_int_equal(exw_buf_append(&b, "[", 1), EXW_OK);
    for (i = 0; i < n; i++)
        assert_int_equal(exw_buf_append(&b, "]", 1), EXW_OK);
    assert_int_equal(exw_buf_append(&b, "}", 1), EXW_OK);
    return exw_buf_steal(&b, NULL);
}

static void test_verdict_depth(void **state)
{
    char *doc;

    (void)state;
    /* The top-level object is level 1: 31 more levels are fine. */
    doc = deep_doc(31);
    exw_job_free(parse_ok(doc));
    free(doc);
    doc = deep_doc(32);
    expect_invalid(doc, "deep", "32");
    free(doc);
    doc = deep_doc(40);
    expect_invalid(doc, "deep", "deeper");
    free(doc);
    doc = deep_doc(100000);
    expect_invalid(doc, "deep", "deeper");
    free(doc);
    /* Brackets inside strings are not nesting. */
    exw_job_free(parse_minimal("\"rows\": [], \"x\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                               "[[[[[[[[[[[[[[[[[[[[[[[[[[[[\""));
    /* Deep with no id at all is dead. */
    {
        struct exw_limits lim;
        char buf[200];

        exw_limits_default(&lim);
        memset(buf, '[', 100);
        memset(buf + 100, ']', 100);
        expect_fail_lim(buf, sizeof(buf), &lim, EXW_EJSON, EXW_JOB_DEAD, NULL, "deeper");
    }
}

static void test_invalid_lookup(void **state)
{
    (void)state;
    expect_invalid_member("\"lookup\": {\"service\": \"tether\", \"key\": \"sn\", \"url\": "
                          "\"http://evil/{key}\"}, \"rows\": []",
                          "lookup.url: unknown member");
    expect_invalid_member(
        "\"lookup\": {\"service\": \"tether\", \"key\": \"sn\", \"headers\": {}}, "
        "\"rows\": []",
        "lookup.headers");
    expect_invalid_member("\"lookup\": {\"service\": \"tether\", \"key\": \"sn\", \"Service\": "
                          "\"x\"}, \"rows\": []",
                          "lookup.Service");
    expect_invalid_member("\"lookup\": \"tether\", \"rows\": []", "lookup: expected an object");
    expect_invalid_member("\"lookup\": {\"key\": \"sn\"}, \"rows\": []", "lookup.service");
    expect_invalid_member("\"lookup\": {\"service\": \"\", \"key\": \"sn\"}, \"rows\": []",
                          "lookup.service");
    expect_invalid_member("\"lookup\": {\"service\": \"tether\"}, \"rows\": []", "lookup.key");
    expect_invalid_member("\"lookup\": {\"service\": 5, \"key\": \"sn\"}, \"rows\": []",
                          "lookup.service: expected a string");
    expect_invalid_member("\"lookup\": {\"service\": \"t\", \"key\": [\"sn\"]}, \"rows\": []",
                          "lookup.key: expected a string");
}

static void test_invalid_columns(void **state)
{
    char cols[2048];
    char big[400];

    (void)state;
    /* A lookup column in a job without lookup. */
    expect_invalid_columns("{\"header\": \"A\", \"field\": \"a\"}, {\"header\": \"R\", \"lookup\": "
                           "\"/r\"}",
                           "columns[1].lookup");
    /* Exactly one of field and lookup. */
    expect_invalid_columns("{\"header\": \"A\", \"field\": \"a\", \"lookup\": \"/a\"}",
                           "columns[0]: give exactly one");
    expect_invalid_columns("{\"header\": \"A\"}", "columns[0]: give exactly one");
    expect_invalid_columns("{\"header\": \"A\", \"field\": null, \"lookup\": null}",
                           "columns[0]: give exactly one");
    expect_invalid_columns("{\"header\": \"A\", \"field\": \"\"}", "columns[0].field");
    /* Columns themselves. */
    expect_invalid_columns("", "columns: must have 1 to 16384 columns, has 0");
    expect_invalid("{\"id\": \"j\", \"columns\": {}, \"rows\": []}", "j",
                   "columns: expected an array, got object");
    expect_invalid("{\"id\": \"j\", \"rows\": []}", "j", "columns: missing");
    expect_invalid("{\"id\": \"j\", \"columns\": \"A\", \"rows\": []}", "j",
                   "columns: expected an array");
    expect_invalid_columns("\"A\"", "columns[0]: expected an object");
    expect_invalid_columns("{\"header\": \"A\", \"field\": \"a\"}, null", "columns[1]");
    /* Headers. */
    expect_invalid_columns("{\"field\": \"a\"}", "columns[0].header: missing");
    expect_invalid_columns("{\"header\": 5, \"field\": \"a\"}", "columns[0].header: expected a "
                                                                "string, got number 5");
    memset(big, 'h', 256);
    big[256] = '\0';
    snprintf(cols, sizeof(cols),
             "{\"header\": \"A\", \"field\": \"a\"}, {\"header\": \"%s\", "
             "\"field\": \"b\"}",
             big);
    expect_invalid_columns(cols, "columns[1].header");
    expect_invalid_columns(cols, "255");
    /* The type and its spelling. */
    expect_invalid_columns("{\"header\": \"A\", \"field\": \"a\", \"type\": \"Number\"}",
                           "columns[0].type: unknown type \"Number\"");
    expect_invalid_columns("{\"header\": \"A\", \"field\": \"a\", \"type\": \"\"}",
                           "columns[0].type: unknown type");
    expect_invalid_columns("{\"header\": \"A\", \"field\": \"a\", \"type\": 1}",
                           "columns[0].type: expected a string");
    /* JSON Pointers. */
    expect_invalid("{\"id\": \"j\", \"lookup\": {\"service\": \"s\", \"key\": \"k\"}, "
                   "\"columns\": [{\"header\": \"A\", \"lookup\": \"abc\"}], \"rows\": []}",
                   "j", "columns[0].lookup: \"abc\" is not a JSON Pointer");
    expect_invalid("{\"id\": \"j\", \"lookup\": {\"service\": \"s\", \"key\": \"k\"}, "
                   "\"columns\": [{\"header\": \"A\", \"lookup\": \"/a~2b\"}], \"rows\": []}",
                   "j", "columns[0].lookup");
    /* Width. */
    expect_invalid_columns("{\"header\": \"A\", \"field\": \"a\", \"width\": -1}",
                           "columns[0].width");
    expect_invalid_columns("{\"header\": \"A\", \"field\": \"a\", \"width\": 0}",
                           "columns[0].width");
    expect_invalid_columns("{\"header\": \"A\", \"field\": \"a\", \"width\": 256}",
                           "columns[0].width");
    expect_invalid_columns("{\"header\": \"A\", \"field\": \"a\", \"width\": \"10\"}",
                           "columns[0].width");
    /* Format. */
    memset(big, '0', 128);
    big[128] = '\0';
    snprintf(cols, sizeof(cols), "{\"header\": \"A\", \"field\": \"a\", \"format\": \"%s\"}", big);
    expect_invalid_columns(cols, "columns[0].format");
    expect_invalid_columns("{\"header\": \"A\", \"field\": \"a\", \"format\": \"\"}",
                           "columns[0].format");
    expect_invalid_columns("{\"header\": \"A\", \"field\": \"a\", \"format\": 0}",
                           "columns[0].format");
}

static void test_column_limits_ok(void **state)
{
    char doc[4096];
    char big[800];
    struct exw_job *job;
    int i;

    (void)state;
    /* 255 characters of header, counted as characters, not bytes. */
    for (i = 0; i < 255; i++)
        memcpy(big + 2 * i, "\xc3\xa9", 2);
    big[510] = '\0';
    snprintf(doc, sizeof(doc),
             "{\"id\": \"j\", \"columns\": [{\"header\": \"%s\", \"field\": "
             "\"a\", \"width\": 255, \"format\": \"%0127d\"}], \"rows\": []}",
             big, 0);
    job = parse_ok(doc);
    assert_int_equal(strlen(job->columns[0].header), 510);
    assert_true(job->columns[0].width == 255);
    assert_int_equal(strlen(job->columns[0].format), 127);
    exw_job_free(job);
    /* An empty header is allowed; so is a null width. */
    job = parse_ok("{\"id\": \"j\", \"columns\": [{\"header\": \"\", \"field\": \"a\", \"width\": "
                   "null}], \"rows\": []}");
    assert_string_equal(job->columns[0].header, "");
    assert_true(job->columns[0].width == 0);
    exw_job_free(job);
    /* Pointers: the whole document, escapes, array indexes. */
    job = parse_ok("{\"id\": \"j\", \"lookup\": {\"service\": \"s\", \"key\": \"k\"}, \"columns\": "
                   "[{\"header\": \"A\", \"lookup\": \"\"}, {\"header\": \"B\", \"lookup\": "
                   "\"/a~1b/~0c/0\"}, {\"header\": \"C\", \"field\": \"k\"}], \"rows\": []}");
    assert_int_equal(job->nlookup_columns, 2);
    assert_int_equal(job->columns[0].lookup_index, 0);
    assert_int_equal(job->columns[1].lookup_index, 1);
    assert_string_equal(job->columns[1].pointer, "/a~1b/~0c/0");
    exw_job_free(job);
}

/* A document with @n columns "{"header": "c", "field": "f"}". */
static char *many_columns_doc(size_t n)
{
    struct exw_buf b;
    size_t i;

    exw_buf_init(&b, 64 << 20);
    assert_int_equal(
        exw_buf_printf(&b, "{\"id\": \"wide\", \"rows\": [{\"f\": 1}], \"columns\": ["), EXW_OK);
    for (i = 0; i < n; i++)
        assert_int_equal(
            exw_buf_printf(&b, "%s{\"header\": \"c%zu\", \"field\": \"f\"}", i ? "," : "", i),
            EXW_OK);
    assert_int_equal(exw_buf_printf(&b, "]}"), EXW_OK);
    return exw_buf_steal(&b, NULL);
}

static void test_column_count(void **state)
{
    char *doc;
    struct exw_job *job;

    (void)state;
    doc = many_columns_doc(16384);
    job = parse_ok(doc);
    assert_int_equal(job->ncolumns, 16384);
    assert_string_equal(job->columns[16383].header, "c16383");
    exw_job_free(job);
    free(doc);
    doc = many_columns_doc(16385);
    expect_invalid(doc, "wide", "columns: must have 1 to 16384 columns, has 16385");
    free(doc);
}

static void test_sheet_names(void **state)
{
    static const char *const bad[] = {
        "abcdefghijklmnopqrstuvwxyz012345", /* 32 characters */
        "a/b",
        "a[b",
        "a]b",
        "a:b",
        "a*b",
        "a?b",
        "a\\\\b",
        "'quoted",
        "quoted'",
        "",
    };
    char members[512];
    char name[200];
    struct exw_job *job;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(members, sizeof(members), "\"sheet\": \"%s\", \"rows\": []", bad[i]);
        expect_invalid_member(members, "sheet: ");
    }
    expect_invalid_member("\"sheet\": 1, \"rows\": []", "sheet: expected a string");
    /* 31 characters, plain or multi-byte, and an apostrophe inside. */
    job = parse_minimal("\"sheet\": \"abcdefghijklmnopqrstuvwxyz01234\", \"rows\": []");
    assert_int_equal(strlen(job->sheet), 31);
    exw_job_free(job);
    for (i = 0; i < 31; i++)
        memcpy(name + 3 * i, "\xe2\x82\xac", 3);
    name[93] = '\0';
    snprintf(members, sizeof(members), "\"sheet\": \"%s\", \"rows\": []", name);
    job = parse_minimal(members);
    assert_string_equal(job->sheet, name);
    exw_job_free(job);
    job = parse_minimal("\"sheet\": \"Bob's sheet\", \"rows\": []");
    assert_string_equal(job->sheet, "Bob's sheet");
    exw_job_free(job);
    /* 32 multi-byte characters are too many. */
    memcpy(name + 93, "\xe2\x82\xac", 4);
    snprintf(members, sizeof(members), "\"sheet\": \"%s\", \"rows\": []", name);
    expect_invalid_member(members, "sheet: must have 1 to 31 characters, has 32");
}

static void test_sheet_name_valid(void **state)
{
    struct exw_errbuf eb = {{0}};

    (void)state;
    assert_true(exw_job_sheet_name_valid("Sheet1", &eb));
    assert_true(exw_job_sheet_name_valid("a'b", NULL));
    assert_false(exw_job_sheet_name_valid("", &eb));
    assert_contains(eb.msg, "1 to 31");
    assert_false(exw_job_sheet_name_valid("x?", &eb));
    assert_contains(eb.msg, "[ ] : * ? / \\");
    assert_false(exw_job_sheet_name_valid("'", &eb));
    assert_contains(eb.msg, "apostrophe");
    assert_false(exw_job_sheet_name_valid("a\xff", &eb));
    assert_contains(eb.msg, "UTF-8");
    assert_false(exw_job_sheet_name_valid("a\\b", NULL));
}

static void test_id_valid(void **state)
{
    char id[129];

    (void)state;
    memset(id, 'x', sizeof(id));
    assert_true(exw_job_id_valid(id, 128));
    assert_false(exw_job_id_valid(id, 129));
    assert_false(exw_job_id_valid(id, 0));
    assert_true(exw_job_id_valid("a.b_c:d-E9", 10));
    assert_false(exw_job_id_valid("a b", 3));
    assert_false(exw_job_id_valid("a\0b", 3));
    assert_false(exw_job_id_valid("a/b", 3));
    assert_false(exw_job_id_valid("{a}", 3));
    assert_false(exw_job_id_valid("\xc3\xa9", 2));
    /* Only @len bytes count. */
    assert_true(exw_job_id_valid("ab cd", 2));
}

static void test_invalid_rows(void **state)
{
    struct exw_job *job;

    (void)state;
    expect_invalid_member("", "rows: missing");
    expect_invalid_member("\"rows\": {}", "rows: expected an array");
    expect_invalid_member("\"rows\": \"x\"", "rows: expected an array");
    expect_invalid_member("\"rows\": [{}, [1], {}]", "rows[1]: expected an object, got array");
    expect_invalid_member("\"rows\": [{}, {}, 5]", "rows[2]: expected an object, got number");
    expect_invalid_member("\"rows\": [null]", "rows[0]");
    /* rows and rows_key together. */
    expect_invalid_member("\"rows\": [], \"rows_key\": \"export:rows:j\"", "rows_key");
    /* rows_key must name a list under the prefix. */
    expect_invalid_member("\"rows_key\": \"other:rows:j\"", "rows_key");
    expect_invalid_member("\"rows_key\": \"other:rows:j\"", "\"export:\"");
    expect_invalid_member("\"rows_key\": \"exportrows\"", "rows_key");
    expect_invalid_member("\"rows_key\": \"exports:rows\"", "rows_key");
    expect_invalid_member("\"rows_key\": \"export\"", "rows_key");
    expect_invalid_member("\"rows_key\": \"\"", "rows_key");
    expect_invalid_member("\"rows_key\": \"export:a\\nb\"", "rows_key");
    expect_invalid_member("\"rows_key\": 5", "rows_key: expected a string");

    job = parse_minimal("\"rows_key\": \"export:rows:j\"");
    assert_string_equal(job->rows_key, "export:rows:j");
    assert_int_equal(job->nrows, 0);
    exw_job_free(job);
    /* A null rows with a rows_key is as if absent. */
    job = parse_minimal("\"rows_key\": \"export:rows:j\", \"rows\": null");
    assert_string_equal(job->rows_key, "export:rows:j");
    exw_job_free(job);
}

static void test_rows_key_prefix(void **state)
{
    static const char doc[] = "{\"id\": \"j\", \"columns\": [{\"header\": \"A\", \"field\": "
                              "\"a\"}], \"rows_key\": \"{export}:rows:j\"}";
    struct exw_limits lim;
    struct exw_errbuf eb;
    struct exw_job *job;
    enum exw_job_verdict verdict;
    char *id;

    (void)state;
    exw_limits_default(&lim);
    /* A hash-tag prefix, as on Redis Cluster. */
    assert_int_equal(parse_with(doc, strlen(doc), &lim, "{export}", &job, &verdict, &id, &eb),
                     EXW_OK);
    assert_string_equal(job->rows_key, "{export}:rows:j");
    exw_job_free(job);
    free(id);
    assert_int_equal(parse_with(doc, strlen(doc), &lim, "export", &job, &verdict, &id, &eb),
                     EXW_EJSON);
    assert_int_equal(verdict, EXW_JOB_INVALID);
    assert_null(job);
    assert_string_equal(id, "j");
    assert_contains(eb.msg, "rows_key");
    free(id);
}

static void test_invalid_scalars(void **state)
{
    struct exw_job *job;

    (void)state;
    expect_invalid_member("\"rows\": [], \"result_ttl\": 0", "result_ttl");
    expect_invalid_member("\"rows\": [], \"result_ttl\": 1.5", "result_ttl");
    expect_invalid_member("\"rows\": [], \"result_ttl\": \"x\"", "result_ttl");
    expect_invalid_member("\"rows\": [], \"result_ttl\": -5", "result_ttl");
    expect_invalid_member("\"rows\": [], \"result_ttl\": 31536001", "result_ttl");
    expect_invalid_member("\"rows\": [], \"result_ttl\": true", "result_ttl");
    expect_invalid_member("\"rows\": [], \"on_lookup_error\": \"maybe\"", "on_lookup_error");
    expect_invalid_member("\"rows\": [], \"on_lookup_error\": \"FAIL\"", "on_lookup_error");
    expect_invalid_member("\"rows\": [], \"on_lookup_error\": 1", "on_lookup_error");
    expect_invalid_member("\"rows\": [], \"filename\": \"\"", "filename");
    expect_invalid_member("\"rows\": [], \"filename\": \"../x.xlsx\"", "filename");
    expect_invalid_member("\"rows\": [], \"filename\": \"a\\\\b.xlsx\"", "filename");
    expect_invalid_member("\"rows\": [], \"filename\": \"a\\tb.xlsx\"", "filename");
    expect_invalid_member("\"rows\": [], \"filename\": 7", "filename");

    job = parse_minimal("\"rows\": [], \"result_ttl\": 1");
    assert_int_equal(job->result_ttl_s, 1);
    exw_job_free(job);
    job = parse_minimal("\"rows\": [], \"result_ttl\": 31536000");
    assert_int_equal(job->result_ttl_s, 31536000);
    exw_job_free(job);
    job = parse_minimal("\"rows\": [], \"result_ttl\": 6e1");
    assert_int_equal(job->result_ttl_s, 60);
    exw_job_free(job);
}

static void test_limits_default(void **state)
{
    struct exw_limits lim;

    (void)state;
    memset(&lim, 0xff, sizeof(lim));
    exw_limits_default(&lim);
    assert_int_equal(lim.max_job_bytes, 64u << 20);
    assert_int_equal(lim.max_columns, 16384);
    assert_int_equal(lim.max_header_chars, 255);
    assert_int_equal(lim.max_string_chars, 32767);
    assert_int_equal(lim.max_depth, 32);
    assert_true(lim.max_rows >= EXW_EXCEL_MAX_ROWS);
}

static void test_limits_applied(void **state)
{
    struct exw_limits lim;
    struct exw_errbuf eb;
    struct exw_job *job;
    enum exw_job_verdict verdict;
    char *id;
    static const char doc[] = "{\"id\": \"j\", \"columns\": [{\"header\": \"AB\", \"field\": "
                              "\"a\"}, {\"header\": \"B\", \"field\": \"b\"}], \"rows\": [{}, {}, "
                              "{}]}";

    (void)state;
    exw_limits_default(&lim);
    lim.max_rows = 2;
    assert_int_equal(parse_with(doc, strlen(doc), &lim, PREFIX, &job, &verdict, &id, &eb),
                     EXW_EJSON);
    assert_int_equal(verdict, EXW_JOB_INVALID);
    assert_contains(eb.msg, "rows: 3 rows is over the limit of 2");
    free(id);

    exw_limits_default(&lim);
    lim.max_columns = 1;
    assert_int_equal(parse_with(doc, strlen(doc), &lim, PREFIX, &job, &verdict, &id, &eb),
                     EXW_EJSON);
    assert_contains(eb.msg, "columns: must have 1 to 1 columns, has 2");
    free(id);

    exw_limits_default(&lim);
    lim.max_header_chars = 1;
    assert_int_equal(parse_with(doc, strlen(doc), &lim, PREFIX, &job, &verdict, &id, &eb),
                     EXW_EJSON);
    assert_contains(eb.msg, "columns[0].header");
    free(id);

    exw_limits_default(&lim);
    lim.max_depth = 2;
    assert_int_equal(parse_with(doc, strlen(doc), &lim, PREFIX, &job, &verdict, &id, &eb),
                     EXW_EJSON);
    assert_int_equal(verdict, EXW_JOB_INVALID);
    assert_contains(eb.msg, "deeper than 2");
    free(id);

    exw_limits_default(&lim);
    lim.max_string_chars = 3;
    assert_int_equal(parse_with(doc, strlen(doc), &lim, PREFIX, &job, &verdict, &id, &eb), EXW_OK);
    assert_int_equal(job->limits.max_string_chars, 3);
    exw_job_free(job);
    free(id);
}

/* ---- Cells ---- */

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

/* The cells of the row @row_json of @job, as row @index; the row is returned in
 * *@row (it owns the strings the cells borrow). */
static exw_err row_cells(const struct exw_job *job, const char *row_json, size_t index,
                         const struct exw_cell *lookup, struct exw_row **row,
                         struct exw_cell *cells, struct exw_errbuf *eb)
{
    char *copy = exact_copy(row_json, strlen(row_json));

    memset(eb, 0, sizeof(*eb));
    assert_int_equal(exw_row_parse(job, copy, strlen(row_json), index, row, eb), EXW_OK);
    free(copy);
    return exw_job_row_cells(job, *row, index, lookup, cells, eb);
}

/* One value of one column: @row_json must type into @kind; for text, @str. */
static void expect_cell(const struct exw_job *job, const char *row_json, int col,
                        enum exw_cell_kind kind, const char *str, double num)
{
    struct exw_cell cells[NCOLS];
    struct exw_errbuf eb;
    struct exw_row *row;
    exw_err rc = row_cells(job, row_json, 0, NULL, &row, cells, &eb);

    if (rc != EXW_OK)
        print_error("row %s: %s\n", row_json, eb.msg);
    assert_int_equal(rc, EXW_OK);
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
    exw_job_free(job);
}

static void test_cells_string_limit(void **state)
{
    static const char doc[] = "{\"id\": \"lim\", \"columns\": [{\"header\": \"Name\", \"field\": "
                              "\"s\"}], \"rows\": []}";
    struct exw_limits lim;
    struct exw_errbuf eb;
    struct exw_job *job;
    enum exw_job_verdict verdict;
    char *id;

    (void)state;
    exw_limits_default(&lim);
    lim.max_string_chars = 5;
    assert_int_equal(parse_with(doc, strlen(doc), &lim, PREFIX, &job, &verdict, &id, &eb), EXW_OK);
    free(id);
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
    exw_job_free(job);
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
    exw_job_free(job);
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
    exw_job_free(job);
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
    exw_job_free(job);
}

/* A cell of @col for @row_json must be the date and time given. */
static void expect_dt(const struct exw_job *job, const char *row_json, int col, int y, int mo,
                      int d, int h, int mi, double sec)
{
    struct exw_cell cells[NCOLS];
    struct exw_errbuf eb;
    struct exw_row *row;
    exw_err rc = row_cells(job, row_json, 0, NULL, &row, cells, &eb);

    if (rc != EXW_OK)
        print_error("row %s: %s\n", row_json, eb.msg);
    assert_int_equal(rc, EXW_OK);
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
    exw_job_free(job);
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
    exw_job_free(job);
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
    assert_int_equal(row_cells(job, "{\"s\": \"a\"}", 0, NULL, &row, cells, &eb), EXW_OK);
    assert_int_equal(cells[COL_L1].kind, EXW_CELL_EMPTY);
    assert_int_equal(cells[COL_L2].kind, EXW_CELL_EMPTY);
    exw_row_free(row);
    /* With them, the row's cells borrow their text and own nothing. */
    assert_int_equal(row_cells(job, "{\"s\": \"a\"}", 0, lookup, &row, cells, &eb), EXW_OK);
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
    exw_job_free(job);
}

static void test_cells_inline_rows_and_cleanup(void **state)
{
    struct exw_job *job = parse_ok("{\"id\": \"j\", \"columns\": [{\"header\": \"A\", \"field\": "
                                   "\"a\"}, {\"header\": \"B\", \"field\": \"b\", \"type\": "
                                   "\"number\"}], \"rows\": [{\"a\": 5, \"b\": 1}, {\"a\": "
                                   "\"x\", \"b\": \"bad\"}]}");
    struct exw_cell cells[2];
    struct exw_errbuf eb = {{0}};

    (void)state;
    assert_int_equal(exw_job_row_cells(job, job->rows[0], 0, NULL, cells, &eb), EXW_OK);
    assert_string_equal(cells[0].str, "5");
    exw_cells_cleanup(cells, 2);
    assert_int_equal(cells[0].kind, EXW_CELL_EMPTY);
    assert_int_equal(cells[1].kind, EXW_CELL_EMPTY);
    assert_int_equal(exw_job_row_cells(job, job->rows[1], 1, NULL, cells, &eb), EXW_EJSON);
    assert_contains(eb.msg, "rows[1].b (column \"B\", number)");
    /* The errbuf is optional. */
    assert_int_equal(exw_job_row_cells(job, job->rows[1], 1, NULL, cells, NULL), EXW_EJSON);
    exw_job_free(job);
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
    exw_job_free(job);

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
    struct exw_row *row;
    char *copy = exact_copy(row_json, strlen(row_json));

    assert_int_equal(exw_row_parse(job, copy, strlen(row_json), 0, &row, &eb), EXW_OK);
    free(copy);
    assert_int_equal(exw_job_row_key(job, row, 0, scratch, &key, &eb), EXW_OK);
    if (want == NULL) {
        assert_null(key);
    } else {
        assert_non_null(key);
        assert_string_equal(key, want);
    }
    exw_row_free(row);
}

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
    assert_int_equal(exw_row_parse(job, "{\"sn\": 12}", 10, 0, &row, &eb), EXW_OK);
    assert_int_equal(exw_job_row_key(job, row, 0, scratch, &key, &eb), EXW_OK);
    assert_ptr_equal(key, scratch);
    exw_row_free(row);

    /* Other types are an error naming the row. */
    assert_int_equal(exw_row_parse(job, "{\"sn\": true}", 12, 0, &row, &eb), EXW_OK);
    key = "unset";
    assert_int_equal(exw_job_row_key(job, row, 3, scratch, &key, &eb), EXW_EJSON);
    assert_null(key);
    assert_contains(eb.msg, "rows[3].sn");
    assert_contains(eb.msg, "true");
    exw_row_free(row);
    assert_int_equal(exw_row_parse(job, "{\"sn\": [\"a\"]}", 13, 0, &row, &eb), EXW_OK);
    assert_int_equal(exw_job_row_key(job, row, 4, scratch, &key, &eb), EXW_EJSON);
    assert_contains(eb.msg, "rows[4].sn");
    exw_row_free(row);
    exw_job_free(job);

    /* A job without lookup has no keys. */
    plain = parse_minimal("\"rows\": [{\"a\": \"x\"}]");
    assert_int_equal(exw_job_row_key(plain, plain->rows[0], 0, scratch, &key, &eb), EXW_OK);
    assert_null(key);
    exw_job_free(plain);
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

static void test_lookup_cells(void **state)
{
    struct exw_job *job = parse_ok(lookup_doc);
    struct exw_cell out[NLK];
    struct exw_errbuf eb;

    (void)state;
    assert_int_equal(job->nlookup_columns, NLK);
    assert_int_equal(lookup_cells(job,
                                  "{\"name\": \"ACME Ltd\", \"discount\": {\"ratio\": 0.25}, "
                                  "\"tiers\": [3, 4], \"since\": \"2020-05-06\", \"a/b\": true, "
                                  "\"code\": 17.50, \"other\": [1, 2, 3]}",
                                  out, &eb),
                     EXW_OK);
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
    assert_int_equal(lookup_cells(job,
                                  "{\"name\": null, \"discount\": {}, \"tiers\": [], "
                                  "\"since\": null}",
                                  out, &eb),
                     EXW_OK);
    for (size_t i = 0; i < NLK; i++)
        assert_int_equal(out[i].kind, EXW_CELL_EMPTY);
    exw_cells_cleanup(out, NLK);
    assert_int_equal(lookup_cells(job, "[1, 2]", out, &eb), EXW_OK);
    for (size_t i = 0; i < NLK; i++)
        assert_int_equal(out[i].kind, EXW_CELL_EMPTY);
    exw_cells_cleanup(out, NLK);
    assert_int_equal(lookup_cells(job, "\"just text\"", out, &eb), EXW_OK);
    assert_int_equal(out[LK_NAME].kind, EXW_CELL_EMPTY);
    exw_cells_cleanup(out, NLK);
    exw_job_free(job);
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
    exw_job_free(job);
}

static void test_lookup_cells_string_limit(void **state)
{
    struct exw_limits lim;
    struct exw_errbuf eb;
    struct exw_job *job;
    enum exw_job_verdict verdict;
    struct exw_cell out[NLK];
    char *id;

    (void)state;
    exw_limits_default(&lim);
    lim.max_string_chars = 4;
    assert_int_equal(
        parse_with(lookup_doc, strlen(lookup_doc), &lim, PREFIX, &job, &verdict, &id, &eb), EXW_OK);
    free(id);
    assert_int_equal(lookup_cells(job, "{\"name\": \"ACME\"}", out, &eb), EXW_OK);
    assert_string_equal(out[LK_NAME].str, "ACME");
    exw_cells_cleanup(out, NLK);
    assert_int_not_equal(lookup_cells(job, "{\"name\": \"ACME Ltd\"}", out, &eb), EXW_OK);
    assert_contains(eb.msg, "/name");
    assert_contains(eb.msg, "limit of 4");
    assert_null(out[LK_NAME].owned);
    exw_job_free(job);
}

/* ---- Dates and times ---- */

struct dt_case {
    const char *s;
    int with_time;
    int ok;
    int y, mo, d, h, mi;
    double sec;
};

static void test_parse_datetime(void **state)
{
    static const struct dt_case cases[] = {
        /* Dates. */
        {"2026-01-02", 0, 1, 2026, 1, 2, 0, 0, 0},
        {"2024-02-29", 0, 1, 2024, 2, 29, 0, 0, 0},
        {"2000-02-29", 0, 1, 2000, 2, 29, 0, 0, 0},
        {"1900-01-01", 0, 1, 1900, 1, 1, 0, 0, 0},
        {"9999-12-31", 0, 1, 9999, 12, 31, 0, 0, 0},
        {"2026-04-30", 0, 1, 2026, 4, 30, 0, 0, 0},
        {"2023-02-29", 0, 0, 0, 0, 0, 0, 0, 0},
        {"2100-02-29", 0, 0, 0, 0, 0, 0, 0, 0},
        {"1900-02-29", 0, 0, 0, 0, 0, 0, 0, 0},
        {"2026-02-30", 0, 0, 0, 0, 0, 0, 0, 0},
        {"2026-04-31", 0, 0, 0, 0, 0, 0, 0, 0},
        {"2026-13-01", 0, 0, 0, 0, 0, 0, 0, 0},
        {"2026-00-10", 0, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-00", 0, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-32", 0, 0, 0, 0, 0, 0, 0, 0},
        {"1899-12-31", 0, 0, 0, 0, 0, 0, 0, 0},
        {"0000-01-01", 0, 0, 0, 0, 0, 0, 0, 0},
        {"10000-01-01", 0, 0, 0, 0, 0, 0, 0, 0},
        {"2026-1-02", 0, 0, 0, 0, 0, 0, 0, 0},
        {"2026/01/02", 0, 0, 0, 0, 0, 0, 0, 0},
        {"26-01-02", 0, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02 ", 0, 0, 0, 0, 0, 0, 0, 0},
        {" 2026-01-02", 0, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T00:00:00Z", 0, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-0", 0, 0, 0, 0, 0, 0, 0, 0},
        {"2026", 0, 0, 0, 0, 0, 0, 0, 0},
        {"", 0, 0, 0, 0, 0, 0, 0, 0},
        {"+026-01-02", 0, 0, 0, 0, 0, 0, 0, 0},
        /* Datetimes. */
        {"2026-01-02T03:04:05Z", 1, 1, 2026, 1, 2, 3, 4, 5},
        {"2026-01-02T03:04:05", 1, 1, 2026, 1, 2, 3, 4, 5},
        {"2026-01-02T03:04:05+00:00", 1, 1, 2026, 1, 2, 3, 4, 5},
        {"2026-01-02T03:04:05-00:00", 1, 1, 2026, 1, 2, 3, 4, 5},
        {"2026-01-02T00:00:00Z", 1, 1, 2026, 1, 2, 0, 0, 0},
        {"2026-01-02T23:59:59Z", 1, 1, 2026, 1, 2, 23, 59, 59},
        {"2026-01-02T03:04:05.123456789+02:00", 1, 1, 2026, 1, 2, 1, 4, 5.123},
        {"2026-01-02T03:04:05.5Z", 1, 1, 2026, 1, 2, 3, 4, 5.5},
        {"2026-01-02T03:04:05.12Z", 1, 1, 2026, 1, 2, 3, 4, 5.12},
        {"2026-01-02T03:04:05.1239Z", 1, 1, 2026, 1, 2, 3, 4, 5.123},
        {"2026-01-02T03:04:05.000000001", 1, 1, 2026, 1, 2, 3, 4, 5},
        {"2026-01-02T03:04:59.9999Z", 1, 1, 2026, 1, 2, 3, 4, 59.999},
        /* Offsets that cross midnight, a month, a year, a leap day. */
        {"2026-01-01T20:00:00-05:30", 1, 1, 2026, 1, 2, 1, 30, 0},
        {"2026-01-31T22:00:00-05:30", 1, 1, 2026, 2, 1, 3, 30, 0},
        {"2026-12-31T20:00:00-05:30", 1, 1, 2027, 1, 1, 1, 30, 0},
        {"2024-02-28T23:00:00-05:30", 1, 1, 2024, 2, 29, 4, 30, 0},
        {"2026-02-28T23:00:00-05:30", 1, 1, 2026, 3, 1, 4, 30, 0},
        {"2026-01-01T03:00:00+05:30", 1, 1, 2025, 12, 31, 21, 30, 0},
        {"2026-03-01T01:00:00+05:30", 1, 1, 2026, 2, 28, 19, 30, 0},
        {"2024-03-01T01:00:00+05:30", 1, 1, 2024, 2, 29, 19, 30, 0},
        {"2026-01-02T03:04:05.123-23:59", 1, 1, 2026, 1, 3, 3, 3, 5.123},
        {"2026-01-02T00:00:00+23:59", 1, 1, 2026, 1, 1, 0, 1, 0},
        {"1900-01-01T00:30:00-01:00", 1, 1, 1900, 1, 1, 1, 30, 0},
        {"9999-12-31T23:00:00+05:00", 1, 1, 9999, 12, 31, 18, 0, 0},
        /* Out of Excel's years only once moved to UTC. */
        {"1900-01-01T00:30:00+01:00", 1, 0, 0, 0, 0, 0, 0, 0},
        {"9999-12-31T23:00:00-05:00", 1, 0, 0, 0, 0, 0, 0, 0},
        /* Malformed. */
        {"2026-01-02T03:04Z", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T03:04", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T03:04:5Z", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02 03:04:05Z", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02t03:04:05Z", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T24:00:00Z", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T23:60:00Z", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T23:59:60Z", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T03:04:05.Z", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T03:04:05.1234567890Z", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T03:04:05,5Z", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T03:04:05ZZ", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T03:04:05z", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T03:04:05+0200", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T03:04:05+02", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T03:04:05+2:00", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T03:04:05+24:00", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T03:04:05+02:60", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T03:04:05+02:00x", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T03:04:05+", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T03:04:05+02:", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T03:04:05.", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-01-02T03:04:05 ", 1, 0, 0, 0, 0, 0, 0, 0},
        {"2026-02-30T03:04:05Z", 1, 0, 0, 0, 0, 0, 0, 0},
        {"1899-12-31T23:59:59Z", 1, 0, 0, 0, 0, 0, 0, 0},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct dt_case *c = &cases[i];
        struct exw_errbuf eb = {{0}};
        struct exw_datetime dt;
        exw_err rc = exw_parse_datetime(c->s, c->with_time, &dt, &eb);

        if ((rc == EXW_OK) != c->ok)
            print_error("case %zu \"%s\" (with_time %d): rc %d \"%s\"\n", i, c->s, c->with_time, rc,
                        eb.msg);
        if (!c->ok) {
            assert_int_equal(rc, EXW_EJSON);
            assert_true(eb.msg[0] != '\0');
            assert_int_equal(exw_parse_datetime(c->s, c->with_time, &dt, NULL), EXW_EJSON);
            continue;
        }
        assert_int_equal(rc, EXW_OK);
        if (dt.year != c->y || dt.month != c->mo || dt.day != c->d || dt.hour != c->h ||
            dt.min != c->mi || fabs(dt.sec - c->sec) > 1e-9)
            print_error("case %zu \"%s\": got %04d-%02d-%02d %02d:%02d:%06.3f\n", i, c->s, dt.year,
                        dt.month, dt.day, dt.hour, dt.min, dt.sec);
        assert_int_equal(dt.year, c->y);
        assert_int_equal(dt.month, c->mo);
        assert_int_equal(dt.day, c->d);
        assert_int_equal(dt.hour, c->h);
        assert_int_equal(dt.min, c->mi);
        assert_true(fabs(dt.sec - c->sec) < 1e-9);
    }
}

static void test_parse_datetime_messages(void **state)
{
    struct exw_errbuf eb = {{0}};
    struct exw_datetime dt;

    (void)state;
    assert_int_equal(exw_parse_datetime("2026-02-30", 0, &dt, &eb), EXW_EJSON);
    assert_contains(eb.msg, "2026-02-30 is not a calendar date");
    assert_int_equal(exw_parse_datetime("1899-12-31", 0, &dt, &eb), EXW_EJSON);
    assert_contains(eb.msg, "1899");
    assert_int_equal(exw_parse_datetime("nope", 0, &dt, &eb), EXW_EJSON);
    assert_contains(eb.msg, "YYYY-MM-DD");
    assert_int_equal(exw_parse_datetime("2026-01-02T03:04", 1, &dt, &eb), EXW_EJSON);
    assert_contains(eb.msg, "YYYY-MM-DDTHH:MM:SS");
}

/* ---- Dead letters ---- */

/* Parses a dead entry back; checks its three members. */
static void check_dead_entry(const char *entry, const char *want_job, const char *want_error,
                             long long want_at)
{
    cJSON *root = NULL;
    const cJSON *v;
    struct exw_errbuf eb = {{0}};

    assert_non_null(entry);
    assert_int_equal(exw_json_parse(entry, strlen(entry), 4, &root, &eb), EXW_OK);
    assert_true(cJSON_IsObject(root));
    assert_int_equal(cJSON_GetArraySize(root), 3);
    v = cJSON_GetObjectItemCaseSensitive(root, "job");
    assert_true(cJSON_IsString(v));
    assert_string_equal(v->valuestring, want_job);
    v = cJSON_GetObjectItemCaseSensitive(root, "error");
    assert_true(cJSON_IsString(v));
    assert_string_equal(v->valuestring, want_error);
    v = cJSON_GetObjectItemCaseSensitive(root, "failed_at");
    assert_true(cJSON_IsNumber(v));
    assert_true(v->valuedouble == (double)want_at);
    cJSON_Delete(root);
}

static void test_dead_entry(void **state)
{
    static const char doc[] = "{\"id\": \"x\xff\", \"q\": \"\\\"quoted\\\"\n\ttab\"}";
    static const char want[] = "{\"id\": \"x\xef\xbf\xbd\", \"q\": \"\\\"quoted\\\"\n\ttab\"}";
    char *entry;

    (void)state;
    entry = exw_job_dead_entry(doc, strlen(doc), "the job document is not valid UTF-8",
                               1764000000123LL);
    check_dead_entry(entry, want, "the job document is not valid UTF-8", 1764000000123LL);
    /* The number is written as a plain integer. */
    assert_contains(entry, "\"failed_at\":1764000000123");
    free(entry);

    /* Truncated sequences, a NUL byte and bytes beyond the given length. */
    entry = exw_job_dead_entry("a\xe2\x82"
                               "b\0c\xf0\x9f\x98\x80zzz",
                               10, "e\"rr", 0);
    check_dead_entry(entry,
                     "a\xef\xbf\xbd"
                     "b\xef\xbf\xbd"
                     "c\xf0\x9f\x98\x80",
                     "e\"rr", 0);
    free(entry);

    /* An empty document. */
    entry = exw_job_dead_entry("", 0, "empty document", 1);
    check_dead_entry(entry, "", "empty document", 1);
    free(entry);

    /* A large document is kept whole. */
    {
        size_t len = 100000;
        char *big = malloc(len + 1);

        assert_non_null(big);
        memset(big, 'q', len);
        big[len] = '\0';
        entry = exw_job_dead_entry(big, len, "too big", 2);
        check_dead_entry(entry, big, "too big", 2);
        free(entry);
        free(big);
    }
}

/* ---- Rows from a rows_key list ---- */

static void test_row_parse(void **state)
{
    struct exw_job *job = parse_ok(typed_doc);
    struct exw_errbuf eb = {{0}};
    struct exw_row *row = (struct exw_row *)&eb;
    struct exw_cell cells[NCOLS];
    char *copy;

    (void)state;
    copy = exact_copy("{\"s\": \"v\", \"n\": 2}", 18);
    assert_int_equal(exw_row_parse(job, copy, 18, 11, &row, &eb), EXW_OK);
    free(copy);
    assert_non_null(row);
    assert_int_equal(exw_job_row_cells(job, row, 11, NULL, cells, &eb), EXW_OK);
    assert_string_equal(cells[COL_S].str, "v");
    assert_true(cells[COL_N].num == 2);
    exw_row_free(row);
    exw_row_free(NULL);

    row = (struct exw_row *)&eb;
    assert_int_equal(exw_row_parse(job, "[1, 2]", 6, 11, &row, &eb), EXW_EJSON);
    assert_null(row);
    assert_contains(eb.msg, "rows[11]: expected an object, got array");

    row = (struct exw_row *)&eb;
    assert_int_equal(exw_row_parse(job, "{\"s\": ", 6, 12, &row, &eb), EXW_EJSON);
    assert_null(row);
    assert_contains(eb.msg, "rows[12]: not valid JSON");

    assert_int_equal(exw_row_parse(job, "", 0, 13, &row, &eb), EXW_EJSON);
    assert_null(row);
    assert_contains(eb.msg, "rows[13]");
    assert_int_equal(exw_row_parse(job, "\"s\"", 3, 14, &row, &eb), EXW_EJSON);
    assert_contains(eb.msg, "rows[14]: expected an object, got string");
    assert_int_equal(exw_row_parse(job, "{\"s\": \"\xff\"}", 10, 15, &row, &eb), EXW_EJSON);
    assert_contains(eb.msg, "rows[15]");
    assert_int_equal(exw_row_parse(job, "{} {}", 5, 16, &row, &eb), EXW_EJSON);
    assert_contains(eb.msg, "rows[16]");
    /* The job's depth limit applies: the row object and 32 arrays are 33 levels. */
    {
        struct exw_buf b;
        int i;

        exw_buf_init(&b, 1000);
        assert_int_equal(exw_buf_printf(&b, "{\"a\": "), EXW_OK);
        for (i = 0; i < 32; i++)
            assert_int_equal(exw_buf_append(&b, "[", 1), EXW_OK);
        for (i = 0; i < 32; i++)
            assert_int_equal(exw_buf_append(&b, "]", 1), EXW_OK);
        assert_int_equal(exw_buf_append(&b, "}", 1), EXW_OK);
        assert_int_equal(exw_row_parse(job, b.data, b.len, 17, &row, &eb), EXW_EJSON);
        assert_contains(eb.msg, "rows[17]");
        assert_contains(eb.msg, "32");
        assert_null(row);
        exw_buf_cleanup(&b);
        /* One level less is fine. */
        assert_int_equal(exw_buf_printf(&b, "{\"a\": "), EXW_OK);
        for (i = 0; i < 31; i++)
            assert_int_equal(exw_buf_append(&b, "[", 1), EXW_OK);
        for (i = 0; i < 31; i++)
            assert_int_equal(exw_buf_append(&b, "]", 1), EXW_OK);
        assert_int_equal(exw_buf_append(&b, "}", 1), EXW_OK);
        assert_int_equal(exw_row_parse(job, b.data, b.len, 17, &row, &eb), EXW_OK);
        exw_row_free(row);
        exw_buf_cleanup(&b);
    }
    /* Trailing whitespace is fine. */
    assert_int_equal(exw_row_parse(job, "{}\r\n", 4, 18, &row, &eb), EXW_OK);
    exw_row_free(row);
    exw_job_free(job);
}

static void test_type_names(void **state)
{
    (void)state;
    assert_string_equal(exw_col_type_name(EXW_COL_STRING), "string");
    assert_string_equal(exw_col_type_name(EXW_COL_NUMBER), "number");
    assert_string_equal(exw_col_type_name(EXW_COL_INTEGER), "integer");
    assert_string_equal(exw_col_type_name(EXW_COL_BOOLEAN), "boolean");
    assert_string_equal(exw_col_type_name(EXW_COL_DATE), "date");
    assert_string_equal(exw_col_type_name(EXW_COL_DATETIME), "datetime");
    assert_string_equal(exw_col_type_default_format(EXW_COL_DATE), "yyyy-mm-dd");
    assert_string_equal(exw_col_type_default_format(EXW_COL_DATETIME), "yyyy-mm-dd hh:mm:ss");
    assert_null(exw_col_type_default_format(EXW_COL_STRING));
    assert_null(exw_col_type_default_format(EXW_COL_NUMBER));
    assert_null(exw_col_type_default_format(EXW_COL_BOOLEAN));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_full),
        cmocka_unit_test(test_parse_full_rows),
        cmocka_unit_test(test_parse_defaults),
        cmocka_unit_test(test_parse_unknown_members_ignored),
        cmocka_unit_test(test_verdict_dead),
        cmocka_unit_test(test_verdict_invalid_with_id),
        cmocka_unit_test(test_verdict_too_large),
        cmocka_unit_test(test_too_large_without_id),
        cmocka_unit_test(test_verdict_bad_utf8),
        cmocka_unit_test(test_verdict_depth),
        cmocka_unit_test(test_invalid_lookup),
        cmocka_unit_test(test_invalid_columns),
        cmocka_unit_test(test_column_limits_ok),
        cmocka_unit_test(test_column_count),
        cmocka_unit_test(test_sheet_names),
        cmocka_unit_test(test_sheet_name_valid),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_invalid_rows),
        cmocka_unit_test(test_rows_key_prefix),
        cmocka_unit_test(test_invalid_scalars),
        cmocka_unit_test(test_limits_default),
        cmocka_unit_test(test_limits_applied),
        cmocka_unit_test(test_cells_string),
        cmocka_unit_test(test_cells_string_limit),
        cmocka_unit_test(test_cells_number),
        cmocka_unit_test(test_cells_integer),
        cmocka_unit_test(test_cells_boolean),
        cmocka_unit_test(test_cells_date),
        cmocka_unit_test(test_cells_datetime),
        cmocka_unit_test(test_cells_lookup_columns),
        cmocka_unit_test(test_cells_inline_rows_and_cleanup),
        cmocka_unit_test(test_error_texts_utf8),
        cmocka_unit_test(test_row_key),
        cmocka_unit_test(test_lookup_cells),
        cmocka_unit_test(test_lookup_cells_errors),
        cmocka_unit_test(test_lookup_cells_string_limit),
        cmocka_unit_test(test_parse_datetime),
        cmocka_unit_test(test_parse_datetime_messages),
        cmocka_unit_test(test_dead_entry),
        cmocka_unit_test(test_row_parse),
        cmocka_unit_test(test_type_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
