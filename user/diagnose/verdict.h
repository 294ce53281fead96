/* The diagnosis: from the timeline and the heap profile, is this a leak,
 * fragmentation, retained pages, madvise thrash, or healthy, with the
 * evidence and the allocator knob that addresses it. Follows the triage of
 * the allocator operations playbook: allocated vs RSS first, then purge and
 * refault rates. */
#ifndef MW_VERDICT_H
#define MW_VERDICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diagnose/timeline.h"
#include "profile/heapprof.h"

enum verdict_kind {
	VERDICT_HEALTHY,
	VERDICT_LEAK,
	VERDICT_FRAGMENTATION,
	VERDICT_RETAINED,
	VERDICT_THRASH,
	VERDICT_UNKNOWN,	/* too little data (e.g. a run of under 3 intervals) */
};

/* Live sampled blocks by size: bucket i holds sizes in [2^i, 2^(i+1)). */
#define VERDICT_SIZE_BUCKETS 48

/* An interval's purge (or refault) rate counts as thrash at 4 MiB/s: see
 * verdict.c. Sustained: in at least 2 intervals and a quarter of them. */
#define VERDICT_HOT_BYTES_PER_S (4.0 * 1024 * 1024)
bool verdict_sustained(size_t hot_intervals, size_t intervals);

struct verdict_input {
	const struct timeline *tl;
	const char *allocator;		/* "glibc", "jemalloc", "tcmalloc", ...; NULL: unknown */
	bool have_heap;			/* heap samples exist (not --pages-only) */
	const struct site_growth *sites;	/* sorted by last_bytes - first_bytes, descending */
	size_t nsites;
	double live_by_size[VERDICT_SIZE_BUCKETS];	/* estimated live bytes per size bucket */
	/* Purge-to-refault delays: refaults within 1 s of their purge, and all. */
	uint64_t refaults_within_1s, refaults_total;
	double peak_live_heap;		/* highest live_heap seen */
};

/* A byte count for people: "1.2 MiB", "512 B", "?" when not finite. */
struct human {
	char s[32];
};
struct human bytes_str(double bytes);

#define VERDICT_MAX_EVIDENCE 8

struct verdict {
	enum verdict_kind kind;
	char summary[160];		/* one line, e.g. "madvise thrash: ..." */
	char evidence[VERDICT_MAX_EVIDENCE][200];
	size_t nevidence;
	char knob[240];			/* what to change, for this allocator */
	double refault_fraction;	/* refaulted / purged bytes, NaN if nothing purged */
};

void verdict_decide(const struct verdict_input *in, struct verdict *out);
const char *verdict_name(enum verdict_kind kind);

#endif
