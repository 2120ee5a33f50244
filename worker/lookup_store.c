/* lookup_store.c: the index of a job's lookup keys and its spill file.
 *
 * DESIGN. The index keeps no key, only a 128-bit fingerprint of it: SipHash-
 * 2-4 (128-bit output) under 16 random bytes drawn for each job, so that no
 * one who writes a job can make two keys share a fingerprint on purpose (drawn
 * at the first key: a job without lookups has none to draw them for). Two
 * distinct keys of one job share one by chance with odds of about n^2 / 2^129
 * for n distinct keys: 1.5e-27 for a million keys, 1.5e-21 for a billion,
 * far below a disk's rate of silent errors. Were it to happen, the second
 * key would get the first key's result.
 *
 * Each key is a record of 24 bytes (fingerprint, and where its result is: a
 * live entry's address, or its spill file offset shifted left by one with
 * the low bit set), kept in chunks of REC_CHUNK records so that growing never
 * copies them. An open-addressing table of 4-byte record ids (linear probing,
 * 0 for an empty slot) finds a fingerprint's record; it grows by half when
 * three quarters full, so it is always over half full: 24 + 4 / load, at most
 * 32 bytes a key (30 for a million keys).
 *
 * The spill file holds results framed as a 4-byte length and the bytes of
 * exw_lookup_pack. It is made with mkstemp in EXPORT_TMPDIR at the first
 * write and unlinked at once, so nothing is left behind whatever ends the
 * worker; the job's end closes it. Results are appended through a buffer of
 * WBUF_BYTES, so that spilling costs one write per WBUF_BYTES, not one per
 * key. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exw/digest.h"
#include "lookup_store.h"

#define REC_CHUNK 4096u
#define TABLE_MIN 1024u
#define WBUF_BYTES (64u * 1024u)
#define SPILL_NAME "exw-lookups-XXXXXX"

struct store_rec {
    uint64_t fp[2];
    uint64_t where; /* a live entry's address, or offset << 1 | 1 */
};

struct lookup_store {
    unsigned char sipkey[16];
    int keyed; /* sipkey was drawn */
    struct store_rec **chunks;
    size_t nchunks, chunks_cap;
    uint32_t count;
    uint32_t *slots; /* record ids, 0 for empty */
    size_t cap;
    const char *tmpdir;
    int fd;            /* the spill file, -1 until the first flush */
    long long flushed; /* its bytes on disk */
    char *wbuf;        /* what follows them, not yet written */
    size_t wlen;       /* bytes in wbuf */
    char *rbuf;        /* a result read back */
    size_t rcap;       /* bytes rbuf can hold */
    long long spilled; /* results appended */
    char broken[200];  /* why the file failed; "" while it works */
};

/* ---- SipHash-2-4, 128-bit output (Aumasson and Bernstein, 2012) ---- */

static uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    int i;

    for (i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void sip_rounds(uint64_t v[4], int n)
{
    while (n-- > 0) {
        v[0] += v[1];
        v[1] = rotl(v[1], 13);
        v[1] ^= v[0];
        v[0] = rotl(v[0], 32);
        v[2] += v[3];
        v[3] = rotl(v[3], 16);
        v[3] ^= v[2];
        v[0] += v[3];
        v[3] = rotl(v[3], 21);
        v[3] ^= v[0];
        v[2] += v[1];
        v[1] = rotl(v[1], 17);
        v[1] ^= v[2];
        v[2] = rotl(v[2], 32);
    }
}

void exw_lookup_siphash128(const unsigned char key[16], const void *data, size_t len,
                           uint64_t out[2])
{
    const unsigned char *p = data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    uint64_t v[4] = {0x736f6d6570736575ull ^ k0, 0x646f72616e646f6dull ^ k1,
                     0x6c7967656e657261ull ^ k0, 0x7465646279746573ull ^ k1};
    uint64_t b = (uint64_t)len << 56;
    size_t i, left = len & 7;

    v[1] ^= 0xee;
    for (i = 0; i + 8 <= len; i += 8) {
        uint64_t m = load_le64(p + i);

        v[3] ^= m;
        sip_rounds(v, 2);
        v[0] ^= m;
    }
    while (left-- > 0)
        b |= (uint64_t)p[i + left] << (8 * left);
    v[3] ^= b;
    sip_rounds(v, 2);
    v[0] ^= b;
    v[2] ^= 0xee;
    sip_rounds(v, 4);
    out[0] = v[0] ^ v[1] ^ v[2] ^ v[3];
    v[1] ^= 0xdd;
    sip_rounds(v, 4);
    out[1] = v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- The index ---- */

struct lookup_store *exw_lookup_store_new(const char *tmpdir)
{
    struct lookup_store *s = exw_xcalloc(1, sizeof(*s));

    s->tmpdir = tmpdir;
    s->fd = -1;
    s->cap = TABLE_MIN;
    s->slots = exw_xcalloc(s->cap, sizeof(*s->slots));
    return s;
}

void exw_lookup_store_free(struct lookup_store *s)
{
    size_t i;

    if (s == NULL)
        return;
    for (i = 0; i < s->nchunks; i++)
        free(s->chunks[i]);
    free(s->chunks);
    free(s->slots);
    if (s->fd >= 0)
        close(s->fd);
    free(s->wbuf);
    free(s->rbuf);
    free(s);
}

void exw_lookup_store_fp(struct lookup_store *s, const char *key, struct lookup_fp *fp)
{
    if (!s->keyed) {
        exw_random_bytes(s->sipkey, sizeof(s->sipkey));
        s->keyed = 1;
    }
    exw_lookup_siphash128(s->sipkey, key, strlen(key), fp->h);
}

static struct store_rec *rec_of(const struct lookup_store *s, uint32_t id)
{
    EXW_ASSERT(id >= 1 && id <= s->count);
    return &s->chunks[(id - 1) / REC_CHUNK][(id - 1) % REC_CHUNK];
}

static size_t slot_of(const struct lookup_store *s, const uint64_t fp[2])
{
    return (size_t)(fp[0] % s->cap);
}

uint32_t exw_lookup_store_find(const struct lookup_store *s, const struct lookup_fp *fp)
{
    size_t i = slot_of(s, fp->h);

    while (s->slots[i] != 0) {
        const struct store_rec *r = rec_of(s, s->slots[i]);

        if (r->fp[0] == fp->h[0] && r->fp[1] == fp->h[1])
            return s->slots[i];
        i = i + 1 == s->cap ? 0 : i + 1;
    }
    return 0;
}

static void place(struct lookup_store *s, uint32_t id)
{
    size_t i = slot_of(s, rec_of(s, id)->fp);

    while (s->slots[i] != 0)
        i = i + 1 == s->cap ? 0 : i + 1;
    s->slots[i] = id;
}

/* Grows the table by half once it is three quarters full. */
static void maybe_grow(struct lookup_store *s)
{
    uint32_t id;

    if ((size_t)s->count + 1 <= s->cap / 4 * 3)
        return;
    free(s->slots);
    s->cap += s->cap / 2;
    s->slots = exw_xcalloc(s->cap, sizeof(*s->slots));
    for (id = 1; id <= s->count; id++)
        place(s, id);
}

uint32_t exw_lookup_store_add(struct lookup_store *s, const struct lookup_fp *fp, void *live)
{
    struct store_rec *r;

    EXW_ASSERT(live != NULL && ((uintptr_t)live & 1) == 0);
    EXW_ASSERT(s->count < UINT32_MAX / 2); /* a job has at most a few million rows */
    maybe_grow(s);
    if (s->count % REC_CHUNK == 0) {
        if (s->nchunks == s->chunks_cap) {
            s->chunks_cap = s->chunks_cap ? s->chunks_cap * 2 : 16;
            s->chunks = exw_xrealloc(s->chunks, s->chunks_cap * sizeof(*s->chunks));
        }
        s->chunks[s->nchunks++] = exw_xmalloc(REC_CHUNK * sizeof(struct store_rec));
    }
    s->count++;
    r = rec_of(s, s->count);
    r->fp[0] = fp->h[0];
    r->fp[1] = fp->h[1];
    r->where = (uint64_t)(uintptr_t)live;
    place(s, s->count);
    return s->count;
}

uint32_t exw_lookup_store_count(const struct lookup_store *s) { return s->count; }

void *exw_lookup_store_live(const struct lookup_store *s, uint32_t id)
{
    uint64_t w = rec_of(s, id)->where;

    return (w & 1) ? NULL : (void *)(uintptr_t)w;
}

void exw_lookup_store_set_live(struct lookup_store *s, uint32_t id, void *live)
{
    EXW_ASSERT(live != NULL && ((uintptr_t)live & 1) == 0);
    rec_of(s, id)->where = (uint64_t)(uintptr_t)live;
}

/* ---- The spill file ---- */

static exw_err set_broken(struct lookup_store *s, struct exw_errbuf *eb, const char *what, int e)
{
    char why[96];

    snprintf(s->broken, sizeof(s->broken), "the lookup spill file in %s: %s: %s", s->tmpdir, what,
             exw_errno_text(e, why, sizeof(why)));
    return exw_errbuf_set(eb, EXW_EXLSX, "%s", s->broken);
}

/* Writes @n bytes at offset @off; an errno value on failure, else 0. */
static int write_all(int fd, const char *p, size_t n, long long off)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? errno : ENOSPC;
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

static exw_err open_file(struct lookup_store *s, struct exw_errbuf *eb)
{
    size_t n = strlen(s->tmpdir) + sizeof("/" SPILL_NAME);
    char *path = exw_xmalloc(n);
    exw_err rc = EXW_OK;

    snprintf(path, n, "%s/" SPILL_NAME, s->tmpdir);
    s->fd = mkstemp(path);
    if (s->fd < 0) {
        rc = set_broken(s, eb, "cannot be made", errno);
        goto out;
    }
    /* Gone from the directory at once: the descriptor alone keeps it. */
    if (unlink(path) != 0 || fcntl(s->fd, F_SETFD, FD_CLOEXEC) != 0) {
        rc = set_broken(s, eb, "cannot be unlinked", errno);
        close(s->fd);
        s->fd = -1;
    }
out:
    free(path);
    return rc;
}

/* Writes the buffer out; on failure keeps it, so that what it holds can still
 * be read back. */
static exw_err flush(struct lookup_store *s, struct exw_errbuf *eb)
{
    int e;

    if (s->wlen == 0)
        return EXW_OK;
    if (s->fd < 0 && open_file(s, eb) != EXW_OK)
        return EXW_EXLSX;
    e = write_all(s->fd, s->wbuf, s->wlen, s->flushed);
    if (e != 0)
        return set_broken(s, eb, "cannot be written", e);
    s->flushed += (long long)s->wlen;
    s->wlen = 0;
    return EXW_OK;
}

exw_err exw_lookup_store_spill(struct lookup_store *s, uint32_t id, const void *data, size_t len,
                               struct exw_errbuf *eb)
{
    struct store_rec *r = rec_of(s, id);
    uint32_t hdr = (uint32_t)len;
    long long off;

    EXW_ASSERT(len <= UINT32_MAX);
    if (s->broken[0] != '\0')
        return exw_errbuf_set(eb, EXW_EXLSX, "%s", s->broken);
    if (s->wbuf == NULL)
        s->wbuf = exw_xmalloc(WBUF_BYTES);
    if (s->wlen + sizeof(hdr) + len > WBUF_BYTES && flush(s, eb) != EXW_OK)
        return EXW_EXLSX;
    off = s->flushed + (long long)s->wlen;
    if (sizeof(hdr) + len > WBUF_BYTES) {
        /* Larger than the buffer, which is empty now: straight to the file. */
        int e;

        if (s->fd < 0 && open_file(s, eb) != EXW_OK)
            return EXW_EXLSX;
        e = write_all(s->fd, (const char *)&hdr, sizeof(hdr), off);

        if (e == 0)
            e = write_all(s->fd, data, len, off + (long long)sizeof(hdr));
        if (e != 0)
            return set_broken(s, eb, "cannot be written", e);
        s->flushed += (long long)(sizeof(hdr) + len);
    } else {
        memcpy(s->wbuf + s->wlen, &hdr, sizeof(hdr));
        memcpy(s->wbuf + s->wlen + sizeof(hdr), data, len);
        s->wlen += sizeof(hdr) + len;
    }
    r->where = (uint64_t)off << 1 | 1;
    s->spilled++;
    return EXW_OK;
}

/* Reads @n bytes at @off of the file, or of the buffer past its end, into
 * @out. */
static exw_err read_at(struct lookup_store *s, long long off, char *out, size_t n,
                       struct exw_errbuf *eb)
{
    char why[96];

    if (off >= s->flushed) {
        if ((size_t)(off - s->flushed) + n > s->wlen)
            return exw_errbuf_set(eb, EXW_EXLSX, "the lookup spill file is shorter than its index");
        memcpy(out, s->wbuf + (off - s->flushed), n);
        return EXW_OK;
    }
    while (n > 0) {
        ssize_t got = pread(s->fd, out, n, (off_t)off);

        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return exw_errbuf_set(eb, EXW_EXLSX, "the lookup spill file in %s cannot be read: %s",
                                  s->tmpdir,
                                  got < 0 ? exw_errno_text(errno, why, sizeof(why)) : "too short");
        out += got;
        n -= (size_t)got;
        off += got;
    }
    return EXW_OK;
}

exw_err exw_lookup_store_read(struct lookup_store *s, uint32_t id, const char **data, size_t *len,
                              struct exw_errbuf *eb)
{
    uint64_t w = rec_of(s, id)->where;
    long long off = (long long)(w >> 1);
    uint32_t hdr;
    exw_err rc;

    *data = NULL;
    *len = 0;
    EXW_ASSERT(w & 1);
    rc = read_at(s, off, (char *)&hdr, sizeof(hdr), eb);
    if (rc != EXW_OK)
        return rc;
    if (s->rcap < (size_t)hdr + 1) {
        free(s->rbuf);
        s->rcap = (size_t)hdr + 1 > 256 ? (size_t)hdr + 1 : 256;
        s->rbuf = exw_xmalloc(s->rcap);
    }
    rc = read_at(s, off + (long long)sizeof(hdr), s->rbuf, hdr, eb);
    if (rc != EXW_OK)
        return rc;
    *data = s->rbuf;
    *len = hdr;
    return EXW_OK;
}

void exw_lookup_store_stats(const struct lookup_store *s, struct lookup_store_stats *out)
{
    out->keys = s->count;
    out->index_bytes = s->nchunks * REC_CHUNK * sizeof(struct store_rec) +
                       s->chunks_cap * sizeof(*s->chunks) + s->cap * sizeof(*s->slots);
    out->spilled = s->spilled;
    out->file_size = s->flushed + (long long)s->wlen;
}

/* ---- A result as bytes ----
 *
 * 'O', then per cell its kind (one byte) and: nothing (empty), a double
 * (number, boolean), five int32 and a double (datetime), or a uint32 length
 * and the bytes (string); or 'F', a uint32 length and the failure's text.
 * Native byte order: the file never leaves the process that wrote it. */

static void put(struct exw_buf *out, const void *p, size_t n)
{
    exw_err rc = exw_buf_append(out, p, n);

    EXW_ASSERT(rc == EXW_OK); /* the caller's buffer has no cap */
}

static void put_text(struct exw_buf *out, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);

    put(out, &n, sizeof(n));
    put(out, s, n);
}

void exw_lookup_pack(struct exw_buf *out, const struct exw_cell *cells, size_t n, const char *error)
{
    size_t i;

    if (cells == NULL) {
        put(out, "F", 1);
        put_text(out, error != NULL ? error : "");
        return;
    }
    put(out, "O", 1);
    for (i = 0; i < n; i++) {
        const struct exw_cell *c = &cells[i];
        unsigned char kind = (unsigned char)c->kind;
        int32_t dt[5] = {c->dt.year, c->dt.month, c->dt.day, c->dt.hour, c->dt.min};

        put(out, &kind, 1);
        switch (c->kind) {
        case EXW_CELL_NUMBER:
        case EXW_CELL_BOOLEAN:
            put(out, &c->num, sizeof(c->num));
            break;
        case EXW_CELL_DATETIME:
            put(out, dt, sizeof(dt));
            put(out, &c->dt.sec, sizeof(c->dt.sec));
            break;
        case EXW_CELL_STRING:
            put_text(out, c->str != NULL ? c->str : "");
            break;
        case EXW_CELL_EMPTY:
            break;
        }
    }
}

struct reader {
    const char *p;
    size_t left;
};

static int take(struct reader *r, void *out, size_t n)
{
    if (r->left < n)
        return 0;
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
    return 1;
}

/* A uint32-counted text, as a new NUL-terminated string; NULL when cut. */
static char *take_text(struct reader *r)
{
    uint32_t n;
    char *s;

    if (!take(r, &n, sizeof(n)) || r->left < n)
        return NULL;
    s = exw_xstrndup(r->p, n);
    r->p += n;
    r->left -= n;
    return s;
}

static int take_cell(struct reader *r, struct exw_cell *c)
{
    unsigned char kind;
    int32_t dt[5];

    if (!take(r, &kind, 1))
        return 0;
    switch (kind) {
    case EXW_CELL_NUMBER:
    case EXW_CELL_BOOLEAN:
        if (!take(r, &c->num, sizeof(c->num)))
            return 0;
        break;
    case EXW_CELL_DATETIME:
        if (!take(r, dt, sizeof(dt)) || !take(r, &c->dt.sec, sizeof(c->dt.sec)))
            return 0;
        c->dt.year = dt[0];
        c->dt.month = dt[1];
        c->dt.day = dt[2];
        c->dt.hour = dt[3];
        c->dt.min = dt[4];
        break;
    case EXW_CELL_STRING:
        c->owned = take_text(r);
        if (c->owned == NULL)
            return 0;
        c->str = c->owned;
        break;
    case EXW_CELL_EMPTY:
        break;
    default:
        return 0;
    }
    c->kind = (enum exw_cell_kind)kind;
    return 1;
}

exw_err exw_lookup_unpack(const char *data, size_t len, size_t n, struct exw_cell **cells,
                          char **error, struct exw_errbuf *eb)
{
    struct reader r = {data, len};
    struct exw_cell *out = NULL;
    char tag = 0;
    exw_err rc = EXW_EJSON;
    size_t i;

    *cells = NULL;
    *error = NULL;
    if (!take(&r, &tag, 1))
        goto out;
    if (tag == 'F') {
        *error = take_text(&r);
        if (*error != NULL && r.left == 0)
            rc = EXW_OK;
        goto out;
    }
    if (tag != 'O')
        goto out;
    out = exw_xcalloc(n ? n : 1, sizeof(*out));
    for (i = 0; i < n; i++)
        if (!take_cell(&r, &out[i]))
            goto out;
    if (r.left == 0)
        rc = EXW_OK;
out:
    if (rc != EXW_OK) {
        if (out != NULL)
            exw_cells_cleanup(out, n);
        free(out);
        out = NULL;
        free(*error);
        *error = NULL;
        exw_errbuf_set(eb, rc, "a spilled lookup result of %zu bytes does not read back", len);
    }
    *cells = out;
    return rc;
}
