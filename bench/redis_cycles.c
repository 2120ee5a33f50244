/* redis_cycles.c: the Redis-only reference for export-worker's small-job rate
 * (scripts/bench.sh).
 *
 * The least any worker on the reliable-queue pattern of PROTOCOL.md does per
 * job: one client pushes a job document (LPUSH), takes it into a processing
 * list (BLMOVE ... RIGHT LEFT) and removes it from there when done (LREM),
 * each command waiting for its reply as a worker must, COUNT times. No status,
 * no result, no workbook. The keys are KEY_PREFIX:queue and
 * KEY_PREFIX:processing, deleted at the end.
 *
 * Prints one line of JSON on stdout:
 *   {"cycles":N,"seconds":S,"per_second":R}
 *
 *   bench-redis-cycles HOST PORT COUNT KEY_PREFIX DOCUMENT
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "measure.h"

#define PROG "bench-redis-cycles"

static long parse_long(const char *s, long min, long max)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    return v;
}

/* Runs one command; returns 0 when its reply is of @want type, else -1 after saying why. */
static int command(redisContext *c, int want, const char *what, const char *fmt, ...)
{
    va_list ap;
    redisReply *reply;
    int rc = -1;

    va_start(ap, fmt);
    reply = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (reply == NULL)
        fprintf(stderr, PROG ": %s: %s\n", what, c->errstr);
    else if (reply->type != want)
        fprintf(stderr, PROG ": %s: unexpected reply (%s)\n", what,
                reply->type == REDIS_REPLY_ERROR ? reply->str : "wrong type");
    else
        rc = 0;
    freeReplyObject(reply);
    return rc;
}

int main(int argc, char **argv)
{
    char queue[256], processing[256];
    redisContext *c;
    long port, count;
    size_t len;
    double t0, secs;
    int rc = 1;

    port = argc == 6 ? parse_long(argv[2], 1, 65535) : -1;
    count = argc == 6 ? parse_long(argv[3], 1, 1000000000L) : -1;
    if (port < 0 || count < 0 || strlen(argv[4]) > 200) {
        fprintf(stderr, "usage: " PROG " HOST PORT COUNT KEY_PREFIX DOCUMENT\n");
        return 2;
    }
    snprintf(queue, sizeof(queue), "%s:queue", argv[4]);
    snprintf(processing, sizeof(processing), "%s:processing", argv[4]);
    len = strlen(argv[5]);
    c = redisConnect(argv[1], (int)port);
    if (c == NULL || c->err) {
        fprintf(stderr, PROG ": cannot connect to %s:%ld: %s\n", argv[1], port,
                c != NULL ? c->errstr : "out of memory");
        goto out;
    }
    t0 = now_s();
    for (long i = 0; i < count; i++) {
        if (command(c, REDIS_REPLY_INTEGER, "LPUSH", "LPUSH %s %b", queue, argv[5], len) != 0 ||
            command(c, REDIS_REPLY_STRING, "BLMOVE", "BLMOVE %s %s RIGHT LEFT 1", queue,
                    processing) != 0 ||
            command(c, REDIS_REPLY_INTEGER, "LREM", "LREM %s 1 %b", processing, argv[5], len) != 0)
            goto out;
    }
    secs = now_s() - t0;
    printf("{\"cycles\":%ld,\"seconds\":%.6f,\"per_second\":%.1f}\n", count, secs,
           (double)count / secs);
    rc = command(c, REDIS_REPLY_INTEGER, "DEL", "DEL %s %s", queue, processing) == 0 ? 0 : 1;
out:
    if (c != NULL)
        redisFree(c);
    return rc;
}
