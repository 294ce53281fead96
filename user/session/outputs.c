#include "session/outputs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diagnose/timeline.h"
#include "probes/allocators.h"
#include "session/target.h"
#include "util/report.h"

static int open_one(struct outfile *of, const char *path)
{
	int err = outfile_open(of, path);

	if (err)
		report_error("cannot write %s: %s", path, strerror(-err));
	return err;
}

/* "x.pb.gz" -> "x.pages.pb.gz" */
static char *pages_path_for(const char *heap_path)
{
	const char *ext = ".pb.gz";
	size_t n = strlen(heap_path), k = strlen(ext);
	char *out = NULL;

	if (n > k && !strcmp(heap_path + n - k, ext)) {
		if (asprintf(&out, "%.*s.pages%s", (int)(n - k), heap_path, ext) < 0)
			out = NULL;
	} else if (asprintf(&out, "%s.pages", heap_path) < 0) {
		out = NULL;
	}
	return out;
}

int outputs_open(struct outputs *o, const struct options *opt, pid_t pid)
{
	char dflt[64];
	const char *main_path = opt->output;
	int err = 0;

	memset(o, 0, sizeof(*o));
	if (!main_path) {
		snprintf(dflt, sizeof(dflt), "memwatch-%d.pb.gz", (int)pid);
		main_path = dflt;
	}
	if (opt->empty_probes)
		return 0;
	if (opt->pages_only) {
		err = open_one(&o->pages, opt->pages_output ? opt->pages_output : main_path);
	} else {
		char *pages = opt->pages_output ? strdup(opt->pages_output) : pages_path_for(main_path);
		err = open_one(&o->heap, main_path);
		if (!err)
			err = pages ? open_one(&o->pages, pages) : -ENOMEM;
		free(pages);
	}
	if (!err && opt->timeline)
		err = open_one(&o->timeline, opt->timeline);
	if (!err && opt->plot)
		err = open_one(&o->plot, opt->plot);
	return err ? -1 : 0;
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

	if (o->heap.tmp)
		err |= commit(&o->heap, heapprof_write(&t->heap, ps, &meta, o->heap.fd));
	if (o->pages.tmp)
		err |= commit(&o->pages, pageprof_write(&t->pages, &t->heap.st, ps, &page_spec, o->pages.fd));
	if (o->timeline.tmp)
		err |= write_timeline(t, &o->timeline, opt->timeline);
	if (o->plot.tmp)
		err |= write_timeline(t, &o->plot, opt->plot);
	return err ? -EIO : 0;
}
