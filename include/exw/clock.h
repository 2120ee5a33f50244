/* clock.h: wall and monotonic time in milliseconds. */
#ifndef EXW_CLOCK_H
#define EXW_CLOCK_H

#include <stdint.h>

/* Unix epoch milliseconds (the protocol's timestamps). Thread: any. */
int64_t exw_wall_ms(void);

/* Milliseconds on a clock that never jumps, for deadlines. Thread: any. */
int64_t exw_mono_ms(void);

/* Sleeps @ms milliseconds (returns early on a signal). Thread: any. */
void exw_sleep_ms(int64_t ms);

#endif
