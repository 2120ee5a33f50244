/* pool.h: a fixed pool of threads running tasks, round robin between queues.
 *
 * The threads are created once and live as long as the pool; each has a
 * context made by the pool's init function (the lookup pool's: a reused HTTP
 * handle). See the DESIGN note atop pool.c. */
#ifndef EXW_POOL_H
#define EXW_POOL_H

#include "exw/err.h"

struct exw_pool;

/* A unit of work, embedded in the caller's own struct. */
struct exw_task {
    /* Runs on a pool thread with that thread's context. */
    void (*run)(struct exw_task *t, void *thread_ctx);
    /* Always called once per submitted task: after run with EXW_OK, or with
     * EXW_ESHUTDOWN for a task the pool drops unrun when it stops. */
    void (*done)(struct exw_task *t, exw_err rc);
    struct exw_task *next; /* the pool's link; guarded by the pool's mutex */
};

/* A FIFO of tasks that takes its turn with the pool's other queues: one
 * per job, embedded in the job's own struct. It must not be freed while a
 * task submitted to it has not reached its done callback. */
struct exw_pool_queue {
    struct exw_task *head, *tail; /* guarded by the pool's mutex */
    struct exw_pool_queue *next;  /* the ring's link while it has tasks; same guard */
};

/* Makes the context of thread @idx; NULL on failure. Thread: the new pool thread. */
typedef void *(*exw_pool_init_fn)(unsigned idx, void *ud);
/* Frees a thread's context. Thread: that pool thread. */
typedef void (*exw_pool_fini_fn)(void *thread_ctx, void *ud);

/* Starts @nthreads threads. Fails with EXW_ENOMEM if a thread or its context
 * cannot be made (the ones started are stopped). Thread: main. */
EXW_MUST_CHECK exw_err exw_pool_new(unsigned nthreads, exw_pool_init_fn init, exw_pool_fini_fn fini,
                                    void *ud, struct exw_pool **out, struct exw_errbuf *eb);

/* Makes @q an empty queue. Thread: any, before @q is shared. */
void exw_pool_queue_init(struct exw_pool_queue *q);

/* Queues @t at the end of @q (NULL: the pool's own queue); the pool takes one
 * task from each queue that has any in turn. On EXW_OK the pool owns @t until
 * its done callback; EXW_ESHUTDOWN when the pool is stopping (the caller keeps
 * @t). Thread: any. */
EXW_MUST_CHECK exw_err exw_pool_submit(struct exw_pool *p, struct exw_pool_queue *q,
                                       struct exw_task *t);

/* Stops the pool: queued tasks get done(EXW_ESHUTDOWN), running ones finish,
 * threads are joined, contexts freed. NULL is a no-op. Thread: main. */
void exw_pool_free(struct exw_pool *p);

#endif
