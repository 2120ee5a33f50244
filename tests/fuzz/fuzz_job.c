/* fuzz_job.c: libFuzzer target for the job parser, cell typing and lookup
 * response handling: whatever the bytes, no crash, no leak, no undefined
 * behaviour, and every failure has a verdict and a message. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exw/job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise_rows(const struct exw_job *job)
{
    struct exw_cell *cells = exw_xcalloc(job->ncolumns, sizeof(*cells));
    struct exw_cell *lookup = exw_xcalloc(job->nlookup_columns + 1, sizeof(*lookup));
    static const char body[] = "{\"discount\":{\"ratio\":0.5},\"name\":\"x\",\"n\":null}";
    struct exw_errbuf eb;
    int have_lookup;
    size_t i;

    have_lookup = exw_job_lookup_cells(job, body, sizeof(body) - 1, lookup, &eb) == EXW_OK;
    for (i = 0; i < job->nrows && i < 64; i++) {
        char scratch[32];
        const char *key;

        if (exw_job_row_key(job, job->rows[i], i, scratch, &key, &eb) != EXW_OK)
            continue;
        if (exw_job_row_cells(job, job->rows[i], i, have_lookup ? lookup : NULL, cells, &eb) !=
                EXW_OK &&
            eb.msg[0] == '\0')
            abort(); /* an error without a message */
    }
    if (have_lookup)
        exw_cells_cleanup(lookup, job->nlookup_columns);
    free(lookup);
    free(cells);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct exw_limits lim;
    struct exw_job *job = NULL;
    enum exw_job_verdict verdict;
    struct exw_errbuf eb;
    char *id = NULL;
    char *entry;

    exw_limits_default(&lim);
    lim.max_job_bytes = 1 << 20;
    eb.msg[0] = '\0';
    if (exw_job_parse((const char *)data, size, &lim, "export", &job, &verdict, &id, &eb) ==
        EXW_OK) {
        exercise_rows(job);
        exw_job_free(job);
    } else {
        if (job != NULL || eb.msg[0] == '\0' || verdict == EXW_JOB_OK)
            abort();
        if ((verdict == EXW_JOB_DEAD) != (id == NULL))
            abort();
        entry = exw_job_dead_entry((const char *)data, size, eb.msg, 1);
        free(entry);
    }
    free(id);
    return 0;
}
