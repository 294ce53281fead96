/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The in-process agent's memory layout, shared by the agent itself
 * (freestanding C and assembly, mapped into the target) and memwatch (which
 * builds, places, initializes and reads it). Offsets used from assembly are
 * macros; agent.c checks them against the structures.
 *
 * An instance, mapped near the allocator it serves (rel32 reach):
 *
 *   [0, 4K)                  the agent's ELF headers (its file is its image)
 *   [4K, 12K)                header: magic, version, patched entries (memwatch writes it)
 *   [12K, report)            the agent's code
 *   [report, +4K)            report functions: nop5; ret (memwatch's uprobes; never written)
 *   [patch, +MWA_PATCH_BYTES) per-entry code: prelude, original (relocated), descriptor
 *   [image, +CONTROL_BYTES)  control: a MAP_SHARED memfd memwatch maps too (MADV_DONTFORK):
 *                            the backoff, and the ring of released blocks
 *   [image + CONTROL_BYTES, ...) state: private anonymous (MADV_WIPEONFORK): sampler
 *                            parameters, per-thread slots, the live set
 */
#ifndef MW_AGENT_H
#define MW_AGENT_H

#define MWA_PAGE		4096
#define MWA_PATCH_BYTES		(4 * MWA_PAGE)
#define MWA_SLOT_BITS		11
#define MWA_SLOTS		(1 << MWA_SLOT_BITS)
#define MWA_SLOT_SHIFT		6		/* 64-byte slots */
#define MWA_SLOT_PROBES		8		/* slots a thread may take, from its home slot */
#define MWA_WAYS		8		/* addresses per live-set bucket (64 bytes) */
/* Both hashes multiply by this immediate, sign-extended to 64 bits (imul
 * $imm32): thread pointers take the top MWA_SLOT_BITS bits, addresses bits
 * 32 and up masked to the table. */
#define MWA_HASH_IMM		(-0x61c8864f)	/* 0x9e3779b1 as a signed imm32 */
#define MWA_LIVE_SHIFT		26		/* product >> 26, masked: bucket byte offset */

#define MWA_MAGIC		0x746e6567614d574dull	/* "MWAgent" */
#define MWA_HEADER_VERSION	1
#define MWA_HEADER_OFF		MWA_PAGE
#define MWA_HEADER_BYTES	(2 * MWA_PAGE)
#define MWA_MAX_PATCHES		64
#define MWA_MAX_CODES		192
#define MWA_PATCH_MAX		16		/* bytes replaced at one entry */

/* struct mwa_desc: one per hooked entry, after its per-entry code. */
#define D_TRAMP		0	/* the original: insn0 + relocated window, jmp back */
#define D_SLOTS		8	/* &state->slots[0] */
#define D_LIVE		16	/* the live set's buckets */
#define D_LIVE_MASK	24	/* (buckets - 1) << 6 */
#define D_STATE		32
#define D_CONTROL	40
#define D_ENTRY		48	/* the allocator entry (for reports) */
#define D_TWIN		56	/* throwing operator new: its nothrow twin's original */
#define D_FN		64	/* u32 enum mw_fn */
#define D_LAYOUT	68	/* u32 enum mw_layout */
#define D_FLAGS		72	/* u32 MWA_F_* */
#define D_TWIN_ARG	76	/* u32: argument index of the nothrow_t reference */
#define D_SIZE		80

#define MWA_F_WRAP	1u	/* may call other hooked entries: always call the original, marked busy */
#define MWA_F_THROWS	2u	/* C++ throwing new: call through its nothrow twin */

/* struct mwa_rec: built on the stack by the slow-path entry. The report
 * (struct mw_agent_report) comes first: report functions get its address. */
#define R_ENTRY_IP	0
#define R_ENTRY_SP	8
#define R_RBX		16
#define R_RBP		24
#define R_R12		32
#define R_R13		40
#define R_R14		48
#define R_R15		56
#define R_ARGS		104	/* rdi rsi rdx rcx r8 r9 */
#define R_DESC		152
#define R_WHY		160	/* 1: the stub's countdown went <= 0 (sampled) */
#define R_RET		168
#define R_FRAME		184	/* keeps rsp 16-byte aligned at the C call */

#ifndef __ASSEMBLER__
#include <stdint.h>

#include "memwatch.h"

struct mwa_patch {
	uint64_t at;		/* the first byte replaced: entry + len0 */
	uint64_t entry;
	uint32_t code_off;	/* per-entry code, from the instance base */
	uint32_t code_len;
	uint8_t len;		/* bytes replaced */
	uint8_t pad[7];
	uint8_t orig[MWA_PATCH_MAX];	/* as they were */
	uint8_t now[MWA_PATCH_MAX];	/* as memwatch wrote them */
};

/* Per-entry code ever written to the patch area. Code is never rewritten
 * (a thread may be inside it, or hold its descriptor): a later run reuses
 * a block when it would write the same bytes, else appends. */
struct mwa_code {
	uint64_t entry;
	uint32_t off, len;
};

/* Pages 1-2 of an instance, readable through /proc/PID/mem: a later memwatch
 * (this version or another) finds the instance by its mapping, restores the
 * entries it patched, or reuses it when the build matches. */
struct mwa_header {
	uint64_t magic;
	uint32_t version;	/* of this header's layout */
	uint32_t header_bytes;
	uint64_t build;		/* hash of the agent blob */
	uint64_t base;		/* where the instance is mapped */
	uint64_t image_bytes;	/* memfd size: header, code, report page, patch area */
	uint64_t control_off, state_off, state_bytes;
	uint64_t control;	/* the process's control page (the first instance's) */
	uint64_t live_buckets;
	uint64_t report_off;	/* the report page */
	uint64_t patch_off;	/* the patch area */
	uint32_t patch_used;	/* bytes of per-entry code written */
	uint32_t npatches;	/* entries patched now */
	uint32_t ncodes;
	uint32_t pad;
	struct mwa_patch patches[MWA_MAX_PATCHES];
	struct mwa_code codes[MWA_MAX_CODES];
};

/* One thread's sampler, 64 bytes. owner is its thread pointer (%fs:0),
 * with bit 0 set while it runs an original the agent called (inner hooked
 * calls then pass through). */
struct mwa_slot {
	uint64_t owner;
	int64_t countdown;	/* bytes until the next sample point */
	uint64_t rng;		/* xorshift64* */
	uint64_t nested;	/* calls inside an original the agent called */
	uint64_t pad[4];
};

#define MW_EXP_CELLS 4096	/* = MW_EXP_SIZE (include/memwatch.h) */

/* The private state. memwatch writes it while no thread can reach the
 * agent (before patching, or with every thread stopped). */
struct mwa_state {
	uint64_t enabled;	/* 0 (and after fork: WIPEONFORK) means pass everything through */
	uint64_t sample_bytes;	/* <= 1: every call */
	uint64_t seed;
	uint64_t alloc_only;	/* no live set: frees are not hooked */
	uint64_t pad0;
	uint64_t next_tag;	/* tags of tracked blocks (live keys) */
	uint64_t pad[2];
	uint64_t exp_edges[MW_EXP_CELLS + 1];	/* R * -ln(k / cells) */
};

#define MWA_SLOTS_OFF	(((sizeof(struct mwa_state) + MWA_PAGE - 1) / MWA_PAGE) * MWA_PAGE)
#define MWA_LIVE_OFF	(MWA_SLOTS_OFF + MWA_SLOTS * sizeof(struct mwa_slot))
/* The live set: buckets of MWA_WAYS addresses (64 bytes) at MWA_LIVE_OFF,
 * then the same number of buckets of MWA_WAYS 32-bit tags. */
#define MWA_LIVE_BYTES(buckets)	((buckets) * (64 + 32))

/* The control page, shared with memwatch: the no-loss backoff. Each
 * sampled call takes a ticket and waits until fewer than limit reports are
 * in the ring (tickets beyond consumed + abandoned + limit wait). It stops
 * waiting, and reporting, once memwatch's heartbeat stalls (dead,
 * detached) or it consumes nothing for seconds (stuck). */
/*
 * Releases of tracked blocks go to memwatch through the control memfd, not
 * through the kernel: a ring of live keys the agent's threads append to
 * (claim a position, write, then publish the lap) and memwatch drains. Its
 * mapping outlives the target, so releases made just before an exit are
 * not lost. A late release is harmless: each key is unique (its tag). With
 * the ring full, a release is reported through the kernel instead.
 */
#define MWA_RELEASES		4096
#define MWA_CONTROL_BYTES	(MWA_PAGE + MWA_RELEASES * 16)

struct mwa_release {
	uint64_t addr;
	uint32_t tag;
	uint32_t lap;		/* position / MWA_RELEASES + 1, once written */
};

struct mwa_control {
	uint64_t heartbeat;	/* memwatch: bumped every few milliseconds */
	uint64_t consumed;	/* memwatch: reports out of the ring (read or dropped) */
	uint64_t limit;		/* memwatch: reports in flight allowed; 0: never wait */
	uint64_t closed;	/* memwatch: detached; report nothing */
	uint64_t generation;	/* memwatch: bumped when it resets the counters */
	uint64_t rel_tail;	/* memwatch: releases drained */
	uint64_t pad0[2];
	uint64_t issued;	/* agent: tickets taken */
	uint64_t abandoned;	/* agent: tickets given up */
	uint64_t gone;		/* agent: the observer stopped answering (until memwatch clears it) */
	uint64_t waits;		/* agent: sampled calls that had to wait */
	uint64_t rel_head;	/* agent: releases claimed */
	uint64_t rel_full;	/* agent: releases reported through the kernel (ring full) */
	/* Counts of sampled calls, here rather than in the private state so
	 * that memwatch can still read them after the target exited. */
	uint64_t samples;	/* agent: allocations reported */
	uint64_t frees;		/* agent: releases of tracked blocks */
	uint64_t lost;		/* agent: sampled calls not reported (observer gone, or stuck) */
	uint64_t untracked;	/* agent: sampled blocks the live set had no room for */
	uint64_t slot_misses;	/* agent: calls that found no thread slot (passed through) */
	uint64_t pad1[1];
};

#define MWA_RELEASE_RING(control) ((struct mwa_release *)((char *)(control) + MWA_PAGE))

struct mwa_desc {
	uint64_t tramp, slots, live, live_mask, state, control, entry, twin;
	uint32_t fn, layout, flags, twin_arg;
};
#endif

#endif /* MW_AGENT_H */
