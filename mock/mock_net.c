/*
 * export-mock-lookup's start-up on the network: resolving --host, writing --port-file. See
 * mock_net.h.
 */
#include "mock_net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mock_body.h"
#include "mock_options.h"

static void report_errno(const char *what, const char *arg)
{
    char err[128] = "unknown error";

    (void)strerror_r(errno, err, sizeof(err));
    fprintf(stderr, PROG ": %s %s: %s\n", what, arg, err);
}

int mock_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Resolves --host into addr; returns 0, or -1 after saying why. */
int mock_resolve_host(const char *host, long port, struct sockaddr_storage *addr)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    char port_str[16];
    int gai;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port_str, sizeof(port_str), "%ld", port);
    gai = getaddrinfo(host, port_str, &hints, &res);
    if (gai != 0 || res->ai_addrlen > sizeof(*addr)) {
        fprintf(stderr, PROG ": --host %s: %s\n", host, gai != 0 ? gai_strerror(gai) : "too long");
        if (res != NULL)
            freeaddrinfo(res);
        return -1;
    }
    memset(addr, 0, sizeof(*addr));
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* Writes "PORT\n" under a temporary name next to path, then renames it over path. */
int mock_write_port_file(const char *path, int port)
{
    struct mock_buf tmp = {0};
    char line[16];
    int n = snprintf(line, sizeof(line), "%d\n", port);
    int fd;
    int rc = -1;

    mock_buf_addf(&tmp, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp.p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        report_errno("cannot create", tmp.p);
        goto out;
    }
    rc = mock_write_all(fd, line, (size_t)n);
    if (close(fd) != 0 || rc != 0) {
        report_errno("cannot write", tmp.p);
        rc = -1;
    } else if (rename(tmp.p, path) != 0) {
        report_errno("cannot rename to", path);
        rc = -1;
    }
    if (rc != 0)
        (void)unlink(tmp.p);
out:
    mock_buf_free(&tmp);
    return rc;
}
