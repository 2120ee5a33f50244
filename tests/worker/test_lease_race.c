/* test_lease_race.c: the worker's view of its lease, on a clock the test
 * moves (exw_clock_set_mono), so that the race between an outage, the
 * heartbeat and a take plays out in one fixed order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "exw/clock.h"
#include "worker.h"

#define TTL 3000

static int64_t fake_now;

static int64_t fake_clock(void) { return fake_now; }

static int setup(void **state)
{
    static struct worker w;

    memset(&w, 0, sizeof(w));
    pthread_mutex_init(&w.mu.m, NULL);
    exw_lease_init(&w.lease, TTL);
    fake_now = 10000;
    exw_clock_set_mono(fake_clock);
    *state = &w;
    return 0;
}

static int teardown(void **state)
{
    struct worker *w = *state;

    exw_clock_set_mono(NULL);
    pthread_mutex_destroy(&w->mu.m);
    return 0;
}

/* What the heartbeat thread does around one renewal: the time is read
 * before the send, and the answer comes @rtt ms later. */
static void renew(struct worker *w, int64_t rtt, int ok)
{
    int64_t sent_at = exw_mono_ms();

    fake_now += rtt;
    exw_mutex_lock(&w->mu);
    if (ok)
        exw_lease_renewed(&w->lease, sent_at, exw_mono_ms());
    else
        exw_lease_failed(&w->lease, exw_mono_ms());
    exw_mutex_unlock(&w->mu);
}

/* Before the first renewal nothing may be taken. */
static void test_no_take_before_registration(void **state)
{
    struct worker *w = *state;

    assert_false(exw_worker_lease_holds(w, 0));
    renew(w, 5, 1);
    assert_true(exw_worker_lease_holds(w, TTL / 2));
    assert_false(exw_worker_lease_holds(w, TTL));
}

/* The defect this guards against: after an outage longer than the TTL, the
 * first job taken was abandoned for a lapse that happened before its take. */
static void test_outage_before_the_take_spares_the_job(void **state)
{
    struct worker *w = *state;
    int64_t taken_at;
    int i;

    renew(w, 5, 1);
    for (i = 0; i < 5; i++) { /* 5 s of failed renewals: the lease lapses */
        fake_now += TTL / 3;
        renew(w, 0, 0);
    }
    assert_false(exw_worker_lease_holds(w, 0));
    renew(w, 5, 1); /* Redis is back */
    assert_true(exw_worker_lease_holds(w, TTL / 2));
    taken_at = exw_mono_ms();
    fake_now += 100;
    assert_false(exw_worker_lease_lapsed(w, taken_at));
    /* A renewal on time keeps it so. */
    fake_now += TTL / 3;
    renew(w, 5, 1);
    assert_false(exw_worker_lease_lapsed(w, taken_at));
}

/* A lapse after the take gives the job up, even before the failed renewal
 * reports it: the lease's end alone is enough. */
static void test_lapse_after_the_take_abandons_the_job(void **state)
{
    struct worker *w = *state;
    int64_t taken_at;

    renew(w, 5, 1);
    taken_at = exw_mono_ms();
    fake_now += TTL + 1; /* the process was frozen: no renewal ran */
    assert_true(exw_worker_lease_lapsed(w, taken_at));
    renew(w, 5, 1); /* the late renewal does not undo it */
    assert_true(exw_worker_lease_lapsed(w, taken_at));
}

/* A renewal that was sent in time but answered after the lease ran out may
 * have reached Redis after the key expired: that counts as a lapse. */
static void test_slow_answer_counts_as_a_lapse(void **state)
{
    struct worker *w = *state;
    int64_t taken_at;

    renew(w, 5, 1);
    taken_at = exw_mono_ms();
    fake_now += TTL - 100;
    renew(w, 200, 1); /* sent 100 ms before the end, answered 100 ms after */
    assert_true(exw_worker_lease_lapsed(w, taken_at));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_take_before_registration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outage_before_the_take_spares_the_job, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lapse_after_the_take_abandons_the_job, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_slow_answer_counts_as_a_lapse, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
