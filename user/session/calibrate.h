/* What a uprobe trap costs on this machine beyond the system time the kernel
 * charges for it: the time a thread's own code runs slower after the trap
 * returns (translation and cache entries refilled; without PCID, page-table
 * isolation flushes the TLB at every kernel entry), and the trap's last
 * steps with interrupts off, whose clock ticks land in user time. Measured
 * on memwatch's own thread: a function shaped like free's entry, called in a
 * loop with an empty program probed on it and without, timed with the
 * thread's CPU clock, less the system time getrusage charges it. */
#ifndef MW_CALIBRATE_H
#define MW_CALIBRATE_H

#include "kernel/heapbpf.h"

struct trap_cost {
	double sys_s;		/* system time per trap, here */
	double user_s;		/* user time per trap beyond the call's own */
	unsigned long calls;	/* probed calls timed */
};

/* 0 or -errno. */
int calibrate_trap_cost(enum attach_mode mode, struct trap_cost *out);

#endif
