// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Empty programs for the benchmark floor: what the probes cost by themselves
 * at memwatch's probe sites. The session_* ones, as uprobe sessions, skip the
 * return probe (return 1): the floor of memwatch's session mode. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("uprobe")
int enter_size0(struct pt_regs *ctx)
{
	return 0;
}

SEC("uprobe")
int enter_size1(struct pt_regs *ctx)
{
	return 0;
}

SEC("uprobe")
int enter_calloc(struct pt_regs *ctx)
{
	return 0;
}

SEC("uprobe")
int enter_realloc(struct pt_regs *ctx)
{
	return 0;
}

SEC("uprobe")
int enter_reallocarray(struct pt_regs *ctx)
{
	return 0;
}

SEC("uprobe")
int enter_memalign_out(struct pt_regs *ctx)
{
	return 0;
}

SEC("uprobe")
int enter_xallocx(struct pt_regs *ctx)
{
	return 0;
}

SEC("uretprobe")
int alloc_exit(struct pt_regs *ctx)
{
	return 0;
}

SEC("uprobe")
int free_enter(struct pt_regs *ctx)
{
	return 0;
}

SEC("uprobe")
int session_size0(struct pt_regs *ctx)
{
	return 1;
}

SEC("uprobe")
int session_size1(struct pt_regs *ctx)
{
	return 1;
}

SEC("uprobe")
int session_calloc(struct pt_regs *ctx)
{
	return 1;
}

SEC("uprobe")
int session_realloc(struct pt_regs *ctx)
{
	return 1;
}

SEC("uprobe")
int session_reallocarray(struct pt_regs *ctx)
{
	return 1;
}

SEC("uprobe")
int session_memalign_out(struct pt_regs *ctx)
{
	return 1;
}

SEC("uprobe")
int session_xallocx(struct pt_regs *ctx)
{
	return 1;
}
