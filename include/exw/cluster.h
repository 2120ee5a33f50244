/* cluster.h: what the worker needs of Redis Cluster, and no more: the slot
 * of a key, the hash tag that keeps every key of a prefix in one slot, and
 * the nodes this process has seen, with the one last known to own the
 * prefix's slot.
 *
 * A deployment on a cluster puts all its keys in one slot (PROTOCOL.md
 * section 1: P holds a hash tag), so one owner serves every command, every
 * multi-key script included. This is not a general cluster client: there is
 * no slot map, only the owner of the one slot in use. redis.c connects to it
 * and follows MOVED and ASK. */
#ifndef EXW_CLUSTER_H
#define EXW_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "exw/err.h"

#define EXW_CLUSTER_SLOTS 16384
/* Room for "host:port" of a node: a host name of up to 253 bytes, or an IPv6
 * address in brackets, and the port. */
#define EXW_NODE_MAX 264
/* Nodes remembered; more than a cluster that one deployment's slot lives in
 * shows (the owner, its replicas, and the nodes asked on the way). */
#define EXW_CLUSTER_KNOWN_MAX 64

/* CRC16 as Redis Cluster defines it (XMODEM: polynomial 0x1021, initial 0,
 * no reflection, no final xor) of @len bytes at @s. Thread: any. */
uint16_t exw_cluster_crc16(const void *s, size_t len);

/* The slot of the key @key (@len bytes): CRC16 of its hash tag (the bytes
 * between the first '{' and the first '}' after it, when there are any) or
 * else of the whole key, modulo 16384. Thread: any. */
int exw_cluster_key_slot(const void *key, size_t len);

/* Whether @prefix holds a hash tag of its own, so that every key that begins
 * with "@prefix:" hashes to that tag's slot: a '{' followed later by a '}'
 * with at least one byte between them. On 1, *@tag and *@tag_len say where
 * the tag is in @prefix. Thread: any. */
int exw_cluster_prefix_tag(const char *prefix, const char **tag, size_t *tag_len);

/* The slot of every key under @prefix, or -1 when @prefix has no hash tag
 * (see exw_cluster_prefix_tag). Thread: any. */
int exw_cluster_prefix_slot(const char *prefix);

/* "host:port" into @out (@size bytes), with an IPv6 host in brackets.
 * Returns @out. Thread: any. */
const char *exw_cluster_node_name(const char *host, int port, char *out, size_t size);

/* Splits "host:port" (as Redis writes it in MOVED and ASK: the port after the
 * last ':', an IPv6 host with or without brackets) into @host and *@port.
 * Returns 0, or -1 when @s (@len bytes) is not that. Thread: any. */
int exw_cluster_node_parse(const char *s, size_t len, char *host, size_t host_size, int *port);

/* ---- The nodes this process has seen (process-wide, under a mutex) ---- */

/* One node's address. */
struct exw_cluster_node {
    char host[EXW_NODE_MAX];
    int port;
};

/* Remembers node @host:@port, if not yet known (the oldest is forgotten when
 * the list is full). Thread: any. */
void exw_cluster_note_node(const char *host, int port);

/* Remembers @host:@port as the owner of the prefix's slot (and as a node).
 * Thread: any. */
void exw_cluster_note_owner(const char *host, int port);

/* The owner last noted into *@out; 0 when none is known. Thread: any. */
int exw_cluster_owner(struct exw_cluster_node *out);

/* Up to @max known nodes into @out, the owner last noted first, then the
 * most recently seen; returns how many. Thread: any. */
size_t exw_cluster_known(struct exw_cluster_node *out, size_t max);

/* Forgets every node and the owner: for tests. Thread: any. */
void exw_cluster_forget(void);

#endif
