/* fleet.c: the commands on the whole fleet (queue, workers, dead, stats) and
 * the snapshot of it that they and top read. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "exw/admin.h"
#include "exw/clock.h"
#include "exw/keys.h"

/* Counters of P:stats in the order they are shown; others follow. */
static const char *const stat_names[] = {"jobs_succeeded", "jobs_failed", "jobs_cancelled",
                                         "jobs_dead",      "lookups",     "lookup_requests",
                                         "lookup_errors",  "bytes_out"};

#define NSTATS (sizeof(stat_names) / sizeof(*stat_names))

static const char *or_empty(const char *s) { return s ? s : ""; }
static const char *or_dash(const char *s) { return s && *s ? s : "-"; }

/* ---- The snapshot ---- */

static exw_err run_int(struct exw_redis *rd, const char *verb, const char *key, long long *out,
                       struct exw_errbuf *eb)
{
    struct exw_cmd c;

    exw_cmd_init(&c);
    exw_cmd_add(&c, verb);
    exw_cmd_add(&c, key);
    return exw_redis_run_int(rd, &c, key, out, eb);
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct fleet_worker *)a)->id, ((const struct fleet_worker *)b)->id);
}

/* The running jobs of worker @fw, from its heartbeat's jobs (job alone from
 * a worker older than that field). */
static exw_err read_jobs(struct exw_redis *rd, struct fleet_worker *fw, struct exw_errbuf *eb)
{
    const char *list = ctl_hash_get(&fw->hb, "jobs");
    char *copy, *tok, *save = NULL;
    exw_err rc = EXW_OK;

    if (list == NULL)
        list = ctl_hash_get(&fw->hb, "job");
    if (list == NULL || *list == '\0')
        return EXW_OK;
    copy = exw_xstrdup(list);
    for (tok = strtok_r(copy, " ", &save); tok != NULL && rc == EXW_OK;
         tok = strtok_r(NULL, " ", &save)) {
        struct fleet_job j;

        rc = ctl_job_status(rd, tok, &j.status, eb);
        /* The heartbeat may name, for up to one renewal, a job that ended. */
        if (rc != EXW_OK || ctl_state_final(ctl_hash_get(&j.status, "state"))) {
            ctl_hash_free(&j.status);
            continue;
        }
        j.id = exw_xstrdup(tok);
        fw->jobs = exw_xrealloc(fw->jobs, (fw->njobs + 1) * sizeof(*fw->jobs));
        fw->jobs[fw->njobs++] = j;
    }
    free(copy);
    return rc;
}

static exw_err read_workers(struct exw_redis *rd, struct fleet *f, struct exw_errbuf *eb)
{
    const char *prefix = exw_redis_prefix(rd);
    char *set = exw_key(prefix, "workers", NULL);
    struct exw_reply *r = NULL;
    struct exw_cmd c;
    size_t i;
    exw_err rc;

    exw_cmd_init(&c);
    exw_cmd_add(&c, "SMEMBERS");
    exw_cmd_add(&c, set);
    rc = exw_redis_run(rd, &c, set, &r, eb);
    free(set);
    if (rc != EXW_OK)
        return rc;
    f->nworkers = exw_reply_count(r);
    f->workers = exw_xcalloc(f->nworkers ? f->nworkers : 1, sizeof(*f->workers));
    for (i = 0; i < f->nworkers; i++) {
        const char *id = exw_reply_string(exw_reply_at(r, i), NULL);

        f->workers[i].id = exw_xstrdup(id ? id : "");
    }
    exw_reply_free(r);
    qsort(f->workers, f->nworkers, sizeof(*f->workers), by_id);
    for (i = 0; i < f->nworkers && rc == EXW_OK; i++) {
        struct fleet_worker *fw = &f->workers[i];
        char *hb = exw_key(prefix, "worker", fw->id);
        char *taken = exw_key(prefix, "processing", fw->id);

        rc = ctl_hgetall(rd, hb, &fw->hb, eb);
        fw->alive = ctl_hash_len(&fw->hb) > 0;
        if (rc == EXW_OK)
            rc = run_int(rd, "LLEN", taken, &fw->taken, eb);
        if (rc == EXW_OK && fw->alive)
            rc = read_jobs(rd, fw, eb);
        free(hb);
        free(taken);
    }
    return rc;
}

static exw_err read_dead_newest(struct exw_redis *rd, struct fleet *f, struct exw_errbuf *eb)
{
    char *dead = exw_key(exw_redis_prefix(rd), "dead", NULL);
    struct exw_reply *r = NULL;
    struct exw_cmd c;
    size_t i;
    exw_err rc;

    exw_cmd_init(&c);
    exw_cmd_add(&c, "LRANGE");
    exw_cmd_add(&c, dead);
    exw_cmd_add(&c, "0");
    exw_cmd_addf(&c, "%d", FLEET_DEAD_SHOWN - 1);
    rc = exw_redis_run(rd, &c, dead, &r, eb);
    free(dead);
    f->ndead_newest = exw_reply_count(r);
    f->dead_newest = exw_xcalloc(f->ndead_newest + 1, sizeof(*f->dead_newest));
    f->dead_len = exw_xcalloc(f->ndead_newest + 1, sizeof(*f->dead_len));
    for (i = 0; i < f->ndead_newest; i++)
        f->dead_newest[i] = exw_reply_steal_at(r, i, &f->dead_len[i]);
    exw_reply_free(r);
    return rc;
}

exw_err fleet_read(struct exw_redis *rd, struct fleet *f, struct exw_errbuf *eb)
{
    const char *prefix = exw_redis_prefix(rd);
    char *queue = exw_key(prefix, "queue", NULL);
    char *dead = exw_key(prefix, "dead", NULL);
    char *stats = exw_key(prefix, "stats", NULL);
    exw_err rc;

    memset(f, 0, sizeof(*f));
    f->now_ms = (long long)exw_wall_ms();
    rc = run_int(rd, "LLEN", queue, &f->queued, eb);
    if (rc == EXW_OK)
        rc = run_int(rd, "LLEN", dead, &f->dead, eb);
    if (rc == EXW_OK)
        rc = read_workers(rd, f, eb);
    if (rc == EXW_OK)
        rc = ctl_hgetall(rd, stats, &f->stats, eb);
    if (rc == EXW_OK)
        rc = read_dead_newest(rd, f, eb);
    free(queue);
    free(dead);
    free(stats);
    return rc;
}

void fleet_free(struct fleet *f)
{
    size_t i, j;

    for (i = 0; i < f->nworkers; i++) {
        for (j = 0; j < f->workers[i].njobs; j++) {
            free(f->workers[i].jobs[j].id);
            ctl_hash_free(&f->workers[i].jobs[j].status);
        }
        free(f->workers[i].jobs);
        free(f->workers[i].id);
        ctl_hash_free(&f->workers[i].hb);
    }
    free(f->workers);
    for (i = 0; i < f->ndead_newest; i++)
        free(f->dead_newest[i]);
    free(f->dead_newest);
    free(f->dead_len);
    ctl_hash_free(&f->stats);
    memset(f, 0, sizeof(*f));
}

static int read_or_fail(struct ctl *c, struct fleet *f)
{
    struct exw_errbuf eb;

    if (fleet_read(c->rd, f, &eb) != EXW_OK) {
        fleet_free(f);
        return ctl_redis_failed(&eb);
    }
    return CTL_OK;
}

/* ---- JSON ---- */

static void print_json(cJSON *o)
{
    char *text = cJSON_PrintUnformatted(o);

    printf("%s\n", text);
    free(text);
    cJSON_Delete(o);
}

static cJSON *job_json(const struct fleet_job *j)
{
    cJSON *o = cJSON_CreateObject();
    const char *state = ctl_hash_get(&j->status, "state");

    cJSON_AddStringToObject(o, "id", j->id);
    if (state)
        cJSON_AddStringToObject(o, "state", state);
    else
        cJSON_AddNullToObject(o, "state");
    cJSON_AddNumberToObject(o, "progress", (double)ctl_hash_ll(&j->status, "progress", 0));
    cJSON_AddNumberToObject(o, "rows_written", (double)ctl_hash_ll(&j->status, "rows_written", 0));
    cJSON_AddNumberToObject(o, "rows_total", (double)ctl_hash_ll(&j->status, "rows_total", 0));
    cJSON_AddNumberToObject(o, "lookups_done", (double)ctl_hash_ll(&j->status, "lookups_done", 0));
    cJSON_AddNumberToObject(o, "lookups_total",
                            (double)ctl_hash_ll(&j->status, "lookups_total", 0));
    return o;
}

static cJSON *jobs_json(const struct fleet_worker *fw)
{
    cJSON *a = cJSON_CreateArray();
    size_t j;

    for (j = 0; j < fw->njobs; j++)
        cJSON_AddItemToArray(a, job_json(&fw->jobs[j]));
    return a;
}

/* ---- Text ---- */

/* "exp-1 running 42% (rows 4200/10000, lookups 420/1000)" */
static void job_line(const struct fleet_job *j, char *out, size_t size)
{
    const struct ctl_hash *h = &j->status;
    const char *state = ctl_hash_get(h, "state");
    size_t n;

    n = (size_t)snprintf(out, size, "%s %s %lld%% (rows %lld/%lld", j->id, state ? state : "?",
                         ctl_hash_ll(h, "progress", 0), ctl_hash_ll(h, "rows_written", 0),
                         ctl_hash_ll(h, "rows_total", 0));
    if (ctl_hash_ll(h, "lookups_total", 0) > 0 && n < size)
        n +=
            (size_t)snprintf(out + n, size - n, ", lookups %lld/%lld",
                             ctl_hash_ll(h, "lookups_done", 0), ctl_hash_ll(h, "lookups_total", 0));
    if (n < size)
        snprintf(out + n, size - n, ")");
}

int ctl_cmd_queue(struct ctl *c)
{
    struct fleet f;
    size_t i, j, running = 0, busy = 0;
    char line[512];
    int rc = read_or_fail(c, &f);

    if (rc != CTL_OK)
        return rc;
    for (i = 0; i < f.nworkers; i++) {
        running += f.workers[i].njobs;
        busy += f.workers[i].njobs > 0;
    }
    if (c->json) {
        cJSON *o = cJSON_CreateObject(), *a = cJSON_CreateArray();

        cJSON_AddNumberToObject(o, "queued", (double)f.queued);
        cJSON_AddNumberToObject(o, "running", (double)running);
        for (i = 0; i < f.nworkers; i++) {
            cJSON *w;

            if (!f.workers[i].alive)
                continue;
            w = cJSON_CreateObject();
            cJSON_AddStringToObject(w, "worker", f.workers[i].id);
            cJSON_AddItemToObject(w, "jobs", jobs_json(&f.workers[i]));
            cJSON_AddItemToArray(a, w);
        }
        cJSON_AddItemToObject(o, "workers", a);
        cJSON_AddNumberToObject(o, "dead", (double)f.dead);
        print_json(o);
    } else {
        printf("%-9s %lld\n", "queued", f.queued);
        printf("%-9s %zu on %zu worker%s\n", "running", running, busy, busy == 1 ? "" : "s");
        for (i = 0; i < f.nworkers; i++) {
            for (j = 0; j < f.workers[i].njobs; j++) {
                job_line(&f.workers[i].jobs[j], line, sizeof(line));
                printf("  %-24s %s\n", j == 0 ? f.workers[i].id : "", line);
            }
        }
        printf("%-9s %lld\n", "dead", f.dead);
    }
    fleet_free(&f);
    return CTL_OK;
}

int ctl_cmd_workers(struct ctl *c)
{
    struct fleet f;
    size_t i, j, live = 0;
    char age[32], line[512];
    int rc = read_or_fail(c, &f);

    if (rc != CTL_OK)
        return rc;
    if (c->json) {
        cJSON *o = cJSON_CreateObject(), *a = cJSON_CreateArray(), *gone = cJSON_CreateArray();

        for (i = 0; i < f.nworkers; i++) {
            const struct fleet_worker *fw = &f.workers[i];
            cJSON *w;

            if (!fw->alive) {
                cJSON_AddItemToArray(gone, cJSON_CreateString(fw->id));
                continue;
            }
            w = cJSON_CreateObject();
            cJSON_AddStringToObject(w, "id", fw->id);
            cJSON_AddStringToObject(w, "host", or_empty(ctl_hash_get(&fw->hb, "host")));
            cJSON_AddNumberToObject(w, "pid", (double)ctl_hash_ll(&fw->hb, "pid", 0));
            cJSON_AddNumberToObject(w, "started_at", (double)ctl_hash_ll(&fw->hb, "started_at", 0));
            cJSON_AddNumberToObject(w, "jobs_done", (double)ctl_hash_ll(&fw->hb, "jobs_done", 0));
            cJSON_AddItemToObject(w, "jobs", jobs_json(fw));
            cJSON_AddItemToArray(a, w);
        }
        cJSON_AddItemToObject(o, "workers", a);
        cJSON_AddItemToObject(o, "expired", gone);
        print_json(o);
        fleet_free(&f);
        return CTL_OK;
    }
    for (i = 0; i < f.nworkers; i++)
        live += f.workers[i].alive;
    if (live == 0)
        printf("no live worker\n");
    else
        printf("%-28s %-16s %7s %7s %6s  %s\n", "WORKER", "HOST", "PID", "UP", "DONE", "RUNNING");
    for (i = 0; i < f.nworkers; i++) {
        const struct fleet_worker *fw = &f.workers[i];

        if (!fw->alive)
            continue;
        ctl_fmt_duration(f.now_ms - ctl_hash_ll(&fw->hb, "started_at", f.now_ms), age, sizeof(age));
        if (fw->njobs == 0)
            snprintf(line, sizeof(line), "-");
        else
            job_line(&fw->jobs[0], line, sizeof(line));
        printf("%-28s %-16s %7lld %7s %6lld  %s\n", fw->id, or_dash(ctl_hash_get(&fw->hb, "host")),
               ctl_hash_ll(&fw->hb, "pid", 0), age, ctl_hash_ll(&fw->hb, "jobs_done", 0), line);
        for (j = 1; j < fw->njobs; j++) {
            job_line(&fw->jobs[j], line, sizeof(line));
            printf("%-71s %s\n", "", line);
        }
    }
    if (live < f.nworkers) {
        printf("\nregistered, heartbeat expired (a live worker puts their jobs back):\n");
        for (i = 0; i < f.nworkers; i++) {
            if (!f.workers[i].alive)
                printf("  %s (%lld job%s taken)\n", f.workers[i].id, f.workers[i].taken,
                       f.workers[i].taken == 1 ? "" : "s");
        }
    }
    fleet_free(&f);
    return CTL_OK;
}

/* ---- dead ---- */

/* One dead letter as a line: "  1  2026-12-02 02:30:01 UTC  exp-9  error". */
static void print_dead_line(long n, const char *entry, size_t len)
{
    struct exw_dead d;
    struct exw_errbuf eb;
    char when[64];

    if (exw_admin_dead_parse(entry, len, &d, &eb) != EXW_OK) {
        printf("%4ld  %-23s  %-24s  (an entry that is not readable: %s)\n", n, "-", "-", eb.msg);
    } else {
        ctl_fmt_time(d.at_ms, when, sizeof(when));
        printf("%4ld  %-23s  %-24s  %s%s\n", n, when, d.id ? d.id : "-", d.error,
               d.truncated ? " [document cut at 1 MiB]" : "");
    }
    exw_admin_dead_cleanup(&d);
}

static cJSON *dead_json(long n, const char *entry, size_t len)
{
    cJSON *o = cJSON_CreateObject();
    struct exw_dead d;
    struct exw_errbuf eb;

    cJSON_AddNumberToObject(o, "n", (double)n);
    if (exw_admin_dead_parse(entry, len, &d, &eb) != EXW_OK) {
        cJSON_AddStringToObject(o, "unreadable", eb.msg);
    } else {
        cJSON_AddNumberToObject(o, "failed_at", (double)d.at_ms);
        if (d.id)
            cJSON_AddStringToObject(o, "id", d.id);
        else
            cJSON_AddNullToObject(o, "id");
        cJSON_AddStringToObject(o, "error", d.error);
        cJSON_AddBoolToObject(o, "truncated", d.truncated);
        cJSON_AddNumberToObject(o, "job_bytes", (double)d.job_bytes);
        cJSON_AddStringToObject(o, "job", d.job);
    }
    exw_admin_dead_cleanup(&d);
    return o;
}

static int dead_list(struct ctl *c, const char *key)
{
    cJSON *all = c->json ? cJSON_CreateArray() : NULL;
    struct exw_errbuf eb;
    long n = 1, batch = 100;
    int shown = 0;

    for (;;) {
        struct exw_reply *r = NULL;
        struct exw_cmd cmd;
        size_t i, len;

        exw_cmd_init(&cmd);
        exw_cmd_add(&cmd, "LRANGE");
        exw_cmd_add(&cmd, key);
        exw_cmd_addf(&cmd, "%ld", n - 1);
        exw_cmd_addf(&cmd, "%ld", n - 1 + batch - 1);
        if (exw_redis_run(c->rd, &cmd, key, &r, &eb) != EXW_OK) {
            cJSON_Delete(all);
            return ctl_redis_failed(&eb);
        }
        if (exw_reply_count(r) == 0) {
            exw_reply_free(r);
            break;
        }
        if (!c->json && !shown++)
            printf("%4s  %-23s  %-24s  %s\n", "#", "FAILED AT", "ID", "ERROR");
        for (i = 0; i < exw_reply_count(r); i++, n++) {
            const char *entry = exw_reply_string(exw_reply_at(r, i), &len);

            if (c->json)
                cJSON_AddItemToArray(all, dead_json(n, entry ? entry : "", len));
            else
                print_dead_line(n, entry ? entry : "", len);
        }
        exw_reply_free(r);
    }
    if (c->json)
        print_json(all);
    else if (!shown)
        printf("no dead letters\n");
    return CTL_OK;
}

static int dead_requeue(struct ctl *c, const char *key)
{
    struct exw_reply *r = NULL;
    struct exw_errbuf eb;
    struct exw_cmd cmd;
    struct exw_dead d;
    const char *entry;
    size_t len;
    int done = 0, rc = CTL_OK;
    exw_err e;

    exw_cmd_init(&cmd);
    exw_cmd_add(&cmd, "LINDEX");
    exw_cmd_add(&cmd, key);
    exw_cmd_addf(&cmd, "%ld", c->requeue - 1);
    if (exw_redis_run(c->rd, &cmd, key, &r, &eb) != EXW_OK)
        return ctl_redis_failed(&eb);
    entry = exw_reply_string(r, &len);
    if (entry == NULL) {
        fprintf(stderr, "exportctl dead: there is no entry %ld (exportctl dead lists them)\n",
                c->requeue);
        exw_reply_free(r);
        return CTL_NOT_FOUND;
    }
    e = exw_admin_revive(c->rd, entry, len, (long long)exw_wall_ms(), &done, &eb);
    if (e == EXW_EREDIS || e == EXW_EAGAIN || e == EXW_EREPLY || e == EXW_ENOMEM) {
        rc = ctl_redis_failed(&eb);
    } else if (e != EXW_OK) {
        fprintf(stderr, "exportctl dead: entry %ld cannot be requeued: %s\n", c->requeue, eb.msg);
        rc = CTL_USAGE;
    } else if (!done) {
        fprintf(stderr, "exportctl dead: entry %ld was removed meanwhile; list them again\n",
                c->requeue);
        rc = CTL_NOT_FOUND;
    } else if (exw_admin_dead_parse(entry, len, &d, &eb) == EXW_OK && d.id != NULL) {
        printf("requeued entry %ld: job %s is queued again, with no attempts\n", c->requeue, d.id);
        exw_admin_dead_cleanup(&d);
    } else {
        printf("requeued entry %ld (a document without a usable id: a worker will put it "
               "back here)\n",
               c->requeue);
        exw_admin_dead_cleanup(&d);
    }
    exw_reply_free(r);
    return rc;
}

static int dead_purge(struct ctl *c, const char *key)
{
    static const char *const steps[] = {"MULTI", "LLEN", "DEL", "EXEC"};
    struct exw_reply *r = NULL;
    struct exw_errbuf eb;
    size_t i;

    for (i = 0; i < 4; i++) {
        struct exw_cmd cmd;

        exw_cmd_init(&cmd);
        exw_cmd_add(&cmd, steps[i]);
        if (i == 1 || i == 2)
            exw_cmd_add(&cmd, key);
        exw_reply_free(r);
        if (exw_redis_run(c->rd, &cmd, steps[i], &r, &eb) != EXW_OK)
            return ctl_redis_failed(&eb);
    }
    printf("removed %lld dead letter(s)\n",
           exw_reply_count(r) == 2 ? exw_reply_integer(exw_reply_at(r, 0)) : 0);
    exw_reply_free(r);
    return CTL_OK;
}

int ctl_cmd_dead(struct ctl *c)
{
    char *key = exw_key(c->cfg.prefix, "dead", NULL);
    int rc = c->requeue ? dead_requeue(c, key) : c->purge ? dead_purge(c, key) : dead_list(c, key);

    free(key);
    return rc;
}

/* ---- stats ---- */

int ctl_cmd_stats(struct ctl *c)
{
    char *key = exw_key(c->cfg.prefix, "stats", NULL);
    struct ctl_hash h;
    struct exw_errbuf eb;
    size_t i, j, n;
    cJSON *o = NULL;

    if (ctl_hgetall(c->rd, key, &h, &eb) != EXW_OK) {
        free(key);
        return ctl_redis_failed(&eb);
    }
    free(key);
    n = ctl_hash_len(&h);
    if (c->json) {
        o = cJSON_CreateObject();
        for (i = 0; i < NSTATS; i++)
            cJSON_AddNumberToObject(o, stat_names[i], (double)ctl_hash_ll(&h, stat_names[i], 0));
    }
    for (i = 0; i < NSTATS && !c->json; i++)
        printf("%-16s %lld\n", stat_names[i], ctl_hash_ll(&h, stat_names[i], 0));
    for (i = 0; i < n; i++) {
        const char *name = ctl_hash_name(&h, i);

        for (j = 0; j < NSTATS && strcmp(stat_names[j], name) != 0; j++)
            ;
        if (j < NSTATS)
            continue;
        if (c->json)
            cJSON_AddNumberToObject(o, name, (double)ctl_hash_ll(&h, name, 0));
        else
            printf("%-16s %s\n", name, ctl_hash_value(&h, i));
    }
    if (c->json)
        print_json(o);
    ctl_hash_free(&h);
    return CTL_OK;
}
