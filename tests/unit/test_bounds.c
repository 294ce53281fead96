/* Bounds of the sizing options, from a machine given by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli/bounds.h"
#include "cli/options.h"

static const struct machine GIB = { .mem_bytes = 1ull << 30, .ncpus = 4, .pid_max = 32768 };

static void test_ring(void **state)
{
	struct bounds b;

	/* 32 KiB of stack + 4 KiB of slack + the event header + the ring's. */
	bounds_of(&GIB, STACK_AUTO, 32768, &b);
	assert_int_equal(b.ring_min, 65536);
	assert_int_equal(b.ring_max, 32 << 20);	/* 2 rings in 1/16 of 1 GiB */
	bounds_of(&GIB, STACK_DWARF, 65536, &b);
	assert_int_equal(b.ring_min, 131072);
	bounds_of(&GIB, STACK_DWARF, 4096, &b);
	assert_int_equal(b.ring_min, 16384);
	/* Frame-pointer stacks are 128 addresses whatever --stack-bytes: one page. */
	bounds_of(&GIB, STACK_FP, 65536, &b);
	assert_int_equal(b.ring_min, 4096);
}

static void test_live_and_processes(void **state)
{
	struct machine small = GIB;
	struct bounds b;

	bounds_of(&GIB, STACK_AUTO, 32768, &b);
	assert_true(bounds_live_bytes(b.live_max) <= GIB.mem_bytes / 16);
	assert_true(bounds_live_bytes(b.live_max + 1ull) > GIB.mem_bytes / 16);
	assert_int_equal(bounds_live_bytes(262144), 262144 * (16 + 80));
	/* pid_max bounds the processes when memory does not. */
	struct machine big = { .mem_bytes = 64ull << 30, .ncpus = 4, .pid_max = 32768 };
	bounds_of(&big, STACK_AUTO, 32768, &b);
	assert_int_equal(b.processes_max, 32768);
	small.pid_max = 4194304;
	bounds_of(&small, STACK_AUTO, 32768, &b);
	assert_true(b.processes_max < 4194304);
	assert_true(bounds_process_bytes(b.processes_max, 4) <= GIB.mem_bytes / 16);
	assert_true(bounds_process_bytes(b.processes_max + 1ull, 4) > GIB.mem_bytes / 16);
	/* More CPUs, bigger per-CPU values, fewer processes. */
	small.ncpus = 512;
	struct bounds many;
	bounds_of(&small, STACK_AUTO, 32768, &many);
	assert_true(many.processes_max < b.processes_max);
}

static void test_defaults_clamped(void **state)
{
	struct machine tiny = { .mem_bytes = 64ull << 20, .ncpus = 1, .pid_max = 1000 };
	struct options o = { .stack_bytes = 32768, .max_profiled = 64 };

	/* The defaults shrink to a small machine; a value given is checked. */
	assert_int_equal(bounds_apply(&o, &tiny), 0);
	assert_int_equal(o.ring_bytes, 2 << 20);
	assert_true(o.max_live < 262144 && o.max_live > 0);
	assert_true(o.max_processes < 1000);
	assert_true(bounds_process_bytes(o.max_processes, 1) <= tiny.mem_bytes / 16);
	o.ring_bytes = 4 << 20;
	assert_int_equal(bounds_apply(&o, &tiny), -1);
	o.ring_bytes = 32768;
	assert_int_equal(bounds_apply(&o, &tiny), -1);
	o.ring_bytes = 65536;
	assert_int_equal(bounds_apply(&o, &tiny), 0);
	o.max_profiled = 1001;
	assert_int_equal(bounds_apply(&o, &tiny), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring),
		cmocka_unit_test(test_live_and_processes),
		cmocka_unit_test(test_defaults_clamped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
