/* Sampled events to interned stacks: frame-pointer walks checked, stack
 * snapshots unwound, both timed and counted for memwatch's own report. */
#ifndef MW_STACKER_H
#define MW_STACKER_H

#include <stddef.h>
#include <stdint.h>

#include "memwatch.h"
#include "stacks/fpcheck.h"
#include "stacks/stack_mode.h"
#include "stacks/unwind.h"

struct procs;
struct process;
struct stacks;

struct stacker {
	enum stack_mode mode;
	uint32_t stack_bytes;		/* snapshot size, for the description */
	struct fpcheck fpc;		/* --stack-mode fp */
	struct unwinder *unw;		/* --stack-mode auto, dwarf */
	struct unwind_result unwound;
	uint64_t stacks, fp_truncated;
	uint64_t first_ns;		/* CPU time of the first stacks, all timed */
	uint64_t timed, timed_ns;	/* later stacks timed (a sample of them), their CPU */
};

/* CPU spent turning samples into stacks, estimated from the timed ones. */
uint64_t stacker_cpu_ns(const struct stacker *sk);

/* 0 or -ENOMEM. */
int stacker_init(struct stacker *sk, enum stack_mode mode, uint32_t stack_bytes);
void stacker_free(struct stacker *sk);
/* Drops what was cached for pid's stacks (it exited or is no longer profiled). */
void stacker_forget(struct stacker *sk, pid_t pid);
/* An event's stack (its capture, and the len bytes of data that follow it
 * in the event) interned in st: its id, or UINT32_MAX (out of memory). */
uint32_t stacker_intern(struct stacker *sk, struct stacks *st, struct procs *ps, struct process *p,
			const struct mw_capture *cap, const uint8_t *data, size_t len);
/* One line: how stacks are made, how many, how many cut short and why. */
void stacker_describe(const struct stacker *sk, char *buf, size_t len);

#endif
