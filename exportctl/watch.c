/* watch.c: following one job to its end (watch, enqueue --wait, cancel --wait).
 *
 * A second connection subscribes to P:events before the status is first
 * read, so no change falls between the two. Each event of the job, or a
 * second without one, reads the status again (the events carry only the
 * state and the percentage; the bar shows rows and lookups too). On a
 * terminal one line is redrawn in place; elsewhere a plain line is printed
 * for each change, at most one a second, so that a log stays readable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "ctl.h"
#include "exw/clock.h"
#include "exw/job.h"
#include "exw/keys.h"

#define POLL_MS 1000
/* The lookup rate is measured over about this window. */
#define RATE_WINDOW_MS 5000
#define SAMPLES 16

struct sample {
    int64_t at_ms;
    long long done;
};

struct watch {
    const char *id;
    int tty;
    int columns;
    struct sample samples[SAMPLES]; /* ring of (time, work done) */
    size_t nsamples, next;
    char last[512]; /* the plain line printed last */
    int64_t last_print_ms;
    int drawn; /* a bar is on the terminal's line */
};

static int terminal_columns(void)
{
    struct winsize ws;

    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

/* The work a job measures its pace by: lookups while there are lookups to do,
 * else rows. */
static void work_of(const struct ctl_hash *h, long long *done, long long *total, const char **unit)
{
    long long lt = ctl_hash_ll(h, "lookups_total", 0);

    if (lt > 0 && ctl_hash_ll(h, "lookups_done", 0) < lt) {
        *done = ctl_hash_ll(h, "lookups_done", 0);
        *total = lt;
        *unit = "lookups";
    } else {
        *done = ctl_hash_ll(h, "rows_written", 0);
        *total = ctl_hash_ll(h, "rows_total", 0);
        *unit = "rows";
    }
}

/* Units a second over the samples of the last RATE_WINDOW_MS; < 0 when not
 * yet known. */
static double rate_of(struct watch *w, int64_t now, long long done)
{
    size_t i, oldest = SAMPLES;
    struct sample *s;

    w->samples[w->next] = (struct sample){now, done};
    w->next = (w->next + 1) % SAMPLES;
    if (w->nsamples < SAMPLES)
        w->nsamples++;
    for (i = 0; i < w->nsamples; i++) {
        s = &w->samples[i];
        if (now - s->at_ms <= RATE_WINDOW_MS &&
            (oldest == SAMPLES || s->at_ms < w->samples[oldest].at_ms))
            oldest = i;
    }
    s = &w->samples[oldest];
    if (oldest == SAMPLES || now - s->at_ms < 500 || done < s->done)
        return -1;
    return (double)(done - s->done) * 1000.0 / (double)(now - s->at_ms);
}

/* The line of a job still going, without the bar: "rows 4200/10000  lookups
 * 420/1000  35.2 lookups/s  ETA 0m17s". */
static void describe(struct watch *w, const struct ctl_hash *h, char *out, size_t size,
                     int with_rate)
{
    long long done, total;
    const char *unit;
    double rate;
    size_t n;
    char eta[32];

    /* A job just started has not counted its rows yet. */
    if (ctl_hash_get(h, "rows_total") == NULL) {
        snprintf(out, size, "starting");
        return;
    }
    n = (size_t)snprintf(out, size, "rows %lld/%lld", ctl_hash_ll(h, "rows_written", 0),
                         ctl_hash_ll(h, "rows_total", 0));
    if (ctl_hash_ll(h, "lookups_total", 0) > 0 && n < size)
        n +=
            (size_t)snprintf(out + n, size - n, "  lookups %lld/%lld",
                             ctl_hash_ll(h, "lookups_done", 0), ctl_hash_ll(h, "lookups_total", 0));
    if (ctl_hash_ll(h, "lookups_failed", 0) > 0 && n < size)
        n += (size_t)snprintf(out + n, size - n, " (%lld failed)",
                              ctl_hash_ll(h, "lookups_failed", 0));
    if (!with_rate)
        return;
    work_of(h, &done, &total, &unit);
    rate = rate_of(w, exw_mono_ms(), done);
    if (rate > 0 && n < size) {
        ctl_fmt_duration((long long)((double)(total - done) / rate * 1000.0), eta, sizeof(eta));
        snprintf(out + n, size - n, "  %.1f %s/s  ETA %s", rate, unit, eta);
    } else if (rate == 0 && n < size) {
        snprintf(out + n, size - n, "  0 %s/s", unit);
    }
}

/* Redraws the bar: "exp-1 running  42% [#######.........] rows ...". */
static void draw_bar(struct watch *w, const struct ctl_hash *h, const char *state)
{
    long long pct = ctl_hash_ll(h, "progress", 0);
    char detail[256], line[1024];
    int width, filled, n, i;

    describe(w, h, detail, sizeof(detail), strcmp(state, "running") == 0);
    if (strcmp(state, "queued") == 0)
        snprintf(detail, sizeof(detail), "waiting for a worker");
    if (pct < 0)
        pct = 0;
    if (pct > 100)
        pct = 100;
    /* The bar takes what the text leaves, up to 30 columns; under 10 it is
     * left out, and the text is cut only when even that does not fit. */
    width = w->columns - 1 - (int)(strlen(w->id) + strlen(state) + strlen(detail)) - 10;
    width = width > 30 ? 30 : width;
    filled = (int)(pct * width / 100);
    n = snprintf(line, sizeof(line), "%s %s %3lld%% ", w->id, state, pct);
    if (width >= 10) {
        line[n++] = '[';
        for (i = 0; i < width; i++)
            line[n++] = i < filled ? '#' : '.';
        line[n++] = ']';
        line[n++] = ' ';
    }
    snprintf(line + n, sizeof(line) - (size_t)n, "%s", detail);
    if ((int)strlen(line) > w->columns - 1)
        line[w->columns - 1] = '\0';
    printf("\r%s\033[K", line);
    fflush(stdout);
    w->drawn = 1;
}

/* A plain line for a log, when something changed and a second has passed. */
static void print_plain(struct watch *w, const struct ctl_hash *h, const char *state, int force)
{
    char detail[256], line[512], when[64];
    int64_t now = exw_mono_ms();

    describe(w, h, detail, sizeof(detail), 0);
    snprintf(line, sizeof(line), "%s %s %lld%% %s", w->id, state, ctl_hash_ll(h, "progress", 0),
             detail);
    if (strcmp(line, w->last) == 0 || (!force && now - w->last_print_ms < 1000))
        return;
    ctl_fmt_time((long long)exw_wall_ms(), when, sizeof(when));
    printf("%s %s\n", when, line);
    fflush(stdout);
    snprintf(w->last, sizeof(w->last), "%s", line);
    w->last_print_ms = now;
}

/* The last line: how the job ended. */
static void print_end(struct watch *w, const struct ctl_hash *h, const char *state)
{
    char took[32], size[32];
    long long started = ctl_hash_ll(h, "started_at", 0);
    long long finished = ctl_hash_ll(h, "finished_at", 0);
    const char *error = ctl_hash_get(h, "error");
    const char *code = ctl_hash_get(h, "error_code");

    if (w->tty && w->drawn)
        printf("\r\033[K");
    ctl_fmt_duration(started > 0 && finished >= started ? finished - started : 0, took,
                     sizeof(took));
    if (strcmp(state, "succeeded") == 0) {
        ctl_fmt_bytes(ctl_hash_ll(h, "result_bytes", 0), size, sizeof(size));
        printf("%s succeeded in %s: %lld rows", w->id, took, ctl_hash_ll(h, "rows_written", 0));
        if (ctl_hash_ll(h, "lookups_total", 0) > 0)
            printf(", %lld lookups (%lld failed)", ctl_hash_ll(h, "lookups_done", 0),
                   ctl_hash_ll(h, "lookups_failed", 0));
        printf(", %s workbook %s\n", size,
               ctl_hash_get(h, "filename") ? ctl_hash_get(h, "filename") : "");
    } else if (strcmp(state, "failed") == 0) {
        printf("%s failed (%s): %s\n", w->id, code ? code : "no code", error ? error : "");
    } else {
        printf("%s cancelled after %s\n", w->id, took);
    }
    fflush(stdout);
}

/* Waits up to @ms for an event of the job; 0 when none came. */
static int wait_event(struct exw_redis *sub, const char *id, int64_t ms, struct exw_errbuf *eb,
                      exw_err *rc)
{
    int64_t until = exw_mono_ms() + ms;
    char needle[EXW_ID_MAX + 16];
    struct exw_reply *m;

    /* Events are written by the worker as {"id":"<id>",...}; ids need no
     * escaping. */
    snprintf(needle, sizeof(needle), "{\"id\":\"%s\"", id);
    for (;;) {
        int64_t left = until - exw_mono_ms();
        const char *text;

        if (left <= 0)
            return 0;
        *rc = exw_redis_next_message(sub, (long)left, &m, eb);
        if (*rc != EXW_OK || m == NULL)
            return 0;
        /* ["message", channel, payload] */
        text = exw_reply_count(m) == 3 ? exw_reply_string(exw_reply_at(m, 2), NULL) : NULL;
        if (text != NULL && strncmp(text, needle, strlen(needle)) == 0) {
            exw_reply_free(m);
            return 1;
        }
        exw_reply_free(m);
    }
}

int ctl_watch(struct ctl *c, const char *id, double timeout_s)
{
    struct exw_redis *sub;
    struct exw_errbuf eb;
    struct exw_cmd cmd;
    struct ctl_hash h = {NULL};
    struct watch w;
    char *channel;
    int64_t deadline = timeout_s >= 0 ? exw_mono_ms() + (int64_t)(timeout_s * 1000) : -1;
    exw_err rc = EXW_OK;
    int code;

    memset(&w, 0, sizeof(w));
    w.id = id;
    w.tty = isatty(STDOUT_FILENO);
    w.columns = terminal_columns();
    sub = ctl_connect_again(c);
    if (sub == NULL)
        return CTL_REDIS;
    channel = exw_key(c->cfg.prefix, "events", NULL);
    exw_cmd_init(&cmd);
    exw_cmd_add(&cmd, "SUBSCRIBE");
    exw_cmd_add(&cmd, channel); /* borrowed: freed once the command has gone */
    rc = exw_redis_run_simple(sub, &cmd, "SUBSCRIBE", &eb);
    free(channel);
    if (rc != EXW_OK) {
        code = ctl_redis_failed(&eb);
        goto out;
    }
    for (;;) {
        const char *state;
        int64_t wait_ms = POLL_MS;

        ctl_hash_free(&h);
        if (ctl_job_status(c->rd, id, &h, &eb) != EXW_OK) {
            code = ctl_redis_failed(&eb);
            break;
        }
        state = ctl_hash_get(&h, "state");
        if (ctl_hash_len(&h) == 0) {
            if (w.tty && w.drawn)
                printf("\r\033[K");
            fprintf(stderr, "exportctl: no job %s (never queued, or expired)\n", id);
            code = CTL_NOT_FOUND;
            break;
        }
        if (state == NULL)
            state = "unknown";
        if (ctl_state_final(state)) {
            print_end(&w, &h, state);
            code = ctl_state_exit(state);
            break;
        }
        if (w.tty)
            draw_bar(&w, &h, state);
        else
            print_plain(&w, &h, state, 0);
        if (deadline >= 0) {
            if (exw_mono_ms() >= deadline) {
                if (w.tty && w.drawn)
                    printf("\n");
                fprintf(stderr, "exportctl: gave up waiting for job %s after %g s; it is %s\n", id,
                        timeout_s, state);
                code = CTL_TIMEOUT;
                break;
            }
            if (deadline - exw_mono_ms() < wait_ms)
                wait_ms = deadline - exw_mono_ms();
        }
        (void)wait_event(sub, id, wait_ms, &eb, &rc);
        if (rc != EXW_OK) {
            if (w.tty && w.drawn)
                printf("\n");
            code = ctl_redis_failed(&eb);
            break;
        }
    }
out:
    ctl_hash_free(&h);
    exw_redis_free(sub);
    return code;
}

int ctl_cmd_watch(struct ctl *c) { return ctl_watch(c, c->args[0], c->timeout_s); }
