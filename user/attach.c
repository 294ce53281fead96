#include "attach.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "allocators.h"
#include "elf_file.h"
#include "hooks.h"
#include "memwatch.h"
#include "process.h"

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

static int keep_link(struct link_set *set, struct bpf_link *link)
{
	if (set->nlinks == set->cap_links) {
		size_t ncap = set->cap_links ? set->cap_links * 2 : 64;
		struct bpf_link **nl = realloc(set->links, ncap * sizeof(*nl));
		if (!nl) {
			bpf_link__destroy(link);
			return -ENOMEM;
		}
		set->links = nl;
		set->cap_links = ncap;
	}
	set->links[set->nlinks++] = link;
	return 0;
}

static int keep_fd(struct link_set *set, int fd)
{
	if (set->nfds == set->cap_fds) {
		size_t ncap = set->cap_fds ? set->cap_fds * 2 : 64;
		int *nf = realloc(set->fds, ncap * sizeof(*nf));
		if (!nf) {
			close(fd);
			return -ENOMEM;
		}
		set->fds = nf;
		set->cap_fds = ncap;
	}
	set->fds[set->nfds++] = fd;
	return 0;
}

static void *close_fd(void *arg)
{
	close((int)(intptr_t)arg);
	return NULL;
}

/* Closing a uprobe_multi link waits for an RCU grace period: closing them
 * side by side waits for about one, and the probes go away together. */
static void close_fds(int *fds, size_t n)
{
	pthread_t threads[64];
	size_t started = 0;

	for (size_t i = 0; i < n; i++) {
		if (started < 64 && !pthread_create(&threads[started], NULL, close_fd, (void *)(intptr_t)fds[i]))
			started++;
		else
			close(fds[i]);
	}
	for (size_t i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
}

static void close_links(struct link_set *set)
{
	for (size_t i = 0; i < set->nlinks; i++)
		bpf_link__destroy(set->links[i]);
	close_fds(set->fds, set->nfds);
	free(set->links);
	free(set->fds);
	memset(set, 0, sizeof(*set));
}

void attacher_detach(struct attacher *a)
{
	if (a->hooks && a->hooked_pid)
		hooks_detach(a->hooks, a->hooked_pid);
	a->hooked_pid = 0;
	close_links(&a->heap);
	close_links(&a->loader);
	hmap_free(&a->done);
	hmap_free(&a->inlined);
}

void attacher_suspend(struct attacher *a, pid_t pid)
{
	__u32 tgid = pid;

	close_links(&a->heap);
	hmap_clear(&a->done);
	a->nprobes = 0;
	if (a->progs.nests_fd >= 0)
		bpf_map_delete_elem(a->progs.nests_fd, &tgid);
}

/* One probe to attach: entry or return of a program at a file offset, or a
 * session (both). */
struct probe_req {
	struct bpf_program *prog;
	uint64_t offset, cookie;
	bool retprobe;
	bool session;
};

static int attach_classic(struct link_set *set, const struct probe_req *r, pid_t pid, const char *path)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = r->cookie, .retprobe = r->retprobe);
	struct bpf_link *link = bpf_program__attach_uprobe_opts(r->prog, pid, path, r->offset, &opts);

	if (!link)
		return -errno;
	return keep_link(set, link);
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
#define BPF_TRACE_UPROBE_SESSION_ 57
#define BPF_F_UPROBE_MULTI_RETURN_ 1

/* A session link must have flags 0: with the return flag it silently
 * becomes a plain return probe on every call. */
static int link_multi(const struct probe_req *req, pid_t pid, const char *path, const uint64_t *offsets,
		      const uint64_t *cookies, uint32_t n)
{
	struct uprobe_multi_attr attr = {
		.prog_fd = bpf_program__fd(req->prog),
		.attach_type = req->session ? BPF_TRACE_UPROBE_SESSION_ : BPF_TRACE_UPROBE_MULTI_,
		.path = (uintptr_t)path,
		.offsets = (uintptr_t)offsets,
		.cookies = (uintptr_t)cookies,
		.cnt = n,
		.multi_flags = req->retprobe ? BPF_F_UPROBE_MULTI_RETURN_ : 0,
		.pid = pid,
	};
	int fd = syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));

	return fd < 0 ? -errno : fd;
}

/* One uprobe_multi link per (program, direction) for all of a file's
 * offsets: attaching and detaching cost one RCU wait per link, not per probe. */
static int attach_multi(struct link_set *set, const struct probe_req *reqs, size_t n, pid_t pid, const char *path)
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
		int fd = link_multi(&reqs[i], pid, path, offsets, cookies, cnt);
		if (fd < 0 || keep_fd(set, fd))
			return fd < 0 ? fd : -ENOMEM;
	}
	return 0;
}

static int attach_reqs_as(bool multi, struct link_set *set, const struct probe_req *reqs, size_t n, pid_t pid,
			  const char *path)
{
	if (multi)
		return attach_multi(set, reqs, n, pid, path);
	for (size_t i = 0; i < n; i++) {
		int err = attach_classic(set, &reqs[i], pid, path);
		if (err)
			return err;
	}
	return 0;
}

static int attach_reqs(struct attacher *a, struct link_set *set, const struct probe_req *reqs, size_t n, pid_t pid,
		       const char *path)
{
	return attach_reqs_as(a->progs.multi, set, reqs, n, pid, path);
}

int attach_entry_exit(struct link_set *set, bool multi, struct bpf_program *enter, struct bpf_program *exit, pid_t pid,
		      const char *path, uint64_t offset)
{
	struct probe_req reqs[2] = {
		{ enter, offset, 0, false, false },
		{ exit, offset, 0, true, false },
	};
	return attach_reqs_as(multi, set, reqs, exit ? 2 : 1, pid, path);
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

void attach_close(struct link_set *set)
{
	close_links(set);
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
		uint64_t start = runtime_addr(p, o, alloc->nesting[i].vaddr);
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
static int probe_entry(struct attacher *a, struct objfile *o, const struct alloc_entry *e, struct site *sites,
		       size_t *nsites, struct probe_req *reqs, size_t *nreqs)
{
	static uint8_t code[MAX_CODE];
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
	int err = place_probe(code, len, e->vaddr, layout_args[e->layout], &pl);
	if (err)
		return err;
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

static int probe_file(struct attacher *a, struct process *p, const struct mapping *m, const struct allocator *alloc)
{
	struct objfile *o = m->data;
	struct site sites[MAX_SITES];
	struct probe_req reqs[2 * MAX_SITES];
	size_t nsites = 0, nreqs = 0;
	char path[96];
	int attached = 0;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)p->pid, m->start, m->end);
	if (a->log)
		fprintf(a->log, "memwatch: pid %d: %s%s%s%s allocator in %s (build-id %s)\n", (int)p->pid, alloc->name,
			alloc->prefix[0] ? " (prefix " : "", alloc->prefix, alloc->prefix[0] ? ")" : "", o->path,
			elf_file_build_id(o->elf) ? elf_file_build_id(o->elf) : "none");
	if (a->hooks) {
		int r = hooks_attach(a->hooks, p, o, alloc);
		if (r < 0)
			return r;
		if (r > 0) {
			uint64_t key = visit_key(p->pid, o);
			bool fresh = false;
			hmap_upsert(&a->inlined, hash_u64(key), key, &fresh);
			a->hooked_pid = p->pid;
			a->ninline += fresh;
			note_allocator(a, alloc->name);
			return 0;
		}
	}
	for (size_t i = 0; i < alloc->nentries; i++) {
		int r = probe_entry(a, o, &alloc->entries[i], sites, &nsites, reqs, &nreqs);
		if (r < 0) {
			if (a->log)
				fprintf(a->log, "  %-24s cannot probe: %s\n", alloc->entries[i].name, strerror(-r));
			return r;
		}
		attached += r;
	}
	if (!attached)
		return -ENOENT;
	/* Nesting ranges first: the probes may fire the moment they exist. */
	int err = add_nesting(a, p, o, alloc);
	if (!err)
		err = attach_reqs(a, &a->heap, reqs, nreqs, p->pid, path);
	if (!err)
		note_allocator(a, alloc->name);
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
static const struct allocator *allocator_of(struct attacher *a, struct objfile *o)
{
	if (!o->alloc_checked) {
		o->alloc_checked = true;
		o->alloc = malloc(sizeof(*o->alloc));
		if (o->alloc && !allocator_find(o->elf, o->path, a->only, o->alloc)) {
			free(o->alloc);
			o->alloc = NULL;
		}
	}
	return o->alloc;
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
		struct probe_req req = { a->progs.loader, offset, 0, false, false };
		err = attach_reqs(a, &a->loader, &req, 1, pid, path);
	}
	elf_file_close(elf);
	if (a->log && !err)
		fprintf(a->log, "memwatch: pid %d: loader hook on %s _dl_debug_state\n", (int)pid, path);
	return err;
}
