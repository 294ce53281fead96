#include "host/httpguard.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NS_PER_S 1000000000ull

static void key_of(int fd, struct client_key *key)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct ucred cred;
	socklen_t cred_len = sizeof(cred);

	memset(key, 0, sizeof(*key));
	if (getpeername(fd, (struct sockaddr *)&ss, &len))
		return;
	key->family = ss.ss_family;
	if (ss.ss_family == AF_INET) {
		memcpy(key->addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	} else if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			key->family = AF_INET;
			memcpy(key->addr, &a->s6_addr[12], 4);
		} else {
			memcpy(key->addr, a, 16);
		}
	} else if (ss.ss_family == AF_UNIX &&
		   !getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len)) {
		memcpy(key->addr, &cred.uid, sizeof(cred.uid));
	}
}

static bool same_client(const struct guard_conn *a, const struct guard_conn *b)
{
	return a->key.family == b->key.family && !memcmp(a->key.addr, b->key.addr, sizeof(a->key.addr));
}

/* The server sees end-of-file on its next read and closes it. */
static void shut(struct http_guard *g, struct guard_conn *c)
{
	if (c->closing)
		return;
	shutdown(c->fd, SHUT_RDWR);
	c->closing = true;
	g->nconns--;
}

/* The connection that has waited longest for a request, other than
 * except; of one client if like is given. */
static struct guard_conn *longest_waiting(struct http_guard *g, const struct guard_conn *like,
					  const struct guard_conn *except)
{
	struct guard_conn *best = NULL;

	for (struct guard_conn *c = g->head; c; c = c->next)
		if (c != except && !c->closing && c->state == GUARD_WAITING && (!like || same_client(c, like)) &&
		    (!best || c->since_ns < best->since_ns))
			best = c;
	return best;
}

static unsigned client_conns(const struct http_guard *g, const struct guard_conn *like)
{
	unsigned n = 0;

	for (const struct guard_conn *c = g->head; c; c = c->next)
		n += !c->closing && same_client(c, like);
	return n;
}

static void make_room(struct http_guard *g, struct guard_conn *added)
{
	struct guard_conn *victim;

	if (client_conns(g, added) > HTTP_MAX_PER_CLIENT) {
		victim = longest_waiting(g, added, added);
		shut(g, victim ? victim : added);
		g->evicted++;
	}
	/* At the limit the server accepts no more: keep a slot free. */
	if (g->nconns >= HTTP_MAX_CONNECTIONS && (victim = longest_waiting(g, NULL, added))) {
		shut(g, victim);
		g->evicted++;
	}
}

struct guard_conn *guard_add(struct http_guard *g, int fd, uint64_t now)
{
	struct guard_conn *c = calloc(1, sizeof(*c));

	if (!c) {
		shutdown(fd, SHUT_RDWR);
		return NULL;
	}
	c->fd = fd;
	key_of(fd, &c->key);
	guard_set(c, GUARD_WAITING, now);
	c->next = g->head;
	if (g->head)
		g->head->prev = c;
	g->head = c;
	g->nconns++;
	make_room(g, c);
	return c;
}

void guard_remove(struct http_guard *g, struct guard_conn *c)
{
	if (!c)
		return;
	if (!c->closing)
		g->nconns--;
	if (c->prev)
		c->prev->next = c->next;
	else
		g->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

void guard_set(struct guard_conn *c, enum guard_state state, uint64_t now)
{
	if (!c)
		return;
	c->state = state;
	if (state == GUARD_WAITING)
		c->since_ns = now;
	c->deadline_ns = state == GUARD_WAITING ? now + HTTP_HEADER_TIMEOUT_S * NS_PER_S
		: state == GUARD_SENDING ? now + HTTP_SEND_TIMEOUT_S * NS_PER_S : 0;
}

unsigned guard_client_deferred(const struct http_guard *g, const struct guard_conn *like)
{
	unsigned n = 0;

	for (const struct guard_conn *c = g->head; c; c = c->next)
		n += c->deferred && same_client(c, like);
	return n;
}

void guard_expire(struct http_guard *g, uint64_t now)
{
	for (struct guard_conn *c = g->head; c; c = c->next) {
		if (!c->closing && c->deadline_ns && c->deadline_ns <= now) {
			shut(g, c);
			g->timed_out++;
		}
	}
}

int guard_timeout_ms(const struct http_guard *g, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	for (const struct guard_conn *c = g->head; c; c = c->next)
		if (!c->closing && c->deadline_ns && c->deadline_ns < next)
			next = c->deadline_ns;
	if (next == UINT64_MAX)
		return -1;
	return next <= now ? 0 : (int)((next - now + 999999) / 1000000);
}
