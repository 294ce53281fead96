/* Open-addressing hash map: u64 keys (integers or pointers to key data),
 * pointer values. Callers hash their own keys, so variable-length keys (stacks,
 * strings) need no copying into the map. Slot pointers returned by lookups are
 * valid until the next insertion. */
#ifndef MW_HASHMAP_H
#define MW_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* stored: a key in the map; probe: the key a lookup passes. They may be of
 * different kinds (e.g. an index stored, a pointer to a key probed) as long
 * as insertions go through hmap_insert_new. */
typedef bool (*hmap_eq_fn)(uint64_t stored, uint64_t probe, void *ctx);

struct hmap_slot {
	uint64_t hash;		/* 0: empty; stored with the top bit set */
	uint64_t key;
	void *val;
};

struct hmap {
	struct hmap_slot *slots;
	size_t cap;		/* power of two, or 0 */
	size_t len;
	hmap_eq_fn eq;		/* NULL: keys compare as integers */
	void *ctx;
};

void hmap_init(struct hmap *m, hmap_eq_fn eq, void *ctx);
void hmap_free(struct hmap *m);
void hmap_clear(struct hmap *m);
/* The value slot of key, or NULL. */
void **hmap_find(const struct hmap *m, uint64_t hash, uint64_t key);
/* The value slot of key, inserting it with a NULL value when absent;
 * NULL only when memory runs out. */
void **hmap_upsert(struct hmap *m, uint64_t hash, uint64_t key, bool *inserted);
int hmap_put(struct hmap *m, uint64_t hash, uint64_t key, void *val);
/* Inserts a key the caller knows is absent, without comparing keys. */
int hmap_insert_new(struct hmap *m, uint64_t hash, uint64_t key, void *val);
bool hmap_remove(struct hmap *m, uint64_t hash, uint64_t key, void **val);
/* Iteration: for (size_t i = 0; hmap_next(m, &i, &slot);) */
bool hmap_next(const struct hmap *m, size_t *pos, struct hmap_slot **slot);

uint64_t hash_u64(uint64_t x);
uint64_t hash_bytes(const void *data, size_t len, uint64_t seed);
uint64_t hash_str(const char *s);

#endif
