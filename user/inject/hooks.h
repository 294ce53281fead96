/* The in-process fast path (issue 13): allocator entries detoured into an
 * agent mapped in the target, which samples by bytes per thread and calls
 * memwatch's uprobes only for sampled allocations and releases of sampled
 * blocks. See hooks.c for the design. */
#ifndef MW_HOOKS_H
#define MW_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct process;
struct objfile;
struct allocator;

enum hook_mode {
	HOOK_AUTO,		/* inline where it can be installed safely, uprobes elsewhere */
	HOOK_INLINE,		/* inline, or an error */
	HOOK_UPROBE,		/* uprobes only */
};

struct mw_agent_free;

/* The BPF side: report programs on an instance's report functions. */
struct hook_reporter {
	/* path: the instance's memfd as /proc/PID/map_files/...; offsets of
	 * its report functions: alloc, frees. */
	int (*attach)(void *ctx, pid_t pid, const char *path, const uint64_t offsets[2], void **handle);
	void (*detach)(void *ctx, void *handle);
	/* Reports of pid the BPF side could not put in the ring. */
	uint64_t (*drops)(void *ctx, pid_t pid);
	/* Releases the agent published in its control page's ring. */
	void (*released)(void *ctx, pid_t pid, const struct mw_agent_free *frees, size_t n);
	void *ctx;
};

struct hook_config {
	enum hook_mode mode;
	uint64_t sample_bytes;
	bool alloc_only;
	uint32_t max_live;
	uint64_t inflight;	/* reports a process may have in the ring; 0: no backoff */
	FILE *log;		/* -v */
};

struct hook_stats {
	unsigned modules, sites;	/* detoured */
	uint64_t samples, frees, nested, lost, untracked, slot_misses;
	uint64_t waits, abandoned;
	double pause_ms;		/* the last stop-the-world */
	unsigned threads;		/* ... and how many threads it held */
};

struct hook_engine;

/* NULL with errno set. rep may be NULL (nothing listens: unit tests). */
struct hook_engine *hooks_new(const struct hook_config *cfg, const struct hook_reporter *rep);
/* Restores every process's entries, then frees. */
void hooks_free(struct hook_engine *h);
enum hook_mode hooks_mode(const struct hook_engine *h);

/* Detours every entry of alloc (found in o, mapped in p). 1 if done (or
 * already), 0 if the allocator stays on uprobes (the reason is logged and
 * kept for hooks_describe), -errno with --hook inline when it cannot. */
int hooks_attach(struct hook_engine *h, struct process *p, struct objfile *o, const struct allocator *alloc);
/* Restores pid's entries (every thread stopped); the agent stays mapped,
 * inert, for the next run. */
void hooks_detach(struct hook_engine *h, pid_t pid);
/* pid's process is gone or exec'd: forget it without touching it. */
void hooks_forget(struct hook_engine *h, pid_t pid);

/* One report of pid read from the ring (an event with MW_FN_INLINE). */
void hooks_consumed(struct hook_engine *h, pid_t pid);
/* Applies the agents' releases and publishes the BPF side's drop counts;
 * call every loop turn. */
void hooks_poll(struct hook_engine *h);
/* Applies the releases the agents published (before a live scan). */
void hooks_sweep(struct hook_engine *h);

int hooks_stats(struct hook_engine *h, pid_t pid, struct hook_stats *out);
/* "inline: glibc (malloc, free, ...)" and why anything stays on uprobes,
 * for -v and the profile's comments. */
void hooks_describe(struct hook_engine *h, pid_t pid, char *buf, size_t len);

#endif
