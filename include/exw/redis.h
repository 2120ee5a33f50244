/* redis.h: one connection to Redis; the only user of hiredis.
 *
 * The modules of the Redis side build on it, one concept each, along the
 * pipeline: queue.h (take, put back, recover, rows), status.h (start,
 * progress, end), result.h (upload) and lease.h (heartbeat, registry). Key
 * names are built by keys.h only.
 *
 * A struct exw_redis is owned by one thread. Errors come in four kinds:
 *   EXW_EREDIS  the connection is gone (or never came): it is broken from then
 *               on (hiredis errors are sticky) and the owner makes a new one;
 *   EXW_EAGAIN  Redis answered with an error that passes by itself (LOADING,
 *               BUSY, TRYAGAIN, MASTERDOWN, OOM, MISCONF; READONLY, CLUSTERDOWN
 *               and MOVED or ASK past the redirect limit, after which the
 *               connection is also broken, so that the next one finds the
 *               primary): retry later;
 *   EXW_ENOMEM  the reply was too large for this process's memory (hiredis
 *               could not allocate it); the connection is broken as above;
 *   EXW_EREPLY  Redis answered with an error that a retry will not change
 *               (WRONGTYPE, NOPERM, a script's own refusal...).
 * The errbuf then holds Redis's own text, after what was being done.
 *
 * On a Redis Cluster, a command answered with MOVED or ASK is sent again to
 * the node named, transparently (see redis.c). */
#ifndef EXW_REDIS_H
#define EXW_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include "exw/config.h"
#include "exw/err.h"
#include "exw/scripts.h"

struct exw_redis;
struct exw_reply; /* a reply, read with the exw_reply_* functions below */

/* Connects to the server @addr means for keys under @prefix, authenticates
 * and selects the database: the primary the sentinels name, the owner of the
 * prefix's slot on a Redis Cluster, else the URL's server (topology.h).
 * @timeout_ms bounds each connect and every command (blocking commands add
 * their own wait). @prefix and @worker_id name this worker's keys. Errors as
 * above, and EXW_ECONFIG for a setting that a Redis Cluster cannot take (a
 * prefix without a hash tag, a db other than 0): retrying will not help.
 * Thread: owner. */
EXW_MUST_CHECK exw_err exw_redis_connect(const struct exw_redis_addr *addr, const char *prefix,
                                         const char *worker_id, long timeout_ms,
                                         struct exw_redis **out, struct exw_errbuf *eb);
void exw_redis_free(struct exw_redis *rd);

/* A bare connection to one server, @host:@port or the unix socket @path:
 * AUTH as @user/@password when a password is given (both may be NULL), no
 * SELECT, no topology; its prefix and worker id are empty. For sentinels and
 * cluster nodes (topology.c, sentinel.c); keys go through exw_redis_connect.
 * Errors as exw_redis_connect (EXW_EREPLY when AUTH is refused).
 * Thread: owner. */
EXW_MUST_CHECK exw_err exw_redis_open(const char *host, int port, const char *path,
                                      const char *user, const char *password, long timeout_ms,
                                      struct exw_redis **out, struct exw_errbuf *eb);

/* Names the connection's prefix and worker id (exw_redis_prefix,
 * exw_redis_worker). Thread: owner. */
void exw_redis_set_names(struct exw_redis *rd, const char *prefix, const char *worker_id);

/* Marks the connection as one to a Redis Cluster node for keys of slot
 * @slot: a MOVED for that slot makes the node it names the process's
 * primary (topology.h). MOVED and ASK are followed on any connection.
 * Thread: owner. */
void exw_redis_set_cluster(struct exw_redis *rd, int slot);

/* "host:port" of the server talked to now (it changes with MOVED); "" on a
 * unix socket. Thread: owner. */
const char *exw_redis_node(const struct exw_redis *rd);

/* Whether the connection has failed and must be replaced. Thread: owner. */
int exw_redis_broken(const struct exw_redis *rd);

/* Gives back the memory of the connection's reply reader, unless a reply is
 * under way. hiredis keeps the buffer a reply came in until the next read,
 * which on a connection that took a large document may be a whole job away;
 * callers that got a large reply call this once they hold it. */
void exw_redis_trim(struct exw_redis *rd);

/* The key prefix and worker id given to exw_redis_connect. Thread: owner. */
const char *exw_redis_prefix(const struct exw_redis *rd);
const char *exw_redis_worker(const struct exw_redis *rd);

/* A command's arguments, built in caller storage. Strings added are borrowed
 * (they must outlive the call that sends the command) except those of
 * exw_cmd_addf, which the command owns. */
struct exw_cmd {
    const char **v;
    size_t *len;
    char **owned;
    int n, cap, nowned, owned_cap;
};

/* Thread: owner (of the command). */
void exw_cmd_init(struct exw_cmd *c);
void exw_cmd_add(struct exw_cmd *c, const char *s);
void exw_cmd_add_len(struct exw_cmd *c, const void *s, size_t len);
void exw_cmd_addf(struct exw_cmd *c, const char *fmt, ...) EXW_PRINTF(2, 3);
void exw_cmd_cleanup(struct exw_cmd *c);

/* Starts @c as a call of @script with @nkeys keys: add the keys, then the
 * arguments, then run it with exw_redis_run. Thread: owner. */
void exw_cmd_script(struct exw_cmd *c, const struct exw_script *script, int nkeys);

/* Sends @c and reads its reply into *@out (caller frees with exw_reply_free;
 * NULL on error). A script call goes as EVALSHA, and again as EVAL when Redis
 * answers NOSCRIPT. @what names the step for the error text. @c is emptied
 * (exw_cmd_cleanup) either way. Thread: owner. */
EXW_MUST_CHECK exw_err exw_redis_run(struct exw_redis *rd, struct exw_cmd *c, const char *what,
                                     struct exw_reply **out, struct exw_errbuf *eb);

/* As exw_redis_run, for a command whose reply does not matter beyond errors. */
EXW_MUST_CHECK exw_err exw_redis_run_simple(struct exw_redis *rd, struct exw_cmd *c,
                                            const char *what, struct exw_errbuf *eb);

/* As exw_redis_run, for an integer reply, into *@out (0 for any other). */
EXW_MUST_CHECK exw_err exw_redis_run_int(struct exw_redis *rd, struct exw_cmd *c, const char *what,
                                         long long *out, struct exw_errbuf *eb);

/* The command timeout given to exw_redis_connect. Thread: owner. */
long exw_redis_timeout(const struct exw_redis *rd);

/* Sets how long a command may take before the connection counts as gone;
 * blocking commands raise it for their own call. Thread: owner. */
void exw_redis_set_timeout(struct exw_redis *rd, long timeout_ms);

/* A test seam for the transport: when set, @fn is asked before each command
 * whether to lose its reply; if it returns nonzero, the command still runs on
 * Redis but its reply is dropped and the connection breaks, as when a network
 * fails after the request went out. NULL restores the plain transport.
 * Thread: owner. */
typedef int (*exw_redis_fault_fn)(const struct exw_cmd *c, void *ud);
void exw_redis_set_fault(struct exw_redis *rd, exw_redis_fault_fn fn, void *ud);

/* CONFIG GET @name into @out (empty when not readable, e.g. under an ACL).
 * Thread: owner. */
EXW_MUST_CHECK exw_err exw_redis_config_get(struct exw_redis *rd, const char *name, char *out,
                                            size_t outsz, struct exw_errbuf *eb);

/* For a connection that has subscribed (SUBSCRIBE sent with exw_redis_run,
 * whose reply is the first confirmation), the next pushed message, waiting at
 * most @timeout_ms for it: *@out is NULL when none came in time, which leaves
 * the connection usable (a command timeout would break it). The caller frees
 * *@out. Errors as exw_redis_run. Thread: owner. */
EXW_MUST_CHECK exw_err exw_redis_next_message(struct exw_redis *rd, long timeout_ms,
                                              struct exw_reply **out, struct exw_errbuf *eb);

/* ---- Replies ---- */

enum exw_reply_type {
    EXW_REPLY_NIL,
    EXW_REPLY_INTEGER,
    EXW_REPLY_STRING, /* a bulk string or a status line */
    EXW_REPLY_ARRAY,
    EXW_REPLY_OTHER
};

/* Thread: owner (of the reply). */
enum exw_reply_type exw_reply_type(const struct exw_reply *r);
long long exw_reply_integer(const struct exw_reply *r);               /* 0 unless INTEGER */
const char *exw_reply_string(const struct exw_reply *r, size_t *len); /* NULL unless STRING */
size_t exw_reply_count(const struct exw_reply *r);                    /* 0 unless ARRAY */
const struct exw_reply *exw_reply_at(const struct exw_reply *r, size_t i);
/* Takes the text of a STRING reply out of it: the caller frees it with
 * free(); it is NUL-terminated, *@len bytes long. NULL unless STRING. A
 * document as large as the worker takes is thus never copied. */
char *exw_reply_steal_string(struct exw_reply *r, size_t *len);
/* The same for element @i of an ARRAY reply. */
char *exw_reply_steal_at(struct exw_reply *r, size_t i, size_t *len);
/* Whether @r is a string equal to @s. */
int exw_reply_is(const struct exw_reply *r, const char *s);
void exw_reply_free(struct exw_reply *r);

#endif
