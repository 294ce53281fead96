/* Who reaches the HTTP server and how much of it: Unix sockets, basic
 * authentication, requests framed to confuse, deferred-request limits and
 * connection slots shared between clients (127.0.0.2, 127.0.0.3, ...: loopback addresses stand
 * for other hosts). */
#include <crypt.h>
#include <grp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "host/http.h"
#include "host/httpauth.h"

#define WAIT_MS 5000
#define MAX_CLIENTS 96

struct served {
	unsigned calls, busy, abandoned;
	struct http_request *deferred[MAX_CLIENTS];
	unsigned ndeferred;
};

struct fixture {
	struct http_server *srv;
	int epfd;
	struct served served;
	struct web_config web;
	char dir[64];
	char sock[128];
};

#include "http_client.h"

static void handle(void *ctx, struct http_request *req)
{
	struct served *s = ctx;

	s->calls++;
	if (!strcmp(http_path(req), "/defer")) {
		if (http_defer(req)) {
			s->busy++;
			http_respond_text(req, 503, "busy\n");
		} else {
			s->deferred[s->ndeferred++] = req;
		}
		return;
	}
	http_respond_text(req, 200, "ok\n");
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

static int start(struct fixture *f, const char *listen, const struct web_config *web)
{
	struct http_config cfg = {
		.listen = listen, .web = web, .handler = handle, .abandoned = abandoned, .ctx = &f->served,
	};
	struct epoll_event ev = { .events = EPOLLIN };
	int err = http_start(&f->srv, &cfg);

	if (err)
		return err;
	f->epfd = epoll_create1(EPOLL_CLOEXEC);
	assert_true(f->epfd >= 0);
	assert_int_equal(epoll_ctl(f->epfd, EPOLL_CTL_ADD, http_fd(f->srv), &ev), 0);
	return 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->epfd = -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/memwatch-http-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sock, sizeof(f->sock), "%s/mw.sock", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	http_stop(f->srv);
	if (f->epfd >= 0)
		close(f->epfd);
	web_config_free(&f->web);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static struct reply get_over(struct fixture *f, struct client *c, const char *extra)
{
	client_sendf(c, "GET /echo HTTP/1.1\r\nHost: t\r\n%s\r\n", extra);
	return await_reply(f, c, false);
}

static int status_over_unix(struct fixture *f)
{
	int err;
	struct client c = client_unix(f->sock, &err);
	struct reply r;

	assert_int_equal(err, 0);
	r = get_over(f, &c, "");
	client_close(&c);
	return r.status;
}

/* ---- Unix sockets -------------------------------------------------------- */

/* errno of connect() to path as uid 65534, from a child process. */
static int connect_as_nobody(const char *path)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		int err;
		if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(255);
		client_unix(path, &err);
		_exit(err);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_unix_socket(void **state)
{
	struct fixture *f = *state;
	char spec[160];
	struct stat st;

	snprintf(spec, sizeof(spec), "unix:%s", f->sock);
	assert_int_equal(start(f, spec, NULL), 0);
	assert_int_equal(http_port(f->srv), 0);
	assert_int_equal(lstat(f->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(status_over_unix(f), 200);
	if (geteuid() == 0)
		assert_int_equal(connect_as_nobody(f->sock), EACCES);
	/* A second server on the same path: refused, the first one intact. */
	{
		struct http_server *other;
		struct http_config cfg = { .listen = spec, .handler = handle };
		assert_int_equal(http_start(&other, &cfg), -EADDRINUSE);
		assert_int_equal(status_over_unix(f), 200);
	}
	http_stop(f->srv);
	f->srv = NULL;
	assert_int_equal(lstat(f->sock, &st), -1);	/* removed */
	assert_int_equal(errno, ENOENT);
}

/* A socket file nothing listens on (a run that was killed): replaced. */
static void test_unix_stale(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	char spec[160];

	strcpy(sun.sun_path, f->sock);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	snprintf(spec, sizeof(spec), "unix:%s", f->sock);
	assert_int_equal(start(f, spec, NULL), 0);
	assert_int_equal(status_over_unix(f), 200);
}

/* Whatever is at the path and is not a socket stays as it is. */
static void test_unix_not_a_socket(void **state)
{
	struct fixture *f = *state;
	char spec[160], target[160], buf[16] = "";
	FILE *file;

	file = fopen(f->sock, "w");
	assert_non_null(file);
	fputs("precious", file);
	fclose(file);
	snprintf(spec, sizeof(spec), "unix:%s", f->sock);
	assert_int_equal(start(f, spec, NULL), -EEXIST);
	file = fopen(f->sock, "r");
	assert_non_null(fgets(buf, sizeof(buf), file));
	fclose(file);
	assert_string_equal(buf, "precious");

	snprintf(target, sizeof(target), "%s/target", f->dir);
	assert_int_equal(rename(f->sock, target), 0);
	assert_int_equal(symlink(target, f->sock), 0);
	assert_int_equal(start(f, spec, NULL), -EEXIST);
	assert_int_equal(access(target, F_OK), 0);
}

/* Replaced behind the server's back: not removed at the end. */
static void test_unix_replaced(void **state)
{
	struct fixture *f = *state;
	char spec[160];
	FILE *file;

	snprintf(spec, sizeof(spec), "unix:%s", f->sock);
	assert_int_equal(start(f, spec, NULL), 0);
	assert_int_equal(unlink(f->sock), 0);
	file = fopen(f->sock, "w");
	assert_non_null(file);
	fclose(file);
	http_stop(f->srv);
	f->srv = NULL;
	assert_int_equal(access(f->sock, F_OK), 0);
}

/* ---- basic authentication ------------------------------------------------ */

static void use_password(struct fixture *f, const char *password, int cost)
{
	struct crypt_data cd = { 0 };
	char salt[64];

	assert_non_null(crypt_gensalt_rn("$2b$", cost, NULL, 0, salt, sizeof(salt)));
	f->web.users = calloc(1, sizeof(*f->web.users));
	assert_non_null(f->web.users);
	f->web.users[0].name = strdup("prometheus");
	f->web.users[0].hash = strdup(crypt_r(password, salt, &cd));
	f->web.nusers = 1;
	assert_int_equal(start(f, "127.0.0.1:0", &f->web), 0);
}

static int status_with(struct fixture *f, const char *authorization, struct reply *out)
{
	struct client c = client_to(f);
	char extra[256] = "";
	struct reply r;

	if (authorization)
		snprintf(extra, sizeof(extra), "Authorization: %s\r\n", authorization);
	r = get_over(f, &c, extra);
	if (out) {
		*out = r;
		out->head = header(&r, "WWW-Authenticate");	/* static: read at once */
	}
	client_close(&c);
	return r.status;
}

/* "prometheus:secret", "prometheus:wrong", "nobody:secret" */
#define RIGHT "Basic cHJvbWV0aGV1czpzZWNyZXQ="
#define WRONG "Basic cHJvbWV0aGV1czp3cm9uZw=="
#define STRANGER "Basic bm9ib2R5OnNlY3JldA=="

static void test_basic_auth(void **state)
{
	struct fixture *f = *state;
	struct http_stats st;
	struct reply r;

	use_password(f, "secret", 4);
	assert_int_equal(status_with(f, NULL, &r), 401);
	assert_string_equal(r.head, "Basic realm=\"memwatch\", charset=\"UTF-8\"");
	assert_int_equal(status_with(f, WRONG, NULL), 401);
	assert_int_equal(status_with(f, STRANGER, NULL), 401);
	assert_int_equal(status_with(f, "Basic !!!", NULL), 401);
	assert_int_equal(status_with(f, "Bearer x", NULL), 401);
	assert_int_equal(f->served.calls, 0);
	assert_int_equal(status_with(f, RIGHT, NULL), 200);
	assert_int_equal(status_with(f, RIGHT, NULL), 200);
	assert_int_equal(f->served.calls, 2);
	http_stats(f->srv, &st);
	assert_int_equal(st.auth_failed, 2);	/* the wrong password, the stranger */
	assert_int_equal(st.auth_passed, 1);
	assert_int_equal(st.auth_remembered, 1);	/* no bcrypt the second time */
}

/* More wrong passwords at once than checks may wait: the rest get a 429
 * at once; a password that passed before still passes. */
static void test_auth_budget(void **state)
{
	enum { FLOOD = 3 * AUTH_MAX_PENDING };
	struct fixture *f = *state;
	struct client c[FLOOD], good;
	unsigned denied = 0, refused = 0;
	struct http_stats st;

	use_password(f, "secret", 10);
	assert_int_equal(status_with(f, RIGHT, NULL), 200);
	for (int i = 0; i < FLOOD; i++) {
		c[i] = client_to(f);
		client_sendf(&c[i], "GET /echo HTTP/1.1\r\nHost: t\r\nAuthorization: " WRONG "\r\n\r\n");
	}
	good = client_to(f);
	client_sendf(&good, "GET /echo HTTP/1.1\r\nHost: t\r\nAuthorization: " RIGHT "\r\n\r\n");
	for (int i = 0; i < FLOOD; i++) {
		struct reply r = await_reply(f, &c[i], false);
		denied += r.status == 401;
		if (r.status == 429) {
			refused++;
			assert_string_equal(header(&r, "Retry-After"), "1");
		}
		client_close(&c[i]);
	}
	assert_int_equal(await_reply(f, &good, false).status, 200);
	client_close(&good);
	assert_int_equal(denied + refused, FLOOD);
	assert_true(refused >= FLOOD - AUTH_MAX_PENDING);
	http_stats(f->srv, &st);
	assert_int_equal(st.auth_refused, refused);
	assert_int_equal(st.auth_failed, denied);
}

/* A client that hangs up while its password is checked: the check's
 * verdict goes nowhere, the slot is freed. */
static void test_auth_client_gone(void **state)
{
	struct fixture *f = *state;
	struct client c[AUTH_MAX_PENDING];
	struct http_stats st;
	double end;

	use_password(f, "secret", 10);
	for (int i = 0; i < AUTH_MAX_PENDING; i++) {
		c[i] = client_to(f);
		client_sendf(&c[i], "GET /echo HTTP/1.1\r\nHost: t\r\nAuthorization: " WRONG "\r\n\r\n");
	}
	pump_for(f, 20);
	for (int i = 0; i < AUTH_MAX_PENDING; i++)
		client_close(&c[i]);
	end = now_ms() + WAIT_MS;
	do {
		assert_true(now_ms() < end);
		pump(f, 5);
		http_stats(f->srv, &st);
	} while (st.auth_failed + st.auth_refused < AUTH_MAX_PENDING);
	assert_int_equal(status_with(f, RIGHT, NULL), 200);
}

/* ---- framing ------------------------------------------------------------ */

static void expect_status(struct fixture *f, const char *target, int status)
{
	struct client c = client_to(f);
	struct reply r = fetch(f, &c, target);

	assert_int_equal(r.status, status);
	client_close(&c);
}

/* What a proxy in front might frame otherwise: refused, and the
 * connection closed, so nothing after it is read as a next request. */
static void test_ambiguous_framing(void **state)
{
	static const char *const REQUESTS[] = {
		"GET /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n"
		"GET /echo?name=smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\n",
		"GET /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"
		"0\r\n\r\n",
		"GET /echo%00.txt HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET /echo?name=a%00b HTTP/1.1\r\nHost: t\r\n\r\n",
	};
	struct fixture *f = *state;

	assert_int_equal(start(f, "127.0.0.1:0", NULL), 0);
	for (size_t i = 0; i < sizeof(REQUESTS) / sizeof(REQUESTS[0]); i++) {
		struct client c = client_to(f);
		struct reply r;

		client_send(&c, REQUESTS[i], strlen(REQUESTS[i]));
		r = await_reply(f, &c, false);
		assert_text_error(&r, 400);
		await_eof(f, &c);
		assert_null(strstr(c.buf, "smuggled"));
		assert_int_equal(c.len, r.size);	/* one answer, then the close */
		client_close(&c);
	}
	assert_int_equal(f->served.calls, 0);
	/* The same length twice is one length. */
	{
		struct client c = client_to(f);
		struct reply r;

		client_sendf(&c, "GET /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n");
		r = await_reply(f, &c, false);
		assert_int_equal(r.status, 200);
		client_close(&c);
	}
	/* %2500 is a percent sign and 00. */
	expect_status(f, "/echo?name=%2500", 200);
}

/* ---- limits -------------------------------------------------------------- */

static void test_deferred_limits(void **state)
{
	enum { PER = HTTP_MAX_DEFERRED_PER_CLIENT, SOURCES = HTTP_MAX_DEFERRED / PER + 1, EACH = PER + 1 };
	struct fixture *f = *state;
	struct client c[SOURCES * EACH];
	unsigned ok = 0, busy = 0;
	double end = now_ms() + WAIT_MS;
	char src[16];

	assert_int_equal(start(f, "127.0.0.1:0", NULL), 0);
	for (int s = 0; s < SOURCES; s++) {
		snprintf(src, sizeof(src), "127.0.0.%d", s + 2);
		for (int i = 0; i < EACH; i++) {
			c[s * EACH + i] = client_from(src, http_port(f->srv));
			client_get(&c[s * EACH + i], "GET", "/defer");
		}
	}
	while (f->served.calls < SOURCES * EACH) {
		assert_true(now_ms() < end);
		pump(f, 5);
	}
	assert_int_equal(f->served.ndeferred, HTTP_MAX_DEFERRED);
	assert_int_equal(f->served.busy, SOURCES * EACH - HTTP_MAX_DEFERRED);
	while (f->served.ndeferred)
		http_respond_text(f->served.deferred[--f->served.ndeferred], 200, "late\n");
	for (int i = 0; i < SOURCES * EACH; i++) {
		int status = await_reply(f, &c[i], false).status;
		ok += status == 200;
		busy += status == 503;
		client_close(&c[i]);
	}
	assert_int_equal(ok, HTTP_MAX_DEFERRED);
	assert_int_equal(busy, SOURCES * EACH - HTTP_MAX_DEFERRED);
}

/* Slow headers from one client, more than its share: a request of the
 * same client that comes at once is still served. */
static void test_slow_headers_same_client(void **state)
{
	enum { SLOW = HTTP_MAX_PER_CLIENT + 8 };
	struct fixture *f = *state;
	struct client slow[SLOW], quick;
	unsigned closed = 0;

	assert_int_equal(start(f, "127.0.0.1:0", NULL), 0);
	for (int i = 0; i < SLOW; i++) {
		slow[i] = client_to(f);
		client_sendf(&slow[i], "GET /echo HTTP/1.1\r\nHost: t\r\nX-Slow: a");
		pump_for(f, 2);
	}
	quick = client_to(f);
	assert_int_equal(fetch(f, &quick, "/echo").status, 200);
	client_close(&quick);
	for (int i = 0; i < SLOW; i++) {
		client_read(&slow[i]);
		closed += slow[i].eof;
		client_close(&slow[i]);
	}
	assert_true(closed >= SLOW - HTTP_MAX_PER_CLIENT);
}

/* Every slot taken by clients waiting to send a request: a newcomer is
 * served all the same. */
static void test_full_server(void **state)
{
	enum { SOURCES = HTTP_MAX_CONNECTIONS / HTTP_MAX_PER_CLIENT + 1 };
	struct fixture *f = *state;
	struct client idle[SOURCES * HTTP_MAX_PER_CLIENT], quick;
	char src[16];

	assert_int_equal(start(f, "127.0.0.1:0", NULL), 0);
	for (int s = 0; s < SOURCES; s++) {
		snprintf(src, sizeof(src), "127.0.0.%d", s + 2);
		for (int i = 0; i < HTTP_MAX_PER_CLIENT; i++) {
			idle[s * HTTP_MAX_PER_CLIENT + i] = client_from(src, http_port(f->srv));
			pump_for(f, 2);
		}
	}
	quick = client_to(f);
	assert_int_equal(fetch(f, &quick, "/echo").status, 200);
	client_close(&quick);
	for (int i = 0; i < SOURCES * HTTP_MAX_PER_CLIENT; i++)
		client_close(&idle[i]);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_unix_socket),
		TEST(test_unix_stale),
		TEST(test_unix_not_a_socket),
		TEST(test_unix_replaced),
		TEST(test_basic_auth),
		TEST(test_auth_budget),
		TEST(test_auth_client_gone),
		TEST(test_ambiguous_framing),
		TEST(test_deferred_limits),
		TEST(test_slow_headers_same_client),
		TEST(test_full_server),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
