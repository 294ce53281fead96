#include "kernel/capture.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>

#include "memwatch.h"
#include "util/sampling.h"

struct cpu_state {		/* bpf/capture.h */
	int64_t countdown;
	uint64_t next_id;
};

uint32_t capture_scratch_bytes(uint32_t stack_mode, uint32_t stack_bytes)
{
	uint32_t payload = stack_mode == MW_STACK_FP ? (MW_MAX_FRAMES + 1) * sizeof(uint64_t)
						     : stack_bytes + MW_STACK_CHUNK;
	return MW_SCRATCH_HEAD + sizeof(struct mw_sample_event) + payload;
}

int capture_size_scratch(struct bpf_map *scratch, uint32_t stack_mode, uint32_t stack_bytes)
{
	int ncpu = libbpf_num_possible_cpus();

	if (ncpu <= 0)
		return -EINVAL;
	if (bpf_map__set_value_size(scratch, capture_scratch_bytes(stack_mode, stack_bytes)) ||
	    bpf_map__set_max_entries(scratch, ncpu * MW_SCRATCH_SLOTS))
		return -errno;
	return 0;
}

int capture_seed_countdowns(int cpu_state_fd, uint64_t rate)
{
	int ncpu = libbpf_num_possible_cpus();
	__u32 zero = 0;

	if (ncpu <= 0)
		return -EINVAL;
	struct cpu_state *st = calloc(ncpu, sizeof(*st));
	if (!st)
		return -ENOMEM;
	for (int i = 0; i < ncpu; i++)
		st[i].countdown = rate > 1 ? (int64_t)exp_draw_exact(rate) : 0;
	int err = bpf_map_update_elem(cpu_state_fd, &zero, st, BPF_ANY) ? -errno : 0;
	free(st);
	return err;
}
