/* job.c: the job document (PROTOCOL.md section 2) and the typing of its cells.
 *
 * A cJSON adapter: everything outside sees struct exw_job, struct exw_row and
 * struct exw_cell. Errors name the field as a path into the document
 * ("columns[3].type", "rows[12].amount") so that whoever wrote the job can find
 * it; values are quoted shortened and sanitised, never whole. */
#include "exw/job.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "exw/json.h"
#include "exw/xlsx.h"

#define TWO_POW_53 9007199254740992.0
#define MAX_NAME_BYTES 255
#define MAX_WIDTH 255.0
#define MAX_RESULT_TTL 31536000L

/* A row is a cJSON object; the struct only exists to keep cJSON out of sight. */
static const cJSON *row_json(const struct exw_row *row) { return (const cJSON *)(const void *)row; }

void exw_limits_default(struct exw_limits *l)
{
    l->max_job_bytes = 64u << 20;
    l->max_rows = 10000000;
    l->max_columns = EXW_EXCEL_MAX_COLUMNS;
    l->max_header_chars = 255;
    l->max_string_chars = EXW_EXCEL_MAX_STRING;
    l->max_depth = 32;
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

/* ---- Describing values in error messages ---- */

static const char *json_type_name(const cJSON *v)
{
    if (v == NULL)
        return "nothing";
    if (cJSON_IsString(v))
        return "string";
    if (cJSON_IsNumber(v))
        return "number";
    if (cJSON_IsBool(v))
        return "boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "array";
    if (cJSON_IsObject(v))
        return "object";
    return "invalid value";
}

/* "string \"abc\"", "number 12.5", "object": short enough for an error line. */
static void describe(const cJSON *v, char *out, size_t outsz)
{
    if (cJSON_IsString(v)) {
        size_t len = strlen(v->valuestring);
        char *clean = exw_utf8_sanitize(v->valuestring, len > 40 ? 40 : len);

        snprintf(out, outsz, "string \"%s%s\"", clean, len > 40 ? "..." : "");
        free(clean);
    } else if (cJSON_IsNumber(v)) {
        char num[32];

        exw_json_format_number(v->valuedouble, num);
        snprintf(out, outsz, "number %s", num);
    } else if (cJSON_IsBool(v)) {
        snprintf(out, outsz, "%s", cJSON_IsTrue(v) ? "true" : "false");
    } else {
        snprintf(out, outsz, "%s", json_type_name(v));
    }
}

/* The length of the longest prefix of @s, at most @max bytes, that does not
 * end inside a UTF-8 sequence: for "%.*s" in error texts, which clients read as
 * UTF-8. */
static int utf8_prefix(const char *s, size_t max)
{
    size_t n = strnlen(s, max);

    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return (int)n;
}

/* ---- Dates ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static long days_from_civil(long y, long m, long d)
{
    long era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(long z, int *y, int *m, int *d)
{
    long era, doe, yoe, doy, mp, yy;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    yy = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : days[m - 1];
}

/* Reads exactly @n digits at *@p into *@out and advances. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    int i;

    for (i = 0; i < n; i++) {
        char c = (*p)[i];

        if (c < '0' || c > '9')
            return 0;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 1;
}

exw_err exw_parse_datetime(const char *s, int with_time, struct exw_datetime *out,
                           struct exw_errbuf *eb)
{
    const char *p = s;
    const char *want = with_time ? "YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM]" : "YYYY-MM-DD";
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, off = 0;
    long days, minutes;

    memset(out, 0, sizeof(*out));
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return exw_errbuf_set(eb, EXW_EJSON, "expected a %s of the form %s",
                              with_time ? "datetime" : "date", want);
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return exw_errbuf_set(eb, EXW_EJSON, "%.10s is not a calendar date", s);
    if (with_time) {
        if (*p++ != 'T' || !digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) ||
            *p++ != ':' || !digits(&p, 2, &sec))
            return exw_errbuf_set(eb, EXW_EJSON, "expected a datetime of the form %s", want);
        if (h > 23 || mi > 59 || sec > 59)
            return exw_errbuf_set(eb, EXW_EJSON, "time of day out of range");
        if (*p == '.') {
            int n = 0;

            p++;
            /* Keep milliseconds; further digits are dropped, not rounded, so a
             * time never moves into the next second. */
            while (p[n] >= '0' && p[n] <= '9') {
                if (n < 3)
                    ms = ms * 10 + (p[n] - '0');
                n++;
            }
            if (n < 1 || n > 9)
                return exw_errbuf_set(eb, EXW_EJSON, "a fraction of a second has 1 to 9 digits");
            for (; n < 3; n++)
                ms *= 10;
            while (*p >= '0' && *p <= '9')
                p++;
        }
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1;
            int oh, om;

            if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
                return exw_errbuf_set(eb, EXW_EJSON, "a UTC offset is Z, +HH:MM or -HH:MM");
            off = sign * (oh * 60 + om);
        }
    }
    if (*p != '\0')
        return exw_errbuf_set(eb, EXW_EJSON, "unexpected text after the %s (expected %s)",
                              with_time ? "datetime" : "date", want);
    /* Written as UTC: move by the offset through a count of minutes. */
    days = days_from_civil(y, mo, d);
    minutes = days * 1440 + h * 60 + mi - off;
    days = minutes >= 0 ? minutes / 1440 : -((-minutes + 1439) / 1440);
    minutes -= days * 1440;
    civil_from_days(days, &out->year, &out->month, &out->day);
    if (out->year < 1900 || out->year > 9999)
        return exw_errbuf_set(eb, EXW_EJSON, "year %d is outside Excel's 1900 to 9999", out->year);
    out->hour = (int)(minutes / 60);
    out->min = (int)(minutes % 60);
    out->sec = sec + ms / 1000.0;
    return EXW_OK;
}

/* ---- Cell typing ---- */

static void cell_empty(struct exw_cell *c)
{
    memset(c, 0, sizeof(*c) - sizeof(c->numbuf));
    c->kind = EXW_CELL_EMPTY;
    c->numbuf[0] = '\0';
}

/* Types @v for a column of type @t. On failure @why says what was wrong. With
 * @copy the cell owns its text. */
static exw_err type_value(const cJSON *v, enum exw_col_type t, size_t max_chars, int copy,
                          struct exw_cell *c, char *why, size_t whysz)
{
    char seen[96];
    struct exw_errbuf eb;

    cell_empty(c);
    if (v == NULL || cJSON_IsNull(v))
        return EXW_OK;
    switch (t) {
    case EXW_COL_STRING:
        if (cJSON_IsString(v)) {
            size_t len = strlen(v->valuestring);

            if (len > max_chars && exw_utf8_len(v->valuestring, len) > max_chars) {
                snprintf(why, whysz, "text of %zu characters is over the limit of %zu",
                         exw_utf8_len(v->valuestring, len), max_chars);
                return EXW_ELIMIT;
            }
            c->kind = EXW_CELL_STRING;
            c->str = v->valuestring;
        } else if (cJSON_IsNumber(v)) {
            c->kind = EXW_CELL_STRING;
            exw_json_format_number(v->valuedouble, c->numbuf);
            c->str = c->numbuf;
        } else if (cJSON_IsBool(v)) {
            c->kind = EXW_CELL_STRING;
            c->str = cJSON_IsTrue(v) ? "true" : "false";
        } else {
            break;
        }
        if (copy) {
            c->owned = exw_xstrdup(c->str);
            c->str = c->owned;
        }
        return EXW_OK;
    case EXW_COL_NUMBER:
        if (!cJSON_IsNumber(v))
            break;
        c->kind = EXW_CELL_NUMBER;
        c->num = v->valuedouble;
        return EXW_OK;
    case EXW_COL_INTEGER:
        if (!cJSON_IsNumber(v))
            break;
        if (v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > TWO_POW_53) {
            describe(v, seen, sizeof(seen));
            snprintf(why, whysz, "expected a whole number within +-2^53, got %s", seen);
            return EXW_EJSON;
        }
        c->kind = EXW_CELL_NUMBER;
        c->num = v->valuedouble;
        return EXW_OK;
    case EXW_COL_BOOLEAN:
        if (!cJSON_IsBool(v))
            break;
        c->kind = EXW_CELL_BOOLEAN;
        c->num = cJSON_IsTrue(v) ? 1 : 0;
        return EXW_OK;
    case EXW_COL_DATE:
    case EXW_COL_DATETIME:
        if (!cJSON_IsString(v))
            break;
        if (exw_parse_datetime(v->valuestring, t == EXW_COL_DATETIME, &c->dt, &eb) != EXW_OK) {
            describe(v, seen, sizeof(seen));
            snprintf(why, whysz, "%.96s: %.90s", seen, eb.msg);
            return EXW_EJSON;
        }
        c->kind = EXW_CELL_DATETIME;
        return EXW_OK;
    }
    describe(v, seen, sizeof(seen));
    snprintf(why, whysz, "expected %s, got %s",
             t == EXW_COL_STRING    ? "text, a number or a boolean"
             : t == EXW_COL_NUMBER  ? "a number"
             : t == EXW_COL_INTEGER ? "a whole number"
             : t == EXW_COL_BOOLEAN ? "true or false"
             : t == EXW_COL_DATE    ? "a date string YYYY-MM-DD"
                                    : "a datetime string YYYY-MM-DDTHH:MM:SS",
             seen);
    return EXW_EJSON;
}

void exw_cells_cleanup(struct exw_cell *cells, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(cells[i].owned);
        cell_empty(&cells[i]);
    }
}

exw_err exw_job_row_key(const struct exw_job *job, const struct exw_row *row, size_t index,
                        char scratch[32], const char **key, struct exw_errbuf *eb)
{
    const cJSON *v;
    char seen[96];

    *key = NULL;
    if (job->lookup_key == NULL)
        return EXW_OK;
    v = cJSON_GetObjectItemCaseSensitive(row_json(row), job->lookup_key);
    if (v == NULL || cJSON_IsNull(v))
        return EXW_OK;
    if (cJSON_IsString(v)) {
        *key = v->valuestring[0] ? v->valuestring : NULL;
        return EXW_OK;
    }
    if (cJSON_IsNumber(v)) {
        exw_json_format_number(v->valuedouble, scratch);
        *key = scratch;
        return EXW_OK;
    }
    describe(v, seen, sizeof(seen));
    return exw_errbuf_set(eb, EXW_EJSON,
                          "rows[%zu].%s: the lookup key must be text or a number, got %s", index,
                          job->lookup_key, seen);
}

exw_err exw_job_row_cells(const struct exw_job *job, const struct exw_row *row, size_t index,
                          const struct exw_cell *lookup, struct exw_cell *cells,
                          struct exw_errbuf *eb)
{
    size_t i;

    for (i = 0; i < job->ncolumns; i++) {
        const struct exw_column *col = &job->columns[i];
        const cJSON *v;
        char why[192];
        exw_err rc;

        if (col->pointer != NULL) {
            cell_empty(&cells[i]);
            if (lookup != NULL) {
                /* Borrow the lookup's text: the row's cells own nothing. */
                cells[i] = lookup[col->lookup_index];
                cells[i].owned = NULL;
            }
            continue;
        }
        v = cJSON_GetObjectItemCaseSensitive(row_json(row), col->field);
        rc = type_value(v, col->type, job->limits.max_string_chars, 0, &cells[i], why, sizeof(why));
        if (rc != EXW_OK)
            return exw_errbuf_set(eb, rc, "rows[%zu].%s (column \"%.*s\", %s): %s", index,
                                  col->field, utf8_prefix(col->header, 40), col->header,
                                  exw_col_type_name(col->type), why);
    }
    return EXW_OK;
}

exw_err exw_job_lookup_cells(const struct exw_job *job, const char *body, size_t len,
                             struct exw_cell *out, struct exw_errbuf *eb)
{
    cJSON *root = NULL;
    exw_err rc;
    size_t i;

    for (i = 0; i < job->nlookup_columns; i++)
        cell_empty(&out[i]);
    rc = exw_json_parse(body, len, 512, &root, eb);
    if (rc != EXW_OK) {
        char detail[sizeof(eb->msg)];

        snprintf(detail, sizeof(detail), "%s", eb ? eb->msg : "");
        rc = exw_errbuf_set(eb, EXW_EJSON, "response is not JSON (%s)", detail);
        goto out;
    }
    for (i = 0; i < job->ncolumns; i++) {
        const struct exw_column *col = &job->columns[i];
        const cJSON *v = NULL;
        char why[192];

        if (col->pointer == NULL)
            continue;
        if (exw_json_pointer(root, col->pointer, (const struct cJSON **)&v) != EXW_OK)
            v = NULL; /* the pointer was checked when the job was parsed */
        rc = type_value(v, col->type, job->limits.max_string_chars, 1, &out[col->lookup_index], why,
                        sizeof(why));
        if (rc != EXW_OK) {
            rc = exw_errbuf_set(eb, EXW_EJSON, "%s (column \"%.*s\", %s): %s", col->pointer,
                                utf8_prefix(col->header, 40), col->header,
                                exw_col_type_name(col->type), why);
            goto out;
        }
    }
out:
    cJSON_Delete(root);
    if (rc != EXW_OK)
        exw_cells_cleanup(out, job->nlookup_columns);
    return rc;
}

/* ---- The document ---- */

/* Finds the top-level "id" string of a document too large, too deep or not valid
 * UTF-8 to parse, by scanning its bytes: the job can then still end `failed`
 * under its own id instead of as a dead letter. Only an id written without
 * escapes counts (a usable id never needs them). */
static char *scan_id(const char *doc, size_t len)
{
    size_t i = 0;
    int depth = 0;
    int expect_key = 0;
    int want_value = 0; /* 1 after the key "id", 2 after its ':' */

    while (i < len) {
        char c = doc[i];

        if (c == '"') {
            size_t start = ++i;
            int escaped = 0;

            while (i < len && doc[i] != '"') {
                if (doc[i] == '\\') {
                    escaped = 1;
                    i++;
                }
                i++;
            }
            if (i >= len)
                return NULL;
            if (depth == 1 && want_value == 2) {
                if (!escaped && exw_job_id_valid(doc + start, i - start))
                    return exw_xstrndup(doc + start, i - start);
                return NULL;
            }
            want_value = depth == 1 && expect_key && !escaped && i - start == 2 &&
                         memcmp(doc + start, "id", 2) == 0;
            expect_key = 0;
            i++;
            continue;
        }
        if (c == '{' || c == '[') {
            if (depth == 1 && want_value == 2)
                return NULL;
            depth++;
            expect_key = depth == 1 && c == '{';
            if (depth == 1 && c != '{')
                return NULL;
        } else if (c == '}' || c == ']') {
            depth--;
            if (depth <= 0)
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

/* The deepest nesting of @doc's arrays and objects, strings skipped. */
static int scan_depth(const char *doc, size_t len)
{
    int depth = 0, deepest = 0;
    size_t i;

    for (i = 0; i < len; i++) {
        if (doc[i] == '"') {
            for (i++; i < len && doc[i] != '"'; i++)
                if (doc[i] == '\\')
                    i++;
        } else if (doc[i] == '{' || doc[i] == '[') {
            if (++depth > deepest)
                deepest = depth;
        } else if (doc[i] == '}' || doc[i] == ']') {
            depth--;
        }
    }
    return deepest;
}

/* Reads an optional string member; EXW_EJSON if present and not a string. */
static exw_err opt_string(const cJSON *obj, const char *name, const char *path, const char **out,
                          struct exw_errbuf *eb)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    char seen[96];

    *out = NULL;
    if (v == NULL || cJSON_IsNull(v))
        return EXW_OK;
    if (!cJSON_IsString(v)) {
        describe(v, seen, sizeof(seen));
        return exw_errbuf_set(eb, EXW_EJSON, "%s%s: expected a string, got %s", path, name, seen);
    }
    *out = v->valuestring;
    return EXW_OK;
}

static int has_control_chars(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static exw_err parse_column(const cJSON *v, size_t i, const struct exw_limits *lim,
                            struct exw_column *col, struct exw_errbuf *eb)
{
    char path[48];
    const char *header, *field, *pointer, *type, *format;
    const cJSON *width;
    exw_err rc;
    size_t t;

    snprintf(path, sizeof(path), "columns[%zu].", i);
    if (!cJSON_IsObject(v))
        return exw_errbuf_set(eb, EXW_EJSON, "columns[%zu]: expected an object, got %s", i,
                              json_type_name(v));
    rc = opt_string(v, "header", path, &header, eb);
    if (rc == EXW_OK)
        rc = opt_string(v, "field", path, &field, eb);
    if (rc == EXW_OK)
        rc = opt_string(v, "lookup", path, &pointer, eb);
    if (rc == EXW_OK)
        rc = opt_string(v, "type", path, &type, eb);
    if (rc == EXW_OK)
        rc = opt_string(v, "format", path, &format, eb);
    if (rc != EXW_OK)
        return rc;
    if (header == NULL)
        return exw_errbuf_set(eb, EXW_EJSON, "%sheader: missing (every column needs a header)",
                              path);
    if (exw_utf8_len(header, strlen(header)) > lim->max_header_chars)
        return exw_errbuf_set(eb, EXW_EJSON, "%sheader: longer than %zu characters", path,
                              lim->max_header_chars);
    if ((field == NULL) == (pointer == NULL))
        return exw_errbuf_set(eb, EXW_EJSON,
                              "columns[%zu]: give exactly one of \"field\" (a row member) or "
                              "\"lookup\" (a JSON Pointer into the lookup response)",
                              i);
    if (field != NULL && field[0] == '\0')
        return exw_errbuf_set(eb, EXW_EJSON, "%sfield: must not be empty", path);
    if (pointer != NULL && !exw_json_pointer_valid(pointer))
        return exw_errbuf_set(eb, EXW_EJSON,
                              "%slookup: \"%.*s\" is not a JSON Pointer (it starts with / and "
                              "escapes ~ as ~0 and / as ~1)",
                              path, utf8_prefix(pointer, 60), pointer);
    col->type = EXW_COL_STRING;
    if (type != NULL) {
        for (t = 0; t < sizeof(type_names) / sizeof(type_names[0]); t++)
            if (strcmp(type, type_names[t]) == 0)
                break;
        if (t == sizeof(type_names) / sizeof(type_names[0])) {
            char *clean = exw_utf8_sanitize(type, strlen(type) > 40 ? 40 : strlen(type));

            rc = exw_errbuf_set(eb, EXW_EJSON,
                                "%stype: unknown type \"%s\" (use string, number, integer, "
                                "boolean, date or datetime)",
                                path, clean);
            free(clean);
            return rc;
        }
        col->type = (enum exw_col_type)t;
    }
    if (format != NULL && (format[0] == '\0' || strlen(format) > EXW_XLSX_FORMAT_MAX))
        return exw_errbuf_set(eb, EXW_EJSON, "%sformat: must have 1 to %d bytes", path,
                              EXW_XLSX_FORMAT_MAX);
    width = cJSON_GetObjectItemCaseSensitive(v, "width");
    col->width = 0;
    if (width != NULL && !cJSON_IsNull(width)) {
        if (!cJSON_IsNumber(width) || !(width->valuedouble > 0) || width->valuedouble > MAX_WIDTH)
            return exw_errbuf_set(eb, EXW_EJSON, "%swidth: must be a number above 0 and up to %g",
                                  path, MAX_WIDTH);
        col->width = width->valuedouble;
    }
    col->header = exw_xstrdup(header);
    col->field = field ? exw_xstrdup(field) : NULL;
    col->pointer = pointer ? exw_xstrdup(pointer) : NULL;
    col->format = format ? exw_xstrdup(format) : NULL;
    return EXW_OK;
}

static exw_err parse_lookup(const cJSON *root, struct exw_job *job, struct exw_errbuf *eb)
{
    const cJSON *lookup = cJSON_GetObjectItemCaseSensitive(root, "lookup");
    const cJSON *m;
    const char *service, *key;
    exw_err rc;

    if (lookup == NULL || cJSON_IsNull(lookup))
        return EXW_OK;
    if (!cJSON_IsObject(lookup))
        return exw_errbuf_set(eb, EXW_EJSON, "lookup: expected an object, got %s",
                              json_type_name(lookup));
    /* A job names a service configured on the worker and nothing else: no URL,
     * host, header or credential can come in this way. */
    cJSON_ArrayForEach(m, lookup)
    {
        if (strcmp(m->string, "service") != 0 && strcmp(m->string, "key") != 0) {
            char *clean =
                exw_utf8_sanitize(m->string, strlen(m->string) > 40 ? 40 : strlen(m->string));

            rc = exw_errbuf_set(eb, EXW_EJSON,
                                "lookup.%s: unknown member (lookup takes only \"service\" and "
                                "\"key\"; URLs and credentials are configured on the worker)",
                                clean);
            free(clean);
            return rc;
        }
    }
    rc = opt_string(lookup, "service", "lookup.", &service, eb);
    if (rc == EXW_OK)
        rc = opt_string(lookup, "key", "lookup.", &key, eb);
    if (rc != EXW_OK)
        return rc;
    if (service == NULL || service[0] == '\0')
        return exw_errbuf_set(eb, EXW_EJSON, "lookup.service: missing");
    if (key == NULL || key[0] == '\0')
        return exw_errbuf_set(eb, EXW_EJSON,
                              "lookup.key: missing (the row member holding the key)");
    job->service = exw_xstrdup(service);
    job->lookup_key = exw_xstrdup(key);
    return EXW_OK;
}

/* Whether @key names a list the job may use: one under the key prefix that is
 * none of the worker's own keys (the job deletes its list when it ends). */
static int rows_key_valid(const char *key, const char *prefix)
{
    static const char *const own[] = {"queue", "dead", "workers", "stats", "events"};
    static const char *const own_spaces[] = {"job:", "result:", "processing:", "worker:"};
    size_t plen = strlen(prefix);
    const char *rest = key + plen + 1;
    size_t i;

    if (strncmp(key, prefix, plen) != 0 || key[plen] != ':' || strlen(key) > 1024 ||
        has_control_chars(key))
        return 0;
    for (i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (strcmp(rest, own[i]) == 0)
            return 0;
    for (i = 0; i < sizeof(own_spaces) / sizeof(own_spaces[0]); i++)
        if (strncmp(rest, own_spaces[i], strlen(own_spaces[i])) == 0)
            return 0;
    return 1;
}

static exw_err parse_rows(const cJSON *root, struct exw_job *job, const struct exw_limits *lim,
                          const char *prefix, struct exw_errbuf *eb)
{
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows");
    const char *rows_key;
    const cJSON *r;
    size_t n, i = 0;
    exw_err rc = opt_string(root, "rows_key", "", &rows_key, eb);

    if (rc != EXW_OK)
        return rc;
    if (rows_key != NULL) {
        if (rows != NULL && !cJSON_IsNull(rows))
            return exw_errbuf_set(eb, EXW_EJSON, "rows, rows_key: give one of them, not both");
        if (!rows_key_valid(rows_key, prefix))
            return exw_errbuf_set(eb, EXW_EJSON,
                                  "rows_key: must be the name of a Redis list beginning with "
                                  "\"%s:\" and not one of the worker's own keys (queue, dead, "
                                  "workers, stats, events, job:*, result:*, processing:*, "
                                  "worker:*)",
                                  prefix);
        job->rows_key = exw_xstrdup(rows_key);
        return EXW_OK;
    }
    if (rows == NULL)
        return exw_errbuf_set(eb, EXW_EJSON, "rows: missing (give rows or rows_key)");
    if (!cJSON_IsArray(rows))
        return exw_errbuf_set(eb, EXW_EJSON, "rows: expected an array of objects, got %s",
                              json_type_name(rows));
    n = (size_t)cJSON_GetArraySize(rows);
    if (n > lim->max_rows)
        return exw_errbuf_set(eb, EXW_EJSON, "rows: %zu rows is over the limit of %zu", n,
                              lim->max_rows);
    job->rows = exw_xcalloc(n ? n : 1, sizeof(*job->rows));
    cJSON_ArrayForEach(r, rows)
    {
        if (!cJSON_IsObject(r))
            return exw_errbuf_set(eb, EXW_EJSON, "rows[%zu]: expected an object, got %s", i,
                                  json_type_name(r));
        job->rows[i++] = (const struct exw_row *)(const void *)r;
    }
    job->nrows = i;
    return EXW_OK;
}

static exw_err parse_fields(const cJSON *root, struct exw_job *job, const struct exw_limits *lim,
                            const char *prefix, struct exw_errbuf *eb)
{
    const cJSON *columns = cJSON_GetObjectItemCaseSensitive(root, "columns");
    const cJSON *v;
    const char *filename, *sheet, *policy;
    size_t n, i = 0;
    exw_err rc;

    rc = opt_string(root, "filename", "", &filename, eb);
    if (rc == EXW_OK)
        rc = opt_string(root, "sheet", "", &sheet, eb);
    if (rc == EXW_OK)
        rc = opt_string(root, "on_lookup_error", "", &policy, eb);
    if (rc != EXW_OK)
        return rc;
    if (filename != NULL && (filename[0] == '\0' || strlen(filename) > MAX_NAME_BYTES ||
                             has_control_chars(filename) || strpbrk(filename, "/\\") != NULL))
        return exw_errbuf_set(eb, EXW_EJSON,
                              "filename: must be 1 to %d bytes with no control characters, / or \\",
                              MAX_NAME_BYTES);
    if (sheet != NULL) {
        struct exw_errbuf why;

        if (!exw_job_sheet_name_valid(sheet, &why))
            return exw_errbuf_set(eb, EXW_EJSON, "sheet: %s", why.msg);
    }
    job->on_lookup_error = EXW_ON_LOOKUP_FAIL;
    if (policy != NULL) {
        if (strcmp(policy, "blank") == 0)
            job->on_lookup_error = EXW_ON_LOOKUP_BLANK;
        else if (strcmp(policy, "fail") != 0)
            return exw_errbuf_set(eb, EXW_EJSON, "on_lookup_error: must be \"fail\" or \"blank\"");
    }
    job->result_ttl_s = -1;
    v = cJSON_GetObjectItemCaseSensitive(root, "result_ttl");
    if (v != NULL && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 ||
            v->valuedouble > MAX_RESULT_TTL)
            return exw_errbuf_set(eb, EXW_EJSON, "result_ttl: must be whole seconds from 1 to %ld",
                                  MAX_RESULT_TTL);
        job->result_ttl_s = (long)v->valuedouble;
    }
    job->filename = filename ? exw_xstrdup(filename) : NULL;
    job->sheet = exw_xstrdup(sheet ? sheet : "Sheet1");
    if (job->filename == NULL) {
        size_t len = strlen(job->id) + sizeof(".xlsx");

        job->filename = exw_xmalloc(len);
        snprintf(job->filename, len, "%s.xlsx", job->id);
    }

    rc = parse_lookup(root, job, eb);
    if (rc != EXW_OK)
        return rc;
    if (columns == NULL)
        return exw_errbuf_set(eb, EXW_EJSON, "columns: missing");
    if (!cJSON_IsArray(columns))
        return exw_errbuf_set(eb, EXW_EJSON, "columns: expected an array, got %s",
                              json_type_name(columns));
    n = (size_t)cJSON_GetArraySize(columns);
    if (n < 1 || n > lim->max_columns)
        return exw_errbuf_set(eb, EXW_EJSON, "columns: must have 1 to %zu columns, has %zu",
                              lim->max_columns, n);
    job->columns = exw_xcalloc(n, sizeof(*job->columns));
    cJSON_ArrayForEach(v, columns)
    {
        struct exw_column *col = &job->columns[i];

        rc = parse_column(v, i, lim, col, eb);
        if (rc != EXW_OK)
            return rc;
        job->ncolumns = ++i;
        if (col->pointer != NULL) {
            if (job->service == NULL)
                return exw_errbuf_set(eb, EXW_EJSON,
                                      "columns[%zu].lookup: the job has no \"lookup\" member "
                                      "naming a service",
                                      i - 1);
            col->lookup_index = job->nlookup_columns++;
        }
    }
    return parse_rows(root, job, lim, prefix, eb);
}

exw_err exw_job_parse(const char *doc, size_t len, const struct exw_limits *lim, const char *prefix,
                      struct exw_job **out, enum exw_job_verdict *verdict, char **id,
                      struct exw_errbuf *eb)
{
    struct exw_job *job = NULL;
    cJSON *root = NULL;
    const cJSON *idv;
    size_t bad_at;
    exw_err rc;

    *verdict = EXW_JOB_DEAD;
    *id = NULL;
    if (len > lim->max_job_bytes) {
        *id = scan_id(doc, len);
        *verdict = EXW_JOB_TOO_LARGE;
        rc = exw_errbuf_set(eb, EXW_ELIMIT,
                            "the job document has %zu bytes, over the limit of %zu "
                            "(EXPORT_MAX_JOB_BYTES); put the rows in a rows_key list",
                            len, lim->max_job_bytes);
        goto out;
    }
    if (!exw_utf8_valid(doc, len, &bad_at)) {
        *id = scan_id(doc, len);
        *verdict = EXW_JOB_INVALID;
        rc =
            exw_errbuf_set(eb, EXW_EJSON, "the job document is not valid UTF-8 (byte %zu)", bad_at);
        goto out;
    }
    if (scan_depth(doc, len) > lim->max_depth) {
        *id = scan_id(doc, len);
        *verdict = EXW_JOB_INVALID;
        rc = exw_errbuf_set(eb, EXW_EJSON, "the job document nests deeper than %d levels",
                            lim->max_depth);
        goto out;
    }
    rc = exw_json_parse(doc, len, lim->max_depth, &root, eb);
    if (rc == EXW_ELIMIT) {
        /* Well-formed JSON that only our own limits refuse: fail it under its id. */
        *id = scan_id(doc, len);
        *verdict = EXW_JOB_INVALID;
        rc = EXW_EJSON;
        goto out;
    }
    if (rc != EXW_OK)
        goto out;
    if (!cJSON_IsObject(root)) {
        rc = exw_errbuf_set(eb, EXW_EJSON, "the job document is a JSON %s, not an object",
                            json_type_name(root));
        goto out;
    }
    idv = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (!cJSON_IsString(idv) || !exw_job_id_valid(idv->valuestring, strlen(idv->valuestring))) {
        rc =
            exw_errbuf_set(eb, EXW_EJSON,
                           idv == NULL ? "id: missing"
                                       : "id: must be a string of 1 to 128 of A-Z a-z 0-9 . _ : -");
        goto out;
    }
    *id = exw_xstrdup(idv->valuestring);
    *verdict = EXW_JOB_INVALID;
    job = exw_xcalloc(1, sizeof(*job));
    job->id = exw_xstrdup(idv->valuestring);
    job->limits = *lim;
    job->root = root;
    root = NULL;
    rc = parse_fields(job->root, job, lim, prefix, eb);
    if (rc == EXW_OK)
        *verdict = EXW_JOB_OK;
out:
    cJSON_Delete(root);
    if (rc != EXW_OK) {
        exw_job_free(job);
        job = NULL;
        if (*id == NULL)
            *verdict = EXW_JOB_DEAD; /* nothing to fail the job under */
    }
    *out = job;
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
    free(job->rows);
    cJSON_Delete(job->root);
    free(job);
}

exw_err exw_row_parse(const struct exw_job *job, const char *text, size_t len, size_t index,
                      struct exw_row **out, struct exw_errbuf *eb)
{
    cJSON *root = NULL;
    struct exw_errbuf why;
    exw_err rc;

    *out = NULL;
    rc = exw_json_parse(text, len, job->limits.max_depth, &root, &why);
    if (rc != EXW_OK)
        return exw_errbuf_set(eb, EXW_EJSON, "rows[%zu]: not valid JSON (%s)", index, why.msg);
    if (!cJSON_IsObject(root)) {
        rc = exw_errbuf_set(eb, EXW_EJSON, "rows[%zu]: expected an object, got %s", index,
                            json_type_name(root));
        cJSON_Delete(root);
        return rc;
    }
    *out = (struct exw_row *)(void *)root;
    return EXW_OK;
}

void exw_row_free(struct exw_row *row) { cJSON_Delete((cJSON *)(void *)row); }

char *exw_job_dead_entry(const char *doc, size_t len, const char *error, long long failed_at_ms)
{
    cJSON *entry = cJSON_CreateObject();
    char *clean = exw_utf8_sanitize(doc, len);
    char *text;

    if (entry == NULL || cJSON_AddStringToObject(entry, "job", clean) == NULL ||
        cJSON_AddStringToObject(entry, "error", error) == NULL ||
        cJSON_AddNumberToObject(entry, "failed_at", (double)failed_at_ms) == NULL)
        text = NULL;
    else
        text = cJSON_PrintUnformatted(entry);
    free(clean);
    cJSON_Delete(entry);
    if (text == NULL)
        exw_assert_fail("cJSON could not allocate a dead-letter entry", __FILE__, __LINE__);
    return text;
}

char *exw_job_rows_key_of(const char *doc, size_t len, const struct exw_limits *lim,
                          const char *prefix)
{
    cJSON *root = NULL;
    const cJSON *v;
    char *key = NULL;

    if (len > lim->max_job_bytes || exw_json_parse(doc, len, lim->max_depth, &root, NULL) != EXW_OK)
        return NULL;
    v = cJSON_GetObjectItemCaseSensitive(root, "rows_key");
    if (cJSON_IsString(v) && rows_key_valid(v->valuestring, prefix))
        key = exw_xstrdup(v->valuestring);
    cJSON_Delete(root);
    return key;
}
