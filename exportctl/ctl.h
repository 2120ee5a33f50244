/* ctl.h: what exportctl's commands share.
 *
 * main.c reads the options and the configuration and connects; each command
 * is one function of a file by topic: job.c (enqueue, status, fetch, cancel),
 * watch.c (the progress bar), fleet.c (queue, workers, dead, stats, and the
 * snapshot they and top.c read), top.c (the full-screen view). Exit codes are
 * PROTOCOL.md section 5's. Every command runs on the main thread. */
#ifndef EXW_CTL_H
#define EXW_CTL_H

#include <stddef.h>

#include "exw/config.h"
#include "exw/redis.h"

enum ctl_exit {
    CTL_OK = 0,
    CTL_FAILED = 1,    /* the job failed or is dead */
    CTL_USAGE = 2,     /* usage or configuration; a document enqueue refuses */
    CTL_CANCELLED = 3, /* the job was cancelled */
    CTL_NOT_FOUND = 4, /* no such job, result or entry */
    CTL_REDIS = 5,     /* Redis unreachable or failing */
    CTL_TIMEOUT = 6    /* a wait timed out */
};

/* The options a command accepts, as bits of struct ctl_cmd's opts. */
enum {
    OPT_JSON = 1 << 0,
    OPT_WAIT = 1 << 1,
    OPT_TIMEOUT = 1 << 2,
    OPT_OUTPUT = 1 << 3,
    OPT_REQUEUE = 1 << 4,
    OPT_PURGE = 1 << 5
};

/* What the command line said, and the connection once made. */
struct ctl {
    const char *command;
    int json, wait, purge;
    double timeout_s; /* < 0: none */
    const char *output;
    long requeue; /* 0: not asked */
    const char *redis_url, *prefix;
    char **args; /* the operands */
    int nargs;
    struct exw_config cfg;
    int cfg_loaded;
    struct exw_redis *rd;
};

/* Loads the configuration and connects; on failure says why on stderr and
 * returns CTL_USAGE or CTL_REDIS, else CTL_OK with c->rd set. */
int ctl_connect(struct ctl *c);
/* A second connection to the same Redis (for SUBSCRIBE): NULL after saying
 * why on stderr. */
struct exw_redis *ctl_connect_again(struct ctl *c);
/* Says on stderr that Redis failed doing @what; returns CTL_REDIS. */
int ctl_redis_failed(const struct exw_errbuf *eb);
/* Reports a usage error for the command on stderr; returns CTL_USAGE. */
int ctl_usage_error(const struct ctl *c, const char *fmt, ...) EXW_PRINTF(2, 3);

/* ---- Values as read from Redis ---- */

/* A hash read with HGETALL: its fields, in Redis's order. */
struct ctl_hash {
    struct exw_reply *r;
};
/* HGETALL @key into @h (empty when the key does not exist). */
EXW_MUST_CHECK exw_err ctl_hgetall(struct exw_redis *rd, const char *key, struct ctl_hash *h,
                                   struct exw_errbuf *eb);
void ctl_hash_free(struct ctl_hash *h);
size_t ctl_hash_len(const struct ctl_hash *h); /* fields */
/* The value of @field (NUL-terminated, borrowed from @h) or NULL. */
const char *ctl_hash_get(const struct ctl_hash *h, const char *field);
/* The value as an integer; @def when missing or not one. */
long long ctl_hash_ll(const struct ctl_hash *h, const char *field, long long def);
/* Field @i's name and value. */
const char *ctl_hash_name(const struct ctl_hash *h, size_t i);
const char *ctl_hash_value(const struct ctl_hash *h, size_t i);
/* The status of job @id into @h; EXW_OK with an empty hash when none. */
EXW_MUST_CHECK exw_err ctl_job_status(struct exw_redis *rd, const char *id, struct ctl_hash *h,
                                      struct exw_errbuf *eb);
/* Whether a status field holds an integer (progress, rows, times...). */
int ctl_field_is_int(const char *field);
/* Whether @state is one a job ends in. */
int ctl_state_final(const char *state);
/* The exit code of a job in @state (0 for succeeded or one still going). */
int ctl_state_exit(const char *state);

/* ---- Text ---- */

/* "2026-12-02 02:30:01 UTC", or "-" for 0. */
void ctl_fmt_time(long long ms, char *out, size_t size);
/* A duration: "850 ms", "12.3 s", "4m05s", "2h03m", "3d04h". */
void ctl_fmt_duration(long long ms, char *out, size_t size);
/* A size: "512 B", "1.2 KiB", "3.4 MiB". */
void ctl_fmt_bytes(long long bytes, char *out, size_t size);

/* ---- Commands ---- */

int ctl_cmd_enqueue(struct ctl *c);
int ctl_cmd_status(struct ctl *c);
int ctl_cmd_fetch(struct ctl *c);
int ctl_cmd_cancel(struct ctl *c);
int ctl_cmd_watch(struct ctl *c);
int ctl_cmd_queue(struct ctl *c);
int ctl_cmd_workers(struct ctl *c);
int ctl_cmd_dead(struct ctl *c);
int ctl_cmd_stats(struct ctl *c);
int ctl_cmd_top(struct ctl *c);

/* Follows job @id until it ends or @timeout_s (< 0: none) passes, drawing
 * its progress on stdout; returns the job's exit code (watch.c). */
int ctl_watch(struct ctl *c, const char *id, double timeout_s);

/* ---- The fleet, as queue, workers, dead, stats and top show it ---- */

struct fleet_job {
    char *id;
    struct ctl_hash status;
};

struct fleet_worker {
    char *id;
    int alive;          /* the heartbeat key exists */
    struct ctl_hash hb; /* host, pid, started_at, job, jobs, jobs_done */
    long long taken;    /* documents in its processing list */
    struct fleet_job *jobs;
    size_t njobs;
};

struct fleet {
    long long now_ms;
    long long queued, dead;
    struct fleet_worker *workers;
    size_t nworkers;
    struct ctl_hash stats;
    char **dead_newest; /* up to FLEET_DEAD_SHOWN entries, newest first */
    size_t *dead_len;
    size_t ndead_newest;
};

#define FLEET_DEAD_SHOWN 5

/* Reads the whole fleet; on failure @eb says why. Free with fleet_free(). */
EXW_MUST_CHECK exw_err fleet_read(struct exw_redis *rd, struct fleet *f, struct exw_errbuf *eb);
void fleet_free(struct fleet *f);

#endif
