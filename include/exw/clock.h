/* clock.h: wall and monotonic time in milliseconds, and deadlines for timed
 * waits on the monotonic clock.
 *
 * The monotonic clock can be replaced for tests (exw_clock_set_mono), so that
 * races between a job, its lease and its deadline play out in a fixed order. */
#ifndef EXW_CLOCK_H
#define EXW_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Unix epoch milliseconds (the protocol's timestamps). Thread: any. */
int64_t exw_wall_ms(void);

/* Milliseconds on a clock that never jumps, for deadlines. Thread: any. */
int64_t exw_mono_ms(void);

/* Microseconds on CLOCK_MONOTONIC, for measuring how long something took
 * (the metrics' durations). Always the real clock: exw_clock_set_mono does
 * not replace it. Thread: any. */
int64_t exw_mono_us(void);

/* Sleeps @ms milliseconds (returns early on a signal). Thread: any. */
void exw_sleep_ms(int64_t ms);

/* Replaces the clock behind exw_mono_ms (NULL restores the real one). For
 * tests; call before other threads read the clock. Thread: main. */
void exw_clock_set_mono(int64_t (*fn)(void));

/* Initializes @cond to time its waits on CLOCK_MONOTONIC, so that a wall
 * clock step neither cuts a wait short nor stretches it. Returns 0 or an
 * errno value. Thread: any. */
int exw_cond_init_mono(pthread_cond_t *cond);

/* The CLOCK_MONOTONIC time @ms from now, for pthread_cond_timedwait on a
 * condition made by exw_cond_init_mono. Thread: any. */
struct timespec exw_mono_deadline(int64_t ms);

#endif
