#include "inject/detour.h"

#include <capstone/capstone.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define JMP_LEN 5

struct decoder {
	csh cs;
	cs_insn *insn;
};

static int decoder_open(struct decoder *dec)
{
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &dec->cs) != CS_ERR_OK)
		return -ENOSYS;
	cs_option(dec->cs, CS_OPT_DETAIL, CS_OPT_ON);
	dec->insn = cs_malloc(dec->cs);
	if (!dec->insn) {
		cs_close(&dec->cs);
		return -ENOMEM;
	}
	return 0;
}

static void decoder_close(struct decoder *dec)
{
	cs_free(dec->insn, 1);
	cs_close(&dec->cs);
}

/* Decodes the instruction at code[off]; false at the end or on bad bytes. */
static bool decode_at(struct decoder *dec, const uint8_t *code, size_t len, size_t off, uint64_t vaddr)
{
	const uint8_t *p = code + off;
	size_t left = len - off;
	uint64_t addr = vaddr + off;

	return off < len && cs_disasm_iter(dec->cs, &p, &left, &addr, dec->insn);
}

static int refuse(struct detour *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->why, sizeof(d->why), fmt, ap);
	va_end(ap);
	return -EPERM;
}

/* ---- registers ---- */

/* The 64-bit general-purpose register a register is part of, rip, or
 * X86_REG_INVALID. */
static unsigned reg_family(unsigned reg)
{
	static const unsigned families[][5] = {
		{ X86_REG_RAX, X86_REG_EAX, X86_REG_AX, X86_REG_AL, X86_REG_AH },
		{ X86_REG_RBX, X86_REG_EBX, X86_REG_BX, X86_REG_BL, X86_REG_BH },
		{ X86_REG_RCX, X86_REG_ECX, X86_REG_CX, X86_REG_CL, X86_REG_CH },
		{ X86_REG_RDX, X86_REG_EDX, X86_REG_DX, X86_REG_DL, X86_REG_DH },
		{ X86_REG_RSI, X86_REG_ESI, X86_REG_SI, X86_REG_SIL, 0 },
		{ X86_REG_RDI, X86_REG_EDI, X86_REG_DI, X86_REG_DIL, 0 },
		{ X86_REG_RBP, X86_REG_EBP, X86_REG_BP, X86_REG_BPL, 0 },
		{ X86_REG_RSP, X86_REG_ESP, X86_REG_SP, X86_REG_SPL, 0 },
		{ X86_REG_R8, X86_REG_R8D, X86_REG_R8W, X86_REG_R8B, 0 },
		{ X86_REG_R9, X86_REG_R9D, X86_REG_R9W, X86_REG_R9B, 0 },
		{ X86_REG_R10, X86_REG_R10D, X86_REG_R10W, X86_REG_R10B, 0 },
		{ X86_REG_R11, X86_REG_R11D, X86_REG_R11W, X86_REG_R11B, 0 },
		{ X86_REG_R12, X86_REG_R12D, X86_REG_R12W, X86_REG_R12B, 0 },
		{ X86_REG_R13, X86_REG_R13D, X86_REG_R13W, X86_REG_R13B, 0 },
		{ X86_REG_R14, X86_REG_R14D, X86_REG_R14W, X86_REG_R14B, 0 },
		{ X86_REG_R15, X86_REG_R15D, X86_REG_R15W, X86_REG_R15B, 0 },
		{ X86_REG_RIP, X86_REG_EIP, X86_REG_IP, 0, 0 },
	};

	for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++)
		for (size_t i = 0; i < 5 && families[f][i]; i++)
			if (families[f][i] == reg)
				return families[f][0];
	return X86_REG_INVALID;
}

static int arg_of(unsigned family)
{
	static const unsigned args[] = { X86_REG_RDI, X86_REG_RSI, X86_REG_RDX, X86_REG_RCX, X86_REG_R8, X86_REG_R9 };

	for (int i = 0; i < 6; i++)
		if (args[i] == family)
			return i;
	return -1;
}

/* Registers the stubs may clobber before the original runs. */
static bool stub_clobbers(unsigned family, unsigned flags)
{
	return family == X86_REG_RAX || family == X86_REG_R10 || family == X86_REG_R11 ||
	       (family == X86_REG_RDX && (flags & DETOUR_CLOBBERS_RDX));
}

static bool scratch(unsigned family)
{
	switch (family) {
	case X86_REG_RAX: case X86_REG_RCX: case X86_REG_RDX: case X86_REG_RSI: case X86_REG_RDI:
	case X86_REG_R8: case X86_REG_R9: case X86_REG_R10: case X86_REG_R11:
		return true;
	default:
		return false;
	}
}

/* ---- the first instruction ---- */

static bool is_control(const cs_insn *insn)
{
	const cs_detail *det = insn->detail;

	for (uint8_t i = 0; i < det->groups_count; i++)
		switch (det->groups[i]) {
		case CS_GRP_JUMP: case CS_GRP_CALL: case CS_GRP_RET: case CS_GRP_INT: case CS_GRP_IRET:
			return true;
		}
	switch (insn->id) {
	case X86_INS_UD2: case X86_INS_UD2B: case X86_INS_INT3: case X86_INS_HLT: case X86_INS_SYSCALL:
	case X86_INS_SYSENTER: case X86_INS_XBEGIN: case X86_INS_XABORT: case X86_INS_XEND:
		return true;
	default:
		return false;
	}
}

static bool writes_memory(const cs_insn *insn)
{
	const cs_x86 *x = &insn->detail->x86;

	for (uint8_t i = 0; i < x->op_count; i++)
		if (x->operands[i].type == X86_OP_MEM && (x->operands[i].access & CS_AC_WRITE))
			return true;
	return false;
}

/* xor %r,%r and the like: reads its register only in name. */
static bool zero_idiom(const cs_insn *insn)
{
	const cs_x86 *x = &insn->detail->x86;

	return (insn->id == X86_INS_XOR || insn->id == X86_INS_SUB) && x->op_count == 2 &&
	       x->operands[0].type == X86_OP_REG && x->operands[1].type == X86_OP_REG &&
	       x->operands[0].reg == x->operands[1].reg;
}

/* push %reg (50+r, 41 50+r) and sub $n, %rsp undo with an lea. */
static bool stack_undo(const cs_insn *insn, struct detour *d)
{
	const cs_x86 *x = &insn->detail->x86;
	const uint8_t *b = insn->bytes;

	if ((insn->size == 1 && b[0] >= 0x50 && b[0] <= 0x57) ||
	    (insn->size == 2 && b[0] == 0x41 && b[1] >= 0x50 && b[1] <= 0x57)) {
		d->undo = UNDO_PUSH;
		return true;
	}
	if (insn->id == X86_INS_SUB && x->op_count == 2 && x->operands[0].type == X86_OP_REG &&
	    x->operands[0].reg == X86_REG_RSP && x->operands[1].type == X86_OP_IMM &&
	    x->operands[1].imm > 0 && x->operands[1].imm < (1 << 20)) {
		d->undo = UNDO_SUB_SP;
		d->undo_bytes = (int32_t)x->operands[1].imm;
		return true;
	}
	return false;
}

/* The first instruction runs twice (in place, then in the original): its
 * effect must be undone or harmless to repeat. */
static int check_first(struct decoder *dec, struct detour *d, unsigned flags)
{
	const cs_insn *insn = dec->insn;
	cs_regs rd, wr;
	uint8_t nrd = 0, nwr = 0;

	d->undo = UNDO_NONE;
	if (is_control(insn))
		return refuse(d, "first instruction %s transfers control", insn->mnemonic);
	if (stack_undo(insn, d))
		return 0;
	if (insn->id == X86_INS_ENDBR64)
		return 0;
	if (writes_memory(insn))
		return refuse(d, "first instruction %s %s writes memory", insn->mnemonic, insn->op_str);
	if (cs_regs_access(dec->cs, insn, rd, &nrd, wr, &nwr) != CS_ERR_OK)
		return refuse(d, "first instruction %s: registers unknown", insn->mnemonic);
	for (uint8_t i = 0; i < nwr; i++) {
		unsigned f = reg_family(wr[i]);
		if (wr[i] == X86_REG_EFLAGS)
			continue;
		if (!scratch(f))
			return refuse(d, "first instruction %s %s writes %s", insn->mnemonic, insn->op_str,
				      cs_reg_name(dec->cs, wr[i]));
		if (arg_of(f) >= 0 && (flags & DETOUR_ARG(arg_of(f))))
			return refuse(d, "first instruction %s %s overwrites an argument", insn->mnemonic, insn->op_str);
		for (uint8_t j = 0; j < nrd && !zero_idiom(insn); j++)
			if (reg_family(rd[j]) == f)
				return refuse(d, "first instruction %s %s reads what it writes", insn->mnemonic,
					      insn->op_str);
	}
	for (uint8_t j = 0; j < nrd; j++) {
		if (rd[j] == X86_REG_EFLAGS)
			return refuse(d, "first instruction %s reads flags", insn->mnemonic);
		if (stub_clobbers(reg_family(rd[j]), flags) && !zero_idiom(insn))
			return refuse(d, "first instruction %s %s reads %s, which the stub uses", insn->mnemonic,
				      insn->op_str, cs_reg_name(dec->cs, rd[j]));
	}
	return 0;
}

/* ---- the window ---- */

static bool is_rel_jump(const uint8_t *b, size_t n)
{
	return b[0] == 0xeb || b[0] == 0xe9 || (b[0] >= 0x70 && b[0] <= 0x7f) ||
	       (n >= 2 && b[0] == 0x0f && b[1] >= 0x80 && b[1] <= 0x8f);
}

static bool rip_relative(const cs_insn *insn)
{
	const cs_x86 *x = &insn->detail->x86;

	for (uint8_t i = 0; i < x->op_count; i++)
		if (x->operands[i].type == X86_OP_MEM && x->operands[i].mem.base == X86_REG_RIP)
			return true;
	return false;
}

static int check_window_insn(const cs_insn *insn, struct detour *d)
{
	if (is_control(insn)) {
		if (!is_rel_jump(insn->bytes, insn->size) || insn->id == X86_INS_JRCXZ || insn->id == X86_INS_JECXZ ||
		    insn->id == X86_INS_LOOP || insn->id == X86_INS_LOOPE || insn->id == X86_INS_LOOPNE)
			return refuse(d, "%s %s in the window", insn->mnemonic, insn->op_str);
		return 0;
	}
	if (rip_relative(insn) && insn->detail->x86.encoding.disp_size != 4)
		return refuse(d, "%s %s: RIP-relative form not understood", insn->mnemonic, insn->op_str);
	return 0;
}

static void append_text(struct detour *d, const char *sep, const cs_insn *insn)
{
	size_t n = strlen(d->text);

	snprintf(d->text + n, sizeof(d->text) - n, "%s%s%s%s", n ? sep : "", insn->mnemonic, insn->op_str[0] ? " " : "",
		 insn->op_str);
}

int detour_plan(const uint8_t *code, size_t len, uint64_t vaddr, unsigned flags, struct detour *out)
{
	struct decoder dec;
	size_t off = 0;
	int err;

	memset(out, 0, sizeof(*out));
	err = decoder_open(&dec);
	if (err)
		return err;
	if (!decode_at(&dec, code, len, 0, vaddr)) {
		err = refuse(out, "first instruction does not decode");
		goto out;
	}
	err = check_first(&dec, out, flags);
	if (err)
		goto out;
	append_text(out, "", dec.insn);
	out->len0 = dec.insn->size;
	out->insn_off[out->ninsns++] = 0;
	off = out->len0;
	for (const char *sep = " | "; off < (size_t)out->len0 + JMP_LEN; sep = "; ") {
		if (!decode_at(&dec, code, len, off, vaddr)) {
			err = refuse(out, "the function ends (or stops decoding) within %d bytes", (int)(off + JMP_LEN));
			goto out;
		}
		err = check_window_insn(dec.insn, out);
		if (err)
			goto out;
		if (off + dec.insn->size > DETOUR_MAX_BYTES || out->ninsns == DETOUR_MAX_INSNS) {
			err = refuse(out, "the window would exceed %d bytes", DETOUR_MAX_BYTES);
			goto out;
		}
		append_text(out, sep, dec.insn);
		out->insn_off[out->ninsns++] = off;
		off += dec.insn->size;
	}
	out->wlen = off - out->len0;
	memcpy(out->bytes, code, off);
out:
	decoder_close(&dec);
	return err;
}

ssize_t detour_branch_targets(const uint8_t *code, size_t len, uint64_t vaddr, uint64_t *out, size_t max)
{
	struct decoder dec;
	size_t off = 0, n = 0;
	int err = decoder_open(&dec);

	if (err)
		return err;
	while (off < len && decode_at(&dec, code, len, off, vaddr)) {
		const cs_x86 *x = &dec.insn->detail->x86;
		bool branch = cs_insn_group(dec.cs, dec.insn, CS_GRP_JUMP) || cs_insn_group(dec.cs, dec.insn, CS_GRP_CALL);
		if (branch && x->op_count == 1 && x->operands[0].type == X86_OP_IMM) {
			if (n < max)
				out[n] = (uint64_t)x->operands[0].imm;
			n++;
		}
		off += dec.insn->size;
	}
	decoder_close(&dec);
	return off < len ? -EPERM : (ssize_t)n;
}

static int32_t rel32_at(const uint8_t *p)
{
	int32_t v;

	memcpy(&v, p, 4);
	return v;
}

size_t detour_text_branch_sources(const uint8_t *text, size_t len, uint64_t vaddr, uint64_t lo, uint64_t hi,
				  uint64_t skip_lo, uint64_t skip_hi, uint64_t *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i + 5 <= len; i++) {
		uint64_t at = vaddr + i, target;
		if (at >= skip_lo && at < skip_hi)
			continue;
		if (text[i] == 0xe8 || text[i] == 0xe9)
			target = at + 5 + (int64_t)rel32_at(text + i + 1);
		else if (text[i] == 0x0f && i + 6 <= len && text[i + 1] >= 0x80 && text[i + 1] <= 0x8f)
			target = at + 6 + (int64_t)rel32_at(text + i + 2);
		else
			continue;
		if (target >= lo && target < hi) {
			if (n < max)
				out[n] = at;
			n++;
		}
	}
	return n;
}

/* ---- code ---- */

static bool fits32(int64_t v)
{
	return v >= INT32_MIN && v <= INT32_MAX;
}

static void put32(uint8_t *p, int64_t v)
{
	int32_t w = (int32_t)v;

	memcpy(p, &w, 4);
}

/* One instruction of the detour, relocated from at to dst. Returns its new
 * length or -ERANGE. */
static ssize_t relocate(struct decoder *dec, const uint8_t *b, size_t n, uint64_t at, uint64_t dst, uint8_t *out)
{
	if (is_rel_jump(b, n)) {
		bool rel8 = b[0] == 0xeb || (b[0] >= 0x70 && b[0] <= 0x7f);
		int64_t rel = rel8 ? (int8_t)b[1] : rel32_at(b + (b[0] == 0x0f ? 2 : 1));
		uint64_t target = at + n + rel;
		size_t len = 0;
		if (b[0] == 0xeb || b[0] == 0xe9) {
			out[len++] = 0xe9;
		} else {
			out[len++] = 0x0f;
			out[len++] = 0x80 | ((b[0] == 0x0f ? b[1] : b[0]) & 0x0f);
		}
		int64_t nrel = (int64_t)(target - (dst + len + 4));
		if (!fits32(nrel))
			return -ERANGE;
		put32(out + len, nrel);
		return len + 4;
	}
	memcpy(out, b, n);
	const uint8_t *p = b;
	size_t left = n;
	uint64_t addr = at;
	if (cs_disasm_iter(dec->cs, &p, &left, &addr, dec->insn) && rip_relative(dec->insn)) {
		uint8_t off = dec->insn->detail->x86.encoding.disp_offset;
		int64_t ndisp = (int64_t)rel32_at(b + off) + (int64_t)(at - dst);
		if (!fits32(ndisp))
			return -ERANGE;
		put32(out + off, ndisp);
	}
	return n;
}

ssize_t detour_original(const struct detour *d, uint64_t entry, uint64_t dst, uint8_t *out, size_t max)
{
	struct decoder dec;
	size_t pos = 0;
	ssize_t err = decoder_open(&dec);

	if (err)
		return err;
	for (uint8_t i = 0; i < d->ninsns; i++) {
		size_t off = d->insn_off[i];
		size_t n = (i + 1 < d->ninsns ? d->insn_off[i + 1] : d->len0 + d->wlen) - off;
		if (pos + 6 + JMP_LEN > max) {
			err = -ENOSPC;
			goto out;
		}
		err = relocate(&dec, d->bytes + off, n, entry + off, dst + pos, out + pos);
		if (err < 0)
			goto out;
		pos += err;
	}
	int64_t back = (int64_t)(entry + d->len0 + d->wlen - (dst + pos + JMP_LEN));
	if (!fits32(back)) {
		err = -ERANGE;
		goto out;
	}
	out[pos] = 0xe9;
	put32(out + pos + 1, back);
	err = pos + JMP_LEN;
out:
	decoder_close(&dec);
	return err;
}

ssize_t detour_prelude(const struct detour *d, uint64_t dst, uint64_t desc, uint64_t stub, uint8_t *out, size_t max)
{
	size_t pos = 0;

	if (max < 8 + 7 + JMP_LEN)
		return -ENOSPC;
	if (d->undo == UNDO_PUSH) {	/* lea 8(%rsp), %rsp */
		static const uint8_t lea8[] = { 0x48, 0x8d, 0x64, 0x24, 0x08 };
		memcpy(out, lea8, sizeof(lea8));
		pos = sizeof(lea8);
	} else if (d->undo == UNDO_SUB_SP) {	/* lea n(%rsp), %rsp */
		static const uint8_t lea32[] = { 0x48, 0x8d, 0xa4, 0x24 };
		memcpy(out, lea32, sizeof(lea32));
		put32(out + 4, d->undo_bytes);
		pos = 8;
	}
	/* lea desc(%rip), %r11 */
	int64_t rel = (int64_t)(desc - (dst + pos + 7));
	if (!fits32(rel))
		return -ERANGE;
	out[pos++] = 0x4c;
	out[pos++] = 0x8d;
	out[pos++] = 0x1d;
	put32(out + pos, rel);
	pos += 4;
	rel = (int64_t)(stub - (dst + pos + JMP_LEN));
	if (!fits32(rel))
		return -ERANGE;
	out[pos] = 0xe9;
	put32(out + pos + 1, rel);
	return pos + JMP_LEN;
}

int detour_patch(const struct detour *d, uint64_t entry, uint64_t prelude, uint8_t out[DETOUR_MAX_BYTES])
{
	uint64_t at = entry + d->len0;
	int64_t rel = (int64_t)(prelude - (at + JMP_LEN));

	if (!fits32(rel))
		return -ERANGE;
	memset(out, 0xcc, DETOUR_MAX_BYTES);
	out[0] = 0xe9;
	put32(out + 1, rel);
	return 0;
}
