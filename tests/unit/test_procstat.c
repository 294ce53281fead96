/* /proc/PID/stat parsing: names with spaces and parentheses, the fields
 * after them, a live process read back, a missing one. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/times.h>
#include <unistd.h>
#include <cmocka.h>

#include "proc/procstat.h"

/* A kernel thread's line, from a real system, with its name changed to
 * one a process may pick. */
static const char odd_line[] =
	"4242 (a) b (c)) S 2 0 0 0 -1 2129984 7 0 3 0 11 23 0 0 20 0 1 0 98765 0 0 "
	"18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

static void test_parse_odd_name(void **state)
{
	struct proc_stat st;

	assert_int_equal(procstat_parse(odd_line, &st), 0);
	assert_string_equal(st.comm, "a) b (c)");
	assert_int_equal(st.state, 'S');
	assert_int_equal(st.flags, 2129984);
	assert_true(st.flags & PROC_PF_KTHREAD);
	assert_int_equal(st.utime, 11);
	assert_int_equal(st.stime, 23);
	assert_int_equal(st.start_time, 98765);
}

static void test_parse_long_name_and_junk(void **state)
{
	struct proc_stat st;

	/* The kernel keeps 15 bytes of a name; a longer one is cut there. */
	assert_int_equal(procstat_parse("1 (0123456789abcdefXYZ) R 0 1 1 0 -1 4194560 1 1 0 0 5 6 0 0 20 0 1 0 7",
					&st), 0);
	assert_string_equal(st.comm, "0123456789abcde");
	assert_int_equal(st.start_time, 7);
	assert_int_equal(procstat_parse("", &st), -EINVAL);
	assert_int_equal(procstat_parse("12 (x S 1", &st), -EINVAL);
	assert_int_equal(procstat_parse("12 x) S 1 2", &st), -EINVAL);
	assert_int_equal(procstat_parse("12 (x) S 1 2 3", &st), -EINVAL);
}

static void test_read_self(void **state)
{
	struct proc_stat st;
	char comm[32] = "";
	FILE *f = fopen("/proc/self/comm", "r");
	volatile uint64_t spin = 0;
	struct tms t;

	assert_non_null(f);
	assert_non_null(fgets(comm, sizeof(comm), f));
	fclose(f);
	comm[strcspn(comm, "\n")] = 0;
	/* Some CPU time of our own, so that the tick counts are not all 0. */
	while (times(&t) >= 0 && t.tms_utime + t.tms_stime < 2)
		spin++;
	assert_int_equal(procstat_read(getpid(), &st), 0);
	assert_string_equal(st.comm, comm);
	assert_int_equal(st.state, 'R');
	assert_false(st.flags & PROC_PF_KTHREAD);
	assert_true(st.utime + st.stime >= (uint64_t)(t.tms_utime + t.tms_stime));
	assert_true(st.start_time > 0);
}

static void test_read_missing(void **state)
{
	struct proc_stat st;

	/* Above pid_max (at most 2^22): never a process. */
	assert_int_equal(procstat_read(1 << 23, &st), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_odd_name),
		cmocka_unit_test(test_parse_long_name_and_junk),
		cmocka_unit_test(test_read_self),
		cmocka_unit_test(test_read_missing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
