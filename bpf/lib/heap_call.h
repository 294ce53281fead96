/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * What the allocator probes share: configuration, maps, Poisson sampling by
 * bytes, stack capture, and the two halves of an allocation call. Included by
 * heap.bpf.c (entry, return and free programs) and heap_session.bpf.c (the
 * same calls as uprobe sessions); user space makes them share their maps.
 */
#ifndef MW_BPF_HEAP_CALL_H
#define MW_BPF_HEAP_CALL_H

#include "capture.h"

#define SIGSTOP 19
#define EEXIST 17

const volatile bool cfg_alloc_only = false;	/* no free probes, no live blocks */
const volatile bool cfg_count_hits = false;	/* for the overhead budget */
/* Set by user space when the run ends, before any probe detaches: from then
 * on no program changes what the run recorded, so the live blocks are those
 * of one instant however long the links take to go. */
bool run_ended;

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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct mw_lost_key);
	__type(value, struct mw_lost_val);
} lost SEC(".maps");

/* floor(log2(size)), 0 for 0 and 1: no loop, no clz in BPF. */
static __always_inline __u16 size_bucket(__u64 size)
{
	__u16 b = 0;

#pragma unroll
	for (int shift = 32; shift; shift >>= 1) {
		if (size >> shift) {
			size >>= shift;
			b += shift;
		}
	}
	return b;
}

/* A sampled call of size bytes lost: its count and bytes are kept. */
static __noinline void note_lost(__u32 tgid, __u16 reason, __u64 size)
{
	struct mw_lost_key key = { .tgid = tgid, .reason = reason, .bucket = size_bucket(size) };
	struct mw_lost_val one = { 1, size }, *v = bpf_map_lookup_elem(&lost, &key);

	/* Another CPU may create the key first: then add to it. */
	if (!v && !bpf_map_update_elem(&lost, &key, &one, BPF_NOEXIST))
		return;
	if (!v)
		v = bpf_map_lookup_elem(&lost, &key);
	if (v) {
		v->count++;
		v->bytes += size;
	}
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

/* Emits the stack of a sampled call; returns its sample id, 0 if lost. */
static __always_inline __u64 emit_sample(struct pt_regs *ctx, struct cpu_state *st, __u64 pid_tgid,
					 __u32 fn, __u64 size, __u64 caller)
{
	struct capture_req req = {
		.ctx = ctx, .regs = ctx, .pid_tgid = pid_tgid, .caller = caller, .at_entry = true,
		.type = MW_EV_SAMPLE,
		.body.sample = { .sample_id = next_sample_id(st), .size = size, .fn = fn },
	};

	int lost = emit_stack(&req);

	if (lost) {
		note_lost(pid_tgid >> 32, lost == MW_CNT_BUSY ? MW_LOSS_BUSY : MW_LOSS_RING, size);
		return 0;
	}
	count(MW_CNT_SAMPLES);
	return req.body.sample.sample_id;
}

static __always_inline void emit_cancel(__u64 pid_tgid, __u64 sample_id)
{
	struct mw_cancel_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count(MW_CNT_RINGBUF_FULL);
		return;
	}
	fill_head(&e->h, MW_EV_CANCEL, pid_tgid);
	e->sample_id = sample_id;
	bpf_ringbuf_submit(e, wakeup_flag(sizeof(*e), true));
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
	if (run_ended)
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
	if (bpf_probe_read_user(&caller, sizeof(caller), (void *)arch_sp(ctx)))
		caller = 0;
	caller = uret_original(arch_sp(ctx), caller);
	if (nested_call(tgid, caller)) {
		count(MW_CNT_NESTED);
		return false;
	}

	struct pending_key key = { .pid_tgid = pid_tgid, .sp = arch_sp(ctx) };
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
		if (sampled)
			note_lost(tgid, MW_LOSS_PENDING, size);
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
	if (!pc || run_ended)
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

#endif /* MW_BPF_HEAP_CALL_H */
