/* A module's symbol table, sorted once, for names by address: what
 * dwfl_module_addrinfo answers, without scanning the whole table per call. */
#ifndef MW_SYM_INDEX_H
#define MW_SYM_INDEX_H

#include <elfutils/libdwfl.h>
#include <stdint.h>

struct sym_index;

/* NULL when out of memory; empty for a module without symbols. */
struct sym_index *sym_index_build(Dwfl_Module *mod);
void sym_index_free(struct sym_index *idx);
/* The code symbol holding vaddr (a module address), or NULL. Names stay
 * valid while the module's Dwfl does. */
const char *sym_index_lookup(const struct sym_index *idx, uint64_t vaddr);

#endif
