/* Running slow independent calls side by side: detaching BPF links waits
 * out an RCU grace period per link, and those waits overlap. */
#ifndef MW_PARALLEL_H
#define MW_PARALLEL_H

#include <stddef.h>

#define PARALLEL_MAX 64

/* Calls fn(ctx, i) for i in [0, n), each in a thread of its own (up to
 * PARALLEL_MAX at once; a call whose thread cannot start runs in this one),
 * and returns when every call has returned. */
void parallel_for(size_t n, void (*fn)(void *ctx, size_t i), void *ctx);

#endif
