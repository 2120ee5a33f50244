/* lookup_cache.c: the lookup cache the fleet shares, in Redis: one MGET per
 * window of keys, one script call per batch of answers (see lookup_cache.h). */
#include "exw/lookup_cache.h"

#include <stdlib.h>

#include "exw/keys.h"

/* Adds the entry names of the @n @keys to @c, keeping them in @names (the
 * caller frees them). */
static void add_entry_keys(struct exw_cmd *c, struct exw_redis *rd, const char *service,
                           const char *const *keys, size_t n, char **names)
{
    size_t i;

    for (i = 0; i < n; i++) {
        names[i] = exw_key_cache(exw_redis_prefix(rd), service, keys[i]);
        exw_cmd_add(c, names[i]);
    }
}

static void free_names(char **names, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

exw_err exw_cache_get(struct exw_redis *rd, const char *service, const char *const *keys, size_t n,
                      char **bodies, size_t *lens, struct exw_errbuf *eb)
{
    char **names = exw_xcalloc(n ? n : 1, sizeof(*names));
    struct exw_reply *r = NULL;
    struct exw_cmd c;
    exw_err rc;
    size_t i;

    for (i = 0; i < n; i++) {
        bodies[i] = NULL;
        lens[i] = 0;
    }
    exw_cmd_init(&c);
    exw_cmd_add(&c, "MGET");
    add_entry_keys(&c, rd, service, keys, n, names);
    rc = exw_redis_run(rd, &c, "lookup cache read", &r, eb);
    if (rc != EXW_OK)
        goto out;
    if (exw_reply_type(r) != EXW_REPLY_ARRAY || exw_reply_count(r) != n) {
        rc = exw_errbuf_set(eb, EXW_EREPLY, "lookup cache read: unexpected reply");
        goto out;
    }
    /* Taken out of the reply, not copied: an entry may be large. */
    for (i = 0; i < n; i++)
        bodies[i] = exw_reply_steal_at(r, i, &lens[i]);
out:
    exw_reply_free(r);
    free_names(names, n);
    return rc;
}

exw_err exw_cache_put(struct exw_redis *rd, const char *service, long ttl_s,
                      const char *const *keys, const char *const *bodies, const size_t *lens,
                      size_t n, struct exw_errbuf *eb)
{
    char **names = exw_xcalloc(n ? n : 1, sizeof(*names));
    struct exw_cmd c;
    exw_err rc;
    size_t i;

    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_cache_put, (int)n);
    add_entry_keys(&c, rd, service, keys, n, names);
    exw_cmd_addf(&c, "%ld", ttl_s);
    for (i = 0; i < n; i++)
        exw_cmd_add_len(&c, bodies[i], lens[i]);
    rc = exw_redis_run_simple(rd, &c, "lookup cache write", eb);
    free_names(names, n);
    return rc;
}
