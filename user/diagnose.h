/* The kernel side and the diagnosis, tied to one target: periodic readings
 * into the timeline, then the verdict, the latency correlation, and the
 * timeline and plot files. */
#ifndef MW_DIAGNOSE_H
#define MW_DIAGNOSE_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "monitor.h"
#include "verdict.h"

struct heapprof;
struct pages;
struct procs;
struct latency_probe;

struct diagnosis {
	struct monitor mon;
	pid_t pid;
	struct heapprof *hp;		/* NULL: --pages-only */
	struct pages *pg;		/* NULL: no kernel side */
	struct latency_probe *lat;	/* NULL: no --latency-probe */
	struct procs *ps;
	const char *allocator;		/* in use, or NULL */
	bool baseline_marked;
	struct verdict verdict;
	struct correlation corr;
};

void diagnosis_init(struct diagnosis *d, pid_t pid, struct heapprof *hp, struct pages *pg,
		    struct latency_probe *lat, struct procs *ps);
void diagnosis_free(struct diagnosis *d);
/* Takes the reading for the interval ending t seconds after the start (the
 * heap's live scan must be fresh). */
void diagnosis_sample(struct diagnosis *d, double t);
/* One line for live summaries: faults, purges, refaults in the last interval. */
void diagnosis_print_interval(const struct diagnosis *d, FILE *out);
/* Decides the verdict and the correlation from what was sampled. */
void diagnosis_conclude(struct diagnosis *d);
/* The verdict, its evidence and knob, and the correlation, for people. */
void diagnosis_print(const struct diagnosis *d, FILE *out);
/* The same as profile comments: up to max malloc'ed lines; returns count. */
size_t diagnosis_comments(const struct diagnosis *d, char **lines, size_t max);

#endif
