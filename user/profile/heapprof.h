/* The heap profile: sampled allocations aggregated by site (stack, size,
 * process), live blocks read back from the BPF live map, pprof output. */
#ifndef MW_HEAPPROF_H
#define MW_HEAPPROF_H

#include <stdbool.h>
#include <stdint.h>
#include <regex.h>
#include <stdio.h>
#include <sys/types.h>

#include "memwatch.h"
#include "profile/profile.h"
#include "stacks/stacks.h"
#include "util/hashmap.h"

struct procs;

/* A heap site's in-use bytes at the start and the end of the run. */
struct site_growth {
	const char *name;
	double first_bytes, last_bytes;
};

struct heap_site {
	uint32_t stack;
	pid_t pid;
	uint64_t size;
	uint64_t alloc_samples;
	double alloc_objects, alloc_bytes;	/* unsampled estimates */
	uint64_t inuse_samples;		/* as of the last live scan */
	double inuse_objects, inuse_bytes;
	double baseline_bytes;		/* in use at heapprof_mark_baseline */
};

struct heap_totals {
	uint64_t samples, cancels;
	uint64_t live_unknown;		/* live entries whose sample was never seen */
	uint64_t stack_oom;		/* samples dropped: out of memory */
	double alloc_bytes, alloc_objects, inuse_bytes, inuse_objects;
	uint64_t inuse_samples;
};

struct heapprof {
	uint64_t rate;			/* mean sampling interval in bytes */
	struct stacks st;
	struct heap_site *sites;
	uint32_t nsites;
	size_t cap_sites;
	struct hmap site_index;
	struct hmap samples;		/* sample id -> site | last scan seen << 32 */
	uint32_t scan_gen;
	struct heap_totals tot;
	const char *drop_frames;	/* allocator functions, a pprof regex */
	regex_t drop_rx;
	bool have_drop_rx;
};

struct profile_meta {
	int64_t start_ns, end_ns;	/* CLOCK_REALTIME */
	const char *const *comments;	/* NULL-terminated */
	bool alloc_only;		/* no in-use values: an allocs profile */
};

void heapprof_init(struct heapprof *hp, uint64_t rate, const char *drop_frames);
void heapprof_free(struct heapprof *hp);
/* Records a sample whose stack was already interned. */
int heapprof_add(struct heapprof *hp, uint64_t sample_id, uint32_t stack, pid_t pid, uint64_t size);
void heapprof_cancel(struct heapprof *hp, uint64_t sample_id);
/* In-use values from a scan of the live sampled blocks (the BPF live
 * map): begin, count each live block's sample, end. The end forgets
 * samples whose block has been absent from two scans in a row. */
void heapprof_scan_begin(struct heapprof *hp);
void heapprof_scan_count(struct heapprof *hp, uint64_t sample_id);
void heapprof_scan_end(struct heapprof *hp);
int heapprof_write(struct heapprof *hp, struct procs *ps, const struct profile_meta *meta, int fd);

/* Every site's values at one moment, for delta profiles. */
struct heap_snapshot {
	uint32_t nsites;
	double (*v)[4];		/* alloc_objects, alloc_space, inuse_objects, inuse_space */
};
int heapprof_snapshot(const struct heapprof *hp, struct heap_snapshot *out);
void heap_snapshot_free(struct heap_snapshot *snap);
/* The profile's rows (malloc'ed into *out), minus base's values when base
 * is given; rows that come to zero are left out. The count, or -ENOMEM. */
long heapprof_rows(const struct heapprof *hp, const struct heap_snapshot *base, struct profile_row **out);
/* Sample types, period and the rest, for profile_write. */
void heapprof_spec(const struct heapprof *hp, const struct profile_meta *meta, struct profile_spec *spec);
/* Remembers every site's in-use bytes now, for heapprof_growth. */
void heapprof_mark_baseline(struct heapprof *hp);
/* Sites by name with their in-use bytes at the baseline and now, most grown
 * first. Returns the count (up to max). */
size_t heapprof_growth(struct heapprof *hp, struct procs *ps, struct site_growth *out, size_t max);
/* Estimated live bytes by size: bucket i holds sizes in [2^i, 2^(i+1)). */
void heapprof_live_by_size(const struct heapprof *hp, double *buckets, unsigned nbuckets);
/* The top sites by in-use bytes, one line each, for live summaries. */
void heapprof_print_top(struct heapprof *hp, struct procs *ps, FILE *out, unsigned n);
/* Name of the first frame of a stack that is not allocator code. */
const char *heapprof_site_name(struct heapprof *hp, struct procs *ps, uint32_t stack);

#endif
