/* mutex.h: a pthread mutex that clang's -Wthread-safety can follow.
 *
 * Field-level guarded_by does not compile in C (clang 14), so shared fields say
 * "guarded by mu" in a comment; functions that need a lock held say so with
 * EXW_REQUIRES, and the analysis checks the callers. */
#ifndef EXW_MUTEX_H
#define EXW_MUTEX_H

#include <pthread.h>
#include "exw/err.h"

#if defined(__clang__)
#define EXW_CAPABILITY(x) __attribute__((capability(x)))
#define EXW_REQUIRES(x) __attribute__((requires_capability(x)))
#define EXW_ACQUIRE(x) __attribute__((acquire_capability(x)))
#define EXW_RELEASE(x) __attribute__((release_capability(x)))
#define EXW_NO_TSA __attribute__((no_thread_safety_analysis))
#else
#define EXW_CAPABILITY(x)
#define EXW_REQUIRES(x)
#define EXW_ACQUIRE(x)
#define EXW_RELEASE(x)
#define EXW_NO_TSA
#endif

struct EXW_CAPABILITY("mutex") exw_mutex {
    pthread_mutex_t m;
};

/* Thread: any. Failing to lock a valid mutex is a bug. */
static inline void exw_mutex_lock(struct exw_mutex *mu) EXW_ACQUIRE(mu) EXW_NO_TSA
{
    int rc = pthread_mutex_lock(&mu->m);

    EXW_ASSERT(rc == 0);
}

static inline void exw_mutex_unlock(struct exw_mutex *mu) EXW_RELEASE(mu) EXW_NO_TSA
{
    int rc = pthread_mutex_unlock(&mu->m);

    EXW_ASSERT(rc == 0);
}

#endif
