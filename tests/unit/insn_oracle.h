/* A second opinion on probe placement for test_placement_real.c: the
 * installed allocators' entries decoded by objdump (not capstone, which
 * user/placement.c uses), and the placement rule of user/placement.h
 * applied to that decoding. The rule, from the kernel (arch/x86/kernel/
 * uprobes.c): it emulates nops, jmp/jcc rel and call rel (without a 0x66
 * prefix) and push %reg encoded as 50+r or 41 50+r; it refuses any
 * instruction with an es/cs/ss/ds or lock prefix. The probe moves past the
 * first byte only over instructions that neither transfer control, nor
 * write rsp, an argument register the probe reads or the return address
 * slot, nor are a branch target inside the function; at most 16. */
#ifndef TEST_INSN_ORACLE_H
#define TEST_INSN_ORACLE_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ORACLE_MAX_INSNS 4096
#define ORACLE_SCAN 16

struct oracle_insn {
	uint64_t addr;
	uint8_t bytes[16];
	int len;
	char text[96];		/* as objdump prints it, prefixes included */
	char mnem[24];		/* without prefix words */
	char ops[4][48];	/* AT&T order: the destination last */
	int nops;
	bool bad;		/* objdump could not decode it */
};

struct oracle_fn {
	struct oracle_insn insn[ORACLE_MAX_INSNS];
	int n;
	uint64_t start, end;
};

/* Operands split at commas outside parentheses; objdump's " <sym>" and
 * " # comment" dropped. */
static inline void oracle_split_ops(struct oracle_insn *in, char *s)
{
	char *cut;
	if ((cut = strstr(s, " <")))
		*cut = '\0';
	if ((cut = strstr(s, " #")))
		*cut = '\0';
	int depth = 0, k = 0;
	in->nops = 0;
	for (char *c = s;; c++) {
		depth += (*c == '(') - (*c == ')');
		if ((*c == ',' && !depth) || !*c || *c == ' ') {
			if (k && in->nops < 4)
				in->ops[in->nops++][k] = '\0';
			k = 0;
			if (*c != ',')
				break;
			continue;
		}
		if (in->nops < 4 && k < 47)
			in->ops[in->nops][k++] = *c;
	}
}

static inline bool oracle_prefix_word(const char *w)
{
	static const char *const words[] = { "bnd", "notrack", "rep", "repz", "repnz", "repe", "repne", "lock",
					     "data16", "addr32", "cs", "ds", "es", "ss", "fs", "gs", NULL };
	for (int i = 0; words[i]; i++)
		if (!strcmp(w, words[i]))
			return true;
	return !strncmp(w, "rex", 3);
}

/* One line of `objdump -d --insn-width=16`: "  addr:\tbytes\ttext". */
static inline bool oracle_parse_line(const char *line, struct oracle_insn *in)
{
	char bytes[128], text[96];
	unsigned long long addr;

	memset(in, 0, sizeof(*in));
	if (sscanf(line, " %llx:\t%127[0-9a-f ]\t%95[^\n]", &addr, bytes, text) != 3)
		return false;
	in->addr = addr;
	for (char *b = strtok(bytes, " "); b && in->len < 16; b = strtok(NULL, " "))
		in->bytes[in->len++] = (uint8_t)strtoul(b, NULL, 16);
	snprintf(in->text, sizeof(in->text), "%s", text);
	char *rest = text, *word;
	while ((word = strsep(&rest, " ")) && (!*word || oracle_prefix_word(word)))
		;
	snprintf(in->mnem, sizeof(in->mnem), "%s", word ? word : "");
	in->bad = !word || !strcmp(in->mnem, "(bad)") || !strcmp(in->mnem, ".byte");
	while (rest && *rest == ' ')
		rest++;
	if (rest)
		oracle_split_ops(in, rest);
	return in->len > 0;
}

/* objdump's decoding of [start, end) of path. Returns 0, or -1. */
static inline int oracle_decode(const char *path, uint64_t start, uint64_t end, struct oracle_fn *fn)
{
	char cmd[512], line[512];
	snprintf(cmd, sizeof(cmd), "objdump -d -w --insn-width=16 --start-address=%#" PRIx64
		 " --stop-address=%#" PRIx64 " '%s'", start, end, path);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	fn->n = 0;
	fn->start = start;
	fn->end = end;
	while (fgets(line, sizeof(line), p) && fn->n < ORACLE_MAX_INSNS)
		if (oracle_parse_line(line, &fn->insn[fn->n]))
			fn->n++;
	return pclose(p) == 0 && fn->n > 0 ? 0 : -1;
}

/* ---- what an instruction is ---- */

static inline bool oracle_is(const struct oracle_insn *in, const char *const *names)
{
	for (int i = 0; names[i]; i++)
		if (!strcmp(in->mnem, names[i]))
			return true;
	return false;
}

/* jmp, jcc and call with a direct target (objdump prints an address). */
static inline bool oracle_direct_branch(const struct oracle_insn *in, uint64_t *target)
{
	static const char *const names[] = { "jmp", "call", "jo", "jno", "jb", "jae", "je", "jne", "jbe", "ja",
					     "js", "jns", "jp", "jnp", "jl", "jge", "jle", "jg", NULL };
	if (!oracle_is(in, names) || in->nops != 1 || in->ops[0][0] == '*')
		return false;
	char *end;
	*target = strtoull(in->ops[0], &end, 16);
	return *end == '\0';
}

/* Legacy prefixes and REX: the kernel refuses es/cs/ss/ds and lock. */
static inline int oracle_prefixes(const struct oracle_insn *in, bool *refused, bool *opsize, uint8_t *rex)
{
	int i = 0;
	*refused = *opsize = false;
	*rex = 0;
	for (; i < in->len; i++) {
		uint8_t c = in->bytes[i];
		if (c == 0x26 || c == 0x2e || c == 0x36 || c == 0x3e || c == 0xf0)
			*refused = true;
		else if (c == 0x66)
			*opsize = true;
		else if (c != 0x64 && c != 0x65 && c != 0x67 && c != 0xf2 && c != 0xf3)
			break;
	}
	if (i < in->len && (in->bytes[i] & 0xf0) == 0x40)
		*rex = in->bytes[i++];
	return i;
}

static inline bool oracle_emulated(const struct oracle_insn *in)
{
	static const uint8_t nops[9][8] = {
		[1] = { 0x90 }, [2] = { 0x66, 0x90 }, [3] = { 0x0f, 0x1f, 0x00 }, [4] = { 0x0f, 0x1f, 0x40, 0x00 },
		[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 }, [6] = { 0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00 },
		[7] = { 0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00 },
		[8] = { 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00 },
	};
	bool refused, opsize;
	uint8_t rex;
	uint64_t target;
	int op = oracle_prefixes(in, &refused, &opsize, &rex);

	if (refused || in->bad || op >= in->len)
		return false;
	if (in->len <= 8 && !memcmp(in->bytes, nops[in->len], in->len))
		return true;
	if (in->bytes[op] == 0x90)
		return !(rex & 1);
	if (oracle_direct_branch(in, &target))
		return !opsize;
	if (!strcmp(in->mnem, "push") && in->nops == 1 && in->ops[0][0] == '%')
		return in->len == 1 || (in->len == 2 && in->bytes[0] == 0x41);
	return false;
}

static inline bool oracle_transfers_control(const struct oracle_insn *in)
{
	static const char *const names[] = { "int3", "int", "ud2", "ud1", "ud0", "hlt", "syscall", "sysenter",
					     "iret", "iretq", "lret", "into", NULL };
	return in->mnem[0] == 'j' || !strncmp(in->mnem, "call", 4) || !strncmp(in->mnem, "ret", 3) ||
	       !strncmp(in->mnem, "loop", 4) || oracle_is(in, names);
}

/* The 64-bit register an AT&T register operand is part of, or NULL. */
static inline const char *oracle_family(const char *op)
{
	static const char *const fam[][5] = {
		{ "rax", "eax", "ax", "al", "ah" }, { "rbx", "ebx", "bx", "bl", "bh" },
		{ "rcx", "ecx", "cx", "cl", "ch" }, { "rdx", "edx", "dx", "dl", "dh" },
		{ "rsi", "esi", "si", "sil", NULL }, { "rdi", "edi", "di", "dil", NULL },
		{ "rbp", "ebp", "bp", "bpl", NULL }, { "rsp", "esp", "sp", "spl", NULL },
		{ "r8", "r8d", "r8w", "r8b", NULL }, { "r9", "r9d", "r9w", "r9b", NULL },
		{ "r10", "r10d", "r10w", "r10b", NULL }, { "r11", "r11d", "r11w", "r11b", NULL },
		{ "r12", "r12d", "r12w", "r12b", NULL }, { "r13", "r13d", "r13w", "r13b", NULL },
		{ "r14", "r14d", "r14w", "r14b", NULL }, { "r15", "r15d", "r15w", "r15b", NULL },
	};
	if (op[0] != '%')
		return NULL;
	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++)
		for (int k = 0; k < 5 && fam[f][k]; k++)
			if (!strcmp(op + 1, fam[f][k]))
				return fam[f][0];
	return NULL;
}

struct oracle_writes {
	char regs[8][8];	/* 64-bit families written */
	int n;
	bool return_slot;	/* a store that may reach [rsp, rsp+8) */
};

static inline void oracle_add(struct oracle_writes *w, const char *family)
{
	if (family && w->n < 8)
		snprintf(w->regs[w->n++], sizeof(w->regs[0]), "%s", family);
}

/* A memory operand "disp(%base,%index,scale)" that may overlap [rsp, rsp+8). */
static inline bool oracle_hits_return_slot(const char *op)
{
	const char *paren = strchr(op, '(');
	if (!paren || strncmp(paren, "(%rsp", 5))
		return false;
	if (paren[5] == ',')
		return true;	/* indexed: anywhere */
	long disp = paren == op ? 0 : strtol(op, NULL, 0);
	return disp < 8 && disp + 8 > 0;	/* up to 8 bytes stored */
}

static inline void oracle_writes(const struct oracle_insn *in, struct oracle_writes *w)
{
	static const char *const read_only[] = { "cmp", "cmpb", "cmpw", "cmpl", "cmpq", "test", "testb", "testw",
						 "testl", "testq", "bt", "btl", "btq", "btw", "push", "pushq",
						 "endbr64", "nop", "nopl", "nopw", "pause", "prefetcht0", "prefetchw",
						 "ucomisd", "ucomiss", "comisd", "comiss", "ptest", NULL };
	static const char *const rax_rdx[] = { "mul", "mulq", "mull", "div", "divq", "divl", "idiv", "idivq",
					       "idivl", "cqto", "cltd", "cwtd", "rdtsc", "rdtscp", "cpuid", NULL };
	memset(w, 0, sizeof(*w));
	if (oracle_is(in, (const char *const[]){ "push", "pushq", "pop", "popq", "call", "ret", "leave",
						 "enter", NULL }))
		oracle_add(w, "rsp");
	if (oracle_is(in, rax_rdx) || (!strncmp(in->mnem, "imul", 4) && in->nops == 1)) {
		oracle_add(w, "rax");
		oracle_add(w, "rdx");
		if (oracle_is(in, (const char *const[]){ "cpuid", "rdtscp", NULL }))
			oracle_add(w, "rcx");
		return;
	}
	if (oracle_is(in, (const char *const[]){ "cltq", "cwtl", "cbtw", NULL })) {
		oracle_add(w, "rax");
		return;
	}
	for (int i = 0; i < in->nops; i++)
		if (strstr(in->ops[i], "%es:(%rdi)") || strstr(in->ops[i], "%ds:(%rsi)")) {
			oracle_add(w, "rdi");	/* string instructions */
			oracle_add(w, "rsi");
			oracle_add(w, "rcx");
			return;
		}
	if (oracle_is(in, read_only) || !in->nops || oracle_transfers_control(in))
		return;
	const char *dst = in->ops[in->nops - 1];
	oracle_add(w, oracle_family(dst));
	w->return_slot = oracle_hits_return_slot(dst);
	if (oracle_is(in, (const char *const[]){ "xchg", "xadd", "cmpxchg", NULL }) && in->nops == 2) {
		oracle_add(w, oracle_family(in->ops[0]));
		w->return_slot |= oracle_hits_return_slot(in->ops[0]);
		if (!strcmp(in->mnem, "cmpxchg"))
			oracle_add(w, "rax");
	}
}

/* Whether the probe may not move past in (argument registers in arg_mask,
 * PLACE_ARG order: rdi rsi rdx rcx r8 r9). */
static inline bool oracle_blocks(const struct oracle_insn *in, unsigned arg_mask)
{
	static const char *const args[] = { "rdi", "rsi", "rdx", "rcx", "r8", "r9" };
	struct oracle_writes w;

	if (in->bad || oracle_transfers_control(in))
		return true;
	oracle_writes(in, &w);
	if (w.return_slot)
		return true;
	for (int i = 0; i < w.n; i++) {
		if (!strcmp(w.regs[i], "rsp"))
			return true;
		for (int a = 0; a < 6; a++)
			if ((arg_mask & (1u << a)) && !strcmp(w.regs[i], args[a]))
				return true;
	}
	return false;
}

/* The lowest direct branch target inside (start, end), or end. */
static inline uint64_t oracle_first_target(const struct oracle_fn *fn)
{
	uint64_t lowest = fn->end, target;
	for (int i = 0; i < fn->n; i++)
		if (oracle_direct_branch(&fn->insn[i], &target) && target > fn->start && target < lowest)
			lowest = target;
	return lowest;
}

/* The placement the rule gives: the offset of the first emulated
 * instruction on the entry path (*why: that instruction), or -1 when the
 * probe stays at byte 0 (*why: what stopped the scan). */
static inline long oracle_place(const struct oracle_fn *fn, unsigned arg_mask, const char **why)
{
	uint64_t first_target = oracle_first_target(fn);
	for (int i = 0; i < fn->n && i < ORACLE_SCAN; i++) {
		const struct oracle_insn *in = &fn->insn[i];
		if (i > 0 && in->addr >= first_target) {
			*why = "branch target";
			return -1;
		}
		if (oracle_emulated(in)) {
			*why = in->text;
			return (long)(in->addr - fn->start);
		}
		if (oracle_blocks(in, arg_mask)) {
			*why = in->text;
			return -1;
		}
	}
	*why = fn->n < ORACLE_SCAN ? "code ends" : "first 16";
	return -1;
}

/* Targets of unconditional direct jumps out of the function, distinct. */
static inline size_t oracle_tail_calls(const struct oracle_fn *fn, uint64_t *targets, size_t max)
{
	size_t n = 0;
	uint64_t target;
	for (int i = 0; i < fn->n; i++) {
		if (strcmp(fn->insn[i].mnem, "jmp") || !oracle_direct_branch(&fn->insn[i], &target))
			continue;
		if (target >= fn->start && target < fn->end)
			continue;
		bool seen = false;
		for (size_t k = 0; k < n && k < max; k++)
			seen |= targets[k] == target;
		if (!seen && n < max)
			targets[n] = target;
		n += !seen;
	}
	return n;
}

#endif
