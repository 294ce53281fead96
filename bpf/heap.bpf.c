// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Allocator probes: Poisson sampling by bytes, stacks of sampled calls, and
 * the set of sampled blocks still live.
 *
 * Every allocator entry point runs the enter_* program of its argument layout
 * and, for calls that need their result, alloc_exit; every release entry runs
 * free_enter. The attach cookie names the function (enum mw_fn). An
 * unsampled allocation whose old pointer (if any) is not a sampled block does
 * no map update and emits nothing. heap_session.bpf.c has the same calls as
 * uprobe sessions, which skip the return of unsampled calls.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "memwatch.h"
#include "lib/heap_call.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Written by user space at run time. */
bool stop_on_loader;

SEC("uprobe")
int BPF_KPROBE(enter_size0, __u64 size)
{
	enter_call(ctx, size, 0, 0, RESULT_RET);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(enter_size1, __u64 align, __u64 size)
{
	enter_call(ctx, size, 0, 0, RESULT_RET);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(enter_calloc, __u64 count, __u64 size)
{
	__u64 total;

	if (array_size(count, size, &total))
		enter_call(ctx, total, 0, 0, RESULT_RET);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(enter_realloc, __u64 old, __u64 size)
{
	enter_call(ctx, size, old, 0, RESULT_RET);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(enter_reallocarray, __u64 old, __u64 count, __u64 size)
{
	__u64 total;

	if (array_size(count, size, &total))
		enter_call(ctx, total, old, 0, RESULT_RET);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(enter_memalign_out, __u64 out, __u64 align, __u64 size)
{
	enter_call(ctx, size, 0, out, RESULT_OUT);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(enter_xallocx, __u64 ptr, __u64 size)
{
	enter_call(ctx, size, ptr, ptr, RESULT_INPLACE);
	return 0;
}

SEC("uretprobe")
int alloc_exit(struct pt_regs *ctx)
{
	/* The return popped the return address the entry saw at [sp]. */
	exit_call(ctx, arch_sp(ctx) - sizeof(__u64));
	return 0;
}

SEC("uprobe")
int free_enter(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct mw_live_key key = { .tgid = pid_tgid >> 32 };

	if (cfg_target_tgid && key.tgid != cfg_target_tgid)
		return 0;
	if (cfg_count_hits)
		count(MW_CNT_FREE_HITS);
	key.addr = PT_REGS_PARM1(ctx);
	/* A lookup takes no lock; most freed blocks were never sampled. */
	if (!key.addr || !bpf_map_lookup_elem(&live, &key))
		return 0;
	if (!bpf_map_delete_elem(&live, &key))
		count(MW_CNT_FREES_TRACKED);
	return 0;
}

/* A target that execs gets new maps: user space reads them and redoes the
 * nesting ranges; probes on files the new image maps again still apply. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = task->tgid;
	struct mw_event_head *e;

	if (cfg_target_tgid ? tgid != cfg_target_tgid : !bpf_map_lookup_elem(&nests, &tgid))
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(MW_CNT_RINGBUF_FULL);
		return 0;
	}
	fill_head(e, MW_EV_EXEC, bpf_get_current_pid_tgid());
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* ld.so calls _dl_debug_state after every change to the link map. */
SEC("uprobe")
int loader_state(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct mw_event_head *e;

	count(MW_CNT_LOADER);
	if (stop_on_loader)
		bpf_send_signal(SIGSTOP);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(MW_CNT_RINGBUF_FULL);
		return 0;
	}
	fill_head(e, MW_EV_LOADER, pid_tgid);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
