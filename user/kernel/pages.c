#include "kernel/pages.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "kernel/capture.h"
#include "kernel/heapbpf.h"
#include "pages.skel.h"
#include "util/parallel.h"
#include "util/sampling.h"

#define TRACEFS "/sys/kernel/tracing"

/* Syscall tracepoints are found by id in tracefs, mounted or not. */
static bool have_tracefs(void)
{
	if (!access(TRACEFS "/events/syscalls", F_OK))
		return true;
	mount("tracefs", TRACEFS, "tracefs", 0, NULL);
	return !access(TRACEFS "/events/syscalls", F_OK);
}

static int configure(struct pages_bpf *skel, const struct pages_config *cfg, bool raw)
{
	struct bpf_program *prog;

	skel->rodata->cfg_target_tgid = cfg->tgid;
	skel->rodata->cfg_self_tgid = getpid();
	skel->rodata->cfg_empty = cfg->empty;
	skel->rodata->cfg_sample_bytes = cfg->sample_bytes;
	skel->rodata->cfg_stack_mode = cfg->stack_mode;
	skel->rodata->cfg_stack_bytes = cfg->stack_bytes;
	skel->rodata->cfg_scratch_bytes = capture_scratch_bytes(cfg->stack_mode, cfg->stack_bytes);
	skel->rodata->cfg_wakeup_bytes = cfg->ring_bytes / 8;
	exp_edges_fill((uint64_t *)skel->rodata->cfg_exp_edges, MW_EXP_SIZE, cfg->sample_bytes);
	/* Syscall tracepoints, or the raw ones standing in for them. */
	bpf_object__for_each_program(prog, skel->obj) {
		const char *name = bpf_program__name(prog);
		bool is_raw = !strncmp(name, "raw_", 4);
		bool is_sys = !strncmp(name, "sys_", 4);
		if (is_raw || is_sys)
			bpf_program__set_autoload(prog, raw ? is_raw : is_sys);
	}
	bpf_program__set_autoload(skel->progs.host_exec, !cfg->tgid);
	bpf_program__set_autoload(skel->progs.host_exit, !cfg->tgid);
	/* Every process: the least recently active go first when full. */
	if (!cfg->tgid && (bpf_map__set_type(skel->maps.fault_counts, BPF_MAP_TYPE_LRU_PERCPU_HASH) ||
			   bpf_map__set_max_entries(skel->maps.fault_counts, cfg->max_processes) ||
			   bpf_map__set_type(skel->maps.stats, BPF_MAP_TYPE_LRU_HASH) ||
			   bpf_map__set_map_flags(skel->maps.stats, 0) ||
			   bpf_map__set_max_entries(skel->maps.profiled, cfg->max_processes)))
		return -errno;
	if (bpf_map__set_max_entries(skel->maps.stats, cfg->max_processes ? cfg->max_processes : 1) ||
	    bpf_map__set_max_entries(skel->maps.events, cfg->ring_bytes))
		return -errno;
	return capture_size_scratch(skel->maps.scratch, cfg->stack_mode, cfg->stack_bytes);
}

static int add_link(struct pages *pg, struct bpf_link *link)
{
	if (!link)
		return -errno;
	if (pg->nlinks == sizeof(pg->links) / sizeof(pg->links[0])) {
		bpf_link__destroy(link);
		return -E2BIG;
	}
	pg->links[pg->nlinks++] = link;
	return 0;
}

static int attach_syscalls(struct pages *pg)
{
	static const struct {
		const char *name;
		int nargs;
	} calls[] = { { "madvise", 3 }, { "mmap", 3 }, { "mremap", 3 }, { "munmap", 2 }, { "brk", 1 } };
	struct pages_bpf *skel = pg->skel;
	struct bpf_program *enter[] = { NULL, skel->progs.sys_enter_1, skel->progs.sys_enter_2,
					skel->progs.sys_enter_3 };
	char tp[64];
	int err = 0;

	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]) && !err; i++) {
		snprintf(tp, sizeof(tp), "sys_enter_%s", calls[i].name);
		err = add_link(pg, bpf_program__attach_tracepoint(enter[calls[i].nargs], "syscalls", tp));
		snprintf(tp, sizeof(tp), "sys_exit_%s", calls[i].name);
		if (!err)
			err = add_link(pg, bpf_program__attach_tracepoint(skel->progs.sys_exit_any, "syscalls", tp));
	}
	return err;
}

static int attach_all(struct pages *pg)
{
	struct pages_bpf *skel = pg->skel;
	int err = add_link(pg, bpf_program__attach(skel->progs.on_fault));

	if (err)
		return err;
	if (!err && bpf_program__autoload(skel->progs.host_exec))
		err = add_link(pg, bpf_program__attach(skel->progs.host_exec));
	if (!err && bpf_program__autoload(skel->progs.host_exit))
		err = add_link(pg, bpf_program__attach(skel->progs.host_exit));
	if (err)
		return err;
	if (!pg->raw_syscalls)
		return attach_syscalls(pg);
	err = add_link(pg, bpf_program__attach(skel->progs.raw_enter));
	return err ? err : add_link(pg, bpf_program__attach(skel->progs.raw_exit));
}

int pages_load(struct pages *pg, const struct pages_config *cfg)
{
	int err;

	memset(pg, 0, sizeof(*pg));
	pg->raw_syscalls = !have_tracefs();
	pg->skel = pages_bpf__open();
	if (!pg->skel)
		return -errno;
	err = configure(pg->skel, cfg, pg->raw_syscalls);
	if (!err && pages_bpf__load(pg->skel))
		err = -errno;
	if (!err)
		err = capture_seed_countdowns(bpf_map__fd(pg->skel->maps.cpu_state), cfg->sample_bytes);
	if (!err)
		err = attach_all(pg);
	if (err)
		pages_destroy(pg);
	return err;
}

static void destroy_link(void *pg, size_t i)
{
	bpf_link__destroy(((struct pages *)pg)->links[i]);
}

void pages_destroy(struct pages *pg)
{
	/* Each tracepoint detach waits out an RCU grace period: in parallel,
	 * they overlap. */
	parallel_for(pg->nlinks, destroy_link, pg);
	pages_bpf__destroy(pg->skel);
	memset(pg, 0, sizeof(*pg));
}

int pages_events_fd(const struct pages *pg)
{
	return pg->skel ? bpf_map__fd(pg->skel->maps.events) : -1;
}

/* The fault counts' key: the one entry for a single target, else the tgid. */
static __u32 fault_key(const struct pages *pg, pid_t tgid)
{
	return pg->skel->rodata->cfg_target_tgid ? 0 : (__u32)tgid;
}

static int add_fault_counts(const struct pages *pg, pid_t tgid, struct mw_page_stats *out)
{
	int ncpu = libbpf_num_possible_cpus();
	__u32 key = fault_key(pg, tgid);

	if (ncpu <= 0)
		return -EINVAL;
	struct mw_fault_counts *per_cpu = calloc(ncpu, sizeof(*per_cpu));
	if (!per_cpu)
		return -ENOMEM;
	int err = bpf_map_lookup_elem(bpf_map__fd(pg->skel->maps.fault_counts), &key, per_cpu) ? -errno : 0;
	for (int i = 0; !err && i < ncpu; i++) {
		out->faults += per_cpu[i].faults;
		out->refaults += per_cpu[i].refaults;
		out->refaults_soon += per_cpu[i].refaults_soon;
	}
	free(per_cpu);
	return err;
}

int pages_stats(const struct pages *pg, pid_t tgid, struct mw_page_stats *out)
{
	__u32 key = tgid;

	if (!pg->skel)
		return -ENOENT;
	/* A process that made none of the traced syscalls has no entry. */
	if (bpf_map_lookup_elem(bpf_map__fd(pg->skel->maps.stats), &key, out)) {
		if (errno != ENOENT)
			return -errno;
		memset(out, 0, sizeof(*out));
	}
	int err = add_fault_counts(pg, tgid, out);
	if (err == -ENOENT && !out->calls[0] && !out->purges && !out->unmaps)
		return -ENOENT;
	out->fault_bytes = out->faults * MW_PAGE_SIZE;
	out->refault_bytes = out->refaults * MW_PAGE_SIZE;
	return err == -ENOENT ? 0 : err;
}

int pages_forget(struct pages *pg, pid_t tgid)
{
	__u32 key = tgid, fkey = fault_key(pg, tgid);

	bpf_map_delete_elem(bpf_map__fd(pg->skel->maps.fault_counts), &fkey);
	return bpf_map_delete_elem(bpf_map__fd(pg->skel->maps.stats), &key) ? -errno : 0;
}


int pages_set_profiled(struct pages *pg, pid_t tgid, bool on)
{
	__u32 key = tgid;
	__u8 one = 1;
	int fd = bpf_map__fd(pg->skel->maps.profiled);

	if (on)
		return bpf_map_update_elem(fd, &key, &one, BPF_ANY) ? -errno : 0;
	return bpf_map_delete_elem(fd, &key) && errno != ENOENT ? -errno : 0;
}

void pages_counters(const struct pages *pg, uint64_t out[MW_CNT_NR])
{
	counters_read(pg->skel ? bpf_map__fd(pg->skel->maps.counters) : -1, out);
}
