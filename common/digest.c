/* digest.c: SHA-256 (streaming) and SHA-1 (one-shot) over OpenSSL's EVP interface. */
#include "exw/digest.h"

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

void exw_random_bytes(void *out, size_t n)
{
    static atomic_uint_fast64_t calls;
    unsigned char *p = out;
    struct timespec ts;
    uint64_t x;
    size_t i;

    if (n <= INT_MAX && RAND_bytes(p, (int)n) == 1)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40) ^
        ((uint64_t)atomic_fetch_add(&calls, 1) << 52);
    for (i = 0; i < n; i++) {
        x += 0x9e3779b97f4a7c15ULL; /* splitmix64 */
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        p[i] = (unsigned char)(x ^ (x >> 31));
    }
}

struct exw_sha256 {
    EVP_MD_CTX *ctx;
};

exw_err exw_sha256_new(struct exw_sha256 **out)
{
    struct exw_sha256 *s = exw_xcalloc(1, sizeof(*s));

    s->ctx = EVP_MD_CTX_new();
    if (s->ctx == NULL || EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL) != 1) {
        exw_sha256_free(s);
        *out = NULL;
        return EXW_ENOMEM;
    }
    *out = s;
    return EXW_OK;
}

exw_err exw_sha256_update(struct exw_sha256 *s, const void *data, size_t len)
{
    return EVP_DigestUpdate(s->ctx, data, len) == 1 ? EXW_OK : EXW_ENOMEM;
}

static void to_hex(const unsigned char *md, unsigned int n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    unsigned int i;

    for (i = 0; i < n; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[2 * n] = '\0';
}

exw_err exw_sha256_final(struct exw_sha256 *s, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (EVP_DigestFinal_ex(s->ctx, md, &n) != 1 || n != 32)
        return EXW_ENOMEM;
    to_hex(md, n, hex);
    return EXW_OK;
}

exw_err exw_sha1_hex(const void *data, size_t len, char hex[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (EVP_Digest(data, len, md, &n, EVP_sha1(), NULL) != 1 || n != 20)
        return EXW_ENOMEM;
    to_hex(md, n, hex);
    return EXW_OK;
}

void exw_sha256_free(struct exw_sha256 *s)
{
    if (s == NULL)
        return;
    EVP_MD_CTX_free(s->ctx);
    free(s);
}
