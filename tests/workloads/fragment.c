/*
 * Fragmentation on purpose: allocate many small objects (over a couple of
 * seconds, like a cache warming up), free most of them
 * interleaved (every KEEP-th survives, so survivors sit on every page), then
 * stay. The live heap drops to 1/KEEP of its peak; RSS does not, since every
 * page still holds a survivor.
 *   --objects N   small objects allocated (default 200000)
 *   --size B      bytes each (default 512)
 *   --keep K      keep every K-th (default 8)
 *   --build S     seconds spent allocating (default 2)
 *   --seconds S   stay this long after the frees (default 5)
 *   --hold        instead, stay until a line arrives on stdin (or it ends)
 *   --wait        print "ready PID", wait for SIGUSR1 before allocating
 * Prints the live bytes (survivors and the table of them) and the process's
 * own RssAnon after the frees. Those are all the process allocates: stdout
 * gets a static buffer, so nothing else is live (tests check the size classes
 * of the live heap against exactly these).
 */
#define _GNU_SOURCE
#include <time.h>

#include "common.h"

NOINLINE char *small_object(size_t size)
{
	char *p = malloc(size);
	if (!p)
		exit(1);
	memset(p, 4, size);
	return p;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };
	nanosleep(&ts, NULL);
}

static long rss_anon_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib * 1024;
}

int main(int argc, char **argv)
{
	size_t objects = 200000, size = 512, keep = 8;
	double seconds = 5, build = 2;
	const char *v;

	if ((v = flag_value(argc, argv, "--objects")))
		objects = strtoull(v, NULL, 0);
	if ((v = flag_value(argc, argv, "--size")))
		size = strtoull(v, NULL, 0);
	if ((v = flag_value(argc, argv, "--keep")))
		keep = strtoull(v, NULL, 0);
	if ((v = flag_value(argc, argv, "--seconds")))
		seconds = atof(v);
	if ((v = flag_value(argc, argv, "--build")))
		build = atof(v);
	static char stdout_buffer[4096];
	setvbuf(stdout, stdout_buffer, _IOLBF, sizeof(stdout_buffer));
	if (has_flag(argc, argv, "--wait"))
		wait_for_go();
	char **all = calloc(objects, sizeof(*all));
	if (!all || !keep)
		return 1;
	for (size_t i = 0; i < objects; i++) {
		all[i] = small_object(size);
		if ((i + 1) % 1000 == 0)
			sleep_s(build * 1000 / objects);
	}
	size_t kept = 0;
	for (size_t i = 0; i < objects; i++) {
		if (i % keep)
			free(all[i]);
		else
			kept++;
	}
	printf("fragment: kept %zu objects, %zu bytes; live %zu; rss_anon %ld\n", kept, kept * size,
	       kept * size + objects * sizeof(*all), rss_anon_bytes());
	fflush(stdout);
	if (has_flag(argc, argv, "--hold"))
		hold();
	else
		sleep_s(seconds);
	return 0;
}
