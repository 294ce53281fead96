/* The command line: defaults, every kind of value, the combinations that
 * go together and the ones that do not (one line on stderr, prefixed
 * memwatch:, and -1), --help and --version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <getopt.h>
#include <cmocka.h>

#include "cli/options.h"
#include "proc/cgroup.h"

#define MAX_ARGS 64

/* What one run of options_parse printed and returned. */
struct parsed {
	struct options o;
	int ret;
	char out[8192];		/* stdout */
	char err[1024];		/* stderr */
};

static void slurp(FILE *f, char *buf, size_t len)
{
	size_t n;

	rewind(f);
	n = fread(buf, 1, len - 1, f);
	buf[n] = 0;
	fclose(f);
}

/* options_parse on "memwatch" and the arguments up to NULL. */
static void parse(struct parsed *p, ...)
{
	static char *argv[MAX_ARGS];
	int argc = 0, saved_out = dup(1), saved_err = dup(2);
	FILE *out = tmpfile(), *err = tmpfile();
	va_list ap;

	argv[argc++] = "memwatch";
	va_start(ap, p);
	for (char *a; (a = va_arg(ap, char *)) && argc < MAX_ARGS - 1;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	assert_non_null(out);
	assert_non_null(err);
	fflush(stdout);
	fflush(stderr);
	dup2(fileno(out), 1);
	dup2(fileno(err), 2);
	optind = 0;	/* getopt starts over */
	p->ret = options_parse(argc, argv, &p->o);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, 1);
	dup2(saved_err, 2);
	close(saved_out);
	close(saved_err);
	slurp(out, p->out, sizeof(p->out));
	slurp(err, p->err, sizeof(p->err));
}

/* A usage error: -1 and one line on stderr that says what. */
#define assert_refused(p, what, ...)                                                  \
	do {                                                                          \
		parse(p, __VA_ARGS__, NULL);                                          \
		assert_int_equal((p)->ret, -1);                                       \
		assert_memory_equal((p)->err, "memwatch: ", 10);                      \
		assert_non_null(strstr((p)->err, what));                              \
		if (strchr((p)->err, '\n') != (p)->err + strlen((p)->err) - 1)       \
			fail_msg("not one line: %s", (p)->err);                       \
		options_free(&(p)->o);                                                \
	} while (0)

static void test_defaults(void **state)
{
	struct parsed *p = calloc(1, sizeof(*p));

	parse(p, "-p", "123", NULL);
	assert_int_equal(p->ret, 0);
	assert_string_equal(p->err, "");
	assert_int_equal(p->o.pid, 123);
	assert_null(p->o.cmd);
	assert_null(p->o.output);
	assert_int_equal(p->o.sample_bytes, 524288);
	assert_int_equal(p->o.max_live, 262144);
	assert_int_equal(p->o.stack_bytes, 32768);
	assert_int_equal(p->o.ring_bytes, 16 << 20);
	assert_int_equal(p->o.page_sample_bytes, 8 << 20);
	assert_int_equal(p->o.stack_mode, STACK_AUTO);
	assert_int_equal(p->o.attach_mode, ATTACH_AUTO);
	assert_true(p->o.duration == 0 && p->o.interval == 0 && p->o.max_overhead == 0);
	assert_false(p->o.all || p->o.pages_only || p->o.alloc_only || p->o.empty_probes);
	options_free(&p->o);
	free(p);
}

static void test_command_and_values(void **state)
{
	struct parsed *p = calloc(1, sizeof(*p));

	parse(p, "-s", "1k", "-d", "2.5", "-i", "0.5", "-v", "-v", "--stack-mode", "fp", "--attach-mode", "multi",
	      "--stack-bytes", "8k", "--ring-bytes", "1m", "--max-live", "100", "--max-overhead", "10",
	      "--latency-probe", "libfoo.so:handle", "--timeline", "t.json", "--plot", "p.svg",
	      "--allocator", "jemalloc,glibc", "-o", "x.pb.gz", "--", "ls", "-l", NULL);
	if (p->ret)
		fail_msg("%s", p->err);
	assert_string_equal(p->o.cmd[0], "ls");
	assert_string_equal(p->o.cmd[1], "-l");
	assert_null(p->o.cmd[2]);
	assert_int_equal(p->o.sample_bytes, 1024);
	assert_true(p->o.duration == 2.5 && p->o.interval == 0.5);
	assert_int_equal(p->o.verbose, 2);
	assert_int_equal(p->o.stack_mode, STACK_FP);
	assert_int_equal(p->o.attach_mode, ATTACH_MULTI);
	assert_int_equal(p->o.stack_bytes, 8192);
	assert_int_equal(p->o.ring_bytes, 1 << 20);
	assert_int_equal(p->o.max_live, 100);
	assert_float_equal(p->o.max_overhead, 0.1, 1e-12);
	assert_string_equal(p->o.latency_probe, "libfoo.so:handle");
	assert_string_equal(p->o.timeline, "t.json");
	assert_string_equal(p->o.plot, "p.svg");
	assert_string_equal(p->o.allocator, "jemalloc,glibc");
	assert_string_equal(p->o.output, "x.pb.gz");
	options_free(&p->o);
	free(p);
}

static void test_host_options(void **state)
{
	struct parsed *p = calloc(1, sizeof(*p));
	char *cgroup = cgroup_of(getpid());	/* --cgroup takes only one that exists */

	assert_non_null(cgroup);
	parse(p, "--all", "--pid", "1,2", "--pid", "3", "--comm", "^redis", "--cgroup", cgroup,
	      "--listen", "9464", "--output-dir", "/tmp/x", "--output-keep", "10", "--output-max-bytes", "1m",
	      "--max-processes", "50", "--max-profiled", "5", NULL);
	assert_int_equal(p->ret, 0);
	assert_true(p->o.all);
	assert_int_equal(p->o.npids, 3);
	assert_true(p->o.pids[0] == 1 && p->o.pids[1] == 2 && p->o.pids[2] == 3);
	assert_int_equal(p->o.ncomms, 1);
	assert_string_equal(p->o.comms[0], "^redis");
	assert_string_equal(p->o.cgroups[0], cgroup);
	assert_string_equal(p->o.listen, "9464");
	assert_string_equal(p->o.output_dir, "/tmp/x");
	assert_int_equal(p->o.output_keep, 10);
	assert_int_equal(p->o.output_max_bytes, 1 << 20);
	assert_int_equal(p->o.max_processes, 50);
	assert_int_equal(p->o.max_profiled, 5);
	assert_int_equal(p->o.ring_bytes, 4 << 20);	/* --all's own default */
	options_free(&p->o);
	parse(p, "--all", "--timeline", "t.csv", "--plot", "t.svg", NULL);
	assert_int_equal(p->ret, 0);
	assert_string_equal(p->o.timeline, "t.csv");	/* one per profiled process */
	assert_int_equal(p->o.output_keep, 1000);
	assert_int_equal(p->o.output_max_bytes, 1 << 30);
	assert_int_equal(p->o.max_processes, 4096);
	assert_int_equal(p->o.max_profiled, 64);
	options_free(&p->o);
	free(cgroup);
	free(p);
}

static void test_sizes(void **state)
{
	static const struct {
		const char *text;
		uint64_t value;
	} good[] = {
		{ "0", 0 }, { "4096", 4096 }, { "512k", 512 << 10 }, { "1M", 1 << 20 }, { "2g", 2ull << 30 },
		{ "4KiB", 4096 }, { "3kB", 3072 }, { "16m", 16 << 20 },
	};
	static const char *const bad[] = { "", "-1", " -1", "+1", "1x", "k", "1kk", "99999999999g", "1.5m", " 1" };
	uint64_t v;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(parse_size(good[i].text, &v), 0);
		assert_true(v == good[i].value);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse_size(bad[i], &v), -1);
}

static void test_refusals(void **state)
{
	struct parsed *p = calloc(1, sizeof(*p));

	assert_refused(p, "no target", "-s", "1k");
	assert_refused(p, "not both", "-p", "1", "--", "ls");
	assert_refused(p, "one -p PID at a time", "-p", "1", "-p", "2");
	assert_refused(p, "invalid PID '0'", "-p", "0");
	assert_refused(p, "invalid PID '1k'", "-p", "1k");
	assert_refused(p, "invalid sampling interval '0'", "-s", "0", "-p", "1");
	assert_refused(p, "invalid duration '0'", "-d", "0", "-p", "1");
	assert_refused(p, "--ring-bytes (a power of two)", "--ring-bytes", "3000", "-p", "1");
	assert_refused(p, "--stack-bytes", "--stack-bytes", "5000", "-p", "1");
	assert_refused(p, "--stack-bytes", "--stack-bytes", "128k", "-p", "1");
	assert_refused(p, "--stack-mode", "--stack-mode", "lbr", "-p", "1");
	assert_refused(p, "--attach-mode", "--attach-mode", "kprobe", "-p", "1");
	assert_refused(p, "--allocator", "--allocator", "ptmalloc", "-p", "1");
	assert_refused(p, "--timeline", "--timeline", "t.txt", "-p", "1");
	assert_refused(p, "--plot", "--plot", "t.png", "-p", "1");
	assert_refused(p, "--latency-probe", "--latency-probe", "lib.so:", "-p", "1");
	assert_refused(p, "--max-overhead", "--max-overhead", "0", "-p", "1");
	assert_refused(p, "--comm (", "--all", "--comm", "(");
	assert_refused(p, "-o profiles one process", "--all", "-o", "x.pb.gz");
	assert_refused(p, "--latency-probe profiles one process", "--all", "--latency-probe", "f");
	assert_refused(p, "--pages-only probes no heap", "--all", "--pages-only", "--comm", "x");
	assert_refused(p, "go with --all", "--listen", "9464", "-p", "1");
	assert_refused(p, "--pages-only probes no allocator", "--pages-only", "--alloc-only", "-p", "1");
	assert_refused(p, "unknown option --no-such-flag", "--no-such-flag", "-p", "1");
	assert_refused(p, "unknown option -x", "-x", "-p", "1");
	assert_refused(p, "-p needs a value", "-p");
	assert_refused(p, "--stack-mode needs a value", "-p", "1", "--stack-mode");
	free(p);
}

static void test_help_and_version(void **state)
{
	struct parsed *p = calloc(1, sizeof(*p));

	parse(p, "--help", NULL);
	assert_int_equal(p->ret, 1);
	assert_memory_equal(p->out, "Usage: memwatch -p PID", 22);
	/* A few flags of each group. */
	static const char *const flags[] = {
		"--pid", "--all", "--listen", "--output-dir", "--interval", "--pages-only", "--latency-probe",
		"--allocator", "--max-overhead", "--attach-mode", "--stack-mode", "--stack-bytes", "--empty-probes",
	};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		assert_non_null(strstr(p->out, flags[i]));
	assert_string_equal(p->err, "");
	parse(p, "-V", NULL);
	assert_int_equal(p->ret, 1);
	assert_memory_equal(p->out, "memwatch ", 9);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_command_and_values),
		cmocka_unit_test(test_host_options),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_help_and_version),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
