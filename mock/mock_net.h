/* export-mock-lookup's start-up on the network. */
#ifndef MOCK_NET_H
#define MOCK_NET_H

#include <sys/socket.h>

/* Resolves --host into addr; returns 0, or -1 after saying why on stderr. */
int mock_resolve_host(const char *host, long port, struct sockaddr_storage *addr);

/* Writes "PORT\n" under a temporary name next to path, then renames it over path; returns 0, or
 * -1 after saying why on stderr. */
int mock_write_port_file(const char *path, int port);

#endif
