#include "elf/elf_file.h"
#include "util/array.h"
#include "util/hashmap.h"
#include "util/text.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef NT_GNU_BUILD_ID
#define NT_GNU_BUILD_ID 3
#endif
#define VERSYM_HIDDEN 0x8000

struct func_sym {
	struct elf_sym pub;
	bool hidden_version;	/* a non-default symbol version */
	bool from_symtab;
	bool preferred;		/* what elf_file_find_func returns for this name */
};

struct sym_vec {
	struct func_sym *v;
	size_t len, cap;
};

struct elf_file {
	int fd;
	Elf *elf;
	GElf_Ehdr ehdr;
	char *build_id;
	char *interp;
	struct elf_segment *segs;
	size_t nsegs;

	bool syms_built;
	struct func_sym *syms;	/* sorted by vaddr, then name; (vaddr, name) unique */
	size_t nsyms;
	struct hmap by_name;	/* name -> preferred struct func_sym */
	char **owned_names;	/* names stripped of "@VERSION" */
	size_t nowned, owned_cap;

	bool plt_built;
	struct hmap plt_stubs;	/* stub vaddr -> symbol name */
};

static bool str_key_eq(uint64_t a, uint64_t b, void *ctx)
{
	return strcmp((const char *)(uintptr_t)a, (const char *)(uintptr_t)b) == 0;
}

/* ---- header, segments, notes ---- */

static int load_segments(struct elf_file *f)
{
	size_t nph;
	if (elf_getphdrnum(f->elf, &nph))
		return -EINVAL;
	f->segs = calloc(nph ? nph : 1, sizeof(*f->segs));
	if (!f->segs)
		return -ENOMEM;
	for (size_t i = 0; i < nph; i++) {
		GElf_Phdr ph;
		if (!gelf_getphdr(f->elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		f->segs[f->nsegs++] = (struct elf_segment){
			.vaddr = ph.p_vaddr, .memsz = ph.p_memsz,
			.offset = ph.p_offset, .filesz = ph.p_filesz, .flags = ph.p_flags,
		};
	}
	return 0;
}

/* The hex build-id from one block of notes, or NULL. */
static char *build_id_in_notes(Elf_Data *data)
{
	GElf_Nhdr nh;
	size_t off = 0, name_off, desc_off, next;
	while (data && (next = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
		const char *base = data->d_buf;
		if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
		    memcmp(base + name_off, "GNU", 4) == 0 && nh.n_descsz > 0)
			return hex_string((const unsigned char *)base + desc_off, nh.n_descsz);
		off = next;
	}
	return NULL;
}

static char *build_id_from_sections(Elf *elf)
{
	for (Elf_Scn *scn = NULL; (scn = elf_nextscn(elf, scn));) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		char *id = build_id_in_notes(elf_getdata(scn, NULL));
		if (id)
			return id;
	}
	return NULL;
}

static char *build_id_from_segments(Elf *elf)
{
	size_t nph;
	if (elf_getphdrnum(elf, &nph))
		return NULL;
	for (size_t i = 0; i < nph; i++) {
		GElf_Phdr ph;
		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_NOTE)
			continue;
		Elf_Type type = ph.p_align == 8 ? ELF_T_NHDR8 : ELF_T_NHDR;
		char *id = build_id_in_notes(elf_getdata_rawchunk(elf, ph.p_offset, ph.p_filesz, type));
		if (id)
			return id;
	}
	return NULL;
}

static char *read_interp(Elf *elf)
{
	size_t nph;
	if (elf_getphdrnum(elf, &nph))
		return NULL;
	for (size_t i = 0; i < nph; i++) {
		GElf_Phdr ph;
		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_INTERP)
			continue;
		Elf_Data *d = elf_getdata_rawchunk(elf, ph.p_offset, ph.p_filesz, ELF_T_BYTE);
		return d && d->d_size ? strndup(d->d_buf, d->d_size) : NULL;
	}
	return NULL;
}

struct elf_file *elf_file_open(int fd)
{
	if (elf_version(EV_CURRENT) == EV_NONE) {
		errno = ENOSYS;
		return NULL;
	}
	struct elf_file *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	hmap_init(&f->by_name, str_key_eq, NULL);
	hmap_init(&f->plt_stubs, NULL, NULL);
	f->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (f->fd < 0)
		goto fail;
	f->elf = elf_begin(f->fd, ELF_C_READ_MMAP, NULL);
	if (!f->elf || elf_kind(f->elf) != ELF_K_ELF || !gelf_getehdr(f->elf, &f->ehdr)) {
		errno = ENOEXEC;
		goto fail;
	}
	int err = load_segments(f);
	if (err) {
		errno = -err;
		goto fail;
	}
	f->build_id = build_id_from_sections(f->elf);
	if (!f->build_id)
		f->build_id = build_id_from_segments(f->elf);
	f->interp = read_interp(f->elf);
	return f;
fail:;
	int saved = errno;
	elf_file_close(f);
	errno = saved;
	return NULL;
}

void elf_file_close(struct elf_file *f)
{
	if (!f)
		return;
	hmap_free(&f->by_name);
	hmap_free(&f->plt_stubs);
	for (size_t i = 0; i < f->nowned; i++)
		free(f->owned_names[i]);
	free(f->owned_names);
	free(f->syms);
	free(f->segs);
	free(f->build_id);
	free(f->interp);
	if (f->elf)
		elf_end(f->elf);
	if (f->fd >= 0)
		close(f->fd);
	free(f);
}

uint16_t elf_file_machine(const struct elf_file *f) { return f->ehdr.e_machine; }
uint16_t elf_file_type(const struct elf_file *f) { return f->ehdr.e_type; }
const char *elf_file_build_id(const struct elf_file *f) { return f->build_id; }
const char *elf_file_interp(const struct elf_file *f) { return f->interp; }

size_t elf_file_segments(const struct elf_file *f, const struct elf_segment **segs)
{
	*segs = f->segs;
	return f->nsegs;
}

/* ---- address translation and reads ---- */

static const struct elf_segment *segment_holding_vaddr(const struct elf_file *f, uint64_t vaddr)
{
	for (size_t i = 0; i < f->nsegs; i++) {
		const struct elf_segment *s = &f->segs[i];
		if (vaddr >= s->vaddr && vaddr - s->vaddr < s->filesz)
			return s;
	}
	return NULL;
}

int elf_file_vaddr_to_offset(const struct elf_file *f, uint64_t vaddr, uint64_t *offset)
{
	const struct elf_segment *s = segment_holding_vaddr(f, vaddr);
	if (!s)
		return -ENOENT;
	*offset = vaddr - s->vaddr + s->offset;
	return 0;
}

int elf_file_offset_to_vaddr(const struct elf_file *f, uint64_t offset, uint64_t *vaddr)
{
	for (size_t i = 0; i < f->nsegs; i++) {
		const struct elf_segment *s = &f->segs[i];
		if (offset >= s->offset && offset - s->offset < s->filesz) {
			*vaddr = offset - s->offset + s->vaddr;
			return 0;
		}
	}
	return -ENOENT;
}

ssize_t elf_file_read(const struct elf_file *f, uint64_t vaddr, void *buf, size_t len)
{
	const struct elf_segment *s = segment_holding_vaddr(f, vaddr);
	if (!s)
		return -ENOENT;
	uint64_t in_seg = vaddr - s->vaddr;
	if (len > s->filesz - in_seg)
		len = s->filesz - in_seg;
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(f->fd, (char *)buf + done, len - done,
				  (off_t)(s->offset + in_seg + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;	/* truncated file */
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* ---- function symbol index ---- */

static int push_sym(struct sym_vec *vec, const struct func_sym *s)
{
	if (ARRAY_GROW(vec->v, vec->len, vec->cap))
		return -ENOMEM;
	vec->v[vec->len++] = *s;
	return 0;
}

static int own_name(struct elf_file *f, char *name)
{
	if (ARRAY_GROW(f->owned_names, f->nowned, f->owned_cap))
		return -ENOMEM;
	f->owned_names[f->nowned++] = name;
	return 0;
}

/* "name@VER" / "name@@VER" (as .symtab spells versioned symbols) -> "name". */
static int strip_version(struct elf_file *f, struct func_sym *s)
{
	const char *at = strchr(s->pub.name, '@');
	if (!at || at == s->pub.name)
		return 0;
	s->hidden_version = at[1] != '@';
	char *base = strndup(s->pub.name, (size_t)(at - s->pub.name));
	if (!base || own_name(f, base)) {
		free(base);
		return -ENOMEM;
	}
	s->pub.name = base;
	return 0;
}

static bool is_defined_func(const GElf_Sym *sym)
{
	unsigned char type = GELF_ST_TYPE(sym->st_info);
	return (type == STT_FUNC || type == STT_GNU_IFUNC) && sym->st_shndx != SHN_UNDEF;
}

static Elf_Data *versym_data(Elf *elf)
{
	for (Elf_Scn *scn = NULL; (scn = elf_nextscn(elf, scn));) {
		GElf_Shdr sh;
		if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_GNU_versym)
			return elf_getdata(scn, NULL);
	}
	return NULL;
}

static bool version_hidden(Elf_Data *versyms, size_t index)
{
	GElf_Versym v;
	return versyms && gelf_getversym(versyms, (int)index, &v) && (v & VERSYM_HIDDEN);
}

static int load_table(struct elf_file *f, Elf_Scn *scn, const GElf_Shdr *sh, struct sym_vec *out)
{
	bool dynamic = sh->sh_type == SHT_DYNSYM;
	Elf_Data *data = elf_getdata(scn, NULL);
	Elf_Data *versyms = dynamic ? versym_data(f->elf) : NULL;
	if (!data || !sh->sh_entsize)
		return 0;
	size_t count = sh->sh_size / sh->sh_entsize;
	for (size_t i = 1; i < count; i++) {
		GElf_Sym sym;
		if (!gelf_getsym(data, (int)i, &sym) || !is_defined_func(&sym))
			continue;
		const char *name = elf_strptr(f->elf, sh->sh_link, sym.st_name);
		if (!name || !*name)
			continue;
		struct func_sym s = {
			.pub = { .name = name, .vaddr = sym.st_value, .size = sym.st_size,
				 .bind = GELF_ST_BIND(sym.st_info), .type = GELF_ST_TYPE(sym.st_info),
				 .dynamic = dynamic },
			.hidden_version = version_hidden(versyms, i),
			.from_symtab = !dynamic,
		};
		if ((!dynamic && strip_version(f, &s)) || push_sym(out, &s))
			return -ENOMEM;
	}
	return 0;
}

static int bind_rank(unsigned char bind)
{
	switch (bind) {
	case STB_GLOBAL:
	case STB_GNU_UNIQUE:
		return 3;
	case STB_WEAK:
		return 2;
	case STB_LOCAL:
		return 1;
	default:
		return 0;
	}
}

/* Whether a should be returned instead of b for the same name. */
static bool better_sym(const struct func_sym *a, const struct func_sym *b)
{
	int ra = bind_rank(a->pub.bind), rb = bind_rank(b->pub.bind);
	if (ra != rb)
		return ra > rb;
	if (a->hidden_version != b->hidden_version)
		return !a->hidden_version;
	if (a->from_symtab != b->from_symtab)
		return a->from_symtab;
	return a->pub.vaddr < b->pub.vaddr;
}

static int cmp_addr_name(const void *pa, const void *pb)
{
	const struct func_sym *a = pa, *b = pb;
	if (a->pub.vaddr != b->pub.vaddr)
		return a->pub.vaddr < b->pub.vaddr ? -1 : 1;
	int c = strcmp(a->pub.name, b->pub.name);
	if (c)
		return c;
	return better_sym(a, b) ? -1 : better_sym(b, a) ? 1 : 0;
}

/* Sorted input: keeps the best of each (vaddr, name) run, noting whether
 * .dynsym defines it too. */
static size_t merge_same_symbols(struct func_sym *v, size_t n)
{
	size_t out = 0;
	for (size_t i = 0; i < n; i++) {
		struct func_sym *last = out ? &v[out - 1] : NULL;
		if (last && last->pub.vaddr == v[i].pub.vaddr && !strcmp(last->pub.name, v[i].pub.name)) {
			last->pub.dynamic |= v[i].pub.dynamic;
			if (!last->pub.size)
				last->pub.size = v[i].pub.size;
			continue;
		}
		v[out++] = v[i];
	}
	return out;
}

static int index_names(struct elf_file *f)
{
	for (size_t i = 0; i < f->nsyms; i++) {
		struct func_sym *s = &f->syms[i];
		bool inserted;
		void **slot = hmap_upsert(&f->by_name, hash_str(s->pub.name),
					  (uint64_t)(uintptr_t)s->pub.name, &inserted);
		if (!slot)
			return -ENOMEM;
		if (inserted || better_sym(s, *slot))
			*slot = s;
	}
	struct hmap_slot *slot;
	for (size_t pos = 0; hmap_next(&f->by_name, &pos, &slot);)
		((struct func_sym *)slot->val)->preferred = true;
	return 0;
}

static int build_symbol_index(struct elf_file *f)
{
	struct sym_vec all = { 0 };
	int err = 0;
	for (Elf_Scn *scn = NULL; !err && (scn = elf_nextscn(f->elf, scn));) {
		GElf_Shdr sh;
		if (gelf_getshdr(scn, &sh) && (sh.sh_type == SHT_SYMTAB || sh.sh_type == SHT_DYNSYM))
			err = load_table(f, scn, &sh, &all);
	}
	if (err) {
		free(all.v);
		return err;
	}
	if (all.len)
		qsort(all.v, all.len, sizeof(*all.v), cmp_addr_name);
	f->syms = all.v;
	f->nsyms = merge_same_symbols(all.v, all.len);
	return index_names(f);
}

static int ensure_symbols(struct elf_file *f)
{
	if (f->syms_built)
		return 0;
	int err = build_symbol_index(f);
	if (err) {
		hmap_clear(&f->by_name);
		free(f->syms);
		f->syms = NULL;
		f->nsyms = 0;
		return err;
	}
	f->syms_built = true;
	return 0;
}

bool elf_file_find_func(struct elf_file *f, const char *name, struct elf_sym *out)
{
	if (ensure_symbols(f))
		return false;
	void **slot = hmap_find(&f->by_name, hash_str(name), (uint64_t)(uintptr_t)name);
	if (!slot)
		return false;
	*out = ((struct func_sym *)*slot)->pub;
	return true;
}

static size_t first_at_or_after(const struct elf_file *f, uint64_t vaddr)
{
	size_t lo = 0, hi = f->nsyms;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->syms[mid].pub.vaddr < vaddr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

size_t elf_file_names_at(struct elf_file *f, uint64_t vaddr, const char **names, size_t max)
{
	if (ensure_symbols(f))
		return 0;
	size_t count = 0;
	for (size_t i = first_at_or_after(f, vaddr); i < f->nsyms && f->syms[i].pub.vaddr == vaddr; i++) {
		if (count < max)
			names[count] = f->syms[i].pub.name;
		count++;
	}
	return count;
}

bool elf_file_func_containing(struct elf_file *f, uint64_t vaddr, struct elf_sym *out)
{
	if (ensure_symbols(f))
		return false;
	/* Nested or overlapping symbols are rare: look back a little. */
	size_t i = first_at_or_after(f, vaddr + 1);
	for (size_t back = 0; i > 0 && back < 8; back++) {
		const struct elf_sym *s = &f->syms[--i].pub;
		if (vaddr >= s->vaddr && vaddr < s->vaddr + s->size) {
			*out = *s;
			return true;
		}
	}
	return false;
}

int elf_file_for_each_func(struct elf_file *f, int (*fn)(const struct elf_sym *sym, void *arg), void *arg)
{
	if (ensure_symbols(f))
		return -ENOMEM;
	for (size_t i = 0; i < f->nsyms; i++) {
		if (!f->syms[i].preferred)
			continue;
		int ret = fn(&f->syms[i].pub, arg);
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- PLT stubs ---- */

static const char *section_name(Elf *elf, const GElf_Shdr *sh)
{
	size_t shstrndx;
	if (elf_getshdrstrndx(elf, &shstrndx))
		return NULL;
	return elf_strptr(elf, shstrndx, sh->sh_name);
}

/* GOT slot address -> symbol name, from JUMP_SLOT and GLOB_DAT relocations. */
static int map_got_slots(Elf *elf, struct hmap *slots)
{
	for (Elf_Scn *scn = NULL; (scn = elf_nextscn(elf, scn));) {
		GElf_Shdr sh, symsh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA || !sh.sh_entsize)
			continue;
		Elf_Scn *symscn = elf_getscn(elf, sh.sh_link);
		Elf_Data *rels = elf_getdata(scn, NULL), *syms = symscn ? elf_getdata(symscn, NULL) : NULL;
		if (!rels || !syms || !gelf_getshdr(symscn, &symsh))
			continue;
		for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Rela rela;
			GElf_Sym sym;
			if (!gelf_getrela(rels, (int)i, &rela))
				continue;
			unsigned type = GELF_R_TYPE(rela.r_info);
			if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT)
				continue;
			if (!gelf_getsym(syms, (int)GELF_R_SYM(rela.r_info), &sym))
				continue;
			const char *name = elf_strptr(elf, symsh.sh_link, sym.st_name);
			if (name && *name && hmap_put(slots, hash_u64(rela.r_offset), rela.r_offset, (void *)name))
				return -ENOMEM;
		}
	}
	return 0;
}

/* The GOT slot an x86-64 PLT entry jumps through: [endbr64] [bnd] jmp *disp32(%rip). */
static bool stub_got_slot(const uint8_t *p, size_t len, uint64_t vaddr, uint64_t *slot)
{
	static const uint8_t endbr64[] = { 0xf3, 0x0f, 0x1e, 0xfa };
	size_t i = 0;
	if (len >= sizeof(endbr64) && !memcmp(p, endbr64, sizeof(endbr64)))
		i += sizeof(endbr64);
	if (i < len && p[i] == 0xf2)
		i++;
	if (i + 6 > len || p[i] != 0xff || p[i + 1] != 0x25)
		return false;
	int32_t disp;
	memcpy(&disp, p + i + 2, sizeof(disp));
	*slot = vaddr + i + 6 + (int64_t)disp;
	return true;
}

static int index_stub_section(struct elf_file *f, Elf_Scn *scn, const GElf_Shdr *sh, const struct hmap *slots)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	size_t entsize = sh->sh_entsize ? sh->sh_entsize : 16;
	if (!d || !d->d_buf)
		return 0;
	for (size_t off = 0; off + entsize <= d->d_size; off += entsize) {
		uint64_t slot;
		if (!stub_got_slot((const uint8_t *)d->d_buf + off, entsize, sh->sh_addr + off, &slot))
			continue;
		void **name = hmap_find(slots, hash_u64(slot), slot);
		uint64_t stub = sh->sh_addr + off;
		if (name && hmap_put(&f->plt_stubs, hash_u64(stub), stub, *name))
			return -ENOMEM;
	}
	return 0;
}

static int build_plt_index(struct elf_file *f)
{
	struct hmap slots;
	hmap_init(&slots, NULL, NULL);
	int err = map_got_slots(f->elf, &slots);
	for (Elf_Scn *scn = NULL; !err && (scn = elf_nextscn(f->elf, scn));) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS)
			continue;
		const char *name = section_name(f->elf, &sh);
		if (name && (!strcmp(name, ".plt") || !strcmp(name, ".plt.sec") || !strcmp(name, ".plt.got")))
			err = index_stub_section(f, scn, &sh, &slots);
	}
	hmap_free(&slots);
	return err;
}

const char *elf_file_plt_target(struct elf_file *f, uint64_t vaddr)
{
	if (f->ehdr.e_machine != EM_X86_64)
		return NULL;
	if (!f->plt_built) {
		if (build_plt_index(f)) {
			hmap_clear(&f->plt_stubs);
			return NULL;
		}
		f->plt_built = true;
	}
	void **name = hmap_find(&f->plt_stubs, hash_u64(vaddr), vaddr);
	return name ? *name : NULL;
}
