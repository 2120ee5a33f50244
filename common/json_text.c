/* json_text.c: reading a checked JSON text in place, and JSON Pointer.
 *
 * The text has passed exw_json_check() (json.c), so nothing here checks
 * anything: values are spans of the text, found by skipping (strings with
 * memchr, containers by counting brackets outside strings), and strings are
 * decoded only when asked. Reading costs no allocation and no tree, whatever
 * the shape of the text. */
#include "exw/json_text.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exw/err.h"
#include "exw/utf8.h"

static int is_json_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

long exw_json_hex4(const char *p)
{
    long v = 0;
    int k;

    for (k = 0; k < 4; k++) {
        char c = p[k];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

/* The end of the number starting at @i (checked text: its characters are
 * the number's until the first that cannot be part of one). */
static size_t number_end(const char *p, size_t len, size_t i)
{
    while (i < len && ((p[i] >= '0' && p[i] <= '9') || p[i] == '-' || p[i] == '+' || p[i] == '.' ||
                       p[i] == 'e' || p[i] == 'E'))
        i++;
    return i;
}

/* ---- Reading a checked text in place ---- */

static const char *const kind_names[] = {
    [EXW_JSON_NONE] = "nothing", [EXW_JSON_NULL] = "null",     [EXW_JSON_FALSE] = "boolean",
    [EXW_JSON_TRUE] = "boolean", [EXW_JSON_NUMBER] = "number", [EXW_JSON_STRING] = "string",
    [EXW_JSON_ARRAY] = "array",  [EXW_JSON_OBJECT] = "object",
};

const char *exw_json_kind_name(enum exw_json_kind kind) { return kind_names[kind]; }

static size_t skip_space(const char *p, size_t len, size_t i)
{
    while (i < len && is_json_space((unsigned char)p[i]))
        i++;
    return i;
}

/* The end of the string whose opening quote is at @i: just past its closing
 * quote, found with memchr (a quote is escaped when an odd number of
 * backslashes comes before it). */
static size_t string_end(const char *p, size_t len, size_t i)
{
    const char *q;
    size_t k;

    for (i++; i < len; i = (size_t)(q - p) + 1) {
        q = memchr(p + i, '"', len - i);
        if (q == NULL)
            return len;
        for (k = 0; (size_t)(q - p) - k > i && q[-1 - (long)k] == '\\'; k++)
            ;
        if (k % 2 == 0)
            return (size_t)(q - p) + 1;
    }
    return len;
}

/* The end of the value that starts at @i in a checked text. */
static size_t value_end(const char *p, size_t len, size_t i)
{
    size_t depth = 0;

    switch (p[i]) {
    case '"':
        return string_end(p, len, i);
    case 't':
    case 'n':
        return i + 4;
    case 'f':
        return i + 5;
    case '{':
    case '[':
        break;
    default:
        return number_end(p, len, i);
    }
    while (i < len) {
        char c = p[i];

        if (c == '"') {
            i = string_end(p, len, i);
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                return i + 1;
        }
        i++;
    }
    return len;
}

/* The value starting at @i. */
static void value_at(const char *p, size_t len, size_t i, struct exw_json_value *out)
{
    memset(out, 0, sizeof(*out));
    if (i >= len)
        return;
    switch (p[i]) {
    case '{':
        out->kind = EXW_JSON_OBJECT;
        break;
    case '[':
        out->kind = EXW_JSON_ARRAY;
        break;
    case '"':
        out->kind = EXW_JSON_STRING;
        break;
    case 't':
        out->kind = EXW_JSON_TRUE;
        break;
    case 'f':
        out->kind = EXW_JSON_FALSE;
        break;
    case 'n':
        out->kind = EXW_JSON_NULL;
        break;
    default:
        out->kind = EXW_JSON_NUMBER;
        break;
    }
    out->text = p + i;
    out->len = value_end(p, len, i) - i;
}

void exw_json_root(const char *buf, size_t len, struct exw_json_value *out)
{
    size_t i = len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;

    value_at(buf, len, skip_space(buf, len, i), out);
}

void exw_json_iter_init(struct exw_json_iter *it, const struct exw_json_value *v)
{
    int container = v->kind == EXW_JSON_OBJECT || v->kind == EXW_JSON_ARRAY;

    it->text = v->text;
    it->len = container ? v->len - 1 : 0; /* up to the closing bracket */
    it->pos = container ? 1 : 0;
}

int exw_json_iter_next(struct exw_json_iter *it, struct exw_json_value *name,
                       struct exw_json_value *value)
{
    const char *p = it->text;
    size_t i = skip_space(p, it->len, it->pos);

    memset(value, 0, sizeof(*value));
    if (name != NULL)
        memset(name, 0, sizeof(*name));
    if (i < it->len && p[i] == ',')
        i = skip_space(p, it->len, i + 1);
    if (i >= it->len) {
        it->pos = it->len;
        return 0;
    }
    if (p[0] == '{') {
        size_t end = string_end(p, it->len, i);

        if (name != NULL) {
            name->kind = EXW_JSON_STRING;
            name->text = p + i;
            name->len = end - i;
        }
        i = skip_space(p, it->len, end) + 1; /* the colon */
        i = skip_space(p, it->len, i);
    }
    value_at(p, it->len, i, value);
    it->pos = i + value->len;
    return 1;
}

/* Writes @cp as UTF-8 into @out; returns its length. */
static size_t put_utf8(unsigned long cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes one byte or escape of a checked string's body at @p[*@i] into @out
 * (up to 4 bytes) and moves past it; returns the bytes written. */
static size_t decode_unit(const char *p, size_t *i, char out[4])
{
    unsigned long cp;
    char c = p[*i];

    if (c != '\\') {
        out[0] = c;
        *i += 1;
        return 1;
    }
    c = p[*i + 1];
    *i += 2;
    switch (c) {
    case 'b':
        out[0] = '\b';
        return 1;
    case 'f':
        out[0] = '\f';
        return 1;
    case 'n':
        out[0] = '\n';
        return 1;
    case 'r':
        out[0] = '\r';
        return 1;
    case 't':
        out[0] = '\t';
        return 1;
    case 'u':
        cp = (unsigned long)exw_json_hex4(p + *i);
        *i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            /* The check made sure the low half follows. */
            cp = 0x10000 + ((cp - 0xD800) << 10) +
                 ((unsigned long)exw_json_hex4(p + *i + 2) - 0xDC00);
            *i += 6;
        }
        return put_utf8(cp, out);
    default:
        out[0] = c; /* " \ / */
        return 1;
    }
}

size_t exw_json_string_decode(const struct exw_json_value *s, char *out)
{
    const char *body = s->text + 1;
    size_t n = s->len - 2, i = 0, o = 0;
    const char *esc;

    while (i < n) {
        /* Copy up to the next escape in one go. */
        esc = memchr(body + i, '\\', n - i);
        if (esc == NULL) {
            memcpy(out + o, body + i, n - i);
            o += n - i;
            break;
        }
        memcpy(out + o, body + i, (size_t)(esc - body) - i);
        o += (size_t)(esc - body) - i;
        i = (size_t)(esc - body);
        o += decode_unit(body, &i, out + o);
    }
    out[o] = '\0';
    return o;
}

char *exw_json_string_dup(const struct exw_json_value *s, size_t *len)
{
    char *out = exw_xmalloc(s->len);
    size_t n = exw_json_string_decode(s, out);

    if (len != NULL)
        *len = n;
    return out;
}

int exw_json_string_eq(const struct exw_json_value *s, const char *text, size_t n)
{
    const char *body = s->text + 1;
    size_t blen = s->len - 2, i = 0, t = 0, k, m;
    char unit[4];

    if (blen < n)
        return 0; /* decoding never grows a string */
    if (memchr(body, '\\', blen) == NULL)
        return blen == n && memcmp(body, text, n) == 0;
    while (i < blen) {
        m = decode_unit(body, &i, unit);
        for (k = 0; k < m; k++) {
            if (t >= n || text[t++] != unit[k])
                return 0;
        }
    }
    return t == n;
}

void exw_json_describe(const struct exw_json_value *v, char *out, size_t outsz)
{
    const char *body;
    char text[44] = "", unit[4];
    size_t blen, i = 0, o = 0, m, cut;

    switch (v->kind) {
    case EXW_JSON_STRING:
        /* The first 40 bytes of the decoded text, cut at a character. */
        body = v->text + 1;
        blen = v->len - 2;
        while (i < blen && o < 40) {
            m = decode_unit(body, &i, unit);
            memcpy(text + o, unit, m);
            o += m;
        }
        cut = exw_utf8_cut(text, o, 40);
        snprintf(out, outsz, "string \"%.*s%s\"", (int)cut, text, i < blen || cut < o ? "..." : "");
        break;
    case EXW_JSON_NUMBER:
        snprintf(out, outsz, "number %.*s%s", (int)(v->len > 40 ? 40 : v->len), v->text,
                 v->len > 40 ? "..." : "");
        break;
    case EXW_JSON_TRUE:
    case EXW_JSON_FALSE:
        snprintf(out, outsz, "%s", v->kind == EXW_JSON_TRUE ? "true" : "false");
        break;
    default:
        snprintf(out, outsz, "%s", exw_json_kind_name(v->kind));
        break;
    }
}

/* ---- JSON Pointer (RFC 6901) ---- */

int exw_json_pointer_valid(const char *pointer)
{
    const char *p;

    if (pointer == NULL)
        return 0;
    if (pointer[0] == '\0')
        return 1;
    if (pointer[0] != '/')
        return 0;
    for (p = pointer; *p != '\0'; p++) {
        if (*p == '~' && p[1] != '0' && p[1] != '1')
            return 0;
    }
    return 1;
}

/* Whether the reference token @tok (@n bytes, still escaped) is the member name
 * @key. */
static int token_is(const char *tok, size_t n, const char *key)
{
    size_t i;
    char c;

    for (i = 0; i < n; i++, key++) {
        c = tok[i];
        if (c == '~') {
            i++;
            c = tok[i] == '1' ? '/' : '~';
        }
        if (*key != c)
            return 0;
    }
    return *key == '\0';
}

/* Parses an array index token: "0" or [1-9][0-9]*. */
static int token_index(const char *tok, size_t n, size_t *idx)
{
    size_t i, v = 0, d;

    if (n == 0 || (tok[0] == '0' && n > 1))
        return 0;
    for (i = 0; i < n; i++) {
        if (tok[i] < '0' || tok[i] > '9')
            return 0;
        d = (size_t)(tok[i] - '0');
        if (v > (((size_t)-1) - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *idx = v;
    return 1;
}

/* The value token @tok (@n bytes) names inside @cur, or NULL. */
static const cJSON *pointer_step(const cJSON *cur, const char *tok, size_t n)
{
    const cJSON *child;
    size_t idx = 0, i = 0;

    if (cJSON_IsObject(cur)) {
        for (child = cur->child; child != NULL; child = child->next) {
            if (child->string != NULL && token_is(tok, n, child->string))
                return child;
        }
        return NULL;
    }
    if (cJSON_IsArray(cur) && token_index(tok, n, &idx)) {
        for (child = cur->child; child != NULL; child = child->next, i++) {
            if (i == idx)
                return child;
        }
    }
    return NULL;
}

exw_err exw_json_pointer(const struct cJSON *root, const char *pointer, const struct cJSON **out)
{
    const cJSON *cur = root;
    const char *p, *tok;
    size_t n;

    *out = NULL;
    if (!exw_json_pointer_valid(pointer))
        return EXW_EJSON;
    for (p = pointer; cur != NULL && *p == '/'; p = tok + n) {
        tok = p + 1;
        n = strcspn(tok, "/");
        cur = pointer_step(cur, tok, n);
    }
    *out = cur;
    return EXW_OK;
}

/* Whether the member name @name (a checked string) is the reference token
 * @tok (@n bytes, still escaped with ~0 and ~1). */
static int name_is_token(const struct exw_json_value *name, const char *tok, size_t n)
{
    const char *body = name->text + 1;
    size_t blen = name->len - 2, i = 0, t = 0, k, m;
    char unit[4], c;

    while (i < blen) {
        m = decode_unit(body, &i, unit);
        for (k = 0; k < m; k++) {
            if (t >= n)
                return 0;
            c = tok[t++];
            if (c == '~')
                c = tok[t++] == '1' ? '/' : '~';
            if (unit[k] != c)
                return 0;
        }
    }
    return t == n;
}

/* The value token @tok (@n bytes) names inside @cur, or NONE. */
static void pointer_step_text(const struct exw_json_value *cur, const char *tok, size_t n,
                              struct exw_json_value *out)
{
    struct exw_json_iter it;
    struct exw_json_value name, v;
    size_t idx = 0, i = 0;

    memset(out, 0, sizeof(*out));
    if (cur->kind == EXW_JSON_ARRAY && !token_index(tok, n, &idx))
        return;
    exw_json_iter_init(&it, cur);
    while (exw_json_iter_next(&it, &name, &v)) {
        if (cur->kind == EXW_JSON_OBJECT ? name_is_token(&name, tok, n) : i++ == idx) {
            *out = v;
            return;
        }
    }
}

exw_err exw_json_pointer_text(const struct exw_json_value *root, const char *pointer,
                              struct exw_json_value *out)
{
    struct exw_json_value cur = *root, next;
    const char *p, *tok;
    size_t n;

    memset(out, 0, sizeof(*out));
    if (!exw_json_pointer_valid(pointer))
        return EXW_EJSON;
    for (p = pointer; cur.kind != EXW_JSON_NONE && *p == '/'; p = tok + n) {
        tok = p + 1;
        n = strcspn(tok, "/");
        pointer_step_text(&cur, tok, n, &next);
        cur = next;
    }
    *out = cur;
    return EXW_OK;
}
