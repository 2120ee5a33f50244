/* export-mock-lookup's start-up on the network. */
#ifndef MOCK_NET_H
#define MOCK_NET_H

#include <stddef.h>
#include <sys/socket.h>

/* Resolves --host into addr; returns 0, or -1 after saying why on stderr. */
int mock_resolve_host(const char *host, long port, struct sockaddr_storage *addr);

/* Writes "PORT\n" under a temporary name next to path, then renames it over path; returns 0, or
 * -1 after saying why on stderr. */
int mock_write_port_file(const char *path, int port);

/* Writes all of buf, retrying short writes and EINTR; returns 0 or -1 with errno set. */
int mock_write_all(int fd, const char *buf, size_t len);

#endif
