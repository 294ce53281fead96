#include "session/bpfconfig.h"

#include "memwatch.h"

static uint32_t capture_mode(const struct options *o)
{
	return o->stack_mode == STACK_FP ? MW_STACK_FP : MW_STACK_SNAPSHOT;
}

void bpfconfig_heap(const struct options *o, pid_t tgid, struct heapbpf_config *out)
{
	*out = (struct heapbpf_config){
		.tgid = tgid,
		.sample_bytes = o->sample_bytes,
		.stack_mode = capture_mode(o),
		.stack_bytes = o->stack_bytes,
		.max_live = o->max_live,
		.ring_bytes = o->ring_bytes,
		.empty = o->empty_probes,
		.mode = o->attach_mode,
		.alloc_only = o->alloc_only,
		/* The budget needs them; so does the note on costly uprobes. */
		.count_hits = !o->empty_probes,
	};
}

void bpfconfig_pages(const struct options *o, pid_t tgid, struct pages_config *out)
{
	*out = (struct pages_config){
		.tgid = tgid,
		.sample_bytes = o->page_sample_bytes,
		.stack_mode = capture_mode(o),
		.stack_bytes = o->stack_bytes,
		.ring_bytes = o->ring_bytes,
		.max_processes = tgid ? 1 : o->max_processes,
		.empty = o->empty_probes,
	};
}
