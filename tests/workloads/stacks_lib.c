/* libstk.so: allocations from a shared library of the test's own. */
#include "common.h"
#include "stacks.h"

static void *kept[STACK_ALLOCS];

NOINLINE void lib_alloc_inner(void)
{
	for (int i = 0; i < STACK_ALLOCS; i++) {
		kept[i] = malloc(1004);
		KEEP(kept[i]);
	}
}

NOINLINE void lib_alloc_outer(void)
{
	lib_alloc_inner();
	KEEP(kept);
}
