/* test_health.c: what GET /healthz answers, on a clock the test moves
 * (exw_clock_set_mono): a heartbeat thread that has not started, is stuck or
 * has stopped, Redis silent for longer than the heartbeat TTL, and lookup
 * threads missing, each alone and together, and healthy again after. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "exw/buf.h"
#include "exw/clock.h"
#include "worker.h"

#define TTL 6000
#define POOL 4

static int64_t fake_now;

static int64_t fake_clock(void) { return fake_now; }

struct fixture {
    struct exw_config cfg;
    struct worker w;
    struct exw_buf why;
};

static int setup(void **state)
{
    static struct fixture f;
    struct exw_metrics_info info;

    memset(&f, 0, sizeof(f));
    memset(&info, 0, sizeof(info));
    info.version = "test";
    info.worker = "w1";
    f.cfg.heartbeat_ttl_ms = TTL;
    f.cfg.pool_size = POOL;
    f.w.cfg = &f.cfg;
    f.w.metrics = exw_metrics_new(&info);
    exw_buf_init(&f.why, 4096);
    fake_now = 100000;
    exw_clock_set_mono(fake_clock);
    /* A healthy worker: every lookup thread up, the heartbeat going round
     * and Redis answering just now. */
    exw_metrics_gauge_add(f.w.metrics, EXW_GAUGE_POOL_THREADS, POOL);
    atomic_store(&f.w.hb_state, HB_RUNNING);
    atomic_store(&f.w.hb_tick_at, fake_now);
    atomic_store(&f.w.redis_ok_at, fake_now);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    exw_clock_set_mono(NULL);
    exw_metrics_free(f->w.metrics);
    exw_buf_cleanup(&f->why);
    return 0;
}

/* The reasons /healthz would give now ("" when healthy). */
static const char *reasons(struct fixture *f)
{
    exw_buf_reset(&f->why);
    exw_health_check(&f->w, &f->why);
    return f->why.data ? f->why.data : "";
}

static void test_healthy(void **state)
{
    struct fixture *f = *state;

    assert_string_equal(reasons(f), "");
    /* Redis silent for exactly the TTL is still healthy; one ms more is not. */
    fake_now += TTL;
    atomic_store(&f->w.hb_tick_at, fake_now);
    assert_string_equal(reasons(f), "");
    fake_now += 1;
    assert_non_null(strstr(reasons(f), "Redis has not answered for 6001 ms"));
    /* An answer makes it healthy again. */
    atomic_store(&f->w.redis_ok_at, fake_now);
    assert_string_equal(reasons(f), "");
}

static void test_heartbeat_thread(void **state)
{
    struct fixture *f = *state;

    atomic_store(&f->w.hb_state, HB_NOT_STARTED);
    assert_non_null(strstr(reasons(f), "has not started yet"));
    atomic_store(&f->w.hb_state, HB_RUNNING);
    /* Stuck: its loop has not gone round in two TTLs and the calls' bound. */
    fake_now += 2 * TTL + 8000 + 1;
    atomic_store(&f->w.redis_ok_at, fake_now);
    assert_non_null(strstr(reasons(f), "the heartbeat thread is stuck"));
    atomic_store(&f->w.hb_tick_at, fake_now);
    assert_string_equal(reasons(f), "");
    atomic_store(&f->w.hb_state, HB_EXITED);
    assert_non_null(strstr(reasons(f), "the heartbeat thread has stopped"));
}

static void test_pool_threads_and_several_reasons(void **state)
{
    struct fixture *f = *state;
    const char *why;

    exw_metrics_gauge_add(f->w.metrics, EXW_GAUGE_POOL_THREADS, -1);
    assert_non_null(strstr(reasons(f), "only 3 of 4 lookup threads are running"));
    fake_now += TTL + 1;
    atomic_store(&f->w.hb_tick_at, fake_now);
    why = reasons(f);
    /* One line per reason. */
    assert_non_null(strstr(why, "Redis has not answered"));
    assert_non_null(strstr(why, "only 3 of 4 lookup threads"));
    assert_non_null(strchr(strchr(why, '\n') + 1, '\n'));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_healthy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_threads_and_several_reasons, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
