#include "stacks/stacks.h"

#include <stdlib.h>
#include <string.h>

#include "proc/process.h"
#include "util/array.h"

static bool loc_eq(uint64_t a, uint64_t b, void *ctx)
{
	const struct loc *x = (const void *)a, *y = (const void *)b;

	return x->pid == y->pid && x->epoch == y->epoch && x->addr == y->addr && x->is_return == y->is_return &&
	       x->special == y->special;
}

static bool pmap_eq(uint64_t a, uint64_t b, void *ctx)
{
	const struct pmap *x = (const void *)a, *y = (const void *)b;

	return x->pid == y->pid && x->start == y->start && x->end == y->end && x->offset == y->offset &&
	       x->obj == y->obj;
}

static bool stack_eq(uint64_t a, uint64_t b, void *ctx)
{
	const struct stack *x = (const void *)a, *y = (const void *)b;

	return x->n == y->n && !memcmp(x->locs, y->locs, x->n * sizeof(x->locs[0]));
}

void stacks_init(struct stacks *st)
{
	memset(st, 0, sizeof(*st));
	hmap_init(&st->loc_index, loc_eq, NULL);
	hmap_init(&st->pmap_index, pmap_eq, NULL);
	hmap_init(&st->stack_index, stack_eq, NULL);
}

void stacks_free(struct stacks *st)
{
	for (uint32_t i = 0; i < st->nlocs; i++)
		free(st->locs[i]);
	for (uint32_t i = 0; i < st->npmaps; i++) {
		free(st->pmaps[i]->path);
		free(st->pmaps[i]);
	}
	for (uint32_t i = 0; i < st->nstacks; i++)
		free(st->stacks[i]);
	free(st->locs);
	free(st->pmaps);
	free(st->stacks);
	hmap_free(&st->loc_index);
	hmap_free(&st->pmap_index);
	hmap_free(&st->stack_index);
}

/* Appends item to a growable pointer array; returns its index or UINT32_MAX. */
static uint32_t push(void ***arr, uint32_t *n, size_t *cap, void *item)
{
	if (*n == UINT32_MAX - 1 || array_reserve((void **)arr, cap, (size_t)*n + 1, sizeof(**arr)))
		return UINT32_MAX;
	(*arr)[*n] = item;
	return (*n)++;
}

static uint64_t pmap_hash(const struct pmap *m)
{
	return hash_u64(m->start ^ hash_u64(m->offset ^ ((uint64_t)m->pid << 40)));
}

static uint32_t intern_pmap(struct stacks *st, const struct process *p, const struct frame_at *at)
{
	struct pmap probe = {
		.pid = p->pid, .start = at->map->start, .end = at->map->end,
		.offset = at->map->offset, .obj = at->map->data, .is_exe = objfile_is_exe(at->map->data, p),
	};
	uint64_t h = pmap_hash(&probe);
	void **slot = hmap_find(&st->pmap_index, h, (uint64_t)&probe);

	if (slot)
		return (uint32_t)(uintptr_t)*slot;
	struct pmap *m = malloc(sizeof(*m));
	if (!m)
		return NO_PMAP;
	*m = probe;
	m->path = strdup(at->map->path);
	uint32_t id = push((void ***)&st->pmaps, &st->npmaps, &st->cap_pmaps, m);
	if (!m->path || id == UINT32_MAX || hmap_put(&st->pmap_index, h, (uint64_t)m, (void *)(uintptr_t)id)) {
		if (id != UINT32_MAX)
			st->npmaps--;
		free(m->path);
		free(m);
		return NO_PMAP;
	}
	return id;
}

static uint64_t loc_hash(const struct loc *l)
{
	return hash_u64(l->addr ^ ((uint64_t)l->pid << 33) ^ ((uint64_t)l->epoch << 48) ^ l->is_return ^
			(uintptr_t)l->special);
}

static uint32_t intern_loc(struct stacks *st, struct procs *ps, struct process *p, uint64_t addr,
			   bool is_return, const char *special)
{
	struct loc probe = { .pid = p->pid, .epoch = p->epoch, .addr = addr, .is_return = is_return,
			     .special = special, .pmap = NO_PMAP };
	uint64_t h = loc_hash(&probe);
	void **slot = hmap_find(&st->loc_index, h, (uint64_t)&probe);
	struct frame_at at;

	if (slot)
		return (uint32_t)(uintptr_t)*slot;
	/* A return address may sit just past the end of its mapping. */
	if (!special && process_resolve(ps, p, is_return ? addr - 1 : addr, &at)) {
		probe.pmap = intern_pmap(st, p, &at);
		probe.obj = at.obj;
		probe.vaddr = at.vaddr + (is_return ? 1 : 0);
	}
	struct loc *l = malloc(sizeof(*l));
	if (!l)
		return UINT32_MAX;
	*l = probe;
	uint32_t id = push((void ***)&st->locs, &st->nlocs, &st->cap_locs, l);
	if (id == UINT32_MAX || hmap_put(&st->loc_index, h, (uint64_t)l, (void *)(uintptr_t)id)) {
		if (id != UINT32_MAX)
			st->nlocs--;
		free(l);
		return UINT32_MAX;
	}
	return id;
}

uint32_t stacks_intern(struct stacks *st, struct procs *ps, struct process *p, const uint64_t *frames,
		       uint32_t n, const char *special)
{
	uint32_t total = n + (special ? 1 : 0);
	struct stack *s = malloc(sizeof(*s) + total * sizeof(s->locs[0]));

	if (!s)
		return UINT32_MAX;
	s->n = total;
	for (uint32_t i = 0; i < n; i++) {
		s->locs[i] = intern_loc(st, ps, p, frames[i], i > 0, NULL);
		if (s->locs[i] == UINT32_MAX)
			goto fail;
	}
	if (special) {
		s->locs[n] = intern_loc(st, ps, p, 0, false, special);
		if (s->locs[n] == UINT32_MAX)
			goto fail;
	}
	uint64_t h = hash_bytes(s->locs, total * sizeof(s->locs[0]), total);
	void **slot = hmap_find(&st->stack_index, h, (uint64_t)s);
	if (slot) {
		free(s);
		return (uint32_t)(uintptr_t)*slot;
	}
	uint32_t id = push((void ***)&st->stacks, &st->nstacks, &st->cap_stacks, s);
	if (id == UINT32_MAX || hmap_put(&st->stack_index, h, (uint64_t)s, (void *)(uintptr_t)id)) {
		if (id != UINT32_MAX)
			st->nstacks--;
		goto fail;
	}
	return id;
fail:
	free(s);
	return UINT32_MAX;
}
