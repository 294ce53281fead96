#include "probes/allocators.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elf/elf_file.h"
#include "probes/placement.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_CODE 65536
#define MAX_EXITS 32
#define FORWARDER_MAX 64	/* bytes: larger tail-callers do work of their own */

struct entry_spec {
	const char *name;	/* C names take the allocator's prefix */
	enum mw_fn fn;
	enum mw_layout layout;
};

struct allocator_spec {
	const char *name;
	const char *const *files;	/* basename prefixes; NULL: any file */
	const char *signature;		/* a function only this allocator defines */
	const char *const *not_if;	/* ... unless the file also defines one of these */
	const char *const *prefixes;	/* symbol prefixes to try */
	const struct entry_spec *c_entries;
	size_t n_c;
	bool cxx;			/* also the C++ operators (never prefixed) */
	const char *const *cxx_skip;	/* operators left to the entry they call */
};

static const struct entry_spec glibc_entries[] = {
	{ "malloc", MW_FN_MALLOC, MW_LAYOUT_SIZE0 },
	{ "calloc", MW_FN_CALLOC, MW_LAYOUT_CALLOC },
	{ "realloc", MW_FN_REALLOC, MW_LAYOUT_REALLOC },
	{ "reallocarray", MW_FN_REALLOCARRAY, MW_LAYOUT_REALLOCARRAY },
	{ "posix_memalign", MW_FN_POSIX_MEMALIGN, MW_LAYOUT_MEMALIGN_OUT },
	{ "aligned_alloc", MW_FN_ALIGNED_ALLOC, MW_LAYOUT_SIZE1 },
	{ "memalign", MW_FN_MEMALIGN, MW_LAYOUT_SIZE1 },
	{ "valloc", MW_FN_VALLOC, MW_LAYOUT_SIZE0 },
	{ "pvalloc", MW_FN_PVALLOC, MW_LAYOUT_SIZE0 },
	{ "free", MW_FN_FREE, MW_LAYOUT_FREE },
};

static const struct entry_spec jemalloc_entries[] = {
	{ "malloc", MW_FN_MALLOC, MW_LAYOUT_SIZE0 },
	{ "calloc", MW_FN_CALLOC, MW_LAYOUT_CALLOC },
	{ "realloc", MW_FN_REALLOC, MW_LAYOUT_REALLOC },
	{ "posix_memalign", MW_FN_POSIX_MEMALIGN, MW_LAYOUT_MEMALIGN_OUT },
	{ "aligned_alloc", MW_FN_ALIGNED_ALLOC, MW_LAYOUT_SIZE1 },
	{ "memalign", MW_FN_MEMALIGN, MW_LAYOUT_SIZE1 },
	{ "valloc", MW_FN_VALLOC, MW_LAYOUT_SIZE0 },
	{ "mallocx", MW_FN_MALLOCX, MW_LAYOUT_SIZE0 },
	{ "rallocx", MW_FN_RALLOCX, MW_LAYOUT_REALLOC },
	{ "xallocx", MW_FN_XALLOCX, MW_LAYOUT_XALLOCX },
	{ "free", MW_FN_FREE, MW_LAYOUT_FREE },
	{ "dallocx", MW_FN_DALLOCX, MW_LAYOUT_FREE },
	{ "sdallocx", MW_FN_SDALLOCX, MW_LAYOUT_FREE },
};

/* gperftools 2.x: memalign, aligned_alloc and tc_memalign are one function;
 * valloc and pvalloc jump to it; posix_memalign calls it. */
static const struct entry_spec gperftools_entries[] = {
	{ "malloc", MW_FN_MALLOC, MW_LAYOUT_SIZE0 },
	{ "calloc", MW_FN_CALLOC, MW_LAYOUT_CALLOC },
	{ "realloc", MW_FN_REALLOC, MW_LAYOUT_REALLOC },
	{ "memalign", MW_FN_MEMALIGN, MW_LAYOUT_SIZE1 },
	{ "posix_memalign", MW_FN_POSIX_MEMALIGN, MW_LAYOUT_MEMALIGN_OUT },
	{ "valloc", MW_FN_VALLOC, MW_LAYOUT_SIZE0 },
	{ "pvalloc", MW_FN_PVALLOC, MW_LAYOUT_SIZE0 },
	{ "tc_malloc_skip_new_handler", MW_FN_MALLOC, MW_LAYOUT_SIZE0 },
	{ "free", MW_FN_FREE, MW_LAYOUT_FREE },
};

/* Google's (abseil-era) tcmalloc, usually linked statically: the public
 * names are aliases of these. */
static const struct entry_spec google_tcmalloc_entries[] = {
	{ "TCMallocInternalMalloc", MW_FN_MALLOC, MW_LAYOUT_SIZE0 },
	{ "TCMallocInternalCalloc", MW_FN_CALLOC, MW_LAYOUT_CALLOC },
	{ "TCMallocInternalRealloc", MW_FN_REALLOC, MW_LAYOUT_REALLOC },
	{ "TCMallocInternalReallocArray", MW_FN_REALLOCARRAY, MW_LAYOUT_REALLOCARRAY },
	{ "TCMallocInternalMemalign", MW_FN_MEMALIGN, MW_LAYOUT_SIZE1 },
	{ "TCMallocInternalAlignedAlloc", MW_FN_ALIGNED_ALLOC, MW_LAYOUT_SIZE1 },
	{ "TCMallocInternalPosixMemalign", MW_FN_POSIX_MEMALIGN, MW_LAYOUT_MEMALIGN_OUT },
	{ "TCMallocInternalValloc", MW_FN_VALLOC, MW_LAYOUT_SIZE0 },
	{ "TCMallocInternalPvalloc", MW_FN_PVALLOC, MW_LAYOUT_SIZE0 },
	{ "TCMallocInternalFree", MW_FN_FREE, MW_LAYOUT_FREE },
	{ "TCMallocInternalFreeSized", MW_FN_FREE, MW_LAYOUT_FREE },
	{ "TCMallocInternalFreeAlignedSized", MW_FN_FREE, MW_LAYOUT_FREE },
	{ "TCMallocInternalSdallocx", MW_FN_SDALLOCX, MW_LAYOUT_FREE },
};

/* Every operator new and delete: plain, array, nothrow, sized, aligned. */
static const struct entry_spec cxx_entries[] = {
	{ "_Znwm", MW_FN_NEW, MW_LAYOUT_SIZE0 },
	{ "_Znam", MW_FN_NEW, MW_LAYOUT_SIZE0 },
	{ "_ZnwmRKSt9nothrow_t", MW_FN_NEW, MW_LAYOUT_SIZE0 },
	{ "_ZnamRKSt9nothrow_t", MW_FN_NEW, MW_LAYOUT_SIZE0 },
	{ "_ZnwmSt11align_val_t", MW_FN_NEW, MW_LAYOUT_SIZE0 },
	{ "_ZnamSt11align_val_t", MW_FN_NEW, MW_LAYOUT_SIZE0 },
	{ "_ZnwmSt11align_val_tRKSt9nothrow_t", MW_FN_NEW, MW_LAYOUT_SIZE0 },
	{ "_ZnamSt11align_val_tRKSt9nothrow_t", MW_FN_NEW, MW_LAYOUT_SIZE0 },
	{ "_ZdlPv", MW_FN_DELETE, MW_LAYOUT_FREE },
	{ "_ZdaPv", MW_FN_DELETE, MW_LAYOUT_FREE },
	{ "_ZdlPvm", MW_FN_DELETE, MW_LAYOUT_FREE },
	{ "_ZdaPvm", MW_FN_DELETE, MW_LAYOUT_FREE },
	{ "_ZdlPvRKSt9nothrow_t", MW_FN_DELETE, MW_LAYOUT_FREE },
	{ "_ZdaPvRKSt9nothrow_t", MW_FN_DELETE, MW_LAYOUT_FREE },
	{ "_ZdlPvSt11align_val_t", MW_FN_DELETE, MW_LAYOUT_FREE },
	{ "_ZdaPvSt11align_val_t", MW_FN_DELETE, MW_LAYOUT_FREE },
	{ "_ZdlPvmSt11align_val_t", MW_FN_DELETE, MW_LAYOUT_FREE },
	{ "_ZdaPvmSt11align_val_t", MW_FN_DELETE, MW_LAYOUT_FREE },
	{ "_ZdlPvSt11align_val_tRKSt9nothrow_t", MW_FN_DELETE, MW_LAYOUT_FREE },
	{ "_ZdaPvSt11align_val_tRKSt9nothrow_t", MW_FN_DELETE, MW_LAYOUT_FREE },
};

/* jemalloc's aligned sized deletes check for NULL, then jump to sdallocx on
 * every other path: counted there. At 81 bytes they are too big for the
 * forwarder rule, and probing them would cost a second trap per delete. */
static const char *const jemalloc_cxx_skip[] = { "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t", NULL };

static const char *const no_prefix[] = { "", NULL };
static const char *const jemalloc_prefixes[] = { "", "je_", "_rjem_", NULL };
static const char *const glibc_files[] = { "libc.so", "libc-", NULL };
static const char *const glibc_lookalikes[] = { "mallctl", "tc_malloc", "TCMallocInternalMalloc", NULL };

#define SPEC_ENTRIES(e) e, ARRAY_SIZE(e)

static const struct allocator_spec specs[] = {
	{ "jemalloc", NULL, "mallctl", NULL, jemalloc_prefixes, SPEC_ENTRIES(jemalloc_entries), true,
	  jemalloc_cxx_skip },
	{ "tcmalloc", NULL, "tc_malloc", NULL, no_prefix, SPEC_ENTRIES(gperftools_entries), true, NULL },
	{ "tcmalloc-google", NULL, "TCMallocInternalMalloc", NULL, no_prefix, SPEC_ENTRIES(google_tcmalloc_entries),
	  true, NULL },
	{ "glibc", glibc_files, "__libc_malloc", glibc_lookalikes, no_prefix, SPEC_ENTRIES(glibc_entries), false,
	  NULL },
	/* glibc linked statically: its internals are in the executable's .symtab. */
	{ "glibc", NULL, "_int_malloc", glibc_lookalikes, no_prefix, SPEC_ENTRIES(glibc_entries), false, NULL },
};

const char *allocators_looked_for(void)
{
	return "glibc (libc.so.6, or malloc in a static executable), jemalloc (mallctl; also je_ and _rjem_ "
	       "prefixed), gperftools tcmalloc (tc_malloc), Google tcmalloc (TCMallocInternalMalloc)";
}

/* pprof prunes a stack below the first match counted from the root, so this
 * must match allocator functions only (never __libc_start_main). */
const char *allocators_drop_frames(void)
{
	return "malloc|calloc|realloc|reallocarray|free|cfree|posix_memalign|aligned_alloc|memalign|"
	       "valloc|pvalloc|(__GI_)?__libc_(malloc|calloc|realloc|reallocarray|free|memalign|valloc|pvalloc)|"
	       "__posix_memalign|_int_(malloc|free|realloc|memalign)|_mid_memalign|tcache_.*|"
	       "mallocx|rallocx|xallocx|dallocx|sdallocx|(je_|_rjem_)[a-z_]*|tc_[a-z_]*|TCMallocInternal.*|"
	       "tcmalloc::.*|operator new.*|operator delete.*";
}

static bool in_list(const char *name, const char *const *list)
{
	for (; list && *list; list++)
		if (!strcmp(name, *list))
			return true;
	return false;
}

static bool in_names(const char *name, const char *names)
{
	size_t len = strlen(name);

	for (const char *p = names; p && *p;) {
		size_t n = strcspn(p, ",");
		if (n == len && !strncmp(p, name, len))
			return true;
		p += n + (p[n] == ',');
	}
	return false;
}

int allocator_names_valid(const char *names)
{
	for (const char *p = names; *p;) {
		size_t n = strcspn(p, ",");
		bool known = false;
		for (size_t i = 0; i < ARRAY_SIZE(specs); i++)
			known |= strlen(specs[i].name) == n && !strncmp(p, specs[i].name, n);
		if (!known)
			return -1;
		p += n + (p[n] == ',');
	}
	return 0;
}

static bool basename_matches(const char *path, const char *const *prefixes)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	for (const char *const *p = prefixes; *p; p++)
		if (!strncmp(base, *p, strlen(*p)))
			return true;
	return false;
}

static bool defines(struct elf_file *elf, const char *prefix, const char *name)
{
	char full[128];
	struct elf_sym sym;

	snprintf(full, sizeof(full), "%s%s", prefix, name);
	return elf_file_find_func(elf, full, &sym);
}

/* The prefix under which the file holds spec's allocator, or NULL. */
static const char *holds(struct elf_file *elf, const char *path, const struct allocator_spec *spec, bool by_name)
{
	if (by_name && spec->files && !basename_matches(path, spec->files))
		return NULL;
	for (const char *const *p = spec->not_if; p && *p; p++)
		if (defines(elf, "", *p))
			return NULL;
	for (const char *const *prefix = spec->prefixes; *prefix; prefix++)
		if (defines(elf, *prefix, spec->signature))
			return *prefix;
	return NULL;
}

static void add_entry(struct elf_file *elf, struct allocator *a, const char *prefix, const struct entry_spec *e)
{
	struct alloc_entry *out = &a->entries[a->nentries];
	struct elf_sym sym;

	if (a->nentries == ALLOC_MAX_ENTRIES)
		return;
	snprintf(out->name, sizeof(out->name), "%s%s", prefix, e->name);
	if (!elf_file_find_func(elf, out->name, &sym))
		return;
	out->fn = e->fn;
	out->layout = e->layout;
	out->vaddr = sym.vaddr;
	out->size = sym.size;
	out->forwards_to = out->tail_calls = NULL;
	a->nentries++;
}

/* The entry at vaddr (a jump target), or NULL. PLT stubs are followed to
 * the function of that name defined in the same file. */
static const struct alloc_entry *entry_at(struct elf_file *elf, const struct allocator *a, uint64_t vaddr)
{
	const char *plt = elf_file_plt_target(elf, vaddr);
	struct elf_sym sym;

	if (plt) {
		if (!elf_file_find_func(elf, plt, &sym))
			return NULL;
		vaddr = sym.vaddr;
	}
	for (size_t i = 0; i < a->nentries; i++)
		if (a->entries[i].vaddr == vaddr)
			return &a->entries[i];
	return NULL;
}

static void add_nesting(struct allocator *a, const struct alloc_entry *e)
{
	for (size_t i = 0; i < a->nnesting; i++)
		if (a->nesting[i].vaddr == e->vaddr)
			return;
	if (a->nnesting < MW_NEST_RANGES)
		a->nesting[a->nnesting++] = (struct alloc_range){ e->vaddr, e->size };
}

/* How entry e reaches other entries: by a jump (a forwarder, or a function
 * that may tail-call) or by a call (then it nests them). */
static void analyze(struct elf_file *elf, struct disasm *d, struct allocator *a, struct alloc_entry *e, uint8_t *code)
{
	uint64_t targets[MAX_EXITS];
	ssize_t len = elf_file_read(elf, e->vaddr, code, e->size && e->size < MAX_CODE ? e->size : MAX_CODE);

	if (len <= 0)
		return;
	size_t n = find_tail_calls(d, code, len, e->vaddr, targets, MAX_EXITS);
	for (size_t i = 0; i < n && i < MAX_EXITS; i++) {
		const struct alloc_entry *to = entry_at(elf, a, targets[i]);
		if (!to || to->vaddr == e->vaddr)
			continue;
		if (e->size && e->size <= FORWARDER_MAX)
			e->forwards_to = to->name;
		else
			e->tail_calls = to->name;
		break;
	}
	n = find_calls(d, code, len, e->vaddr, targets, MAX_EXITS);
	for (size_t i = 0; i < n && i < MAX_EXITS; i++) {
		const struct alloc_entry *to = entry_at(elf, a, targets[i]);
		if (to && to->vaddr != e->vaddr)
			add_nesting(a, e);
	}
}

static int resolve(struct elf_file *elf, const struct allocator_spec *spec, const char *prefix, struct allocator *a)
{
	uint8_t *code = malloc(MAX_CODE);
	struct disasm *d = disasm_new();

	if (!code || !d) {
		free(code);
		disasm_free(d);
		return -ENOMEM;
	}
	memset(a, 0, sizeof(*a));
	a->name = spec->name;
	snprintf(a->prefix, sizeof(a->prefix), "%s", prefix);
	for (size_t i = 0; i < spec->n_c; i++)
		add_entry(elf, a, prefix, &spec->c_entries[i]);
	for (size_t i = 0; spec->cxx && i < ARRAY_SIZE(cxx_entries); i++)
		if (!in_list(cxx_entries[i].name, spec->cxx_skip))
			add_entry(elf, a, "", &cxx_entries[i]);
	for (size_t i = 0; i < a->nentries; i++)
		analyze(elf, d, a, &a->entries[i], code);
	disasm_free(d);
	free(code);
	return 0;
}

bool allocator_find(struct elf_file *elf, const char *path, const char *only, struct allocator *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(specs); i++) {
		const struct allocator_spec *spec = &specs[i];
		if (only && !in_names(spec->name, only))
			continue;
		const char *prefix = holds(elf, path, spec, !only);
		if (prefix && !resolve(elf, spec, prefix, out) && out->nentries)
			return true;
	}
	return false;
}
