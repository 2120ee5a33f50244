/* log.h: one line per event on stderr, as text (key=value) or JSON.
 *
 * Only worker/ and tools log; common/ returns errors instead. A line is built in
 * a stack buffer and written with one write(), so lines from threads never mix. */
#ifndef EXW_LOG_H
#define EXW_LOG_H

#include "exw/err.h"

enum exw_log_level { EXW_LOG_DEBUG, EXW_LOG_INFO, EXW_LOG_WARN, EXW_LOG_ERROR };
enum exw_log_format { EXW_LOG_TEXT, EXW_LOG_JSON };

/* Set once at start-up, before threads start. Thread: main. */
void exw_log_setup(enum exw_log_format fmt, enum exw_log_level min_level);

/* Whether a line at @level would be written. Thread: any. */
int exw_log_enabled(enum exw_log_level level);

/* Names the calling thread ("main", "w3", "hb") and its current job (NULL for
 * none) in every line it logs. The strings are copied. Thread: any (own). */
void exw_log_set_thread(const char *name);
void exw_log_set_job(const char *job_id);

/* Writes one line. @err may be NULL. Use EXW_LOG, which skips formatting for
 * disabled levels. Thread: any. */
void exw_log_write(enum exw_log_level level, const char *err, const char *fmt, ...)
    EXW_PRINTF(3, 4);

#define EXW_LOG(level, ...)                                                                        \
    do {                                                                                           \
        if (exw_log_enabled(level))                                                                \
            exw_log_write(level, NULL, __VA_ARGS__);                                               \
    } while (0)

/* Same with an err= field naming the exw_err. */
#define EXW_LOG_ERR(level, rc, ...)                                                                \
    do {                                                                                           \
        if (exw_log_enabled(level))                                                                \
            exw_log_write(level, exw_strerror(rc), __VA_ARGS__);                                   \
    } while (0)

#endif
