/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Everything in memwatch's BPF programs that depends on the architecture,
 * x86_64 only for now: the user registers in DWARF numbering, the stack and
 * instruction pointers, the thread pointer, where the kernel puts its
 * uretprobe trampoline, the page fault error code, and syscall numbers.
 * Another architecture is another branch of this header.
 */
#ifndef MW_BPF_ARCH_H
#define MW_BPF_ARCH_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include "memwatch.h"

#if defined(__TARGET_ARCH_x86)

#define ARCH_PAGE_SHIFT 12

/* The user stack and instruction pointers of a register set. */
#define arch_sp(regs) ((regs)->sp)
#define arch_ip(regs) ((regs)->ip)

/* The thread pointer: above it lie the thread's TLS and libc's thread
 * descriptor, never stack frames. */
static __always_inline __u64 arch_thread_pointer(struct task_struct *task)
{
	return BPF_CORE_READ(task, thread.fsbase);
}

/* Where the kernel puts its uretprobe trampoline: the [uprobes] page, as
 * high in the address space as it fits; no code lies above this. */
#define ARCH_URETPROBE_AREA_MIN 0x7ff000000000ull

/* The registers an unwinder starts from, in DWARF x86_64 numbering (rip
 * last: MW_NREGS). */
static __always_inline void arch_dwarf_regs(__u64 out[MW_NREGS], const struct pt_regs *regs)
{
	out[0] = regs->ax;
	out[1] = regs->dx;
	out[2] = regs->cx;
	out[3] = regs->bx;
	out[4] = regs->si;
	out[5] = regs->di;
	out[6] = regs->bp;
	out[7] = regs->sp;
	out[8] = regs->r8;
	out[9] = regs->r9;
	out[10] = regs->r10;
	out[11] = regs->r11;
	out[12] = regs->r12;
	out[13] = regs->r13;
	out[14] = regs->r14;
	out[15] = regs->r15;
	out[16] = regs->ip;
}

/* A user page fault's error code: bit 0 set means a protection fault on a
 * page that is present, not a page brought in. */
static __always_inline bool arch_fault_not_present(unsigned long error_code)
{
	return !(error_code & 1);
}

/* The first three arguments of a syscall, from the user registers. */
#define arch_syscall_arg0(regs) ((regs)->di)
#define arch_syscall_arg1(regs) ((regs)->si)
#define arch_syscall_arg2(regs) ((regs)->dx)

/* The syscalls the kernel side times (enum mw_syscall), by number. */
static __always_inline __u32 arch_syscall_index(long nr)
{
	switch (nr) {
	case 28: return MW_SC_MADVISE;
	case 9: return MW_SC_MMAP;
	case 11: return MW_SC_MUNMAP;
	case 12: return MW_SC_BRK;
	case 25: return MW_SC_MREMAP;
	}
	return MW_SC_COUNT;
}

#else
#error "memwatch's BPF programs support x86_64 only (bpf/lib/arch.h)"
#endif

#endif /* MW_BPF_ARCH_H */
