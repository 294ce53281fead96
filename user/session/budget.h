/* --max-overhead: a duty cycle that keeps the target's slowdown near a
 * budget. While the heap probes are attached memwatch measures what each
 * probe hit costs the target (its system time per hit) and how often they
 * hit; from that it attaches them for only the share of each period the
 * budget allows. */
#ifndef MW_BUDGET_H
#define MW_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

enum budget_action {
	BUDGET_NONE,
	BUDGET_DETACH,
	BUDGET_ATTACH,
};

/* What the target did so far: probe hits, and CPU time (ticks). */
struct budget_sample {
	uint64_t alloc_hits, free_hits;
	uint64_t cpu_ticks, sys_ticks;
};

struct budget {
	double limit;			/* allowed slowdown, 0.1 = 10% */
	uint64_t period_ns;
	bool attached;
	uint64_t phase_start_ns, phase_end_ns;
	struct budget_sample at_start;
	double on_fraction;		/* of each period */
	double alloc_cost, free_cost;	/* seconds per hit (calibrated), or 0 */
	double cost_per_hit;		/* seconds of target CPU per probe hit */
	double overhead;		/* estimated slowdown with probes always on */
	double probe_s, useful_s;	/* target CPU in probes and in its own work so far */
	double on_probe_s, on_useful_s;	/* the same during on-windows only */
	uint64_t on_ns, total_ns;
	unsigned windows;
};

/* alloc_cost, free_cost: calibrated seconds per probe hit, or 0 to estimate
 * them from the target's system time. */
void budget_init(struct budget *b, double limit, double alloc_cost, double free_cost, uint64_t now_ns,
		 const struct budget_sample *now);
/* Called often; says when to detach or attach the heap probes. */
enum budget_action budget_tick(struct budget *b, uint64_t now_ns, const struct budget_sample *now);
/* The detach or attach budget_tick asked for is done: phases and their
 * measurements start now. */
void budget_switched(struct budget *b, uint64_t now_ns, const struct budget_sample *now);
/* Ends the accounting at now_ns. */
void budget_finish(struct budget *b, uint64_t now_ns);
/* Reads a process's CPU ticks (all threads) from /proc/PID/stat. */
int budget_read_cpu(int pid, struct budget_sample *out);

#endif
