/* --all's profiles: one process's or every profiled process's heap,
 * allocation or page profile in one pprof file, whole or as the change
 * since a snapshot; for the HTTP endpoints and --output-dir alike. */
#ifndef MW_HOST_PROFILES_H
#define MW_HOST_PROFILES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "profile/heapprof.h"
#include "profile/pageprof.h"

struct session;
struct host_table;
struct hproc;

enum profile_kind {
	PROFILE_HEAP,		/* in-use and allocations, default inuse_space */
	PROFILE_ALLOCS,		/* the same, default alloc_space */
	PROFILE_PAGES,		/* faults and purges */
};

/* Every selected process's values at one moment, for a delta profile. */
struct profile_base {
	pid_t pid;
	uint64_t start_time;
	struct heap_snapshot heap;
	struct page_snapshot pages;
};

struct profile_bases {
	struct profile_base *v;
	size_t n;
	int64_t start_real_ns;		/* CLOCK_REALTIME of the snapshot */
};

/* Snapshots of hp (NULL: every profiled process) now: 0 or -ENOMEM. */
int profile_bases_take(struct host_table *table, struct hproc *hp, struct profile_bases *out);
void profile_bases_free(struct profile_bases *b);

/* The profile of kind of hp (NULL: every profiled process, each sample
 * labelled with its pid, comm, exe and container), minus bases when given,
 * gzipped into fd. 0 or -errno. */
int host_profile_write(struct session *s, struct host_table *table, struct hproc *hp, enum profile_kind kind,
		       const struct profile_bases *bases, int fd);
/* The same into a malloc'ed buffer. */
int host_profile_bytes(struct session *s, struct host_table *table, struct hproc *hp, enum profile_kind kind,
		       const struct profile_bases *bases, char **buf, size_t *len);
const char *profile_kind_name(enum profile_kind kind);

#endif
