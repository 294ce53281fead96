/* Turns periodic readings of a process (its page statistics, memory, live
 * heap, probed latency) into the timeline's intervals, and correlates
 * thrash with latency over them. */
#ifndef MW_MONITOR_H
#define MW_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diagnose/timeline.h"
#include "memwatch.h"
#include "proc/memstat.h"

struct reading {
	double t;				/* seconds since the start */
	const struct mw_page_stats *pages;	/* NULL: no kernel side */
	int64_t live_heap;			/* -1: no heap side */
	const uint64_t *latency;		/* probe histogram so far, or NULL */
	struct memstat mem;
	int arenas;				/* -1: not glibc */
	const int64_t *live_by_size;		/* TL_SIZE_CLASSES, or NULL: no heap side */
};

struct monitor {
	struct timeline tl;
	struct mw_page_stats last_pages;	/* counters at the last reading */
	uint64_t last_latency[MW_HIST_BUCKETS];
	double last_t;
	double peak_live;
};

/* What correlates with the probed function's latency, over the intervals. */
struct correlation {
	size_t intervals;		/* with probe calls */
	double r_p99, r_p50;		/* Pearson r against refaults per second */
	double r_p99_faults;		/* ... and against faults per second */
	size_t hot_intervals;		/* refaulting at VERDICT_HOT_BYTES_PER_S or more */
	double p50_us, p99_us;		/* medians over the intervals */
};

void monitor_init(struct monitor *m);
void monitor_free(struct monitor *m);
/* Adds the interval ending at r->t. 0 or -ENOMEM. */
int monitor_add(struct monitor *m, const struct reading *r);
void monitor_correlate(const struct monitor *m, struct correlation *out);
/* Pearson's r; NaN with fewer than 3 points or a constant series. */
double pearson(const double *x, const double *y, size_t n);

#endif
