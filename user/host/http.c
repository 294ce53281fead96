#include "host/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* Room for a request target of HTTP_MAX_URI bytes and ordinary headers:
 * a longer request line or header block gets libmicrohttpd's own 414/431. */
#define HTTP_MEMORY_LIMIT	(2 * HTTP_MAX_URI)
/* At most this many runs of libmicrohttpd to send the last answers. */
#define HTTP_FLUSH_RUNS		16

static const char TEXT_PLAIN[] = "text/plain; charset=utf-8";
static const char INTERNAL_ERROR[] = "internal error\n";

enum req_state {
	REQ_NEW,		/* request line seen */
	REQ_READING,		/* headers accepted, waiting for the end */
	REQ_HANDLING,		/* in the handler */
	REQ_DEFERRED,		/* connection suspended */
	REQ_ANSWERED,		/* answer ready to queue */
	REQ_DONE,		/* answer queued */
	REQ_ABANDONED,		/* close without an answer */
};

struct http_extra {
	struct http_extra *next;
	char *value;
	char name[];
};

struct http_request {
	struct http_server *srv;
	struct MHD_Connection *conn;
	const char *method;
	const char *path;
	size_t uri_len;
	enum req_state state;
	bool defer;
	struct http_extra *extra;
	struct MHD_Response *response;	/* NULL once answered: a 500 */
	unsigned status;
	struct http_request *prev, *next;	/* in srv->deferred */
};

struct http_server {
	struct MHD_Daemon *daemon;
	http_handler *handler;
	void *ctx;
	uint16_t port;
	int epfd;		/* libmicrohttpd's epoll fd and wake */
	int wake;		/* eventfd: a suspended connection to resume */
	bool stopping;		/* 503 without calling the handler */
	struct http_request *deferred;
};

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

static int parse_addr(int family, const char *host, size_t host_len,
		      uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	char buf[INET6_ADDRSTRLEN];
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	void *addr = family == AF_INET ? (void *)&sin->sin_addr : (void *)&sin6->sin6_addr;

	if (host_len == 0 || host_len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, host, host_len);
	buf[host_len] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(family, buf, addr) != 1)
		return -EINVAL;
	if (family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*len = sizeof(*sin);
	} else {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*len = sizeof(*sin6);
	}
	return 0;
}

/* "[ADDR:]PORT" */
static int parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
	const char *host = "127.0.0.1", *port_str = spec, *end;
	size_t host_len = strlen(host);
	int family = AF_INET;
	uint16_t port;

	if (!spec)
		return -EINVAL;
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
	return parse_addr(family, host, host_len, port, ss, len);
}

static int bound_port(int fd, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return -errno;
	if (ss.ss_family == AF_INET)
		*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else
		*port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

/* A listening socket of ours rather than libmicrohttpd's, for the errno. */
static int listen_on(const struct sockaddr_storage *ss, socklen_t len, uint16_t *port)
{
	int one = 1, err;
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (const struct sockaddr *)ss, len) || listen(fd, SOMAXCONN)) {
		err = -errno;
		close(fd);
		return err;
	}
	err = bound_port(fd, port);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

static void free_extras(struct http_request *req)
{
	struct http_extra *h;

	while ((h = req->extra)) {
		req->extra = h->next;
		free(h);
	}
}

static void unlink_deferred(struct http_request *req)
{
	if (req->prev)
		req->prev->next = req->next;
	else
		req->srv->deferred = req->next;
	if (req->next)
		req->next->prev = req->prev;
	req->prev = req->next = NULL;
}

/* Called for each request line, before the target is split and decoded:
 * its value is the request's *req_cls, which on_completed frees. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct http_request *req = calloc(1, sizeof(*req));

	if (req) {
		req->srv = cls;
		req->conn = conn;
		req->uri_len = strlen(uri);
	}
	return req;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode why)
{
	struct http_request *req = *req_cls;

	if (!req)
		return;
	if (req->state == REQ_DEFERRED)
		unlink_deferred(req);
	if (req->response)
		MHD_destroy_response(req->response);
	free_extras(req);
	free(req);
	*req_cls = NULL;
}

static enum MHD_Result queue_answer(struct http_request *req)
{
	struct MHD_Response *resp = req->response;
	enum MHD_Result ret;

	req->state = REQ_DONE;
	req->response = NULL;
	if (!resp) {
		req->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		resp = MHD_create_response_from_buffer(strlen(INTERNAL_ERROR),
						       (void *)INTERNAL_ERROR,
						       MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return MHD_NO;
		if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					    TEXT_PLAIN) != MHD_YES) {
			MHD_destroy_response(resp);
			return MHD_NO;
		}
	}
	ret = MHD_queue_response(req->conn, req->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static bool has_body(struct MHD_Connection *conn)
{
	const char *len = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						      MHD_HTTP_HEADER_CONTENT_LENGTH);

	if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_TRANSFER_ENCODING))
		return true;
	return len && strspn(len, "0") != strlen(len);
}

/* The headers are in: refuse what no handler serves. An answer queued now
 * makes libmicrohttpd skip any body and close the connection after it. */
static enum MHD_Result check_request(struct http_request *req)
{
	bool get = !strcmp(req->method, MHD_HTTP_METHOD_GET);
	bool head = !strcmp(req->method, MHD_HTTP_METHOD_HEAD);

	req->state = REQ_HANDLING;
	if (!get && !head) {
		http_header(req, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
		http_respond_text(req, MHD_HTTP_METHOD_NOT_ALLOWED,
				  "method not allowed: GET or HEAD only\n");
	} else if (req->uri_len > HTTP_MAX_URI) {
		http_respond_text(req, MHD_HTTP_URI_TOO_LONG,
				  "request target over %d bytes\n", HTTP_MAX_URI);
	} else if (has_body(req->conn)) {
		http_respond_text(req, MHD_HTTP_CONTENT_TOO_LARGE,
				  "request bodies are not accepted\n");
	} else {
		req->state = REQ_READING;
		return MHD_YES;
	}
	return queue_answer(req);
}

static enum MHD_Result dispatch(struct http_request *req)
{
	struct http_server *srv = req->srv;

	req->state = REQ_HANDLING;
	if (srv->stopping)
		http_respond_text(req, MHD_HTTP_SERVICE_UNAVAILABLE, "server stopping\n");
	else
		srv->handler(srv->ctx, req);
	if (req->state == REQ_HANDLING && req->defer) {
		req->state = REQ_DEFERRED;
		req->next = srv->deferred;
		if (srv->deferred)
			srv->deferred->prev = req;
		srv->deferred = req;
		MHD_suspend_connection(req->conn);
		return MHD_YES;
	}
	/* A handler that gave no answer leaves response NULL: a 500. */
	return queue_answer(req);
}

/* The first call comes with the headers, the next when the whole request
 * is in (at once: bodies are refused), another after a resume. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **req_cls)
{
	struct http_request *req = *req_cls;

	if (!req || *upload_data_size)
		return MHD_NO;
	switch (req->state) {
	case REQ_NEW:
		req->method = method;
		req->path = url;
		return check_request(req);
	case REQ_READING:
		return dispatch(req);
	case REQ_ANSWERED:
		return queue_answer(req);
	default:
		return MHD_NO;
	}
}

/* Takes the listening socket, whatever happens. */
static int start_daemon(struct http_server *srv, int fd, int family)
{
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
	int err;

	if (family == AF_INET6)
		flags |= MHD_USE_IPv6;
	errno = 0;
	srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv,
		MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNECTIONS,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_TIMEOUT_S,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_MEMORY_LIMIT,
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_END);
	if (srv->daemon)
		return 0;
	err = errno ? -errno : -ENOMEM;
	/* libmicrohttpd closes the socket on some failures only. */
	if (fcntl(fd, F_GETFD) >= 0)
		close(fd);
	return err;
}

static int watch(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

/* With external polling, libmicrohttpd has no eventfd of its own to wake
 * the loop when a connection is resumed: the fd the caller watches holds
 * libmicrohttpd's epoll fd and one of ours. */
static int setup_wake(struct http_server *srv)
{
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	int err;

	if (!info)
		return -EOPNOTSUPP;
	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (srv->epfd < 0)
		return -errno;
	srv->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (srv->wake < 0)
		return -errno;
	err = watch(srv->epfd, info->epoll_fd);
	return err ? err : watch(srv->epfd, srv->wake);
}

static void free_server(struct http_server *srv)
{
	if (srv->daemon)
		MHD_stop_daemon(srv->daemon);
	if (srv->epfd >= 0)
		close(srv->epfd);
	if (srv->wake >= 0)
		close(srv->wake);
	free(srv);
}

int http_start(struct http_server **out, const char *listen,
	       http_handler *handler, void *ctx)
{
	struct sockaddr_storage ss;
	struct http_server *srv;
	socklen_t len;
	int fd, err;

	*out = NULL;
	err = handler ? parse_listen(listen, &ss, &len) : -EINVAL;
	if (err)
		return err;
	/* Sends with MSG_NOSIGNAL: a client gone mid-answer is no SIGPIPE. */
	if (MHD_is_feature_supported(MHD_FEATURE_AUTOSUPPRESS_SIGPIPE) != MHD_YES ||
	    MHD_is_feature_supported(MHD_FEATURE_EPOLL) != MHD_YES)
		return -EOPNOTSUPP;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->handler = handler;
	srv->ctx = ctx;
	srv->epfd = srv->wake = -1;
	fd = listen_on(&ss, len, &srv->port);
	err = fd < 0 ? fd : start_daemon(srv, fd, ss.ss_family);
	if (!err)
		err = setup_wake(srv);
	if (err) {
		free_server(srv);
		return err;
	}
	*out = srv;
	return 0;
}

/* Makes libmicrohttpd take the request's connection back at its next run,
 * which the caller's loop is woken up for. */
static void resume(struct http_request *req, enum req_state state)
{
	unlink_deferred(req);
	req->state = state;
	MHD_resume_connection(req->conn);
	eventfd_write(req->srv->wake, 1);
}

/* Sends the answers given since the last run, as far as the sockets take
 * them at once: the first run resumes their connections, the next ones
 * write while libmicrohttpd has something it can do right away. */
static void flush(struct http_server *srv)
{
	MHD_run(srv->daemon);
	for (int i = 0; i < HTTP_FLUSH_RUNS && http_timeout_ms(srv) == 0; i++)
		MHD_run(srv->daemon);
}

void http_stop(struct http_server *srv)
{
	if (!srv)
		return;
	srv->stopping = true;
	flush(srv);
	/* libmicrohttpd may not be stopped with suspended connections; once
	 * resumed, they are closed and on_completed frees their requests. */
	while (srv->deferred)
		resume(srv->deferred, REQ_ABANDONED);
	free_server(srv);
}

uint16_t http_port(const struct http_server *srv)
{
	return srv->port;
}

int http_fd(const struct http_server *srv)
{
	return srv->epfd;
}

int http_timeout_ms(const struct http_server *srv)
{
	MHD_UNSIGNED_LONG_LONG ms;

	if (MHD_get_timeout(srv->daemon, &ms) != MHD_YES)
		return -1;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

static unsigned connections(struct MHD_Daemon *daemon)
{
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);

	return info ? info->num_connections : 0;
}

void http_run(struct http_server *srv)
{
	unsigned before = connections(srv->daemon);
	eventfd_t resumed;

	eventfd_read(srv->wake, &resumed);
	MHD_run(srv->daemon);
	/* At the limit, libmicrohttpd takes the listening socket out of its
	 * epoll set, and puts it back only at the start of a run: once slots
	 * free up, run again, or the connections waiting in the backlog would
	 * wait for some unrelated event. */
	if (before >= HTTP_MAX_CONNECTIONS && connections(srv->daemon) < before)
		MHD_run(srv->daemon);
}

const char *http_method(const struct http_request *req)
{
	return req->method;
}

const char *http_path(const struct http_request *req)
{
	return req->path;
}

const char *http_param(const struct http_request *req, const char *name)
{
	const char *value = NULL;

	if (MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, name,
					  strlen(name), &value, NULL) != MHD_YES)
		return NULL;
	return value ? value : "";
}

struct param_check {
	const char *const *known;
	bool unknown;
};

static enum MHD_Result check_param(void *cls, enum MHD_ValueKind kind,
				   const char *key, const char *value)
{
	struct param_check *check = cls;

	for (const char *const *k = check->known; *k; k++)
		if (!strcmp(*k, key))
			return MHD_YES;
	check->unknown = true;
	return MHD_NO;
}

bool http_has_unknown_param(const struct http_request *req,
			    const char *const *known)
{
	struct param_check check = { .known = known };

	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, check_param, &check);
	return check.unknown;
}

/* An RFC 9110 token. */
static bool name_ok(const char *name)
{
	static const char TCHARS[] = "!#$%&'*+-.^_`|~0123456789"
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	size_t len = strlen(name);

	return len && strspn(name, TCHARS) == len;
}

/* Visible characters, spaces and tabs: nothing to end the header early. */
static bool value_ok(const char *value)
{
	const unsigned char *c = (const unsigned char *)value;

	for (; *c; c++)
		if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
			return false;
	return c != (const unsigned char *)value;
}

static bool framing_header(const char *name)
{
	static const char *const FRAMING[] = {
		MHD_HTTP_HEADER_CONTENT_TYPE, MHD_HTTP_HEADER_CONTENT_LENGTH,
		MHD_HTTP_HEADER_TRANSFER_ENCODING, MHD_HTTP_HEADER_CONNECTION,
	};

	for (size_t i = 0; i < sizeof(FRAMING) / sizeof(FRAMING[0]); i++)
		if (!strcasecmp(name, FRAMING[i]))
			return true;
	return false;
}

int http_header(struct http_request *req, const char *name, const char *value)
{
	size_t name_len = strlen(name);
	struct http_extra *h, **tail = &req->extra;

	if (req->state != REQ_HANDLING && req->state != REQ_DEFERRED)
		return -EALREADY;
	if (!name_ok(name) || framing_header(name) || !value_ok(value))
		return -EINVAL;
	h = malloc(sizeof(*h) + name_len + 1 + strlen(value) + 1);
	if (!h)
		return -ENOMEM;
	h->next = NULL;
	memcpy(h->name, name, name_len + 1);
	h->value = h->name + name_len + 1;
	strcpy(h->value, value);
	while (*tail)
		tail = &(*tail)->next;
	*tail = h;
	return 0;
}

void http_defer(struct http_request *req)
{
	if (req->state == REQ_HANDLING)
		req->defer = true;
}

static int build_response(struct http_request *req, unsigned status,
			  const char *content_type, const void *body, size_t len)
{
	struct MHD_Response *resp;

	if (status < 200 || status > 599 || !content_type || !value_ok(content_type) ||
	    (!body && len))
		return -EINVAL;
	resp = MHD_create_response_from_buffer(len, len ? (void *)body : "",
					       MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return -ENOMEM;
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES)
		goto nomem;
	for (struct http_extra *h = req->extra; h; h = h->next)
		if (MHD_add_response_header(resp, h->name, h->value) != MHD_YES)
			goto nomem;
	req->response = resp;
	req->status = status;
	return 0;
nomem:
	MHD_destroy_response(resp);
	return -ENOMEM;
}

/* Whether the client closed or reset the connection: libmicrohttpd does
 * not watch suspended connections. A client that only shut down its
 * sending side counts as gone, as it would for libmicrohttpd. */
static bool peer_gone(struct http_request *req)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	char byte;
	ssize_t n;

	if (!info)
		return false;
	n = recv(info->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

int http_respond(struct http_request *req, unsigned status,
		 const char *content_type, const void *body, size_t len)
{
	bool deferred = req->state == REQ_DEFERRED;
	int err;

	if (req->state != REQ_HANDLING && !deferred)
		return -EALREADY;
	if (deferred && peer_gone(req)) {
		resume(req, REQ_ABANDONED);
		return -ECONNRESET;
	}
	err = build_response(req, status, content_type, body, len);
	free_extras(req);
	if (deferred)
		resume(req, REQ_ANSWERED);
	else
		req->state = REQ_ANSWERED;
	return err;
}

int http_respond_text(struct http_request *req, unsigned status, const char *fmt, ...)
{
	char *text;
	va_list ap;
	int len, err;

	va_start(ap, fmt);
	len = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (len < 0) {
		err = http_respond(req, status, NULL, NULL, 0);	/* the 500 */
		return err == -EINVAL ? -ENOMEM : err;
	}
	err = http_respond(req, status, TEXT_PLAIN, text, len);
	free(text);
	return err;
}
