/* --max-overhead: a duty cycle that keeps the target's slowdown near a
 * budget, for probes that trap into the kernel (uprobes). A trap runs in the
 * context of the thread that hit it and the kernel charges it to that
 * thread's system time, so while the probes are attached the target's system
 * time per trap, less the system time its own work takes (read while they
 * are detached), is what a trap costs it in the kernel: measured in the
 * target, at run time, whatever the machine, the probe site or the BPF
 * program. A calibration (calibrate.h) gives the first estimate, before the
 * target has run long enough for its clock ticks to tell, and what a trap
 * costs beyond its system time (user time after it returns). The run's probe
 * time (traps x cost) is held to the budget x the target's own CPU time: the
 * probes stay attached while that credit lasts, checked every 50 ms, and
 * detach until it pays for the next window; the share of time attached
 * follows from the cost and the trap rate. Probes that do not trap cost no
 * system time and stay attached. */
#ifndef MW_BUDGET_H
#define MW_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

enum budget_action {
	BUDGET_NONE,
	BUDGET_DETACH,
	BUDGET_ATTACH,
};

/* What the target did so far: probe traps (entries and returns), and CPU
 * time of all its threads in clock ticks (/proc/PID/stat). */
struct budget_sample {
	uint64_t traps;
	uint64_t cpu_ticks, sys_ticks;
};

/* Windows of one kind (probes attached, or detached), added up with older
 * windows weighing less. */
struct budget_sums {
	double wall_s, cpu_s, sys_s, traps;
};

/* Calibrated per trap: system time, and user time beyond the call's own;
 * zeros when unknown. */
struct budget_prior {
	double sys_s, user_s;
};

struct budget {
	double limit;			/* allowed slowdown, 0.1 = 10% */
	double tick_s;			/* seconds per clock tick */
	bool attached;
	uint64_t phase_start_ns, phase_end_ns;
	struct budget_sample first;	/* at budget_init */
	struct budget_sample at_start;	/* of the current window */
	struct budget_sample last;	/* the latest */
	struct budget_sums on, off;
	struct budget_prior prior;
	double trap_sys_s;		/* system time per trap: measured, from the prior */
	double cost_per_trap;		/* seconds of target CPU per trap; 0: none measured */
	double own_sys_share;		/* of the target's CPU while detached */
	double on_fraction;		/* planned share of each period attached */
	double credit_s;		/* limit x useful time - probe time, at the last decision */
	uint64_t on_ns, total_ns;	/* attached, and in all */
	unsigned windows;		/* attached windows begun */
};

/* limit: the allowed slowdown (0.1 = 10%). The probes are attached now. */
void budget_init(struct budget *b, double limit, const struct budget_prior *prior, uint64_t now_ns,
		 const struct budget_sample *now);
/* Called often; says when to detach or attach the probes. */
enum budget_action budget_tick(struct budget *b, uint64_t now_ns, const struct budget_sample *now);
/* The detach or attach budget_tick asked for is done: the window and its
 * measurements start now. */
void budget_switched(struct budget *b, uint64_t now_ns, const struct budget_sample *now);
/* Ends the accounting at now_ns. */
void budget_finish(struct budget *b, uint64_t now_ns, const struct budget_sample *now);

/* Target CPU seconds spent in the probes since budget_init (estimated:
 * traps x cost per trap), and in its own work. */
double budget_probe_s(const struct budget *b);
double budget_useful_s(const struct budget *b);
/* What the probes would cost the target if always attached (probe time
 * over its own CPU time while attached, recent windows); 0 when unknown. */
double budget_always_on(const struct budget *b);
/* Traps per second while attached (recent windows). */
double budget_trap_rate(const struct budget *b);

/* Reads a process's CPU ticks (all threads) from /proc/PID/stat. */
int budget_read_cpu(int pid, struct budget_sample *out);

#endif
