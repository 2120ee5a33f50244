/* test_queue.c: the parts of the queue module that need no Redis: the
 * P:dead entry (its cut at 1 MiB is tested with Redis in
 * tests/integration/test_queue.c). */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "exw/json.h"
#include "exw/queue.h"

/* ---- Dead letters ---- */

/* Parses a dead entry back; checks its three members. */
static void check_dead_entry(const char *entry, const char *want_job, const char *want_error,
                             long long want_at)
{
    cJSON *root = NULL;
    const cJSON *v;
    struct exw_errbuf eb = {{0}};

    assert_non_null(entry);
    assert_int_equal(exw_json_parse(entry, strlen(entry), 4, &root, &eb), EXW_OK);
    assert_true(cJSON_IsObject(root));
    assert_int_equal(cJSON_GetArraySize(root), 3);
    v = cJSON_GetObjectItemCaseSensitive(root, "job");
    assert_true(cJSON_IsString(v));
    assert_string_equal(v->valuestring, want_job);
    v = cJSON_GetObjectItemCaseSensitive(root, "error");
    assert_true(cJSON_IsString(v));
    assert_string_equal(v->valuestring, want_error);
    v = cJSON_GetObjectItemCaseSensitive(root, "failed_at");
    assert_true(cJSON_IsNumber(v));
    assert_true(v->valuedouble == (double)want_at);
    cJSON_Delete(root);
}

static void test_dead_entry(void **state)
{
    static const char doc[] = "{\"id\": \"x\xff\", \"q\": \"\\\"quoted\\\"\n\ttab\"}";
    static const char want[] = "{\"id\": \"x\xef\xbf\xbd\", \"q\": \"\\\"quoted\\\"\n\ttab\"}";
    char *entry;

    (void)state;
    entry = exw_queue_dead_entry(doc, strlen(doc), "the job document is not valid UTF-8",
                                 1764000000123LL);
    check_dead_entry(entry, want, "the job document is not valid UTF-8", 1764000000123LL);
    /* The number is written as a plain integer. */
    assert_contains(entry, "\"failed_at\":1764000000123");
    free(entry);

    /* Truncated sequences, a NUL byte and bytes beyond the given length. */
    entry = exw_queue_dead_entry("a\xe2\x82"
                                 "b\0c\xf0\x9f\x98\x80zzz",
                                 10, "e\"rr", 0);
    check_dead_entry(entry,
                     "a\xef\xbf\xbd"
                     "b\xef\xbf\xbd"
                     "c\xf0\x9f\x98\x80",
                     "e\"rr", 0);
    free(entry);

    /* An empty document. */
    entry = exw_queue_dead_entry("", 0, "empty document", 1);
    check_dead_entry(entry, "", "empty document", 1);
    free(entry);

    /* A large document is kept whole up to the cap. */
    {
        size_t len = 100000;
        char *big = malloc(len + 1);

        assert_non_null(big);
        memset(big, 'q', len);
        big[len] = '\0';
        entry = exw_queue_dead_entry(big, len, "too big", 2);
        check_dead_entry(entry, big, "too big", 2);
        free(entry);
        free(big);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dead_entry),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
