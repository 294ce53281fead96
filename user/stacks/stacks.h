/* Interned locations (an address in a process, resolved to its file) and
 * stacks (location lists, leaf first). */
#ifndef MW_STACKS_H
#define MW_STACKS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/hashmap.h"

struct objfile;
struct process;
struct procs;

#define NO_PMAP UINT32_MAX

/* A mapping as pprof describes it, copied out of a maps snapshot. */
struct pmap {
	pid_t pid;
	uint64_t start, end, offset;
	struct objfile *obj;
	char *path;
	bool is_exe;		/* the process's main executable */
};

struct loc {
	pid_t pid;
	unsigned epoch;		/* the process's exec count */
	bool is_return;		/* a return address: the call is just before it */
	uint64_t addr;
	uint32_t pmap;		/* NO_PMAP: no mapping held the address */
	struct objfile *obj;	/* NULL: nothing to symbolize with */
	uint64_t vaddr;		/* ELF address in obj */
	const char *special;	/* a synthetic frame's name, e.g. "[truncated: ...]" */
};

struct stack {
	uint32_t n;
	uint32_t locs[];
};

struct stacks {
	struct loc **locs;
	uint32_t nlocs;
	size_t cap_locs;
	struct hmap loc_index;
	struct pmap **pmaps;
	uint32_t npmaps;
	size_t cap_pmaps;
	struct hmap pmap_index;
	struct stack **stacks;
	uint32_t nstacks;
	size_t cap_stacks;
	struct hmap stack_index;
};

void stacks_init(struct stacks *st);
void stacks_free(struct stacks *st);
/* Interns the frames of one sample (leaf first; frames after the first are
 * return addresses). special, if not NULL, is appended as a synthetic
 * outermost frame. Returns the stack id or UINT32_MAX when out of memory. */
uint32_t stacks_intern(struct stacks *st, struct procs *ps, struct process *p, const uint64_t *frames,
		       uint32_t n, const char *special);
static inline const struct stack *stacks_get(const struct stacks *st, uint32_t id)
{
	return st->stacks[id];
}

#endif
