/* redis_addr.h: EXPORT_REDIS_URL, parsed into where and how to connect, and
 * the Sentinel settings that say where the primary is instead.
 *
 * redis://[USER:PASSWORD@]HOST[:PORT][/DB] or
 * unix://[USER:PASSWORD@]/PATH[?db=N] (PROTOCOL.md section 4). With
 * EXPORT_REDIS_SENTINELS the primary is the one the sentinels name for
 * EXPORT_REDIS_MASTER, and the URL gives only the user, password and db.
 * Neither password ever reaches a message or a description. */
#ifndef EXW_REDIS_ADDR_H
#define EXW_REDIS_ADDR_H

#include "exw/buf.h"
#include "exw/err.h"

/* One Sentinel's address. */
struct exw_redis_sentinel {
    char *host; /* an IPv6 address without its [] */
    int port;
};

/* A parsed EXPORT_REDIS_URL, with the Sentinel settings when there are any. */
struct exw_redis_addr {
    char *host; /* NULL for a unix socket, or when sentinels name the primary;
                 * an IPv6 address without its [] */
    int port;
    char *path;     /* unix socket path, or NULL */
    char *user;     /* ACL user or NULL, percent-decoded */
    char *password; /* secret or NULL, percent-decoded */
    int db;
    /* EXPORT_REDIS_SENTINELS, EXPORT_REDIS_MASTER and
     * EXPORT_REDIS_SENTINEL_PASSWORD; nsentinels 0 when not used. */
    struct exw_redis_sentinel *sentinels;
    size_t nsentinels;
    char *master;            /* the primary's name at the sentinels */
    char *sentinel_password; /* secret or NULL */
};

/* Most sentinels in EXPORT_REDIS_SENTINELS. */
#define EXW_REDIS_SENTINELS_MAX 16

/* Parses redis://[user:password@]host[:port][/db] or
 * unix://[user:password@]/path[?db=N] into @out (cleanup with
 * exw_redis_addr_cleanup). On EXW_ECONFIG *@out holds nothing and @eb says
 * what is wrong, without the password or the URL. Thread: any. */
EXW_MUST_CHECK exw_err exw_redis_addr_parse(const char *url, struct exw_redis_addr *out,
                                            struct exw_errbuf *eb);

/* As exw_redis_addr_parse, but with @host_optional a redis:// URL may leave
 * out its host and port (redis://:pw@/2): for use with sentinels, which
 * name the host. *@out's host is then NULL. Thread: any. */
EXW_MUST_CHECK exw_err exw_redis_addr_parse_for(const char *url, struct exw_redis_addr *out,
                                                int host_optional, struct exw_errbuf *eb);

/* Parses @list, comma-separated HOST[:PORT] of sentinels (an IPv6 HOST in
 * [], PORT 26379 when left out, spaces around the commas ignored), into
 * @a's sentinels, replacing any there, and copies @master and
 * @sentinel_password (may be NULL) into @a. On EXW_ECONFIG @a's sentinel
 * fields are empty and @eb says what is wrong with the list, naming the
 * entry by its number. Thread: owner of @a. */
EXW_MUST_CHECK exw_err exw_redis_addr_set_sentinels(struct exw_redis_addr *a, const char *list,
                                                    const char *master,
                                                    const char *sentinel_password,
                                                    struct exw_errbuf *eb);

/* Frees what exw_redis_addr_parse() allocated, wiping the password, and
 * zeroes @a; NULL is a no-op, twice is harmless. Thread: owner. */
void exw_redis_addr_cleanup(struct exw_redis_addr *a);

/* Appends @a in URL form to @b, the password as *** (a full @b cuts it, see
 * exw_buf_printf_cut); a URL without a host as redis://.../DB. The sentinels
 * are not described here (config.c shows their own settings).
 * Thread: owner of @b. */
void exw_redis_addr_describe(const struct exw_redis_addr *a, struct exw_buf *b);

#endif
