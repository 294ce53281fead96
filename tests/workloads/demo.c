/*
 * The bundled demo: a toy request loop with a cache that retains entries,
 * temporary buffers that are freed, and a leak of sessions (8 KiB each, one
 * per 8 requests, never freed). Requests come at a fixed pace, 50 every
 * 10 ms, for five seconds, so the leak grows about 4.9 MiB/s however fast
 * the machine or the probes are (as long as a batch fits in its 10 ms):
 * five 1-second intervals of steady growth, well over the leak verdict's
 * 4 MiB, over a cache of about 2 MiB.
 */
#include <stdint.h>
#include <time.h>

#include "common.h"

#define CACHE_SLOTS 1024
#define SESSION_BYTES 8192
#define BATCH 50			/* requests per tick */
#define TICK_NS 10000000L	/* 10 ms */
#define RUN_S 5

struct entry {
	char key[32];
	size_t len;
	char *value;
};

static struct entry *cache[CACHE_SLOTS];
static char **tokens;
static size_t ntokens;

NOINLINE char *parse_request(unsigned id)
{
	char *buf = malloc(2048);
	snprintf(buf, 2048, "GET /item/%u HTTP/1.1", id);
	return buf;
}

NOINLINE void cache_insert(unsigned id)
{
	struct entry *e = calloc(1, sizeof(*e));
	e->len = 256 + (id % 8) * 512;
	e->value = malloc(e->len);
	memset(e->value, 'v', e->len);
	snprintf(e->key, sizeof(e->key), "item-%u", id);
	unsigned slot = id % CACHE_SLOTS;
	if (cache[slot]) {
		free(cache[slot]->value);
		free(cache[slot]);
	}
	cache[slot] = e;
}

NOINLINE void remember_session(unsigned id)
{
	/* Never freed: the leak the profile should point at. */
	tokens = realloc(tokens, (ntokens + 1) * sizeof(*tokens));
	tokens[ntokens] = malloc(SESSION_BYTES);
	memset(tokens[ntokens], 0, SESSION_BYTES);
	snprintf(tokens[ntokens++], SESSION_BYTES, "session-%u", id);
}

NOINLINE void handle_request(unsigned id)
{
	char *req = parse_request(id);
	KEEP(req);
	cache_insert(id * 2654435761u % 100000);
	if (id % 8 == 0)
		remember_session(id);
	free(req);
}

static void add_ns(struct timespec *t, long ns)
{
	t->tv_nsec += ns;
	while (t->tv_nsec >= 1000000000L) {
		t->tv_nsec -= 1000000000L;
		t->tv_sec++;
	}
}

int main(void)
{
	struct timespec start, next;
	unsigned id = 0;

	clock_gettime(CLOCK_MONOTONIC, &start);
	next = start;
	for (long tick = 0; tick < RUN_S * (1000000000L / TICK_NS); tick++) {
		for (int i = 0; i < BATCH; i++)
			handle_request(id++);
		add_ns(&next, TICK_NS);
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	printf("demo: handled %u requests, %zu sessions (%zu KiB never freed)\n", id, ntokens,
	       ntokens * SESSION_BYTES / 1024);
	return 0;
}
