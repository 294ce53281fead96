/* libdwfl 0.188 finds a unit only through .debug_aranges, which clang and
 * rustc do not emit, and dwarf_getscopes + dwarf_getscopes_die walk a whole
 * unit per lookup (about 100 us per address in glibc's larger ones). So
 * every unit's ranges are sorted once when DWARF is loaded, the ranges of a
 * unit's functions on the first lookup in it, and a lookup descends only
 * into the one function containing the address. */
#include "elf/die_index.h"

#include <dwarf.h>
#include <stdlib.h>
#include <string.h>

#include "util/array.h"

static void die_names(Dwarf_Die *die, struct die_frame *fr)
{
	Dwarf_Attribute attr;
	fr->linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
	if (!fr->linkage)
		fr->linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
	fr->name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &attr));
}

/* Where the inlined instance die was called from: its caller's file:line
 * into loc (whose comp_dir stays when the unit has none). */
static void call_site(Dwarf_Die *die, struct die_frame *loc)
{
	Dwarf_Attribute attr;
	Dwarf_Word value;
	loc->file = NULL;
	loc->line = 0;
	if (dwarf_formudata(dwarf_attr(die, DW_AT_call_line, &attr), &value) == 0)
		loc->line = value;
	if (dwarf_formudata(dwarf_attr(die, DW_AT_call_file, &attr), &value) != 0)
		return;
	/* The file index is into the line table of the unit holding die (a
	 * dwz partial unit may differ from the CU holding the address). */
	Dwarf_Die cu;
	Dwarf_Files *files;
	size_t nfiles;
	if (!dwarf_diecu(die, &cu, NULL, NULL) || dwarf_getsrcfiles(&cu, &files, &nfiles) != 0 ||
	    value >= nfiles)
		return;
	loc->file = dwarf_filesrc(files, value, NULL, NULL);
	const char *comp_dir = dwarf_formstring(dwarf_attr(&cu, DW_AT_comp_dir, &attr));
	if (comp_dir)
		loc->comp_dir = comp_dir;
}

/* The line table row for pc in the unit cudie. */
static void source_line(Dwarf_Die *cudie, Dwarf_Addr pc, struct die_frame *fr)
{
	Dwarf_Line *l = dwarf_getsrc_die(cudie, pc);
	int line = 0;
	fr->file = l ? dwarf_linesrc(l, NULL, NULL) : NULL;
	if (!fr->file)
		return;
	Dwarf_Attribute attr;
	fr->comp_dir = dwarf_formstring(dwarf_attr(cudie, DW_AT_comp_dir, &attr));
	fr->line = dwarf_lineno(l, &line) == 0 && line > 0 ? (unsigned)line : 0;
}



static int die_ranges_add(struct die_ranges *dr, Dwarf_Die *die)
{
	Dwarf_Addr base, low, high;
	ptrdiff_t off = 0;
	while ((off = dwarf_ranges(die, off, &base, &low, &high)) > 0) {
		if (high <= low)
			continue;
		if (ARRAY_GROW(dr->v, dr->n, dr->cap))
			return -1;
		dr->v[dr->n++] = (struct die_range){ .low = low, .high = high, .die = *die };
	}
	return 0;
}

static int die_range_cmp(const void *a, const void *b)
{
	const struct die_range *x = a, *y = b;
	return x->low < y->low ? -1 : x->low > y->low;
}

static void die_ranges_finish(struct die_ranges *dr)
{
	if (dr->n)
		qsort(dr->v, dr->n, sizeof(*dr->v), die_range_cmp);
	Dwarf_Addr max_high = 0;
	for (size_t i = 0; i < dr->n; i++) {
		if (dr->v[i].high > max_high)
			max_high = dr->v[i].high;
		dr->v[i].max_high = max_high;
	}
}

static const Dwarf_Die *die_ranges_find(const struct die_ranges *dr, Dwarf_Addr pc)
{
	size_t lo = 0, hi = dr->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (dr->v[mid].low <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Ranges should not overlap; if they do, the max_high prefix bounds
	 * the walk back. */
	for (size_t i = lo; i-- > 0 && dr->v[i].max_high > pc;)
		if (pc < dr->v[i].high)
			return &dr->v[i].die;
	return NULL;
}

/* Compile units with code (skeleton units: their line tables; the split
 * DWARF itself is never looked for, it would be opened by path). */
static void index_units(struct die_index *f)
{
	Dwarf_CU *cu = NULL;
	Dwarf_Die cudie;
	uint8_t unit_type;
	while (dwarf_get_units(f->dw, cu, &cu, NULL, &unit_type, &cudie, NULL) == 0) {
		if ((unit_type == DW_UT_compile || unit_type == DW_UT_skeleton) &&
		    die_ranges_add(&f->units, &cudie))
			break;
	}
	die_ranges_finish(&f->units);
}

/* Functions with code among the children of parent, looking through
 * namespaces, types and imported (dwz partial) units. */
static int index_children(struct die_ranges *dr, Dwarf_Die *parent, int depth)
{
	Dwarf_Die child;
	if (depth > DIE_MAX_NESTING || dwarf_child(parent, &child) != 0)
		return 0;
	do {
		Dwarf_Attribute attr;
		Dwarf_Die unit;
		int ret = 0;
		switch (dwarf_tag(&child)) {
		case DW_TAG_subprogram:
			ret = die_ranges_add(dr, &child);
			break;
		case DW_TAG_namespace:
		case DW_TAG_module:
		case DW_TAG_class_type:
		case DW_TAG_structure_type:
		case DW_TAG_union_type:
			ret = index_children(dr, &child, depth + 1);
			break;
		case DW_TAG_imported_unit:
			if (dwarf_formref_die(dwarf_attr(&child, DW_AT_import, &attr), &unit))
				ret = index_children(dr, &unit, depth + 1);
			break;
		}
		if (ret)
			return ret;
	} while (dwarf_siblingof(&child, &child) == 0);
	return 0;
}

static struct die_ranges *unit_functions(struct die_index *f, Dwarf_Die *cudie)
{
	uint64_t key = (uint64_t)(uintptr_t)cudie->addr;
	uint64_t h = hash_u64(key);
	void **slot = hmap_find(&f->unit_functions, h, key);
	if (slot)
		return *slot;
	struct die_ranges *dr = calloc(1, sizeof(*dr));
	if (!dr)
		return NULL;
	if (index_children(dr, cudie, 0) == 0)
		die_ranges_finish(dr);
	else
		dr->n = 0;	/* out of memory: nothing rather than half */
	if (hmap_put(&f->unit_functions, h, key, dr)) {
		free(dr->v);
		free(dr);
		return NULL;
	}
	return dr;
}

/* The unit containing vaddr: from our index, else from .debug_aranges. */
static bool unit_at(struct die_index *f, uint64_t vaddr, Dwarf_Die *cudie, Dwarf_Addr *pc)
{
	const Dwarf_Die *unit = die_ranges_find(&f->units, vaddr - f->bias);
	if (unit) {
		*cudie = *unit;
		*pc = vaddr - f->bias;
		return true;
	}
	Dwarf_Addr bias;
	Dwarf_Die *die = dwfl_module_addrdie(f->mod, vaddr, &bias);
	if (!die)
		return false;
	*cudie = *die;
	*pc = vaddr - bias;
	return true;
}

static bool may_hold_code(int tag)
{
	switch (tag) {
	case DW_TAG_subprogram:
	case DW_TAG_inlined_subroutine:
	case DW_TAG_lexical_block:
	case DW_TAG_try_block:
	case DW_TAG_catch_block:
	case DW_TAG_with_stmt:
	case DW_TAG_entry_point:
		return true;
	}
	return false;
}

/* The DIEs from fn down to the innermost scope containing pc, outermost
 * first; returns how many were stored in chain (at most DIE_MAX_NESTING). */
static unsigned descend(const Dwarf_Die *fn, Dwarf_Addr pc, Dwarf_Die *chain)
{
	unsigned n = 0;
	chain[n++] = *fn;
	while (n < DIE_MAX_NESTING) {
		Dwarf_Die child;
		bool found = false;
		if (dwarf_child(&chain[n - 1], &child) == 0) {
			do {
				found = may_hold_code(dwarf_tag(&child)) && dwarf_haspc(&child, pc) > 0;
			} while (!found && dwarf_siblingof(&child, &child) == 0);
		}
		if (!found)
			break;
		chain[n++] = child;
	}
	return n;
}

/* Inline-expanded frames from DWARF, innermost first; returns how many were
 * stored in frames (room for DIE_MAX_NESTING), 0 if DWARF knows nothing. */
unsigned die_index_frames(struct die_index *f, uint64_t vaddr, struct die_frame *frames)
{
	Dwarf_Die cudie;
	Dwarf_Addr pc;
	if (!f->dw || !unit_at(f, vaddr, &cudie, &pc))
		return 0;
	struct die_frame leaf = { 0 };
	source_line(&cudie, pc, &leaf);
	struct die_ranges *functions = unit_functions(f, &cudie);
	const Dwarf_Die *fn = functions ? die_ranges_find(functions, pc) : NULL;
	Dwarf_Die chain[DIE_MAX_NESTING];
	unsigned nchain = fn ? descend(fn, pc, chain) : 0;

	unsigned n = 0;
	struct die_frame loc = leaf;
	for (unsigned i = nchain; i-- > 0;) {
		int tag = dwarf_tag(&chain[i]);
		if (tag != DW_TAG_subprogram && tag != DW_TAG_inlined_subroutine)
			continue;
		struct die_frame *fr = &frames[n++];
		*fr = loc;
		die_names(&chain[i], fr);
		if (tag == DW_TAG_subprogram)
			break;
		call_site(&chain[i], &loc);
	}
	/* Line info without a function DIE (assembly sources): one frame,
	 * named from the symbol table by the caller. */
	if (n == 0 && leaf.file)
		frames[n++] = leaf;
	return n;
}

void die_index_init(struct die_index *idx, Dwfl_Module *mod, Dwarf *dw, Dwarf_Addr bias)
{
	*idx = (struct die_index){ .mod = mod, .dw = dw, .bias = bias };
	hmap_init(&idx->unit_functions, NULL, NULL);
	if (dw)
		index_units(idx);
}

void die_index_free(struct die_index *idx)
{
	struct hmap_slot *slot;

	for (size_t i = 0; hmap_next(&idx->unit_functions, &i, &slot);) {
		struct die_ranges *dr = slot->val;
		free(dr->v);
		free(dr);
	}
	hmap_free(&idx->unit_functions);
	free(idx->units.v);
	memset(idx, 0, sizeof(*idx));
}
