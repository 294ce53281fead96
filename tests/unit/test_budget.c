/* --max-overhead's duty cycle against a simulated target: a CPU-bound
 * process whose allocator probes, while attached, take a known share of its
 * CPU. The simulation follows the budget's detach and attach requests in
 * 10 ms steps, one clock tick each, so nothing is lost to tick rounding. */
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

#define STEP_NS 10000000ull	/* one clock tick (USER_HZ 100) */

struct target {
	double hits_per_s;	/* allocation probe hits while attached */
	double cost;		/* CPU seconds per hit */
	bool attached;
	double hits;		/* fractional, so no rate is rounded away */
	struct budget_sample now;
	double probe_s, useful_s;	/* the truth */
};

/* One 10 ms step of a process that always runs: while attached, part of
 * the step goes to the probes. */
static void step(struct target *t)
{
	double probe = 0;

	if (t->attached) {
		t->hits += t->hits_per_s * 0.01;
		probe = t->hits_per_s * 0.01 * t->cost;
	}
	t->now.alloc_hits = (uint64_t)t->hits;
	t->now.cpu_ticks++;
	t->probe_s += probe;
	t->useful_s += 0.01 - probe;
}

/* Runs seconds of target under the budget; returns the windows it made. */
static unsigned run(struct budget *b, struct target *t, uint64_t *now, double seconds)
{
	unsigned switches = 0;

	for (uint64_t end = *now + (uint64_t)(seconds * 1e9); *now < end; *now += STEP_NS) {
		step(t);
		switch (budget_tick(b, *now, &t->now)) {
		case BUDGET_DETACH:
			t->attached = false;
			budget_switched(b, *now, &t->now);
			switches++;
			break;
		case BUDGET_ATTACH:
			t->attached = true;
			budget_switched(b, *now, &t->now);
			switches++;
			break;
		case BUDGET_NONE:
			break;
		}
	}
	return switches;
}

/* Probes that would cost the target 50% (a third of its CPU): a 10% budget
 * keeps them attached about a quarter of the time, and the run's probe time
 * comes to 10% of its useful time. */
static void test_duty_cycle_meets_the_limit(void **state)
{
	struct target t = { .hits_per_s = 100000, .cost = 1.0 / 300000, .attached = true };
	struct budget b;
	uint64_t now = 1000000000ull;

	budget_init(&b, 0.10, t.cost, 0, now, &t.now);
	unsigned switches = run(&b, &t, &now, 200);
	budget_finish(&b, now);
	/* The estimate of what always-on probes cost: exact, from the
	 * calibrated cost per hit. */
	assert_float_equal(b.overhead, 0.5, 0.01);
	assert_float_equal(b.cost_per_hit, t.cost, 1e-12);
	/* The outcome, from the simulation's own accounting: the limit, but
	 * for the rounding of each window to whole 10 ms steps. */
	double overhead = t.probe_s / t.useful_s;
	assert_float_equal(overhead, 0.10, 0.003);
	/* Attached a share f of the time, the probes take f/3 of the CPU:
	 * f/3 = 0.1 (1 - f/3) makes f = 0.3/1.1, 27%. */
	double on = (double)b.on_ns / b.total_ns;
	assert_float_equal(on, 0.3 / 1.1, 0.01);
	assert_true(switches >= 2 * 90);	/* a window per 2 s period */
	assert_int_equal(b.windows, (switches + 1) / 2);
}

/* Probes cheaper than the budget stay attached: one window, never cut. */
static void test_cheap_probes_stay_attached(void **state)
{
	struct target t = { .hits_per_s = 10000, .cost = 1.0 / 1000000, .attached = true };
	struct budget b;
	uint64_t now = 0;

	budget_init(&b, 0.10, t.cost, 0, now, &t.now);
	assert_int_equal(run(&b, &t, &now, 20), 0);
	budget_finish(&b, now);
	assert_true(t.attached);
	assert_float_equal(b.overhead, 0.01 / 0.99, 0.001);
	assert_true(b.on_ns == b.total_ns && b.total_ns >= 19900000000ull);
}

/* Too few hits to measure: nothing is known, nothing is cut. */
static void test_idle_target(void **state)
{
	struct target t = { .hits_per_s = 10, .cost = 0.001, .attached = true };
	struct budget b;
	uint64_t now = 0;

	budget_init(&b, 0.05, t.cost, 0, now, &t.now);
	assert_int_equal(run(&b, &t, &now, 5), 0);
	assert_true(b.overhead == 0 && b.cost_per_hit == 0);
}

/* Without a calibration the target's system time per hit stands in. */
static void test_estimated_from_system_time(void **state)
{
	struct target t = { .hits_per_s = 100000, .cost = 1.0 / 300000, .attached = true };
	struct budget b;
	uint64_t now = 0;

	budget_init(&b, 0.10, 0, 0, now, &t.now);
	/* The probes' time shows as system time, in whole ticks. */
	for (int i = 0; i < 10; i++) {
		step(&t);
		t.now.sys_ticks = (uint64_t)(t.probe_s * 100);
		now += STEP_NS;
		budget_tick(&b, now, &t.now);
	}
	assert_true(b.cost_per_hit > 0);
	/* 3 whole ticks of probes (of 3.3) over 10,000 hits in the first
	 * 100 ms window: 3 us per hit, for 3.3 in truth. */
	assert_float_equal(b.cost_per_hit, 3.0 / 100 / 10000, 1e-12);
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
		cmocka_unit_test(test_duty_cycle_meets_the_limit),
		cmocka_unit_test(test_cheap_probes_stay_attached),
		cmocka_unit_test(test_idle_target),
		cmocka_unit_test(test_estimated_from_system_time),
		cmocka_unit_test(test_read_cpu_of_self),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
