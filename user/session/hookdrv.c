#include "session/hookdrv.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kernel/bpflog.h"
#include "kernel/heapbpf.h"
#include "memwatch.h"
#include "cli/options.h"
#include "util/report.h"

int hook_driver_start(struct hook_driver *d, const struct options *o, const struct heapbpf *heap,
		      const struct heapbpf_config *cfg, unsigned processes)
{
	struct hook_reporter rep;
	struct hook_config hc = {
		.mode = o->hook,
		.sample_bytes = o->sample_bytes,
		.alloc_only = o->alloc_only,
		.max_live = o->max_live,
		.inflight = hookbpf_inflight(cfg, processes),
		.log = o->verbose ? stderr : NULL,
	};
	int err;

	memset(d, 0, sizeof(*d));
	if (o->hook == HOOK_UPROBE || o->empty_probes)
		return 0;
	err = hookbpf_load(&d->bpf, heapbpf_object(heap), cfg, heap->mode != ATTACH_CLASSIC);
	if (err) {
		report_error("cannot load the in-process hooks' BPF programs: %s%s", strerror(-err), bpflog_detail());
		return -1;
	}
	hookbpf_reporter(&d->bpf, &rep);
	d->engine = hooks_new(&hc, &rep);
	if (!d->engine) {
		report_error("cannot start the in-process hooks: %s", strerror(errno));
		hookbpf_destroy(&d->bpf);
		return -1;
	}
	return 0;
}

static int inline_attach(void *ctx, struct process *p, struct objfile *o, const struct allocator *alloc)
{
	return hooks_attach(ctx, p, o, alloc);
}

static void inline_detach(void *ctx, pid_t pid)
{
	hooks_detach(ctx, pid);
}

struct attach_inline hook_driver_inline(struct hook_driver *d)
{
	if (!d->engine)
		return (struct attach_inline){ 0 };
	return (struct attach_inline){ .attach = inline_attach, .detach = inline_detach, .ctx = d->engine };
}

void hook_driver_event(struct hook_driver *d, const struct mw_sample_event *e)
{
	/* Out of the ring: the agent's backoff may let another report in. */
	if (d->engine && (e->s.fn & MW_FN_INLINE))
		hooks_consumed(d->engine, e->h.tgid);
}

void hook_driver_end_run(struct hook_driver *d)
{
	hookbpf_end_run(&d->bpf);
}

void hook_driver_stop(struct hook_driver *d)
{
	hooks_free(d->engine);
	d->engine = NULL;
	hookbpf_destroy(&d->bpf);
}
