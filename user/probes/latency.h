/* --latency-probe FILE:FUNCTION: a histogram of how long each call of one
 * function of the target takes. */
#ifndef MW_LATENCY_H
#define MW_LATENCY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "memwatch.h"
#include "probes/attach.h"

struct latency_bpf;
struct procs;
struct process;

struct latency_probe {
	struct latency_bpf *skel;
	struct link_set links;
	char *file;		/* as the target names it; "" for its executable */
	char *function;
	bool multi;
	bool attached;
	char where[160];	/* what was probed, for reports */
};

/* Parses FILE:FUNCTION (or FUNCTION: the target's executable) and loads the
 * programs. 0 or -errno (-EINVAL: a bad spec). */
int latency_load(struct latency_probe *lp, const char *spec, pid_t tgid);
/* Attaches once FILE is mapped in p: 1 attached, 0 not mapped yet, -errno
 * (-ENOENT: no such function). */
int latency_attach(struct latency_probe *lp, struct procs *ps, struct process *p, FILE *log);
/* The histogram so far, summed over CPUs. */
int latency_read(const struct latency_probe *lp, uint64_t out[MW_HIST_BUCKETS]);
void latency_destroy(struct latency_probe *lp);

#endif
