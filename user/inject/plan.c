#include "inject/plan.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "inject/agent/agent.h"
#include "elf/elf_file.h"
#include "proc/process.h"

#define MAX_CODE 65536
#define MAX_TARGETS 16384

/* The arguments the stub and the slow path read, by layout (the first
 * instruction must leave them alone). */
static unsigned layout_reads(enum mw_layout layout)
{
	switch (layout) {
	case MW_LAYOUT_SIZE0: case MW_LAYOUT_FREE:
		return DETOUR_ARG(0);
	case MW_LAYOUT_SIZE1:
		return DETOUR_ARG(1);
	case MW_LAYOUT_CALLOC:
		return DETOUR_ARG(0) | DETOUR_ARG(1) | DETOUR_CLOBBERS_RDX;
	case MW_LAYOUT_REALLOC: case MW_LAYOUT_XALLOCX:
		return DETOUR_ARG(0) | DETOUR_ARG(1);
	case MW_LAYOUT_REALLOCARRAY:
		return DETOUR_ARG(0) | DETOUR_ARG(1) | DETOUR_ARG(2);
	case MW_LAYOUT_MEMALIGN_OUT:
		return DETOUR_ARG(0) | DETOUR_ARG(2);
	default:
		return 0x3f;
	}
}

static void module_range(const struct process *p, const struct objfile *o, uint64_t *lo, uint64_t *hi)
{
	*lo = UINT64_MAX;
	*hi = 0;
	for (size_t i = 0; i < p->maps.n; i++) {
		const struct mapping *m = &p->maps.v[i];
		if (m->data != o)
			continue;
		if (m->start < *lo)
			*lo = m->start;
		if (m->end > *hi)
			*hi = m->end;
	}
}

static bool wraps(const struct allocator *a, const struct alloc_entry *e)
{
	if (e->layout == MW_LAYOUT_FREE)
		return false;	/* a free reports before it releases: inner calls find nothing */
	if (e->tail_calls)
		return true;
	for (size_t i = 0; i < a->nnesting; i++)
		if (a->nesting[i].vaddr == e->vaddr)
			return true;
	return false;
}

static bool throws(const struct alloc_entry *e)
{
	return e->fn == MW_FN_NEW && !strstr(e->name, "nothrow");
}

static struct hook_site *site_at(struct hook_plan *plan, uint64_t vaddr)
{
	for (size_t i = 0; i < plan->n; i++)
		if (plan->sites[i].vaddr == vaddr)
			return &plan->sites[i];
	return NULL;
}

/* The entry named name, following forwarders. */
static const struct alloc_entry *entry_named(const struct allocator *a, const char *name)
{
	for (int hops = 0; name && hops < 4; hops++) {
		const struct alloc_entry *e = NULL;
		for (size_t i = 0; i < a->nentries && !e; i++)
			if (!strcmp(a->entries[i].name, name))
				e = &a->entries[i];
		if (!e || !e->forwards_to)
			return e;
		name = e->forwards_to;
	}
	return NULL;
}

struct planner {
	struct process *p;
	struct objfile *o;
	const struct allocator *a;
	struct hook_plan *plan;
	FILE *log;
	uint8_t *code;
	uint64_t *targets;
	uint8_t *text;		/* the file's executable segments, for the branch scan */
	uint64_t text_vaddr;
	size_t text_len;
};

static int site_refused(struct planner *pl, const struct hook_site *s, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (pl->log)
		fprintf(pl->log, "  %-24s cannot be detoured: %s\n", s->name, why);
	if (!pl->plan->why[0])
		snprintf(pl->plan->why, sizeof(pl->plan->why), "%s: %s", s->name, why);
	return -EPERM;
}

static bool lands_in(const uint64_t *targets, ssize_t n, uint64_t lo, uint64_t hi, uint64_t *hit)
{
	for (ssize_t i = 0; i < n && i < MAX_TARGETS; i++)
		if (targets[i] >= lo && targets[i] < hi) {
			*hit = targets[i];
			return true;
		}
	return false;
}

/* A rel32 branch encoding elsewhere in the file lands in [lo, hi): real,
 * unless the function holding it decodes without such a branch (the bytes
 * were part of another instruction). Unknown functions count as real. */
static bool real_branch_from(struct planner *pl, uint64_t source, uint64_t lo, uint64_t hi)
{
	struct elf_sym fn;
	uint64_t hit;

	if (!elf_file_func_containing(pl->o->elf, source, &fn) || !fn.size || fn.size > MAX_CODE)
		return true;
	ssize_t len = elf_file_read(pl->o->elf, fn.vaddr, pl->code, fn.size);
	ssize_t n = len > 0 ? detour_branch_targets(pl->code, len, fn.vaddr, pl->targets, MAX_TARGETS) : -1;
	return n < 0 || lands_in(pl->targets, n, lo, hi, &hit);
}

/* No branch anywhere in the file may land inside the window (it would run
 * the jmp's bytes), nor may a symbol start there. */
static int check_window(struct planner *pl, struct hook_site *s, size_t len)
{
	uint64_t lo = s->vaddr + s->d.len0, hi = lo + s->d.wlen, hit, sources[16];
	ssize_t n = detour_branch_targets(pl->code, len, s->vaddr, pl->targets, MAX_TARGETS);
	const char *names[4];

	if (n < 0)
		return site_refused(pl, s, "its code does not decode to the end of the symbol");
	if (lands_in(pl->targets, n, lo, hi, &hit))
		return site_refused(pl, s, "a branch in it lands at +%llu, inside the bytes to replace",
				    (unsigned long long)(hit - s->vaddr));
	size_t ns = pl->text ? detour_text_branch_sources(pl->text, pl->text_len, pl->text_vaddr, lo, hi, s->vaddr,
							  s->vaddr + len, sources, 16) : 0;
	if (ns > 16)
		return site_refused(pl, s, "%zu branches elsewhere in the file may land inside the bytes to replace", ns);
	for (size_t i = 0; i < ns; i++)
		if (real_branch_from(pl, sources[i], lo, hi))
			return site_refused(pl, s, "the code at 0x%llx may branch inside the bytes to replace",
					    (unsigned long long)sources[i]);
	/* pl->code held other functions meanwhile: read this one back. */
	if (ns && elf_file_read(pl->o->elf, s->vaddr, pl->code, len) != (ssize_t)len)
		return site_refused(pl, s, "its code cannot be read from the file");
	for (uint64_t at = lo; at < hi; at++)
		if (elf_file_names_at(pl->o->elf, at, names, 4))
			return site_refused(pl, s, "symbol %s starts inside the bytes to replace", names[0]);
	return 0;
}

static int plan_site(struct planner *pl, struct hook_site *s, unsigned reads, uint64_t size)
{
	ssize_t len = elf_file_read(pl->o->elf, s->vaddr, pl->code, size && size < MAX_CODE ? size : MAX_CODE);
	int err;

	if (len <= 0)
		return site_refused(pl, s, "its code cannot be read from the file");
	err = detour_plan(pl->code, len, s->vaddr, reads, &s->d);
	if (err == -EPERM)
		return site_refused(pl, s, "%s", s->d.why);
	if (err)
		return err;
	return check_window(pl, s, len);
}

static int add_site(struct planner *pl, const struct alloc_entry *e, bool alloc_only)
{
	struct hook_plan *plan = pl->plan;
	struct hook_site *s;
	unsigned reads = layout_reads(e->layout);

	if (e->forwards_to || (alloc_only && e->layout == MW_LAYOUT_FREE))
		return 0;
	s = site_at(plan, e->vaddr);
	if (s) {
		size_t n = strlen(s->aliases);
		snprintf(s->aliases + n, sizeof(s->aliases) - n, "%s%s", n ? ", " : "", e->name);
		return 0;
	}
	s = &plan->sites[plan->n++];
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", e->name);
	s->fn = e->fn;
	s->layout = e->layout;
	s->vaddr = e->vaddr;
	s->twin = -1;
	s->entry = process_runtime_addr(pl->p, pl->o, e->vaddr);
	if (!s->entry)
		return site_refused(pl, s, "not mapped in the process");
	if (wraps(pl->a, e))
		s->flags |= MWA_F_WRAP;
	if (throws(e)) {
		s->flags |= MWA_F_THROWS;
		if (strstr(e->name, "align_val_t"))
			reads |= DETOUR_ARG(1);
	}
	return plan_site(pl, s, reads, e->size);
}

/* A throwing new calls its nothrow twin (same name + RKSt9nothrow_t). */
static int link_twins(struct planner *pl)
{
	for (size_t i = 0; i < pl->plan->n; i++) {
		struct hook_site *s = &pl->plan->sites[i];
		char name[96];
		if (!(s->flags & MWA_F_THROWS))
			continue;
		snprintf(name, sizeof(name), "%sRKSt9nothrow_t", s->name);
		const struct alloc_entry *twin = entry_named(pl->a, name);
		struct hook_site *ts = twin ? site_at(pl->plan, twin->vaddr) : NULL;
		if (!ts)
			return site_refused(pl, s, "no %s to call instead (exceptions must not cross the agent)", name);
		s->twin = ts - pl->plan->sites;
		s->twin_arg = strstr(s->name, "align_val_t") ? 2 : 1;
	}
	return 0;
}

/* The file's executable segments, for the whole-file branch scan. */
static void read_text(struct planner *pl)
{
	const struct elf_segment *segs;
	size_t n = elf_file_segments(pl->o->elf, &segs);

	for (size_t i = 0; i < n; i++) {
		if (!(segs[i].flags & 1 /* PF_X */) || !segs[i].filesz)
			continue;
		pl->text = malloc(segs[i].filesz);
		if (!pl->text)
			return;
		ssize_t got = elf_file_read(pl->o->elf, segs[i].vaddr, pl->text, segs[i].filesz);
		if (got <= 0) {
			free(pl->text);
			pl->text = NULL;
			return;
		}
		pl->text_vaddr = segs[i].vaddr;
		pl->text_len = got;
		return;	/* one executable segment: what linkers make */
	}
}

int plan_allocator(struct process *p, struct objfile *o, const struct allocator *alloc, bool alloc_only, FILE *log,
		   struct hook_plan *out)
{
	struct planner pl = { .p = p, .o = o, .a = alloc, .plan = out, .log = log };
	int err = 0, refused = 0;

	memset(out, 0, sizeof(*out));
	module_range(p, o, &out->lo, &out->hi);
	pl.code = malloc(MAX_CODE);
	pl.targets = malloc(MAX_TARGETS * sizeof(*pl.targets));
	if (!pl.code || !pl.targets) {
		err = -ENOMEM;
		goto out;
	}
	read_text(&pl);
	for (size_t i = 0; i < alloc->nentries && !err; i++) {
		int r = add_site(&pl, &alloc->entries[i], alloc_only);
		if (r == -EPERM)
			refused++;
		else
			err = r;
	}
	if (!err && link_twins(&pl))
		refused++;
	if (!err && refused)
		err = -EPERM;
out:
	free(pl.code);
	free(pl.targets);
	free(pl.text);
	return err;
}
