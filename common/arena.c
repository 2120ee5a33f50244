/* arena.c: text stored piece by piece and given back all at once (arena.h). */
#include "exw/arena.h"

#include <stdlib.h>

#include "exw/err.h"

struct exw_arena_block {
    struct exw_arena_block *next;
    size_t size, used; /* of data */
    char data[];
};

static struct exw_arena_block *new_block(size_t size)
{
    struct exw_arena_block *b = exw_xmalloc(sizeof(*b) + size);

    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

static void free_chain(struct exw_arena_block *b)
{
    while (b != NULL) {
        struct exw_arena_block *next = b->next;

        free(b);
        b = next;
    }
}

void exw_arena_init(struct exw_arena *a, size_t block_size)
{
    a->blocks = NULL;
    a->spare = NULL;
    a->block_size = block_size;
}

char *exw_arena_alloc(struct exw_arena *a, size_t n)
{
    struct exw_arena_block *b = a->blocks;

    EXW_ASSERT(n > 0);
    if (b == NULL || b->size - b->used < n) {
        if (n > a->block_size) {
            b = new_block(n);
        } else if (a->spare != NULL) {
            b = a->spare;
            a->spare = b->next;
            b->used = 0;
        } else {
            b = new_block(a->block_size);
        }
        b->next = a->blocks;
        a->blocks = b;
    }
    b->used += n;
    return b->data + b->used - n;
}

void exw_arena_reset(struct exw_arena *a)
{
    struct exw_arena_block *b = a->blocks;

    while (b != NULL) {
        struct exw_arena_block *next = b->next;

        if (b->size == a->block_size) {
            b->next = a->spare;
            a->spare = b;
        } else {
            free(b);
        }
        b = next;
    }
    a->blocks = NULL;
}

void exw_arena_cleanup(struct exw_arena *a)
{
    free_chain(a->blocks);
    free_chain(a->spare);
    a->blocks = a->spare = NULL;
}
