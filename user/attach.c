#include "attach.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elf_file.h"
#include "memwatch.h"
#include "process.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NONE MW_ARG_NONE
#define MAX_CODE 65536
#define FORWARDER_MAX 64	/* bytes: larger tail-callers do work of their own */

struct entry_spec {
	const char *name;
	enum mw_fn fn;
	enum mw_layout layout;
};

struct allocator_spec {
	const char *name;
	const char *const *files;	/* basename prefixes of its shared object */
	const char *signature;		/* a symbol only this allocator defines */
	const struct entry_spec *entries;
	size_t nentries;
	const char *const *nesting;	/* functions that call other entries */
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

static const char *const glibc_files[] = { "libc.so", "libc-", NULL };
/* realloc calls malloc and free itself for realloc(NULL, n), realloc(p, 0)
 * and mmapped blocks. */
static const char *const glibc_nesting[] = { "realloc", NULL };

static const struct allocator_spec allocator_specs[] = {
	{ "glibc", glibc_files, "__libc_malloc", glibc_entries, ARRAY_SIZE(glibc_entries), glibc_nesting },
};

const char *attach_looked_for(void)
{
	return "glibc (libc.so.6)";
}

/* pprof prunes a stack below the first match counted from the root, so this
 * must match allocator functions only (never __libc_start_main). */
const char *attach_drop_frames(void)
{
	return "malloc|calloc|realloc|reallocarray|free|cfree|posix_memalign|aligned_alloc|memalign|"
	       "valloc|pvalloc|(__GI_)?__libc_(malloc|calloc|realloc|reallocarray|free|memalign|valloc|pvalloc)|"
	       "__posix_memalign|_int_(malloc|free|realloc|memalign)|_mid_memalign|tcache_.*|"
	       "operator new.*|operator delete.*";
}

void attacher_init(struct attacher *a, const struct probe_progs *progs, bool multi, FILE *log)
{
	memset(a, 0, sizeof(*a));
	a->progs = *progs;
	a->multi = multi;
	a->log = log;
	hmap_init(&a->done, NULL, NULL);
}

static int keep_link(struct attacher *a, struct bpf_link *link)
{
	if (a->nlinks == a->cap_links) {
		size_t ncap = a->cap_links ? a->cap_links * 2 : 64;
		struct bpf_link **nl = realloc(a->links, ncap * sizeof(*nl));
		if (!nl) {
			bpf_link__destroy(link);
			return -ENOMEM;
		}
		a->links = nl;
		a->cap_links = ncap;
	}
	a->links[a->nlinks++] = link;
	return 0;
}

static int keep_fd(struct attacher *a, int fd)
{
	if (a->nfds == a->cap_fds) {
		size_t ncap = a->cap_fds ? a->cap_fds * 2 : 64;
		int *nf = realloc(a->link_fds, ncap * sizeof(*nf));
		if (!nf) {
			close(fd);
			return -ENOMEM;
		}
		a->link_fds = nf;
		a->cap_fds = ncap;
	}
	a->link_fds[a->nfds++] = fd;
	return 0;
}

void attacher_detach(struct attacher *a)
{
	for (size_t i = 0; i < a->nlinks; i++)
		bpf_link__destroy(a->links[i]);
	for (size_t i = 0; i < a->nfds; i++)
		close(a->link_fds[i]);
	free(a->links);
	free(a->link_fds);
	a->links = NULL;
	a->link_fds = NULL;
	a->nlinks = a->cap_links = a->nfds = a->cap_fds = 0;
	hmap_free(&a->done);
}

/* One probe to attach: entry or return of a program at a file offset. */
struct probe_req {
	struct bpf_program *prog;
	uint64_t offset, cookie;
	bool retprobe;
};

static int attach_classic(struct attacher *a, const struct probe_req *r, pid_t pid, const char *path)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = r->cookie, .retprobe = r->retprobe);
	struct bpf_link *link = bpf_program__attach_uprobe_opts(r->prog, pid, path, r->offset, &opts);

	if (!link)
		return -errno;
	return keep_link(a, link);
}

/* BPF_LINK_CREATE for uprobe_multi, laid out as in the kernel's union
 * bpf_attr: Debian's 6.1 uapi header predates it. */
struct uprobe_multi_attr {
	__u32 prog_fd, target_fd, attach_type, flags;
	__u64 path, offsets, ref_ctr_offsets, cookies;
	__u32 cnt, multi_flags, pid;
	__u32 pad[9];
};

#define BPF_TRACE_UPROBE_MULTI_ 48
#define BPF_F_UPROBE_MULTI_RETURN_ 1

static int link_multi(struct bpf_program *prog, pid_t pid, const char *path, const uint64_t *offsets,
		      const uint64_t *cookies, uint32_t n, bool retprobe)
{
	struct uprobe_multi_attr attr = {
		.prog_fd = bpf_program__fd(prog),
		.attach_type = BPF_TRACE_UPROBE_MULTI_,
		.path = (uintptr_t)path,
		.offsets = (uintptr_t)offsets,
		.cookies = (uintptr_t)cookies,
		.cnt = n,
		.multi_flags = retprobe ? BPF_F_UPROBE_MULTI_RETURN_ : 0,
		.pid = pid,
	};
	int fd = syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));

	return fd < 0 ? -errno : fd;
}

/* One uprobe_multi link per (program, direction) for all of a file's
 * offsets: attaching and detaching cost one RCU wait per link, not per probe. */
static int attach_multi(struct attacher *a, const struct probe_req *reqs, size_t n, pid_t pid, const char *path)
{
	uint64_t offsets[64], cookies[64];
	bool done[64] = { false };

	for (size_t i = 0; i < n && i < 64; i++) {
		uint32_t cnt = 0;
		if (done[i])
			continue;
		for (size_t j = i; j < n && j < 64; j++) {
			if (reqs[j].prog != reqs[i].prog || reqs[j].retprobe != reqs[i].retprobe)
				continue;
			offsets[cnt] = reqs[j].offset;
			cookies[cnt++] = reqs[j].cookie;
			done[j] = true;
		}
		int fd = link_multi(reqs[i].prog, pid, path, offsets, cookies, cnt, reqs[i].retprobe);
		if (fd < 0 || keep_fd(a, fd))
			return fd < 0 ? fd : -ENOMEM;
	}
	return 0;
}

static int attach_reqs(struct attacher *a, const struct probe_req *reqs, size_t n, pid_t pid, const char *path)
{
	if (a->multi)
		return attach_multi(a, reqs, n, pid, path);
	for (size_t i = 0; i < n; i++) {
		int err = attach_classic(a, &reqs[i], pid, path);
		if (err)
			return err;
	}
	return 0;
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
};

static bool spec_has_entry(const struct allocator_spec *spec, const char *name)
{
	for (size_t i = 0; i < spec->nentries; i++)
		if (!strcmp(spec->entries[i].name, name))
			return true;
	return false;
}

/* Another probed entry that this function tail-calls, if any. */
static const char *tail_calls(struct elf_file *elf, const struct allocator_spec *spec, const struct elf_sym *sym,
			       const uint8_t *code, size_t len)
{
	uint64_t targets[8];
	size_t n = find_tail_calls(code, len, sym->vaddr, targets, ARRAY_SIZE(targets));

	for (size_t i = 0; i < n && i < ARRAY_SIZE(targets); i++) {
		const char *names[8];
		const char *plt = elf_file_plt_target(elf, targets[i]);
		size_t nn = plt ? 1 : elf_file_names_at(elf, targets[i], names, ARRAY_SIZE(names));
		if (plt)
			names[0] = plt;
		for (size_t j = 0; j < nn && j < ARRAY_SIZE(names); j++)
			if (strcmp(names[j], sym->name) && spec_has_entry(spec, names[j]))
				return names[j];
	}
	return NULL;
}

/* Where vaddr of o is mapped in p, or 0. */
static uint64_t runtime_addr(const struct process *p, const struct objfile *o, uint64_t vaddr)
{
	uint64_t off;

	if (elf_file_vaddr_to_offset(o->elf, vaddr, &off))
		return 0;
	for (size_t i = 0; i < p->maps.n; i++) {
		const struct mapping *m = &p->maps.v[i];
		if (m->data == o && off >= m->offset && off < m->offset + (m->end - m->start))
			return m->start + (off - m->offset);
	}
	return 0;
}

static int add_nesting(struct attacher *a, const struct process *p, const struct objfile *o,
		       const struct allocator_spec *spec)
{
	struct mw_nest nest = { 0 };
	__u32 tgid = p->pid;
	int used = 0;

	if (a->progs.nests_fd < 0)
		return 0;
	if (!bpf_map_lookup_elem(a->progs.nests_fd, &tgid, &nest))
		while (used < MW_NEST_RANGES && nest.end[used])
			used++;
	for (const char *const *fn = spec->nesting; *fn && used < MW_NEST_RANGES; fn++) {
		struct elf_sym sym;
		if (!elf_file_find_func(o->elf, *fn, &sym))
			continue;
		uint64_t start = runtime_addr(p, o, sym.vaddr);
		if (!start)
			continue;
		nest.start[used] = start;
		nest.end[used++] = start + sym.size;
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
static int probe_entry(struct attacher *a, struct objfile *o, const struct allocator_spec *spec,
		       const struct entry_spec *e, struct site *sites, size_t *nsites, struct probe_req *reqs,
		       size_t *nreqs)
{
	static uint8_t code[MAX_CODE];
	struct elf_sym sym;
	struct placement pl;
	uint64_t offset;
	ssize_t len;
	const char *fwd;

	if (!elf_file_find_func(o->elf, e->name, &sym))
		return 0;
	len = elf_file_read(o->elf, sym.vaddr, code, sym.size && sym.size < MAX_CODE ? sym.size : MAX_CODE);
	if (len <= 0)
		return len < 0 ? (int)len : -ENOENT;
	uint64_t cookie = e->fn;
	if ((fwd = tail_calls(o->elf, spec, &sym, code, len))) {
		/* A tiny wrapper (glibc's reallocarray) is counted in the
		 * entry it jumps to; probing it too would count twice. */
		if (sym.size <= FORWARDER_MAX) {
			if (a->log)
				fprintf(a->log, "  %-16s forwards to %s: counted there\n", e->name, fwd);
			return 0;
		}
		cookie |= MW_COOKIE_TAILCALLS;
	}
	int err = place_probe(code, len, sym.vaddr, layout_args[e->layout], &pl);
	if (err)
		return err;
	if (elf_file_vaddr_to_offset(o->elf, sym.vaddr + pl.offset, &offset))
		return -ENOENT;
	for (size_t i = 0; i < *nsites; i++) {
		if (sites[i].offset == offset) {
			if (a->log)
				fprintf(a->log, "  %-16s alias of %s: one probe\n", e->name, sites[i].names);
			return 0;
		}
	}
	if (*nsites == MAX_SITES)
		return -E2BIG;
	reqs[(*nreqs)++] = (struct probe_req){ a->progs.enter[e->layout], offset, cookie, false };
	if (e->layout != MW_LAYOUT_FREE)
		reqs[(*nreqs)++] = (struct probe_req){ a->progs.exit, offset, cookie, true };
	sites[*nsites].offset = offset;
	snprintf(sites[(*nsites)++].names, sizeof(sites[0].names), "%s", e->name);
	a->nprobes++;
	if (a->log)
		fprintf(a->log, "  %-16s 0x%" PRIx64 "+%" PRIu64 " (file offset 0x%" PRIx64 "): %s%s%s%s%s\n", e->name,
			sym.vaddr, pl.offset, offset, pl.insn, pl.emulated ? ", emulated" : ", single-stepped: ",
			pl.emulated ? "" : pl.why, fwd ? "; may tail-call " : "", fwd ? fwd : "");
	return 1;
}

static int probe_file(struct attacher *a, struct process *p, const struct mapping *m, const struct allocator_spec *spec)
{
	struct objfile *o = m->data;
	struct site sites[MAX_SITES];
	struct probe_req reqs[2 * MAX_SITES];
	size_t nsites = 0, nreqs = 0;
	char path[96];
	int attached = 0;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)p->pid, m->start, m->end);
	if (a->log)
		fprintf(a->log, "memwatch: pid %d: %s allocator in %s (build-id %s)\n", (int)p->pid, spec->name,
			o->path, elf_file_build_id(o->elf) ? elf_file_build_id(o->elf) : "none");
	for (size_t i = 0; i < spec->nentries; i++) {
		int r = probe_entry(a, o, spec, &spec->entries[i], sites, &nsites, reqs, &nreqs);
		if (r < 0) {
			if (a->log)
				fprintf(a->log, "  %-16s cannot probe: %s\n", spec->entries[i].name, strerror(-r));
			return r;
		}
		attached += r;
	}
	if (!attached)
		return -ENOENT;
	/* Nesting ranges first: the probes may fire the moment they exist. */
	int err = add_nesting(a, p, o, spec);
	if (!err)
		err = attach_reqs(a, reqs, nreqs, p->pid, path);
	if (err)
		return err;
	size_t len = strlen(a->allocators);
	if (!strstr(a->allocators, spec->name))
		snprintf(a->allocators + len, sizeof(a->allocators) - len, "%s%s", len ? "," : "", spec->name);
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

static const struct allocator_spec *identify(struct objfile *o)
{
	struct elf_sym sym;

	if (!o || !o->elf)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(allocator_specs); i++) {
		const struct allocator_spec *spec = &allocator_specs[i];
		if (basename_matches(o->path, spec->files) && elf_file_find_func(o->elf, spec->signature, &sym))
			return spec;
	}
	return NULL;
}

/* Marks (pid, objfile) as handled; false if it already was. */
static bool first_visit(struct attacher *a, pid_t pid, const struct objfile *o)
{
	uint64_t key = hash_u64((uintptr_t)o) ^ (uint64_t)pid;
	bool fresh = false;

	hmap_upsert(&a->done, hash_u64(key), key, &fresh);
	return fresh;
}

int attach_allocators(struct attacher *a, struct procs *ps, struct process *p)
{
	int found = 0;

	for (size_t i = 0; i < p->maps.n; i++) {
		const struct mapping *m = &p->maps.v[i];
		if (!m->executable || !m->data || !first_visit(a, p->pid, m->data))
			continue;
		const struct allocator_spec *spec = identify(m->data);
		if (!spec)
			continue;
		int err = probe_file(a, p, m, spec);
		if (err)
			return err;
		found++;
	}
	return found;
}

int attach_loader(struct attacher *a, pid_t pid, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct elf_file *elf;
	struct elf_sym sym;
	uint64_t offset;
	int err = -ENOENT;

	if (!a->progs.loader)
		return 0;
	if (fd < 0)
		return -errno;
	elf = elf_file_open(fd);
	close(fd);
	if (!elf)
		return -ENOEXEC;
	if (elf_file_find_func(elf, "_dl_debug_state", &sym) && !elf_file_vaddr_to_offset(elf, sym.vaddr, &offset)) {
		struct probe_req req = { a->progs.loader, offset, 0, false };
		err = attach_reqs(a, &req, 1, pid, path);
	}
	elf_file_close(elf);
	if (a->log && !err)
		fprintf(a->log, "memwatch: pid %d: loader hook on %s _dl_debug_state\n", (int)pid, path);
	return err;
}
