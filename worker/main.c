/* main.c: export-worker's start-up and shutdown.
 *
 * Order: configuration (exit 2 when bad), logging, the metrics registry,
 * the first connection to Redis (exit 2 when a Redis Cluster refuses the
 * settings; Redis away is retried later), curl's global state, the metrics
 * endpoint when asked for (exit 2 for an address that does not resolve, 1
 * when it cannot be listened on), the thread of the fleet-wide caps
 * (limiter.c, when a service has any), the lookup pool, the job threads and
 * the heartbeat (all with SIGTERM/SIGINT blocked, so only this thread sees
 * them), the services' host names into the pool's DNS cache, then the
 * dispatcher (dispatch.c) until a stop is asked for. The
 * endpoint stops first, once the running jobs have ended, so that it never
 * reports the heartbeat's own orderly end. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exw/clock.h"
#include "exw/http.h"
#include "exw/log.h"
#include "exw/queue.h"
#include "exw/version.h"
#include "run.h"

extern char **environ;

/* exw_stop_requested is defined in conn.c, with the library's pieces that
 * set it too. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the signal handler stores to an atomic_int");

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

static int stop_asked(void *ud)
{
    (void)ud;
    return exw_stop_requested != 0;
}

/* Resolves the host of @svc's URL (its batch URL when @batch) into the DNS cache
 * the pool shares (http.c says why), trying again while the name does not
 * resolve, until @until (exw_mono_ms()). Only reports a name that resolves but
 * cannot be reached: its jobs' requests retry as ever. */
#define RESOLVE_FOR_MS 30000 /* for all the services together */
static void resolve_service(const struct exw_config *cfg, const struct exw_service *svc, int batch,
                            int64_t until)
{
    int64_t began = exw_mono_ms(), pause_ms = 100;
    struct exw_http_request req = {
        .timeout_ms = svc->timeout_ms, .ca_file = cfg->tls_ca_file, .abort_fn = stop_asked};
    struct exw_errbuf eb;
    char *url;
    int resolved = 0;
    exw_err rc;

    if ((batch ? exw_http_expand_batch(svc->batch_url, NULL, 0, &url, &eb)
               : exw_http_expand(svc->url, "", 0, &url, &eb)) != EXW_OK)
        return;
    req.url = url;
    for (;;) {
        rc = exw_http_resolve(&req, &resolved, &eb);
        if (resolved || rc == EXW_ECANCELLED || exw_mono_ms() >= until)
            break;
        if (pause_ms == 100)
            EXW_LOG(EXW_LOG_WARN,
                    "service %s: its host name does not resolve yet (%s); trying again for "
                    "up to %.0f s before taking jobs",
                    svc->name, eb.msg, (double)(until - exw_mono_ms()) / 1000.0);
        for (int64_t slept = 0; slept < pause_ms && !exw_stop_requested; slept += 50)
            exw_sleep_ms(50);
        pause_ms = pause_ms < 2000 ? pause_ms * 2 : 2000;
    }
    free(url);
    if (rc == EXW_ECANCELLED)
        return;
    if (!resolved)
        EXW_LOG(EXW_LOG_WARN,
                "service %s: its host name did not resolve in %.0f s (%s); taking jobs, whose "
                "lookups will fail until it does",
                svc->name, (double)(exw_mono_ms() - began) / 1000.0, eb.msg);
    else if (rc != EXW_OK)
        EXW_LOG(EXW_LOG_WARN, "service %s cannot be reached yet (%s); its requests will retry",
                svc->name, eb.msg);
    else if (exw_mono_ms() - began >= 1000)
        EXW_LOG(EXW_LOG_INFO, "service %s: its host name took %.1f s to resolve", svc->name,
                (double)(exw_mono_ms() - began) / 1000.0);
}

/* glibc hands the free top of a heap back to the kernel once it passes
 * 128 KiB, and a job frees most of what it allocated as it ends (zlib alone
 * takes about 256 KiB for each part of a workbook it packs): each small job
 * then faulted the same pages in again, a fifth of its time. Each arena now
 * keeps up to TRIM_KEEP_BYTES, and allocations below it come from the heaps
 * rather than from mmap.
 *
 * Arenas: one for each of the worker's threads. glibc gives a thread its own
 * arena until there are 8 a core, then hands each new thread one of those in
 * turn, for good. Past that limit (a pool of 32 on 2 cores) two things went
 * wrong:
 * - the threads made for each job (its rows reader, its packer) found a
 *   different arena each time, and each kept what a large job left in it:
 *   RSS grew from one 10^6-key job to the next (57, 65, then 73 MiB);
 * - lookup threads shared arenas, and the allocations curl makes for each
 *   request that the per-thread caches do not serve waited for each other's
 *   locks. With the two arenas this once kept, that was 1.3 futex calls a
 *   lookup and a fifth of the worker's CPU time at 0 ms.
 * With an arena each, a job's threads take the arenas of the last job's
 * when they start (glibc keeps those of ended threads for the next), so
 * RSS stays flat from job to job, and a lookup thread's locks are its own.
 * The count: the pool's threads; for each job slot its thread, its rows
 * reader and its packer; and ARENAS_OTHER for main, the limiter, the metrics
 * listener, the heartbeat and up to four of curl's name resolutions (each a
 * thread). The settings' bounds keep it to 1,224 at most. */
#define TRIM_KEEP_BYTES (1 << 20)
#define ARENAS_OTHER 8
static void tune_malloc(const struct exw_config *cfg)
{
    mallopt(M_MMAP_THRESHOLD, TRIM_KEEP_BYTES);
    mallopt(M_TRIM_THRESHOLD, TRIM_KEEP_BYTES);
    mallopt(M_ARENA_MAX, (int)(cfg->pool_size + 3 * cfg->concurrency + ARENAS_OTHER));
}

/* The registry, labelled with the configured services in their order. */
static struct exw_metrics *make_metrics(const struct exw_config *cfg)
{
    const char *names[EXW_MAX_SERVICES];
    struct exw_metrics_info info = {.version = EXW_VERSION,
                                    .worker = cfg->worker_id,
                                    .services = names,
                                    .nservices = cfg->nservices};
    size_t i;

    for (i = 0; i < cfg->nservices; i++)
        names[i] = cfg->services[i].name;
    return exw_metrics_new(&info);
}

int main(int argc, char **argv)
{
    struct exw_config cfg;
    struct worker w;
    struct heartbeat *hb = NULL;
    struct metrics_http *mh = NULL;
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
    tune_malloc(&cfg);

    memset(&w, 0, sizeof(w));
    w.cfg = &cfg;
    w.pid = (long)getpid();
    w.started_at = exw_wall_ms();
    if (gethostname(w.host, sizeof(w.host) - 1) != 0)
        snprintf(w.host, sizeof(w.host), "unknown");
    pthread_mutex_init(&w.mu.m, NULL);
    exw_lease_init(&w.lease, cfg.heartbeat_ttl_ms);
    w.metrics = make_metrics(&cfg);
    /* Redis gets one heartbeat TTL from now before /healthz says it is away. */
    atomic_init(&w.redis_ok_at, exw_mono_ms());
    atomic_init(&w.hb_tick_at, exw_mono_ms());
    atomic_init(&w.hb_state, HB_NOT_STARTED);
    exw_conn_init(&w.main, &cfg, w.metrics, "main", 5000);

    described = exw_config_describe(&cfg);
    EXW_LOG(EXW_LOG_INFO, "starting export-worker %s", described);
    free(described);

    /* The first connection, before any thread: a Redis Cluster that cannot
     * take the settings stops the worker here, with status 2. Redis away is
     * no reason to stop: the threads keep trying. */
    if (exw_conn_get(&w.main) == NULL && w.main.last_rc == EXW_ECONFIG) {
        status = 2;
        goto out;
    }

    if (exw_http_global_init() != EXW_OK) {
        EXW_LOG(EXW_LOG_ERROR, "curl_global_init failed");
        goto out;
    }
    stop_signals(SIG_BLOCK);
    if (cfg.metrics_addr != NULL) {
        exw_err rc = exw_metrics_http_start(&w, &mh, &eb);

        if (rc != EXW_OK) {
            stop_signals(SIG_UNBLOCK);
            EXW_LOG(EXW_LOG_ERROR, "%s", eb.msg);
            if (rc == EXW_ECONFIG)
                status = 2;
            goto out_curl;
        }
    }
    /* The fleet-wide caps outlive the pool, whose requests wait for them. */
    if (exw_limiter_start(&w, &w.limiter, &eb) != EXW_OK) {
        stop_signals(SIG_UNBLOCK);
        EXW_LOG(EXW_LOG_ERROR, "%s", eb.msg);
        goto out_http;
    }
    /* The registry is the pool's user data: each lookup thread counts in it. */
    if (exw_pool_new((unsigned)cfg.pool_size, exw_lookup_thread_init, exw_lookup_thread_fini,
                     w.metrics, &w.pool, &eb) != EXW_OK) {
        stop_signals(SIG_UNBLOCK);
        EXW_LOG(EXW_LOG_ERROR, "cannot start the lookup pool: %s", eb.msg);
        goto out_limiter;
    }
    if (exw_dispatch_start(&w, &eb) != EXW_OK) {
        stop_signals(SIG_UNBLOCK);
        EXW_LOG(EXW_LOG_ERROR, "cannot start the job threads: %s", eb.msg);
        goto out_pool;
    }
    if (exw_heartbeat_start(&w, &hb, &eb) != EXW_OK) {
        stop_signals(SIG_UNBLOCK);
        EXW_LOG(EXW_LOG_ERROR, "%s", eb.msg);
        exw_stop_requested = 1;
        exw_dispatch(&w); /* stops the job threads at once */
        goto out_pool;
    }
    stop_signals(SIG_UNBLOCK);

    {
        int swept = run_sweep_tmpdir(cfg.tmpdir);

        if (swept > 0)
            EXW_LOG(EXW_LOG_WARN, "removed %d workbook(s) that dead workers left in %s", swept,
                    cfg.tmpdir);
    }
    /* The first job's requests find every service's name resolved. */
    {
        int64_t until = exw_mono_ms() + RESOLVE_FOR_MS;

        for (size_t i = 0; i < cfg.nservices && !exw_stop_requested; i++) {
            resolve_service(&cfg, &cfg.services[i], 0, until);
            if (cfg.services[i].batch_url != NULL)
                resolve_service(&cfg, &cfg.services[i], 1, until);
        }
    }
    if (exw_dispatch_wait_lease(&w)) {
        struct exw_redis *rd = exw_conn_get(&w.main);

        if (rd != NULL)
            warn_eviction(rd);
        EXW_LOG(EXW_LOG_INFO,
                "ready: taking jobs from %s:queue, %ld at a time, with %ld lookup threads",
                cfg.prefix, cfg.concurrency, cfg.pool_size);
    }
    exw_dispatch(&w); /* also when stopped already: it stops the job threads */
    EXW_LOG(EXW_LOG_INFO, "stopping");
    status = atomic_load(&exw_config_refused) ? 2 : 0;
    exw_metrics_http_stop(mh);
    mh = NULL;
    exw_heartbeat_stop(hb);
out_pool:
    exw_pool_free(w.pool);
out_limiter:
    exw_limiter_stop(w.limiter); /* gives its permits back */
out_http:
    exw_metrics_http_stop(mh);
out_curl:
    exw_http_global_cleanup();
out:
    exw_conn_cleanup(&w.main);
    exw_metrics_free(w.metrics);
    pthread_mutex_destroy(&w.mu.m);
    exw_config_cleanup(&cfg);
    if (status == 0)
        EXW_LOG(EXW_LOG_INFO, "stopped");
    return status;
}
