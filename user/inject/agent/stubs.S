/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The agent's fast paths, one per argument layout, and its report
 * functions. A patched entry runs its first instruction in place, then
 * jumps to its prelude, which undoes that instruction's effect on the stack,
 * loads the entry's descriptor into %r11 and jumps here. Registers: the
 * layout's arguments are untouched; %rax, %r10, %r11 (and %rdx in calloc,
 * which has two arguments) are scratch, which the ABI allows at a function's
 * entry. Nothing here touches the stack: an unsampled call leaves no frame.
 *
 * Unsampled allocation: the thread's slot (its home slot, owned and not
 * busy), countdown -= size, tail-jump to the original. Free: the address's
 * live-set bucket, 8 compares, tail-jump. Everything else goes to
 * mwa_slow_entry with %eax = 1 if the countdown ran out, 0 if undecided.
 */
#include "inject/agent/agent.h"

	.section .text.mwa.stubs, "ax"

/* %rax = the calling thread's home slot; %r10 = its thread pointer. */
.macro home_slot
	movq	%fs:0, %r10
	imulq	$MWA_HASH_IMM, %r10, %rax
	shrq	$(64 - MWA_SLOT_BITS), %rax
	shlq	$MWA_SLOT_SHIFT, %rax
	addq	D_SLOTS(%r11), %rax
.endm

/* countdown -= \size; the original unless it ran out. */
.macro countdown size
	home_slot
	cmpq	%r10, (%rax)
	jne	9f
	subq	\size, 8(%rax)
	jle	8f
	jmp	*D_TRAMP(%r11)
8:	movl	$1, %eax
	jmp	mwa_slow_entry
9:	xorl	%eax, %eax
	jmp	mwa_slow_entry
.endm

/* Jumps to \hit when \reg is in the live set; %rax is clobbered. */
.macro live_lookup reg, hit
	imulq	$MWA_HASH_IMM, \reg, %rax
	shrq	$MWA_LIVE_SHIFT, %rax
	andq	D_LIVE_MASK(%r11), %rax
	addq	D_LIVE(%r11), %rax
	cmpq	\reg, 0(%rax)
	je	\hit
	cmpq	\reg, 8(%rax)
	je	\hit
	cmpq	\reg, 16(%rax)
	je	\hit
	cmpq	\reg, 24(%rax)
	je	\hit
	cmpq	\reg, 32(%rax)
	je	\hit
	cmpq	\reg, 40(%rax)
	je	\hit
	cmpq	\reg, 48(%rax)
	je	\hit
	cmpq	\reg, 56(%rax)
	je	\hit
.endm

	.globl	mwa_stub_size0
	.hidden	mwa_stub_size0
	.p2align 4
mwa_stub_size0:			/* malloc(size), valloc, pvalloc, new, mallocx */
	countdown %rdi

	.globl	mwa_stub_size1
	.hidden	mwa_stub_size1
	.p2align 4
mwa_stub_size1:			/* aligned_alloc(align, size), memalign */
	countdown %rsi

	.globl	mwa_stub_size2
	.hidden	mwa_stub_size2
	.p2align 4
mwa_stub_size2:			/* posix_memalign(&out, align, size) */
	countdown %rdx

	.globl	mwa_stub_calloc
	.hidden	mwa_stub_calloc
	.p2align 4
mwa_stub_calloc:		/* calloc(count, size) */
	movq	%rdi, %rax
	mulq	%rsi
	jc	1f		/* overflows: allocates nothing */
	movq	%rax, %rdx
	countdown %rdx
1:	jmp	*D_TRAMP(%r11)

	.globl	mwa_stub_realloc
	.hidden	mwa_stub_realloc
	.p2align 4
mwa_stub_realloc:		/* realloc(old, size), rallocx */
	testq	%rdi, %rdi
	jz	1f
	live_lookup %rdi, 2f
1:	countdown %rsi
2:	xorl	%eax, %eax
	jmp	mwa_slow_entry

	.globl	mwa_stub_free
	.hidden	mwa_stub_free
	.p2align 4
mwa_stub_free:			/* free(p), operator delete, dallocx, sdallocx */
	testq	%rdi, %rdi
	jz	1f
	live_lookup %rdi, 2f
1:	jmp	*D_TRAMP(%r11)
2:	xorl	%eax, %eax
	jmp	mwa_slow_entry

	.globl	mwa_stub_slow
	.hidden	mwa_stub_slow
	.p2align 4
mwa_stub_slow:			/* entries that always need the slow path */
	xorl	%eax, %eax
	/* fall through */

/*
 * The slow path: a record on the stack (the caller's callee-saved
 * registers, the arguments, rsp at entry), then mwa_slow(record). It
 * returns 0: pass the call through unchanged (arguments restored,
 * tail-jump to the original); or nonzero: the call is done, the result is
 * in the record.
 */
	.globl	mwa_slow_entry
	.hidden	mwa_slow_entry
	.type	mwa_slow_entry, @function
mwa_slow_entry:
	.cfi_startproc		/* a function's entry: the caller's return address at (%rsp) */
	subq	$R_FRAME, %rsp
	.cfi_adjust_cfa_offset R_FRAME
	movq	%rbx, R_RBX(%rsp)
	movq	%rbp, R_RBP(%rsp)
	movq	%r12, R_R12(%rsp)
	movq	%r13, R_R13(%rsp)
	movq	%r14, R_R14(%rsp)
	movq	%r15, R_R15(%rsp)
	movq	%rdi, R_ARGS+0(%rsp)
	movq	%rsi, R_ARGS+8(%rsp)
	movq	%rdx, R_ARGS+16(%rsp)
	movq	%rcx, R_ARGS+24(%rsp)
	movq	%r8, R_ARGS+32(%rsp)
	movq	%r9, R_ARGS+40(%rsp)
	leaq	R_FRAME(%rsp), %r10
	movq	%r10, R_ENTRY_SP(%rsp)
	movq	%r11, R_DESC(%rsp)
	movq	%rax, R_WHY(%rsp)
	movq	%rsp, %rdi
	call	mwa_slow
	testq	%rax, %rax
	jnz	1f
	movq	R_DESC(%rsp), %r11
	movq	R_ARGS+0(%rsp), %rdi
	movq	R_ARGS+8(%rsp), %rsi
	movq	R_ARGS+16(%rsp), %rdx
	movq	R_ARGS+24(%rsp), %rcx
	movq	R_ARGS+32(%rsp), %r8
	movq	R_ARGS+40(%rsp), %r9
	addq	$R_FRAME, %rsp
	.cfi_adjust_cfa_offset -R_FRAME
	jmp	*D_TRAMP(%r11)
1:	.cfi_adjust_cfa_offset R_FRAME
	movq	R_RET(%rsp), %rax
	addq	$R_FRAME, %rsp
	.cfi_adjust_cfa_offset -R_FRAME
	ret
	.cfi_endproc
	.size	mwa_slow_entry, . - mwa_slow_entry

/*
 * Raw system calls for the backoff (nanosleep, clock_gettime).
 */
	.globl	mwa_syscall2
	.hidden	mwa_syscall2
	.p2align 4
mwa_syscall2:			/* (nr, a0, a1) */
	movq	%rdi, %rax
	movq	%rsi, %rdi
	movq	%rdx, %rsi
	syscall
	ret

/*
 * Report functions, on a page of their own that nothing writes: each
 * starts with a 5-byte nop, which the kernel turns into a call when a
 * uprobe sits on it (much cheaper than a trap). %rdi: struct
 * mw_agent_report *.
 */
	.section .mwa.report, "ax"
	.p2align 4
	.globl	mwa_report_alloc
	.hidden	mwa_report_alloc
	.type	mwa_report_alloc, @function
mwa_report_alloc:		/* a sampled allocation, and the releases pending */
	.byte	0x0f, 0x1f, 0x44, 0x00, 0x00
	ret
	.p2align 4
	.globl	mwa_report_frees
	.hidden	mwa_report_frees
	.type	mwa_report_frees, @function
mwa_report_frees:		/* a batch of releases of tracked blocks */
	.byte	0x0f, 0x1f, 0x44, 0x00, 0x00
	ret

	.section .note.GNU-stack, "", @progbits
