/* The page profile: the stacks that fault memory in and the stacks that
 * purge it, from the kernel side's sampled events. */
#include "profile/pageprof.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/array.h"
#include "util/sampling.h"

const char *page_event_name(enum mw_page_kind kind)
{
	static const char *const names[] = {
		[MW_PAGE_FAULT] = "fault", [MW_PAGE_MADVISE] = "madvise",
		[MW_PAGE_MUNMAP] = "munmap", [MW_PAGE_BRK] = "brk",
	};
	return kind < MW_PAGE_COUNT ? names[kind] : "?";
}

static bool site_eq(uint64_t stored, uint64_t probe, void *ctx)
{
	const struct pageprof *pg = ctx;
	const struct page_site *a = &pg->sites[stored], *b = (const void *)probe;

	return a->stack == b->stack && a->pid == b->pid && a->kind == b->kind;
}

void pageprof_init(struct pageprof *pg, uint64_t rate)
{
	memset(pg, 0, sizeof(*pg));
	pg->rate = rate;
	hmap_init(&pg->site_index, site_eq, pg);
}

void pageprof_free(struct pageprof *pg)
{
	free(pg->sites);
	hmap_free(&pg->site_index);
	memset(pg, 0, sizeof(*pg));
}

static uint32_t site_for(struct pageprof *pg, const struct page_site *k)
{
	uint64_t h = hash_u64(((uint64_t)k->stack << 32) ^ ((uint64_t)k->pid << 4) ^ k->kind);
	void **slot = hmap_find(&pg->site_index, h, (uint64_t)k);

	if (slot)
		return (uint32_t)(uintptr_t)*slot;
	if (ARRAY_GROW(pg->sites, pg->nsites, pg->cap_sites))
		return UINT32_MAX;
	uint32_t id = pg->nsites;
	pg->sites[id] = (struct page_site){ .stack = k->stack, .pid = k->pid, .kind = k->kind };
	if (hmap_insert_new(&pg->site_index, h, id, (void *)(uintptr_t)id))
		return UINT32_MAX;
	pg->nsites++;
	return id;
}

int pageprof_add(struct pageprof *pg, uint32_t stack, pid_t pid, enum mw_page_kind kind, uint64_t bytes)
{
	struct page_site key = { .stack = stack, .pid = pid, .kind = kind };
	uint32_t id = site_for(pg, &key);
	double w = sample_weight(bytes, pg->rate);

	if (id == UINT32_MAX)
		return -ENOMEM;
	pg->sites[id].samples++;
	pg->sites[id].count += w;
	pg->sites[id].bytes += w * bytes;
	pg->samples++;
	return 0;
}

void pageprof_spec(const struct pageprof *pg, struct profile_spec *spec)
{
	spec->types[0][0] = "faults", spec->types[0][1] = "count";
	spec->types[1][0] = "fault_space", spec->types[1][1] = "bytes";
	spec->types[2][0] = "purges", spec->types[2][1] = "count";
	spec->types[3][0] = "purge_space", spec->types[3][1] = "bytes";
	spec->ntypes = 4;
	spec->default_type = "fault_space";
	spec->period_type[0] = "space", spec->period_type[1] = "bytes";
	spec->period = pg->rate > 1 ? (int64_t)pg->rate : 1;
}

int pageprof_snapshot(const struct pageprof *pg, struct page_snapshot *out)
{
	out->nsites = pg->nsites;
	out->v = calloc(pg->nsites + 1, sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	for (uint32_t i = 0; i < pg->nsites; i++) {
		out->v[i][0] = pg->sites[i].count;
		out->v[i][1] = pg->sites[i].bytes;
	}
	return 0;
}

void page_snapshot_free(struct page_snapshot *snap)
{
	free(snap->v);
	memset(snap, 0, sizeof(*snap));
}

long pageprof_rows(const struct pageprof *pg, const struct page_snapshot *base, struct profile_row **out)
{
	struct profile_row *rows = calloc(pg->nsites + 1, sizeof(*rows));
	long n = 0;

	if (!rows)
		return -ENOMEM;
	for (uint32_t i = 0; i < pg->nsites; i++) {
		const struct page_site *s = &pg->sites[i];
		int col = s->kind == MW_PAGE_FAULT ? 0 : 2;
		double count = s->count, bytes = s->bytes;
		if (base && i < base->nsites) {
			count -= base->v[i][0];
			bytes -= base->v[i][1];
		}
		if (llround(count) == 0 && llround(bytes) == 0)
			continue;
		rows[n] = (struct profile_row){ .stack = s->stack, .pid = s->pid, .bytes_label = -1,
						.str_label_key = "event", .str_label = page_event_name(s->kind) };
		rows[n].values[col] = llround(count);
		rows[n].values[col + 1] = llround(bytes);
		n++;
	}
	*out = rows;
	return n;
}

int pageprof_write(struct pageprof *pg, struct stacks *st, struct procs *ps, const struct profile_spec *base, int fd)
{
	struct profile_spec spec = *base;
	struct profile_row *rows;
	long n = pageprof_rows(pg, NULL, &rows);

	if (n < 0)
		return (int)n;
	pageprof_spec(pg, &spec);
	int err = profile_write(st, ps, &spec, rows, n, fd);
	free(rows);
	return err;
}
