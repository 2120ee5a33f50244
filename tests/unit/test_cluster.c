/* test_cluster.c: the CRC16 and key slots against Redis's documented values,
 * the hash tag a prefix must hold, node addresses, and the nodes seen. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "exw/cluster.h"

static int slot_of(const char *key) { return exw_cluster_key_slot(key, strlen(key)); }

static void test_crc16(void **state)
{
    (void)state;
    /* The Redis Cluster specification's check value of its CRC16 (XMODEM). */
    assert_int_equal(exw_cluster_crc16("123456789", 9), 0x31C3);
    assert_int_equal(exw_cluster_crc16("", 0), 0);
    assert_int_equal(exw_cluster_crc16("A", 1), 0x58E5);
}

static void test_key_slot(void **state)
{
    (void)state;
    /* Values of CLUSTER KEYSLOT in Redis's documentation. */
    assert_int_equal(slot_of("somekey"), 11058);
    assert_int_equal(slot_of("foo{hash_tag}"), 2515);
    assert_int_equal(slot_of("foo"), 12182);
    /* The specification's hash tag examples. */
    assert_int_equal(slot_of("{user1000}.following"), slot_of("{user1000}.followers"));
    assert_int_equal(slot_of("{user1000}.following"), slot_of("user1000"));
    assert_int_equal(slot_of("foo{{bar}}zap"), slot_of("{bar"));
    assert_int_equal(slot_of("foo{bar}{zap}"), slot_of("bar"));
    /* An empty tag hashes the whole key. */
    assert_int_equal(slot_of("foo{}{bar}"),
                     exw_cluster_crc16("foo{}{bar}", 10) % EXW_CLUSTER_SLOTS);
    /* Lengths count, not NULs. */
    assert_int_equal(exw_cluster_key_slot("a{b}\0c", 6), slot_of("b"));
}

static void test_prefix_tag(void **state)
{
    static const struct {
        const char *prefix, *tag; /* NULL: no tag of its own */
    } cases[] = {
        {"{export}", "export"},
        {"{export}:eu", "export"},
        {"app:{export}", "export"},
        {"x}a{b}", "b"},
        {"{a}{b}", "a"},
        {"export", NULL},
        {"{}export", NULL},
        {"a{}{b}", NULL},
        {"x{a", NULL},
        {"}{", NULL},
        {"{{x}", "{x"},
    };
    const char *tag;
    size_t i, n;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int has = exw_cluster_prefix_tag(cases[i].prefix, &tag, &n);

        if (cases[i].tag == NULL) {
            if (has)
                fail_msg("%s: found tag %.*s", cases[i].prefix, (int)n, tag);
            assert_int_equal(exw_cluster_prefix_slot(cases[i].prefix), -1);
            continue;
        }
        if (!has)
            fail_msg("%s: no tag found", cases[i].prefix);
        assert_int_equal(n, strlen(cases[i].tag));
        assert_memory_equal(tag, cases[i].tag, n);
        assert_int_equal(exw_cluster_prefix_slot(cases[i].prefix), slot_of(cases[i].tag));
    }
}

/* Every key the worker writes, and any rows_key a job may name (any text
 * after "P:", braces included), lies in the prefix's slot. */
static void test_keys_share_the_slot(void **state)
{
    static const char *const prefixes[] = {"{export}", "{export}:eu", "app{x}", "{{x}"};
    static const char *const suffixes[] = {
        "queue",
        "job:exp-1",
        "processing:host-1-abc",
        "worker:w1",
        "workers",
        "upload:w1:j",
        "uploads:w1",
        "result:j",
        "events",
        "rows:{other}",
        "rows:}{",
        "rows:{a}{b}{c}x}",
        "",
    };
    char key[256];
    size_t i, j;

    (void)state;
    for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        int want = exw_cluster_prefix_slot(prefixes[i]);

        assert_true(want >= 0);
        for (j = 0; j < sizeof(suffixes) / sizeof(suffixes[0]); j++) {
            snprintf(key, sizeof(key), "%s:%s", prefixes[i], suffixes[j]);
            if (slot_of(key) != want)
                fail_msg("%s: slot %d, want %d", key, slot_of(key), want);
        }
    }
}

static void test_node_names(void **state)
{
    char host[EXW_NODE_MAX], out[EXW_NODE_MAX];
    int port = 0;

    (void)state;
    assert_string_equal(exw_cluster_node_name("10.0.0.1", 6379, out, sizeof(out)), "10.0.0.1:6379");
    assert_string_equal(exw_cluster_node_name("::1", 7000, out, sizeof(out)), "[::1]:7000");
    assert_int_equal(exw_cluster_node_parse("127.0.0.1:7002", 14, host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 7002);
    assert_int_equal(exw_cluster_node_parse("::1:7003", 8, host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 7003);
    assert_int_equal(exw_cluster_node_parse("[fe80::1]:1", 11, host, sizeof(host), &port), 0);
    assert_string_equal(host, "fe80::1");
    assert_int_equal(port, 1);
    assert_int_equal(exw_cluster_node_parse("redis-0.svc:6379 x", 16, host, sizeof(host), &port),
                     0);
    assert_string_equal(host, "redis-0.svc");
    assert_int_equal(exw_cluster_node_parse("h", 1, host, sizeof(host), &port), -1);
    assert_int_equal(exw_cluster_node_parse("h:", 2, host, sizeof(host), &port), -1);
    assert_int_equal(exw_cluster_node_parse(":1", 2, host, sizeof(host), &port), -1);
    assert_int_equal(exw_cluster_node_parse("h:0", 3, host, sizeof(host), &port), -1);
    assert_int_equal(exw_cluster_node_parse("h:65536", 7, host, sizeof(host), &port), -1);
    assert_int_equal(exw_cluster_node_parse("h:1x", 4, host, sizeof(host), &port), -1);
    assert_int_equal(exw_cluster_node_parse("longhost:1", 10, host, 4, &port), -1);
}

static void test_known_nodes(void **state)
{
    struct exw_cluster_node out[EXW_CLUSTER_KNOWN_MAX + 2];
    struct exw_cluster_node owner;
    char host[32];
    size_t n;
    int i;

    (void)state;
    exw_cluster_forget();
    assert_int_equal(exw_cluster_known(out, 8), 0);
    assert_false(exw_cluster_owner(&owner));
    exw_cluster_note_node("a", 1);
    exw_cluster_note_node("b", 2);
    exw_cluster_note_node("a", 1); /* seen again: newest, not twice */
    exw_cluster_note_node("", 3);  /* ignored */
    exw_cluster_note_node("c", 0); /* ignored */
    n = exw_cluster_known(out, 8);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].host, "a");
    assert_string_equal(out[1].host, "b");

    /* The owner comes first, once. */
    exw_cluster_note_owner("b", 2);
    assert_true(exw_cluster_owner(&owner));
    assert_string_equal(owner.host, "b");
    assert_int_equal(owner.port, 2);
    exw_cluster_note_node("c", 3);
    n = exw_cluster_known(out, 8);
    assert_int_equal(n, 3);
    assert_string_equal(out[0].host, "b");
    assert_string_equal(out[1].host, "c");
    assert_string_equal(out[2].host, "a");
    assert_int_equal(exw_cluster_known(out, 1), 1);

    /* A full list forgets the oldest, never the owner. */
    for (i = 0; i < EXW_CLUSTER_KNOWN_MAX + 5; i++) {
        snprintf(host, sizeof(host), "n%d", i);
        exw_cluster_note_node(host, 7000);
    }
    n = exw_cluster_known(out, EXW_CLUSTER_KNOWN_MAX + 2);
    assert_int_equal(n, EXW_CLUSTER_KNOWN_MAX + 1);
    assert_string_equal(out[0].host, "b");
    snprintf(host, sizeof(host), "n%d", EXW_CLUSTER_KNOWN_MAX + 4);
    assert_string_equal(out[1].host, host);
    exw_cluster_forget();
    assert_false(exw_cluster_owner(&owner));
    assert_int_equal(exw_cluster_known(out, 8), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16),      cmocka_unit_test(test_key_slot),
        cmocka_unit_test(test_prefix_tag), cmocka_unit_test(test_keys_share_the_slot),
        cmocka_unit_test(test_node_names), cmocka_unit_test(test_known_nodes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
