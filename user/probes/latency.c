#include "probes/latency.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "elf/elf_file.h"
#include "elf/rootpath.h"
#include "latency.skel.h"
#include "probes/placement.h"
#include "proc/process.h"

#define BPF_TRACE_UPROBE_MULTI_ 48

static int parse_spec(struct latency_probe *lp, const char *spec)
{
	const char *colon = strrchr(spec, ':');

	lp->file = colon ? strndup(spec, colon - spec) : strdup("");
	lp->function = strdup(colon ? colon + 1 : spec);
	if (!lp->file || !lp->function)
		return -ENOMEM;
	return lp->function[0] ? 0 : -EINVAL;
}

static int load(struct latency_probe *lp, pid_t tgid, bool multi)
{
	lp->skel = latency_bpf__open();
	if (!lp->skel)
		return -errno;
	lp->skel->rodata->cfg_target_tgid = tgid;
	if (multi) {
		bpf_program__set_expected_attach_type(lp->skel->progs.lat_enter, BPF_TRACE_UPROBE_MULTI_);
		bpf_program__set_expected_attach_type(lp->skel->progs.lat_exit, BPF_TRACE_UPROBE_MULTI_);
	}
	if (latency_bpf__load(lp->skel)) {
		int err = -errno;
		latency_bpf__destroy(lp->skel);
		lp->skel = NULL;
		return err;
	}
	lp->multi = multi;
	return 0;
}

int latency_load(struct latency_probe *lp, const char *spec, pid_t tgid)
{
	memset(lp, 0, sizeof(*lp));
	int err = parse_spec(lp, spec);
	if (!err)
		err = load(lp, tgid, true);
	/* Kernels before 6.6 have no uprobe_multi. */
	if (err == -EINVAL || err == -EOPNOTSUPP)
		err = load(lp, tgid, false);
	return err;
}

/* The (device, inode) of path as p names it. */
static int stat_in(const struct process *p, const char *path, struct stat *st)
{
	int root = open(p->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int fd = root >= 0 ? rootpath_open(root, path, O_PATH) : -1;
	int err = fd >= 0 && !fstat(fd, st) ? 0 : -1;

	if (fd >= 0)
		close(fd);
	if (root >= 0)
		close(root);
	return err;
}

/* The executable mapping of the file the spec names, as p sees it: by
 * (device, inode), so a symlink such as redis-server works too. */
static const struct mapping *find_file(const struct latency_probe *lp, const struct process *p)
{
	struct stat st;
	uint64_t dev = p->exe_dev, ino = p->exe_inode;

	if (lp->file[0]) {
		if (stat_in(p, lp->file, &st))
			return NULL;
		dev = (uint64_t)major(st.st_dev) << 32 | minor(st.st_dev);
		ino = st.st_ino;
	}
	for (size_t i = 0; i < p->maps.n; i++) {
		const struct mapping *m = &p->maps.v[i];
		const struct objfile *o = m->data;
		if (m->executable && o && o->inode == ino && o->dev == dev)
			return m;
	}
	return NULL;
}

int latency_attach(struct latency_probe *lp, struct procs *ps, struct process *p, FILE *log)
{
	const struct mapping *m;
	struct elf_sym sym;
	struct placement pl;
	uint8_t code[256];
	uint64_t offset;
	char path[96];

	if (lp->attached)
		return 1;
	if (!(m = find_file(lp, p)))
		return 0;
	struct objfile *o = m->data;
	if (!o->elf || !elf_file_find_func(o->elf, lp->function, &sym))
		return -ENOENT;
	ssize_t len = elf_file_read(o->elf, sym.vaddr, code, sym.size && sym.size < sizeof(code) ? sym.size : sizeof(code));
	struct disasm *d = disasm_new();
	int placed = len > 0 && d ? place_probe(d, code, len, sym.vaddr, 0, &pl) : -ENOENT;
	disasm_free(d);
	if (placed || elf_file_vaddr_to_offset(o->elf, sym.vaddr + pl.offset, &offset))
		return -ENOENT;
	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)p->pid, m->start, m->end);
	int err = attach_entry_exit(&lp->links, lp->multi, lp->skel->progs.lat_enter, lp->skel->progs.lat_exit, p->pid,
				    path, offset);
	if (err)
		return err;
	lp->attached = true;
	snprintf(lp->where, sizeof(lp->where), "%s in %s", lp->function, o->path);
	if (log)
		fprintf(log, "memwatch: latency probe on %s at 0x%" PRIx64 "+%" PRIu64 " (%s)\n", lp->where, sym.vaddr,
			pl.offset, pl.insn);
	return 1;
}

int latency_read(const struct latency_probe *lp, uint64_t out[MW_HIST_BUCKETS])
{
	int ncpu = libbpf_num_possible_cpus();
	__u32 zero = 0;

	memset(out, 0, MW_HIST_BUCKETS * sizeof(out[0]));
	if (!lp->skel || ncpu <= 0)
		return -ENOENT;
	uint64_t (*percpu)[MW_HIST_BUCKETS] = calloc(ncpu, sizeof(*percpu));
	if (!percpu)
		return -ENOMEM;
	int err = bpf_map_lookup_elem(bpf_map__fd(lp->skel->maps.latency), &zero, percpu) ? -errno : 0;
	for (int c = 0; !err && c < ncpu; c++)
		for (unsigned b = 0; b < MW_HIST_BUCKETS; b++)
			out[b] += percpu[c][b];
	free(percpu);
	return err;
}

void latency_destroy(struct latency_probe *lp)
{
	link_set_close(&lp->links);
	latency_bpf__destroy(lp->skel);
	free(lp->file);
	free(lp->function);
	memset(lp, 0, sizeof(*lp));
}
