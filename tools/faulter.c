// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * faulter: a page-fault-heavy loop for the kernel-side benchmark
 * (tools/bench-pages.sh).
 *
 *   faulter [--rounds N] [--mib M] [--wait]
 *
 * Maps M MiB (default 16) of anonymous memory once; each of N rounds
 * (default 200) touches every page (one page fault each) and then gives
 * them back with madvise(MADV_DONTNEED), so the next round faults them in
 * again: the pattern of an allocator that purges eagerly. Only the loop is
 * timed; prints one line
 *
 *   ns_per_fault=<float>
 *
 * (loop time / pages touched; the madvise calls are part of the loop).
 * --wait: print "ready <pid>" and block until SIGUSR1, for memwatch -p.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common.h"	/* tests/workloads: wait_for_go */

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	unsigned long rounds = 200, mib = 16;
	int wait = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--mib") && i + 1 < argc)
			mib = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--wait"))
			wait = 1;
		else {
			fprintf(stderr, "usage: faulter [--rounds N] [--mib M] [--wait]\n");
			return 2;
		}
	}
	size_t len = mib << 20, page = (size_t)sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || !rounds || !mib) {
		perror("faulter: mmap");
		return 1;
	}
	if (wait)
		wait_for_go();
	double start = now_ns();
	for (unsigned long r = 0; r < rounds; r++) {
		for (size_t off = 0; off < len; off += page)
			p[off] = (char)r;
		if (madvise(p, len, MADV_DONTNEED)) {
			perror("faulter: madvise");
			return 1;
		}
	}
	printf("ns_per_fault=%.1f\n", (now_ns() - start) / ((double)rounds * (len / page)));
	return 0;
}
