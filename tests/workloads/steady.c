/*
 * A steady live heap that turns over fast: --blocks N blocks of --size B
 * bytes stay allocated while the program frees a random one and allocates
 * its replacement, as fast as it can, so every sampled block is freed within
 * a fraction of a second while the in-use total never changes.
 *   --blocks N   blocks kept live (default 16384)
 *   --size B     bytes each (default 4096)
 *   --wait       print "ready PID", wait for SIGUSR1 before allocating
 *   --count K    replace K blocks, then exit 0 (N + K allocations in all)
 * Prints "live BYTES" once the blocks are allocated, then turns them over
 * until a line arrives on stdin (or it ends), and exits 0. Each time it has
 * replaced 8 N blocks it prints "turned": all but e^-8 of the blocks live
 * then were allocated since the previous such line.
 */
#define _GNU_SOURCE
#include "common.h"

NOINLINE void *steady_block(size_t size)
{
	char *p = malloc(size);

	if (!p)
		exit(1);
	p[0] = 1;
	return p;
}

/* Exactly count replacements, then back. */
static void turn_over_count(void **blocks, size_t n, size_t size, unsigned long long count)
{
	unsigned long long x = 88172645463325252ull;

	for (unsigned long long i = 0; i < count; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		size_t k = x % n;
		free(blocks[k]);
		blocks[k] = steady_block(size);
	}
}

static void turn_over(void **blocks, size_t n, size_t size)
{
	struct line_reader r = { .len = 0 };
	unsigned long long x = 88172645463325252ull, replaced = 0;
	char line[8];

	for (;;) {
		for (int i = 0; i < 4096; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			size_t k = x % n;
			free(blocks[k]);
			blocks[k] = steady_block(size);
		}
		replaced += 4096;
		if (replaced >= 8 * n) {
			replaced = 0;
			printf("turned\n");
			fflush(stdout);
		}
		if (next_line(&r, line, sizeof(line), 0))
			return;
	}
}

int main(int argc, char **argv)
{
	const char *nblocks = flag_value(argc, argv, "--blocks"), *bsize = flag_value(argc, argv, "--size");
	const char *count = flag_value(argc, argv, "--count");
	size_t n = nblocks ? strtoul(nblocks, NULL, 0) : 16384, size = bsize ? strtoul(bsize, NULL, 0) : 4096;
	void **blocks = calloc(n ? n : 1, sizeof(*blocks));

	if (!blocks || !n || !size)
		return 2;
	if (has_flag(argc, argv, "--wait"))
		wait_for_go();
	for (size_t i = 0; i < n; i++)
		blocks[i] = steady_block(size);
	printf("live %zu\n", n * size);
	fflush(stdout);
	if (count)
		turn_over_count(blocks, n, size, strtoull(count, NULL, 0));
	else
		turn_over(blocks, n, size);
	return 0;
}
