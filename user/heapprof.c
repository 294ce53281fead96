#include "heapprof.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "elf_file.h"
#include "pprof.h"
#include "process.h"
#include "sampling.h"
#include "symbolize.h"

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
	if (hp->nsites == hp->cap_sites) {
		uint32_t ncap = hp->cap_sites ? hp->cap_sites * 2 : 1024;
		struct heap_site *ns = realloc(hp->sites, ncap * sizeof(*ns));
		if (!ns)
			return UINT32_MAX;
		hp->sites = ns;
		hp->cap_sites = ncap;
	}
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

#define SCAN_BATCH 4096

int heapprof_scan_live(struct heapprof *hp, int live_fd)
{
	static struct mw_live_key keys[SCAN_BATCH];
	static uint64_t ids[SCAN_BATCH];
	uint64_t batch = 0;
	bool first = true;
	int err = 0;

	hp->scan_gen++;
	hp->tot.live_unknown = 0;
	clear_inuse(hp);
	for (;;) {
		__u32 n = SCAN_BATCH;
		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		err = bpf_map_lookup_batch(live_fd, first ? NULL : &batch, &batch, keys, ids, &n, &opts);
		if (err)
			err = -errno;
		first = false;
		for (__u32 i = 0; i < n; i++)
			count_live(hp, ids[i]);
		if (err)
			break;
	}
	if (err == -ENOENT)
		err = 0;
	forget_freed(hp);
	return err;
}

static const struct sym_result *loc_symbols(struct procs *ps, const struct loc *l)
{
	struct sym_file *sf;

	if (!l->obj || !(sf = objfile_symbols(ps, l->obj)))
		return NULL;
	return sym_file_lookup(sf, l->vaddr - (l->is_return ? 1 : 0));
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

struct mapping_flags {
	bool used, all_functions, all_files, all_lines, any_inline;
};

/* A mapping claims has_functions etc. only if every location in it has them. */
static void note_symbols(struct mapping_flags *f, const struct sym_result *r)
{
	if (!f->used) {
		*f = (struct mapping_flags){ true, true, true, true, false };
	}
	if (!r || !r->nlines) {
		f->all_functions = f->all_files = f->all_lines = false;
		return;
	}
	for (unsigned j = 0; j < r->nlines; j++) {
		f->all_functions &= r->lines[j].function != NULL;
		f->all_files &= r->lines[j].file != NULL;
		f->all_lines &= r->lines[j].line != 0;
	}
	f->any_inline |= r->nlines > 1;
}

static bool site_empty(const struct heap_site *s)
{
	return !s->alloc_samples && !s->inuse_samples;
}

struct writer {
	struct heapprof *hp;
	struct procs *ps;
	struct pprof *pp;
	struct mapping_flags *mflags;	/* per pmap */
	uint64_t *mapping_ids;		/* per pmap, 0 until created */
	uint64_t *location_ids;		/* per loc, 0 until created */
};

static uint64_t writer_mapping(struct writer *w, uint32_t pmap)
{
	if (pmap == NO_PMAP)
		return 0;
	if (w->mapping_ids[pmap])
		return w->mapping_ids[pmap];
	const struct pmap *m = w->hp->st.pmaps[pmap];
	const struct mapping_flags *f = &w->mflags[pmap];
	const char *build_id = m->obj && m->obj->elf ? elf_file_build_id(m->obj->elf) : NULL;
	struct pprof_mapping pm = {
		.start = m->start, .limit = m->end, .offset = m->offset,
		.filename = m->path, .build_id = build_id,
		.has_functions = f->all_functions, .has_filenames = f->all_files,
		.has_line_numbers = f->all_lines, .has_inline_frames = f->all_functions && f->any_inline,
	};
	return w->mapping_ids[pmap] = pprof_mapping(w->pp, &pm);
}

static uint64_t writer_location(struct writer *w, uint32_t id)
{
	if (w->location_ids[id])
		return w->location_ids[id];
	const struct loc *l = w->hp->st.locs[id];
	struct pprof_line lines[64];
	size_t n = 0;

	if (l->special) {
		lines[n++] = (struct pprof_line){ pprof_function(w->pp, l->special, l->special, "", 0), 0 };
		return w->location_ids[id] = pprof_location(w->pp, 0, 0, lines, n);
	}
	const struct sym_result *r = loc_symbols(w->ps, l);
	for (unsigned j = 0; r && j < r->nlines && n < 64; j++) {
		const struct sym_line *sl = &r->lines[j];
		if (!sl->function)
			continue;
		uint64_t fn = pprof_function(w->pp, sl->function, sl->system_name ? sl->system_name : sl->function,
					     sl->file, 0);
		lines[n++] = (struct pprof_line){ fn, sl->line };
	}
	/* pprof wants a caller's address inside its call instruction. */
	uint64_t addr = l->addr - (l->is_return ? 1 : 0);
	return w->location_ids[id] = pprof_location(w->pp, writer_mapping(w, l->pmap), addr, lines, n);
}

static void writer_note_mappings(struct writer *w)
{
	struct heapprof *hp = w->hp;

	for (uint32_t i = 0; i < hp->nsites; i++) {
		if (site_empty(&hp->sites[i]))
			continue;
		const struct stack *s = stacks_get(&hp->st, hp->sites[i].stack);
		for (uint32_t j = 0; j < s->n; j++) {
			const struct loc *l = hp->st.locs[s->locs[j]];
			if (l->pmap != NO_PMAP)
				note_symbols(&w->mflags[l->pmap], loc_symbols(w->ps, l));
		}
	}
}

/* pprof takes the first mapping for the main binary. */
static void writer_order_mappings(struct writer *w)
{
	for (int exe = 1; exe >= 0; exe--)
		for (uint32_t i = 0; i < w->hp->st.npmaps; i++)
			if (w->mflags[i].used && w->hp->st.pmaps[i]->is_exe == exe)
				writer_mapping(w, i);
}

static bool several_pids(const struct heapprof *hp)
{
	for (uint32_t i = 1; i < hp->nsites; i++)
		if (hp->sites[i].pid != hp->sites[0].pid)
			return true;
	return false;
}

static int writer_samples(struct writer *w, bool alloc_only)
{
	struct heapprof *hp = w->hp;
	bool label_pid = several_pids(hp);
	uint64_t *ids = NULL;
	uint32_t cap = 0;
	int err = 0;

	for (uint32_t i = 0; i < hp->nsites && !err; i++) {
		const struct heap_site *site = &hp->sites[i];
		if (site_empty(site))
			continue;
		const struct stack *s = stacks_get(&hp->st, site->stack);
		if (s->n > cap) {
			cap = s->n * 2;
			uint64_t *nids = realloc(ids, cap * sizeof(*ids));
			if (!nids) {
				err = -ENOMEM;
				break;
			}
			ids = nids;
		}
		for (uint32_t j = 0; j < s->n; j++)
			if (!(ids[j] = writer_location(w, s->locs[j])))
				err = -ENOMEM;
		int64_t values[4] = {
			llround(site->alloc_objects), llround(site->alloc_bytes),
			llround(site->inuse_objects), llround(site->inuse_bytes),
		};
		struct pprof_label labels[2] = {
			{ .key = "bytes", .num = (int64_t)site->size, .num_unit = "bytes" },
			{ .key = "pid", .num = site->pid },
		};
		if (!err)
			err = pprof_add_sample(w->pp, ids, s->n, values, alloc_only ? 2 : 4, labels, label_pid ? 2 : 1);
	}
	free(ids);
	return err;
}

static void writer_header(struct writer *w, const struct profile_meta *meta)
{
	struct pprof *pp = w->pp;

	pprof_add_sample_type(pp, "alloc_objects", "count");
	pprof_add_sample_type(pp, "alloc_space", "bytes");
	if (meta->alloc_only) {
		/* Go's "allocs" profile: the same types minus in-use. */
		pprof_set_default_sample_type(pp, "alloc_space");
	} else {
		pprof_add_sample_type(pp, "inuse_objects", "count");
		pprof_add_sample_type(pp, "inuse_space", "bytes");
	}
	pprof_set_period(pp, "space", "bytes", w->hp->rate > 1 ? (int64_t)w->hp->rate : 1);
	if (w->hp->drop_frames)
		pprof_set_drop_frames(pp, w->hp->drop_frames);
	pprof_set_time(pp, meta->start_ns, meta->end_ns - meta->start_ns);
	for (const char *const *c = meta->comments; c && *c; c++)
		pprof_add_comment(pp, *c);
}

int heapprof_write(struct heapprof *hp, struct procs *ps, const struct profile_meta *meta, int fd)
{
	struct writer w = { .hp = hp, .ps = ps, .pp = pprof_new() };
	int err = -ENOMEM;

	w.mflags = calloc(hp->st.npmaps + 1, sizeof(*w.mflags));
	w.mapping_ids = calloc(hp->st.npmaps + 1, sizeof(*w.mapping_ids));
	w.location_ids = calloc(hp->st.nlocs + 1, sizeof(*w.location_ids));
	if (w.pp && w.mflags && w.mapping_ids && w.location_ids) {
		writer_header(&w, meta);
		writer_note_mappings(&w);
		writer_order_mappings(&w);
		err = writer_samples(&w, meta->alloc_only);
		if (!err)
			err = pprof_write_gz(w.pp, fd);
	}
	free(w.mflags);
	free(w.mapping_ids);
	free(w.location_ids);
	if (w.pp)
		pprof_free(w.pp);
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

void heapprof_print_top(struct heapprof *hp, struct procs *ps, FILE *out, unsigned n)
{
	struct named_total *tops = calloc(hp->nsites + 1, sizeof(*tops));
	struct hmap by_name;
	uint32_t ntops = 0;

	if (!tops)
		return;
	hmap_init(&by_name, NULL, NULL);
	/* Names are interned by the symbolizer, so pointers identify them. */
	for (uint32_t i = 0; i < hp->nsites; i++) {
		const struct heap_site *s = &hp->sites[i];
		if (!s->inuse_samples)
			continue;
		const char *name = heapprof_site_name(hp, ps, s->stack);
		bool fresh;
		void **slot = hmap_upsert(&by_name, hash_u64((uintptr_t)name), (uintptr_t)name, &fresh);
		if (!slot)
			break;
		if (fresh) {
			*slot = (void *)(uintptr_t)ntops;
			tops[ntops++].name = name;
		}
		struct named_total *t = &tops[(uintptr_t)*slot];
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
