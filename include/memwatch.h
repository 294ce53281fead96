/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Types shared by the BPF programs and the user-space loader. */
#ifndef MEMWATCH_H
#define MEMWATCH_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define MW_MAX_FRAMES		127	/* frame-pointer walk depth (kernel limit) */
#define MW_EXP_BITS		12
#define MW_EXP_SIZE		(1u << MW_EXP_BITS)	/* exponential table cells */
#define MW_EXP_FRAC_BITS	20	/* interpolation bits inside a cell */
#define MW_NEST_RANGES		16	/* allocator bodies that nest probed calls */
#define MW_STACK_MAX		65536	/* largest stack snapshot (--stack-bytes) */
#define MW_STACK_CHUNK		4096	/* snapshots are copied page by page */
#define MW_NREGS		17	/* DWARF x86_64 registers 0..16 (rip last) */
#define MW_SCRATCH_SLOTS	4	/* event buffers per CPU (programs nest on preemption) */
#define MW_SCRATCH_HEAD		8	/* a slot's busy flag, before the event */

/* Stack capture modes (--stack-mode). */
enum mw_stack_mode {
	MW_STACK_FP = 0,	/* bpf_get_stack frame-pointer walk + [sp] */
	MW_STACK_SNAPSHOT = 1,	/* registers + top of user stack, unwound later */
};

/*
 * Entry points. The attach cookie of each probe holds its enum mw_fn in the
 * low byte and MW_COOKIE_* flags above it.
 */
#define MW_COOKIE_FN(c)		((c) & 0xff)
/* The function tail-calls another probed entry (glibc realloc(NULL, n) jumps
 * to malloc): its calls always register, so the inner entry sees them. */
#define MW_COOKIE_TAILCALLS	(1u << 8)

enum mw_fn {
	MW_FN_MALLOC,
	MW_FN_CALLOC,
	MW_FN_REALLOC,
	MW_FN_REALLOCARRAY,
	MW_FN_POSIX_MEMALIGN,
	MW_FN_ALIGNED_ALLOC,
	MW_FN_MEMALIGN,
	MW_FN_VALLOC,
	MW_FN_PVALLOC,
	MW_FN_FREE,
	MW_FN_NEW,		/* operator new / new[] and variants */
	MW_FN_DELETE,		/* operator delete / delete[] and variants */
	MW_FN_MALLOCX,
	MW_FN_RALLOCX,
	MW_FN_XALLOCX,
	MW_FN_DALLOCX,
	MW_FN_SDALLOCX,
	MW_FN_COUNT,
};

/*
 * Argument layouts: each has its own entry program, so the hot path reads
 * registers at fixed offsets. Arguments are numbered from 0 (rdi).
 */
enum mw_layout {
	MW_LAYOUT_SIZE0,	/* malloc(size), valloc, pvalloc, operator new, mallocx */
	MW_LAYOUT_SIZE1,	/* memalign(align, size), aligned_alloc */
	MW_LAYOUT_CALLOC,	/* calloc(count, size) */
	MW_LAYOUT_REALLOC,	/* realloc(old, size), rallocx */
	MW_LAYOUT_REALLOCARRAY,	/* reallocarray(old, count, size) */
	MW_LAYOUT_MEMALIGN_OUT,	/* posix_memalign(&out, align, size) */
	MW_LAYOUT_FREE,		/* free(old), operator delete, dallocx, sdallocx */
	MW_LAYOUT_XALLOCX,	/* xallocx(ptr, size, extra, flags): resizes in place */
	MW_LAYOUT_COUNT,
};

/* Loss and activity counters, one per-CPU array slot each. */
enum mw_counter {
	MW_CNT_SAMPLES,		/* sampled allocation calls */
	MW_CNT_RINGBUF_FULL,	/* sample events dropped: ring buffer full */
	MW_CNT_LIVE_FULL,	/* sampled blocks not tracked: live map full */
	MW_CNT_PENDING_FULL,	/* calls lost between entry and return */
	MW_CNT_NESTED,		/* allocator-internal calls skipped */
	MW_CNT_STACK_FAIL,	/* stacks that could not be read at all */
	MW_CNT_FREES_TRACKED,	/* frees of sampled blocks */
	MW_CNT_RETURNS,		/* return halves run (every call without sessions) */
	MW_CNT_LOADER,		/* dynamic loader notifications */
	MW_CNT_BUSY,		/* sampled calls dropped: every scratch slot busy */
	MW_CNT_HITS,		/* allocation probe hits (with --max-overhead only) */
	MW_CNT_FREE_HITS,	/* release probe hits (with --max-overhead only) */
	MW_CNT_NR,
};

/* Sampled allocation calls lost before user space saw them, by why: their
 * counts and bytes are kept (struct mw_lost_key), so the profile shows them
 * as "[lost: <reason>]" sites and its totals stay whole. */
enum mw_loss {
	MW_LOSS_RING,		/* ring buffer full */
	MW_LOSS_BUSY,		/* every scratch slot busy */
	MW_LOSS_PENDING,	/* pending-call map full */
	MW_LOSS_NR,
};

#define MW_LOST_BUCKETS 64	/* sizes by power of two: [2^b, 2^(b+1)), 0 in bucket 0 */

struct mw_lost_key {
	__u32 tgid;
	__u16 reason;		/* enum mw_loss */
	__u16 bucket;
};

struct mw_lost_val {
	__u64 count;
	__u64 bytes;
};

enum mw_event_type {
	MW_EV_SAMPLE = 1,	/* a sampled allocation call, with its stack (struct mw_sample_event) */
	MW_EV_CANCEL,		/* that call failed: it allocated nothing */
	MW_EV_LOADER,		/* the dynamic loader changed the link map */
	MW_EV_EXEC,		/* a target process called exec */
	MW_EV_PAGE,		/* a sampled page fault or purge, with its stack (struct mw_page_event) */
	MW_EV_EXIT,		/* the last thread of a process exited (--all) */
	MW_EV_FORK,		/* a probed process forked a new one (struct mw_fork_event) */
};

/* The kernel side: syscalls whose latency is measured (timeline.h's order). */
enum mw_syscall {
	MW_SC_MADVISE,
	MW_SC_MMAP,
	MW_SC_MUNMAP,
	MW_SC_BRK,
	MW_SC_MREMAP,
	MW_SC_COUNT,
};

/* The page tracking is x86_64's: 4 KiB pages (huge-page faults count one). */
#define MW_PAGE_SIZE 4096

enum mw_page_kind {
	MW_PAGE_FAULT,		/* a user fault on a page not present */
	MW_PAGE_MADVISE,	/* madvise DONTNEED, FREE, REMOVE or DONTNEED_LOCKED */
	MW_PAGE_MUNMAP,
	MW_PAGE_BRK,		/* brk shrinking the heap */
	MW_PAGE_COUNT,
};

/* Latency histograms: 4 buckets per power of two of nanoseconds; values
 * 0..3 have a bucket each (4..7 stay empty); the last bucket holds
 * everything from 7 * 2^29 ns (3.76 s). */
#define MW_HIST_BUCKETS 128

/* Per process and CPU, added to by the fault program (no atomics on the
 * hot path). */
struct mw_fault_counts {
	__u64 faults;		/* pages faulted in */
	__u64 refaults;		/* ... that had been purged */
	__u64 refaults_soon;	/* ... within 1 s of their purge */
};

#define MW_REFAULT_SOON_NS 1000000000ull

/* Per process: the syscall programs add to it; user space adds the fault
 * counts (and the bytes: a page per fault) when it reads it. */
struct mw_page_stats {
	__u64 faults, fault_bytes;
	__u64 refaults, refault_bytes, refaults_soon;
	__u64 purges, purge_bytes;	/* madvise purges */
	__u64 unmaps, unmap_bytes;	/* munmap, brk shrinks */
	__u64 untracked_bytes;		/* purged ranges too large to watch for refaults */
	__u64 calls[MW_SC_COUNT];
	__u64 latency[MW_SC_COUNT][MW_HIST_BUCKETS];	/* syscall enter to exit */
};

struct mw_event_head {
	__u32 type;		/* enum mw_event_type */
	__u32 tgid;
	__u32 tid;
	__u32 pad;
	__u64 ts;		/* CLOCK_MONOTONIC ns */
};

#define MW_URET_MAX 4

/*
 * The stack of an event, as the capture took it: nframes u64 addresses
 * (MW_STACK_FP; leaf first) or stack_len bytes copied from regs[7] (rsp)
 * upwards (MW_STACK_SNAPSHOT), in the event's data[]. Events are as long as
 * what they hold.
 */
struct mw_capture {
	__u32 mode;		/* enum mw_stack_mode */
	__u32 nframes;
	__u32 stack_len;
	__u32 nuret;
	__u64 regs[MW_NREGS];	/* DWARF numbering; zero in FP mode */
	/* Pending uretprobes of the thread (innermost first): the stack slot
	 * whose return address the kernel replaced with its trampoline, and
	 * the original address. Snapshots only. */
	__u64 uret_slot[MW_URET_MAX];
	__u64 uret_orig[MW_URET_MAX];
};

/* What a sampled allocation call is about. */
struct mw_sample_body {
	__u64 sample_id;
	__u64 size;		/* bytes asked for */
	__u32 fn;		/* enum mw_fn */
	__u32 pad;
};

/* What a sampled page fault or purge is about. */
struct mw_page_body {
	__u64 addr;		/* the faulting address, or the start of the range given back */
	__u64 bytes;		/* a page, or the range's length */
	__u32 kind;		/* enum mw_page_kind */
	__u32 pad;
};

/* Every event with a stack: head, body, capture, stack. Both bodies are
 * the same size, so the capture is at the same place in each. */
struct mw_sample_event {
	struct mw_event_head h;
	struct mw_sample_body s;
	struct mw_capture cap;
	__u8 data[];
};

struct mw_page_event {
	struct mw_event_head h;
	struct mw_page_body p;
	struct mw_capture cap;
	__u8 data[];
};

_Static_assert(sizeof(struct mw_sample_body) == sizeof(struct mw_page_body),
	       "the capture sits at one offset in every event with a stack");

struct mw_cancel_event {
	struct mw_event_head h;
	__u64 sample_id;
};

/* The head's tgid forked child: a copy of its address space, breakpoints
 * included. */
struct mw_fork_event {
	struct mw_event_head h;
	__u32 child;
	__u32 pad;
};

/*
 * The in-process agent's report (user/inject/agent): what a hooked
 * allocator call looked like at its entry, read by the BPF programs on the
 * agent's report functions. The callee-saved registers are the caller's:
 * the agent's stubs are frameless and save them first.
 */
#define MW_REPORT_TRACK		1u	/* the block is in the agent's live set */
#define MW_REPORT_WAKE		2u	/* the agent's backlog is high: wake the reader now */
#define MW_FN_INLINE		(1u << 16)	/* in mw_event_head.fn: from the agent */
#define MW_AGENT_FREE_BATCH	24	/* releases a report carries at most */

/* A tracked block released: its live key (tgid, tag, addr). */
struct mw_agent_free {
	__u64 addr;
	__u32 tag;
	__u32 pad;
};

struct mw_agent_report {
	__u64 entry_ip;		/* the allocator entry called */
	__u64 entry_sp;		/* rsp at that entry: [entry_sp] is the return address */
	__u64 rbx, rbp, r12, r13, r14, r15;
	__u64 addr;		/* the block allocated */
	__u64 size;
	__u32 fn;		/* enum mw_fn */
	__u32 flags;		/* MW_REPORT_* */
	__u32 tag;		/* its tag: part of its live key */
	__u32 nfrees;		/* releases to apply first, at frees */
	__u64 frees;		/* struct mw_agent_free[nfrees] in the agent */
};

/* Live sampled blocks: (tgid, tag, address) -> sample id. The agent tags
 * each block it tracks uniquely, so a release it reports late cannot hit
 * a newer block at the same address; the uprobe path's tag is 0. */
struct mw_live_key {
	__u32 tgid;
	__u32 tag;
	__u64 addr;
};

/* Per-process ranges of allocator code that call other probed entries. */
struct mw_nest {
	__u64 start[MW_NEST_RANGES];
	__u64 end[MW_NEST_RANGES];
};

/* -- CMD: the stops memwatch's programs sent the command (SIGSTOP at a
 * link-map change, or at exec for a static binary) and those memwatch undid.
 * One slot of an mmapable array: memwatch, and its guardian after memwatch's
 * death, resume the command only while sent > resumed. */
struct mw_stops {
	__u64 sent;		/* written by the programs */
	__u64 resumed;		/* written by memwatch: the sent value it undid */
};

#endif /* MEMWATCH_H */
