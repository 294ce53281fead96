/* The hash map against a reference model, under random inserts and removes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "util/hashmap.h"

#define KEYS 5000

static void test_random_ops(void **state)
{
	static int present[KEYS];
	struct hmap m;

	hmap_init(&m, NULL, NULL);
	srand(1);
	for (int op = 0; op < 200000; op++) {
		int k = rand() % KEYS;
		/* Few hash bits force long probe chains and wrap-around. */
		uint64_t h = hash_u64(k) & 0x3f;
		if (rand() % 3) {
			assert_int_equal(hmap_put(&m, h, k, (void *)(uintptr_t)(k + 1)), 0);
			present[k] = 1;
		} else {
			void *val = NULL;
			assert_int_equal(hmap_remove(&m, h, k, &val), present[k]);
			if (present[k])
				assert_int_equal((uintptr_t)val, k + 1);
			present[k] = 0;
		}
		if (op % 1000 == 0) {
			size_t n = 0;
			for (int j = 0; j < KEYS; j++) {
				void **slot = hmap_find(&m, hash_u64(j) & 0x3f, j);
				assert_int_equal(slot != NULL, present[j]);
				n += present[j];
			}
			assert_int_equal(m.len, n);
		}
	}
	size_t seen = 0, pos = 0;
	struct hmap_slot *slot;
	while (hmap_next(&m, &pos, &slot))
		seen++;
	assert_int_equal(seen, m.len);
	hmap_free(&m);
}

static void test_hash_bytes_differs(void **state)
{
	char a[] = "abcdefghij", b[] = "abcdefghik";

	assert_true(hash_bytes(a, 10, 0) != hash_bytes(b, 10, 0));
	assert_true(hash_bytes(a, 9, 0) != hash_bytes(a, 10, 0));
	assert_true(hash_str("x") == hash_str("x"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_ops),
		cmocka_unit_test(test_hash_bytes_differs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
