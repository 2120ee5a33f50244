/* job.c: the job document (PROTOCOL.md section 2): its fields, columns,
 * lookup and rows.
 *
 * The document is checked whole by exw_json_check() and then read in place
 * (json_text.h): the members the job knows are found by one walk over the
 * top-level object and copied; everything else, the rows included, is only
 * skipped. Rows are read one at a time from their own spans (row.c). So the
 * cost of a document is its own bytes and the job, never a tree of it (see
 * job.h). Errors name the field as a path
 * into the document ("columns[3].type", "rows[12]") so that whoever wrote the
 * job can find it; values are quoted shortened, never whole. */
#include "exw/job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exw/buf.h"
#include "exw/config.h"
#include "exw/json.h"

#define MAX_NAME_BYTES 255
#define MAX_WIDTH 255.0
#define MAX_RESULT_TTL 31536000L
#define NONE ((size_t)-1)

void exw_limits_default(struct exw_limits *l)
{
    l->max_job_bytes = 64u << 20;
    l->max_rows = 10000000;
    l->max_columns = EXW_EXCEL_MAX_COLUMNS;
    l->max_header_chars = 255;
    l->max_string_chars = EXW_EXCEL_MAX_STRING;
    l->max_depth = 32;
}

void exw_limits_of_config(struct exw_limits *l, const struct exw_config *c)
{
    exw_limits_default(l);
    l->max_job_bytes = (size_t)c->max_job_bytes;
    l->max_rows = (size_t)c->max_rows;
    l->max_columns = (size_t)c->max_columns;
    l->max_header_chars = (size_t)c->max_header_chars;
    l->max_string_chars = (size_t)c->max_string_chars;
}

static const char *const type_names[] = {
    [EXW_COL_STRING] = "string",   [EXW_COL_NUMBER] = "number", [EXW_COL_INTEGER] = "integer",
    [EXW_COL_BOOLEAN] = "boolean", [EXW_COL_DATE] = "date",     [EXW_COL_DATETIME] = "datetime",
};

const char *exw_col_type_name(enum exw_col_type t) { return type_names[t]; }

const char *exw_col_type_default_format(enum exw_col_type t)
{
    switch (t) {
    case EXW_COL_DATE:
        return "yyyy-mm-dd";
    case EXW_COL_DATETIME:
        return "yyyy-mm-dd hh:mm:ss";
    case EXW_COL_INTEGER:
        return "0";
    default:
        return NULL;
    }
}

int exw_job_id_valid(const char *id, size_t len)
{
    size_t i;

    if (len < 1 || len > EXW_ID_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        char c = id[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

int exw_job_sheet_name_valid(const char *name, struct exw_errbuf *eb)
{
    size_t len = strlen(name);
    size_t chars;

    if (!exw_utf8_valid(name, len, NULL)) {
        exw_errbuf_set(eb, EXW_EJSON, "is not valid UTF-8");
        return 0;
    }
    chars = exw_utf8_len(name, len);
    if (chars < 1 || chars > EXW_SHEET_NAME_MAX) {
        exw_errbuf_set(eb, EXW_EJSON, "must have 1 to %d characters, has %zu", EXW_SHEET_NAME_MAX,
                       chars);
        return 0;
    }
    if (strpbrk(name, "[]:*?/\\") != NULL) {
        exw_errbuf_set(eb, EXW_EJSON, "must not contain any of [ ] : * ? / \\");
        return 0;
    }
    if (name[0] == '\'' || name[len - 1] == '\'') {
        exw_errbuf_set(eb, EXW_EJSON, "must not begin or end with an apostrophe");
        return 0;
    }
    return 1;
}

/* The length of the longest prefix of @s, at most @max bytes, that does not
 * end inside a UTF-8 sequence: for "%.*s" in error texts. */
static int utf8_prefix(const char *s, size_t max) { return (int)exw_utf8_cut(s, strlen(s), max); }

static int has_control_chars(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* ---- The id, without parsing ---- */

/* Decodes the JSON string body @s (@n bytes, between its quotes) into @out
 * when it is plain ASCII of at most @cap bytes once decoded, as a JSON parser
 * would read it; returns the decoded length, or -1 (too long, a non-ASCII
 * character, a malformed escape). */
static long decode_ascii(const char *s, size_t n, char *out, size_t cap)
{
    static const char plain[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
    size_t i = 0, o = 0;
    const char *at;
    long cp;
    char c;

    while (i < n) {
        c = s[i++];
        if (c == '\\' && i < n && s[i] == 'u') {
            cp = n - i >= 5 ? exw_json_hex4(s + i + 1) : -1;
            if (cp < 0 || cp >= 0x80)
                return -1;
            c = (char)cp;
            i += 5;
        } else if (c == '\\') {
            at = i < n && s[i] != '\0' ? strchr(plain, s[i]) : NULL;
            if (at == NULL)
                return -1;
            c = decoded[at - plain];
            i++;
        } else if ((unsigned char)c >= 0x80) {
            return -1;
        }
        if (o >= cap)
            return -1;
        out[o++] = c;
    }
    return (long)o;
}

char *exw_job_scan_id(const char *doc, size_t len)
{
    size_t i = 0, start;
    int depth = 0;
    int expect_key = 0;
    int want_value = 0; /* 1 after the key "id", 2 after its ':' */
    char text[EXW_ID_MAX];
    long n;

    while (i < len) {
        char c = doc[i];

        if (c == '"') {
            for (start = ++i; i < len && doc[i] != '"'; i++) {
                if (doc[i] == '\\')
                    i++;
            }
            if (i >= len)
                return NULL;
            if (depth == 1 && want_value == 2) {
                n = decode_ascii(doc + start, i - start, text, sizeof(text));
                if (n > 0 && exw_job_id_valid(text, (size_t)n))
                    return exw_xstrndup(text, (size_t)n);
                return NULL;
            }
            want_value = 0;
            if (depth == 1 && expect_key) {
                n = decode_ascii(doc + start, i - start, text, 2);
                want_value = n == 2 && memcmp(text, "id", 2) == 0;
            }
            expect_key = 0;
            i++;
            continue;
        }
        if (c == '{' || c == '[') {
            if ((depth == 1 && want_value == 2) || (depth == 0 && c != '{'))
                return NULL;
            depth++;
            expect_key = depth == 1;
        } else if (c == '}' || c == ']') {
            if (--depth <= 0)
                return NULL;
        } else if (c == ',') {
            expect_key = depth == 1;
            want_value = 0;
        } else if (c == ':') {
            if (want_value == 1)
                want_value = 2;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            if (depth == 1 && want_value == 2)
                return NULL; /* a number, true, false or null: not a usable id */
        }
        i++;
    }
    return NULL;
}

/* ---- Reading members ---- */

/* The first member named @names[k] of the object @obj into @out[k] (NONE when
 * absent), for a NULL-terminated list of names, in one walk. */
static void get_members(const struct exw_json_value *obj, const char *const *names,
                        struct exw_json_value *out)
{
    struct exw_json_iter it;
    struct exw_json_value name, v;
    size_t k, n;

    for (n = 0; names[n] != NULL; n++)
        memset(&out[n], 0, sizeof(out[n]));
    exw_json_iter_init(&it, obj);
    while (exw_json_iter_next(&it, &name, &v)) {
        for (k = 0; k < n; k++) {
            if (out[k].kind == EXW_JSON_NONE &&
                exw_json_string_eq(&name, names[k], strlen(names[k])))
                out[k] = v;
        }
    }
}

/* Reads an optional string member @v into *@out (a decoded heap copy, or NULL
 * when absent or null); EXW_EJSON if it is there and not a string. */
static exw_err opt_string(const struct exw_json_value *v, const char *path, const char *name,
                          char **out, struct exw_errbuf *eb)
{
    char seen[96];

    *out = NULL;
    if (v->kind == EXW_JSON_NONE || v->kind == EXW_JSON_NULL)
        return EXW_OK;
    if (v->kind != EXW_JSON_STRING) {
        exw_json_describe(v, seen, sizeof(seen));
        return exw_errbuf_set(eb, EXW_EJSON, "%s%s: expected a string, got %s", path, name, seen);
    }
    *out = exw_json_string_dup(v, NULL);
    return EXW_OK;
}

/* A member name for an error text: decoded, at most 40 bytes of whole
 * characters. */
static void name_text(const struct exw_json_value *name, char *out, size_t outsz)
{
    char *full = exw_json_string_dup(name, NULL);

    snprintf(out, outsz, "%.*s", utf8_prefix(full, 40), full);
    free(full);
}

/* ---- The document's members ---- */

static exw_err parse_column(const struct exw_json_value *v, size_t i, const struct exw_limits *lim,
                            struct exw_column *col, struct exw_errbuf *eb)
{
    static const char *const names[] = {"header", "field", "lookup", "type",
                                        "format", "width", NULL};
    enum { HEADER, FIELD, LOOKUP, TYPE, FORMAT, WIDTH };
    struct exw_json_value m[6];
    char path[48], *type = NULL;
    exw_err rc;
    size_t t;

    snprintf(path, sizeof(path), "columns[%zu].", i);
    if (v->kind != EXW_JSON_OBJECT)
        return exw_errbuf_set(eb, EXW_EJSON, "columns[%zu]: expected an object, got %s", i,
                              exw_json_kind_name(v->kind));
    get_members(v, names, m);
    rc = opt_string(&m[HEADER], path, "header", &col->header, eb);
    if (rc == EXW_OK)
        rc = opt_string(&m[FIELD], path, "field", &col->field, eb);
    if (rc == EXW_OK)
        rc = opt_string(&m[LOOKUP], path, "lookup", &col->pointer, eb);
    if (rc == EXW_OK)
        rc = opt_string(&m[TYPE], path, "type", &type, eb);
    if (rc == EXW_OK)
        rc = opt_string(&m[FORMAT], path, "format", &col->format, eb);
    if (rc != EXW_OK)
        goto out;
    rc = EXW_EJSON;
    if (col->header == NULL) {
        exw_errbuf_set(eb, rc, "%sheader: missing (every column needs a header)", path);
    } else if (exw_utf8_len(col->header, strlen(col->header)) > lim->max_header_chars) {
        exw_errbuf_set(eb, rc, "%sheader: longer than %zu characters", path, lim->max_header_chars);
    } else if ((col->field == NULL) == (col->pointer == NULL)) {
        exw_errbuf_set(eb, rc,
                       "columns[%zu]: give exactly one of \"field\" (a row member) or "
                       "\"lookup\" (a JSON Pointer into the lookup response)",
                       i);
    } else if (col->field != NULL && col->field[0] == '\0') {
        exw_errbuf_set(eb, rc, "%sfield: must not be empty", path);
    } else if (col->pointer != NULL && !exw_json_pointer_valid(col->pointer)) {
        exw_errbuf_set(eb, rc,
                       "%slookup: \"%.*s\" is not a JSON Pointer (it starts with / and "
                       "escapes ~ as ~0 and / as ~1)",
                       path, utf8_prefix(col->pointer, 60), col->pointer);
    } else {
        rc = EXW_OK;
    }
    if (rc != EXW_OK)
        goto out;
    col->type = EXW_COL_STRING;
    if (type != NULL) {
        for (t = 0; t < sizeof(type_names) / sizeof(type_names[0]); t++)
            if (strcmp(type, type_names[t]) == 0)
                break;
        if (t == sizeof(type_names) / sizeof(type_names[0])) {
            rc = exw_errbuf_set(eb, EXW_EJSON,
                                "%stype: unknown type \"%.*s\" (use string, number, integer, "
                                "boolean, date or datetime)",
                                path, utf8_prefix(type, 40), type);
            goto out;
        }
        col->type = (enum exw_col_type)t;
    }
    if (col->format != NULL &&
        (col->format[0] == '\0' || strlen(col->format) > EXW_COLUMN_FORMAT_MAX)) {
        rc = exw_errbuf_set(eb, EXW_EJSON, "%sformat: must have 1 to %d bytes", path,
                            EXW_COLUMN_FORMAT_MAX);
        goto out;
    }
    col->width = 0;
    if (m[WIDTH].kind != EXW_JSON_NONE && m[WIDTH].kind != EXW_JSON_NULL) {
        if (m[WIDTH].kind != EXW_JSON_NUMBER || exw_json_number(&m[WIDTH], &col->width) != EXW_OK ||
            !(col->width > 0) || col->width > MAX_WIDTH) {
            rc = exw_errbuf_set(eb, EXW_EJSON, "%swidth: must be a number above 0 and up to %g",
                                path, MAX_WIDTH);
            goto out;
        }
    }
out:
    free(type);
    return rc;
}

static exw_err parse_lookup(const struct exw_json_value *lookup, struct exw_job *job,
                            struct exw_errbuf *eb)
{
    static const char *const names[] = {"service", "key", NULL};
    struct exw_json_value m[2], name, v;
    struct exw_json_iter it;
    char text[48];
    exw_err rc;

    if (lookup->kind == EXW_JSON_NONE || lookup->kind == EXW_JSON_NULL)
        return EXW_OK;
    if (lookup->kind != EXW_JSON_OBJECT)
        return exw_errbuf_set(eb, EXW_EJSON, "lookup: expected an object, got %s",
                              exw_json_kind_name(lookup->kind));
    /* A job names a service configured on the worker and nothing else: no URL,
     * host, header or credential can come in this way. */
    exw_json_iter_init(&it, lookup);
    while (exw_json_iter_next(&it, &name, &v)) {
        if (!exw_json_string_eq(&name, "service", 7) && !exw_json_string_eq(&name, "key", 3)) {
            name_text(&name, text, sizeof(text));
            return exw_errbuf_set(eb, EXW_EJSON,
                                  "lookup.%s: unknown member (lookup takes only \"service\" and "
                                  "\"key\"; URLs and credentials are configured on the worker)",
                                  text);
        }
    }
    get_members(lookup, names, m);
    rc = opt_string(&m[0], "lookup.", "service", &job->service, eb);
    if (rc == EXW_OK)
        rc = opt_string(&m[1], "lookup.", "key", &job->lookup_key, eb);
    if (rc != EXW_OK)
        return rc;
    if (job->service == NULL || job->service[0] == '\0')
        return exw_errbuf_set(eb, EXW_EJSON, "lookup.service: missing");
    if (job->lookup_key == NULL || job->lookup_key[0] == '\0')
        return exw_errbuf_set(eb, EXW_EJSON,
                              "lookup.key: missing (the row member holding the key)");
    return EXW_OK;
}

/* Whether @key may be a rows_key: a key under the prefix, of bounded length
 * and without control characters. Which keys under the prefix the worker
 * keeps for itself is the Redis side's business. */
static int rows_key_valid(const char *key, const char *prefix)
{
    size_t plen = strlen(prefix);

    return strncmp(key, prefix, plen) == 0 && key[plen] == ':' && strlen(key) <= EXW_ROWS_KEY_MAX &&
           !has_control_chars(key);
}

static exw_err parse_rows(const struct exw_json_value *rows, const struct exw_json_value *key,
                          struct exw_job *job, const struct exw_limits *lim, const char *prefix,
                          struct exw_errbuf *eb)
{
    struct exw_json_iter it;
    struct exw_json_value v;
    size_t n = 0, bad = NONE;
    enum exw_json_kind bad_kind = EXW_JSON_NONE;
    exw_err rc = opt_string(key, "", "rows_key", &job->rows_key, eb);

    if (rc != EXW_OK)
        return rc;
    if (job->rows_key != NULL) {
        if (rows->kind != EXW_JSON_NONE && rows->kind != EXW_JSON_NULL)
            return exw_errbuf_set(eb, EXW_EJSON, "rows, rows_key: give one of them, not both");
        if (!rows_key_valid(job->rows_key, prefix))
            return exw_errbuf_set(eb, EXW_EJSON,
                                  "rows_key: must be the name of a Redis list beginning with "
                                  "\"%s:\" (at most %d bytes, no control characters)",
                                  prefix, EXW_ROWS_KEY_MAX);
        return EXW_OK;
    }
    if (rows->kind == EXW_JSON_NONE)
        return exw_errbuf_set(eb, EXW_EJSON, "rows: missing (give rows or rows_key)");
    if (rows->kind != EXW_JSON_ARRAY)
        return exw_errbuf_set(eb, EXW_EJSON, "rows: expected an array of objects, got %s",
                              exw_json_kind_name(rows->kind));
    /* Count the rows and find the first that is not an object, skipping
     * each once; nothing is kept. */
    exw_json_iter_init(&it, rows);
    while (exw_json_iter_next(&it, NULL, &v)) {
        if (v.kind != EXW_JSON_OBJECT && bad == NONE) {
            bad = n;
            bad_kind = v.kind;
        }
        n++;
    }
    if (n > lim->max_rows)
        return exw_errbuf_set(eb, EXW_EJSON, "rows: %zu rows is over the limit of %zu", n,
                              lim->max_rows);
    if (bad != NONE)
        return exw_errbuf_set(eb, EXW_EJSON, "rows[%zu]: expected an object, got %s", bad,
                              exw_json_kind_name(bad_kind));
    job->nrows = n;
    exw_json_iter_init(&job->rows_at, rows);
    return EXW_OK;
}

static exw_err parse_columns(const struct exw_json_value *columns, struct exw_job *job,
                             const struct exw_limits *lim, struct exw_errbuf *eb)
{
    struct exw_json_iter it;
    struct exw_json_value v;
    size_t n = 0, i = 0;
    exw_err rc;

    if (columns->kind == EXW_JSON_NONE)
        return exw_errbuf_set(eb, EXW_EJSON, "columns: missing");
    if (columns->kind != EXW_JSON_ARRAY)
        return exw_errbuf_set(eb, EXW_EJSON, "columns: expected an array, got %s",
                              exw_json_kind_name(columns->kind));
    exw_json_iter_init(&it, columns);
    while (exw_json_iter_next(&it, NULL, &v))
        n++;
    if (n < 1 || n > lim->max_columns)
        return exw_errbuf_set(eb, EXW_EJSON, "columns: must have 1 to %zu columns, has %zu",
                              lim->max_columns, n);
    job->columns = exw_xcalloc(n, sizeof(*job->columns));
    exw_json_iter_init(&it, columns);
    while (exw_json_iter_next(&it, NULL, &v)) {
        struct exw_column *col = &job->columns[i];

        job->ncolumns = ++i; /* freed with the job from now on */
        rc = parse_column(&v, i - 1, lim, col, eb);
        if (rc != EXW_OK)
            return rc;
        if (col->pointer != NULL) {
            if (job->service == NULL)
                return exw_errbuf_set(eb, EXW_EJSON,
                                      "columns[%zu].lookup: the job has no \"lookup\" member "
                                      "naming a service",
                                      i - 1);
            col->lookup_index = job->nlookup_columns++;
        }
    }
    return EXW_OK;
}

/* The top-level members the job knows; everything else is skipped. */
static const char *const doc_members[] = {"id",         "filename", "sheet",    "lookup",
                                          "columns",    "rows",     "rows_key", "on_lookup_error",
                                          "result_ttl", NULL};
enum { M_ID, M_FILENAME, M_SHEET, M_LOOKUP, M_COLUMNS, M_ROWS, M_ROWS_KEY, M_POLICY, M_TTL, M_N };

static exw_err parse_fields(const struct exw_json_value *m, struct exw_job *job,
                            const struct exw_limits *lim, const char *prefix, struct exw_errbuf *eb)
{
    char *sheet = NULL, *policy = NULL;
    double ttl;
    exw_err rc;

    rc = opt_string(&m[M_FILENAME], "", "filename", &job->filename, eb);
    if (rc == EXW_OK)
        rc = opt_string(&m[M_SHEET], "", "sheet", &sheet, eb);
    if (rc == EXW_OK)
        rc = opt_string(&m[M_POLICY], "", "on_lookup_error", &policy, eb);
    if (rc != EXW_OK)
        goto out;
    rc = EXW_EJSON;
    if (job->filename != NULL &&
        (job->filename[0] == '\0' || strlen(job->filename) > MAX_NAME_BYTES ||
         has_control_chars(job->filename) || strpbrk(job->filename, "/\\") != NULL)) {
        exw_errbuf_set(eb, rc,
                       "filename: must be 1 to %d bytes with no control characters, / or \\",
                       MAX_NAME_BYTES);
        goto out;
    }
    if (sheet != NULL) {
        struct exw_errbuf why;

        if (!exw_job_sheet_name_valid(sheet, &why)) {
            exw_errbuf_set(eb, rc, "sheet: %s", why.msg);
            goto out;
        }
    }
    job->on_lookup_error = EXW_ON_LOOKUP_FAIL;
    if (policy != NULL) {
        if (strcmp(policy, "blank") == 0) {
            job->on_lookup_error = EXW_ON_LOOKUP_BLANK;
        } else if (strcmp(policy, "fail") != 0) {
            exw_errbuf_set(eb, rc, "on_lookup_error: must be \"fail\" or \"blank\"");
            goto out;
        }
    }
    job->result_ttl_s = -1;
    if (m[M_TTL].kind != EXW_JSON_NONE && m[M_TTL].kind != EXW_JSON_NULL) {
        if (!exw_json_number_whole(&m[M_TTL], &ttl) || ttl < 1 || ttl > MAX_RESULT_TTL) {
            exw_errbuf_set(eb, rc, "result_ttl: must be whole seconds from 1 to %ld",
                           MAX_RESULT_TTL);
            goto out;
        }
        job->result_ttl_s = (long)ttl;
    }
    job->sheet = sheet != NULL ? sheet : exw_xstrdup("Sheet1");
    sheet = NULL;
    if (job->filename == NULL) {
        size_t len = strlen(job->id) + sizeof(".xlsx");

        job->filename = exw_xmalloc(len);
        snprintf(job->filename, len, "%s.xlsx", job->id);
    }
    rc = parse_lookup(&m[M_LOOKUP], job, eb);
    if (rc == EXW_OK)
        rc = parse_columns(&m[M_COLUMNS], job, lim, eb);
    if (rc == EXW_OK)
        rc = parse_rows(&m[M_ROWS], &m[M_ROWS_KEY], job, lim, prefix, eb);
    if (rc == EXW_OK)
        exw_job_index_fields(job);
out:
    free(sheet);
    free(policy);
    return rc;
}

enum exw_job_verdict exw_job_identify(const char *doc, size_t len, const struct exw_limits *lim,
                                      char **id, struct exw_errbuf *eb)
{
    struct exw_json_value root, m[M_N];
    enum exw_job_verdict verdict = EXW_JOB_DEAD;
    size_t bad_at;
    exw_err rc;

    *id = NULL;
    if (len > lim->max_job_bytes) {
        *id = exw_job_scan_id(doc, len);
        verdict = EXW_JOB_TOO_LARGE;
        exw_errbuf_set(eb, EXW_ELIMIT,
                       "the job document has %zu bytes, over the limit of %zu "
                       "(EXPORT_MAX_JOB_BYTES); put the rows in a rows_key list",
                       len, lim->max_job_bytes);
        goto out;
    }
    if (!exw_utf8_valid(doc, len, &bad_at)) {
        *id = exw_job_scan_id(doc, len);
        verdict = EXW_JOB_INVALID;
        exw_errbuf_set(eb, EXW_EJSON, "the job document is not valid UTF-8 (byte %zu)", bad_at);
        goto out;
    }
    rc = exw_json_check(doc, len, lim->max_depth, eb);
    if (rc == EXW_ELIMIT) {
        /* Well-formed JSON that only our own rules refuse: fail it under its id. */
        *id = exw_job_scan_id(doc, len);
        verdict = EXW_JOB_INVALID;
        goto out;
    }
    if (rc != EXW_OK)
        goto out;
    exw_json_root(doc, len, &root);
    if (root.kind != EXW_JSON_OBJECT) {
        exw_errbuf_set(eb, EXW_EJSON, "the job document is a JSON %s, not an object",
                       exw_json_kind_name(root.kind));
        goto out;
    }
    get_members(&root, doc_members, m);
    if (m[M_ID].kind == EXW_JSON_STRING)
        *id = exw_json_string_dup(&m[M_ID], NULL);
    if (*id == NULL || !exw_job_id_valid(*id, strlen(*id))) {
        exw_errbuf_set(eb, EXW_EJSON,
                       m[M_ID].kind == EXW_JSON_NONE
                           ? "id: missing"
                           : "id: must be a string of 1 to 128 of A-Z a-z 0-9 . _ : -");
        free(*id);
        *id = NULL;
        goto out;
    }
    verdict = EXW_JOB_OK;
out:
    if (*id == NULL)
        verdict = EXW_JOB_DEAD; /* nothing to fail the job under */
    return verdict;
}

exw_err exw_job_parse_identified(const char *doc, size_t len, const struct exw_limits *lim,
                                 const char *prefix, const char *id, struct exw_job **out,
                                 struct exw_errbuf *eb)
{
    struct exw_json_value root, m[M_N];
    struct exw_job *job;
    exw_err rc;

    exw_json_root(doc, len, &root);
    get_members(&root, doc_members, m);
    job = exw_xcalloc(1, sizeof(*job));
    job->id = exw_xstrdup(id);
    job->limits = *lim;
    job->key_field = EXW_NO_FIELD;
    rc = parse_fields(m, job, lim, prefix, eb);
    if (rc != EXW_OK) {
        exw_job_free(job);
        job = NULL;
    }
    *out = job;
    return rc;
}

exw_err exw_job_parse(const char *doc, size_t len, const struct exw_limits *lim, const char *prefix,
                      struct exw_job **out, enum exw_job_verdict *verdict, char **id,
                      struct exw_errbuf *eb)
{
    exw_err rc;

    *out = NULL;
    *verdict = exw_job_identify(doc, len, lim, id, eb);
    if (*verdict != EXW_JOB_OK)
        return len > lim->max_job_bytes ? EXW_ELIMIT : EXW_EJSON;
    rc = exw_job_parse_identified(doc, len, lim, prefix, *id, out, eb);
    *verdict = rc == EXW_OK ? EXW_JOB_OK : EXW_JOB_INVALID;
    return rc;
}

void exw_job_free(struct exw_job *job)
{
    size_t i;

    if (job == NULL)
        return;
    for (i = 0; i < job->ncolumns; i++) {
        free(job->columns[i].header);
        free(job->columns[i].field);
        free(job->columns[i].pointer);
        free(job->columns[i].format);
    }
    free(job->columns);
    free(job->id);
    free(job->filename);
    free(job->sheet);
    free(job->service);
    free(job->lookup_key);
    free(job->rows_key);
    exw_job_fields_free(job->fields);
    free(job);
}

/* ---- Documents that failed ---- */

char *exw_job_rows_key_of(const char *doc, size_t len, const struct exw_limits *lim,
                          const char *prefix)
{
    static const char *const names[] = {"rows_key", NULL};
    struct exw_json_value root, key;
    char *text = NULL;

    if (len > lim->max_job_bytes || exw_json_check(doc, len, lim->max_depth, NULL) != EXW_OK)
        return NULL;
    exw_json_root(doc, len, &root);
    if (root.kind != EXW_JSON_OBJECT)
        return NULL;
    get_members(&root, names, &key);
    if (key.kind == EXW_JSON_STRING) {
        text = exw_json_string_dup(&key, NULL);
        if (!rows_key_valid(text, prefix)) {
            free(text);
            text = NULL;
        }
    }
    return text;
}
