/* The diagnosis on synthetic timelines (verdict_runs.h): fragmentation and
 * retained pages with their knobs, the healthy runs and gaps that must not
 * be called either, and bad input. */
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

/* ---- fragmentation and retained pages ---- */

static void test_fragmentation_small_survivors(void **state)
{
	struct run r;

	quiet_run(&r, 10, "glibc", true);
	freed_most(&r);
	small_survivors(&r);
	expect_kind(&r, VERDICT_FRAGMENTATION);
	assert_non_null(strstr(r.out.knob, "MALLOC_ARENA_MAX=2"));
	assert_non_null(strstr(r.out.knob, "malloc_trim(0)"));
	assert_non_null(strstr(r.out.knob, "segregate long-lived"));
	assert_true(evidence_has(&r.out, "20.0 MiB / 205.0 MiB = 10%"));
	assert_true(evidence_has(&r.out, "85% of live bytes in objects under 4.0 KiB"));
	assert_true(evidence_has(&r.out, "fell 90% from its 200.0 MiB peak"));
	assert_true(evidence_has(&r.out, "ends at 100% of its 205.0 MiB peak"));
}

static void test_fragmentation_jemalloc_knob(void **state)
{
	struct run r;

	quiet_run(&r, 10, "jemalloc", true);
	freed_most(&r);
	small_survivors(&r);
	expect_kind(&r, VERDICT_FRAGMENTATION);
	assert_non_null(strstr(r.out.knob, "narenas"));
	assert_non_null(strstr(r.out.knob, "dirty_decay_ms"));
}

static void test_fragmentation_tcmalloc_knob(void **state)
{
	struct run r;

	quiet_run(&r, 10, "tcmalloc", true);
	freed_most(&r);
	small_survivors(&r);
	expect_kind(&r, VERDICT_FRAGMENTATION);
	assert_non_null(strstr(r.out.knob, "TCMALLOC_RELEASE_RATE"));
}

/* RSS followed the live heap down: the allocator is returning pages. */
static void test_rss_falling_is_not_fragmentation(void **state)
{
	struct run r;

	quiet_run(&r, 10, "glibc", true);
	freed_most(&r);
	small_survivors(&r);
	for (size_t i = 4; i < r.tl.n; i++)
		r.pts[i].rss_anon = 60 * MIB;
	r.pts[9].purge_bytes = 145 * MIB;
	r.pts[9].purges = 30;
	expect_kind(&r, VERDICT_HEALTHY);
	assert_true(evidence_has(&r.out, "not fragmentation"));
}

static void test_retained_large_survivors(void **state)
{
	struct run r;

	quiet_run(&r, 10, "glibc", true);
	freed_most(&r);
	large_survivors(&r);
	expect_kind(&r, VERDICT_RETAINED);
	assert_non_null(strstr(r.out.knob, "malloc_trim"));
	assert_non_null(strstr(r.out.knob, "M_TRIM_THRESHOLD"));
	assert_true(evidence_has(&r.out, "purged during the run: 0 B"));
}

static void test_retained_jemalloc_knob(void **state)
{
	struct run r;

	quiet_run(&r, 10, "jemalloc", true);
	freed_most(&r);
	large_survivors(&r);
	expect_kind(&r, VERDICT_RETAINED);
	assert_non_null(strstr(r.out.knob, "dirty_decay_ms"));
	assert_non_null(strstr(r.out.knob, "background_thread:true"));
}

static void test_retained_tcmalloc_knob(void **state)
{
	struct run r;

	quiet_run(&r, 10, "tcmalloc", true);
	freed_most(&r);
	large_survivors(&r);
	expect_kind(&r, VERDICT_RETAINED);
	assert_non_null(strstr(r.out.knob, "ReleaseFreeMemory"));
}

/* The gap was there before the run started: live flat, RSS flat. */
static void test_retained_flat(void **state)
{
	struct run r;

	quiet_run(&r, 10, NULL, true);
	for (size_t i = 0; i < r.tl.n; i++)
		r.pts[i].rss_anon = 300 * MIB;
	expect_kind(&r, VERDICT_RETAINED);
}

/* An allocator that purges a good share of the gap is working it down. */
static void test_purging_gap_is_not_retained(void **state)
{
	struct run r;

	quiet_run(&r, 10, "glibc", true);
	freed_most(&r);
	large_survivors(&r);
	r.pts[5].purges = 4;
	r.pts[5].purge_bytes = 120 * MIB;
	expect_kind(&r, VERDICT_HEALTHY);
	assert_true(evidence_has(&r.out, "not retained pages"));
}

/* MADV_FREE'd pages stay in RSS as LazyFree: not retained. */
static void test_lazyfree_gap_is_healthy(void **state)
{
	struct run r;

	quiet_run(&r, 10, "jemalloc", true);
	freed_most(&r);
	large_survivors(&r);
	for (size_t i = 4; i < r.tl.n; i++)
		r.pts[i].lazyfree = 180 * MIB;
	expect_kind(&r, VERDICT_HEALTHY);
}

/* A small process: RSS is 4x live but the gap is a few MiB. */
static void test_small_gap_is_healthy(void **state)
{
	struct run r;

	quiet_run(&r, 10, "glibc", true);
	for (size_t i = 0; i < r.tl.n; i++) {
		r.pts[i].live_heap = 1 * MIB;
		r.pts[i].rss_anon = 4 * MIB;
	}
	expect_kind(&r, VERDICT_HEALTHY);
}

/* ---- healthy, unknown, junk ---- */

static void test_healthy(void **state)
{
	struct run r;

	quiet_run(&r, 10, "glibc", true);
	expect_kind(&r, VERDICT_HEALTHY);
	assert_string_equal(r.out.knob, "none");
	assert_true(isnan(r.out.refault_fraction));
	assert_true(evidence_has(&r.out, "50.0 MiB / 60.0 MiB = 83%"));
}

static void test_healthy_without_heap(void **state)
{
	struct run r;

	quiet_run(&r, 10, "glibc", false);
	expect_kind(&r, VERDICT_HEALTHY);
	assert_non_null(strstr(r.out.summary, "no heap samples"));
}

static void test_unknown_two_intervals(void **state)
{
	struct run r;

	quiet_run(&r, 2, "jemalloc", true);
	thrashing(&r);
	expect_kind(&r, VERDICT_UNKNOWN);
	assert_non_null(strstr(r.out.summary, "2 intervals"));

	quiet_run(&r, 0, NULL, false);
	expect_kind(&r, VERDICT_UNKNOWN);

	r.in.tl = NULL;
	expect_kind(&r, VERDICT_UNKNOWN);
}

static void test_junk_values(void **state)
{
	struct run r;

	quiet_run(&r, 8, "jemalloc", true);
	thrashing(&r);
	for (size_t i = 0; i < r.tl.n; i++) {
		r.pts[i].dt = i % 2 ? NAN : -1;
		r.pts[i].t = i % 3 ? NAN : (double)i;
		r.pts[i].live_heap = i % 2 ? -1 : 10 * MIB;
		r.pts[i].rss_anon = -1;
		r.pts[i].lazyfree = -1;
		r.pts[i].utilization = NAN;
	}
	for (int b = 0; b < VERDICT_SIZE_BUCKETS; b++)
		r.in.live_by_size[b] = b % 2 ? NAN : -1;
	r.in.peak_live_heap = NAN;
	decide(&r);	/* no usable dt: no rate, so not thrash */
	assert_int_not_equal(r.out.kind, VERDICT_THRASH);

	quiet_run(&r, 6, "glibc", true);
	for (size_t i = 0; i < r.tl.n; i++)
		r.pts[i].live_heap = -1;
	r.in.sites = leak_sites;
	r.in.nsites = 4;
	expect_kind(&r, VERDICT_HEALTHY);
	assert_true(evidence_has(&r.out, "only 0 intervals measured the live heap"));

	quiet_run(&r, 6, "glibc", true);
	freed_most(&r);
	for (int b = 0; b < VERDICT_SIZE_BUCKETS; b++)
		r.in.live_by_size[b] = NAN;
	expect_kind(&r, VERDICT_RETAINED);	/* sizes unknown: not blamed on small objects */
	assert_true(evidence_has(&r.out, "sizes: not measured"));
}

/* A leak from an empty heap, without per-site data. */
static void test_leak_from_nothing_without_sites(void **state)
{
	struct run r;

	quiet_run(&r, 10, "glibc", true);
	leaking(&r);
	for (size_t i = 0; i < r.tl.n; i++)
		r.pts[i].live_heap = (int64_t)i * 8 * MIB;
	r.in.sites = NULL;
	r.in.nsites = 3;
	expect_kind(&r, VERDICT_LEAK);
	assert_true(evidence_has(&r.out, "from nothing"));
	assert_true(evidence_has(&r.out, "no heap site grew"));
	assert_null(strstr(r.out.summary, "top site"));
}

static void test_long_site_name(void **state)
{
	static char name[600];
	struct site_growth site[1];
	struct run r;

	memset(name, 'x', sizeof(name) - 1);
	site[0] = (struct site_growth){ name, 0, 64.0 * MIB };
	quiet_run(&r, 10, "glibc", true);
	leaking(&r);
	r.in.sites = site;
	r.in.nsites = 1;
	expect_kind(&r, VERDICT_LEAK);
}

static void test_names(void **state)
{
	assert_string_equal(verdict_name(VERDICT_HEALTHY), "healthy");
	assert_string_equal(verdict_name(VERDICT_LEAK), "leak");
	assert_string_equal(verdict_name(VERDICT_FRAGMENTATION), "fragmentation");
	assert_string_equal(verdict_name(VERDICT_RETAINED), "retained");
	assert_string_equal(verdict_name(VERDICT_THRASH), "thrash");
	assert_string_equal(verdict_name(VERDICT_UNKNOWN), "unknown");
	assert_string_equal(verdict_name((enum verdict_kind)99), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fragmentation_small_survivors),
		cmocka_unit_test(test_fragmentation_jemalloc_knob),
		cmocka_unit_test(test_fragmentation_tcmalloc_knob),
		cmocka_unit_test(test_rss_falling_is_not_fragmentation),
		cmocka_unit_test(test_retained_large_survivors),
		cmocka_unit_test(test_retained_jemalloc_knob),
		cmocka_unit_test(test_retained_tcmalloc_knob),
		cmocka_unit_test(test_retained_flat),
		cmocka_unit_test(test_purging_gap_is_not_retained),
		cmocka_unit_test(test_lazyfree_gap_is_healthy),
		cmocka_unit_test(test_small_gap_is_healthy),
		cmocka_unit_test(test_healthy),
		cmocka_unit_test(test_healthy_without_heap),
		cmocka_unit_test(test_unknown_two_intervals),
		cmocka_unit_test(test_junk_values),
		cmocka_unit_test(test_leak_from_nothing_without_sites),
		cmocka_unit_test(test_long_site_name),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
