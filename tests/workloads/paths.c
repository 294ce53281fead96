/*
 * Every way a call reaches the allocator, for profilers that detour its
 * entries: pointers to malloc and free taken before the profiler attached
 * (as redis keeps free in tables), pointers from dlsym, allocations libc
 * makes for itself (strdup, fopen/fclose), a thread started afterwards,
 * and a forked child that allocates and exits normally. With --manifest F:
 *   site alloc_objects alloc_bytes inuse_objects inuse_bytes
 * for the gt_* sites (strdup and fopen sites are found by their callers:
 * the allocation's own frame is libc's). A block allocated before --wait
 * ends is freed after: a profiler attached in between must ignore it.
 * Exits 0 after "paths: ok".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>
#include <sys/wait.h>

#include "common.h"

static void *(*volatile saved_malloc)(size_t);
static void (*volatile saved_free)(void *);
static void *(*dl_malloc)(size_t);
static void (*dl_free)(void *);
static void *kept[1024];
static int nkept;

static void keep(void *p)
{
	KEEP(p);
	kept[nkept++] = p;
}

NOINLINE void gt_saved_pointer(void)
{
	void *ps[200];
	for (int i = 0; i < 200; i++) {
		ps[i] = saved_malloc(1000);
		memset(ps[i], 1, 16);
		note_alloc("gt_saved_pointer", 1000);
	}
	for (int i = 0; i < 100; i++) {
		saved_free(ps[i]);
		note_free("gt_saved_pointer", 1000);
	}
	for (int i = 100; i < 200; i++)
		keep(ps[i]);
}

NOINLINE void gt_dlsym_pointer(void)
{
	void *ps[200];
	for (int i = 0; i < 200; i++) {
		ps[i] = dl_malloc(2000);
		memset(ps[i], 2, 16);
		note_alloc("gt_dlsym_pointer", 2000);
	}
	for (int i = 0; i < 50; i++) {
		dl_free(ps[i]);
		note_free("gt_dlsym_pointer", 2000);
	}
	for (int i = 50; i < 200; i++)
		keep(ps[i]);
}

/* libc allocates: strdup's copies stay, fopen's FILEs go with fclose. The
 * length is hidden from the compiler, which would inline a known one. */
NOINLINE void gt_strdup(const char *text)
{
	for (int i = 0; i < 100; i++)
		keep(strdup(text));
}

NOINLINE void gt_fopen(void)
{
	for (int i = 0; i < 50; i++) {
		FILE *f = fopen("/dev/null", "r");
		if (!f)
			abort();
		fclose(f);
	}
}

NOINLINE void gt_thread_after(void)
{
	void *ps[300];
	for (int i = 0; i < 300; i++) {
		ps[i] = malloc(512);
		memset(ps[i], 3, 16);
		note_alloc("gt_thread_after", 512);
	}
	for (int i = 0; i < 200; i++) {
		free(ps[i]);
		note_free("gt_thread_after", 512);
	}
	for (int i = 200; i < 300; i++)
		keep(ps[i]);
}

static void *thread_main(void *arg)
{
	gt_thread_after();
	return arg;
}

/* The child allocates through the detoured entries and must run as
 * usual; nothing it does belongs to the parent's profile. */
static void fork_child(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		for (int i = 0; i < 10000; i++) {
			void *p = malloc(64 + i % 512);
			memset(p, 4, 64);
			free(p);
		}
		_exit(7);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 7) {
		fprintf(stderr, "paths: forked child failed (status 0x%x)\n", status);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	const char *manifest = flag_value(argc, argv, "--manifest");
	pthread_t t;

	saved_malloc = malloc;
	saved_free = free;
	dl_malloc = (void *(*)(size_t))dlsym(RTLD_DEFAULT, "malloc");
	dl_free = (void (*)(void *))dlsym(RTLD_DEFAULT, "free");
	void *before = malloc(4000);
	KEEP(before);
	if (has_flag(argc, argv, "--wait"))
		wait_for_go();
	free(before);
	gt_saved_pointer();
	gt_dlsym_pointer();
	char text[300];
	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = 0;
	KEEP(text);
	gt_strdup(text);
	gt_fopen();
	if (pthread_create(&t, NULL, thread_main, NULL) || pthread_join(t, NULL))
		return 1;
	fork_child();
	if (manifest)
		write_manifest(manifest);
	printf("paths: ok\n");
	return 0;
}
