/* row.c: the rows of a job (row.h): the cursor over inline rows, rows_key
 * elements, and the members of a row that the columns name.
 *
 * A row is read in place (json_text.h) with one walk over its members; only
 * the members whose names a column or the lookup key uses are kept, found
 * through a hash table of the job's distinct field names, so a row costs one
 * probe per member whatever the number of columns. */
#include "exw/row.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exw/arena.h"
#include "exw/job.h"
#include "exw/json.h"

/* ---- Field names ----
 *
 * Rows are matched against the columns' field names through a hash table of
 * the distinct names: a row costs one probe per member, whatever the number
 * of columns. */

struct exw_job_fields {
    size_t n;
    const char **names; /* borrowed from the columns and lookup_key */
    size_t *lens;
    size_t *slots; /* field index + 1, 0 for empty; a power of two of them */
    size_t mask;
};

static size_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

/* The index of the field named @s (@n bytes), or EXW_NO_FIELD. */
static size_t field_find(const struct exw_job_fields *f, const char *s, size_t n)
{
    size_t slot = hash_bytes(s, n) & f->mask, idx;

    for (idx = f->slots[slot]; idx != 0; idx = f->slots[slot]) {
        if (f->lens[idx - 1] == n && memcmp(f->names[idx - 1], s, n) == 0)
            return idx - 1;
        slot = (slot + 1) & f->mask;
    }
    return EXW_NO_FIELD;
}

/* The index of @name, added when new. The table has room for every column
 * and the key. */
static size_t field_add(struct exw_job_fields *f, const char *name)
{
    size_t n = strlen(name), slot, idx = field_find(f, name, n);

    if (idx != EXW_NO_FIELD)
        return idx;
    for (slot = hash_bytes(name, n) & f->mask; f->slots[slot] != 0; slot = (slot + 1) & f->mask)
        ;
    f->names[f->n] = name;
    f->lens[f->n] = n;
    f->slots[slot] = ++f->n;
    return f->n - 1;
}

void exw_job_index_fields(struct exw_job *job)
{
    struct exw_job_fields *f = exw_xcalloc(1, sizeof(*f));
    size_t max = job->ncolumns + 1, size = 2, i;

    while (size < 2 * max)
        size *= 2;
    f->names = exw_xcalloc(max, sizeof(*f->names));
    f->lens = exw_xcalloc(max, sizeof(*f->lens));
    f->slots = exw_xcalloc(size, sizeof(*f->slots));
    f->mask = size - 1;
    for (i = 0; i < job->ncolumns; i++) {
        if (job->columns[i].field != NULL)
            job->columns[i].field_index = field_add(f, job->columns[i].field);
    }
    job->key_field = job->lookup_key != NULL ? field_add(f, job->lookup_key) : EXW_NO_FIELD;
    job->fields = f;
}

void exw_job_fields_free(struct exw_job_fields *f)
{
    if (f == NULL)
        return;
    free(f->names);
    free(f->lens);
    free(f->slots);
    free(f);
}

/* The field a member named @name (a string value) stands for, or EXW_NO_FIELD. */
static size_t field_of(const struct exw_job_fields *f, const struct exw_json_value *name)
{
    const char *body = name->text + 1;
    size_t blen = name->len - 2, idx, n;
    char small[256], *buf;

    if (memchr(body, '\\', blen) == NULL)
        return field_find(f, body, blen);
    /* Escapes: decode first (rare; a long name once on the heap). */
    buf = name->len <= sizeof(small) ? small : exw_xmalloc(name->len);
    n = exw_json_string_decode(name, buf);
    idx = field_find(f, buf, n);
    if (buf != small)
        free(buf);
    return idx;
}

/* ---- Rows ---- */

/* A member of a row that a column names. */
struct row_member {
    size_t field;
    size_t order; /* among the row's named members: the first of equal names wins */
    struct exw_json_value v;
};

struct exw_row {
    char *text;                 /* a rows_key row's own copy of its text, else NULL */
    struct row_member *members; /* sorted by field, one per field */
    size_t nmembers, cap;       /* cap: room in members */
    char *strings;              /* the decoded string values, unless an arena holds them */
    size_t bytes;               /* what the row holds on the heap */
};

static int by_field_then_order(const void *a, const void *b)
{
    const struct row_member *x = a, *y = b;

    if (x->field != y->field)
        return x->field < y->field ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Sorts the @n members of @row by field and keeps the first of each field;
 * returns how many are left (at most the number of fields). */
static size_t keep_first(struct exw_row *row, size_t n)
{
    size_t i, kept = 0;

    if (n == 0)
        return 0;
    qsort(row->members, n, sizeof(*row->members), by_field_then_order);
    for (i = 0; i < n; i++) {
        if (kept == 0 || row->members[kept - 1].field != row->members[i].field)
            row->members[kept++] = row->members[i];
    }
    return kept;
}

/* Reads the row object @obj into @row (new, or reused: its members array is
 * kept): the members the columns and the lookup key name, their strings
 * decoded into @arena, or into row->strings when @arena is NULL. */
static void row_fill(struct exw_row *row, const struct exw_job *job,
                     const struct exw_json_value *obj, struct exw_arena *arena)
{
    struct exw_json_value name, v;
    struct exw_json_iter it;
    size_t n = 0, order = 0, i, bytes = 0, field;
    char *o;

    row->nmembers = 0;
    if (job->fields == NULL || job->fields->n == 0)
        return; /* no column reads the rows */
    exw_json_iter_init(&it, obj);
    while (exw_json_iter_next(&it, &name, &v)) {
        field = field_of(job->fields, &name);
        if (field == EXW_NO_FIELD)
            continue;
        if (n == row->cap && row->cap >= 2 * job->fields->n)
            n = keep_first(row, n); /* repeated names: the array stays bounded */
        if (n == row->cap) {
            row->cap = row->cap ? 2 * row->cap : 8;
            row->members = exw_xrealloc(row->members, row->cap * sizeof(*row->members));
        }
        row->members[n].field = field;
        row->members[n].order = order++;
        row->members[n].v = v;
        n++;
    }
    row->nmembers = keep_first(row, n);
    for (i = 0; i < row->nmembers; i++) {
        if (row->members[i].v.kind == EXW_JSON_STRING)
            bytes += row->members[i].v.len;
    }
    if (bytes == 0)
        return;
    if (arena != NULL) {
        o = exw_arena_alloc(arena, bytes);
    } else {
        o = row->strings = exw_xmalloc(bytes);
        row->bytes += bytes;
    }
    for (i = 0; i < row->nmembers; i++) {
        struct exw_json_value *s = &row->members[i].v;

        if (s->kind != EXW_JSON_STRING)
            continue;
        s->str = o;
        s->str_len = exw_json_string_decode(s, o);
        o += s->str_len + 1;
    }
}

/* A new row read from the object @obj. Takes ownership of @text (@text_len
 * bytes, or NULL). */
static struct exw_row *row_read(const struct exw_job *job, const struct exw_json_value *obj,
                                char *text, size_t text_len)
{
    struct exw_row *row = exw_xcalloc(1, sizeof(*row));

    row->text = text;
    row->bytes = sizeof(*row) + text_len;
    row_fill(row, job, obj, NULL);
    row->bytes += row->cap * sizeof(*row->members);
    return row;
}

exw_err exw_job_next_row(struct exw_job *job, struct exw_row **out, struct exw_errbuf *eb)
{
    struct exw_json_value v;

    (void)eb;
    *out = NULL;
    if (job->rows_key != NULL || !exw_json_iter_next(&job->rows_at, NULL, &v))
        return EXW_OK;
    *out = row_read(job, &v, NULL, 0);
    return EXW_OK;
}

/* Checks that the @len bytes at @text are a row: valid JSON, an object. */
static exw_err check_row(const struct exw_job *job, const char *text, size_t len, size_t index,
                         struct exw_errbuf *eb)
{
    struct exw_json_value root;
    struct exw_errbuf why;

    if (exw_json_check(text, len, job->limits.max_depth, &why) != EXW_OK)
        return exw_errbuf_set(eb, EXW_EJSON, "rows[%zu]: not valid JSON (%s)", index, why.msg);
    exw_json_root(text, len, &root);
    if (root.kind != EXW_JSON_OBJECT)
        return exw_errbuf_set(eb, EXW_EJSON, "rows[%zu]: expected an object, got %s", index,
                              exw_json_kind_name(root.kind));
    return EXW_OK;
}

exw_err exw_row_parse(const struct exw_job *job, const char *text, size_t len, size_t index,
                      struct exw_row **out, struct exw_errbuf *eb)
{
    struct exw_json_value root;
    char *copy;

    *out = NULL;
    if (check_row(job, text, len, index, eb) != EXW_OK)
        return EXW_EJSON;
    /* The row is read from a copy: the caller's reply buffer may go. */
    copy = exw_xmalloc(len);
    memcpy(copy, text, len);
    exw_json_root(copy, len, &root);
    *out = row_read(job, &root, copy, len);
    return EXW_OK;
}

exw_err exw_row_parse_in(const struct exw_job *job, const char *text, size_t len, size_t index,
                         struct exw_arena *strings, struct exw_row **row, struct exw_errbuf *eb)
{
    struct exw_json_value root;

    if (check_row(job, text, len, index, eb) != EXW_OK)
        return EXW_EJSON;
    if (*row == NULL)
        *row = exw_xcalloc(1, sizeof(**row));
    EXW_ASSERT((*row)->text == NULL && (*row)->strings == NULL);
    exw_json_root(text, len, &root);
    row_fill(*row, job, &root, strings);
    return EXW_OK;
}

void exw_row_free(struct exw_row *row)
{
    if (row == NULL)
        return;
    free(row->text);
    free(row->members);
    free(row->strings);
    free(row);
}

size_t exw_row_bytes(const struct exw_row *row) { return row != NULL ? row->bytes : 0; }

static const struct exw_json_value *row_member(const struct exw_row *row, size_t field)
{
    size_t lo = 0, hi = row->nmembers, mid;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (row->members[mid].field == field)
            return &row->members[mid].v;
        if (row->members[mid].field < field)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const struct exw_json_value *exw_row_field(const struct exw_job *job, const struct exw_row *row,
                                           size_t col)
{
    EXW_ASSERT(col < job->ncolumns && job->columns[col].field != NULL);
    return row_member(row, job->columns[col].field_index);
}

const struct exw_json_value *exw_row_key_value(const struct exw_job *job, const struct exw_row *row)
{
    return job->key_field == EXW_NO_FIELD ? NULL : row_member(row, job->key_field);
}
