/* Who holds the HTTP server's connection slots, so that no client can
 * starve the others: a client (an IP address; a uid on a Unix socket)
 * holds at most HTTP_MAX_PER_CLIENT connections, and a connection that is
 * waiting for a request (a TLS handshake, headers trickling in, a
 * keep-alive pause) gets HTTP_HEADER_TIMEOUT_S in all, however slowly its
 * bytes come. A client at its limit, or a server at HTTP_MAX_CONNECTIONS,
 * makes room by closing the connection that has waited longest for a
 * request: one that sends its request at once is never that one. An
 * answer must be sent within HTTP_SEND_TIMEOUT_S. Connections in a
 * request (being handled, deferred, checking a password) are not closed
 * here: deferred requests have limits of their own (http.h). */
#ifndef MW_HTTPGUARD_H
#define MW_HTTPGUARD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define HTTP_MAX_CONNECTIONS	64
#define HTTP_MAX_PER_CLIENT	16
#define HTTP_HEADER_TIMEOUT_S	10
#define HTTP_SEND_TIMEOUT_S	60

struct client_key {
	int family;		/* AF_INET (IPv4-mapped IPv6 too), AF_INET6, AF_UNIX */
	uint8_t addr[16];	/* the address, or the peer's uid */
};

enum guard_state {
	GUARD_WAITING,		/* for a request's headers */
	GUARD_BUSY,		/* in a request */
	GUARD_SENDING,		/* an answer */
};

struct guard_conn {
	struct guard_conn *prev, *next;
	int fd;
	struct client_key key;
	enum guard_state state;
	uint64_t since_ns;	/* waiting since */
	uint64_t deadline_ns;	/* 0: none */
	bool deferred;		/* holds a deferred request */
	bool closing;		/* shut down here; gone when the server closes it */
};

struct http_guard {
	struct guard_conn *head;
	unsigned nconns;	/* not closing */
	uint64_t evicted;	/* connections closed to make room */
	uint64_t timed_out;	/* past their deadline */
};

/* A new connection on fd (now: CLOCK_MONOTONIC ns); may close an older
 * one, or this one, to keep the limits. NULL: out of memory (fd is shut
 * down). */
struct guard_conn *guard_add(struct http_guard *g, int fd, uint64_t now);
void guard_remove(struct http_guard *g, struct guard_conn *c);
void guard_set(struct guard_conn *c, enum guard_state state, uint64_t now);
/* Deferred requests the connection's client holds. */
unsigned guard_client_deferred(const struct http_guard *g, const struct guard_conn *c);
/* Shuts down the connections past their deadline. */
void guard_expire(struct http_guard *g, uint64_t now);
/* Milliseconds to the next deadline; -1: none. */
int guard_timeout_ms(const struct http_guard *g, uint64_t now);

#endif
