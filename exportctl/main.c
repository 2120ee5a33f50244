/* main.c: exportctl's command line: the commands, their options and --help,
 * the configuration (the worker's own EXPORT_* variables, read by config.c)
 * and the connection to Redis. */
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "exw/version.h"

extern char **environ;

struct command {
    const char *name;
    const char *operands; /* for the synopsis */
    int nargs;            /* operands required: exactly this many */
    int opts;             /* OPT_* it accepts */
    int (*run)(struct ctl *c);
    const char *summary;
    const char *help; /* what --help adds below the synopsis */
};

static const struct command commands[] = {
    {"enqueue", "FILE|-", 1, OPT_WAIT | OPT_TIMEOUT | OPT_JSON, ctl_cmd_enqueue,
     "check a job document as a worker would, queue it, print its id",
     "Reads the job document (PROTOCOL.md section 2) from FILE, or from standard\n"
     "input for -, and checks it with the worker's own parser and limits (the\n"
     "EXPORT_MAX_* variables); a lookup.service is checked against the\n"
     "EXPORT_SERVICE_<NAME>_URL variables when any is set. A refused document\n"
     "is reported with the error a worker would give it, and nothing is\n"
     "written (exit 2). A document without an id gets one made up. Otherwise\n"
     "the job's status is written as queued and the document pushed on the\n"
     "queue, in one step, and the id printed. A job already queued or running\n"
     "under the same id is refused; an ended one runs again.\n"
     "\n"
     "  --wait         then follow the job as watch does, exiting with its outcome\n"
     "  --timeout S    with --wait: give up waiting after S seconds (exit 6)\n"
     "  --json         print {\"id\": ...} instead of the bare id\n"},
    {"status", "ID", 1, OPT_JSON, ctl_cmd_status, "show a job's status",
     "Prints the job's status hash as a table: state, progress, rows, lookups,\n"
     "times, result and error. Exits 4 when the job has no status (never\n"
     "queued, or expired after its result_ttl).\n"
     "\n"
     "  --json         one JSON object, whole numbers as numbers\n"},
    {"watch", "ID", 1, OPT_TIMEOUT, ctl_cmd_watch, "follow a job until it ends",
     "Draws a progress bar, one line redrawn in place: state, percent, rows,\n"
     "lookups done and total, lookups a second and the time left. Reads the\n"
     "events channel and polls the status when no event comes for a second.\n"
     "When standard output is not a terminal, prints a plain line for each\n"
     "change instead, at most one a second. Exits with the job's outcome:\n"
     "0 succeeded, 1 failed, 3 cancelled, 4 not found, 6 timed out.\n"
     "\n"
     "  --timeout S    give up waiting after S seconds (exit 6)\n"},
    {"fetch", "ID", 1, OPT_OUTPUT | OPT_JSON, ctl_cmd_fetch, "save a finished job's workbook",
     "Writes the workbook of a succeeded job to FILE (default: the job's\n"
     "filename, in the current folder), after checking it against the status's\n"
     "result_sha256; a result that does not match is not written (exit 1).\n"
     "-o - writes to standard output, which must not be a terminal. Exits 1\n"
     "for a job that failed, 3 for one cancelled, 4 when there is no result\n"
     "(no such job, not finished, or expired).\n"
     "\n"
     "  -o, --output FILE   where to write it\n"
     "  --json              print {\"file\", \"bytes\", \"sha256\"} when done\n"},
    {"cancel", "ID", 1, OPT_WAIT | OPT_TIMEOUT, ctl_cmd_cancel, "ask for a job's cancellation",
     "Sets the job's cancel flag; the worker running it stops within a second\n"
     "and ends it cancelled, and a queued job ends cancelled when it is taken.\n"
     "A job that has ended is left as it is. Exits 4 when there is no such job.\n"
     "\n"
     "  --wait         then wait for the job to end, exiting with its outcome\n"
     "  --timeout S    with --wait: give up after S seconds (exit 6)\n"},
    {"queue", "", 0, OPT_JSON, ctl_cmd_queue, "jobs waiting, running and dead",
     "Prints the number of jobs waiting in the queue, the jobs each live worker\n"
     "is running, and the number of dead letters.\n"
     "\n"
     "  --json         as one JSON object\n"},
    {"workers", "", 0, OPT_JSON, ctl_cmd_workers, "live workers and what they run",
     "Lists the live workers: id, host, pid, age, the jobs they run with their\n"
     "progress, and jobs done; then the workers still registered whose\n"
     "heartbeat has expired (a live worker recovers their jobs).\n"
     "\n"
     "  --json         as one JSON object\n"},
    {"dead", "", 0, OPT_JSON | OPT_REQUEUE | OPT_PURGE, ctl_cmd_dead, "list or act on dead letters",
     "Lists the dead letters, newest first, numbered from 1: when, the job's id\n"
     "when it has one, and the error. Documents without a usable id, and jobs\n"
     "out of attempts, end here.\n"
     "\n"
     "  --requeue N    remove entry N, push its document back on the queue and,\n"
     "                 when it has an id, reset its status to queued with no\n"
     "                 attempts (an entry that holds only part of a document\n"
     "                 over 1 MiB cannot be requeued)\n"
     "  --purge        empty the list\n"
     "  --json         list as a JSON array\n"},
    {"stats", "", 0, OPT_JSON, ctl_cmd_stats, "the fleet's counters",
     "Prints the counters all workers add to: jobs by outcome, lookups, lookup\n"
     "requests and errors, bytes stored.\n"
     "\n"
     "  --json         as one JSON object\n"},
    {"top", "", 0, 0, ctl_cmd_top, "a live view of all of the above",
     "A full-screen view of the queue, the workers and their jobs with\n"
     "progress, the newest dead letters and the counters, refreshed every\n"
     "second. q or Ctrl-C leaves it, and the terminal as it was.\n"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(*commands))

static const char common_help[] =
    "Redis is found as by export-worker: EXPORT_REDIS_URL (default\n"
    "redis://127.0.0.1:6379/0) and EXPORT_PREFIX (default export), or\n"
    "--redis-url URL and --prefix P before or after the command; with\n"
    "EXPORT_REDIS_SENTINELS and EXPORT_REDIS_MASTER (and\n"
    "EXPORT_REDIS_SENTINEL_PASSWORD) the primary is the one the sentinels\n"
    "name. On Redis Cluster the URL may name any node, and the prefix must\n"
    "hold a hash tag such as {export}.\n"
    "\n"
    "Exit status: 0 done (a job waited for succeeded), 1 the job failed or is\n"
    "dead, 2 usage or configuration error or a refused document, 3 cancelled,\n"
    "4 not found, 5 Redis unreachable, 6 a wait timed out.\n";

static void usage(FILE *f)
{
    size_t i;

    fputs("Usage: exportctl [--redis-url URL] [--prefix P] COMMAND [OPTION]... [ARG]\n"
          "  or:  exportctl --help | --version\n"
          "Operates the export-worker fleet that shares one Redis: queue jobs, follow\n"
          "them, fetch their workbooks, and look at the queue, the workers and the\n"
          "dead letters.\n\nCommands:\n",
          f);
    for (i = 0; i < NCOMMANDS; i++) {
        char synopsis[32];

        snprintf(synopsis, sizeof(synopsis), "%s %s", commands[i].name, commands[i].operands);
        fprintf(f, "  %-16s  %s\n", synopsis, commands[i].summary);
    }
    fputs("\nexportctl COMMAND --help says more about one.\n\n", f);
    fputs(common_help, f);
}

static void command_usage(const struct command *cmd)
{
    printf("Usage: exportctl %s [OPTION]...%s%s\n%s\n", cmd->name, cmd->operands[0] ? " " : "",
           cmd->operands, cmd->help);
    fputs(common_help, stdout);
}

static const struct command *find_command(const char *name)
{
    size_t i;

    for (i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    }
    return NULL;
}

int ctl_usage_error(const struct ctl *c, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "exportctl%s%s: ", c->command ? " " : "", c->command ? c->command : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry exportctl %s--help.\n", c->command ? c->command : "");
    return CTL_USAGE;
}

/* A count of seconds: a number >= 0. */
static int parse_seconds(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || *end != '\0' || !(v >= 0) || v > 1e9)
        return -1;
    *out = v;
    return 0;
}

enum {
    LONG_REDIS_URL = 256,
    LONG_PREFIX,
    LONG_JSON,
    LONG_WAIT,
    LONG_TIMEOUT,
    LONG_REQUEUE,
    LONG_PURGE,
    LONG_HELP,
    LONG_VERSION
};

static const struct option long_options[] = {
    {"redis-url", required_argument, NULL, LONG_REDIS_URL},
    {"prefix", required_argument, NULL, LONG_PREFIX},
    {"json", no_argument, NULL, LONG_JSON},
    {"wait", no_argument, NULL, LONG_WAIT},
    {"timeout", required_argument, NULL, LONG_TIMEOUT},
    {"output", required_argument, NULL, 'o'},
    {"requeue", required_argument, NULL, LONG_REQUEUE},
    {"purge", no_argument, NULL, LONG_PURGE},
    {"help", no_argument, NULL, LONG_HELP},
    {"version", no_argument, NULL, LONG_VERSION},
    {NULL, 0, NULL, 0},
};

/* Reads the options of @argv (from its first element on) into @c; @cmd NULL
 * means before the command, where only the Redis options, --help and
 * --version go. Returns -1 after a usage error (*@rc set), 1 for --help, 2
 * for --version, 0 otherwise. */
static int parse_options(struct ctl *c, const struct command *cmd, int argc, char **argv, int *rc)
{
    int allowed = cmd ? cmd->opts : 0;
    char *end;
    int opt;

    optind = 0; /* glibc: a full restart, the optstring read again */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, cmd ? ":ho:" : "+:h", long_options, NULL)) != -1) {
        int need = opt == LONG_JSON      ? OPT_JSON
                   : opt == LONG_WAIT    ? OPT_WAIT
                   : opt == LONG_TIMEOUT ? OPT_TIMEOUT
                   : opt == 'o'          ? OPT_OUTPUT
                   : opt == LONG_REQUEUE ? OPT_REQUEUE
                   : opt == LONG_PURGE   ? OPT_PURGE
                                         : 0;

        if (need != 0 && !(allowed & need)) {
            *rc = ctl_usage_error(c, "%s takes no option %s", cmd ? cmd->name : "exportctl",
                                  argv[optind - 1]);
            return -1;
        }
        switch (opt) {
        case LONG_REDIS_URL:
            c->redis_url = optarg;
            break;
        case LONG_PREFIX:
            c->prefix = optarg;
            break;
        case LONG_JSON:
            c->json = 1;
            break;
        case LONG_WAIT:
            c->wait = 1;
            break;
        case LONG_TIMEOUT:
            if (parse_seconds(optarg, &c->timeout_s) != 0) {
                *rc = ctl_usage_error(c, "--timeout takes seconds (a number >= 0), not \"%s\"",
                                      optarg);
                return -1;
            }
            break;
        case 'o':
            c->output = optarg;
            break;
        case LONG_REQUEUE:
            c->requeue = strtol(optarg, &end, 10);
            if (end == optarg || *end != '\0' || c->requeue < 1) {
                *rc = ctl_usage_error(c, "--requeue takes an entry number from 1, not \"%s\"",
                                      optarg);
                return -1;
            }
            break;
        case LONG_PURGE:
            c->purge = 1;
            break;
        case 'h':
        case LONG_HELP:
            return 1;
        case LONG_VERSION:
            return 2;
        case ':':
            *rc = ctl_usage_error(c, "%s needs a value", argv[optind - 1]);
            return -1;
        default:
            *rc = ctl_usage_error(c, "unknown option %s", argv[optind - 1]);
            return -1;
        }
    }
    return 0;
}

int ctl_connect(struct ctl *c)
{
    char *argv[6];
    int argc = 0, help = 0;
    char *errors = NULL;
    struct exw_errbuf eb;
    exw_err rc;

    argv[argc++] = "exportctl";
    if (c->redis_url) {
        argv[argc++] = "--redis-url";
        argv[argc++] = (char *)c->redis_url;
    }
    if (c->prefix) {
        argv[argc++] = "--prefix";
        argv[argc++] = (char *)c->prefix;
    }
    argv[argc] = NULL;
    if (exw_config_load(&c->cfg, environ, argc, argv, &help, &errors) != EXW_OK) {
        fprintf(stderr, "exportctl: bad configuration:\n%s\n", errors ? errors : "(no details)");
        free(errors);
        return CTL_USAGE;
    }
    c->cfg_loaded = 1;
    rc = exw_redis_connect(&c->cfg.redis, c->cfg.prefix, "exportctl", 5000, &c->rd, &eb);
    if (rc != EXW_OK) {
        fprintf(stderr, "exportctl: %s\n", eb.msg);
        /* A Redis Cluster that cannot take the settings (no hash tag). */
        return rc == EXW_ECONFIG ? CTL_USAGE : CTL_REDIS;
    }
    return CTL_OK;
}

struct exw_redis *ctl_connect_again(struct ctl *c)
{
    struct exw_redis *rd;
    struct exw_errbuf eb;

    if (exw_redis_connect(&c->cfg.redis, c->cfg.prefix, "exportctl", 5000, &rd, &eb) != EXW_OK) {
        fprintf(stderr, "exportctl: %s\n", eb.msg);
        return NULL;
    }
    return rd;
}

int ctl_redis_failed(const struct exw_errbuf *eb)
{
    fprintf(stderr, "exportctl: Redis: %s\n", eb->msg);
    return CTL_REDIS;
}

int main(int argc, char **argv)
{
    struct ctl c;
    const struct command *cmd;
    int rc = CTL_OK, at, n;
    struct sigaction sa;

    memset(&c, 0, sizeof(c));
    c.timeout_s = -1;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    /* Options before the command. */
    n = parse_options(&c, NULL, argc, argv, &rc);
    if (n < 0)
        return rc;
    if (n == 2) {
        printf("exportctl (export-worker) %s\n", EXW_VERSION);
        return CTL_OK;
    }
    if (n > 0) {
        usage(stdout);
        return CTL_OK;
    }
    at = optind;
    if (at >= argc) {
        usage(stderr);
        return CTL_USAGE;
    }
    cmd = find_command(argv[at]);
    if (cmd == NULL) {
        fprintf(stderr, "exportctl: no command \"%s\".\n\n", argv[at]);
        usage(stderr);
        return CTL_USAGE;
    }
    c.command = cmd->name;

    /* The command's options and operands, in any order. */
    n = parse_options(&c, cmd, argc - at, argv + at, &rc);
    if (n < 0)
        return rc;
    if (n > 0) {
        command_usage(cmd);
        return CTL_OK;
    }
    c.args = argv + at + optind;
    c.nargs = argc - at - optind;
    if (c.nargs != cmd->nargs) {
        if (cmd->nargs == 0)
            return ctl_usage_error(&c, "takes no operand");
        return ctl_usage_error(&c, "takes %s", cmd->operands);
    }
    if (c.timeout_s >= 0 && (cmd->opts & OPT_WAIT) && !c.wait)
        return ctl_usage_error(&c, "--timeout goes with --wait");
    if (c.requeue && c.purge)
        return ctl_usage_error(&c, "--requeue and --purge do not go together");

    rc = ctl_connect(&c);
    if (rc == CTL_OK)
        rc = cmd->run(&c);
    exw_redis_free(c.rd);
    if (c.cfg_loaded)
        exw_config_cleanup(&c.cfg);
    return rc;
}
