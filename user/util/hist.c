#include "util/hist.h"

#include <math.h>

uint64_t hist_bucket_floor(unsigned b)
{
	/* Values 0..3 have a bucket each; 4..7 stay empty (4 ns is bucket 8). */
	if (b < 8)
		return b < 4 ? b : 4;
	unsigned log = b / 4;
	return (1ull << log) + ((uint64_t)(b & 3) << (log - 2));
}

static double bucket_width(unsigned b)
{
	return b < 8 ? 1.0 : (double)(1ull << (b / 4 - 2));
}

uint64_t hist_total(const uint64_t *counts)
{
	uint64_t n = 0;

	for (unsigned b = 0; b < MW_HIST_BUCKETS; b++)
		n += counts[b];
	return n;
}

double hist_quantile(const uint64_t *counts, double q)
{
	uint64_t total = hist_total(counts);
	double want = q * total, seen = 0;

	if (!total)
		return NAN;
	for (unsigned b = 0; b < MW_HIST_BUCKETS; b++) {
		if (!counts[b])
			continue;
		if (seen + counts[b] >= want) {
			double into = (want - seen) / counts[b];
			return hist_bucket_floor(b) + into * bucket_width(b);
		}
		seen += counts[b];
	}
	return hist_bucket_floor(MW_HIST_BUCKETS - 1);
}

void hist_delta(const uint64_t *now, const uint64_t *before, uint64_t *out)
{
	for (unsigned b = 0; b < MW_HIST_BUCKETS; b++)
		out[b] = now[b] >= before[b] ? now[b] - before[b] : 0;
}
