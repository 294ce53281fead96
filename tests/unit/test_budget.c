/* --max-overhead's duty cycle against a simulated target: a CPU-bound
 * process that makes a known number of probe traps per second of its own
 * work, each costing a known system and user time while the probes are
 * attached. The budget sees only what memwatch sees of a real target: the
 * trap count and CPU time in whole clock ticks (10 ms); the test checks the
 * simulation's own accounting (the truth) against the budget. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "session/budget.h"

#define STEP_S 0.001	/* the event loop looks this often */
#define TICK_S 0.01	/* USER_HZ 100 */

struct target {
	double traps_per_useful_s;	/* while attached */
	double trap_sys_s, trap_user_s;	/* the truth, per trap */
	double own_sys_share;		/* of its own work: its syscalls */
	double busy;			/* share of the wall it runs (1: CPU-bound) */
	bool attached;
	double traps, cpu_s, sys_s;	/* exact, so no rate is rounded away */
	double probe_s, useful_s;	/* the truth */
	unsigned detaches;
};

/* One step of wall time: the target runs busy x STEP_S; attached, part of
 * that goes to its traps. */
static void step(struct target *t)
{
	double run = STEP_S * t->busy, cost = t->trap_sys_s + t->trap_user_s;
	double useful = t->attached ? run / (1 + t->traps_per_useful_s * cost) : run;
	double traps = t->attached ? useful * t->traps_per_useful_s : 0;

	t->traps += traps;
	t->cpu_s += run;
	t->sys_s += traps * t->trap_sys_s + useful * t->own_sys_share;
	t->probe_s += run - useful;
	t->useful_s += useful;
}

static void sample(const struct target *t, struct budget_sample *out)
{
	out->traps = (uint64_t)t->traps;
	out->cpu_ticks = (uint64_t)(t->cpu_s / TICK_S);
	out->sys_ticks = (uint64_t)(t->sys_s / TICK_S);
	if (out->sys_ticks > out->cpu_ticks)
		out->sys_ticks = out->cpu_ticks;
}

/* Runs seconds of target under the budget. */
static void run(struct budget *b, struct target *t, uint64_t *now, double seconds)
{
	struct budget_sample s;

	for (uint64_t end = *now + (uint64_t)(seconds * 1e9); *now < end; *now += (uint64_t)(STEP_S * 1e9)) {
		step(t);
		sample(t, &s);
		switch (budget_tick(b, *now, &s)) {
		case BUDGET_DETACH:
			t->attached = false;
			t->detaches++;
			budget_switched(b, *now, &s);
			break;
		case BUDGET_ATTACH:
			t->attached = true;
			budget_switched(b, *now, &s);
			break;
		case BUDGET_NONE:
			break;
		}
	}
}

static void start(struct budget *b, struct target *t, double limit, const struct budget_prior *prior, uint64_t now)
{
	struct budget_sample s;

	t->attached = true;
	if (!t->busy)
		t->busy = 1;
	sample(t, &s);
	budget_init(b, limit, prior, now, &s);
}

/* Probes that would slow the target by 60% (6 us a trap, 100,000 traps per
 * second of its own work). */
static struct target costly(void)
{
	return (struct target){ .traps_per_useful_s = 100000, .trap_sys_s = 5e-6, .trap_user_s = 1e-6 };
}

/* Attached a share f of the wall, probes that would cost A always on take
 * f A / (1 + A) of it; the budget L holds when that is L x the useful rest. */
static double expected_on(double always_on, double limit)
{
	return limit * (1 + always_on) / (always_on * (1 + limit));
}

static void check_holds(double limit)
{
	struct target t = costly();
	struct budget_prior prior = { t.trap_sys_s, t.trap_user_s };
	struct budget b;
	uint64_t now = 1000000000ull;

	start(&b, &t, limit, &prior, now);
	run(&b, &t, &now, 20);	/* converging */
	struct target at20 = t;
	run(&b, &t, &now, 100);
	budget_finish(&b, now, &(struct budget_sample){ 0 });
	double probe = t.probe_s - at20.probe_s, useful = t.useful_s - at20.useful_s;
	/* After convergence the truth is the budget within 10% of itself,
	 * over the whole run too (the first window is paid back). */
	assert_float_equal(probe / useful, limit, 0.1 * limit);
	assert_float_equal(t.probe_s / t.useful_s, limit, 0.1 * limit);
	/* The budget's own estimates are the truth's. */
	assert_float_equal(budget_always_on(&b), 0.6, 0.06);
	assert_float_equal(b.cost_per_trap, 6e-6, 0.3e-6);
	/* A steady duty cycle: about one detach per 1 s period over these
	 * 100 s, not one per 50 ms check, and attached the share the
	 * arithmetic says. */
	unsigned detaches = t.detaches - at20.detaches;
	assert_in_range(detaches, 70, 110);
	assert_float_equal((double)b.on_ns / b.total_ns, expected_on(0.6, limit), 0.15 * expected_on(0.6, limit));
}

static void test_holds_5_percent(void **state)
{
	check_holds(0.05);
}

static void test_holds_10_percent(void **state)
{
	check_holds(0.10);
}

static void test_holds_25_percent(void **state)
{
	check_holds(0.25);
}

/* A calibration 3x too cheap (a faster probe site than the target's): the
 * target's own system time corrects it. */
static void test_measured_cost_overrides_the_prior(void **state)
{
	struct target t = costly();
	struct budget_prior prior = { t.trap_sys_s / 3, t.trap_user_s };
	struct budget b;
	uint64_t now = 0;

	start(&b, &t, 0.10, &prior, now);
	run(&b, &t, &now, 120);
	assert_float_equal(b.trap_sys_s, t.trap_sys_s, 0.1 * t.trap_sys_s);
	assert_float_equal(t.probe_s / t.useful_s, 0.10, 0.015);
}

/* A target whose own work is 30% system time: only the system time beyond
 * that share is the traps'. */
static void test_own_system_time_is_not_the_probes(void **state)
{
	struct target t = costly();
	struct budget_prior prior = { 2e-6, 1e-6 };
	struct budget b;
	uint64_t now = 0;

	t.own_sys_share = 0.3;
	start(&b, &t, 0.10, &prior, now);
	run(&b, &t, &now, 120);
	assert_float_equal(b.own_sys_share, 0.3, 0.02);
	assert_float_equal(b.trap_sys_s, t.trap_sys_s, 0.1 * t.trap_sys_s);
	assert_float_equal(t.probe_s / t.useful_s, 0.10, 0.015);
}

/* A target that runs a quarter of the time (blocks the rest): the budget is
 * of its own CPU time, which earns credit only while it runs. */
static void test_partly_idle_target(void **state)
{
	struct target t = costly();
	struct budget_prior prior = { t.trap_sys_s, t.trap_user_s };
	struct budget b;
	uint64_t now = 0;

	t.busy = 0.25;
	start(&b, &t, 0.10, &prior, now);
	run(&b, &t, &now, 120);
	assert_float_equal(t.probe_s / t.useful_s, 0.10, 0.015);
}

/* Probes cheaper than the budget stay attached: never detached. */
static void test_cheap_probes_stay_attached(void **state)
{
	struct target t = costly();
	struct budget_prior prior = { t.trap_sys_s, t.trap_user_s };
	struct budget b;
	uint64_t now = 0;

	t.traps_per_useful_s = 5000;	/* 3% always on */
	start(&b, &t, 0.10, &prior, now);
	run(&b, &t, &now, 20);
	budget_finish(&b, now, &(struct budget_sample){ 0 });
	assert_int_equal(t.detaches, 0);
	assert_true(t.attached && b.on_ns == b.total_ns);
	assert_float_equal(budget_always_on(&b), 0.03, 0.005);
}

/* No traps: nothing to cut, and no calibration needed to know it. */
static void test_idle_target(void **state)
{
	struct target t = costly();
	struct budget_prior none = { 0, 0 };
	struct budget b;
	uint64_t now = 0;

	t.traps_per_useful_s = 0;
	start(&b, &t, 0.05, &none, now);
	run(&b, &t, &now, 5);
	assert_int_equal(t.detaches, 0);
	assert_true(budget_always_on(&b) == 0);
}

/* Without a calibration the target's system time alone measures the traps:
 * the budget holds, less the user time it cannot see. */
static void test_without_calibration(void **state)
{
	struct target t = costly();
	struct budget_prior none = { 0, 0 };
	struct budget b;
	uint64_t now = 0;

	start(&b, &t, 0.10, &none, now);
	run(&b, &t, &now, 120);
	assert_float_equal(b.cost_per_trap, t.trap_sys_s, 0.1 * t.trap_sys_s);
	/* 5 of the 6 us seen: 10% x 6/5. */
	assert_float_equal(t.probe_s / t.useful_s, 0.12, 0.02);
}

static void test_read_cpu_of_self(void **state)
{
	struct budget_sample before = { 0 }, after = { 0 };
	volatile uint64_t spin = 0;

	assert_int_equal(budget_read_cpu(getpid(), &before), 0);
	do {
		for (int i = 0; i < 1000000; i++)
			spin++;
		assert_int_equal(budget_read_cpu(getpid(), &after), 0);
	} while (after.cpu_ticks < before.cpu_ticks + 2);
	assert_true(after.sys_ticks <= after.cpu_ticks);
	assert_int_equal(budget_read_cpu(1 << 23, &after), -1);	/* no such pid */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_holds_5_percent),
		cmocka_unit_test(test_holds_10_percent),
		cmocka_unit_test(test_holds_25_percent),
		cmocka_unit_test(test_measured_cost_overrides_the_prior),
		cmocka_unit_test(test_own_system_time_is_not_the_probes),
		cmocka_unit_test(test_partly_idle_target),
		cmocka_unit_test(test_cheap_probes_stay_attached),
		cmocka_unit_test(test_idle_target),
		cmocka_unit_test(test_without_calibration),
		cmocka_unit_test(test_read_cpu_of_self),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
