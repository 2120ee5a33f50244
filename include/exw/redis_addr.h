/* redis_addr.h: EXPORT_REDIS_URL, parsed into where and how to connect.
 *
 * redis://[USER:PASSWORD@]HOST[:PORT][/DB] or
 * unix://[USER:PASSWORD@]/PATH[?db=N] (PROTOCOL.md section 4). The password
 * never reaches a message or a description. */
#ifndef EXW_REDIS_ADDR_H
#define EXW_REDIS_ADDR_H

#include "exw/buf.h"
#include "exw/err.h"

/* A parsed EXPORT_REDIS_URL. */
struct exw_redis_addr {
    char *host; /* NULL for a unix socket; an IPv6 address without its [] */
    int port;
    char *path;     /* unix socket path, or NULL */
    char *user;     /* ACL user or NULL, percent-decoded */
    char *password; /* secret or NULL, percent-decoded */
    int db;
};

/* Parses redis://[user:password@]host[:port][/db] or
 * unix://[user:password@]/path[?db=N] into @out (cleanup with
 * exw_redis_addr_cleanup). On EXW_ECONFIG *@out holds nothing and @eb says
 * what is wrong, without the password or the URL. Thread: any. */
EXW_MUST_CHECK exw_err exw_redis_addr_parse(const char *url, struct exw_redis_addr *out,
                                            struct exw_errbuf *eb);

/* Frees what exw_redis_addr_parse() allocated, wiping the password, and
 * zeroes @a; NULL is a no-op, twice is harmless. Thread: owner. */
void exw_redis_addr_cleanup(struct exw_redis_addr *a);

/* Appends @a in URL form to @b, the password as *** (a full @b cuts it, see
 * exw_buf_printf_cut). Thread: owner of @b. */
void exw_redis_addr_describe(const struct exw_redis_addr *a, struct exw_buf *b);

#endif
