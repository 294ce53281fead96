#include "util/parallel.h"

#include <pthread.h>
#include <stdbool.h>

struct call {
	void (*fn)(void *ctx, size_t i);
	void *ctx;
	size_t i;
};

static void *run(void *arg)
{
	struct call *c = arg;

	c->fn(c->ctx, c->i);
	return NULL;
}

void parallel_for(size_t n, void (*fn)(void *ctx, size_t i), void *ctx)
{
	pthread_t threads[PARALLEL_MAX];
	struct call calls[PARALLEL_MAX];
	bool started[PARALLEL_MAX];

	for (size_t base = 0; base < n; base += PARALLEL_MAX) {
		size_t batch = n - base < PARALLEL_MAX ? n - base : PARALLEL_MAX;
		for (size_t k = 0; k < batch; k++) {
			calls[k] = (struct call){ fn, ctx, base + k };
			started[k] = !pthread_create(&threads[k], NULL, run, &calls[k]);
			if (!started[k])
				fn(ctx, base + k);
		}
		for (size_t k = 0; k < batch; k++)
			if (started[k])
				pthread_join(threads[k], NULL);
	}
}
