/* admin.h: what the tools do to the Redis side beyond what a worker does:
 * enqueue a job, ask for its cancellation, put a dead letter back. Each is one
 * script (common/lua/enqueue.lua, cancel.lua, revive.lua), so that a worker
 * never sees half of one. exportctl is their user; the Python client
 * (clients/python) does the same steps in its own language. */
#ifndef EXW_ADMIN_H
#define EXW_ADMIN_H

#include <stddef.h>
#include "exw/err.h"
#include "exw/redis.h"

/* Writes a fresh queued status for job @id (its old fields dropped) and pushes
 * the document @doc of @len bytes on P:queue, unless the job is queued or
 * running already: then nothing is written and *@busy_state says which
 * ("queued"/"running", else ""). @now_ms stamps queued_at. Thread: owner. */
EXW_MUST_CHECK exw_err exw_admin_enqueue(struct exw_redis *rd, const char *id, const char *doc,
                                         size_t len, long long now_ms, char *busy_state,
                                         size_t busy_size, struct exw_errbuf *eb);

enum exw_cancel {
    EXW_CANCEL_ASKED,   /* cancel = 1 is set: the worker ends the job cancelled */
    EXW_CANCEL_MISSING, /* the job has no status */
    EXW_CANCEL_ENDED    /* the job has ended already: nothing changed */
};

/* Asks for the cancellation of job @id. Thread: owner. */
EXW_MUST_CHECK exw_err exw_admin_cancel(struct exw_redis *rd, const char *id, enum exw_cancel *out,
                                        struct exw_errbuf *eb);

/* One P:dead entry, read by exw_admin_dead_parse(). */
struct exw_dead {
    char *job;           /* the document as it was stored (caller frees) */
    size_t job_len;      /* its bytes */
    char *error;         /* why the worker gave up on it (caller frees) */
    long long at_ms;     /* failed_at, or 0 when missing */
    int truncated;       /* only the document's first MiB was kept */
    long long job_bytes; /* the whole document's length when truncated */
    char *id;            /* the document's id when it has a usable one, else NULL */
};

/* Reads the entry @entry of @len bytes; returns EXW_EJSON when it is not an
 * entry as PROTOCOL.md section 1 says, with @eb saying why. Free the result
 * with exw_admin_dead_cleanup(), also after a failure. Thread: any. */
EXW_MUST_CHECK exw_err exw_admin_dead_parse(const char *entry, size_t len, struct exw_dead *out,
                                            struct exw_errbuf *eb);
void exw_admin_dead_cleanup(struct exw_dead *d);

/* Removes the dead entry whose text is exactly @entry, pushes its document
 * back on P:queue and, when it has an id, writes a fresh queued status with no
 * attempts. *@done is 0 when the entry was no longer in the list (nothing
 * changed). A truncated entry is refused (EXW_ELIMIT): its document is not
 * whole. Thread: owner. */
EXW_MUST_CHECK exw_err exw_admin_revive(struct exw_redis *rd, const char *entry, size_t len,
                                        long long now_ms, int *done, struct exw_errbuf *eb);

#endif
