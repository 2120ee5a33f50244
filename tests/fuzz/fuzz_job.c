/* fuzz_job.c: libFuzzer target for the job parser, the cursor over inline
 * rows, rows_key rows, cell typing and lookup response handling: whatever the
 * bytes, no crash, no leak, no undefined behaviour, every failure has a
 * verdict and a message, and the id scanner agrees with the parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exw/job.h"
#include "exw/json.h"
#include "exw/queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Types one row; an error must come with a message. */
static void exercise_row(const struct exw_job *job, const struct exw_row *row, size_t i,
                         const struct exw_cell *lookup, struct exw_cell *cells)
{
    struct exw_errbuf eb;
    char scratch[32];
    const char *key;

    eb.msg[0] = '\0';
    if (exw_job_row_key(job, row, i, scratch, &key, &eb) != EXW_OK) {
        if (eb.msg[0] == '\0')
            abort();
        return;
    }
    eb.msg[0] = '\0';
    if (exw_job_row_cells(job, row, i, lookup, cells, &eb) != EXW_OK && eb.msg[0] == '\0')
        abort(); /* an error without a message */
}

static void exercise_rows(struct exw_job *job, const char *text, size_t len)
{
    struct exw_cell *cells = exw_xcalloc(job->ncolumns, sizeof(*cells));
    struct exw_cell *lookup = exw_xcalloc(job->nlookup_columns + 1, sizeof(*lookup));
    static const char body[] = "{\"discount\":{\"ratio\":0.5},\"name\":\"x\",\"n\":null}";
    struct exw_errbuf eb;
    struct exw_row *row;
    int have_lookup;
    size_t i;

    have_lookup = exw_job_lookup_cells(job, body, sizeof(body) - 1, lookup, &eb) == EXW_OK;
    /* The cursor hands out exactly nrows rows, then NULL. */
    for (i = 0;; i++) {
        if (exw_job_next_row(job, &row, &eb) != EXW_OK)
            abort();
        if (row == NULL)
            break;
        if (i < 64)
            exercise_row(job, row, i, have_lookup ? lookup : NULL, cells);
        exw_row_free(row);
    }
    if (i != job->nrows)
        abort();
    if (have_lookup)
        exw_cells_cleanup(lookup, job->nlookup_columns);
    /* The input itself as a rows_key element and as a lookup response. */
    if (exw_row_parse(job, text, len, 0, &row, &eb) == EXW_OK) {
        exercise_row(job, row, 0, NULL, cells);
        exw_row_free(row);
    } else if (row != NULL || eb.msg[0] == '\0') {
        abort();
    }
    if (exw_job_lookup_cells(job, text, len, lookup, &eb) == EXW_OK)
        exw_cells_cleanup(lookup, job->nlookup_columns);
    free(lookup);
    free(cells);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char doc[] =
        "{\"id\": \"f\", \"lookup\": {\"service\": \"s\", \"key\": \"k\"}, \"rows_key\": "
        "\"export:r\", \"columns\": [{\"header\": \"S\", \"field\": \"s\"}, {\"header\": \"I\", "
        "\"field\": \"i\", \"type\": \"integer\"}, {\"header\": \"D\", \"field\": \"d\", \"type\": "
        "\"datetime\"}, {\"header\": \"L\", \"lookup\": \"/name\"}, {\"header\": \"N\", "
        "\"lookup\": \"/discount/ratio\", \"type\": \"number\"}]}";
    const char *text = (const char *)data;
    struct exw_limits lim;
    struct exw_job *job = NULL;
    enum exw_job_verdict verdict;
    struct exw_errbuf eb;
    char *id = NULL, *scanned;
    char *entry;

    exw_limits_default(&lim);
    lim.max_job_bytes = 1 << 20;
    eb.msg[0] = '\0';
    scanned = exw_job_scan_id(text, size);
    if (exw_job_parse(text, size, &lim, "export", &job, &verdict, &id, &eb) == EXW_OK) {
        /* The parser's id is the scanner's. */
        if (scanned == NULL || strcmp(scanned, job->id) != 0)
            abort();
        exercise_rows(job, text, size);
        exw_job_free(job);
    } else {
        if (job != NULL || eb.msg[0] == '\0' || verdict == EXW_JOB_OK)
            abort();
        if ((verdict == EXW_JOB_DEAD) != (id == NULL))
            abort();
        if (id != NULL && (scanned == NULL || strcmp(scanned, id) != 0))
            abort();
        entry = exw_queue_dead_entry(text, size, eb.msg, 1);
        if (exw_json_check(entry, strlen(entry), 2, NULL) != EXW_OK)
            abort(); /* a dead entry is always JSON this reader takes */
        free(entry);
    }
    free(id);
    free(scanned);
    /* The bytes as a rows_key row of a fixed job. */
    if (exw_job_parse(doc, sizeof(doc) - 1, &lim, "export", &job, &verdict, &id, &eb) != EXW_OK)
        abort();
    exercise_rows(job, text, size);
    exw_job_free(job);
    free(id);
    return 0;
}
