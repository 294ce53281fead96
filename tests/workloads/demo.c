/*
 * The bundled demo: a toy request loop with a cache that retains entries,
 * temporary buffers that are freed, and a slow leak of session tokens.
 * Runs for about two seconds.
 */
#include <stdint.h>
#include <time.h>

#include "common.h"

#define CACHE_SLOTS 4096

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
	tokens[ntokens] = malloc(96);
	snprintf(tokens[ntokens++], 96, "session-%u", id);
}

NOINLINE void handle_request(unsigned id)
{
	char *req = parse_request(id);
	KEEP(req);
	cache_insert(id * 2654435761u % 100000);
	if (id % 16 == 0)
		remember_session(id);
	free(req);
}

int main(void)
{
	struct timespec start, now;
	unsigned id = 0;

	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		for (int i = 0; i < 1000; i++)
			handle_request(id++);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (now.tv_sec - start.tv_sec < 2);
	printf("demo: handled %u requests, %zu sessions\n", id, ntokens);
	return 0;
}
