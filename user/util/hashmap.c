#include "util/hashmap.h"

#include <stdlib.h>
#include <string.h>

#define USED (1ull << 63)

void hmap_init(struct hmap *m, hmap_eq_fn eq, void *ctx)
{
	memset(m, 0, sizeof(*m));
	m->eq = eq;
	m->ctx = ctx;
}

void hmap_free(struct hmap *m)
{
	free(m->slots);
	m->slots = NULL;
	m->cap = m->len = 0;
}

void hmap_clear(struct hmap *m)
{
	if (m->slots)
		memset(m->slots, 0, m->cap * sizeof(*m->slots));
	m->len = 0;
}

static bool same(const struct hmap *m, const struct hmap_slot *s, uint64_t h, uint64_t key)
{
	if (s->hash != h)
		return false;
	return m->eq ? m->eq(s->key, key, m->ctx) : s->key == key;
}

void **hmap_find(const struct hmap *m, uint64_t hash, uint64_t key)
{
	if (!m->cap)
		return NULL;
	uint64_t h = hash | USED;
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct hmap_slot *s = &m->slots[i];
		if (!s->hash)
			return NULL;
		if (same(m, s, h, key))
			return &s->val;
	}
}

static int grow(struct hmap *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 16;
	struct hmap_slot *ns = calloc(ncap, sizeof(*ns));
	if (!ns)
		return -1;
	for (size_t i = 0; i < m->cap; i++) {
		struct hmap_slot *s = &m->slots[i];
		if (!s->hash)
			continue;
		size_t j = s->hash & (ncap - 1);
		while (ns[j].hash)
			j = (j + 1) & (ncap - 1);
		ns[j] = *s;
	}
	free(m->slots);
	m->slots = ns;
	m->cap = ncap;
	return 0;
}

void **hmap_upsert(struct hmap *m, uint64_t hash, uint64_t key, bool *inserted)
{
	if ((m->len + 1) * 4 > m->cap * 3 && grow(m))
		return NULL;
	uint64_t h = hash | USED;
	size_t mask = m->cap - 1;
	size_t i = h & mask;
	for (;; i = (i + 1) & mask) {
		struct hmap_slot *s = &m->slots[i];
		if (!s->hash)
			break;
		if (same(m, s, h, key)) {
			if (inserted)
				*inserted = false;
			return &s->val;
		}
	}
	m->slots[i] = (struct hmap_slot){ .hash = h, .key = key, .val = NULL };
	m->len++;
	if (inserted)
		*inserted = true;
	return &m->slots[i].val;
}

int hmap_put(struct hmap *m, uint64_t hash, uint64_t key, void *val)
{
	void **slot = hmap_upsert(m, hash, key, NULL);
	if (!slot)
		return -1;
	*slot = val;
	return 0;
}

int hmap_insert_new(struct hmap *m, uint64_t hash, uint64_t key, void *val)
{
	if ((m->len + 1) * 4 > m->cap * 3 && grow(m))
		return -1;
	size_t mask = m->cap - 1;
	size_t i = (hash | USED) & mask;
	while (m->slots[i].hash)
		i = (i + 1) & mask;
	m->slots[i] = (struct hmap_slot){ .hash = hash | USED, .key = key, .val = val };
	m->len++;
	return 0;
}

/* Linear probing with backward-shift deletion: no tombstones. */
bool hmap_remove(struct hmap *m, uint64_t hash, uint64_t key, void **val)
{
	void **slot = hmap_find(m, hash, key);
	if (!slot)
		return false;
	struct hmap_slot *s = (struct hmap_slot *)((char *)slot - offsetof(struct hmap_slot, val));
	if (val)
		*val = s->val;
	size_t mask = m->cap - 1;
	size_t hole = (size_t)(s - m->slots);
	for (size_t j = (hole + 1) & mask; m->slots[j].hash; j = (j + 1) & mask) {
		size_t home = m->slots[j].hash & mask;
		/* Move j into the hole unless its home lies in (hole, j]. */
		bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (stays)
			continue;
		m->slots[hole] = m->slots[j];
		hole = j;
	}
	memset(&m->slots[hole], 0, sizeof(m->slots[hole]));
	m->len--;
	return true;
}

bool hmap_next(const struct hmap *m, size_t *pos, struct hmap_slot **slot)
{
	for (; *pos < m->cap; (*pos)++) {
		if (m->slots[*pos].hash) {
			*slot = &m->slots[(*pos)++];
			return true;
		}
	}
	return false;
}

uint64_t hash_u64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

uint64_t hash_bytes(const void *data, size_t len, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ull);
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = hash_u64(h ^ w);
		p += 8;
		len -= 8;
	}
	uint64_t tail = 0;
	memcpy(&tail, p, len);
	return hash_u64(h ^ tail ^ ((uint64_t)len << 56));
}

uint64_t hash_str(const char *s)
{
	return hash_bytes(s, strlen(s), 0x51ed270b27ac3f1dull);
}
