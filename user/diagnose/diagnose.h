/* The diagnosis of one process: its readings, interval by interval, into
 * the timeline; then the verdict, the latency correlation, and the lines
 * that report them. What it reads (the kernel side's counters, /proc, the
 * probed latency) comes in with each reading; the live heap from the
 * process's heap profile. */
#ifndef MW_DIAGNOSE_H
#define MW_DIAGNOSE_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "diagnose/monitor.h"
#include "diagnose/verdict.h"

struct heapprof;
struct procs;

struct diagnosis {
	struct monitor mon;
	struct heapprof *hp;		/* NULL: no heap side (--pages-only) */
	struct procs *ps;		/* to name the heap's sites */
	const char *allocator;		/* in use, as discovery found it; NULL: unknown */
	const char *probe_function;	/* --latency-probe's FUNCTION, once attached */
	bool have_pages;		/* some reading had the kernel side */
	bool baseline_marked;
	struct verdict verdict;
	struct correlation corr;
};

void diagnosis_init(struct diagnosis *d, pid_t pid, struct heapprof *hp, struct procs *ps);
void diagnosis_free(struct diagnosis *d);
/* Names for the timeline and the report, each NULL until known: the
 * process's comm, the allocator in use, and the probed function (probe:
 * where it was probed, "FUNCTION in FILE"). The strings must outlive d. */
void diagnosis_describe(struct diagnosis *d, const char *comm, const char *allocator, const char *probe,
			const char *probe_function);
/* Adds the interval ending at r->t (seconds since the start): r's page
 * statistics, memory, arenas and latency, and the heap's live values (its
 * live scan must be fresh). */
void diagnosis_sample(struct diagnosis *d, struct reading *r);
/* One line for live summaries: faults, purges, refaults in the last interval. */
void diagnosis_print_interval(const struct diagnosis *d, FILE *out);
/* Decides the verdict and the correlation from what was sampled. */
void diagnosis_conclude(struct diagnosis *d);
/* The verdict, its evidence and knob, and the correlation, for people;
 * each line prefixed with "memwatch: " and prefix. */
void diagnosis_print(const struct diagnosis *d, const char *prefix, FILE *out);
/* The same as profile comments: up to max malloc'ed lines; returns count. */
size_t diagnosis_comments(const struct diagnosis *d, char **lines, size_t max);

#endif
