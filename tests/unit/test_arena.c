/* test_arena.c: text stored piece by piece and given back at once (pieces
 * that do not overlap, blocks reused after a reset, large pieces in blocks
 * of their own). The sanitizer build checks each piece's bounds: a block is
 * one allocation, so each test writes every byte it was given. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "exw/arena.h"

#define BLOCK 64

static void test_pieces_stay_apart(void **state)
{
    struct exw_arena a;
    char *piece[40];
    size_t i, j;

    (void)state;
    exw_arena_init(&a, BLOCK);
    assert_null(a.blocks);
    /* Pieces of 1 to 40 bytes, over several blocks, each filled with its own byte. */
    for (i = 0; i < 40; i++) {
        piece[i] = exw_arena_alloc(&a, i + 1);
        memset(piece[i], 'A' + (int)i, i + 1);
    }
    for (i = 0; i < 40; i++) {
        for (j = 0; j <= i; j++)
            assert_int_equal(piece[i][j], 'A' + (int)i);
    }
    /* A piece of exactly a block, and one larger, still fit. */
    memset(exw_arena_alloc(&a, BLOCK), 'x', BLOCK);
    memset(exw_arena_alloc(&a, 10 * BLOCK), 'y', 10 * BLOCK);
    assert_int_equal(piece[39][39], 'A' + 39);
    exw_arena_cleanup(&a);
    assert_null(a.blocks);
    assert_null(a.spare);
}

static void test_reset_reuses_blocks(void **state)
{
    struct exw_arena a;
    char *first, *big, *p;
    size_t i;

    (void)state;
    exw_arena_init(&a, BLOCK);
    first = exw_arena_alloc(&a, 16);
    for (i = 0; i < 20; i++) /* five blocks in all */
        memset(exw_arena_alloc(&a, 16), 'z', 16);
    exw_arena_reset(&a);
    assert_null(a.blocks);
    assert_non_null(a.spare);
    /* The next piece comes from the first block again, from its start. */
    assert_ptr_equal(exw_arena_alloc(&a, 16), first);
    exw_arena_reset(&a);
    /* A large piece's block is not kept: no later piece lands in it. */
    big = exw_arena_alloc(&a, 5 * BLOCK);
    memset(big, 'q', 5 * BLOCK);
    exw_arena_reset(&a);
    for (i = 0; i < 20; i++) {
        p = exw_arena_alloc(&a, 16);
        assert_true(p != big);
    }
    exw_arena_cleanup(&a);
}

/* Many batches of pieces, each reset in turn: the blocks a batch used are
 * those the batch before it gave back (none leaks: the ASan build checks). */
static void test_batches(void **state)
{
    struct exw_arena a;
    size_t batch, i;

    (void)state;
    exw_arena_init(&a, BLOCK);
    for (batch = 0; batch < 50; batch++) {
        char *p[30];

        for (i = 0; i < 30; i++) {
            size_t n = 1 + (batch * 7 + i * 13) % (2 * BLOCK);

            p[i] = exw_arena_alloc(&a, n);
            memset(p[i], (int)(i + 1), n);
        }
        for (i = 0; i < 30; i++)
            assert_int_equal(p[i][0], (int)(i + 1));
        exw_arena_reset(&a);
    }
    exw_arena_cleanup(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pieces_stay_apart),
        cmocka_unit_test(test_reset_reuses_blocks),
        cmocka_unit_test(test_batches),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
