/*
 * A steady leak next to a heap that does not grow: leak_site() allocates
 * objects and never frees them, at a fixed rate; churn_site() allocates and
 * frees a few small objects (they stay in the allocator's thread cache:
 * nothing returns to the heap top, so no trim);
 * cache_site() fills a fixed cache once. The leak verdict must name
 * leak_site.
 *   --seconds S   run this long (default 6)
 *   --rate B      bytes leaked per second (default 8 MiB)
 *   --size B      bytes per leaked object (default 4096)
 *   --control     run until the test says "quit" on stdin (or closes it),
 *                 not --seconds; "late" makes late_site() leak instead of
 *                 leak_site() from then on, acknowledged with "leak: late"
 *                 on stdout
 *   --wait        print "ready PID", wait for SIGUSR1 before starting
 *   --manifest F  write the per-site totals (common.h) to F
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <time.h>

#include "common.h"

#define TICK_NS 10000000L	/* 100 ticks a second */

static size_t object_size = 4096;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

NOINLINE void leak_site(void)
{
	char *p = malloc(object_size);
	if (!p)
		exit(1);
	memset(p, 1, object_size);
	note_alloc("leak_site", object_size);
}

NOINLINE void late_site(void)
{
	char *p = malloc(object_size);
	if (!p)
		exit(1);
	memset(p, 5, object_size);
	note_alloc("late_site", object_size);
}

NOINLINE void churn_site(void)
{
	char *p[7];

	for (int i = 0; i < 7; i++) {
		p[i] = malloc(1024);
		if (!p[i])
			exit(1);
		memset(p[i], 2, 1024);
		note_alloc("churn_site", 1024);
	}
	for (int i = 0; i < 7; i++) {
		free(p[i]);
		note_free("churn_site", 1024);
	}
}

NOINLINE void *cache_site(size_t n)
{
	char *p = malloc(n);
	if (!p)
		exit(1);
	memset(p, 3, n);
	note_alloc("cache_site", n);
	return p;
}

/* Applies the test's commands that arrived; false once told to quit. */
static bool obey(struct line_reader *r, bool *late)
{
	char cmd[32];
	int got;

	while ((got = next_line(r, cmd, sizeof(cmd), 0)) == 1) {
		if (!strcmp(cmd, "quit"))
			return false;
		if (!strcmp(cmd, "late")) {
			*late = true;
			printf("leak: late\n");
			fflush(stdout);
		}
	}
	return got == 0;
}

int main(int argc, char **argv)
{
	double seconds = 6, rate = 8 << 20, owed = 0;
	const char *v, *manifest = flag_value(argc, argv, "--manifest");
	unsigned long long leaked = 0;
	struct line_reader commands = { .len = 0 };
	bool controlled = has_flag(argc, argv, "--control"), late = false;

	/* A static stdout buffer: the manifest's sites are all it allocates. */
	static char stdout_buffer[4096];
	setvbuf(stdout, stdout_buffer, _IOLBF, sizeof(stdout_buffer));
	if ((v = flag_value(argc, argv, "--seconds")))
		seconds = atof(v);
	if ((v = flag_value(argc, argv, "--rate")))
		rate = atof(v);
	if ((v = flag_value(argc, argv, "--size")))
		object_size = strtoull(v, NULL, 0);
	if (has_flag(argc, argv, "--wait"))
		wait_for_go();
	KEEP(cache_site(4 << 20));
	double start = now_s();
	while (controlled ? obey(&commands, &late) : now_s() - start < seconds) {
		for (owed += rate * TICK_NS / 1e9; owed >= object_size; owed -= object_size, leaked++)
			late ? late_site() : leak_site();
		churn_site();
		struct timespec tick = { 0, TICK_NS };
		nanosleep(&tick, NULL);
	}
	printf("leak: %llu objects, %llu bytes in %.3f s\n", leaked, leaked * object_size, now_s() - start);
	if (manifest)
		write_manifest(manifest);
	return 0;
}
