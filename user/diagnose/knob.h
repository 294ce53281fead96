/* What to change about each allocator, for each verdict: the knobs of the
 * allocator operations playbook. */
#ifndef MW_KNOB_H
#define MW_KNOB_H

#include <stddef.h>

enum alloc_family {
	FAMILY_UNKNOWN,
	FAMILY_GLIBC,
	FAMILY_JEMALLOC,
	FAMILY_TCMALLOC,	/* gperftools */
	FAMILY_TCMALLOC_GOOGLE,
};

/* jemalloc serves blocks from oversize_threshold (default 8 MiB) up from a
 * dedicated arena that purges at once whatever dirty_decay_ms says. */
#define KNOB_JEMALLOC_OVERSIZE_BYTES (8.0 * 1024 * 1024)

/* "glibc", "jemalloc", "tcmalloc", "tcmalloc-google" (as discovery names
 * them; case does not matter), or NULL. */
enum alloc_family alloc_family_of(const char *name);
/* madvise thrash, when the mean purge is mean_purge_bytes. */
void knob_thrash(char *buf, size_t size, enum alloc_family family, double mean_purge_bytes);
/* Fragmentation and retained pages. */
const char *knob_fragmentation(enum alloc_family family);
const char *knob_retained(enum alloc_family family);

#endif
