/* testutil.h: what the unit tests share beyond cmocka: a substring
 * assertion, exact-length copies for the sanitizers, the scratch folder, and
 * the error-text helpers of the configuration tests.
 *
 * Everything here is static inline, so that a test file that leaves a
 * helper unused compiles without a warning. Assertions run on the test's
 * thread only. */
#ifndef EXW_TESTUTIL_H
#define EXW_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Fails the test, showing both strings, unless @needle occurs in @hay. */
#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        const char *hay_ = (hay);                                                                  \
        const char *needle_ = (needle);                                                            \
        if (strstr(hay_, needle_) == NULL) {                                                       \
            print_error("\"%s\" does not contain \"%s\"\n", hay_, needle_);                        \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* Fails the test unless @got is NULL when @want is, else the string @want. */
#define assert_string_or_null(got, want)                                                           \
    do {                                                                                           \
        const char *got_ = (got);                                                                  \
        const char *want_ = (want);                                                                \
        if (want_ == NULL) {                                                                       \
            assert_null(got_);                                                                     \
        } else {                                                                                   \
            assert_non_null(got_);                                                                 \
            assert_string_equal(got_, want_);                                                      \
        }                                                                                          \
    } while (0)

/* A buffer of exactly @len bytes holding @text (no NUL), so that the
 * sanitizers catch any read past the end; caller frees. */
static inline char *exact_copy(const char *text, size_t len)
{
    char *copy = malloc(len ? len : 1);

    assert_non_null(copy);
    memcpy(copy, text, len);
    return copy;
}

/* The folder for the files a test writes: $EXW_TEST_TMPDIR (set by ctest),
 * else /tmp. Not const, as getenv's, so that it can stand in an argv. */
static inline char *scratch_dir(void)
{
    char *dir = getenv("EXW_TEST_TMPDIR");

    return dir != NULL && dir[0] != '\0' ? dir : "/tmp";
}

/* Writes @len bytes of @data to @path, replacing what was there (mode 0600). */
static inline void write_file(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* Lines in an error text, which has no newline after the last one. */
static inline int count_lines(const char *s)
{
    int n = *s != '\0';

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* @errors (freed here) must be one line holding @part. */
static inline void expect_one_line_with(char *errors, const char *part)
{
    if (strstr(errors, part) == NULL || count_lines(errors) != 1)
        fail_msg("expected one error with \"%s\", got:\n%s", part, errors);
    free(errors);
}

#endif
