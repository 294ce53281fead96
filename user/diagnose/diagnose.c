#include "diagnose/diagnose.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "profile/heapprof.h"

#define MAX_GROWTH 16

void diagnosis_init(struct diagnosis *d, pid_t pid, struct heapprof *hp, struct procs *ps)
{
	memset(d, 0, sizeof(*d));
	monitor_init(&d->mon);
	d->hp = hp;
	d->ps = ps;
	d->mon.tl.pid = pid;
	d->mon.tl.have_heap = hp != NULL;
}

void diagnosis_free(struct diagnosis *d)
{
	monitor_free(&d->mon);
}

void diagnosis_describe(struct diagnosis *d, const char *comm, const char *allocator, const char *probe,
			const char *probe_function)
{
	d->mon.tl.comm = comm;
	d->mon.tl.allocator = d->allocator = allocator;
	d->mon.tl.probe = probe;
	d->probe_function = probe_function;
}

/* Folds heapprof's power-of-two buckets into the timeline's size classes. */
static void live_by_class(const struct heapprof *hp, double classes[TL_SIZE_CLASSES])
{
	double buckets[VERDICT_SIZE_BUCKETS];

	heapprof_live_by_size(hp, buckets, VERDICT_SIZE_BUCKETS);
	memset(classes, 0, TL_SIZE_CLASSES * sizeof(*classes));
	for (int b = 0; b < VERDICT_SIZE_BUCKETS; b++)
		classes[tl_size_class(1ull << b)] += buckets[b];
}

void diagnosis_sample(struct diagnosis *d, struct reading *r)
{
	double classes[TL_SIZE_CLASSES];
	int64_t live_by_size[TL_SIZE_CLASSES];

	r->live_heap = -1;
	r->live_by_size = NULL;
	if (d->hp) {
		r->live_heap = llround(d->hp->tot.inuse_bytes);
		live_by_class(d->hp, classes);
		for (int c = 0; c < TL_SIZE_CLASSES; c++)
			live_by_size[c] = llround(classes[c]);
		r->live_by_size = live_by_size;
		if (!d->baseline_marked) {
			heapprof_mark_baseline(d->hp);
			d->baseline_marked = true;
		}
	}
	d->have_pages |= r->pages != NULL;
	monitor_add(&d->mon, r);
}

static void print_rate(FILE *out, double bytes_per_s)
{
	if (bytes_per_s >= 1 << 20)
		fprintf(out, "%.1f MiB/s", bytes_per_s / (1 << 20));
	else
		fprintf(out, "%.0f KiB/s", bytes_per_s / 1024);
}

void diagnosis_print_interval(const struct diagnosis *d, FILE *out)
{
	if (!d->mon.tl.n || !d->have_pages)
		return;
	const struct tl_point *p = &d->mon.tl.v[d->mon.tl.n - 1];
	double dt = p->dt > 0 ? p->dt : 1;
	fprintf(out, "memwatch: kernel side: %.0f faults/s, purges ", p->faults / dt);
	print_rate(out, p->purge_bytes / dt);
	fputs(", refaults ", out);
	print_rate(out, p->refault_bytes / dt);
	if (p->rss_anon >= 0)
		fprintf(out, "; RSS anon %.1f MiB", p->rss_anon / 1048576.0);
	if (p->live_heap >= 0)
		fprintf(out, ", live heap %.1f MiB", p->live_heap / 1048576.0);
	fputc('\n', out);
}

/* Purge-to-refault delays, from the last reading's counters. */
static void refault_delays(const struct diagnosis *d, struct verdict_input *in)
{
	if (!d->have_pages)
		return;
	in->refaults_total = d->mon.last_pages.refaults;
	in->refaults_within_1s = d->mon.last_pages.refaults_soon;
}

void diagnosis_conclude(struct diagnosis *d)
{
	struct site_growth growth[MAX_GROWTH];
	struct verdict_input in = {
		.tl = &d->mon.tl,
		.allocator = d->allocator,
		.have_heap = d->hp != NULL,
		.peak_live_heap = d->mon.peak_live,
	};

	if (d->hp) {
		in.nsites = heapprof_growth(d->hp, d->ps, growth, MAX_GROWTH);
		in.sites = growth;
		heapprof_live_by_size(d->hp, in.live_by_size, VERDICT_SIZE_BUCKETS);
	}
	refault_delays(d, &in);
	verdict_decide(&in, &d->verdict);
	monitor_correlate(&d->mon, &d->corr);
}

static const char *strength(double r)
{
	double a = fabs(r);

	if (isnan(r))
		return "not enough data";
	return a >= 0.8 ? "strong" : a >= 0.5 ? "moderate" : a >= 0.3 ? "weak" : "none";
}

/* The correlation line, or NULL without a latency probe. Without sustained
 * refaulting there is no thrash for latency to follow, whatever r says. */
static char *correlation_line(const struct diagnosis *d)
{
	const struct correlation *c = &d->corr;
	char *line = NULL;
	int len;

	if (!d->probe_function)
		return NULL;
	if (!verdict_sustained(c->hot_intervals, c->intervals))
		len = asprintf(&line, "latency: %s p50 %.1f us, p99 %.1f us (medians over %zu intervals); "
				      "correlation with thrash: none (refaults reached %.0f MiB/s in %zu of them: "
				      "no thrash)", d->probe_function, c->p50_us, c->p99_us, c->intervals,
			       VERDICT_HOT_BYTES_PER_S / 1048576.0, c->hot_intervals);
	else
		len = asprintf(&line, "latency: %s p99 vs refault rate: r = %.2f (%s), p50: r = %.2f (%s); "
				      "p99 vs fault rate: r = %.2f; over %zu intervals, %zu refaulting",
			       d->probe_function, c->r_p99, strength(c->r_p99), c->r_p50, strength(c->r_p50),
			       c->r_p99_faults, c->intervals, c->hot_intervals);
	return len < 0 ? NULL : line;
}

/* "live heap by size: <64 B 1.2 MiB (10%), ...", or NULL with nothing live. */
static char *size_line(const struct diagnosis *d)
{
	double classes[TL_SIZE_CLASSES], total = 0;
	char *line = NULL;
	size_t len = 0;

	if (!d->hp)
		return NULL;
	live_by_class(d->hp, classes);
	for (int c = 0; c < TL_SIZE_CLASSES; c++)
		total += classes[c];
	if (!(total > 0))
		return NULL;
	FILE *f = open_memstream(&line, &len);
	if (!f)
		return NULL;
	fputs("live heap by object size:", f);
	for (int c = 0, n = 0; c < TL_SIZE_CLASSES; c++) {
		double v = classes[c];
		if (v > 0)
			fprintf(f, "%s %s %s (%.0f%%)", n++ ? "," : "", tl_size_class_label(c), bytes_str(v).s,
				100 * v / total);
	}
	if (fclose(f)) {
		free(line);
		return NULL;
	}
	return line;
}

size_t diagnosis_comments(const struct diagnosis *d, char **lines, size_t max)
{
	const struct verdict *v = &d->verdict;
	size_t n = 0;

	if (n < max && asprintf(&lines[n], "verdict: %s", v->summary) >= 0)
		n++;
	for (size_t i = 0; i < v->nevidence && n < max; i++)
		if (asprintf(&lines[n], "evidence: %s", v->evidence[i]) >= 0)
			n++;
	if (v->knob[0] && n < max && asprintf(&lines[n], "knob: %s", v->knob) >= 0)
		n++;
	if (n < max && (lines[n] = correlation_line(d)))
		n++;
	if (n < max && (lines[n] = size_line(d)))
		n++;
	return n;
}

void diagnosis_print(const struct diagnosis *d, const char *prefix, FILE *out)
{
	char *lines[VERDICT_MAX_EVIDENCE + 5];
	size_t n = diagnosis_comments(d, lines, sizeof(lines) / sizeof(lines[0]));

	for (size_t i = 0; i < n; i++) {
		fprintf(out, "memwatch: %s%s\n", prefix, lines[i]);
		free(lines[i]);
	}
}
