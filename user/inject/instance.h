/* Agent instances in a target: the embedded blob mapped from a memfd near
 * an allocator (every detour must reach it with a rel32), with its state
 * and the process's control page. Created by system calls run in a held
 * thread; found again by later runs through /proc/PID/maps and the header
 * at the instance's first page. */
#ifndef MW_INSTANCE_H
#define MW_INSTANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "inject/agent/agent.h"

struct tracee;
struct maps;

#define AGENT_NAME "memwatch-agent"
#define CONTROL_NAME "memwatch-control"

struct instance {
	uint64_t base;
	uint64_t image_bytes, control_off, state_off, state_bytes;
	uint64_t live_buckets;
	uint64_t control;		/* the process's control page (maybe another instance's) */
	struct mwa_header hdr;		/* memwatch's copy of page 0 */
	bool reused;			/* found in the target, not created */
};

/* Hash of the embedded blob: instances of another build are not reused. */
uint64_t agent_build(void);
/* Live-set buckets for max_live tracked blocks. */
uint64_t agent_live_buckets(uint32_t max_live);
/* Bytes an instance needs in the target's address space. */
uint64_t instance_span(uint64_t live_buckets);

/* An executable `syscall` instruction in the target, or 0. */
uint64_t find_syscall_insn(pid_t pid, const struct maps *maps);

/* Instances mapped in the target (their headers read). Returns the count,
 * up to max. */
size_t instance_find_all(pid_t pid, const struct maps *maps, struct instance *out, size_t max);
/* Whether every byte of [lo, hi) is within rel32 reach of the instance. */
bool instance_reaches(const struct instance *in, uint64_t lo, uint64_t hi);

/* Maps a new instance within reach of [lo, hi), through held thread 0 of
 * t. control: the process's control page if it has one, else 0 (this
 * instance gets one). 0 or -errno, with a reason in why. */
int instance_create(struct tracee *t, uint64_t syscall_insn, const struct maps *maps, uint64_t lo, uint64_t hi,
		    uint64_t live_buckets, uint64_t control, struct instance *out, char *why, size_t why_len);
/* Maps a new control page at addr (a forked child has none: DONTFORK). */
int instance_new_control(struct tracee *t, uint64_t syscall_insn, uint64_t addr);
/* memwatch's own mapping of the target's control page at addr. */
struct mwa_control *control_map(pid_t pid, uint64_t addr);
void control_unmap(struct mwa_control *c);

/* Zeroes the slots and the live set (threads held: MADV_DONTNEED). */
int instance_reset(struct tracee *t, uint64_t syscall_insn, const struct instance *in);
/* Writes the state's parameters (enabled last). */
int instance_configure(pid_t pid, const struct instance *in, uint64_t sample_bytes, bool alloc_only);
int instance_write_header(pid_t pid, const struct instance *in);

/* Per-instance addresses. */
uint64_t instance_state(const struct instance *in);
uint64_t instance_slots(const struct instance *in);
uint64_t instance_live(const struct instance *in);
uint64_t instance_sym(const struct instance *in, uint64_t sym_off);
uint64_t instance_patch_area(const struct instance *in);

#endif
