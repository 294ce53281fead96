/* Upper and lower bounds of the options that size memwatch's kernel
 * memory, derived from the machine: its memory (MemTotal), its possible
 * CPUs (per-CPU maps) and pid_max. No sized structure may take more than
 * 1/16 of the memory (the two event rings together count as one), and a
 * ring must hold the largest event, a sample with its stack. */
#ifndef MW_BOUNDS_H
#define MW_BOUNDS_H

#include <stdint.h>

#include "stacks/stack_mode.h"

#define BOUNDS_SHARE_OF_MEMORY 16	/* a sized structure takes at most 1/16 of it */
#define BOUNDS_RINGS 2		/* the heap side's and the kernel side's */
/* The defaults of the sizes, within the bounds. */
#define RING_DEFAULT (16u << 20)
#define RING_DEFAULT_ALL (4u << 20)
#define LIVE_DEFAULT 262144
#define PROCESSES_DEFAULT 4096

struct machine {
	uint64_t mem_bytes;	/* MemTotal */
	uint32_t ncpus;		/* possible CPUs */
	uint32_t pid_max;
};

/* 0 or -errno (a field that cannot be read is left at a safe guess). */
int machine_read(struct machine *m);

struct bounds {
	uint32_t ring_min, ring_max;	/* powers of two */
	uint32_t live_max, processes_max;
};

void bounds_of(const struct machine *m, enum stack_mode mode, uint32_t stack_bytes, struct bounds *b);
/* Kernel memory of the live-block map full of n blocks, of the per-process
 * maps of --all for n processes. */
uint64_t bounds_live_bytes(uint64_t n);
uint64_t bounds_process_bytes(uint64_t n, uint32_t ncpus);

#endif
