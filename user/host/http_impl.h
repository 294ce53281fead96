/* Inside the HTTP server: what http.c (the server and its connections)
 * and httpreq.c (a request: its checks and its answer) share. */
#ifndef MW_HTTP_IMPL_H
#define MW_HTTP_IMPL_H

#include <microhttpd.h>

#include "host/http.h"
#include "host/httpauth.h"
#include "host/httpguard.h"
#include "host/listen.h"

enum req_state {
	REQ_NEW,		/* request line seen */
	REQ_AUTH,		/* connection suspended: password on the thread */
	REQ_AUTHED,		/* ... it passed */
	REQ_READING,		/* headers accepted, waiting for the end */
	REQ_HANDLING,		/* in the handler */
	REQ_DEFERRED,		/* connection suspended: the handler's */
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
	struct guard_conn *gc;
	const char *method;
	const char *path;
	size_t uri_len;
	bool nul;		/* %00 in the target */
	enum req_state state;
	bool defer;
	bool close;		/* Connection: close with the answer */
	struct http_extra *extra;
	struct MHD_Response *response;	/* NULL once answered: a 500 */
	unsigned status;
	struct http_request *prev, *next;	/* in srv->suspended */
};

struct http_server {
	struct MHD_Daemon *daemon;
	const struct web_config *web;
	http_handler *handler, *abandoned;
	void *ctx;
	struct listen_addr addr;
	uint16_t port;
	int epfd;		/* libmicrohttpd's epoll fd, wake, suspended connections */
	int wake;		/* eventfd: a suspended connection to resume */
	bool stopping;		/* 503 without calling the handler */
	struct http_request *suspended;
	unsigned ndeferred;
	struct http_auth *auth;	/* NULL without passwords */
	struct http_guard guard;
};

extern const char HTTP_TEXT_PLAIN[];

/* The headers are in: answers (a refusal) or lets the request through
 * (REQ_READING), or suspends it for a password check. */
enum MHD_Result http_check_request(struct http_request *req);
/* A password check came back. */
void http_auth_done(struct http_request *req, bool ok);
void http_request_free(struct http_request *req);
/* Queues the answer given (a 500 if none). */
enum MHD_Result http_queue_answer(struct http_request *req);

/* Freezes the request's connection (state REQ_AUTH or REQ_DEFERRED) and
 * watches for its client leaving; http_resume undoes it, then
 * libmicrohttpd goes on with the request in state. */
void http_suspend(struct http_request *req, enum req_state state);
void http_resume(struct http_request *req, enum req_state state);

#endif
