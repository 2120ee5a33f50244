/* test_limits.c: limits.h's scripts against a real redis-server, with the
 * times given explicitly, so that every order of events plays out at once and
 * the same way each run: the semaphore of leased permits (the cap, the
 * waiting set, leases that run out, renewals, permits lost to another holder,
 * release) and the GCRA pace (spacing, the horizon, no burst after idling,
 * and no more than the rate in any one-second window, however the fleet
 * asks). The same scripts read Redis's TIME when the worker calls them. */
#include "itest.h"

#include "exw/limits.h"

#define SVC "Tether" /* keys name it in lower case */
#define LEASE 2000
#define WAITING 1500
#define T0 INT64_C(1700000000000) /* ms */

static struct exw_permit_take take(struct it_fx *f, const char *holder, long max, long want,
                                   long long seq, int64_t now)
{
    struct exw_permit_take out;
    struct exw_errbuf eb = {{0}};

    it_expect_ok(
        exw_permits_take(f->rd, SVC, holder, max, want, LEASE, seq, WAITING, now, &out, &eb), &eb);
    assert_int_equal(out.now_ms, now);
    return out;
}

/* Renews @n ids of @holder at @now; returns how many were kept, with their
 * flags in @kept and the others waiting in *@others. */
static int renew(struct it_fx *f, const char *holder, const char *const *ids, size_t n, int64_t now,
                 int *kept, long *others)
{
    struct exw_errbuf eb = {{0}};
    int64_t redis_now;
    int k = 0;
    size_t i;

    it_expect_ok(
        exw_permits_renew(f->rd, SVC, holder, LEASE, ids, n, now, kept, others, &redis_now, &eb),
        &eb);
    assert_int_equal(redis_now, now);
    for (i = 0; i < n; i++)
        k += kept[i];
    return k;
}

/* The score of @member in the sorted set @what of the service; -1: none. */
static long long zscore(struct it_fx *f, const char *what, const char *member)
{
    struct it_name k = it_key(f, "limit:tether:%s", what);
    char *s = it_str(f->h, "ZSCORE", k.s, member, NULL);
    long long v = s != NULL ? strtoll(s, NULL, 10) : -1;

    free(s);
    return v;
}

static long long score(struct it_fx *f, const char *member) { return zscore(f, "permits", member); }

/* The sets live as long as their latest lease, whoever took it: a worker
 * with a shorter _TIMEOUT_MS (a rolling change of settings) does not cut
 * the others' leases short, which would drop every permit at once. */
static void test_permits_ttl_follows_longest_lease(void **state)
{
    struct it_fx *f = *state;
    struct it_name permits = it_key(f, "limit:tether:permits");
    struct exw_permit_take t;
    struct exw_errbuf eb = {{0}};
    int kept[1];
    long others;
    int64_t redis_now;

    it_expect_ok(exw_permits_take(f->rd, SVC, "A", 5, 1, 60000, 1, WAITING, T0, &t, &eb), &eb);
    assert_int_equal(t.granted, 1);
    t = take(f, "B", 5, 1, 1, T0);
    assert_int_equal(t.granted, 1);
    assert_true(it_pttl(f, &permits) > 60000);
    it_expect_ok(exw_permits_renew(f->rd, SVC, "B", LEASE, (const char *const[]){"B:1"}, 1, T0,
                                   kept, &others, &redis_now, &eb),
                 &eb);
    assert_true(it_pttl(f, &permits) > 60000);
}

static void test_permits_cap_and_waiting(void **state)
{
    struct it_fx *f = *state;
    struct it_name permits = it_key(f, "limit:tether:permits");
    struct it_name waiting = it_key(f, "limit:tether:waiting");
    struct exw_permit_take t;
    const char *a_ids[] = {"A:1", "A:2", "A:3"};
    int kept[3];
    long others;

    t = take(f, "A", 5, 3, 1, T0);
    assert_int_equal(t.granted, 3);
    assert_int_equal(t.others_waiting, 0);
    assert_int_equal(it_int(f->h, "ZCARD", permits.s, NULL), 3);
    assert_int_equal(score(f, "A:1"), T0 + LEASE);
    assert_int_equal(score(f, "A:3"), T0 + LEASE);
    assert_true(it_pttl(f, &permits) > LEASE);

    /* B wants 4 of the 2 left: it gets them and waits for more. */
    t = take(f, "B", 5, 4, 1, T0 + 1);
    assert_int_equal(t.granted, 2);
    assert_int_equal(t.others_waiting, 0); /* B itself does not count */
    assert_int_equal(it_int(f->h, "ZCARD", permits.s, NULL), 5);
    assert_int_equal(score(f, "B:2"), T0 + 1 + LEASE);
    assert_int_equal(zscore(f, "waiting", "B"), T0 + 1 + WAITING);

    /* The cap is full: nothing for C, which now waits too. */
    t = take(f, "C", 5, 1, 1, T0 + 2);
    assert_int_equal(t.granted, 0);
    assert_int_equal(t.others_waiting, 1);
    assert_int_equal(it_int(f->h, "ZCARD", permits.s, NULL), 5);

    /* A's renewal tells it that two others wait. */
    assert_int_equal(renew(f, "A", a_ids, 3, T0 + 100, kept, &others), 3);
    assert_int_equal(others, 2);
    assert_int_equal(score(f, "A:2"), T0 + 100 + LEASE);

    /* A waiting entry lapses by itself. */
    assert_int_equal(renew(f, "A", a_ids, 3, T0 + 1 + WAITING, kept, &others), 3);
    assert_int_equal(others, 1);
    assert_int_equal(renew(f, "A", a_ids, 3, T0 + 2 + WAITING, kept, &others), 3);
    assert_int_equal(others, 0);

    /* A full take takes its holder off the waiting set. */
    take(f, "D", 5, 1, 1, T0 + 3);
    assert_int_equal(zscore(f, "waiting", "D"), T0 + 3 + WAITING);
    it_ok(f->h, "ZREM", permits.s, "A:1", NULL);
    t = take(f, "D", 5, 1, 7, T0 + 4);
    assert_int_equal(t.granted, 1);
    assert_int_equal(score(f, "D:7"), T0 + 4 + LEASE);
    assert_int_equal(zscore(f, "waiting", "D"), -1);
    assert_int_equal(it_int(f->h, "EXISTS", waiting.s, NULL), 0); /* empty: gone */
}

static void test_permits_leases_run_out(void **state)
{
    struct it_fx *f = *state;
    struct it_name permits = it_key(f, "limit:tether:permits");
    struct exw_permit_take t;
    const char *ids[] = {"A:1", "A:2"};
    int kept[2];
    long others;

    assert_int_equal(take(f, "A", 2, 2, 1, T0).granted, 2);
    /* One millisecond before the leases run out they still count ... */
    assert_int_equal(take(f, "B", 2, 2, 1, T0 + LEASE - 1).granted, 0);
    /* ... and at that very time they are free: a dead holder's permits come
     * back one lease after its last take or renewal, whoever asks. */
    t = take(f, "B", 2, 2, 1, T0 + LEASE);
    assert_int_equal(t.granted, 2);
    assert_int_equal(score(f, "A:1"), -1);
    assert_int_equal(it_int(f->h, "ZCARD", permits.s, NULL), 2);

    /* A comes back: its permits are lost, not renewed, and B keeps its own. */
    assert_int_equal(renew(f, "A", ids, 2, T0 + LEASE + 10, kept, &others), 0);
    assert_int_equal(kept[0], 0);
    assert_int_equal(score(f, "A:1"), -1);
    assert_int_equal(score(f, "B:1"), T0 + LEASE + LEASE);
}

static void test_permits_renewal_keeps_them(void **state)
{
    struct it_fx *f = *state;
    const char *ids[] = {"A:1", "A:2", "A:9"};
    int64_t now = T0;
    int kept[3], i;
    long others;

    assert_int_equal(take(f, "A", 2, 2, 1, now).granted, 2);
    /* Renewed every half lease, for ten leases: nobody else gets one. */
    for (i = 0; i < 20; i++) {
        now += LEASE / 2;
        assert_int_equal(renew(f, "A", ids, 3, now, kept, &others), 2);
        assert_int_equal(kept[2], 0); /* never held */
        assert_int_equal(take(f, "B", 2, 1, i, now + 1).granted, 0);
    }
    assert_int_equal(score(f, "A:2"), now + LEASE);
}

static void test_permits_release(void **state)
{
    struct it_fx *f = *state;
    struct it_name permits = it_key(f, "limit:tether:permits");
    struct it_name waiting = it_key(f, "limit:tether:waiting");
    const char *ids[] = {"A:1", "A:2", "A:77"};
    struct exw_errbuf eb = {{0}};
    long released;

    assert_int_equal(take(f, "A", 3, 4, 1, T0).granted, 3);
    assert_true(zscore(f, "waiting", "A") > 0);
    it_expect_ok(exw_permits_release(f->rd, SVC, "A", 1, ids, 3, &released, &eb), &eb);
    assert_int_equal(released, 2);
    assert_int_equal(it_int(f->h, "ZCARD", permits.s, NULL), 1);
    assert_true(zscore(f, "waiting", "A") > 0);
    it_expect_ok(exw_permits_release(f->rd, SVC, "A", 0, ids, 0, &released, &eb), &eb);
    assert_int_equal(released, 0);
    assert_int_equal(it_int(f->h, "EXISTS", waiting.s, NULL), 0);
    /* Freed permits go to the next taker at once. */
    assert_int_equal(take(f, "B", 3, 3, 1, T0 + 1).granted, 2);
}

/* The real clock: Redis's TIME, in ms, as the worker uses it. */
static void test_permits_on_redis_time(void **state)
{
    struct it_fx *f = *state;
    struct exw_permit_take out;
    struct exw_errbuf eb = {{0}};

    it_expect_ok(exw_permits_take(f->rd, SVC, "A", 1, 1, LEASE, 1, WAITING, -1, &out, &eb), &eb);
    assert_int_equal(out.granted, 1);
    assert_true(out.now_ms > T0);
    assert_int_equal(score(f, "A:1"), out.now_ms + LEASE);
}

/* ---- The pace ---- */

#define RATE 10
#define IV (1000000 / RATE) /* us */
#define HORIZON 200000      /* us */
#define U0 (T0 * 1000)      /* us */

static struct exw_rate_take pace(struct it_fx *f, long want, int64_t now)
{
    struct exw_rate_take out;
    struct exw_errbuf eb = {{0}};

    it_expect_ok(exw_rate_take(f->rd, SVC, IV, want, HORIZON, now, &out, &eb), &eb);
    if (now >= 0)
        assert_int_equal(out.now_us, now);
    return out;
}

static void test_rate_slots_and_horizon(void **state)
{
    struct it_fx *f = *state;
    struct it_name key = it_key(f, "limit:tether:rate");
    struct exw_rate_take r;

    /* Slots at now, +100 ms and +200 ms fall within the 200 ms horizon. */
    r = pace(f, 5, U0);
    assert_int_equal(r.granted, 3);
    assert_int_equal(r.first_us, U0);
    /* The pace is that far ahead: nothing, and when the next slot begins. */
    r = pace(f, 5, U0 + 1);
    assert_int_equal(r.granted, 0);
    assert_int_equal(r.first_us, U0 + 3 * IV);
    /* 150 ms on, one more slot came within the horizon. */
    r = pace(f, 5, U0 + 150000);
    assert_int_equal(r.granted, 1);
    assert_int_equal(r.first_us, U0 + 3 * IV);
    assert_true(it_pttl(f, &key) > 0 && it_pttl(f, &key) <= 1000 + 300);

    /* After idling, no burst: the slots start from now again. */
    r = pace(f, 50, U0 + 60 * 1000000LL);
    assert_int_equal(r.granted, 3);
    assert_int_equal(r.first_us, U0 + 60 * 1000000LL);
    /* Want one: get one. */
    r = pace(f, 1, U0 + 70 * 1000000LL);
    assert_int_equal(r.granted, 1);
}

static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int compare_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

/* The most of @n sorted times within any window [t, t + 1 s). */
static int most_in_a_second(const int64_t *t, size_t n)
{
    size_t i, j = 0;
    int most = 0;

    for (i = 0; i < n; i++) {
        while (t[j] <= t[i] - 1000000)
            j++;
        if ((int)(i - j + 1) > most)
            most = (int)(i - j + 1);
    }
    return most;
}

/* Workers asking at random times for random numbers of slots of a rate of
 * 40 a second, over 20 s: the slots are at least an interval apart, so any
 * second holds at most 40; requests sent up to 50 ms after their slot began
 * (the grace limiter.c allows at this rate; it drops a slot later than that)
 * hold at most 42, within the 10 % PROTOCOL.md allows. */
static void test_rate_never_over_in_any_second(void **state)
{
    struct it_fx *f = *state;
    enum { MAX_SLOTS = 2000, R = 40, GRACE = 50000 };
    const int64_t iv = 1000000 / R;
    int64_t slots[MAX_SLOTS], sent[MAX_SLOTS];
    int64_t now = U0;
    size_t n = 0, i;

    while (now < U0 + 20 * 1000000LL) {
        struct exw_rate_take r;
        struct exw_errbuf eb = {{0}};
        long k;

        now += (int64_t)(next_rand() % 60000); /* the next ask, from any worker */
        it_expect_ok(
            exw_rate_take(f->rd, SVC, iv, 1 + (long)(next_rand() % 8), HORIZON, now, &r, &eb), &eb);
        for (k = 0; k < r.granted && n < MAX_SLOTS; k++, n++) {
            slots[n] = r.first_us + k * iv;
            assert_true(slots[n] >= now && slots[n] <= now + HORIZON);
            sent[n] = slots[n] + (int64_t)(next_rand() % (GRACE + 1));
        }
    }
    assert_true(n > 20 * R * 9 / 10); /* the asks kept the pace busy */
    qsort(slots, n, sizeof(*slots), compare_i64);
    qsort(sent, n, sizeof(*sent), compare_i64);
    for (i = 1; i < n; i++)
        assert_true(slots[i] - slots[i - 1] >= iv);
    assert_true(most_in_a_second(slots, n) <= R);
    assert_true(most_in_a_second(sent, n) <= R + 2);
}

static void test_rate_on_redis_time(void **state)
{
    struct it_fx *f = *state;
    struct exw_rate_take r = pace(f, 2, -1);

    assert_int_equal(r.granted, 2);
    assert_true(r.now_us > U0);
    assert_int_equal(r.first_us, r.now_us);
}

int main(void)
{
    struct it_env e;
    int rc;

    if (it_env_init(&e, "limits") != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        IT_TEST(test_permits_cap_and_waiting, &e),
        IT_TEST(test_permits_ttl_follows_longest_lease, &e),
        IT_TEST(test_permits_leases_run_out, &e),
        IT_TEST(test_permits_renewal_keeps_them, &e),
        IT_TEST(test_permits_release, &e),
        IT_TEST(test_permits_on_redis_time, &e),
        IT_TEST(test_rate_slots_and_horizon, &e),
        IT_TEST(test_rate_never_over_in_any_second, &e),
        IT_TEST(test_rate_on_redis_time, &e),
    };

    rc = cmocka_run_group_tests(tests, NULL, NULL);
    exw_redis_addr_cleanup(&e.addr);
    return rc;
}
