#include "diagnose/monitor.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diagnose/verdict.h"
#include "util/hist.h"

void monitor_init(struct monitor *m)
{
	memset(m, 0, sizeof(*m));
	timeline_init(&m->tl);
}

void monitor_free(struct monitor *m)
{
	timeline_free(&m->tl);
}

static void page_deltas(struct tl_point *p, const struct mw_page_stats *now, const struct mw_page_stats *last)
{
	uint64_t lat[MW_HIST_BUCKETS];

	p->faults = now->faults - last->faults;
	p->fault_bytes = now->fault_bytes - last->fault_bytes;
	p->refaults = now->refaults - last->refaults;
	p->refault_bytes = now->refault_bytes - last->refault_bytes;
	/* The timeline's purges are everything given back: madvise, munmap, brk. */
	p->purges = now->purges - last->purges + now->unmaps - last->unmaps;
	p->purge_bytes = now->purge_bytes - last->purge_bytes + now->unmap_bytes - last->unmap_bytes;
	for (int sc = 0; sc < MW_SC_COUNT && sc < TL_NSYSCALLS; sc++) {
		p->calls[sc] = now->calls[sc] - last->calls[sc];
		hist_delta((const uint64_t *)now->latency[sc], (const uint64_t *)last->latency[sc], lat);
		p->sys_p50_us[sc] = hist_quantile(lat, 0.5) / 1e3;
		p->sys_p99_us[sc] = hist_quantile(lat, 0.99) / 1e3;
	}
}

static void no_pages(struct tl_point *p)
{
	for (int sc = 0; sc < TL_NSYSCALLS; sc++)
		p->sys_p50_us[sc] = p->sys_p99_us[sc] = NAN;
}

static void latency_deltas(struct tl_point *p, const uint64_t *now, const uint64_t *last)
{
	uint64_t lat[MW_HIST_BUCKETS];

	hist_delta(now, last, lat);
	p->probe_calls = hist_total(lat);
	p->probe_p50_us = hist_quantile(lat, 0.5) / 1e3;
	p->probe_p99_us = hist_quantile(lat, 0.99) / 1e3;
}

int monitor_add(struct monitor *m, const struct reading *r)
{
	struct tl_point p = {
		.t = r->t, .dt = r->t - m->last_t,
		.live_heap = r->live_heap,
		.rss_anon = r->mem.rss_anon, .rss_file = r->mem.rss_file, .rss_shmem = r->mem.rss_shmem,
		.anonymous = r->mem.anonymous, .lazyfree = r->mem.lazyfree,
		.arenas = r->arenas,
		.utilization = NAN, .probe_p50_us = NAN, .probe_p99_us = NAN,
	};

	for (int c = 0; c < TL_SIZE_CLASSES; c++)
		p.live_by_size[c] = r->live_by_size ? r->live_by_size[c] : -1;
	if (r->live_heap >= 0 && r->mem.rss_anon > 0)
		p.utilization = (double)r->live_heap / r->mem.rss_anon;
	if (r->pages) {
		page_deltas(&p, r->pages, &m->last_pages);
		m->last_pages = *r->pages;
	} else {
		no_pages(&p);
	}
	if (r->latency) {
		latency_deltas(&p, r->latency, m->last_latency);
		memcpy(m->last_latency, r->latency, sizeof(m->last_latency));
	}
	if (r->live_heap > m->peak_live)
		m->peak_live = r->live_heap;
	m->last_t = r->t;
	return timeline_add(&m->tl, &p);
}

double pearson(const double *x, const double *y, size_t n)
{
	double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;

	if (n < 3)
		return NAN;
	for (size_t i = 0; i < n; i++) {
		mx += x[i];
		my += y[i];
	}
	mx /= n;
	my /= n;
	for (size_t i = 0; i < n; i++) {
		sxy += (x[i] - mx) * (y[i] - my);
		sxx += (x[i] - mx) * (x[i] - mx);
		syy += (y[i] - my) * (y[i] - my);
	}
	if (sxx <= 0 || syy <= 0)
		return NAN;
	return sxy / sqrt(sxx * syy);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median of v[0..n), reordering v; NaN when empty. */
static double median(double *v, size_t n)
{
	if (!n)
		return NAN;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Intervals shorter than half the typical one (the run's tail) hold too few
 * calls for a percentile. */
static double min_usable_dt(const struct timeline *tl, double *scratch)
{
	size_t n = 0;

	for (size_t i = 0; i < tl->n; i++)
		if (tl->v[i].dt > 0)
			scratch[n++] = tl->v[i].dt;
	return median(scratch, n) / 2;
}

static bool correlatable(const struct tl_point *p, double min_dt)
{
	return p->probe_calls && !isnan(p->probe_p99_us) && p->dt > 0 && p->dt >= min_dt;
}

static void correlate(const struct timeline *tl, double *refaults, double *faults, double *p99, double *p50,
		      struct correlation *out)
{
	double min_dt = min_usable_dt(tl, p99);
	size_t n = 0;

	for (size_t i = 0; i < tl->n; i++) {
		const struct tl_point *p = &tl->v[i];
		if (!correlatable(p, min_dt))
			continue;
		refaults[n] = p->refault_bytes / p->dt;
		faults[n] = p->faults / p->dt;
		p99[n] = p->probe_p99_us;
		p50[n] = p->probe_p50_us;
		out->hot_intervals += refaults[n] >= VERDICT_HOT_BYTES_PER_S;
		n++;
	}
	out->intervals = n;
	out->r_p99 = pearson(refaults, p99, n);
	out->r_p50 = pearson(refaults, p50, n);
	out->r_p99_faults = pearson(faults, p99, n);
	out->p99_us = median(p99, n);
	out->p50_us = median(p50, n);
}

void monitor_correlate(const struct monitor *m, struct correlation *out)
{
	size_t cap = m->tl.n ? m->tl.n : 1;
	double *refaults = calloc(cap, sizeof(double)), *faults = calloc(cap, sizeof(double));
	double *p99 = calloc(cap, sizeof(double)), *p50 = calloc(cap, sizeof(double));

	memset(out, 0, sizeof(*out));
	out->r_p99 = out->r_p50 = out->r_p99_faults = out->p50_us = out->p99_us = NAN;
	if (refaults && faults && p99 && p50)
		correlate(&m->tl, refaults, faults, p99, p50, out);
	free(refaults);
	free(faults);
	free(p99);
	free(p50);
}
