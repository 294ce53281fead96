// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * bench-unwind: what one stack costs memwatch's unwinder, through the rule
 * cache (the fast path) and through libdwfl, on this program's own stack
 * captured the way memwatch's BPF program captures one at a probe
 * (tests/unit/fixtures/unwind_capture.h). Built -O2 -fomit-frame-pointer,
 * like Debian's binaries, so that only CFI unwinds it.
 *
 *   make .output/bench-unwind && .output/bench-unwind
 *
 * For a 4-frame stack and a 40-frame one, prints the best of 7 batches (in
 * microseconds per unwind) each way and their ratio. The unit tests check
 * that both ways give the same frames; speed is measured here only.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proc/process.h"
#include "stacks/unwind.h"

#include "../tests/unit/fixtures/unwind_capture.h"

#define NOIPA __attribute__((noipa))
#define SNAPSHOT_CAP (512 * 1024)
#define BATCHES 7

static volatile int sink;

NOIPA static int capture(struct unwind_snapshot *s)
{
	UNWIND_CAPTURE(s);
	sink++;
	return (int)s->len;
}

NOIPA static int recurse(struct unwind_snapshot *s, int depth)
{
	int r = depth ? recurse(s, depth - 1) : capture(s);
	sink += r;
	return r + 1;
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static uintptr_t this_stack_top(void)
{
	pthread_attr_t attr;
	void *addr = NULL;
	size_t size = 0;

	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		pthread_attr_getstack(&attr, &addr, &size);
		pthread_attr_destroy(&attr);
	}
	return (uintptr_t)addr + size;
}

struct bench {
	struct procs ps;
	struct process *p;
	struct unwinder *u;
	struct unwind_snapshot snap;
	struct unwind_result result;
};

/* Best of BATCHES batches of rounds unwinds, in microseconds per unwind. */
static double time_unwinds(struct bench *b, bool fast, int rounds)
{
	double best = 1e18;

	unwinder_set_fast(b->u, fast);
	unwind_stack(b->u, &b->ps, b->p, b->snap.regs, b->snap.stack, b->snap.len, &b->result);	/* warm */
	for (int batch = 0; batch < BATCHES; batch++) {
		double start = now_us();
		for (int i = 0; i < rounds; i++)
			unwind_stack(b->u, &b->ps, b->p, b->snap.regs, b->snap.stack, b->snap.len, &b->result);
		double us = (now_us() - start) / rounds;
		best = us < best ? us : best;
	}
	return best;
}

static int measure(struct bench *b, int depth)
{
	recurse(&b->snap, depth);
	double fast = time_unwinds(b, true, 20000);
	uint32_t frames = b->result.n;
	double slow = time_unwinds(b, false, 1000);
	if (b->result.n != frames || b->result.truncated) {
		fprintf(stderr, "bench-unwind: the two ways disagree (%u vs %u frames, %s)\n", frames, b->result.n,
			b->result.truncated ? b->result.truncated : "complete");
		return 1;
	}
	printf("%3u frames: fast path %.3f us, libdwfl %.3f us per unwind (%.1fx)\n", frames, fast, slow,
	       slow / fast);
	return 0;
}

int main(void)
{
	static struct bench b;
	int err = 0;

	procs_init(&b.ps);
	b.p = procs_get(&b.ps, getpid());
	b.u = unwinder_new();
	b.snap.stack = malloc(SNAPSHOT_CAP);
	b.snap.cap = SNAPSHOT_CAP;
	b.snap.stack_top = this_stack_top();
	if (!b.p || !b.u || !b.snap.stack || !b.snap.stack_top) {
		fprintf(stderr, "bench-unwind: cannot set up the unwinder\n");
		return 1;
	}
	err |= measure(&b, 2);
	err |= measure(&b, 35);
	struct unwind_stats st;
	unwinder_stats(b.u, &st);
	printf("fast path gave up on %llu stacks\n", (unsigned long long)st.fast_fallbacks);
	unwinder_free(b.u);
	procs_free(&b.ps);
	free(b.snap.stack);
	return err;
}
