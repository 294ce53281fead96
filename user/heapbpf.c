#include "heapbpf.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "floor.skel.h"
#include "heap.skel.h"
#include "sampling.h"

struct cpu_state {		/* bpf/heap.bpf.c */
	int64_t countdown;
	uint64_t next_id;
};

/* Every CPU starts with its own Exp(R) countdown: starting at 0 would sample
 * the first allocation on each CPU. */
static int seed_countdowns(struct heap_bpf *skel, uint64_t rate)
{
	int ncpu = libbpf_num_possible_cpus();
	__u32 zero = 0;

	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	struct cpu_state *st = calloc(ncpu, sizeof(*st));
	if (!st)
		return -ENOMEM;
	for (int i = 0; i < ncpu; i++)
		st[i].countdown = rate > 1 ? (int64_t)exp_draw_exact(rate) : 0;
	int err = bpf_map_update_elem(bpf_map__fd(skel->maps.cpu_state), &zero, st, BPF_ANY) ? -errno : 0;
	free(st);
	return err;
}

#define BPF_TRACE_UPROBE_MULTI_ 48

static void expect_multi(struct bpf_object *obj)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj)
		if (bpf_program__type(prog) == BPF_PROG_TYPE_KPROBE)
			bpf_program__set_expected_attach_type(prog, BPF_TRACE_UPROBE_MULTI_);
}

static int load_floor(struct heapbpf *b, bool multi)
{
	b->floor = floor_bpf__open();
	if (!b->floor)
		return -errno;
	if (multi)
		expect_multi(b->floor->obj);
	if (floor_bpf__load(b->floor)) {
		int err = -errno;
		floor_bpf__destroy(b->floor);
		b->floor = NULL;
		return err;
	}
	b->multi = multi;
	return 0;
}

static uint32_t scratch_bytes(const struct heapbpf_config *cfg)
{
	uint32_t payload = cfg->stack_mode == MW_STACK_FP ? (MW_MAX_FRAMES + 1) * sizeof(uint64_t)
							  : cfg->stack_bytes + MW_STACK_CHUNK;
	return MW_SCRATCH_HEAD + sizeof(struct mw_sample_event) + payload;
}

static int configure(struct heap_bpf *skel, const struct heapbpf_config *cfg)
{
	int ncpu = libbpf_num_possible_cpus();

	if (ncpu <= 0)
		return -EINVAL;
	skel->rodata->cfg_target_tgid = cfg->tgid;
	skel->rodata->cfg_sample_bytes = cfg->sample_bytes;
	skel->rodata->cfg_stack_mode = cfg->stack_mode;
	skel->rodata->cfg_stack_bytes = cfg->stack_bytes;
	exp_edges_fill((uint64_t *)skel->rodata->cfg_exp_edges, MW_EXP_SIZE, cfg->sample_bytes);
	skel->rodata->cfg_scratch_bytes = scratch_bytes(cfg);
	skel->rodata->cfg_wakeup_bytes = cfg->ring_bytes / 8;
	if (bpf_map__set_max_entries(skel->maps.live, cfg->max_live) ||
	    bpf_map__set_max_entries(skel->maps.events, cfg->ring_bytes) ||
	    bpf_map__set_value_size(skel->maps.scratch, scratch_bytes(cfg)) ||
	    bpf_map__set_max_entries(skel->maps.scratch, ncpu * MW_SCRATCH_SLOTS))
		return -errno;
	return 0;
}

static int load_heap(struct heapbpf *b, const struct heapbpf_config *cfg, bool multi)
{
	int err;

	b->skel = heap_bpf__open();
	if (!b->skel)
		return -errno;
	if (multi)
		expect_multi(b->skel->obj);
	err = configure(b->skel, cfg);
	if (!err && heap_bpf__load(b->skel))
		err = -errno;
	if (err) {
		heap_bpf__destroy(b->skel);
		b->skel = NULL;
	}
	b->multi = multi;
	return err;
}

/* Kernels before 6.6 refuse programs for uprobe_multi links: load again for
 * classic perf-event uprobes. */
int heapbpf_load(struct heapbpf *b, const struct heapbpf_config *cfg, int (*on_event)(void *ctx, void *data, size_t len),
		 void *ctx)
{
	int err;

	memset(b, 0, sizeof(*b));
	if (cfg->empty)
		return load_floor(b, true) ? load_floor(b, false) : 0;
	err = load_heap(b, cfg, true);
	if (err == -EINVAL || err == -EOPNOTSUPP)
		err = load_heap(b, cfg, false);
	if (!err)
		err = seed_countdowns(b->skel, cfg->sample_bytes);
	if (!err) {
		b->rb = ring_buffer__new(bpf_map__fd(b->skel->maps.events), on_event, ctx, NULL);
		if (!b->rb)
			err = -errno;
	}
	if (!err) {
		b->exec_link = bpf_program__attach(b->skel->progs.on_exec);
		if (!b->exec_link)
			err = -errno;
	}
	if (err)
		heapbpf_destroy(b);
	return err;
}

void heapbpf_progs(const struct heapbpf *b, struct probe_progs *out)
{
	memset(out, 0, sizeof(*out));
	out->nests_fd = -1;
#define SET_PROGS(progs)                                                         \
	do {                                                                     \
		out->enter[MW_LAYOUT_SIZE0] = (progs).enter_size0;                \
		out->enter[MW_LAYOUT_SIZE1] = (progs).enter_size1;                \
		out->enter[MW_LAYOUT_CALLOC] = (progs).enter_calloc;              \
		out->enter[MW_LAYOUT_REALLOC] = (progs).enter_realloc;            \
		out->enter[MW_LAYOUT_REALLOCARRAY] = (progs).enter_reallocarray;  \
		out->enter[MW_LAYOUT_MEMALIGN_OUT] = (progs).enter_memalign_out;  \
		out->enter[MW_LAYOUT_FREE] = (progs).free_enter;                  \
		out->enter[MW_LAYOUT_XALLOCX] = (progs).enter_xallocx;            \
		out->exit = (progs).alloc_exit;                                   \
	} while (0)
	if (b->floor) {
		SET_PROGS(b->floor->progs);
		return;
	}
	SET_PROGS(b->skel->progs);
#undef SET_PROGS
	out->loader = b->skel->progs.loader_state;
	out->nests_fd = bpf_map__fd(b->skel->maps.nests);
}

void heapbpf_counters(const struct heapbpf *b, uint64_t out[MW_CNT_NR])
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *percpu = ncpu > 0 ? calloc(ncpu, sizeof(*percpu)) : NULL;

	memset(out, 0, MW_CNT_NR * sizeof(out[0]));
	if (!b->skel || !percpu) {
		free(percpu);
		return;
	}
	int fd = bpf_map__fd(b->skel->maps.counters);
	for (__u32 k = 0; k < MW_CNT_NR; k++) {
		if (bpf_map_lookup_elem(fd, &k, percpu))
			continue;
		for (int i = 0; i < ncpu; i++)
			out[k] += percpu[i];
	}
	free(percpu);
}

int heapbpf_live_fd(const struct heapbpf *b)
{
	return b->skel ? bpf_map__fd(b->skel->maps.live) : -1;
}

int heapbpf_poll_fd(const struct heapbpf *b)
{
	return b->rb ? ring_buffer__epoll_fd(b->rb) : -1;
}

int heapbpf_consume(struct heapbpf *b)
{
	return b->rb ? ring_buffer__consume(b->rb) : 0;
}

void heapbpf_stop_on_loader(struct heapbpf *b, bool stop)
{
	if (b->skel)
		b->skel->bss->stop_on_loader = stop;
}

void heapbpf_destroy(struct heapbpf *b)
{
	bpf_link__destroy(b->exec_link);
	ring_buffer__free(b->rb);
	heap_bpf__destroy(b->skel);
	floor_bpf__destroy(b->floor);
	memset(b, 0, sizeof(*b));
}
