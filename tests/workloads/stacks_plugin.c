/* libstkplugin.so: loaded with dlopen after the profiler attached. */
#include "common.h"
#include "stacks.h"

static void *kept[STACK_ALLOCS];

NOINLINE void plugin_alloc_inner(void)
{
	for (int i = 0; i < STACK_ALLOCS; i++) {
		kept[i] = malloc(1005);
		KEEP(kept[i]);
	}
}

NOINLINE void plugin_alloc(void)
{
	plugin_alloc_inner();
	KEEP(kept);
}
