/* Prometheus text exposition format 0.0.4, built in a growable buffer.
 * Errors are sticky: after the first one every call does nothing, the
 * buffer keeps only complete lines, and metrics_error() says what went
 * wrong. Invalid names or calls out of order are -EINVAL. */
#ifndef MW_METRICS_H
#define MW_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "memwatch.h"

struct metrics {
	char *buf;		/* len bytes and a NUL; NULL while empty */
	size_t len, cap;
	int err;
	char **families;	/* names declared so far, the current one last */
	size_t nfamilies, families_cap;
	int type;		/* of the current family */
};

void metrics_init(struct metrics *m);
void metrics_free(struct metrics *m);
/* The # HELP and # TYPE lines of a family; type "counter", "gauge" or
 * "histogram". Each family is declared once, and its samples follow it
 * before the next family is declared. */
void metrics_family(struct metrics *m, const char *name, const char *type, const char *help);
/* One sample of the current counter or gauge family: name{labels} value.
 * labels: NULL or key, value, key, value, ..., NULL; values are arbitrary
 * bytes (escaped, invalid UTF-8 replaced by U+FFFD). */
void metrics_sample_u64(struct metrics *m, const char *name, const char *const *labels, uint64_t value);
void metrics_sample_double(struct metrics *m, const char *name, const char *const *labels, double value);
/* The samples of the current histogram family from a latency histogram in
 * nanoseconds (hist.h): name_bucket with le in seconds at every power of
 * two from 2^10 to 2^31 ns and +Inf, name_sum in seconds (estimated from
 * the buckets), name_count. */
void metrics_histogram_ns(struct metrics *m, const char *name, const char *const *labels,
			  const uint64_t counts[MW_HIST_BUCKETS]);
/* 0 or the first -errno. */
int metrics_error(const struct metrics *m);

#endif
