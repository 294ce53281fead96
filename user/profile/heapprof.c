#include "profile/heapprof.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "elf/symbolize.h"
#include "proc/process.h"
#include "profile/profile.h"
#include "util/array.h"
#include "util/sampling.h"

struct site_key {
	uint32_t stack;
	pid_t pid;
	uint64_t size;
};

static bool site_eq(uint64_t a, uint64_t b, void *ctx)
{
	struct heapprof *hp = ctx;
	const struct heap_site *x = &hp->sites[a];
	const struct site_key *k = (const void *)b;

	/* Stored keys are site indexes; lookups pass a site_key pointer. */
	return x->stack == k->stack && x->pid == k->pid && x->size == k->size;
}

void heapprof_init(struct heapprof *hp, uint64_t rate, const char *drop_frames)
{
	memset(hp, 0, sizeof(*hp));
	hp->rate = rate;
	stacks_init(&hp->st);
	hmap_init(&hp->site_index, site_eq, hp);
	hmap_init(&hp->samples, NULL, NULL);
	hp->drop_frames = drop_frames;
	if (drop_frames) {
		char *rx = malloc(strlen(drop_frames) + 5);
		if (rx) {
			sprintf(rx, "^(%s)$", drop_frames);
			hp->have_drop_rx = !regcomp(&hp->drop_rx, rx, REG_EXTENDED | REG_NOSUB);
			free(rx);
		}
	}
}

void heapprof_free(struct heapprof *hp)
{
	stacks_free(&hp->st);
	free(hp->sites);
	hmap_free(&hp->site_index);
	hmap_free(&hp->samples);
	if (hp->have_drop_rx)
		regfree(&hp->drop_rx);
}

static uint64_t site_hash(const struct site_key *k)
{
	return hash_u64(k->size ^ hash_u64((uint64_t)k->stack << 32 | (uint32_t)k->pid));
}

/* Site index, created if new; UINT32_MAX when out of memory. The map
 * stores indexes and is probed with site_key pointers (see site_eq). */
static uint32_t site_for(struct heapprof *hp, const struct site_key *k)
{
	uint64_t h = site_hash(k);
	void **slot = hmap_find(&hp->site_index, h, (uint64_t)k);

	if (slot)
		return (uint32_t)(uintptr_t)*slot;
	if (ARRAY_GROW(hp->sites, hp->nsites, hp->cap_sites))
		return UINT32_MAX;
	uint32_t id = hp->nsites;
	hp->sites[id] = (struct heap_site){ .stack = k->stack, .pid = k->pid, .size = k->size };
	if (hmap_insert_new(&hp->site_index, h, id, (void *)(uintptr_t)id))
		return UINT32_MAX;
	hp->nsites++;
	return id;
}

/* Sample values are packed as site index | generation << 32. */
static void *pack_sample(uint32_t site, uint32_t gen)
{
	return (void *)(uintptr_t)((uint64_t)gen << 32 | site);
}

int heapprof_add(struct heapprof *hp, uint64_t sample_id, uint32_t stack, pid_t pid, uint64_t size)
{
	struct site_key k = { .stack = stack, .pid = pid, .size = size };
	uint32_t site = site_for(hp, &k);
	double w = sample_weight(size, hp->rate);

	if (site == UINT32_MAX || hmap_put(&hp->samples, hash_u64(sample_id), sample_id, pack_sample(site, hp->scan_gen))) {
		hp->tot.stack_oom++;
		return -ENOMEM;
	}
	struct heap_site *s = &hp->sites[site];
	s->alloc_samples++;
	s->alloc_objects += w;
	s->alloc_bytes += w * size;
	hp->tot.samples++;
	hp->tot.alloc_objects += w;
	hp->tot.alloc_bytes += w * size;
	return 0;
}

void heapprof_cancel(struct heapprof *hp, uint64_t sample_id)
{
	void *val;

	if (!hmap_remove(&hp->samples, hash_u64(sample_id), sample_id, &val))
		return;
	struct heap_site *s = &hp->sites[(uint32_t)(uintptr_t)val];
	double w = sample_weight(s->size, hp->rate);
	s->alloc_samples--;
	s->alloc_objects -= w;
	s->alloc_bytes -= w * s->size;
	hp->tot.cancels++;
	hp->tot.samples--;
	hp->tot.alloc_objects -= w;
	hp->tot.alloc_bytes -= w * s->size;
}

static void clear_inuse(struct heapprof *hp)
{
	for (uint32_t i = 0; i < hp->nsites; i++) {
		hp->sites[i].inuse_samples = 0;
		hp->sites[i].inuse_objects = hp->sites[i].inuse_bytes = 0;
	}
	hp->tot.inuse_bytes = hp->tot.inuse_objects = 0;
	hp->tot.inuse_samples = 0;
}

static void count_live(struct heapprof *hp, uint64_t sample_id)
{
	void **slot = hmap_find(&hp->samples, hash_u64(sample_id), sample_id);

	if (!slot) {
		hp->tot.live_unknown++;
		return;
	}
	uint32_t site = (uint32_t)(uintptr_t)*slot;
	*slot = pack_sample(site, hp->scan_gen);
	struct heap_site *s = &hp->sites[site];
	double w = sample_weight(s->size, hp->rate);
	s->inuse_samples++;
	s->inuse_objects += w;
	s->inuse_bytes += w * s->size;
	hp->tot.inuse_samples++;
	hp->tot.inuse_objects += w;
	hp->tot.inuse_bytes += w * s->size;
}

/* Samples absent from this scan and the one before are freed blocks (or
 * failed calls); their records can go. */
static void forget_freed(struct heapprof *hp)
{
	struct hmap_slot *slot;

	for (size_t i = 0; hmap_next(&hp->samples, &i, &slot);) {
		uint32_t seen = (uint64_t)(uintptr_t)slot->val >> 32;
		if (seen + 1 < hp->scan_gen) {
			hmap_remove(&hp->samples, slot->hash, slot->key, NULL);
			i--;	/* backward shift moved a later entry here */
		}
	}
}

void heapprof_scan_begin(struct heapprof *hp)
{
	hp->scan_gen++;
	hp->tot.live_unknown = 0;
	clear_inuse(hp);
}

void heapprof_scan_count(struct heapprof *hp, uint64_t sample_id)
{
	count_live(hp, sample_id);
}

void heapprof_scan_end(struct heapprof *hp)
{
	forget_freed(hp);
}

static bool is_allocator_frame(struct heapprof *hp, const char *fn)
{
	return fn && hp->have_drop_rx && !regexec(&hp->drop_rx, fn, 0, NULL, 0);
}

const char *heapprof_site_name(struct heapprof *hp, struct procs *ps, uint32_t stack)
{
	const struct stack *s = stacks_get(&hp->st, stack);

	for (uint32_t i = 0; i < s->n; i++) {
		const struct loc *l = hp->st.locs[s->locs[i]];
		if (l->special)
			return l->special;
		const struct sym_result *r = loc_symbols(ps, l);
		for (unsigned j = 0; r && j < r->nlines; j++) {
			const char *fn = r->lines[j].function;
			if (fn && !is_allocator_frame(hp, fn))
				return fn;
		}
		if ((!r || !r->nlines) && i > 0)
			return "[unknown]";
	}
	return "[unknown]";
}

static bool site_empty(const struct heap_site *s)
{
	return !s->alloc_samples && !s->inuse_samples;
}

void heapprof_spec(const struct heapprof *hp, const struct profile_meta *meta, struct profile_spec *spec)
{
	*spec = (struct profile_spec){
		.types = { { "alloc_objects", "count" }, { "alloc_space", "bytes" },
			   { "inuse_objects", "count" }, { "inuse_space", "bytes" } },
		/* --alloc-only: Go's "allocs" profile, the same types minus in-use. */
		.ntypes = meta->alloc_only ? 2 : 4,
		.default_type = meta->alloc_only ? "alloc_space" : NULL,
		.period_type = { "space", "bytes" },
		.period = hp->rate > 1 ? (int64_t)hp->rate : 1,
		.drop_frames = hp->drop_frames,
		.start_ns = meta->start_ns,
		.end_ns = meta->end_ns,
		.comments = meta->comments,
	};
}

static void site_values(const struct heap_site *site, double v[4])
{
	v[0] = site->alloc_objects;
	v[1] = site->alloc_bytes;
	v[2] = site->inuse_objects;
	v[3] = site->inuse_bytes;
}

int heapprof_snapshot(const struct heapprof *hp, struct heap_snapshot *out)
{
	out->nsites = hp->nsites;
	out->v = calloc(hp->nsites + 1, sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	for (uint32_t i = 0; i < hp->nsites; i++)
		site_values(&hp->sites[i], out->v[i]);
	return 0;
}

void heap_snapshot_free(struct heap_snapshot *snap)
{
	free(snap->v);
	memset(snap, 0, sizeof(*snap));
}

long heapprof_rows(const struct heapprof *hp, const struct heap_snapshot *base, struct profile_row **out)
{
	struct profile_row *rows = calloc(hp->nsites + 1, sizeof(*rows));
	long n = 0;

	if (!rows)
		return -ENOMEM;
	for (uint32_t i = 0; i < hp->nsites; i++) {
		const struct heap_site *site = &hp->sites[i];
		double v[4];
		if (site_empty(site))
			continue;
		site_values(site, v);
		for (int k = 0; base && i < base->nsites && k < 4; k++)
			v[k] -= base->v[i][k];
		struct profile_row *r = &rows[n];
		*r = (struct profile_row){ .stack = site->stack, .pid = site->pid, .bytes_label = (int64_t)site->size };
		for (int k = 0; k < 4; k++)
			r->values[k] = llround(v[k]);
		if (r->values[0] || r->values[1] || r->values[2] || r->values[3])
			n++;
	}
	*out = rows;
	return n;
}

int heapprof_write(struct heapprof *hp, struct procs *ps, const struct profile_meta *meta, int fd)
{
	struct profile_spec spec;
	struct profile_row *rows;
	long n = heapprof_rows(hp, NULL, &rows);

	if (n < 0)
		return (int)n;
	heapprof_spec(hp, meta, &spec);
	int err = profile_write(&hp->st, ps, &spec, rows, n, fd);
	free(rows);
	return err;
}

struct named_total {
	const char *name;
	double bytes, objects;
};

static int by_bytes_desc(const void *a, const void *b)
{
	const struct named_total *x = a, *y = b;

	return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

static void print_size(FILE *out, double bytes)
{
	const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;

	while (bytes >= 1024 && u < 4) {
		bytes /= 1024;
		u++;
	}
	fprintf(out, u ? "%8.1f %-3s" : "%8.0f %-3s", bytes, units[u]);
}

/* Sites grouped by function name: name's row, added as row *nrows (then
 * counted) the first time it comes; -1 when out of memory. Names are
 * interned by the symbolizer, so pointers identify them. */
static long name_row(struct hmap *by_name, const char *name, uint32_t *nrows)
{
	bool fresh;
	void **slot = hmap_upsert(by_name, hash_u64((uintptr_t)name), (uintptr_t)name, &fresh);

	if (!slot)
		return -1;
	if (fresh)
		*slot = (void *)(uintptr_t)(*nrows)++;
	return (long)(uintptr_t)*slot;
}

void heapprof_print_top(struct heapprof *hp, struct procs *ps, FILE *out, unsigned n)
{
	struct named_total *tops = calloc(hp->nsites + 1, sizeof(*tops));
	struct hmap by_name;
	uint32_t ntops = 0;

	if (!tops)
		return;
	hmap_init(&by_name, NULL, NULL);
	for (uint32_t i = 0; i < hp->nsites; i++) {
		const struct heap_site *s = &hp->sites[i];
		if (!s->inuse_samples)
			continue;
		const char *name = heapprof_site_name(hp, ps, s->stack);
		uint32_t before = ntops;
		long row = name_row(&by_name, name, &ntops);
		if (row < 0)
			break;
		if (ntops != before)
			tops[row].name = name;
		struct named_total *t = &tops[row];
		t->bytes += s->inuse_bytes;
		t->objects += s->inuse_objects;
	}
	qsort(tops, ntops, sizeof(*tops), by_bytes_desc);
	for (uint32_t i = 0; i < ntops && i < n; i++) {
		fputs("  ", out);
		print_size(out, tops[i].bytes);
		fprintf(out, " %5.1f%%  %10.0f objs  %s\n",
			hp->tot.inuse_bytes > 0 ? 100.0 * tops[i].bytes / hp->tot.inuse_bytes : 0.0,
			tops[i].objects, tops[i].name);
	}
	hmap_free(&by_name);
	free(tops);
}

void heapprof_mark_baseline(struct heapprof *hp)
{
	for (uint32_t i = 0; i < hp->nsites; i++)
		hp->sites[i].baseline_bytes = hp->sites[i].inuse_bytes;
}

static int by_growth_desc(const void *a, const void *b)
{
	const struct site_growth *x = a, *y = b;
	double gx = x->last_bytes - x->first_bytes, gy = y->last_bytes - y->first_bytes;

	return gx < gy ? 1 : gx > gy ? -1 : 0;
}

size_t heapprof_growth(struct heapprof *hp, struct procs *ps, struct site_growth *out, size_t max)
{
	struct site_growth *all = calloc(hp->nsites + 1, sizeof(*all));
	struct hmap by_name;
	uint32_t n = 0;

	if (!all)
		return 0;
	hmap_init(&by_name, NULL, NULL);
	for (uint32_t i = 0; i < hp->nsites; i++) {
		const struct heap_site *s = &hp->sites[i];
		if (!s->inuse_samples && !s->baseline_bytes)
			continue;
		const char *name = heapprof_site_name(hp, ps, s->stack);
		uint32_t before = n;
		long row = name_row(&by_name, name, &n);
		if (row < 0)
			break;
		if (n != before)
			all[row].name = name;
		all[row].first_bytes += s->baseline_bytes;
		all[row].last_bytes += s->inuse_bytes;
	}
	qsort(all, n, sizeof(*all), by_growth_desc);
	if (n > max)
		n = max;
	memcpy(out, all, n * sizeof(*out));
	hmap_free(&by_name);
	free(all);
	return n;
}

void heapprof_live_by_size(const struct heapprof *hp, double *buckets, unsigned nbuckets)
{
	memset(buckets, 0, nbuckets * sizeof(*buckets));
	for (uint32_t i = 0; i < hp->nsites; i++) {
		const struct heap_site *s = &hp->sites[i];
		unsigned b = 0;
		for (uint64_t size = s->size; size > 1 && b + 1 < nbuckets; size >>= 1)
			b++;
		buckets[b] += s->inuse_bytes;
	}
}
