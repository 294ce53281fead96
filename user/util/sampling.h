/* Poisson sampling by bytes: the table the BPF sampler draws from, and the
 * weights that turn samples back into estimates. */
#ifndef MW_SAMPLING_H
#define MW_SAMPLING_H

#include <stddef.h>
#include <stdint.h>

/* edges[k] = rate * -ln(k / ncells) for k = 1..ncells; edges[0] is unused
 * (draws from the first cell recurse). */
void exp_edges_fill(uint64_t *edges, size_t ncells, uint64_t rate);
/* Mean of the draws the BPF sampler makes from these edges. */
double exp_edges_mean(const uint64_t *edges, size_t ncells);
/* An exact Exp(rate) draw, for seeding the per-CPU countdowns. */
uint64_t exp_draw_exact(uint64_t rate);
/* How many allocations of size bytes one sample stands for. */
double sample_weight(uint64_t size, uint64_t rate);

#endif
