/* libFuzzer: raw bytes as a client's side of a connection to memwatch's
 * HTTP server (libmicrohttpd and http.c, httpreq.c, httpguard.c,
 * httpauth.c), over a Unix socket, as the epoll loop would drive it. The
 * first byte picks the server: without, or with, basic authentication
 * (a bcrypt hash of cost 4, so that checks run on the thread). The
 * handler uses the request API as hostweb.c does: parameters, headers,
 * deferred answers. Each input is one connection: written, half-closed,
 * and run until the server closes it. */
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "host/http.h"

#define MAX_DEFERRED 64
#define MAX_RUNS 400

struct server {
	struct http_server *srv;
	int epfd;
	char path[108];
	struct web_config web;
	struct http_request *deferred[MAX_DEFERRED];
	unsigned ndeferred;
};

static void handle(void *ctx, struct http_request *req)
{
	static const char *const known[] = { "pid", "seconds", "gc", "debug", NULL };
	struct server *s = ctx;
	const char *path = http_path(req), *seconds = http_param(req, "seconds");

	if (http_has_unknown_param(req, known)) {
		http_respond_text(req, 400, "unknown parameter\n");
	} else if (seconds && s->ndeferred < MAX_DEFERRED && !http_defer(req)) {
		s->deferred[s->ndeferred++] = req;
	} else if (!strcmp(path, "/metrics")) {
		http_header(req, "X-Path", path);	/* refused if it holds a control character */
		http_respond(req, 200, "text/plain; version=0.0.4", "m 1\n", 4);
	} else {
		http_respond_text(req, 404, "no %s (pid %s)\n", path, http_param(req, "pid") ?: "-");
	}
}

static void abandoned(void *ctx, struct http_request *req)
{
	struct server *s = ctx;

	for (unsigned i = 0; i < s->ndeferred; i++)
		if (s->deferred[i] == req)
			s->deferred[i] = s->deferred[--s->ndeferred];
}

static void answer_deferred(struct server *s)
{
	while (s->ndeferred)
		http_respond_text(s->deferred[--s->ndeferred], 200, "late\n");
}

static void start(struct server *s, const char *dir, const char *name, bool auth)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct http_config cfg = { .handler = handle, .abandoned = abandoned, .ctx = s };
	char listen[128];

	snprintf(s->path, sizeof(s->path), "%s/%s", dir, name);
	snprintf(listen, sizeof(listen), "unix:%s", s->path);
	if (auth) {
		struct crypt_data cd = { 0 };
		char salt[64];
		s->web.users = calloc(1, sizeof(*s->web.users));
		crypt_gensalt_rn("$2b$", 4, NULL, 0, salt, sizeof(salt));
		s->web.users[0].name = strdup("user");
		s->web.users[0].hash = strdup(crypt_r("pass", salt, &cd));
		s->web.nusers = 1;
		cfg.web = &s->web;
	}
	cfg.listen = listen;
	if (http_start(&s->srv, &cfg)) {
		fprintf(stderr, "fuzz_http: cannot start the server on %s\n", s->path);
		abort();
	}
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	epoll_ctl(s->epfd, EPOLL_CTL_ADD, http_fd(s->srv), &ev);
}

static struct server servers[2];
static char dir[] = "/tmp/memwatch-fuzz-http-XXXXXX";

static void remove_dir(void)
{
	for (int i = 0; i < 2; i++)
		unlink(servers[i].path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir))
		abort();
	atexit(remove_dir);
	start(&servers[0], dir, "plain.sock", false);
	start(&servers[1], dir, "auth.sock", true);
	return 0;
}

static int connect_to(const struct server *s)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	strcpy(sun.sun_path, s->path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)))
		abort();
	return fd;
}

/* Writes what the socket takes; reads and drops the answers; true once
 * the server closed. */
static bool exchange(int fd, const uint8_t **data, size_t *len)
{
	char buf[65536];
	ssize_t n;

	if (*len && (n = send(fd, *data, *len, MSG_NOSIGNAL)) > 0) {
		*data += n;
		*len -= n;
	}
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		;
	return n == 0 || (n < 0 && errno != EAGAIN);
}

/* One turn of the loop; whether the server had anything to do. */
static bool step(struct server *s, int fd, const uint8_t **data, size_t *len, int wait_ms, bool *closed)
{
	struct epoll_event ev;
	int timeout = http_timeout_ms(s->srv);
	int n = epoll_wait(s->epfd, &ev, 1, timeout >= 0 && timeout < wait_ms ? timeout : wait_ms);

	http_run(s->srv);
	answer_deferred(s);
	if (fd >= 0)
		*closed = exchange(fd, data, len);
	return n > 0;
}

/* Sent, then run until the server has nothing left to do (a password
 * check on the thread counts as something), then half-closed apart from
 * the data (libmicrohttpd notices a FIN only when it comes alone), then
 * run until the server closes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct server *s;
	bool closed = false;
	int fd, quiet = 0;

	if (len < 1)
		return 0;
	s = &servers[data[0] & 1];
	data++;
	len--;
	fd = connect_to(s);
	for (int i = 0; i < MAX_RUNS && !closed && (len || quiet < 2); i++)
		quiet = step(s, fd, &data, &len, s->web.nusers ? 2 : 0, &closed) ? 0 : quiet + 1;
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < MAX_RUNS && !closed; i++)
		step(s, fd, &data, &len, 1, &closed);
	close(fd);
	/* The server sees the close and frees the connection. */
	for (int i = 0; i < 4; i++)
		step(s, -1, &data, &len, 0, &closed);
	return 0;
}
