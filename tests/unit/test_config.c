/* test_config.c: settings from the environment and flags, error reports,
 * --help, the description and the rule that secrets are never shown. Lookup
 * services and Redis URLs have their own tests (test_services.c,
 * test_redis_addr.c); here only how they join the rest. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exw/config.h"

/* "TMPDIR=<scratch folder>", first in every environment below so that the
 * default EXPORT_TMPDIR exists wherever the tests run. */
static char tmpdir_var[512];
static char *scratch;

#define ENV(...) ((char *[]){tmpdir_var, __VA_ARGS__, NULL})
#define ARGS(...) ((char *[]){__VA_ARGS__, NULL})
#define NO_ARGS ((char *[]){NULL})

static int setup_group(void **state)
{
    (void)state;
    scratch = scratch_dir();
    snprintf(tmpdir_var, sizeof(tmpdir_var), "TMPDIR=%s", scratch);
    return 0;
}

/* Runs exw_config_load() with @env and @args (without argv[0]). */
static exw_err load_help(struct exw_config *c, char **env, char **args, int *help, char **errors)
{
    char *argv[64];
    int argc = 0;

    argv[argc++] = "export-worker";
    for (; *args; args++)
        argv[argc++] = *args;
    argv[argc] = NULL;
    return exw_config_load(c, env, argc, argv, help, errors);
}

static exw_err load(struct exw_config *c, char **env, char **args, char **errors)
{
    int help = -1;
    exw_err rc = load_help(c, env, args, &help, errors);

    assert_int_equal(help, 0);
    return rc;
}

/* Loads what must be a good configuration. */
static void load_ok(struct exw_config *c, char **env, char **args)
{
    char *errors = NULL;
    exw_err rc = load(c, env, args, &errors);

    if (rc != EXW_OK)
        fail_msg("unexpected errors:\n%s", errors ? errors : "(none)");
    assert_null(errors);
}

/* Loads what must be a bad configuration and returns the error text. */
static char *load_bad(char **env, char **args)
{
    struct exw_config c;
    char *errors = NULL;
    static const struct exw_config zero;

    assert_int_equal(load(&c, env, args, &errors), EXW_ECONFIG);
    assert_non_null(errors);
    /* Nothing is left to free on failure. */
    assert_memory_equal(&c, &zero, sizeof(c));
    return errors;
}

/* @errors holds @line as one whole line. */
static void assert_has_line(const char *errors, const char *line)
{
    size_t n = strlen(line);
    const char *p = errors;

    while (*p) {
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return;
        p = strchr(p, '\n');
        if (p == NULL)
            break;
        p++;
    }
    fail_msg("missing line \"%s\" in:\n%s", line, errors);
}

/* Loads @env/@args, which must fail with one error containing @part. */
static void expect_one_error(char **env, char **args, const char *part)
{
    expect_one_line_with(load_bad(env, args), part);
}

/* ---- Defaults and plain settings ---- */

static void test_defaults(void **state)
{
    struct exw_config c;
    char host[256], prefix[300];
    const char *p;

    (void)state;
    load_ok(&c, ENV("PATH=/usr/bin"), NO_ARGS);
    assert_string_equal(c.redis_url, "redis://127.0.0.1:6379/0");
    assert_string_equal(c.redis.host, "127.0.0.1");
    assert_int_equal(c.redis.port, 6379);
    assert_int_equal(c.redis.db, 0);
    assert_null(c.redis.path);
    assert_null(c.redis.user);
    assert_null(c.redis.password);
    assert_string_equal(c.prefix, "export");
    assert_int_equal(c.pool_size, 32);
    assert_int_equal(c.max_attempts, 3);
    assert_int_equal(c.job_timeout_s, 900);
    assert_int_equal(c.shutdown_grace_s, 8);
    assert_int_equal(c.result_ttl_s, 86400);
    assert_int_equal(c.max_job_bytes, 67108864);
    assert_int_equal(c.max_row_bytes, 1048576);
    assert_int_equal(c.max_result_bytes, 268435456);
    assert_int_equal(c.log_format, EXW_LOG_TEXT);
    assert_int_equal(c.log_level, EXW_LOG_INFO);
    assert_string_equal(c.tmpdir, scratch);
    assert_int_equal(c.heartbeat_ttl_ms, 6000);
    assert_int_equal(c.batch_rows, 4096);
    assert_int_equal(c.max_response_bytes, 1048576);
    assert_int_equal(c.max_sheet_rows, 1048576);
    assert_int_equal(c.nservices, 0);

    /* HOSTNAME-PID-RANDOM, within the id rules. */
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    host[sizeof(host) - 1] = '\0';
    for (p = host; *p; p++)
        if (!(*p == '.' || *p == '_' || *p == ':' || *p == '-' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            host[p - host] = '-';
    snprintf(prefix, sizeof(prefix), "%.100s-%ld-", host, (long)getpid());
    assert_true(strncmp(c.worker_id, prefix, strlen(prefix)) == 0);
    p = c.worker_id + strlen(prefix);
    assert_int_equal(strlen(p), 6);
    assert_int_equal(strspn(p, "0123456789abcdef"), 6);
    assert_true(strlen(c.worker_id) <= 128);
    exw_config_cleanup(&c);
}

static void test_default_tmpdir(void **state)
{
    struct exw_config c;

    (void)state;
    /* Without TMPDIR (or with it empty) the default is /var/tmp. */
    load_ok(&c, (char *[]){"HOME=/root", NULL}, NO_ARGS);
    assert_string_equal(c.tmpdir, "/var/tmp");
    exw_config_cleanup(&c);
    load_ok(&c, (char *[]){"TMPDIR=", NULL}, NO_ARGS);
    assert_string_equal(c.tmpdir, "/var/tmp");
    exw_config_cleanup(&c);
    /* A NULL environment is an empty one. */
    load_ok(&c, NULL, NO_ARGS);
    assert_string_equal(c.tmpdir, "/var/tmp");
    exw_config_cleanup(&c);
}

static void test_worker_ids_differ(void **state)
{
    struct exw_config a, b;

    (void)state;
    load_ok(&a, ENV("X=1"), NO_ARGS);
    load_ok(&b, ENV("X=1"), NO_ARGS);
    /* Same host and pid: only RANDOM tells them apart (1 in 16M to collide). */
    assert_string_not_equal(a.worker_id, b.worker_id);
    exw_config_cleanup(&a);
    exw_config_cleanup(&b);
}

static void test_every_variable(void **state)
{
    struct exw_config c;
    char tmpdir[600];

    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "EXPORT_TMPDIR=%s", scratch);
    load_ok(&c,
            ENV("EXPORT_REDIS_URL=redis://redis.internal:6380/2", "EXPORT_PREFIX={export}",
                "EXPORT_POOL_SIZE=8", "EXPORT_WORKER_ID=w-1.a_b:c", "EXPORT_MAX_ATTEMPTS=5",
                "EXPORT_JOB_TIMEOUT=60", "EXPORT_SHUTDOWN_GRACE=0", "EXPORT_RESULT_TTL=3600",
                "EXPORT_MAX_JOB_BYTES=1024", "EXPORT_LOG_FORMAT=json", "EXPORT_LOG_LEVEL=debug",
                tmpdir, "EXPORT_HEARTBEAT_TTL_MS=10000", "EXPORT_BATCH_ROWS=1000000",
                "EXPORT_MAX_RESPONSE_BYTES=1073741824", "EXPORT_MAX_SHEET_ROWS=2",
                "EXPORT_MAX_ROW_BYTES=1024", "EXPORT_MAX_RESULT_BYTES=536870912"),
            NO_ARGS);
    assert_string_equal(c.redis_url, "redis://redis.internal:6380/2");
    assert_string_equal(c.redis.host, "redis.internal");
    assert_int_equal(c.redis.port, 6380);
    assert_int_equal(c.redis.db, 2);
    assert_string_equal(c.prefix, "{export}");
    assert_int_equal(c.pool_size, 8);
    assert_string_equal(c.worker_id, "w-1.a_b:c");
    assert_int_equal(c.max_attempts, 5);
    assert_int_equal(c.job_timeout_s, 60);
    assert_int_equal(c.shutdown_grace_s, 0);
    assert_int_equal(c.result_ttl_s, 3600);
    assert_int_equal(c.max_job_bytes, 1024);
    assert_int_equal(c.log_format, EXW_LOG_JSON);
    assert_int_equal(c.log_level, EXW_LOG_DEBUG);
    assert_string_equal(c.tmpdir, scratch);
    assert_int_equal(c.heartbeat_ttl_ms, 10000);
    assert_int_equal(c.batch_rows, 1000000);
    assert_int_equal(c.max_response_bytes, 1073741824);
    assert_int_equal(c.max_sheet_rows, 2);
    assert_int_equal(c.max_row_bytes, 1024);
    assert_int_equal(c.max_result_bytes, 536870912);
    exw_config_cleanup(&c);
}

static void test_every_flag(void **state)
{
    struct exw_config c;

    (void)state;
    load_ok(&c, ENV("X=1"),
            ARGS("--redis-url", "unix:///run/redis.sock?db=3", "--prefix", "p", "--pool-size", "1",
                 "--worker-id", "me", "--max-attempts", "100", "--job-timeout", "86400",
                 "--shutdown-grace", "3600", "--result-ttl", "31536000", "--max-job-bytes",
                 "2147483647", "--log-format", "json", "--log-level", "error", "--tmpdir", scratch,
                 "--heartbeat-ttl-ms", "1000", "--batch-rows", "1", "--max-response-bytes", "1024",
                 "--max-sheet-rows", "1001", "--max-row-bytes", "536870912", "--max-result-bytes",
                 "4096"));
    assert_string_equal(c.redis.path, "/run/redis.sock");
    assert_int_equal(c.redis.db, 3);
    assert_string_equal(c.prefix, "p");
    assert_int_equal(c.pool_size, 1);
    assert_string_equal(c.worker_id, "me");
    assert_int_equal(c.max_attempts, 100);
    assert_int_equal(c.job_timeout_s, 86400);
    assert_int_equal(c.shutdown_grace_s, 3600);
    assert_int_equal(c.result_ttl_s, 31536000);
    assert_int_equal(c.max_job_bytes, 2147483647);
    assert_int_equal(c.log_format, EXW_LOG_JSON);
    assert_int_equal(c.log_level, EXW_LOG_ERROR);
    assert_int_equal(c.heartbeat_ttl_ms, 1000);
    assert_int_equal(c.batch_rows, 1);
    assert_int_equal(c.max_response_bytes, 1024);
    assert_int_equal(c.max_sheet_rows, 1001);
    assert_int_equal(c.max_row_bytes, 536870912);
    assert_int_equal(c.max_result_bytes, 4096);
    exw_config_cleanup(&c);
}

static void test_flags_override_env(void **state)
{
    struct exw_config c;

    (void)state;
    load_ok(&c, ENV("EXPORT_POOL_SIZE=8", "EXPORT_PREFIX=env", "EXPORT_LOG_LEVEL=warn"),
            ARGS("--pool-size", "16", "--prefix=flag"));
    assert_int_equal(c.pool_size, 16);
    assert_string_equal(c.prefix, "flag");
    assert_int_equal(c.log_level, EXW_LOG_WARN); /* No flag: the variable stands. */
    exw_config_cleanup(&c);

    /* The last flag wins, and a flag hides a bad variable of the same setting. */
    load_ok(&c, ENV("EXPORT_POOL_SIZE=lots"), ARGS("--pool-size=0", "--pool-size=7"));
    assert_int_equal(c.pool_size, 7);
    exw_config_cleanup(&c);
}

static void test_equals_form(void **state)
{
    struct exw_config c;

    (void)state;
    /* After '=' everything is the value, '=' and empty included where allowed. */
    load_ok(&c, ENV("X=1"),
            ARGS("--redis-url=redis://:a=b@h:1/1", "--log-format=json", "--worker-id=a:b",
                 "--max-attempts=9"));
    assert_string_equal(c.redis.password, "a=b");
    assert_int_equal(c.log_format, EXW_LOG_JSON);
    assert_string_equal(c.worker_id, "a:b");
    assert_int_equal(c.max_attempts, 9);
    exw_config_cleanup(&c);
}

static void test_empty_variable_is_unset(void **state)
{
    struct exw_config c;

    (void)state;
    load_ok(&c, ENV("EXPORT_POOL_SIZE=", "EXPORT_PREFIX=", "EXPORT_SERVICE_X_AUTH="), NO_ARGS);
    assert_int_equal(c.pool_size, 32);
    assert_string_equal(c.prefix, "export");
    assert_int_equal(c.nservices, 0);
    exw_config_cleanup(&c);
}

static void test_enums_any_case(void **state)
{
    struct exw_config c;

    (void)state;
    load_ok(&c, ENV("EXPORT_LOG_FORMAT=JSON", "EXPORT_LOG_LEVEL=Warn"), NO_ARGS);
    assert_int_equal(c.log_format, EXW_LOG_JSON);
    assert_int_equal(c.log_level, EXW_LOG_WARN);
    exw_config_cleanup(&c);
}

/* ---- Errors ---- */

static void test_error_messages(void **state)
{
    char *e;

    (void)state;
    e = load_bad(ENV("EXPORT_POOL_SIZE=0"), NO_ARGS);
    assert_string_equal(e, "EXPORT_POOL_SIZE: must be 1..1024, got 0");
    free(e);
    e = load_bad(ENV("X=1"), ARGS("--pool-size", "abc"));
    assert_string_equal(e, "--pool-size: must be an integer, got \"abc\"");
    free(e);
    e = load_bad(ENV("EXPORT_LOG_FORMAT=xml"), NO_ARGS);
    assert_string_equal(e, "EXPORT_LOG_FORMAT: must be text or json, got \"xml\"");
    free(e);
    e = load_bad(ENV("EXPORT_LOG_LEVEL=trace"), NO_ARGS);
    assert_string_equal(e, "EXPORT_LOG_LEVEL: must be debug, info, warn or error, got \"trace\"");
    free(e);
}

static void test_all_errors_at_once(void **state)
{
    char *e;

    (void)state;
    e = load_bad(ENV("EXPORT_POOL_SIZE=0", "EXPORT_MAX_ATTEMPTS=many", "EXPORT_PREFIX=a b",
                     "EXPORT_LOG_FORMAT=xml", "EXPORT_REDIS_URL=http://h",
                     "EXPORT_SERVICE_my_svc_URL=http://x/{key}"),
                 ARGS("--job-timeout", "0", "--bogus", "--batch-rows=1x"));
    assert_has_line(e, "EXPORT_POOL_SIZE: must be 1..1024, got 0");
    assert_has_line(e, "EXPORT_MAX_ATTEMPTS: must be an integer, got \"many\"");
    assert_has_line(e, "EXPORT_PREFIX: must not contain spaces or control characters");
    assert_has_line(e, "EXPORT_LOG_FORMAT: must be text or json, got \"xml\"");
    assert_has_line(e, "EXPORT_REDIS_URL: must start with redis:// or unix://");
    assert_has_line(e, "EXPORT_SERVICE_my_svc_URL: service names are [A-Z0-9]+");
    assert_has_line(e, "--job-timeout: must be 1..86400, got 0");
    assert_has_line(e, "--bogus: unknown flag (see --help)");
    assert_has_line(e, "--batch-rows: must be an integer, got \"1x\"");
    assert_int_equal(count_lines(e), 9);
    assert_int_not_equal(e[strlen(e) - 1], '\n');
    free(e);
}

static void test_integer_parsing(void **state)
{
    static const char *const bad_syntax[] = {
        "", " 5", "5 ", "0x10", "1e3", "1.0", "+", "-", "10k", "٣", "5\n",
    };
    static const char *const out_of_range[] = {
        "0", "-1", "1025", "99999999999999999999", "-99999999999999999999",
    };
    char var[64], want[128];
    struct exw_config c;
    char *e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad_syntax) / sizeof(bad_syntax[0]); i++) {
        /* Flags, since an empty variable counts as unset. */
        e = load_bad(ENV("X=1"), ARGS("--pool-size", (char *)bad_syntax[i]));
        assert_non_null(strstr(e, "--pool-size: must be an integer, got \""));
        assert_int_equal(count_lines(e), 1);
        free(e);
    }
    for (i = 0; i < sizeof(out_of_range) / sizeof(out_of_range[0]); i++) {
        snprintf(var, sizeof(var), "EXPORT_POOL_SIZE=%s", out_of_range[i]);
        snprintf(want, sizeof(want), "EXPORT_POOL_SIZE: must be 1..1024, got %s", out_of_range[i]);
        e = load_bad(ENV(var), NO_ARGS);
        assert_string_equal(e, want);
        free(e);
    }
    /* The bounds themselves are fine, and so is a leading '+'. */
    load_ok(&c, ENV("EXPORT_POOL_SIZE=1024", "EXPORT_SHUTDOWN_GRACE=+0"), NO_ARGS);
    assert_int_equal(c.pool_size, 1024);
    assert_int_equal(c.shutdown_grace_s, 0);
    exw_config_cleanup(&c);
}

static void test_every_range(void **state)
{
    static const struct {
        const char *name;
        const char *below, *above;
    } ranges[] = {
        {"EXPORT_POOL_SIZE", "0", "1025"},
        {"EXPORT_MAX_ATTEMPTS", "0", "101"},
        {"EXPORT_JOB_TIMEOUT", "0", "86401"},
        {"EXPORT_SHUTDOWN_GRACE", "-1", "3601"},
        {"EXPORT_RESULT_TTL", "0", "31536001"},
        {"EXPORT_MAX_JOB_BYTES", "1023", "2147483648"},
        {"EXPORT_HEARTBEAT_TTL_MS", "999", "10001"},
        {"EXPORT_BATCH_ROWS", "0", "1000001"},
        {"EXPORT_MAX_RESPONSE_BYTES", "1023", "1073741825"},
        {"EXPORT_MAX_SHEET_ROWS", "1", "1048577"},
        {"EXPORT_MAX_ROW_BYTES", "1023", "536870913"},
        {"EXPORT_MAX_RESULT_BYTES", "4095", "536870913"},
    };
    char lo[96], hi[96];
    char *e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        snprintf(lo, sizeof(lo), "%s=%s", ranges[i].name, ranges[i].below);
        snprintf(hi, sizeof(hi), "%s=%s", ranges[i].name, ranges[i].above);
        e = load_bad(ENV(lo), NO_ARGS);
        assert_int_equal(strncmp(e, ranges[i].name, strlen(ranges[i].name)), 0);
        assert_non_null(strstr(e, ": must be "));
        free(e);
        e = load_bad(ENV(hi), NO_ARGS);
        assert_int_equal(strncmp(e, ranges[i].name, strlen(ranges[i].name)), 0);
        free(e);
    }
}

static void test_string_rules(void **state)
{
    char long_prefix[100], long_id[200], file_path[600], var[700];

    (void)state;
    snprintf(long_prefix, sizeof(long_prefix), "EXPORT_PREFIX=%065d", 0);
    expect_one_error(ENV(long_prefix), NO_ARGS,
                     "EXPORT_PREFIX: must be 1 to 64 characters long, got 65");
    expect_one_error(ENV("EXPORT_PREFIX=a\tb"), NO_ARGS, "EXPORT_PREFIX: must not contain");
    expect_one_error(ENV("X=1"), ARGS("--prefix="), "--prefix: must be 1 to 64 characters");

    snprintf(long_id, sizeof(long_id), "EXPORT_WORKER_ID=%0129d", 0);
    expect_one_error(ENV(long_id), NO_ARGS, "EXPORT_WORKER_ID: must be 1 to 128 characters");
    expect_one_error(ENV("EXPORT_WORKER_ID=a/b"), NO_ARGS,
                     "EXPORT_WORKER_ID: may only contain A-Z a-z 0-9 . _ : -, got \"a/b\"");
    expect_one_error(ENV("EXPORT_WORKER_ID=a\nb"), NO_ARGS, "got \"a\\x0ab\"");

    expect_one_error(ENV("EXPORT_TMPDIR=tmp"), NO_ARGS,
                     "EXPORT_TMPDIR: must be an absolute path, got \"tmp\"");
    expect_one_error(ENV("EXPORT_TMPDIR=/nonexistent/exw"), NO_ARGS,
                     "EXPORT_TMPDIR: \"/nonexistent/exw\": No such file or directory");
    snprintf(file_path, sizeof(file_path), "%s/test_config_not_a_dir", scratch);
    write_file(file_path, "x", 1);
    snprintf(var, sizeof(var), "EXPORT_TMPDIR=%s", file_path);
    expect_one_error(ENV(var), NO_ARGS, "is not a folder");
    unlink(file_path);
}

static void test_metrics_addr(void **state)
{
    struct exw_config c;
    char *d;

    (void)state;
    load_ok(&c, ENV("X=1"), NO_ARGS);
    assert_null(c.metrics_addr); /* off unless asked for */
    d = exw_config_describe(&c);
    assert_null(strstr(d, "metrics-addr"));
    free(d);
    exw_config_cleanup(&c);

    load_ok(&c, ENV("EXPORT_METRICS_ADDR=127.0.0.1:9100"), NO_ARGS);
    assert_string_equal(c.metrics_addr, "127.0.0.1:9100");
    d = exw_config_describe(&c);
    assert_non_null(strstr(d, " metrics-addr=127.0.0.1:9100 "));
    free(d);
    exw_config_cleanup(&c);
    load_ok(&c, ENV("EXPORT_METRICS_ADDR=127.0.0.1:9100"), ARGS("--metrics-addr", "[::1]:0"));
    assert_string_equal(c.metrics_addr, "[::1]:0");
    exw_config_cleanup(&c);
    load_ok(&c, ENV("EXPORT_METRICS_ADDR=localhost:65535"), NO_ARGS);
    exw_config_cleanup(&c);
    load_ok(&c, ENV("EXPORT_METRICS_ADDR=0.0.0.0:9100"), NO_ARGS);
    exw_config_cleanup(&c);

    expect_one_error(ENV("EXPORT_METRICS_ADDR=9100"), NO_ARGS,
                     "EXPORT_METRICS_ADDR: must be HOST:PORT, e.g. 127.0.0.1:9100, got \"9100\"");
    expect_one_error(ENV("EXPORT_METRICS_ADDR=:9100"), NO_ARGS,
                     "EXPORT_METRICS_ADDR: must be HOST:PORT with a host (0.0.0.0 for every");
    expect_one_error(ENV("EXPORT_METRICS_ADDR=localhost:"), NO_ARGS,
                     "EXPORT_METRICS_ADDR: the port must be 0 to 65535, got \"localhost:\"");
    expect_one_error(ENV("EXPORT_METRICS_ADDR=localhost:65536"), NO_ARGS,
                     "the port must be 0 to 65535");
    expect_one_error(ENV("EXPORT_METRICS_ADDR=localhost:-1"), NO_ARGS,
                     "the port must be 0 to 65535");
    expect_one_error(ENV("EXPORT_METRICS_ADDR=localhost:9100x"), NO_ARGS,
                     "the port must be 0 to 65535");
    expect_one_error(ENV("EXPORT_METRICS_ADDR=::1:9100"), NO_ARGS,
                     "an IPv6 address needs brackets, e.g. [::1]:9100");
    expect_one_error(ENV("EXPORT_METRICS_ADDR=[::1:9100"), NO_ARGS, "must be [IPV6]:PORT");
    expect_one_error(ENV("EXPORT_METRICS_ADDR=[]:9100"), NO_ARGS, "with a host");
    expect_one_error(ENV("EXPORT_METRICS_ADDR=a b:9100"), NO_ARGS, "with a host");
    expect_one_error(ENV("X=1"), ARGS("--metrics-addr=no-such-host.invalid:9100"),
                     "--metrics-addr: cannot resolve the host \"no-such-host.invalid\"");
}

static void test_flag_errors(void **state)
{
    char *e;

    (void)state;
    expect_one_error(ENV("X=1"), ARGS("--nope=secret"), "--nope: unknown flag (see --help)");
    expect_one_error(ENV("X=1"), ARGS("-x"), "-x: unknown flag");
    expect_one_error(ENV("X=1"), ARGS("--pool-size"), "--pool-size: needs a value");
    expect_one_error(ENV("X=1"), ARGS("--service"), "--service: needs a value");
    /* A stray word is not echoed: it may be a password meant for a flag. */
    e = load_bad(ENV("X=1"), ARGS("--prefix", "p", "redis://:hunter2@h"));
    assert_string_equal(e, "argument 3: unexpected; settings are given as --flag VALUE");
    free(e);
    e = load_bad(ENV("X=1"), ARGS("--", "--prefix"));
    assert_string_equal(e, "argument 2: unexpected; settings are given as --flag VALUE");
    free(e);
    e = load_bad(ENV("X=1"), ARGS("--redis-urll=redis://:hunter2@h"));
    assert_null(strstr(e, "hunter2"));
    free(e);
}

static void test_help(void **state)
{
    static const struct exw_config zero;
    struct exw_config c;
    char *errors = (char *)1;
    int help = 0;

    (void)state;
    assert_int_equal(load_help(&c, ENV("X=1"), ARGS("--help"), &help, &errors), EXW_OK);
    assert_int_equal(help, 1);
    assert_null(errors);
    assert_memory_equal(&c, &zero, sizeof(c));
    /* Help wins over bad settings: the user asked how to fix them. */
    help = 0;
    assert_int_equal(
        load_help(&c, ENV("EXPORT_POOL_SIZE=0"), ARGS("--bogus", "-h"), &help, &errors), EXW_OK);
    assert_int_equal(help, 1);
    assert_null(errors);
    exw_config_cleanup(&c);
}

static void test_cleanup_and_reuse(void **state)
{
    struct exw_config c;

    (void)state;
    load_ok(&c, ENV("EXPORT_SERVICE_A_URL=http://a/{key}", "EXPORT_SERVICE_A_AUTH=x"), NO_ARGS);
    exw_config_cleanup(&c);
    exw_config_cleanup(&c); /* Twice is harmless. */
    exw_config_cleanup(NULL);
    load_ok(&c, ENV("EXPORT_POOL_SIZE=3"), NO_ARGS);
    assert_int_equal(c.pool_size, 3);
    exw_config_cleanup(&c);
}

static void test_size_limits(void **state)
{
    struct exw_config c;
    char *e;

    (void)state;
    /* Each bound is accepted, from a variable or a flag. */
    load_ok(&c, ENV("EXPORT_MAX_ROW_BYTES=1024", "EXPORT_MAX_RESULT_BYTES=4096"), NO_ARGS);
    assert_int_equal(c.max_row_bytes, 1024);
    assert_int_equal(c.max_result_bytes, 4096);
    exw_config_cleanup(&c);
    load_ok(&c, ENV("EXPORT_MAX_ROW_BYTES=1"),
            ARGS("--max-row-bytes=536870912", "--max-result-bytes", "536870912"));
    assert_int_equal(c.max_row_bytes, 536870912);
    assert_int_equal(c.max_result_bytes, 536870912);
    exw_config_cleanup(&c);

    /* Past them, each says its range; both are reported at once. */
    e = load_bad(ENV("EXPORT_MAX_ROW_BYTES=1023", "EXPORT_MAX_RESULT_BYTES=536870913"), NO_ARGS);
    assert_string_equal(e, "EXPORT_MAX_ROW_BYTES: must be 1024..536870912, got 1023\n"
                           "EXPORT_MAX_RESULT_BYTES: must be 4096..536870912, got 536870913");
    free(e);
    e = load_bad(ENV("X=1"), ARGS("--max-result-bytes", "4095", "--max-row-bytes=1MiB"));
    assert_string_equal(e, "--max-row-bytes: must be an integer, got \"1MiB\"\n"
                           "--max-result-bytes: must be 4096..536870912, got 4095");
    free(e);
}

/* Lookup services join the rest: --service in both forms, and their errors
 * in the one list. */
static void test_services_in_load(void **state)
{
    struct exw_config c;
    char *e;

    (void)state;
    load_ok(&c, ENV("EXPORT_SERVICE_A_URL=http://env/{key}", "EXPORT_SERVICE_A_AUTH=tok"),
            ARGS("--service", "a=http://flag/{key}", "--service=B2=https://b/{key}?x=1"));
    assert_int_equal(c.nservices, 2);
    assert_string_equal(exw_config_service(&c, "A")->url, "http://flag/{key}");
    assert_string_equal(exw_config_service(&c, "a")->auth, "tok");
    assert_string_equal(exw_config_service(&c, "b2")->url, "https://b/{key}?x=1");
    exw_config_cleanup(&c);
    assert_int_equal(c.nservices, 0);

    e = load_bad(ENV("EXPORT_POOL_SIZE=0", "EXPORT_SERVICE_X_URL=ftp://x/{key}"),
                 ARGS("--service", "nourl"));
    assert_string_equal(e, "EXPORT_POOL_SIZE: must be 1..1024, got 0\n"
                           "--service: expected NAME=URL\n"
                           "EXPORT_SERVICE_X_URL: must start with http:// or https://");
    free(e);
}

/* ---- Secrets ---- */

static void test_secrets_not_in_errors(void **state)
{
    static char *const bad_urls[] = {
        "EXPORT_REDIS_URL=redis://u:hunter2@h:99999/0", "EXPORT_REDIS_URL=redis://:hunter2@h/x",
        "EXPORT_REDIS_URL=redis://hunter2@h",           "EXPORT_REDIS_URL=redis://:hunter2%@h",
        "EXPORT_REDIS_URL=redis://u:hunter2@h?db=1",    "EXPORT_REDIS_URL=https://u:hunter2@h",
        "EXPORT_REDIS_URL=unix://u:hunter2@/s?db=x",
    };
    char *e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        e = load_bad(ENV(bad_urls[i]), NO_ARGS);
        assert_int_equal(strncmp(e, "EXPORT_REDIS_URL: ", 18), 0);
        if (strstr(e, "hunter2") != NULL)
            fail_msg("password shown: %s", e);
        free(e);
    }
    e = load_bad(ENV("X=1"), ARGS("--redis-url", "redis://:hunter2@h:0"));
    assert_string_equal(e, "--redis-url: the port must be a number from 1 to 65535");
    free(e);
    /* Service credentials: the auth value, and user info in the URL. */
    e = load_bad(ENV("EXPORT_SERVICE_X_URL=ftp://u:hunter2@x/{key}",
                     "EXPORT_SERVICE_X_AUTH=Bearer hunter2\x01"),
                 NO_ARGS);
    assert_null(strstr(e, "hunter2"));
    assert_int_equal(count_lines(e), 2);
    free(e);
    e = load_bad(ENV("X=1"), ARGS("--service", "x_y=https://u:hunter2@x/{key}", "--service",
                                  "https://u:hunter2@x/{key}"));
    assert_null(strstr(e, "hunter2"));
    free(e);
}

static void test_describe(void **state)
{
    char auth_file[600], var[700], tmpdir[600];
    struct exw_config c;
    char *d, *want;
    size_t n;

    (void)state;
    snprintf(auth_file, sizeof(auth_file), "%s/test_config_describe_%ld", scratch, (long)getpid());
    write_file(auth_file, "Token hunter2-file\n", 19);
    snprintf(var, sizeof(var), "EXPORT_SERVICE_B_AUTH_FILE=%s", auth_file);
    snprintf(tmpdir, sizeof(tmpdir), "EXPORT_TMPDIR=%s", scratch);
    load_ok(&c,
            ENV("EXPORT_REDIS_URL=redis://al%20ice:hunter2@[::1]:6380/2", "EXPORT_WORKER_ID=w1",
                tmpdir, "EXPORT_SERVICE_A_URL=https://u:hunter2-url@a/{key}",
                "EXPORT_SERVICE_A_AUTH=Bearer hunter2-env", "EXPORT_SERVICE_B_URL=http://b/{key}",
                var, "EXPORT_SERVICE_C_URL=http://c/x?k={key}&v=a@b"),
            NO_ARGS);
    unlink(auth_file);
    assert_string_equal(exw_config_service(&c, "B")->auth, "Token hunter2-file");
    d = exw_config_describe(&c);
    assert_non_null(d);
    assert_null(strstr(d, "hunter2"));
    n = (size_t)snprintf(NULL, 0, "x%sx", scratch) + 4096;
    want = malloc(n);
    assert_non_null(want);
    snprintf(want, n,
             "redis-url=redis://al%%20ice:***@[::1]:6380/2 prefix=export worker-id=w1"
             " heartbeat-ttl-ms=6000 concurrency=1 max-attempts=3 job-timeout=900 shutdown-grace=8"
             " result-ttl=86400 max-job-bytes=67108864 max-row-bytes=1048576"
             " max-result-bytes=268435456 max-rows=10000000"
             " max-columns=16384 max-header-chars=255 max-string-chars=32767 batch-rows=4096"
             " max-sheet-rows=1048576 tmpdir=%s"
             " log-format=text log-level=info pool-size=32 max-response-bytes=1048576"
             " service.A.url=https://***@a/{key} service.A.auth=***"
             " service.A.timeout-ms=5000 service.A.retries=3"
             " service.B.url=http://b/{key} service.B.auth=***"
             " service.B.timeout-ms=5000 service.B.retries=3"
             " service.C.url=http://c/x?k={key}&v=a@b"
             " service.C.timeout-ms=5000 service.C.retries=3",
             scratch);
    assert_string_equal(d, want);
    free(want);
    free(d);
    exw_config_cleanup(&c);

    load_ok(&c, ENV("EXPORT_REDIS_URL=unix://:hunter2@/run/r.sock?db=3"), NO_ARGS);
    d = exw_config_describe(&c);
    assert_non_null(strstr(d, "redis-url=unix://:***@/run/r.sock?db=3 "));
    assert_null(strstr(d, "hunter2"));
    free(d);
    exw_config_cleanup(&c);
}

/* ---- Redis Sentinel ---- */

static void test_sentinels(void **state)
{
    struct exw_config c;
    char *d, *e;

    (void)state;
    load_ok(&c,
            ENV("EXPORT_REDIS_URL=redis://:hunter2@/2",
                "EXPORT_REDIS_SENTINELS=s1:26379, [::1]:26380,s3", "EXPORT_REDIS_MASTER=mymaster",
                "EXPORT_REDIS_SENTINEL_PASSWORD=sentinel-hunter2"),
            NO_ARGS);
    assert_null(c.redis.host);
    assert_string_equal(c.redis.password, "hunter2");
    assert_int_equal(c.redis.db, 2);
    assert_int_equal(c.redis.nsentinels, 3);
    assert_string_equal(c.redis.sentinels[1].host, "::1");
    assert_int_equal(c.redis.sentinels[1].port, 26380);
    assert_int_equal(c.redis.sentinels[2].port, 26379);
    assert_string_equal(c.redis.master, "mymaster");
    assert_string_equal(c.redis.sentinel_password, "sentinel-hunter2");
    d = exw_config_describe(&c);
    assert_contains(d, "redis-url=redis://:***@/2 redis-sentinels=\"s1:26379, [::1]:26380,s3\""
                       " redis-master=mymaster redis-sentinel-password=*** prefix=export ");
    assert_null(strstr(d, "hunter2"));
    free(d);
    exw_config_cleanup(&c);

    /* Flags, and a URL with a host, which is then ignored. */
    load_ok(&c, ENV("EXPORT_REDIS_URL=redis://h:1/0"),
            ARGS("--redis-sentinels", "a:1", "--redis-master=m"));
    assert_int_equal(c.redis.nsentinels, 1);
    assert_null(c.redis.sentinel_password);
    d = exw_config_describe(&c);
    assert_contains(d, "redis-url=redis://h:1/0 redis-sentinels=a:1 redis-master=m prefix=");
    assert_null(strstr(d, "redis-sentinel-password"));
    free(d);
    exw_config_cleanup(&c);

    /* Without sentinels nothing of theirs is described. */
    load_ok(&c, ENV("X=1"), NO_ARGS);
    assert_int_equal(c.redis.nsentinels, 0);
    d = exw_config_describe(&c);
    assert_null(strstr(d, "sentinel"));
    assert_null(strstr(d, "master"));
    free(d);
    exw_config_cleanup(&c);

    e = load_bad(ENV("EXPORT_REDIS_SENTINELS=a:1"), NO_ARGS);
    assert_string_equal(e, "EXPORT_REDIS_MASTER: required with EXPORT_REDIS_SENTINELS");
    free(e);
    e = load_bad(ENV("X=1"), ARGS("--redis-sentinels", "a:1"));
    assert_string_equal(e, "EXPORT_REDIS_MASTER: required with --redis-sentinels");
    free(e);
    e = load_bad(ENV("EXPORT_REDIS_URL=redis://:hunter2@/0"), NO_ARGS);
    assert_string_equal(
        e, "EXPORT_REDIS_URL: has no host (it may be left out only with EXPORT_REDIS_SENTINELS)");
    free(e);
    e = load_bad(ENV("EXPORT_REDIS_MASTER=m", "EXPORT_REDIS_SENTINEL_PASSWORD=hunter2"), NO_ARGS);
    assert_has_line(e, "EXPORT_REDIS_MASTER: is set, but EXPORT_REDIS_SENTINELS is not");
    assert_has_line(e, "EXPORT_REDIS_SENTINEL_PASSWORD: is set, but EXPORT_REDIS_SENTINELS is not");
    assert_null(strstr(e, "hunter2"));
    free(e);
    e = load_bad(
        ENV("EXPORT_REDIS_URL=unix:///r.sock", "EXPORT_REDIS_SENTINELS=a", "EXPORT_REDIS_MASTER=m"),
        NO_ARGS);
    assert_string_equal(e, "EXPORT_REDIS_URL: must be redis:// with EXPORT_REDIS_SENTINELS: the"
                           " sentinels name a host and port, not a socket");
    free(e);
    e = load_bad(ENV("EXPORT_REDIS_SENTINELS=a:1,b:0", "EXPORT_REDIS_MASTER=my master",
                     "EXPORT_REDIS_SENTINEL_PASSWORD=hunter2"),
                 NO_ARGS);
    assert_has_line(e, "EXPORT_REDIS_SENTINELS: entry 2: the port must be a number from 1 to"
                       " 65535");
    assert_has_line(e, "EXPORT_REDIS_MASTER: must not contain spaces or control characters");
    assert_null(strstr(e, "hunter2"));
    free(e);
    /* A bad URL is reported once, not again as a topology problem. */
    e = load_bad(ENV("EXPORT_REDIS_URL=redis://:hunter2@/x", "EXPORT_REDIS_SENTINELS=a",
                     "EXPORT_REDIS_MASTER=m"),
                 NO_ARGS);
    assert_string_equal(e, "EXPORT_REDIS_URL: the database after / must be a number from 0 to"
                           " 2147483647");
    free(e);
}

/* ---- --help ---- */

static void test_usage(void **state)
{
    static const char *const must_hold[] = {
        "EXPORT_REDIS_URL, --redis-url URL",
        "Default redis://127.0.0.1:6379/0.",
        "EXPORT_REDIS_SENTINELS, --redis-sentinels HOST:PORT,...",
        "EXPORT_REDIS_MASTER, --redis-master NAME",
        "EXPORT_REDIS_SENTINEL_PASSWORD, --redis-sentinel-password PASSWORD",
        "EXPORT_PREFIX, --prefix P",
        "Default export; ",
        "EXPORT_POOL_SIZE, --pool-size N",
        "Default 32, from 1 to 1024.",
        "EXPORT_WORKER_ID, --worker-id ID",
        "Default HOSTNAME-PID-RANDOM",
        "EXPORT_MAX_ATTEMPTS, --max-attempts N",
        "Default 3, from 1 to 100.",
        "EXPORT_JOB_TIMEOUT, --job-timeout SECONDS",
        "Default 900, from 1 to 86400.",
        "EXPORT_SHUTDOWN_GRACE, --shutdown-grace SECONDS",
        "Default 8, from 0 to 3600.",
        "EXPORT_RESULT_TTL, --result-ttl SECONDS",
        "Default 86400, from 1 to 31536000.",
        "EXPORT_MAX_JOB_BYTES, --max-job-bytes BYTES",
        "Default 67108864, from 1024 to 2147483647.",
        "EXPORT_MAX_ROW_BYTES, --max-row-bytes BYTES",
        "Default 1048576, from 1024 to 536870912.",
        "EXPORT_MAX_RESULT_BYTES, --max-result-bytes BYTES",
        "Default 268435456, from 4096 to 536870912.",
        "EXPORT_LOG_FORMAT, --log-format FORMAT",
        "One of text or json; default text.",
        "EXPORT_LOG_LEVEL, --log-level LEVEL",
        "One of debug, info, warn or error; default info.",
        "EXPORT_TMPDIR, --tmpdir DIR",
        "Default $TMPDIR if set, else /var/tmp",
        "EXPORT_HEARTBEAT_TTL_MS, --heartbeat-ttl-ms MS",
        "Default 6000, from 1000 to 10000.",
        "EXPORT_BATCH_ROWS, --batch-rows N",
        "Default 4096, from 1 to 1000000.",
        "EXPORT_MAX_RESPONSE_BYTES, --max-response-bytes BYTES",
        "Default 1048576, from 1024 to 1073741824.",
        "EXPORT_MAX_SHEET_ROWS, --max-sheet-rows N",
        "Default 1048576, from 2 to 1048576.",
        "EXPORT_METRICS_ADDR, --metrics-addr HOST:PORT",
        "Default unset (no endpoint); 3 to 300 characters.",
        "EXPORT_SERVICE_<NAME>_URL, --service NAME=URL",
        "EXPORT_SERVICE_<NAME>_AUTH\n",
        "EXPORT_SERVICE_<NAME>_AUTH_FILE\n",
        "EXPORT_SERVICE_<NAME>_TIMEOUT_MS\n",
        "Default 5000, from 1 to 600000.",
        "EXPORT_SERVICE_<NAME>_RETRIES\n",
        "Default 3, from 0 to 20.",
        "-h, --help",
    };
    const char *u = exw_config_usage();
    const char *line, *nl;
    size_t i;

    (void)state;
    assert_non_null(u);
    assert_ptr_equal(exw_config_usage(), u);
    assert_int_equal(strncmp(u, "Usage: export-worker", 20), 0);
    for (i = 0; i < sizeof(must_hold) / sizeof(must_hold[0]); i++) {
        if (strstr(u, must_hold[i]) == NULL)
            fail_msg("--help lacks \"%s\"", must_hold[i]);
    }
    /* Fits a terminal: every line within 80 columns, the text ends in a newline. */
    for (line = u; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        if (nl - line > 80)
            fail_msg("line longer than 80 columns: %.*s", (int)(nl - line), line);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),           cmocka_unit_test(test_default_tmpdir),
        cmocka_unit_test(test_worker_ids_differ),  cmocka_unit_test(test_every_variable),
        cmocka_unit_test(test_every_flag),         cmocka_unit_test(test_flags_override_env),
        cmocka_unit_test(test_equals_form),        cmocka_unit_test(test_empty_variable_is_unset),
        cmocka_unit_test(test_enums_any_case),     cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_all_errors_at_once), cmocka_unit_test(test_integer_parsing),
        cmocka_unit_test(test_every_range),        cmocka_unit_test(test_string_rules),
        cmocka_unit_test(test_flag_errors),        cmocka_unit_test(test_help),
        cmocka_unit_test(test_cleanup_and_reuse),  cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_services_in_load),   cmocka_unit_test(test_secrets_not_in_errors),
        cmocka_unit_test(test_describe),           cmocka_unit_test(test_usage),
        cmocka_unit_test(test_metrics_addr),       cmocka_unit_test(test_sentinels),
    };

    return cmocka_run_group_tests(tests, setup_group, NULL);
}
