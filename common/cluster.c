/* cluster.c: slots, hash tags and the nodes seen (see cluster.h).
 *
 * The CRC16 is written from the Redis Cluster specification (XMODEM) bit by
 * bit: it runs once per connection and per redirect, never per command, so a
 * table would buy nothing. The known nodes are a small list, most recently
 * seen first, shared by every connection of the process: when the node that
 * the URL names dies, any connection can still find the slot's owner through
 * a node that another one saw. */
#include "exw/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exw/mutex.h"

uint16_t exw_cluster_crc16(const void *s, size_t len)
{
    const unsigned char *p = s;
    unsigned crc = 0;
    size_t i;
    int bit;

    for (i = 0; i < len; i++) {
        crc ^= (unsigned)p[i] << 8;
        for (bit = 0; bit < 8; bit++)
            crc = (crc & 0x8000u) ? (crc << 1) ^ 0x1021u : crc << 1;
        crc &= 0xffffu;
    }
    return (uint16_t)crc;
}

/* Redis's rule: the first '{', then the first '}' after it; a tag only when
 * something lies between them. Returns 1 and the tag's place, else 0. */
static int find_tag(const char *key, size_t len, size_t *start, size_t *tag_len)
{
    const char *open = memchr(key, '{', len);
    const char *close;
    size_t at;

    if (open == NULL)
        return 0;
    at = (size_t)(open - key) + 1;
    close = memchr(key + at, '}', len - at);
    if (close == NULL || close == key + at)
        return 0;
    *start = at;
    *tag_len = (size_t)(close - (key + at));
    return 1;
}

int exw_cluster_key_slot(const void *key, size_t len)
{
    size_t start = 0, n = len;

    if (!find_tag(key, len, &start, &n)) {
        start = 0;
        n = len;
    }
    return exw_cluster_crc16((const char *)key + start, n) % EXW_CLUSTER_SLOTS;
}

int exw_cluster_prefix_tag(const char *prefix, const char **tag, size_t *tag_len)
{
    size_t start, n;

    /* The tag must close inside the prefix: a key under it may hold a '}'
     * of its own (a rows_key is any name beginning with "P:"), which would
     * otherwise end the tag somewhere else in each key. */
    if (!find_tag(prefix, strlen(prefix), &start, &n))
        return 0;
    *tag = prefix + start;
    *tag_len = n;
    return 1;
}

int exw_cluster_prefix_slot(const char *prefix)
{
    const char *tag;
    size_t n;

    if (!exw_cluster_prefix_tag(prefix, &tag, &n))
        return -1;
    return exw_cluster_crc16(tag, n) % EXW_CLUSTER_SLOTS;
}

const char *exw_cluster_node_name(const char *host, int port, char *out, size_t size)
{
    snprintf(out, size, strchr(host, ':') != NULL ? "[%s]:%d" : "%s:%d", host, port);
    return out;
}

int exw_cluster_node_parse(const char *s, size_t len, char *host, size_t host_size, int *port)
{
    size_t i, hlen;
    long v = 0;

    for (i = len; i > 0 && s[i - 1] != ':'; i--)
        ;
    if (i == 0 || i == len || len - i > 5)
        return -1;
    for (size_t j = i; j < len; j++) {
        if (s[j] < '0' || s[j] > '9')
            return -1;
        v = v * 10 + (s[j] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    hlen = i - 1;
    if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
        s++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= host_size || memchr(s, '\0', hlen) != NULL)
        return -1;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    *port = (int)v;
    return 0;
}

/* ---- The nodes seen ---- */

static struct {
    struct exw_mutex mu;
    struct exw_cluster_node nodes[EXW_CLUSTER_KNOWN_MAX]; /* guarded by mu; newest first */
    size_t n;                                             /* guarded by mu */
    struct exw_cluster_node owner;                        /* guarded by mu */
    int has_owner;                                        /* guarded by mu */
} known = {.mu = {PTHREAD_MUTEX_INITIALIZER}};

static void note_locked(const char *host, int port) EXW_REQUIRES(known.mu)
{
    struct exw_cluster_node node;
    size_t i;

    if (host[0] == '\0' || strlen(host) >= sizeof(node.host) || port <= 0)
        return;
    memset(&node, 0, sizeof(node));
    memcpy(node.host, host, strlen(host) + 1);
    node.port = port;
    for (i = 0; i < known.n; i++) {
        if (known.nodes[i].port == port && strcmp(known.nodes[i].host, host) == 0)
            break;
    }
    if (i == known.n) {
        if (known.n < EXW_CLUSTER_KNOWN_MAX)
            known.n++;
        i = known.n - 1; /* the oldest goes when the list is full */
    }
    memmove(&known.nodes[1], &known.nodes[0], i * sizeof(known.nodes[0]));
    known.nodes[0] = node;
}

void exw_cluster_note_node(const char *host, int port)
{
    exw_mutex_lock(&known.mu);
    note_locked(host, port);
    exw_mutex_unlock(&known.mu);
}

void exw_cluster_note_owner(const char *host, int port)
{
    exw_mutex_lock(&known.mu);
    note_locked(host, port);
    if (known.n > 0 && known.nodes[0].port == port && strcmp(known.nodes[0].host, host) == 0) {
        known.owner = known.nodes[0];
        known.has_owner = 1;
    }
    exw_mutex_unlock(&known.mu);
}

int exw_cluster_owner(struct exw_cluster_node *out)
{
    int has;

    exw_mutex_lock(&known.mu);
    has = known.has_owner;
    if (has)
        *out = known.owner;
    exw_mutex_unlock(&known.mu);
    return has;
}

size_t exw_cluster_known(struct exw_cluster_node *out, size_t max)
{
    size_t i, n = 0;

    exw_mutex_lock(&known.mu);
    if (known.has_owner && n < max)
        out[n++] = known.owner;
    for (i = 0; i < known.n && n < max; i++) {
        if (known.has_owner && known.nodes[i].port == known.owner.port &&
            strcmp(known.nodes[i].host, known.owner.host) == 0)
            continue;
        out[n++] = known.nodes[i];
    }
    exw_mutex_unlock(&known.mu);
    return n;
}

void exw_cluster_forget(void)
{
    exw_mutex_lock(&known.mu);
    known.n = 0;
    known.has_owner = 0;
    memset(&known.owner, 0, sizeof(known.owner));
    exw_mutex_unlock(&known.mu);
}
