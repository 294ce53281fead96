/*
 * An allocator that arrives after start: dlopen libtcmalloc_minimal.so.4 and
 * allocate through its tc_malloc/tc_free (the process's malloc stays glibc's;
 * jemalloc cannot be dlopen'ed: it needs static TLS).
 * Site dl_site: 300 blocks of 2000 bytes, 100 freed (see --manifest).
 *   --wait      print "ready PID", wait for SIGUSR1 before the dlopen
 *   --pause     after the dlopen, print "dlalloc: opened" and wait for a
 *               line on stdin (or its end) before allocating
 */
#define _GNU_SOURCE
#include <dlfcn.h>

#include "common.h"

static void *(*tc_malloc_fn)(size_t);
static void (*tc_free_fn)(void *);

NOINLINE void dl_site(void)
{
	static void *ps[300];
	for (int i = 0; i < 300; i++) {
		ps[i] = tc_malloc_fn(2000);
		KEEP(ps[i]);
		note_alloc("dl_site", 2000);
	}
	for (int i = 0; i < 100; i++) {
		tc_free_fn(ps[i]);
		note_free("dl_site", 2000);
	}
}

int main(int argc, char **argv)
{
	const char *manifest = flag_value(argc, argv, "--manifest");

	if (has_flag(argc, argv, "--wait"))
		wait_for_go();
	void *h = dlopen("libtcmalloc_minimal.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	tc_malloc_fn = (void *(*)(size_t))dlsym(h, "tc_malloc");
	tc_free_fn = (void (*)(void *))dlsym(h, "tc_free");
	if (has_flag(argc, argv, "--pause")) {
		printf("dlalloc: opened\n");
		fflush(stdout);
		hold();
	}
	dl_site();
	if (manifest)
		write_manifest(manifest);
	printf("dlalloc: done\n");
	return 0;
}
