/* --all's process selection and the cgroup/container parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "host/match.h"
#include "proc/cgroup.h"
#include "util/regex_cost.h"

static void test_comm_pid_cgroup(void **state)
{
	const char *comms[] = { "^redis", "nginx$" };
	const pid_t pids[] = { 42, 7 };
	const char *cgroups[] = { "/sys/fs/cgroup/system.slice/app.service/", "kubepods.slice" };
	struct matcher m;

	assert_int_equal(matcher_init(&m, comms, 2, pids, 2, cgroups, 2), 0);
	assert_false(matcher_empty(&m));
	assert_true(matcher_match(&m, 1, "redis-server", NULL));
	assert_false(matcher_match(&m, 1, "myredis", NULL));
	assert_true(matcher_match(&m, 1, "nginx", "/"));
	assert_true(matcher_match(&m, 7, "bash", NULL));
	assert_false(matcher_match(&m, 8, "bash", "/user.slice"));
	assert_true(matcher_match(&m, 8, "bash", "/system.slice/app.service"));
	assert_true(matcher_match(&m, 8, "bash", "/system.slice/app.service/child"));
	assert_false(matcher_match(&m, 8, "bash", "/system.slice/app.service2"));
	assert_true(matcher_match(&m, 8, "bash", "/kubepods.slice/pod1/x"));
	matcher_free(&m);
}

static void test_bad_regex_and_empty(void **state)
{
	const char *bad[] = { "(" };
	struct matcher m;

	assert_int_equal(matcher_init(&m, bad, 1, NULL, 0, NULL, 0), -EINVAL);
	assert_int_equal(matcher_init(&m, NULL, 0, NULL, 0, NULL, 0), 0);
	assert_true(matcher_empty(&m));
	assert_false(matcher_match(&m, 1, "x", "/"));
	matcher_free(&m);
}

static void test_container_ids(void **state)
{
	const char *id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	char out[65], path[256];

	snprintf(path, sizeof(path), "/system.slice/docker-%s.scope", id);
	container_id_of(path, out);
	assert_string_equal(out, id);
	snprintf(path, sizeof(path), "/kubepods/burstable/pod1234/cri-containerd-%s.scope", id);
	container_id_of(path, out);
	assert_string_equal(out, id);
	snprintf(path, sizeof(path), "/docker/%s", id);
	container_id_of(path, out);
	assert_string_equal(out, id);
	container_id_of("/user.slice/user-0.slice/session-1.scope", out);
	assert_string_equal(out, "");
	/* 65 hex digits are not an id. */
	snprintf(path, sizeof(path), "/x/%sa", id);
	container_id_of(path, out);
	assert_string_equal(out, "");
	container_id_of(NULL, out);
	assert_string_equal(out, "");
}

static void test_own_cgroup(void **state)
{
	char *cg = cgroup_of(getpid());

	assert_non_null(cg);
	assert_int_equal(cg[0], '/');
	free(cg);
	assert_null(cgroup_of(-1));
}

/* The estimate follows glibc's duplication: measured there at 80-370
 * bytes per estimated node, 'a' followed by twelve '+' being 1.2 MB. */
static void test_regex_nodes(void **state)
{
	assert_true(regex_nodes("a") == 1);
	assert_true(regex_nodes("a+") == 3);
	/* Repetitions of repetitions: 'p*' and eleven '+' took glibc 31 s. */
	assert_true(regex_nodes("a++") == HUGE_VAL);
	assert_true(regex_nodes("p*+++++++++++i") == HUGE_VAL);
	assert_true(regex_nodes("a{2}*") == HUGE_VAL);
	assert_true(regex_nodes("a*{2}") == HUGE_VAL);
	assert_true(regex_nodes("(a*)+") == 7);
	assert_true(regex_nodes("a{100}") == 101);
	assert_true(regex_nodes("(a{100}){50}") == 5101);
	assert_true(regex_nodes("a{2,}") == 4);
	assert_true(regex_nodes("((((a+)+)+)+)+") == 93);
	assert_true(regex_nodes("^(redis-server|postgres|nginx)$") == 30);
	/* Brackets and escapes are one character each; '{' with no interval too. */
	assert_true(regex_nodes("[]a+{]") == 1);
	assert_true(regex_nodes("[[:alpha:]]") == 1);
	assert_true(regex_nodes("\\(+") == 3);
	assert_true(regex_nodes("a{x}") == 4);
	assert_true(regex_nodes("(") == 0);
	char deep[200] = "";
	for (int i = 0; i < 70; i++)
		strcat(deep, "(");
	assert_true(regex_nodes(deep) == HUGE_VAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_comm_pid_cgroup),
		cmocka_unit_test(test_bad_regex_and_empty),
		cmocka_unit_test(test_container_ids),
		cmocka_unit_test(test_own_cgroup),
		cmocka_unit_test(test_regex_nodes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
