/* The per-interval timeline: memory (live heap, RSS), the kernel side
 * (faults, purges, refaults, syscall latencies) and a probed function's
 * latency; written as CSV or JSON (timeline_out.c) or drawn (chart.h). */
#ifndef MW_TIMELINE_H
#define MW_TIMELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Syscalls whose latency memwatch measures, in this order. */
enum tl_syscall {
	TL_MADVISE,
	TL_MMAP,
	TL_MUNMAP,
	TL_BRK,
	TL_MREMAP,
	TL_NSYSCALLS,
};

/* Size classes of live objects: [0, 64), [64, 256), ... [256 KiB, 1 MiB),
 * [1 MiB, ...): each four times the last, so a class spans two of the
 * power-of-two buckets heapprof keeps. */
#define TL_SIZE_CLASSES 9
/* The class of an object of size bytes. */
unsigned tl_size_class(uint64_t size);
/* "<64 B", "64-256 B", ... ">=1 MiB". */
const char *tl_size_class_label(unsigned cls);

/* One interval; counts are within the interval, gauges at its end. Values
 * memwatch could not measure are -1 (gauges) or NaN (doubles). */
struct tl_point {
	double t;			/* seconds since the start, at the interval's end */
	double dt;			/* the interval's length, seconds */
	/* memory, at the end of the interval */
	int64_t live_heap;		/* estimated live heap bytes (heap samples); -1 without */
	int64_t rss_anon, rss_file, rss_shmem;	/* /proc/PID/status */
	int64_t anonymous, lazyfree;	/* /proc/PID/smaps_rollup Anonymous, LazyFree */
	double utilization;		/* live_heap / rss_anon */
	int arenas;			/* glibc arenas, -1 if not glibc */
	int64_t live_by_size[TL_SIZE_CLASSES];	/* live heap bytes by object size class */
	/* the kernel side, within the interval */
	uint64_t faults, fault_bytes;	/* user faults on pages not present */
	uint64_t refaults, refault_bytes;	/* ... on pages purged before */
	uint64_t purges, purge_bytes;	/* madvise DONTNEED/FREE/REMOVE, munmap, brk shrink */
	uint64_t calls[TL_NSYSCALLS];
	double sys_p50_us[TL_NSYSCALLS], sys_p99_us[TL_NSYSCALLS];
	/* --latency-probe, within the interval */
	uint64_t probe_calls;
	double probe_p50_us, probe_p99_us;
};

struct timeline {
	struct tl_point *v;
	size_t n, cap;
	size_t max;			/* keep the last max/2 to max points; 0: every one */
	pid_t pid;
	const char *comm;
	const char *allocator;		/* e.g. "jemalloc", or NULL */
	const char *probe;		/* --latency-probe FILE:FUNCTION, or NULL */
	bool have_heap;			/* live_heap is measured */
};

void timeline_init(struct timeline *tl);
void timeline_free(struct timeline *tl);
/* Appends a copy of p (at max points, the older half goes first); 0 or
 * -ENOMEM. */
int timeline_add(struct timeline *tl, const struct tl_point *p);
const char *tl_syscall_name(enum tl_syscall sc);

/* Writers: 0 or -errno. CSV: a header line, then one row per interval.
 * JSON: {"pid":..., "comm":..., "allocator":..., "probe":..., "intervals":[{...}]}.
 * The SVG plot: chart.h. */
typedef int timeline_writer(const struct timeline *tl, FILE *out);
int timeline_write_csv(const struct timeline *tl, FILE *out);
int timeline_write_json(const struct timeline *tl, FILE *out);
/* By path's extension (any case): .csv, .json, .svg; NULL for any other. */
timeline_writer *timeline_writer_for(const char *path);

#endif
