/* The Prometheus exposition writer: exact text, escaping, numbers, the
 * histogram's cumulative counts, invalid input, and a realistic page read
 * by promtool, Prometheus' own parser and linter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <math.h>
#include <float.h>
#include <unistd.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "util/hist.h"
#include "host/metrics.h"

static const char *const le_bounds[] = {
	"1.024e-06", "2.048e-06", "4.096e-06", "8.192e-06", "1.6384e-05",
	"3.2768e-05", "6.5536e-05", "0.000131072", "0.000262144", "0.000524288",
	"0.001048576", "0.002097152", "0.004194304", "0.008388608", "0.016777216",
	"0.033554432", "0.067108864", "0.134217728", "0.268435456", "0.536870912",
	"1.073741824", "2.147483648",
};
#define NBOUNDS (sizeof(le_bounds) / sizeof(le_bounds[0]))

/* The bucket memwatch's BPF side puts ns in: the last one whose floor is
 * at most ns (buckets 4..7 are never used). */
static unsigned bucket_of_ns(uint64_t ns)
{
	unsigned b = MW_HIST_BUCKETS - 1;

	while (b > 0 && ((b >= 4 && b < 8) || hist_bucket_floor(b) > ns))
		b--;
	return b;
}

static void test_small_exact(void **state)
{
	struct metrics m;
	const char *const labels[] = { "pid", "42", "comm", "redis-server", NULL };

	metrics_init(&m);
	metrics_family(&m, "memwatch_up", "gauge", "Whether memwatch is profiling.");
	metrics_sample_u64(&m, "memwatch_up", NULL, 1);
	metrics_family(&m, "memwatch_heap_live_bytes", "gauge", "Live heap bytes.");
	metrics_sample_u64(&m, "memwatch_heap_live_bytes", labels, 123456);
	metrics_sample_double(&m, "memwatch_heap_live_bytes", labels, 0.5);
	metrics_family(&m, "memwatch_faults_total", "counter", "Faults.");
	metrics_sample_u64(&m, "memwatch_faults_total", (const char *const[]){ NULL }, 0);
	assert_int_equal(metrics_error(&m), 0);
	assert_string_equal(m.buf,
		"# HELP memwatch_up Whether memwatch is profiling.\n"
		"# TYPE memwatch_up gauge\n"
		"memwatch_up 1\n"
		"# HELP memwatch_heap_live_bytes Live heap bytes.\n"
		"# TYPE memwatch_heap_live_bytes gauge\n"
		"memwatch_heap_live_bytes{pid=\"42\",comm=\"redis-server\"} 123456\n"
		"memwatch_heap_live_bytes{pid=\"42\",comm=\"redis-server\"} 0.5\n"
		"# HELP memwatch_faults_total Faults.\n"
		"# TYPE memwatch_faults_total counter\n"
		"memwatch_faults_total 0\n");
	assert_int_equal(m.len, strlen(m.buf));
	metrics_free(&m);
}

/* The text of one gauge sample of value 1 with label v="value". */
static char *labelled(const char *value)
{
	struct metrics m;
	const char *const labels[] = { "v", value, NULL };
	static char line[256];
	const char *start;

	metrics_init(&m);
	metrics_family(&m, "g", "gauge", "h");
	metrics_sample_u64(&m, "g", labels, 1);
	assert_int_equal(metrics_error(&m), 0);
	start = strstr(m.buf, "\ng{v=\"") + 1;
	snprintf(line, sizeof(line), "%s", start);
	metrics_free(&m);
	return line;
}

static void test_escaping(void **state)
{
	struct metrics m;

	assert_string_equal(labelled("a\"b\\c\nd"), "g{v=\"a\\\"b\\\\c\\nd\"} 1\n");
	assert_string_equal(labelled("tab\there {x} ,="), "g{v=\"tab\there {x} ,=\"} 1\n");
	assert_string_equal(labelled(""), "g{v=\"\"} 1\n");

	metrics_init(&m);
	metrics_family(&m, "g", "gauge", "say \"hi\" \\ then\nmore");
	assert_string_equal(m.buf, "# HELP g say \"hi\" \\\\ then\\nmore\n# TYPE g gauge\n");
	metrics_free(&m);
}

#define FFFD "\xef\xbf\xbd"

static void test_invalid_utf8(void **state)
{
	/* Valid 2, 3 and 4 byte sequences pass. */
	assert_string_equal(labelled("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
			    "g{v=\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"} 1\n");
	assert_string_equal(labelled("a\xff" "b"), "g{v=\"a" FFFD "b\"} 1\n");
	/* Truncated at the end and before an ASCII byte: one U+FFFD each. */
	assert_string_equal(labelled("x\xc3"), "g{v=\"x" FFFD "\"} 1\n");
	assert_string_equal(labelled("\xe2\x82x"), "g{v=\"" FFFD "x\"} 1\n");
	assert_string_equal(labelled("\xf0\x9f\x98\""), "g{v=\"" FFFD "\\\"\"} 1\n");
	/* Overlong, surrogate and beyond U+10FFFF: each byte replaced. */
	assert_string_equal(labelled("\xc0\xaf"), "g{v=\"" FFFD FFFD "\"} 1\n");
	assert_string_equal(labelled("\xe0\x80\xaf"), "g{v=\"" FFFD FFFD FFFD "\"} 1\n");
	assert_string_equal(labelled("\xed\xa0\x80"), "g{v=\"" FFFD FFFD FFFD "\"} 1\n");
	assert_string_equal(labelled("\xf4\x90\x80\x80"), "g{v=\"" FFFD FFFD FFFD FFFD "\"} 1\n");
	/* A lone continuation byte, then a valid sequence. */
	assert_string_equal(labelled("\x80\xc3\xa9"), "g{v=\"" FFFD "\xc3\xa9\"} 1\n");
}

/* The value of the last sample written. */
static const char *last_value(const struct metrics *m)
{
	const char *end = m->buf + m->len - 1, *p = end;

	while (p > m->buf && p[-1] != ' ')
		p--;
	static char value[64];
	snprintf(value, sizeof(value), "%.*s", (int)(end - p), p);
	return value;
}

static const char *gauge_text(double v)
{
	struct metrics m;
	static char value[64];

	metrics_init(&m);
	metrics_family(&m, "g", "gauge", "h");
	metrics_sample_double(&m, "g", NULL, v);
	snprintf(value, sizeof(value), "%s", last_value(&m));
	metrics_free(&m);
	return value;
}

static void test_numbers(void **state)
{
	struct metrics m;

	metrics_init(&m);
	metrics_family(&m, "c_total", "counter", "h");
	metrics_sample_u64(&m, "c_total", NULL, UINT64_MAX);
	assert_string_equal(last_value(&m), "18446744073709551615");
	metrics_sample_u64(&m, "c_total", NULL, (1ull << 53) + 1);
	assert_string_equal(last_value(&m), "9007199254740993");
	metrics_free(&m);

	assert_string_equal(gauge_text(NAN), "NaN");
	assert_string_equal(gauge_text(INFINITY), "+Inf");
	assert_string_equal(gauge_text(-INFINITY), "-Inf");
	assert_string_equal(gauge_text(0), "0");
	assert_string_equal(gauge_text(-0.0), "-0");
	assert_string_equal(gauge_text(0.1), "0.1");
	assert_string_equal(gauge_text(1.0 / 3), "0.3333333333333333");
	assert_string_equal(gauge_text(123456.5), "123456.5");
	assert_string_equal(gauge_text(1e6), "1e+06");
	assert_string_equal(gauge_text(0.0001), "0.0001");
	assert_string_equal(gauge_text(0.00001), "1e-05");
	assert_string_equal(gauge_text(-2.5e-300), "-2.5e-300");
	assert_string_equal(gauge_text(DBL_MAX), "1.7976931348623157e+308");
	assert_string_equal(gauge_text(5e-324), "5e-324");

	srand(7);
	for (int i = 0; i < 20000; i++) {
		uint64_t bits = (uint64_t)rand() << 42 ^ (uint64_t)rand() << 21 ^ rand();
		double v;
		memcpy(&v, &bits, sizeof(v));
		if (isnan(v))
			continue;
		assert_true(strtod(gauge_text(v), NULL) == v);
	}
}

/* The value of the sample line starting with prefix. */
static double value_of(const struct metrics *m, const char *prefix)
{
	const char *line = strstr(m->buf, prefix);

	assert_non_null(line);
	return strtod(line + strlen(prefix), NULL);
}

static void test_histogram(void **state)
{
	static const uint64_t values_ns[] = {
		0, 3, 4, 4, 4, 1023, 1024, 1279, 1280, 2047, 2048, 100000,
		(1ull << 31) - 1, 1ull << 31, 4000000000ull, 60000000000ull,
	};
	const char *const labels[] = { "pid", "7", "syscall", "madvise", NULL };
	uint64_t counts[MW_HIST_BUCKETS] = { 0 };
	struct metrics m;
	char prefix[128];
	size_t n = sizeof(values_ns) / sizeof(values_ns[0]);

	/* The bounds are bucket floors, so that the cumulative counts are exact. */
	for (unsigned i = 0; i < NBOUNDS; i++)
		assert_int_equal(hist_bucket_floor(4 * (10 + i)), 1ull << (10 + i));
	assert_int_equal(bucket_of_ns(1023), 39);
	assert_int_equal(bucket_of_ns(1024), 40);
	for (size_t i = 0; i < n; i++)
		counts[bucket_of_ns(values_ns[i])]++;

	metrics_init(&m);
	metrics_family(&m, "lat_seconds", "histogram", "Latency.");
	metrics_histogram_ns(&m, "lat_seconds", labels, counts);
	assert_int_equal(metrics_error(&m), 0);

	/* Counts of durations below each bound: a whole number of ns truncates
	 * the duration, so B ns is counted above the bound B. */
	for (unsigned i = 0; i < NBOUNDS; i++) {
		uint64_t bound = 1ull << (10 + i), below = 0;
		for (size_t j = 0; j < n; j++)
			below += values_ns[j] < bound;
		snprintf(prefix, sizeof(prefix),
			 "lat_seconds_bucket{pid=\"7\",syscall=\"madvise\",le=\"%s\"} ", le_bounds[i]);
		assert_true(value_of(&m, prefix) == below);
	}
	assert_true(value_of(&m, "lat_seconds_bucket{pid=\"7\",syscall=\"madvise\",le=\"+Inf\"} ") == n);
	assert_true(value_of(&m, "lat_seconds_count{pid=\"7\",syscall=\"madvise\"} ") == n);
	assert_true(value_of(&m, "\nlat_seconds_bucket{pid=\"7\",syscall=\"madvise\",le=\"1.024e-06\"} ") == 6);
	metrics_free(&m);
}

static void test_histogram_text_and_sum(void **state)
{
	uint64_t counts[MW_HIST_BUCKETS] = { 0 };
	struct metrics m;
	char expected[4096] = "# HELP h_seconds h\n# TYPE h_seconds histogram\n";
	uint64_t cumulative[NBOUNDS] = { 0 };

	counts[8] = 3;		/* 4 ns, a bucket of width 1 */
	counts[40] = 2;		/* 1024..1279 ns: 1151.5 on average */
	counts[127] = 1;	/* from 7 * 2^29 ns, nominally 2^29 wide */
	for (unsigned i = 0; i < NBOUNDS; i++)
		cumulative[i] = 3 + (i >= 1 ? 2 : 0);
	for (unsigned i = 0; i < NBOUNDS; i++)
		snprintf(expected + strlen(expected), sizeof(expected) - strlen(expected),
			 "h_seconds_bucket{le=\"%s\"} %llu\n", le_bounds[i],
			 (unsigned long long)cumulative[i]);
	snprintf(expected + strlen(expected), sizeof(expected) - strlen(expected),
		 "h_seconds_bucket{le=\"+Inf\"} 6\nh_seconds_sum ");
	double sum_ns = 3 * 4 + 2 * 1151.5 + (7.0 * (1 << 29) + ((1 << 29) - 1) / 2.0);

	metrics_init(&m);
	metrics_family(&m, "h_seconds", "histogram", "h");
	metrics_histogram_ns(&m, "h_seconds", NULL, counts);
	assert_int_equal(metrics_error(&m), 0);
	assert_memory_equal(m.buf, expected, strlen(expected));
	assert_true(value_of(&m, "h_seconds_sum ") == sum_ns / 1e9);
	assert_string_equal(strchr(m.buf + strlen(expected), '\n'), "\nh_seconds_count 6\n");
	metrics_free(&m);

	/* An empty histogram. */
	memset(counts, 0, sizeof(counts));
	metrics_init(&m);
	metrics_family(&m, "h_seconds", "histogram", "h");
	metrics_histogram_ns(&m, "h_seconds", NULL, counts);
	assert_non_null(strstr(m.buf, "h_seconds_bucket{le=\"+Inf\"} 0\nh_seconds_sum 0\nh_seconds_count 0\n"));
	metrics_free(&m);
}

/* After gauge "g" with a sample and an optional setup, one call that must
 * fail with -EINVAL, leave the text as it was, and stay failed. */
typedef void (*bad_call)(struct metrics *m);

static void expect_einval(bad_call setup, bad_call call)
{
	uint64_t counts[MW_HIST_BUCKETS] = { 0 };
	struct metrics m;
	char *before;

	metrics_init(&m);
	metrics_family(&m, "g", "gauge", "h");
	metrics_sample_u64(&m, "g", NULL, 1);
	if (setup)
		setup(&m);
	assert_int_equal(metrics_error(&m), 0);
	before = strdup(m.buf);
	call(&m);
	assert_int_equal(metrics_error(&m), -EINVAL);
	assert_string_equal(m.buf, before);
	metrics_sample_u64(&m, "g", NULL, 2);
	metrics_family(&m, "ok", "gauge", "h");
	metrics_histogram_ns(&m, "ok", NULL, counts);
	assert_string_equal(m.buf, before);
	assert_int_equal(metrics_error(&m), -EINVAL);
	free(before);
	metrics_free(&m);
}

static const char *const *lbl(const char *k, const char *v)
{
	static const char *l[3];

	l[0] = k;
	l[1] = v;
	l[2] = NULL;
	return l;
}

static void bad_metric_digit(struct metrics *m) { metrics_family(m, "1abc", "gauge", "h"); }
static void bad_metric_dash(struct metrics *m) { metrics_family(m, "a-b", "gauge", "h"); }
static void bad_metric_empty(struct metrics *m) { metrics_family(m, "", "gauge", "h"); }
static void bad_metric_null(struct metrics *m) { metrics_family(m, NULL, "gauge", "h"); }
static void bad_metric_reserved(struct metrics *m) { metrics_family(m, "__x", "gauge", "h"); }
static void bad_metric_utf8(struct metrics *m) { metrics_family(m, "caf\xc3\xa9", "gauge", "h"); }
static void bad_type(struct metrics *m) { metrics_family(m, "s", "summary", "h"); }
static void bad_help(struct metrics *m) { metrics_family(m, "s", "gauge", NULL); }
static void bad_twice(struct metrics *m) { metrics_family(m, "g", "gauge", "again"); }
static void bad_label_colon(struct metrics *m) { metrics_sample_u64(m, "g", lbl("a:b", "v"), 1); }
static void bad_label_digit(struct metrics *m) { metrics_sample_u64(m, "g", lbl("1x", "v"), 1); }
static void bad_label_reserved(struct metrics *m) { metrics_sample_u64(m, "g", lbl("__name__", "v"), 1); }
static void bad_label_empty(struct metrics *m) { metrics_sample_u64(m, "g", lbl("", "v"), 1); }
static void bad_label_no_value(struct metrics *m) { metrics_sample_u64(m, "g", lbl("k", NULL), 1); }

static void bad_label_twice(struct metrics *m)
{
	const char *const labels[] = { "a", "1", "b", "2", "a", "3", NULL };

	metrics_sample_double(m, "g", labels, 1);
}

static void bad_other_family(struct metrics *m) { metrics_sample_u64(m, "other", NULL, 1); }

static void gauge_g2(struct metrics *m) { metrics_family(m, "g2", "gauge", "h"); }
static void histogram_h(struct metrics *m) { metrics_family(m, "h_seconds", "histogram", "h"); }
static void bad_old_family(struct metrics *m) { metrics_sample_u64(m, "g", NULL, 1); }

static void bad_histogram_of_gauge(struct metrics *m)
{
	uint64_t counts[MW_HIST_BUCKETS] = { 0 };

	metrics_histogram_ns(m, "g", NULL, counts);
}

static void bad_sample_of_histogram(struct metrics *m) { metrics_sample_u64(m, "h_seconds", NULL, 1); }

static void bad_histogram_le(struct metrics *m)
{
	uint64_t counts[MW_HIST_BUCKETS] = { 0 };

	metrics_histogram_ns(m, "h_seconds", lbl("le", "1"), counts);
}

static void test_invalid(void **state)
{
	static const struct {
		bad_call setup, call;
	} cases[] = {
		{ NULL, bad_metric_digit }, { NULL, bad_metric_dash }, { NULL, bad_metric_empty },
		{ NULL, bad_metric_null }, { NULL, bad_metric_reserved }, { NULL, bad_metric_utf8 },
		{ NULL, bad_type }, { NULL, bad_help }, { NULL, bad_twice },
		{ NULL, bad_label_colon }, { NULL, bad_label_digit }, { NULL, bad_label_reserved },
		{ NULL, bad_label_empty }, { NULL, bad_label_no_value }, { NULL, bad_label_twice },
		{ NULL, bad_other_family }, { gauge_g2, bad_old_family },
		{ NULL, bad_histogram_of_gauge }, { histogram_h, bad_sample_of_histogram },
		{ histogram_h, bad_histogram_le },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_einval(cases[i].setup, cases[i].call);
}

static void test_valid_names(void **state)
{
	struct metrics m;
	const char *const labels[] = { "_a", "1", "B_9", "2", "le", "3", NULL };

	metrics_init(&m);
	metrics_family(&m, "ns:rule_x:rate5m", "gauge", "");
	metrics_sample_u64(&m, "ns:rule_x:rate5m", labels, 1);
	metrics_family(&m, "_private_total", "counter", "h");
	assert_int_equal(metrics_error(&m), 0);
	metrics_free(&m);
}

/* A page like memwatch's: a few families, many processes, hostile comms. */
static void build_realistic(struct metrics *m)
{
	static const char *const comms[] = {
		"redis-server", "a\"b", "back\\slash", "new\nline", "bad\xff\xfeutf8",
		"caf\xc3\xa9", "[kworker/0:1]", "",
	};
	const size_t ncomms = sizeof(comms) / sizeof(comms[0]);
	uint64_t counts[MW_HIST_BUCKETS];
	char pid[16];

	metrics_family(m, "memwatch_up", "gauge", "Whether memwatch is attached to its targets.");
	metrics_sample_u64(m, "memwatch_up", NULL, 1);
	metrics_family(m, "memwatch_heap_live_bytes", "gauge", "Bytes allocated and not yet freed.");
	for (int i = 0; i < 200; i++) {
		snprintf(pid, sizeof(pid), "%d", 1000 + i);
		const char *const labels[] = { "pid", pid, "comm", comms[i % ncomms], NULL };
		metrics_sample_u64(m, "memwatch_heap_live_bytes", labels, (uint64_t)i << 20);
	}
	metrics_family(m, "memwatch_heap_allocations_total", "counter", "Allocations seen.");
	for (int i = 0; i < 200; i++) {
		snprintf(pid, sizeof(pid), "%d", 1000 + i);
		const char *const labels[] = { "pid", pid, "comm", comms[i % ncomms], NULL };
		metrics_sample_u64(m, "memwatch_heap_allocations_total", labels,
				   i ? (uint64_t)i * 1000003 : UINT64_MAX);
	}
	metrics_family(m, "memwatch_fragmentation_ratio", "gauge", "Resident over live heap; NaN without a heap.");
	for (int i = 0; i < 20; i++) {
		snprintf(pid, sizeof(pid), "%d", 1000 + i);
		const char *const labels[] = { "pid", pid, NULL };
		double ratio = i == 0 ? NAN : i == 1 ? INFINITY : 1.0 + i / 7.0;
		metrics_sample_double(m, "memwatch_fragmentation_ratio", labels, ratio);
	}
	metrics_family(m, "memwatch_syscall_duration_seconds", "histogram",
		       "Time from entry to exit of memory syscalls.");
	for (int i = 0; i < 20; i++) {
		static const char *const syscalls[] = { "madvise", "munmap", "brk" };
		snprintf(pid, sizeof(pid), "%d", 1000 + i);
		for (int s = 0; s < 3; s++) {
			const char *const labels[] = { "pid", pid, "comm", comms[i % ncomms],
						       "syscall", syscalls[s], NULL };
			for (unsigned b = 0; b < MW_HIST_BUCKETS; b++)
				counts[b] = b < 8 || b % (s + 2) ? 0 : (uint64_t)(b * i + s) % 97;
			metrics_histogram_ns(m, "memwatch_syscall_duration_seconds", labels, counts);
		}
	}
}

static void test_promtool(void **state)
{
	char out[] = "/tmp/test_metrics.XXXXXX", cmd[256], verdict[4096] = "";
	struct metrics m;
	int fd, status;
	FILE *p;

	if (system("command -v promtool >/dev/null 2>&1"))
		fail_msg("promtool not found: tools/deps.sh installs it (Debian's prometheus)");
	metrics_init(&m);
	build_realistic(&m);
	assert_int_equal(metrics_error(&m), 0);

	fd = mkstemp(out);
	assert_true(fd >= 0);
	snprintf(cmd, sizeof(cmd), "promtool check metrics >%s 2>&1", out);
	p = popen(cmd, "w");
	assert_non_null(p);
	assert_int_equal(fwrite(m.buf, 1, m.len, p), m.len);
	status = pclose(p);
	ssize_t n = read(fd, verdict, sizeof(verdict) - 1);
	verdict[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(out);
	if (status)
		print_error("promtool: %s\n", verdict);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_string_equal(verdict, "");
	metrics_free(&m);
}

static void test_free_reuse(void **state)
{
	struct metrics m;

	metrics_init(&m);
	metrics_free(&m);
	metrics_family(&m, "g", "gauge", "h");
	metrics_free(&m);
	metrics_family(&m, "g", "gauge", "h");
	assert_int_equal(metrics_error(&m), 0);
	metrics_free(&m);
	assert_null(m.buf);
	assert_int_equal(m.len, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_exact),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_histogram_text_and_sum),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_valid_names),
		cmocka_unit_test(test_promtool),
		cmocka_unit_test(test_free_reuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
