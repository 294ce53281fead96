/* What one probe hit costs the target on this machine, in the attach mode
 * memwatch uses: empty programs on two functions of memwatch's own, shaped
 * like an allocator's entry and like free's, timed with and without. */
#ifndef MW_CALIBRATE_H
#define MW_CALIBRATE_H

#include "kernel/heapbpf.h"

struct probe_cost {
	double alloc_s;		/* per allocation call (entry, and return if any) */
	double free_s;		/* per release call */
};

/* 0 or -errno. */
int calibrate_probe_cost(enum attach_mode mode, struct probe_cost *out);

#endif
