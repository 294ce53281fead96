/* --all's table of the processes on the host: every one the kernel side
 * tracks, each with what identifies it, whether the selection matches it,
 * and, when it is profiled, its target (session/target.h). */
#ifndef MW_HOST_TABLE_H
#define MW_HOST_TABLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "session/target.h"
#include "util/hashmap.h"

struct hproc {
	pid_t pid;
	uint64_t start_time;		/* tells a reused pid */
	char comm[16];
	char *cgroup;
	char *exe;
	char container[65];
	bool matched;			/* the selection matches it */
	struct target *tgt;		/* NULL: kernel side only */
	int64_t next_write_ns;		/* --output-dir: its next profiles */
	uint64_t last_active_ns;	/* CLOCK_MONOTONIC: last change seen */
	uint64_t last_faults, last_calls, last_samples;
	bool seen;			/* by the current /proc scan */
	uint64_t exit_epoch;		/* 0, or the session's exit_epoch when its exit was read */
};

struct host_counts {
	uint64_t evicted_processes, evicted_profiled, dropped_processes;
	uint64_t exits, execs, attach_errors;
};

struct host_table {
	struct hmap by_pid;		/* pid -> struct hproc * */
	size_t nprofiled;
	struct host_counts counts;
};

static inline struct hproc *host_table_find(const struct host_table *t, pid_t pid)
{
	void **slot = hmap_find(&t->by_pid, hash_u64(pid), pid);

	return slot ? *slot : NULL;
}

#endif
