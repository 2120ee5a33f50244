/* test_pool.c: the fixed thread pool. Callbacks run on pool threads, where a
 * cmocka assertion cannot be made (it jumps out of the test), so they record
 * what they see under a mutex or in atomics and the test thread checks it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exw/pool.h"

#define MAX_THREADS 16

/* ---- Shared bookkeeping ---- */

/* A thread context as the init callback makes it. */
struct ctx {
    unsigned idx;
    pthread_t tid;
    int magic;
};

#define CTX_MAGIC 0x5eed

/* What the init/fini callbacks saw; shared by the pool threads. */
struct life {
    pthread_mutex_t mu;
    unsigned ninit;                  /* guarded by mu */
    unsigned nfini;                  /* guarded by mu */
    unsigned init_seen[MAX_THREADS]; /* guarded by mu: init calls per index */
    unsigned fini_seen[MAX_THREADS]; /* guarded by mu: fini calls per index */
    unsigned faults;                 /* guarded by mu: broken expectations */
    int fail_idx;                    /* init of this index returns NULL; -1 for none */
};

static void life_init(struct life *l, int fail_idx)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->mu, NULL);
    l->fail_idx = fail_idx;
}

static void life_destroy(struct life *l) { pthread_mutex_destroy(&l->mu); }

static void *ctx_init(unsigned idx, void *ud)
{
    struct life *l = ud;
    struct ctx *c = NULL;

    pthread_mutex_lock(&l->mu);
    l->ninit++;
    if (idx < MAX_THREADS)
        l->init_seen[idx]++;
    else
        l->faults++;
    if ((int)idx != l->fail_idx) {
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            l->faults++;
        } else {
            c->idx = idx;
            c->tid = pthread_self();
            c->magic = CTX_MAGIC;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return c;
}

static void ctx_fini(void *thread_ctx, void *ud)
{
    struct life *l = ud;
    struct ctx *c = thread_ctx;

    pthread_mutex_lock(&l->mu);
    l->nfini++;
    /* Freed by the thread that made it, and only contexts init made. */
    if (c == NULL || c->magic != CTX_MAGIC || !pthread_equal(c->tid, pthread_self()) ||
        c->idx >= MAX_THREADS)
        l->faults++;
    else
        l->fini_seen[c->idx]++;
    pthread_mutex_unlock(&l->mu);
    if (c != NULL)
        c->magic = 0;
    free(c);
}

/* Counts finished tasks so the test can wait for all of them. */
struct tally {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    size_t done;   /* guarded by mu */
    size_t faults; /* guarded by mu */
};

static void tally_init(struct tally *t)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cond, NULL);
}

static void tally_destroy(struct tally *t)
{
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->mu);
}

static void tally_add(struct tally *t, int fault)
{
    pthread_mutex_lock(&t->mu);
    t->done++;
    if (fault)
        t->faults++;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mu);
}

static void tally_wait(struct tally *t, size_t n)
{
    pthread_mutex_lock(&t->mu);
    while (t->done < n)
        pthread_cond_wait(&t->cond, &t->mu);
    pthread_mutex_unlock(&t->mu);
}

/* ---- A task that records how it was treated ---- */

struct rec_task {
    struct exw_task task; /* first, so the pointers convert */
    struct tally *tally;
    atomic_int runs;
    atomic_int dones;
    atomic_int done_rc;
    atomic_int bad_ctx;
    atomic_uint ran_on; /* index of the context it ran with */
};

static void rec_run(struct exw_task *t, void *thread_ctx)
{
    struct rec_task *r = (struct rec_task *)t;
    struct ctx *c = thread_ctx;

    atomic_fetch_add(&r->runs, 1);
    /* The context passed is the one this very thread's init made. */
    if (c == NULL || c->magic != CTX_MAGIC || !pthread_equal(c->tid, pthread_self()))
        atomic_store(&r->bad_ctx, 1);
    else
        atomic_store(&r->ran_on, c->idx);
}

static void rec_done(struct exw_task *t, exw_err rc)
{
    struct rec_task *r = (struct rec_task *)t;
    int before = atomic_fetch_add(&r->dones, 1);

    atomic_store(&r->done_rc, (int)rc);
    /* done comes after run when it ran, and exactly once. */
    tally_add(r->tally, before != 0 || (rc == EXW_OK && atomic_load(&r->runs) != 1));
}

static void rec_setup(struct rec_task *r, struct tally *tally)
{
    memset(r, 0, sizeof(*r));
    r->task.run = rec_run;
    r->task.done = rec_done;
    r->tally = tally;
    atomic_init(&r->runs, 0);
    atomic_init(&r->dones, 0);
    atomic_init(&r->done_rc, -1);
    atomic_init(&r->bad_ctx, 0);
    atomic_init(&r->ran_on, 0);
}

/* ---- Tests ---- */

static void test_all_tasks_run_once(void **state)
{
    enum { N = 500, THREADS = 4 };
    struct rec_task *tasks = calloc(N, sizeof(*tasks));
    struct exw_errbuf eb = {{0}};
    struct exw_pool *p = NULL;
    struct tally tally;
    struct life life;
    unsigned used[THREADS] = {0};
    size_t i;

    (void)state;
    assert_non_null(tasks);
    tally_init(&tally);
    life_init(&life, -1);
    assert_int_equal(exw_pool_new(THREADS, ctx_init, ctx_fini, &life, &p, &eb), EXW_OK);
    assert_non_null(p);
    /* Every thread has its context before exw_pool_new returns. */
    pthread_mutex_lock(&life.mu);
    assert_int_equal(life.ninit, THREADS);
    for (i = 0; i < THREADS; i++)
        assert_int_equal(life.init_seen[i], 1);
    assert_int_equal(life.nfini, 0);
    pthread_mutex_unlock(&life.mu);

    for (i = 0; i < N; i++) {
        rec_setup(&tasks[i], &tally);
        assert_int_equal(exw_pool_submit(p, NULL, &tasks[i].task), EXW_OK);
    }
    tally_wait(&tally, N);
    for (i = 0; i < N; i++) {
        unsigned on = atomic_load(&tasks[i].ran_on);

        assert_int_equal(atomic_load(&tasks[i].runs), 1);
        assert_int_equal(atomic_load(&tasks[i].dones), 1);
        assert_int_equal(atomic_load(&tasks[i].done_rc), EXW_OK);
        assert_int_equal(atomic_load(&tasks[i].bad_ctx), 0);
        assert_true(on < THREADS);
        used[on]++;
    }
    pthread_mutex_lock(&tally.mu);
    assert_int_equal(tally.faults, 0);
    pthread_mutex_unlock(&tally.mu);

    exw_pool_free(p);
    /* Each context freed once, by its own thread. */
    assert_int_equal(life.nfini, THREADS);
    for (i = 0; i < THREADS; i++)
        assert_int_equal(life.fini_seen[i], 1);
    assert_int_equal(life.faults, 0);
    /* Nothing ran twice after the pool stopped. */
    for (i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&tasks[i].runs), 1);
        assert_int_equal(atomic_load(&tasks[i].dones), 1);
    }
    life_destroy(&life);
    tally_destroy(&tally);
    free(tasks);
}

static void test_without_init(void **state)
{
    struct exw_pool *p = NULL;
    struct rec_task task;
    struct tally tally;

    (void)state;
    /* No init: the context is NULL, which rec_run reports as a bad context. */
    tally_init(&tally);
    assert_int_equal(exw_pool_new(2, NULL, NULL, NULL, &p, NULL), EXW_OK);
    assert_non_null(p);
    rec_setup(&task, &tally);
    assert_int_equal(exw_pool_submit(p, NULL, &task.task), EXW_OK);
    tally_wait(&tally, 1);
    assert_int_equal(atomic_load(&task.runs), 1);
    assert_int_equal(atomic_load(&task.bad_ctx), 1);
    assert_int_equal(atomic_load(&task.done_rc), EXW_OK);
    exw_pool_free(p);
    tally_destroy(&tally);
}

static void test_free_idle_and_null(void **state)
{
    struct exw_pool *p = NULL;
    struct life life;

    (void)state;
    exw_pool_free(NULL);
    life_init(&life, -1);
    assert_int_equal(exw_pool_new(3, ctx_init, ctx_fini, &life, &p, NULL), EXW_OK);
    exw_pool_free(p);
    assert_int_equal(life.ninit, 3);
    assert_int_equal(life.nfini, 3);
    assert_int_equal(life.faults, 0);
    life_destroy(&life);
}

static void test_init_failure(void **state)
{
    struct exw_errbuf eb = {{0}};
    struct exw_pool *p = (struct exw_pool *)&eb;
    struct life life;
    unsigned i;

    (void)state;
    life_init(&life, 2);
    assert_int_equal(exw_pool_new(4, ctx_init, ctx_fini, &life, &p, &eb), EXW_ENOMEM);
    assert_null(p);
    assert_non_null(strstr(eb.msg, "1 of 4"));
    /* Every thread tried; the three contexts that were made are freed again
     * (which the leak checker confirms), and the failed one is not "freed". */
    assert_int_equal(life.ninit, 4);
    assert_int_equal(life.nfini, 3);
    for (i = 0; i < 4; i++)
        assert_int_equal(life.fini_seen[i], i == 2 ? 0 : 1);
    assert_int_equal(life.faults, 0);
    life_destroy(&life);

    /* A one-thread pool whose only init fails. */
    life_init(&life, 0);
    p = (struct exw_pool *)&eb;
    assert_int_equal(exw_pool_new(1, ctx_init, ctx_fini, &life, &p, NULL), EXW_ENOMEM);
    assert_null(p);
    assert_int_equal(life.ninit, 1);
    assert_int_equal(life.nfini, 0);
    life_destroy(&life);
}

/* ---- Shutdown with tasks still queued ----
 *
 * One thread, blocked in a first task (the gate) until the pool is stopping.
 * The test thread queues more tasks behind it and calls exw_pool_free; a helper
 * thread learns that the pool is stopping when exw_pool_submit says
 * EXW_ESHUTDOWN, and only then opens the gate. So when the pool thread comes
 * back for more work the stop flag is certainly set, and every queued task
 * (the helper's probes accepted before the flag included) must be dropped. */

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int entered; /* guarded by mu */
    int open;    /* guarded by mu */
};

struct gate_task {
    struct exw_task task; /* first, so the pointers convert */
    struct gate *gate;
    atomic_int runs;
    atomic_int dones;
    atomic_int done_rc;
};

static void gate_run(struct exw_task *t, void *thread_ctx)
{
    struct gate_task *g = (struct gate_task *)t;

    (void)thread_ctx;
    atomic_fetch_add(&g->runs, 1);
    pthread_mutex_lock(&g->gate->mu);
    g->gate->entered = 1;
    pthread_cond_broadcast(&g->gate->cond);
    while (!g->gate->open)
        pthread_cond_wait(&g->gate->cond, &g->gate->mu);
    pthread_mutex_unlock(&g->gate->mu);
}

static void gate_done(struct exw_task *t, exw_err rc)
{
    struct gate_task *g = (struct gate_task *)t;

    atomic_fetch_add(&g->dones, 1);
    atomic_store(&g->done_rc, (int)rc);
}

/* A probe the helper submits; heap-allocated, freed by the test at the end. */
struct probe {
    struct exw_task task; /* first, so the pointers convert */
    atomic_int runs;
    atomic_int dones;
    atomic_int done_rc;
    struct probe *next_probe;
};

static void probe_run(struct exw_task *t, void *thread_ctx)
{
    (void)thread_ctx;
    atomic_fetch_add(&((struct probe *)t)->runs, 1);
}

static void probe_done(struct exw_task *t, exw_err rc)
{
    struct probe *pr = (struct probe *)t;

    atomic_fetch_add(&pr->dones, 1);
    atomic_store(&pr->done_rc, (int)rc);
}

struct helper {
    struct exw_pool *pool;
    struct gate *gate;
    struct probe *accepted; /* probes the pool took, a list */
    size_t naccepted;
    int refused;
};

static void *helper_main(void *arg)
{
    struct helper *h = arg;
    const struct timespec pause = {0, 1000000};

    for (;;) {
        struct probe *pr = calloc(1, sizeof(*pr));

        if (pr == NULL)
            break;
        pr->task.run = probe_run;
        pr->task.done = probe_done;
        atomic_init(&pr->runs, 0);
        atomic_init(&pr->dones, 0);
        atomic_init(&pr->done_rc, -1);
        if (exw_pool_submit(h->pool, NULL, &pr->task) == EXW_ESHUTDOWN) {
            /* Refused: the caller keeps it. */
            free(pr);
            h->refused = 1;
            break;
        }
        pr->next_probe = h->accepted;
        h->accepted = pr;
        h->naccepted++;
        nanosleep(&pause, NULL);
    }
    pthread_mutex_lock(&h->gate->mu);
    h->gate->open = 1;
    pthread_cond_broadcast(&h->gate->cond);
    pthread_mutex_unlock(&h->gate->mu);
    return NULL;
}

/* Submits @first, which holds the pool's only thread at @gate, and waits
 * until that thread is inside it. */
static void hold_only_thread(struct exw_pool *p, struct gate *gate, struct gate_task *first)
{
    first->task.run = gate_run;
    first->task.done = gate_done;
    first->gate = gate;
    atomic_init(&first->runs, 0);
    atomic_init(&first->dones, 0);
    atomic_init(&first->done_rc, -1);
    assert_int_equal(exw_pool_submit(p, NULL, &first->task), EXW_OK);
    pthread_mutex_lock(&gate->mu);
    while (!gate->entered)
        pthread_cond_wait(&gate->cond, &gate->mu);
    pthread_mutex_unlock(&gate->mu);
}

static void test_shutdown_drops_queued(void **state)
{
    enum { QUEUED = 6 };
    struct gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    struct gate_task first = {0};
    struct gate_task queued[QUEUED];
    struct helper helper = {0};
    struct exw_pool *p = NULL;
    struct life life;
    pthread_t tid;
    struct probe *pr;
    int i;

    (void)state;
    life_init(&life, -1);
    assert_int_equal(exw_pool_new(1, ctx_init, ctx_fini, &life, &p, NULL), EXW_OK);
    hold_only_thread(p, &gate, &first);

    memset(queued, 0, sizeof(queued));
    for (i = 0; i < QUEUED; i++) {
        queued[i].task.run = gate_run;
        queued[i].task.done = gate_done;
        queued[i].gate = &gate;
        atomic_init(&queued[i].runs, 0);
        atomic_init(&queued[i].dones, 0);
        atomic_init(&queued[i].done_rc, -1);
        assert_int_equal(exw_pool_submit(p, NULL, &queued[i].task), EXW_OK);
    }

    helper.pool = p;
    helper.gate = &gate;
    assert_int_equal(pthread_create(&tid, NULL, helper_main, &helper), 0);
    exw_pool_free(p);
    assert_int_equal(pthread_join(tid, NULL), 0);

    /* The running task finished normally. */
    assert_int_equal(atomic_load(&first.runs), 1);
    assert_int_equal(atomic_load(&first.dones), 1);
    assert_int_equal(atomic_load(&first.done_rc), EXW_OK);
    /* The queued ones never ran and were handed back once, as abandoned. */
    for (i = 0; i < QUEUED; i++) {
        assert_int_equal(atomic_load(&queued[i].runs), 0);
        assert_int_equal(atomic_load(&queued[i].dones), 1);
        assert_int_equal(atomic_load(&queued[i].done_rc), EXW_ESHUTDOWN);
    }
    assert_true(helper.refused);
    while ((pr = helper.accepted) != NULL) {
        assert_int_equal(atomic_load(&pr->runs), 0);
        assert_int_equal(atomic_load(&pr->dones), 1);
        assert_int_equal(atomic_load(&pr->done_rc), EXW_ESHUTDOWN);
        helper.accepted = pr->next_probe;
        free(pr);
    }
    assert_int_equal(life.nfini, 1);
    assert_int_equal(life.faults, 0);
    life_destroy(&life);
    pthread_cond_destroy(&gate.cond);
    pthread_mutex_destroy(&gate.mu);
}

/* ---- Round robin between queues ---- */

/* A task that notes its name in the order it ran; one pool thread runs them,
 * so the order is the pool's choice alone. */
struct order_task {
    struct exw_task task; /* first, so the pointers convert */
    char name;
    char *log; /* appended to by the one pool thread; read after the pool stops */
    size_t *len;
    struct tally *tally;
};

static void order_run(struct exw_task *t, void *thread_ctx)
{
    struct order_task *o = (struct order_task *)t;

    (void)thread_ctx;
    o->log[(*o->len)++] = o->name;
}

static void order_done(struct exw_task *t, exw_err rc)
{
    struct order_task *o = (struct order_task *)t;

    tally_add(o->tally, rc != EXW_OK);
}

static void test_round_robin(void **state)
{
    enum { BIG = 6, SMALL = 2 };
    struct gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    struct gate_task first = {0};
    struct order_task big[BIG], small[SMALL], shared = {0};
    struct exw_pool_queue qbig, qsmall;
    struct exw_pool *p = NULL;
    struct tally tally;
    char log[BIG + SMALL + 2] = {0};
    size_t len = 0;
    int i;

    (void)state;
    tally_init(&tally);
    assert_int_equal(exw_pool_new(1, NULL, NULL, NULL, &p, NULL), EXW_OK);
    hold_only_thread(p, &gate, &first);

    /* While the only thread is held: a big job's six tasks, then a small
     * job's two, then one without a queue. */
    exw_pool_queue_init(&qbig);
    exw_pool_queue_init(&qsmall);
    for (i = 0; i < BIG; i++) {
        big[i] = (struct order_task){{order_run, order_done, NULL}, 'B', log, &len, &tally};
        assert_int_equal(exw_pool_submit(p, &qbig, &big[i].task), EXW_OK);
    }
    for (i = 0; i < SMALL; i++) {
        small[i] = (struct order_task){{order_run, order_done, NULL}, 's', log, &len, &tally};
        assert_int_equal(exw_pool_submit(p, &qsmall, &small[i].task), EXW_OK);
    }
    shared = (struct order_task){{order_run, order_done, NULL}, 'o', log, &len, &tally};
    assert_int_equal(exw_pool_submit(p, NULL, &shared.task), EXW_OK);

    pthread_mutex_lock(&gate.mu);
    gate.open = 1;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.mu);
    tally_wait(&tally, BIG + SMALL + 1);
    exw_pool_free(p);
    /* One turn each: the small job is done after two turns of the big one. */
    assert_string_equal(log, "BsoBsBBBB");
    pthread_mutex_lock(&tally.mu);
    assert_int_equal(tally.faults, 0);
    pthread_mutex_unlock(&tally.mu);
    tally_destroy(&tally);
    pthread_cond_destroy(&gate.cond);
    pthread_mutex_destroy(&gate.mu);
}

/* ---- Many threads, many tasks ---- */

struct count_task {
    struct exw_task task; /* first, so the pointers convert */
    atomic_long *counter;
    struct tally *tally;
};

static void count_run(struct exw_task *t, void *thread_ctx)
{
    (void)thread_ctx;
    atomic_fetch_add(((struct count_task *)t)->counter, 1);
}

static void count_done(struct exw_task *t, exw_err rc)
{
    struct count_task *c = (struct count_task *)t;

    tally_add(c->tally, rc != EXW_OK);
}

static void test_concurrency(void **state)
{
    enum { THREADS = 8, N = 10000 };
    struct count_task *tasks = calloc(N, sizeof(*tasks));
    struct exw_pool *p = NULL;
    atomic_long counter;
    struct tally tally;
    struct life life;
    size_t i;

    (void)state;
    assert_non_null(tasks);
    atomic_init(&counter, 0);
    tally_init(&tally);
    life_init(&life, -1);
    assert_int_equal(exw_pool_new(THREADS, ctx_init, ctx_fini, &life, &p, NULL), EXW_OK);
    for (i = 0; i < N; i++) {
        tasks[i].task.run = count_run;
        tasks[i].task.done = count_done;
        tasks[i].counter = &counter;
        tasks[i].tally = &tally;
        assert_int_equal(exw_pool_submit(p, NULL, &tasks[i].task), EXW_OK);
    }
    tally_wait(&tally, N);
    assert_int_equal(atomic_load(&counter), N);
    pthread_mutex_lock(&tally.mu);
    assert_int_equal(tally.done, N);
    assert_int_equal(tally.faults, 0);
    pthread_mutex_unlock(&tally.mu);
    exw_pool_free(p);
    assert_int_equal(atomic_load(&counter), N);
    assert_int_equal(life.nfini, THREADS);
    assert_int_equal(life.faults, 0);
    life_destroy(&life);
    tally_destroy(&tally);
    free(tasks);
}

/* Submitting from several threads at once while the pool runs. */
struct submitter {
    struct exw_pool *pool;
    struct count_task *tasks;
    size_t n;
    int failures;
};

static void *submitter_main(void *arg)
{
    struct submitter *s = arg;
    size_t i;

    for (i = 0; i < s->n; i++) {
        if (exw_pool_submit(s->pool, NULL, &s->tasks[i].task) != EXW_OK)
            s->failures++;
    }
    return NULL;
}

static void test_concurrent_submit(void **state)
{
    enum { THREADS = 8, SUBMITTERS = 4, PER = 2500 };
    struct count_task *tasks = calloc(SUBMITTERS * PER, sizeof(*tasks));
    struct submitter subs[SUBMITTERS];
    pthread_t tids[SUBMITTERS];
    struct exw_pool *p = NULL;
    atomic_long counter;
    struct tally tally;
    size_t i;

    (void)state;
    assert_non_null(tasks);
    atomic_init(&counter, 0);
    tally_init(&tally);
    assert_int_equal(exw_pool_new(THREADS, NULL, NULL, NULL, &p, NULL), EXW_OK);
    for (i = 0; i < SUBMITTERS * PER; i++) {
        tasks[i].task.run = count_run;
        tasks[i].task.done = count_done;
        tasks[i].counter = &counter;
        tasks[i].tally = &tally;
    }
    for (i = 0; i < SUBMITTERS; i++) {
        subs[i].pool = p;
        subs[i].tasks = tasks + i * PER;
        subs[i].n = PER;
        subs[i].failures = 0;
        assert_int_equal(pthread_create(&tids[i], NULL, submitter_main, &subs[i]), 0);
    }
    for (i = 0; i < SUBMITTERS; i++) {
        assert_int_equal(pthread_join(tids[i], NULL), 0);
        assert_int_equal(subs[i].failures, 0);
    }
    tally_wait(&tally, SUBMITTERS * PER);
    assert_int_equal(atomic_load(&counter), SUBMITTERS * PER);
    pthread_mutex_lock(&tally.mu);
    assert_int_equal(tally.faults, 0);
    pthread_mutex_unlock(&tally.mu);
    exw_pool_free(p);
    tally_destroy(&tally);
    free(tasks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_tasks_run_once),    cmocka_unit_test(test_without_init),
        cmocka_unit_test(test_free_idle_and_null),    cmocka_unit_test(test_init_failure),
        cmocka_unit_test(test_shutdown_drops_queued), cmocka_unit_test(test_round_robin),
        cmocka_unit_test(test_concurrency),           cmocka_unit_test(test_concurrent_submit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
