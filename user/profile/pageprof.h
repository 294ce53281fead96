/* The page profile: the stacks that fault memory in and the stacks that
 * purge it (sampled by bytes on the kernel side), as pprof. */
#ifndef MW_PAGEPROF_H
#define MW_PAGEPROF_H

#include <stdint.h>
#include <sys/types.h>

#include "memwatch.h"
#include "profile/profile.h"
#include "util/hashmap.h"

struct page_site {
	uint32_t stack;
	pid_t pid;
	enum mw_page_kind kind;
	uint64_t samples;
	double count, bytes;		/* unsampled estimates */
};

struct pageprof {
	uint64_t rate;			/* mean sampling interval in bytes */
	struct page_site *sites;
	uint32_t nsites;
	size_t cap_sites;
	struct hmap site_index;
	uint64_t samples;
};

void pageprof_init(struct pageprof *pg, uint64_t rate);
void pageprof_free(struct pageprof *pg);
/* A sampled fault or purge whose stack is interned already. */
int pageprof_add(struct pageprof *pg, uint32_t stack, pid_t pid, enum mw_page_kind kind, uint64_t bytes);
/* faults/count, fault_space/bytes, purges/count, purge_space/bytes, with
 * an "event" label (fault, madvise, munmap, brk). */
int pageprof_write(struct pageprof *pg, struct stacks *st, struct procs *ps, const struct profile_spec *base, int fd);
/* Every site's count and bytes at one moment, for delta profiles. */
struct page_snapshot {
	uint32_t nsites;
	double (*v)[2];
};
int pageprof_snapshot(const struct pageprof *pg, struct page_snapshot *out);
void page_snapshot_free(struct page_snapshot *snap);
/* The rows (malloc'ed into *out), minus base's values when base is given;
 * rows that come to zero are left out. The count, or -ENOMEM. */
long pageprof_rows(const struct pageprof *pg, const struct page_snapshot *base, struct profile_row **out);
/* Fills spec's sample types and period. */
void pageprof_spec(const struct pageprof *pg, struct profile_spec *spec);
const char *page_event_name(enum mw_page_kind kind);

#endif
