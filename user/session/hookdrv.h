/* The in-process fast path (inject/) as the driver core uses it, for -p,
 * -- CMD and --all alike: the report programs loaded next to the heap
 * object, the engine started, each target's attacher given the detours,
 * and the events the engine must hear about. */
#ifndef MW_HOOKDRV_H
#define MW_HOOKDRV_H

#include "inject/hookbpf.h"
#include "inject/hooks.h"
#include "probes/attach.h"

struct options;
struct heapbpf;
struct heapbpf_config;
struct mw_sample_event;

struct hook_driver {
	struct hookbpf bpf;
	struct hook_engine *engine;	/* NULL: uprobes only */
};

/* Nothing with --hook uprobe or --empty-probes. processes: how many may be
 * profiled at once (they share the ring). 0, or -1 (reported). */
int hook_driver_start(struct hook_driver *d, const struct options *o, const struct heapbpf *heap,
		      const struct heapbpf_config *cfg, unsigned processes);
/* What an attacher calls to detour an allocator file (nothing without an
 * engine: uprobes only). */
struct attach_inline hook_driver_inline(struct hook_driver *d);
/* A sample event was read from the ring. */
void hook_driver_event(struct hook_driver *d, const struct mw_sample_event *e);
/* The run's end: from now on the report programs record nothing. */
void hook_driver_end_run(struct hook_driver *d);
void hook_driver_stop(struct hook_driver *d);

#endif
