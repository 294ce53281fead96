/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * What the allocator probes share: configuration, maps, Poisson sampling by
 * bytes, stack capture, and the two halves of an allocation call. Included by
 * heap.bpf.c (entry, return and free programs) and heap_session.bpf.c (the
 * same calls as uprobe sessions); user space makes them share their maps.
 */
#ifndef MW_HEAP_COMMON_H
#define MW_HEAP_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "memwatch.h"

#define SIGSTOP 19
#define EEXIST 17

const volatile __u32 cfg_target_tgid = 0;	/* 0: the kernel's per-pid attach filters */
const volatile __u64 cfg_sample_bytes = 524288;	/* <= 1: every call */
const volatile __u32 cfg_stack_mode = MW_STACK_FP;
const volatile __u32 cfg_stack_bytes = 16384;	/* multiple of MW_STACK_CHUNK */
const volatile __u32 cfg_scratch_bytes = 65536;	/* value size of the scratch map */
const volatile __u64 cfg_wakeup_bytes = 1 << 20;	/* wake user space past this backlog */
const volatile bool cfg_alloc_only = false;	/* no free probes, no live blocks */
const volatile bool cfg_count_hits = false;	/* for the overhead budget */
/* R * -ln(i / MW_EXP_SIZE): the edges of the exponential's inverse CDF. */
const volatile __u64 cfg_exp_edges[MW_EXP_SIZE + 1];

struct cpu_state {
	__s64 countdown;	/* bytes until the next sample point */
	__u64 next_id;
};

struct pending_key {
	__u64 pid_tgid;
	__u64 sp;		/* stack pointer at entry: tells nested calls apart */
};

/* How a call returns its block. */
enum result_kind {
	RESULT_RET,		/* in rax; NULL means failure */
	RESULT_OUT,		/* rax == 0 on success, the block at *out (posix_memalign) */
	RESULT_INPLACE,		/* the block stays at out; rax >= size on success (xallocx) */
};

struct pending {
	__u64 sample_id;	/* 0: the call is not sampled */
	__u64 size;
	__u64 old;		/* sampled block the call may release */
	__u64 out;
	__u32 kind;		/* enum result_kind */
	__u32 pad;
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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mw_live_key);
	__type(value, __u64);
} live SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pending_key);
	__type(value, struct pending);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct mw_nest);
} nests SEC(".maps");

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

/* Is the caller (the return address at [sp]) inside allocator code? */
static __always_inline bool nested_call(__u32 tgid, __u64 ret_addr)
{
	struct mw_nest *nest = bpf_map_lookup_elem(&nests, &tgid);

	if (!nest)
		return false;
#pragma unroll
	for (int i = 0; i < MW_NEST_RANGES; i++) {
		if (ret_addr >= nest->start[i] && ret_addr < nest->end[i])
			return true;
	}
	return false;
}

static __always_inline void fill_head(struct mw_event_head *h, __u32 type, __u64 pid_tgid, __u32 fn)
{
	h->type = type;
	h->tgid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->fn = fn;
	h->ts = bpf_ktime_get_ns();
}

static __always_inline void fill_regs(struct mw_sample_event *e, struct pt_regs *ctx)
{
	e->regs[0] = ctx->ax;
	e->regs[1] = ctx->dx;
	e->regs[2] = ctx->cx;
	e->regs[3] = ctx->bx;
	e->regs[4] = ctx->si;
	e->regs[5] = ctx->di;
	e->regs[6] = ctx->bp;
	e->regs[7] = ctx->sp;
	e->regs[8] = ctx->r8;
	e->regs[9] = ctx->r9;
	e->regs[10] = ctx->r10;
	e->regs[11] = ctx->r11;
	e->regs[12] = ctx->r12;
	e->regs[13] = ctx->r13;
	e->regs[14] = ctx->r14;
	e->regs[15] = ctx->r15;
	e->regs[16] = ctx->ip;
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

/* Leaf first: the probed instruction, the caller from [sp], then the
 * frame-pointer walk past the caller. Returns the payload length. */
static __always_inline __u32 capture_fp(struct mw_sample_event *e, struct pt_regs *ctx, __u64 caller)
{
	__u64 *frames = (__u64 *)e->data;
	long n = bpf_get_stack(ctx, &frames[1], MW_MAX_FRAMES * sizeof(__u64), BPF_F_USER_STACK);

	frames[0] = ctx->ip;
	frames[1] = caller;
	e->nframes = n > 0 ? n / sizeof(__u64) + 1 : 2;
	if (n <= 0)
		count(MW_CNT_STACK_FAIL);
	return e->nframes * sizeof(__u64);
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
	tp = BPF_CORE_READ(task, thread.fsbase);
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
static __always_inline __u32 capture_snapshot(struct mw_sample_event *e, struct pt_regs *ctx)
{
	__u64 sp = ctx->sp, end = stack_end(sp);
	__u32 first = MW_STACK_CHUNK - (sp & (MW_STACK_CHUNK - 1));
	__u64 want = cfg_stack_bytes;
	__u32 copied = 0;

	if (end > sp && end - sp < want)
		want = end - sp;
	fill_regs(e, ctx);
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
	e->stack_len = copied;
	return copied;
}

static __always_inline __u64 next_sample_id(struct cpu_state *st)
{
	return ((__u64)bpf_get_smp_processor_id() << 48 | ++st->next_id);
}

/* Wake the reader only once a backlog builds up: a wake-up per event costs
 * more than the event. User space also drains on a timer. */
static __always_inline __u64 wakeup_flag(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > cfg_wakeup_bytes ? BPF_RB_FORCE_WAKEUP
										 : BPF_RB_NO_WAKEUP;
}

/* Emits the stack of a sampled call; returns its sample id, 0 if lost. */
static __always_inline __u64 emit_sample(struct pt_regs *ctx, struct cpu_state *st, __u64 pid_tgid,
					 __u32 fn, __u64 size, __u64 caller)
{
	void *slot = claim_scratch();
	struct mw_sample_event *e;
	__u64 id = next_sample_id(st);
	__u32 len;

	if (!slot)
		return 0;
	e = slot + MW_SCRATCH_HEAD;
	fill_head(&e->h, MW_EV_SAMPLE, pid_tgid, fn);
	e->sample_id = id;
	e->size = size;
	e->mode = cfg_stack_mode;
	e->nframes = 0;
	e->stack_len = 0;
	e->pad = 0;
	if (cfg_stack_mode == MW_STACK_FP)
		len = capture_fp(e, ctx, caller);
	else
		len = capture_snapshot(e, ctx);
	len += sizeof(*e);
	if (len > cfg_scratch_bytes - MW_SCRATCH_HEAD)
		len = cfg_scratch_bytes - MW_SCRATCH_HEAD;
	if (bpf_ringbuf_output(&events, e, len, wakeup_flag())) {
		count(MW_CNT_RINGBUF_FULL);
		id = 0;
	} else {
		count(MW_CNT_SAMPLES);
	}
	release_scratch(slot);
	return id;
}

static __always_inline void emit_cancel(__u64 pid_tgid, __u64 sample_id)
{
	struct mw_cancel_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count(MW_CNT_RINGBUF_FULL);
		return;
	}
	fill_head(&e->h, MW_EV_CANCEL, pid_tgid, 0);
	e->sample_id = sample_id;
	bpf_ringbuf_submit(e, wakeup_flag());
}

static __always_inline bool is_live(__u32 tgid, __u64 addr)
{
	struct mw_live_key key = { .tgid = tgid, .addr = addr };

	return addr && bpf_map_lookup_elem(&live, &key);
}

/* count * size, or false when it overflows: the call allocates nothing. */
static __always_inline bool array_size(__u64 count, __u64 size, __u64 *total)
{
	__u64 prod = count * size;

	/* Hide the pattern: clang would turn it into a 128-bit multiply. */
	asm volatile("" : "+r"(prod));
	if (count && prod / count != size)
		return false;
	*total = prod;
	return true;
}

/*
 * Entry half of an allocation call asking for size bytes, possibly releasing
 * old, returning its block as kind says (out: see enum result_kind). Returns true when the call needs
 * its return half: it was sampled, or it may release a sampled block.
 */
static __always_inline bool enter_call(struct pt_regs *ctx, __u64 size, __u64 old, __u64 out, __u32 kind)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u64 caller = 0;
	__u32 zero = 0;
	struct cpu_state *st;
	bool sampled, old_live;

	if (cfg_target_tgid && tgid != cfg_target_tgid)
		return false;
	if (cfg_count_hits)
		count(MW_CNT_HITS);
	old_live = !cfg_alloc_only && is_live(tgid, old);
	st = bpf_map_lookup_elem(&cpu_state, &zero);
	if (!st)
		return false;
	sampled = sample_decide(st, size);
	if (!sampled && !old_live && !(cookie & MW_COOKIE_TAILCALLS))
		return false;

	/* The slow path: sampled, releasing a sampled block, or a function
	 * that may tail-call another probed entry. */
	if (bpf_probe_read_user(&caller, sizeof(caller), (void *)ctx->sp))
		caller = 0;
	if (nested_call(tgid, caller)) {
		count(MW_CNT_NESTED);
		return false;
	}

	struct pending_key key = { .pid_tgid = pid_tgid, .sp = ctx->sp };
	struct pending call = { .size = size, .old = old_live ? old : 0, .out = out, .kind = kind };
	struct pending *registered;
	long err = bpf_map_update_elem(&pending, &key, &call, BPF_NOEXIST);

	if (err == -EEXIST) {
		/* Tail-called by a probed entry still in progress at this
		 * very stack slot: that outer call counts. */
		count(MW_CNT_NESTED);
		return false;
	}
	if (err) {
		count(MW_CNT_PENDING_FULL);
		return false;
	}
	if (sampled) {
		__u64 id = emit_sample(ctx, st, pid_tgid, MW_COOKIE_FN(cookie), size, caller);
		registered = bpf_map_lookup_elem(&pending, &key);
		if (registered)
			registered->sample_id = id;
		else if (id)
			emit_cancel(pid_tgid, id);
	}
	return true;
}

/* Return half: release the old block, record the new one. */
static __always_inline void exit_call(struct pt_regs *ctx, __u64 entry_sp)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct pending_key key = { .pid_tgid = pid_tgid, .sp = entry_sp };
	struct pending *pc = bpf_map_lookup_elem(&pending, &key);
	struct mw_live_key lk = { .tgid = pid_tgid >> 32 };
	__u64 ret = PT_REGS_RC(ctx), addr = ret;
	struct pending call;
	bool ok;

	count(MW_CNT_RETURNS);
	if (!pc)
		return;
	call = *pc;
	bpf_map_delete_elem(&pending, &key);

	switch (call.kind) {
	case RESULT_OUT:
		ok = (int)ret == 0 && !bpf_probe_read_user(&addr, sizeof(addr), (void *)call.out);
		break;
	case RESULT_INPLACE:
		ok = ret >= call.size;
		addr = call.out;
		break;
	default:
		ok = ret != 0;
	}
	/* realloc(p, 0) may free p and return NULL. */
	if (call.old && (ok || call.size == 0)) {
		lk.addr = call.old;
		if (!bpf_map_delete_elem(&live, &lk))
			count(MW_CNT_FREES_TRACKED);
	}
	if (!call.sample_id)
		return;
	if (!ok) {
		emit_cancel(pid_tgid, call.sample_id);
		return;
	}
	if (cfg_alloc_only)
		return;
	lk.addr = addr;
	if (bpf_map_update_elem(&live, &lk, &call.sample_id, BPF_ANY))
		count(MW_CNT_LIVE_FULL);
}

#endif /* MW_HEAP_COMMON_H */
