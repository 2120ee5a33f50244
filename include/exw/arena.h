/* arena.h: text stored piece by piece and given back all at once.
 *
 * For many short-lived strings that die together, such as the decoded text
 * of a batch of rows: each piece costs a bump of a pointer instead of a
 * malloc and a free, and the whole batch goes with one reset. Pieces are
 * bytes, with no alignment: the arena is for text.
 *
 * Memory: blocks of the size given at init, kept across resets (a batch
 * reuses the blocks the one before it filled); a piece larger than a block
 * gets a block of its own, freed at the next reset. */
#ifndef EXW_ARENA_H
#define EXW_ARENA_H

#include <stddef.h>

struct exw_arena_block;

struct exw_arena {
    struct exw_arena_block *blocks; /* in use, the newest first */
    struct exw_arena_block *spare;  /* emptied by a reset, for reuse */
    size_t block_size;
};

/* Caller storage; nothing is allocated until the first piece. Thread: owner. */
void exw_arena_init(struct exw_arena *a, size_t block_size);

/* @n bytes (n > 0) that stay until the next reset; never NULL (aborts on
 * OOM, as exw_xmalloc). Thread: owner. */
char *exw_arena_alloc(struct exw_arena *a, size_t n);

/* Gives back every piece at once: the arena's blocks are kept for the next
 * pieces, except those made for a single large one. Thread: owner. */
void exw_arena_reset(struct exw_arena *a);

/* Frees every block. Thread: owner. */
void exw_arena_cleanup(struct exw_arena *a);

#endif
