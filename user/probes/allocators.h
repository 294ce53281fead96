/* The allocators memwatch knows: how to recognize one in an ELF file (shared
 * library or statically linked executable, with or without a symbol prefix),
 * its entry points, which of them only forward to others, and which call
 * others internally. */
#ifndef MW_ALLOCATORS_H
#define MW_ALLOCATORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memwatch.h"

struct elf_file;

#define ALLOC_MAX_ENTRIES 48

struct alloc_entry {
	char name[64];		/* symbol name in the file, prefix included */
	enum mw_fn fn;
	enum mw_layout layout;
	uint64_t vaddr, size;
	/* A small wrapper that only jumps to this other entry: counted there,
	 * not probed. */
	const char *forwards_to;
	/* A function that may tail-call this other entry (glibc realloc(NULL, n)
	 * jumps to malloc): probed with MW_COOKIE_TAILCALLS. */
	const char *tail_calls;
};

struct alloc_range {
	uint64_t vaddr, size;
};

/* An allocator found in one file. */
struct allocator {
	const char *name;	/* "glibc", "jemalloc", "tcmalloc", "tcmalloc-google" */
	char prefix[16];	/* "", "je_", "_rjem_" */
	struct alloc_entry entries[ALLOC_MAX_ENTRIES];
	size_t nentries;
	/* Functions whose calls to other entries are internal. */
	struct alloc_range nesting[MW_NEST_RANGES];
	size_t nnesting;
};

/* Which allocator the file holds, entries resolved. only: comma-separated
 * allocator names to consider (--allocator; then file names do not matter),
 * or NULL. path: the file's path, for file name patterns. */
bool allocator_find(struct elf_file *elf, const char *path, const char *only, struct allocator *out);
/* 0 if every name in a comma-separated list is an allocator memwatch knows. */
int allocator_names_valid(const char *names);
/* "glibc (libc.so.6), jemalloc (...)": what discovery looks for. */
const char *allocators_looked_for(void);
/* pprof drop_frames regex covering every allocator's entry points. */
const char *allocators_drop_frames(void);

#endif
