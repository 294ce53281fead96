/* DWARF lookups by address: the compile unit, function and inlined
 * subroutines holding an address, and their source lines. */
#ifndef MW_DIE_INDEX_H
#define MW_DIE_INDEX_H

#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <stdint.h>

#include "util/hashmap.h"

#define DIE_MAX_NESTING 64

/* Address ranges of DIEs (units or functions), sorted by low. */
struct die_range {
	Dwarf_Addr low, high;
	Dwarf_Addr max_high;	/* highest .high among this and all earlier ranges */
	Dwarf_Die die;
};

struct die_ranges {
	struct die_range *v;
	size_t n, cap;
};

struct die_index {
	Dwfl_Module *mod;
	Dwarf *dw;			/* NULL: no DWARF, nothing found */
	Dwarf_Addr bias;		/* module address - DWARF address (0 but for prelink) */
	struct die_ranges units;	/* every compile unit's ranges */
	struct hmap unit_functions;	/* CU DIE address -> struct die_ranges * */
};

/* One frame at an address: strings owned by libdw (valid while dw is). */
struct die_frame {
	const char *linkage;	/* mangled / symbol name */
	const char *name;	/* DW_AT_name */
	const char *file;
	const char *comp_dir;	/* of the unit naming file, for relative names */
	unsigned line;
};

/* Indexes dw's units (mod and dw may be NULL: an empty index). */
void die_index_init(struct die_index *idx, Dwfl_Module *mod, Dwarf *dw, Dwarf_Addr bias);
void die_index_free(struct die_index *idx);
/* The frames at vaddr (a module address), inline expanded, innermost first,
 * into frames[DIE_MAX_NESTING]; how many, 0 if DWARF knows nothing. A frame
 * without a name (assembly sources: line info only) is left for the symbol
 * table to name. */
unsigned die_index_frames(struct die_index *idx, uint64_t vaddr, struct die_frame *frames);

#endif
