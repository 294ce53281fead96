#include "host/profiles.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/table.h"
#include "probes/allocators.h"
#include "profile/profile.h"
#include "session/session.h"
#include "util/report.h"
#include "version.h"

const char *profile_kind_name(enum profile_kind kind)
{
	return kind == PROFILE_PAGES ? "pages" : kind == PROFILE_ALLOCS ? "allocs" : "heap";
}

/* ---- bases -------------------------------------------------------------- */

int profile_bases_take(struct host_table *table, struct hproc *only, struct profile_bases *out)
{
	struct hmap_slot *s;

	memset(out, 0, sizeof(*out));
	out->v = calloc(only ? 1 : table->nprofiled + 1, sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	out->start_real_ns = (int64_t)clock_ns(CLOCK_REALTIME);
	for (size_t i = 0; hmap_next(&table->by_pid, &i, &s);) {
		struct hproc *hp = s->val;
		if (!hp->tgt || (only && hp != only) || out->n > table->nprofiled)
			continue;
		struct profile_base *b = &out->v[out->n++];
		b->pid = hp->pid;
		b->start_time = hp->start_time;
		if (heapprof_snapshot(&hp->tgt->heap, &b->heap) || pageprof_snapshot(&hp->tgt->pages, &b->pages)) {
			profile_bases_free(out);
			return -ENOMEM;
		}
	}
	return 0;
}

void profile_bases_free(struct profile_bases *b)
{
	for (size_t i = 0; i < b->n; i++) {
		heap_snapshot_free(&b->v[i].heap);
		page_snapshot_free(&b->v[i].pages);
	}
	free(b->v);
	memset(b, 0, sizeof(*b));
}

static const struct profile_base *base_of(const struct profile_bases *b, const struct hproc *hp)
{
	for (size_t i = 0; b && i < b->n; i++)
		if (b->v[i].pid == hp->pid && b->v[i].start_time == hp->start_time)
			return &b->v[i];
	return NULL;
}

/* ---- parts -------------------------------------------------------------- */

static long rows_of(struct hproc *hp, enum profile_kind kind, const struct profile_base *base,
		    struct profile_row **rows)
{
	if (kind == PROFILE_PAGES)
		return pageprof_rows(&hp->tgt->pages, base ? &base->pages : NULL, rows);
	return heapprof_rows(&hp->tgt->heap, base ? &base->heap : NULL, rows);
}

static void part_labels(struct profile_part *part, const struct hproc *hp)
{
	part->labels[0][0] = "comm", part->labels[0][1] = hp->comm;
	part->labels[1][0] = "exe", part->labels[1][1] = hp->exe;
	part->labels[2][0] = "container_id", part->labels[2][1] = hp->container;
}

/* Parts for hp alone, or every profiled process. */
static long collect_parts(struct host_table *table, struct hproc *only, enum profile_kind kind,
			  const struct profile_bases *bases, struct profile_part **out)
{
	size_t cap = only ? 1 : table->nprofiled + 1, n = 0;
	struct profile_part *parts = calloc(cap, sizeof(*parts));
	struct hmap_slot *s;

	if (!parts)
		return -ENOMEM;
	for (size_t i = 0; hmap_next(&table->by_pid, &i, &s);) {
		struct hproc *hp = s->val;
		if (!hp->tgt || (only && hp != only) || n == cap)
			continue;
		struct profile_row *rows;
		long nrows = rows_of(hp, kind, base_of(bases, hp), &rows);
		if (nrows < 0)
			break;
		parts[n] = (struct profile_part){ .st = &hp->tgt->heap.st, .rows = rows, .nrows = nrows };
		part_labels(&parts[n], hp);
		n++;
	}
	*out = parts;
	return n;
}

static void free_parts(struct profile_part *parts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((void *)parts[i].rows);
	free(parts);
}

static void spec_of(const struct options *o, enum profile_kind kind, int64_t start_ns, const char *const *comments,
		    struct profile_spec *spec)
{
	struct heapprof rate = { .rate = o->sample_bytes, .drop_frames = allocators_drop_frames() };
	struct profile_meta meta = {
		.start_ns = start_ns, .end_ns = (int64_t)clock_ns(CLOCK_REALTIME), .comments = comments,
		.alloc_only = o->alloc_only,
	};

	heapprof_spec(&rate, &meta, spec);
	if (kind == PROFILE_ALLOCS)
		spec->default_type = "alloc_space";
	if (kind == PROFILE_PAGES) {
		struct pageprof pp = { .rate = o->page_sample_bytes };
		pageprof_spec(&pp, spec);
		spec->drop_frames = NULL;
	}
}

int host_profile_write(struct session *s, struct host_table *table, struct hproc *hp, enum profile_kind kind,
		       const struct profile_bases *bases, int fd)
{
	const struct options *o = s->opt;
	char who[96], *comments[3] = { 0 };
	struct profile_spec spec;
	struct profile_part *parts;
	long n = collect_parts(table, hp, kind, bases, &parts);

	if (n < 0)
		return (int)n;
	if (hp)
		snprintf(who, sizeof(who), "pid %d (%s)", (int)hp->pid, hp->comm);
	else
		snprintf(who, sizeof(who), "%ld profiled processes", n);
	if (asprintf(&comments[0], "memwatch %s --all: %s%s", MW_VERSION, who,
		     bases ? ", delta over the request's seconds" : "") < 0)
		comments[0] = NULL;
	int rc = kind == PROFILE_PAGES ? asprintf(&comments[1], "page stacks: one per %" PRIu64
							  " bytes faulted or purged (Poisson)", o->page_sample_bytes)
				       : asprintf(&comments[1], "sampling: Poisson by bytes, mean interval %" PRIu64
								" bytes; values are estimates", o->sample_bytes);
	if (rc < 0)
		comments[1] = NULL;
	int64_t start = bases ? bases->start_real_ns : hp ? hp->tgt->start_real_ns : s->start_real_ns;
	spec_of(o, kind, start, (const char *const *)comments, &spec);
	int err = profile_write_parts(&s->procs, &spec, parts, n, fd);
	free_parts(parts, n);
	free(comments[0]);
	free(comments[1]);
	return err;
}

int host_profile_bytes(struct session *s, struct host_table *table, struct hproc *hp, enum profile_kind kind,
		       const struct profile_bases *bases, char **buf, size_t *len)
{
	int fd = memfd_create("memwatch-profile", MFD_CLOEXEC), err;
	struct stat st;

	*buf = NULL;
	if (fd < 0)
		return -errno;
	err = host_profile_write(s, table, hp, kind, bases, fd);
	if (!err && fstat(fd, &st))
		err = -errno;
	if (!err) {
		*len = st.st_size;
		*buf = malloc(*len + 1);
		if (!*buf)
			err = -ENOMEM;
		else if (pread(fd, *buf, *len, 0) != (ssize_t)*len)
			err = -EIO;
		if (err) {
			free(*buf);
			*buf = NULL;
		}
	}
	close(fd);
	return err;
}
