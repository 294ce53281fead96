/* A profiled process: its heap and page profiles (over one stacks table),
 * its heap probes, and its diagnosis. -p and -- CMD have one, --all one per
 * process it selects; the session owns them (session.h, which implements
 * these too). */
#ifndef MW_TARGET_H
#define MW_TARGET_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "diagnose/diagnose.h"
#include "probes/attach.h"
#include "profile/heapprof.h"
#include "profile/pageprof.h"

struct session;

struct target {
	pid_t pid;
	struct heapprof heap;		/* heap.st: the stacks of both profiles */
	struct pageprof pages;
	struct attacher att;
	struct diagnosis diag;
	const char *allocator;		/* in use, as discovery found it; NULL until then */
	bool has_allocator;		/* some allocator file is probed */
	bool loader_hooked;
	bool suspended;			/* probes off (the overhead budget's off-window) */
	int64_t start_real_ns;		/* CLOCK_REALTIME: when profiling began */
	uint64_t start_ns;		/* CLOCK_MONOTONIC: the timeline's zero */
};

/* Refreshes the process's maps and probes what it maps now: allocators not
 * probed yet, the dynamic loader (so that later dlopens are heard of), the
 * latency probe's function. Returns the allocator files newly probed, or
 * -errno (reported with -v; the caller says what it means). */
int target_attach(struct session *s, struct target *t);
/* The process called exec: a new image, new nesting ranges, maybe new
 * allocators. */
void target_exec(struct session *s, struct target *t);
/* The interval's reading into the diagnosis: the kernel side's counters,
 * /proc, the probed latency, the heap (its live scan must be fresh). */
void target_sample(struct session *s, struct target *t, uint64_t now_ns);
/* How many intervals the diagnosis has. */
size_t target_intervals(const struct target *t);
/* The verdict from what was sampled, printed: "memwatch: <prefix>verdict:
 * ...", evidence, knob, correlation. */
void target_conclude(struct target *t, const char *prefix, FILE *out);

#endif
