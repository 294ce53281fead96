#include "diagnose/timeline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/array.h"

void timeline_init(struct timeline *tl)
{
	*tl = (struct timeline){ .pid = 0 };
}

/* The strings are borrowed, not owned: only the points are freed. */
void timeline_free(struct timeline *tl)
{
	free(tl->v);
	timeline_init(tl);
}

int timeline_add(struct timeline *tl, const struct tl_point *p)
{
	if (tl->max && tl->n >= tl->max) {
		size_t drop = tl->n - tl->max / 2;
		memmove(tl->v, tl->v + drop, (tl->n - drop) * sizeof(*tl->v));
		tl->n -= drop;
	}
	if (ARRAY_GROW(tl->v, tl->n, tl->cap))
		return -ENOMEM;
	tl->v[tl->n++] = *p;
	return 0;
}

static const char *const syscall_names[TL_NSYSCALLS] = {
	[TL_MADVISE] = "madvise",
	[TL_MMAP] = "mmap",
	[TL_MUNMAP] = "munmap",
	[TL_BRK] = "brk",
	[TL_MREMAP] = "mremap",
};

const char *tl_syscall_name(enum tl_syscall sc)
{
	return (unsigned)sc < TL_NSYSCALLS ? syscall_names[sc] : "unknown";
}

unsigned tl_size_class(uint64_t size)
{
	unsigned cls = 0;

	for (uint64_t bound = 64; size >= bound && cls + 1 < TL_SIZE_CLASSES; bound <<= 2)
		cls++;
	return cls;
}

const char *tl_size_class_label(unsigned cls)
{
	static const char *const labels[TL_SIZE_CLASSES] = {
		"<64 B", "64-256 B", "256 B-1 KiB", "1-4 KiB", "4-16 KiB", "16-64 KiB", "64-256 KiB",
		"256 KiB-1 MiB", ">=1 MiB",
	};

	return cls < TL_SIZE_CLASSES ? labels[cls] : "?";
}
