/* keys.c: the name of every Redis key, built from the prefix. */
#include "exw/keys.h"

#include <stdio.h>
#include <string.h>

#include "exw/err.h"

char *exw_key(const char *prefix, const char *kind, const char *id)
{
    size_t len = strlen(prefix) + strlen(kind) + (id ? strlen(id) + 1 : 0) + 2;
    char *k = exw_xmalloc(len);

    if (id != NULL)
        snprintf(k, len, "%s:%s:%s", prefix, kind, id);
    else
        snprintf(k, len, "%s:%s", prefix, kind);
    return k;
}

char *exw_key_upload(const char *prefix, const char *worker, const char *id)
{
    size_t len = strlen(prefix) + strlen(worker) + strlen(id) + sizeof(":upload::");
    char *k = exw_xmalloc(len);

    snprintf(k, len, "%s:upload:%s:%s", prefix, worker, id);
    return k;
}

/* "P:<space>:<service in lower case>:<rest>". */
static char *service_key(const char *prefix, const char *space, const char *service,
                         const char *rest)
{
    size_t len = strlen(prefix) + strlen(space) + strlen(service) + strlen(rest) + 4;
    char *k = exw_xmalloc(len);
    char *p;
    int n = snprintf(k, len, "%s:%s:", prefix, space);

    for (p = k + n; *service; service++)
        *p++ = (char)(*service >= 'A' && *service <= 'Z' ? *service - 'A' + 'a' : *service);
    snprintf(p, len - (size_t)(p - k), ":%s", rest);
    return k;
}

char *exw_key_cache(const char *prefix, const char *service, const char *key)
{
    return service_key(prefix, "cache", service, key);
}

char *exw_key_limit(const char *prefix, const char *service, const char *what)
{
    return service_key(prefix, "limit", service, what);
}

int exw_key_rows_allowed(const char *prefix, const char *key)
{
    static const char *const own[] = {"queue", "dead", "workers", "stats", "events"};
    static const char *const own_spaces[] = {
        "job:", "result:", "processing:", "worker:", "upload:", "uploads:", "cache:", "limit:"};
    size_t plen = strlen(prefix);
    const char *rest;
    size_t i;

    if (strncmp(key, prefix, plen) != 0 || key[plen] != ':')
        return 0;
    rest = key + plen + 1;
    for (i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        if (strcmp(rest, own[i]) == 0)
            return 0;
    }
    for (i = 0; i < sizeof(own_spaces) / sizeof(own_spaces[0]); i++) {
        if (strncmp(rest, own_spaces[i], strlen(own_spaces[i])) == 0)
            return 0;
    }
    return 1;
}

int exw_key_rows_check(const char *prefix, const char *key, struct exw_errbuf *eb)
{
    if (exw_key_rows_allowed(prefix, key))
        return 1;
    exw_errbuf_set(eb, EXW_EJSON,
                   "rows_key: %s is one of the worker's own keys; name a list of your own "
                   "under %s:",
                   key, prefix);
    return 0;
}
