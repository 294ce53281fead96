/* Symbolizer over elfutils libdwfl; see symbolize.h.
 *
 * One Dwfl per distinct file, the file reported at base 0 so that module
 * addresses are ELF virtual addresses. libdwfl never gets a path it could
 * open by itself: the main file comes as an fd, and separate debug files come
 * from our own find_debuginfo callback, which searches the target's root
 * first. Demangling: __cxa_demangle from libstdc++ (link -lstdc++). */
#include "symbolize.h"
#include "array.h"
#include "debugfile.h"
#include "hashmap.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <linux/openat2.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

#define ARENA_BLOCK (64 * 1024)
#define DEBUG_ROOT "/usr/lib/debug"

/* ---- arena: results and interned strings live until symbolizer_free ---- */

struct arena_block {
	struct arena_block *next;
	size_t used, cap;
	alignas(max_align_t) char data[];
};

struct arena {
	struct arena_block *head;
};

static void *arena_alloc(struct arena *a, size_t size, size_t align)
{
	struct arena_block *b = a->head;
	if (b) {
		size_t at = (b->used + align - 1) & ~(align - 1);
		if (at + size <= b->cap) {
			b->used = at + size;
			return b->data + at;
		}
	}
	size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
	b = malloc(sizeof(*b) + cap);
	if (!b)
		return NULL;
	b->cap = cap;
	b->used = size;
	/* An oversized block goes behind the head so the head keeps its room. */
	if (size > ARENA_BLOCK && a->head) {
		b->next = a->head->next;
		a->head->next = b;
	} else {
		b->next = a->head;
		a->head = b;
	}
	return b->data;
}

static void arena_free(struct arena *a)
{
	while (a->head) {
		struct arena_block *next = a->head->next;
		free(a->head);
		a->head = next;
	}
}

/* ---- types ---- */

struct sym_index;

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

struct file_identity {
	unsigned char *build_id;	/* NULL: identified by the stat fields */
	size_t build_id_len;
	uint64_t dev, ino, size;
	int64_t mtime_sec, mtime_nsec;
};

struct sym_file {
	struct symbolizer *owner;
	struct file_identity id;
	char *build_id_hex;
	char *target_path;	/* display_path: the file's path in the target, or NULL */
	struct debug_root root;	/* the target's; closed once DWARF is loaded */
	char *debuglink;	/* .gnu_debuglink name, or NULL */
	uint32_t debuglink_crc;
	char *debug_path;	/* the separate debug file found, as its tree names it */
	bool debug_in_target;	/* ... in the target's tree, else the host's */
	bool main_debug_searched;
	bool alt_missing;	/* the DWARF names a dwz alt file we did not find */
	Dwfl *dwfl;
	Dwfl_Module *mod;
	Dwarf *dw;
	Dwarf_Addr dwarf_bias;	/* module address - DWARF address (0 but for prelink) */
	bool dwarf_loaded;
	bool has_lines;
	struct hmap results;	/* vaddr -> const struct sym_result * */
	struct die_ranges units;	/* every compile unit's ranges */
	struct hmap unit_functions;	/* CU DIE address -> struct die_ranges * */
	struct sym_index *symbols;	/* built on first use */
};

struct symbolizer {
	struct hmap files;	/* &file_identity -> struct sym_file * */
	struct hmap strings;	/* interned string -> itself */
	struct hmap demangled;	/* interned raw name -> interned demangled (or raw) */
	struct arena arena;
	struct sym_stats stats;
};

/* One frame while it is being collected: strings still owned by libdw. */
struct frame {
	const char *linkage;	/* mangled / symbol name */
	const char *name;	/* DW_AT_name */
	const char *file;
	const char *comp_dir;	/* of the unit naming file, for relative names */
	unsigned line;
};

static const struct sym_result empty_result;

static void free_lookup_indexes(struct sym_file *f);

/* ---- string interning ---- */

static bool str_eq(uint64_t a, uint64_t b, void *ctx)
{
	return strcmp((const char *)(uintptr_t)a, (const char *)(uintptr_t)b) == 0;
}

static const char *intern(struct symbolizer *s, const char *str)
{
	if (!str)
		return NULL;
	uint64_t h = hash_str(str);
	void **slot = hmap_find(&s->strings, h, (uint64_t)(uintptr_t)str);
	if (slot)
		return *slot;
	size_t len = strlen(str) + 1;
	char *copy = arena_alloc(&s->arena, len, 1);
	if (!copy)
		return NULL;
	memcpy(copy, str, len);
	if (hmap_put(&s->strings, h, (uint64_t)(uintptr_t)copy, copy))
		return NULL;
	return copy;
}

/* The demangled form of an interned raw name; raw itself when it does not
 * demangle. Cached per raw name. */
static const char *demangle_interned(struct symbolizer *s, const char *raw)
{
	uint64_t key = (uint64_t)(uintptr_t)raw;
	uint64_t h = hash_u64(key);
	void **slot = hmap_find(&s->demangled, h, key);
	if (slot)
		return *slot;
	const char *result = raw;
	if (strncmp(raw, "_Z", 2) == 0) {
		int status = -1;
		char *d = __cxa_demangle(raw, NULL, NULL, &status);
		if (d && status == 0)
			result = intern(s, d) ?: raw;
		free(d);
	}
	hmap_put(&s->demangled, h, key, (void *)result);
	return result;
}

static bool ends_with_slash(const char *s)
{
	size_t len = strlen(s);
	return len && s[len - 1] == '/';
}

/* ---- file identity ---- */

static bool identity_eq(uint64_t a, uint64_t b, void *ctx)
{
	const struct file_identity *x = (const void *)(uintptr_t)a;
	const struct file_identity *y = (const void *)(uintptr_t)b;
	if (x->build_id || y->build_id)
		return x->build_id_len == y->build_id_len &&
		       memcmp(x->build_id, y->build_id, x->build_id_len) == 0;
	return x->dev == y->dev && x->ino == y->ino && x->size == y->size &&
	       x->mtime_sec == y->mtime_sec && x->mtime_nsec == y->mtime_nsec;
}

static uint64_t identity_hash(const struct file_identity *id)
{
	if (id->build_id)
		return hash_bytes(id->build_id, id->build_id_len, 0xb1d);
	uint64_t h = hash_u64(id->dev ^ 0x57a7);
	h = hash_u64(h ^ id->ino);
	h = hash_u64(h ^ id->size);
	h = hash_u64(h ^ (uint64_t)id->mtime_sec);
	return hash_u64(h ^ (uint64_t)id->mtime_nsec);
}

static char *hex_string(const unsigned char *bytes, size_t len)
{
	char *hex = malloc(2 * len + 1);
	if (!hex)
		return NULL;
	for (size_t i = 0; i < len; i++)
		sprintf(hex + 2 * i, "%02x", bytes[i]);
	hex[2 * len] = '\0';
	return hex;
}

/* What registration learns from the caller's fd without opening anything. */
struct probe {
	struct file_identity id;
	char *debuglink;
	uint32_t debuglink_crc;
};

static void probe_release(struct probe *p)
{
	free(p->id.build_id);
	free(p->debuglink);
}

static bool usable_elf(Elf *elf)
{
	GElf_Ehdr ehdr;
	if (elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &ehdr))
		return false;
	return ehdr.e_type == ET_EXEC || ehdr.e_type == ET_DYN;
}

static int probe_file(int fd, struct probe *p)
{
	memset(p, 0, sizeof(*p));
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode))
		return -1;
	p->id.dev = st.st_dev;
	p->id.ino = st.st_ino;
	p->id.size = st.st_size;
	p->id.mtime_sec = st.st_mtim.tv_sec;
	p->id.mtime_nsec = st.st_mtim.tv_nsec;

	Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf)
		return -1;
	int ret = -1;
	if (!usable_elf(elf))
		goto out;
	const void *bits;
	ssize_t len = dwelf_elf_gnu_build_id(elf, &bits);
	if (len > 0) {
		p->id.build_id = malloc(len);
		if (!p->id.build_id)
			goto out;
		memcpy(p->id.build_id, bits, len);
		p->id.build_id_len = len;
	}
	GElf_Word crc = 0;
	const char *link = dwelf_elf_gnu_debuglink(elf, &crc);
	if (link && !(p->debuglink = strdup(link)))
		goto out;
	p->debuglink_crc = crc;
	ret = 0;
out:
	elf_end(elf);
	if (ret)
		probe_release(p);
	return ret;
}

/* libdwfl calls this for the main file's separate debug file and, once DWARF
 * is loaded, for its dwz alternate file (then debuglink_file is the
 * .gnu_debugaltlink name, which never equals the main .gnu_debuglink). */
static int find_debuginfo_cb(Dwfl_Module *mod, void **userdata, const char *modname,
			     Dwarf_Addr base, const char *file_name, const char *debuglink_file,
			     GElf_Word debuglink_crc, char **debuginfo_file_name)
{
	struct sym_file *f = *userdata;
	struct debug_file c;
	int found = -1;

	*debuginfo_file_name = NULL;	/* libdwfl would open a name left here */
	if (!f)
		return -1;
	bool main_request = !debuglink_file || (f->debuglink && !strcmp(debuglink_file, f->debuglink));
	if (main_request && !f->main_debug_searched) {
		struct debug_want want = {
			.build_id = f->id.build_id, .build_id_len = f->id.build_id_len,
			.check_crc = true, .crc = debuglink_crc, .self_dev = f->id.dev, .self_ino = f->id.ino,
		};
		f->main_debug_searched = true;
		found = debug_find_main(&f->root, &want, f->target_path, debuglink_file, &c);
		if (!found) {
			f->debug_path = strdup(c.path);
			f->debug_in_target = c.in_target;
		}
	} else if (!main_request) {
		Dwarf_Addr bias;
		Dwarf *dw = dwfl_module_getdwarf(mod, &bias);
		found = debug_find_alt(&f->root, dw, f->debug_path ?: f->target_path,
				       f->debug_path ? f->debug_in_target : true, &c);
		f->alt_missing = found != 0;
	}
	if (found) {
		errno = 0;
		return -1;
	}
	f->owner->stats.debug_files++;
	int fd;
	*debuginfo_file_name = c.our_path;
	c.our_path = NULL;
	free(debug_file_take_path(&c, &fd));
	return fd;
}

static const Dwfl_Callbacks dwfl_callbacks = {
	.find_elf = debugfile_no_find_elf,
	.find_debuginfo = find_debuginfo_cb,
	.section_address = dwfl_offline_section_address,
};

/* ---- sym_file lifetime ---- */

static void sym_file_free(struct sym_file *f)
{
	if (f->dwfl)
		dwfl_end(f->dwfl);	/* closes the dup'ed main fd and debug fds */
	debug_root_free(&f->root);
	free_lookup_indexes(f);
	hmap_free(&f->results);
	free(f->id.build_id);
	free(f->build_id_hex);
	free(f->target_path);
	free(f->debuglink);
	free(f->debug_path);
	free(f);
}

/* Reports the file to a new Dwfl at base 0 (bias 0: module address == ELF vaddr). */
static int setup_dwfl(struct sym_file *f, int fd)
{
	/* The name given is the file as seen through the target's root, so
	 * that anything libdw resolves relative to it (split DWARF) stays in
	 * the target's tree. */
	char name[4096];
	int n = snprintf(name, sizeof(name), "%s%s", f->root.prefix, f->target_path ?: "/[unknown]");

	if (n < 0 || (size_t)n >= sizeof(name))
		return -1;
	f->dwfl = dwfl_begin(&dwfl_callbacks);
	if (!f->dwfl)
		return -1;
	dwfl_report_begin(f->dwfl);
	f->mod = debugfile_report(f->dwfl, name, fd, 0, f);
	dwfl_report_end(f->dwfl, NULL, NULL);
	return f->mod ? 0 : -1;
}

static struct sym_file *sym_file_create(struct symbolizer *s, int fd, struct probe *p,
					const char *display_path, const char *root)
{
	struct sym_file *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->owner = s;
	f->id = p->id;
	f->debuglink = p->debuglink;
	f->debuglink_crc = p->debuglink_crc;
	memset(p, 0, sizeof(*p));	/* f owns the probe's allocations now */
	f->root.fd = -1;
	hmap_init(&f->results, NULL, NULL);
	hmap_init(&f->unit_functions, NULL, NULL);
	f->build_id_hex = f->id.build_id ? hex_string(f->id.build_id, f->id.build_id_len) : strdup("");
	if (!f->build_id_hex || (display_path && !(f->target_path = strdup(display_path))) ||
	    debug_root_init(&f->root, root) || setup_dwfl(f, fd)) {
		sym_file_free(f);
		return NULL;
	}
	f->root.opens = &s->stats.elf_opens;
	s->stats.elf_opens++;
	return f;
}

/* ---- lookups ---- */

static void die_names(Dwarf_Die *die, struct frame *fr)
{
	Dwarf_Attribute attr;
	fr->linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
	if (!fr->linkage)
		fr->linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
	fr->name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &attr));
}

/* Where the inlined instance die was called from: its caller's file:line
 * into loc (whose comp_dir stays when the unit has none). */
static void call_site(Dwarf_Die *die, struct frame *loc)
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
static void source_line(Dwarf_Die *cudie, Dwarf_Addr pc, struct frame *fr)
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

/* ---- address -> DIE indexes ----
 * libdwfl 0.188 finds a unit only through .debug_aranges, which clang and
 * rustc do not emit, and dwarf_getscopes + dwarf_getscopes_die walk a whole
 * unit per lookup (about 100 us per address in glibc's larger ones). So
 * every unit's ranges are sorted once when DWARF is loaded, the ranges of a
 * unit's functions on the first lookup in it, and a lookup descends only
 * into the one function containing the address. */

#define MAX_DIE_NESTING 64

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
static void index_units(struct sym_file *f)
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
	if (depth > MAX_DIE_NESTING || dwarf_child(parent, &child) != 0)
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

static struct die_ranges *unit_functions(struct sym_file *f, Dwarf_Die *cudie)
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
static bool unit_at(struct sym_file *f, uint64_t vaddr, Dwarf_Die *cudie, Dwarf_Addr *pc)
{
	const Dwarf_Die *unit = die_ranges_find(&f->units, vaddr - f->dwarf_bias);
	if (unit) {
		*cudie = *unit;
		*pc = vaddr - f->dwarf_bias;
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
 * first; returns how many were stored in chain (at most MAX_DIE_NESTING). */
static unsigned descend(const Dwarf_Die *fn, Dwarf_Addr pc, Dwarf_Die *chain)
{
	unsigned n = 0;
	chain[n++] = *fn;
	while (n < MAX_DIE_NESTING) {
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
 * stored in frames (room for MAX_DIE_NESTING), 0 if DWARF knows nothing. */
static unsigned dwarf_frames(struct sym_file *f, uint64_t vaddr, struct frame *frames)
{
	Dwarf_Die cudie;
	Dwarf_Addr pc;
	if (!f->dw || !unit_at(f, vaddr, &cudie, &pc))
		return 0;
	struct frame leaf = { 0 };
	source_line(&cudie, pc, &leaf);
	struct die_ranges *functions = unit_functions(f, &cudie);
	const Dwarf_Die *fn = functions ? die_ranges_find(functions, pc) : NULL;
	Dwarf_Die chain[MAX_DIE_NESTING];
	unsigned nchain = fn ? descend(fn, pc, chain) : 0;

	unsigned n = 0;
	struct frame loc = leaf;
	for (unsigned i = nchain; i-- > 0;) {
		int tag = dwarf_tag(&chain[i]);
		if (tag != DW_TAG_subprogram && tag != DW_TAG_inlined_subroutine)
			continue;
		struct frame *fr = &frames[n++];
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

/* ---- symbol table index ----
 * dwfl_module_addrinfo scans the whole symbol table on every call (about
 * 150 us per address in libstdc++), so the table is read once through
 * dwfl_module_getsym_info and sorted. Selection follows libdwfl's: a sized
 * symbol containing the address wins; else the closest sizeless label
 * below it in the same section, unless a sized symbol ends between them. */

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

static struct sym_index *build_sym_index(Dwfl_Module *mod)
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

static const char *sym_index_lookup(const struct sym_index *idx, uint64_t vaddr)
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

static void free_lookup_indexes(struct sym_file *f)
{
	struct hmap_slot *slot;
	for (size_t i = 0; hmap_next(&f->unit_functions, &i, &slot);) {
		struct die_ranges *dr = slot->val;
		free(dr->v);
		free(dr);
	}
	hmap_free(&f->unit_functions);
	free(f->units.v);
	if (f->symbols)
		free(f->symbols->v);
	free(f->symbols);
	f->symbols = NULL;
}

static const char *symtab_name(struct sym_file *f, uint64_t vaddr)
{
	if (!f->symbols)
		f->symbols = build_sym_index(f->mod);
	return f->symbols ? sym_index_lookup(f->symbols, vaddr) : NULL;
}

/* Relative source names are relative to the unit's DW_AT_comp_dir; join them
 * when that is absolute (a relative one, as from -fdebug-prefix-map=...=.,
 * says nothing more than the name already does). */
static const char *intern_path(struct symbolizer *s, const char *comp_dir, const char *file)
{
	if (!file || file[0] == '/' || !comp_dir || comp_dir[0] != '/')
		return intern(s, file);
	while (file[0] == '.' && file[1] == '/')
		file += 2;
	char path[8192];
	int n = snprintf(path, sizeof(path), "%s%s%s", comp_dir,
			 ends_with_slash(comp_dir) ? "" : "/", file);
	return intern(s, n > 0 && (size_t)n < sizeof(path) ? path : file);
}

static const struct sym_result *store_result(struct symbolizer *s, const struct frame *frames, unsigned n)
{
	struct sym_result *r = arena_alloc(&s->arena, sizeof(*r) + n * sizeof(struct sym_line),
					   alignof(struct sym_result));
	if (!r)
		return &empty_result;
	struct sym_line *lines = (struct sym_line *)(r + 1);
	for (unsigned i = 0; i < n; i++) {
		const struct frame *fr = &frames[i];
		const char *raw = intern(s, fr->linkage ?: fr->name);
		const char *function = raw;
		if (fr->linkage && raw) {
			function = demangle_interned(s, raw);
			if (function == raw && fr->name)
				function = intern(s, fr->name);
		}
		lines[i] = (struct sym_line){
			.function = function,
			.system_name = raw,
			.file = intern_path(s, fr->comp_dir, fr->file),
			.line = fr->line,
		};
	}
	r->lines = lines;
	r->nlines = n;
	return r;
}

static bool elf_has_section(Elf *elf, const char *name, const char *alt_name)
{
	size_t shstrndx;
	if (!elf || elf_getshdrstrndx(elf, &shstrndx))
		return false;
	for (Elf_Scn *scn = NULL; (scn = elf_nextscn(elf, scn));) {
		GElf_Shdr shdr;
		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type == SHT_NOBITS)
			continue;
		const char *sname = elf_strptr(elf, shstrndx, shdr.sh_name);
		if (sname && (!strcmp(sname, name) || !strcmp(sname, alt_name)))
			return true;
	}
	return false;
}

static void load_dwarf(struct sym_file *f)
{
	if (f->dwarf_loaded)
		return;
	f->dwarf_loaded = true;
	f->dw = dwfl_module_getdwarf(f->mod, &f->dwarf_bias);
	/* Without this, libdw would look for the alt file itself, by its
	 * name in our namespace and unchecked. (Dwarf *)-1 is libdw's own
	 * "searched, none" mark, which dwarf_getalt honours. */
	if (f->dw && f->alt_missing)
		dwarf_setalt(f->dw, (Dwarf *)-1);
	f->has_lines = f->dw && elf_has_section(dwarf_getelf(f->dw), ".debug_line", ".zdebug_line");
	if (f->dw)
		index_units(f);
	/* Every debug file search has happened by now. */
	debug_root_close(&f->root);
}

static const struct sym_result *symbolize(struct sym_file *f, uint64_t vaddr)
{
	load_dwarf(f);
	struct frame frames[MAX_DIE_NESTING];
	unsigned n = dwarf_frames(f, vaddr, frames);
	if (n == 0) {
		frames[0] = (struct frame){ .linkage = symtab_name(f, vaddr) };
		n = frames[0].linkage ? 1 : 0;
	} else if (!frames[n - 1].linkage && !frames[n - 1].name) {
		frames[n - 1].linkage = symtab_name(f, vaddr);
	}
	return n ? store_result(f->owner, frames, n) : &empty_result;
}

/* ---- public API ---- */

struct symbolizer *symbolizer_new(void)
{
	if (elf_version(EV_CURRENT) == EV_NONE)
		return NULL;
	struct symbolizer *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	hmap_init(&s->files, identity_eq, NULL);
	hmap_init(&s->strings, str_eq, NULL);
	hmap_init(&s->demangled, NULL, NULL);
	return s;
}

void symbolizer_free(struct symbolizer *s)
{
	if (!s)
		return;
	struct hmap_slot *slot;
	for (size_t i = 0; hmap_next(&s->files, &i, &slot);)
		sym_file_free(slot->val);
	hmap_free(&s->files);
	hmap_free(&s->strings);
	hmap_free(&s->demangled);
	arena_free(&s->arena);
	free(s);
}

struct sym_file *symbolizer_file(struct symbolizer *s, int fd, const char *display_path, const char *root)
{
	if (!s || fd < 0)
		return NULL;
	struct probe p;
	if (probe_file(fd, &p))
		return NULL;
	uint64_t h = identity_hash(&p.id);
	void **slot = hmap_find(&s->files, h, (uint64_t)(uintptr_t)&p.id);
	if (slot) {
		probe_release(&p);
		return *slot;
	}
	struct sym_file *f = sym_file_create(s, fd, &p, display_path, root);
	probe_release(&p);
	if (!f)
		return NULL;
	if (hmap_put(&s->files, h, (uint64_t)(uintptr_t)&f->id, f)) {
		sym_file_free(f);
		return NULL;
	}
	s->stats.files++;
	return f;
}

const char *sym_file_build_id(const struct sym_file *f)
{
	return f && f->build_id_hex ? f->build_id_hex : "";
}

bool sym_file_has_debuginfo(const struct sym_file *f)
{
	if (!f)
		return false;
	/* Loading is a cache fill; sym_files are never const objects. */
	load_dwarf((struct sym_file *)f);
	return f->has_lines;
}

const struct sym_result *sym_file_lookup(struct sym_file *f, uint64_t vaddr)
{
	if (!f)
		return &empty_result;
	struct symbolizer *s = f->owner;
	s->stats.lookups++;
	uint64_t h = hash_u64(vaddr);
	void **slot = hmap_find(&f->results, h, vaddr);
	if (slot) {
		s->stats.cache_hits++;
		return *slot;
	}
	const struct sym_result *r = symbolize(f, vaddr);
	hmap_put(&f->results, h, vaddr, (void *)r);	/* a failed insert only costs a recomputation */
	return r;
}

void symbolizer_stats(const struct symbolizer *s, struct sym_stats *out)
{
	if (s)
		*out = s->stats;
	else
		memset(out, 0, sizeof(*out));
}
