/* The diagnosis on synthetic timelines (verdict_runs.h): thrash, with the
 * knob for each allocator, and leaks, and the near misses that must not be
 * called either (fragmentation and retained pages: test_verdict_heap.c). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "verdict_runs.h"

/* ---- thrash ---- */

static void test_thrash_jemalloc(void **state)
{
	struct run r;

	quiet_run(&r, 10, "jemalloc", true);
	thrashing(&r);
	expect_kind(&r, VERDICT_THRASH);
	assert_non_null(strstr(r.out.knob, "dirty_decay_ms"));
	assert_null(strstr(r.out.knob, "oversize_threshold"));
	assert_float_equal(r.out.refault_fraction, 0.98, 1e-9);
	assert_non_null(strstr(r.out.summary, "100.0 purges/s"));
	assert_non_null(strstr(r.out.summary, "98% of purged bytes refaulted, 96% within 1 s"));
	assert_true(evidence_has(&r.out, "refaults within 1 s of their purge: 96%"));
	assert_true(evidence_has(&r.out, "10 of 10 intervals"));
	assert_true(evidence_has(&r.out, "page faults: 258000"));
	assert_true(evidence_has(&r.out, "madvise 100.0/s (p99 up to 49.0 us)"));
}

static void test_thrash_jemalloc_oversize(void **state)
{
	struct run r;

	quiet_run(&r, 10, "jemalloc", true);
	thrashing(&r);
	for (size_t i = 0; i < r.tl.n; i++) {
		r.pts[i].purges = 10;	/* 10 purges of 16 MiB a second */
		r.pts[i].purge_bytes = 160 * MIB;
		r.pts[i].refault_bytes = 150 * MIB;
	}
	expect_kind(&r, VERDICT_THRASH);
	assert_non_null(strstr(r.out.knob, "oversize_threshold:33554432"));
	assert_non_null(strstr(r.out.knob, "dirty_decay_ms"));
	assert_true(evidence_has(&r.out, "oversize arena"));
}

static void test_thrash_glibc(void **state)
{
	struct run r;

	quiet_run(&r, 10, "glibc", true);
	thrashing(&r);
	expect_kind(&r, VERDICT_THRASH);
	assert_non_null(strstr(r.out.knob, "trim_threshold"));
	assert_non_null(strstr(r.out.knob, "MALLOC_MMAP_THRESHOLD_"));
	assert_non_null(strstr(r.out.knob, "MALLOC_ARENA_MAX"));
}

static void test_thrash_tcmalloc(void **state)
{
	struct run r;

	quiet_run(&r, 10, "tcmalloc", true);
	thrashing(&r);
	expect_kind(&r, VERDICT_THRASH);
	assert_non_null(strstr(r.out.knob, "TCMALLOC_AGGRESSIVE_DECOMMIT"));
	assert_non_null(strstr(r.out.knob, "TCMALLOC_RELEASE_RATE"));
}

static void test_thrash_unknown_allocator(void **state)
{
	struct run r;

	quiet_run(&r, 10, NULL, true);
	thrashing(&r);
	expect_kind(&r, VERDICT_THRASH);
	assert_null(strstr(r.out.knob, "MALLOC_CONF"));
	assert_non_null(strstr(r.out.knob, "freed pages longer"));
}

static void test_thrash_allocator_from_timeline(void **state)
{
	struct run r;

	quiet_run(&r, 10, "glibc", true);
	thrashing(&r);
	r.in.allocator = NULL;	/* falls back to tl->allocator */
	expect_kind(&r, VERDICT_THRASH);
	assert_non_null(strstr(r.out.knob, "trim_threshold"));
}

static void test_thrash_without_heap(void **state)
{
	struct run r;

	quiet_run(&r, 10, "jemalloc", false);
	thrashing(&r);
	expect_kind(&r, VERDICT_THRASH);
	assert_non_null(strstr(r.out.knob, "dirty_decay_ms"));
}

static void test_google_tcmalloc_knobs(void **state)
{
	struct run r;

	quiet_run(&r, 10, "tcmalloc-google", true);
	thrashing(&r);
	expect_kind(&r, VERDICT_THRASH);
	assert_non_null(strstr(r.out.knob, "SetBackgroundReleaseRate"));
	assert_null(strstr(r.out.knob, "TCMALLOC_AGGRESSIVE_DECOMMIT"));

	quiet_run(&r, 10, "tcmalloc-google", true);
	freed_most(&r);
	small_survivors(&r);
	expect_kind(&r, VERDICT_FRAGMENTATION);
	assert_non_null(strstr(r.out.knob, "segregate long-lived"));

	quiet_run(&r, 10, "tcmalloc-google", true);
	freed_most(&r);
	large_survivors(&r);
	expect_kind(&r, VERDICT_RETAINED);
	assert_non_null(strstr(r.out.knob, "ReleaseMemoryToSystem"));
}

/* Thrash in the second half of the run only is still sustained. */
static void test_thrash_in_part_of_the_run(void **state)
{
	struct run r;

	quiet_run(&r, 12, "jemalloc", true);
	thrashing(&r);
	for (size_t i = 0; i < 6; i++)
		r.pts[i].purges = r.pts[i].purge_bytes = r.pts[i].refault_bytes = 0;
	expect_kind(&r, VERDICT_THRASH);
	assert_true(evidence_has(&r.out, "6 of 12 intervals"));
}

/* ---- not thrash ---- */

static void test_calm_purges_without_refaults(void **state)
{
	struct run r;

	quiet_run(&r, 10, "jemalloc", true);
	for (size_t i = 0; i < r.tl.n; i += 3) {
		r.pts[i].purges = 2;
		r.pts[i].purge_bytes = 2 * MIB;
	}
	expect_kind(&r, VERDICT_HEALTHY);
	assert_float_equal(r.out.refault_fraction, 0.0, 0);
	assert_string_equal(r.out.knob, "none");
}

/* A high purge rate whose pages are not needed again is not thrash. */
static void test_fast_purges_without_refaults(void **state)
{
	struct run r;

	quiet_run(&r, 10, "jemalloc", true);
	thrashing(&r);
	for (size_t i = 0; i < r.tl.n; i++)
		r.pts[i].refault_bytes = 10 * MIB;
	expect_kind(&r, VERDICT_HEALTHY);
	assert_float_equal(r.out.refault_fraction, 0.1, 1e-9);
}

static void test_refaults_at_a_tiny_purge_rate(void **state)
{
	struct run r;

	quiet_run(&r, 10, "jemalloc", true);
	for (size_t i = 0; i < r.tl.n; i++) {
		r.pts[i].purges = 1;
		r.pts[i].purge_bytes = 64 * KIB;
		r.pts[i].refaults = 16;
		r.pts[i].refault_bytes = 64 * KIB;
	}
	r.in.refaults_total = r.in.refaults_within_1s = 160;
	expect_kind(&r, VERDICT_HEALTHY);
	assert_float_equal(r.out.refault_fraction, 1.0, 1e-9);
}

/* Many purges of 16 pages each: 3.1 MiB/s, below the byte floor. */
static void test_many_small_purges(void **state)
{
	struct run r;

	quiet_run(&r, 10, "glibc", true);
	for (size_t i = 0; i < r.tl.n; i++) {
		r.pts[i].purges = 50;
		r.pts[i].purge_bytes = 50 * 64 * KIB;
		r.pts[i].refault_bytes = 50 * 64 * KIB;
	}
	expect_kind(&r, VERDICT_HEALTHY);
}

/* One burst (a flush at exit) in one interval of ten is not sustained. */
static void test_single_burst_is_not_thrash(void **state)
{
	struct run r;

	quiet_run(&r, 10, "jemalloc", true);
	r.pts[9].purges = 5000;
	r.pts[9].purge_bytes = 2000 * MIB;
	r.pts[9].refault_bytes = 1900 * MIB;
	expect_kind(&r, VERDICT_HEALTHY);
}

/* A thrash phase in 2 of 20 intervals: under a quarter of the run. */
static void test_short_thrash_phase_is_not_sustained(void **state)
{
	struct run r;

	quiet_run(&r, 20, "jemalloc", true);
	thrashing(&r);
	for (size_t i = 2; i < r.tl.n; i++)
		r.pts[i].purges = r.pts[i].purge_bytes = r.pts[i].refault_bytes = 0;
	expect_kind(&r, VERDICT_HEALTHY);
}

/* One hot interval of three is a third of the run but a single interval. */
static void test_one_hot_interval_is_not_sustained(void **state)
{
	struct run r;

	quiet_run(&r, 3, "jemalloc", true);
	thrashing(&r);
	for (size_t i = 1; i < r.tl.n; i++)
		r.pts[i].purges = r.pts[i].purge_bytes = r.pts[i].refault_bytes = 0;
	expect_kind(&r, VERDICT_HEALTHY);
}

/* 3 big purges a second: above the byte floor, below the purge floor. */
static void test_few_big_purges_are_not_thrash(void **state)
{
	struct run r;

	quiet_run(&r, 10, "jemalloc", true);
	thrashing(&r);
	for (size_t i = 0; i < r.tl.n; i++) {
		r.pts[i].purges = 3;
		r.pts[i].purge_bytes = 60 * MIB;
		r.pts[i].refault_bytes = 60 * MIB;
	}
	expect_kind(&r, VERDICT_HEALTHY);
}

/* Purged pages that come back only after seconds: decay doing its job. */
static void test_late_refaults_are_not_thrash(void **state)
{
	struct run r;

	quiet_run(&r, 10, "jemalloc", true);
	thrashing(&r);
	r.in.refaults_within_1s = r.in.refaults_total / 10;
	expect_kind(&r, VERDICT_HEALTHY);
}

/* ---- leak ---- */


static void test_leak_names_top_site(void **state)
{
	struct run r;

	quiet_run(&r, 10, "glibc", true);
	leaking(&r);
	expect_kind(&r, VERDICT_LEAK);
	assert_true(evidence_has(&r.out, "site cache_insert (cache.c:88): +60.0 MiB"));
	assert_true(evidence_has(&r.out, "site parse_request (server.c:120): +10.0 MiB"));
	assert_false(evidence_has(&r.out, "session_new"));
	assert_false(evidence_has(&r.out, "shrinking"));
	assert_non_null(strstr(r.out.summary, "cache_insert"));
	assert_non_null(strstr(r.out.summary, "10.0 MiB to 82.0 MiB"));
	assert_non_null(strstr(r.out.knob, "none"));
	assert_non_null(strstr(r.out.knob, "missing free"));
}

/* The contract says sorted, but an unsorted list still yields the top site
 * first. */
static void test_leak_sites_unsorted(void **state)
{
	static const struct site_growth unsorted[] = {
		{ "small", 0, 1.0 * MIB },
		{ NULL, 0, 2.0 * MIB },
		{ "big", 0, 40.0 * MIB },
		{ "nan", NAN, 100.0 * MIB },
	};
	struct run r;

	quiet_run(&r, 10, "jemalloc", true);
	leaking(&r);
	r.in.sites = unsorted;
	r.in.nsites = 4;
	expect_kind(&r, VERDICT_LEAK);
	assert_non_null(strstr(r.out.evidence[3], "site big: +40.0 MiB"));
	assert_non_null(strstr(r.out.evidence[4], "(unknown site): +2.0 MiB"));
	assert_non_null(strstr(r.out.evidence[5], "site small: +1.0 MiB"));
	assert_false(evidence_has(&r.out, "site nan"));
}

static void test_leak_with_noise(void **state)
{
	static const int wobble[] = { 0, 3, -2, 1, -3, 2, 0, -1, 3, -2, 1, 0 };
	struct run r;

	quiet_run(&r, 12, "jemalloc", true);
	for (size_t i = 0; i < r.tl.n; i++)
		r.pts[i].live_heap = 100 * MIB + (int64_t)i * 5 * MIB + wobble[i] * MIB;
	expect_kind(&r, VERDICT_LEAK);
}

/* A heap that warms up and then plateaus is not a leak. */
static void test_warmup_plateau_is_not_leak(void **state)
{
	static const int64_t live[] = { 10, 40, 55, 60, 60, 61, 60, 61, 60, 61, 60, 61 };
	struct run r;

	quiet_run(&r, 12, "glibc", true);
	for (size_t i = 0; i < r.tl.n; i++) {
		r.pts[i].live_heap = live[i] * MIB;
		r.pts[i].rss_anon = live[i] * MIB + 4 * MIB;
	}
	expect_kind(&r, VERDICT_HEALTHY);
}

/* Growth that a line explains only 8% of (a sawtooth) is not a leak. */
static void test_sawtooth_is_not_leak(void **state)
{
	static const int64_t live[] = { 10, 40, 12, 38, 14, 36, 16, 34, 18, 45 };
	struct run r;

	quiet_run(&r, 10, "glibc", true);
	for (size_t i = 0; i < r.tl.n; i++)
		r.pts[i].live_heap = live[i] * MIB;
	expect_kind(&r, VERDICT_HEALTHY);
}

/* A line fits well (R^2 0.86) but the second half is flat: a slow warm-up. */
static void test_slow_warmup_is_not_leak(void **state)
{
	static const int64_t live[] = { 10, 18, 26, 34, 42, 50, 58, 60, 60, 60, 60, 60 };
	struct run r;

	quiet_run(&r, 12, "glibc", true);
	for (size_t i = 0; i < r.tl.n; i++) {
		r.pts[i].live_heap = live[i] * MIB;
		r.pts[i].rss_anon = live[i] * MIB + 4 * MIB;
	}
	expect_kind(&r, VERDICT_HEALTHY);
}

/* A small heap tripling by 2 MiB: within the sampling noise. */
static void test_tiny_heap_growth_is_not_leak(void **state)
{
	struct run r;

	quiet_run(&r, 9, "glibc", true);
	for (size_t i = 0; i < r.tl.n; i++) {
		r.pts[i].live_heap = 1 * MIB + (int64_t)i * 256 * KIB;
		r.pts[i].rss_anon = 6 * MIB;
	}
	expect_kind(&r, VERDICT_HEALTHY);
}

/* A 200 MiB heap drifting up by 6%: steady, but not a leak. */
static void test_big_heap_drift_is_not_leak(void **state)
{
	struct run r;

	quiet_run(&r, 9, "glibc", true);
	for (size_t i = 0; i < r.tl.n; i++) {
		r.pts[i].live_heap = 200 * MIB + (int64_t)i * 1536 * KIB;
		r.pts[i].rss_anon = 230 * MIB;
	}
	expect_kind(&r, VERDICT_HEALTHY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thrash_jemalloc),
		cmocka_unit_test(test_thrash_jemalloc_oversize),
		cmocka_unit_test(test_thrash_glibc),
		cmocka_unit_test(test_thrash_tcmalloc),
		cmocka_unit_test(test_thrash_unknown_allocator),
		cmocka_unit_test(test_thrash_allocator_from_timeline),
		cmocka_unit_test(test_thrash_without_heap),
		cmocka_unit_test(test_google_tcmalloc_knobs),
		cmocka_unit_test(test_thrash_in_part_of_the_run),
		cmocka_unit_test(test_calm_purges_without_refaults),
		cmocka_unit_test(test_fast_purges_without_refaults),
		cmocka_unit_test(test_refaults_at_a_tiny_purge_rate),
		cmocka_unit_test(test_many_small_purges),
		cmocka_unit_test(test_single_burst_is_not_thrash),
		cmocka_unit_test(test_short_thrash_phase_is_not_sustained),
		cmocka_unit_test(test_one_hot_interval_is_not_sustained),
		cmocka_unit_test(test_few_big_purges_are_not_thrash),
		cmocka_unit_test(test_late_refaults_are_not_thrash),
		cmocka_unit_test(test_leak_names_top_site),
		cmocka_unit_test(test_leak_sites_unsorted),
		cmocka_unit_test(test_leak_with_noise),
		cmocka_unit_test(test_warmup_plateau_is_not_leak),
		cmocka_unit_test(test_sawtooth_is_not_leak),
		cmocka_unit_test(test_slow_warmup_is_not_leak),
		cmocka_unit_test(test_tiny_heap_growth_is_not_leak),
		cmocka_unit_test(test_big_heap_drift_is_not_leak),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
