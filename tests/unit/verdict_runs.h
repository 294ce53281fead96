/* Synthetic timelines for the unit tests of the diagnosis (test_verdict.c,
 * test_verdict_heap.c): a quiet process, then thrash, a leak, or survivors
 * of a big free added on top; decide() checks what every verdict must hold.
 * Include it after <cmocka.h>. */
#ifndef TEST_VERDICT_RUNS_H
#define TEST_VERDICT_RUNS_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "diagnose/verdict.h"

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
static inline void quiet_run(struct run *r, size_t n, const char *allocator, bool have_heap)
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
static inline void thrashing(struct run *r)
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

static const struct site_growth leak_sites[] = {
	{ "cache_insert (cache.c:88)", 1.0 * MIB, 61.0 * MIB },
	{ "parse_request (server.c:120)", 2.0 * MIB, 12.0 * MIB },
	{ "session_new", 5.0 * MIB, 5.0 * MIB },
	{ "shrinking", 9.0 * MIB, 3.0 * MIB },
};

static inline void leaking(struct run *r)
{
	for (size_t i = 0; i < r->tl.n; i++) {
		r->pts[i].live_heap = 10 * MIB + (int64_t)i * 8 * MIB;
		r->pts[i].rss_anon = r->pts[i].live_heap + 6 * MIB;
	}
	r->in.peak_live_heap = (double)r->pts[r->tl.n - 1].live_heap;
	r->in.sites = leak_sites;
	r->in.nsites = sizeof(leak_sites) / sizeof(leak_sites[0]);
}

/* Live climbs to 200 MiB, 90% of it is freed, RSS stays at 205 MiB. */
static inline void freed_most(struct run *r)
{
	for (size_t i = 0; i < r->tl.n; i++) {
		r->pts[i].live_heap = i < 4 ? 200 * MIB : 20 * MIB;
		r->pts[i].rss_anon = 205 * MIB;
	}
	r->in.peak_live_heap = 200.0 * MIB;
}

static inline void small_survivors(struct run *r)
{
	memset(r->in.live_by_size, 0, sizeof(r->in.live_by_size));
	r->in.live_by_size[6] = 14.0 * MIB;	/* [64 B, 128 B) */
	r->in.live_by_size[9] = 3.0 * MIB;
	r->in.live_by_size[20] = 3.0 * MIB;
}

static inline void large_survivors(struct run *r)
{
	memset(r->in.live_by_size, 0, sizeof(r->in.live_by_size));
	r->in.live_by_size[20] = 17.0 * MIB;	/* [1 MiB, 2 MiB) */
	r->in.live_by_size[6] = 3.0 * MIB;
}

static inline void decide(struct run *r)
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

static inline bool evidence_has(const struct verdict *v, const char *text)
{
	for (size_t i = 0; i < v->nevidence; i++)
		if (strstr(v->evidence[i], text))
			return true;
	return false;
}

static inline void dump(const struct verdict *v)
{
	printf("  %s | %s\n", verdict_name(v->kind), v->summary);
	for (size_t i = 0; i < v->nevidence; i++)
		printf("    - %s\n", v->evidence[i]);
	printf("    knob: %s\n", v->knob);
}

static inline void expect_kind(struct run *r, enum verdict_kind kind)
{
	decide(r);
	if (r->out.kind != kind)
		dump(&r->out);
	assert_string_equal(verdict_name(r->out.kind), verdict_name(kind));
}

#endif
