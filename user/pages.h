/* The kernel side of memory (bpf/pages.bpf.c): loading and attaching the
 * tracepoints, per-process page statistics, and the page profile: the
 * stacks that fault memory in and the stacks that purge it. */
#ifndef MW_PAGES_H
#define MW_PAGES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hashmap.h"
#include "memwatch.h"
#include "profile.h"

struct pages_bpf;
struct bpf_link;

struct pages_config {
	pid_t tgid;			/* 0: every process but memwatch */
	uint64_t sample_bytes;		/* stacks: one per this many bytes faulted or purged */
	uint32_t stack_mode, stack_bytes;
	uint32_t ring_bytes;
	uint32_t max_processes;		/* per-process statistics kept at once */
};

struct page_site {
	uint32_t stack;
	pid_t pid;
	enum mw_page_event kind;
	uint64_t samples;
	double count, bytes;		/* unsampled estimates */
};

struct pages {
	struct pages_bpf *skel;
	struct bpf_link *links[16];
	unsigned nlinks;
	bool raw_syscalls;		/* no tracefs: raw syscall tracepoints */
	uint64_t rate;
	struct page_site *sites;
	uint32_t nsites, cap_sites;
	struct hmap site_index;
	uint64_t samples;
};

/* 0 or -errno; reports nothing itself. */
int pages_load(struct pages *pg, const struct pages_config *cfg);
void pages_destroy(struct pages *pg);
int pages_events_fd(const struct pages *pg);
/* The process's counters so far; -ENOENT before its first event. */
int pages_stats(const struct pages *pg, pid_t tgid, struct mw_page_stats *out);
int pages_forget(struct pages *pg, pid_t tgid);
/* A sampled fault or purge whose stack is interned already. */
int pages_add(struct pages *pg, uint32_t stack, pid_t pid, enum mw_page_event kind, uint64_t bytes);
/* The page profile: faults/count, fault_space/bytes, purges/count,
 * purge_space/bytes, with an "event" label (fault, madvise, munmap, brk). */
int pages_write(struct pages *pg, struct stacks *st, struct procs *ps, const struct profile_spec *base, int fd);
const char *page_event_name(enum mw_page_event kind);

#endif
