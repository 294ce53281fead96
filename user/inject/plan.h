/* Which entries of an allocator found in one file can be detoured, how,
 * and with what flags: aliases share one detour, forwarders are left to the
 * entry they jump to, entries that call others are wrapped, a throwing
 * operator new calls through its nothrow twin. */
#ifndef MW_PLAN_H
#define MW_PLAN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "probes/allocators.h"
#include "inject/detour.h"

struct process;
struct objfile;

struct hook_site {
	char name[64];
	char aliases[128];	/* every name at this address, for -v */
	enum mw_fn fn;
	enum mw_layout layout;
	uint64_t vaddr;		/* in the file */
	uint64_t entry;		/* in the target */
	struct detour d;
	uint32_t flags;		/* MWA_F_* */
	int twin;		/* MWA_F_THROWS: the site of the nothrow variant */
	uint32_t twin_arg;	/* ... whose nothrow_t argument is this one */
	/* Placed in an instance: */
	uint64_t code;		/* prelude, original, descriptor */
	uint32_t code_len;
	uint64_t tramp, desc;
	uint8_t patch[DETOUR_MAX_BYTES];	/* what replaces the window */
};

struct hook_plan {
	uint64_t lo, hi;	/* the file's mappings in the target */
	struct hook_site sites[ALLOC_MAX_ENTRIES];
	size_t n;
	char why[256];		/* the first entry that cannot be detoured, and why */
};

/* Plans every entry of alloc (in o, mapped in p). 0 when every entry can
 * be detoured; -EPERM with why when one cannot (each is logged); -errno. */
int plan_allocator(struct process *p, struct objfile *o, const struct allocator *alloc, bool alloc_only, FILE *log,
		   struct hook_plan *out);

#endif
