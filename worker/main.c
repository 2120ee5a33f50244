/* main.c: export-worker's start-up, main loop and shutdown.
 *
 * Order: configuration (exit 2 when bad), logging, curl's global state, the
 * lookup pool and the heartbeat (both with SIGTERM/SIGINT blocked, so only this
 * thread sees them), then jobs one at a time until a stop is asked for. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exw/clock.h"
#include "exw/http.h"
#include "exw/log.h"
#include "exw/queue.h"
#include "run.h"

extern char **environ;

#define TAKE_WAIT_MS 1000
#define LEASE_POLL_MS 20
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 5000
#define DEFER_WAIT_MS 250

volatile sig_atomic_t exw_stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    exw_stop_requested = 1;
}

static void install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

/* Blocks or unblocks the stop signals for the calling thread (threads created
 * meanwhile inherit the mask). */
static void stop_signals(int how)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(how, &set, NULL);
}

/* An evicting Redis silently drops queued jobs and results. */
static void warn_eviction(struct exw_redis *rd)
{
    struct exw_errbuf eb;
    char policy[64];

    if (exw_redis_config_get(rd, "maxmemory-policy", policy, sizeof(policy), &eb) == EXW_OK &&
        policy[0] != '\0' && strcmp(policy, "noeviction") != 0)
        EXW_LOG(EXW_LOG_WARN,
                "Redis maxmemory-policy is %s: under memory pressure Redis may evict queued "
                "jobs and results; set it to noeviction",
                policy);
}

/* How long one take blocks: at most a quarter of the heartbeat's TTL, so
 * that it ends well within the lease it started under. */
static double take_wait_s(const struct worker *w)
{
    long ms = w->cfg->heartbeat_ttl_ms / 4;

    return (ms < TAKE_WAIT_MS ? ms : TAKE_WAIT_MS) / 1000.0;
}

/* Waits until the heartbeat has registered this worker, so that a job taken
 * is never in the processing list of a worker that recovery cannot see. In a
 * container the worker may well start before Redis does. Returns 0 on a stop. */
static int wait_for_lease(struct worker *w)
{
    /* Half the TTL: renewed every third of it, a live lease always has more
     * left, and a take (take_wait) fits in it with room to spare. */
    int64_t margin = w->cfg->heartbeat_ttl_ms / 2;

    while (!exw_stop_requested) {
        if (exw_worker_lease_holds(w, margin))
            return 1;
        exw_sleep_ms(LEASE_POLL_MS);
    }
    return 0;
}

/* Runs the document @doc (which it frees) taken at @taken_at. One too large
 * for this process is ended without it, once its memory is back. */
static enum run_result run_taken(struct worker *w, char *doc, size_t len, int64_t taken_at)
{
    enum run_result res = exw_run_job(w, doc, len, taken_at);

    free(doc);
    return res == RUN_OVERSIZED ? exw_run_oversized(w, taken_at) : res;
}

/* Runs the oldest job left in this worker's own processing list: one whose
 * take reply was lost, or whose end could not be recorded, or that an earlier
 * process with the same worker id left. Returns 0 when the list is empty, 1
 * when it ran one, -1 when Redis could not say. */
static int adopt_one(struct worker *w, enum run_result *res)
{
    struct exw_redis *rd = exw_conn_get(&w->main);
    struct exw_errbuf eb;
    char *doc = NULL;
    size_t len = 0;
    int64_t taken_at = exw_mono_ms();

    if (rd == NULL)
        return -1;
    switch (exw_queue_oldest_own(rd, &doc, &len, &eb)) {
    case EXW_OK:
        break;
    case EXW_ENOMEM:
        /* Too large for this process to take in: it cannot run here. */
        *res = exw_run_oversized(w, taken_at);
        return 1;
    default:
        EXW_LOG(EXW_LOG_WARN, "reading this worker's own processing list failed: %s", eb.msg);
        return -1;
    }
    if (doc == NULL)
        return 0;
    EXW_LOG(EXW_LOG_WARN, "running a job found in this worker's own processing list");
    *res = run_taken(w, doc, len, taken_at);
    return 1;
}

static void serve(struct worker *w)
{
    int adopt = 1; /* look at the own processing list first */
    int64_t backoff = 0;

    while (!exw_stop_requested) {
        enum run_result res = RUN_ENDED;
        struct exw_redis *rd;
        struct exw_errbuf eb;
        char *doc = NULL;
        size_t len = 0;
        int64_t taken_at;

        /* Not at once after a failure: whatever kept the job from ending may
         * still hold, and a job going round must not spin the worker. */
        exw_sleep_ms(backoff);
        if (!wait_for_lease(w))
            break;
        if (adopt) {
            int found = adopt_one(w, &res);

            if (found < 0) {
                backoff = BACKOFF_MAX_MS;
                continue;
            }
            if (found == 0)
                adopt = 0;
        }
        if (!adopt) {
            rd = exw_conn_get(&w->main);
            if (rd == NULL) {
                backoff = BACKOFF_MAX_MS;
                continue;
            }
            taken_at = exw_mono_ms();
            if (exw_queue_take(rd, take_wait_s(w), &doc, &len, &eb) != EXW_OK) {
                /* The take may have reached Redis and moved a job whose reply
                 * was lost: it is in the own processing list now. */
                EXW_LOG(EXW_LOG_WARN, "taking a job failed: %s", eb.msg);
                adopt = 1;
                backoff = BACKOFF_MIN_MS;
                continue;
            }
            if (doc == NULL) {
                backoff = 0;
                continue;
            }
            res = run_taken(w, doc, len, taken_at);
        }
        switch (res) {
        case RUN_ENDED:
            backoff = 0;
            break;
        case RUN_LEFT:
        case RUN_OVERSIZED:
            adopt = 1;
            backoff = backoff == 0 ? BACKOFF_MIN_MS
                                   : (backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2);
            break;
        case RUN_DEFERRED:
            /* Waits longer each time the same copy comes back while the
             * other still runs. */
            backoff = backoff < DEFER_WAIT_MS
                          ? DEFER_WAIT_MS
                          : (backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2);
            break;
        }
    }
    /* Whatever is still in the own processing list goes back on the queue. */
    {
        struct exw_redis *rd = exw_conn_get(&w->main);
        struct exw_errbuf eb;
        long long moved = 0;

        if (rd != NULL && exw_queue_release_own(rd, &moved, &eb) == EXW_OK && moved > 0)
            EXW_LOG(EXW_LOG_WARN, "put %lld unfinished job(s) of this worker back on the queue",
                    moved);
    }
}

int main(int argc, char **argv)
{
    struct exw_config cfg;
    struct worker w;
    struct heartbeat *hb = NULL;
    struct exw_errbuf eb;
    char *errors = NULL;
    char *described;
    int help = 0;
    int status = 1;

    memset(&cfg, 0, sizeof(cfg));
    if (exw_config_load(&cfg, environ, argc, argv, &help, &errors) != EXW_OK) {
        fprintf(stderr, "export-worker: bad configuration:\n%s\nTry --help.\n",
                errors ? errors : "(no details)");
        free(errors);
        exw_config_cleanup(&cfg);
        return 2;
    }
    if (help) {
        fputs(exw_config_usage(), stdout);
        exw_config_cleanup(&cfg);
        return 0;
    }
    exw_log_setup(cfg.log_format, cfg.log_level);
    exw_log_set_thread("main");
    install_signals();

    memset(&w, 0, sizeof(w));
    w.cfg = &cfg;
    w.pid = (long)getpid();
    w.started_at = exw_wall_ms();
    if (gethostname(w.host, sizeof(w.host) - 1) != 0)
        snprintf(w.host, sizeof(w.host), "unknown");
    pthread_mutex_init(&w.mu.m, NULL);
    exw_lease_init(&w.lease, cfg.heartbeat_ttl_ms);
    exw_conn_init(&w.main, &cfg, "main", 5000);

    described = exw_config_describe(&cfg);
    EXW_LOG(EXW_LOG_INFO, "starting export-worker %s", described);
    free(described);

    if (exw_http_global_init() != EXW_OK) {
        EXW_LOG(EXW_LOG_ERROR, "curl_global_init failed");
        goto out;
    }
    stop_signals(SIG_BLOCK);
    if (exw_pool_new((unsigned)cfg.pool_size, exw_lookup_thread_init, exw_lookup_thread_fini, NULL,
                     &w.pool, &eb) != EXW_OK) {
        stop_signals(SIG_UNBLOCK);
        EXW_LOG(EXW_LOG_ERROR, "cannot start the lookup pool: %s", eb.msg);
        goto out_curl;
    }
    if (exw_heartbeat_start(&w, &hb, &eb) != EXW_OK) {
        stop_signals(SIG_UNBLOCK);
        EXW_LOG(EXW_LOG_ERROR, "%s", eb.msg);
        goto out_pool;
    }
    stop_signals(SIG_UNBLOCK);

    {
        int swept = run_sweep_tmpdir(cfg.tmpdir);

        if (swept > 0)
            EXW_LOG(EXW_LOG_WARN, "removed %d workbook(s) that dead workers left in %s", swept,
                    cfg.tmpdir);
    }
    if (wait_for_lease(&w)) {
        struct exw_redis *rd = exw_conn_get(&w.main);

        if (rd != NULL)
            warn_eviction(rd);
        EXW_LOG(EXW_LOG_INFO, "ready: taking jobs from %s:queue with %ld lookup threads",
                cfg.prefix, cfg.pool_size);
        serve(&w);
    }
    EXW_LOG(EXW_LOG_INFO, "stopping");
    status = 0;
    exw_heartbeat_stop(hb);
out_pool:
    exw_pool_free(w.pool);
out_curl:
    exw_http_global_cleanup();
out:
    exw_conn_cleanup(&w.main);
    pthread_mutex_destroy(&w.mu.m);
    exw_config_cleanup(&cfg);
    if (status == 0)
        EXW_LOG(EXW_LOG_INFO, "stopped");
    return status;
}
