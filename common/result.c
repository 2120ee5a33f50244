/* result.c: uploading a finished workbook in chunks. */
#include "exw/result.h"

#include <stdlib.h>

#include "exw/keys.h"

exw_err exw_result_chunk(struct exw_redis *rd, const char *id, int first, const void *data,
                         size_t len, long ttl_ms, struct exw_errbuf *eb)
{
    const char *prefix = exw_redis_prefix(rd);
    char *upload = exw_key_upload(prefix, exw_redis_worker(rd), id);
    char *uploads = exw_key(prefix, "uploads", exw_redis_worker(rd));
    struct exw_cmd c;
    exw_err rc;

    exw_cmd_init(&c);
    exw_cmd_script(&c, &exw_lua_upload, 2);
    exw_cmd_add(&c, upload);
    exw_cmd_add(&c, uploads);
    exw_cmd_add_len(&c, data, len);
    exw_cmd_add(&c, first ? "1" : "0");
    exw_cmd_addf(&c, "%ld", ttl_ms);
    rc = exw_redis_run_simple(rd, &c, "uploading the result", eb);
    free(upload);
    free(uploads);
    return rc;
}

char *exw_result_key(const char *prefix, const char *id) { return exw_key(prefix, "result", id); }
