#include "session/budget.h"

#include <string.h>

#include "proc/procstat.h"

#define PERIOD_NS 2000000000ull	/* each attach and detach costs the target too */
#define FIRST_WINDOW_NS 100000000ull	/* measured with the probes on */
#define MIN_ON_NS 20000000ull	/* shorter windows are mostly attach/detach */
#define TICKS_PER_S 100.0	/* USER_HZ */

void budget_init(struct budget *b, double limit, double alloc_cost, double free_cost, uint64_t now_ns,
		 const struct budget_sample *now)
{
	memset(b, 0, sizeof(*b));
	b->limit = limit;
	b->alloc_cost = alloc_cost;
	b->free_cost = free_cost;
	b->period_ns = PERIOD_NS;
	b->attached = true;
	b->on_fraction = 1.0;
	b->phase_start_ns = now_ns;
	b->phase_end_ns = now_ns + FIRST_WINDOW_NS;
	b->at_start = *now;
}

/* After a window with the probes on: what the probes cost the target then,
 * and so what they would cost if always on. Calibrated costs per hit count
 * the traps' indirect cost too (a probed loop runs slower than its system
 * time says); without them the target's system time per hit stands in. */
static void measure(struct budget *b, const struct budget_sample *now)
{
	uint64_t allocs = now->alloc_hits - b->at_start.alloc_hits;
	uint64_t frees = now->free_hits - b->at_start.free_hits;
	double cpu = (now->cpu_ticks - b->at_start.cpu_ticks) / TICKS_PER_S;
	double sys = (now->sys_ticks - b->at_start.sys_ticks) / TICKS_PER_S;
	double probes;

	if (allocs + frees < 100)
		return;
	if (b->alloc_cost > 0) {
		probes = allocs * b->alloc_cost + frees * b->free_cost;
		b->cost_per_hit = probes / (allocs + frees);
	} else {
		if (sys <= 0)
			return;
		double cost = sys / (allocs + frees);
		/* Ticks are coarse: later, shorter windows weigh less. */
		b->cost_per_hit = b->cost_per_hit ? 0.7 * b->cost_per_hit + 0.3 * cost : cost;
		probes = (allocs + frees) * b->cost_per_hit;
	}
	double useful = cpu - probes;
	if (useful <= 0)
		return;
	b->probe_s += probes;
	b->useful_s += useful;
	/* CPU time comes in 10 ms ticks: estimate from all on-windows so far. */
	b->on_probe_s += probes;
	b->on_useful_s += useful;
	b->overhead = b->on_probe_s / b->on_useful_s;
}

/* The on-time of the next period that brings the whole run's probe time to
 * limit x useful time: windows that ran over (the first, measured with the
 * probes always on) are paid back. With the probes on, a share O / (1 + O)
 * of the target's time goes to them. */
static double next_on_fraction(const struct budget *b)
{
	double period = b->period_ns / 1e9, share = b->overhead / (1 + b->overhead);
	double allowed = b->limit * b->useful_s - b->probe_s;

	if (b->overhead <= b->limit)
		return 1.0;
	double on = (allowed + b->limit * period) / (share * (1 + b->limit));
	return on <= 0 ? 0 : on >= period ? 1.0 : on / period;
}

static void start_phase(struct budget *b, uint64_t now_ns, const struct budget_sample *now, bool attached)
{
	uint64_t on = (uint64_t)(b->on_fraction * b->period_ns);

	if (on < MIN_ON_NS)
		on = MIN_ON_NS;
	b->attached = attached;
	b->phase_start_ns = now_ns;
	b->phase_end_ns = now_ns + (attached ? on : (on < b->period_ns ? b->period_ns - on : 0));
	b->at_start = *now;
}

enum budget_action budget_tick(struct budget *b, uint64_t now_ns, const struct budget_sample *now)
{
	if (now_ns < b->phase_end_ns)
		return BUDGET_NONE;
	b->total_ns += now_ns - b->phase_start_ns;
	if (!b->attached) {
		/* Off: the target worked for itself alone. */
		b->useful_s += (now->cpu_ticks - b->at_start.cpu_ticks) / TICKS_PER_S;
		start_phase(b, now_ns, now, true);
		return BUDGET_ATTACH;
	}
	b->on_ns += now_ns - b->phase_start_ns;
	b->windows++;
	measure(b, now);
	b->on_fraction = next_on_fraction(b);
	if (b->on_fraction >= 1.0) {
		start_phase(b, now_ns, now, true);
		return BUDGET_NONE;
	}
	start_phase(b, now_ns, now, false);
	return BUDGET_DETACH;
}

void budget_switched(struct budget *b, uint64_t now_ns, const struct budget_sample *now)
{
	/* Attaching takes a while: what came before it is not the phase. */
	b->at_start = *now;
	b->total_ns += now_ns - b->phase_start_ns;
	if (!b->attached)
		b->on_ns += now_ns - b->phase_start_ns;	/* probes were on until now */
	b->phase_end_ns += now_ns - b->phase_start_ns;
	b->phase_start_ns = now_ns;
}

void budget_finish(struct budget *b, uint64_t now_ns)
{
	b->total_ns += now_ns - b->phase_start_ns;
	if (b->attached)
		b->on_ns += now_ns - b->phase_start_ns;
	b->phase_start_ns = now_ns;
}

int budget_read_cpu(int pid, struct budget_sample *out)
{
	struct proc_stat st;

	if (procstat_read(pid, &st))
		return -1;
	out->cpu_ticks = st.utime + st.stime;
	out->sys_ticks = st.stime;
	return 0;
}
