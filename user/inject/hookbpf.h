/* The BPF side of the in-process fast path (bpf/hook.bpf.c): loaded next
 * to the heap object, whose maps it shares, and attached to each agent
 * instance's report functions. */
#ifndef MW_HOOKBPF_H
#define MW_HOOKBPF_H

#include <stdbool.h>
#include <stdint.h>

#include "inject/hooks.h"

struct hook_bpf;
struct bpf_object;
struct heapbpf_config;

struct hookbpf {
	struct hook_bpf *skel;
	bool multi;		/* uprobe_multi links */
};

/* heap: the loaded heap object. 0 or -errno. */
int hookbpf_load(struct hookbpf *b, struct bpf_object *heap, const struct heapbpf_config *cfg, bool multi);
void hookbpf_reporter(struct hookbpf *b, struct hook_reporter *out);
/* The run's end for the report programs (heapbpf_end_run's twin). */
void hookbpf_end_run(struct hookbpf *b);
void hookbpf_destroy(struct hookbpf *b);
/* Reports the agent may have in the ring at once: half the ring in events
 * of the largest size, shared by processes. */
uint64_t hookbpf_inflight(const struct heapbpf_config *cfg, unsigned processes);

#endif
