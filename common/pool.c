/* pool.c: a fixed pool of threads running tasks, round robin between queues.
 *
 * DESIGN
 * ------
 * export-worker's lookups are blocking HTTP calls, half a second each. Rather
 * than one thread per request or an event loop, a fixed number of threads is
 * made once at start-up (EXPORT_POOL_SIZE) and lives as long as the worker, so
 * that each keeps one CURL handle and its open connections between jobs.
 *
 * The pool knows nothing of HTTP: each thread asks the init callback for its
 * context (the lookup pool's: a struct exw_http) and hands it to every task it
 * runs. Tasks are intrusive (struct exw_task embedded in the caller's struct),
 * so submitting allocates nothing and cannot fail for lack of memory.
 *
 * Fairness. Each running job submits to a queue of its own (struct
 * exw_pool_queue, embedded in the job's lookups); the pool keeps a ring of
 * the queues that have tasks and takes one task from each in turn. A job of
 * five keys that arrives behind one of 10^5 therefore waits for five turns,
 * not for 10^5 tasks. Within a queue tasks run in the order submitted. A
 * queue joins the ring when its first task arrives and leaves it when its
 * last is taken, so an idle job costs nothing.
 *
 * One mutex guards the queues, the ring and the stopping flag; one condition
 * variable wakes idle threads. A task leaves its queue under the lock and runs
 * without it. Ownership follows curl's thread pool: a task the pool accepted
 * always reaches its done callback exactly once, after running (EXW_OK) or,
 * when the pool stops first, unrun (EXW_ESHUTDOWN). Cancelling a job's tasks
 * is the caller's business (its run function checks the job's abort flag),
 * which keeps the pool free of per-job state.
 */
#include "exw/pool.h"

#include <pthread.h>
#include <stdlib.h>

#include "exw/mutex.h"

struct worker_thread {
    struct exw_pool *pool;
    pthread_t tid;
    unsigned idx;
};

struct exw_pool {
    struct exw_mutex mu;
    pthread_cond_t wake;          /* signalled when a task is queued or the pool stops */
    pthread_cond_t started;       /* signalled as each thread reports its init result */
    struct exw_pool_queue shared; /* for tasks submitted without a queue */
    struct exw_pool_queue *ring;  /* guarded by mu: queues with tasks, next turn first */
    struct exw_pool_queue *last;  /* guarded by mu: the ring's last queue */
    int stopping;                 /* guarded by mu */
    unsigned nready;              /* guarded by mu: threads whose init finished */
    unsigned nfailed;             /* guarded by mu: threads whose init failed */
    exw_pool_init_fn init;
    exw_pool_fini_fn fini;
    void *ud;
    struct worker_thread *threads;
    unsigned nthreads; /* threads created, to join */
};

/* Takes the next task: the first of the queue whose turn it is, which then
 * goes to the back of the ring if it has more. Caller holds p->mu; returns
 * NULL when no queue has a task. Thread: pool thread, or main when stopping. */
static struct exw_task *take_locked(struct exw_pool *p) EXW_REQUIRES(p->mu)
{
    struct exw_pool_queue *q = p->ring;
    struct exw_task *t;

    if (q == NULL)
        return NULL;
    t = q->head;
    q->head = t->next;
    t->next = NULL;
    p->ring = q->next;
    q->next = NULL;
    if (p->ring == NULL)
        p->last = NULL;
    if (q->head == NULL) {
        q->tail = NULL;
    } else {
        if (p->last != NULL)
            p->last->next = q;
        else
            p->ring = q;
        p->last = q;
    }
    return t;
}

static void *thread_main(void *arg)
{
    struct worker_thread *w = arg;
    struct exw_pool *p = w->pool;
    void *ctx = p->init ? p->init(w->idx, p->ud) : NULL;
    int ok = p->init == NULL || ctx != NULL;

    exw_mutex_lock(&p->mu);
    p->nready++;
    if (!ok)
        p->nfailed++;
    pthread_cond_broadcast(&p->started);
    for (;;) {
        struct exw_task *t;

        while (ok && !p->stopping && p->ring == NULL)
            pthread_cond_wait(&p->wake, &p->mu.m);
        if (!ok || p->stopping)
            break;
        t = take_locked(p);
        exw_mutex_unlock(&p->mu);
        t->run(t, ctx);
        t->done(t, EXW_OK);
        exw_mutex_lock(&p->mu);
    }
    exw_mutex_unlock(&p->mu);
    if (ctx != NULL && p->fini != NULL)
        p->fini(ctx, p->ud);
    return NULL;
}

exw_err exw_pool_new(unsigned nthreads, exw_pool_init_fn init, exw_pool_fini_fn fini, void *ud,
                     struct exw_pool **out, struct exw_errbuf *eb)
{
    struct exw_pool *p = exw_xcalloc(1, sizeof(*p));
    exw_err rc = EXW_OK;
    unsigned i;

    pthread_mutex_init(&p->mu.m, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->started, NULL);
    exw_pool_queue_init(&p->shared);
    p->init = init;
    p->fini = fini;
    p->ud = ud;
    p->threads = exw_xcalloc(nthreads, sizeof(*p->threads));
    for (i = 0; i < nthreads; i++) {
        struct worker_thread *w = &p->threads[i];

        w->pool = p;
        w->idx = i;
        if (pthread_create(&w->tid, NULL, thread_main, w) != 0) {
            rc = exw_errbuf_set(eb, EXW_ENOMEM, "cannot start pool thread %u of %u", i + 1,
                                nthreads);
            break;
        }
        p->nthreads++;
    }
    exw_mutex_lock(&p->mu);
    while (p->nready < p->nthreads)
        pthread_cond_wait(&p->started, &p->mu.m);
    if (rc == EXW_OK && p->nfailed > 0)
        rc = exw_errbuf_set(eb, EXW_ENOMEM, "%u of %u pool threads could not set up", p->nfailed,
                            nthreads);
    exw_mutex_unlock(&p->mu);
    if (rc != EXW_OK) {
        exw_pool_free(p);
        p = NULL;
    }
    *out = p;
    return rc;
}

void exw_pool_queue_init(struct exw_pool_queue *q)
{
    q->head = q->tail = NULL;
    q->next = NULL;
}

exw_err exw_pool_submit(struct exw_pool *p, struct exw_pool_queue *q, struct exw_task *t)
{
    exw_err rc = EXW_OK;

    if (q == NULL)
        q = &p->shared;
    t->next = NULL;
    exw_mutex_lock(&p->mu);
    if (p->stopping) {
        rc = EXW_ESHUTDOWN;
    } else if (q->tail != NULL) {
        q->tail->next = t;
        q->tail = t;
        pthread_cond_signal(&p->wake);
    } else {
        /* The queue had nothing: it joins the ring, at the back. */
        q->head = q->tail = t;
        if (p->last != NULL)
            p->last->next = q;
        else
            p->ring = q;
        p->last = q;
        pthread_cond_signal(&p->wake);
    }
    exw_mutex_unlock(&p->mu);
    return rc;
}

void exw_pool_free(struct exw_pool *p)
{
    struct exw_task *t;
    unsigned i;

    if (p == NULL)
        return;
    exw_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->wake);
    exw_mutex_unlock(&p->mu);
    for (i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i].tid, NULL);
    /* No thread is left: the queue is ours without the lock, but take it anyway
     * so the analysis sees the rule kept. */
    for (;;) {
        exw_mutex_lock(&p->mu);
        t = take_locked(p);
        exw_mutex_unlock(&p->mu);
        if (t == NULL)
            break;
        t->done(t, EXW_ESHUTDOWN);
    }
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->started);
    pthread_mutex_destroy(&p->mu.m);
    free(p->threads);
    free(p);
}
