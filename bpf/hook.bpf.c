// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The in-process agent's reports (user/inject/agent): uprobes on its empty
 * report functions, whose first instruction is a 5-byte nop (the kernel
 * turns such a uprobe into a call). Each gets a struct mw_agent_report:
 * what the allocator entry saw (its address, the caller's stack pointer
 * and callee-saved registers). The programs rebuild those registers and
 * reuse the uprobe path's capture, live map, counters and events, so user
 * space cannot tell the two paths apart. Maps are the heap object's.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "memwatch.h"
#include "lib/heap_call.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct hook_scratch {
	struct pt_regs regs;		/* as the allocator entry saw them */
	struct mw_agent_report rep;
	struct mw_agent_free frees[MW_AGENT_FREE_BATCH];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hook_scratch);
} hook_scratch SEC(".maps");

/* Reports a process issued that never reached the ring: the agent's
 * backoff counts them as consumed. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} hook_drops SEC(".maps");

static __always_inline struct hook_scratch *read_report(struct pt_regs *ctx, __u64 pid_tgid)
{
	__u32 zero = 0;
	struct hook_scratch *sc;

	if (cfg_target_tgid && (pid_tgid >> 32) != cfg_target_tgid)
		return NULL;
	sc = bpf_map_lookup_elem(&hook_scratch, &zero);
	if (!sc || bpf_probe_read_user(&sc->rep, sizeof(sc->rep), (void *)PT_REGS_PARM1(ctx)))
		return NULL;
	return sc;
}

/* The releases the report carries: their live keys are unique (the
 * agent's tags), so however late they come, they hit only their blocks. */
static __always_inline void apply_frees(struct hook_scratch *sc, __u32 tgid)
{
	struct mw_live_key key = { .tgid = tgid };
	__u32 n = sc->rep.nfrees;

	if (!n)
		return;
	if (n > MW_AGENT_FREE_BATCH)
		n = MW_AGENT_FREE_BATCH;
	if (bpf_probe_read_user(sc->frees, n * sizeof(sc->frees[0]), (void *)sc->rep.frees))
		return;
	for (__u32 i = 0; i < MW_AGENT_FREE_BATCH; i++) {
		if (i >= n)
			break;
		key.tag = sc->frees[i].tag;
		key.addr = sc->frees[i].addr;
		if (!bpf_map_delete_elem(&live, &key))
			count(MW_CNT_FREES_TRACKED);
	}
}

/* The agent waits on memwatch: a record of no type (readers skip it)
 * that wakes the reader now rather than at the next backlog threshold. */
static __always_inline void wake_reader(__u64 pid_tgid)
{
	struct mw_event_head h = { .tgid = pid_tgid >> 32 };

	bpf_ringbuf_output(&events, &h, sizeof(h), BPF_RB_FORCE_WAKEUP);
}

static __always_inline void count_drop(__u32 tgid)
{
	__u64 one = 1, *n = bpf_map_lookup_elem(&hook_drops, &tgid);

	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&hook_drops, &tgid, &one, BPF_NOEXIST);
}

/* The frame-pointer walk from the entry: the entry, its caller ([sp]),
 * then the callers' frames from the caller's %rbp (the kernel's walk from
 * here would see the agent's frames instead). */
static __always_inline __u32 walk_frames(struct mw_sample_event *e, const struct mw_agent_report *rep, __u64 caller)
{
	__u64 *frames = (__u64 *)e->data;
	__u64 fp = rep->rbp;
	__u32 n = 2;

	frames[0] = rep->entry_ip;
	frames[1] = caller;
	for (int i = 0; i < MW_MAX_FRAMES - 2; i++) {
		__u64 frame[2];
		if (!fp || bpf_probe_read_user(frame, sizeof(frame), (void *)fp))
			break;
		if (n < MW_MAX_FRAMES)
			frames[n++] = frame[1];
		if (frame[0] <= fp)
			break;
		fp = frame[0];
	}
	e->cap.nframes = n;
	return n * sizeof(__u64);
}

static __always_inline int emit_fp(struct hook_scratch *sc, __u64 pid_tgid, __u32 fn, __u64 id, __u64 caller)
{
	void *slot = claim_scratch();
	struct mw_sample_event *e;
	__u32 len;
	int err = 0;

	if (!slot)
		return -1;
	e = slot + MW_SCRATCH_HEAD;
	fill_head(&e->h, MW_EV_SAMPLE, pid_tgid);
	e->s.sample_id = id;
	e->s.size = sc->rep.size;
	e->s.fn = fn;
	e->s.pad = 0;
	e->cap.mode = MW_STACK_FP;
	e->cap.stack_len = 0;
	e->cap.nuret = 0;
	len = walk_frames(e, &sc->rep, caller) + sizeof(*e);
	if (len > cfg_scratch_bytes - MW_SCRATCH_HEAD)
		len = cfg_scratch_bytes - MW_SCRATCH_HEAD;
	if (bpf_ringbuf_output(&events, e, len, wakeup_flag(len, false))) {
		count(MW_CNT_RINGBUF_FULL);
		err = -1;
	}
	release_scratch(slot);
	return err;
}

/* The DWARF path: the shared capture, from the registers the entry saw. */
static __always_inline int emit_snapshot(struct pt_regs *ctx, struct hook_scratch *sc, __u64 pid_tgid, __u32 fn,
					 __u64 id, __u64 caller)
{
	struct capture_req req = {
		.ctx = ctx, .regs = &sc->regs, .pid_tgid = pid_tgid, .caller = caller, .at_entry = true,
		.type = MW_EV_SAMPLE,
		.body.sample = { .sample_id = id, .size = sc->rep.size, .fn = fn },
	};

	return emit_stack(&req);
}

SEC("uprobe")
int report_alloc(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct hook_scratch *sc = read_report(ctx, pid_tgid);
	struct mw_live_key key = { .tgid = pid_tgid >> 32 };
	__u32 zero = 0, fn;
	struct cpu_state *st;
	__u64 caller = 0, id;
	int err;

	if (!sc || run_ended)
		return 0;
	apply_frees(sc, key.tgid);
	st = bpf_map_lookup_elem(&cpu_state, &zero);
	if (!st) {
		count_drop(key.tgid);
		return 0;
	}
	sc->regs = *ctx;
	sc->regs.ip = sc->rep.entry_ip;
	sc->regs.sp = sc->rep.entry_sp;
	sc->regs.bx = sc->rep.rbx;
	sc->regs.bp = sc->rep.rbp;
	sc->regs.r12 = sc->rep.r12;
	sc->regs.r13 = sc->rep.r13;
	sc->regs.r14 = sc->rep.r14;
	sc->regs.r15 = sc->rep.r15;
	if (bpf_probe_read_user(&caller, sizeof(caller), (void *)sc->rep.entry_sp))
		caller = 0;
	caller = uret_original(sc->rep.entry_sp, caller);
	id = next_sample_id(st);
	fn = sc->rep.fn | MW_FN_INLINE;
	if (cfg_stack_mode == MW_STACK_FP)
		err = emit_fp(sc, pid_tgid, fn, id, caller);
	else
		err = emit_snapshot(ctx, sc, pid_tgid, fn, id, caller);
	if (err) {
		count_drop(key.tgid);
		return 0;
	}
	count(MW_CNT_SAMPLES);
	if (sc->rep.flags & MW_REPORT_WAKE)
		wake_reader(pid_tgid);
	if (cfg_alloc_only || !(sc->rep.flags & MW_REPORT_TRACK))
		return 0;
	key.tag = sc->rep.tag;
	key.addr = sc->rep.addr;
	if (bpf_map_update_elem(&live, &key, &id, BPF_ANY))
		count(MW_CNT_LIVE_FULL);
	return 0;
}

SEC("uprobe")
int report_frees(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct hook_scratch *sc = read_report(ctx, pid_tgid);

	if (sc && !run_ended)
		apply_frees(sc, pid_tgid >> 32);
	return 0;
}
