/* Which frames of a frame-pointer walk can be trusted. The walk reads
 * [rbp+8] as the next return address; that holds only while every function
 * passed through keeps its frame in %rbp. Where one does not, the stack is
 * cut and ends in a named truncation frame instead of garbage. */
#ifndef MW_FPCHECK_H
#define MW_FPCHECK_H

#include <stdint.h>

#include "util/hashmap.h"

struct procs;
struct process;

struct fpcheck {
	struct hmap verdicts;	/* (objfile, function start) -> keeps a frame pointer */
	struct hmap reasons;	/* interned truncation frame names */
};

void fpcheck_init(struct fpcheck *fc);
void fpcheck_free(struct fpcheck *fc);
/* frames[0] is the probed pc, frames[1] the caller read from [sp], the rest
 * the kernel's walk. Returns how many leading frames to keep; when fewer than
 * n, *why is the truncation frame's name (interned). */
uint32_t fpcheck_trusted(struct fpcheck *fc, struct procs *ps, struct process *p, const uint64_t *frames,
			 uint32_t n, const char **why);

#endif
