/* setting.h: the rules every setting's text follows, shared by config.c (the
 * settings table), services.c (EXPORT_SERVICE_*) and redis_addr.c: strict
 * integers, character sets, no control characters, bad values quoted in
 * messages, the error list, and secrets wiped before they are freed.
 *
 * Character tests are ASCII and do not depend on the locale. */
#ifndef EXW_SETTING_H
#define EXW_SETTING_H

#include <stddef.h>
#include "exw/buf.h"
#include "exw/err.h"

/* Character sets, for strspn() and strchr(). */
#define EXW_SETTING_DIGITS "0123456789"
#define EXW_SETTING_UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define EXW_SETTING_LOWER "abcdefghijklmnopqrstuvwxyz"
#define EXW_SETTING_ALNUM EXW_SETTING_UPPER EXW_SETTING_LOWER EXW_SETTING_DIGITS

/* Room for a value quoted by exw_setting_show(): a plain value, or a path,
 * which gets more room since it is what the operator has to fix. */
#define EXW_SETTING_SHOW_MAX 72
#define EXW_SETTING_SHOW_PATH_MAX 200

/* Whether the @n bytes at @s hold a control character or DEL. Thread: any. */
int exw_setting_has_control(const char *s, size_t n);

/* Whether @s holds a space, a control character or DEL. Thread: any. */
int exw_setting_has_space_or_control(const char *s);

/* Quotes the @n bytes at @s for a message, into @out of @size bytes (at least
 * 16): escapes quotes, backslashes and control characters (as \xNN), and ends
 * a value too long for @out with "...". Returns @out. Only for values that are
 * not secret. Thread: any. */
const char *exw_setting_show(const char *s, size_t n, char *out, size_t size);

/* Adds the line "@label: <message>" to the error list @errs, each line ending
 * in '\n'. Past the cap of @errs the list is cut (exw_buf_printf_cut): the
 * first lines are the ones kept. Thread: owner of @errs. */
void exw_setting_report(struct exw_buf *errs, const char *label, const char *fmt, ...)
    EXW_PRINTF(3, 4);

/* Parses all of @s as a decimal integer (an optional sign, then digits; no
 * spaces) in [@min, @max] into *@out. Otherwise reports under @label
 * "must be an integer, got \"...\"" or "must be MIN..MAX, got S", leaves
 * *@out alone and returns EXW_ECONFIG, which callers may ignore since it is
 * reported. Thread: owner of @errs. */
exw_err exw_setting_parse_long(const char *s, long min, long max, long *out, const char *label,
                               struct exw_buf *errs);

/* Splits @s, "HOST:PORT" or "[IPV6]:PORT", into @host (@host_size bytes, the
 * brackets removed) and *@port (0 to 65535). The host must not be empty, and an
 * IPv6 address needs its brackets. Returns 0, or -1 with why in @why (without
 * the setting's name). Resolving the host is the caller's business.
 * Thread: any. */
int exw_setting_host_port(const char *s, char *host, size_t host_size, long *port, char *why,
                          size_t why_size);

/* Overwrites the string @s with zeros and frees it; NULL is a no-op. For
 * passwords, tokens and URLs that may hold them. Thread: any. */
void exw_setting_free_secret(char *s);

/* Checks of a setting's text beyond its length, in the shape of config.c's
 * table: 0, or -1 with why in @why (the value quoted, never a secret).
 * Thread: any. */
/* A readable regular file (whether it holds what it should, its reader
 * finds out). */
int exw_setting_check_file(const char *value, char *why, size_t why_size);
/* An absolute path to a folder this process may write in. */
int exw_setting_check_folder(const char *value, char *why, size_t why_size);
/* HOST:PORT to listen on, whose host resolves, so that a typo stops the
 * program at start. */
int exw_setting_check_listen_addr(const char *value, char *why, size_t why_size);

#endif
