/*
 * Purges and refaults on purpose (recipes in shared/notes/allocators.md):
 * allocate a block, touch every page, free it, again and again. Whether the
 * allocator gives the pages back between rounds depends on its settings, so
 * the same program thrashes or stays calm:
 *   jemalloc: MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0 (thrash) or defaults (calm)
 *   glibc:    GLIBC_TUNABLES=glibc.malloc.trim_threshold=0:glibc.malloc.mmap_threshold=4194304
 *             with --thread (thrash: a second arena shrinks its heap) or defaults (calm)
 *   tcmalloc: TCMALLOC_AGGRESSIVE_DECOMMIT=t (thrash) or defaults (calm)
 *
 *   --seconds S   run this long (default 4)
 *   --block B     bytes per block (default 1 MiB)
 *   --thread      do it in a second thread
 *   --control     phases driven by the test, one command a line on stdin:
 *                 "calm" (the block is kept instead of freed), "thrash", "quit"
 *                 (or the end of stdin); each acknowledged on stdout with the
 *                 rounds so far ("phase calm at N"). Starts calm; --seconds is
 *                 ignored. For latency tests.
 *   --hold        after printing the rounds, wait for a line on stdin (or
 *                 its end) before exiting, e.g. for a scraper to read the
 *                 final counters
 *   --wait        print "ready PID", wait for SIGUSR1
 * Each round is one "request": handle_request() allocates, touches, frees.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common.h"

static double seconds = 4;
static size_t block = 1 << 20;
static unsigned long long rounds;
static int controlled;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void touch_pages(char *p, size_t n)
{
	for (size_t off = 0; off < n; off += 4096)
		p[off] = (char)off;
}

/* One request: in a thrashing phase its block goes back to the allocator
 * (which purges it), in a calm phase the previous block is reused. */
NOINLINE void handle_request(int calm)
{
	static char *kept;

	if (calm) {
		if (!kept)
			kept = malloc(block);
		touch_pages(kept, block);
		return;
	}
	char *p = malloc(block);
	KEEP(p);
	touch_pages(p, block);
	free(p);
}

/* Applies the test's commands that arrived; false once told to quit. */
static bool obey(struct line_reader *r, int *calm)
{
	char cmd[32];
	int got;

	while ((got = next_line(r, cmd, sizeof(cmd), 0)) == 1) {
		if (!strcmp(cmd, "quit"))
			return false;
		if (strcmp(cmd, "calm") && strcmp(cmd, "thrash"))
			continue;
		*calm = !strcmp(cmd, "calm");
		printf("phase %s at %llu\n", cmd, rounds);
		fflush(stdout);
	}
	return got == 0;
}

static void *run(void *arg)
{
	struct line_reader commands = { .len = 0 };
	double start = now_s();
	int calm = controlled;

	while (controlled ? obey(&commands, &calm) : now_s() - start < seconds) {
		handle_request(calm);
		rounds++;
		/* A request rate, not a busy loop: about 2000 per second. */
		struct timespec pause = { 0, 500000 };
		nanosleep(&pause, NULL);
	}
	return arg;
}

int main(int argc, char **argv)
{
	const char *v;

	if ((v = flag_value(argc, argv, "--seconds")))
		seconds = atof(v);
	if ((v = flag_value(argc, argv, "--block")))
		block = strtoull(v, NULL, 0);
	controlled = has_flag(argc, argv, "--control");
	if (has_flag(argc, argv, "--wait"))
		wait_for_go();
	if (has_flag(argc, argv, "--thread")) {
		pthread_t t;
		pthread_create(&t, NULL, run, NULL);
		pthread_join(t, NULL);
	} else {
		run(NULL);
	}
	printf("thrash: %llu rounds\n", rounds);
	fflush(stdout);
	if (has_flag(argc, argv, "--hold"))
		hold();
	return 0;
}
