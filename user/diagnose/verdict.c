/* The diagnosis, in the playbook's order: madvise thrash first (the kernel
 * side shows it even without heap samples), then a leak (the live heap
 * itself climbs), then, when RSS sits far above the live heap, fragmentation
 * (small survivors pin their pages) or retained pages (free pages the
 * allocator has not given back). Pure: reads the input, writes *out. */
#include "diagnose/verdict.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "diagnose/knob.h"
#include "util/text.h"

#define KIB 1024.0
#define MIB (1024.0 * 1024.0)

/* Fewer intervals show neither a trend nor a rate sustained over time. */
#define MIN_INTERVALS 3

/* ---- thresholds: madvise thrash ---- */

/* An interval is "hot" when its purge rate reaches both floors. 5 purges a
 * second is a cycle (free, purge, touch again), not an occasional trim or a
 * cleanup. 4 MiB/s is 1024 pages a second: when they come back, each costs
 * a page fault and a page zeroing, together some 0.1-0.5% of a core plus
 * the syscalls; below that the waste is not worth a knob change. The thrash
 * recipes in notes/allocators.md run near 100 purges and 100 MiB a second.
 * Busy processes on default decay settings can purge this fast too: the
 * refault criteria below are what tell thrash from decay doing its job. */
#define THRASH_MIN_PURGES_PER_S 5.0
#define THRASH_MIN_PURGE_BYTES_PER_S VERDICT_HOT_BYTES_PER_S
/* Sustained: at least 2 hot intervals and a quarter of the run, so that one
 * burst (a cleanup at exit, a cache flush) is not called thrash. */
#define THRASH_MIN_HOT_INTERVALS 2
#define THRASH_MIN_HOT_SHARE 0.25
/* Thrash means the purged pages were needed again: most purged bytes
 * refault, and most refaults come within 1 s of their purge (a longer idle
 * time is what decay is for). */
#define THRASH_MIN_REFAULT_FRACTION 0.5
#define THRASH_MIN_SOON_SHARE 0.5

/* ---- thresholds: leak ---- */

/* A straight line explains at least 80% of the live heap's variance: steady
 * growth, not noise around a flat heap. */
#define LEAK_MIN_R2 0.8
/* Growth must beat the sampling noise: 4 MiB is 8 samples at the default
 * 512 KiB sampling interval, about 3 standard deviations of the estimate.
 * And 10% of the starting heap, so a big heap's drift is not a leak. */
#define LEAK_MIN_GROWTH_BYTES (4.0 * MIB)
#define LEAK_MIN_GROWTH_SHARE 0.10
/* Still climbing in the second half at a quarter of the overall slope: a
 * heap that warms up and then plateaus is not a leak. */
#define LEAK_MIN_LATE_SLOPE_SHARE 0.25
#define LEAK_MAX_SITES 5

/* ---- thresholds: RSS far above the live heap ---- */

/* The playbook: a persistent live/RSS of 0.5 means half of RSS is
 * fragmentation and unpurged pages. */
#define GAP_MAX_UTILIZATION 0.5
/* Smaller gaps are what stacks, per-thread caches and allocator metadata
 * hold in any process. */
#define GAP_MIN_BYTES (8.0 * MIB)
/* Buckets 0-11 hold sizes under 4 KiB: objects that share a page, so one
 * survivor keeps the whole page resident. */
#define SMALL_SIZE_BUCKETS 12
#define SMALL_OBJECT_BYTES 4096.0
/* Most surviving bytes are in small objects. */
#define FRAG_MIN_SMALL_SHARE 0.5
/* RSS did not follow the live heap down: it ends within 25% of its peak.
 * If it fell further the allocator is returning pages and the gap may still
 * be decaying. */
#define FRAG_MAX_RSS_FALL 0.25
/* Retained: the allocator purged less than a quarter of the gap during the
 * run; more means it is working the gap down on its own. */
#define RETAINED_MAX_PURGE_SHARE 0.25

/* The kernel side summed over the run. */
struct kernel_totals {
	size_t intervals;		/* with a usable length */
	double seconds;
	uint64_t faults, fault_bytes, refaults, refault_bytes, purges, purge_bytes;
	uint64_t calls[TL_NSYSCALLS];
	double worst_p99_us[TL_NSYSCALLS];	/* NaN if never measured */
	/* Intervals whose purge rate reached the thrash floors. */
	size_t hot_intervals;
	double hot_seconds;
	uint64_t hot_purges, hot_purge_bytes;
};

/* The live heap over the run, from the intervals that measured it. */
struct heap_trend {
	size_t points;
	double first_t, last_t, first_live, last_live, peak_live;
	double slope, r2, late_slope;	/* bytes per second */
};

/* Live heap vs RSS at the last interval that measured both. RSS here is
 * rss_anon less LazyFree: MADV_FREE'd pages stay in RSS until the kernel
 * needs them, and counting them would mistake lazy purging for retention. */
struct rss_gap {
	bool valid;
	double live, rss, lazyfree, gap, utilization;
	double rss_peak, rss_fall;	/* rss_fall: share of the peak given back */
	double live_peak, live_fall;
};


static const char *const syscall_names[TL_NSYSCALLS] = {
	[TL_MADVISE] = "madvise", [TL_MMAP] = "mmap", [TL_MUNMAP] = "munmap",
	[TL_BRK] = "brk", [TL_MREMAP] = "mremap",
};

const char *verdict_name(enum verdict_kind kind)
{
	switch (kind) {
	case VERDICT_HEALTHY: return "healthy";
	case VERDICT_LEAK: return "leak";
	case VERDICT_FRAGMENTATION: return "fragmentation";
	case VERDICT_RETAINED: return "retained";
	case VERDICT_THRASH: return "thrash";
	case VERDICT_UNKNOWN: return "unknown";
	}
	return "unknown";
}

/* ---- formatting ---- */

struct human bytes_str(double bytes)
{
	struct human h;
	double a = fabs(bytes);

	if (!isfinite(bytes))
		snprintf(h.s, sizeof(h.s), "?");
	else if (a >= 1024.0 * MIB)
		snprintf(h.s, sizeof(h.s), "%.2f GiB", bytes / (1024.0 * MIB));
	else if (a >= MIB)
		snprintf(h.s, sizeof(h.s), "%.1f MiB", bytes / MIB);
	else if (a >= KIB)
		snprintf(h.s, sizeof(h.s), "%.1f KiB", bytes / KIB);
	else
		snprintf(h.s, sizeof(h.s), "%.0f B", bytes);
	return h;
}

static struct human pct_str(double fraction)
{
	struct human h;

	if (isfinite(fraction))
		snprintf(h.s, sizeof(h.s), "%.0f%%", fraction * 100.0);
	else
		snprintf(h.s, sizeof(h.s), "?%%");
	return h;
}

__attribute__((format(printf, 2, 3)))
static void add_evidence(struct verdict *out, const char *fmt, ...)
{
	va_list ap;

	if (out->nevidence >= VERDICT_MAX_EVIDENCE)
		return;
	va_start(ap, fmt);
	vsnprintf(out->evidence[out->nevidence++], sizeof(out->evidence[0]), fmt, ap);
	va_end(ap);
}

static double ratio(double num, double den)
{
	return den > 0 && isfinite(num) ? num / den : NAN;
}

/* ---- the kernel side ---- */

static bool usable_dt(const struct tl_point *p)
{
	return isfinite(p->dt) && p->dt > 0;
}

static bool is_hot(const struct tl_point *p)
{
	return usable_dt(p) && p->purges / p->dt >= THRASH_MIN_PURGES_PER_S &&
	       p->purge_bytes / p->dt >= THRASH_MIN_PURGE_BYTES_PER_S;
}

static void add_syscalls(struct kernel_totals *k, const struct tl_point *p)
{
	for (int sc = 0; sc < TL_NSYSCALLS; sc++) {
		k->calls[sc] += p->calls[sc];
		double p99 = p->sys_p99_us[sc];
		if (isfinite(p99) && (!isfinite(k->worst_p99_us[sc]) || p99 > k->worst_p99_us[sc]))
			k->worst_p99_us[sc] = p99;
	}
}

static void sum_kernel(const struct timeline *tl, struct kernel_totals *k)
{
	memset(k, 0, sizeof(*k));
	for (int sc = 0; sc < TL_NSYSCALLS; sc++)
		k->worst_p99_us[sc] = NAN;
	for (size_t i = 0; i < tl->n; i++) {
		const struct tl_point *p = &tl->v[i];
		k->faults += p->faults;
		k->fault_bytes += p->fault_bytes;
		k->refaults += p->refaults;
		k->refault_bytes += p->refault_bytes;
		k->purges += p->purges;
		k->purge_bytes += p->purge_bytes;
		add_syscalls(k, p);
		if (!usable_dt(p))
			continue;
		k->intervals++;
		k->seconds += p->dt;
		if (is_hot(p)) {
			k->hot_intervals++;
			k->hot_seconds += p->dt;
			k->hot_purges += p->purges;
			k->hot_purge_bytes += p->purge_bytes;
		}
	}
}

/* ---- thrash ---- */

bool verdict_sustained(size_t hot_intervals, size_t intervals)
{
	return hot_intervals >= THRASH_MIN_HOT_INTERVALS && hot_intervals >= THRASH_MIN_HOT_SHARE * intervals;
}

static bool purging_sustained(const struct kernel_totals *k)
{
	return verdict_sustained(k->hot_intervals, k->intervals);
}

/* Refaults within 1 s over all refaults; NaN when the delays were not
 * measured (then the refault fraction decides alone). */
static double soon_share(const struct verdict_input *in)
{
	if (!in->refaults_total)
		return NAN;
	return (double)in->refaults_within_1s / (double)in->refaults_total;
}

static bool is_thrash(const struct verdict_input *in, const struct kernel_totals *k,
		      double refault_fraction)
{
	double soon = soon_share(in);

	return purging_sustained(k) && refault_fraction > THRASH_MIN_REFAULT_FRACTION &&
	       (isnan(soon) || soon > THRASH_MIN_SOON_SHARE);
}

static double mean_purge_bytes(const struct kernel_totals *k)
{
	return ratio((double)k->purge_bytes, (double)k->purges);
}

static void syscall_evidence(struct verdict *out, const struct kernel_totals *k)
{
	static const int shown[] = { TL_MADVISE, TL_MUNMAP, TL_BRK, TL_MMAP };
	char line[sizeof(out->evidence[0])] = "syscalls:";
	size_t len = strlen(line);
	bool any = false;

	for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]) && len < sizeof(line); i++) {
		int sc = shown[i];
		if (!k->calls[sc])
			continue;
		len += snprintf(line + len, sizeof(line) - len, "%s %s %.1f/s", any ? "," : "",
				syscall_names[sc], ratio((double)k->calls[sc], k->seconds));
		if (len < sizeof(line) && isfinite(k->worst_p99_us[sc]))
			len += snprintf(line + len, sizeof(line) - len, " (p99 up to %.1f us)",
					k->worst_p99_us[sc]);
		any = true;
	}
	if (any)
		add_evidence(out, "%s", line);
}

static void report_thrash(const struct verdict_input *in, const struct kernel_totals *k,
			  enum alloc_family family, struct verdict *out)
{
	double hot_rate = ratio((double)k->hot_purges, k->hot_seconds);
	double hot_bytes = ratio((double)k->hot_purge_bytes, k->hot_seconds);
	double soon = soon_share(in);

	out->kind = VERDICT_THRASH;
	put_text(out->summary, sizeof(out->summary),
		 "madvise thrash: %.1f purges/s (%s/s), %s of purged bytes refaulted%s%s%s", hot_rate,
		 bytes_str(hot_bytes).s, pct_str(out->refault_fraction).s, isnan(soon) ? "" : ", ",
		 isnan(soon) ? "" : pct_str(soon).s, isnan(soon) ? "" : " within 1 s");
	add_evidence(out, "purges: %" PRIu64 " (%s) in %.1f s = %.1f/s, %s/s; %zu of %zu intervals above "
		     "%.0f/s and %s/s", k->purges, bytes_str((double)k->purge_bytes).s, k->seconds,
		     ratio((double)k->purges, k->seconds), bytes_str(ratio((double)k->purge_bytes, k->seconds)).s,
		     k->hot_intervals, k->intervals, THRASH_MIN_PURGES_PER_S,
		     bytes_str(THRASH_MIN_PURGE_BYTES_PER_S).s);
	add_evidence(out, "refault fraction: %s of %s purged came back (%s)",
		     bytes_str((double)k->refault_bytes).s, bytes_str((double)k->purge_bytes).s,
		     pct_str(out->refault_fraction).s);
	if (isnan(soon))
		add_evidence(out, "refault delays: not measured");
	else
		add_evidence(out, "refaults within 1 s of their purge: %s (%" PRIu64 " of %" PRIu64 ")",
			     pct_str(soon).s, in->refaults_within_1s, in->refaults_total);
	add_evidence(out, "page faults: %" PRIu64 " (%s), %" PRIu64 " of them (%s) on purged pages",
		     k->faults, bytes_str((double)k->fault_bytes).s, k->refaults,
		     pct_str(ratio((double)k->refaults, (double)k->faults)).s);
	syscall_evidence(out, k);
	if (family == FAMILY_JEMALLOC && mean_purge_bytes(k) >= KNOB_JEMALLOC_OVERSIZE_BYTES)
		add_evidence(out, "mean purge %s: jemalloc's oversize arena (blocks of %s and up) purges at once",
			     bytes_str(mean_purge_bytes(k)).s, bytes_str(KNOB_JEMALLOC_OVERSIZE_BYTES).s);
	knob_thrash(out->knob, sizeof(out->knob), family, mean_purge_bytes(k));
}

/* ---- the live heap's trend ---- */

static bool has_live(const struct tl_point *p)
{
	return p->live_heap >= 0 && isfinite(p->t);
}

/* Whether p is among the measured points from the skip-th on; *seen counts
 * the measured points so far. */
static bool in_fit(const struct tl_point *p, size_t skip, size_t *seen)
{
	return has_live(p) && (*seen)++ >= skip;
}

/* Least squares of live_heap over t, on the measured points from the
 * skip-th on; centred, so that a large heap's small changes keep their
 * precision. r2 is 0 when the heap (or time) does not vary. */
static void fit_live(const struct timeline *tl, size_t skip, double *slope, double *r2)
{
	double n = 0, mx = 0, my = 0, vx = 0, vy = 0, cxy = 0;
	size_t seen = 0;

	for (size_t i = 0; i < tl->n; i++)
		if (in_fit(&tl->v[i], skip, &seen))
			n++, mx += tl->v[i].t, my += (double)tl->v[i].live_heap;
	*slope = *r2 = 0;
	if (n < 2)
		return;
	mx /= n, my /= n, seen = 0;
	for (size_t i = 0; i < tl->n; i++) {
		if (!in_fit(&tl->v[i], skip, &seen))
			continue;
		double dx = tl->v[i].t - mx, dy = (double)tl->v[i].live_heap - my;
		vx += dx * dx, vy += dy * dy, cxy += dx * dy;
	}
	if (vx > 0)
		*slope = cxy / vx;
	if (vx > 0 && vy > 0)
		*r2 = cxy * cxy / (vx * vy);
}

static bool measure_heap(const struct timeline *tl, double peak_hint, struct heap_trend *h)
{
	memset(h, 0, sizeof(*h));
	for (size_t i = 0; i < tl->n; i++) {
		const struct tl_point *p = &tl->v[i];
		if (!has_live(p))
			continue;
		if (!h->points++) {
			h->first_t = p->t;
			h->first_live = (double)p->live_heap;
		}
		h->last_t = p->t;
		h->last_live = (double)p->live_heap;
		h->peak_live = fmax(h->peak_live, (double)p->live_heap);
	}
	if (isfinite(peak_hint))
		h->peak_live = fmax(h->peak_live, peak_hint);
	if (h->points < MIN_INTERVALS)
		return false;
	double late_r2;
	fit_live(tl, 0, &h->slope, &h->r2);
	fit_live(tl, h->points / 2, &h->late_slope, &late_r2);
	return true;
}

static bool is_leak(const struct heap_trend *h)
{
	double growth = h->last_live - h->first_live;

	return h->slope > 0 && h->r2 >= LEAK_MIN_R2 && growth >= LEAK_MIN_GROWTH_BYTES &&
	       growth >= LEAK_MIN_GROWTH_SHARE * h->first_live &&
	       h->late_slope >= LEAK_MIN_LATE_SLOPE_SHARE * h->slope;
}

static double site_growth(const struct site_growth *s)
{
	double g = s->last_bytes - s->first_bytes;
	return isfinite(g) ? g : -INFINITY;
}

/* The index of the fastest-growing site not yet in taken[0..ntaken), or -1.
 * Does not trust the input's order. */
static long next_site(const struct verdict_input *in, const size_t *taken, size_t ntaken)
{
	long best = -1;

	for (size_t i = 0; in->sites && i < in->nsites; i++) {
		bool used = false;
		for (size_t j = 0; j < ntaken; j++)
			used |= taken[j] == i;
		if (used || !(site_growth(&in->sites[i]) > 0))
			continue;
		if (best < 0 || site_growth(&in->sites[i]) > site_growth(&in->sites[best]))
			best = (long)i;
	}
	return best;
}

static const char *site_name(const struct site_growth *s)
{
	return s->name && *s->name ? s->name : "(unknown site)";
}

static void site_evidence(const struct verdict_input *in, struct verdict *out)
{
	size_t taken[LEAK_MAX_SITES];
	size_t ntaken = 0;
	long i;

	while (ntaken < LEAK_MAX_SITES && (i = next_site(in, taken, ntaken)) >= 0) {
		const struct site_growth *s = &in->sites[i];
		taken[ntaken++] = (size_t)i;
		add_evidence(out, "site %s: +%s (%s to %s)", site_name(s), bytes_str(site_growth(s)).s,
			     bytes_str(s->first_bytes).s, bytes_str(s->last_bytes).s);
	}
	if (!ntaken)
		add_evidence(out, "no heap site grew (no per-site data, or growth spread thinner than the sampling)");
}

static void report_leak(const struct verdict_input *in, const struct heap_trend *h,
			const struct rss_gap *g, struct verdict *out)
{
	double growth = h->last_live - h->first_live;
	long top = next_site(in, NULL, 0);

	out->kind = VERDICT_LEAK;
	put_text(out->summary, sizeof(out->summary), "leak: live heap grew %s to %s in %.1f s (+%s/s)%s%.60s",
		 bytes_str(h->first_live).s, bytes_str(h->last_live).s, h->last_t - h->first_t,
		 bytes_str(h->slope).s, top >= 0 ? "; top site " : "",
		 top >= 0 ? site_name(&in->sites[top]) : "");
	add_evidence(out, "live heap: %s to %s over %.1f s (+%s, %s%s)", bytes_str(h->first_live).s,
		     bytes_str(h->last_live).s, h->last_t - h->first_t, bytes_str(growth).s,
		     h->first_live > 0 ? "+" : "", h->first_live > 0 ?
		     pct_str(ratio(growth, h->first_live)).s : "from nothing");
	add_evidence(out, "linear fit: +%s/s, R^2 %.2f; second half still +%s/s",
		     bytes_str(h->slope).s, h->r2, bytes_str(h->late_slope).s);
	if (g->valid)
		add_evidence(out, "RSS anon at the last reading: %s with %s live (live/RSS %s)",
			     bytes_str(g->rss).s, bytes_str(g->live).s, pct_str(g->utilization).s);
	site_evidence(in, out);
	put_text(out->knob, sizeof(out->knob), "none: no allocator setting fixes a leak; find the "
		 "missing free at the growing sites above");
}

/* ---- live heap vs RSS ---- */

static double rss_of(const struct tl_point *p)
{
	if (p->rss_anon < 0)
		return NAN;
	double lazy = p->lazyfree > 0 ? (double)p->lazyfree : 0;
	return fmax((double)p->rss_anon - lazy, 0);
}

static void measure_gap(const struct timeline *tl, const struct heap_trend *h, struct rss_gap *g)
{
	memset(g, 0, sizeof(*g));
	for (size_t i = 0; i < tl->n; i++) {
		const struct tl_point *p = &tl->v[i];
		double rss = rss_of(p);
		if (isnan(rss))
			continue;
		g->rss_peak = fmax(g->rss_peak, rss);
		if (p->live_heap < 0)
			continue;
		g->valid = true;
		g->live = (double)p->live_heap;
		g->rss = rss;
		g->lazyfree = p->lazyfree > 0 ? (double)p->lazyfree : 0;
	}
	if (!g->valid)
		return;
	g->gap = g->rss - g->live;
	g->utilization = ratio(g->live, g->rss);
	g->rss_fall = ratio(g->rss_peak - g->rss, g->rss_peak);
	g->live_peak = fmax(h->peak_live, g->live);
	g->live_fall = ratio(g->live_peak - g->live, g->live_peak);
}

static bool has_gap(const struct rss_gap *g)
{
	return g->valid && g->gap >= GAP_MIN_BYTES && g->utilization < GAP_MAX_UTILIZATION;
}

static bool rss_held(const struct rss_gap *g)
{
	return !(g->rss_fall > FRAG_MAX_RSS_FALL);
}

/* Share of the live bytes in objects under a page; NaN without sizes. */
static double small_share(const struct verdict_input *in)
{
	double small = 0, total = 0;

	for (int b = 0; b < VERDICT_SIZE_BUCKETS; b++) {
		double v = in->live_by_size[b];
		if (!isfinite(v) || v <= 0)
			continue;
		total += v;
		if (b < SMALL_SIZE_BUCKETS)
			small += v;
	}
	return ratio(small, total);
}

static int biggest_bucket(const struct verdict_input *in)
{
	int best = -1;

	for (int b = 0; b < VERDICT_SIZE_BUCKETS; b++) {
		double v = in->live_by_size[b];
		if (isfinite(v) && v > 0 && (best < 0 || v > in->live_by_size[best]))
			best = b;
	}
	return best;
}

static void gap_evidence(const struct rss_gap *g, struct verdict *out)
{
	add_evidence(out, "live/RSS anon at the end: %s / %s = %s (%s not in live objects)",
		     bytes_str(g->live).s, bytes_str(g->rss).s, pct_str(g->utilization).s,
		     bytes_str(g->gap).s);
	if (g->lazyfree > 0)
		add_evidence(out, "LazyFree %s left out of RSS (MADV_FREE'd, the kernel reclaims it on demand)",
			     bytes_str(g->lazyfree).s);
}

static void trend_evidence(const struct rss_gap *g, struct verdict *out)
{
	add_evidence(out, "live heap fell %s from its %s peak to %s; RSS anon ends at %s of its %s peak",
		     pct_str(g->live_fall).s, bytes_str(g->live_peak).s, bytes_str(g->live).s,
		     pct_str(1 - g->rss_fall).s, bytes_str(g->rss_peak).s);
}

static void size_evidence(const struct verdict_input *in, struct verdict *out)
{
	double small = small_share(in);
	int b = biggest_bucket(in);

	if (b < 0) {
		add_evidence(out, "survivors' sizes: not measured");
		return;
	}
	add_evidence(out, "survivors: %s of live bytes in objects under %s; most in [%s, %s): %s",
		     pct_str(small).s, bytes_str(SMALL_OBJECT_BYTES).s, bytes_str(ldexp(1, b)).s,
		     bytes_str(ldexp(1, b + 1)).s, bytes_str(in->live_by_size[b]).s);
}

static void purge_evidence(const struct kernel_totals *k, const struct rss_gap *g,
			   struct verdict *out)
{
	add_evidence(out, "purged during the run: %s in %" PRIu64 " purges (%s of the gap)",
		     bytes_str((double)k->purge_bytes).s, k->purges,
		     pct_str(ratio((double)k->purge_bytes, g->gap)).s);
}

static void report_fragmentation(const struct verdict_input *in, const struct kernel_totals *k,
				 const struct rss_gap *g, enum alloc_family family,
				 struct verdict *out)
{
	out->kind = VERDICT_FRAGMENTATION;
	put_text(out->summary, sizeof(out->summary), "fragmentation: %s live in %s of RSS anon (%s used), "
		 "%s of live bytes in objects under %s", bytes_str(g->live).s, bytes_str(g->rss).s,
		 pct_str(g->utilization).s, pct_str(small_share(in)).s, bytes_str(SMALL_OBJECT_BYTES).s);
	gap_evidence(g, out);
	trend_evidence(g, out);
	size_evidence(in, out);
	purge_evidence(k, g, out);
	put_text(out->knob, sizeof(out->knob), "%s; segregate long-lived objects from short-lived ones "
		 "(separate pool or arena) so survivors do not pin pages", knob_fragmentation(family));
}

static void report_retained(const struct verdict_input *in, const struct kernel_totals *k,
			    const struct rss_gap *g, enum alloc_family family, struct verdict *out)
{
	out->kind = VERDICT_RETAINED;
	put_text(out->summary, sizeof(out->summary), "retained pages: %s of RSS anon holds %s live (%s "
		 "used); only %s purged during the run", bytes_str(g->rss).s, bytes_str(g->live).s,
		 pct_str(g->utilization).s, bytes_str((double)k->purge_bytes).s);
	gap_evidence(g, out);
	purge_evidence(k, g, out);
	size_evidence(in, out);
	trend_evidence(g, out);
	put_text(out->knob, sizeof(out->knob), "%s", knob_retained(family));
}

/* ---- healthy and unknown ---- */

static void kernel_evidence(const struct kernel_totals *k, double refault_fraction,
			    struct verdict *out)
{
	if (!(k->seconds > 0)) {
		add_evidence(out, "purges: %" PRIu64 " (%s); interval lengths not measured", k->purges,
			     bytes_str((double)k->purge_bytes).s);
		return;
	}
	if (!purging_sustained(k)) {
		/* A share of a trickle says nothing: the volumes say enough. */
		add_evidence(out, "purges: %.1f/s, %s/s over %.1f s, under %.0f/s and %s/s in %zu of %zu "
			     "intervals; %s of the %s purged came back",
			     ratio((double)k->purges, k->seconds),
			     bytes_str(ratio((double)k->purge_bytes, k->seconds)).s, k->seconds,
			     THRASH_MIN_PURGES_PER_S, bytes_str(THRASH_MIN_PURGE_BYTES_PER_S).s,
			     k->intervals - k->hot_intervals, k->intervals, bytes_str((double)k->refault_bytes).s,
			     bytes_str((double)k->purge_bytes).s);
		return;
	}
	add_evidence(out, "purges: %.1f/s, %s/s over %.1f s; refault fraction %s",
		     ratio((double)k->purges, k->seconds),
		     bytes_str(ratio((double)k->purge_bytes, k->seconds)).s, k->seconds,
		     isnan(refault_fraction) ? "n/a (nothing purged)" : pct_str(refault_fraction).s);
}

/* Why a gap that is there was not called fragmentation or retained. */
static void gap_not_blamed(const struct verdict_input *in, const struct kernel_totals *k,
			   const struct rss_gap *g, struct verdict *out)
{
	gap_evidence(g, out);
	if (small_share(in) >= FRAG_MIN_SMALL_SHARE)
		add_evidence(out, "not fragmentation: RSS anon fell %s from its peak, the allocator is "
			     "returning pages", pct_str(g->rss_fall).s);
	else
		add_evidence(out, "not retained pages: the allocator purged %s (%s of the gap) during the run",
			     bytes_str((double)k->purge_bytes).s,
			     pct_str(ratio((double)k->purge_bytes, g->gap)).s);
}

static void report_healthy(const struct verdict_input *in, const struct kernel_totals *k,
			   const struct heap_trend *h, const struct rss_gap *g, struct verdict *out)
{
	out->kind = VERDICT_HEALTHY;
	put_text(out->knob, sizeof(out->knob), "none");
	if (!h) {
		put_text(out->summary, sizeof(out->summary), "healthy: no madvise thrash (%s: leak, "
			 "fragmentation and retained pages not checked)",
			 in->have_heap ? "too few live heap points" : "no heap samples");
		kernel_evidence(k, out->refault_fraction, out);
		return;
	}
	put_text(out->summary, sizeof(out->summary), "healthy: no leak, fragmentation, retained pages or "
		 "madvise thrash");
	add_evidence(out, "live heap: %s to %s over %.1f s, peak %s", bytes_str(h->first_live).s,
		     bytes_str(h->last_live).s, h->last_t - h->first_t, bytes_str(h->peak_live).s);
	if (has_gap(g))
		gap_not_blamed(in, k, g, out);
	else if (g->valid)
		add_evidence(out, "live/RSS anon at the end: %s / %s = %s", bytes_str(g->live).s,
			     bytes_str(g->rss).s, pct_str(g->utilization).s);
	kernel_evidence(k, out->refault_fraction, out);
}

static void report_unknown(struct verdict *out, const char *why)
{
	out->kind = VERDICT_UNKNOWN;
	put_text(out->summary, sizeof(out->summary), "unknown: %s", why);
	put_text(out->knob, sizeof(out->knob), "none: profile for longer (at least %d intervals)",
		 MIN_INTERVALS);
}

/* ---- the decision ---- */

static void decide_from_heap(const struct verdict_input *in, const struct kernel_totals *k,
			     enum alloc_family family, struct verdict *out)
{
	struct heap_trend h;
	struct rss_gap g;

	if (!measure_heap(in->tl, in->peak_live_heap, &h)) {
		report_healthy(in, k, NULL, NULL, out);
		add_evidence(out, "only %zu intervals measured the live heap (need %d)", h.points,
			     MIN_INTERVALS);
		return;
	}
	measure_gap(in->tl, &h, &g);
	if (is_leak(&h)) {
		report_leak(in, &h, &g, out);
		return;
	}
	if (has_gap(&g)) {
		bool small = small_share(in) >= FRAG_MIN_SMALL_SHARE;
		if (small && rss_held(&g)) {
			report_fragmentation(in, k, &g, family, out);
			return;
		}
		if (!small && k->purge_bytes < RETAINED_MAX_PURGE_SHARE * g.gap) {
			report_retained(in, k, &g, family, out);
			return;
		}
	}
	report_healthy(in, k, &h, &g, out);
}

void verdict_decide(const struct verdict_input *in, struct verdict *out)
{
	const struct timeline *tl = in ? in->tl : NULL;
	struct kernel_totals k;
	char why[64];

	memset(out, 0, sizeof(*out));
	out->refault_fraction = NAN;
	if (!tl || !tl->v || tl->n < MIN_INTERVALS) {
		put_text(why, sizeof(why), "%zu intervals, need at least %d", tl && tl->v ? tl->n : 0,
			 MIN_INTERVALS);
		report_unknown(out, why);
		return;
	}
	sum_kernel(tl, &k);
	out->refault_fraction = ratio((double)k.refault_bytes, (double)k.purge_bytes);
	enum alloc_family family = alloc_family_of(in->allocator ? in->allocator : tl->allocator);
	if (is_thrash(in, &k, out->refault_fraction))
		report_thrash(in, &k, family, out);
	else if (!in->have_heap)
		report_healthy(in, &k, NULL, NULL, out);
	else
		decide_from_heap(in, &k, family, out);
}
