/* test_log.c: the text and JSON line formats, escaping, truncation, level
 * gating, per-thread fields, and whole lines under concurrent writers. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exw/log.h"

/* ---- Capturing fd 2 ---- */

struct capture {
    int saved; /* the real stderr */
    int rd;    /* read end of the pipe now on fd 2 */
};

static void capture_begin(struct capture *cap)
{
    int fds[2];

    fflush(stderr);
    assert_int_equal(pipe(fds), 0);
    cap->saved = dup(2);
    assert_true(cap->saved >= 0);
    assert_int_equal(dup2(fds[1], 2), 2);
    close(fds[1]);
    cap->rd = fds[0];
}

/* Puts stderr back and returns what was written meanwhile (caller frees).
 * Everything fits in the pipe's buffer: the tests write a few lines. */
static char *capture_end(struct capture *cap)
{
    size_t len = 0, cap_size = 65536;
    char *buf = malloc(cap_size + 1);
    ssize_t n;

    assert_non_null(buf);
    assert_int_equal(dup2(cap->saved, 2), 2);
    close(cap->saved);
    while ((n = read(cap->rd, buf + len, cap_size - len)) > 0)
        len += (size_t)n;
    close(cap->rd);
    buf[len] = '\0';
    return buf;
}

static int reset(void **state)
{
    (void)state;
    exw_log_setup(EXW_LOG_TEXT, EXW_LOG_DEBUG);
    exw_log_set_thread("main");
    exw_log_set_job(NULL);
    return 0;
}

/* Checks @ts is YYYY-MM-DDTHH:MM:SS.mmmZ and within a minute of now. */
static void check_timestamp(const char *ts)
{
    struct tm tm;
    time_t t, now = time(NULL);
    int ms;

    assert_int_equal(strlen(ts), 24);
    memset(&tm, 0, sizeof(tm));
    assert_int_equal(sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
                            &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms),
                     7);
    assert_true(ts[4] == '-' && ts[7] == '-' && ts[10] == 'T' && ts[13] == ':' && ts[16] == ':' &&
                ts[19] == '.' && ts[23] == 'Z');
    assert_true(ms >= 0 && ms <= 999);
    /* Days since the epoch, by the civil-from-days inverse (no timegm in POSIX). */
    {
        int y = tm.tm_year, m = tm.tm_mon, d = tm.tm_mday;
        long era, yoe, doy, doe, days;

        y -= m <= 2;
        era = (y >= 0 ? y : y - 399) / 400;
        yoe = y - era * 400;
        doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        days = era * 146097 + doe - 719468;
        t = (time_t)(days * 86400 + tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec);
    }
    assert_true(t >= now - 60 && t <= now + 60);
}

/* ---- Text lines ---- */

static void test_text_line(void **state)
{
    struct capture cap;
    char *out;
    const char *rest;

    (void)state;
    exw_log_set_job("exp-1");
    capture_begin(&cap);
    EXW_LOG_ERR(EXW_LOG_WARN, EXW_EHTTP, "lookup of %s failed: %d", "C-0001", 503);
    out = capture_end(&cap);

    assert_int_equal(strncmp(out, "ts=", 3), 0);
    {
        char ts[25];
        memcpy(ts, out + 3, 24);
        ts[24] = '\0';
        check_timestamp(ts);
    }
    rest = out + 3 + 24;
    assert_string_equal(
        rest, " lvl=warn thr=main job=exp-1 err=EHTTP msg=\"lookup of C-0001 failed: 503\"\n");
    free(out);
}

static void test_text_optional_fields(void **state)
{
    struct capture cap;
    char *out;

    (void)state;
    capture_begin(&cap);
    EXW_LOG(EXW_LOG_INFO, "started");
    exw_log_set_job("j2");
    EXW_LOG(EXW_LOG_DEBUG, "with job");
    exw_log_set_job(NULL);
    EXW_LOG(EXW_LOG_ERROR, "without job");
    exw_log_set_job("");
    exw_log_write(EXW_LOG_INFO, NULL, "empty job is none");
    out = capture_end(&cap);

    assert_non_null(strstr(out, " lvl=info thr=main msg=\"started\"\n"));
    assert_non_null(strstr(out, " lvl=debug thr=main job=j2 msg=\"with job\"\n"));
    assert_non_null(strstr(out, " lvl=error thr=main msg=\"without job\"\n"));
    assert_non_null(strstr(out, " lvl=info thr=main msg=\"empty job is none\"\n"));
    assert_null(strstr(out, "err="));
    free(out);
}

static void test_text_escaping(void **state)
{
    struct capture cap;
    char *out;

    (void)state;
    capture_begin(&cap);
    /* Quote, backslash, newline, tab, CR, other controls, DEL, UTF-8, a bad byte. */
    EXW_LOG(EXW_LOG_INFO, "a\"b\\c\nd\te\rf\x01g\x7fh \xc3\xa9 \xff end");
    out = capture_end(&cap);
    assert_non_null(
        strstr(out, " msg=\"a\\\"b\\\\c\\nd\\te\\rf\\x01g\\x7fh \xc3\xa9 \\xff end\"\n"));
    /* One line, whatever the message held. */
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
    free(out);
}

static void test_text_odd_names(void **state)
{
    struct capture cap;
    char *out;

    (void)state;
    /* Names that would break key=value parsing get quoted. */
    exw_log_set_thread("pool 1");
    exw_log_set_job("a=b\"c");
    capture_begin(&cap);
    EXW_LOG(EXW_LOG_INFO, "x");
    out = capture_end(&cap);
    assert_non_null(strstr(out, " thr=\"pool 1\" job=\"a=b\\\"c\" msg=\"x\"\n"));
    free(out);
}

static void test_unnamed_thread(void **state)
{
    struct capture cap;
    char *out;

    (void)state;
    exw_log_set_thread(NULL);
    capture_begin(&cap);
    EXW_LOG(EXW_LOG_INFO, "x");
    out = capture_end(&cap);
    assert_non_null(strstr(out, " thr=- msg=\"x\"\n"));
    free(out);
}

/* ---- JSON lines ---- */

static cJSON *parse_line(const char *line)
{
    cJSON *root = cJSON_Parse(line);

    if (root == NULL)
        fail_msg("not JSON: %s", line);
    return root;
}

static const char *member(const cJSON *root, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);

    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static void test_json_line(void **state)
{
    struct capture cap;
    cJSON *root;
    char *out;

    (void)state;
    exw_log_setup(EXW_LOG_JSON, EXW_LOG_DEBUG);
    exw_log_set_thread("w3");
    exw_log_set_job("exp-20261125-0001");
    capture_begin(&cap);
    EXW_LOG_ERR(EXW_LOG_ERROR, EXW_ETIMEOUT, "job took %ds", 901);
    out = capture_end(&cap);

    assert_int_equal(strncmp(out, "{\"ts\":\"", 7), 0);
    assert_int_equal(out[strlen(out) - 1], '\n');
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
    root = parse_line(out);
    check_timestamp(member(root, "ts"));
    assert_string_equal(member(root, "lvl"), "error");
    assert_string_equal(member(root, "thr"), "w3");
    assert_string_equal(member(root, "job"), "exp-20261125-0001");
    assert_string_equal(member(root, "err"), "ETIMEOUT");
    assert_string_equal(member(root, "msg"), "job took 901s");
    assert_int_equal(cJSON_GetArraySize(root), 6);
    /* Fields in the documented order. */
    assert_non_null(strstr(out, "\"ts\":"));
    assert_true(strstr(out, "\"lvl\":") < strstr(out, "\"thr\":"));
    assert_true(strstr(out, "\"thr\":") < strstr(out, "\"job\":"));
    assert_true(strstr(out, "\"job\":") < strstr(out, "\"err\":"));
    assert_true(strstr(out, "\"err\":") < strstr(out, "\"msg\":"));
    cJSON_Delete(root);
    free(out);

    /* Without job and err. */
    exw_log_set_job(NULL);
    capture_begin(&cap);
    EXW_LOG(EXW_LOG_INFO, "plain");
    out = capture_end(&cap);
    root = parse_line(out);
    assert_null(cJSON_GetObjectItemCaseSensitive(root, "job"));
    assert_null(cJSON_GetObjectItemCaseSensitive(root, "err"));
    assert_string_equal(member(root, "lvl"), "info");
    assert_int_equal(cJSON_GetArraySize(root), 4);
    cJSON_Delete(root);
    free(out);
}

static void test_json_escaping(void **state)
{
    static const char msg[] = "q\" b\\ n\n t\t r\r b\b f\f c\x01\x1f del\x7f \xc3\xa9 \xe2\x82\xac"
                              " \xf0\x9f\x98\x80 /";
    struct capture cap;
    cJSON *root;
    char *out;

    (void)state;
    exw_log_setup(EXW_LOG_JSON, EXW_LOG_DEBUG);
    exw_log_set_thread("t\"1");
    exw_log_set_job("j\\1");
    capture_begin(&cap);
    exw_log_write(EXW_LOG_INFO, NULL, "%s", msg);
    out = capture_end(&cap);
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
    root = parse_line(out);
    assert_string_equal(member(root, "msg"), msg); /* Round trip, byte for byte. */
    assert_string_equal(member(root, "thr"), "t\"1");
    assert_string_equal(member(root, "job"), "j\\1");
    /* Control characters as \uXXXX, never raw. */
    assert_non_null(strstr(out, "c\\u0001\\u001f del\\u007f"));
    cJSON_Delete(root);
    free(out);
}

static void test_json_invalid_utf8(void **state)
{
    struct capture cap;
    cJSON *root;
    char *out;

    (void)state;
    exw_log_setup(EXW_LOG_JSON, EXW_LOG_DEBUG);
    capture_begin(&cap);
    /* A stray continuation, a cut sequence, an overlong '/', a surrogate. */
    EXW_LOG(EXW_LOG_INFO, "a\x80 b\xe2\x82 c\xc0\xaf d\xed\xa0\x80 e");
    out = capture_end(&cap);
    root = parse_line(out);
    assert_string_equal(member(root, "msg"),
                        "a\xef\xbf\xbd b\xef\xbf\xbd\xef\xbf\xbd c\xef\xbf\xbd"
                        "\xef\xbf\xbd d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd e");
    cJSON_Delete(root);
    free(out);
}

/* ---- Length ---- */

static void test_truncation(void **state)
{
    struct capture cap;
    size_t len;
    cJSON *root;
    char *big, *out;
    const char *m;

    (void)state;
    big = malloc(10001);
    assert_non_null(big);
    memset(big, 'x', 10000);
    big[10000] = '\0';

    capture_begin(&cap);
    EXW_LOG(EXW_LOG_INFO, "%s", big);
    out = capture_end(&cap);
    len = strlen(out);
    assert_true(len <= 4096);
    assert_true(len > 4000);
    assert_string_equal(out + len - 6, "x...\"\n");
    assert_ptr_equal(strchr(out, '\n'), out + len - 1);
    free(out);

    /* A message of escapes is cut between escapes, never inside one. */
    memset(big, '\n', 3000);
    big[3000] = '\0';
    capture_begin(&cap);
    EXW_LOG(EXW_LOG_INFO, "%s", big);
    out = capture_end(&cap);
    len = strlen(out);
    assert_true(len <= 4096);
    assert_string_equal(out + len - 7, "\\n...\"\n");
    free(out);

    /* JSON stays valid when cut, also inside a multi-byte character. */
    exw_log_setup(EXW_LOG_JSON, EXW_LOG_DEBUG);
    for (len = 0; len + 3 <= 10000; len += 3)
        memcpy(big + len, "\xe2\x82\xac", 3);
    big[len] = '\0';
    capture_begin(&cap);
    EXW_LOG(EXW_LOG_INFO, "%s", big);
    out = capture_end(&cap);
    assert_true(strlen(out) <= 4096);
    root = parse_line(out);
    m = member(root, "msg");
    assert_non_null(m);
    assert_true(strlen(m) > 3000);
    assert_string_equal(m + strlen(m) - 6, "\xe2\x82\xac...");
    assert_null(strstr(m, "\xef\xbf\xbd"));
    cJSON_Delete(root);
    free(out);
    free(big);
}

/* ---- Levels ---- */

static int evaluated;

static int side_effect(void)
{
    evaluated++;
    return 1;
}

static void test_level_gating(void **state)
{
    struct capture cap;
    char *out;

    (void)state;
    exw_log_setup(EXW_LOG_TEXT, EXW_LOG_WARN);
    assert_false(exw_log_enabled(EXW_LOG_DEBUG));
    assert_false(exw_log_enabled(EXW_LOG_INFO));
    assert_true(exw_log_enabled(EXW_LOG_WARN));
    assert_true(exw_log_enabled(EXW_LOG_ERROR));

    evaluated = 0;
    capture_begin(&cap);
    EXW_LOG(EXW_LOG_DEBUG, "debug %d", side_effect());
    EXW_LOG_ERR(EXW_LOG_INFO, EXW_EHTTP, "info %d", side_effect());
    EXW_LOG(EXW_LOG_WARN, "warn %d", side_effect());
    EXW_LOG(EXW_LOG_ERROR, "error %d", side_effect());
    out = capture_end(&cap);
    /* Arguments of a disabled line are never even evaluated. */
    assert_int_equal(evaluated, 2);
    assert_null(strstr(out, "debug"));
    assert_null(strstr(out, "info"));
    assert_non_null(strstr(out, "lvl=warn thr=main msg=\"warn 1\"\n"));
    assert_non_null(strstr(out, "lvl=error thr=main msg=\"error 1\"\n"));
    free(out);

    exw_log_setup(EXW_LOG_TEXT, EXW_LOG_ERROR);
    assert_false(exw_log_enabled(EXW_LOG_WARN));
    exw_log_setup(EXW_LOG_TEXT, EXW_LOG_DEBUG);
    assert_true(exw_log_enabled(EXW_LOG_DEBUG));
}

static void test_errno_kept(void **state)
{
    struct capture cap;
    char *out;

    (void)state;
    capture_begin(&cap);
    errno = ENOSPC;
    EXW_LOG(EXW_LOG_INFO, "x");
    assert_int_equal(errno, ENOSPC);
    out = capture_end(&cap);
    free(out);
}

/* ---- Threads ---- */

static void *named_thread(void *arg)
{
    (void)arg;
    /* A new thread starts unnamed, without the main thread's job. */
    EXW_LOG(EXW_LOG_INFO, "before");
    exw_log_set_thread("w1");
    exw_log_set_job("job-in-w1");
    EXW_LOG(EXW_LOG_INFO, "after");
    return NULL;
}

static void test_thread_fields(void **state)
{
    struct capture cap;
    pthread_t t;
    char *out;

    (void)state;
    exw_log_set_job("job-in-main");
    capture_begin(&cap);
    assert_int_equal(pthread_create(&t, NULL, named_thread, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    EXW_LOG(EXW_LOG_INFO, "main again");
    out = capture_end(&cap);
    assert_non_null(strstr(out, " thr=- msg=\"before\"\n"));
    assert_non_null(strstr(out, " thr=w1 job=job-in-w1 msg=\"after\"\n"));
    /* The other thread's names did not leak into this one. */
    assert_non_null(strstr(out, " thr=main job=job-in-main msg=\"main again\"\n"));
    free(out);
}

#define WRITERS 4
#define LINES_EACH 300

static void *writer(void *arg)
{
    char name[16], pad[1500];
    int i, id = (int)(intptr_t)arg;

    snprintf(name, sizeof(name), "w%d", id);
    exw_log_set_thread(name);
    memset(pad, 'a' + id, sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    for (i = 0; i < LINES_EACH; i++)
        EXW_LOG(EXW_LOG_INFO, "n=%d %s", i, pad);
    return NULL;
}

static void test_concurrent_lines_whole(void **state)
{
    const char *dir = scratch_dir();
    char path[512], *buf, *line, *nl, *m;
    int seen[WRITERS] = {0};
    pthread_t t[WRITERS];
    int saved, fd, i, id, n;
    cJSON *root;
    off_t size;

    (void)state;
    exw_log_setup(EXW_LOG_JSON, EXW_LOG_DEBUG);
    snprintf(path, sizeof(path), "%s/test_log_%ld.log", dir, (long)getpid());
    /* O_APPEND: each write(2) lands whole at the end, as with a pipe. */
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    saved = dup(2);
    assert_int_equal(dup2(fd, 2), 2);
    close(fd);
    for (i = 0; i < WRITERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i), 0);
    for (i = 0; i < WRITERS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);

    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    size = lseek(fd, 0, SEEK_END);
    assert_true(size > 0);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(read(fd, buf, (size_t)size), (ssize_t)size);
    buf[size] = '\0';
    close(fd);
    unlink(path);

    for (line = buf; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        root = parse_line(line);
        assert_int_equal(sscanf(member(root, "thr"), "w%d", &id), 1);
        assert_true(id >= 0 && id < WRITERS);
        m = (char *)member(root, "msg");
        assert_int_equal(sscanf(m, "n=%d", &n), 1);
        assert_int_equal(n, seen[id]); /* In order within a thread. */
        assert_int_equal(m[strlen(m) - 1], 'a' + id);
        seen[id]++;
        cJSON_Delete(root);
    }
    for (i = 0; i < WRITERS; i++)
        assert_int_equal(seen[i], LINES_EACH);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_text_line, reset),
        cmocka_unit_test_setup(test_text_optional_fields, reset),
        cmocka_unit_test_setup(test_text_escaping, reset),
        cmocka_unit_test_setup(test_text_odd_names, reset),
        cmocka_unit_test_setup(test_unnamed_thread, reset),
        cmocka_unit_test_setup(test_json_line, reset),
        cmocka_unit_test_setup(test_json_escaping, reset),
        cmocka_unit_test_setup(test_json_invalid_utf8, reset),
        cmocka_unit_test_setup(test_truncation, reset),
        cmocka_unit_test_setup(test_level_gating, reset),
        cmocka_unit_test_setup(test_errno_kept, reset),
        cmocka_unit_test_setup(test_thread_fields, reset),
        cmocka_unit_test_setup(test_concurrent_lines_whole, reset),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
