/* dwfl_module_addrinfo scans the whole symbol table on every call (about
 * 150 us per address in libstdc++), so the table is read once through
 * dwfl_module_getsym_info and sorted. Selection follows libdwfl's: a sized
 * symbol containing the address wins; else the closest sizeless label
 * below it in the same section, unless a sized symbol ends between them. */
#include "elf/sym_index.h"

#include <gelf.h>
#include <stdbool.h>
#include <stdlib.h>

struct sym_entry {
	uint64_t addr;
	uint64_t end;		/* addr + size, or the section end for a sizeless label */
	uint64_t max_sized_end;	/* highest end of the sized symbols up to this one */
	const char *name;	/* in libelf's string table, valid while the Dwfl lives */
	unsigned rank;		/* at one address, the higher rank names it */
	unsigned order;
	bool sized;
};

struct sym_index {
	struct sym_entry *v;
	size_t n;
};

static unsigned binding_rank(const GElf_Sym *sym)
{
	switch (GELF_ST_BIND(sym->st_info)) {
	case STB_GLOBAL:
		return 3;
	case STB_WEAK:
		return 2;
	case STB_LOCAL:
		return 1;
	}
	return 0;
}

/* A symbol for code: its entry, or false to skip it. */
static bool code_symbol(const char *name, const GElf_Sym *sym, GElf_Addr addr, GElf_Word shndx,
			Elf *elf, Dwarf_Addr bias, struct sym_entry *e)
{
	int type = GELF_ST_TYPE(sym->st_info);
	/* shndx is -1 for a symbol outside allocated sections; past
	 * SHN_LORESERVE it is an extended index, which elf_getscn takes. */
	if (!name || !*name || shndx == SHN_UNDEF || shndx == SHN_ABS || shndx == SHN_COMMON ||
	    shndx == (GElf_Word)-1 || (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE))
		return false;
	GElf_Shdr shdr;
	Elf_Scn *scn = elf_getscn(elf, shndx);
	if (!scn || !gelf_getshdr(scn, &shdr) || !(shdr.sh_flags & SHF_EXECINSTR))
		return false;
	uint64_t section_end = shdr.sh_addr + shdr.sh_size + bias;
	*e = (struct sym_entry){
		.addr = addr,
		.end = sym->st_size ? addr + sym->st_size : section_end,
		.name = name,
		.rank = (sym->st_size ? 4 : 0) + binding_rank(sym),
		.sized = sym->st_size != 0,
	};
	return e->addr < e->end;
}

static int sym_entry_cmp(const void *a, const void *b)
{
	const struct sym_entry *x = a, *y = b;
	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank > y->rank ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Sorts, keeps the best-ranked symbol per address, fills max_sized_end. */
static void finish_sym_index(struct sym_index *idx)
{
	if (idx->n)
		qsort(idx->v, idx->n, sizeof(*idx->v), sym_entry_cmp);
	size_t kept = 0;
	uint64_t max_end = 0;
	for (size_t i = 0; i < idx->n; i++) {
		struct sym_entry *e = &idx->v[i];
		if (kept && idx->v[kept - 1].addr == e->addr)
			continue;
		if (e->sized && e->end > max_end)
			max_end = e->end;
		e->max_sized_end = max_end;
		idx->v[kept++] = *e;
	}
	idx->n = kept;
}

struct sym_index *sym_index_build(Dwfl_Module *mod)
{
	struct sym_index *idx = calloc(1, sizeof(*idx));
	int nsyms = dwfl_module_getsymtab(mod);
	if (!idx || nsyms <= 0 || !(idx->v = calloc(nsyms, sizeof(*idx->v))))
		return idx;
	for (int i = 1; i < nsyms; i++) {
		GElf_Sym sym;
		GElf_Addr addr;
		GElf_Word shndx;
		Elf *elf;
		Dwarf_Addr bias;
		const char *name = dwfl_module_getsym_info(mod, i, &sym, &addr, &shndx, &elf, &bias);
		struct sym_entry *e = &idx->v[idx->n];
		if (code_symbol(name, &sym, addr, shndx, elf, bias, e)) {
			e->order = i;
			idx->n++;
		}
	}
	finish_sym_index(idx);
	return idx;
}

const char *sym_index_lookup(const struct sym_index *idx, uint64_t vaddr)
{
	size_t lo = 0, hi = idx->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (idx->v[mid].addr <= vaddr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct sym_entry *closest = &idx->v[lo - 1];
	for (size_t i = lo; i-- > 0 && idx->v[i].max_sized_end > vaddr;)
		if (idx->v[i].sized && vaddr < idx->v[i].end)
			return idx->v[i].name;
	if (!closest->sized && vaddr < closest->end && closest->max_sized_end <= closest->addr)
		return closest->name;
	return NULL;
}

void sym_index_free(struct sym_index *idx)
{
	if (idx)
		free(idx->v);
	free(idx);
}
