/*
 * Ground truth for heap profiles: every allocation site is a noinline
 * function named gt_*, with known sizes, counts and frees. With --manifest F
 * the program writes the totals a profiler should report per site:
 *   site alloc_objects alloc_bytes inuse_objects inuse_bytes
 * ("inuse" = still allocated when the program exits). Blocks that stay in use
 * are kept in globals until exit. Exits 3 after printing a checksum, so
 * tests can check that output and exit status pass through a profiler.
 *
 *   --wait       print "ready PID", wait for SIGUSR1 before allocating
 *   --big        large totals for statistical tests at the default interval
 *   --medium     the same with no block above 8 KiB (see gt_mid)
 *   --echo       copy stdin to stdout first
 *   --hold       after printing the checksum, wait for a line on stdin (or
 *                its end) before exiting
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>

#include "common.h"

static unsigned long long checksum;

#define site site_total

static void touch(void *p, size_t n)
{
	memset(p, (int)(n & 0xff), n < 64 ? n : 64);
	checksum = checksum * 31 + n;
}

#define NKEEP 4096
static void *kept[NKEEP];
static int nkept;
static void keep(void *p)
{
	if (nkept < NKEEP)
		kept[nkept++] = p;
}

NOINLINE void gt_malloc(int n, size_t size, int nfree)
{
	void *ps[4096];
	for (int i = 0; i < n; i++) {
		ps[i] = malloc(size);
		touch(ps[i], size);
		note_alloc("gt_malloc", size);
	}
	for (int i = 0; i < nfree; i++) {
		free(ps[i]);
		note_free("gt_malloc", size);
	}
	for (int i = nfree; i < n; i++)
		keep(ps[i]);
}

NOINLINE void gt_calloc(int n, size_t count, size_t size, int nfree)
{
	void *ps[4096];
	for (int i = 0; i < n; i++) {
		ps[i] = calloc(count, size);
		touch(ps[i], count * size);
		note_alloc("gt_calloc", count * size);
	}
	for (int i = 0; i < nfree; i++) {
		free(ps[i]);
		note_free("gt_calloc", count * size);
	}
	for (int i = nfree; i < n; i++)
		keep(ps[i]);
}

NOINLINE void gt_calloc_overflow(int n)
{
	for (int i = 0; i < n; i++) {
		void *p = calloc(SIZE_MAX / 2, 4);
		KEEP(p);
		if (p)
			abort();
	}
}

NOINLINE void *gt_realloc_seed(size_t size)
{
	void *p = malloc(size);
	touch(p, size);
	note_alloc("gt_realloc_seed", size);
	return p;
}

/* Grow: the seed block is freed, a new one allocated here. */
NOINLINE void gt_realloc_grow(int n, size_t from, size_t to)
{
	for (int i = 0; i < n; i++) {
		void *p = gt_realloc_seed(from);
		void *q = realloc(p, to);
		note_free("gt_realloc_seed", from);
		note_alloc("gt_realloc_grow", to);
		touch(q, to);
		keep(q);
	}
}

NOINLINE void gt_realloc_shrink(int n, size_t from, size_t to)
{
	for (int i = 0; i < n; i++) {
		void *p = gt_realloc_seed(from);
		void *q = realloc(p, to);
		note_free("gt_realloc_seed", from);
		note_alloc("gt_realloc_shrink", to);
		touch(q, to);
		if (i % 2) {
			free(q);
			note_free("gt_realloc_shrink", to);
		} else {
			keep(q);
		}
	}
}

/* realloc(NULL, n) is a malloc. */
NOINLINE void gt_realloc_null(int n, size_t size)
{
	for (int i = 0; i < n; i++) {
		void *p = realloc(NULL, size);
		touch(p, size);
		note_alloc("gt_realloc_null", size);
		keep(p);
	}
}

/* realloc(p, 0) frees p (glibc) and returns NULL. */
NOINLINE void gt_realloc_zero(int n, size_t size)
{
	for (int i = 0; i < n; i++) {
		void *p = gt_realloc_seed(size);
		void *q = realloc(p, 0);
		KEEP(q);
		note_free("gt_realloc_seed", size);
		if (q) {
			note_alloc("gt_realloc_zero", 0);
			keep(q);
		}
	}
}

/* A failing realloc keeps the old block. */
NOINLINE void gt_realloc_fail(int n, size_t size)
{
	for (int i = 0; i < n; i++) {
		void *p = gt_realloc_seed(size);
		void *q = realloc(p, SIZE_MAX - 4096);
		if (q)
			abort();
		keep(p);
	}
}

NOINLINE void gt_reallocarray(int n, size_t count, size_t size)
{
	for (int i = 0; i < n; i++) {
		void *p = reallocarray(NULL, count, size);
		touch(p, count * size);
		note_alloc("gt_reallocarray", count * size);
		keep(p);
	}
	void *p = reallocarray(NULL, SIZE_MAX / 2, 4);
	if (p)
		abort();
}

NOINLINE void gt_posix_memalign(int n, size_t align, size_t size, int nfree)
{
	void *ps[4096];
	for (int i = 0; i < n; i++) {
		if (posix_memalign(&ps[i], align, size))
			abort();
		touch(ps[i], size);
		note_alloc("gt_posix_memalign", size);
	}
	/* A failing call: the alignment is not a power of two. */
	void *bad;
	if (posix_memalign(&bad, 3, 100) != EINVAL)
		abort();
	for (int i = 0; i < nfree; i++) {
		free(ps[i]);
		note_free("gt_posix_memalign", size);
	}
	for (int i = nfree; i < n; i++)
		keep(ps[i]);
}

NOINLINE void gt_aligned_alloc(int n, size_t align, size_t size)
{
	for (int i = 0; i < n; i++) {
		void *p = aligned_alloc(align, size);
		touch(p, size);
		note_alloc("gt_aligned_alloc", size);
		keep(p);
	}
}

NOINLINE void gt_memalign(int n, size_t align, size_t size)
{
	for (int i = 0; i < n; i++) {
		void *p = memalign(align, size);
		touch(p, size);
		note_alloc("gt_memalign", size);
		keep(p);
	}
}

NOINLINE void gt_valloc(int n, size_t size)
{
	for (int i = 0; i < n; i++) {
		void *p = valloc(size);
		touch(p, size);
		note_alloc("gt_valloc", size);
		keep(p);
	}
}

NOINLINE void gt_pvalloc(int n, size_t size)
{
	for (int i = 0; i < n; i++) {
		void *p = pvalloc(size);
		touch(p, size);
		note_alloc("gt_pvalloc", size);
		keep(p);
	}
}

/* Eight threads allocate and free at once; nothing stays in use. */
#define THREADS 8
#define THREAD_ALLOCS 5000
#define THREAD_SIZE 512

NOINLINE void gt_threads_work(void)
{
	void *ps[64];
	for (int round = 0; round < THREAD_ALLOCS / 64; round++) {
		for (int i = 0; i < 64; i++) {
			ps[i] = malloc(THREAD_SIZE);
			memset(ps[i], 1, 64);
		}
		for (int i = 0; i < 64; i++)
			free(ps[i]);
	}
}

static void *thread_main(void *arg)
{
	gt_threads_work();
	return arg;
}

static void run_threads(void)
{
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, thread_main, NULL);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	struct site_total *s = site("gt_threads_work");
	s->alloc_objects = (unsigned long long)THREADS * (THREAD_ALLOCS / 64) * 64;
	s->alloc_bytes = s->alloc_objects * THREAD_SIZE;
}

/* Large totals: sampling error at the default interval is small against them. */
NOINLINE void gt_big_small(int n, size_t size)
{
	for (int i = 0; i < n; i++) {
		void *p = malloc(size);
		touch(p, size);
		note_alloc("gt_big_small", size);
		if (i % 4) {
			free(p);
			note_free("gt_big_small", size);
		}
	}
}

NOINLINE void gt_big_large(int n, size_t size)
{
	for (int i = 0; i < n; i++) {
		void *p = malloc(size);
		touch(p, size);
		note_alloc("gt_big_large", size);
		if (i % 2) {
			free(p);
			note_free("gt_big_large", size);
		}
	}
}

static void run_basic(void)
{
	gt_malloc(1000, 1024, 400);
	gt_calloc(500, 100, 64, 400);
	gt_calloc_overflow(10);
	gt_realloc_grow(200, 100, 5000);
	gt_realloc_shrink(200, 8000, 1000);
	gt_realloc_null(200, 2048);
	gt_realloc_zero(100, 300);
	gt_realloc_fail(50, 700);
	gt_reallocarray(100, 10, 100);
	gt_posix_memalign(300, 64, 3000, 100);
	gt_aligned_alloc(200, 256, 4096);
	gt_memalign(100, 128, 1000);
	gt_valloc(50, 10000);
	gt_pvalloc(50, 8192);	/* whole pages: tcmalloc rounds before it forwards */
	run_threads();
}

/* Blocks much smaller than the sampling interval: compared with allocators'
 * own profilers, whose in-process unwinding breaks on the calls memwatch
 * samples (the kernel's return trampoline replaces the return address). */
NOINLINE void gt_mid(int n, size_t size)
{
	for (int i = 0; i < n; i++) {
		void *p = malloc(size);
		touch(p, size);
		note_alloc("gt_mid", size);
		if (i % 2) {
			free(p);
			note_free("gt_mid", size);
		}
	}
}

static void run_medium(void)
{
	gt_big_small(400000, 1024);	/* 390 MiB allocated, 98 MiB kept */
	gt_mid(20000, 8192);		/* 156 MiB allocated, 78 MiB kept */
}

static void run_big(void)
{
	gt_big_small(400000, 1024);	/* 390 MiB allocated, 98 MiB kept */
	gt_big_large(200, 1 << 20);	/* 200 MiB allocated, 100 MiB kept */
}

static void echo_stdin(void)
{
	char buf[4096];
	ssize_t n;
	while ((n = read(0, buf, sizeof(buf))) > 0)
		if (write(1, buf, n) != n)
			exit(1);
}

int main(int argc, char **argv)
{
	const char *manifest = flag_value(argc, argv, "--manifest");

	if (has_flag(argc, argv, "--echo"))
		echo_stdin();
	if (has_flag(argc, argv, "--wait"))
		wait_for_go();
	if (has_flag(argc, argv, "--big"))
		run_big();
	else if (has_flag(argc, argv, "--medium"))
		run_medium();
	else
		run_basic();
	if (manifest)
		write_manifest(manifest);
	printf("checksum=%llu sites=%d\n", checksum, nsite_totals);
	fflush(stdout);
	if (has_flag(argc, argv, "--hold"))
		hold();
	return 3;
}
