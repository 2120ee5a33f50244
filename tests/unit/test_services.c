/* test_services.c: lookup services from EXPORT_SERVICE_<NAME>_* variables and
 * --service values: names, suffixes, URL templates, auth values and files, the
 * limits, the description, and secrets kept out of both. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exw/config.h"
#include "exw/services.h"

static char *scratch; /* a folder for auth files */

#define ENV(...) ((char *[]){__VA_ARGS__, NULL})
#define NO_ENV ((char *[]){NULL})
#define FLAGS(...) ((char *[]){__VA_ARGS__, NULL})
#define NO_FLAGS ((char *[]){NULL})

static int setup_group(void **state)
{
    (void)state;
    scratch = scratch_dir();
    return 0;
}

/* Loads the services of @env and the --service values @flags into a zeroed
 * @c. Returns the error lines, without the last newline (caller frees), or
 * NULL when there are none. */
static char *load(struct exw_config *c, char **env, char **flags)
{
    struct exw_buf errs;
    size_t nflags = 0;

    memset(c, 0, sizeof(*c));
    while (flags[nflags] != NULL)
        nflags++;
    exw_buf_init(&errs, 1 << 20);
    exw_services_load(c->services, &c->nservices, env, (const char *const *)flags, nflags, &errs);
    if (errs.len == 0) {
        exw_buf_cleanup(&errs);
        return NULL;
    }
    assert_int_equal(errs.data[errs.len - 1], '\n');
    errs.data[--errs.len] = '\0';
    return exw_buf_steal(&errs, NULL);
}

static void unload(struct exw_config *c)
{
    exw_services_cleanup(c->services, c->nservices);
    assert_true(c->nservices == 0 || c->services[0].url == NULL);
}

static void load_ok(struct exw_config *c, char **env, char **flags)
{
    char *errors = load(c, env, flags);

    if (errors != NULL)
        fail_msg("unexpected errors:\n%s", errors);
}

/* Loads what must be a bad configuration and returns the error text. */
static char *load_bad(char **env, char **flags)
{
    struct exw_config c;
    char *errors = load(&c, env, flags);

    assert_non_null(errors);
    unload(&c);
    return errors;
}

/* Loads @env/@flags, which must fail with one error containing @part. */
static void expect_one_error(char **env, char **flags, const char *part)
{
    expect_one_line_with(load_bad(env, flags), part);
}

static void test_services(void **state)
{
    const struct exw_service *s;
    struct exw_config c;

    (void)state;
    load_ok(&c,
            ENV("EXPORT_SERVICE_TETHER_URL=https://tether.internal/v1/c/{key}",
                "EXPORT_SERVICE_TETHER_AUTH=Bearer abc", "EXPORT_SERVICE_TETHER_TIMEOUT_MS=250",
                "EXPORT_SERVICE_TETHER_RETRIES=0",
                "EXPORT_SERVICE_CRM2_URL=http://crm:8080/?id={key}", "EXPORT_SERVICES=ignored",
                "EXPORT_SERVICE=ignored"),
            NO_FLAGS);
    assert_int_equal(c.nservices, 2);
    /* Sorted by name. */
    assert_string_equal(c.services[0].name, "CRM2");
    assert_string_equal(c.services[1].name, "TETHER");

    s = exw_config_service(&c, "tether");
    assert_ptr_equal(s, &c.services[1]);
    assert_ptr_equal(exw_config_service(&c, "TeThEr"), s);
    assert_string_equal(s->url, "https://tether.internal/v1/c/{key}");
    assert_string_equal(s->auth, "Bearer abc");
    assert_int_equal(s->timeout_ms, 250);
    assert_int_equal(s->retries, 0);

    s = exw_config_service(&c, "crm2");
    assert_non_null(s);
    assert_string_equal(s->url, "http://crm:8080/?id={key}");
    assert_null(s->auth);
    assert_int_equal(s->timeout_ms, 5000);
    assert_int_equal(s->retries, 3);

    assert_null(exw_config_service(&c, "crm"));
    assert_null(exw_config_service(&c, "tether2"));
    assert_null(exw_config_service(&c, ""));
    assert_null(exw_config_service(&c, NULL));
    unload(&c);
}

/* An environment of one or two variables and the one error it must give. */
struct env_case {
    char *var, *var2; /* var2 may be NULL */
    const char *want;
};

static void expect_env_errors(const struct env_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect_one_error(ENV(cases[i].var, cases[i].var2), NO_FLAGS, cases[i].want);
}

static void test_service_name_rules(void **state)
{
    static const struct env_case cases[] = {
        {"EXPORT_SERVICE_MY_SVC_URL=http://x/{key}", NULL,
         "EXPORT_SERVICE_MY_SVC_URL: service names are [A-Z0-9]+"},
        {"EXPORT_SERVICE_foo_URL=http://x/{key}", NULL,
         "EXPORT_SERVICE_foo_URL: service names are [A-Z0-9]+"},
        {"EXPORT_SERVICE__URL=http://x/{key}", NULL,
         "EXPORT_SERVICE__URL: service names are [A-Z0-9]+"},
        /* Suffixes are taken from the right, so these names hold an underscore. */
        {"EXPORT_SERVICE_A_AUTH_URL=http://x/{key}", NULL,
         "EXPORT_SERVICE_A_AUTH_URL: service names are [A-Z0-9]+"},
        {"EXPORT_SERVICE_A_URL_TIMEOUT_MS=5", NULL,
         "EXPORT_SERVICE_A_URL_TIMEOUT_MS: service names are [A-Z0-9]+"},
        {"EXPORT_SERVICE_A_HOST=x", NULL, "EXPORT_SERVICE_A_HOST: not a lookup service setting"},
        {"EXPORT_SERVICE_URL=http://x/{key}", NULL,
         "EXPORT_SERVICE_URL: not a lookup service setting"},
    };
    char *e;

    (void)state;
    expect_env_errors(cases, sizeof(cases) / sizeof(cases[0]));
    e = load_bad(ENV("EXPORT_SERVICE_"
                     "A123456789B123456789C123456789D123456789E123456789F123456789G12345_URL="
                     "http://x/{key}"),
                 NO_FLAGS);
    assert_non_null(strstr(e, "service names are [A-Z0-9]+, at most 64 characters"));
    free(e);
}

static void test_service_settings_errors(void **state)
{
    static const struct env_case cases[] = {
        {"EXPORT_SERVICE_X_TIMEOUT_MS=5", NULL,
         "EXPORT_SERVICE_X: has settings but no EXPORT_SERVICE_X_URL (or --service X=URL)"},
        {"EXPORT_SERVICE_X_URL=ftp://x/{key}", NULL,
         "EXPORT_SERVICE_X_URL: must start with http:// or https://"},
        {"EXPORT_SERVICE_X_URL=http://x/", NULL,
         "EXPORT_SERVICE_X_URL: must contain {key} where the key goes"},
        {"EXPORT_SERVICE_X_URL=http://{key}.evil/", NULL,
         "EXPORT_SERVICE_X_URL: must have {key} in its path or query"},
        {"EXPORT_SERVICE_X_URL=http:///{key}", NULL, "EXPORT_SERVICE_X_URL: has no host"},
        {"EXPORT_SERVICE_X_URL=http://x/a b/{key}", NULL,
         "EXPORT_SERVICE_X_URL: must not contain spaces"},
        {"EXPORT_SERVICE_X_URL=http://x/{key}", "EXPORT_SERVICE_X_TIMEOUT_MS=0",
         "EXPORT_SERVICE_X_TIMEOUT_MS: must be 1..600000, got 0"},
        {"EXPORT_SERVICE_X_URL=http://x/{key}", "EXPORT_SERVICE_X_RETRIES=21",
         "EXPORT_SERVICE_X_RETRIES: must be 0..20, got 21"},
        {"EXPORT_SERVICE_X_URL=http://x/{key}", "EXPORT_SERVICE_X_RETRIES=two",
         "EXPORT_SERVICE_X_RETRIES: must be an integer, got \"two\""},
    };
    char *e;

    (void)state;
    expect_env_errors(cases, sizeof(cases) / sizeof(cases[0]));
    expect_one_error(ENV("EXPORT_SERVICE_X_URL=http://x/{key}", "EXPORT_SERVICE_X_AUTH=a",
                         "EXPORT_SERVICE_X_AUTH_FILE=/etc/hostname"),
                     NO_FLAGS,
                     "EXPORT_SERVICE_X_AUTH: set either this or EXPORT_SERVICE_X_AUTH_FILE,"
                     " not both");
    e = load_bad(
        ENV("EXPORT_SERVICE_X_URL=http://x/{key}", "EXPORT_SERVICE_X_AUTH=Bearer a\r\nX: y"),
        NO_FLAGS);
    assert_string_equal(e, "EXPORT_SERVICE_X_AUTH: must not contain control characters");
    free(e);
}

static void test_service_auth_file(void **state)
{
    static const struct {
        const char *text, *name; /* the file, the name the service is looked up by */
    } one_line[] = {{"Bearer t0k\n", "t"}, {"Bearer t0k\r\n", "T"}, {"Bearer t0k", "T"}};
    char path[600], var[700];
    const struct exw_service *s;
    struct exw_config c;
    size_t i;
    char *e;

    (void)state;
    snprintf(path, sizeof(path), "%s/test_services_auth_%ld", scratch, (long)getpid());
    snprintf(var, sizeof(var), "EXPORT_SERVICE_T_AUTH_FILE=%s", path);

    /* One trailing newline goes, \n or \r\n. */
    for (i = 0; i < sizeof(one_line) / sizeof(one_line[0]); i++) {
        write_file(path, one_line[i].text, strlen(one_line[i].text));
        load_ok(&c, ENV("EXPORT_SERVICE_T_URL=http://t/{key}", var), NO_FLAGS);
        s = exw_config_service(&c, one_line[i].name);
        assert_non_null(s);
        assert_string_equal(s->auth, "Bearer t0k");
        unload(&c);
    }

    /* Only one: a second line is refused, without showing the contents. */
    write_file(path, "Bearer t0k\n\n", 12);
    e = load_bad(ENV("EXPORT_SERVICE_T_URL=http://t/{key}", var), NO_FLAGS);
    assert_non_null(strstr(e, "EXPORT_SERVICE_T_AUTH_FILE: \""));
    assert_non_null(strstr(e, path));
    assert_non_null(strstr(e, "must hold one line without control characters"));
    assert_null(strstr(e, "t0k"));
    free(e);

    write_file(path, "\n", 1);
    expect_one_error(ENV("EXPORT_SERVICE_T_URL=http://t/{key}", var), NO_FLAGS, "is empty");

    unlink(path);
    e = load_bad(ENV("EXPORT_SERVICE_T_URL=http://t/{key}", var), NO_FLAGS);
    assert_non_null(strstr(e, "EXPORT_SERVICE_T_AUTH_FILE: cannot read \""));
    assert_non_null(strstr(e, path));
    assert_non_null(strstr(e, "No such file or directory"));
    assert_int_equal(count_lines(e), 1);
    free(e);

    /* A folder cannot be read either. */
    snprintf(var, sizeof(var), "EXPORT_SERVICE_T_AUTH_FILE=%s", scratch);
    expect_one_error(ENV("EXPORT_SERVICE_T_URL=http://t/{key}", var), NO_FLAGS, "cannot read");
}

static void test_service_flag(void **state)
{
    struct exw_config c;

    (void)state;
    /* --service adds a service or overrides the URL of one from the environment. */
    load_ok(&c,
            ENV("EXPORT_SERVICE_A_URL=http://env/{key}", "EXPORT_SERVICE_A_AUTH=tok",
                "EXPORT_SERVICE_A_RETRIES=1"),
            FLAGS("a=http://flag/{key}", "B2=https://b/{key}?x=1"));
    assert_int_equal(c.nservices, 2);
    assert_string_equal(exw_config_service(&c, "A")->url, "http://flag/{key}");
    assert_string_equal(exw_config_service(&c, "A")->auth, "tok");
    assert_int_equal(exw_config_service(&c, "A")->retries, 1);
    assert_string_equal(exw_config_service(&c, "b2")->url, "https://b/{key}?x=1");
    assert_string_equal(c.services[1].name, "B2");
    unload(&c);

    /* A flag gives the URL a service's other settings lacked. */
    load_ok(&c, ENV("EXPORT_SERVICE_C_TIMEOUT_MS=9"), FLAGS("C=http://c/{key}"));
    assert_int_equal(exw_config_service(&c, "c")->timeout_ms, 9);
    unload(&c);

    expect_one_error(NO_ENV, FLAGS("nourl"), "--service: expected NAME=URL");
    expect_one_error(NO_ENV, FLAGS("a_b=http://x/{key}"),
                     "--service: service names are [A-Za-z0-9]+, at most 64, got \"a_b\"");
    expect_one_error(NO_ENV, FLAGS("A=http://x/"), "--service A: must contain {key}");
}

static void test_too_many_services(void **state)
{
    char vars[EXW_MAX_SERVICES + 2][64];
    char *env[EXW_MAX_SERVICES + 3];
    struct exw_config c;
    char *e;
    int i;

    (void)state;
    for (i = 0; i < EXW_MAX_SERVICES + 1; i++) {
        snprintf(vars[i], sizeof(vars[i]), "EXPORT_SERVICE_S%d_URL=http://s/{key}", i);
        env[i] = vars[i];
    }
    env[EXW_MAX_SERVICES] = "PATH=/usr/bin";
    env[EXW_MAX_SERVICES + 1] = NULL;
    load_ok(&c, env, NO_FLAGS);
    assert_int_equal(c.nservices, EXW_MAX_SERVICES);
    unload(&c);

    env[EXW_MAX_SERVICES + 1] = vars[EXW_MAX_SERVICES];
    env[EXW_MAX_SERVICES + 2] = NULL;
    e = load_bad(env, NO_FLAGS);
    assert_string_equal(e, "EXPORT_SERVICE_S64_URL: too many lookup services, at most 64");
    free(e);
}

static void test_flags_in_order(void **state)
{
    struct exw_config c;

    (void)state;
    /* The last --service of a name wins, whatever its case. */
    load_ok(&c, ENV("EXPORT_SERVICE_A_URL=http://env/{key}"),
            FLAGS("a=http://one/{key}", "A=http://two/{key}"));
    assert_int_equal(c.nservices, 1);
    assert_string_equal(c.services[0].name, "A");
    assert_string_equal(c.services[0].url, "http://two/{key}");
    unload(&c);
    /* An empty variable counts as unset: it neither adds nor breaks a service. */
    load_ok(&c, ENV("EXPORT_SERVICE_A_URL=", "EXPORT_SERVICE_B_AUTH="), NO_FLAGS);
    assert_int_equal(c.nservices, 0);
    unload(&c);
}

static void test_describe(void **state)
{
    struct exw_config c;
    struct exw_buf b;

    (void)state;
    load_ok(&c,
            ENV("EXPORT_SERVICE_A_URL=https://u:hunter2@a/{key}", "EXPORT_SERVICE_A_AUTH=hunter2",
                "EXPORT_SERVICE_A_RETRIES=0", "EXPORT_SERVICE_B_URL=http://b/x?k={key}&v=a@b",
                "EXPORT_SERVICE_B_TIMEOUT_MS=9"),
            NO_FLAGS);
    exw_buf_init(&b, 4096);
    exw_services_describe(c.services, c.nservices, &b);
    assert_string_equal(b.data, " service.A.url=https://***@a/{key} service.A.auth=***"
                                " service.A.timeout-ms=5000 service.A.retries=0"
                                " service.B.url=http://b/x?k={key}&v=a@b"
                                " service.B.timeout-ms=9 service.B.retries=3");
    exw_buf_cleanup(&b);
    /* None: nothing to say. */
    exw_buf_init(&b, 4096);
    exw_services_describe(c.services, 0, &b);
    assert_null(b.data);
    exw_buf_cleanup(&b);
    unload(&c);
}

/* The settings that spare a service: caps, the cache, batches. */
static void test_sparing_settings(void **state)
{
    static const struct env_case cases[] = {
        {"EXPORT_SERVICE_X_URL=http://x/{key}", "EXPORT_SERVICE_X_MAX_INFLIGHT=0",
         "EXPORT_SERVICE_X_MAX_INFLIGHT: must be 1..100000, got 0"},
        {"EXPORT_SERVICE_X_URL=http://x/{key}", "EXPORT_SERVICE_X_RATE=-1",
         "EXPORT_SERVICE_X_RATE: must be 1..1000000, got -1"},
        {"EXPORT_SERVICE_X_URL=http://x/{key}", "EXPORT_SERVICE_X_RATE=2.5",
         "EXPORT_SERVICE_X_RATE: must be an integer"},
        {"EXPORT_SERVICE_X_URL=http://x/{key}", "EXPORT_SERVICE_X_CACHE_TTL=31536001",
         "EXPORT_SERVICE_X_CACHE_TTL: must be 0..31536000"},
        {"EXPORT_SERVICE_X_URL=http://x/{key}", "EXPORT_SERVICE_X_CACHE_MAX_BYTES=0",
         "EXPORT_SERVICE_X_CACHE_MAX_BYTES: must be 1..16777216"},
        {"EXPORT_SERVICE_X_URL=http://x/{key}", "EXPORT_SERVICE_X_BATCH_MAX=10001",
         "EXPORT_SERVICE_X_BATCH_MAX: must be 1..10000"},
        {"EXPORT_SERVICE_X_URL=http://x/{key}", "EXPORT_SERVICE_X_BATCH_URL=http://x/{key}",
         "EXPORT_SERVICE_X_BATCH_URL: must contain {keys} where the keys go"},
        {"EXPORT_SERVICE_X_URL=http://x/{key}", "EXPORT_SERVICE_X_BATCH_URL=http://{keys}/",
         "EXPORT_SERVICE_X_BATCH_URL: must have {keys} in its path or query"},
        {"EXPORT_SERVICE_X_URL=http://x/{key}", "EXPORT_SERVICE_X_BATCH_URL=file:///{keys}",
         "EXPORT_SERVICE_X_BATCH_URL: must start with http:// or https://"},
        {"EXPORT_SERVICE_X_BATCH_URL=http://x/{keys}", NULL,
         "EXPORT_SERVICE_X: has settings but no EXPORT_SERVICE_X_URL"},
        {"EXPORT_SERVICE_X_URL=http://x/{key}", "EXPORT_SERVICE_X_MAXINFLIGHT=3",
         "not a lookup service setting"},
    };
    const struct exw_service *s;
    struct exw_config c;
    struct exw_buf b;

    (void)state;
    expect_env_errors(cases, sizeof(cases) / sizeof(cases[0]));
    load_ok(&c,
            ENV("EXPORT_SERVICE_TETHER_URL=http://t/{key}", "EXPORT_SERVICE_TETHER_MAX_INFLIGHT=10",
                "EXPORT_SERVICE_TETHER_RATE=50", "EXPORT_SERVICE_TETHER_CACHE_TTL=3600",
                "EXPORT_SERVICE_TETHER_CACHE_MAX_BYTES=1000",
                "EXPORT_SERVICE_TETHER_BATCH_URL=https://u:pw@t/b?sn={keys}",
                "EXPORT_SERVICE_TETHER_BATCH_MAX=25", "EXPORT_SERVICE_PLAIN_URL=http://p/{key}"),
            NO_FLAGS);
    s = exw_config_service(&c, "tether");
    assert_int_equal(s->max_inflight, 10);
    assert_int_equal(s->rate, 50);
    assert_int_equal(s->cache_ttl_s, 3600);
    assert_int_equal(s->cache_max_bytes, 1000);
    assert_string_equal(s->batch_url, "https://u:pw@t/b?sn={keys}");
    assert_int_equal(s->batch_max, 25);
    /* The defaults: no cap, no cache, no batches. */
    s = exw_config_service(&c, "plain");
    assert_int_equal(s->max_inflight, 0);
    assert_int_equal(s->rate, 0);
    assert_int_equal(s->cache_ttl_s, 0);
    assert_int_equal(s->cache_max_bytes, 65536);
    assert_null(s->batch_url);
    assert_int_equal(s->batch_max, 100);
    exw_buf_init(&b, 4096);
    exw_services_describe(c.services, c.nservices, &b);
    assert_string_equal(b.data, " service.PLAIN.url=http://p/{key} service.PLAIN.timeout-ms=5000"
                                " service.PLAIN.retries=3"
                                " service.TETHER.url=http://t/{key}"
                                " service.TETHER.timeout-ms=5000 service.TETHER.retries=3"
                                " service.TETHER.max-inflight=10 service.TETHER.rate=50"
                                " service.TETHER.cache-ttl=3600"
                                " service.TETHER.cache-max-bytes=1000"
                                " service.TETHER.batch-url=https://***@t/b?sn={keys}"
                                " service.TETHER.batch-max=25");
    exw_buf_cleanup(&b);
    exw_services_cleanup(c.services, c.nservices);
    assert_null(c.services[1].batch_url);
    /* The help text names each of them. */
    exw_buf_init(&b, 1 << 16);
    exw_services_usage(&b);
    assert_non_null(strstr(b.data, "EXPORT_SERVICE_<NAME>_MAX_INFLIGHT\n"));
    assert_non_null(strstr(b.data, "EXPORT_SERVICE_<NAME>_RATE\n"));
    assert_non_null(strstr(b.data, "EXPORT_SERVICE_<NAME>_CACHE_TTL\n"));
    assert_non_null(strstr(b.data, "EXPORT_SERVICE_<NAME>_CACHE_MAX_BYTES\n"));
    assert_non_null(strstr(b.data, "EXPORT_SERVICE_<NAME>_BATCH_URL\n"));
    assert_non_null(strstr(b.data, "EXPORT_SERVICE_<NAME>_BATCH_MAX\n"));
    assert_non_null(strstr(b.data, "      Default 100, from 1 to 10000.\n"));
    exw_buf_cleanup(&b);
}

static void test_cleanup(void **state)
{
    struct exw_config c;

    (void)state;
    load_ok(&c, ENV("EXPORT_SERVICE_A_URL=http://a/{key}", "EXPORT_SERVICE_A_AUTH=x"), NO_FLAGS);
    exw_services_cleanup(c.services, c.nservices);
    assert_null(c.services[0].url);
    assert_null(c.services[0].auth);
    exw_services_cleanup(c.services, c.nservices); /* Twice is harmless. */
    exw_services_cleanup(NULL, 0);
    /* After errors, what was filled in is freed the same way. */
    free(load_bad(ENV("EXPORT_SERVICE_A_URL=http://a/{key}", "EXPORT_SERVICE_A_AUTH=x",
                      "EXPORT_SERVICE_B_URL=ftp://b/{key}"),
                  NO_FLAGS));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_services),
        cmocka_unit_test(test_service_name_rules),
        cmocka_unit_test(test_service_settings_errors),
        cmocka_unit_test(test_service_auth_file),
        cmocka_unit_test(test_service_flag),
        cmocka_unit_test(test_too_many_services),
        cmocka_unit_test(test_flags_in_order),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_sparing_settings),
        cmocka_unit_test(test_cleanup),
    };

    return cmocka_run_group_tests(tests, setup_group, NULL);
}
