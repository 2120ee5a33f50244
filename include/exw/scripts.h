/* scripts.h: the Lua scripts of common/lua/, embedded at build time.
 *
 * Each script runs on Redis through exw_redis_eval(), which sends EVALSHA and
 * falls back on EVAL when Redis does not know the script yet (a restart, a
 * SCRIPT FLUSH, a failover). The scripts' own comments say what they take and
 * return. */
#ifndef EXW_SCRIPTS_H
#define EXW_SCRIPTS_H

#include <stddef.h>

struct exw_script {
    const char *name; /* the file's name without .lua */
    const char *body; /* the file's bytes */
    size_t len;
    const char *sha1; /* hex, as EVALSHA takes it */
};

extern const struct exw_script exw_lua_cache_put;      /* lookup_cache.c */
extern const struct exw_script exw_lua_cancel;         /* admin.c */
extern const struct exw_script exw_lua_deregister;     /* lease.c */
extern const struct exw_script exw_lua_enqueue;        /* admin.c */
extern const struct exw_script exw_lua_finish;         /* status.c */
extern const struct exw_script exw_lua_heartbeat;      /* lease.c */
extern const struct exw_script exw_lua_orphan;         /* queue.c */
extern const struct exw_script exw_lua_peek;           /* queue.c */
extern const struct exw_script exw_lua_permit_release; /* limits.c */
extern const struct exw_script exw_lua_permit_renew;   /* limits.c */
extern const struct exw_script exw_lua_permit_take;    /* limits.c */
extern const struct exw_script exw_lua_progress;       /* status.c */
extern const struct exw_script exw_lua_rate_take;      /* limits.c */
extern const struct exw_script exw_lua_recover;        /* queue.c */
extern const struct exw_script exw_lua_release;        /* queue.c */
extern const struct exw_script exw_lua_requeue;        /* queue.c */
extern const struct exw_script exw_lua_revive;         /* admin.c */
extern const struct exw_script exw_lua_rows;           /* queue.c */
extern const struct exw_script exw_lua_rows_len;       /* queue.c */
extern const struct exw_script exw_lua_start;          /* status.c */
extern const struct exw_script exw_lua_upload;         /* result.c */

/* The script whose SHA-1 is @sha1, or NULL. Thread: any. */
const struct exw_script *exw_script_by_sha1(const char *sha1);

#endif
