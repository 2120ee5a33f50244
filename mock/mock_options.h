/* mock_options.h: export-mock-lookup's command line: its options, the fault
 * rules they set, and the parser. */
#ifndef EXW_MOCK_OPTIONS_H
#define EXW_MOCK_OPTIONS_H

#include <stddef.h>

#define PROG "export-mock-lookup"

enum { MAX_DELAY_MS = 3600 * 1000, MAX_HUGE_BYTES = 1024 * 1024 * 1024 };

/* Fault rules are tried kind by kind in this order, and in command-line order within a kind. */
enum rule_kind { RULE_FAIL, RULE_GARBAGE, RULE_REDIRECT, RULE_HUGE, RULE_SLOW, RULE_KIND_COUNT };

struct rule {
    enum rule_kind kind;
    char *glob;
    long value; /* the status for fail, bytes for huge, milliseconds for slow */
};

struct options {
    const char *host;
    long port;
    const char *port_file;
    const char *path;
    const char *batch_path; /* the batch endpoint's prefix */
    long batch_max;         /* the most keys a batch may name; 0: any number */
    const char *param;
    long latency_ms;
    long hang_ms;
    const char *auth; /* NULL when lookups need no Authorization header */
    struct rule *rules;
    size_t n_rules;
    double error_rate;
    double timeout_rate;
    double drop_rate;
    unsigned long long seed;
    const char *record;
    int verbose;
};

/* Reads @argv into @o (zeroed by the caller). Returns 0 to run, 1 after
 * --help (the usage is printed), 2 on a usage error (already reported). */
int mock_parse_args(int argc, char **argv, struct options *o);

#endif
