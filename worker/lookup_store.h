/* lookup_store.h: where a job keeps what its lookups found (lookup.c's own).
 *
 * The store is an index of every key the job has seen, by fingerprint, each
 * naming where the key's result is: a live entry (lookup.c's, opaque here) or
 * an offset in the job's spill file, an append-only file in EXPORT_TMPDIR that
 * is unlinked as soon as it is made. lookup.c frees the results of keys no
 * row holds, so that a job's memory grows by the index alone (at most 32
 * bytes a key) however many distinct keys it has; a later row naming the same
 * key reads the result back from the file instead of asking the service
 * again. The functions to pack the cells of a result into bytes and back are
 * here too. Everything here belongs to the job thread. */
#ifndef EXW_LOOKUP_STORE_H
#define EXW_LOOKUP_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "exw/buf.h"
#include "exw/cells.h"
#include "exw/err.h"

struct lookup_store;
struct lookups;

/* A key's fingerprint: SipHash-2-4 with 128-bit output under the store's
 * random key (see lookup_store.c for the odds of two keys sharing one). */
struct lookup_fp {
    uint64_t h[2];
};

/* A store whose spill file, made at the first spill, goes to @tmpdir
 * (borrowed: it must outlive the store). Thread: main. */
struct lookup_store *exw_lookup_store_new(const char *tmpdir);

/* Frees the index and closes the spill file; the live entries it names are the
 * caller's. NULL is a no-op. Thread: main. */
void exw_lookup_store_free(struct lookup_store *s);

/* The fingerprint of @key (NUL-terminated) under @s's key, which the first
 * call draws. Thread: main. */
void exw_lookup_store_fp(struct lookup_store *s, const char *key, struct lookup_fp *fp);

/* SipHash-2-4 with 128-bit output of @len bytes at @data under the 16-byte
 * @key: @out[0] and @out[1] are the output's first and second 8 bytes read
 * little-endian. Thread: any. */
void exw_lookup_siphash128(const unsigned char key[16], const void *data, size_t len,
                           uint64_t out[2]);

/* The id (1 and up, in the order the keys were added) of the key with
 * fingerprint @fp; 0 when the store has not seen it. Thread: main. */
uint32_t exw_lookup_store_find(const struct lookup_store *s, const struct lookup_fp *fp);

/* Adds the key of fingerprint @fp, not yet in @s, with its live entry @live
 * (not NULL; 8-byte aligned, as malloc's are). Returns its id. Thread: main. */
uint32_t exw_lookup_store_add(struct lookup_store *s, const struct lookup_fp *fp, void *live);

/* How many keys @s holds; their ids are 1 to that. Thread: main. */
uint32_t exw_lookup_store_count(const struct lookup_store *s);

/* The live entry of key @id, or NULL when its result is in the spill file.
 * Thread: main. */
void *exw_lookup_store_live(const struct lookup_store *s, uint32_t id);

/* Makes @live (not NULL) the live entry of key @id, whose result was read back
 * from the spill file. Thread: main. */
void exw_lookup_store_set_live(struct lookup_store *s, uint32_t id, void *live);

/* Appends @len bytes at @data to the spill file as key @id's result, which
 * then is no longer live (the caller frees its entry). Writes are buffered: a
 * result still in the buffer reads back from it. On a failure (the file
 * cannot be made or written: a full disk) returns EXW_EXLSX (the file system
 * failed) with @eb saying why, and key @id stays live; so does every key
 * offered after that, and nothing spilled before is lost. Thread: main. */
EXW_MUST_CHECK exw_err exw_lookup_store_spill(struct lookup_store *s, uint32_t id, const void *data,
                                              size_t len, struct exw_errbuf *eb);

/* Reads key @id's result, in the spill file: *@data (@len bytes) lives until
 * the next call on @s. EXW_EXLSX with @eb saying why when it cannot be read.
 * Thread: main. */
EXW_MUST_CHECK exw_err exw_lookup_store_read(struct lookup_store *s, uint32_t id, const char **data,
                                             size_t *len, struct exw_errbuf *eb);

/* Figures for tests and the operations guide. Thread: main. */
struct lookup_store_stats {
    uint32_t keys;       /* keys in the index */
    size_t index_bytes;  /* what the index holds allocated: records and table */
    long long spilled;   /* results written to the spill file */
    long long file_size; /* bytes the spill file holds, buffered ones included */
};
void exw_lookup_store_stats(const struct lookup_store *s, struct lookup_store_stats *out);

/* Appends to @out the bytes of one key's result: its @n lookup cells when
 * @cells is not NULL, else the text @error of its failure. Thread: any. */
void exw_lookup_pack(struct exw_buf *out, const struct exw_cell *cells, size_t n,
                     const char *error);

/* Reads back what exw_lookup_pack wrote for @n cells: either *@cells (@n
 * cells, each owning its text: free with exw_cells_cleanup and free()) or
 * *@error (free()); the other is NULL. EXW_EJSON when the bytes are not such a
 * result. Thread: any. */
EXW_MUST_CHECK exw_err exw_lookup_unpack(const char *data, size_t len, size_t n,
                                         struct exw_cell **cells, char **error,
                                         struct exw_errbuf *eb);

/* What lookup.c holds of one job's lookups (for tests). Thread: main. */
struct lookups_mem {
    long long live;      /* entries in memory */
    long long cached;    /* of those, finished ones no row holds */
    long long read_back; /* results read back from the spill file */
    struct lookup_store_stats store;
};
void exw_lookups_mem(struct lookups *l, struct lookups_mem *out);

#endif
