/* Where to put a uprobe inside an x86-64 function so that the kernel emulates
 * the probed instruction instead of single-stepping it out of line (here about
 * 0.6 us against 21 us per hit).
 *
 * The kernel (arch/x86/kernel/uprobes.c, 6.18: branch_setup_xol_ops,
 * push_setup_xol_ops) emulates: the nops of x86_nops[1..8] and opcode 0x90
 * with any prefixes; jmp rel8/rel32, call rel32, jcc rel8/rel32 unless they
 * carry a 0x66 prefix (then it refuses the probe); push %reg encoded as 50+r
 * or 41 50+r. It refuses any instruction with an es/cs/ss/ds segment or lock
 * prefix. Everything else it single-steps.
 *
 * The probe moves past the first byte only over instructions that write
 * neither %rsp (a return probe must find the return address at [sp]), nor
 * the return address slot, nor an argument register the probe reads, and
 * that do not transfer control; and only where no branch inside the
 * function lands between the first byte and the probe, so it fires exactly
 * once per call. The decoder (capstone) comes from disasm_new: one per
 * thread. */
#ifndef MW_PLACEMENT_H
#define MW_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct disasm;

#define PLACE_ARG(n) (1u << (n))	/* SysV argument n (0 = rdi ... 5 = r9) */

struct placement {
	uint64_t offset;	/* bytes from the function start */
	bool emulated;		/* the instruction at offset is emulated by the kernel */
	char insn[48];		/* the instruction at offset, e.g. "push r12" */
	char why[96];		/* when !emulated: why the first byte was kept */
};

/* An x86-64 decoder; NULL if capstone cannot be opened. */
struct disasm *disasm_new(void);
void disasm_free(struct disasm *d);

/* code/len: the function body (len = symbol size, or what is available),
 * vaddr: its address. Fills out and returns 0 (offset 0, !emulated when no
 * better place exists); -EINVAL on bad arguments (d NULL included). */
int place_probe(struct disasm *d, const uint8_t *code, size_t len, uint64_t vaddr, unsigned arg_mask,
		struct placement *out);

/* Targets of unconditional direct jumps (jmp rel8/rel32) that leave
 * [vaddr, vaddr+len): tail calls. Returns the number of distinct targets,
 * fills up to max in the order first seen. */
size_t find_tail_calls(struct disasm *d, const uint8_t *code, size_t len, uint64_t vaddr, uint64_t *targets,
		       size_t max);
/* The same for direct calls (call rel32) to functions outside it. */
size_t find_calls(struct disasm *d, const uint8_t *code, size_t len, uint64_t vaddr, uint64_t *targets, size_t max);

#endif
