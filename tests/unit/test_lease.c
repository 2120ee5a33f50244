/* test_lease.c: the lease's timing (exw_lease_init, _renewed, _failed,
 * _holds_until, _lapsed_since), a pure function of the times passed in: every
 * order of renewals, failures and takes is played here without a clock or
 * Redis. Times are monotonic milliseconds; the TTL is 3000 throughout. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "exw/lease.h"

#define TTL 3000

static void test_init(void **state)
{
    struct exw_lease l;

    (void)state;
    exw_lease_init(&l, TTL);
    assert_int_equal(l.ttl_ms, TTL);
    assert_int_equal(l.valid_until, 0);
    assert_int_equal(l.lapsed_at, 0);
}

/* Before the first renewal the lease holds nothing, and no job could have
 * been taken under it. */
static void test_before_first_renewal(void **state)
{
    struct exw_lease l;

    (void)state;
    exw_lease_init(&l, TTL);
    assert_false(exw_lease_holds_until(&l, 0));
    assert_false(exw_lease_holds_until(&l, 1000));
    /* A failure before any renewal is no lapse of a lease never held. */
    exw_lease_failed(&l, 5000);
    assert_int_equal(l.lapsed_at, 0);
    assert_false(exw_lease_holds_until(&l, 5000));
}

/* The lease runs from when the renewal was sent, not when it was answered:
 * Redis may have renewed the key as early as the send. */
static void test_holds_from_send(void **state)
{
    struct exw_lease l;

    (void)state;
    exw_lease_init(&l, TTL);
    exw_lease_renewed(&l, 1000, 1400);
    assert_int_equal(l.valid_until, 4000);
    assert_true(exw_lease_holds_until(&l, 1000));
    assert_true(exw_lease_holds_until(&l, 3999));
    assert_false(exw_lease_holds_until(&l, 4000));
    assert_false(exw_lease_holds_until(&l, 4400));
    assert_int_equal(l.lapsed_at, 0);
    assert_false(exw_lease_lapsed_since(&l, 1500, 3999));
}

/* A lease past its end counts as lapsed before a failed renewal says so. */
static void test_past_end_is_lapsed(void **state)
{
    struct exw_lease l;

    (void)state;
    exw_lease_init(&l, TTL);
    exw_lease_renewed(&l, 1000, 1010);
    assert_false(exw_lease_lapsed_since(&l, 2000, 3999));
    assert_true(exw_lease_lapsed_since(&l, 2000, 4000));
    assert_true(exw_lease_lapsed_since(&l, 2000, 9000));
    assert_true(exw_lease_lapsed_since(&l, 4000, 4000));
}

/* The race the lease exists for: renewals fail during an outage longer than
 * the TTL, a renewal succeeds after it, and only then is a job taken. That
 * lapse is before the take: the job is not given up. A lapse after the take
 * is. */
static void test_outage_before_take(void **state)
{
    struct exw_lease l;
    const int64_t take = 6100;

    (void)state;
    exw_lease_init(&l, TTL);
    exw_lease_renewed(&l, 0, 5);
    exw_lease_failed(&l, 1000); /* still within the lease: no lapse yet */
    assert_int_equal(l.lapsed_at, 0);
    exw_lease_failed(&l, 2000);
    exw_lease_failed(&l, 3500);
    assert_int_equal(l.lapsed_at, 3000);
    exw_lease_failed(&l, 5000);
    assert_int_equal(l.lapsed_at, 3000); /* the same lapse */
    exw_lease_renewed(&l, 6000, 6010);
    assert_int_equal(l.valid_until, 9000);
    assert_true(exw_lease_holds_until(&l, take));

    assert_false(exw_lease_lapsed_since(&l, take, 6200));
    assert_false(exw_lease_lapsed_since(&l, take, 8999));
    /* A job taken before the outage is given up. */
    assert_true(exw_lease_lapsed_since(&l, 2500, 6200));
    assert_true(exw_lease_lapsed_since(&l, 3000, 6200));

    /* Then a lapse after the take: first by the clock, then reported. */
    assert_true(exw_lease_lapsed_since(&l, take, 9000));
    exw_lease_failed(&l, 9500);
    assert_int_equal(l.lapsed_at, 9000);
    assert_true(exw_lease_lapsed_since(&l, take, 9500));
    /* Renewed again: the lapse after the take stays a lapse for that job. */
    exw_lease_renewed(&l, 10000, 10010);
    assert_true(exw_lease_lapsed_since(&l, take, 10020));
    assert_false(exw_lease_lapsed_since(&l, 10020, 10030));
}

/* A renewal answered after the lease ran out counts as a lapse at its end:
 * the key may have expired before Redis renewed it. */
static void test_late_answer_is_lapse(void **state)
{
    struct exw_lease l;

    (void)state;
    exw_lease_init(&l, TTL);
    exw_lease_renewed(&l, 0, 5);
    exw_lease_renewed(&l, 2900, 3100);
    assert_int_equal(l.lapsed_at, 3000);
    assert_int_equal(l.valid_until, 5900);
    assert_true(exw_lease_lapsed_since(&l, 2950, 3200));
    assert_true(exw_lease_lapsed_since(&l, 3000, 3200));
    assert_true(exw_lease_lapsed_since(&l, 0, 3200));
}

/* An answer exactly at the end is late; one a millisecond before is not. */
static void test_answer_at_the_end(void **state)
{
    struct exw_lease l;

    (void)state;
    exw_lease_init(&l, TTL);
    exw_lease_renewed(&l, 0, 5);
    exw_lease_renewed(&l, 2000, 2999);
    assert_int_equal(l.lapsed_at, 0);
    assert_int_equal(l.valid_until, 5000);
    exw_lease_renewed(&l, 4000, 5000);
    assert_int_equal(l.lapsed_at, 5000);
    assert_int_equal(l.valid_until, 7000);
}

/* A failure reported before the end is no lapse; at the end it is. */
static void test_failed_at_the_end(void **state)
{
    struct exw_lease l;

    (void)state;
    exw_lease_init(&l, TTL);
    exw_lease_renewed(&l, 0, 5);
    exw_lease_failed(&l, 2999);
    assert_int_equal(l.lapsed_at, 0);
    assert_false(exw_lease_lapsed_since(&l, 100, 2999));
    exw_lease_failed(&l, 3000);
    assert_int_equal(l.lapsed_at, 3000);
    assert_true(exw_lease_lapsed_since(&l, 100, 3000));
}

/* A renewal that would end earlier than the lease already does (sent before
 * a later one was) never shortens it. */
static void test_never_shortened(void **state)
{
    struct exw_lease l;

    (void)state;
    exw_lease_init(&l, TTL);
    exw_lease_renewed(&l, 2000, 2010);
    exw_lease_renewed(&l, 1000, 2020);
    assert_int_equal(l.valid_until, 5000);
    assert_true(exw_lease_holds_until(&l, 4999));
    assert_int_equal(l.lapsed_at, 0);
}

/* A job taken while the lease had lapsed (the key was gone, recovery could
 * move the job at once) may have been taken over, whether or not the lapse
 * has ended since: it began before the take, but lasted past it. The worker
 * itself only takes while exw_lease_holds_until says the lease outlasts the
 * take; this is the function's own contract ("lapsed, or may have, at or
 * after @since"). */
static void test_take_during_lapse(void **state)
{
    struct exw_lease l;

    (void)state;
    exw_lease_init(&l, TTL);
    exw_lease_renewed(&l, 0, 5);
    /* Still lapsed when asked: taken at 4000, a second after the end. */
    exw_lease_failed(&l, 3500);
    assert_true(exw_lease_lapsed_since(&l, 4000, 4500));
    /* The lapse ended with a renewal sent after the take. */
    exw_lease_renewed(&l, 5000, 5010);
    assert_true(exw_lease_lapsed_since(&l, 4000, 5100));

    /* The same with a renewal answered late: the key may have been gone from
     * 3000 until Redis ran the renewal, as late as its answer at 3100. */
    exw_lease_init(&l, TTL);
    exw_lease_renewed(&l, 0, 5);
    exw_lease_renewed(&l, 2900, 3100);
    assert_true(exw_lease_lapsed_since(&l, 3050, 3200));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_before_first_renewal),
        cmocka_unit_test(test_holds_from_send),
        cmocka_unit_test(test_past_end_is_lapsed),
        cmocka_unit_test(test_outage_before_take),
        cmocka_unit_test(test_late_answer_is_lapse),
        cmocka_unit_test(test_answer_at_the_end),
        cmocka_unit_test(test_failed_at_the_end),
        cmocka_unit_test(test_never_shortened),
        cmocka_unit_test(test_take_during_lapse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
