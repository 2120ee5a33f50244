/* test_buf.c: the capped byte buffer (append, printf, the cap, cut text, steal,
 * reset). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "exw/buf.h"

/* Asserts that @b holds exactly the @len bytes at @want, NUL-terminated. */
static void assert_holds(const struct exw_buf *b, const char *want, size_t len)
{
    assert_int_equal(b->len, len);
    assert_non_null(b->data);
    assert_memory_equal(b->data, want, len);
    assert_int_equal(b->data[len], '\0');
    assert_true(b->cap > len);
}

static void test_init_and_cleanup(void **state)
{
    struct exw_buf b;

    (void)state;
    exw_buf_init(&b, 100);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 100);
    /* Cleaning an empty buffer is harmless, and twice too. */
    exw_buf_cleanup(&b);
    exw_buf_cleanup(&b);
    assert_null(b.data);
    assert_int_equal(b.max, 100);
}

static void test_append(void **state)
{
    struct exw_buf b;

    (void)state;
    exw_buf_init(&b, 1000);
    assert_int_equal(exw_buf_append(&b, "abc", 3), EXW_OK);
    assert_holds(&b, "abc", 3);
    assert_int_equal(exw_buf_append(&b, "de", 2), EXW_OK);
    assert_holds(&b, "abcde", 5);
    /* Zero bytes still leave a valid, NUL-terminated buffer. */
    assert_int_equal(exw_buf_append(&b, NULL, 0), EXW_OK);
    assert_holds(&b, "abcde", 5);
    /* Binary bytes, NUL included, are kept as they are. */
    assert_int_equal(exw_buf_append(&b, "\0\xff\x01", 3), EXW_OK);
    assert_holds(&b, "abcde\0\xff\x01", 8);
    exw_buf_cleanup(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void test_append_empty_allocates(void **state)
{
    struct exw_buf b;

    (void)state;
    exw_buf_init(&b, 10);
    assert_int_equal(exw_buf_append(&b, "", 0), EXW_OK);
    assert_holds(&b, "", 0);
    exw_buf_cleanup(&b);
}

static void test_append_grows(void **state)
{
    struct exw_buf b;
    char chunk[97];
    char *want = malloc(97 * 200);
    size_t i;

    (void)state;
    assert_non_null(want);
    exw_buf_init(&b, 97 * 200);
    for (i = 0; i < 200; i++) {
        memset(chunk, 'a' + (int)(i % 26), sizeof(chunk));
        memcpy(want + i * sizeof(chunk), chunk, sizeof(chunk));
        assert_int_equal(exw_buf_append(&b, chunk, sizeof(chunk)), EXW_OK);
        assert_holds(&b, want, (i + 1) * sizeof(chunk));
    }
    /* Exactly full: one more byte is over the cap. */
    assert_int_equal(exw_buf_append(&b, "x", 1), EXW_ELIMIT);
    assert_holds(&b, want, 97 * 200);
    exw_buf_cleanup(&b);
    free(want);
}

static void test_cap(void **state)
{
    struct exw_buf b;
    char *data;
    size_t cap;

    (void)state;
    exw_buf_init(&b, 8);
    /* Exactly the cap fits. */
    assert_int_equal(exw_buf_append(&b, "12345678", 8), EXW_OK);
    assert_holds(&b, "12345678", 8);
    data = b.data;
    cap = b.cap;
    assert_int_equal(exw_buf_append(&b, "9", 1), EXW_ELIMIT);
    assert_holds(&b, "12345678", 8);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    exw_buf_cleanup(&b);

    /* A failed append into a half-full buffer leaves it unchanged. */
    exw_buf_init(&b, 8);
    assert_int_equal(exw_buf_append(&b, "1234", 4), EXW_OK);
    assert_int_equal(exw_buf_append(&b, "56789", 5), EXW_ELIMIT);
    assert_holds(&b, "1234", 4);
    assert_int_equal(exw_buf_append(&b, "5678", 4), EXW_OK);
    assert_holds(&b, "12345678", 8);
    exw_buf_cleanup(&b);

    /* Into an empty buffer: nothing is allocated. */
    exw_buf_init(&b, 3);
    assert_int_equal(exw_buf_append(&b, "abcd", 4), EXW_ELIMIT);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    exw_buf_cleanup(&b);

    /* Sizes that would overflow a size_t sum are refused, not wrapped. */
    exw_buf_init(&b, 16);
    assert_int_equal(exw_buf_append(&b, "ab", 2), EXW_OK);
    assert_int_equal(exw_buf_append(&b, "x", (size_t)-1), EXW_ELIMIT);
    assert_int_equal(exw_buf_append(&b, "x", (size_t)-1 - 1), EXW_ELIMIT);
    assert_holds(&b, "ab", 2);
    exw_buf_cleanup(&b);

    /* A cap of zero takes nothing but the empty append. */
    exw_buf_init(&b, 0);
    assert_int_equal(exw_buf_append(&b, "a", 1), EXW_ELIMIT);
    assert_int_equal(exw_buf_append(&b, "", 0), EXW_OK);
    assert_holds(&b, "", 0);
    exw_buf_cleanup(&b);
}

static void test_printf(void **state)
{
    struct exw_buf b;

    (void)state;
    exw_buf_init(&b, 1000);
    assert_int_equal(exw_buf_printf(&b, "%s=%d", "n", 42), EXW_OK);
    assert_holds(&b, "n=42", 4);
    assert_int_equal(exw_buf_printf(&b, ", %05.1f|%-3s|", 2.5, "x"), EXW_OK);
    assert_holds(&b, "n=42, 002.5|x  |", 16);
    assert_int_equal(exw_buf_printf(&b, "%s", ""), EXW_OK);
    assert_holds(&b, "n=42, 002.5|x  |", 16);
    exw_buf_cleanup(&b);

    /* Into an empty buffer, printing nothing still gives "". */
    exw_buf_init(&b, 1000);
    assert_int_equal(exw_buf_printf(&b, "%s", ""), EXW_OK);
    assert_holds(&b, "", 0);
    exw_buf_cleanup(&b);

    /* Long output that needs the buffer to grow several times. */
    exw_buf_init(&b, 5000);
    assert_int_equal(exw_buf_printf(&b, "%4000d", 7), EXW_OK);
    assert_int_equal(b.len, 4000);
    assert_int_equal(strlen(b.data), 4000);
    assert_int_equal(b.data[3999], '7');
    assert_int_equal(b.data[0], ' ');
    exw_buf_cleanup(&b);
}

static void test_printf_cap(void **state)
{
    struct exw_buf b;

    (void)state;
    exw_buf_init(&b, 10);
    assert_int_equal(exw_buf_printf(&b, "%d", 12345), EXW_OK);
    assert_int_equal(exw_buf_printf(&b, "%s", "abcdef"), EXW_ELIMIT);
    assert_holds(&b, "12345", 5);
    assert_int_equal(exw_buf_printf(&b, "%s", "abcde"), EXW_OK);
    assert_holds(&b, "12345abcde", 10);
    assert_int_equal(exw_buf_printf(&b, "%c", 'z'), EXW_ELIMIT);
    assert_holds(&b, "12345abcde", 10);
    assert_int_equal(exw_buf_printf(&b, "%s", ""), EXW_OK);
    assert_holds(&b, "12345abcde", 10);
    exw_buf_cleanup(&b);

    /* Over the cap at once: nothing is allocated. */
    exw_buf_init(&b, 4);
    assert_int_equal(exw_buf_printf(&b, "%s", "hello"), EXW_ELIMIT);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    exw_buf_cleanup(&b);
}

static void test_printf_cut(void **state)
{
    struct exw_buf b;

    (void)state;
    exw_buf_init(&b, 10);
    /* What fits goes in whole. */
    assert_int_equal(exw_buf_printf_cut(&b, "%s=%d", "n", 42), EXW_OK);
    assert_holds(&b, "n=42", 4);
    /* What does not is cut at the cap, as snprintf() would. */
    assert_int_equal(exw_buf_printf_cut(&b, ", %s", "abcdef"), EXW_ELIMIT);
    assert_holds(&b, "n=42, abcd", 10);
    /* Full now: later text adds nothing, so the text has no hole. */
    assert_int_equal(exw_buf_printf_cut(&b, "%c", 'z'), EXW_ELIMIT);
    assert_holds(&b, "n=42, abcd", 10);
    assert_int_equal(exw_buf_printf_cut(&b, "%s", ""), EXW_OK);
    assert_holds(&b, "n=42, abcd", 10);
    exw_buf_cleanup(&b);

    /* On an empty buffer, and with a cap of 0. */
    exw_buf_init(&b, 3);
    assert_int_equal(exw_buf_printf_cut(&b, "%s", "hello"), EXW_ELIMIT);
    assert_holds(&b, "hel", 3);
    exw_buf_cleanup(&b);
    exw_buf_init(&b, 0);
    assert_int_equal(exw_buf_printf_cut(&b, "%s", "hello"), EXW_ELIMIT);
    assert_holds(&b, "", 0);
    exw_buf_cleanup(&b);

    /* Long text, past the first allocation, in one piece. */
    exw_buf_init(&b, 5000);
    assert_int_equal(exw_buf_printf_cut(&b, "%4000d", 7), EXW_OK);
    assert_int_equal(b.len, 4000);
    assert_int_equal(exw_buf_printf_cut(&b, "%2000d", 8), EXW_ELIMIT);
    assert_int_equal(b.len, 5000);
    assert_int_equal(b.data[5000], '\0');
    assert_int_equal(b.data[4999], ' ');
    exw_buf_cleanup(&b);
}

static void test_steal(void **state)
{
    struct exw_buf b;
    size_t len = 99;
    char *p;

    (void)state;
    exw_buf_init(&b, 50);
    assert_int_equal(exw_buf_append(&b, "hello", 5), EXW_OK);
    p = exw_buf_steal(&b, &len);
    assert_non_null(p);
    assert_int_equal(len, 5);
    assert_string_equal(p, "hello");
    /* The buffer is left empty but keeps its cap, and is usable again. */
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 50);
    assert_int_equal(exw_buf_append(&b, "again", 5), EXW_OK);
    assert_holds(&b, "again", 5);
    free(p);

    /* Without a length out-parameter. */
    p = exw_buf_steal(&b, NULL);
    assert_string_equal(p, "again");
    free(p);

    /* An empty buffer gives NULL and length 0. */
    len = 99;
    p = exw_buf_steal(&b, &len);
    assert_null(p);
    assert_int_equal(len, 0);
    exw_buf_cleanup(&b);
}

static void test_reset(void **state)
{
    struct exw_buf b;
    char *data;
    size_t cap;

    (void)state;
    exw_buf_init(&b, 20);
    /* Resetting a buffer that never held anything is harmless. */
    exw_buf_reset(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);

    assert_int_equal(exw_buf_append(&b, "0123456789abcdefghij", 20), EXW_OK);
    data = b.data;
    cap = b.cap;
    exw_buf_reset(&b);
    /* Empty, the memory kept for reuse, and the full cap available again. */
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_string_equal(b.data, "");
    assert_int_equal(exw_buf_append(&b, "ABCDEFGHIJKLMNOPQRST", 20), EXW_OK);
    assert_holds(&b, "ABCDEFGHIJKLMNOPQRST", 20);
    assert_int_equal(exw_buf_append(&b, "!", 1), EXW_ELIMIT);
    exw_buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_and_cleanup),
        cmocka_unit_test(test_append),
        cmocka_unit_test(test_append_empty_allocates),
        cmocka_unit_test(test_append_grows),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_printf_cap),
        cmocka_unit_test(test_printf_cut),
        cmocka_unit_test(test_steal),
        cmocka_unit_test(test_reset),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
