/* The growable array helper: contents survive growth, capacity doubles
 * and is only ever raised, impossible sizes fail without touching the array. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "util/array.h"

static void test_push_keeps_contents(void **state)
{
	uint64_t *v = NULL;
	size_t n = 0, cap = 0, last_cap = 0, growths = 0;

	for (uint64_t i = 0; i < 100000; i++) {
		assert_int_equal(ARRAY_GROW(v, n, cap), 0);
		assert_true(cap > n);
		if (cap != last_cap) {
			/* 16, then twice the last: about log2(100000 / 16) growths. */
			assert_true(cap == 16 || cap == 2 * last_cap);
			last_cap = cap;
			growths++;
		}
		v[n++] = i * 2654435761u;
	}
	for (uint64_t i = 0; i < n; i++)
		assert_true(v[i] == i * 2654435761u);
	assert_int_equal(growths, 14);	/* 16 << 13 = 131072 >= 100000 */
	free(v);
}

static void test_reserve(void **state)
{
	char *buf = NULL;
	size_t cap = 0;

	assert_int_equal(array_reserve((void **)&buf, &cap, 1000, 1), 0);
	assert_int_equal(cap, 1024);
	char *before = buf;
	/* Room already there: nothing moves. */
	assert_int_equal(array_reserve((void **)&buf, &cap, 1024, 1), 0);
	assert_ptr_equal(buf, before);
	assert_int_equal(cap, 1024);
	/* More than the address space: refused, the array as it was. */
	assert_int_equal(array_reserve((void **)&buf, &cap, SIZE_MAX / 2 + 2, 1), -ENOMEM);
	assert_int_equal(array_reserve((void **)&buf, &cap, SIZE_MAX / 8, 16), -ENOMEM);
	assert_ptr_equal(buf, before);
	assert_int_equal(cap, 1024);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_push_keeps_contents),
		cmocka_unit_test(test_reserve),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
