#include "host/http_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/report.h"

/* Room for a request target of HTTP_MAX_URI bytes and ordinary headers:
 * a longer request line or header block gets libmicrohttpd's own 414/431. */
#define HTTP_MEMORY_LIMIT	(2 * HTTP_MAX_URI)
/* At most this many runs of libmicrohttpd to send the last answers. */
#define HTTP_FLUSH_RUNS		16
/* Events read at once from the server's own epoll set. */
#define EVENT_BATCH		16

/* ---- suspended requests ------------------------------------------------- */

static int conn_fd(const struct http_request *req)
{
	const union MHD_ConnectionInfo *info;

	if (req->gc)
		return req->gc->fd;
	info = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	return info ? info->connect_fd : -1;
}

static bool suspended(const struct http_request *req)
{
	return req->state == REQ_AUTH || req->state == REQ_DEFERRED;
}

/* libmicrohttpd does not watch a suspended connection: the server's own
 * epoll set does, for its client leaving (EPOLLRDHUP; EPOLLHUP and
 * EPOLLERR come unasked), not for its data. */
void http_suspend(struct http_request *req, enum req_state state)
{
	struct http_server *srv = req->srv;
	struct epoll_event ev = { .events = EPOLLRDHUP, .data.ptr = req };
	int fd = conn_fd(req);

	req->state = state;
	req->prev = NULL;
	req->next = srv->suspended;
	if (srv->suspended)
		srv->suspended->prev = req;
	srv->suspended = req;
	if (state == REQ_DEFERRED) {
		srv->ndeferred++;
		if (req->gc)
			req->gc->deferred = true;
	}
	if (fd >= 0)
		epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev);
	MHD_suspend_connection(req->conn);
}

static void forget_suspended(struct http_request *req)
{
	struct http_server *srv = req->srv;
	int fd = conn_fd(req);

	if (fd >= 0)
		epoll_ctl(srv->epfd, EPOLL_CTL_DEL, fd, NULL);
	if (req->prev)
		req->prev->next = req->next;
	else
		srv->suspended = req->next;
	if (req->next)
		req->next->prev = req->prev;
	req->prev = req->next = NULL;
	if (req->state == REQ_DEFERRED) {
		srv->ndeferred--;
		if (req->gc)
			req->gc->deferred = false;
	}
}

/* libmicrohttpd takes the connection back at its next run, which the
 * caller's loop is woken up for. */
void http_resume(struct http_request *req, enum req_state state)
{
	forget_suspended(req);
	req->state = state;
	MHD_resume_connection(req->conn);
	eventfd_write(req->srv->wake, 1);
}

/* The client of a suspended request went away: its slot is free now,
 * not when the answer would have been due. */
static void abandon(struct http_request *req)
{
	struct http_server *srv = req->srv;

	if (req->state == REQ_DEFERRED && srv->abandoned) {
		srv->abandoned(srv->ctx, req);
		if (req->state != REQ_DEFERRED)
			return;		/* answered after all */
	}
	if (req->state == REQ_AUTH)
		httpauth_cancel(srv->auth, req);
	http_resume(req, REQ_ABANDONED);
}

static void reap_gone(struct http_server *srv)
{
	struct epoll_event evs[EVENT_BATCH];
	int n;

	do {
		n = epoll_wait(srv->epfd, evs, EVENT_BATCH, 0);
		for (int i = 0; i < n; i++)
			if (evs[i].data.ptr != srv)
				abandon(evs[i].data.ptr);
	} while (n == EVENT_BATCH);
}

static void take_checks(struct http_server *srv)
{
	void *req;
	bool ok;

	while (srv->auth && httpauth_take(srv->auth, &req, &ok))
		http_auth_done(req, ok);
}

/* ---- libmicrohttpd's callbacks ------------------------------------------ */

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct http_server *srv = cls;
	const union MHD_ConnectionInfo *info;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		*socket_context = info ? guard_add(&srv->guard, info->connect_fd, clock_ns(CLOCK_MONOTONIC)) : NULL;
	} else {
		guard_remove(&srv->guard, *socket_context);
		*socket_context = NULL;
	}
}

/* Called for each request line, before the target is split and decoded:
 * its value is the request's *req_cls, which on_completed frees. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct http_request *req = calloc(1, sizeof(*req));
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	if (req) {
		req->srv = cls;
		req->conn = conn;
		req->gc = info ? info->socket_context : NULL;
		req->uri_len = strlen(uri);
		/* Decoded, it would end the path early: "heap%00.txt" is "heap". */
		req->nul = strstr(uri, "%00") != NULL;
	}
	return req;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode why)
{
	struct http_request *req = *req_cls;

	if (!req)
		return;
	if (suspended(req))
		forget_suspended(req);
	/* Kept alive, the connection waits for the next request. */
	guard_set(req->gc, GUARD_WAITING, clock_ns(CLOCK_MONOTONIC));
	http_request_free(req);
	*req_cls = NULL;
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
		http_suspend(req, REQ_DEFERRED);
		return MHD_YES;
	}
	/* A handler that gave no answer leaves response NULL: a 500. */
	return http_queue_answer(req);
}

/* The first call comes with the headers, the next when the whole request
 * is in (at once: bodies are refused); the first again after a password
 * check, another after a deferred answer. */
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
		return http_check_request(req);
	case REQ_AUTHED:
		req->state = REQ_READING;
		return MHD_YES;
	case REQ_READING:
		return dispatch(req);
	case REQ_ANSWERED:
		return http_queue_answer(req);
	default:
		return MHD_NO;
	}
}

/* ---- the server --------------------------------------------------------- */

static bool uses_tls(const struct web_config *web)
{
	return web && web->cert_pem;
}

/* Takes the listening socket, whatever happens. */
static int start_daemon(struct http_server *srv, int fd)
{
	const struct web_config *web = srv->web;
	bool tls = uses_tls(web), trust = tls && web->client_auth != CLIENT_CERT_NONE;
	struct MHD_OptionItem tls_options[] = {
		{ tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, tls ? (void *)web->cert_pem : NULL },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, tls ? (void *)web->key_pem : NULL },
		{ MHD_OPTION_HTTPS_PRIORITIES, 0, tls ? (void *)web->tls_priorities : NULL },
		{ trust ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0, trust ? (void *)web->client_ca_pem : NULL },
		{ MHD_OPTION_END, 0, NULL },
	};
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | (tls ? MHD_USE_TLS : 0);
	int err;

	if (srv->addr.ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	errno = 0;
	srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv,
		MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNECTIONS,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_TIMEOUT_S,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_MEMORY_LIMIT,
		MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
		MHD_OPTION_ARRAY, tls_options,
		MHD_OPTION_END);
	if (srv->daemon)
		return 0;
	err = errno ? -errno : -ENOMEM;
	/* libmicrohttpd closes the socket on some failures only. */
	if (fcntl(fd, F_GETFD) >= 0)
		close(fd);
	return err;
}

static int watch(struct http_server *srv, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = srv };

	return epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
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
	err = watch(srv, info->epoll_fd);
	return err ? err : watch(srv, srv->wake);
}

static void free_server(struct http_server *srv)
{
	httpauth_stop(srv->auth);
	if (srv->daemon)
		MHD_stop_daemon(srv->daemon);
	while (srv->guard.head)
		guard_remove(&srv->guard, srv->guard.head);
	listen_remove(&srv->addr);
	if (srv->epfd >= 0)
		close(srv->epfd);
	if (srv->wake >= 0)
		close(srv->wake);
	free(srv);
}

static int check_features(const struct web_config *web)
{
	/* Sends with MSG_NOSIGNAL: a client gone mid-answer is no SIGPIPE. */
	if (MHD_is_feature_supported(MHD_FEATURE_AUTOSUPPRESS_SIGPIPE) != MHD_YES ||
	    MHD_is_feature_supported(MHD_FEATURE_EPOLL) != MHD_YES ||
	    (uses_tls(web) && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) ||
	    (web && web->nusers && MHD_is_feature_supported(MHD_FEATURE_BASIC_AUTH) != MHD_YES))
		return -EOPNOTSUPP;
	return 0;
}

int http_start(struct http_server **out, const struct http_config *cfg)
{
	struct http_server *srv;
	struct listen_addr addr;
	int fd, err;

	*out = NULL;
	err = cfg && cfg->handler ? listen_parse(cfg->listen, &addr) : -EINVAL;
	if (!err)
		err = check_features(cfg->web);
	if (err)
		return err;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->handler = cfg->handler;
	srv->abandoned = cfg->abandoned;
	srv->ctx = cfg->ctx;
	srv->web = cfg->web;
	srv->addr = addr;
	srv->epfd = srv->wake = -1;
	fd = listen_open(&srv->addr, &srv->port);
	err = fd < 0 ? fd : start_daemon(srv, fd);
	if (!err)
		err = setup_wake(srv);
	if (!err && cfg->web && cfg->web->nusers)
		err = httpauth_start(&srv->auth, cfg->web, srv->wake);
	if (err) {
		free_server(srv);
		return err;
	}
	*out = srv;
	return 0;
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
	while (srv->suspended) {
		if (srv->suspended->state == REQ_AUTH)
			httpauth_cancel(srv->auth, srv->suspended);
		http_resume(srv->suspended, REQ_ABANDONED);
	}
	free_server(srv);
}

uint16_t http_port(const struct http_server *srv)
{
	return srv->port;
}

void http_stats(const struct http_server *srv, struct http_stats *out)
{
	struct auth_counts ac = { 0 };

	if (srv->auth)
		httpauth_counts(srv->auth, &ac);
	*out = (struct http_stats){
		.evicted = srv->guard.evicted, .timed_out = srv->guard.timed_out,
		.auth_passed = ac.passed, .auth_failed = ac.failed, .auth_remembered = ac.remembered,
		.auth_refused = ac.refused,
	};
}

int http_fd(const struct http_server *srv)
{
	return srv->epfd;
}

int http_timeout_ms(const struct http_server *srv)
{
	MHD_UNSIGNED_LONG_LONG ms;
	int t = -1, g = guard_timeout_ms(&srv->guard, clock_ns(CLOCK_MONOTONIC));

	if (MHD_get_timeout(srv->daemon, &ms) == MHD_YES)
		t = ms > INT_MAX ? INT_MAX : (int)ms;
	return g >= 0 && (t < 0 || g < t) ? g : t;
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
	take_checks(srv);
	reap_gone(srv);
	guard_expire(&srv->guard, clock_ns(CLOCK_MONOTONIC));
	MHD_run(srv->daemon);
	/* At the limit, libmicrohttpd takes the listening socket out of its
	 * epoll set, and puts it back only at the start of a run: once slots
	 * free up, run again, or the connections waiting in the backlog would
	 * wait for some unrelated event. */
	if (before >= HTTP_MAX_CONNECTIONS && connections(srv->daemon) < before)
		MHD_run(srv->daemon);
}
