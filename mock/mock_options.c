/* mock_options.c: export-mock-lookup's command line. */
#include "mock_options.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_body.h"

static const char usage_text[] =
    "usage: " PROG " [options]   (every option also takes --opt=value)\n"
    "  --host ADDR          address to listen on (default 127.0.0.1)\n"
    "  --port N             port, 0 picks a free one (default 8080)\n"
    "  --port-file FILE     also write the port number to FILE (atomically)\n"
    "  --path PREFIX        lookup path prefix (default /contract/)\n"
    "  --param NAME         query parameter holding the key (default sn)\n"
    "  --batch-path PREFIX  batch lookup path prefix (default /batch/): PREFIX K1,K2,... or\n"
    "                       PREFIX?sn=K1,K2,... (each key percent-encoded, a ',' in one as %2C)\n"
    "                       answers {\"K1\": <K1's answer>, ...} after one latency\n"
    "  --batch-max N        refuse (400) a batch of more than N keys (default 0: any number)\n"
    "  --latency-ms N       answer N ms after the request arrived (default 500)\n"
    "  --auth VALUE         require 'Authorization: VALUE' on lookups\n"
    "  --fail GLOB=STATUS   answer STATUS {\"error\":\"injected\"} for matching keys\n"
    "  --garbage GLOB       answer 200 'this is not json' (text/plain)\n"
    "  --redirect GLOB      answer 302 to http://127.0.0.1:1/elsewhere\n"
    "  --huge GLOB=BYTES    answer a valid JSON body of BYTES bytes (a \"pad\" member)\n"
    "  --slow GLOB=MS       add MS to the latency\n"
    "  --error-rate P       answer 500 with probability P (0..1)\n"
    "  --timeout-rate P     wait --hang-ms more before answering, with probability P\n"
    "  --drop-rate P        close the connection without an answer, with probability P\n"
    "  --hang-ms N          the wait of --timeout-rate (default 30000)\n"
    "  --seed N             seed of the random faults (default 1)\n"
    "  --record FILE        append 'RAW-TARGET<TAB>KEY' to FILE for every lookup\n"
    "  --verbose            log every request to stderr\n"
    "  --help               print this and exit\n"
    "Rules (repeatable) are tried in the order fail, garbage, redirect, huge, slow; the first\n"
    "match wins, and the random faults apply only to keys that no rule matched.\n"
    "In a batch, the random faults are drawn once for the whole request; a key matching\n"
    "--fail with a 5xx or 429, --redirect or --garbage makes the whole batch answer so (in that\n"
    "order), a key matching --fail with another status is left out of the answer, --huge pads\n"
    "its member, and --slow adds the slowest matching key's delay to the batch's latency.\n"
    "GET /_stats returns counters (arrivals_per_second since the last reset, max_per_second,\n"
    "max_in_any_second over sliding windows, max_in_flight, lookup_span_ms from the first\n"
    "lookup's arrival to the last one's answer), POST /_reset zeroes them.\n";

enum opt_type { OPT_FLAG, OPT_STR, OPT_LONG, OPT_RATE, OPT_SEED, OPT_RULE };

/* One row per option; plain options set the field at off, rules append to options.rules. */
struct opt_def {
    const char *name;
    enum opt_type type;
    size_t off;
    enum rule_kind kind;
    long min;
    long max; /* a rule without a value has max < min */
    const char *why;
};

static const struct opt_def opt_defs[] = {
    {"help", OPT_FLAG, 0, 0, 0, 0, NULL},
    {"verbose", OPT_FLAG, offsetof(struct options, verbose), 0, 0, 0, NULL},
    {"host", OPT_STR, offsetof(struct options, host), 0, 0, 0, NULL},
    {"port", OPT_LONG, offsetof(struct options, port), 0, 0, 65535, "must be 0..65535"},
    {"port-file", OPT_STR, offsetof(struct options, port_file), 0, 0, 0, NULL},
    {"path", OPT_STR, offsetof(struct options, path), 0, 0, 0, NULL},
    {"param", OPT_STR, offsetof(struct options, param), 0, 0, 0, NULL},
    {"batch-path", OPT_STR, offsetof(struct options, batch_path), 0, 0, 0, NULL},
    {"batch-max", OPT_LONG, offsetof(struct options, batch_max), 0, 0, 1000000,
     "must be 0..1000000"},
    {"latency-ms", OPT_LONG, offsetof(struct options, latency_ms), 0, 0, MAX_DELAY_MS,
     "must be 0..3600000"},
    {"hang-ms", OPT_LONG, offsetof(struct options, hang_ms), 0, 0, MAX_DELAY_MS,
     "must be 0..3600000"},
    {"auth", OPT_STR, offsetof(struct options, auth), 0, 0, 0, NULL},
    {"fail", OPT_RULE, 0, RULE_FAIL, 100, 599, "must be GLOB=STATUS with STATUS 100..599"},
    {"garbage", OPT_RULE, 0, RULE_GARBAGE, 1, 0, "must be a non-empty glob"},
    {"redirect", OPT_RULE, 0, RULE_REDIRECT, 1, 0, "must be a non-empty glob"},
    {"huge", OPT_RULE, 0, RULE_HUGE, 0, MAX_HUGE_BYTES,
     "must be GLOB=BYTES with BYTES 0..1073741824"},
    {"slow", OPT_RULE, 0, RULE_SLOW, 0, MAX_DELAY_MS, "must be GLOB=MS with MS 0..3600000"},
    {"error-rate", OPT_RATE, offsetof(struct options, error_rate), 0, 0, 0, NULL},
    {"timeout-rate", OPT_RATE, offsetof(struct options, timeout_rate), 0, 0, 0, NULL},
    {"drop-rate", OPT_RATE, offsetof(struct options, drop_rate), 0, 0, 0, NULL},
    {"seed", OPT_SEED, offsetof(struct options, seed), 0, 0, 0, NULL},
    {"record", OPT_STR, offsetof(struct options, record), 0, 0, 0, NULL},
};

/* Parses a whole decimal number in [min, max]: no blanks, no '+', no trailing junk. */
static int parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    long v;

    if (s[0] != '-' && (s[0] < '0' || s[0] > '9'))
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Adds a rule; GLOB=VALUE splits at the last '=', since a glob may hold one too. */
static int add_rule(struct options *o, const struct opt_def *d, const char *val)
{
    const char *end = d->max >= d->min ? strrchr(val, '=') : val + strlen(val);
    struct rule r = {d->kind, NULL, 0};

    if (end == NULL || end == val || (*end == '=' && parse_long(end + 1, d->min, d->max, &r.value)))
        return -1;
    r.glob = mock_xrealloc(NULL, (size_t)(end - val) + 1);
    memcpy(r.glob, val, (size_t)(end - val));
    r.glob[end - val] = '\0';
    o->rules = mock_xrealloc(o->rules, (o->n_rules + 1) * sizeof(*o->rules));
    o->rules[o->n_rules++] = r;
    return 0;
}

/* Applies one option's value; returns 0, or -1 after saying on stderr what is wrong. */
static int apply_option(struct options *o, const struct opt_def *d, const char *val)
{
    char *field = (char *)o + d->off;
    const char *why = d->why;
    char *end = NULL;
    double rate;
    long v;

    switch (d->type) {
    case OPT_FLAG:
        break;
    case OPT_STR:
        if (val[0] == '\0') {
            why = "must not be empty";
            break;
        }
        if ((strcmp(d->name, "path") == 0 || strcmp(d->name, "batch-path") == 0) &&
            (val[0] != '/' || strpbrk(val, "?#") != NULL)) {
            why = "must start with '/' and hold no '?' or '#'";
            break;
        }
        memcpy(field, &val, sizeof(val));
        return 0;
    case OPT_LONG:
        if (parse_long(val, d->min, d->max, &v) != 0)
            break;
        memcpy(field, &v, sizeof(v));
        return 0;
    case OPT_RATE:
        why = "must be a number from 0 to 1";
        errno = 0;
        rate = strtod(val, &end);
        if (strchr("0123456789.", val[0]) == NULL || val[0] == '\0' || errno != 0 || *end != '\0' ||
            !(rate <= 1.0))
            break;
        memcpy(field, &rate, sizeof(rate));
        return 0;
    case OPT_SEED:
        why = "must be an unsigned 64-bit integer";
        errno = 0;
        o->seed = strtoull(val, &end, 10);
        if (val[0] < '0' || val[0] > '9' || errno != 0 || *end != '\0')
            break;
        return 0;
    case OPT_RULE:
        if (add_rule(o, d, val) != 0)
            break;
        return 0;
    }
    /* The --auth value is a credential: no message may echo it. */
    if (strcmp(d->name, "auth") == 0)
        fprintf(stderr, PROG ": --%s: %s\n", d->name, why);
    else
        fprintf(stderr, PROG ": --%s: %s, got '%s'\n", d->name, why, val);
    return -1;
}

int mock_parse_args(int argc, char **argv, struct options *o)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq = strchr(arg, '=');
        size_t len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        const struct opt_def *d = NULL;

        for (size_t k = 0; k < sizeof(opt_defs) / sizeof(opt_defs[0]); k++) {
            if (len > 2 && strncmp(arg, "--", 2) == 0 && strlen(opt_defs[k].name) == len - 2 &&
                memcmp(arg + 2, opt_defs[k].name, len - 2) == 0)
                d = &opt_defs[k];
        }
        if (d == NULL) {
            fprintf(stderr, PROG ": unknown argument '%.*s' (see --help)\n", (int)len, arg);
            return 2;
        }
        if (d->type == OPT_FLAG) {
            if (eq != NULL) {
                fprintf(stderr, PROG ": --%s takes no value\n", d->name);
                return 2;
            }
            if (d->off == 0) {
                fputs(usage_text, stdout);
                return 1;
            }
            o->verbose = 1;
            continue;
        }
        if (eq == NULL && i + 1 >= argc) {
            fprintf(stderr, PROG ": --%s needs a value (see --help)\n", d->name);
            return 2;
        }
        if (apply_option(o, d, eq != NULL ? eq + 1 : argv[++i]) != 0)
            return 2;
    }
    if (o->error_rate + o->timeout_rate + o->drop_rate > 1.0 + 1e-9) {
        fputs(PROG ": --error-rate, --timeout-rate and --drop-rate add up to more than 1\n",
              stderr);
        return 2;
    }
    return 0;
}
