/* Connection slots and deadlines (httpguard.c) on real loopback sockets,
 * with the clock passed in: no test waits for a deadline. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "host/httpguard.h"

#define S 1000000000ull
#define T0 (1000 * S)
#define MAX_PAIRS (HTTP_MAX_CONNECTIONS + HTTP_MAX_PER_CLIENT)

/* A connection: the server's end (given to the guard) and the client's. */
struct pair {
	int server, client;
	struct guard_conn *gc;
};

struct fixture {
	int listener;
	struct sockaddr_in addr;
	struct http_guard guard;
	struct pair pairs[MAX_PAIRS];
	unsigned npairs;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	socklen_t len = sizeof(f->addr);

	assert_non_null(f);
	f->addr.sin_family = AF_INET;
	f->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->listener >= 0);
	assert_int_equal(bind(f->listener, (struct sockaddr *)&f->addr, sizeof(f->addr)), 0);
	assert_int_equal(listen(f->listener, 256), 0);
	assert_int_equal(getsockname(f->listener, (struct sockaddr *)&f->addr, &len), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	while (f->guard.head)
		guard_remove(&f->guard, f->guard.head);
	for (unsigned i = 0; i < f->npairs; i++) {
		close(f->pairs[i].server);
		close(f->pairs[i].client);
	}
	close(f->listener);
	free(f);
	return 0;
}

/* A connection from source address src, added to the guard at time now. */
static struct pair *connect_from(struct fixture *f, const char *src, uint64_t now)
{
	struct sockaddr_in from = { .sin_family = AF_INET };
	struct pair *p = &f->pairs[f->npairs++];

	assert_true(f->npairs <= MAX_PAIRS);
	p->client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(p->client >= 0);
	assert_int_equal(inet_pton(AF_INET, src, &from.sin_addr), 1);
	assert_int_equal(bind(p->client, (struct sockaddr *)&from, sizeof(from)), 0);
	assert_int_equal(connect(p->client, (struct sockaddr *)&f->addr, sizeof(f->addr)), 0);
	p->server = accept4(f->listener, NULL, NULL, SOCK_CLOEXEC);
	assert_true(p->server >= 0);
	p->gc = guard_add(&f->guard, p->server, now);
	assert_non_null(p->gc);
	return p;
}

/* Whether the server shut the connection down (the client reads its end). */
static bool closed(const struct pair *p)
{
	char byte;

	return recv(p->client, &byte, 1, MSG_DONTWAIT) == 0;
}

static void test_header_deadline(void **state)
{
	struct fixture *f = *state;
	struct pair *p = connect_from(f, "127.0.0.1", T0);

	assert_int_equal(guard_timeout_ms(&f->guard, T0), HTTP_HEADER_TIMEOUT_S * 1000);
	guard_expire(&f->guard, T0 + HTTP_HEADER_TIMEOUT_S * S - 1);
	assert_false(closed(p));
	guard_expire(&f->guard, T0 + HTTP_HEADER_TIMEOUT_S * S);
	assert_true(closed(p));
	assert_int_equal(f->guard.timed_out, 1);
	assert_int_equal(f->guard.nconns, 0);
	assert_int_equal(guard_timeout_ms(&f->guard, T0), -1);	/* closing: no more deadlines */
}

/* In a request: no deadline; sending: its own; after it: waiting anew. */
static void test_deadlines_follow_the_request(void **state)
{
	struct fixture *f = *state;
	struct pair *p = connect_from(f, "127.0.0.1", T0);
	uint64_t t = T0 + 5 * S;

	guard_set(p->gc, GUARD_BUSY, t);
	assert_int_equal(guard_timeout_ms(&f->guard, t), -1);
	guard_expire(&f->guard, t + 3600 * S);
	assert_false(closed(p));
	t += 3600 * S;
	guard_set(p->gc, GUARD_SENDING, t);
	assert_int_equal(guard_timeout_ms(&f->guard, t), HTTP_SEND_TIMEOUT_S * 1000);
	t += 2 * S;
	guard_set(p->gc, GUARD_WAITING, t);
	guard_expire(&f->guard, t + HTTP_HEADER_TIMEOUT_S * S - 1);
	assert_false(closed(p));
	guard_expire(&f->guard, t + HTTP_HEADER_TIMEOUT_S * S);
	assert_true(closed(p));
}

/* One client past its share: its connection that has waited longest for
 * a request goes, not one in a request, not another client's. */
static void test_per_client_limit(void **state)
{
	struct fixture *f = *state;
	struct pair *other = connect_from(f, "127.0.0.3", T0);
	struct pair *first[HTTP_MAX_PER_CLIENT];
	struct pair *p;

	for (int i = 0; i < HTTP_MAX_PER_CLIENT; i++)
		first[i] = connect_from(f, "127.0.0.2", T0 + (i + 1) * S);
	for (int i = 0; i < HTTP_MAX_PER_CLIENT; i++)
		assert_false(closed(first[i]));
	guard_set(first[0]->gc, GUARD_BUSY, T0 + 20 * S);
	p = connect_from(f, "127.0.0.2", T0 + 21 * S);
	assert_false(closed(first[0]));
	assert_true(closed(first[1]));
	for (int i = 2; i < HTTP_MAX_PER_CLIENT; i++)
		assert_false(closed(first[i]));
	assert_false(closed(p));
	assert_false(closed(other));
	assert_int_equal(f->guard.evicted, 1);
	assert_int_equal(f->guard.nconns, HTTP_MAX_PER_CLIENT + 1);
}

/* Every connection of the client in a request: the newcomer goes. */
static void test_client_all_busy(void **state)
{
	struct fixture *f = *state;
	struct pair *busy[HTTP_MAX_PER_CLIENT];
	struct pair *p;

	for (int i = 0; i < HTTP_MAX_PER_CLIENT; i++) {
		busy[i] = connect_from(f, "127.0.0.2", T0 + i * S);
		guard_set(busy[i]->gc, GUARD_BUSY, T0 + i * S);
	}
	p = connect_from(f, "127.0.0.2", T0 + 20 * S);
	assert_true(closed(p));
	for (int i = 0; i < HTTP_MAX_PER_CLIENT; i++)
		assert_false(closed(busy[i]));
	/* Deferred requests are the client's, whatever the connection. */
	busy[3]->gc->deferred = busy[7]->gc->deferred = true;
	assert_int_equal(guard_client_deferred(&f->guard, busy[0]->gc), 2);
}

/* The server full: the connection that has waited longest, of any
 * client, goes, so that a slot stays free for the next one. */
static void test_server_limit(void **state)
{
	enum { CLIENTS = HTTP_MAX_CONNECTIONS / HTTP_MAX_PER_CLIENT };
	struct fixture *f = *state;
	char src[16];
	unsigned n = 0;

	for (int c = 0; c < CLIENTS; c++) {
		snprintf(src, sizeof(src), "127.0.0.%d", c + 2);
		for (int i = 0; i < HTTP_MAX_PER_CLIENT; i++, n++)
			connect_from(f, src, T0 + n * S);
	}
	assert_int_equal(f->npairs, HTTP_MAX_CONNECTIONS);
	assert_true(closed(&f->pairs[0]));
	for (unsigned i = 1; i < f->npairs; i++)
		assert_false(closed(&f->pairs[i]));
	assert_int_equal(f->guard.nconns, HTTP_MAX_CONNECTIONS - 1);
	/* Closed by the server: removed when it notices. */
	guard_remove(&f->guard, f->pairs[0].gc);
	assert_int_equal(f->guard.nconns, HTTP_MAX_CONNECTIONS - 1);
	connect_from(f, "127.0.0.9", T0 + n * S);
	assert_true(closed(&f->pairs[1]));
	assert_int_equal(f->guard.evicted, 2);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_header_deadline),
		TEST(test_deadlines_follow_the_request),
		TEST(test_per_client_limit),
		TEST(test_client_all_busy),
		TEST(test_server_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
