#include "session/outputs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diagnose/timeline.h"
#include "probes/allocators.h"
#include "session/target.h"
#include "util/report.h"

int outputs_open(struct outputs *o, const struct options *opt, pid_t pid)
{
	char dflt[64];
	const char *main_path = opt->output;

	memset(o, 0, sizeof(*o));
	if (!main_path) {
		snprintf(dflt, sizeof(dflt), "memwatch-%d.pb.gz", (int)pid);
		main_path = dflt;
	}
	if (opt->empty_probes)
		return 0;
	struct outfile_set set = { &o->heap, &o->pages, &o->timeline, &o->plot };
	struct outfile_paths paths = {
		.heap = opt->pages_only ? NULL : main_path,
		.pages = opt->pages_only && !opt->pages_output ? main_path : opt->pages_output,
		.timeline = opt->timeline,
		.plot = opt->plot,
		.stdout_taken = opt->cmd != NULL,
	};
	return outfile_open_set(&set, &paths) ? -1 : 0;
}

void outputs_discard(struct outputs *o)
{
	outfile_discard(&o->heap);
	outfile_discard(&o->pages);
	outfile_discard(&o->timeline);
	outfile_discard(&o->plot);
}

static int commit(struct outfile *of, int err)
{
	if (!err)
		err = outfile_commit(of);
	if (err)
		report_error("cannot write %s: %s", of->path, strerror(-err));
	else
		fprintf(stderr, "memwatch: wrote %s\n", of->path);
	return err;
}

/* The timeline through its outfile, by the path's extension. */
static int write_timeline(const struct target *t, struct outfile *of, const char *path)
{
	FILE *f = outfile_stream(of);
	int err = f ? timeline_writer_for(path)(&t->diag.mon.tl, f) : -errno;

	if (f && fclose(f) && !err)
		err = -errno;
	return commit(of, err);
}

int outputs_write(struct outputs *o, const struct options *opt, struct procs *ps, struct target *t,
		  int64_t start_real_ns, const char *const *comments)
{
	struct profile_meta meta = {
		.start_ns = start_real_ns,
		.end_ns = (int64_t)clock_ns(CLOCK_REALTIME),
		.comments = comments,
		.alloc_only = opt->alloc_only,
	};
	struct profile_spec page_spec = {
		.drop_frames = allocators_drop_frames(),
		.start_ns = meta.start_ns,
		.end_ns = meta.end_ns,
		.comments = comments,
	};
	int err = 0;

	if (o->heap.open)
		err |= commit(&o->heap, heapprof_write(&t->heap, ps, &meta, o->heap.fd));
	if (o->pages.open)
		err |= commit(&o->pages, pageprof_write(&t->pages, &t->heap.st, ps, &page_spec, o->pages.fd));
	if (o->timeline.open)
		err |= write_timeline(t, &o->timeline, opt->timeline);
	if (o->plot.open)
		err |= write_timeline(t, &o->plot, opt->plot);
	return err ? -EIO : 0;
}
