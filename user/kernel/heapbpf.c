#include "kernel/heapbpf.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "floor.skel.h"
#include "heap.skel.h"
#include "heap_session.skel.h"
#include "kernel/capture.h"
#include "util/sampling.h"

#define BPF_TRACE_UPROBE_MULTI_ 48
#define BPF_TRACE_UPROBE_SESSION_ 57

static const char *const attach_modes[] = {
	[ATTACH_AUTO] = "auto", [ATTACH_SESSION] = "session", [ATTACH_MULTI] = "multi", [ATTACH_CLASSIC] = "classic",
};

const char *attach_mode_name(enum attach_mode mode)
{
	return (unsigned)mode <= ATTACH_CLASSIC ? attach_modes[mode] : "?";
}

int attach_mode_parse(const char *name, enum attach_mode *out)
{
	for (enum attach_mode m = ATTACH_AUTO; m <= ATTACH_CLASSIC; m++) {
		if (!strcmp(name, attach_modes[m])) {
			*out = m;
			return 0;
		}
	}
	return -1;
}

static bool is_session_prog(const struct bpf_program *prog)
{
	return !strncmp(bpf_program__name(prog), "session_", 8);
}

static bool is_classic_alloc_prog(const struct bpf_program *prog)
{
	const char *name = bpf_program__name(prog);
	return !strncmp(name, "enter_", 6) || !strcmp(name, "alloc_exit");
}

/* Expected attach types for mode: session programs become sessions, the rest
 * of the uprobes uprobe_multi links; in session mode the classic allocation
 * programs are not loaded, outside it the session ones are not. */
static void set_attach_types(struct bpf_object *obj, enum attach_mode mode)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj) {
		if (bpf_program__type(prog) != BPF_PROG_TYPE_KPROBE)
			continue;
		bool session = is_session_prog(prog);
		if (mode == ATTACH_SESSION ? is_classic_alloc_prog(prog) : session) {
			bpf_program__set_autoload(prog, false);
			continue;
		}
		if (session)
			bpf_program__set_expected_attach_type(prog, BPF_TRACE_UPROBE_SESSION_);
		else if (mode != ATTACH_CLASSIC)
			bpf_program__set_expected_attach_type(prog, BPF_TRACE_UPROBE_MULTI_);
	}
}

static int load_floor(struct heapbpf *b, enum attach_mode mode)
{
	b->floor = floor_bpf__open();
	if (!b->floor)
		return -errno;
	set_attach_types(b->floor->obj, mode);
	if (floor_bpf__load(b->floor)) {
		int err = -errno;
		floor_bpf__destroy(b->floor);
		b->floor = NULL;
		return err;
	}
	b->mode = mode;
	return 0;
}

/* Both objects declare the same configuration (bpf/heap_common.h). */
#define SET_RODATA(rodata, cfg)                                                           \
	do {                                                                              \
		(rodata)->cfg_target_tgid = (cfg)->tgid;                                  \
		(rodata)->cfg_sample_bytes = (cfg)->sample_bytes;                         \
		(rodata)->cfg_stack_mode = (cfg)->stack_mode;                             \
		(rodata)->cfg_stack_bytes = (cfg)->stack_bytes;                           \
		exp_edges_fill((uint64_t *)(rodata)->cfg_exp_edges, MW_EXP_SIZE, (cfg)->sample_bytes); \
		(rodata)->cfg_scratch_bytes = capture_scratch_bytes((cfg)->stack_mode, (cfg)->stack_bytes); \
		(rodata)->cfg_wakeup_bytes = (cfg)->ring_bytes / 8;                       \
		(rodata)->cfg_alloc_only = (cfg)->alloc_only;                             \
		(rodata)->cfg_count_hits = (cfg)->count_hits;                             \
	} while (0)

static int size_maps(struct heap_bpf *skel, const struct heapbpf_config *cfg)
{
	if (bpf_map__set_max_entries(skel->maps.live, cfg->max_live) ||
	    bpf_map__set_max_entries(skel->maps.events, cfg->ring_bytes))
		return -errno;
	return capture_size_scratch(skel->maps.scratch, cfg->stack_mode, cfg->stack_bytes);
}

static int load_heap(struct heapbpf *b, const struct heapbpf_config *cfg, enum attach_mode mode)
{
	int err;

	b->skel = heap_bpf__open();
	if (!b->skel)
		return -errno;
	set_attach_types(b->skel->obj, mode);
	SET_RODATA(b->skel->rodata, cfg);
	err = size_maps(b->skel, cfg);
	if (!err && heap_bpf__load(b->skel))
		err = -errno;
	if (err) {
		heap_bpf__destroy(b->skel);
		b->skel = NULL;
	}
	return err;
}

/* The session programs use the maps of the main object. */
static int share_maps(struct bpf_object *from, struct bpf_object *to)
{
	struct bpf_map *map;

	bpf_object__for_each_map(map, to) {
		const char *name = bpf_map__name(map);
		if (name[0] == '.' || strchr(name, '.'))
			continue;	/* .rodata and friends: each object has its own */
		struct bpf_map *shared = bpf_object__find_map_by_name(from, name);
		if (!shared || bpf_map__reuse_fd(map, bpf_map__fd(shared)))
			return -ENOENT;
	}
	return 0;
}

static int load_sessions(struct heapbpf *b, const struct heapbpf_config *cfg)
{
	int err;

	b->sess = heap_session_bpf__open();
	if (!b->sess)
		return -errno;
	set_attach_types(b->sess->obj, ATTACH_SESSION);
	SET_RODATA(b->sess->rodata, cfg);
	err = share_maps(b->skel->obj, b->sess->obj);
	if (!err && heap_session_bpf__load(b->sess))
		err = -errno;
	if (err) {
		heap_session_bpf__destroy(b->sess);
		b->sess = NULL;
	}
	return err;
}

/* Sessions need kernel 6.13, uprobe_multi 6.6; older kernels refuse the
 * programs' attach types, so the next mode down is tried. */
static int load_mode(struct heapbpf *b, const struct heapbpf_config *cfg, enum attach_mode mode)
{
	int err = load_heap(b, cfg, mode);

	if (!err && mode == ATTACH_SESSION) {
		err = load_sessions(b, cfg);
		if (err) {
			heap_bpf__destroy(b->skel);
			b->skel = NULL;
		}
	}
	if (!err)
		b->mode = mode;
	return err;
}

static int map_stops(struct heapbpf *b)
{
	void *m = mmap(NULL, sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE, MAP_SHARED,
		       bpf_map__fd(b->skel->maps.stops), 0);

	if (m == MAP_FAILED)
		return -errno;
	b->stops = m;
	return 0;
}

static int load_best(struct heapbpf *b, const struct heapbpf_config *cfg)
{
	if (cfg->mode != ATTACH_AUTO)
		return cfg->empty ? load_floor(b, cfg->mode) : load_mode(b, cfg, cfg->mode);
	int err = -EINVAL;
	for (enum attach_mode m = ATTACH_SESSION; m <= ATTACH_CLASSIC && err; m++)
		err = cfg->empty ? load_floor(b, m) : load_mode(b, cfg, m);
	return err;
}

int heapbpf_load(struct heapbpf *b, const struct heapbpf_config *cfg)
{
	int err;

	memset(b, 0, sizeof(*b));
	err = load_best(b, cfg);
	if (err || cfg->empty)
		return err;
	err = capture_seed_countdowns(bpf_map__fd(b->skel->maps.cpu_state), cfg->sample_bytes);
	if (!err)
		err = map_stops(b);
	if (!err) {
		b->exec_link = bpf_program__attach(b->skel->progs.on_exec);
		b->fork_link = b->exec_link ? bpf_program__attach(b->skel->progs.on_fork) : NULL;
		if (!b->fork_link)
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
	if (!b->skel && !b->floor)
		return;	/* nothing loaded: no programs */
	out->session = b->mode == ATTACH_SESSION;
	out->multi = b->mode != ATTACH_CLASSIC;
#define SET_PROGS(progs, prefix)                                                        \
	do {                                                                            \
		out->enter[MW_LAYOUT_SIZE0] = (progs).prefix##size0;                     \
		out->enter[MW_LAYOUT_SIZE1] = (progs).prefix##size1;                     \
		out->enter[MW_LAYOUT_CALLOC] = (progs).prefix##calloc;                   \
		out->enter[MW_LAYOUT_REALLOC] = (progs).prefix##realloc;                 \
		out->enter[MW_LAYOUT_REALLOCARRAY] = (progs).prefix##reallocarray;       \
		out->enter[MW_LAYOUT_MEMALIGN_OUT] = (progs).prefix##memalign_out;       \
		out->enter[MW_LAYOUT_XALLOCX] = (progs).prefix##xallocx;                 \
	} while (0)
	if (b->floor) {
		if (out->session)
			SET_PROGS(b->floor->progs, session_);
		else
			SET_PROGS(b->floor->progs, enter_);
		out->enter[MW_LAYOUT_FREE] = b->floor->progs.free_enter;
		out->exit = b->floor->progs.alloc_exit;
		return;
	}
	if (out->session)
		SET_PROGS(b->sess->progs, session_);
	else
		SET_PROGS(b->skel->progs, enter_);
	out->enter[MW_LAYOUT_FREE] = b->skel->progs.free_enter;
	out->exit = b->skel->progs.alloc_exit;
#undef SET_PROGS
	out->loader = b->skel->progs.loader_state;
	out->nests_fd = bpf_map__fd(b->skel->maps.nests);
}

void counters_read(int fd, uint64_t out[MW_CNT_NR])
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *percpu = ncpu > 0 && fd >= 0 ? calloc(ncpu, sizeof(*percpu)) : NULL;

	memset(out, 0, MW_CNT_NR * sizeof(out[0]));
	if (!percpu)
		return;
	for (__u32 k = 0; k < MW_CNT_NR; k++) {
		if (bpf_map_lookup_elem(fd, &k, percpu))
			continue;
		for (int i = 0; i < ncpu; i++)
			out[k] += percpu[i];
	}
	free(percpu);
}

void heapbpf_counters(const struct heapbpf *b, uint64_t out[MW_CNT_NR])
{
	counters_read(b->skel ? bpf_map__fd(b->skel->maps.counters) : -1, out);
}

int heapbpf_live_fd(const struct heapbpf *b)
{
	return b->skel ? bpf_map__fd(b->skel->maps.live) : -1;
}

int heapbpf_events_fd(const struct heapbpf *b)
{
	return b->skel ? bpf_map__fd(b->skel->maps.events) : -1;
}

int heapbpf_lost_fd(const struct heapbpf *b)
{
	return b->skel ? bpf_map__fd(b->skel->maps.lost) : -1;
}

int lost_map_scan(int lost_fd, void (*visit)(void *ctx, const struct mw_lost_key *key, const struct mw_lost_val *v),
		  void *ctx)
{
	int ncpu = libbpf_num_possible_cpus();
	struct mw_lost_val *percpu = ncpu > 0 ? calloc(ncpu, sizeof(*percpu)) : NULL;
	struct mw_lost_key key, next;
	bool first = true;

	if (!percpu)
		return -ENOMEM;
	while (!bpf_map_get_next_key(lost_fd, first ? NULL : &key, &next)) {
		struct mw_lost_val sum = { 0, 0 };
		first = false;
		key = next;
		if (bpf_map_lookup_elem(lost_fd, &key, percpu))
			continue;
		for (int i = 0; i < ncpu; i++) {
			sum.count += percpu[i].count;
			sum.bytes += percpu[i].bytes;
		}
		visit(ctx, &key, &sum);
	}
	free(percpu);
	return 0;
}

void lost_map_forget(int lost_fd, __u32 tgid)
{
	struct mw_lost_key key, next;
	bool first = true;

	while (!bpf_map_get_next_key(lost_fd, first ? NULL : &key, &next)) {
		first = false;
		key = next;
		if (key.tgid == tgid && !bpf_map_delete_elem(lost_fd, &key))
			first = true;	/* start over: the key we stood on is gone */
	}
}

struct bpf_object *heapbpf_object(const struct heapbpf *b)
{
	return b->skel ? b->skel->obj : NULL;
}

#define SCAN_BATCH 4096

int live_map_scan(int live_fd, void (*visit)(void *ctx, const struct mw_live_key *key, uint64_t sample_id),
		  void *ctx)
{
	struct mw_live_key *keys = calloc(SCAN_BATCH, sizeof(*keys));
	uint64_t *ids = calloc(SCAN_BATCH, sizeof(*ids));
	uint64_t batch = 0;
	bool first = true;
	int err = keys && ids ? 0 : -ENOMEM;

	while (!err) {
		__u32 n = SCAN_BATCH;
		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		err = bpf_map_lookup_batch(live_fd, first ? NULL : &batch, &batch, keys, ids, &n, &opts);
		if (err)
			err = -errno;
		first = false;
		for (__u32 i = 0; i < n; i++)
			visit(ctx, &keys[i], ids[i]);
	}
	free(keys);
	free(ids);
	return err == -ENOENT ? 0 : err;
}

void heapbpf_stop_on_loader(struct heapbpf *b, bool stop)
{
	if (b->skel)
		b->skel->bss->stop_on_loader = stop;
}

void heapbpf_stop_on_exec(struct heapbpf *b, bool stop)
{
	if (b->skel)
		b->skel->bss->stop_on_exec = stop;
}

volatile struct mw_stops *heapbpf_stops(const struct heapbpf *b)
{
	return b->stops;
}

int heapbpf_stops_fd(const struct heapbpf *b)
{
	return b->skel ? bpf_map__fd(b->skel->maps.stops) : -1;
}

void heapbpf_end_run(struct heapbpf *b)
{
	/* The .bss of each object is mapped: plain stores, made visible to
	 * every CPU before the detaching syscalls that follow. */
	if (b->sess)
		__atomic_store_n(&b->sess->bss->run_ended, true, __ATOMIC_SEQ_CST);
	if (b->skel)
		__atomic_store_n(&b->skel->bss->run_ended, true, __ATOMIC_SEQ_CST);
}

void heapbpf_destroy(struct heapbpf *b)
{
	if (b->stops)
		munmap(b->stops, sysconf(_SC_PAGESIZE));
	bpf_link__destroy(b->fork_link);
	bpf_link__destroy(b->exec_link);
	heap_session_bpf__destroy(b->sess);
	heap_bpf__destroy(b->skel);
	floor_bpf__destroy(b->floor);
	memset(b, 0, sizeof(*b));
}
