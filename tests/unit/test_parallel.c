/* parallel_for: every index exactly once, in threads of their own. */
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util/parallel.h"

#define N 200

struct record {
	int calls[N];
	pthread_t who[N];
};

static void note(void *ctx, size_t i)
{
	struct record *r = ctx;

	__atomic_add_fetch(&r->calls[i], 1, __ATOMIC_RELAXED);
	r->who[i] = pthread_self();
}

static void test_every_index_once_in_threads(void **state)
{
	static struct record r;
	size_t distinct = 0;

	memset(&r, 0, sizeof(r));
	parallel_for(N, note, &r);
	for (size_t i = 0; i < N; i++) {
		assert_int_equal(r.calls[i], 1);
		assert_false(pthread_equal(r.who[i], pthread_self()));
	}
	/* Within a batch every call has its own thread, alive until joined. */
	for (size_t i = 0; i < PARALLEL_MAX; i++) {
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = pthread_equal(r.who[i], r.who[j]);
		distinct += !seen;
	}
	assert_int_equal(distinct, PARALLEL_MAX);
}

static void test_nothing_to_do(void **state)
{
	static struct record r;

	memset(&r, 0, sizeof(r));
	parallel_for(0, note, &r);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(r.calls[i], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_index_once_in_threads),
		cmocka_unit_test(test_nothing_to_do),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
