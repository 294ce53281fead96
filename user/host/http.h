/* The --listen HTTP/1.1 server (libmicrohttpd), driven by the caller's
 * epoll loop: handlers run on the caller's thread, so they read the
 * caller's data without locks. Serves GET and HEAD (405 otherwise);
 * refuses request bodies (413), request targets over HTTP_MAX_URI bytes
 * (414), a NUL in the target or conflicting framing headers (400). With
 * a web config (webconfig.h): TLS, client certificates (403 without a
 * valid one), basic authentication (401; 429 while password checks are
 * over their budget, httpauth.h). Connection slots are shared out as
 * httpguard.h says. Reads no file.
 *
 * A request is answered exactly once with http_respond(_text), either by
 * its handler or, after http_defer, later from the same thread. A
 * deferred request's connection is frozen until then: libmicrohttpd
 * neither reads from it nor times it out. If its client goes away
 * meanwhile, the server notices at once, calls the abandoned callback
 * and frees the request and its connection. */
#ifndef MW_HTTP_H
#define MW_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/httpguard.h"
#include "host/webconfig.h"

#define HTTP_MAX_URI		8192	/* path and query string, as sent */
#define HTTP_IDLE_TIMEOUT_S	30	/* no byte moves either way */
#define HTTP_MAX_DEFERRED	32	/* deferred requests at once */
#define HTTP_MAX_DEFERRED_PER_CLIENT 8

struct http_server;
/* Valid from its handler's call until http_respond returns (whatever it
 * returns) or http_stop: never after. */
struct http_request;

/* Called once per complete request, from http_run. It answers before
 * returning, or calls http_defer and answers later; if it does neither
 * the client gets a 500. It must not call http_run or http_stop. */
typedef void http_handler(void *ctx, struct http_request *req);

struct http_config {
	const char *listen;		/* listen.h: [ADDR:]PORT or unix:PATH */
	const struct web_config *web;	/* kept; NULL: no TLS, no passwords */
	http_handler *handler;
	/* A deferred request whose client went away: forget it, answer
	 * nothing; it is freed when this returns. NULL if nothing defers. */
	http_handler *abandoned;
	void *ctx;
};

/* 0 or -errno: -EINVAL for a malformed listen, -EADDRINUSE,
 * -EADDRNOTAVAIL, -EEXIST (unix:PATH is there and not a socket), ... */
int http_start(struct http_server **out, const struct http_config *cfg);
/* Sends the answers already given, as far as the sockets take them at
 * once (requests arriving meanwhile get a 503, not the handler), then
 * closes every connection and removes the Unix socket. Requests still
 * deferred are dropped: their clients see the connection close, and the
 * caller must forget them. */
void http_stop(struct http_server *srv);
/* The TCP port; 0 on a Unix socket. */
uint16_t http_port(const struct http_server *srv);

struct http_stats {
	uint64_t evicted;	/* connections closed to make room (httpguard.h) */
	uint64_t timed_out;	/* ... that missed their deadline */
	uint64_t auth_passed, auth_failed;	/* password checks (bcrypt) */
	uint64_t auth_remembered;	/* passed without one */
	uint64_t auth_refused;	/* 429: over the checks' budget */
};
void http_stats(const struct http_server *srv, struct http_stats *out);

/* The one fd to watch (EPOLLIN) in the caller's epoll set; it also becomes
 * readable when a deferred request is answered, so the loop wakes up to
 * send the answer. */
int http_fd(const struct http_server *srv);
/* The longest wait before the next http_run (ms); -1: no limit. */
int http_timeout_ms(const struct http_server *srv);
/* Accepts, reads, calls handlers and writes without blocking: whenever
 * http_fd is readable or http_timeout_ms passed. */
void http_run(struct http_server *srv);

const char *http_method(const struct http_request *req);
/* The path, percent-decoded, without the query string. */
const char *http_path(const struct http_request *req);
/* The query parameter's decoded value ("" for "?name"); NULL if absent.
 * The first one if repeated. */
const char *http_param(const struct http_request *req, const char *name);
/* Whether the query has a parameter not in known (NULL-terminated). */
bool http_has_unknown_param(const struct http_request *req,
			    const char *const *known);

/* An extra header for the answer (e.g. Content-Disposition); framing
 * headers (Content-Type, Content-Length, Transfer-Encoding, Connection)
 * are refused. 0 or -errno (-EINVAL, -EALREADY once answered, -ENOMEM). */
int http_header(struct http_request *req, const char *name, const char *value);
/* From the handler only: the answer comes later, by http_respond. 0, or
 * -EBUSY past HTTP_MAX_DEFERRED (HTTP_MAX_DEFERRED_PER_CLIENT for the
 * request's client): then the handler answers now. */
int http_defer(struct http_request *req);
/* Answers with status (200..599) and a copy of body; HEAD gets the headers
 * alone. After it returns req is gone, whatever it returned: 0, or
 * -ECONNRESET (the client of a deferred request went away; nothing is
 * sent), -EINVAL or -ENOMEM (the client gets a 500 instead). -EALREADY if
 * called again from the handler. */
int http_respond(struct http_request *req, unsigned status,
		 const char *content_type, const void *body, size_t len);
/* A text/plain (UTF-8) answer, printf-style. */
int http_respond_text(struct http_request *req, unsigned status,
		      const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
