// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The allocation entries as uprobe sessions (kernel 6.13+): one program runs
 * at entry and, only if it returned 0, again at return. Unsampled calls
 * return 1 and never get a return probe, so the return address on their
 * stack is never replaced by the kernel's trampoline (in-process unwinders,
 * such as jemalloc's own profiler, see a normal stack) and they pay one trap
 * instead of two. Own object: the kfuncs below would keep it from loading
 * on older kernels, which then use heap.bpf.c's programs alone.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "memwatch.h"
#include "lib/heap_call.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

extern bool bpf_session_is_return(void) __ksym;

/* Entry: 0 runs the return half (the call needs it), 1 skips it. */
#define SESSION_CALL(ctx, size, old, out, kind)                                \
	({                                                                     \
		int __skip = 0;                                                \
		if (bpf_session_is_return())                                   \
			exit_call(ctx, arch_sp(ctx) - sizeof(__u64));             \
		else                                                           \
			__skip = !enter_call(ctx, size, old, out, kind);       \
		__skip;                                                        \
	})

SEC("uprobe")
int BPF_KPROBE(session_size0, __u64 size)
{
	return SESSION_CALL(ctx, size, 0, 0, RESULT_RET);
}

SEC("uprobe")
int BPF_KPROBE(session_size1, __u64 align, __u64 size)
{
	return SESSION_CALL(ctx, size, 0, 0, RESULT_RET);
}

SEC("uprobe")
int BPF_KPROBE(session_calloc, __u64 count, __u64 size)
{
	__u64 total = 0;
	bool fits = array_size(count, size, &total);

	/* An overflowing calloc allocates nothing: no return half either. */
	if (!fits && !bpf_session_is_return())
		return 1;
	return SESSION_CALL(ctx, total, 0, 0, RESULT_RET);
}

SEC("uprobe")
int BPF_KPROBE(session_realloc, __u64 old, __u64 size)
{
	return SESSION_CALL(ctx, size, old, 0, RESULT_RET);
}

SEC("uprobe")
int BPF_KPROBE(session_reallocarray, __u64 old, __u64 count, __u64 size)
{
	__u64 total = 0;
	bool fits = array_size(count, size, &total);

	if (!fits && !bpf_session_is_return())
		return 1;
	return SESSION_CALL(ctx, total, old, 0, RESULT_RET);
}

SEC("uprobe")
int BPF_KPROBE(session_memalign_out, __u64 out, __u64 align, __u64 size)
{
	return SESSION_CALL(ctx, size, 0, out, RESULT_OUT);
}

SEC("uprobe")
int BPF_KPROBE(session_xallocx, __u64 ptr, __u64 size)
{
	return SESSION_CALL(ctx, size, ptr, ptr, RESULT_INPLACE);
}
