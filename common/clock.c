/* clock.c: wall and monotonic milliseconds, and monotonic timed waits. */
#include "exw/clock.h"

#include <errno.h>
#include <stdatomic.h>

static _Atomic(int64_t (*)(void)) mono_hook;

static int64_t ms_of(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t exw_wall_ms(void) { return ms_of(CLOCK_REALTIME); }

int64_t exw_mono_ms(void)
{
    int64_t (*fn)(void) = atomic_load(&mono_hook);

    return fn != NULL ? fn() : ms_of(CLOCK_MONOTONIC);
}

int64_t exw_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void exw_clock_set_mono(int64_t (*fn)(void)) { atomic_store(&mono_hook, fn); }

void exw_sleep_ms(int64_t ms)
{
    struct timespec ts;

    if (ms <= 0)
        return;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000;
    nanosleep(&ts, NULL);
}

int exw_cond_init_mono(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);

    if (rc != 0)
        return rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

struct timespec exw_mono_deadline(int64_t ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (ms < 0)
        ms = 0;
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}
