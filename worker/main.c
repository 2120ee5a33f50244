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
#include "worker.h"

extern char **environ;

#define TAKE_WAIT_S 1.0

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
static void warn_eviction(struct exw_rq *rq)
{
    struct exw_errbuf eb;
    char policy[64];

    if (exw_rq_config_get(rq, "maxmemory-policy", policy, sizeof(policy), &eb) == EXW_OK &&
        policy[0] != '\0' && strcmp(policy, "noeviction") != 0)
        EXW_LOG(EXW_LOG_WARN,
                "Redis maxmemory-policy is %s: under memory pressure Redis may evict queued "
                "jobs and results; set it to noeviction",
                policy);
}

/* Waits for Redis at start-up with capped backoff instead of exiting: in a
 * container the worker may well start before Redis does. */
static int connect_at_start(struct worker *w)
{
    int64_t backoff = 200;
    struct exw_errbuf eb;

    while (!exw_stop_requested) {
        struct exw_rq *rq = exw_worker_redis(w);

        if (rq != NULL) {
            struct exw_rq_beat b = {.host = w->host,
                                    .pid = w->pid,
                                    .started_at = w->started_at,
                                    .job = "",
                                    .jobs_done = 0,
                                    .ttl_ms = w->cfg->heartbeat_ttl_ms};

            /* Registered before the first take, so that a job taken is never in
             * the processing list of a worker that recovery cannot see. */
            if (exw_rq_heartbeat(rq, &b, &eb) == EXW_OK) {
                warn_eviction(rq);
                return 1;
            }
            EXW_LOG(EXW_LOG_WARN, "registering failed, retrying: %s", eb.msg);
        }
        exw_sleep_ms(backoff);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
    return 0;
}

/* Puts back what an earlier job left in this worker's processing list.
 * Returns 1 when the list is known to be empty. */
static int release_own(struct worker *w)
{
    struct exw_rq *rq = exw_worker_redis(w);
    struct exw_errbuf eb;
    long long moved = 0;

    if (rq == NULL || exw_rq_release_own(rq, &moved, &eb) != EXW_OK)
        return 0;
    if (moved > 0)
        EXW_LOG(EXW_LOG_WARN, "put %lld unfinished job(s) of this worker back on the queue", moved);
    return 1;
}

static void serve(struct worker *w)
{
    int left_behind = 0;

    while (!exw_stop_requested) {
        struct exw_rq *rq = exw_worker_redis(w);
        struct exw_errbuf eb;
        char *doc = NULL;
        size_t len = 0;

        if (rq == NULL) {
            exw_sleep_ms(1000);
            continue;
        }
        if (left_behind) {
            /* Not at once: whatever kept the job from ending may still hold,
             * and a job going round the queue must not spin the worker. */
            exw_sleep_ms(500);
            if (!release_own(w))
                continue;
            left_behind = 0;
        }
        if (exw_rq_take(rq, TAKE_WAIT_S, &doc, &len, &eb) != EXW_OK) {
            EXW_LOG(EXW_LOG_WARN, "taking a job failed: %s", eb.msg);
            continue;
        }
        if (doc == NULL)
            continue;
        atomic_store(&w->lease_lost, 0);
        left_behind = exw_run_job(w, doc, len);
        free(doc);
    }
    if (left_behind)
        release_own(w);
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
    pthread_mutex_init(&w.mu, NULL);
    atomic_init(&w.lease_lost, 0);

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

    if (connect_at_start(&w)) {
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
    exw_rq_free(w.rq);
    pthread_mutex_destroy(&w.mu);
    exw_config_cleanup(&cfg);
    if (status == 0)
        EXW_LOG(EXW_LOG_INFO, "stopped");
    return status;
}
