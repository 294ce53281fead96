#include "host/http_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "util/report.h"

const char HTTP_TEXT_PLAIN[] = "text/plain; charset=utf-8";
static const char INTERNAL_ERROR[] = "internal error\n";

static void free_extras(struct http_request *req)
{
	struct http_extra *h;

	while ((h = req->extra)) {
		req->extra = h->next;
		free(h);
	}
}

void http_request_free(struct http_request *req)
{
	if (req->response)
		MHD_destroy_response(req->response);
	free_extras(req);
	free(req);
}

enum MHD_Result http_queue_answer(struct http_request *req)
{
	struct MHD_Response *resp = req->response;
	enum MHD_Result ret;

	req->state = REQ_DONE;
	req->response = NULL;
	guard_set(req->gc, GUARD_SENDING, clock_ns(CLOCK_MONOTONIC));
	if (!resp) {
		req->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		resp = MHD_create_response_from_buffer(strlen(INTERNAL_ERROR),
						       (void *)INTERNAL_ERROR,
						       MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return MHD_NO;
		if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					    HTTP_TEXT_PLAIN) != MHD_YES) {
			MHD_destroy_response(resp);
			return MHD_NO;
		}
	}
	if (req->close && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	ret = MHD_queue_response(req->conn, req->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- before the handler ------------------------------------------------ */

struct framing {
	unsigned lengths;		/* Content-Length headers */
	bool differ;			/* ... not all the same */
	const char *length;
	bool chunked;			/* any Transfer-Encoding */
};

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind,
				     const char *key, const char *value)
{
	struct framing *f = cls;

	if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
		f->chunked = true;
	} else if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
		if (f->lengths++ && strcmp(value ? value : "", f->length))
			f->differ = true;
		if (!f->length)
			f->length = value ? value : "";
	}
	return MHD_YES;
}

/* The body's framing: -1 ambiguous (two lengths, or a length and chunks:
 * what a proxy in front took for the body may not be what we take), 1 a
 * body, 0 none. */
static int body_of(struct MHD_Connection *conn)
{
	struct framing f = { 0 };

	MHD_get_connection_values(conn, MHD_HEADER_KIND, count_framing, &f);
	if (f.differ || (f.chunked && f.lengths))
		return -1;
	if (f.chunked)
		return 1;
	return f.length && strspn(f.length, "0") != strlen(f.length);
}

/* What no handler serves. An answer queued now makes libmicrohttpd skip
 * any body and close the connection after it. */
static bool refused(struct http_request *req)
{
	bool get = !strcmp(req->method, MHD_HTTP_METHOD_GET);
	bool head = !strcmp(req->method, MHD_HTTP_METHOD_HEAD);
	int body = body_of(req->conn);

	if (body < 0) {
		req->close = true;
		http_respond_text(req, MHD_HTTP_BAD_REQUEST,
				  "conflicting Content-Length or Transfer-Encoding\n");
	} else if (!get && !head) {
		http_header(req, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
		http_respond_text(req, MHD_HTTP_METHOD_NOT_ALLOWED,
				  "method not allowed: GET or HEAD only\n");
	} else if (req->uri_len > HTTP_MAX_URI) {
		http_respond_text(req, MHD_HTTP_URI_TOO_LONG,
				  "request target over %d bytes\n", HTTP_MAX_URI);
	} else if (req->nul) {
		req->close = true;
		http_respond_text(req, MHD_HTTP_BAD_REQUEST, "NUL (%%00) in the request target\n");
	} else if (body) {
		req->close = true;
		http_respond_text(req, MHD_HTTP_CONTENT_TOO_LARGE,
				  "request bodies are not accepted\n");
	} else {
		return false;
	}
	return true;
}

static void deny(struct http_request *req)
{
	http_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"memwatch\", charset=\"UTF-8\"");
	http_respond_text(req, MHD_HTTP_UNAUTHORIZED, "unauthorized: a user and password are required\n");
}

static bool client_cert_refused(struct http_request *req)
{
	const struct web_config *web = req->srv->web;
	const union MHD_ConnectionInfo *info;

	if (!web || !web->cert_pem || web->client_auth == CLIENT_CERT_NONE)
		return false;
	info = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (info && !httpauth_client_cert(info->tls_session, web->client_auth))
		return false;
	http_respond_text(req, MHD_HTTP_FORBIDDEN,
			  "forbidden: a client certificate signed by the configured CA is required\n");
	return true;
}

static void free_credentials(char *user, char *password)
{
	if (password) {
		explicit_bzero(password, strlen(password));
		MHD_free(password);
	}
	if (user)
		MHD_free(user);
}

/* AUTH_OK, or an answer given, or the request suspended (AUTH_PENDING). */
static enum auth_verdict authorize(struct http_request *req)
{
	struct http_server *srv = req->srv;
	char *user, *password = NULL;
	enum auth_verdict verdict;

	if (client_cert_refused(req))
		return AUTH_DENIED;
	if (!srv->auth)
		return AUTH_OK;
	user = MHD_basic_auth_get_username_password(req->conn, &password);
	verdict = httpauth_check(srv->auth, user, password, req);
	free_credentials(user, password);
	if (verdict == AUTH_PENDING) {
		http_suspend(req, REQ_AUTH);
	} else if (verdict == AUTH_BUSY) {
		http_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "1");
		http_respond_text(req, MHD_HTTP_TOO_MANY_REQUESTS, "too many password checks: try again later\n");
	} else if (verdict == AUTH_DENIED) {
		deny(req);
	}
	return verdict;
}

enum MHD_Result http_check_request(struct http_request *req)
{
	req->state = REQ_HANDLING;
	guard_set(req->gc, GUARD_BUSY, 0);
	if (refused(req))
		return http_queue_answer(req);
	switch (authorize(req)) {
	case AUTH_OK:
		req->state = REQ_READING;
		return MHD_YES;
	case AUTH_PENDING:
		return MHD_YES;
	default:
		return http_queue_answer(req);
	}
}

void http_auth_done(struct http_request *req, bool ok)
{
	if (ok) {
		http_resume(req, REQ_AUTHED);
		return;
	}
	req->state = REQ_HANDLING;
	deny(req);
	http_resume(req, REQ_ANSWERED);
}

/* ---- for the handler ---------------------------------------------------- */

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

int http_defer(struct http_request *req)
{
	struct http_server *srv = req->srv;

	if (req->state != REQ_HANDLING)
		return -EALREADY;
	if (srv->ndeferred >= HTTP_MAX_DEFERRED ||
	    (req->gc && guard_client_deferred(&srv->guard, req->gc) >= HTTP_MAX_DEFERRED_PER_CLIENT))
		return -EBUSY;
	req->defer = true;
	return 0;
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
		http_resume(req, REQ_ABANDONED);
		return -ECONNRESET;
	}
	err = build_response(req, status, content_type, body, len);
	free_extras(req);
	if (deferred)
		http_resume(req, REQ_ANSWERED);
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
	err = http_respond(req, status, HTTP_TEXT_PLAIN, text, len);
	free(text);
	return err;
}
