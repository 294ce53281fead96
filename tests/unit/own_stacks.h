/* For unit tests of what is built on interned stacks (heap and page
 * profiles, the profile writer): stacks of the test process itself, whose
 * functions the symbolizer names from the test binary's own DWARF. */
#ifndef TEST_OWN_STACKS_H
#define TEST_OWN_STACKS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proc/process.h"
#include "stacks/stacks.h"

/* Functions that only have to exist, at addresses of their own. */
__attribute__((noinline, used)) static int own_site_a(int x)
{
	__asm__ volatile("" ::: "memory");
	return x * 3 + 1;
}

__attribute__((noinline, used)) static int own_site_b(int x)
{
	__asm__ volatile("" ::: "memory");
	return x * 5 + 2;
}

__attribute__((noinline, used)) static int own_caller(int x)
{
	__asm__ volatile("" ::: "memory");
	return own_site_a(x) + own_site_b(x);
}

/* A return address inside fn: the call it stands for is at addr - 1,
 * which must still be inside fn. */
static inline uint64_t ret_in(const void *fn)
{
	return (uint64_t)(uintptr_t)fn + 4;
}

struct own {
	struct procs ps;
	struct process *p;
};

static inline int own_open(struct own *o)
{
	procs_init(&o->ps);
	o->p = procs_get(&o->ps, getpid());
	return o->p ? 0 : -1;
}

static inline void own_close(struct own *o)
{
	procs_free(&o->ps);
}

/* leaf (the probed pc: malloc's entry, say), then callers' return
 * addresses inside the functions given, outermost last. */
static inline uint32_t own_stack(struct own *o, struct stacks *st, uint64_t leaf, const void *const *callers,
				 size_t n)
{
	uint64_t frames[16];

	frames[0] = leaf;
	for (size_t i = 0; i < n && i + 1 < 16; i++)
		frames[i + 1] = ret_in(callers[i]);
	return stacks_intern(st, &o->ps, o->p, frames, n + 1, NULL);
}

#endif
