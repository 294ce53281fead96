/* The diagnosis on synthetic timelines: one per verdict, the knob for each
 * allocator, and the near misses that must not be called thrash, leak,
 * fragmentation or retained. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "verdict.h"

#define MIB (1024 * 1024LL)
#define KIB 1024LL
#define MAX_POINTS 32

struct run {
	struct tl_point pts[MAX_POINTS];
	struct timeline tl;
	struct verdict_input in;
	struct verdict out;
};

/* n one-second intervals of a quiet process: live 50 MiB in 60 MiB of RSS
 * (or no heap samples), no purges, survivors of 64 KiB. */
static void quiet_run(struct run *r, size_t n, const char *allocator, bool have_heap)
{
	memset(r, 0, sizeof(*r));
	for (size_t i = 0; i < n; i++) {
		struct tl_point *p = &r->pts[i];
		p->t = (double)(i + 1);
		p->dt = 1.0;
		p->live_heap = have_heap ? 50 * MIB : -1;
		p->rss_anon = 60 * MIB;
		p->anonymous = p->rss_anon;
		p->utilization = have_heap ? 50.0 / 60.0 : NAN;
		p->arenas = -1;
		p->faults = 100;
		p->fault_bytes = 100 * 4096;
		for (int sc = 0; sc < TL_NSYSCALLS; sc++)
			p->sys_p50_us[sc] = p->sys_p99_us[sc] = NAN;
		p->probe_p50_us = p->probe_p99_us = NAN;
	}
	r->tl.v = r->pts;
	r->tl.n = n;
	r->tl.cap = MAX_POINTS;
	r->tl.allocator = allocator;
	r->tl.have_heap = have_heap;
	r->in.tl = &r->tl;
	r->in.allocator = allocator;
	r->in.have_heap = have_heap;
	r->in.live_by_size[16] = have_heap ? 50.0 * MIB : 0;	/* [64 KiB, 128 KiB) */
	r->in.peak_live_heap = have_heap ? 50.0 * MIB : NAN;
}

/* The notes' jemalloc recipe, sustained: 100 purges of 1 MiB a second, 98%
 * of the bytes refaulted, 96% of refaults within 1 s. */
static void thrashing(struct run *r)
{
	for (size_t i = 0; i < r->tl.n; i++) {
		struct tl_point *p = &r->pts[i];
		p->purges = 100;
		p->purge_bytes = 100 * MIB;
		p->refaults = 25088;
		p->refault_bytes = 98 * MIB;
		p->faults = 25800;
		p->fault_bytes = 25800 * 4096ULL;
		p->calls[TL_MADVISE] = 100;
		p->sys_p99_us[TL_MADVISE] = 40.0 + (double)i;
	}
	r->in.refaults_total = 25088 * r->tl.n;
	r->in.refaults_within_1s = r->in.refaults_total * 96 / 100;
}

static void freed_most(struct run *r);
static void small_survivors(struct run *r);
static void large_survivors(struct run *r);

static void decide(struct run *r)
{
	verdict_decide(&r->in, &r->out);
	assert_true(r->out.nevidence <= VERDICT_MAX_EVIDENCE);
	assert_non_null(memchr(r->out.summary, 0, sizeof(r->out.summary)));
	assert_non_null(memchr(r->out.knob, 0, sizeof(r->out.knob)));
	for (size_t i = 0; i < r->out.nevidence; i++) {
		assert_non_null(memchr(r->out.evidence[i], 0, sizeof(r->out.evidence[i])));
		assert_true(r->out.evidence[i][0] != 0);
	}
	assert_true(r->out.summary[0] != 0);
	assert_true(r->out.knob[0] != 0);
	/* Not cut short by the buffers. */
	assert_true(strlen(r->out.summary) < sizeof(r->out.summary) - 1);
	assert_true(strlen(r->out.knob) < sizeof(r->out.knob) - 1);
}

static bool evidence_has(const struct verdict *v, const char *text)
{
	for (size_t i = 0; i < v->nevidence; i++)
		if (strstr(v->evidence[i], text))
			return true;
	return false;
}

static void dump(const struct verdict *v)
{
	printf("  %s | %s\n", verdict_name(v->kind), v->summary);
	for (size_t i = 0; i < v->nevidence; i++)
		printf("    - %s\n", v->evidence[i]);
	printf("    knob: %s\n", v->knob);
}

static void expect_kind(struct run *r, enum verdict_kind kind)
{
	decide(r);
	if (r->out.kind != kind)
		dump(&r->out);
	assert_string_equal(verdict_name(r->out.kind), verdict_name(kind));
}

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

static const struct site_growth leak_sites[] = {
	{ "cache_insert (cache.c:88)", 1.0 * MIB, 61.0 * MIB },
	{ "parse_request (server.c:120)", 2.0 * MIB, 12.0 * MIB },
	{ "session_new", 5.0 * MIB, 5.0 * MIB },
	{ "shrinking", 9.0 * MIB, 3.0 * MIB },
};

static void leaking(struct run *r)
{
	for (size_t i = 0; i < r->tl.n; i++) {
		r->pts[i].live_heap = 10 * MIB + (int64_t)i * 8 * MIB;
		r->pts[i].rss_anon = r->pts[i].live_heap + 6 * MIB;
	}
	r->in.peak_live_heap = (double)r->pts[r->tl.n - 1].live_heap;
	r->in.sites = leak_sites;
	r->in.nsites = sizeof(leak_sites) / sizeof(leak_sites[0]);
}

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

/* ---- fragmentation and retained pages ---- */

/* Live climbs to 200 MiB, 90% of it is freed, RSS stays at 205 MiB. */
static void freed_most(struct run *r)
{
	for (size_t i = 0; i < r->tl.n; i++) {
		r->pts[i].live_heap = i < 4 ? 200 * MIB : 20 * MIB;
		r->pts[i].rss_anon = 205 * MIB;
	}
	r->in.peak_live_heap = 200.0 * MIB;
}

static void small_survivors(struct run *r)
{
	memset(r->in.live_by_size, 0, sizeof(r->in.live_by_size));
	r->in.live_by_size[6] = 14.0 * MIB;	/* [64 B, 128 B) */
	r->in.live_by_size[9] = 3.0 * MIB;
	r->in.live_by_size[20] = 3.0 * MIB;
}

static void large_survivors(struct run *r)
{
	memset(r->in.live_by_size, 0, sizeof(r->in.live_by_size));
	r->in.live_by_size[20] = 17.0 * MIB;	/* [1 MiB, 2 MiB) */
	r->in.live_by_size[6] = 3.0 * MIB;
}

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

/* Prints one verdict of each kind, for reading the wording. */
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
