/* values.c: hashes as HGETALL returns them, job states, and the way times,
 * durations and sizes are written for a person. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "exw/keys.h"

exw_err ctl_hgetall(struct exw_redis *rd, const char *key, struct ctl_hash *h,
                    struct exw_errbuf *eb)
{
    struct exw_cmd c;

    exw_cmd_init(&c);
    exw_cmd_add(&c, "HGETALL");
    exw_cmd_add(&c, key);
    h->r = NULL;
    return exw_redis_run(rd, &c, key, &h->r, eb);
}

void ctl_hash_free(struct ctl_hash *h)
{
    exw_reply_free(h->r);
    h->r = NULL;
}

size_t ctl_hash_len(const struct ctl_hash *h) { return exw_reply_count(h->r) / 2; }

const char *ctl_hash_name(const struct ctl_hash *h, size_t i)
{
    const char *s = exw_reply_string(exw_reply_at(h->r, 2 * i), NULL);

    return s ? s : "";
}

const char *ctl_hash_value(const struct ctl_hash *h, size_t i)
{
    const char *s = exw_reply_string(exw_reply_at(h->r, 2 * i + 1), NULL);

    return s ? s : "";
}

const char *ctl_hash_get(const struct ctl_hash *h, const char *field)
{
    size_t i, n = ctl_hash_len(h);

    for (i = 0; i < n; i++) {
        if (strcmp(ctl_hash_name(h, i), field) == 0)
            return ctl_hash_value(h, i);
    }
    return NULL;
}

long long ctl_hash_ll(const struct ctl_hash *h, const char *field, long long def)
{
    const char *s = ctl_hash_get(h, field);
    char *end;
    long long v;

    if (s == NULL || *s == '\0')
        return def;
    v = strtoll(s, &end, 10);
    return *end == '\0' ? v : def;
}

exw_err ctl_job_status(struct exw_redis *rd, const char *id, struct ctl_hash *h,
                       struct exw_errbuf *eb)
{
    char *key = exw_key(exw_redis_prefix(rd), "job", id);
    exw_err rc = ctl_hgetall(rd, key, h, eb);

    free(key);
    return rc;
}

int ctl_field_is_int(const char *field)
{
    static const char *const ints[] = {
        "progress",       "rows_total",   "rows_written", "lookups_total", "lookups_done",
        "lookups_failed", "attempts",     "queued_at",    "started_at",    "finished_at",
        "updated_at",     "result_bytes", "cancel",       "pid",           "jobs_done"};
    size_t i;

    for (i = 0; i < sizeof(ints) / sizeof(*ints); i++) {
        if (strcmp(field, ints[i]) == 0)
            return 1;
    }
    return 0;
}

int ctl_state_final(const char *state)
{
    return state != NULL && (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
                             strcmp(state, "cancelled") == 0);
}

int ctl_state_exit(const char *state)
{
    if (state == NULL)
        return CTL_NOT_FOUND;
    if (strcmp(state, "failed") == 0)
        return CTL_FAILED;
    if (strcmp(state, "cancelled") == 0)
        return CTL_CANCELLED;
    return CTL_OK;
}

void ctl_fmt_time(long long ms, char *out, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0 || gmtime_r(&t, &tm) == NULL) {
        snprintf(out, size, "-");
        return;
    }
    strftime(out, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

void ctl_fmt_duration(long long ms, char *out, size_t size)
{
    long long s;

    if (ms < 0)
        ms = 0;
    s = ms / 1000;
    if (ms < 1000)
        snprintf(out, size, "%lld ms", ms);
    else if (ms < 60000)
        snprintf(out, size, "%.1f s", (double)ms / 1000);
    else if (s < 3600)
        snprintf(out, size, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, size, "%lldh%02lldm", s / 3600, s / 60 % 60);
    else
        snprintf(out, size, "%lldd%02lldh", s / 86400, s / 3600 % 24);
}

void ctl_fmt_bytes(long long bytes, char *out, size_t size)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = -1;

    if (bytes < 1024) {
        snprintf(out, size, "%lld B", bytes);
        return;
    }
    while (v >= 1024 && u < 3) {
        v /= 1024;
        u++;
    }
    snprintf(out, size, "%.1f %s", v, units[u]);
}
