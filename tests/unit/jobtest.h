/* jobtest.h: parsing job documents in the unit tests of the job and its
 * cells (test_job.c, test_cells.c).
 *
 * Documents are parsed from heap copies of exactly their length, without a
 * NUL, so that the sanitizers catch any read past the end. A job borrows its
 * copy: the copy is held here until drop() frees both. At most 8 jobs are
 * held at once.
 *
 * Everything here is static inline (see testutil.h). */
#ifndef EXW_JOBTEST_H
#define EXW_JOBTEST_H

#include "testutil.h"

#include "exw/job.h"

/* The key prefix jobs are parsed under. */
#define PREFIX "export"

/* The documents parsed jobs borrow, freed by drop(). */
static struct {
    struct exw_job *job;
    char *doc;
} held[8];

static inline void hold(struct exw_job *job, char *doc)
{
    size_t i;

    for (i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
        if (held[i].job == NULL) {
            held[i].job = job;
            held[i].doc = doc;
            return;
        }
    }
    fail_msg("more than %zu jobs held at once", sizeof(held) / sizeof(held[0]));
}

/* Frees @job and the document it borrowed. */
static inline void drop(struct exw_job *job)
{
    size_t i;

    for (i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
        if (held[i].job == job) {
            exw_job_free(job);
            free(held[i].doc);
            held[i].job = NULL;
            held[i].doc = NULL;
            return;
        }
    }
    fail_msg("job %p was not parsed here", (void *)job);
}

/* exw_job_parse() on an exact copy of @len bytes of @doc; a job it returns
 * holds the copy (free with drop()). The out-parameters are set to junk
 * first, so that a path that leaves one unset shows. */
static inline exw_err parse_with(const char *doc, size_t len, const struct exw_limits *lim,
                                 const char *prefix, struct exw_job **job,
                                 enum exw_job_verdict *verdict, char **id, struct exw_errbuf *eb)
{
    char *copy = exact_copy(doc, len);
    exw_err rc;

    memset(eb, 0, sizeof(*eb));
    *job = (struct exw_job *)eb; /* must be overwritten */
    *id = (char *)eb;
    rc = exw_job_parse(copy, len, lim, prefix, job, verdict, id, eb);
    if (*job != NULL)
        hold(*job, copy);
    else
        free(copy);
    return rc;
}

/* Parses @doc under @lim; it must be valid. Free with drop(). */
static inline struct exw_job *parse_lim(const char *doc, const struct exw_limits *lim)
{
    struct exw_errbuf eb;
    struct exw_job *job;
    enum exw_job_verdict verdict = EXW_JOB_DEAD;
    char *id;
    exw_err rc;

    rc = parse_with(doc, strlen(doc), lim, PREFIX, &job, &verdict, &id, &eb);
    if (rc != EXW_OK)
        print_error("parse failed: %s\n", eb.msg);
    assert_int_equal(rc, EXW_OK);
    assert_int_equal(verdict, EXW_JOB_OK);
    assert_non_null(job);
    /* Whatever the id out-parameter holds is the caller's to free. */
    assert_non_null(id);
    assert_string_equal(id, job->id);
    free(id);
    return job;
}

/* Parses @doc under the default limits; it must be valid. Free with drop(). */
static inline struct exw_job *parse_ok(const char *doc)
{
    struct exw_limits lim;

    exw_limits_default(&lim);
    return parse_lim(doc, &lim);
}

/* The next row of @job's cursor; it must be there. Free with exw_row_free. */
static inline struct exw_row *next_row(struct exw_job *job)
{
    struct exw_errbuf eb = {{0}};
    struct exw_row *row = (struct exw_row *)&eb;

    assert_int_equal(exw_job_next_row(job, &row, &eb), EXW_OK);
    assert_non_null(row);
    return row;
}

#endif
