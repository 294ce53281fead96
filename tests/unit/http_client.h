/* A client of the HTTP server for unit tests: raw non-blocking sockets in
 * the test's thread, read between runs of the server. Define struct
 * fixture (with struct http_server *srv and the int epfd watching its fd)
 * and WAIT_MS before including this. */
#ifndef TEST_HTTP_CLIENT_H
#define TEST_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "host/http.h"

struct client {
	int fd;
	char *buf;
	size_t len, cap;
	bool eof;
};

struct reply {
	int status;
	const char *head;	/* status line and headers, in the client's buffer */
	size_t head_len;
	const char *body;
	size_t body_len;
	size_t size;		/* head_len + body_len */
};

static inline double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* One turn of the caller's loop: wait for the server's fd, at most max_ms. */
static inline void pump(struct fixture *f, int max_ms)
{
	struct epoll_event ev;
	int timeout = http_timeout_ms(f->srv);

	if (timeout < 0 || timeout > max_ms)
		timeout = max_ms;
	epoll_wait(f->epfd, &ev, 1, timeout);
	http_run(f->srv);
}

/* A turn of a loop with nothing else to do: it waits for as long as the
 * server allows. Waiting forever (past WAIT_MS) fails. */
static inline void pump_idle(struct fixture *f)
{
	struct epoll_event ev;
	int timeout = http_timeout_ms(f->srv);
	int n = epoll_wait(f->epfd, &ev, 1, timeout < 0 ? WAIT_MS : timeout);

	if (n == 0 && timeout < 0)
		fail_msg("the loop would sleep forever");
	http_run(f->srv);
}

/* Turns of the loop for at least ms and at least PUMP_MIN_TURNS turns: a
 * descheduled test still gives the server its turns (what happened on the
 * client's side is already in the kernel when this starts). */
#define PUMP_MIN_TURNS 10
static inline void pump_for(struct fixture *f, int ms)
{
	double end = now_ms() + ms;

	for (int turn = 0; turn < PUMP_MIN_TURNS || now_ms() < end; turn++)
		pump(f, 5);
}

static inline struct client client_open(int family, uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(port),
				     .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct client c = { .fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0) };
	const struct sockaddr *sa = family == AF_INET ? (void *)&sin : (void *)&sin6;
	socklen_t len = family == AF_INET ? sizeof(sin) : sizeof(sin6);

	assert_true(c.fd >= 0);
	/* Completes in the kernel's backlog, before any accept. */
	assert_int_equal(connect(c.fd, sa, len), 0);
	return c;
}

/* From source address src (127.0.0.2, ...: another client to the
 * server) to 127.0.0.1:port. */
static inline struct client client_from(const char *src, uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in from = { .sin_family = AF_INET };
	struct client c = { .fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0) };

	assert_true(c.fd >= 0);
	assert_int_equal(inet_pton(AF_INET, src, &from.sin_addr), 1);
	assert_int_equal(bind(c.fd, (struct sockaddr *)&from, sizeof(from)), 0);
	assert_int_equal(connect(c.fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return c;
}

/* To a Unix socket; connect's errno if it fails (fd -1). */
static inline struct client client_unix(const char *path, int *err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct client c = { .fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) };

	assert_true(c.fd >= 0);
	assert_true(strlen(path) < sizeof(sun.sun_path));
	strcpy(sun.sun_path, path);
	*err = connect(c.fd, (struct sockaddr *)&sun, sizeof(sun)) ? errno : 0;
	if (*err) {
		close(c.fd);
		c.fd = -1;
	}
	return c;
}

static inline struct client client_to(struct fixture *f)
{
	return client_open(AF_INET, http_port(f->srv));
}

static inline void client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* Closes with a reset rather than a FIN. */
static inline void client_reset(struct client *c)
{
	struct linger lin = { .l_onoff = 1, .l_linger = 0 };

	assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin)), 0);
	client_close(c);
}

static inline void client_send(struct client *c, const char *data, size_t len)
{
	while (len) {
		ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);

		assert_true(n > 0);
		data += n;
		len -= n;
	}
}

static inline void client_sendf(struct client *c, const char *fmt, ...)
{
	char *text;
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vasprintf(&text, fmt, ap);
	va_end(ap);
	assert_true(len >= 0);
	client_send(c, text, len);
	free(text);
}

static inline void client_get(struct client *c, const char *method, const char *target)
{
	client_sendf(c, "%s %s HTTP/1.1\r\nHost: test\r\n\r\n", method, target);
}

/* Whatever has arrived, without blocking. */
static inline void client_read(struct client *c)
{
	while (!c->eof) {
		ssize_t n;

		if (c->cap - c->len < 65536) {
			c->cap = c->cap * 2 + 65536;
			c->buf = realloc(c->buf, c->cap + 1);
			assert_non_null(c->buf);
		}
		n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0)
			c->eof = true;	/* closed or reset */
		else
			c->len += n;
	}
	if (c->buf)
		c->buf[c->len] = '\0';
}

static inline const char *find_header(const struct reply *r, const char *name, size_t *len)
{
	size_t name_len = strlen(name);
	const char *line = memchr(r->head, '\n', r->head_len);

	while (line && line + 1 < r->head + r->head_len) {
		line++;
		if (!strncasecmp(line, name, name_len) && line[name_len] == ':') {
			const char *value = line + name_len + 1;
			const char *end = strstr(value, "\r\n");

			value += strspn(value, " ");
			*len = end - value;
			return value;
		}
		line = memchr(line, '\n', r->head + r->head_len - line);
	}
	return NULL;
}

/* The header's value, NULL if absent (a static buffer). */
static inline const char *header(const struct reply *r, const char *name)
{
	static char value[512];
	size_t len;
	const char *v = find_header(r, name, &len);

	if (!v || len >= sizeof(value))
		return NULL;
	memcpy(value, v, len);
	value[len] = '\0';
	return value;
}

/* Whether the client holds a complete reply (to a HEAD if head). */
static inline bool parse_reply(struct client *c, bool head, struct reply *r)
{
	const char *end = c->buf ? strstr(c->buf, "\r\n\r\n") : NULL;
	const char *length;

	if (!end)
		return false;
	memset(r, 0, sizeof(*r));
	r->head = c->buf;
	r->head_len = end + 4 - c->buf;
	assert_int_equal(sscanf(c->buf, "HTTP/1.%*d %d", &r->status), 1);
	r->body = end + 4;
	length = header(r, "Content-Length");
	if (head)
		r->body_len = 0;
	else if (length)
		r->body_len = strtoul(length, NULL, 10);
	else if (c->eof)
		r->body_len = c->len - r->head_len;
	else
		return false;
	r->size = r->head_len + r->body_len;
	return c->len >= r->size;
}

static inline bool try_reply(struct client *c, bool head, struct reply *r)
{
	client_read(c);
	return parse_reply(c, head, r);
}

static inline struct reply await_reply(struct fixture *f, struct client *c, bool head)
{
	double end = now_ms() + WAIT_MS;
	struct reply r;

	while (!try_reply(c, head, &r)) {
		assert_true(now_ms() < end);
		pump(f, 5);
	}
	return r;
}

/* Runs the server until the client sees the connection closed. */
static inline void await_eof(struct fixture *f, struct client *c)
{
	double end = now_ms() + WAIT_MS;

	for (client_read(c); !c->eof; client_read(c)) {
		assert_true(now_ms() < end);
		pump(f, 5);
	}
}

/* Runs the server until the client has some bytes of an answer. */
static inline void await_some(struct fixture *f, struct client *c)
{
	double end = now_ms() + WAIT_MS;

	for (client_read(c); c->len == 0; client_read(c)) {
		assert_true(now_ms() < end);
		assert_false(c->eof);
		pump(f, 5);
	}
}

static inline struct reply fetch(struct fixture *f, struct client *c, const char *target)
{
	client_get(c, "GET", target);
	return await_reply(f, c, false);
}

static inline void assert_body(const struct reply *r, const char *text)
{
	assert_int_equal(r->body_len, strlen(text));
	assert_memory_equal(r->body, text, r->body_len);
}

static inline void assert_text_error(const struct reply *r, int status)
{
	assert_int_equal(r->status, status);
	assert_string_equal(header(r, "Content-Type"), "text/plain; charset=utf-8");
	assert_true(r->body_len > 0);
	assert_int_equal(r->body[r->body_len - 1], '\n');
}

static inline void consume(struct client *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n + 1);
	c->len -= n;
}

#endif
