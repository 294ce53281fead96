#include "host/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define UNIX_PREFIX "unix:"

static int parse_port(const char *s, uint16_t *port)
{
	unsigned long value;
	size_t len = strlen(s);

	if (len == 0 || len > 5 || strspn(s, "0123456789") != len)
		return -EINVAL;
	value = strtoul(s, NULL, 10);
	if (value > UINT16_MAX)
		return -EINVAL;
	*port = value;
	return 0;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
	const struct in6_addr *a6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;

	if (ss->ss_family == AF_INET)
		return ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24 == 127;
	return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
}

static int parse_addr(int family, const char *host, size_t host_len, uint16_t port,
		      struct listen_addr *out)
{
	char buf[INET6_ADDRSTRLEN];
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
	void *addr = family == AF_INET ? (void *)&sin->sin_addr : (void *)&sin6->sin6_addr;

	if (host_len == 0 || host_len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, host, host_len);
	buf[host_len] = '\0';
	if (inet_pton(family, buf, addr) != 1)
		return -EINVAL;
	if (family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		out->len = sizeof(*sin);
	} else {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		out->len = sizeof(*sin6);
	}
	out->kind = is_loopback(&out->ss) ? LISTEN_LOOPBACK : LISTEN_NETWORK;
	return 0;
}

static int parse_unix(const char *path, struct listen_addr *out)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;
	size_t len = strlen(path);

	if (len == 0)
		return -EINVAL;
	if (len >= sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, len + 1);
	out->len = offsetof(struct sockaddr_un, sun_path) + len + 1;
	out->kind = LISTEN_UNIX;
	return 0;
}

int listen_parse(const char *spec, struct listen_addr *out)
{
	const char *host = "127.0.0.1", *port_str = spec, *end;
	size_t host_len = strlen(host);
	int family = AF_INET;
	uint16_t port;

	memset(out, 0, sizeof(*out));
	if (!spec)
		return -EINVAL;
	if (!strncmp(spec, UNIX_PREFIX, strlen(UNIX_PREFIX)))
		return parse_unix(spec + strlen(UNIX_PREFIX), out);
	if (spec[0] == '[') {
		end = strchr(spec, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		family = AF_INET6;
		host = spec + 1;
		host_len = end - host;
		port_str = end + 2;
	} else if ((end = strrchr(spec, ':'))) {
		host = spec;
		host_len = end - spec;
		port_str = end + 1;
	}
	if (parse_port(port_str, &port))
		return -EINVAL;
	return parse_addr(family, host, host_len, port, out);
}

const char *listen_path(const struct listen_addr *addr)
{
	return addr->kind == LISTEN_UNIX ? ((const struct sockaddr_un *)&addr->ss)->sun_path : NULL;
}

static int bound_port(int fd, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return -errno;
	if (ss.ss_family == AF_INET)
		*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else if (ss.ss_family == AF_INET6)
		*port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		*port = 0;
	return 0;
}

/* Whether a process still listens on the socket file. */
static int probe_unix(const struct listen_addr *addr)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), err = 0;

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)&addr->ss, addr->len))
		err = errno == ECONNREFUSED ? 0 : errno == ENOENT ? -ENOENT : -EADDRINUSE;
	else
		err = -EADDRINUSE;
	close(fd);
	return err;
}

/* A stale socket file (a crashed run's) goes; anything else stays. */
static int clear_stale(const struct listen_addr *addr)
{
	const char *path = listen_path(addr);
	struct stat st;
	int err;

	if (lstat(path, &st))
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	err = probe_unix(addr);
	if (err)
		return err == -ENOENT ? 0 : err;
	if (unlink(path) && errno != ENOENT)
		return -errno;
	return 0;
}

/* Created 0600 from the start: between bind and a chmod, anyone could
 * connect. */
static int bind_unix(int fd, struct listen_addr *addr)
{
	mode_t old = umask(0177);
	int err = bind(fd, (const struct sockaddr *)&addr->ss, addr->len) ? -errno : 0;
	struct stat st;

	umask(old);
	if (err)
		return err;
	if (lstat(listen_path(addr), &st))
		return -errno;
	addr->dev = st.st_dev;
	addr->ino = st.st_ino;
	addr->created = true;
	return 0;
}

static int bind_tcp(int fd, const struct listen_addr *addr)
{
	int one = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (const struct sockaddr *)&addr->ss, addr->len))
		return -errno;
	return 0;
}

int listen_open(struct listen_addr *addr, uint16_t *port)
{
	int fd, err;

	*port = 0;
	if (addr->kind == LISTEN_UNIX && (err = clear_stale(addr)))
		return err;
	fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	err = addr->kind == LISTEN_UNIX ? bind_unix(fd, addr) : bind_tcp(fd, addr);
	if (!err && listen(fd, SOMAXCONN))
		err = -errno;
	if (!err)
		err = bound_port(fd, port);
	if (err) {
		close(fd);
		listen_remove(addr);
		return err;
	}
	return fd;
}

void listen_remove(struct listen_addr *addr)
{
	struct stat st;

	if (!addr->created)
		return;
	addr->created = false;
	if (!lstat(listen_path(addr), &st) && S_ISSOCK(st.st_mode) && st.st_dev == addr->dev &&
	    st.st_ino == addr->ino)
		unlink(listen_path(addr));
}
