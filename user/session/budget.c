#include "session/budget.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#include "proc/procstat.h"

#define PERIOD_S 1.0		/* an attached and a detached window, planned */
#define CHECK_S 0.05		/* attached, the credit is checked this often */
#define OFF_CHECK_S 1.0		/* and detached, this often */
#define MIN_ON_S 0.02		/* shorter windows are mostly attach and detach */
#define MIN_OFF_S 0.01
#define MEMORY_S 5.0		/* windows this much older weigh 1/e as much */
#define PRIOR_TRAPS 2000.0	/* the calibrated cost weighs as this many traps */
#define MAX_OWN_SYS 0.95	/* a target nearly all syscalls: keep the estimate finite */

void budget_init(struct budget *b, double limit, const struct budget_prior *prior, uint64_t now_ns,
		 const struct budget_sample *now)
{
	long hz = sysconf(_SC_CLK_TCK);

	memset(b, 0, sizeof(*b));
	b->limit = limit;
	b->prior = *prior;
	b->tick_s = 1.0 / (hz > 0 ? hz : 100);
	b->cost_per_trap = prior->sys_s > 0 ? prior->sys_s + prior->user_s : 0;
	b->trap_sys_s = prior->sys_s;
	b->attached = true;
	b->windows = 1;
	b->on_fraction = 1.0;
	b->phase_start_ns = now_ns;
	b->phase_end_ns = now_ns + (uint64_t)(CHECK_S * 1e9);
	b->first = b->at_start = b->last = *now;
}

static double rate(double x, double wall_s)
{
	return wall_s > 0 ? x / wall_s : 0;
}

static double cpu_s(const struct budget *b, const struct budget_sample *from, const struct budget_sample *to)
{
	return (double)(to->cpu_ticks - from->cpu_ticks) * b->tick_s;
}

double budget_probe_s(const struct budget *b)
{
	double cpu = cpu_s(b, &b->first, &b->last);
	double probe = b->cost_per_trap * (double)(b->last.traps - b->first.traps);

	return probe < cpu ? probe : cpu;
}

double budget_useful_s(const struct budget *b)
{
	return cpu_s(b, &b->first, &b->last) - budget_probe_s(b);
}

double budget_trap_rate(const struct budget *b)
{
	return rate(b->on.traps, b->on.wall_s);
}

/* Target CPU per second attached that goes to the probes. */
static double probe_rate(const struct budget *b)
{
	double cpu = rate(b->on.cpu_s, b->on.wall_s), probes = b->cost_per_trap * budget_trap_rate(b);

	return probes < cpu ? probes : cpu;
}

/* Attached, the probes take a share of the target's CPU; always attached
 * they would slow it by share / (1 - share). A share near 1 is mostly tick
 * noise: capped at 99%. */
double budget_always_on(const struct budget *b)
{
	double cpu = rate(b->on.cpu_s, b->on.wall_s), share = cpu > 0 ? probe_rate(b) / cpu : 0;

	if (share > 0.99)
		share = 0.99;
	return share / (1 - share);
}

/* The window that just ended, into the sums of its kind. */
static void add_window(struct budget *b, struct budget_sums *sums, double wall_s, const struct budget_sample *now)
{
	double keep = exp(-wall_s / MEMORY_S);

	sums->wall_s = keep * sums->wall_s + wall_s;
	sums->cpu_s = keep * sums->cpu_s + cpu_s(b, &b->at_start, now);
	sums->sys_s = keep * sums->sys_s + (double)(now->sys_ticks - b->at_start.sys_ticks) * b->tick_s;
	sums->traps = keep * sums->traps + (double)(now->traps - b->at_start.traps);
}

/* The system time of a trap: the target's system time while attached
 * beyond the share its own work takes while detached (its syscalls, its
 * page faults), per trap, with the calibrated cost weighing as PRIOR_TRAPS
 * traps so that a few coarse clock ticks do not decide alone. */
static void measure_cost(struct budget *b)
{
	double own = b->off.cpu_s > 0 ? b->off.sys_s / b->off.cpu_s : 0;

	if (own > MAX_OWN_SYS)
		own = MAX_OWN_SYS;
	double probes = (b->on.sys_s - own * b->on.cpu_s) / (1 - own);
	if (probes < 0)
		probes = 0;
	if (probes > b->on.cpu_s)
		probes = b->on.cpu_s;
	double prior_traps = b->prior.sys_s > 0 ? PRIOR_TRAPS : 0;
	if (prior_traps + b->on.traps <= 0)
		return;
	b->own_sys_share = own;
	b->trap_sys_s = (b->prior.sys_s * prior_traps + probes) / (prior_traps + b->on.traps);
	b->cost_per_trap = b->trap_sys_s > 0 ? b->trap_sys_s + b->prior.user_s : 0;
}

/* Credit (limit x useful - probe time) lost per second attached, and earned
 * per second detached: with the target's CPU rate detached, or attached
 * until a detached window was seen. */
static double spend_rate(const struct budget *b)
{
	return probe_rate(b) * (1 + b->limit) - b->limit * rate(b->on.cpu_s, b->on.wall_s);
}

static double earn_rate(const struct budget *b)
{
	const struct budget_sums *s = b->off.wall_s > 0 ? &b->off : &b->on;

	return b->limit * rate(s->cpu_s, s->wall_s);
}

static void start_window(struct budget *b, uint64_t now_ns, const struct budget_sample *now, bool attached,
			 double seconds)
{
	b->attached = attached;
	b->phase_start_ns = now_ns;
	b->phase_end_ns = now_ns + (uint64_t)(seconds * 1e9);
	b->at_start = *now;
}

static double clamp(double x, double lo, double hi)
{
	return x < lo ? lo : x > hi ? hi : x;
}

/* The attached window the duty cycle plans: its share of the period. */
static double planned_on_s(const struct budget *b, double spend, double earn)
{
	double share = earn + spend > 0 ? earn / (earn + spend) : 1.0;

	return clamp(share * PERIOD_S, MIN_ON_S, PERIOD_S);
}

/* Attached: stay while the probes fit the budget or the credit lasts, else
 * detach until the credit pays for the next planned window. */
static enum budget_action after_attached(struct budget *b, uint64_t now_ns, const struct budget_sample *now)
{
	double spend = spend_rate(b), earn = earn_rate(b);

	b->credit_s = b->limit * budget_useful_s(b) - budget_probe_s(b);
	if (b->cost_per_trap <= 0 || spend <= 0) {
		b->on_fraction = 1.0;
		start_window(b, now_ns, now, true, CHECK_S);
		return BUDGET_NONE;
	}
	b->on_fraction = earn / (earn + spend);
	double left = b->credit_s / spend;
	if (left >= MIN_ON_S) {
		start_window(b, now_ns, now, true, left < CHECK_S ? left : CHECK_S);
		return BUDGET_NONE;
	}
	double off = earn > 0 ? (spend * planned_on_s(b, spend, earn) - b->credit_s) / earn : OFF_CHECK_S;
	start_window(b, now_ns, now, false, clamp(off, MIN_OFF_S, OFF_CHECK_S));
	return BUDGET_DETACH;
}

/* Detached: attach once the credit pays for the planned window. */
static enum budget_action after_detached(struct budget *b, uint64_t now_ns, const struct budget_sample *now)
{
	double spend = spend_rate(b), earn = earn_rate(b);

	b->credit_s = b->limit * budget_useful_s(b) - budget_probe_s(b);
	double need = spend * planned_on_s(b, spend, earn) - b->credit_s;
	if (spend > 0 && need > 0) {
		double off = earn > 0 ? need / earn : OFF_CHECK_S;
		start_window(b, now_ns, now, false, clamp(off, MIN_OFF_S, OFF_CHECK_S));
		return BUDGET_NONE;
	}
	double on = spend > 0 ? b->credit_s / spend : CHECK_S;
	start_window(b, now_ns, now, true, clamp(on, MIN_ON_S, CHECK_S));
	b->windows++;
	return BUDGET_ATTACH;
}

enum budget_action budget_tick(struct budget *b, uint64_t now_ns, const struct budget_sample *now)
{
	b->last = *now;
	if (now_ns < b->phase_end_ns)
		return BUDGET_NONE;
	double wall = (double)(now_ns - b->phase_start_ns) / 1e9;
	b->total_ns += now_ns - b->phase_start_ns;
	if (!b->attached) {
		add_window(b, &b->off, wall, now);
		return after_detached(b, now_ns, now);
	}
	b->on_ns += now_ns - b->phase_start_ns;
	add_window(b, &b->on, wall, now);
	measure_cost(b);
	return after_attached(b, now_ns, now);
}

void budget_switched(struct budget *b, uint64_t now_ns, const struct budget_sample *now)
{
	/* Switching takes a while, with the probes on: not part of any
	 * window's rates, but in the run's probe time (from the trap count). */
	b->last = b->at_start = *now;
	b->total_ns += now_ns - b->phase_start_ns;
	if (!b->attached)
		b->on_ns += now_ns - b->phase_start_ns;
	b->phase_end_ns += now_ns - b->phase_start_ns;
	b->phase_start_ns = now_ns;
}

void budget_finish(struct budget *b, uint64_t now_ns, const struct budget_sample *now)
{
	b->last = *now;
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
