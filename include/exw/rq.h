/* rq.h: the Redis side of a job: queue, status hash, result, events, heartbeat.
 *
 * The only user of hiredis. Every key is built here from the prefix, as
 * PROTOCOL.md section 1 names them. A struct exw_rq is one connection, owned
 * by one thread; after an EXW_EREDIS error it is broken (hiredis errors are
 * sticky) and the owner makes a new one. */
#ifndef EXW_RQ_H
#define EXW_RQ_H

#include <stddef.h>
#include <stdint.h>
#include "exw/config.h"
#include "exw/err.h"

struct exw_rq;

/* Connects, authenticates and selects the database. @timeout_ms bounds the
 * connect and every command (blocking takes add their own wait). Thread: owner. */
EXW_MUST_CHECK exw_err exw_rq_connect(const struct exw_redis_addr *addr, const char *prefix,
                                      const char *worker_id, long timeout_ms, struct exw_rq **out,
                                      struct exw_errbuf *eb);
void exw_rq_free(struct exw_rq *rq);

/* Whether the connection has failed and must be replaced. Thread: owner. */
int exw_rq_broken(const struct exw_rq *rq);

/* CONFIG GET @name into @out (empty when not readable, e.g. under an ACL).
 * Thread: owner. */
EXW_MUST_CHECK exw_err exw_rq_config_get(struct exw_rq *rq, const char *name, char *out,
                                         size_t outsz, struct exw_errbuf *eb);

/* Moves the next job from P:queue to P:processing:<worker>, waiting up to
 * @timeout_s. *@doc (caller frees) is NULL when none came. Thread: owner. */
EXW_MUST_CHECK exw_err exw_rq_take(struct exw_rq *rq, double timeout_s, char **doc, size_t *len,
                                   struct exw_errbuf *eb);

/* What the status hash says before a start. */
struct exw_rq_precheck {
    int cancel;    /* cancel = 1 */
    long attempts; /* starts so far */
};

/* Reads cancel and attempts of job @id. Thread: owner. */
EXW_MUST_CHECK exw_err exw_rq_precheck(struct exw_rq *rq, const char *id,
                                       struct exw_rq_precheck *out, struct exw_errbuf *eb);

/* A status change: field/value pairs to set, an optional event. */
struct exw_rq_update {
    const char *const *fields; /* name, value, name, value, ... */
    size_t nfields;            /* count of strings in @fields (twice the pairs) */
    int incr_attempts;         /* HINCRBY attempts by this (0, 1 or -1) */
    int clear_outcome;         /* HDEL the fields of an earlier outcome */
    const char *event;         /* JSON for P:events, or NULL */
};

/* Applies @u to P:job:<id> (also setting queued_at if absent) and reads back
 * whether cancel = 1. Thread: owner. */
EXW_MUST_CHECK exw_err exw_rq_update(struct exw_rq *rq, const char *id,
                                     const struct exw_rq_update *u, int *cancel,
                                     struct exw_errbuf *eb);

/* Writes progress to P:job:<id> and publishes @event (may be NULL), only while
 * the status still says this worker runs attempt @attempt of the job: a worker
 * that was frozen past its heartbeat and woke up after another took the job
 * over writes nothing. *@owned says which; *@cancel whether cancel = 1.
 * Thread: owner. */
EXW_MUST_CHECK exw_err exw_rq_progress(struct exw_rq *rq, const char *id, long attempt,
                                       const char *const *fields, size_t nfields, const char *event,
                                       int *owned, int *cancel, struct exw_errbuf *eb);

/* Stores the result in chunks under a temporary key (so a worker never holds the
 * whole workbook in memory); exw_rq_finish renames it into place. @ttl_ms keeps
 * an abandoned upload from living forever. Thread: owner. */
EXW_MUST_CHECK exw_err exw_rq_result_chunk(struct exw_rq *rq, const char *id, int first,
                                           const void *data, size_t len, long ttl_ms,
                                           struct exw_errbuf *eb);

/* How a job ends. */
struct exw_rq_finish {
    const char *id;  /* NULL for a dead letter without a usable id */
    const char *doc; /* the document as taken, to leave the processing list */
    size_t doc_len;
    long ttl_ms;               /* of the status and result */
    int has_result;            /* rename the uploaded result into P:result:<id> */
    const char *rows_key;      /* list to delete, or NULL */
    const char *dead_entry;    /* JSON to LPUSH on P:dead, or NULL */
    const char *const *fields; /* status field/value pairs */
    size_t nfields;
    const char *const *stats; /* P:stats field/increment pairs */
    size_t nstats;
    const char *event; /* JSON for P:events, or NULL */
};

/* The error text of exw_rq_finish when the uploaded result has gone (expired
 * or evicted while Redis was away): upload it again. */
#define EXW_RQ_UPLOAD_MISSING "result upload missing"

/* Ends a job in one atomic script, only if its document is still in this
 * worker's processing list: *@owned is 0 when it was not (another worker took
 * the job over) and nothing was written. Thread: owner. */
EXW_MUST_CHECK exw_err exw_rq_finish(struct exw_rq *rq, const struct exw_rq_finish *f, int *owned,
                                     struct exw_errbuf *eb);

/* Puts a taken job back at the end of P:queue taken next, state queued, its
 * attempt not counted (shutdown). @event may be NULL. *@owned as for
 * exw_rq_finish. Thread: owner. */
EXW_MUST_CHECK exw_err exw_rq_requeue(struct exw_rq *rq, const char *id, const char *doc,
                                      size_t doc_len, const char *event, int *owned,
                                      struct exw_errbuf *eb);

/* Length of a list. Thread: owner. */
EXW_MUST_CHECK exw_err exw_rq_llen(struct exw_rq *rq, const char *key, long long *out,
                                   struct exw_errbuf *eb);

/* Called with each element of a range; nonzero stops. */
typedef exw_err (*exw_rq_elem_fn)(const char *data, size_t len, void *ud);

/* LRANGE @key @start @stop, handing each element to @fn. Thread: owner. */
EXW_MUST_CHECK exw_err exw_rq_lrange(struct exw_rq *rq, const char *key, long long start,
                                     long long stop, exw_rq_elem_fn fn, void *ud,
                                     struct exw_errbuf *eb);

/* Heartbeat fields of P:worker:<id>. */
struct exw_rq_beat {
    const char *host;
    long pid;
    int64_t started_at;
    const char *job; /* "" when idle */
    long long jobs_done;
    long ttl_ms;
};

/* Registers in P:workers and renews P:worker:<id>. Thread: owner. */
EXW_MUST_CHECK exw_err exw_rq_heartbeat(struct exw_rq *rq, const struct exw_rq_beat *b,
                                        struct exw_errbuf *eb);

/* Puts the jobs of every registered worker whose heartbeat has expired back on
 * P:queue, at the end taken next, and unregisters those workers: one atomic
 * script, so two live workers recovering at once cannot move a job twice.
 * *@recovered counts the jobs moved. Thread: owner. */
EXW_MUST_CHECK exw_err exw_rq_recover(struct exw_rq *rq, long long *recovered,
                                      struct exw_errbuf *eb);

/* Puts every job still in this worker's own processing list back on P:queue
 * (a job whose end could not be recorded). *@moved counts them. Thread: owner. */
EXW_MUST_CHECK exw_err exw_rq_release_own(struct exw_rq *rq, long long *moved,
                                          struct exw_errbuf *eb);

/* Deletes the heartbeat and leaves P:workers, unless jobs are still in this
 * worker's processing list: then it stays registered, so that recovery puts
 * them back once the heartbeat is gone. Thread: owner. */
EXW_MUST_CHECK exw_err exw_rq_deregister(struct exw_rq *rq, struct exw_errbuf *eb);

#endif
