/* The in-process fast path as a driver (main.c for -p and -- CMD, host.c
 * for --all) uses it: the report programs loaded next to the heap object,
 * the engine started, and the events it must hear about. */
#ifndef MW_HOOKDRV_H
#define MW_HOOKDRV_H

#include "hookbpf.h"
#include "hooks.h"

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
/* A sample event was read from the ring. */
void hook_driver_event(struct hook_driver *d, const struct mw_sample_event *e);
void hook_driver_stop(struct hook_driver *d);

#endif
