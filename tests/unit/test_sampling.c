/* Sampling math: the exponential table the BPF sampler draws from, and the
 * weights that unsample. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "memwatch.h"
#include "util/sampling.h"

static uint64_t edges[MW_EXP_SIZE + 1];

static void test_edges_follow_minus_log(void **state)
{
	const uint64_t rate = 524288;

	exp_edges_fill(edges, MW_EXP_SIZE, rate);
	assert_int_equal(edges[MW_EXP_SIZE], 0);
	for (size_t k = 1; k < MW_EXP_SIZE; k++) {
		double want = -(double)rate * log((double)k / MW_EXP_SIZE);
		assert_true(fabs((double)edges[k] - want) <= 0.5);
		assert_true(edges[k] > edges[k + 1]);
	}
}

/* The draws' mean must be the sampling interval: a biased mean biases
 * every estimate by the same factor. */
static void test_draw_mean_is_rate(void **state)
{
	const uint64_t rates[] = { 4096, 65536, 524288, 1 << 24 };

	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		exp_edges_fill(edges, MW_EXP_SIZE, rates[i]);
		double mean = exp_edges_mean(edges, MW_EXP_SIZE);
		assert_true(fabs(mean / rates[i] - 1) < 2e-4);
	}
}

/* The smallest possible draw must be far below typical small allocations,
 * or small objects right after a sample could never be sampled. */
static void test_draws_reach_small_values(void **state)
{
	exp_edges_fill(edges, MW_EXP_SIZE, 524288);
	/* Cell N-1 interpolates from edges[N-1] down to 0. */
	assert_true(edges[MW_EXP_SIZE - 1] < 200);
}

static void test_exact_draws(void **state)
{
	const uint64_t rate = 10000;
	const int n = 200000;
	double sum = 0, squares = 0;

	for (int i = 0; i < n; i++) {
		uint64_t d = exp_draw_exact(rate);
		assert_true(d >= 1);
		sum += d;
		squares += (double)d * d;
	}
	/* The mean of n draws is within 4 standard errors (the draws' own
	 * standard deviation over sqrt(n), about rate / sqrt(n)) of the rate. */
	double mean = sum / n, sd = sqrt(squares / n - mean * mean);
	if (fabs(mean - rate) >= 4 * sd / sqrt(n))
		fail_msg("mean of %d draws %.1f, rate %llu, 4 SE %.1f", n, mean, (unsigned long long)rate,
			 4 * sd / sqrt(n));
}

static void test_weights(void **state)
{
	/* Recording everything: no scaling. */
	assert_true(sample_weight(100, 1) == 1.0);
	/* Small objects stand for about rate/size allocations. */
	double w = sample_weight(16, 524288);
	assert_true(fabs(w - 524288.0 / 16) / w < 1e-3);
	/* Huge objects are always sampled. */
	assert_true(fabs(sample_weight(100 << 20, 524288) - 1.0) < 1e-9);
	/* The exact Poisson weight. */
	assert_true(fabs(sample_weight(524288, 524288) - 1 / (1 - exp(-1))) < 1e-12);
	assert_true(sample_weight(0, 524288) == 0.0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_edges_follow_minus_log),
		cmocka_unit_test(test_draw_mean_is_rate),
		cmocka_unit_test(test_draws_reach_small_values),
		cmocka_unit_test(test_exact_draws),
		cmocka_unit_test(test_weights),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
