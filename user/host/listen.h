/* Where --listen serves: a TCP address ("[ADDR:]PORT") or a Unix socket
 * ("unix:PATH"), and the listening socket for it. */
#ifndef MW_LISTEN_H
#define MW_LISTEN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

enum listen_kind {
	LISTEN_LOOPBACK,	/* 127.0.0.0/8, ::1: this host's users */
	LISTEN_NETWORK,		/* any other address: other hosts too */
	LISTEN_UNIX,		/* a socket file, 0600: its owner (root) */
};

struct listen_addr {
	enum listen_kind kind;
	struct sockaddr_storage ss;
	socklen_t len;
	/* A Unix socket we created: removed at the end if still the same. */
	dev_t dev;
	ino_t ino;
	bool created;
};

/* "[ADDR:]PORT": PORT alone is 127.0.0.1; ADDR an IPv4 address or a
 * bracketed IPv6 one ("0.0.0.0:8080", "[::1]:8080"); port 0 picks a free
 * port. "unix:PATH": a socket file (an absolute or relative path of at
 * most 107 bytes). 0 or -EINVAL (-ENAMETOOLONG for a long PATH). */
int listen_parse(const char *spec, struct listen_addr *out);

/* A listening socket (non-blocking, close-on-exec), or -errno. A Unix
 * socket is created with mode 0600. A socket file left by a process that
 * is gone is replaced (nothing listens: ECONNREFUSED); one something
 * listens on is -EADDRINUSE, and a PATH that exists but is not a socket
 * is -EEXIST, left alone. *port: the TCP port bound (0 for Unix). */
int listen_open(struct listen_addr *addr, uint16_t *port);

/* Removes the Unix socket listen_open created, if PATH is still it. */
void listen_remove(struct listen_addr *addr);

/* The Unix socket's path; NULL for TCP. */
const char *listen_path(const struct listen_addr *addr);

#endif
