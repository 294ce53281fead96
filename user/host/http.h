/* The --listen HTTP/1.1 server (libmicrohttpd), driven by the caller's
 * epoll loop: no threads, so handlers read the caller's data without locks.
 * Serves GET and HEAD (405 otherwise); refuses request bodies (413),
 * request targets over HTTP_MAX_URI bytes (414), more than
 * HTTP_MAX_CONNECTIONS connections at once (the others wait in the listen
 * backlog); closes connections idle for HTTP_IDLE_TIMEOUT_S. Reads no file.
 *
 * A request is answered exactly once with http_respond(_text), either by
 * its handler or, after http_defer, later from the same thread. A deferred
 * request's connection is frozen until then: libmicrohttpd neither reads
 * from it nor times it out, so it holds one of the connection slots, and
 * a client that goes away meanwhile is noticed only by http_respond (which
 * then returns -ECONNRESET and sends nothing). The caller keeps deferred
 * requests only until it answers them or stops the server. */
#ifndef MW_HTTP_H
#define MW_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_CONNECTIONS	64
#define HTTP_MAX_URI		8192	/* path and query string, as sent */
#define HTTP_IDLE_TIMEOUT_S	30

struct http_server;
/* Valid from its handler's call until http_respond returns (whatever it
 * returns) or http_stop: never after. */
struct http_request;

/* Called once per complete request, from http_run. It answers before
 * returning, or calls http_defer and answers later; if it does neither
 * the client gets a 500. It must not call http_run or http_stop. */
typedef void http_handler(void *ctx, struct http_request *req);

/* listen: "[ADDR:]PORT". PORT alone listens on 127.0.0.1 only; ADDR is an
 * IPv4 address or a bracketed IPv6 one ("0.0.0.0:8080", "[::1]:8080",
 * "[::]:8080"); port 0 picks a free port. 0 or -errno: -EINVAL for a
 * malformed spec, -EADDRINUSE, -EADDRNOTAVAIL, -EAFNOSUPPORT, ... */
int http_start(struct http_server **out, const char *listen,
	       http_handler *handler, void *ctx);
/* Sends the answers already given, as far as the sockets take them at
 * once (requests arriving meanwhile get a 503, not the handler), then
 * closes every connection. Requests still deferred are dropped: their
 * clients see the connection close, and the caller must forget them. */
void http_stop(struct http_server *srv);
uint16_t http_port(const struct http_server *srv);

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
/* From the handler only: the answer comes later, by http_respond. */
void http_defer(struct http_request *req);
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
