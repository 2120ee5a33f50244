/* setting.c: the rules every setting's text follows (see setting.h). */
#include "exw/setting.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int exw_setting_has_control(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 1;
    }
    return 0;
}

int exw_setting_has_space_or_control(const char *s)
{
    return strchr(s, ' ') != NULL || exw_setting_has_control(s, strlen(s));
}

const char *exw_setting_show(const char *s, size_t n, char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, o = 0;
    unsigned char ch;

    out[o++] = '"';
    for (i = 0; i < n; i++) {
        ch = (unsigned char)s[i];
        if (o + 4 + 5 > size) { /* room for one escape, `..."` and the NUL */
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

void exw_setting_report(struct exw_buf *errs, const char *label, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    exw_buf_printf_cut(errs, "%s: %s\n", label, msg);
}

exw_err exw_setting_parse_long(const char *s, long min, long max, long *out, const char *label,
                               struct exw_buf *errs)
{
    char shown[EXW_SETTING_SHOW_MAX];
    const char *digits = s + (s[0] == '-' || s[0] == '+');
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    /* strtol() alone would take leading spaces and the empty string. */
    if (digits[0] < '0' || digits[0] > '9' || *end != '\0') {
        exw_setting_report(errs, label, "must be an integer, got %s",
                           exw_setting_show(s, strlen(s), shown, sizeof(shown)));
        return EXW_ECONFIG;
    }
    if (errno == ERANGE || v < min || v > max) {
        /* Only digits and a sign got here, so the text is safe to echo. */
        exw_setting_report(errs, label, "must be %ld..%ld, got %s", min, max, s);
        return EXW_ECONFIG;
    }
    *out = v;
    return EXW_OK;
}

void exw_setting_free_secret(char *s)
{
    volatile char *p = s;

    if (s == NULL)
        return;
    while (*p)
        *p++ = '\0';
    free(s);
}

int exw_setting_host_port(const char *s, char *host, size_t host_size, long *port, char *why,
                          size_t why_size)
{
    char shown[EXW_SETTING_SHOW_MAX];
    const char *colon = strrchr(s, ':');
    const char *h = s, *digits;
    size_t hlen;
    char *end;

    exw_setting_show(s, strlen(s), shown, sizeof(shown));
    if (colon == NULL) {
        snprintf(why, why_size, "must be HOST:PORT, e.g. 127.0.0.1:9100, got %s", shown);
        return -1;
    }
    hlen = (size_t)(colon - s);
    if (s[0] == '[') {
        if (hlen < 2 || s[hlen - 1] != ']') {
            snprintf(why, why_size, "must be [IPV6]:PORT, e.g. [::1]:9100, got %s", shown);
            return -1;
        }
        h = s + 1;
        hlen -= 2;
    } else if (memchr(s, ':', hlen) != NULL) {
        snprintf(why, why_size, "an IPv6 address needs brackets, e.g. [::1]:9100, got %s", shown);
        return -1;
    }
    if (hlen == 0 || hlen >= host_size || exw_setting_has_space_or_control(s) ||
        memchr(h, '[', hlen) != NULL || memchr(h, ']', hlen) != NULL) {
        snprintf(why, why_size,
                 "must be HOST:PORT with a host (0.0.0.0 for every interface), "
                 "got %s",
                 shown);
        return -1;
    }
    digits = colon + 1;
    errno = 0;
    *port = strtol(digits, &end, 10);
    if (digits[strspn(digits, EXW_SETTING_DIGITS)] != '\0' || *digits == '\0' || errno != 0 ||
        *end != '\0' || *port < 0 || *port > 65535) {
        snprintf(why, why_size, "the port must be 0 to 65535, got %s", shown);
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    return 0;
}

int exw_setting_check_file(const char *value, char *why, size_t why_size)
{
    char shown[EXW_SETTING_SHOW_PATH_MAX];
    struct stat st;
    FILE *f;

    exw_setting_show(value, strlen(value), shown, sizeof(shown));
    if (stat(value, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, why_size, "%s is not a file", shown);
        return -1;
    }
    f = fopen(value, "r");
    if (f == NULL) {
        snprintf(why, why_size, "cannot read %s", shown);
        return -1;
    }
    fclose(f);
    return 0;
}

int exw_setting_check_folder(const char *value, char *why, size_t why_size)
{
    char shown[EXW_SETTING_SHOW_PATH_MAX];
    char etext[128];
    struct stat st;

    exw_setting_show(value, strlen(value), shown, sizeof(shown));
    if (value[0] != '/') {
        snprintf(why, why_size, "must be an absolute path, got %s", shown);
        return -1;
    }
    if (stat(value, &st) != 0) {
        snprintf(why, why_size, "%s: %s", shown, exw_errno_text(errno, etext, sizeof(etext)));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, why_size, "%s is not a folder", shown);
        return -1;
    }
    if (access(value, W_OK | X_OK) != 0) {
        snprintf(why, why_size, "%s is not writable: %s", shown,
                 exw_errno_text(errno, etext, sizeof(etext)));
        return -1;
    }
    return 0;
}

int exw_setting_check_listen_addr(const char *value, char *why, size_t why_size)
{
    char host[256], shown[EXW_SETTING_SHOW_MAX];
    struct addrinfo hints, *res = NULL;
    long port;
    int rc;

    if (exw_setting_host_port(value, host, sizeof(host), &port, why, why_size) != 0)
        return -1;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(why, why_size, "cannot resolve the host %s: %s",
                 exw_setting_show(host, strlen(host), shown, sizeof(shown)), gai_strerror(rc));
        return -1;
    }
    freeaddrinfo(res);
    return 0;
}
