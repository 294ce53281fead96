/* Symbolizer over elfutils libdwfl; see symbolize.h.
 *
 * One Dwfl per distinct file, the file reported at base 0 so that module
 * addresses are ELF virtual addresses. libdwfl never gets a path it could
 * open by itself: the main file comes as an fd, and separate debug files come
 * from our own find_debuginfo callback, which searches the target's root
 * first. Demangling: __cxa_demangle from libstdc++ (link -lstdc++). */
#include "elf/symbolize.h"
#include "elf/debugfile.h"
#include "elf/die_index.h"
#include "elf/sym_index.h"
#include "util/hashmap.h"
#include "util/text.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

#define ARENA_BLOCK (64 * 1024)

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
	struct die_index dies;		/* built when DWARF is loaded */
	struct sym_index *symbols;	/* built on first use */
};

struct symbolizer {
	struct hmap files;	/* &file_identity -> struct sym_file * */
	struct hmap strings;	/* interned string -> itself */
	struct hmap demangled;	/* interned raw name -> interned demangled (or raw) */
	struct arena arena;
	struct sym_stats stats;
};

static const struct sym_result empty_result;

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
	die_index_free(&f->dies);
	sym_index_free(f->symbols);
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

static const char *symtab_name(struct sym_file *f, uint64_t vaddr)
{
	if (!f->symbols)
		f->symbols = sym_index_build(f->mod);
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

static const struct sym_result *store_result(struct symbolizer *s, const struct die_frame *frames, unsigned n)
{
	struct sym_result *r = arena_alloc(&s->arena, sizeof(*r) + n * sizeof(struct sym_line),
					   alignof(struct sym_result));
	if (!r)
		return &empty_result;
	struct sym_line *lines = (struct sym_line *)(r + 1);
	for (unsigned i = 0; i < n; i++) {
		const struct die_frame *fr = &frames[i];
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
	die_index_init(&f->dies, f->mod, f->dw, f->dwarf_bias);
	/* Every debug file search has happened by now. */
	debug_root_close(&f->root);
}

static const struct sym_result *symbolize(struct sym_file *f, uint64_t vaddr)
{
	load_dwarf(f);
	struct die_frame frames[DIE_MAX_NESTING];
	unsigned n = die_index_frames(&f->dies, vaddr, frames);
	if (n == 0) {
		frames[0] = (struct die_frame){ .linkage = symtab_name(f, vaddr) };
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
