/* DWARF/CFI unwinding of user stack snapshots (MW_STACK_SNAPSHOT events),
 * over elfutils libdwfl, the way perf --call-graph dwarf does it.
 *
 * One Dwfl per process, holding every file-backed executable mapping of the
 * process's maps snapshot at its load bias. Files reach libdwfl only as dups
 * of the objfiles' fds (opened through /proc/PID/map_files); separate debug
 * files (for .debug_frame) are looked up by build-id under the target's root,
 * then the host's. The Dwfl is reused while the executable mappings stay the
 * same, and rebuilt when they change. Not thread-safe.
 *
 * Fast path: most stacks are unwound without libdwfl's generic unwinder,
 * from a cache of per-pc rules (CFA = rsp|rbp + offset, return address and
 * rbp saved at CFA + offset) computed once with libdw per module file
 * (build-id) and address. A stack the fast path cannot finish exactly as
 * libdwfl would (CFI expressions, signal frames, addresses in no module,
 * reads outside the snapshot other than the one that ends it, ...) is
 * unwound again from the start by libdwfl: the results are the same either
 * way. */
#ifndef MW_UNWIND_H
#define MW_UNWIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "memwatch.h"	/* MW_NREGS */

#define UNWIND_MAX_FRAMES 256

struct procs;
struct process;
struct unwinder;

struct unwind_result {
	/* Leaf first: pcs[0] is the probed pc; the rest are return addresses
	 * as found on the stack (not minus 1). */
	uint64_t pcs[UNWIND_MAX_FRAMES];
	uint32_t n;
	/* NULL: the outermost frame was reached (its CFI ends the chain).
	 * Else why the chain stops, as a synthetic frame name, e.g.
	 * "[truncated: stack snapshot too small]". Interned for the life of
	 * the unwinder: the same reason is always the same pointer. */
	const char *truncated;
};

struct unwind_stats {
	uint64_t stacks;		/* unwind_stack calls */
	uint64_t frames;		/* pcs returned, all calls together */
	uint64_t complete;		/* chains that reached the outermost frame */
	uint64_t truncated_snapshot;	/* "[truncated: stack snapshot too small]" */
	uint64_t truncated_other;	/* any other reason, errors included */
	uint64_t dwfl_builds;		/* per-process Dwfl (re)builds */
	uint64_t refreshes;		/* process_refresh calls for unknown addresses */
	/* fast_stacks + slow_stacks = stacks, less those with no usable Dwfl. */
	uint64_t fast_stacks;		/* unwound by the rule cache alone */
	uint64_t slow_stacks;		/* unwound by libdwfl (fast path off or given up) */
	uint64_t rule_cache_hits;	/* rule lookups (one per frame) the cache answered */
	uint64_t rule_cache_misses;	/* ... computed with libdw (the cache holds 512k) */
	uint64_t fast_fallbacks;	/* stacks the fast path gave up on, to libdwfl */
};

struct unwinder *unwinder_new(void);
void unwinder_free(struct unwinder *u);

/* Unwinds one snapshot: regs in DWARF x86_64 numbering (regs[7] = rsp,
 * regs[16] = rip), stack = stack_len bytes copied from rsp upwards.
 * Returns 0 with whatever chain was found (a pc in no mapping gives one
 * frame and a truncation), or -ENOMEM / -ENOENT (no usable module in p) when
 * nothing could be done: out->n then holds pcs[0] and out->truncated says why.
 * When an address falls in no module and no mapping of p's snapshot, p's maps
 * are re-read (process_refresh) once, and the unwind retried if new code was
 * mapped. */
/* For the next unwind_stack only: stack slots whose return address a
 * pending uretprobe replaced, and the originals (the arrays must last until
 * then). */
void unwinder_set_returns(struct unwinder *u, const uint64_t *slots, const uint64_t *orig, unsigned n);
int unwind_stack(struct unwinder *u, struct procs *ps, struct process *p, const uint64_t regs[MW_NREGS],
		 const uint8_t *stack, size_t stack_len, struct unwind_result *out);

/* Strict (--stack-mode dwarf): CFI only, never libdw's frame-pointer rule.
 * A frame whose module has no CFI for its pc ends the chain, with
 * "[truncated: no unwind info for MODULE]" (a pc in no module: "[truncated:
 * address in no mapped file]"). Default: off. */
void unwinder_set_strict(struct unwinder *u, bool strict);
/* Off: every stack goes through libdwfl (for tests and debugging; the
 * environment variable MW_UNWIND_SLOW=1 does the same). Default: on. */
void unwinder_set_fast(struct unwinder *u, bool fast);

/* Drops what is cached for pid (call when the process is gone). */
void unwinder_forget(struct unwinder *u, pid_t pid);
void unwinder_stats(const struct unwinder *u, struct unwind_stats *out);

#endif
