/*
 * Threads allocating and freeing flat out, checking every byte they wrote,
 * while profilers come and go (attach, detach, SIGKILL). Each thread keeps a
 * window of live blocks from every allocation entry (malloc, calloc,
 * realloc, posix_memalign, aligned_alloc, memalign, strdup), each filled with
 * a pattern derived from its size and slot, verified before it is resized
 * or freed. Runs until a line arrives on stdin (or stdin closes), then
 * prints "stress: ok" and exits 0; a corrupted block prints
 * "stress: CORRUPT" and exits 1. Once every thread has made WARM_STEPS
 * steps it prints "stress: running" (never with --idle).
 *
 *   --threads N   threads (default 8, at most 256)
 *   --idle        the threads wait instead (for timing how long stopping
 *                 a process with many threads takes)
 *   --wait        print "ready PID", wait for SIGUSR1 before starting
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"

#define WINDOW 64
#define WARM_STEPS (64 * 256)

struct block {
	unsigned char *p;
	size_t size;
	unsigned char seed;
};

static atomic_bool stop;
static atomic_int corrupt;
static atomic_int warm_threads;
static int threads;
static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cond = PTHREAD_COND_INITIALIZER;
static bool idle;

static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fill(struct block *b)
{
	for (size_t i = 0; i < b->size; i += 61)
		b->p[i] = (unsigned char)(b->seed + i);
	b->p[b->size - 1] = b->seed ^ 0x5a;
}

static void check(const struct block *b, size_t upto)
{
	for (size_t i = 0; i + 1 < upto; i += 61)
		if (b->p[i] != (unsigned char)(b->seed + i))
			atomic_store(&corrupt, 1);
	if (upto == b->size && b->p[b->size - 1] != (unsigned char)(b->seed ^ 0x5a))
		atomic_store(&corrupt, 1);
}

static void *allocate(uint64_t r, size_t size)
{
	void *p = NULL;

	switch (r % 7) {
	case 0: return malloc(size);
	case 1: return calloc(1, size);
	case 2: return posix_memalign(&p, 64, size) ? NULL : p;
	case 3: return aligned_alloc(256, (size + 255) & ~(size_t)255);
	case 4: return memalign(128, size);
	case 5: return realloc(NULL, size);
	default: {
		char *s = malloc(size);
		if (!s)
			return NULL;
		memset(s, 'a', size - 1);
		s[size - 1] = 0;
		char *d = strdup(s);
		free(s);
		return d;
	}
	}
}

static void step(struct block *w, uint64_t *rng)
{
	uint64_t r = next(rng);
	struct block *b = &w[r % WINDOW];
	size_t size = 16 + (r >> 8) % 3000;

	if (b->p && (r >> 20) % 4 == 0) {	/* resize, keeping the prefix */
		check(b, b->size);
		size_t keep = b->size < size ? b->size : size;
		unsigned char *q = realloc(b->p, size);
		if (!q) {
			atomic_store(&corrupt, 1);
			return;
		}
		b->p = q;
		for (size_t i = 0; i + 1 < keep; i += 61)
			if (q[i] != (unsigned char)(b->seed + i))
				atomic_store(&corrupt, 1);
		b->size = size;
		fill(b);
		return;
	}
	if (b->p) {
		check(b, b->size);
		free(b->p);
	}
	b->p = allocate(r >> 32, size);
	if (!b->p) {
		atomic_store(&corrupt, 1);
		return;
	}
	b->size = size;
	b->seed = (unsigned char)(r >> 40);
	fill(b);
}

static void *worker(void *arg)
{
	struct block w[WINDOW] = { { 0 } };
	uint64_t rng = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1);

	pthread_mutex_lock(&idle_lock);
	while (idle && !atomic_load(&stop))
		pthread_cond_wait(&idle_cond, &idle_lock);
	pthread_mutex_unlock(&idle_lock);
	for (unsigned long steps = 0; !atomic_load_explicit(&stop, memory_order_relaxed);) {
		for (int i = 0; i < 256; i++)
			step(w, &rng);
		steps += 256;
		if (steps == WARM_STEPS && atomic_fetch_add(&warm_threads, 1) + 1 == threads) {
			printf("stress: running\n");
			fflush(stdout);
		}
	}
	for (int i = 0; i < WINDOW; i++)
		if (w[i].p) {
			check(&w[i], w[i].size);
			free(w[i].p);
		}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *n = flag_value(argc, argv, "--threads");
	pthread_t t[256];
	char line[64];

	threads = n ? atoi(n) : 8;
	idle = has_flag(argc, argv, "--idle");
	if (threads < 1 || threads > 256)
		return 2;
	if (has_flag(argc, argv, "--wait"))
		wait_for_go();
	for (int i = 0; i < threads; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i))
			return 1;
	if (!fgets(line, sizeof(line), stdin) && ferror(stdin) && errno != EINTR)
		return 1;
	pthread_mutex_lock(&idle_lock);
	atomic_store(&stop, true);
	pthread_cond_broadcast(&idle_cond);
	pthread_mutex_unlock(&idle_lock);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	if (atomic_load(&corrupt)) {
		printf("stress: CORRUPT\n");
		return 1;
	}
	printf("stress: ok\n");
	return 0;
}
