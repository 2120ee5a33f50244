/* log.c: one line per event on stderr, as key=value text or as JSON.
 *
 * A line is assembled in a stack buffer no larger than PIPE_BUF and handed to
 * a single write(2), so lines from different threads never interleave, even
 * when stderr is a pipe to a log collector. Nothing here allocates or takes a
 * lock: logging must keep working when memory is short and must never wait
 * on another thread. The message is escaped (never trusted to be one line or
 * valid UTF-8) and cut with "..." when it does not fit. */
#include "exw/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exw/utf8.h"

/* PIPE_BUF on Linux: POSIX makes a pipe write of at most this size atomic. */
#define LINE_BYTES 4096
/* Room kept at the end of a line for `..."}` and the newline. */
#define LINE_TAIL 8
#define THREAD_NAME_MAX 31
#define JOB_ID_MAX 128

/* Written once by exw_log_setup() before threads start; read relaxed by all. */
static atomic_int min_level = EXW_LOG_INFO;
static atomic_int out_format = EXW_LOG_TEXT;

static _Thread_local char thread_name[THREAD_NAME_MAX + 1];
static _Thread_local char job_id[JOB_ID_MAX + 1];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

struct line {
    char buf[LINE_BYTES];
    size_t len;
};

void exw_log_setup(enum exw_log_format fmt, enum exw_log_level level)
{
    atomic_store_explicit(&out_format, (int)fmt, memory_order_relaxed);
    atomic_store_explicit(&min_level, (int)level, memory_order_relaxed);
}

int exw_log_enabled(enum exw_log_level level)
{
    return (int)level >= atomic_load_explicit(&min_level, memory_order_relaxed);
}

static void copy_name(char *dst, size_t size, const char *src)
{
    size_t n = src ? strlen(src) : 0;

    if (n >= size)
        n = size - 1;
    if (n > 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

void exw_log_set_thread(const char *name) { copy_name(thread_name, sizeof(thread_name), name); }

void exw_log_set_job(const char *id) { copy_name(job_id, sizeof(job_id), id); }

/* Writes the escaped form of the character at @s into @out (room for 8) and
 * returns its length; *@used is how many input bytes it stands for. Text lines
 * use C-like escapes, JSON lines JSON's; invalid UTF-8 becomes \xHH in text and
 * U+FFFD in JSON, so a JSON line is always valid JSON. */
static size_t escape_char(int json, const unsigned char *s, size_t n, char *out, size_t *used)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char ch = s[0];
    size_t len;

    *used = 1;
    switch (ch) {
    case '"':
        memcpy(out, "\\\"", 2);
        return 2;
    case '\\':
        memcpy(out, "\\\\", 2);
        return 2;
    case '\n':
        memcpy(out, "\\n", 2);
        return 2;
    case '\r':
        memcpy(out, "\\r", 2);
        return 2;
    case '\t':
        memcpy(out, "\\t", 2);
        return 2;
    default:
        break;
    }
    if (ch < 0x20 || ch == 0x7f) {
        if (json) {
            memcpy(out, "\\u00", 4);
            out[4] = hex[ch >> 4];
            out[5] = hex[ch & 15];
            return 6;
        }
        out[0] = '\\';
        out[1] = 'x';
        out[2] = hex[ch >> 4];
        out[3] = hex[ch & 15];
        return 4;
    }
    len = exw_utf8_seq((const char *)s, n, NULL);
    if (len == 0) {
        if (json) {
            memcpy(out, "\\ufffd", 6);
            return 6;
        }
        out[0] = '\\';
        out[1] = 'x';
        out[2] = hex[ch >> 4];
        out[3] = hex[ch & 15];
        return 4;
    }
    memcpy(out, s, len);
    *used = len;
    return len;
}

static void put(struct line *l, const char *s, size_t n)
{
    /* The fixed parts are bounded far below LINE_BYTES; this is only a guard. */
    if (n > LINE_BYTES - LINE_TAIL - l->len)
        n = LINE_BYTES - LINE_TAIL - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_str(struct line *l, const char *s) { put(l, s, strlen(s)); }

/* Appends @n bytes of @s escaped, without the quotes. Returns 0, or -1 if it
 * stopped because the line is full. */
static int put_escaped(struct line *l, int json, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    char esc[8];
    size_t i = 0, used, elen;

    while (i < n) {
        elen = escape_char(json, p + i, n - i, esc, &used);
        if (l->len + elen > LINE_BYTES - LINE_TAIL)
            return -1;
        memcpy(l->buf + l->len, esc, elen);
        l->len += elen;
        i += used;
    }
    return 0;
}

/* A text value needs quotes unless it is made of these (ids, names, codes). */
static int is_bare(const char *s)
{
    const char *p;

    if (*s == '\0')
        return 0;
    for (p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("._:-/@+", *p)))
            return 0;
    }
    return 1;
}

/* Appends ` key=value` (text) or `,"key":"value"` (JSON). */
static void put_field(struct line *l, int json, const char *key, const char *val)
{
    if (json) {
        put_str(l, ",\"");
        put_str(l, key);
        put_str(l, "\":\"");
        (void)put_escaped(l, 1, val, strlen(val));
        put_str(l, "\"");
        return;
    }
    put_str(l, " ");
    put_str(l, key);
    put_str(l, "=");
    if (is_bare(val)) {
        put_str(l, val);
        return;
    }
    put_str(l, "\"");
    (void)put_escaped(l, 0, val, strlen(val));
    put_str(l, "\"");
}

static void format_time(char *out, size_t size)
{
    struct timespec ts;
    struct tm tm;
    time_t secs;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        ts.tv_sec = 0;
        ts.tv_nsec = 0;
    }
    secs = ts.tv_sec;
    if (gmtime_r(&secs, &tm) == NULL) {
        snprintf(out, size, "1970-01-01T00:00:00.000Z");
        return;
    }
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000));
}

/* One write(2) for the whole line; a second only if the kernel took part of it,
 * which it never does for a pipe or a file at this size. */
static void write_line(const char *p, size_t n)
{
    ssize_t w;

    while (n > 0) {
        w = write(STDERR_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* Nowhere left to report it. */
        }
        p += w;
        n -= (size_t)w;
    }
}

void exw_log_write(enum exw_log_level level, const char *err, const char *fmt, ...)
{
    int saved_errno = errno;
    int json = atomic_load_explicit(&out_format, memory_order_relaxed) == EXW_LOG_JSON;
    struct line l;
    char msg[LINE_BYTES];
    char ts[64];
    va_list ap;
    int n;
    size_t mlen;
    int cut;

    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0) {
        snprintf(msg, sizeof(msg), "(unformattable log message)");
        n = (int)strlen(msg);
    }
    /* msg is as large as the whole line, so when vsnprintf() had to cut it the
     * line fills up first: a character cut in two at msg's end is never reached. */
    cut = (size_t)n >= sizeof(msg);
    mlen = cut ? sizeof(msg) - 1 : (size_t)n;
    if ((int)level < EXW_LOG_DEBUG || (int)level > EXW_LOG_ERROR)
        level = EXW_LOG_ERROR;

    l.len = 0;
    format_time(ts, sizeof(ts));
    if (json) {
        put_str(&l, "{\"ts\":\"");
        put_str(&l, ts);
        put_str(&l, "\"");
    } else {
        put_str(&l, "ts=");
        put_str(&l, ts);
    }
    put_field(&l, json, "lvl", level_names[level]);
    put_field(&l, json, "thr", thread_name[0] ? thread_name : "-");
    if (job_id[0])
        put_field(&l, json, "job", job_id);
    if (err)
        put_field(&l, json, "err", err);
    put_str(&l, json ? ",\"msg\":\"" : " msg=\"");
    if (put_escaped(&l, json, msg, mlen) != 0)
        cut = 1;

    /* LINE_TAIL bytes are still free here, whatever put_escaped() did. */
    if (cut) {
        memcpy(l.buf + l.len, "...", 3);
        l.len += 3;
    }
    memcpy(l.buf + l.len, json ? "\"}\n" : "\"\n", json ? 3 : 2);
    l.len += json ? 3 : 2;
    write_line(l.buf, l.len);
    errno = saved_errno;
}
