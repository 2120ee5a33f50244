/* dates.h: the dates and times of date and datetime cells (PROTOCOL.md
 * section 2): their syntax, and the civil calendar arithmetic that turns a
 * time with a UTC offset into UTC. */
#ifndef EXW_DATES_H
#define EXW_DATES_H

#include "exw/err.h"

/* A civil date and time in UTC, as Excel stores it. */
struct exw_datetime {
    int year, month, day, hour, min;
    double sec; /* 0 to 59.999, milliseconds kept */
};

/* Parses "YYYY-MM-DD" (@with_time 0) or "YYYY-MM-DDTHH:MM:SS[.f{1,9}][Z|+HH:MM|-HH:MM]"
 * (@with_time 1) into UTC, milliseconds kept (further digits dropped, not
 * rounded); no offset means UTC. Fails (EXW_EJSON, @eb saying why) on another
 * form, a date that is not in the calendar, a time of day out of range, and
 * outside Excel's years 1900 to 9999 once in UTC. *@out is zeroed first.
 * Thread: any. */
EXW_MUST_CHECK exw_err exw_parse_datetime(const char *s, int with_time, struct exw_datetime *out,
                                          struct exw_errbuf *eb);

#endif
