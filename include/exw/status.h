/* status.h: a job's state transitions in its status hash P:job:<id>, with the
 * events and counters that go with them: the start, progress, and the end.
 *
 * Each transition is one script, fenced: the start and the end write only
 * while the job's document is still in this worker's processing list,
 * progress only while the status names this worker and this attempt. A
 * worker that was paused or cut off and lost its job to another can thus
 * never overwrite what the other did. Thread: owner of the connection. */
#ifndef EXW_STATUS_H
#define EXW_STATUS_H

#include <stddef.h>
#include "exw/err.h"
#include "exw/redis.h"

enum exw_start {
    EXW_START_STARTED,   /* running now, *attempts counts this start */
    EXW_START_GONE,      /* no longer in this worker's processing list */
    EXW_START_DUPLICATE, /* the same document runs on another live worker: dropped */
    EXW_START_DEFERRED,  /* another document with this id runs: put at the queue's far end */
    EXW_START_CANCELLED, /* cancel = 1 before the start */
    EXW_START_EXHAUSTED  /* started max_attempts times already */
};

/* Starts job @id, taken as @doc: counts the start in attempts and sets the
 * status running, before the document is parsed, so that a document that
 * kills its worker is charged for it. @busy_here says that another job
 * thread of this worker runs the id: then the document is a duplicate or
 * deferred, as for a copy running on another worker. @event (JSON for
 * P:events) is sent on a start. A status key of another type is EXW_EREPLY. */
EXW_MUST_CHECK exw_err exw_status_start(struct exw_redis *rd, const char *id, const char *doc,
                                        size_t doc_len, long max_attempts, int busy_here,
                                        const char *event, enum exw_start *out, long *attempts,
                                        struct exw_errbuf *eb);

/* Writes field/value pairs to P:job:<id> and publishes @event (may be NULL),
 * only while the status says this worker runs attempt @attempt. *@owned says
 * whether it did; *@cancel whether cancel = 1. */
EXW_MUST_CHECK exw_err exw_status_progress(struct exw_redis *rd, const char *id, long attempt,
                                           const char *const *fields, size_t nfields,
                                           const char *event, int *owned, int *cancel,
                                           struct exw_errbuf *eb);

/* How a job ends. */
struct exw_status_end {
    const char *id;   /* NULL for a dead letter without a usable id */
    int write_status; /* write the status, counters and result; else only P:dead */
    const char *doc;  /* the document as taken */
    size_t doc_len;
    /* When nonzero, @doc is only the head of a document of this many bytes,
     * too large for the worker to take in: the oldest of its processing
     * list, which the end then removes. */
    long long doc_total;
    long attempt;   /* the attempt this run started as (0 if none) */
    long ttl_ms;    /* of the status and the result */
    int has_result; /* the job succeeded: store its result in P:result:<id> */
    /* With has_result: the workbook itself, stored by this same call, when it
     * is small; NULL when it was uploaded (exw_result_chunk) and is renamed. */
    const void *result;
    size_t result_len;
    const char *rows_key;      /* list to delete, or NULL */
    const char *dead_entry;    /* JSON to LPUSH on P:dead, or NULL */
    const char *const *fields; /* status field/value pairs */
    size_t nfields;
    const char *const *stats; /* P:stats field/increment pairs */
    size_t nstats;
    const char *event; /* JSON for P:events, or NULL */
};

enum exw_end {
    EXW_END_DONE,       /* this call ended the job */
    EXW_END_ALREADY,    /* an earlier call of this run had (its reply was lost) */
    EXW_END_NOT_OWNED,  /* the job is no longer this worker's: nothing written */
    EXW_END_UPLOAD_GONE /* the uploaded result expired meanwhile: nothing written */
};

/* Ends a job in one script: status, P:stats, the result, the rows_key list,
 * P:dead, the processing list and the event, all or nothing (every check
 * runs before the first write, and a retry after a lost reply counts
 * nothing twice). A key of the wrong type or a P:stats field that is not an
 * integer is EXW_EREPLY, with nothing written. */
EXW_MUST_CHECK exw_err exw_status_end(struct exw_redis *rd, const struct exw_status_end *e,
                                      enum exw_end *out, struct exw_errbuf *eb);

#endif
