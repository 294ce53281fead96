/* The BPF side's latency histograms (MW_HIST_BUCKETS, 4 buckets per power
 * of two of nanoseconds): percentiles of a histogram or of the difference
 * between two readings. */
#ifndef MW_HIST_H
#define MW_HIST_H

#include <stdint.h>

#include "memwatch.h"

/* The lowest value (ns) bucket b holds. */
uint64_t hist_bucket_floor(unsigned b);
/* The q-quantile (0 < q < 1) of counts, interpolated inside its bucket;
 * NaN if the histogram is empty. */
double hist_quantile(const uint64_t *counts, double q);
/* now - before, bucket by bucket (counters only grow). */
void hist_delta(const uint64_t *now, const uint64_t *before, uint64_t *out);
uint64_t hist_total(const uint64_t *counts);

#endif
