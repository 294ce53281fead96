/*
 * Stacks to unwind: each site allocates STACK_ALLOCS blocks of its own size
 * (the profile's `bytes` label tells them apart) through a known call chain:
 *   1001  leaf_alloc <- recurse x40 <- run_recursion <- main
 *   8016  operator new <- ... <- cxx_build_vector <- run_cxx <- main
 *   1003  thread_alloc <- thread_main <- start_thread
 *   1004  lib_alloc_inner <- lib_alloc_outer (libstk.so) <- run_library <- main
 *   1005  plugin_alloc_inner <- plugin_alloc (dlopen'ed) <- run_plugin <- main
 * Built -O2 -fomit-frame-pointer (bin/stacks) and -O0 (bin/O0/stacks).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>

#include "common.h"
#include "stacks.h"

static void *kept[64];
static int nkept;
static volatile int calls;

NOINLINE void leaf_alloc(void)
{
	for (int i = 0; i < STACK_ALLOCS; i++) {
		kept[nkept] = malloc(1001);
		KEEP(kept[nkept]);
		nkept++;
	}
}

/* Not a tail call: the result is used after the recursive call returns.
 * Each level holds a 256-byte buffer, so the whole stack is over 10 KiB. */
NOINLINE int recurse(int depth)
{
	volatile char frame[256];

	frame[depth % 256] = 1;
	if (depth == 0) {
		leaf_alloc();
		return frame[0];
	}
	int below = recurse(depth - 1);
	KEEP(&below);
	return below + frame[depth % 256];
}

NOINLINE void run_recursion(void)
{
	if (recurse(RECURSION_DEPTH - 1) != RECURSION_DEPTH)
		abort();
}

NOINLINE void thread_alloc(void)
{
	for (int i = 0; i < STACK_ALLOCS; i++) {
		void *p = malloc(1003);
		KEEP(p);
		free(p);
	}
}

NOINLINE void *thread_main(void *arg)
{
	thread_alloc();
	KEEP(arg);
	return arg;
}

NOINLINE void run_thread(void)
{
	pthread_t t;
	pthread_create(&t, NULL, thread_main, NULL);
	pthread_join(t, NULL);
	calls++;
}

/* The counter keeps the calls below from becoming tail calls. */
NOINLINE void run_library(void)
{
	lib_alloc_outer();
	calls++;
}

NOINLINE void run_plugin(void)
{
	char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 64);
	if (n <= 0)
		abort();
	path[n] = 0;
	strcpy(strrchr(path, '/') + 1, "libstkplugin.so");
	void *h = dlopen(path, RTLD_NOW);
	if (!h) {
		fprintf(stderr, "%s\n", dlerror());
		exit(1);
	}
	void (*plugin_alloc)(void) = (void (*)(void))dlsym(h, "plugin_alloc");
	plugin_alloc();
	calls++;
}

NOINLINE void run_cxx(void)
{
	cxx_build_vector();
	calls++;
}

int main(int argc, char **argv)
{
	if (has_flag(argc, argv, "--wait"))
		wait_for_go();
	run_recursion();
	run_cxx();
	run_thread();
	run_library();
	run_plugin();
	printf("stacks: done\n");
	return 0;
}
