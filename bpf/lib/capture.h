/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * What every memwatch BPF object that records stacks shares: configuration,
 * Poisson sampling by bytes, the event ring, and the capture of user stacks
 * (a frame-pointer walk, or registers and a copy of the stack for DWARF
 * unwinding) from the user registers of the current task.
 *
 * The capture is one subprogram (emit_stack), not inlined: it runs only for
 * sampled events, and each program that records stacks calls it instead of
 * carrying its own copy of the code.
 */
#ifndef MW_BPF_CAPTURE_H
#define MW_BPF_CAPTURE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "memwatch.h"
#include "arch.h"

const volatile __u32 cfg_target_tgid = 0;	/* 0: the kernel's per-pid attach filters */
const volatile __u64 cfg_sample_bytes = 524288;	/* <= 1: every call */
const volatile __u32 cfg_stack_mode = MW_STACK_FP;
const volatile __u32 cfg_stack_bytes = 16384;	/* multiple of MW_STACK_CHUNK */
const volatile __u32 cfg_scratch_bytes = 65536;	/* value size of the scratch map */
const volatile __u64 cfg_wakeup_bytes = 1 << 20;	/* wake user space past this backlog */
/* R * -ln(i / MW_EXP_SIZE): the edges of the exponential's inverse CDF. */
const volatile __u64 cfg_exp_edges[MW_EXP_SIZE + 1];

struct cpu_state {
	__s64 countdown;	/* bytes until the next sample point */
	__u64 next_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_state);
} cpu_state SEC(".maps");

/* Events are built here, then copied into the ring at their real length.
 * MW_SCRATCH_SLOTS slots per CPU; sizes are set by user space at load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 8);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MW_CNT_NR);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&counters, &which);

	if (n)
		(*n)++;
}

/* An Exp(R) draw: a random cell of the inverse CDF, interpolated inside. */
static __always_inline __u64 exp_draw(void)
{
	__u32 r = bpf_get_prandom_u32();
	__u32 cell = r >> (32 - MW_EXP_BITS);
	__u64 frac = r & ((1u << MW_EXP_FRAC_BITS) - 1);
	__u64 extra = 0;

	if (cell == 0) {
		/* u < 1/N: -ln(u) = ln(N) - ln(u') with u' uniform again. */
		extra = cfg_exp_edges[1];
		r = bpf_get_prandom_u32();
		cell = (r >> (32 - MW_EXP_BITS)) | 1;
		frac = r & ((1u << MW_EXP_FRAC_BITS) - 1);
	}
	__u64 hi = cfg_exp_edges[cell & (MW_EXP_SIZE - 1)];
	__u64 lo = cfg_exp_edges[(cell & (MW_EXP_SIZE - 1)) + 1];

	return extra + hi - (((hi - lo) * frac) >> MW_EXP_FRAC_BITS);
}

static __always_inline bool sample_decide(struct cpu_state *st, __u64 size)
{
	if (cfg_sample_bytes <= 1)
		return true;
	if (st->countdown > (__s64)size) {
		st->countdown -= size;
		return false;
	}
	st->countdown = exp_draw();
	return true;
}

static __always_inline void fill_head(struct mw_event_head *h, __u32 type, __u64 pid_tgid)
{
	h->type = type;
	h->tgid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->pad = 0;
	h->ts = bpf_ktime_get_ns();
}

/* A free scratch slot of this CPU, or NULL. A preempted program may still
 * hold one, so slots are claimed with an atomic exchange. */
static __always_inline void *claim_scratch(void)
{
	__u32 base = bpf_get_smp_processor_id() * MW_SCRATCH_SLOTS;

#pragma unroll
	for (__u32 i = 0; i < MW_SCRATCH_SLOTS; i++) {
		__u32 key = base + i;
		__u32 *slot = bpf_map_lookup_elem(&scratch, &key);

		if (slot && !__sync_lock_test_and_set(slot, 1))
			return slot;
	}
	count(MW_CNT_BUSY);
	return NULL;
}

static __always_inline void release_scratch(void *slot)
{
	/* clang 14 has no BPF atomic store; a plain store after the output
	 * helper call cannot be reordered before it. */
	*(volatile __u32 *)slot = 0;
}

/* What to capture, and the event it goes in. */
struct capture_req {
	void *ctx;			/* the program's context, for bpf_get_stack */
	struct pt_regs *regs;		/* the user registers */
	__u64 pid_tgid;
	/* At a function's entry the return address is still at [sp] and %rbp
	 * is the caller's: the frame walk starts from caller, read from [sp].
	 * Elsewhere (0) the walk starts from the registers. */
	__u64 caller;
	bool at_entry;
	__u32 type;			/* enum mw_event_type: MW_EV_SAMPLE or MW_EV_PAGE */
	union {				/* copied into the event as it is */
		struct mw_sample_body sample;
		struct mw_page_body page;
	} body;
};

/* The event as the capture builds it: either kind, the capture at the same
 * offset (include/memwatch.h). */
struct stack_event {
	struct mw_event_head h;
	struct mw_sample_body body;
	struct mw_capture cap;
	__u8 data[];
};

_Static_assert(__builtin_offsetof(struct stack_event, cap) == __builtin_offsetof(struct mw_sample_event, cap) &&
	       __builtin_offsetof(struct stack_event, cap) == __builtin_offsetof(struct mw_page_event, cap),
	       "one capture layout for every event with a stack");

/* Frame-pointer walk from the user registers. At a function's entry, leaf
 * first: the probed instruction, the caller read from [sp], then the walk
 * past it. Returns the payload length. */
static __always_inline __u32 capture_fp(struct stack_event *e, const struct capture_req *req)
{
	__u64 *frames = (__u64 *)e->data;
	long n;

	if (!req->at_entry) {
		n = bpf_get_stack(req->ctx, frames, MW_MAX_FRAMES * sizeof(__u64), BPF_F_USER_STACK);
		e->cap.nframes = n > 0 ? n / sizeof(__u64) : 0;
	} else {
		n = bpf_get_stack(req->ctx, &frames[1], MW_MAX_FRAMES * sizeof(__u64), BPF_F_USER_STACK);
		frames[0] = arch_ip(req->regs);
		frames[1] = req->caller;
		e->cap.nframes = n > 0 ? n / sizeof(__u64) + 1 : 2;
	}
	if (n <= 0)
		count(MW_CNT_STACK_FAIL);
	return e->cap.nframes * sizeof(__u64);
}

static long vma_end_cb(struct task_struct *task, struct vm_area_struct *vma, void *end)
{
	*(__u64 *)end = vma->vm_end;
	return 0;
}

/* Where the useful stack above sp ends: the stack mapping's end, or before
 * it, for the main thread, the initial stack pointer (above lie argv, environ
 * and auxv), and for other threads the thread pointer (above lie the thread's
 * TLS and libc's thread descriptor). No unwinder reads those. 0 if unknown. */
static __always_inline __u64 stack_end(__u64 sp)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 end = 0, start_stack, tp;

	if (bpf_find_vma(task, sp, vma_end_cb, &end, 0))
		return 0;
	start_stack = BPF_CORE_READ(task, mm, start_stack);
	tp = arch_thread_pointer(task);
	if (start_stack > sp && start_stack < end)
		end = start_stack + 2 * sizeof(__u64);
	else if (tp > sp && tp < end)
		end = tp;
	return end;
}

/* Copies the stack from sp upwards: the rest of sp's page, then whole pages,
 * up to cfg_stack_bytes or the end of the stack, whichever comes first. The
 * loop is unrolled, so the verifier knows each read's offset range; the
 * scratch slot holds cfg_stack_bytes + MW_STACK_CHUNK bytes of stack. */
static __always_inline __u32 capture_snapshot(struct stack_event *e, struct pt_regs *regs)
{
	__u64 sp = arch_sp(regs), end = stack_end(sp);
	__u32 first = MW_STACK_CHUNK - (sp & (MW_STACK_CHUNK - 1));
	__u64 want = cfg_stack_bytes;
	__u32 copied = 0;

	if (end > sp && end - sp < want)
		want = end - sp;
	arch_dwarf_regs(e->cap.regs, regs);
	if (bpf_probe_read_user(e->data, first, (void *)sp)) {
		count(MW_CNT_STACK_FAIL);
		return 0;
	}
	copied = first;
#pragma unroll
	for (int i = 0; i < MW_STACK_MAX / MW_STACK_CHUNK; i++) {
		if (copied >= want)
			break;
		if (bpf_probe_read_user(e->data + copied, MW_STACK_CHUNK, (void *)(sp + copied)))
			break;
		copied += MW_STACK_CHUNK;
	}
	if (copied > want)
		copied = want;
	e->cap.stack_len = copied;
	return copied;
}

/* The return address at stack slot, as the caller pushed it: another
 * tracer's uretprobe on the same function (any pid's: the kernel hijacks
 * for every consumer that wants returns) may have replaced it with the
 * trampoline. Cheap unless it did. */
static __always_inline __u64 uret_original(__u64 slot, __u64 value)
{
	struct task_struct *task;
	struct return_instance *ri;

	if (value < ARCH_URETPROBE_AREA_MIN)
		return value;
	task = bpf_get_current_task_btf();
	ri = BPF_CORE_READ(task, utask, return_instances);
	for (int i = 0; i < 8 && ri; i++) {
		if (BPF_CORE_READ(ri, stack) == slot)
			return BPF_CORE_READ(ri, orig_ret_vaddr);
		ri = BPF_CORE_READ(ri, next);
	}
	return value;
}

/* A pending uretprobe (memwatch's own on a sampled allocation, or anyone's)
 * has replaced a return address on the stack with the kernel's trampoline:
 * the unwinder needs the original, which only the kernel knows. */
static __always_inline void capture_urets(struct stack_event *e)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct return_instance *ri = BPF_CORE_READ(task, utask, return_instances);
	__u32 n = 0;

	for (int i = 0; i < MW_URET_MAX; i++) {
		if (!ri)
			break;
		e->cap.uret_slot[i] = BPF_CORE_READ(ri, stack);
		e->cap.uret_orig[i] = BPF_CORE_READ(ri, orig_ret_vaddr);
		ri = BPF_CORE_READ(ri, next);
		n++;
	}
	e->cap.nuret = n;
}

static __always_inline __u64 next_sample_id(struct cpu_state *st)
{
	return ((__u64)bpf_get_smp_processor_id() << 48 | ++st->next_id);
}

/* Wake the reader when the backlog crosses a multiple of cfg_wakeup_bytes,
 * not for every record past it: a wake-up costs more than the event (a
 * self-IPI, an MSR write a hypervisor traps), and a woken reader drains the
 * whole ring before it sleeps. `queued`: the backlog the ring reports
 * already holds this record of len bytes (reserved), or not (output). A
 * crossing two producers race past unseen is caught at the next multiple
 * (or by user space's timer). */
static __always_inline __u64 wakeup_flag(__u32 len, bool queued)
{
	__u64 size = ((__u64)len + 8 + 7) & ~7ULL;	/* with the ring's record header */
	__u64 backlog = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	__u64 before = queued && backlog >= size ? backlog - size : backlog;
	__u64 step = cfg_wakeup_bytes ? cfg_wakeup_bytes : 1;

	return before / step != (before + size) / step ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* Emits the event req describes with the current task's user stack: the
 * frame walk or a snapshot, as configured. 0, or the MW_CNT_* counter of
 * why it was lost (counted). */
static __noinline int emit_stack(struct capture_req *req)
{
	void *slot = claim_scratch();
	struct stack_event *e;
	__u32 len;
	int err = 0;

	if (!slot)
		return MW_CNT_BUSY;
	e = slot + MW_SCRATCH_HEAD;
	fill_head(&e->h, req->type, req->pid_tgid);
	__builtin_memcpy(&e->body, &req->body, sizeof(e->body));
	e->cap.mode = cfg_stack_mode;
	e->cap.nframes = 0;
	e->cap.stack_len = 0;
	e->cap.nuret = 0;
	if (cfg_stack_mode == MW_STACK_FP) {
		len = capture_fp(e, req);
	} else {
		len = capture_snapshot(e, req->regs);
		capture_urets(e);
	}
	len += sizeof(*e);
	if (len > cfg_scratch_bytes - MW_SCRATCH_HEAD)
		len = cfg_scratch_bytes - MW_SCRATCH_HEAD;
	if (bpf_ringbuf_output(&events, e, len, wakeup_flag(len, false))) {
		count(MW_CNT_RINGBUF_FULL);
		err = MW_CNT_RINGBUF_FULL;
	}
	release_scratch(slot);
	return err;
}

#endif /* MW_BPF_CAPTURE_H */
