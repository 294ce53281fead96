#include "util/sampling.h"

#include <math.h>
#include <stdlib.h>
#include <sys/random.h>

void exp_edges_fill(uint64_t *edges, size_t ncells, uint64_t rate)
{
	for (size_t k = 1; k <= ncells; k++)
		edges[k] = (uint64_t)llround(-(double)rate * log((double)k / ncells));
	edges[0] = edges[1];
}

/* A draw from cell k >= 1 is uniform between edges[k + 1] and edges[k]; a
 * draw from cell 0 adds edges[1] to a draw from cells 1..n-1 (BPF ORs 1 into
 * the redrawn cell, so even cells map onto the odd one above them). */
double exp_edges_mean(const uint64_t *edges, size_t ncells)
{
	double all = 0, odd_only = 0;

	for (size_t k = 1; k < ncells; k++) {
		double mid = (edges[k] + (double)edges[k + 1]) / 2;
		all += mid;
		if (k & 1)
			odd_only += 2 * mid;
	}
	return (all + edges[1] + odd_only / ncells) / ncells;
}

uint64_t exp_draw_exact(uint64_t rate)
{
	uint64_t r = 0;

	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = ((uint64_t)random() << 32) ^ (uint64_t)random();
	double u = ((r >> 11) + 0.5) / 9007199254740992.0; /* (0, 1) */
	return (uint64_t)(-(double)rate * log(u)) + 1;
}

double sample_weight(uint64_t size, uint64_t rate)
{
	if (rate <= 1)
		return 1.0;
	if (size == 0)
		return 0.0;
	return 1.0 / -expm1(-(double)size / (double)rate);
}
