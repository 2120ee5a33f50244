/* test_job.c: the job document (PROTOCOL.md section 2), its verdicts and error
 * texts, the cursor over inline rows, rows_key rows, and what parsing costs.
 * Documents are parsed from exact-length heap copies that the jobs borrow
 * until drop() (jobtest.h). Cell typing is in test_cells.c, dates in
 * test_dates.c. */
#include "jobtest.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exw/buf.h"
#include "exw/job.h"
#include "exw/json.h"

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
    assert_string_or_null(id, want_id);
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

/* @doc must be invalid_job for job "j" under @lim, the text holding @want_msg. */
static void expect_invalid_lim(const char *doc, const struct exw_limits *lim, const char *want_msg)
{
    expect_fail_lim(doc, strlen(doc), lim, EXW_EJSON, EXW_JOB_INVALID, "j", want_msg);
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

/* The cursor of @job must be at its end. */
static void expect_no_more_rows(struct exw_job *job)
{
    struct exw_errbuf eb = {{0}};
    struct exw_row *row = (struct exw_row *)&eb;

    assert_int_equal(exw_job_next_row(job, &row, &eb), EXW_OK);
    assert_null(row);
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
    drop(job);
}

/* The rows come from the cursor, in order, each typed by the columns. */
static void test_parse_full_rows(void **state)
{
    struct exw_job *job = parse_ok(full_doc);
    struct exw_cell cells[9];
    struct exw_errbuf eb = {{0}};
    struct exw_row *row;

    (void)state;
    row = next_row(job);
    assert_int_equal(exw_job_row_cells(job, row, 0, NULL, cells, &eb), EXW_OK);
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
    exw_row_free(row);

    /* null and absent values are empty cells. */
    row = next_row(job);
    assert_int_equal(exw_job_row_cells(job, row, 1, NULL, cells, &eb), EXW_OK);
    assert_string_equal(cells[0].str, "C-0002");
    assert_int_equal(cells[1].kind, EXW_CELL_EMPTY);
    assert_int_equal(cells[2].kind, EXW_CELL_EMPTY);
    exw_row_free(row);
    row = next_row(job);
    assert_int_equal(exw_job_row_cells(job, row, 2, NULL, cells, &eb), EXW_OK);
    for (size_t i = 0; i < 9; i++)
        assert_int_equal(cells[i].kind, EXW_CELL_EMPTY);
    exw_row_free(row);
    expect_no_more_rows(job);
    expect_no_more_rows(job);
    drop(job);
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
    drop(job);

    /* Explicit nulls mean the same as absent members. */
    job = parse_minimal("\"filename\": null, \"sheet\": null, \"lookup\": null, "
                        "\"on_lookup_error\": null, \"result_ttl\": null, \"rows\": []");
    assert_string_equal(job->filename, "j.xlsx");
    assert_string_equal(job->sheet, "Sheet1");
    assert_null(job->service);
    assert_int_equal(job->on_lookup_error, EXW_ON_LOOKUP_FAIL);
    assert_int_equal(job->result_ttl_s, -1);
    assert_int_equal(job->nrows, 0);
    drop(job);

    job = parse_minimal("\"on_lookup_error\": \"fail\", \"rows\": []");
    assert_int_equal(job->on_lookup_error, EXW_ON_LOOKUP_FAIL);
    drop(job);
    exw_job_free(NULL);
}

static void test_parse_unknown_members_ignored(void **state)
{
    struct exw_job *job = parse_minimal(
        "\"rows\": [], \"future\": {\"x\": [1, 2, {\"y\": null}]}, \"priority\": 5, \"url\": "
        "\"http://evil/\", \"tags\": [\"a\"]");

    (void)state;
    assert_string_equal(job->id, "j");
    drop(job);
    /* Unknown members of a column are ignored too. */
    job = parse_ok("{\"id\": \"j\", \"columns\": [{\"header\": \"A\", \"field\": \"a\", "
                   "\"comment\": \"x\"}], \"rows\": []}");
    drop(job);
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
    drop(parse_ok(doc));
    /* Every character the id may have. */
    drop(parse_ok("{\"id\": \"AZaz09._:-\", \"columns\": [{\"header\": \"A\", \"field\": "
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

/* The two steps that exw_job_parse() takes, taken apart as the runner does:
 * identify (before the job's start is recorded), then parse the rest. */
static void test_parse_identified(void **state)
{
    static const char good[] = "{\"id\": \"two-steps\", \"columns\": [{\"header\": \"A\", "
                               "\"field\": \"a\"}], \"rows\": [{\"a\": 1}]}";
    static const char bad[] = "{\"id\": \"two-steps\", \"columns\": []}";
    struct exw_limits lim;
    struct exw_errbuf eb;
    struct exw_job *job = NULL;
    char *id = NULL;

    (void)state;
    exw_limits_default(&lim);
    assert_int_equal(exw_job_identify(good, strlen(good), &lim, &id, &eb), EXW_JOB_OK);
    assert_int_equal(exw_job_parse_identified(good, strlen(good), &lim, PREFIX, id, &job, &eb),
                     EXW_OK);
    assert_string_equal(job->id, "two-steps");
    assert_int_equal(job->ncolumns, 1);
    assert_int_equal(job->nrows, 1);
    exw_job_free(job);
    assert_int_equal(exw_job_parse_identified(bad, strlen(bad), &lim, PREFIX, id, &job, &eb),
                     EXW_EJSON);
    assert_null(job);
    assert_contains(eb.msg, "columns");
    free(id);
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

/* 60 spaces: each document below is over a limit of 50 bytes. */
#define PAD60 "                                                            "

static void test_too_large_without_id(void **state)
{
    static const struct {
        const char *doc;
        enum exw_job_verdict verdict;
        const char *id;
    } cases[] = {
        /* An id written with escapes is read as a parser would read it. */
        {"{\"id\": \"a\\u0062c\\/\", \"pad\": \"" PAD60 "\"}", EXW_JOB_DEAD, NULL},
        {"{\"\\u0069d\": \"a\\u0062c\", \"pad\": \"" PAD60 "\"}", EXW_JOB_TOO_LARGE, "abc"},
        /* An id that is not a usable id, an id that is not a string, no id, an
         * array: nothing to fail under, so dead. */
        {"{\"id\": \"a b\", \"pad\": \"" PAD60 "\"}", EXW_JOB_DEAD, NULL},
        {"{\"id\": 17, \"pad\": \"" PAD60 "\"}", EXW_JOB_DEAD, NULL},
        {"{\"id\": {\"id\": \"inner\"}, \"pad\": \"" PAD60 "\"}", EXW_JOB_DEAD, NULL},
        {"{\"pad\": \"" PAD60 "\"}", EXW_JOB_DEAD, NULL},
        {"[{\"id\": \"in-array\"}, \"" PAD60 "\"]", EXW_JOB_DEAD, NULL},
        /* A value that merely reads "id" is not the member id. */
        {"{\"x\": \"id\", \"y\": \"z\", \"pad\": \"" PAD60 "\"}", EXW_JOB_DEAD, NULL},
    };
    struct exw_limits lim;
    size_t i;

    (void)state;
    exw_limits_default(&lim);
    lim.max_job_bytes = 50;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_fail_lim(cases[i].doc, strlen(cases[i].doc), &lim, EXW_ELIMIT, cases[i].verdict,
                        cases[i].id, "over");
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
    drop(parse_ok(doc));
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
    drop(parse_minimal("\"rows\": [], \"x\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
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
    drop(job);
    /* An empty header is allowed; so is a null width. */
    job = parse_ok("{\"id\": \"j\", \"columns\": [{\"header\": \"\", \"field\": \"a\", \"width\": "
                   "null}], \"rows\": []}");
    assert_string_equal(job->columns[0].header, "");
    assert_true(job->columns[0].width == 0);
    drop(job);
    /* Pointers: the whole document, escapes, array indexes. */
    job = parse_ok("{\"id\": \"j\", \"lookup\": {\"service\": \"s\", \"key\": \"k\"}, \"columns\": "
                   "[{\"header\": \"A\", \"lookup\": \"\"}, {\"header\": \"B\", \"lookup\": "
                   "\"/a~1b/~0c/0\"}, {\"header\": \"C\", \"field\": \"k\"}], \"rows\": []}");
    assert_int_equal(job->nlookup_columns, 2);
    assert_int_equal(job->columns[0].lookup_index, 0);
    assert_int_equal(job->columns[1].lookup_index, 1);
    assert_string_equal(job->columns[1].pointer, "/a~1b/~0c/0");
    drop(job);
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
    drop(job);
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
    drop(job);
    for (i = 0; i < 31; i++)
        memcpy(name + 3 * i, "\xe2\x82\xac", 3);
    name[93] = '\0';
    snprintf(members, sizeof(members), "\"sheet\": \"%s\", \"rows\": []", name);
    job = parse_minimal(members);
    assert_string_equal(job->sheet, name);
    drop(job);
    job = parse_minimal("\"sheet\": \"Bob's sheet\", \"rows\": []");
    assert_string_equal(job->sheet, "Bob's sheet");
    drop(job);
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
    /* No inline rows: the cursor has none. */
    expect_no_more_rows(job);
    drop(job);
    /* Which names under the prefix are the worker's own is decided on the
     * Redis side, not here: the document rule is only the prefix. */
    job = parse_minimal("\"rows_key\": \"export:queue\"");
    assert_string_equal(job->rows_key, "export:queue");
    drop(job);
    job = parse_minimal("\"rows_key\": \"export:job:j\"");
    drop(job);
    /* 1024 bytes at most. */
    {
        char members[1200];

        snprintf(members, sizeof(members), "\"rows_key\": \"export:%01017d\"", 0);
        job = parse_minimal(members);
        assert_int_equal(strlen(job->rows_key), 1024);
        drop(job);
        snprintf(members, sizeof(members), "\"rows_key\": \"export:%01018d\"", 0);
        expect_invalid_member(members, "rows_key: must be the name of a Redis list");
    }
    /* A null rows with a rows_key is as if absent. */
    job = parse_minimal("\"rows_key\": \"export:rows:j\", \"rows\": null");
    assert_string_equal(job->rows_key, "export:rows:j");
    drop(job);
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
    drop(job);
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
    drop(job);
    job = parse_minimal("\"rows\": [], \"result_ttl\": 31536000");
    assert_int_equal(job->result_ttl_s, 31536000);
    drop(job);
    job = parse_minimal("\"rows\": [], \"result_ttl\": 6e1");
    assert_int_equal(job->result_ttl_s, 60);
    drop(job);
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
    struct exw_job *job;
    static const char doc[] = "{\"id\": \"j\", \"columns\": [{\"header\": \"AB\", \"field\": "
                              "\"a\"}, {\"header\": \"B\", \"field\": \"b\"}], \"rows\": [{}, {}, "
                              "{}]}";

    (void)state;
    exw_limits_default(&lim);
    lim.max_rows = 2;
    expect_invalid_lim(doc, &lim, "rows: 3 rows is over the limit of 2");
    exw_limits_default(&lim);
    lim.max_columns = 1;
    expect_invalid_lim(doc, &lim, "columns: must have 1 to 1 columns, has 2");
    exw_limits_default(&lim);
    lim.max_header_chars = 1;
    expect_invalid_lim(doc, &lim, "columns[0].header");
    exw_limits_default(&lim);
    lim.max_depth = 2;
    expect_invalid_lim(doc, &lim, "deeper than 2");
    exw_limits_default(&lim);
    lim.max_string_chars = 3;
    job = parse_lim(doc, &lim);
    assert_int_equal(job->limits.max_string_chars, 3);
    drop(job);
}

/* ---- The id without parsing ---- */

/* exw_job_scan_id() on @doc must give @want (NULL: none), and when the
 * document parses, the parser must agree. */
static void expect_scan_id(const char *doc, const char *want)
{
    struct exw_limits lim;
    struct exw_errbuf eb;
    struct exw_job *job;
    enum exw_job_verdict verdict;
    char *id, *scanned = exw_job_scan_id(doc, strlen(doc));

    assert_string_or_null(scanned, want);
    exw_limits_default(&lim);
    if (parse_with(doc, strlen(doc), &lim, PREFIX, &job, &verdict, &id, &eb) == EXW_OK)
        drop(job);
    /* Whenever the parser finds an id, it is the scanned one. */
    if (id != NULL) {
        assert_non_null(scanned);
        assert_string_equal(id, scanned);
    }
    free(id);
    free(scanned);
}

static void test_scan_id(void **state)
{
    (void)state;
    expect_scan_id("{\"id\": \"plain\", \"columns\": [{\"header\": \"A\", \"field\": \"a\"}], "
                   "\"rows\": []}",
                   "plain");
    /* Duplicates: the first counts, for both. */
    expect_scan_id("{\"id\": \"first\", \"id\": \"second\", \"columns\": [{\"header\": \"A\", "
                   "\"field\": \"a\"}], \"rows\": []}",
                   "first");
    expect_scan_id("{\"id\": 5, \"id\": \"second\"}", NULL);
    expect_scan_id("{\"id\": \"not valid\", \"id\": \"second\"}", NULL);
    /* Escapes in the name and in the value, decoded as a parser does. */
    expect_scan_id("{\"\\u0069\\u0064\": \"e\\u0073c\", \"columns\": [{\"header\": \"A\", "
                   "\"field\": \"a\"}], \"rows\": []}",
                   "esc");
    expect_scan_id("{\"id\": \"a\\/b\"}", NULL);
    expect_scan_id("{\"id\": \"caf\\u00e9\"}", NULL);
    expect_scan_id("{\"id\": \"a\\u0000\"}", NULL);
    /* Ids of nested objects and strings that read "id" are not the job's. */
    expect_scan_id("{\"x\": {\"id\": \"inner\"}, \"y\": [\"id\", \"z\"], \"id\": \"outer\"}",
                   "outer");
    expect_scan_id("{\"x\": \"id\", \"y\": \"v\"}", NULL);
    expect_scan_id("[{\"id\": \"in-array\"}]", NULL);
    /* A byte order mark, whitespace everywhere. */
    expect_scan_id("\xEF\xBB\xBF { \"id\" :\n\"bom\" , \"columns\": [{\"header\": \"A\", "
                   "\"field\": \"a\"}], \"rows\": []}",
                   "bom");
    /* 128 characters, and one more. */
    {
        char doc[300], id[130];

        memset(id, 'i', 128);
        id[128] = '\0';
        snprintf(doc, sizeof(doc), "{\"id\": \"%s\"}", id);
        expect_scan_id(doc, id);
        snprintf(doc, sizeof(doc), "{\"id\": \"%si\"}", id);
        expect_scan_id(doc, NULL);
    }
    assert_null(exw_job_scan_id("", 0));
    assert_null(exw_job_scan_id("{\"id\": \"cut", 11));
}

/* ---- The cursor over inline rows ---- */

/* Types the first column (a string one) of @row. */
static const char *first_text(const struct exw_job *job, const struct exw_row *row,
                              struct exw_cell *cells)
{
    struct exw_errbuf eb = {{0}};

    assert_int_equal(exw_job_row_cells(job, row, 0, NULL, cells, &eb), EXW_OK);
    return cells[0].kind == EXW_CELL_STRING ? cells[0].str : "(empty)";
}

static void test_cursor(void **state)
{
    /* Rows of every shape: nested values no column names, brackets and
     * escaped quotes in strings, repeated and escaped member names. */
    static const char doc[] =
        "{\"rows\": [ {\"a\": \"one\"} ,\n"
        "  {\"x\": {\"a\": \"nested\"}, \"a\": \"two\", \"y\": [[1], {\"z\": \"]}\"}]},"
        "{\"b\": \"\\\"}]\", \"a\": \"three\"},{\"a\": \"four\", \"a\": \"shadowed\"},"
        "{\"\\u0061\": \"fi\\u0076e\"}, {}, {\"a\": null}],"
        "\"id\": \"cur\", \"columns\": [{\"header\": \"A\", \"field\": \"a\"}, "
        "{\"header\": \"B\", \"field\": \"b\"}]}";
    static const char *const want[] = {"one", "two", "three", "four", "five", "(empty)", "(empty)"};
    struct exw_job *job = parse_ok(doc);
    struct exw_cell cells[2];
    struct exw_row *row;
    size_t i;

    (void)state;
    assert_int_equal(job->nrows, 7);
    for (i = 0; i < 7; i++) {
        row = next_row(job);
        assert_string_equal(first_text(job, row, cells), want[i]);
        if (i == 2)
            assert_string_equal(cells[1].str, "\"}]");
        exw_row_free(row);
    }
    expect_no_more_rows(job);
    drop(job);

    /* No rows at all. */
    job = parse_minimal("\"rows\": [ ]");
    assert_int_equal(job->nrows, 0);
    expect_no_more_rows(job);
    drop(job);

    /* A job whose columns are all lookups reads no member of any row. */
    job =
        parse_ok("{\"id\": \"lk\", \"lookup\": {\"service\": \"s\", \"key\": \"k\"}, \"columns\": "
                 "[{\"header\": \"L\", \"lookup\": \"/x\"}], \"rows\": [{\"k\": \"key\"}, {}]}");
    row = next_row(job);
    assert_non_null(exw_row_key_value(job, row));
    exw_row_free(row);
    row = next_row(job);
    assert_null(exw_row_key_value(job, row));
    exw_row_free(row);
    expect_no_more_rows(job);
    drop(job);
}

/* Many columns naming the same field, and a row with a member repeated far
 * more often than there are fields: the first value counts everywhere. */
static void test_repeated_members(void **state)
{
    struct exw_buf b;
    struct exw_job *job;
    struct exw_cell cells[3];
    struct exw_errbuf eb = {{0}};
    struct exw_row *row;
    int i;

    (void)state;
    exw_buf_init(&b, 1 << 20);
    assert_int_equal(exw_buf_printf(&b,
                                    "{\"id\": \"j\", \"columns\": [{\"header\": \"A\", \"field\": "
                                    "\"a\"}, {\"header\": \"A2\", \"field\": \"a\", \"type\": "
                                    "\"number\"}, {\"header\": \"C\", \"field\": \"c\"}], "
                                    "\"rows\": [{\"a\": 1"),
                     EXW_OK);
    for (i = 2; i < 5000; i++)
        assert_int_equal(exw_buf_printf(&b, ", \"c\": \"c%d\", \"a\": %d", i, i), EXW_OK);
    assert_int_equal(exw_buf_printf(&b, "}]}"), EXW_OK);
    job = parse_ok(b.data);
    row = next_row(job);
    assert_int_equal(exw_job_row_cells(job, row, 0, NULL, cells, &eb), EXW_OK);
    assert_string_equal(cells[0].str, "1");
    assert_true(cells[1].num == 1);
    assert_string_equal(cells[2].str, "c2");
    exw_row_free(row);
    drop(job);
    exw_buf_cleanup(&b);
}

/* ---- Rows from a rows_key list ---- */

static void test_row_parse(void **state)
{
    struct exw_job *job = parse_ok("{\"id\": \"rp\", \"columns\": [{\"header\": \"S\", \"field\": "
                                   "\"s\"}, {\"header\": \"N\", \"field\": \"n\", \"type\": "
                                   "\"number\"}], \"rows_key\": \"export:rows:rp\"}");
    struct exw_errbuf eb = {{0}};
    struct exw_row *row = (struct exw_row *)&eb;
    struct exw_cell cells[2];
    char *copy;

    (void)state;
    copy = exact_copy("{\"s\": \"v\", \"n\": 2}", 18);
    assert_int_equal(exw_row_parse(job, copy, 18, 11, &row, &eb), EXW_OK);
    /* The row has its own copy: the reply buffer may go at once. */
    memset(copy, 'Z', 18);
    free(copy);
    assert_non_null(row);
    assert_int_equal(exw_job_row_cells(job, row, 11, NULL, cells, &eb), EXW_OK);
    assert_string_equal(cells[0].str, "v");
    assert_true(cells[1].num == 2);
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
    assert_int_equal(exw_row_parse(job, "{\"n\": 1e400}", 12, 17, &row, &eb), EXW_EJSON);
    assert_contains(eb.msg, "rows[17]: not valid JSON (number out of range");
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
    /* Surrounding whitespace and a byte order mark are fine. */
    assert_int_equal(exw_row_parse(job, " {}\r\n", 5, 18, &row, &eb), EXW_OK);
    exw_row_free(row);
    assert_int_equal(exw_row_parse(job, "\xEF\xBB\xBF{\"s\": \"b\"}", 13, 19, &row, &eb), EXW_OK);
    assert_int_equal(exw_job_row_cells(job, row, 19, NULL, cells, &eb), EXW_OK);
    assert_string_equal(cells[0].str, "b");
    exw_row_free(row);
    /* The cursor has nothing to give a rows_key job. */
    expect_no_more_rows(job);
    drop(job);
}

/* ---- Documents that failed ---- */

static void expect_rows_key_of(const char *doc, const char *want)
{
    struct exw_limits lim;
    char *copy = exact_copy(doc, strlen(doc));
    char *key;

    exw_limits_default(&lim);
    key = exw_job_rows_key_of(copy, strlen(doc), &lim, PREFIX);
    free(copy);
    assert_string_or_null(key, want);
    free(key);
}

static void test_rows_key_of(void **state)
{
    (void)state;
    expect_rows_key_of("{\"id\": \"x y\", \"rows_key\": \"export:rows:1\"}", "export:rows:1");
    expect_rows_key_of("{\"rows_key\": \"export:r\\u006fws\", \"rows_key\": \"export:second\"}",
                       "export:rows");
    expect_rows_key_of("{\"rows_key\": \"other:rows\"}", NULL);
    expect_rows_key_of("{\"rows_key\": 5}", NULL);
    expect_rows_key_of("{\"x\": {\"rows_key\": \"export:nested\"}}", NULL);
    expect_rows_key_of("{\"rows_key\": \"export:rows\"", NULL); /* not JSON */
    expect_rows_key_of("[\"export:rows\"]", NULL);
}

/* ---- Bounded cost ----
 *
 * Documents of 20 MB in the shapes that cost a tree parser most are parsed
 * and all their rows typed, each in a child process whose peak RSS before and
 * after tells what parsing added on top of the document. Under a sanitizer
 * the figures mean nothing (shadow memory, quarantined frees): the documents
 * are smaller there and only the results are checked. */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* A document written into memory reserved up front (a large malloc is an
 * mmap whose pages count once written): no copy as it grows. */
struct gen {
    char *p;
    size_t len, cap;
};

static int gen_put(struct gen *g, const char *s)
{
    size_t n = strlen(s);

    if (g->len + n > g->cap)
        return 0;
    memcpy(g->p + g->len, s, n);
    g->len += n;
    return 1;
}

/* Puts @before, then @piece until the document has @target bytes (with
 * commas between), then @after. */
static void gen_list(struct gen *g, const char *before, const char *piece, const char *after,
                     size_t target)
{
    int first = 1;

    gen_put(g, before);
    while (g->len < target) {
        if (!first)
            gen_put(g, ",");
        first = 0;
        gen_put(g, piece);
    }
    gen_put(g, after);
}

enum shape {
    TINY_ROWS,        /* millions of {"a":1} */
    BIG_ARRAY,        /* 10 million 1s in a member the job does not know */
    DEEP,             /* 30 levels of [] over and over */
    COLUMN_JUNK,      /* an unknown member of a column holding millions of values */
    LONG_STRINGS,     /* rows of 1 MB strings full of escapes */
    REPEATED_MEMBERS, /* one row naming its column's member millions of times */
    ROWS_KEY_ROW,     /* a 20 MB rows_key element of tiny values */
    NSHAPES
};

static const char *const shape_names[] = {
    "{\"a\":1} rows (2.6e6 in 20 MB)", "1s in an unknown member's array",
    "30-level [] nests, repeated",     "1s in an array inside a column",
    "rows of 1 MB escaped strings",    "one row repeating its member",
    "one rows_key element of 1s",
};

static void gen_shape(struct gen *g, enum shape shape, size_t target)
{
    static const char head[] = "{\"id\": \"cost\", \"columns\": [{\"header\": \"A\", \"field\": "
                               "\"a\", \"type\": \"integer\"}, {\"header\": \"S\", \"field\": "
                               "\"s\"}]";
    char deep[64], big[2049];

    memset(deep, '[', 30);
    memset(deep + 30, ']', 30);
    deep[60] = '\0';
    switch (shape) {
    case TINY_ROWS:
        gen_put(g, head);
        gen_list(g, ", \"rows\": [", "{\"a\":1}", "]}", target);
        break;
    case BIG_ARRAY:
    case DEEP:
        gen_put(g, head);
        gen_list(g, ", \"rows\": [{\"a\": 1}], \"x\": [", shape == DEEP ? deep : "1", "]}", target);
        break;
    case COLUMN_JUNK:
        gen_list(g,
                 "{\"id\": \"cost\", \"rows\": [{\"a\": 1}], \"columns\": [{\"header\": \"A\", "
                 "\"field\": \"a\", \"x\": [",
                 "1", "]}]}", target);
        break;
    case LONG_STRINGS:
        /* 1 MB strings: "\n" and "\u00e9" escapes between plain text. */
        for (size_t i = 0; i < 128; i++)
            memcpy(big + 16 * i, "tex\\n\\u00e9 more", 16);
        big[2048] = '\0';
        gen_put(g, head);
        gen_put(g, ", \"rows\": [");
        for (int first = 1; g->len < target; first = 0) {
            size_t row_end = g->len + (1 << 20);

            gen_put(g, first ? "{\"s\": \"" : ",{\"s\": \"");
            while (g->len < row_end)
                gen_put(g, big);
            gen_put(g, "\"}");
        }
        gen_put(g, "]}");
        break;
    case REPEATED_MEMBERS:
        gen_put(g, head);
        gen_list(g, ", \"rows\": [{", "\"a\":1", "}]}", target);
        break;
    case ROWS_KEY_ROW:
        gen_list(g, "{\"a\": 1, \"s\": \"x\", \"x\": [", "1", "]}", target);
        break;
    case NSHAPES:
        break;
    }
}

struct cost {
    int ok;
    size_t bytes;
    long extra_kb; /* peak RSS added by parsing and reading the rows */
    double seconds;
    char why[200];
};

static long peak_kb(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parses the document and types every row; what it cost, in @c. */
static void measure(const struct gen *g, enum shape shape, struct cost *c)
{
    static const char rows_key_job[] =
        "{\"id\": \"cost\", \"rows_key\": \"export:rows\", \"columns\": [{\"header\": \"A\", "
        "\"field\": \"a\", \"type\": \"integer\"}, {\"header\": \"S\", \"field\": \"s\"}]}";
    struct exw_limits lim;
    struct exw_job *job = NULL;
    struct exw_row *row = NULL;
    struct exw_cell cells[2];
    struct exw_errbuf eb = {{0}};
    enum exw_job_verdict verdict;
    size_t n = 0;
    char *id = NULL;
    long base;
    double t0;

    exw_limits_default(&lim);
    lim.max_rows = 100000000;
    lim.max_string_chars = 4 << 20;
    c->bytes = g->len;
    base = peak_kb();
    t0 = now_s();
    if (shape == ROWS_KEY_ROW) {
        c->ok = exw_job_parse(rows_key_job, strlen(rows_key_job), &lim, PREFIX, &job, &verdict, &id,
                              &eb) == EXW_OK &&
                exw_row_parse(job, g->p, g->len, 0, &row, &eb) == EXW_OK &&
                exw_job_row_cells(job, row, 0, NULL, cells, &eb) == EXW_OK;
        exw_row_free(row);
        n = 1;
    } else {
        c->ok = exw_job_parse(g->p, g->len, &lim, PREFIX, &job, &verdict, &id, &eb) == EXW_OK;
        while (c->ok) {
            c->ok = exw_job_next_row(job, &row, &eb) == EXW_OK;
            if (!c->ok || row == NULL)
                break;
            c->ok = exw_job_row_cells(job, row, n++, NULL, cells, &eb) == EXW_OK;
            exw_row_free(row);
        }
        c->ok = c->ok && n == job->nrows && n > 0;
    }
    c->seconds = now_s() - t0;
    c->extra_kb = peak_kb() - base;
    snprintf(c->why, sizeof(c->why), "%zu rows; %s", n, eb.msg);
    exw_job_free(job);
    free(id);
}

static void test_bounded_cost(void **state)
{
    size_t target = SANITIZED ? 4u << 20 : 20u << 20;
    struct cost c;
    enum shape shape;
    int fds[2], status;
    pid_t pid;

    (void)state;
    for (shape = 0; shape < NSHAPES; shape++) {
        assert_int_equal(pipe(fds), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            struct gen g = {NULL, 0, target + (2u << 20)};

            memset(&c, 0, sizeof(c));
            g.p = malloc(g.cap);
            if (g.p != NULL) {
                gen_shape(&g, shape, target);
                measure(&g, shape, &c);
            }
            _exit(write(fds[1], &c, sizeof(c)) == (ssize_t)sizeof(c) ? 0 : 1);
        }
        close(fds[1]);
        assert_int_equal(read(fds[0], &c, sizeof(c)), (ssize_t)sizeof(c));
        close(fds[0]);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (!c.ok)
            fail_msg("%s: %s", shape_names[shape], c.why);
        print_message("%-40s %5.1f MB: peak RSS +%6.1f MB (%.3f per MB of document), %.2f s\n",
                      shape_names[shape], c.bytes / 1048576.0, c.extra_kb / 1024.0,
                      c.extra_kb / 1024.0 / (c.bytes / 1048576.0), c.seconds);
        /* What a tree parser would have needed is some 50 times the document;
         * only a rows_key element is copied (once). */
        if (!SANITIZED)
            assert_true((size_t)c.extra_kb * 1024 <=
                        (shape == ROWS_KEY_ROW ? c.bytes + c.bytes / 8 : c.bytes / 8) + (4u << 20));
    }
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
        cmocka_unit_test(test_parse_identified),
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
        cmocka_unit_test(test_scan_id),
        cmocka_unit_test(test_cursor),
        cmocka_unit_test(test_repeated_members),
        cmocka_unit_test(test_row_parse),
        cmocka_unit_test(test_rows_key_of),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_bounded_cost),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
