/* The kernel side of memory (bpf/pages.bpf.c): loading and attaching the
 * tracepoints, per-process page statistics. */
#ifndef MW_PAGES_H
#define MW_PAGES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "memwatch.h"

struct pages_bpf;
struct bpf_link;

struct pages_config {
	pid_t tgid;			/* 0: every process but memwatch */
	uint64_t sample_bytes;		/* stacks: one per this many bytes faulted or purged */
	uint32_t stack_mode, stack_bytes;
	uint32_t ring_bytes;
	uint32_t max_processes;		/* per-process statistics kept at once */
	bool empty;			/* benchmarks: every program returns at once */
};

struct pages {
	struct pages_bpf *skel;
	struct bpf_link *links[16];
	unsigned nlinks;
	bool raw_syscalls;		/* no tracefs: raw syscall tracepoints */
};

/* 0 or -errno; reports nothing itself. */
int pages_load(struct pages *pg, const struct pages_config *cfg);
void pages_destroy(struct pages *pg);
int pages_events_fd(const struct pages *pg);
/* The process's counters so far; -ENOENT before its first event. */
int pages_stats(const struct pages *pg, pid_t tgid, struct mw_page_stats *out);
int pages_forget(struct pages *pg, pid_t tgid);
/* With tgid 0 (every process): whether tgid's faults and purges get stacks. */
int pages_set_profiled(struct pages *pg, pid_t tgid, bool on);
/* The kernel side's losses (MW_CNT_RINGBUF_FULL, MW_CNT_STACK_FAIL, ...). */
void pages_counters(const struct pages *pg, uint64_t out[MW_CNT_NR]);

#endif
