// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The kernel side of memory: page faults, purges (madvise DONTNEED, FREE,
 * REMOVE, DONTNEED_LOCKED), munmap and brk shrinks, the latency of the
 * syscalls that change the address space, and refaults: purged pages that
 * fault back in. Tracepoints only (no kprobes here); stacks of faults and
 * purges are sampled by bytes, through the same capture as allocations.
 *
 * Refaults: every purged range is recorded, per 2 MiB region, in a
 * direct-mapped table (slot = hash of tgid and region; a newer purge that
 * lands on the slot takes it over) holding the purge time and a bitmap of
 * the region's purged pages. A fault on a page not present clears its bit;
 * if the bit was set, that is a refault, counted once, with its delay.
 *
 * The fault path is paid on every page fault of the target: it touches only
 * per-CPU counters and array slots, which the verifier turns into plain
 * loads; no hash lookups, no atomics but the bit clear.
 */
#include "lib/capture.h"
#include "lib/hist.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define PAGE_SHIFT ARCH_PAGE_SHIFT
_Static_assert(1 << PAGE_SHIFT == MW_PAGE_SIZE, "user space counts pages of MW_PAGE_SIZE");
#define REGION_SHIFT 21		/* 2 MiB: 512 pages, 8 words of bits */
#define MAX_REGIONS 32		/* per purge: 64 MiB tracked, the rest counted */
#define PURGED_SLOTS 16384	/* 32 GiB of purged regions watched at once */

#define MADV_DONTNEED 4
#define MADV_FREE 8
#define MADV_REMOVE 9
#define MADV_DONTNEED_LOCKED 24

const volatile __u32 cfg_self_tgid = 0;	/* memwatch itself, never tracked */
const volatile bool cfg_empty = false;	/* benchmarks: the tracepoints alone */
/* From the kernel's config (/boot/config-*, /proc/config.gz); 0 if absent. */
extern unsigned int CONFIG_HZ __kconfig __weak;

struct purged_region {
	__u32 tgid;
	__u32 pad;
	__u64 region;
	__u64 purge_jiffies;
	__u64 bits[8];		/* pages purged and not yet faulted back */
};

/* A syscall between its enter and exit. */
struct inflight {
	__u64 ts;
	__u64 a0, a1, a2;
	__u64 old_brk;
	__u32 sc;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct mw_page_stats);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PURGED_SLOTS);
	__type(key, __u32);
	__type(value, struct purged_region);
} purged SEC(".maps");

/* A per-CPU array of one entry when profiling one process (user space
 * switches it to a per-CPU hash by tgid for all of them). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mw_fault_counts);
} fault_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct inflight);
} inflight SEC(".maps");

/* With --all: the processes whose faults and purges get stacks. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8);
} profiled SEC(".maps");

/* Zeroes for a process's first stats entry (too big for the BPF stack). */
struct mw_page_stats zero_stats;

static __always_inline bool tracked(__u32 tgid)
{
	return cfg_target_tgid ? tgid == cfg_target_tgid : tgid && tgid != cfg_self_tgid;
}

static __always_inline struct mw_page_stats *stats_of(__u32 tgid)
{
	struct mw_page_stats *s = bpf_map_lookup_elem(&stats, &tgid);

	if (s)
		return s;
	bpf_map_update_elem(&stats, &tgid, &zero_stats, BPF_NOEXIST);
	return bpf_map_lookup_elem(&stats, &tgid);
}

static __always_inline void add(__u64 *counter, __u64 n)
{
	__sync_fetch_and_add(counter, n);
}

/* Sets the bits of pages [p0, p1) in a region's bitmap. */
static __always_inline void set_pages(struct purged_region *r, __u32 p0, __u32 p1)
{
#pragma unroll
	for (int w = 0; w < 8; w++) {
		__u32 lo = w * 64, hi = lo + 64;
		__u32 a = p0 > lo ? p0 : lo, b = p1 < hi ? p1 : hi;
		if (a >= b)
			continue;
		__u64 width = b - a;
		__u64 mask = width == 64 ? ~0ull : ((1ull << width) - 1) << (a - lo);
		__sync_fetch_and_or(&r->bits[w], mask);
	}
}

static __always_inline __u32 purged_slot(__u32 tgid, __u64 region)
{
	__u64 h = (region ^ ((__u64)tgid << 32)) * 0x9e3779b97f4a7c15ull;

	return (h >> 40) & (PURGED_SLOTS - 1);
}

static void mark_region(__u32 tgid, __u64 region, __u32 p0, __u32 p1, __u64 jiffies)
{
	__u32 slot = purged_slot(tgid, region);
	struct purged_region *r = bpf_map_lookup_elem(&purged, &slot);

	if (!r)
		return;
	if (r->tgid != tgid || r->region != region) {
		/* Takes the slot over: the previous region's pending refaults go. */
		r->tgid = tgid;
		r->region = region;
		__builtin_memset(r->bits, 0, sizeof(r->bits));
	}
	r->purge_jiffies = jiffies;
	set_pages(r, p0, p1);
}

struct purge_walk {
	__u32 tgid;
	__u64 start, end, first, jiffies;
};

static long purge_region(__u64 index, void *arg)
{
	struct purge_walk *w = arg;
	__u64 region = w->first + index;
	__u64 rs = region << REGION_SHIFT, re = rs + (1ull << REGION_SHIFT);
	__u64 a = w->start > rs ? w->start : rs, b = w->end < re ? w->end : re;

	if (a >= b)
		return 1;
	mark_region(w->tgid, region, (a - rs) >> PAGE_SHIFT, (b - rs + (1 << PAGE_SHIFT) - 1) >> PAGE_SHIFT, w->jiffies);
	return 0;
}

/* Records [start, start + len) as purged, for refault detection. */
static __always_inline void record_purge(__u32 tgid, struct mw_page_stats *s, __u64 start, __u64 len, __u64 jiffies)
{
	struct purge_walk w = { .tgid = tgid, .start = start, .end = start + len, .jiffies = jiffies };

	if (!len)
		return;
	w.first = start >> REGION_SHIFT;
	__u64 last = (w.end - 1) >> REGION_SHIFT;
	if (last - w.first >= MAX_REGIONS) {
		add(&s->untracked_bytes, w.end - ((w.first + MAX_REGIONS) << REGION_SHIFT));
		last = w.first + MAX_REGIONS - 1;
		w.end = (last + 1) << REGION_SHIFT;
	}
	bpf_loop(last - w.first + 1, purge_region, &w, 0);
}

static __always_inline struct mw_fault_counts *fault_counts_of(__u32 tgid)
{
	static const struct mw_fault_counts zero;
	__u32 key = cfg_target_tgid ? 0 : tgid;
	struct mw_fault_counts *c = bpf_map_lookup_elem(&fault_counts, &key);

	if (c || cfg_target_tgid)
		return c;
	bpf_map_update_elem(&fault_counts, &key, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&fault_counts, &key);
}

/* MW_REFAULT_SOON_NS in jiffies; without the kernel's config, as at 250 Hz
 * (Debian's and Ubuntu's). */
static __always_inline __u64 soon_jiffies(void)
{
	__u64 hz = CONFIG_HZ ? CONFIG_HZ : 250;

	return MW_REFAULT_SOON_NS / (1000000000ull / hz);
}

static __always_inline void check_refault(__u32 tgid, struct mw_fault_counts *c, __u64 addr)
{
	__u64 region = addr >> REGION_SHIFT;
	__u32 slot = purged_slot(tgid, region);
	struct purged_region *r = bpf_map_lookup_elem(&purged, &slot);

	if (!r || r->region != region || r->tgid != tgid)
		return;
	__u32 page = (addr >> PAGE_SHIFT) & 511;
	__u64 bit = 1ull << (page & 63);
	__u64 *word = &r->bits[page >> 6];
	if (!(*word & bit))
		return;
	/* Only the fault that clears the bit counts the refault. */
	if (!(__sync_fetch_and_and(word, ~bit) & bit))
		return;
	c->refaults++;
	/* Jiffies: reading the precise clock here would be half of this
	 * program's time. */
	if (bpf_jiffies64() - r->purge_jiffies < soon_jiffies())
		c->refaults_soon++;
}

/* A sampled fault or purge gets its stack: with --all, only in the
 * processes memwatch profiles (the rest get counts). */
static __always_inline void sample_page(void *ctx, struct pt_regs *regs, __u64 pid_tgid, __u32 kind, __u64 addr,
					__u64 bytes)
{
	__u32 zero = 0, tgid = pid_tgid >> 32;
	struct cpu_state *st = bpf_map_lookup_elem(&cpu_state, &zero);

	if (!st || !sample_decide(st, bytes))
		return;
	if (!cfg_target_tgid && !bpf_map_lookup_elem(&profiled, &tgid))
		return;

	struct capture_req req = {
		.ctx = ctx, .regs = regs, .pid_tgid = pid_tgid, .type = MW_EV_PAGE,
		.body.page = { .addr = addr, .bytes = bytes, .kind = kind },
	};
	emit_stack(&req);
}

SEC("tp_btf/page_fault_user")
int BPF_PROG(on_fault, unsigned long address, struct pt_regs *regs, unsigned long error_code)
{
	__u64 pid_tgid;
	__u32 tgid;
	struct mw_fault_counts *c;

	if (cfg_empty)
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	tgid = pid_tgid >> 32;
	if (!tracked(tgid) || !arch_fault_not_present(error_code))
		return 0;
	c = fault_counts_of(tgid);
	if (!c)
		return 0;
	c->faults++;
	check_refault(tgid, c, address);
	sample_page(ctx, regs, pid_tgid, MW_PAGE_FAULT, address, 1 << PAGE_SHIFT);
	return 0;
}

static __always_inline void sys_enter(__u32 sc, __u64 a0, __u64 a1, __u64 a2)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct inflight call = { .a0 = a0, .a1 = a1, .a2 = a2, .sc = sc };

	if (!tracked(pid_tgid >> 32))
		return;
	call.ts = bpf_ktime_get_ns();
	if (sc == MW_SC_BRK) {
		struct task_struct *task = bpf_get_current_task_btf();
		call.old_brk = BPF_CORE_READ(task, mm, brk);
	}
	bpf_map_update_elem(&inflight, &pid_tgid, &call, BPF_ANY);
}

static __always_inline bool is_purge(__u64 advice)
{
	return advice == MADV_DONTNEED || advice == MADV_FREE || advice == MADV_REMOVE ||
	       advice == MADV_DONTNEED_LOCKED;
}

static __always_inline void page_size_round(__u64 *len)
{
	*len = (*len + (1 << PAGE_SHIFT) - 1) & ~(__u64)((1 << PAGE_SHIFT) - 1);
}

/* What a successful call gave back to the kernel, as kind and range. */
static __always_inline bool released(const struct inflight *call, long ret, __u32 *kind, __u64 *start, __u64 *len)
{
	switch (call->sc) {
	case MW_SC_MADVISE:
		if (ret || !is_purge(call->a2))
			return false;
		*kind = MW_PAGE_MADVISE;
		*start = call->a0;
		*len = call->a1;
		break;
	case MW_SC_MUNMAP:
		if (ret)
			return false;
		*kind = MW_PAGE_MUNMAP;
		*start = call->a0;
		*len = call->a1;
		break;
	case MW_SC_BRK:
		if ((__u64)ret >= call->old_brk)
			return false;
		*kind = MW_PAGE_BRK;
		*start = ret;
		*len = call->old_brk - ret;
		break;
	default:
		return false;
	}
	page_size_round(len);
	return true;
}

static __always_inline void sys_exit(void *ctx, long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid(), now, start, len;
	__u32 tgid = pid_tgid >> 32, kind;
	struct inflight *pc, call;
	struct mw_page_stats *s;

	if (!tracked(tgid))
		return;
	pc = bpf_map_lookup_elem(&inflight, &pid_tgid);
	if (!pc)
		return;
	now = bpf_ktime_get_ns();
	call = *pc;
	bpf_map_delete_elem(&inflight, &pid_tgid);
	s = stats_of(tgid);
	if (!s || call.sc >= MW_SC_COUNT)
		return;
	add(&s->calls[call.sc], 1);
	add(&s->latency[call.sc][bucket_of(now - call.ts)], 1);
	if (!released(&call, ret, &kind, &start, &len))
		return;
	if (kind == MW_PAGE_MADVISE) {
		add(&s->purges, 1);
		add(&s->purge_bytes, len);
	} else {
		add(&s->unmaps, 1);
		add(&s->unmap_bytes, len);
	}
	record_purge(tgid, s, start, len, bpf_jiffies64());
	sample_page(ctx, (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf()), pid_tgid, kind, start, len);
}

/* The syscall number of a syscalls:sys_enter_* record is an int: the upper
 * half of vmlinux.h's long id is padding, not zeroed. */
static __always_inline __u32 record_syscall(struct trace_event_raw_sys_enter *ctx)
{
	return arch_syscall_index((int)ctx->id);
}

/*
 * One program per argument count serves every syscall tracepoint with at
 * least that many arguments: a program may read no further into the record
 * than the call's own arguments (the kernel refuses to attach it otherwise),
 * and fewer programs load faster.
 */
SEC("tracepoint")
int sys_enter_3(struct trace_event_raw_sys_enter *ctx)
{
	if (cfg_empty)
		return 0;
	sys_enter(record_syscall(ctx), ctx->args[0], ctx->args[1], ctx->args[2]);
	return 0;
}

SEC("tracepoint")
int sys_enter_2(struct trace_event_raw_sys_enter *ctx)
{
	if (cfg_empty)
		return 0;
	sys_enter(record_syscall(ctx), ctx->args[0], ctx->args[1], 0);
	return 0;
}

SEC("tracepoint")
int sys_enter_1(struct trace_event_raw_sys_enter *ctx)
{
	if (cfg_empty)
		return 0;
	sys_enter(record_syscall(ctx), ctx->args[0], 0, 0);
	return 0;
}

SEC("tracepoint")
int sys_exit_any(struct trace_event_raw_sys_exit *ctx)
{
	if (cfg_empty)
		return 0;
	sys_exit(ctx, ctx->ret);
	return 0;
}

/* Without tracefs the syscall tracepoints cannot be attached: the raw
 * syscall tracepoints (every syscall, filtered by number) stand in. */
SEC("tp_btf/sys_enter")
int BPF_PROG(raw_enter, struct pt_regs *regs, long id)
{
	__u32 sc = arch_syscall_index(id);

	if (!cfg_empty && sc < MW_SC_COUNT)
		sys_enter(sc, arch_syscall_arg0(regs), arch_syscall_arg1(regs), arch_syscall_arg2(regs));
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(raw_exit, struct pt_regs *regs, long ret)
{
	if (!cfg_empty)
		sys_exit(ctx, ret);
	return 0;
}

/* With --all: processes come and go. */
static __always_inline void emit_head(__u32 type, __u32 tgid)
{
	struct mw_event_head *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count(MW_CNT_RINGBUF_FULL);
		return;
	}
	fill_head(e, type, (__u64)tgid << 32 | tgid);
	bpf_ringbuf_submit(e, 0);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(host_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = task->tgid;

	if (tracked(tgid))
		emit_head(MW_EV_EXEC, tgid);
	return 0;
}

/* Fires for every thread; the group is gone when signal->live reaches 0
 * (do_exit counts it down before this tracepoint). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(host_exit, struct task_struct *task)
{
	__u32 tgid = task->tgid;

	if (tracked(tgid) && !BPF_CORE_READ(task, signal, live.counter))
		emit_head(MW_EV_EXIT, tgid);
	return 0;
}
