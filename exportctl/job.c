/* job.c: the commands on one job: enqueue, status, fetch, cancel. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "exw/admin.h"
#include "exw/clock.h"
#include "exw/digest.h"
#include "exw/job.h"
#include "exw/json.h"
#include "exw/keys.h"

/* ---- enqueue ---- */

/* Reads @path ("-": standard input) whole, up to @max + 1 bytes, so that a
 * document over the limit is seen as such without reading all of it. */
static char *read_document(const char *path, size_t max, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    size_t cap = 65536, n = 0, got;
    char *buf;
    char etext[128];

    if (f == NULL) {
        fprintf(stderr, "exportctl enqueue: cannot open %s: %s\n", path,
                exw_errno_text(errno, etext, sizeof(etext)));
        return NULL;
    }
    buf = exw_xmalloc(cap + 1);
    while (n <= max) {
        if (n == cap) {
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            buf = exw_xrealloc(buf, cap + 1);
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "exportctl enqueue: cannot read %s: %s\n", path,
                exw_errno_text(errno, etext, sizeof(etext)));
        free(buf);
        buf = NULL;
    } else {
        buf[n] = '\0';
        *len = n;
    }
    if (f != stdin)
        fclose(f);
    return buf;
}

/* When @doc is a JSON object with no "id" member, a copy of it that begins
 * with a made-up one ("exp-YYYYMMDD-HHMMSS-xxxxxx"); NULL otherwise, the
 * parser then judging the document as it is. */
static char *with_made_up_id(const char *doc, size_t len, size_t *out_len)
{
    struct exw_json_value root, name, value;
    struct exw_json_iter it;
    struct exw_errbuf eb;
    unsigned char rnd[3] = {0, 0, 0};
    int members = 0;
    char id[64], stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    size_t head, idlen;
    char *out;

    if (exw_json_check(doc, len, EXW_JSON_MAX_DEPTH, &eb) != EXW_OK)
        return NULL;
    exw_json_root(doc, len, &root);
    if (root.kind != EXW_JSON_OBJECT)
        return NULL;
    exw_json_iter_init(&it, &root);
    while (exw_json_iter_next(&it, &name, &value)) {
        if (exw_json_string_eq(&name, "id", 2))
            return NULL;
        members++;
    }
    exw_random_bytes(rnd, sizeof(rnd));
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
    idlen = (size_t)snprintf(id, sizeof(id), "\"id\":\"exp-%s-%02x%02x%02x\"%s", stamp, rnd[0],
                             rnd[1], rnd[2], members ? "," : "");
    head = (size_t)(root.text - doc) + 1; /* through the '{' */
    *out_len = len + idlen;
    out = exw_xmalloc(*out_len + 1);
    memcpy(out, doc, head);
    memcpy(out + head, id, idlen);
    memcpy(out + head + idlen, doc + head, len - head);
    out[*out_len] = '\0';
    return out;
}

/* Judges the document as a worker would; prints why it is refused. */
static int check_document(struct ctl *c, const char *doc, size_t len, char **id)
{
    const char *path = c->args[0];
    struct exw_limits lim;
    struct exw_job *job = NULL;
    enum exw_job_verdict verdict;
    struct exw_errbuf eb;
    int ok = 1;

    exw_limits_of_config(&lim, &c->cfg);
    *id = NULL;
    if (exw_job_parse(doc, len, &lim, c->cfg.prefix, &job, &verdict, id, &eb) != EXW_OK) {
        fprintf(stderr, "exportctl enqueue: %s: refused, a worker would %s: %s\n", path,
                verdict == EXW_JOB_DEAD        ? "put it in the dead letters"
                : verdict == EXW_JOB_TOO_LARGE ? "fail it with too_large"
                                               : "fail it with invalid_job",
                eb.msg);
        return 0;
    }
    if (c->cfg.nservices > 0 && job->service != NULL &&
        exw_service_for_job(&c->cfg, job->service, &eb) == NULL)
        ok = 0;
    else if (job->rows_key != NULL && !exw_key_rows_check(c->cfg.prefix, job->rows_key, &eb))
        ok = 0;
    if (!ok)
        fprintf(stderr,
                "exportctl enqueue: %s: refused, a worker would fail it with invalid_job: %s\n",
                path, eb.msg);
    exw_job_free(job);
    return ok;
}

int ctl_cmd_enqueue(struct ctl *c)
{
    size_t len = 0, made_len = 0;
    char *doc, *made, *id = NULL;
    char busy[32];
    struct exw_errbuf eb;
    int rc = CTL_USAGE;

    doc = read_document(c->args[0], (size_t)c->cfg.max_job_bytes, &len);
    if (doc == NULL)
        return CTL_USAGE;
    made = with_made_up_id(doc, len, &made_len);
    if (made != NULL) {
        free(doc);
        doc = made;
        len = made_len;
    }
    if (!check_document(c, doc, len, &id))
        goto out;
    if (exw_admin_enqueue(c->rd, id, doc, len, (long long)exw_wall_ms(), busy, sizeof(busy), &eb) !=
        EXW_OK) {
        rc = ctl_redis_failed(&eb);
        goto out;
    }
    if (busy[0] != '\0') {
        fprintf(stderr,
                "exportctl enqueue: job %s is %s already; nothing was queued (wait for it, "
                "cancel it, or give the document another id)\n",
                id, busy);
        goto out;
    }
    if (c->json)
        printf("{\"id\":\"%s\"}\n", id);
    else
        printf("%s\n", id);
    fflush(stdout);
    rc = c->wait ? ctl_watch(c, id, c->timeout_s) : CTL_OK;
out:
    free(id);
    free(doc);
    return rc;
}

/* ---- status ---- */

static int no_job(const char *command, const char *id)
{
    fprintf(stderr, "exportctl %s: no job %s (never queued, or expired after its result_ttl)\n",
            command, id);
    return CTL_NOT_FOUND;
}

static void print_json_hash(const struct ctl_hash *h)
{
    cJSON *o = cJSON_CreateObject();
    size_t i, n = ctl_hash_len(h);
    char *text;

    for (i = 0; i < n; i++) {
        const char *name = ctl_hash_name(h, i);
        const char *value = ctl_hash_value(h, i);
        char *end;
        long long v = strtoll(value, &end, 10);

        if (ctl_field_is_int(name) && *value != '\0' && *end == '\0')
            cJSON_AddNumberToObject(o, name, (double)v);
        else
            cJSON_AddStringToObject(o, name, value);
    }
    text = cJSON_PrintUnformatted(o);
    printf("%s\n", text);
    free(text);
    cJSON_Delete(o);
}

/* One "name  value" line of the status table, with a time shown as a date
 * and how long ago, or since @since when that is set. */
static void print_time(const char *label, long long ms, long long since, const char *since_word)
{
    char when[64], d[32];

    if (ms <= 0)
        return;
    ctl_fmt_time(ms, when, sizeof(when));
    if (since > 0) {
        ctl_fmt_duration(ms - since, d, sizeof(d));
        printf("%-12s %s (%s %s)\n", label, when, since_word, d);
    } else {
        ctl_fmt_duration((long long)exw_wall_ms() - ms, d, sizeof(d));
        printf("%-12s %s (%s ago)\n", label, when, d);
    }
}

static void print_status(const char *id, const struct ctl_hash *h)
{
    static const char *const shown[] = {
        "state",        "progress",       "rows_total", "rows_written", "lookups_total",
        "lookups_done", "lookups_failed", "attempts",   "worker",       "queued_at",
        "started_at",   "finished_at",    "updated_at", "filename",     "result_key",
        "result_bytes", "result_sha256",  "error_code", "error",        "cancel"};
    const char *state = ctl_hash_get(h, "state");
    const char *s;
    long long queued = ctl_hash_ll(h, "queued_at", 0), started = ctl_hash_ll(h, "started_at", 0);
    char size[32];
    size_t i, j, n = ctl_hash_len(h);

    printf("%-12s %s\n", "id", id);
    printf("%-12s %s\n", "state", state ? state : "-");
    printf("%-12s %lld%%\n", "progress", ctl_hash_ll(h, "progress", 0));
    if (ctl_hash_get(h, "rows_total"))
        printf("%-12s %lld of %lld written\n", "rows", ctl_hash_ll(h, "rows_written", 0),
               ctl_hash_ll(h, "rows_total", 0));
    if (ctl_hash_ll(h, "lookups_total", 0) > 0)
        printf("%-12s %lld of %lld done, %lld failed\n", "lookups",
               ctl_hash_ll(h, "lookups_done", 0), ctl_hash_ll(h, "lookups_total", 0),
               ctl_hash_ll(h, "lookups_failed", 0));
    if ((s = ctl_hash_get(h, "attempts")) != NULL)
        printf("%-12s %s\n", "attempts", s);
    if ((s = ctl_hash_get(h, "worker")) != NULL)
        printf("%-12s %s\n", "worker", s);
    print_time("queued", queued, 0, NULL);
    print_time("started", started, queued, "after waiting");
    print_time("finished", ctl_hash_ll(h, "finished_at", 0), started, "after running");
    print_time("updated", ctl_hash_ll(h, "updated_at", 0), 0, NULL);
    if ((s = ctl_hash_get(h, "filename")) != NULL)
        printf("%-12s %s\n", "filename", s);
    if ((s = ctl_hash_get(h, "result_key")) != NULL) {
        ctl_fmt_bytes(ctl_hash_ll(h, "result_bytes", 0), size, sizeof(size));
        printf("%-12s %s, %s (%lld bytes)\n", "result", s, size, ctl_hash_ll(h, "result_bytes", 0));
    }
    if ((s = ctl_hash_get(h, "result_sha256")) != NULL)
        printf("%-12s %s\n", "sha256", s);
    if ((s = ctl_hash_get(h, "error")) != NULL) {
        const char *code = ctl_hash_get(h, "error_code");

        printf("%-12s %s%s%s\n", "error", code ? code : "", code ? ": " : "", s);
    }
    if (ctl_hash_ll(h, "cancel", 0) == 1 && !ctl_state_final(state))
        printf("%-12s asked, not yet seen by a worker\n", "cancel");
    /* Fields a newer worker or a backend added. */
    for (i = 0; i < n; i++) {
        const char *name = ctl_hash_name(h, i);

        for (j = 0; j < sizeof(shown) / sizeof(*shown) && strcmp(shown[j], name) != 0; j++)
            ;
        if (j == sizeof(shown) / sizeof(*shown))
            printf("%-12s %s\n", name, ctl_hash_value(h, i));
    }
}

int ctl_cmd_status(struct ctl *c)
{
    const char *id = c->args[0];
    struct ctl_hash h;
    struct exw_errbuf eb;
    int rc = CTL_OK;

    if (ctl_job_status(c->rd, id, &h, &eb) != EXW_OK)
        return ctl_redis_failed(&eb);
    if (ctl_hash_len(&h) == 0)
        rc = no_job("status", id);
    else if (c->json)
        print_json_hash(&h);
    else
        print_status(id, &h);
    ctl_hash_free(&h);
    return rc;
}

/* ---- fetch ---- */

/* The file a workbook is saved to by default: its filename, when that is a
 * plain name (no folder, not hidden), else "<id>.xlsx". */
static void default_file(const char *filename, const char *id, char *out, size_t size)
{
    if (filename != NULL && filename[0] != '\0' && filename[0] != '.' &&
        strchr(filename, '/') == NULL)
        snprintf(out, size, "%s", filename);
    else
        snprintf(out, size, "%s.xlsx", id);
}

/* Writes @len bytes to @path by way of a temporary file beside it, so that a
 * reader never sees half a workbook. */
static int write_file(const char *path, const char *data, size_t len)
{
    size_t tlen = strlen(path) + 16;
    char *tmp = exw_xmalloc(tlen);
    char etext[128];
    FILE *f;
    int ok;

    snprintf(tmp, tlen, "%s.part%ld", path, (long)getpid());
    f = fopen(tmp, "wb");
    ok = f != NULL && fwrite(data, 1, len, f) == len;
    if (f != NULL && fclose(f) != 0)
        ok = 0;
    if (ok && rename(tmp, path) != 0)
        ok = 0;
    if (!ok) {
        fprintf(stderr, "exportctl fetch: cannot write %s: %s\n", path,
                exw_errno_text(errno, etext, sizeof(etext)));
        unlink(tmp);
    }
    free(tmp);
    return ok;
}

static int sha256_matches(const char *data, size_t len, const char *want, char got[65])
{
    struct exw_sha256 *s = NULL;
    int ok = exw_sha256_new(&s) == EXW_OK && exw_sha256_update(s, data, len) == EXW_OK &&
             exw_sha256_final(s, got) == EXW_OK;

    exw_sha256_free(s);
    return ok && want != NULL && strcmp(got, want) == 0;
}

int ctl_cmd_fetch(struct ctl *c)
{
    const char *id = c->args[0];
    const char *state, *key;
    struct ctl_hash h;
    struct exw_reply *r = NULL;
    struct exw_errbuf eb;
    struct exw_cmd cmd;
    char path[4096], got[65], size[32];
    const char *data;
    size_t len;
    int rc = CTL_OK, to_stdout = c->output != NULL && strcmp(c->output, "-") == 0;

    if (to_stdout && isatty(STDOUT_FILENO))
        return ctl_usage_error(c, "will not write a workbook to a terminal: redirect it, or "
                                  "give -o FILE");
    if (ctl_job_status(c->rd, id, &h, &eb) != EXW_OK)
        return ctl_redis_failed(&eb);
    state = ctl_hash_get(&h, "state");
    key = ctl_hash_get(&h, "result_key");
    if (ctl_hash_len(&h) == 0) {
        rc = no_job("fetch", id);
        goto out;
    }
    if (state == NULL || strcmp(state, "succeeded") != 0 || key == NULL) {
        const char *error = ctl_hash_get(&h, "error");

        fprintf(stderr, "exportctl fetch: job %s has no workbook: it is %s%s%s\n", id,
                state ? state : "in no known state", error ? ": " : "", error ? error : "");
        rc = ctl_state_final(state) ? ctl_state_exit(state) : CTL_NOT_FOUND;
        goto out;
    }
    exw_cmd_init(&cmd);
    exw_cmd_add(&cmd, "GET");
    exw_cmd_add(&cmd, key);
    exw_redis_set_timeout(c->rd, 120000); /* up to EXPORT_MAX_RESULT_BYTES */
    if (exw_redis_run(c->rd, &cmd, "GET the result", &r, &eb) != EXW_OK) {
        rc = ctl_redis_failed(&eb);
        goto out;
    }
    data = exw_reply_string(r, &len);
    if (data == NULL) {
        fprintf(stderr, "exportctl fetch: the result of job %s has expired or was removed\n", id);
        rc = CTL_NOT_FOUND;
        goto out;
    }
    if (!sha256_matches(data, len, ctl_hash_get(&h, "result_sha256"), got)) {
        fprintf(stderr,
                "exportctl fetch: the result of job %s does not match its result_sha256 "
                "(%s, status says %s): not written\n",
                id, got,
                ctl_hash_get(&h, "result_sha256") ? ctl_hash_get(&h, "result_sha256") : "nothing");
        rc = CTL_FAILED;
        goto out;
    }
    if (to_stdout) {
        if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0) {
            fprintf(stderr, "exportctl fetch: cannot write to standard output\n");
            rc = CTL_FAILED;
        }
        goto out;
    }
    if (c->output != NULL)
        snprintf(path, sizeof(path), "%s", c->output);
    else
        default_file(ctl_hash_get(&h, "filename"), id, path, sizeof(path));
    if (!write_file(path, data, len)) {
        rc = CTL_USAGE;
        goto out;
    }
    ctl_fmt_bytes((long long)len, size, sizeof(size));
    if (c->json)
        printf("{\"file\":\"%s\",\"bytes\":%zu,\"sha256\":\"%s\"}\n", path, len, got);
    else
        printf("wrote %s (%s, sha256 checked)\n", path, size);
out:
    exw_reply_free(r);
    ctl_hash_free(&h);
    return rc;
}

/* ---- cancel ---- */

int ctl_cmd_cancel(struct ctl *c)
{
    const char *id = c->args[0];
    enum exw_cancel what;
    struct exw_errbuf eb;
    struct ctl_hash h;
    int rc;

    if (exw_admin_cancel(c->rd, id, &what, &eb) != EXW_OK)
        return ctl_redis_failed(&eb);
    switch (what) {
    case EXW_CANCEL_MISSING:
        return no_job("cancel", id);
    case EXW_CANCEL_ENDED:
        if (ctl_job_status(c->rd, id, &h, &eb) != EXW_OK)
            return ctl_redis_failed(&eb);
        printf("job %s has ended already (%s): nothing to cancel\n", id,
               ctl_hash_get(&h, "state") ? ctl_hash_get(&h, "state") : "?");
        rc = c->wait ? ctl_state_exit(ctl_hash_get(&h, "state")) : CTL_OK;
        ctl_hash_free(&h);
        return rc;
    case EXW_CANCEL_ASKED:
        break;
    }
    printf("asked job %s to cancel\n", id);
    fflush(stdout);
    return c->wait ? ctl_watch(c, id, c->timeout_s) : CTL_OK;
}
