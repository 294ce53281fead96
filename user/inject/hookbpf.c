#include "inject/hookbpf.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "probes/uprobe.h"
#include "kernel/capture.h"
#include "kernel/heapbpf.h"
#include "hook.skel.h"

#define BPF_TRACE_UPROBE_MULTI_ 48
#define WAKEUP_BYTES (64 << 10)	/* producers may wait on the reader: wake it early */

/* Maps of the heap object by name; the hook object's own (its scratch
 * registers, parked blocks, drop counts) stay its own. */
static int share_maps(struct bpf_object *from, struct bpf_object *to)
{
	struct bpf_map *map;

	bpf_object__for_each_map(map, to) {
		const char *name = bpf_map__name(map);
		if (strchr(name, '.'))
			continue;
		struct bpf_map *shared = bpf_object__find_map_by_name(from, name);
		if (shared && bpf_map__reuse_fd(map, bpf_map__fd(shared)))
			return -errno;
	}
	return 0;
}

int hookbpf_load(struct hookbpf *b, struct bpf_object *heap, const struct heapbpf_config *cfg, bool multi)
{
	struct bpf_program *prog;
	int err;

	memset(b, 0, sizeof(*b));
	b->skel = hook_bpf__open();
	if (!b->skel)
		return -errno;
	b->multi = multi;
	if (multi)
		bpf_object__for_each_program(prog, b->skel->obj)
			bpf_program__set_expected_attach_type(prog, BPF_TRACE_UPROBE_MULTI_);
	b->skel->rodata->cfg_target_tgid = cfg->tgid;
	b->skel->rodata->cfg_sample_bytes = cfg->sample_bytes;
	b->skel->rodata->cfg_stack_mode = cfg->stack_mode;
	b->skel->rodata->cfg_stack_bytes = cfg->stack_bytes;
	b->skel->rodata->cfg_scratch_bytes = capture_scratch_bytes(cfg->stack_mode, cfg->stack_bytes);
	b->skel->rodata->cfg_wakeup_bytes = WAKEUP_BYTES;
	b->skel->rodata->cfg_alloc_only = cfg->alloc_only;
	err = share_maps(heap, b->skel->obj);
	if (!err && hook_bpf__load(b->skel))
		err = -errno;
	if (err)
		hookbpf_destroy(b);
	return err;
}

static int attach(void *ctx, pid_t pid, const char *path, const uint64_t offsets[2], void **handle)
{
	struct hookbpf *b = ctx;
	struct bpf_program *progs[2] = { b->skel->progs.report_alloc, b->skel->progs.report_frees };
	struct link_set *set = calloc(1, sizeof(*set));
	int err = set ? 0 : -ENOMEM;

	for (int i = 0; i < 2 && !err; i++)
		err = attach_entry_exit(set, b->multi, progs[i], NULL, pid, path, offsets[i]);
	if (err && set) {
		link_set_close(set);
		free(set);
		set = NULL;
	}
	*handle = set;
	return err;
}

static void detach(void *ctx, void *handle)
{
	if (handle) {
		link_set_close(handle);
		free(handle);
	}
}

static uint64_t drops(void *ctx, pid_t pid)
{
	struct hookbpf *b = ctx;
	__u32 tgid = pid;
	__u64 n = 0;

	bpf_map_lookup_elem(bpf_map__fd(b->skel->maps.hook_drops), &tgid, &n);
	return n;
}

/* One batch delete per call; a key already gone (its report was lost)
 * stops a batch, which goes on after it. */
static void released(void *ctx, pid_t pid, const struct mw_agent_free *frees, size_t n)
{
	struct hookbpf *b = ctx;
	int fd = bpf_map__fd(b->skel->maps.live);
	struct mw_live_key keys[256];
	LIBBPF_OPTS(bpf_map_batch_opts, opts);

	if (n > 256)
		n = 256;
	for (size_t i = 0; i < n; i++)
		keys[i] = (struct mw_live_key){ .tgid = pid, .tag = frees[i].tag, .addr = frees[i].addr };
	for (size_t done = 0; done < n;) {
		__u32 count = n - done;
		int err = bpf_map_delete_batch(fd, keys + done, &count, &opts);
		done += count;
		if (!err)
			break;
		done++;	/* the key that stopped it */
	}
}

void hookbpf_reporter(struct hookbpf *b, struct hook_reporter *out)
{
	*out = (struct hook_reporter){
		.attach = attach, .detach = detach, .drops = drops, .released = released, .ctx = b,
	};
}

void hookbpf_end_run(struct hookbpf *b)
{
	if (b->skel)
		__atomic_store_n(&b->skel->bss->run_ended, true, __ATOMIC_SEQ_CST);
}

void hookbpf_destroy(struct hookbpf *b)
{
	hook_bpf__destroy(b->skel);
	b->skel = NULL;
}

uint64_t hookbpf_inflight(const struct heapbpf_config *cfg, unsigned processes)
{
	uint64_t event = capture_scratch_bytes(cfg->stack_mode, cfg->stack_bytes) + 16;
	uint64_t n = cfg->ring_bytes / 2 / event / (processes ? processes : 1);

	return n < 16 ? 16 : n;
}
