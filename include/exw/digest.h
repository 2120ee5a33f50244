/* digest.h: SHA-256 for result_sha256, and SHA-1 to name a job document as
 * Redis's scripts do (redis.sha1hex); OpenSSL's libcrypto. */
#ifndef EXW_DIGEST_H
#define EXW_DIGEST_H

#include <stddef.h>
#include "exw/err.h"

struct exw_sha256;

/* Thread: owner. */
EXW_MUST_CHECK exw_err exw_sha256_new(struct exw_sha256 **out);
EXW_MUST_CHECK exw_err exw_sha256_update(struct exw_sha256 *s, const void *data, size_t len);
/* Writes 64 lowercase hex digits and a NUL into @hex. */
EXW_MUST_CHECK exw_err exw_sha256_final(struct exw_sha256 *s, char hex[65]);
void exw_sha256_free(struct exw_sha256 *s);

/* Fills @out with @n random bytes (OpenSSL's RAND_bytes). Should that fail,
 * the bytes come from the clock, the pid and a counter: they still differ
 * between processes and calls, only not against a foe. Thread: any. */
void exw_random_bytes(void *out, size_t n);

/* The SHA-1 of @len bytes at @data as 40 lowercase hex digits and a NUL.
 * Thread: any. */
EXW_MUST_CHECK exw_err exw_sha1_hex(const void *data, size_t len, char hex[41]);

#endif
