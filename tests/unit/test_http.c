/* The HTTP server over real loopback sockets, driven by an epoll loop like
 * memwatch's; the clients are raw non-blocking sockets in the same thread,
 * read between runs of the server. */
#include <ifaddrs.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "host/http.h"

#define MAX_DEFERRED	128
#define BIG_BODY	(8 << 20)
#define WAIT_MS		5000

struct served {
	unsigned calls;
	struct http_request *deferred[MAX_DEFERRED];
	unsigned ndeferred, max_deferred;
	unsigned busy;		/* /defer refused: too many deferred */
	unsigned abandoned;	/* deferred requests whose client left */
	int second_rc;
	int header_rc[4];
	int status_rc;
	char *big;
};

struct fixture {
	struct http_server *srv;
	int epfd;
	struct served served;
};

#include "http_client.h"

static const char *const KNOWN_PARAMS[] = { "seconds", "debug", NULL };

static void answer_params(struct http_request *req)
{
	const char *seconds = http_param(req, "seconds");

	if (http_has_unknown_param(req, KNOWN_PARAMS))
		http_respond_text(req, 400, "unknown parameter\n");
	else
		http_respond_text(req, 200, "seconds=%s\n", seconds ? seconds : "(absent)");
}

static void answer_headers(struct served *s, struct http_request *req)
{
	s->header_rc[0] = http_header(req, "Bad Name", "x");
	s->header_rc[1] = http_header(req, "X-Split", "a\r\nInjected: yes");
	s->header_rc[2] = http_header(req, "content-length", "3");
	s->header_rc[3] = http_header(req, "X-Fine", "yes");
	http_respond_text(req, 200, "headers\n");
}

static void handle(void *ctx, struct http_request *req)
{
	struct served *s = ctx;
	const char *path = http_path(req);
	const char *name = http_param(req, "name");

	s->calls++;
	if (!strcmp(path, "/echo")) {
		http_respond_text(req, 200, "method=%s path=%s name=%s\n",
				  http_method(req), path, name ? name : "(none)");
	} else if (!strcmp(path, "/bin")) {
		assert_int_equal(http_header(req, "Content-Disposition",
					     "attachment; filename=\"x.bin\""), 0);
		assert_int_equal(http_respond(req, 200, "application/octet-stream",
					      "a\0b\0c", 5), 0);
	} else if (!strcmp(path, "/params")) {
		answer_params(req);
	} else if (!strcmp(path, "/defer")) {
		assert_true(s->ndeferred < MAX_DEFERRED);
		if (http_defer(req)) {
			s->busy++;
			http_respond_text(req, 503, "busy\n");
			return;
		}
		s->deferred[s->ndeferred++] = req;
		if (s->ndeferred > s->max_deferred)
			s->max_deferred = s->ndeferred;
	} else if (!strcmp(path, "/twice")) {
		http_respond_text(req, 200, "first\n");
		s->second_rc = http_respond_text(req, 201, "second\n");
	} else if (!strcmp(path, "/headers")) {
		answer_headers(s, req);
	} else if (!strcmp(path, "/status")) {
		s->status_rc = http_respond(req, 700, "text/plain", "x\n", 2);
	} else if (!strcmp(path, "/big")) {
		assert_int_equal(http_respond(req, 200, "application/octet-stream",
					      s->big, BIG_BODY), 0);
	} else if (strcmp(path, "/none")) {
		http_respond_text(req, 404, "not found: %s\n", path);
	}
}

static void abandoned(void *ctx, struct http_request *req)
{
	struct served *s = ctx;

	for (unsigned i = 0; i < s->ndeferred; i++) {
		if (s->deferred[i] == req) {
			s->deferred[i] = s->deferred[--s->ndeferred];
			s->abandoned++;
			return;
		}
	}
	fail_msg("abandoned: not a deferred request");
}

static struct http_request *take_deferred(struct served *s)
{
	assert_true(s->ndeferred > 0);
	return s->deferred[--s->ndeferred];
}

static int watch(int fd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int epfd = epoll_create1(EPOLL_CLOEXEC);

	assert_true(epfd >= 0);
	assert_int_equal(epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev), 0);
	return epfd;
}

static int start_on(void **state, const char *listen)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int err;

	assert_non_null(f);
	f->epfd = -1;
	*state = f;
	err = http_start(&f->srv, &(struct http_config){ .listen = listen, .handler = handle,
							 .abandoned = abandoned, .ctx = &f->served });
	if (!err)
		f->epfd = watch(http_fd(f->srv));
	return err;
}

static int setup(void **state)
{
	return start_on(state, "127.0.0.1:0");
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	http_stop(f->srv);
	if (f->epfd >= 0)
		close(f->epfd);
	free(f->served.big);
	free(f);
	return 0;
}

/* A fresh connection's GET /echo gets its 200: the server still serves. */
static void assert_serving(struct fixture *f)
{
	struct client c = client_to(f);
	struct reply r = fetch(f, &c, "/echo");

	assert_int_equal(r.status, 200);
	client_close(&c);
}

static void wait_deferred(struct fixture *f, unsigned n)
{
	double end = now_ms() + WAIT_MS;

	while (f->served.ndeferred < n) {
		assert_true(now_ms() < end);
		pump(f, 5);
	}
}

static void test_start_port_zero(void **state)
{
	struct fixture *f = *state;

	assert_int_not_equal(http_port(f->srv), 0);
	assert_true(http_fd(f->srv) >= 0);
	assert_int_equal(http_timeout_ms(f->srv), -1);	/* nothing to time out */
	assert_serving(f);
}

/* A non-loopback IPv4 address of this host, if any. */
static bool other_ipv4(struct in_addr *out)
{
	struct ifaddrs *ifs, *i;
	bool found = false;

	if (getifaddrs(&ifs))
		return false;
	for (i = ifs; i && !found; i = i->ifa_next) {
		struct sockaddr_in *sin = (struct sockaddr_in *)i->ifa_addr;

		if (sin && sin->sin_family == AF_INET &&
		    ntohl(sin->sin_addr.s_addr) >> 24 != 127) {
			*out = sin->sin_addr;
			found = true;
		}
	}
	freeifaddrs(ifs);
	return found;
}

static void test_port_alone_is_loopback(void **state)
{
	struct fixture *f;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd;

	assert_int_equal(start_on(state, "0"), 0);
	f = *state;
	assert_int_not_equal(http_port(f->srv), 0);
	assert_serving(f);
	if (!other_ipv4(&sin.sin_addr))
		return;
	sin.sin_port = htons(http_port(f->srv));
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), -1);
	assert_int_equal(errno, ECONNREFUSED);
	close(fd);
}

static void test_malformed_specs(void **state)
{
	static const char *const BAD[] = {
		"", ":", ":80", "80:", "abc", "65536", "99999", "123456", "-1", "+80",
		" 80", "80 ", "8o", "1.2.3:80", "1.2.3.4.5:80", "256.0.0.1:80",
		"0x7f000001:80", "localhost:80", "127.0.0.1:", "127.0.0.1:65536",
		"127.0.0.1:8x", "127.0.0.1::80", "[::1]", "[::1]80", "[::1]:",
		"[::1]:x", "::1:80", "[::1:80", "[]:80", "[1.2.3.4]:80",
		"[::1]:80:80", "[fe80::1%lo]:80", "unix:",
	};
	struct http_server *srv = (void *)1;

	for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
		int err = http_start(&srv, &(struct http_config){ .listen = BAD[i], .handler = handle });

		if (err != -EINVAL)
			fail_msg("\"%s\": %d, not -EINVAL", BAD[i], err);
		assert_null(srv);
	}
	assert_int_equal(http_start(&srv, &(struct http_config){ .handler = handle }), -EINVAL);
	assert_int_equal(http_start(&srv, &(struct http_config){ .listen = "0" }), -EINVAL);
	assert_int_equal(http_start(&srv, NULL), -EINVAL);
}

static void test_address_in_use(void **state)
{
	struct fixture *f = *state;
	struct http_server *srv;
	char spec[32];

	snprintf(spec, sizeof(spec), "127.0.0.1:%u", http_port(f->srv));
	assert_int_equal(http_start(&srv, &(struct http_config){ .listen = spec, .handler = handle }), -EADDRINUSE);
	assert_null(srv);
	assert_serving(f);
}

static void test_ipv6_loopback(void **state)
{
	struct fixture *f;
	struct client c;
	struct reply r;
	int err = start_on(state, "[::1]:0");

	if (err == -EADDRNOTAVAIL || err == -EAFNOSUPPORT)
		skip();
	assert_int_equal(err, 0);
	f = *state;
	assert_int_not_equal(http_port(f->srv), 0);
	c = client_open(AF_INET6, http_port(f->srv));
	r = fetch(f, &c, "/echo?name=v6");
	assert_int_equal(r.status, 200);
	assert_body(&r, "method=GET path=/echo name=v6\n");
	client_close(&c);
}

static void test_get(void **state)
{
	struct fixture *f = *state;
	struct client c = client_to(f);
	struct reply r = fetch(f, &c, "/echo?name=a%20b");

	assert_int_equal(r.status, 200);
	assert_string_equal(header(&r, "Content-Type"), "text/plain; charset=utf-8");
	assert_string_equal(header(&r, "Content-Length"), "31");
	assert_body(&r, "method=GET path=/echo name=a b\n");
	client_close(&c);

	c = client_to(f);
	r = fetch(f, &c, "/ec%68o");
	assert_body(&r, "method=GET path=/echo name=(none)\n");
	client_close(&c);

	c = client_to(f);
	r = fetch(f, &c, "/bin");
	assert_int_equal(r.status, 200);
	assert_string_equal(header(&r, "Content-Type"), "application/octet-stream");
	assert_string_equal(header(&r, "Content-Disposition"), "attachment; filename=\"x.bin\"");
	assert_int_equal(r.body_len, 5);
	assert_memory_equal(r.body, "a\0b\0c", 5);
	client_close(&c);

	c = client_to(f);
	r = fetch(f, &c, "/nowhere");
	assert_text_error(&r, 404);
	assert_body(&r, "not found: /nowhere\n");
	client_close(&c);
	assert_int_equal(f->served.calls, 4);
}

/* HEAD then GET on one connection: the same headers, and nothing between
 * the HEAD's headers and the GET's status line. */
static void test_head(void **state)
{
	struct fixture *f = *state;
	struct client c = client_to(f);
	char type[512], disposition[512];
	struct reply r;

	client_get(&c, "HEAD", "/bin");
	r = await_reply(f, &c, true);
	assert_int_equal(r.status, 200);
	assert_string_equal(header(&r, "Content-Length"), "5");
	snprintf(type, sizeof(type), "%s", header(&r, "Content-Type"));
	snprintf(disposition, sizeof(disposition), "%s", header(&r, "Content-Disposition"));
	pump_for(f, 50);
	client_read(&c);
	assert_int_equal(c.len, r.head_len);
	consume(&c, r.head_len);

	r = fetch(f, &c, "/bin");
	assert_int_equal(r.status, 200);
	assert_string_equal(header(&r, "Content-Type"), type);
	assert_string_equal(header(&r, "Content-Disposition"), disposition);
	assert_int_equal(r.body_len, 5);
	assert_false(c.eof);
	client_close(&c);
	assert_int_equal(f->served.calls, 2);
}

/* HTTP/1.0, no Host: served, then closed. */
static void test_http10(void **state)
{
	struct fixture *f = *state;
	struct client c = client_to(f);
	struct reply r;

	client_sendf(&c, "GET /echo?name=old HTTP/1.0\r\n\r\n");
	r = await_reply(f, &c, false);
	assert_int_equal(r.status, 200);
	assert_body(&r, "method=GET path=/echo name=old\n");
	await_eof(f, &c);
	client_close(&c);
}

static void test_methods_not_allowed(void **state)
{
	static const char *const METHODS[] = { "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW" };
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(METHODS) / sizeof(METHODS[0]); i++) {
		struct client c = client_to(f);
		struct reply r;

		client_get(&c, METHODS[i], "/echo");
		r = await_reply(f, &c, false);
		assert_text_error(&r, 405);
		assert_string_equal(header(&r, "Allow"), "GET, HEAD");
		client_close(&c);
	}
	assert_int_equal(f->served.calls, 0);
}

static void test_bodies_refused(void **state)
{
	static const char *const REQUESTS[] = {
		"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
		/* Never sends the megabyte it announces: no 100 Continue, no wait. */
		"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
		"Content-Length: 1048576\r\n\r\n",
		"PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
		"5\r\nhello\r\n0\r\n\r\n",
		"GET /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
		"GET /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
		"5\r\nhello\r\n0\r\n\r\n",
	};
	static const int STATUS[] = { 405, 405, 405, 413, 413 };
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(REQUESTS) / sizeof(REQUESTS[0]); i++) {
		struct client c = client_to(f);
		struct reply r;

		client_send(&c, REQUESTS[i], strlen(REQUESTS[i]));
		r = await_reply(f, &c, false);
		assert_text_error(&r, STATUS[i]);
		assert_null(strstr(c.buf, "100 Continue"));
		await_eof(f, &c);	/* the rest of the body is not read */
		client_close(&c);
	}
	assert_int_equal(f->served.calls, 0);
	assert_serving(f);
}

static char *long_target(const char *prefix, size_t len)
{
	char *target = malloc(len + 1);
	size_t n = strlen(prefix);

	assert_non_null(target);
	memcpy(target, prefix, n);
	memset(target + n, 'a', len - n);
	target[len] = '\0';
	return target;
}

static void test_long_targets(void **state)
{
	struct fixture *f = *state;
	char *target = long_target("/echo?name=", HTTP_MAX_URI);
	struct client c = client_to(f);
	struct reply r = fetch(f, &c, target);

	assert_int_equal(r.status, 200);	/* exactly at the limit */
	assert_int_equal(r.body_len, strlen("method=GET path=/echo name=\n") + HTTP_MAX_URI - 11);
	client_close(&c);
	free(target);

	target = long_target("/echo?name=", 10 * 1024);
	c = client_to(f);
	r = fetch(f, &c, target);
	assert_text_error(&r, 414);
	client_close(&c);
	free(target);

	target = long_target("/", 10 * 1024);	/* a path, no query */
	c = client_to(f);
	r = fetch(f, &c, target);
	assert_text_error(&r, 414);
	client_close(&c);
	free(target);

	/* Past the connection's memory: libmicrohttpd refuses it itself,
	 * and its close may reset the connection before the answer is read. */
	target = long_target("/echo?name=", 64 * 1024);
	c = client_to(f);
	client_get(&c, "GET", target);
	await_eof(f, &c);
	if (c.len) {
		assert_true(parse_reply(&c, false, &r));
		assert_true(r.status == 414 || r.status == 400 || r.status == 431);
	}
	client_close(&c);
	free(target);
	assert_int_equal(f->served.calls, 1);
	assert_serving(f);
}

static void expect_params(struct fixture *f, const char *target, int status, const char *body)
{
	struct client c = client_to(f);
	struct reply r = fetch(f, &c, target);

	assert_int_equal(r.status, status);
	assert_body(&r, body);
	client_close(&c);
}

static void test_params(void **state)
{
	struct fixture *f = *state;

	expect_params(f, "/params", 200, "seconds=(absent)\n");
	expect_params(f, "/params?seconds=5", 200, "seconds=5\n");
	expect_params(f, "/params?seconds=5&debug=1", 200, "seconds=5\n");
	expect_params(f, "/params?seconds", 200, "seconds=\n");
	expect_params(f, "/params?%73econds=7", 200, "seconds=7\n");
	expect_params(f, "/params?seconds=1&seconds=2", 200, "seconds=1\n");
	expect_params(f, "/params?seconds=5&foo=1", 400, "unknown parameter\n");
	expect_params(f, "/params?foo", 400, "unknown parameter\n");
	expect_params(f, "/params?Seconds=1", 400, "unknown parameter\n");
}

static void test_handler_contract(void **state)
{
	struct fixture *f = *state;
	struct client c = client_to(f);
	struct reply r = fetch(f, &c, "/none");

	assert_text_error(&r, 500);	/* no answer from the handler */
	client_close(&c);

	c = client_to(f);
	r = fetch(f, &c, "/twice");
	assert_int_equal(r.status, 200);
	assert_body(&r, "first\n");
	assert_int_equal(f->served.second_rc, -EALREADY);
	client_close(&c);

	c = client_to(f);
	r = fetch(f, &c, "/status");
	assert_text_error(&r, 500);
	assert_int_equal(f->served.status_rc, -EINVAL);
	client_close(&c);

	c = client_to(f);
	r = fetch(f, &c, "/headers");
	assert_int_equal(r.status, 200);
	assert_int_equal(f->served.header_rc[0], -EINVAL);
	assert_int_equal(f->served.header_rc[1], -EINVAL);
	assert_int_equal(f->served.header_rc[2], -EINVAL);
	assert_int_equal(f->served.header_rc[3], 0);
	assert_string_equal(header(&r, "X-Fine"), "yes");
	assert_null(header(&r, "Injected"));
	assert_string_equal(header(&r, "Content-Length"), "8");
	client_close(&c);
}

static void test_deferred(void **state)
{
	struct fixture *f = *state;
	struct client slow = client_to(f), quick;
	struct http_request *req;
	struct epoll_event ev;
	struct reply r;
	double asked;

	client_get(&slow, "GET", "/defer");
	asked = now_ms();
	wait_deferred(f, 1);

	/* The loop goes on serving meanwhile. */
	quick = client_to(f);
	r = fetch(f, &quick, "/echo");
	assert_int_equal(r.status, 200);
	client_close(&quick);

	while (now_ms() - asked < 200) {
		pump(f, 5);
		client_read(&slow);
		assert_int_equal(slow.len, 0);
	}
	while (epoll_wait(f->epfd, &ev, 1, 0) == 1)
		http_run(f->srv);
	req = take_deferred(&f->served);
	assert_int_equal(http_header(req, "Content-Disposition", "inline"), 0);
	assert_int_equal(http_respond_text(req, 200, "late\n"), 0);
	/* The answer wakes the loop by itself. */
	assert_int_equal(epoll_wait(f->epfd, &ev, 1, 1000), 1);
	r = await_reply(f, &slow, false);
	assert_int_equal(r.status, 200);
	assert_body(&r, "late\n");
	assert_string_equal(header(&r, "Content-Disposition"), "inline");

	/* Same connection, next request. */
	consume(&slow, r.size);
	r = fetch(f, &slow, "/echo");
	assert_int_equal(r.status, 200);
	client_close(&slow);
}

static void answer_all(struct fixture *f)
{
	while (f->served.ndeferred)
		assert_int_equal(http_respond_text(take_deferred(&f->served), 200, "ok\n"), 0);
}

static void open_deferred(struct fixture *f, struct client *c, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		c[i] = client_to(f);
		client_sendf(&c[i], "GET /defer HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	}
}

static void await_all(struct fixture *f, struct client *c, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct reply r = await_reply(f, &c[i], false);

		assert_int_equal(r.status, 200);
		assert_body(&r, "ok\n");
		client_close(&c[i]);
	}
}

/* Closed before the answer, and the server has not run since: the
 * answer finds the client gone. */
static void test_deferred_respond_gone(void **state)
{
	struct fixture *f = *state;
	struct client gone = client_to(f);
	struct epoll_event ev;

	client_get(&gone, "GET", "/defer");
	wait_deferred(f, 1);
	pump_for(f, 20);
	client_close(&gone);
	/* The server's fd tells of the hang-up; nobody runs the server. */
	assert_int_equal(epoll_wait(f->epfd, &ev, 1, WAIT_MS), 1);
	assert_int_equal(http_respond_text(take_deferred(&f->served), 200, "late\n"), -ECONNRESET);
	pump_for(f, 20);
	assert_int_equal(f->served.abandoned, 0);
	assert_serving(f);
}

/* A client gone while deferred (closed or reset): the server notices at
 * once, tells the handler's side and frees the connection and the
 * client's share of deferred requests. */
static void test_deferred_disconnect(void **state)
{
	struct fixture *f = *state;
	struct client gone = client_to(f), reset = client_to(f);
	struct client c[HTTP_MAX_DEFERRED_PER_CLIENT];
	double end = now_ms() + WAIT_MS;

	client_get(&gone, "GET", "/defer");
	client_get(&reset, "GET", "/defer");
	wait_deferred(f, 2);
	client_close(&gone);
	client_reset(&reset);
	while (f->served.abandoned < 2) {
		assert_true(now_ms() < end);
		pump(f, 5);
	}
	assert_int_equal(f->served.ndeferred, 0);

	open_deferred(f, c, HTTP_MAX_DEFERRED_PER_CLIENT);
	wait_deferred(f, HTTP_MAX_DEFERRED_PER_CLIENT);
	assert_int_equal(f->served.busy, 0);
	answer_all(f);
	await_all(f, c, HTTP_MAX_DEFERRED_PER_CLIENT);
	assert_serving(f);
}

/* http_stop right after answering a deferred request: the answer goes
 * out, the request still deferred gets none, a newcomer gets a 503 (not
 * the handler). */
static void test_stop(void **state)
{
	struct fixture *f = *state;
	struct client c[3], *answered, *dropped;
	struct reply r;

	open_deferred(f, c, 2);
	wait_deferred(f, 2);
	assert_int_equal(http_respond_text(take_deferred(&f->served), 200, "bye\n"), 0);
	c[2] = client_to(f);
	client_get(&c[2], "GET", "/echo");
	http_stop(f->srv);
	f->srv = NULL;
	f->served.ndeferred = 0;
	assert_int_equal(f->served.calls, 2);

	for (int i = 0; i < 3; i++) {
		client_read(&c[i]);
		assert_true(c[i].eof);
	}
	answered = c[0].len ? &c[0] : &c[1];
	dropped = c[0].len ? &c[1] : &c[0];
	assert_true(parse_reply(answered, false, &r));
	assert_int_equal(r.status, 200);
	assert_body(&r, "bye\n");
	assert_int_equal(dropped->len, 0);
	assert_true(parse_reply(&c[2], false, &r));
	assert_text_error(&r, 503);
	for (int i = 0; i < 3; i++)
		client_close(&c[i]);
}

/* An idle connection gets the idle timeout, no later. */
static void test_idle_timeout(void **state)
{
	struct fixture *f = *state;
	struct client c = client_to(f);
	int timeout;

	pump_for(f, 50);	/* accepted */
	timeout = http_timeout_ms(f->srv);
	assert_true(timeout > 0);
	assert_true(timeout <= HTTP_IDLE_TIMEOUT_S * 1000);
	client_close(&c);
}

/* The client resets the connection in the middle of a large answer: the
 * failed sends raise no SIGPIPE (left at its default: death). */
static void test_no_sigpipe(void **state)
{
	struct fixture *f = *state;
	struct client c = client_to(f);
	void (*old)(int) = signal(SIGPIPE, SIG_DFL);

	f->served.big = calloc(1, BIG_BODY);
	assert_non_null(f->served.big);
	client_get(&c, "GET", "/big");
	await_some(f, &c);
	client_reset(&c);
	pump_for(f, 100);
	c = client_to(f);
	client_get(&c, "GET", "/big");
	await_some(f, &c);
	shutdown(c.fd, SHUT_RDWR);
	pump_for(f, 100);
	client_close(&c);
	assert_serving(f);
	signal(SIGPIPE, old);
}

static void test_garbage(void **state)
{
	static const char *const JUNK[] = {
		"\x01\x02\x03 garbage\r\n\r\n",
		"GET\r\n\r\n",
		"GET /echo HTTP/9.9\r\nHost: t\r\n\r\n",
		"GET /echo HTTP/1.1\r\nHost: t\r\nBroken header\r\n\r\n",
		"GET /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
		"GET /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n",
		/* Then hangs up. (Had the FIN come with the bytes, libmicrohttpd
		 * would notice it only at the idle timeout.) */
		"GET /echo HTTP/1.1\r\nHost: t\r\nX-Long:",
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(JUNK) / sizeof(JUNK[0]); i++) {
		struct client c = client_to(f);

		client_send(&c, JUNK[i], strlen(JUNK[i]));
		if (i == sizeof(JUNK) / sizeof(JUNK[0]) - 1) {
			pump_for(f, 50);
			shutdown(c.fd, SHUT_WR);
		}
		await_eof(f, &c);
		if (c.len)
			assert_memory_equal(c.buf, "HTTP/1.", 7);
		client_close(&c);
	}
	assert_int_equal(f->served.calls, 0);
	assert_serving(f);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TEST_OWN_START(fn) cmocka_unit_test_teardown(fn, teardown)

static int no_setup(void **state)
{
	*state = NULL;
	return 0;
}

static int no_teardown(void **state)
{
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_start_port_zero),
		TEST_OWN_START(test_port_alone_is_loopback),
		cmocka_unit_test_setup_teardown(test_malformed_specs, no_setup, no_teardown),
		TEST(test_address_in_use),
		TEST_OWN_START(test_ipv6_loopback),
		TEST(test_get),
		TEST(test_head),
		TEST(test_http10),
		TEST(test_methods_not_allowed),
		TEST(test_bodies_refused),
		TEST(test_long_targets),
		TEST(test_params),
		TEST(test_handler_contract),
		TEST(test_deferred),
		TEST(test_deferred_respond_gone),
		TEST(test_deferred_disconnect),
		TEST(test_stop),
		TEST(test_idle_timeout),
		TEST(test_no_sigpipe),
		TEST(test_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
