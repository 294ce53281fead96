#include "diagnose/knob.h"

#include <string.h>
#include <strings.h>

#include "util/text.h"

#define MIB (1024.0 * 1024.0)

enum alloc_family alloc_family_of(const char *name)
{
	if (!name)
		return FAMILY_UNKNOWN;
	if (!strncasecmp(name, "tcmalloc-google", 15) || strcasestr(name, "google"))
		return FAMILY_TCMALLOC_GOOGLE;
	if (!strncasecmp(name, "tcmalloc", 8))
		return FAMILY_TCMALLOC;
	if (strcasestr(name, "jemalloc"))
		return FAMILY_JEMALLOC;
	if (!strncasecmp(name, "glibc", 5))
		return FAMILY_GLIBC;
	return FAMILY_UNKNOWN;
}

/* A power of two at least twice the typical purge, for oversize_threshold. */
static double oversize_suggestion(double purge)
{
	double s = 16.0 * MIB;

	while (s < 2 * purge && s < 1024.0 * 1024.0 * MIB)
		s *= 2;
	return s;
}

void knob_thrash(char *buf, size_t size, enum alloc_family family, double purge)
{
	switch (family) {
	case FAMILY_JEMALLOC:
		if (purge >= KNOB_JEMALLOC_OVERSIZE_BYTES) {
			put_text(buf, size, "MALLOC_CONF=oversize_threshold:%.0f,dirty_decay_ms:10000,"
				 "muzzy_decay_ms:10000 (blocks this big bypass decay in the oversize arena), "
				 "or background_thread:true", oversize_suggestion(purge));
			return;
		}
		put_text(buf, size, "MALLOC_CONF=dirty_decay_ms:10000,muzzy_decay_ms:10000 (keep freed "
			 "pages 10 s before purging), or background_thread:true (purge off the hot path)");
		return;
	case FAMILY_GLIBC:
		put_text(buf, size, "raise the trim and mmap thresholds: GLIBC_TUNABLES=glibc.malloc."
			 "trim_threshold=134217728:glibc.malloc.mmap_threshold=33554432 (or MALLOC_TRIM_THRESHOLD_ "
			 "and MALLOC_MMAP_THRESHOLD_); fewer arenas: MALLOC_ARENA_MAX=2");
		return;
	case FAMILY_TCMALLOC:
		put_text(buf, size, "unset TCMALLOC_AGGRESSIVE_DECOMMIT and lower TCMALLOC_RELEASE_RATE "
			 "(default 1; 0 returns pages only on demand) so free spans are reused before release");
		return;
	case FAMILY_TCMALLOC_GOOGLE:
		put_text(buf, size, "lower the background release rate "
			 "(MallocExtension::SetBackgroundReleaseRate) and keep ReleaseMemoryToSystem off hot paths");
		return;
	case FAMILY_UNKNOWN:
		break;
	}
	put_text(buf, size, "make the allocator keep freed pages longer before returning them "
		 "(its decay, trim or release-rate setting), or reuse buffers instead of freeing and "
		 "reallocating them");
}

const char *knob_fragmentation(enum alloc_family family)
{
	switch (family) {
	case FAMILY_GLIBC:
		return "MALLOC_ARENA_MAX=2 and malloc_trim(0) after big frees";
	case FAMILY_JEMALLOC:
		return "fewer arenas and sooner purging: MALLOC_CONF=narenas:2,dirty_decay_ms:1000";
	case FAMILY_TCMALLOC:
		return "raise TCMALLOC_RELEASE_RATE (e.g. 10) so free spans go back sooner";
	case FAMILY_TCMALLOC_GOOGLE:
		return "raise the background release rate (MallocExtension::SetBackgroundReleaseRate)";
	case FAMILY_UNKNOWN:
		break;
	}
	return "cap the allocator's arenas and purge free pages sooner";
}

const char *knob_retained(enum alloc_family family)
{
	switch (family) {
	case FAMILY_GLIBC:
		return "call malloc_trim(0) after big frees, or lower the trim threshold: "
		       "MALLOC_TRIM_THRESHOLD_=131072 (M_TRIM_THRESHOLD)";
	case FAMILY_JEMALLOC:
		return "purge sooner: MALLOC_CONF=dirty_decay_ms:1000, or background_thread:true "
		       "(without it an idle process never purges)";
	case FAMILY_TCMALLOC:
		return "raise TCMALLOC_RELEASE_RATE (e.g. 10) or call "
		       "MallocExtension::instance()->ReleaseFreeMemory()";
	case FAMILY_TCMALLOC_GOOGLE:
		return "raise the background release rate (MallocExtension::SetBackgroundReleaseRate) "
		       "or call MallocExtension::ReleaseMemoryToSystem()";
	case FAMILY_UNKNOWN:
		break;
	}
	return "make the allocator return free pages sooner (its decay, trim or release-rate setting)";
}
