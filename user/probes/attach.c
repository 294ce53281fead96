#include "probes/attach.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "elf/elf_file.h"
#include "memwatch.h"
#include "probes/allocators.h"
#include "probes/detoured.h"
#include "proc/process.h"
#include "util/report.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_CODE 65536

void attacher_init(struct attacher *a, const struct probe_progs *progs, const char *only, FILE *log)
{
	memset(a, 0, sizeof(*a));
	a->only = only;
	a->progs = *progs;
	a->log = log;
	hmap_init(&a->done, NULL, NULL);
	hmap_init(&a->inlined, NULL, NULL);
}

void attacher_detach(struct attacher *a)
{
	if (a->inl.detach && a->hooked_pid)
		a->inl.detach(a->inl.ctx, a->hooked_pid);
	a->hooked_pid = 0;
	link_set_close(&a->heap);
	link_set_close(&a->loader);
	hmap_free(&a->done);
	probe_sites_free(&a->sites);
	hmap_free(&a->inlined);
}

int attacher_unprobe_child(struct attacher *a, pid_t child, pid_t parent)
{
	int n = unprobe_child(&a->sites, child, parent);

	if (a->log && n >= 0)
		fprintf(a->log, "memwatch: pid %d forked %d: %d breakpoints taken out of the child\n", (int)parent,
			(int)child, n);
	else if (a->log)
		fprintf(a->log, "memwatch: pid %d forked %d: cannot take the breakpoints out: %s\n", (int)parent,
			(int)child, strerror(-n));
	return n;
}

void attacher_suspend(struct attacher *a, pid_t pid)
{
	__u32 tgid = pid;

	link_set_close(&a->heap);
	hmap_clear(&a->done);
	a->nprobes = 0;
	if (a->progs.nests_fd >= 0)
		bpf_map_delete_elem(a->progs.nests_fd, &tgid);
}

static int attach_reqs(struct attacher *a, struct link_set *set, const struct probe_req *reqs, size_t n, pid_t pid,
		       const char *path)
{
	return uprobe_attach(set, a->progs.multi, reqs, n, pid, path);
}

int attach_probe_at(struct attacher *a, struct link_set *set, enum mw_layout layout, pid_t pid, const char *path,
		    uint64_t offset)
{
	bool alloc = layout != MW_LAYOUT_FREE;
	bool session = alloc && a->progs.session;
	struct probe_req reqs[2] = { { a->progs.enter[layout], offset, MW_FN_MALLOC, false, session } };
	size_t n = 1;

	if (alloc && !session)
		reqs[n++] = (struct probe_req){ a->progs.exit, offset, MW_FN_MALLOC, true, false };
	return attach_reqs(a, set, reqs, n, pid, path);
}

/* The argument registers each layout's entry program reads. */
static const unsigned layout_args[MW_LAYOUT_COUNT] = {
	[MW_LAYOUT_SIZE0] = PLACE_ARG(0),
	[MW_LAYOUT_SIZE1] = PLACE_ARG(1),
	[MW_LAYOUT_CALLOC] = PLACE_ARG(0) | PLACE_ARG(1),
	[MW_LAYOUT_REALLOC] = PLACE_ARG(0) | PLACE_ARG(1),
	[MW_LAYOUT_REALLOCARRAY] = PLACE_ARG(0) | PLACE_ARG(1) | PLACE_ARG(2),
	[MW_LAYOUT_MEMALIGN_OUT] = PLACE_ARG(0) | PLACE_ARG(2),
	[MW_LAYOUT_FREE] = PLACE_ARG(0),
	[MW_LAYOUT_XALLOCX] = PLACE_ARG(0) | PLACE_ARG(1),
};

/* Allocator functions that call other entries themselves (glibc realloc
 * calls malloc and free): calls from inside them are not user calls. */
static int add_nesting(struct attacher *a, const struct process *p, const struct objfile *o,
		       const struct allocator *alloc)
{
	struct mw_nest nest = { 0 };
	__u32 tgid = p->pid;
	size_t used = 0;

	if (a->progs.nests_fd < 0)
		return 0;
	if (!bpf_map_lookup_elem(a->progs.nests_fd, &tgid, &nest))
		while (used < MW_NEST_RANGES && nest.end[used])
			used++;
	for (size_t i = 0; i < alloc->nnesting && used < MW_NEST_RANGES; i++) {
		uint64_t start = process_runtime_addr(p, o, alloc->nesting[i].vaddr);
		if (!start)
			continue;
		nest.start[used] = start;
		nest.end[used++] = start + alloc->nesting[i].size;
	}
	return bpf_map_update_elem(a->progs.nests_fd, &tgid, &nest, BPF_ANY) ? -errno : 0;
}

struct site {
	uint64_t offset;
	char names[96];
};

#define MAX_SITES 32

/* Places the probes of one entry point, adding them to reqs; 1 if placed, 0
 * if skipped, -errno. sites/nsites deduplicate aliases. */
/* What placing the probes of one file needs. */
struct placing {
	struct disasm *d;
	uint8_t *code;		/* MAX_CODE bytes of function body */
	struct site sites[MAX_SITES];
	size_t nsites;
	struct probe_req reqs[2 * MAX_SITES];
	size_t nreqs;
	bool detoured;		/* memwatch's detours may be in the file: first bytes only */
};

static int probe_entry(struct attacher *a, struct objfile *o, const struct alloc_entry *e, struct placing *pc)
{
	struct site *sites = pc->sites;
	size_t *nsites = &pc->nsites;
	struct probe_req *reqs = pc->reqs;
	size_t *nreqs = &pc->nreqs;
	uint8_t *code = pc->code;
	struct placement pl;
	uint64_t offset, cookie = e->fn;
	ssize_t len;

	if (e->layout == MW_LAYOUT_FREE && a->progs.no_frees)
		return 0;
	if (e->forwards_to) {
		if (a->log)
			fprintf(a->log, "  %-24s forwards to %s: counted there\n", e->name, e->forwards_to);
		return 0;
	}
	len = elf_file_read(o->elf, e->vaddr, code, e->size && e->size < MAX_CODE ? e->size : MAX_CODE);
	if (len <= 0)
		return len < 0 ? (int)len : -ENOENT;
	int err = place_probe(pc->d, code, len, e->vaddr, layout_args[e->layout], &pl);
	if (err)
		return err;
	if (pc->detoured && pl.offset > 0) {
		pl.offset = 0;
		pl.emulated = false;
		snprintf(pl.insn, sizeof(pl.insn), "the first instruction");
		snprintf(pl.why, sizeof(pl.why), "memwatch's detours may have replaced the bytes after it");
	}
	if (elf_file_vaddr_to_offset(o->elf, e->vaddr + pl.offset, &offset))
		return -ENOENT;
	for (size_t i = 0; i < *nsites; i++) {
		if (sites[i].offset == offset) {
			if (a->log)
				fprintf(a->log, "  %-24s alias of %s: one probe\n", e->name, sites[i].names);
			return 0;
		}
	}
	if (*nsites == MAX_SITES)
		return -E2BIG;
	if (e->tail_calls && e->layout != MW_LAYOUT_FREE)
		cookie |= MW_COOKIE_TAILCALLS;
	bool alloc = e->layout != MW_LAYOUT_FREE;
	bool session = alloc && a->progs.session;
	reqs[(*nreqs)++] = (struct probe_req){ a->progs.enter[e->layout], offset, cookie, false, session };
	if (alloc && !session)
		reqs[(*nreqs)++] = (struct probe_req){ a->progs.exit, offset, cookie, true, false };
	/* A site whose bytes cannot be read whole stays in forked children. */
	struct probe_site ps = { o->dev, o->inode, offset, { 0 } };
	if (elf_file_read(o->elf, e->vaddr + pl.offset, ps.orig, sizeof(ps.orig)) == sizeof(ps.orig) &&
	    probe_sites_add(&a->sites, &ps))
		return -ENOMEM;
	sites[*nsites].offset = offset;
	snprintf(sites[(*nsites)++].names, sizeof(sites[0].names), "%s", e->name);
	a->nprobes++;
	if (a->log)
		fprintf(a->log, "  %-24s 0x%" PRIx64 "+%" PRIu64 " (file offset 0x%" PRIx64 "): %s%s%s%s%s\n", e->name,
			e->vaddr, pl.offset, offset, pl.insn, pl.emulated ? ", emulated" : ", single-stepped: ",
			pl.emulated ? "" : pl.why, e->tail_calls ? "; may tail-call " : "",
			e->tail_calls ? e->tail_calls : "");
	return 1;
}

static void note_allocator(struct attacher *a, const char *name)
{
	size_t len = strlen(a->allocators);

	if (!strstr(a->allocators, name))
		snprintf(a->allocators + len, sizeof(a->allocators) - len, "%s%s", len ? "," : "", name);
}

static uint64_t visit_key(pid_t pid, const struct objfile *o)
{
	return hash_u64((uintptr_t)o) ^ (uint64_t)pid;
}

/* In-process detours first, where the driver installs them (a->inl): 1 if
 * alloc's entries in o are detoured, 0 to probe them, -errno. */
static int try_inline(struct attacher *a, struct process *p, struct objfile *o, const struct allocator *alloc)
{
	int r = a->inl.attach ? a->inl.attach(a->inl.ctx, p, o, alloc) : 0;

	if (r > 0) {
		uint64_t key = visit_key(p->pid, o);
		bool fresh = false;
		hmap_upsert(&a->inlined, hash_u64(key), key, &fresh);
		a->hooked_pid = p->pid;
		a->ninline += fresh;
		note_allocator(a, alloc->name);
	}
	return r;
}

/* The probes of every entry of alloc in the file m maps, into pc. 1 when
 * some are placed, 0 if none, -errno. */
static int place_file(struct attacher *a, const struct objfile *o, const struct allocator *alloc,
		      struct placing *pc)
{
	int placed = 0;

	for (size_t i = 0; i < alloc->nentries; i++) {
		int r = probe_entry(a, (struct objfile *)o, &alloc->entries[i], pc);
		if (r < 0) {
			if (a->log)
				fprintf(a->log, "  %-24s cannot probe: %s\n", alloc->entries[i].name, strerror(-r));
			return r;
		}
		placed += r;
	}
	return placed > 0;
}

static int probe_file(struct attacher *a, struct process *p, const struct mapping *m, const struct allocator *alloc)
{
	struct objfile *o = m->data;
	struct placing *pc = calloc(1, sizeof(*pc));
	char path[96];
	int err = -ENOMEM;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)p->pid, m->start, m->end);
	if (a->log)
		report_to(a->log, "pid %d: %s%s%s%s allocator in %s (build-id %s)", (int)p->pid, alloc->name,
			alloc->prefix[0] ? " (prefix " : "", alloc->prefix, alloc->prefix[0] ? ")" : "", o->path,
			elf_file_build_id(o->elf) ? elf_file_build_id(o->elf) : "none");
	int r = try_inline(a, p, o, alloc);
	if (r) {
		free(pc);
		return r < 0 ? r : 0;
	}
	if (pc && (pc->code = malloc(MAX_CODE)) && (pc->d = disasm_new())) {
		pc->detoured = file_detoured_in(p->pid, o->dev, o->inode);
		err = place_file(a, o, alloc, pc);
	}
	if (err == 0)
		err = -ENOENT;
	/* Nesting ranges first: the probes may fire the moment they exist. */
	if (err > 0)
		err = add_nesting(a, p, o, alloc);
	if (!err)
		err = attach_reqs(a, &a->heap, pc->reqs, pc->nreqs, p->pid, path);
	if (!err)
		note_allocator(a, alloc->name);
	if (pc) {
		disasm_free(pc->d);
		free(pc->code);
	}
	free(pc);
	return err;
}

/* Marks (pid, objfile) as handled; false if it already was. */
static bool first_visit(struct attacher *a, pid_t pid, const struct objfile *o)
{
	uint64_t key = visit_key(pid, o);
	bool fresh = false;

	hmap_upsert(&a->done, hash_u64(key), key, &fresh);
	return fresh;
}

static bool visited(const struct attacher *a, pid_t pid, const struct objfile *o)
{
	uint64_t key = visit_key(pid, o);
	return hmap_find(&a->done, hash_u64(key), key) != NULL;
}

/* The allocator o holds, analyzed once per file (--allocator is fixed for
 * the whole run). */
static const struct allocator *objfile_allocator(struct objfile *o, const char *only)
{
	if (!o->alloc_checked) {
		o->alloc_checked = true;
		o->alloc = malloc(sizeof(*o->alloc));
		if (o->alloc && !allocator_find(o->elf, o->path, only, o->alloc)) {
			free(o->alloc);
			o->alloc = NULL;
		}
	}
	return o->alloc;
}

static const struct allocator *allocator_of(struct attacher *a, struct objfile *o)
{
	return objfile_allocator(o, a->only);
}

const char *allocator_in_use(struct process *p, const char *only)
{
	const char *found = NULL;

	for (size_t i = 0; i < p->maps.n; i++) {
		const struct mapping *m = &p->maps.v[i];
		struct objfile *o = m->data;
		const struct allocator *alloc = m->executable && o && o->elf ? objfile_allocator(o, only) : NULL;
		if (!alloc)
			continue;
		/* Linked or preloaded, jemalloc and tcmalloc take malloc over
		 * from the glibc every process maps too. */
		if (strcmp(alloc->name, "glibc"))
			return alloc->name;
		found = alloc->name;
	}
	return found;
}

int attach_allocators(struct attacher *a, struct procs *ps, struct process *p)
{
	int found = 0;

	for (size_t i = 0; i < p->maps.n; i++) {
		const struct mapping *m = &p->maps.v[i];
		struct objfile *o = m->data;
		if (!m->executable || !o || !o->elf || !first_visit(a, p->pid, o))
			continue;
		const struct allocator *alloc = allocator_of(a, o);
		if (!alloc)
			continue;
		int err = probe_file(a, p, m, alloc);
		if (err)
			return err;
		found++;
	}
	return found;
}

/* After exec the files are mapped anew (elsewhere, or not at all): redo the
 * nesting ranges of the allocators probed before, whose probes still apply
 * where the new image maps their files again, and probe the new ones.
 * Detours die with the old image: files that were detoured count as new
 * again, and are detoured when (and if) the new image maps them. */
int attach_after_exec(struct attacher *a, struct procs *ps, struct process *p)
{
	__u32 tgid = p->pid;
	struct hmap_slot *slot;
	int err;

	for (size_t i = 0; hmap_next(&a->inlined, &i, &slot);)
		hmap_remove(&a->done, hash_u64(slot->key), slot->key, NULL);
	hmap_clear(&a->inlined);
	a->ninline = 0;
	if (a->progs.nests_fd >= 0)
		bpf_map_delete_elem(a->progs.nests_fd, &tgid);
	for (size_t i = 0; i < p->maps.n; i++) {
		const struct mapping *m = &p->maps.v[i];
		struct objfile *o = m->data;
		if (!m->executable || !o || !o->elf || !visited(a, p->pid, o))
			continue;
		const struct allocator *alloc = allocator_of(a, o);
		if (alloc && (err = add_nesting(a, p, o, alloc)))
			return err;
	}
	return attach_allocators(a, ps, p);
}

int attach_loader(struct attacher *a, pid_t pid, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct elf_file *elf;
	struct elf_sym sym;
	struct stat st;
	uint64_t offset;
	int err = -ENOENT;

	if (!a->progs.loader)
		return 0;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st))
		memset(&st, 0, sizeof(st));
	elf = elf_file_open(fd);
	close(fd);
	if (!elf)
		return -ENOEXEC;
	if (elf_file_find_func(elf, "_dl_debug_state", &sym) && !elf_file_vaddr_to_offset(elf, sym.vaddr, &offset)) {
		struct probe_req req = { a->progs.loader, offset, 0, false, false };
		struct probe_site site = { (uint64_t)major(st.st_dev) << 32 | minor(st.st_dev), st.st_ino, offset, { 0 } };
		err = attach_reqs(a, &a->loader, &req, 1, pid, path);
		if (!err && elf_file_read(elf, sym.vaddr, site.orig, sizeof(site.orig)) == sizeof(site.orig))
			err = probe_sites_add(&a->sites, &site);
	}
	elf_file_close(elf);
	if (a->log && !err)
		report_to(a->log, "pid %d: loader hook on %s _dl_debug_state", (int)pid, path);
	return err;
}
