/* queue.h: the queue side of the job lifecycle: taking a job, putting it back,
 * recovering dead workers' jobs, reading a job's rows_key list, and the
 * P:dead entry.
 *
 * A job is taken with BLMOVE P:queue P:processing:<worker> (reliable fetch);
 * from then on every transition (status.h) is fenced on the document still
 * being in this worker's processing list. Thread: owner of the connection,
 * for every function that takes one. */
#ifndef EXW_QUEUE_H
#define EXW_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include "exw/err.h"
#include "exw/redis.h"

/* The most of a document a P:dead entry holds (PROTOCOL.md section 1). */
#define EXW_DEAD_JOB_MAX (1u << 20)

/* Moves the next job from P:queue to P:processing:<worker>, waiting up to
 * @timeout_s. *@doc (caller frees) is NULL when none came. A failed take may
 * still have moved a job (its reply was lost): after one, the caller looks at
 * its own processing list (exw_queue_orphan). */
EXW_MUST_CHECK exw_err exw_queue_take(struct exw_redis *rd, double timeout_s, char **doc,
                                      size_t *len, struct exw_errbuf *eb);

/* The oldest document of this worker's own processing list that is not one
 * of the @nheld documents its job threads hold (given by their SHA-1, from
 * exw_sha1_hex), or NULL (*@doc, caller frees) when there is none: a job
 * whose take reply was lost, or whose end could not be recorded. With
 * @nheld 0, simply the oldest. A @routine look (not after a failure) hashes
 * nothing while the list holds no more documents than the threads do. */
EXW_MUST_CHECK exw_err exw_queue_orphan(struct exw_redis *rd, const char (*held)[41], size_t nheld,
                                        int routine, char **doc, size_t *len,
                                        struct exw_errbuf *eb);

/* Puts a job started here as attempt @attempt back at the end of P:queue taken
 * next, unfinished (shutdown): its state is queued again, that start is not
 * counted, its partial upload is deleted. @event (JSON for P:events) may be
 * NULL. *@owned is 0 when the document was no longer in this worker's
 * processing list (nothing written). */
EXW_MUST_CHECK exw_err exw_queue_requeue(struct exw_redis *rd, const char *id, const char *doc,
                                         size_t doc_len, long attempt, const char *event,
                                         int *owned, struct exw_errbuf *eb);

/* Puts the jobs of every registered worker whose heartbeat has expired back
 * on P:queue, at the end taken next, deletes their partial uploads and
 * unregisters those workers: one atomic script, so two live workers
 * recovering at once cannot move a job twice. *@moved counts the jobs. */
EXW_MUST_CHECK exw_err exw_queue_recover(struct exw_redis *rd, long long *moved,
                                         struct exw_errbuf *eb);

/* Puts every job of this worker's own processing list back on P:queue and
 * deletes this worker's partial uploads. *@moved counts the jobs. */
EXW_MUST_CHECK exw_err exw_queue_release_own(struct exw_redis *rd, long long *moved,
                                             struct exw_errbuf *eb);

/* The number of jobs waiting in P:queue (LLEN), into *@out. */
EXW_MUST_CHECK exw_err exw_queue_length(struct exw_redis *rd, long long *out,
                                        struct exw_errbuf *eb);

/* The length of the rows_key list @key into *@len and, when it has at most
 * @measure_max elements of at most @bytes_max bytes together, those bytes
 * into *@bytes (else -1): one round trip. A key that does not exist is EXW_EREPLY ("does not
 * exist"), one that is not a list EXW_EREPLY too. */
EXW_MUST_CHECK exw_err exw_queue_rows_len(struct exw_redis *rd, const char *key,
                                          long long measure_max, long long bytes_max,
                                          long long *len, long long *bytes, struct exw_errbuf *eb);

/* Called with each element of a range; an error stops the range. */
typedef exw_err (*exw_queue_row_fn)(const char *data, size_t len, void *ud);

/* Hands the elements @start..@stop of the rows_key list @key to @fn, in
 * order; fewer when they reach @budget bytes together (never none: the first
 * is handed over whatever its size). When one of them is longer than
 * @max_bytes, none is handed over or even copied here: EXW_ELIMIT, with
 * *@too_long the index of the first such element. */
EXW_MUST_CHECK exw_err exw_queue_rows(struct exw_redis *rd, const char *key, long long start,
                                      long long stop, size_t max_bytes, size_t budget,
                                      exw_queue_row_fn fn, void *ud, long long *too_long,
                                      struct exw_errbuf *eb);

/* The P:dead entry for a document: {"job": <the document as text, ill-formed
 * UTF-8 replaced by U+FFFD>, "error": @error, "failed_at": @failed_at_ms}; a
 * document over EXW_DEAD_JOB_MAX bytes is cut there at a character boundary
 * and the entry adds "truncated": true, "job_bytes" and "job_sha256".
 * Caller frees. Thread: any. */
char *exw_queue_dead_entry(const char *doc, size_t len, const char *error, long long failed_at_ms);

/* The same for a document of which only the first @head_len bytes are at
 * hand: @total is its length and @sha256 the hex of its SHA-256 (used only
 * when the entry is cut). Thread: any. */
char *exw_queue_dead_entry_head(const char *head, size_t head_len, size_t total, const char *sha256,
                                const char *error, long long failed_at_ms);

/* The @n bytes from @offset of the oldest document of this worker's
 * processing list, and its length, without taking the whole of it in: for a
 * document too large for the worker to hold. *@part (caller frees) may be
 * shorter than @n at the document's end; *@total is 0 when the list is
 * empty. */
EXW_MUST_CHECK exw_err exw_queue_peek_own(struct exw_redis *rd, size_t offset, size_t n,
                                          char **part, size_t *part_len, long long *total,
                                          struct exw_errbuf *eb);

#endif
