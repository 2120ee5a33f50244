/* top.c: exportctl top, a full-screen view of the fleet refreshed every
 * second (curses): the queue, the counters, the workers with their jobs and
 * progress, the newest dead letters.
 *
 * SIGINT and SIGTERM are caught before curses starts, so that curses leaves
 * them alone and the loop ends through endwin(), which puts the terminal
 * back as it was. When Redis fails, the view says so and tries again each
 * second on a new connection. */
#include <curses.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "exw/admin.h"
#include "exw/buf.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* addnstr() of printf-formatted text, cut at the right edge. */
static void put(int y, int x, const char *fmt, ...) EXW_PRINTF(3, 4);
static void put(int y, int x, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    if (y >= LINES || x >= COLS)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    mvaddnstr(y, x, line, COLS - x);
}

static const char *or_dash(const char *s) { return s && *s ? s : "-"; }

static void draw_bar(int y, int x, int width, long long pct)
{
    int filled, i;

    if (pct < 0)
        pct = 0;
    if (pct > 100)
        pct = 100;
    filled = (int)(pct * width / 100);
    if (y >= LINES || x + width + 2 >= COLS)
        return;
    mvaddch(y, x, '[');
    for (i = 0; i < width; i++)
        addch(i < filled ? '#' : '.');
    addch(']');
}

static int draw_header(const struct ctl *c, const struct fleet *f, int y)
{
    struct exw_buf where;
    char now[64], bytes[32], expired[32];
    size_t i, live = 0, running = 0;

    exw_buf_init(&where, 512);
    exw_redis_addr_describe(&c->cfg.redis, &where);
    ctl_fmt_time(f->now_ms, now, sizeof(now));
    attron(A_BOLD);
    put(y, 0, "export-worker fleet  prefix %s  at %s", c->cfg.prefix, where.data ? where.data : "");
    attroff(A_BOLD);
    if ((int)strlen(now) < COLS)
        put(y, COLS - (int)strlen(now), "%s", now);
    exw_buf_cleanup(&where);
    for (i = 0; i < f->nworkers; i++) {
        live += f->workers[i].alive;
        running += f->workers[i].njobs;
    }
    y += 2;
    expired[0] = '\0';
    if (f->nworkers > live)
        snprintf(expired, sizeof(expired), ", %zu expired", f->nworkers - live);
    put(y++, 0, "queued %-8lld running %-6zu workers %zu live%s   dead %lld", f->queued, running,
        live, expired, f->dead);
    ctl_fmt_bytes(ctl_hash_ll(&f->stats, "bytes_out", 0), bytes, sizeof(bytes));
    put(y++, 0,
        "jobs: %lld succeeded, %lld failed, %lld cancelled, %lld dead   lookups %lld "
        "(requests %lld, errors %lld)   stored %s",
        ctl_hash_ll(&f->stats, "jobs_succeeded", 0), ctl_hash_ll(&f->stats, "jobs_failed", 0),
        ctl_hash_ll(&f->stats, "jobs_cancelled", 0), ctl_hash_ll(&f->stats, "jobs_dead", 0),
        ctl_hash_ll(&f->stats, "lookups", 0), ctl_hash_ll(&f->stats, "lookup_requests", 0),
        ctl_hash_ll(&f->stats, "lookup_errors", 0), bytes);
    return y + 1;
}

static int draw_workers(const struct fleet *f, int y)
{
    size_t i, j;
    int wcol = 6, job_x, bar_x;
    char up[32];

    /* The worker column fits the longest id, within reason. */
    for (i = 0; i < f->nworkers; i++) {
        int n = (int)strlen(f->workers[i].id);

        wcol = n > wcol ? n : wcol;
    }
    wcol = wcol > 48 ? 48 : wcol;
    job_x = wcol + 32;
    bar_x = job_x + 25;
    attron(A_BOLD);
    put(y++, 0, "%-*s %-14s %7s %6s  %-24s %s", wcol, "WORKER", "HOST", "UP", "DONE", "JOB",
        "PROGRESS");
    attroff(A_BOLD);
    for (i = 0; i < f->nworkers; i++) {
        const struct fleet_worker *fw = &f->workers[i];

        if (!fw->alive) {
            put(y++, 0,
                "%-*.*s (heartbeat expired, %lld job(s) taken: a live worker puts them back)", wcol,
                wcol, fw->id, fw->taken);
            continue;
        }
        ctl_fmt_duration(f->now_ms - ctl_hash_ll(&fw->hb, "started_at", f->now_ms), up, sizeof(up));
        put(y, 0, "%-*.*s %-14.14s %7s %6lld  %s", wcol, wcol, fw->id,
            or_dash(ctl_hash_get(&fw->hb, "host")), up, ctl_hash_ll(&fw->hb, "jobs_done", 0),
            fw->njobs ? "" : "idle");
        for (j = 0; j < fw->njobs; j++) {
            const struct ctl_hash *h = &fw->jobs[j].status;
            long long lt = ctl_hash_ll(h, "lookups_total", 0);
            char lookups[64] = "";

            if (lt > 0)
                snprintf(lookups, sizeof(lookups), "  lookups %lld/%lld",
                         ctl_hash_ll(h, "lookups_done", 0), lt);
            put(y, job_x, "%-24.24s", fw->jobs[j].id);
            draw_bar(y, bar_x, 20, ctl_hash_ll(h, "progress", 0));
            put(y, bar_x + 23, "%3lld%%  rows %lld/%lld%s", ctl_hash_ll(h, "progress", 0),
                ctl_hash_ll(h, "rows_written", 0), ctl_hash_ll(h, "rows_total", 0), lookups);
            y++;
        }
        if (fw->njobs == 0)
            y++;
    }
    if (f->nworkers == 0)
        put(y++, 0, "no worker is registered");
    return y + 1;
}

static int draw_dead(const struct fleet *f, int y)
{
    size_t i;
    char when[64];

    attron(A_BOLD);
    put(y++, 0, "DEAD LETTERS (%lld, newest first)", f->dead);
    attroff(A_BOLD);
    for (i = 0; i < f->ndead_newest; i++) {
        struct exw_dead d;
        struct exw_errbuf eb;

        if (exw_admin_dead_parse(f->dead_newest[i], f->dead_len[i], &d, &eb) == EXW_OK) {
            ctl_fmt_time(d.at_ms, when, sizeof(when));
            put(y++, 0, "%3zu  %-23s  %-24.24s  %s", i + 1, when, or_dash(d.id), d.error);
        } else {
            put(y++, 0, "%3zu  (not readable: %s)", i + 1, eb.msg);
        }
        exw_admin_dead_cleanup(&d);
    }
    if (f->ndead_newest == 0)
        put(y++, 0, "none");
    return y;
}

int ctl_cmd_top(struct ctl *c)
{
    struct sigaction sa;
    struct exw_errbuf eb;
    SCREEN *screen;
    int ch;

    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        return ctl_usage_error(c, "needs a terminal; exportctl queue, workers, dead and stats "
                                  "print the same for a script");
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    screen = newterm(NULL, stdout, stdin);
    if (screen == NULL)
        return ctl_usage_error(c, "cannot drive this terminal (TERM=%s)",
                               getenv("TERM") ? getenv("TERM") : "");
    cbreak();
    noecho();
    curs_set(0);
    keypad(stdscr, TRUE);
    timeout(1000);
    while (!stop) {
        struct fleet f;
        int y = 0;

        erase();
        memset(&f, 0, sizeof(f));
        if (c->rd == NULL || exw_redis_broken(c->rd)) {
            exw_redis_free(c->rd);
            if (exw_redis_connect(&c->cfg.redis, c->cfg.prefix, "exportctl", 2000, &c->rd, &eb) !=
                EXW_OK)
                c->rd = NULL;
        }
        if (c->rd != NULL && fleet_read(c->rd, &f, &eb) == EXW_OK) {
            y = draw_header(c, &f, y);
            y = draw_workers(&f, y);
            draw_dead(&f, y);
        } else {
            put(0, 0, "Redis: %s; trying again every second", eb.msg);
        }
        fleet_free(&f);
        put(LINES - 1, 0, "q or Ctrl-C quits; refreshed every second");
        refresh();
        ch = getch();
        if (ch == 'q' || ch == 'Q')
            break;
    }
    endwin();
    delscreen(screen);
    return CTL_OK;
}
