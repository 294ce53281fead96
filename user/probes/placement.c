#include "probes/placement.h"

#include <capstone/capstone.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/array.h"
#include "util/text.h"

#define MAX_SCAN 16

struct disasm {
	csh h;
};

struct disasm *disasm_new(void)
{
	struct disasm *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &d->h) != CS_ERR_OK) {
		free(d);
		return NULL;
	}
	cs_option(d->h, CS_OPT_DETAIL, CS_OPT_ON);
	return d;
}

void disasm_free(struct disasm *d)
{
	if (!d)
		return;
	cs_close(&d->h);
	free(d);
}

/* ---- what the kernel emulates (arch/x86/kernel/uprobes.c) ---- */

/* x86_nops[] of a 64-bit kernel (arch/x86/include/asm/nops.h), lengths 1-8.
 * NOP9-11 carry a cs prefix, which makes the kernel refuse the probe. */
static const uint8_t x86_nops[9][8] = {
	[1] = { 0x90 },
	[2] = { 0x66, 0x90 },
	[3] = { 0x0f, 0x1f, 0x00 },
	[4] = { 0x0f, 0x1f, 0x40, 0x00 },
	[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 },
	[6] = { 0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00 },
	[7] = { 0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00 },
	[8] = { 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00 },
};

struct prefixes {
	size_t len;		/* legacy prefixes + REX */
	uint8_t rex;		/* 0 if none */
	bool opsize;		/* 0x66 */
	bool refused;		/* es/cs/ss/ds or lock: is_prefix_bad() */
};

static struct prefixes scan_prefixes(const uint8_t *b, size_t size)
{
	struct prefixes p = { 0 };
	for (; p.len < size; p.len++) {
		uint8_t c = b[p.len];
		if (c == 0x26 || c == 0x2e || c == 0x36 || c == 0x3e || c == 0xf0)
			p.refused = true;
		else if (c == 0x66)
			p.opsize = true;
		else if (c != 0x64 && c != 0x65 && c != 0x67 && c != 0xf2 && c != 0xf3)
			break;
	}
	if (p.len < size && (b[p.len] & 0xf0) == 0x40)
		p.rex = b[p.len++];
	return p;
}

static bool is_relative_branch(const uint8_t *op, size_t left)
{
	if (op[0] == 0xeb || op[0] == 0xe9 || op[0] == 0xe8 || (op[0] >= 0x70 && op[0] <= 0x7f))
		return true;
	return left >= 2 && op[0] == 0x0f && (op[1] & 0xf0) == 0x80;
}

/* Whether the kernel emulates the instruction b[0..size) instead of
 * single-stepping it. */
static bool kernel_emulates(const uint8_t *b, size_t size)
{
	struct prefixes p = scan_prefixes(b, size);
	if (p.refused || p.len >= size)
		return false;
	if (size < sizeof(x86_nops) / sizeof(x86_nops[0]) && !memcmp(b, x86_nops[size], size))
		return true;
	const uint8_t *op = b + p.len;
	/* The kernel treats opcode 0x90 with any prefix as a nop, even 41 90
	 * (xchg %eax,%r8d): probing that would skip the exchange. */
	if (op[0] == 0x90)
		return !(p.rex & 1);
	if (is_relative_branch(op, size - p.len))
		return !p.opsize;	/* 0x66 branches: -ENOTSUPP */
	if (op[0] >= 0x50 && op[0] <= 0x57)
		return size == 1 || (size == 2 && b[0] == 0x41);
	return false;
}

/* ---- what an instruction does, from capstone ---- */

static const char *const arg_reg_names[] = { "rdi", "rsi", "rdx", "rcx", "r8", "r9" };

/* SysV argument index of any part of an argument register, or -1. */
static int arg_index(uint16_t reg)
{
	switch (reg) {
	case X86_REG_RDI: case X86_REG_EDI: case X86_REG_DI: case X86_REG_DIL:
		return 0;
	case X86_REG_RSI: case X86_REG_ESI: case X86_REG_SI: case X86_REG_SIL:
		return 1;
	case X86_REG_RDX: case X86_REG_EDX: case X86_REG_DX: case X86_REG_DL: case X86_REG_DH:
		return 2;
	case X86_REG_RCX: case X86_REG_ECX: case X86_REG_CX: case X86_REG_CL: case X86_REG_CH:
		return 3;
	case X86_REG_R8: case X86_REG_R8D: case X86_REG_R8W: case X86_REG_R8B:
		return 4;
	case X86_REG_R9: case X86_REG_R9D: case X86_REG_R9W: case X86_REG_R9B:
		return 5;
	default:
		return -1;
	}
}

static bool is_stack_pointer(uint16_t reg)
{
	return reg == X86_REG_RSP || reg == X86_REG_ESP || reg == X86_REG_SP || reg == X86_REG_SPL;
}

static bool transfers_control(const cs_insn *insn)
{
	const cs_detail *d = insn->detail;
	for (uint8_t i = 0; i < d->groups_count; i++) {
		switch (d->groups[i]) {
		case CS_GRP_JUMP: case CS_GRP_CALL: case CS_GRP_RET: case CS_GRP_INT: case CS_GRP_IRET:
			return true;
		}
	}
	switch (insn->id) {
	case X86_INS_UD2: case X86_INS_UD2B: case X86_INS_INT3: case X86_INS_HLT:
	case X86_INS_SYSCALL: case X86_INS_SYSENTER:
		return true;
	default:
		return false;
	}
}

/* Whether a memory write may touch the return address at [rsp, rsp+8). */
static bool writes_return_slot(const cs_insn *insn)
{
	const cs_x86 *x = &insn->detail->x86;
	for (uint8_t i = 0; i < x->op_count; i++) {
		const cs_x86_op *op = &x->operands[i];
		if (op->type != X86_OP_MEM || !(op->access & CS_AC_WRITE) || !is_stack_pointer(op->mem.base))
			continue;
		if (op->mem.index != X86_REG_INVALID || (op->mem.disp < 8 && op->mem.disp + op->size > 0))
			return true;
	}
	return false;
}

static void describe(const cs_insn *insn, char *buf, size_t size)
{
	put_text(buf, size, "%s%s%s", insn->mnemonic, insn->op_str[0] ? " " : "", insn->op_str);
}

/* Why the scan cannot move past insn, or false (why untouched) if it can. */
static bool blocks_scan(csh h, const cs_insn *insn, uint64_t off, unsigned arg_mask, char *why, size_t size)
{
	char text[48];
	describe(insn, text, sizeof(text));
	if (transfers_control(insn)) {
		put_text(why, size, "%s at +%llu leaves the entry path", text, (unsigned long long)off);
		return true;
	}
	cs_regs read, written;
	uint8_t nread, nwritten;
	if (cs_regs_access(h, insn, read, &nread, written, &nwritten) != CS_ERR_OK) {
		put_text(why, size, "capstone cannot describe %s at +%llu", text, (unsigned long long)off);
		return true;
	}
	for (uint8_t i = 0; i < nwritten; i++) {
		int arg = arg_index(written[i]);
		if (is_stack_pointer(written[i])) {
			put_text(why, size, "%s at +%llu moves rsp", text, (unsigned long long)off);
			return true;
		}
		if (arg >= 0 && (arg_mask & PLACE_ARG(arg))) {
			put_text(why, size, "%s at +%llu writes %s (argument %d)", text,
				 (unsigned long long)off, arg_reg_names[arg], arg);
			return true;
		}
	}
	if (writes_return_slot(insn)) {
		put_text(why, size, "%s at +%llu may write the return address", text, (unsigned long long)off);
		return true;
	}
	return false;
}

/* ---- whole-body sweeps ---- */

static bool direct_branch_target(csh h, const cs_insn *insn, uint64_t *target)
{
	const cs_x86 *x = &insn->detail->x86;
	bool branch = cs_insn_group(h, insn, CS_GRP_JUMP) || cs_insn_group(h, insn, CS_GRP_CALL);
	if (!branch || x->op_count != 1 || x->operands[0].type != X86_OP_IMM)
		return false;
	*target = (uint64_t)x->operands[0].imm;
	return true;
}

typedef void (*visit_fn)(csh h, const cs_insn *insn, void *arg);

/* Linear sweep over code, stepping one byte past what does not decode. */
static int sweep(csh h, const uint8_t *code, size_t len, uint64_t vaddr, visit_fn visit, void *arg)
{
	cs_insn *insn = cs_malloc(h);
	if (!insn)
		return -ENOMEM;
	while (len > 0) {
		if (cs_disasm_iter(h, &code, &len, &vaddr, insn)) {
			visit(h, insn, arg);
			continue;
		}
		code++;
		len--;
		vaddr++;
	}
	cs_free(insn, 1);
	return 0;
}

struct first_target {
	uint64_t start;		/* the function's first byte */
	uint64_t lowest;	/* lowest branch target past start, or the function's end */
};

static void note_internal_target(csh h, const cs_insn *insn, void *arg)
{
	struct first_target *ft = arg;
	uint64_t target;
	if (direct_branch_target(h, insn, &target) && target > ft->start && target < ft->lowest)
		ft->lowest = target;
}

/* Direct jumps (or calls) whose target lies outside the function. */
struct exits {
	unsigned insn_id;	/* X86_INS_JMP or X86_INS_CALL */
	uint64_t start, end;
	uint64_t *seen;
	size_t count, cap;
};

static void note_exit(csh h, const cs_insn *insn, void *arg)
{
	struct exits *tc = arg;
	uint64_t target;
	if (insn->id != tc->insn_id || !direct_branch_target(h, insn, &target))
		return;
	if (target >= tc->start && target < tc->end)
		return;
	for (size_t i = 0; i < tc->count; i++)
		if (tc->seen[i] == target)
			return;
	if (ARRAY_GROW(tc->seen, tc->count, tc->cap))
		return;	/* out of memory: report what was found */
	tc->seen[tc->count++] = target;
}

static size_t find_exits(struct disasm *d, unsigned insn_id, const uint8_t *code, size_t len, uint64_t vaddr,
			 uint64_t *targets, size_t max)
{
	struct exits tc = { .insn_id = insn_id, .start = vaddr, .end = vaddr + len };
	if (!d || !code || sweep(d->h, code, len, vaddr, note_exit, &tc))
		return 0;
	for (size_t i = 0; i < tc.count && i < max; i++)
		targets[i] = tc.seen[i];
	free(tc.seen);
	return tc.count;
}

size_t find_tail_calls(struct disasm *d, const uint8_t *code, size_t len, uint64_t vaddr, uint64_t *targets,
		       size_t max)
{
	return find_exits(d, X86_INS_JMP, code, len, vaddr, targets, max);
}

size_t find_calls(struct disasm *d, const uint8_t *code, size_t len, uint64_t vaddr, uint64_t *targets, size_t max)
{
	return find_exits(d, X86_INS_CALL, code, len, vaddr, targets, max);
}

/* ---- the entry scan ---- */

/* The scan takes an emulated first instruction, so this one is not. */
static void keep_first_byte(struct placement *out, const cs_insn *first)
{
	out->offset = 0;
	out->emulated = false;
	if (first)
		describe(first, out->insn, sizeof(out->insn));
}

/* Walks the entry path of code looking for an emulated instruction; fills out
 * with it, or with why there is none (out->emulated false). */
static void scan_entry(csh h, cs_insn *insn, const uint8_t *code, size_t len, uint64_t vaddr,
		       uint64_t first_target, unsigned arg_mask, struct placement *out)
{
	uint64_t off = 0;
	for (int n = 0; n < MAX_SCAN; n++) {
		const uint8_t *p = code + off;
		size_t left = len - off;
		uint64_t addr = vaddr + off;
		if (!left) {
			put_text(out->why, sizeof(out->why), "code ends at +%llu", (unsigned long long)off);
			return;
		}
		if (!cs_disasm_iter(h, &p, &left, &addr, insn)) {
			put_text(out->why, sizeof(out->why), "cannot decode +%llu", (unsigned long long)off);
			return;
		}
		if (off > 0 && vaddr + off >= first_target) {
			put_text(out->why, sizeof(out->why), "a branch inside the function lands at +%llu",
				 (unsigned long long)(first_target - vaddr));
			return;
		}
		if (kernel_emulates(insn->bytes, insn->size)) {
			out->offset = off;
			out->emulated = true;
			describe(insn, out->insn, sizeof(out->insn));
			return;
		}
		if (blocks_scan(h, insn, off, arg_mask, out->why, sizeof(out->why)))
			return;
		off += insn->size;
	}
	put_text(out->why, sizeof(out->why), "no emulated instruction in the first %d", MAX_SCAN);
}

int place_probe(struct disasm *d, const uint8_t *code, size_t len, uint64_t vaddr, unsigned arg_mask,
		struct placement *out)
{
	if (!d || !code || !len || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	struct first_target ft = { .start = vaddr, .lowest = vaddr + len };
	csh h = d->h;
	int err = sweep(h, code, len, vaddr, note_internal_target, &ft);
	if (err)
		return err;
	cs_insn *insn = cs_malloc(h);
	if (!insn)
		return -ENOMEM;
	scan_entry(h, insn, code, len, vaddr, ft.lowest, arg_mask, out);
	if (!out->emulated) {
		const uint8_t *p = code;
		size_t left = len;
		uint64_t addr = vaddr;
		keep_first_byte(out, cs_disasm_iter(h, &p, &left, &addr, insn) ? insn : NULL);
	}
	cs_free(insn, 1);
	return 0;
}
