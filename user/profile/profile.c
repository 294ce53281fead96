#include "profile/profile.h"

#include <errno.h>
#include <stdlib.h>

#include "elf/elf_file.h"
#include "elf/symbolize.h"
#include "proc/process.h"
#include "profile/pprof.h"
#include "util/array.h"

const struct sym_result *loc_symbols(struct procs *ps, const struct loc *l)
{
	struct sym_file *sf;

	if (!l->obj || !(sf = objfile_symbols(ps, l->obj)))
		return NULL;
	return sym_file_lookup(sf, l->vaddr - (l->is_return ? 1 : 0));
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

struct writer {
	struct stacks *st;
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
	const struct pmap *m = w->st->pmaps[pmap];
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
	const struct loc *l = w->st->locs[id];
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

static void writer_note_mappings(struct writer *w, const struct profile_row *rows, size_t nrows)
{
	for (size_t i = 0; i < nrows; i++) {
		const struct stack *s = stacks_get(w->st, rows[i].stack);
		for (uint32_t j = 0; j < s->n; j++) {
			const struct loc *l = w->st->locs[s->locs[j]];
			if (l->pmap != NO_PMAP)
				note_symbols(&w->mflags[l->pmap], loc_symbols(w->ps, l));
		}
	}
}

/* pprof takes the first mapping for the main binary. */
static void writer_order_mappings(struct writer *w)
{
	for (int exe = 1; exe >= 0; exe--)
		for (uint32_t i = 0; i < w->st->npmaps; i++)
			if (w->mflags[i].used && w->st->pmaps[i]->is_exe == exe)
				writer_mapping(w, i);
}

static bool several_pids(const struct profile_part *parts, size_t nparts)
{
	pid_t first = 0;
	bool seen = false;

	for (size_t p = 0; p < nparts; p++)
		for (size_t i = 0; i < parts[p].nrows; i++) {
			if (seen && parts[p].rows[i].pid != first)
				return true;
			first = parts[p].rows[i].pid;
			seen = true;
		}
	return false;
}

#define MAX_LABELS (4 + PROFILE_MAX_PART_LABELS)

static int writer_row(struct writer *w, const struct profile_part *part, const struct profile_row *row,
		      size_t ntypes, bool label_pid, uint64_t **ids, size_t *cap)
{
	const struct stack *s = stacks_get(w->st, row->stack);
	struct pprof_label labels[MAX_LABELS];
	size_t nlabels = 0;

	if (array_reserve((void **)ids, cap, s->n, sizeof(**ids)))
		return -ENOMEM;
	for (uint32_t j = 0; j < s->n; j++)
		if (!((*ids)[j] = writer_location(w, s->locs[j])))
			return -ENOMEM;
	if (row->bytes_label >= 0)
		labels[nlabels++] = (struct pprof_label){ .key = "bytes", .num = row->bytes_label, .num_unit = "bytes" };
	if (row->str_label_key)
		labels[nlabels++] = (struct pprof_label){ .key = row->str_label_key, .str = row->str_label };
	if (label_pid)
		labels[nlabels++] = (struct pprof_label){ .key = "pid", .num = row->pid };
	for (size_t i = 0; i < PROFILE_MAX_PART_LABELS && part->labels[i][0]; i++)
		if (part->labels[i][1] && *part->labels[i][1])
			labels[nlabels++] = (struct pprof_label){ .key = part->labels[i][0], .str = part->labels[i][1] };
	return pprof_add_sample(w->pp, *ids, s->n, row->values, ntypes, labels, nlabels);
}

static int writer_samples(struct writer *w, const struct profile_spec *spec, const struct profile_part *part,
			  bool label_pid)
{
	uint64_t *ids = NULL;
	size_t cap = 0;
	int err = 0;

	for (size_t i = 0; i < part->nrows && !err; i++)
		err = writer_row(w, part, &part->rows[i], spec->ntypes, label_pid, &ids, &cap);
	free(ids);
	return err;
}

static void writer_header(struct pprof *pp, const struct profile_spec *spec)
{
	for (size_t i = 0; i < spec->ntypes; i++)
		pprof_add_sample_type(pp, spec->types[i][0], spec->types[i][1]);
	if (spec->default_type)
		pprof_set_default_sample_type(pp, spec->default_type);
	pprof_set_period(pp, spec->period_type[0], spec->period_type[1], spec->period);
	if (spec->drop_frames)
		pprof_set_drop_frames(pp, spec->drop_frames);
	pprof_set_time(pp, spec->start_ns, spec->end_ns - spec->start_ns);
	for (const char *const *c = spec->comments; c && *c; c++)
		pprof_add_comment(pp, *c);
}

/* One part's mappings, locations and samples: its stacks table has its own
 * ids, so the writer's tables are per part. */
static int write_part(struct pprof *pp, struct procs *ps, const struct profile_spec *spec,
		      const struct profile_part *part, bool label_pid)
{
	struct stacks *st = part->st;
	struct writer w = { .st = st, .ps = ps, .pp = pp };
	int err = -ENOMEM;

	w.mflags = calloc(st->npmaps + 1, sizeof(*w.mflags));
	w.mapping_ids = calloc(st->npmaps + 1, sizeof(*w.mapping_ids));
	w.location_ids = calloc(st->nlocs + 1, sizeof(*w.location_ids));
	if (w.mflags && w.mapping_ids && w.location_ids) {
		writer_note_mappings(&w, part->rows, part->nrows);
		writer_order_mappings(&w);
		err = writer_samples(&w, spec, part, label_pid);
	}
	free(w.mflags);
	free(w.mapping_ids);
	free(w.location_ids);
	return err;
}

int profile_write_parts(struct procs *ps, const struct profile_spec *spec, const struct profile_part *parts,
			size_t nparts, int fd)
{
	struct pprof *pp = pprof_new();
	bool label_pid = several_pids(parts, nparts);
	int err = 0;

	if (!pp)
		return -ENOMEM;
	writer_header(pp, spec);
	for (size_t i = 0; i < nparts && !err; i++)
		err = write_part(pp, ps, spec, &parts[i], label_pid || parts[i].labels[0][0]);
	if (!err)
		err = pprof_write_gz(pp, fd);
	pprof_free(pp);
	return err;
}

int profile_write(struct stacks *st, struct procs *ps, const struct profile_spec *spec, const struct profile_row *rows,
		  size_t nrows, int fd)
{
	struct profile_part part = { .st = st, .rows = rows, .nrows = nrows };

	return profile_write_parts(ps, spec, &part, 1, fd);
}
