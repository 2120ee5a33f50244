/* dates.c: dates and times of date and datetime cells, and the proleptic
 * Gregorian calendar arithmetic (H. Hinnant's algorithms) that applies a UTC
 * offset across days, months and years. */
#include "exw/dates.h"

#include <string.h>

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
