/* Detours at allocator entries: where one can go, and its code.
 *
 * The entry's first instruction stays in place (another tool's uprobe at
 * the function's first byte keeps working: the kernel runs the file's
 * instruction and continues at the second); the 5+ bytes after it (the
 * window) become a jmp to the entry's prelude, which undoes the first
 * instruction's effect on the stack and jumps to the agent's stub. The
 * entry's original is the first instruction again plus the window,
 * relocated, then a jmp back past the window.
 *
 * Only forms proven safe are accepted (capstone decodes them): a first
 * instruction that is a push, a sub from %rsp, or one that writes no
 * memory, only scratch registers it does not read, and none of the
 * layout's arguments; window instructions without control transfer
 * (copied, RIP-relative operands re-based) or with a direct jmp/jcc
 * (widened to rel32). Anything else, a window some branch lands in, or a
 * target out of rel32 reach: refused, with the reason. */
#ifndef MW_DETOUR_H
#define MW_DETOUR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DETOUR_MAX_INSNS 8
#define DETOUR_MAX_BYTES 16	/* first instruction + window (MWA_PATCH_MAX) */

enum detour_undo {
	UNDO_NONE,		/* the first instruction only wrote scratch registers or flags */
	UNDO_PUSH,		/* push: lea 8(%rsp), %rsp */
	UNDO_SUB_SP,		/* sub $n, %rsp: lea n(%rsp), %rsp */
};

struct detour {
	uint8_t len0;		/* the first instruction, kept */
	uint8_t wlen;		/* the window after it, replaced (>= 5) */
	enum detour_undo undo;
	int32_t undo_bytes;	/* UNDO_SUB_SP: n */
	uint8_t bytes[DETOUR_MAX_BYTES];	/* the first len0 + wlen bytes */
	uint8_t ninsns;		/* the first instruction and the window's */
	uint8_t insn_off[DETOUR_MAX_INSNS];
	char text[128];		/* "push r12 | push rbp; push rbx; mov rbx, rdi", for -v */
	char why[128];		/* when refused */
};

#define DETOUR_ARG(n) (1u << (n))	/* SysV argument n (0 = rdi ... 5 = r9) */
#define DETOUR_CLOBBERS_RDX (1u << 8)	/* the stub uses %rdx (calloc's) */

/* Plans a detour for the function at vaddr whose first len bytes are code
 * (len: the symbol's size, or what is available). flags: DETOUR_ARG bits of
 * the arguments the stub reads, and DETOUR_CLOBBERS_RDX. 0 with *out
 * filled; -EPERM with out->why when the entry cannot be detoured safely;
 * -ENOSYS if capstone cannot be opened. */
int detour_plan(const uint8_t *code, size_t len, uint64_t vaddr, unsigned flags, struct detour *out);

/* Direct branch targets (jmp, jcc, call; rel8 and rel32) of the
 * instructions in code[0, len) at vaddr, decoded in order. Returns the
 * count (up to max filled), or -EPERM if the bytes do not decode to the end. */
ssize_t detour_branch_targets(const uint8_t *code, size_t len, uint64_t vaddr, uint64_t *out, size_t max);

/* Where a rel32 jmp, call or jcc encoding in text (at vaddr) lands in
 * [lo, hi), read at every byte offset: a superset of the real branches
 * (bytes inside other instructions look like branches too), for the caller
 * to confirm by decoding. Bytes in [skip_lo, skip_hi) are ignored. Returns
 * the count, fills up to max source addresses. */
size_t detour_text_branch_sources(const uint8_t *text, size_t len, uint64_t vaddr, uint64_t lo, uint64_t hi,
				  uint64_t skip_lo, uint64_t skip_hi, uint64_t *out, size_t max);

/* The original: the first instruction and the window relocated to run at
 * dst (entry: the function's runtime address), then a jmp to entry + len0
 * + wlen. Returns its length, or -ERANGE when a target is out of reach,
 * -ENOSPC when max is too small. */
ssize_t detour_original(const struct detour *d, uint64_t entry, uint64_t dst, uint8_t *out, size_t max);

/* The prelude at dst: the undo, lea desc(%rip), %r11, jmp stub. */
ssize_t detour_prelude(const struct detour *d, uint64_t dst, uint64_t desc, uint64_t stub, uint8_t *out, size_t max);

/* The bytes that replace the window at entry + len0: jmp prelude, then
 * int3 filler. -ERANGE when the prelude is out of reach. */
int detour_patch(const struct detour *d, uint64_t entry, uint64_t prelude, uint8_t out[DETOUR_MAX_BYTES]);

#endif
